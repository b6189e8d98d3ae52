//! The `cdk-harden` binary: parse arguments, call the library, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

mod alloc;

fn main() -> ExitCode {
    alloc::tune();
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
            eprintln!("cdk-harden: error: {}", error.chain());
            ExitCode::from(2)
        }
    }
}
