//! The cloud assembly: what `cdk synth` writes to `cdk.out`, read, rewritten and re-hashed.
//!
//! This module owns the model ([`Assembly`], [`Stack`]), reading it from disk ([`read`]),
//! keeping asset ids consistent when templates change ([`rehash`]) and writing the result
//! atomically ([`mod@write`]). It knows nothing of transforms: it is handed new template values
//! and turns them into a set of file writes.
//!
//! Everything that is not a template we change is kept byte for byte: manifests and asset
//! manifests are only ever edited by replacing an asset id string, so their formatting and
//! every field cdk-harden does not understand survive untouched.

pub mod format;
pub mod paths;
pub mod read;
pub mod rehash;
pub mod write;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use paths::RelPath;
pub use write::Writer;

/// The cloud assembly schema major versions this build reads. Older CDK v2 versions wrote the
/// same structure; a newer major may not, so it is refused rather than guessed at.
pub const SCHEMA_MAJOR_MIN: u64 = 13;
pub const SCHEMA_MAJOR_MAX: u64 = 55;

/// The marker written at the root while `apply` rewrites files in place.
pub const INCOMPLETE_MARKER: &str = ".cdk-harden-incomplete";

/// A loaded cloud assembly: the top-level assembly and every nested one (Stages), with all
/// stack templates, nested stack templates and asset manifests.
#[derive(Debug)]
pub struct Assembly {
    /// The directory the assembly was read from.
    pub root: PathBuf,
    /// The schema version of the top-level manifest, e.g. `55.0.0`.
    pub version: String,
    /// The top-level assembly first, then nested assemblies depth-first in manifest order.
    pub dirs: Vec<AssemblyDir>,
    /// Every template: top-level stacks in manifest order, each followed by its nested stacks.
    pub stacks: Vec<Stack>,
    /// Every `*.assets.json`, in manifest order.
    pub asset_manifests: Vec<AssetManifest>,
    /// Other JSON files that may name a template's asset id: the construct tree and the
    /// stacks' metadata files. They are rewritten only where they name a replaced id.
    pub reference_files: Vec<RelPath>,
}

/// One cloud assembly directory: the root, or a nested `assembly-*` one written for a Stage.
#[derive(Debug)]
pub struct AssemblyDir {
    pub path: RelPath,
    pub manifest_path: RelPath,
    /// The Stage's construct path, e.g. `PipelineStack/Prod`; `None` for the root.
    pub display_name: Option<String>,
    pub parent: Option<usize>,
}

/// The account and region a stack deploys to, from `aws://ACCOUNT/REGION`.
/// `unknown-account` and `unknown-region` (environment-agnostic stacks) become `None`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct Environment {
    pub account: Option<String>,
    pub region: Option<String>,
}

impl Environment {
    pub fn parse(text: &str) -> Option<Environment> {
        let rest = text.strip_prefix("aws://")?;
        let (account, region) = rest.split_once('/')?;
        let known = |s: &str, unknown: &str| (s != unknown && !s.is_empty()).then(|| s.to_string());
        Some(Environment {
            account: known(account, "unknown-account"),
            region: known(region, "unknown-region"),
        })
    }

    /// `ACCOUNT/REGION`, with `unknown-account`/`unknown-region` for agnostic parts.
    pub fn key(&self) -> String {
        format!(
            "{}/{}",
            self.account.as_deref().unwrap_or("unknown-account"),
            self.region.as_deref().unwrap_or("unknown-region")
        )
    }
}

/// Where a nested stack hangs in its parent.
#[derive(Debug, Clone)]
pub struct NestedLink {
    /// Index of the parent in [`Assembly::stacks`].
    pub parent: usize,
    /// The parent's `AWS::CloudFormation::Stack` resource.
    pub logical_id: String,
}

/// A file asset entry: the asset manifest it is in and its (opaque) id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetRef {
    pub manifest: usize,
    pub id: String,
}

/// One CloudFormation template: a stack artifact, or a nested stack's template.
#[derive(Debug)]
pub struct Stack {
    /// The artifact id; for a nested stack, the parent's name, `/` and the logical id.
    pub name: String,
    /// The construct path CDK shows, e.g. `PipelineStack/Prod/Service`.
    pub display_name: String,
    /// Index of the assembly directory the template lives in.
    pub dir: usize,
    pub template_path: RelPath,
    pub environment: Environment,
    /// The enclosing Stage's construct path, e.g. `PipelineStack/Prod`.
    pub stage: Option<String>,
    pub nested: Option<NestedLink>,
    /// The file asset entries that publish this template.
    pub assets: Vec<AssetRef>,
    /// Whether the template is deployed from an asset (a nested stack's `TemplateURL`, or a
    /// stack whose manifest names `stackTemplateAssetObjectUrl`): if it changes, it must have
    /// an asset entry to re-hash.
    pub published: bool,
    /// Asset ids of other templates that the template's text names (a nested stack's
    /// `TemplateURL`, a pipeline's `cdk-assets publish` commands): it is final only after
    /// theirs are.
    pub mentions: Vec<String>,
    /// Where the template's bytes are.
    pub source: Source,
    /// The template's size in bytes, when the assembly was loaded.
    pub size: usize,
    /// The template file's permissions, when the assembly was loaded: its hardened version
    /// gets the same. `None` for a template that has no file.
    pub permissions: Option<std::fs::Permissions>,
}

/// Where a template's bytes are: its file below the assembly root, or in memory (an assembly
/// made by [`Assembly::from_template`], or one small enough to keep its templates' texts from
/// load: see `KEEP_TEXTS` in `assembly::read`). Either way, a hardened template is written to
/// its file; a build script that hardens an assembly again after writing it loads it again.
#[derive(Debug, Clone)]
pub enum Source {
    File,
    Memory(String),
}

/// A template's bytes as read and its parsed value. Templates are read one at a time, when
/// they are processed, so memory holds only the templates in flight.
#[derive(Debug, Clone)]
pub struct Template {
    /// The template as read, byte for byte.
    pub text: String,
    pub value: Value,
}

impl Stack {
    /// The last segment of the Stage path (`Prod` for `PipelineStack/Prod`).
    pub fn stage_name(&self) -> Option<&str> {
        self.stage
            .as_deref()
            .map(|s| s.rsplit('/').next().unwrap_or(s))
    }
}

/// A `*.assets.json` file.
#[derive(Debug)]
pub struct AssetManifest {
    pub path: RelPath,
    /// File assets: id and the source path they publish (executable sources have none).
    pub files: Vec<(String, Option<RelPath>)>,
}

impl Assembly {
    /// Reads and checks the assembly at `root`. See [`read::load`].
    pub fn load(root: impl AsRef<Path>) -> crate::Result<Assembly> {
        read::load(root.as_ref())
    }

    /// An in-memory assembly holding one template, for hardening a single template from a
    /// build script or a test. It has no files: write the hardened template yourself.
    pub fn from_template(name: &str, template: Value, environment: Environment) -> Assembly {
        let text = format::to_cdk_json(&template);
        Assembly {
            root: PathBuf::new(),
            version: format!("{SCHEMA_MAJOR_MAX}.0.0"),
            dirs: vec![AssemblyDir {
                path: RelPath::root(),
                manifest_path: RelPath::root().join("manifest.json"),
                display_name: None,
                parent: None,
            }],
            stacks: vec![Stack {
                name: name.to_string(),
                display_name: name.to_string(),
                dir: 0,
                template_path: RelPath::root().join(&format!("{name}.template.json")),
                environment,
                stage: None,
                nested: None,
                assets: Vec::new(),
                published: false,
                mentions: Vec::new(),
                size: text.len(),
                permissions: None,
                source: Source::Memory(text),
            }],
            asset_manifests: Vec::new(),
            reference_files: Vec::new(),
        }
    }

    /// Reads and parses the template of `stacks[index]`, checking its shape as [`Assembly::load`]
    /// did.
    pub fn read_template(&self, index: usize) -> crate::Result<Template> {
        let stack = &self.stacks[index];
        match &stack.source {
            // Checked as a file would be: a tree built in code can hold what no template may.
            Source::Memory(text) => {
                read::parse_template_text(&stack.template_path.under(&self.root), text.clone())
            }
            Source::File => read::read_template(&stack.template_path.under(&self.root)),
        }
    }

    /// Reads the bytes of the template of `stacks[index]`, without parsing them.
    pub fn read_template_bytes(&self, index: usize) -> crate::Result<Vec<u8>> {
        match &self.stacks[index].source {
            Source::Memory(text) => Ok(text.clone().into_bytes()),
            Source::File => crate::Error::read(&self.stacks[index].template_path.under(&self.root)),
        }
    }

    /// The stack with this name, if any.
    pub fn stack(&self, name: &str) -> Option<&Stack> {
        self.stacks.iter().find(|s| s.name == name)
    }

    /// The nested stacks whose parent is `index`.
    pub fn children(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        self.stacks
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.nested.as_ref().is_some_and(|n| n.parent == index))
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_parse() {
        let env = Environment::parse("aws://111111111111/eu-west-1").unwrap();
        assert_eq!(env.account.as_deref(), Some("111111111111"));
        assert_eq!(env.region.as_deref(), Some("eu-west-1"));
        let agnostic = Environment::parse("aws://unknown-account/unknown-region").unwrap();
        assert_eq!(agnostic, Environment::default());
        assert_eq!(agnostic.key(), "unknown-account/unknown-region");
        assert!(Environment::parse("111111111111/eu-west-1").is_none());
    }
}
