//! Findings: problems apply cannot fix, which fail `check`.
//!
//! A finding is reported, never "fixed": a plaintext secret in a template must be moved to
//! Secrets Manager or SSM by the app's authors, not rewritten by a tool. Each check is one file
//! and looks at one hardened template at a time, with the assembly for context.

mod plaintext_secrets;
mod self_mutation;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::assembly::{Assembly, Stack};

/// How bad a finding is (SARIF levels).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in one template.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The check, e.g. `plaintext-secret`.
    pub rule: String,
    pub severity: Severity,
    /// The stack's display name.
    pub stack: String,
    /// The template, relative to the assembly root.
    pub template: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logical_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub construct_path: Option<String>,
    /// JSON pointer of the offending value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do instead.
    pub help: String,
}

/// A check over one template.
pub trait Check: Sync {
    /// The rule id findings carry.
    fn rule(&self) -> &'static str;
    /// One line: what the rule is about (SARIF rule description).
    fn description(&self) -> &'static str;
    fn check(&self, assembly: &Assembly, stack: &Stack, template: &Value) -> Vec<Finding>;
}

/// Every check, in order.
pub const CHECKS: &[&dyn Check] = &[
    &plaintext_secrets::PlaintextSecrets,
    &self_mutation::SelfMutation,
];

/// Runs every check over the hardened template of `assembly.stacks[index]`.
pub fn scan(assembly: &Assembly, index: usize, template: &Value) -> Vec<Finding> {
    let stack = &assembly.stacks[index];
    CHECKS
        .iter()
        .flat_map(|check| check.check(assembly, stack, template))
        .collect()
}
