//! Transform documents: a transform as data.
//!
//! Each built-in transform is a JSON document in `transforms/`, embedded in the binary; users add
//! their own through `transforms.include`. A document carries the id, the explanation shown by
//! `cdk-harden explain`, JSONPath selectors (RFC 9535, evaluated by jsonpath-rust against the whole
//! template) choosing resources, and either declarative operations or the name of a Rust action
//! for logic a document cannot express. The JSON Schema in `schema/transform.schema.json` is
//! generated from [`Document`].

use std::path::{Path, PathBuf};

use jsonpath_rust::parser::model::JpQuery;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::change::{Change, Op};
use crate::error::{Error, Result};

/// A transform document.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "cdk-harden transform document")]
pub struct Document {
    /// Editor hint, e.g. `../schema/transform.schema.json`. Ignored by cdk-harden.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Unique kebab-case id, used in config, opt-outs and reports.
    pub id: String,
    /// One line: what the transform does.
    pub title: String,
    /// One line: the rule of the security catalogue it enforces. Shown with every change.
    pub rule: String,
    /// Markdown shown by `cdk-harden explain ID`: what it does, why, an example before and after,
    /// and how to opt out.
    pub description: String,
    /// JSONPath over the template selecting the resources the transform applies to; every match
    /// must be a resource, `$.Resources[...]`. Example:
    /// `$.Resources[?@.Type == 'AWS::S3::Bucket']`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<String>,
    /// Selected resources that are left alone, each with the note the review shows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unless: Vec<Unless>,
    /// Declarative operations applied to every selected resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<Operation>,
    /// The Rust action implementing logic a document cannot express. Exclusive with
    /// `operations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Parameters for the action.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub parameters: Value,
}

/// Resources matched by `select` are skipped, with a note.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Unless {
    /// JSONPath over the template, like `select`.
    pub select: String,
    /// Why these are skipped, e.g. "asymmetric and HMAC keys cannot rotate".
    pub note: String,
}

/// One declarative operation on each selected resource.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    pub op: Op,
    /// JSON pointer relative to the resource, e.g. `/Properties/VersioningConfiguration`.
    pub path: String,
    pub value: Value,
    /// One line for the review; defaults to the document's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a document's selectors chose in one template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Logical ids to transform, in template order.
    pub chosen: Vec<String>,
    /// Logical ids `unless` removed, each with its note.
    pub skipped: Vec<(String, String)>,
}

/// A document with its selectors compiled.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub doc: Document,
    /// Where it came from: `transforms/<id>.json` for built-ins, the file for included ones.
    pub origin: PathBuf,
    select: Option<JpQuery>,
    unless: Vec<(JpQuery, String)>,
}

impl Compiled {
    /// Parses and checks a document; errors name `origin`.
    pub fn parse(origin: &Path, text: &[u8]) -> Result<Compiled> {
        let value: Value = Error::parse_json(origin, text)?;
        let doc: Document =
            serde_path_to_error::deserialize(&value).map_err(|e| Error::Document {
                path: origin.to_path_buf(),
                problem: format!("`{}`: {}", e.path(), e.inner()),
            })?;
        let bad = |problem: String| Error::Document {
            path: origin.to_path_buf(),
            problem,
        };
        if !is_kebab(&doc.id) {
            return Err(bad(format!(
                "id `{}` must be kebab-case (a-z, 0-9, -)",
                doc.id
            )));
        }
        for (field, text) in [
            ("title", &doc.title),
            ("rule", &doc.rule),
            ("description", &doc.description),
        ] {
            if text.trim().is_empty() {
                return Err(bad(format!("`{field}` must not be empty")));
            }
        }
        match (&doc.action, doc.operations.is_empty()) {
            (Some(_), false) => {
                return Err(bad(
                    "a document has `operations` or an `action`, not both".into()
                ))
            }
            (None, true) => return Err(bad("a document needs `operations` or an `action`".into())),
            (None, false) if doc.select.is_none() => {
                return Err(bad("`operations` need a `select`".into()))
            }
            _ => {}
        }
        for (i, op) in doc.operations.iter().enumerate() {
            if !op.path.starts_with('/') {
                return Err(bad(format!(
                    "`operations[{i}].path` `{}` must be a JSON pointer starting with `/`",
                    op.path
                )));
            }
            if op.op == Op::AppendUnique && !op.value.is_array() {
                return Err(bad(format!(
                    "`operations[{i}].value` must be an array for append-unique"
                )));
            }
        }
        let compile = |field: &str, q: &str| {
            jsonpath_rust::parser::parse_json_path(q)
                .map_err(|e| bad(format!("`{field}` `{q}` is not valid JSONPath: {e}")))
        };
        let select = doc
            .select
            .as_deref()
            .map(|q| compile("select", q))
            .transpose()?;
        let unless = doc
            .unless
            .iter()
            .enumerate()
            .map(|(i, u)| {
                Ok((
                    compile(&format!("unless[{i}].select"), &u.select)?,
                    u.note.clone(),
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Compiled {
            doc,
            origin: origin.to_path_buf(),
            select,
            unless,
        })
    }

    pub fn id(&self) -> &str {
        &self.doc.id
    }

    /// The logical ids `select` matches, in template order, and those `unless` removes (with
    /// their notes). Without a `select`, nothing is selected.
    pub fn select(&self, template: &Value) -> Result<Selection> {
        let Some(select) = &self.select else {
            return Ok(Selection::default());
        };
        let mut chosen = self.matches(select, template, "select")?;
        let mut skipped = Vec::new();
        for (query, note) in &self.unless {
            for id in self.matches(query, template, "unless")? {
                if let Some(pos) = chosen.iter().position(|c| *c == id) {
                    chosen.remove(pos);
                    skipped.push((id, note.clone()));
                }
            }
        }
        Ok(Selection { chosen, skipped })
    }

    fn matches(&self, query: &JpQuery, template: &Value, field: &str) -> Result<Vec<String>> {
        let found = jsonpath_rust::query::js_path_process(query, template).map_err(|e| {
            Error::Document {
                path: self.origin.clone(),
                problem: format!("`{field}` failed: {e}"),
            }
        })?;
        let mut ids = Vec::new();
        for hit in found {
            let id = resource_id(&hit.path).ok_or_else(|| Error::Document {
                path: self.origin.clone(),
                problem: format!(
                    "`{field}` matched `{}`, which is not a resource (`$.Resources[...]`)",
                    hit.path
                ),
            })?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        // Template order, so the output does not depend on how the query walked.
        if let Some(Value::Object(resources)) = template.get("Resources") {
            let position: std::collections::HashMap<&str, usize> = resources
                .keys()
                .enumerate()
                .map(|(i, k)| (k.as_str(), i))
                .collect();
            ids.sort_by_key(|id| position.get(id.as_str()).copied());
        }
        Ok(ids)
    }

    /// The declarative changes for the selected resources.
    pub fn operations(&self, selected: &[String]) -> Vec<Change> {
        let mut out = Vec::new();
        for id in selected {
            for op in &self.doc.operations {
                let reason = op.reason.clone().unwrap_or_else(|| self.doc.title.clone());
                out.push(Change::on_resource(
                    id,
                    &op.path,
                    op.op,
                    op.value.clone(),
                    reason,
                ));
            }
        }
        out
    }
}

/// The JSON Schema of transform documents, as committed in `schema/transform.schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Document);
    let mut text = serde_json::to_string_pretty(&schema).expect("schemas serialize");
    text.push('\n');
    text
}

/// `Bucket83908E77` from `$['Resources']['Bucket83908E77']`.
fn resource_id(path: &str) -> Option<String> {
    let rest = path.strip_prefix("$['Resources']['")?;
    let id = rest.strip_suffix("']")?;
    (!id.contains('\'')).then(|| id.to_string())
}

/// Lowercase letters and digits in words joined by single hyphens.
pub fn is_kebab(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(doc: Value) -> Result<Compiled> {
        Compiled::parse(Path::new("t.json"), doc.to_string().as_bytes())
    }

    fn base() -> Value {
        json!({
            "id": "x", "title": "t", "rule": "r", "description": "d",
            "select": "$.Resources[?@.Type == 'AWS::KMS::Key']",
            "unless": [{"select": "$.Resources[?@.Type == 'AWS::KMS::Key' && @.Properties.KeySpec && @.Properties.KeySpec != 'SYMMETRIC_DEFAULT']", "note": "asymmetric"}],
            "operations": [{"op": "enforce", "path": "/Properties/EnableKeyRotation", "value": true}]
        })
    }

    #[test]
    fn select_and_unless_pick_resources_in_template_order() {
        let c = compile(base()).unwrap();
        let template = json!({"Resources": {
            "B": {"Type": "AWS::KMS::Key", "Properties": {"KeySpec": "RSA_2048"}},
            "A": {"Type": "AWS::KMS::Key", "Properties": {}},
            "Q": {"Type": "AWS::SQS::Queue"},
            "C": {"Type": "AWS::KMS::Key", "Properties": {"KeySpec": "SYMMETRIC_DEFAULT"}}
        }});
        let selection = c.select(&template).unwrap();
        assert_eq!(selection.chosen, ["A", "C"]);
        assert_eq!(
            selection.skipped,
            [("B".to_string(), "asymmetric".to_string())]
        );
    }

    #[test]
    fn bad_documents_are_named() {
        let mut d = base();
        d["id"] = json!("Not_Kebab");
        assert!(compile(d).unwrap_err().to_string().contains("kebab-case"));
        let mut d = base();
        d["select"] = json!("$.Resources[?@.Type ==");
        assert!(compile(d)
            .unwrap_err()
            .to_string()
            .contains("not valid JSONPath"));
        let mut d = base();
        d["bogus"] = json!(1);
        let err = compile(d).unwrap_err().to_string();
        assert!(err.starts_with("t.json:") && err.contains("bogus"), "{err}");
        let mut d = base();
        d["action"] = json!("vpc");
        assert!(compile(d).unwrap_err().to_string().contains("not both"));
    }

    #[test]
    fn selecting_non_resources_is_an_error() {
        let mut d = base();
        d["select"] = json!("$.Parameters");
        let c = compile(d).unwrap();
        let err = c.select(&json!({"Parameters": {}})).unwrap_err();
        assert!(err.to_string().contains("not a resource"), "{err}");
    }
}
