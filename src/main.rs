//! The `cdk-harden` binary: parse arguments, call the library, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cdk_harden::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap's --help and --version are successes; usage errors are errors (exit 2).
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cdk_harden::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            // One line: the error, then each cause, most specific last.
            let mut message = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("cdk-harden: error: {message}");
            ExitCode::from(2)
        }
    }
}
