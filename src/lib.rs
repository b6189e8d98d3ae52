//! cdk-harden: harden an AWS CDK cloud assembly after `cdk synth`, before deploy.
//!
//! The data path is five steps, each owned by one module:
//!
//! 1. **Load** ([`assembly`]): read `cdk.out` (the manifest, nested Stage assemblies, every stack
//!    and nested stack template, the asset manifests), refusing anything that points outside it.
//! 2. **Transform** ([`transform`]): run the ordered registry of transforms over each template.
//!    Transforms *propose* changes; the engine applies them and records each one.
//! 3. **Re-hash** ([`assembly::rehash`]): give every changed template a new asset id (the SHA-256
//!    of its bytes) and replace the old id everywhere, leaves first, so no stale hash can deploy
//!    an unhardened template.
//! 4. **Write** ([`assembly::write`]): only the files that change, each atomically, in place or as
//!    a complete copy.
//! 5. **Report** ([`report`]): the recorded changes, notes and findings as text, markdown, JSON or
//!    SARIF.
//!
//! Templates stream through steps 2 to 4 (the private `waves` module runs them): each is read
//! when its turn comes (or taken from memory: an assembly whose templates total at most 4 MiB
//! keeps their texts from load), its tree hardened in place, serialized and dropped, its final
//! bytes staged to disk. Its review is stored at once, in memory within a budget it shares with the
//! templates in flight and past it in a temporary file ([`report::store`]), so memory holds the
//! larger of the templates in flight and the budget. Templates finish in waves, leaves first
//! (see [`assembly::rehash::waves`]); the templates of a wave are independent and run on every
//! core, largest first. A template larger than the budget (a large pipeline's) is hardened in
//! the first wave and waits as text for its own.
//!
//! Build scripts use [`run`] with plain [`Options`], or the steps themselves:
//!
//! ```no_run
//! use cdk_harden::{Assembly, LoadedConfig, Registry, Writer};
//! let config = LoadedConfig::load(Some("cdk-harden.json".as_ref()))?;
//! let registry = Registry::load(&config)?;
//! let assembly = Assembly::load("cdk.out")?;
//! let mut writer = Writer::in_place(&assembly.root);
//! let report = cdk_harden::harden(&assembly, &config.config, &registry, Some(&mut writer))?;
//! writer.commit()?;
//! println!("{}", cdk_harden::report::headline(&report, true));
//! # Ok::<(), cdk_harden::Error>(())
//! ```

pub mod assembly;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod error;
pub mod findings;
pub mod report;
pub mod transform;
mod waves;

use std::path::PathBuf;

/// The README's Rust examples, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

pub use assembly::{Assembly, Writer};
pub use config::{Config, LoadedConfig};
pub use error::{Error, Result};
pub use report::Report;
pub use transform::{Hardened, Registry};

use report::store::StoreBuilder;

/// What [`run`] does with the assembly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Rewrite the assembly (or write the copy given by [`Options::out`]).
    Apply,
    /// Compute everything, write nothing.
    DryRun,
}

/// Plain options for [`run`]; no command-line types.
#[derive(Debug, Clone)]
pub struct Options {
    /// The cloud assembly directory (`cdk.out`).
    pub assembly: PathBuf,
    /// The config file; `None` reads `./cdk-harden.json` if it exists.
    pub config: Option<PathBuf>,
    /// Write a hardened copy here instead of rewriting in place.
    pub out: Option<PathBuf>,
    pub mode: Mode,
}

/// Hardens every template of the assembly and reports what changed. With a `writer`, every
/// file whose bytes change is staged to it; [`Writer::commit`] then puts them in place.
///
/// All or nothing: the first template that fails stops the run, the error names it, and
/// what was staged is removed when the writer is dropped.
///
/// The report keeps up to [`report::store::MEMORY_BUDGET`] bytes of reviews in memory and
/// spools the rest to a temporary file; see [`harden_with_review_budget`].
pub fn harden(
    assembly: &Assembly,
    config: &Config,
    registry: &Registry,
    writer: Option<&mut Writer>,
) -> Result<Report> {
    let budget = report::store::MEMORY_BUDGET;
    harden_with_review_budget(assembly, config, registry, writer, budget)
}

/// [`harden`], keeping at most `budget` bytes of reviews in memory (0: spool every review).
pub fn harden_with_review_budget(
    assembly: &Assembly,
    config: &Config,
    registry: &Registry,
    mut writer: Option<&mut Writer>,
    budget: usize,
) -> Result<Report> {
    let (report, rehash) =
        harden_templates(assembly, config, registry, writer.as_deref_mut(), budget)?;
    if let Some(w) = writer {
        stage_others(assembly, &rehash, w)?;
    }
    Ok(report)
}

/// Steps 2 to 4 for the templates: the report, and the ids replaced, which the other files
/// are still to be given ([`stage_others`]).
fn harden_templates(
    assembly: &Assembly,
    config: &Config,
    registry: &Registry,
    writer: Option<&mut Writer>,
    budget: usize,
) -> Result<(Report, assembly::rehash::Rehash)> {
    let reviews = StoreBuilder::new(assembly.stacks.len(), budget);
    let done = waves::run(assembly, config, registry, writer, &reviews)?;
    let renamed = &done.rehash.renamed;
    let report = Report::from_store(reviews.build(), done.findings, renamed, done.secrets);
    Ok((report.with_transforms(registry), done.rehash))
}

/// Stages (or, where ids are only overwritten, patches) the files other than templates that
/// name a replaced id (manifests, asset manifests, the tree), in a deterministic order.
fn stage_others(
    assembly: &Assembly,
    rehash: &assembly::rehash::Rehash,
    writer: &mut Writer,
) -> Result<()> {
    use assembly::{rehash::Rewrite, write::Pending};
    let shared: &Writer = writer;
    // A copy's files are new ones already: edits are checked against the files read.
    let in_place = writer.is_in_place();
    let pending = rehash.rewrite_others(assembly, in_place, |path, rewrite| match rewrite {
        Rewrite::Whole { text, permissions } => shared
            .stage(path, text, Some(permissions))
            .map(Pending::Staged),
        Rewrite::InPlace { edits, stamp } => Ok(Pending::Patch(shared.patch(path, edits, stamp))),
    })?;
    pending.into_iter().for_each(|p| writer.add_pending(p));
    Ok(())
}

/// The files of the example assemblies (`examples/*/cdk.out`, at any depth) whose names end
/// with `suffix`, sorted: the real synthesized inputs unit tests check against.
#[cfg(test)]
pub(crate) fn example_files(suffix: &str) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, suffix: &str, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path, suffix, out);
            } else if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .ends_with(suffix)
            {
                out.push(path);
            }
        }
    }
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut out = Vec::new();
    for app in std::fs::read_dir(examples).unwrap() {
        let assembly = app.unwrap().path().join("cdk.out");
        if assembly.is_dir() {
            walk(&assembly, suffix, &mut out);
        }
    }
    out.sort();
    out
}

/// The result of [`run`].
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    /// Whether files were written.
    pub written: bool,
}

/// Loads, hardens, re-hashes, writes (unless dry-run) and reports.
pub fn run(options: &Options) -> Result<Outcome> {
    run_reviewed(options, |_| Ok(()))
}

/// [`run`], handing the report to `review` before anything is written: if `review` fails
/// (the review could not be written out), nothing is written and its error is returned, so a
/// rewritten assembly never goes without its review.
///
/// `review` runs while the files other than templates are staged and the staged files are
/// synced: neither needs the other, and both take as long as a large assembly's review. An
/// error staging or syncing comes first, and nothing is written then either; a review printed
/// to a terminal may be out by then, as it may be before a failed rename.
pub fn run_reviewed(
    options: &Options,
    review: impl FnOnce(&Report) -> Result<()> + Send,
) -> Result<Outcome> {
    // The config and the transforms are read while the assembly is: neither needs the other.
    // Their errors come first, as if they were read first.
    let (rules, assembly) = rayon::join(
        || {
            let config = LoadedConfig::load(options.config.as_deref())?;
            let registry = Registry::load(&config)?;
            Ok::<_, Error>((config, registry))
        },
        || Assembly::load(&options.assembly),
    );
    let (config, registry) = rules?;
    let assembly = assembly?;
    let mut writer = match (options.mode, &options.out) {
        (Mode::DryRun, _) => None,
        (Mode::Apply, None) => Some(Writer::in_place(&assembly.root)),
        (Mode::Apply, Some(out)) => Some(Writer::copy(&assembly.root, out)?),
    };
    let budget = report::store::MEMORY_BUDGET;
    let (report, rehash) = harden_templates(
        &assembly,
        &config.config,
        &registry,
        writer.as_mut(),
        budget,
    )?;
    let (staged, reviewed) = rayon::join(
        || match writer.as_mut() {
            Some(w) => stage_others(&assembly, &rehash, w).and_then(|()| w.sync()),
            None => Ok(()),
        },
        || review(&report),
    );
    staged?;
    reviewed?;
    let written = match writer {
        Some(w) => w.commit()?,
        None => false,
    };
    Ok(Outcome { report, written })
}
