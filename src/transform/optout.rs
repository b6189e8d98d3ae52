//! Opt-outs: resources a transform must leave alone, always with a reason.
//!
//! A resource opts out with `Metadata["cdk-harden"] = {"skip": [{"id": ..., "reason": ...}]}`
//! (from CDK: `node.defaultChild.addMetadata("cdk-harden", {...})`), or the config excludes it by
//! construct-path glob. An opt-out without a reason, or naming a transform that does not exist,
//! is an error: a silent gap in a security rule is worse than a failed build.

use crate::transform::cfn::Field;
use crate::transform::change::Pointer;
use std::collections::BTreeMap;

use serde_json::Value;

use super::registry::Registry;
use crate::config::{glob_matches, Config};
use crate::error::{Error, Result};

/// The metadata key resources opt out with.
pub const METADATA_KEY: &str = "cdk-harden";

/// The opt-outs of one template, and the config's exclusions.
pub struct OptOuts<'c> {
    /// logical id → (transform id or `*`, reason)
    skips: BTreeMap<String, Vec<(String, String)>>,
    config: &'c Config,
}

impl<'c> OptOuts<'c> {
    /// Reads and checks every resource's opt-out metadata.
    pub fn read(template: &Value, config: &'c Config, registry: &Registry) -> Result<OptOuts<'c>> {
        let mut skips = BTreeMap::new();
        let Some(Value::Object(resources)) = template.field("Resources") else {
            return Ok(OptOuts { skips, config });
        };
        for (logical_id, resource) in resources {
            let Some(meta) = resource.at("/Metadata").and_then(|m| m.get(METADATA_KEY)) else {
                continue;
            };
            let err = |problem: String| Error::OptOut {
                logical_id: logical_id.clone(),
                problem,
            };
            let Some(entries) = meta.field("skip").and_then(Value::as_array) else {
                return Err(err(
                    "expected `{\"skip\": [{\"id\": ..., \"reason\": ...}]}`".into(),
                ));
            };
            if let Some(extra) = meta
                .as_object()
                .and_then(|m| m.keys().find(|k| *k != "skip"))
            {
                return Err(err(format!(
                    "unknown key `{extra}`; only `skip` is allowed"
                )));
            }
            let mut list = Vec::new();
            for (i, entry) in entries.iter().enumerate() {
                let id = entry.field("id").and_then(Value::as_str).ok_or_else(|| {
                    err(format!(
                        "`skip[{i}].id` must be a transform id (or `*` for all)"
                    ))
                })?;
                let reason = entry
                    .field("reason")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| {
                        err(format!(
                            "`skip[{i}]` opts out of `{id}` without a `reason`; every opt-out needs one a reviewer can read"
                        ))
                    })?;
                if id != "*" && registry.get(id).is_none() {
                    return Err(err(format!(
                        "`skip[{i}].id` names `{id}`, which is not a transform; `cdk-harden explain` lists them"
                    )));
                }
                list.push((id.to_string(), reason.to_string()));
            }
            skips.insert(logical_id.clone(), list);
        }
        Ok(OptOuts { skips, config })
    }

    /// Why `logical_id` is not to be touched by `transform`, if it is not.
    pub fn reason(&self, template: &Value, logical_id: &str, transform: &str) -> Option<String> {
        if let Some(list) = self.skips.get(logical_id) {
            if let Some((_, reason)) = list.iter().find(|(id, _)| id == transform || id == "*") {
                return Some(format!("opted out in metadata: {reason}"));
            }
        }
        let path = template
            .field("Resources")?
            .get(logical_id)?
            .at("/Metadata/aws:cdk:path")?
            .as_str()?;
        self.config.exclude.iter().enumerate().find_map(|(i, ex)| {
            let applies = ex.transforms.is_empty() || ex.transforms.iter().any(|t| t == transform);
            (applies && glob_matches(&ex.path, path)).then(|| {
                format!(
                    "excluded by config `exclude[{i}]` (`{}`): {}",
                    ex.path, ex.reason
                )
            })
        })
    }
}
