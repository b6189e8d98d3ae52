//! Transform documents: a transform as data.
//!
//! Each built-in transform is a JSON document in `transforms/`, embedded in the binary; users add
//! their own through `transforms.include`. A document carries the id, the explanation shown by
//! `cdk-harden explain`, JSONPath selectors (RFC 9535, evaluated by jsonpath-rust against the whole
//! template) choosing resources, and either declarative operations or the name of a Rust action
//! for logic a document cannot express. The JSON Schema in `schema/transform.schema.json` is
//! generated from [`Document`].

use crate::transform::cfn::Field;
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
    select: Option<(JpQuery, Plan)>,
    unless: Vec<(JpQuery, Plan, String)>,
}

/// How a query is answered. Most selects only ask for the resources of some types, which a
/// look at each resource's `Type` answers without running JSONPath over the template: the
/// query is then run only where it could match.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// `$.Resources[?@.Type == 'A' || @.Type == 'B' …]`: the resources of these types.
    Types(Vec<String>),
    /// `$.Resources[?@.Type == 'A' && …]`: nothing without a resource of type A.
    NeedsType(String),
    /// `$.Resources[?@.Type == 'A' && …]` whose filter looks at the resource only (no `$`):
    /// answered by the query over the resources of type A alone.
    WithinType(String),
    /// Anything else: run the query.
    Query,
}

impl Plan {
    fn of(query: &str) -> Plan {
        let Some(filter) = query
            .trim()
            .strip_prefix("$.Resources[?")
            .and_then(|f| f.strip_suffix(']'))
        else {
            return Plan::Query;
        };
        // One filter selector only: `[?a, ?b]` or `[?a, *]` selects more than the filter does.
        if has_top_level_comma(filter) {
            return Plan::Query;
        }
        // `@.Type == 'X'`, with a literal that holds no quote or escape.
        let type_is = |term: &str| -> Option<String> {
            let literal = term.trim().strip_prefix("@.Type")?.trim_start();
            let literal = literal.strip_prefix("==")?.trim();
            let inner = literal.strip_prefix('\'')?.strip_suffix('\'')?;
            (!inner.contains(['\'', '\\'])).then(|| inner.to_string())
        };
        if let Some(types) = filter.split("||").map(type_is).collect::<Option<Vec<_>>>() {
            return Plan::Types(types);
        }
        if !filter.contains("||") {
            if let Some((first, rest)) = filter.split_once("&&") {
                if let Some(kind) = type_is(first) {
                    return match rest.contains('$') {
                        true => Plan::NeedsType(kind),
                        false => Plan::WithinType(kind),
                    };
                }
            }
        }
        Plan::Query
    }
}

/// Whether `filter` holds a `,` outside string literals and brackets: a second selector.
fn has_top_level_comma(filter: &str) -> bool {
    let (mut depth, mut quote, mut escaped) = (0usize, None, false);
    for c in filter.chars() {
        match (quote, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth = depth.saturating_sub(1),
            (None, ',') if depth == 0 => return true,
            (None, _) => {}
        }
    }
    false
}

/// The resources of type `kind`, moved out of `template` (each leaves `null` behind) into a
/// template of their own, in template order; `None` if there are none.
fn move_out(template: &mut Value, kind: &str) -> Option<Value> {
    let Some(Value::Object(resources)) = template.get_mut("Resources") else {
        return None;
    };
    let only: serde_json::Map<String, Value> = resources
        .iter_mut()
        .filter(|(_, r)| r.field("Type").and_then(Value::as_str) == Some(kind))
        .map(|(id, r)| (id.clone(), std::mem::take(r)))
        .collect();
    (!only.is_empty()).then(|| {
        Value::Object(serde_json::Map::from_iter([(
            "Resources".to_string(),
            Value::Object(only),
        )]))
    })
}

/// Puts the resources [`move_out`] took back where they were.
fn move_back(template: &mut Value, only: Option<Value>) {
    let Some(Value::Object(mut only)) = only else {
        return;
    };
    let (Some(Value::Object(taken)), Some(Value::Object(resources))) =
        (only.remove("Resources"), template.get_mut("Resources"))
    else {
        unreachable!("move_out takes resources from an object of resources");
    };
    for (id, resource) in taken {
        resources[&id] = resource;
    }
}

/// The resources of `template` whose `Type` is one of `types`, in template order.
fn of_types<'a>(template: &'a Value, types: &'a [String]) -> impl Iterator<Item = &'a String> {
    super::cfn::resources(template)
        .filter(|(_, r)| {
            let kind = r.field("Type").and_then(Value::as_str);
            kind.is_some_and(|k| types.iter().any(|t| t == k))
        })
        .map(|(id, _)| id)
}

impl Compiled {
    /// Parses and checks a document; errors name `origin`.
    pub fn parse(origin: &Path, text: &[u8]) -> Result<Compiled> {
        let value: Value = Error::parse_json_unique(origin, text)?;
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
            .map(|q| Ok((compile("select", q)?, Plan::of(q))))
            .transpose()?;
        let unless = doc
            .unless
            .iter()
            .enumerate()
            .map(|(i, u)| {
                Ok((
                    compile(&format!("unless[{i}].select"), &u.select)?,
                    Plan::of(&u.select),
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
        if self.select.is_none() {
            return Ok(Selection::default());
        }
        let answers = self
            .queries()
            .map(|(query, plan, field)| self.answer(query, plan, template, field))
            .collect();
        self.selection(answers)
    }

    /// [`Compiled::select`] on a template the caller owns: the resources a
    /// [`Plan::WithinType`] query looks at are moved into a template of their own for it, and
    /// back, rather than copied. The template is as it was when this returns.
    pub(crate) fn select_in(&self, template: &mut Value) -> Result<Selection> {
        if self.select.is_none() {
            return Ok(Selection::default());
        }
        let mut answers: Vec<Option<Result<Vec<String>>>> = self.queries().map(|_| None).collect();
        let mut kinds: Vec<&str> = Vec::new();
        for (_, plan, _) in self.queries() {
            if let Plan::WithinType(kind) = plan {
                if !kinds.contains(&kind.as_str()) {
                    kinds.push(kind);
                }
            }
        }
        for kind in kinds {
            let only = move_out(template, kind);
            for ((query, plan, field), answer) in self.queries().zip(&mut answers) {
                if matches!(plan, Plan::WithinType(k) if k == kind) {
                    *answer = Some(match &only {
                        Some(only) => self.matches(query, only, field),
                        None => Ok(Vec::new()),
                    });
                }
            }
            move_back(template, only);
        }
        let answers = self
            .queries()
            .zip(answers)
            .map(|((query, plan, field), answer)| {
                answer.unwrap_or_else(|| self.answer(query, plan, template, field))
            })
            .collect();
        self.selection(answers)
    }

    /// `select`'s query and `unless`'s, in order, with their plans and field names.
    fn queries(&self) -> impl Iterator<Item = (&JpQuery, &Plan, &'static str)> {
        let select = self.select.iter().map(|(q, p)| (q, p, "select"));
        select.chain(self.unless.iter().map(|(q, p, _)| (q, p, "unless")))
    }

    /// The selection from the answers to [`Compiled::queries`]; the first failure in their
    /// order is the error.
    fn selection(&self, answers: Vec<Result<Vec<String>>>) -> Result<Selection> {
        let mut answers = answers.into_iter();
        let mut chosen = answers.next().unwrap_or_else(|| Ok(Vec::new()))?;
        let mut skipped = Vec::new();
        for ((_, _, note), answer) in self.unless.iter().zip(answers) {
            for id in answer? {
                if let Some(pos) = chosen.iter().position(|c| *c == id) {
                    chosen.remove(pos);
                    skipped.push((id, note.clone()));
                }
            }
        }
        Ok(Selection { chosen, skipped })
    }

    /// The logical ids a query matches, in template order, by its [`Plan`].
    fn answer(
        &self,
        query: &JpQuery,
        plan: &Plan,
        template: &Value,
        field: &str,
    ) -> Result<Vec<String>> {
        match plan {
            Plan::Types(types) => Ok(of_types(template, types).cloned().collect()),
            Plan::NeedsType(kind)
                if of_types(template, std::slice::from_ref(kind))
                    .next()
                    .is_none() =>
            {
                Ok(Vec::new())
            }
            Plan::WithinType(kind) => {
                // The filter sees one resource at a time, so a template of just these resources
                // (in template order) gives the same answer, without walking the others.
                let resources: serde_json::Map<String, Value> =
                    super::cfn::resources_of(template, kind)
                        .map(|(id, r)| (id.clone(), r.clone()))
                        .collect();
                if resources.is_empty() {
                    return Ok(Vec::new());
                }
                let only = Value::Object(serde_json::Map::from_iter([(
                    "Resources".to_string(),
                    Value::Object(resources),
                )]));
                self.matches(query, &only, field)
            }
            _ => self.matches(query, template, field),
        }
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
        if let Some(Value::Object(resources)) = template.field("Resources") {
            let position: foldhash::HashMap<&str, usize> = resources
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

    #[test]
    fn issue_8_plans_read_type_selects_and_nothing_else() {
        let types = |t: &[&str]| Plan::Types(t.iter().map(|s| s.to_string()).collect());
        assert_eq!(Plan::of("$.Resources[?@.Type == 'A']"), types(&["A"]));
        assert_eq!(
            Plan::of("$.Resources[?@.Type == 'A' || @.Type=='B']"),
            types(&["A", "B"])
        );
        assert_eq!(
            Plan::of("$.Resources[?@.Type == 'A' && @.Properties.X]"),
            Plan::WithinType("A".into())
        );
        // More than one selector selects more than the first filter: run as written.
        for query in [
            "$.Resources[?@.Type == 'A' && @.Properties, ?@.Type == 'B']",
            "$.Resources[?@.Type == 'A' && @.Properties, *]",
            "$.Resources[?@.Type == 'A' && @.X, 'Name']",
            "$.Resources[?@.Type == 'A', ?@.Type == 'B']",
        ] {
            assert_eq!(Plan::of(query), Plan::Query, "{query}");
        }
        // A comma inside a literal or a function call is not a second selector.
        assert_eq!(
            Plan::of("$.Resources[?@.Type == 'A' && @.Name == 'x, y']"),
            Plan::WithinType("A".into())
        );
        assert_eq!(
            Plan::of("$.Resources[?@.Type == 'A' && match(@.Name, 'a.*')]"),
            Plan::WithinType("A".into())
        );
        assert_eq!(
            Plan::of("$.Resources[?@.Type == 'A' && @.Properties.X == $.Parameters.P.Default]"),
            Plan::NeedsType("A".into())
        );
        for other in [
            "$.Resources[?@.Type == 'A' && @.X || @.Type == 'B']",
            "$.Resources[?@.Properties.Type == 'A']",
            "$.Resources[?@.Type != 'A']",
            "$.Resources[?@.Type == 'A || B']",
            "$.Resources[?@.Type == 'it\\'s']",
            "$..Resources[?@.Type == 'A']",
            "$.Resources[?@.Type == 'A'].Properties",
        ] {
            assert_eq!(Plan::of(other), Plan::Query, "{other}");
        }
    }

    /// Every example template, parsed.
    fn example_templates() -> Vec<Value> {
        crate::example_files(".template.json")
            .into_iter()
            .map(|t| serde_json::from_slice(&std::fs::read(t).unwrap()).unwrap())
            .collect()
    }

    /// Every built-in document, compiled, with its path.
    fn built_in_documents() -> Vec<(PathBuf, Compiled)> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::read_dir(repo.join("transforms"))
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                let doc = Compiled::parse(&path, &std::fs::read(&path).unwrap()).unwrap();
                (path, doc)
            })
            .collect()
    }

    /// Every query of the built-in documents answers the same by its plan as by JSONPath, on
    /// every example template and on odd ones.
    #[test]
    fn issue_8_plans_answer_as_jsonpath_does() {
        let mut all = example_templates();
        all.push(serde_json::json!({"Resources": {"A": 5, "B": {"Type": 7}, "C": {"Type": "AWS::KMS::Key",
            "Properties": {"KeySpec": "RSA_2048"}}, "D": {"Type": "AWS::S3::Bucket"}}}));
        all.push(serde_json::json!({"Outputs": {}}));
        let mut planned = 0;
        for (path, doc) in built_in_documents() {
            for (query, plan, _) in doc.queries() {
                planned += usize::from(*plan != Plan::Query);
                for t in &all {
                    assert_eq!(
                        doc.answer(query, plan, t, "select").unwrap(),
                        doc.matches(query, t, "select").unwrap(),
                        "{}: {plan:?}",
                        path.display()
                    );
                }
            }
        }
        assert!(planned >= 7, "{planned} queries have a plan");
    }

    /// Selecting in a template the engine owns (the resources a query looks at moved out and
    /// back) selects what selecting in a shared one does, and leaves the template as it was:
    /// every built-in document, every example template, and a template whose keys of the
    /// type asked for are scattered among others.
    #[test]
    fn issue_8_selecting_in_an_owned_template_moves_nothing_for_good() {
        let mut all = example_templates();
        all.push(json!({"Resources": {
            "K1": {"Type": "AWS::KMS::Key", "Properties": {"KeySpec": "RSA_2048"}},
            "B": {"Type": "AWS::S3::Bucket"},
            "K2": {"Type": "AWS::KMS::Key", "Properties": {"Origin": "EXTERNAL"}},
            "K3": {"Type": "AWS::KMS::Key"}}}));
        all.push(json!({"Outputs": {}}));
        let mut moved = 0;
        for (path, doc) in built_in_documents() {
            let within = doc
                .queries()
                .any(|(_, p, _)| matches!(p, Plan::WithinType(_)));
            for t in &all {
                let mut owned = t.clone();
                let (shared, in_owned) =
                    (doc.select(t).unwrap(), doc.select_in(&mut owned).unwrap());
                assert_eq!(in_owned.chosen, shared.chosen, "{}", path.display());
                assert_eq!(in_owned.skipped, shared.skipped, "{}", path.display());
                assert_eq!(
                    crate::assembly::format::to_cdk_json(&owned),
                    crate::assembly::format::to_cdk_json(t)
                );
                moved += usize::from(within && !shared.skipped.is_empty());
            }
        }
        assert!(
            moved >= 1,
            "some template has a resource an `unless` looks at"
        );
    }
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
