//! `kms`: not implemented yet.

use serde_json::Value;

use crate::error::Result;
use crate::transform::{Action, Context, Proposal};

pub struct Kms;

impl Action for Kms {
    fn propose(&self, _template: &Value, _selected: &[String], _ctx: &Context) -> Result<Proposal> {
        Ok(Proposal::default())
    }
}
