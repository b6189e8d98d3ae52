//! The command line: clap types, turned into plain library calls.
//!
//! The doc comments here are the `--help` text. Nothing below `cli` sees a clap type: each
//! command is converted into [`crate::Options`] (or a direct library call) and its outcome into
//! an exit code: 0 success or compliant, 1 `check` found work to do, 2 error. The review is
//! rendered by [`crate::report`] with plain [`RenderOptions`]; whether to color it is decided
//! here, from the terminal and `NO_COLOR`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::LoadedConfig;
use crate::error::{Error, Result};
use crate::report::{self, Format, RenderOptions, Report};
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
    /// Exit 0 if the assembly is compliant, 1 if `apply` would change anything or there are
    /// findings (problems apply cannot fix, such as plaintext secrets), 2 on error.
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
    /// Print the JSON Schema of cdk-harden.json (or of transform documents, or of the JSON
    /// report).
    Schema {
        /// Print the schema of transform documents instead.
        #[arg(long, conflicts_with = "report")]
        transform: bool,
        /// Print the schema of the JSON report (`--format json`) instead.
        #[arg(long)]
        report: bool,
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
    /// The review's format: `text` (colored on a terminal unless NO_COLOR is set), `markdown`
    /// (a pull-request comment), `json` (schema: `cdk-harden schema --report`) or `sarif`
    /// (findings for code scanning).
    #[arg(long, value_enum, default_value_t = FormatArg::Text, value_name = "FORMAT")]
    pub format: FormatArg,
    /// Write the full review to FILE and print only a short summary.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Markdown only: keep the review under this many bytes (GitHub comments hold 65,536
    /// characters) by leaving out diffs, then stack sections, with a note; 0 for no limit.
    #[arg(long, value_name = "BYTES", default_value_t = report::DEFAULT_MARKDOWN_LIMIT, value_parser = markdown_limit)]
    pub markdown_limit: usize,
}

/// The smallest `--markdown-limit` the review's headline and the note that it was cut fit in.
const MIN_MARKDOWN_LIMIT: usize = 256;

/// `--markdown-limit`: 0, or a size the cut review can keep to.
fn markdown_limit(text: &str) -> std::result::Result<usize, String> {
    let n: usize = text.parse().map_err(|e| format!("`{text}`: {e}"))?;
    if n != 0 && n < MIN_MARKDOWN_LIMIT {
        return Err(format!(
            "{n} bytes cannot hold the review's headline; give at least {MIN_MARKDOWN_LIMIT}, or 0 for no limit"
        ));
    }
    Ok(n)
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Text,
    Markdown,
    Json,
    Sarif,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Text => Format::Text,
            FormatArg::Markdown => Format::Markdown,
            FormatArg::Json => Format::Json,
            FormatArg::Sarif => Format::Sarif,
        }
    }
}

impl Command {
    fn options(common: &Common, out: Option<PathBuf>, mode: Mode) -> Options {
        if common.config.is_none() && !crate::config::default_present() {
            // Not an error (transforms that need no settings still run), but every message
            // about a missing setting reads differently once this is known.
            eprintln!(
                "cdk-harden: no {} in this directory and no --config: no settings are loaded",
                crate::config::FILE_NAME
            );
        }
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
            let files = out.clone().unwrap_or_else(|| common.dir.clone());
            let applied = mode == Mode::Apply;
            // The review is written out before the assembly is: if it cannot be (an unwritable
            // `--output`, a full disk behind stdout), nothing is rewritten.
            let mut review = None;
            let options = Command::options(&common, out, mode);
            let outcome = crate::run_reviewed(&options, |report| {
                review = Some(emit(&common, report, applied, &files)?);
                Ok(())
            })?;
            if let Some(review) = review {
                review.put(&outcome.report, applied)?;
            }
            leave(outcome);
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff { common } => {
            let outcome = crate::run(&Command::options(&common, None, Mode::DryRun))?;
            emit(&common, &outcome.report, false, &common.dir)?.put(&outcome.report, false)?;
            leave(outcome);
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { common } => {
            let outcome = crate::run(&Command::options(&common, None, Mode::DryRun))?;
            emit(&common, &outcome.report, false, &common.dir)?.put(&outcome.report, false)?;
            let report = &outcome.report;
            let code = if report.needs_work() {
                eprintln!(
                    "cdk-harden check: not compliant: {}",
                    report::headline(report, false)
                );
                ExitCode::from(1)
            } else {
                eprintln!("cdk-harden check: compliant");
                ExitCode::SUCCESS
            };
            leave(outcome);
            Ok(code)
        }
        Command::Explain { id, config } => {
            let config = LoadedConfig::load(config.as_deref())?;
            let registry = Registry::load(&config)?;
            print(&explain(&registry, id.as_deref())?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { transform, report } => {
            print(&if transform {
                crate::transform::document::schema_json()
            } else if report {
                report::schema_json()
            } else {
                crate::config::schema_json()
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Leaves the outcome to the operating system: the process exits next, and freeing a large
/// report value by value would only cost time.
fn leave(outcome: crate::Outcome) {
    std::mem::forget(outcome);
}

/// Where [`emit`] put the review.
enum Emitted {
    /// Written to stdout.
    Printed,
    /// Rendered into a temporary file beside `--output`, put in place by [`Emitted::put`].
    File {
        file: tempfile::NamedTempFile,
        path: PathBuf,
        format: Format,
    },
}

impl Emitted {
    /// Puts a review rendered for `--output` in place and prints the summary.
    fn put(self, report: &Report, applied: bool) -> Result<()> {
        let Emitted::File { file, path, format } = self else {
            return Ok(());
        };
        file.persist(&path).map_err(|e| Error::io(&path)(e.error))?;
        print(&format!(
            "{}full review ({}): {}\n",
            report::summary(report, applied),
            format.name(),
            path.display()
        ))
    }
}

/// Prints the review, or renders it for `--output` into a temporary file beside it (see
/// [`Emitted::put`]). `files` is the assembly the review's templates are in (for SARIF
/// locations). A closed pipe is not an error; any other failure to write is.
fn emit(common: &Common, report: &Report, applied: bool, files: &Path) -> Result<Emitted> {
    let format = Format::from(common.format);
    let options = RenderOptions {
        color: common.output.is_none() && color_stdout(),
        applied,
        markdown_limit: (common.markdown_limit > 0).then_some(common.markdown_limit),
        uri_prefix: uri_prefix(files),
    };
    match &common.output {
        None => {
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            let written = report::write_to(report, format, &options, &mut stdout)
                .and_then(|()| stdout.flush());
            written.or_else(stdout_failed)?;
            Ok(Emitted::Printed)
        }
        Some(path) => {
            if path.is_dir() {
                let e = std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory");
                return Err(Error::io(path)(e));
            }
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            let mut builder = tempfile::Builder::new();
            builder.prefix(".cdk-harden-review").suffix(".tmp");
            // As `fs::write` would create it: readable by others unless the umask says not.
            #[cfg(unix)]
            builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
            let file = builder.tempfile_in(dir).map_err(Error::io(path))?;
            // Written as it is rendered (the text review a stack at a time), as to stdout.
            let mut w = std::io::BufWriter::new(file.as_file());
            report::write_to(report, format, &options, &mut w)
                .and_then(|()| w.flush())
                .map_err(Error::io(path))?;
            drop(w);
            file.as_file().sync_all().map_err(Error::io(path))?;
            Ok(Emitted::File {
                file,
                path: path.clone(),
                format,
            })
        }
    }
}

/// Whether to color stdout: never when `NO_COLOR` is set to anything but the empty string
/// (no-color.org); otherwise when stdout is a terminal, or `CLICOLOR_FORCE` is set to anything
/// but `0` or the empty string.
pub fn color_stdout() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    set("CLICOLOR_FORCE") || std::io::stdout().is_terminal()
}

/// The assembly directory as a relative URI prefix for SARIF: as given when relative, relative
/// to the working directory when absolute below it, otherwise none.
fn uri_prefix(dir: &Path) -> Option<String> {
    let rel = if dir.is_absolute() {
        let cwd = std::env::current_dir().ok()?;
        dir.strip_prefix(&cwd).ok()?.to_path_buf()
    } else {
        dir.to_path_buf()
    };
    let parts: Vec<String> = rel
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
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
pub fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
        .or_else(stdout_failed)
}

/// A reader that stopped reading (a closed pipe) is not an error; anything else is (a full
/// disk behind `> review.sarif` must not pass for a written review).
fn stdout_failed(e: std::io::Error) -> Result<()> {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(Error::Stdout { source: e }),
    }
}
