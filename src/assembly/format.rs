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

#[cfg(test)]
mod tests {
    use super::*;

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
