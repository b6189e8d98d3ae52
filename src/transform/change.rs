//! The change model: what a transform proposes, and what the engine records.
//!
//! A transform never edits a template. It returns a [`Proposal`]: [`Change`]s (an operation at a
//! JSON pointer, with a one-line reason) and [`Note`]s (what it chose not to do, and why). The
//! engine applies the changes in a fixed order and turns each effective one into an
//! [`Applied`] record, which is all the review output needs.

use std::borrow::Cow;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The operations a transform may propose. None of them removes anything.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Set the value if nothing is there. A different value already there is left alone and
    /// noted.
    SetIfAbsent,
    /// Require the value. If the app set something else, it is left alone and noted, unless the
    /// config lists the transform under `transforms.enforce`; then it is overwritten and the
    /// record says so.
    Enforce,
    /// Deep-merge an object: keys that are absent are added; keys already present are kept.
    Merge,
    /// Append each item of an array that is not already present. A single value already there
    /// (as CloudFormation allows for `DependsOn`) becomes a one-item array first.
    AppendUnique,
    /// Add a resource (or any absent top-level entry) under the pointer.
    AddResource,
    /// Replace a weaker value the app set with a stronger one, e.g. an AWS-managed key with the
    /// customer-managed key. Only actions use it, and only after deciding the old value is
    /// weaker; the record keeps the old value so the review shows the upgrade.
    Upgrade,
}

impl Op {
    /// Every operation, for tests over all of them.
    #[cfg(test)]
    pub(crate) const ALL: [Op; 6] = [
        Op::SetIfAbsent,
        Op::Enforce,
        Op::Merge,
        Op::AppendUnique,
        Op::AddResource,
        Op::Upgrade,
    ];

    /// The name the config, documents and reports use (`set-if-absent`…).
    pub fn name(self) -> &'static str {
        match self {
            Op::SetIfAbsent => "set-if-absent",
            Op::Enforce => "enforce",
            Op::Merge => "merge",
            Op::AppendUnique => "append-unique",
            Op::AddResource => "add-resource",
            Op::Upgrade => "upgrade",
        }
    }
}

/// One proposed edit.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The resource the change is about (for an added parameter: the resource that needs it).
    pub logical_id: String,
    /// Where, as a JSON pointer into the template, e.g.
    /// `/Resources/Bucket83908E77/Properties/VersioningConfiguration`.
    pub pointer: String,
    pub op: Op,
    pub value: Value,
    /// One line: what the change does and why, e.g. "enable versioning (S3 buckets keep
    /// object versions)".
    pub reason: String,
    /// Review warnings tied to this change.
    pub warnings: Vec<String>,
}

impl Change {
    pub fn new(
        logical_id: impl Into<String>,
        pointer: impl Into<String>,
        op: Op,
        value: Value,
        reason: impl Into<String>,
    ) -> Change {
        Change {
            logical_id: logical_id.into(),
            pointer: pointer.into(),
            op,
            value,
            reason: reason.into(),
            warnings: Vec::new(),
        }
    }

    /// A change at `/Resources/{logical_id}{rel}`.
    pub fn on_resource(
        logical_id: &str,
        rel: &str,
        op: Op,
        value: Value,
        reason: impl Into<String>,
    ) -> Change {
        let id = pointer_escape(logical_id);
        let mut pointer = String::with_capacity("/Resources/".len() + id.len() + rel.len());
        pointer.push_str("/Resources/");
        pointer.push_str(&id);
        pointer.push_str(rel);
        Change::new(logical_id, pointer, op, value, reason)
    }

    pub fn with_warning(mut self, warning: impl Into<String>) -> Change {
        self.warnings.push(warning.into());
        self
    }
}

/// Why a note was made.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum NoteKind {
    /// The transform does not apply to this resource, e.g. an asymmetric key cannot rotate.
    Skipped,
    /// The resource opted out (metadata or config), with the reason given.
    OptOut,
    /// The app set a different value explicitly and enforcement is off.
    LeftAlone,
    /// Something a reviewer must act on outside the template, e.g. an imported role that needs
    /// permissions, or a central key policy that must allow a service.
    ActionRequired,
    /// A change was refused because CloudFormation would replace a stateful resource.
    Refused,
}

/// Something a transform did not do, or that needs a person.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct Note {
    pub transform: String,
    /// The resource concerned, if any.
    #[serde(rename = "logicalId", skip_serializing_if = "Option::is_none")]
    pub logical_id: Option<String>,
    pub kind: NoteKind,
    pub message: String,
}

/// A transform's output for one template.
#[derive(Debug, Default, Clone)]
pub struct Proposal {
    pub changes: Vec<Change>,
    pub notes: Vec<Note>,
}

impl Proposal {
    pub fn push(&mut self, change: Change) {
        self.changes.push(change);
    }
}

/// A change the engine applied, as the review shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub transform: String,
    pub logical_id: String,
    /// `Metadata["aws:cdk:path"]` of the resource, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub construct_path: Option<String>,
    /// The resource type, e.g. `AWS::S3::Bucket`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    pub pointer: String,
    pub op: Op,
    /// The value before; absent when there was none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub old: Option<JsonText>,
    pub new: JsonText,
    pub reason: String,
    /// True when an explicit value of the app was overwritten under `transforms.enforce`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enforced: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A value that is present, even `null`, is `Some`: an explicit `null` before a change is not
/// the same as no value.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<JsonText>, D::Error> {
    JsonText::deserialize(d).map(Some)
}

/// A JSON value held as its compact text (as `serde_json::to_string` writes it).
///
/// A record keeps the value before and after each change, and a template's records live until
/// the review is rendered. As trees they would outweigh the template itself (a pipeline's
/// thousand CodeBuild projects, each with its environment variables before and after); as text
/// they take a few bytes per byte of JSON, preview by cutting the text, and spool and read back
/// as they are. Equal texts can share one allocation (`Texts`): a pipeline's thousand
/// projects mostly get the same environment variables.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JsonText(Arc<str>);

impl JsonText {
    pub fn of(value: &Value) -> JsonText {
        // Written into a buffer kept per thread, then copied once into a shared string of its
        // exact size: no buffer grown from nothing, no second copy into the `Arc`.
        thread_local! {
            static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            buffer.clear();
            crate::assembly::format::write_compact(value, &mut buffer);
            let text = std::str::from_utf8(&buffer).expect("serde_json writes UTF-8");
            JsonText(Arc::from(text))
        })
    }

    /// A text [`JsonText::of`] wrote, taken back as it is (from the review's spool): not
    /// checked again.
    pub(crate) fn from_written(text: &str) -> JsonText {
        JsonText(Arc::from(text))
    }

    /// The text of the list `before` (a value that is not a list is a list of one) with
    /// `items` appended: the text `JsonText::of` gives the list made, without writing again
    /// what `before` already holds.
    pub(crate) fn appended(before: &JsonText, items: &[Value]) -> JsonText {
        // Compact JSON text starts with `[` exactly when it is a list.
        let was_list = before.0.starts_with('[');
        if items.is_empty() {
            return match was_list {
                true => before.clone(),
                false => JsonText(Arc::from(format!("[{}]", before.as_str()))),
            };
        }
        let mut text = Vec::with_capacity(before.0.len() + 2);
        match (was_list, before.as_str()) {
            (true, "[]") => text.push(b'['),
            (true, list) => {
                text.extend_from_slice(&list.as_bytes()[..list.len() - 1]);
                text.push(b',');
            }
            (false, single) => {
                text.push(b'[');
                text.extend_from_slice(single.as_bytes());
                text.push(b',');
            }
        }
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            crate::assembly::format::write_compact(item, &mut text);
        }
        text.push(b']');
        JsonText(Arc::from(
            std::str::from_utf8(&text).expect("JSON texts are UTF-8"),
        ))
    }

    /// The compact text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value, parsed from the text as templates are. A tree built in code can hold a key
    /// the parser refuses ([`crate::assembly::format::RESERVED_KEYS`]); its value is then the
    /// text itself, as a string.
    pub fn value(&self) -> Value {
        crate::assembly::format::parse(&self.0)
            .unwrap_or_else(|_| Value::String(self.0.to_string()))
    }
}

impl std::fmt::Debug for JsonText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Serialized as the JSON value it holds, written verbatim: as serde_json's `RawValue`
/// serializes itself, without parsing the text again to check it (a `JsonText` is only ever
/// made from a value or from a raw value serde_json read, so its text is JSON).
impl Serialize for JsonText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use crate::assembly::format::RAW_VALUE_TOKEN;
        use serde::ser::SerializeStruct;
        let mut raw = s.serialize_struct(RAW_VALUE_TOKEN, 1)?;
        raw.serialize_field(RAW_VALUE_TOKEN, &*self.0)?;
        raw.end()
    }
}

/// Any JSON value, from any format (a flattened struct of the JSON report, say), held compactly.
impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<JsonText, D::Error> {
        Ok(JsonText::of(&Value::deserialize(d)?))
    }
}

/// The texts of one template's records, each kept once: [`Texts::share`] gives back an equal
/// text already kept instead of a second copy.
#[derive(Default)]
pub(crate) struct Texts(std::collections::HashSet<Arc<str>, Sampled>);

/// Hashes a text by its length and at most its first and last 32 bytes: the set compares
/// equal-hashed texts in full anyway, and a record's texts can be whole policy documents, which
/// would otherwise be hashed in full for every change.
#[derive(Default, Clone, Copy)]
pub(crate) struct Sampled;

impl std::hash::BuildHasher for Sampled {
    type Hasher = SampledHasher;
    fn build_hasher(&self) -> SampledHasher {
        SampledHasher(foldhash::fast::FixedState::default().build_hasher())
    }
}

/// foldhash's fast hasher (the set is never iterated, so no order depends on it), over what
/// [`Sampled`] reads.
pub(crate) struct SampledHasher(foldhash::fast::FoldHasher<'static>);

impl std::hash::Hasher for SampledHasher {
    fn write(&mut self, bytes: &[u8]) {
        match bytes.len() {
            n if n <= 64 => self.0.write(bytes),
            n => {
                self.0.write_usize(n);
                self.0.write(&bytes[..32]);
                self.0.write(&bytes[n - 32..]);
            }
        }
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

impl Texts {
    pub fn share(&mut self, text: JsonText) -> JsonText {
        match self.0.get(&text.0) {
            Some(kept) => JsonText(Arc::clone(kept)),
            None => {
                self.0.insert(Arc::clone(&text.0));
                text
            }
        }
    }
}

impl JsonSchema for JsonText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        Value::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Value::json_schema(generator)
    }

    fn inline_schema() -> bool {
        Value::inline_schema()
    }
}

/// Escapes a key for use in a JSON pointer (RFC 6901); borrowed when there is nothing to
/// escape (logical ids never have anything).
pub fn pointer_escape(key: &str) -> Cow<'_, str> {
    match key.contains(['~', '/']) {
        true => Cow::Owned(key.replace('~', "~0").replace('/', "~1")),
        false => Cow::Borrowed(key),
    }
}

/// Splits a JSON pointer into unescaped tokens.
pub fn pointer_tokens(pointer: &str) -> Vec<String> {
    pointer_segments(pointer).map(Cow::into_owned).collect()
}

/// The unescaped tokens of a JSON pointer, borrowed unless a token has an escape (`~0`, `~1`):
/// what `pointer.split('/').skip(1)` gives, unescaped.
pub fn pointer_segments(pointer: &str) -> impl Iterator<Item = Cow<'_, str>> + Clone {
    let rest = pointer.find('/').map(|i| &pointer[i + 1..]);
    Segments { rest }
}

/// The tokens of a pointer, each found in one pass over its bytes: tokens are a few bytes
/// long, shorter than it takes a substring search to start, and the engine cuts up tens of
/// thousands of pointers per assembly.
#[derive(Clone)]
struct Segments<'a> {
    /// The text after the last `/` seen; `None` once the last token is given.
    rest: Option<&'a str>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Cow<'a, str>> {
        let rest = self.rest?;
        let mut escaped = false;
        let mut end = rest.len();
        for (i, b) in rest.bytes().enumerate() {
            if b == b'/' {
                end = i;
                break;
            }
            escaped |= b == b'~';
        }
        let token = &rest[..end];
        self.rest = rest.get(end + 1..);
        Some(match escaped {
            true => Cow::Owned(token.replace("~1", "/").replace("~0", "~")),
            false => Cow::Borrowed(token),
        })
    }
}

/// JSON pointer look-ups (RFC 6901), as `serde_json::Value::pointer` and `pointer_mut` do
/// them, without copying every token: the engine and the transforms look up thousands of
/// pointers per template.
pub trait Pointer {
    fn at(&self, pointer: &str) -> Option<&Value>;
    fn at_mut(&mut self, pointer: &str) -> Option<&mut Value>;
}

/// The tokens of a pointer to look up: none for `""` (the whole value), and no look-up at all
/// for a pointer that does not start with `/`.
fn look_up(pointer: &str) -> Option<impl Iterator<Item = Cow<'_, str>>> {
    (pointer.is_empty() || pointer.starts_with('/')).then(|| pointer_segments(pointer))
}

impl Pointer for Value {
    fn at(&self, pointer: &str) -> Option<&Value> {
        look_up(pointer)?.try_fold(self, |node, token| match node {
            Value::Object(map) => super::cfn::member(map, &token),
            Value::Array(items) => array_index(&token).and_then(|i| items.get(i)),
            _ => None,
        })
    }

    fn at_mut(&mut self, pointer: &str) -> Option<&mut Value> {
        look_up(pointer)?.try_fold(self, |node, token| match node {
            Value::Object(map) => super::cfn::member_mut(map, &token),
            Value::Array(items) => array_index(&token).and_then(move |i| items.get_mut(i)),
            _ => None,
        })
    }
}

/// An array index as a JSON pointer spells it: digits, no sign, no leading zero.
pub(crate) fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appending to the text of a list gives the text of the list made, for a list empty or
    /// not and for a single value (a list of one).
    #[test]
    fn issue_8_appended_text_is_the_text_of_the_list_made() {
        let parse = |s: &str| crate::assembly::format::parse(s).unwrap();
        for (before, items) in [
            ("[]", r#"["a"]"#),
            (r#"[{"Effect":"Allow"}]"#, r#"[{"k":[1,2.50]},"x\"y"]"#),
            (r#""alone""#, r#"[null, {}]"#),
            (r#"{"Ref":"X"}"#, r#"[[]]"#),
            (r#"[1,"a"]"#, r#"[]"#),
            ("[]", "[]"),
            (r#""alone""#, r#"[]"#),
        ] {
            let (before, items) = (parse(before), parse(items));
            let items = items.as_array().unwrap();
            let mut made = match &before {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            made.extend(items.iter().cloned());
            let appended = JsonText::appended(&JsonText::of(&before), items);
            assert_eq!(appended, JsonText::of(&Value::Array(made)), "{before}");
        }
    }

    /// A held value serializes as its text, verbatim, pretty or compact, as serde_json's own
    /// raw values do: the name it passes through serde under is still serde_json's.
    #[test]
    fn issue_8_json_text_serializes_verbatim() {
        let value =
            crate::assembly::format::parse(r#"{"b": [1, 2.50, "x\"y"], "a": null}"#).unwrap();
        let text = JsonText::of(&value);
        let wrapped = serde_json::json!({"k": 1});
        let mut out = serde_json::to_string(&(&text, &wrapped)).unwrap();
        assert_eq!(out, r#"[{"b":[1,2.50,"x\"y"],"a":null},{"k":1}]"#);
        out = serde_json::to_string_pretty(&vec![&text]).unwrap();
        assert_eq!(out, "[\n  {\"b\":[1,2.50,\"x\\\"y\"],\"a\":null}\n]");
        let raw: Box<serde_json::value::RawValue> =
            serde_json::value::RawValue::from_string(text.as_str().to_string()).unwrap();
        assert_eq!(
            serde_json::to_string(&raw).unwrap(),
            serde_json::to_string(&text).unwrap()
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        #[test]
        fn issue_8_pointer_segments_are_the_split_tokens_unescaped(pointer in "[a/~01é]{0,12}") {
            let split: Vec<String> = pointer
                .split('/')
                .skip(1)
                .map(|t| t.replace("~1", "/").replace("~0", "~"))
                .collect();
            let ours: Vec<String> = pointer_segments(&pointer).map(Cow::into_owned).collect();
            proptest::prop_assert_eq!(ours, split);
        }
    }

    /// The names the review prints are the names the config, documents and JSON report use.
    #[test]
    fn op_names_are_their_serialized_names() {
        for op in Op::ALL {
            assert_eq!(serde_json::to_value(op).unwrap(), op.name());
        }
    }
    use serde_json::json;

    #[test]
    fn json_text_round_trips_as_the_value_it_holds() {
        // Numbers keep their text (2.50, 1e+21), as in templates.
        let value: Value =
            serde_json::from_str(r#"{"B": [1, 2.50, null, "a \"q\" \n"], "A": {"x": 1e+21}}"#)
                .unwrap();
        let text = JsonText::of(&value);
        assert_eq!(
            text.as_str(),
            r#"{"B":[1,2.50,null,"a \"q\" \n"],"A":{"x":1e+21}}"#
        );
        assert_eq!(text.value(), value);
        // Serialized as the value, not as a string.
        let record = json!({ "v": text });
        assert_eq!(record["v"], value);
        let written = serde_json::to_string(&json!([&text])).unwrap();
        assert_eq!(written, format!("[{}]", text.as_str()));
        let back: Vec<JsonText> = serde_json::from_str(&written).unwrap();
        assert_eq!(back, vec![text.clone()]);
        // Read from pretty-printed JSON, it is held compactly.
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let read: JsonText = serde_json::from_str(&pretty).unwrap();
        assert_eq!(read, text);
    }

    proptest::proptest! {
        #[test]
        fn issue_8_pointer_look_ups_agree_with_serde_json(
            tokens in proptest::collection::vec("(a|b|~|/|0|1|01|\\+1|-|x~0|y~1|~2)", 0..4),
        ) {
            let value = json!({
                "a": {"b": [10, {"~": 1, "/": 2, "x~0": 3}], "0": "zero", "": {"": 5}},
                "~": {"/": {"01": 6, "1": 7}},
                "/": [[1, 2], {"-": 8}],
                "b": [0, 1, 2]
            });
            let pointer: String = tokens.iter().map(|t| format!("/{t}")).collect();
            for p in [pointer.as_str(), "", "a", "/a/b/1/x~00", "/~1/0/1", "/a//"] {
                proptest::prop_assert_eq!(value.at(p), value.pointer(p), "{}", p);
                let mut ours = value.clone();
                let mut theirs = value.clone();
                proptest::prop_assert_eq!(ours.at_mut(p).cloned(), theirs.pointer_mut(p).cloned());
            }
        }
    }

    /// A tree built in code may hold a key templates cannot; its value reads back as its text
    /// rather than failing (it once panicked rendering the JSON report).
    #[test]
    fn a_text_the_parser_refuses_reads_back_as_a_string() {
        let tree = json!({"$serde_json::private::RawValue": "nope"});
        let text = JsonText::of(&tree);
        assert_eq!(text.value(), Value::String(text.as_str().to_string()));
        let plain = JsonText::of(&json!({"n": [1, "a"]}));
        assert_eq!(plain.value(), json!({"n": [1, "a"]}));
    }

    /// Equal texts come back as one allocation; different ones stay apart.
    #[test]
    fn issue_8_equal_record_texts_are_kept_once() {
        let mut texts = Texts::default();
        let a = texts.share(JsonText::of(&json!([{"Name": "PIP_INDEX_URL"}])));
        let b = texts.share(JsonText::of(&json!([{"Name": "PIP_INDEX_URL"}])));
        let c = texts.share(JsonText::of(&json!([{"Name": "NPM_CONFIG_REGISTRY"}])));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, b);
        assert!(!Arc::ptr_eq(&a.0, &c.0));
        assert_eq!(c.as_str(), r#"[{"Name":"NPM_CONFIG_REGISTRY"}]"#);
        // Long texts that differ only where the hash does not look are still told apart.
        let long = |middle: &str| json!(format!("{}{middle}{}", "a".repeat(40), "z".repeat(40)));
        let (d, e) = (
            texts.share(JsonText::of(&long("one"))),
            texts.share(JsonText::of(&long("two"))),
        );
        assert_ne!(d, e);
        let f = texts.share(JsonText::of(&long("one")));
        assert!(Arc::ptr_eq(&d.0, &f.0));
    }

    #[test]
    fn an_explicit_null_before_is_not_an_absent_value() {
        let applied: Applied = serde_json::from_value(json!({
            "transform": "t", "logicalId": "L", "pointer": "/Resources/L/P", "op": "enforce",
            "old": null, "new": {"k": [true]}, "reason": "r"
        }))
        .unwrap();
        assert_eq!(applied.old.as_ref().map(JsonText::as_str), Some("null"));
        assert_eq!(applied.new.as_str(), r#"{"k":[true]}"#);
        let again: Applied =
            serde_json::from_str(&serde_json::to_string(&applied).unwrap()).unwrap();
        assert_eq!(again, applied);
    }
}
