//! The command line: clap types, turned into plain library calls.
//!
//! The doc comments here are the `--help` text. Nothing below `cli` sees a clap type: each
//! command is converted into [`crate::Options`] (or a direct library call) and its outcome into
//! an exit code: 0 success or compliant, 1 `check` found work to do, 2 error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::LoadedConfig;
use crate::error::{Error, Result};
use crate::report::text;
use crate::transform::Registry;
use crate::{Mode, Options};

/// Harden an AWS CDK cloud assembly after `cdk synth`, before deploy.
///
/// Rewrites the CloudFormation templates in `cdk.out` to meet the security catalogue (VPC,
/// customer-managed KMS keys, S3 logging and versioning, key rotation, package mirrors,
/// production approvals), keeps every asset hash consistent, and shows a review of what changed
/// and why.
#[derive(Debug, Parser)]
#[command(name = "cdk-harden", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Harden the assembly in place (or into --out), then print the review.
    Apply {
        #[command(flatten)]
        common: Common,
        /// Write a complete hardened copy to this directory and leave DIR untouched.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print the review without writing anything (the same as `diff`).
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the review of what `apply` would do; write nothing.
    Diff {
        #[command(flatten)]
        common: Common,
    },
    /// Exit 1 if `apply` would change anything, 0 if the assembly is compliant.
    Check {
        #[command(flatten)]
        common: Common,
    },
    /// List the transforms, or explain one: what, why, before and after, how to opt out.
    Explain {
        /// A transform id, e.g. `bucket-logging`.
        id: Option<String>,
        /// Also list the transforms of this config's `transforms.include`.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the JSON Schema of cdk-harden.json (or of transform documents).
    Schema {
        /// Print the schema of transform documents instead.
        #[arg(long)]
        transform: bool,
    },
}

/// Options shared by apply, diff and check.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// The cloud assembly directory.
    #[arg(default_value = "cdk.out", value_name = "DIR")]
    pub dir: PathBuf,
    /// The config file [default: ./cdk-harden.json if it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl Command {
    fn options(common: &Common, out: Option<PathBuf>, mode: Mode) -> Options {
        Options {
            assembly: common.dir.clone(),
            config: common.config.clone(),
            out,
            mode,
        }
    }
}

/// Runs a parsed command line and returns the exit code.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Apply {
            common,
            out,
            dry_run,
        } => {
            let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
            let outcome = crate::run(&Command::options(&common, out, mode))?;
            print(&text::render(&outcome.report));
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff { common } => {
            let outcome = crate::run(&Command::options(&common, None, Mode::DryRun))?;
            print(&text::render(&outcome.report));
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { common } => {
            let outcome = crate::run(&Command::options(&common, None, Mode::DryRun))?;
            print(&text::render(&outcome.report));
            Ok(if outcome.report.needs_work() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Explain { id, config } => {
            let config = LoadedConfig::load(config.as_deref())?;
            let registry = Registry::load(&config)?;
            print(&explain(&registry, id.as_deref())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { transform } => {
            print(&if transform {
                crate::transform::document::schema_json()
            } else {
                crate::config::schema_json()
            });
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The text of `explain`: the list, or one transform's description.
pub fn explain(registry: &Registry, id: Option<&str>) -> Result<String> {
    match id {
        None => {
            let width = registry.iter().map(|t| t.id().len()).max().unwrap_or(0);
            let mut out = String::new();
            for t in registry.iter() {
                let origin = if t.builtin { "" } else { " (included)" };
                out.push_str(&format!(
                    "{:width$}  {}{origin}\n",
                    t.id(),
                    t.compiled.doc.title
                ));
            }
            Ok(out)
        }
        Some(id) => {
            let t = registry
                .get(id)
                .ok_or_else(|| Error::UnknownTransform { id: id.to_string() })?;
            let doc = &t.compiled.doc;
            Ok(format!(
                "{}: {}\nRule: {}\n\n{}\n",
                doc.id, doc.title, doc.rule, doc.description
            ))
        }
    }
}

/// Writes to stdout; a closed pipe (`cdk-harden diff | head`) is not an error.
pub fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("cdk-harden: writing to stdout: {e}");
        }
    }
}
