//! The review: one report model, several renderers.
//!
//! [`Report`] is built from the engine's records and the write plan; it holds no paths but the
//! assembly-relative ones and no timestamps, so its output is stable across runs and machines.
//! The renderers (text, markdown, json, sarif) only format it.

pub mod text;

use serde::{Deserialize, Serialize};

use crate::assembly::rehash::Renamed;
use crate::assembly::{Assembly, WritePlan};
use crate::findings::Finding;
use crate::transform::{Applied, Note};
use crate::Harden;

/// The version of the JSON report format; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a reviewer needs: per stack, what changed, and what did not and why.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub schema_version: u32,
    pub stacks: Vec<StackReport>,
    /// Template asset ids replaced because their templates changed.
    pub renamed_assets: Vec<RenamedAsset>,
    /// Problems apply cannot fix; any of these fails `check`.
    pub findings: Vec<Finding>,
}

/// One template's part of the report.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StackReport {
    /// The artifact id (nested stacks: parent's name, `/`, logical id).
    pub name: String,
    pub display_name: String,
    /// The template, relative to the assembly root.
    pub template: String,
    /// `ACCOUNT/REGION`, with `unknown-account`/`unknown-region` for agnostic stacks.
    pub environment: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub nested: bool,
    pub changes: Vec<Applied>,
    pub notes: Vec<Note>,
    /// The template before and after, for diffs; not part of the JSON report.
    #[serde(skip)]
    pub before: String,
    #[serde(skip)]
    pub after: String,
}

/// A template asset id that was replaced.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RenamedAsset {
    pub template: String,
    pub old: String,
    pub new: String,
}

impl From<&Renamed> for RenamedAsset {
    fn from(r: &Renamed) -> Self {
        RenamedAsset {
            template: r.template.to_string(),
            old: r.old.clone(),
            new: r.new.clone(),
        }
    }
}

impl Report {
    pub fn build(assembly: &Assembly, hardened: &Harden, plan: &WritePlan) -> Report {
        let written: std::collections::BTreeMap<&str, &str> = plan
            .files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let templates: Vec<&serde_json::Value> =
            hardened.stacks.iter().map(|h| &h.template).collect();
        let findings = crate::findings::scan(assembly, &templates);
        let stacks = assembly
            .stacks
            .iter()
            .zip(&hardened.stacks)
            .map(|(stack, h)| StackReport {
                name: stack.name.clone(),
                display_name: stack.display_name.clone(),
                template: stack.template_path.to_string(),
                environment: stack.environment.key(),
                stage: stack.stage.clone(),
                nested: stack.nested.is_some(),
                changes: h.applied.clone(),
                notes: h.notes.clone(),
                before: stack.original.clone(),
                after: written
                    .get(stack.template_path.as_str())
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| stack.original.clone()),
            })
            .collect();
        Report {
            schema_version: SCHEMA_VERSION,
            stacks,
            renamed_assets: plan.renamed.iter().map(RenamedAsset::from).collect(),
            findings,
        }
    }

    /// Number of changes over all stacks.
    pub fn change_count(&self) -> usize {
        self.stacks.iter().map(|s| s.changes.len()).sum()
    }

    /// Whether `check` fails: apply would change something, or there are findings.
    pub fn needs_work(&self) -> bool {
        self.has_changes() || !self.findings.is_empty()
    }

    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        self.stacks.iter().any(|s| s.before != s.after)
    }
}
