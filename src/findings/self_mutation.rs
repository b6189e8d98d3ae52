//! `pipeline-synth-not-hardened`: not implemented yet.

use serde_json::Value;

use super::{Check, Finding};
use crate::assembly::{Assembly, Stack};

pub struct SelfMutation;

impl Check for SelfMutation {
    fn rule(&self) -> &'static str {
        "pipeline-synth-not-hardened"
    }

    fn description(&self) -> &'static str {
        "not implemented yet"
    }

    fn check(&self, _assembly: &Assembly, _stack: &Stack, _template: &Value) -> Vec<Finding> {
        Vec::new()
    }
}
