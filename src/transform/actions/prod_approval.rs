//! `prod-approval`: not implemented yet.

use serde_json::Value;

use crate::error::Result;
use crate::transform::{Action, Context, Proposal};

pub struct ProdApproval;

impl Action for ProdApproval {
    fn propose(&self, _template: &Value, _selected: &[String], _ctx: &Context) -> Result<Proposal> {
        Ok(Proposal::default())
    }
}
