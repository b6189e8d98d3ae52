//! Serializing templates exactly as CDK does.
//!
//! CDK writes templates with `JSON.stringify(template, undefined, 1)`: one-space indent, keys in
//! synthesized order, no trailing newline. With `preserve_order` and `arbitrary_precision`,
//! serde_json reproduces that byte for byte, so a rewritten template differs from its input only
//! where a transform changed it.

use serde::Serialize;
use serde_json::Value;

/// The bytes of `value` in CDK's template format.
pub fn to_cdk_json(value: &Value) -> String {
    to_cdk_json_with_capacity(value, 4096)
}

/// [`to_cdk_json`] into a buffer of `capacity` bytes to start with. A good guess saves
/// copying a large template's text as the buffer grows, and holding the old buffer and the
/// new, twice its size, while it copies.
pub fn to_cdk_json_with_capacity(value: &Value, capacity: usize) -> String {
    let mut out = Vec::with_capacity(capacity);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value
        .serialize(&mut serializer)
        .expect("a serde_json::Value always serializes");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// [`to_cdk_json_with_capacity`] on a value given up: each part is freed once written, so a
/// large template's tree shrinks as its text grows instead of both being whole at the end.
/// The same bytes as [`to_cdk_json`] (a test checks on generated values and every example
/// template).
pub fn into_cdk_json(value: Value, capacity: usize) -> String {
    let mut out = Vec::with_capacity(capacity);
    write_owned(value, 0, &mut out);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Writes `value` as serde_json's pretty printer with a one-space indent does, `depth` levels
/// in, dropping each entry after writing it.
fn write_owned(value: Value, depth: usize, out: &mut Vec<u8>) {
    fn open(out: &mut Vec<u8>, first: bool, depth: usize) {
        out.extend_from_slice(if first { b"\n" } else { b",\n" });
        out.resize(out.len() + depth, b' ');
    }
    fn close(out: &mut Vec<u8>, depth: usize, bracket: u8) {
        out.push(b'\n');
        out.resize(out.len() + depth, b' ');
        out.push(bracket);
    }
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push(b'{');
            for (i, (key, item)) in map.into_iter().enumerate() {
                open(out, i == 0, depth + 1);
                write_leaf(&Value::String(key), out);
                out.extend_from_slice(b": ");
                write_owned(item, depth + 1, out);
            }
            close(out, depth, b'}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push(b'[');
            for (i, item) in items.into_iter().enumerate() {
                open(out, i == 0, depth + 1);
                write_owned(item, depth + 1, out);
            }
            close(out, depth, b']');
        }
        // Scalars and empty containers print the same compact or pretty.
        leaf => write_leaf(&leaf, out),
    }
}

fn write_leaf(value: &Value, out: &mut Vec<u8>) {
    serde_json::to_writer(out, value).expect("a serde_json::Value always serializes");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[a-z\"\\\\\n\u{1}é€𝄞 ]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[A-Za-z:\"]{0,6}", inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn issue_8_writing_a_value_given_up_gives_the_same_bytes(value in json_value()) {
            prop_assert_eq!(into_cdk_json(value.clone(), 0), to_cdk_json(&value));
        }
    }

    #[test]
    fn issue_8_every_example_template_writes_the_same_bytes_given_up() {
        let files = crate::example_files(".template.json");
        assert!(files.len() >= 10, "{}", files.len());
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(into_cdk_json(value, 16), text, "{}", file.display());
        }
    }

    #[test]
    fn matches_json_stringify_with_one_space() {
        // What `JSON.stringify(v, undefined, 1)` prints for this value.
        let text = "{\n \"B\": [\n  1,\n  2.5,\n  {}\n ],\n \"A\": {\n  \"x\": \"\\u0001é\\\"\"\n },\n \"E\": []\n}";
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(to_cdk_json(&value), text);
    }

    #[test]
    fn numbers_keep_their_text() {
        // Numbers as JSON.stringify writes them, including forms f64 printing would change.
        let text = "{\n \"n\": 1e+21,\n \"f\": 0.1,\n \"m\": 12345678901234567890123\n}";
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(to_cdk_json(&value), text);
    }
}
