//! What the engine and the review keep of a template as read.
//!
//! The engine hardens the template's tree in place, so the input tree is gone once the
//! transforms have run. What is still needed of it is taken first: each resource's type (the
//! replacement guard asks whether a property of a resource *as read* is create-only) and
//! construct path (for notes about resources). The review reads the rest from the input's
//! text. A 4 MB template is about 22 MB as a tree; keeping it beside the hardened tree would
//! double the largest template's footprint.

use crate::transform::change::Pointer;
use std::ops::Range;

use serde_json::Value;

/// The resources of a template as read.
///
/// Their strings are copied into one text, not a string each: a template's resources are
/// kept for every template, and a pipeline's are thousands.
#[derive(Debug, Clone, Default)]
pub struct Original {
    /// Every kept string, one after another.
    text: String,
    /// Each resource, in the order of their logical ids.
    resources: Vec<Resource>,
}

/// Where a resource's strings are in [`Original::text`].
#[derive(Debug, Clone)]
struct Resource {
    logical_id: Range<usize>,
    kind: Option<Range<usize>>,
    construct_path: Option<Range<usize>>,
}

impl Original {
    /// Takes what is kept of `template`'s resources.
    pub fn of(template: &Value) -> Original {
        let mut text = String::new();
        let mut keep = |s: &str| {
            let start = text.len();
            text.push_str(s);
            start..text.len()
        };
        let mut resources: Vec<Resource> = super::cfn::resources(template)
            .map(|(id, r)| {
                let field = |pointer: &str| r.at(pointer).and_then(Value::as_str);
                Resource {
                    logical_id: keep(id),
                    kind: field("/Type").map(&mut keep),
                    construct_path: field("/Metadata/aws:cdk:path").map(&mut keep),
                }
            })
            .collect();
        // Logical ids are the keys of one object: no two are equal.
        resources
            .sort_unstable_by(|a, b| text[a.logical_id.clone()].cmp(&text[b.logical_id.clone()]));
        Original { text, resources }
    }

    fn get(&self, logical_id: &str) -> Option<&Resource> {
        let at = self
            .resources
            .binary_search_by(|r| self.text[r.logical_id.clone()].cmp(logical_id))
            .ok()?;
        Some(&self.resources[at])
    }

    /// Whether the template as read has a resource `logical_id`.
    pub fn has(&self, logical_id: &str) -> bool {
        self.get(logical_id).is_some()
    }

    /// The type of resource `logical_id` as read.
    pub fn resource_type(&self, logical_id: &str) -> Option<&str> {
        let span = self.get(logical_id)?.kind.clone()?;
        Some(&self.text[span])
    }

    /// The construct path (`aws:cdk:path` metadata) of resource `logical_id` as read.
    pub fn construct_path(&self, logical_id: &str) -> Option<&str> {
        let span = self.get(logical_id)?.construct_path.clone()?;
        Some(&self.text[span])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_types_and_construct_paths() {
        let t = serde_json::json!({"Resources": {
            "B": {"Type": "AWS::S3::Bucket", "Metadata": {"aws:cdk:path": "App/B/Resource"}},
            "Odd": {"Properties": {}}
        }});
        let o = Original::of(&t);
        assert_eq!(o.resource_type("B"), Some("AWS::S3::Bucket"));
        assert_eq!(o.construct_path("B"), Some("App/B/Resource"));
        assert!(o.has("Odd") && o.resource_type("Odd").is_none());
        assert!(!o.has("C"));
        assert!(!Original::of(&serde_json::json!([])).has("B"));
    }
}
