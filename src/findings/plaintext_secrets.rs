//! `plaintext-secret`: not implemented yet.

use serde_json::Value;

use super::{Check, Finding};
use crate::assembly::{Assembly, Stack};

pub struct PlaintextSecrets;

impl Check for PlaintextSecrets {
    fn rule(&self) -> &'static str {
        "plaintext-secret"
    }

    fn description(&self) -> &'static str {
        "not implemented yet"
    }

    fn check(&self, _assembly: &Assembly, _stack: &Stack, _template: &Value) -> Vec<Finding> {
        Vec::new()
    }
}
