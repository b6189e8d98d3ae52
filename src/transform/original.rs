//! What the engine and the review keep of a template as read.
//!
//! The engine hardens the template's tree in place, so the input tree is gone once the
//! transforms have run. What is still needed of it is taken first: each resource's type (the
//! replacement guard asks whether a property of a resource *as read* is create-only) and
//! construct path (for notes about resources). The review reads the rest from the input's
//! text. A 4 MB template is about 22 MB as a tree; keeping it beside the hardened tree would
//! double the largest template's footprint.

use crate::transform::change::Pointer;
use foldhash::HashMap;

use serde_json::Value;

/// The resources of a template as read.
#[derive(Debug, Clone, Default)]
pub struct Original {
    resources: HashMap<String, Resource>,
}

#[derive(Debug, Clone, Default)]
struct Resource {
    kind: Option<String>,
    construct_path: Option<String>,
}

impl Original {
    /// Takes what is kept of `template`'s resources.
    pub fn of(template: &Value) -> Original {
        let resources = super::cfn::resources(template)
            .map(|(id, r)| {
                let text = |pointer: &str| r.at(pointer).and_then(Value::as_str);
                let resource = Resource {
                    kind: text("/Type").map(str::to_string),
                    construct_path: text("/Metadata/aws:cdk:path").map(str::to_string),
                };
                (id.clone(), resource)
            })
            .collect();
        Original { resources }
    }

    /// Whether the template as read has a resource `logical_id`.
    pub fn has(&self, logical_id: &str) -> bool {
        self.resources.contains_key(logical_id)
    }

    /// The type of resource `logical_id` as read.
    pub fn resource_type(&self, logical_id: &str) -> Option<&str> {
        self.resources.get(logical_id)?.kind.as_deref()
    }

    /// The construct path (`aws:cdk:path` metadata) of resource `logical_id` as read.
    pub fn construct_path(&self, logical_id: &str) -> Option<&str> {
        self.resources.get(logical_id)?.construct_path.as_deref()
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
