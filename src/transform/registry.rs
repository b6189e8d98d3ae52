//! The ordered registry of transforms: the built-ins, then the user's documents.
//!
//! Order matters and is fixed: later transforms see what earlier ones did (encryption, for
//! example, must know which buckets became access-log destinations). Built-ins are the
//! documents in `transforms/`, embedded at compile time; `transforms.include` directories add
//! user documents after them, in file-name order.

use std::path::{Path, PathBuf};

use super::actions;
use super::document::Compiled;
use super::Action;
use crate::config::LoadedConfig;
use crate::error::{Error, Result};

/// The built-in documents, in the order they run.
pub const BUILTINS: &[(&str, &str)] = &[
    (
        "transforms/bucket-versioning.json",
        include_str!("../../transforms/bucket-versioning.json"),
    ),
    (
        "transforms/bucket-logging.json",
        include_str!("../../transforms/bucket-logging.json"),
    ),
    (
        "transforms/kms.json",
        include_str!("../../transforms/kms.json"),
    ),
    (
        "transforms/key-rotation.json",
        include_str!("../../transforms/key-rotation.json"),
    ),
    (
        "transforms/vpc.json",
        include_str!("../../transforms/vpc.json"),
    ),
    (
        "transforms/package-registry.json",
        include_str!("../../transforms/package-registry.json"),
    ),
    (
        "transforms/prod-approval.json",
        include_str!("../../transforms/prod-approval.json"),
    ),
];

/// One transform: its document and, for logic a document cannot express, its action.
pub struct Transform {
    pub compiled: Compiled,
    pub action: Option<&'static dyn Action>,
    pub builtin: bool,
}

impl Transform {
    pub fn id(&self) -> &str {
        self.compiled.id()
    }
}

/// The transforms, in order.
pub struct Registry {
    transforms: Vec<Transform>,
}

impl Registry {
    /// Only the built-ins.
    pub fn builtin() -> Result<Registry> {
        let mut registry = Registry {
            transforms: Vec::new(),
        };
        for (origin, text) in BUILTINS {
            registry.add(Compiled::parse(Path::new(origin), text.as_bytes())?, true)?;
        }
        Ok(registry)
    }

    /// The built-ins and the documents of the config's `transforms.include` directories, with
    /// every transform id the config names checked.
    pub fn load(config: &LoadedConfig) -> Result<Registry> {
        let mut registry = Registry::builtin()?;
        let base = config.base_dir();
        for dir in &config.config.transforms.include {
            let dir = base.join(dir);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(Error::io(&dir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            for file in files {
                let text = Error::read_any(&file)?;
                registry.add(Compiled::parse(&file, &text)?, false)?;
            }
        }
        let c = &config.config;
        let named = [
            ("transforms.disable", &c.transforms.disable),
            ("transforms.enforce", &c.transforms.enforce),
            ("allowReplacement", &c.allow_replacement),
        ];
        for (key, ids) in named {
            for (i, id) in ids.iter().enumerate() {
                if registry.get(id).is_none() {
                    return Err(Error::Config {
                        path: config.display_path(),
                        key: format!("{key}[{i}]"),
                        problem: format!(
                            "`{id}` is not a transform; `cdk-harden explain` lists them"
                        ),
                    });
                }
            }
        }
        for (i, ex) in c.exclude.iter().enumerate() {
            for (j, id) in ex.transforms.iter().enumerate() {
                if registry.get(id).is_none() {
                    return Err(Error::Config {
                        path: config.display_path(),
                        key: format!("exclude[{i}].transforms[{j}]"),
                        problem: format!(
                            "`{id}` is not a transform; `cdk-harden explain` lists them"
                        ),
                    });
                }
            }
        }
        Ok(registry)
    }

    fn add(&mut self, compiled: Compiled, builtin: bool) -> Result<()> {
        if let Some(existing) = self.get(compiled.id()) {
            return Err(Error::Document {
                path: compiled.origin.clone(),
                problem: format!(
                    "id `{}` is already used by {}",
                    compiled.id(),
                    existing.compiled.origin.display()
                ),
            });
        }
        let action = match &compiled.doc.action {
            None => None,
            Some(name) => Some(actions::find(name).ok_or_else(|| Error::Document {
                path: compiled.origin.clone(),
                problem: format!(
                    "`action` names `{name}`, which is not a built-in action (known: {})",
                    actions::NAMES.join(", ")
                ),
            })?),
        };
        self.transforms.push(Transform {
            compiled,
            action,
            builtin,
        });
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&Transform> {
        self.transforms.iter().find(|t| t.id() == id)
    }

    /// Every transform, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Transform> {
        self.transforms.iter()
    }

    /// The transforms the config does not disable, in order.
    pub fn enabled<'a>(
        &'a self,
        config: &'a crate::config::Config,
    ) -> impl Iterator<Item = &'a Transform> + 'a {
        self.transforms
            .iter()
            .filter(move |t| !config.transforms.disable.iter().any(|d| d == t.id()))
    }
}
