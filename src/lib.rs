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
//! Build scripts use [`run`] with plain [`Options`], or the steps one by one:
//!
//! ```no_run
//! use cdk_harden::{Assembly, LoadedConfig, Registry};
//! let config = LoadedConfig::load(Some("cdk-harden.json".as_ref()))?;
//! let registry = Registry::load(&config)?;
//! let assembly = Assembly::load("cdk.out")?;
//! let hardened = cdk_harden::harden(&assembly, &config.config, &registry)?;
//! let plan = cdk_harden::WritePlan::new(&assembly, &hardened.changed)?;
//! plan.write_in_place(&assembly.root)?;
//! # Ok::<(), cdk_harden::Error>(())
//! ```

pub mod assembly;
pub mod cli;
pub mod config;
pub mod error;
pub mod findings;
pub mod report;
pub mod transform;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

pub use assembly::{Assembly, WritePlan};
pub use config::{Config, LoadedConfig};
pub use error::{Error, Result};
pub use report::Report;
pub use transform::{Hardened, Registry};

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

/// Every template's hardening, and the new templates of those that changed.
#[derive(Debug, Default)]
pub struct Harden {
    /// Per stack, in [`Assembly::stacks`] order.
    pub stacks: Vec<Hardened>,
    /// The templates that changed: index into [`Assembly::stacks`] → new template.
    pub changed: BTreeMap<usize, Value>,
}

/// Runs the transforms over every template. All or nothing: the first stack that fails stops
/// the run, and the error names it.
pub fn harden(assembly: &Assembly, config: &Config, registry: &Registry) -> Result<Harden> {
    use rayon::prelude::*;
    // Templates are independent: harden them on every core. The results come back in stack
    // order, and the first failure in that order is the one reported.
    let results: Vec<Result<Hardened>> = (0..assembly.stacks.len())
        .into_par_iter()
        .map(|index| {
            let stack = &assembly.stacks[index];
            transform::harden_stack(assembly, index, config, registry).map_err(|e| Error::Stack {
                stack: stack.display_name.clone(),
                template: stack.template_path.to_string(),
                source: Box::new(e),
            })
        })
        .collect();
    let mut out = Harden::default();
    for (index, hardened) in results.into_iter().enumerate() {
        let hardened = hardened?;
        if hardened.template != assembly.stacks[index].template {
            out.changed.insert(index, hardened.template.clone());
        }
        out.stacks.push(hardened);
    }
    Ok(out)
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
    let config = LoadedConfig::load(options.config.as_deref())?;
    let registry = Registry::load(&config)?;
    let assembly = Assembly::load(&options.assembly)?;
    let hardened = harden(&assembly, &config.config, &registry)?;
    let plan = WritePlan::new(&assembly, &hardened.changed)?;
    let report = Report::build(&assembly, &hardened, &plan).with_transforms(&registry);
    let mut written = false;
    if options.mode == Mode::Apply {
        match &options.out {
            Some(out) => {
                plan.write_copy(&assembly.root, out)?;
                written = true;
            }
            None => {
                written = !plan.is_empty();
                plan.write_in_place(&assembly.root)?;
            }
        }
    }
    Ok(Outcome { report, written })
}
