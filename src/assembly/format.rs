//! Parsing templates, and serializing them exactly as CDK does.
//!
//! CDK writes templates with `JSON.stringify(template, undefined, 1)`: one-space indent, keys in
//! synthesized order, no trailing newline. With `preserve_order` and `arbitrary_precision`,
//! serde_json reproduces that byte for byte, so a rewritten template differs from its input only
//! where a transform changed it.
//!
//! [`parse`] builds the same tree as `serde_json::from_slice`, with every object and array
//! allocated at its final size: serde_json grows each by doubling, which leaves about a fifth
//! of a template's tree unused and copies every entry on the way.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::{Map, Number, Value};

/// Parses JSON text into a tree; the same value, and the same errors, as
/// `serde_json::from_slice::<Value>`, except that a key serde_json reserves for itself
/// ([`RESERVED_KEYS`]) is an error, with its line and column: serde_json would read
/// `{"$serde_json::private::Number": "1"}` as the number `1`, so the template would change
/// where no transform touched it, and its raw-value key would not read back at all. So is a
/// key given twice in one object (at the end of that object; `duplicate_key` finds where the
/// second is): serde_json keeps the last value, so the rewritten template would silently lose
/// the first.
pub fn parse(text: &str) -> serde_json::Result<Value> {
    // From text already checked to be UTF-8 as a whole: the parser then does not check each
    // string again.
    let mut de = serde_json::Deserializer::from_str(text);
    let mut scratch = Scratch {
        input: text.as_bytes().as_ptr_range(),
        items: Vec::new(),
        entries: Vec::new(),
    };
    let value = Exact(&mut scratch).deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// The end of [`parse`]'s message for a key given twice in one object.
const TWICE: &str = "appears twice in the object that ends here";

/// A key given twice in one object of a JSON text: the key, and where its second and first
/// places are (1-based line and column, in bytes, of the key's opening quote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Duplicate {
    pub key: String,
    pub line: usize,
    pub column: usize,
    pub first_line: usize,
}

/// Where the first key given twice in one object of `text` is, in the text's order, for an
/// error from [`parse`] that is about one (`None` for any other error). `parse` finds the
/// repeat only when the object closes, and serde_json then knows only that place; this second
/// pass, made only for the error, names the key's own line. Keys are compared as decoded, so
/// `"A"` and `"\u0041"` are the same key.
pub(crate) fn duplicate_key(text: &str, error: &serde_json::Error) -> Option<Duplicate> {
    if !(error.is_data() && error.to_string().contains(TWICE)) {
        return None;
    }
    let bytes = text.as_bytes();
    // Each open container: for an object, its keys so far (decoded, with their offsets), and
    // whether the next string is a key.
    let mut open: Vec<Option<(std::collections::HashMap<String, usize>, bool)>> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => open.push(Some((Default::default(), true))),
            b'[' => open.push(None),
            b'}' | b']' => {
                open.pop();
            }
            b',' => {
                if let Some(Some((_, next_is_key))) = open.last_mut() {
                    *next_is_key = true;
                }
            }
            b':' => {
                if let Some(Some((_, next_is_key))) = open.last_mut() {
                    *next_is_key = false;
                }
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if let Some(Some((keys, true))) = open.last_mut() {
                    let key: String = serde_json::from_str(text.get(start..=i)?).ok()?;
                    if let Some(&first) = keys.get(&key) {
                        let (line, column) = line_column(bytes, start);
                        return Some(Duplicate {
                            key,
                            line,
                            column,
                            first_line: line_column(bytes, first).0,
                        });
                    }
                    keys.insert(key, start);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The 1-based line and column (in bytes) of byte `at` of `bytes`.
fn line_column(bytes: &[u8], at: usize) -> (usize, usize) {
    let before = &bytes[..at];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    (
        before.iter().filter(|&&b| b == b'\n').count() + 1,
        at - line_start + 1,
    )
}

/// The items and entries of the arrays and objects being parsed, innermost last; each is moved
/// into a container of its exact size when it closes.
struct Scratch {
    /// The text parsed: a key borrowed from it was written in it.
    input: std::ops::Range<*const u8>,
    items: Vec<Value>,
    entries: Vec<(String, Value)>,
}

/// serde_json's key for a number held as its text (`arbitrary_precision`).
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// The keys serde_json gives a meaning of its own (with `arbitrary_precision` and
/// `raw_value`): a template cannot use them.
pub const RESERVED_KEYS: [&str; 2] = [NUMBER_TOKEN, RAW_VALUE_TOKEN];

/// The name under which serde_json's raw values pass through serde: a struct of this name
/// with one field of this name, the JSON text, which serde_json's serializer writes verbatim.
pub(crate) const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// An object's key as the parser hands it over: written in the text, or serde_json's own
/// token for a number held as text (it hands that over as an object of one entry).
enum Key {
    Written(String),
    Number,
}

struct KeySeed<'s>(&'s std::ops::Range<*const u8>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    /// A key without escapes is borrowed from the text; serde_json's number token is borrowed
    /// from serde_json itself.
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key, E> {
        if v == NUMBER_TOKEN && !self.0.contains(&v.as_ptr()) {
            return Ok(Key::Number);
        }
        written(v.to_owned())
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
        written(v.to_owned())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Key, E> {
        written(v)
    }
}

fn written<E: serde::de::Error>(key: String) -> Result<Key, E> {
    if RESERVED_KEYS.contains(&key.as_str()) {
        return Err(E::custom(format_args!(
            "`{key}` is reserved by serde_json, the JSON library cdk-harden reads templates \
             with, and cannot be a key"
        )));
    }
    Ok(Key::Written(key))
}

struct Exact<'s>(&'s mut Scratch);

impl<'de> DeserializeSeed<'de> for Exact<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Exact<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let scratch = self.0;
        let start = scratch.items.len();
        while let Some(item) = seq.next_element_seed(Exact(&mut *scratch))? {
            scratch.items.push(item);
        }
        Ok(Value::Array(scratch.items.drain(start..).collect()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let scratch = self.0;
        let input = scratch.input.clone();
        let mut key = map.next_key_seed(KeySeed(&input))?;
        if let Some(Key::Number) = key {
            let text: String = map.next_value()?;
            return text
                .parse::<Number>()
                .map(Value::Number)
                .map_err(serde::de::Error::custom);
        }
        let start = scratch.entries.len();
        while let Some(k) = key {
            let Key::Written(k) = k else {
                // serde_json hands its number token over only as the first and only key.
                return Err(serde::de::Error::custom("a number inside an object's keys"));
            };
            let value = map.next_value_seed(Exact(&mut *scratch))?;
            scratch.entries.push((k, value));
            key = map.next_key_seed(KeySeed(&input))?;
        }
        let mut out = Map::with_capacity(scratch.entries.len() - start);
        for (k, v) in scratch.entries.drain(start..) {
            match out.entry(k) {
                serde_json::map::Entry::Vacant(e) => {
                    e.insert(v);
                }
                // serde_json would keep the last value silently, and rewriting the template
                // would drop the first; cfn-lint refuses such a template too.
                serde_json::map::Entry::Occupied(e) => {
                    return Err(serde::de::Error::custom(format_args!(
                        "key `{}` {TWICE}",
                        e.key()
                    )));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// The bytes of `value` in CDK's template format.
pub fn to_cdk_json(value: &Value) -> String {
    let mut out = Vec::with_capacity(4096);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value
        .serialize(&mut serializer)
        .expect("a serde_json::Value always serializes");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// [`to_cdk_json`] on a value given up, into a buffer of `capacity` bytes to start with: each
/// part is freed once written, so a large template's tree shrinks as its text grows instead of
/// both being whole at the end, and a good guess at the size saves copying the text as the
/// buffer grows.
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
                write_str(&key, out);
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
    match value {
        Value::String(s) => write_str(s, out),
        _ => serde_json::to_writer(out, value).expect("a serde_json::Value always serializes"),
    }
}

/// Writes `value` as `serde_json::to_writer` does (compact), with `write_str`'s strings.
/// The same bytes (a test checks on generated values).
pub fn write_compact(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(key, out);
                out.push(b':');
                write_compact(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_compact(item, out);
            }
            out.push(b']');
        }
        leaf => write_leaf(leaf, out),
    }
}

/// Writes a JSON string as serde_json does. Most strings in a template need no escape, and are
/// copied whole once a pass over their bytes finds none; serde_json looks up every byte.
fn write_str(s: &str, out: &mut Vec<u8>) {
    let plain = s.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, s).expect("a string always serializes");
    }
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
            let mut compact = Vec::new();
            write_compact(&value, &mut compact);
            prop_assert_eq!(String::from_utf8(compact).unwrap(), serde_json::to_string(&value).unwrap());
        }
    }

    /// A key given twice in one object is an error: serde_json would keep the last value, and
    /// the rewritten template would silently lose the first.
    #[test]
    fn issue_2_a_key_given_twice_is_an_error() {
        let text =
            "{\n \"Resources\": {\n  \"A\": {\"Type\": \"X\"},\n  \"A\": {\"Type\": \"Y\"}\n }\n}";
        let err = parse(text).unwrap_err();
        assert_eq!(
            (
                err.line(),
                err.to_string()
                    .starts_with("key `A` appears twice in the object that ends here")
            ),
            (5, true),
            "{err}"
        );
        assert_eq!(
            duplicate_key(text, &err),
            Some(Duplicate {
                key: "A".into(),
                line: 4,
                column: 3,
                first_line: 3
            })
        );
        let nested = r#"{"a": [{"k": 1, "j": 2, "k": 3}]}"#;
        assert!(parse(nested)
            .unwrap_err()
            .to_string()
            .contains("key `k` appears twice"));
        assert!(parse(r#"{"a": {"k": 1}, "b": {"k": 1}}"#).is_ok());
    }

    /// The second place of a repeated key is found in the text, not the end of its object:
    /// keys compare decoded, strings that look like keys inside values and arrays are not
    /// keys, and the same key in two objects is no repeat.
    #[test]
    fn issue_2_a_key_given_twice_is_found_where_it_is_given_again() {
        let at = |text: &str| {
            let err = parse(text).unwrap_err();
            duplicate_key(text, &err).map(|d| (d.key, d.line, d.column, d.first_line))
        };
        let text = "{\n \"a\": {\"k\": \"k\", \"s\": [\"k\", {\"k\": 1}]},\n \"\\u0061\": 2\n}";
        assert_eq!(at(text), Some(("a".into(), 3, 2, 2)));
        let escaped = "{\"x\\\"y\": 1, \"x\\\"y\": 2}";
        assert_eq!(at(escaped), Some(("x\"y".into(), 1, 13, 1)));
        // Any other error is not about a repeated key.
        let other = "{\"a\": 1, \"a\": }";
        let err = parse(other).unwrap_err();
        assert_eq!(duplicate_key(other, &err), None);
    }

    proptest! {
        #[test]
        fn issue_8_parse_gives_serde_json_s_value(value in json_value()) {
            let text = to_cdk_json(&value);
            prop_assert_eq!(parse(&text).unwrap(), value);
        }
    }

    #[test]
    fn issue_8_parse_keeps_numbers_and_errors_as_serde_json_does() {
        for text in [
            r#"{"n": [1e+21, 0.1, 2.50, -0, 1E5, 12345678901234567890123, -3]}"#,
            "[]",
            "{}",
            r#""s""#,
            "null",
        ] {
            let ours = parse(text).unwrap();
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(to_cdk_json(&ours), to_cdk_json(&theirs), "{text}");
        }
        for bad in ["{\n \"a\": tru\n}", "[1,]", "{} x", "", "{\"a\" 1}"] {
            let ours = parse(bad).unwrap_err();
            let theirs = serde_json::from_str::<Value>(bad).unwrap_err();
            assert_eq!(ours.to_string(), theirs.to_string(), "{bad:?}");
        }
    }

    /// serde_json reads its reserved keys as a number or a raw value, which would change a
    /// template where no transform touched it: they are errors at their place, however they
    /// are spelled; the same text as a value, or in a longer key, is an ordinary string.
    #[test]
    fn a_key_serde_json_reserves_is_an_error_at_its_place() {
        for (text, line, column) in [
            (
                "{\n \"A\": {\"$serde_json::private::Number\": \"1\"}\n}",
                2,
                37,
            ),
            ("{\"$serde_json::private::RawValue\": \"nope\"}", 1, 33),
            ("[{\"\\u0024serde_json::private::Number\": \"2\"}]", 1, 37),
        ] {
            let err = parse(text).unwrap_err();
            assert!(
                err.to_string().contains("is reserved by serde_json"),
                "{err}"
            );
            assert_eq!((err.line(), err.column()), (line, column), "{text}");
        }
        let fine =
            r#"{"$serde_json::private::Numbers": "$serde_json::private::Number", "n": [1.50]}"#;
        let value = parse(fine).unwrap();
        assert_eq!(value, serde_json::from_str::<Value>(fine).unwrap());
        assert_eq!(value["n"][0].to_string(), "1.50");
    }

    #[test]
    fn issue_8_every_example_template_parses_as_serde_json_does_and_writes_the_same_bytes_given_up()
    {
        let files = crate::example_files(".template.json");
        assert!(files.len() >= 10, "{}", files.len());
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let value = parse(&text).unwrap();
            assert_eq!(value, serde_json::from_str::<Value>(&text).unwrap());
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
