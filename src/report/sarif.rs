//! SARIF 2.1.0, for GitHub code scanning and other SARIF consumers.
//!
//! What goes in: what needs a person. Every finding (level `error` or `warning`), and the
//! notes a person must act on: `action-required` (for example a role outside the template that
//! needs a permission) and `change-refused` (a change not applied because CloudFormation would
//! replace a stateful resource), both at level `warning`. Pending changes are not results:
//! `apply` makes them, and `check` is the gate for them; an alert per change would bury the
//! findings.
//!
//! Locations: `artifactLocation.uri` is the template path relative to the assembly root,
//! prefixed with [`RenderOptions::uri_prefix`] (the CLI passes the assembly directory as given
//! when it is relative, e.g. `cdk.out`), with `uriBaseId` `%SRCROOT%`, so a file produced from
//! the repository root resolves against it. `region.startLine` is the line of the offending
//! value (or of its resource) in the template: the hardened template after `apply`, the
//! template on disk for `diff` and `check` ([`RenderOptions::applied`]).

use serde_json::{json, Map, Value};

use std::collections::BTreeMap;

use super::{indent, RenderOptions, Report};
use crate::findings::{Severity, CHECKS};
use crate::transform::change::{pointer_escape, pointer_tokens};
use crate::transform::NoteKind;

/// The SARIF schema this output follows.
pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Rule ids for the notes that are results.
pub const ACTION_REQUIRED: &str = "action-required";
pub const CHANGE_REFUSED: &str = "change-refused";

/// Renders the findings and the notes that need a person as a SARIF 2.1.0 log.
pub fn render(report: &Report, options: &RenderOptions) -> String {
    let mut rules: Vec<Value> = CHECKS
        .iter()
        .map(|c| {
            let mut rule = json!({
                "id": c.rule(),
                "name": camel(c.rule()),
                "shortDescription": { "text": c.description() },
                "fullDescription": { "text": c.description() },
                "help": { "text": format!("{} Each result says what to do instead.", c.description()) },
                "defaultConfiguration": { "level": "error" },
                "properties": { "tags": ["security"] },
            });
            if c.rule() == "plaintext-secret" {
                rule["properties"]["security-severity"] = json!("8.0");
            }
            rule
        })
        .collect();
    rules.push(json!({
        "id": ACTION_REQUIRED,
        "name": "ActionRequired",
        "shortDescription": { "text": "Hardening needs a change outside the template" },
        "fullDescription": { "text": "A transform hardened the template, but something outside it must change too, for example a role in another stack or account that needs a permission, or a central key policy that must allow a service." },
        "help": { "text": "Make the change the message describes, outside the template; cdk-harden cannot make it." },
        "defaultConfiguration": { "level": "warning" },
    }));
    rules.push(json!({
        "id": CHANGE_REFUSED,
        "name": "ChangeRefused",
        "shortDescription": { "text": "A hardening change was refused because it would replace a stateful resource" },
        "fullDescription": { "text": "Changing a create-only property makes CloudFormation replace the resource; for a stateful resource that loses its data, so cdk-harden did not apply the change." },
        "help": { "text": "Migrate the data and apply the change deliberately (list the transform under allowReplacement in cdk-harden.json), or opt the resource out with a reason." },
        "defaultConfiguration": { "level": "warning" },
    }));
    let rule_index = |id: &str| rules.iter().position(|r| r["id"] == id);

    let mut results = Vec::new();
    // The line numbers of the templates with findings (their reviews are read once each).
    let mut lines: BTreeMap<&str, StackLines> = BTreeMap::new();
    for (i, head) in report.heads().iter().enumerate() {
        if report.findings.iter().any(|f| f.template == head.template) {
            lines.insert(&head.template, report.stack(i).lines.clone());
        }
    }
    for f in &report.findings {
        let stack = lines.get(f.template.as_str());
        let pointer = f.pointer.clone().or_else(|| {
            f.logical_id
                .as_deref()
                .map(|l| format!("/Resources/{}", pointer_escape(l)))
        });
        let line = stack.and_then(|s| line_of(s, pointer.as_deref()?, options));
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut result = json!({
            "ruleId": f.rule,
            "level": level,
            "message": { "text": format!("{} {}", f.message, f.help) },
            "locations": [location(options, &f.template, line, &f.stack, f.logical_id.as_deref())],
        });
        if let Some(i) = rule_index(&f.rule) {
            result["ruleIndex"] = json!(i);
        }
        results.push(result);
    }
    let with_notes = (0..report.templates()).filter(|&i| report.heads()[i].note_count() > 0);
    for s in with_notes.map(|i| report.stack(i)) {
        for n in &s.notes {
            let rule = match n.kind {
                NoteKind::ActionRequired => ACTION_REQUIRED,
                NoteKind::Refused => CHANGE_REFUSED,
                _ => continue,
            };
            let line = n.logical_id.as_deref().and_then(|l| {
                line_of(
                    &s.lines,
                    &format!("/Resources/{}", pointer_escape(l)),
                    options,
                )
            });
            results.push(json!({
                "ruleId": rule,
                "ruleIndex": rule_index(rule),
                "level": "warning",
                "message": { "text": format!("{} (transform `{}`)", n.message, n.transform) },
                "locations": [location(options, &s.template, line, &s.display_name, n.logical_id.as_deref())],
            }));
        }
    }

    let log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "cdk-harden",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    });
    let mut text = serde_json::to_string_pretty(&log).expect("SARIF serializes");
    text.push('\n');
    text
}

/// A template's line numbers: pointer → line as read, and as written.
type StackLines = BTreeMap<String, [Option<usize>; 2]>;

/// The line of `pointer` in the template as written (`apply`) or as read (`diff`, `check`).
fn line_of(lines: &StackLines, pointer: &str, options: &RenderOptions) -> Option<usize> {
    lines.get(pointer)?[usize::from(options.applied)]
}

fn location(
    options: &RenderOptions,
    template: &str,
    line: Option<usize>,
    stack: &str,
    logical_id: Option<&str>,
) -> Value {
    let uri = match options
        .uri_prefix
        .as_deref()
        .map(|p| p.trim_end_matches('/'))
    {
        Some(p) if !p.is_empty() && p != "." => format!("{p}/{template}"),
        _ => template.to_string(),
    };
    let mut physical = Map::new();
    physical.insert(
        "artifactLocation".into(),
        json!({ "uri": percent_encode(&uri), "uriBaseId": "%SRCROOT%" }),
    );
    if let Some(line) = line {
        physical.insert("region".into(), json!({ "startLine": line }));
    }
    let mut loc = json!({ "physicalLocation": Value::Object(physical) });
    if let Some(id) = logical_id {
        loc["logicalLocations"] = json!([{
            "name": id,
            "fullyQualifiedName": format!("{stack}/{id}"),
            "kind": "resource",
        }]);
    }
    loc
}

/// `plaintext-secret` → `PlaintextSecret`.
fn camel(id: &str) -> String {
    id.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Percent-encodes what a URI path may not hold (spaces, `%`, `#`, `?`, non-ASCII).
fn percent_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'/'
            | b'+'
            | b'@'
            | b':'
            | b'='
            | b',' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The 1-based line where the value at `pointer` starts in `text`, a template in CDK's format
/// (one-space indent, as `JSON.stringify(t, undefined, 1)` writes it); `None` if the pointer
/// is absent or the text is formatted differently.
pub fn locate(text: &str, pointer: &str) -> Option<usize> {
    Locator::new(text).locate(pointer)
}

/// Finds pointers in a template's text in CDK's format without parsing it: the members of
/// its sections (each resource, parameter, output…) are indexed in one pass, and a pointer
/// below one is followed through that member's lines only, so many look-ups in a large
/// template stay linear.
pub struct Locator<'a> {
    text: &'a str,
    /// Section key (as written, quoted) → its line and the byte where the line starts.
    sections: foldhash::HashMap<&'a str, (usize, usize)>,
    /// Section key and member key (as written, quoted) → the member's line and byte.
    members: foldhash::HashMap<(&'a str, &'a str), (usize, usize)>,
}

impl<'a> Locator<'a> {
    pub fn new(text: &'a str) -> Locator<'a> {
        Locator::of(&super::outline::Outline::new(text))
    }

    /// The locator of an outlined text: its sections and their members are the outline's
    /// segments whose first lines hold a key.
    pub(crate) fn of(outline: &super::outline::Outline<'a>) -> Locator<'a> {
        let text = outline.text;
        let mut sections = foldhash::HashMap::default();
        let mut members = foldhash::HashMap::default();
        // CDK's format: `{` alone, then the sections one space in.
        let cdk = text.starts_with("{\n \"") || text.starts_with("{\r\n \"");
        if cdk {
            let mut section = None;
            for s in &outline.segments {
                let at = (s.start + 1, outline.byte_of(s.start));
                match s.key {
                    (line, None) => {
                        if let Some(key) = quoted_key(line) {
                            sections.insert(key, at);
                            section = Some(key);
                        }
                    }
                    (_, Some(line)) => {
                        if let (Some(key), Some(section)) = (quoted_key(line), section) {
                            members.insert((section, key), at);
                        }
                    }
                }
            }
        }
        Locator {
            text,
            sections,
            members,
        }
    }

    /// The 1-based line where the value at `pointer` starts.
    pub fn locate(&self, pointer: &str) -> Option<usize> {
        let tokens = pointer_tokens(pointer);
        let quoted: Vec<String> = tokens
            .iter()
            .map(|t| Value::from(t.as_str()).to_string())
            .collect();
        let (mut at, rest) = match quoted.as_slice() {
            [] => return None,
            [section] => (*self.sections.get(section.as_str())?, &tokens[1..]),
            [section, member, ..] => (
                *self.members.get(&(section.as_str(), member.as_str()))?,
                &tokens[2..],
            ),
        };
        for token in rest {
            at = self.child(at, token)?;
        }
        Some(at.0)
    }

    /// The line and byte of member or item `token` of the object or array that opens on the
    /// line at `(line, byte)`.
    fn child(&self, (line, byte): (usize, usize), token: &str) -> Option<(usize, usize)> {
        let mut lines = super::split_lines(&self.text[byte..]);
        let first = lines.next()?;
        let opening = first.trim_end_matches('\r');
        let depth = indent(opening);
        let want_key = if opening.ends_with('{') {
            Some(Value::from(token).to_string())
        } else if opening.ends_with('[') {
            None
        } else {
            return None;
        };
        let wanted_item: Option<usize> = match &want_key {
            Some(_) => None,
            None => Some(token.parse().ok()?),
        };
        let mut item = 0;
        let mut at = byte + first.len() + 1;
        for (n, l) in lines.enumerate() {
            let start = at;
            at += l.len() + 1;
            let d = indent(l);
            if d <= depth {
                return None;
            }
            if d != depth + 1 || l[d..].starts_with(['}', ']']) {
                continue;
            }
            match (&want_key, wanted_item) {
                (Some(key), _) if quoted_key(l) == Some(key.as_str()) => {
                    return Some((line + 1 + n, start))
                }
                (None, Some(i)) if item == i => return Some((line + 1 + n, start)),
                _ => item += 1,
            }
        }
        None
    }
}

/// The key a line in CDK's format starts with, quoted as written (`"Type"` for ` "Type": …`).
fn quoted_key(line: &str) -> Option<&str> {
    let rest = &line[indent(line)..];
    let bytes = rest.as_bytes();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => {
                return rest[i + 1..].starts_with(": ").then(|| &rest[..=i]);
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assembly::format::to_cdk_json;

    /// A text's lines, indexed once.
    struct Lines<'a> {
        text: &'a str,
        starts: Vec<usize>,
    }

    impl<'a> Lines<'a> {
        fn new(text: &'a str) -> Lines<'a> {
            let starts = std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .filter(|&i| i < text.len())
                .collect();
            Lines { text, starts }
        }

        /// The 1-based line `n`, without its line break.
        fn get(&self, n: usize) -> Option<&'a str> {
            let start = *self.starts.get(n.checked_sub(1)?)?;
            let end = self.starts.get(n).map_or(self.text.len(), |&e| e - 1);
            let line = &self.text[start..end];
            let line = line.strip_suffix('\n').unwrap_or(line);
            Some(line.strip_suffix('\r').unwrap_or(line))
        }
    }

    /// The reference the locator is checked against: the line of `pointer` computed from the
    /// parsed tree, then checked against the text.
    fn locate_in(value: &Value, lines: &Lines, pointer: &str) -> Option<usize> {
        let tokens = pointer_tokens(pointer);
        let mut node = value;
        let mut line = 1;
        let mut depth = 0;
        let mut key: Option<&str> = None;
        for token in &tokens {
            let (before, child): (Vec<&Value>, &Value) = match node {
                Value::Object(map) => {
                    let mut before = Vec::new();
                    let mut found = None;
                    for (k, v) in map {
                        if k == token {
                            found = Some((k.as_str(), v));
                            break;
                        }
                        before.push(v);
                    }
                    let (k, v) = found?;
                    key = Some(k);
                    (before, v)
                }
                Value::Array(items) => {
                    let i: usize = token.parse().ok()?;
                    key = None;
                    (items.iter().take(i).collect(), items.get(i)?)
                }
                _ => return None,
            };
            line += 1 + before.iter().map(|v| lines_of(v)).sum::<usize>();
            depth += 1;
            node = child;
        }
        let at = lines.get(line)?;
        let indent = " ".repeat(depth);
        let ok = match key {
            Some(k) => at.starts_with(&format!("{indent}{}:", Value::String(k.to_string()))),
            None => at.starts_with(&indent) && !at[depth..].starts_with(' '),
        };
        ok.then_some(line)
    }

    /// How many lines a value takes in CDK's format.
    fn lines_of(value: &Value) -> usize {
        match value {
            Value::Object(m) if !m.is_empty() => 2 + m.values().map(lines_of).sum::<usize>(),
            Value::Array(a) if !a.is_empty() => 2 + a.iter().map(lines_of).sum::<usize>(),
            _ => 1,
        }
    }

    /// Every pointer in every example template: the text locator finds the line the tree
    /// says, and nothing for pointers that are not there.
    #[test]
    fn issue_8_the_text_locator_agrees_with_the_tree_on_the_examples() {
        fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
            let children: Vec<(String, &Value)> = match v {
                Value::Object(m) => m
                    .iter()
                    .map(|(k, v)| (pointer_escape(k).into_owned(), v))
                    .collect(),
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i.to_string(), v))
                    .collect(),
                _ => Vec::new(),
            };
            for (token, child) in children {
                let p = format!("{at}/{token}");
                out.push(p.clone());
                pointers(child, p, out);
            }
        }
        let files = crate::example_files(".template.json");
        let mut checked = 0;
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let tree: Value = serde_json::from_str(&text).unwrap();
            let (locator, lines) = (Locator::new(&text), Lines::new(&text));
            let mut all = Vec::new();
            pointers(&tree, String::new(), &mut all);
            for p in &all {
                let expected = locate_in(&tree, &lines, p);
                assert!(expected.is_some(), "{}: {p}", file.display());
                assert_eq!(locator.locate(p), expected, "{}: {p}", file.display());
                checked += 1;
            }
            for absent in [
                "/Resources/Absent",
                "/Nope",
                "/Resources/Absent/Type",
                "/Resources/0",
            ] {
                assert_eq!(locator.locate(absent), None, "{absent}");
            }
            assert_eq!(Locator::new(&tree.to_string()).locate("/Resources"), None);
        }
        assert!(
            files.len() > 10 && checked > 4_000,
            "{} files, {checked} pointers",
            files.len()
        );
    }

    #[test]
    fn locate_finds_keys_and_array_items() {
        let t: Value = serde_json::from_str(
            r#"{"Resources": {"A": {"Type": "X", "Properties": {"L": [1, {"Name": "N", "Value": "v"}], "E": {}}}, "B/x": {"Type": "Y"}}}"#,
        )
        .unwrap();
        let text = to_cdk_json(&t);
        let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert_eq!(locate(&text, "/Resources/A"), Some(line_of("\"A\":")));
        assert_eq!(
            locate(&text, "/Resources/A/Properties/E"),
            Some(line_of("\"E\":"))
        );
        assert_eq!(
            locate(&text, "/Resources/A/Properties/L/1"),
            Some(line_of("\"Name\"") - 1)
        );
        assert_eq!(
            locate(&text, "/Resources/A/Properties/L/1/Value"),
            Some(line_of("\"Value\""))
        );
        assert_eq!(locate(&text, "/Resources/B~1x"), Some(line_of("\"B/x\"")));
        assert_eq!(locate(&text, "/Resources/C"), None);
        // Formatted differently: no guess.
        assert_eq!(locate(&t.to_string(), "/Resources/A"), None);
    }

    #[test]
    fn uris_are_encoded() {
        assert_eq!(percent_encode("cdk.out/a b#.json"), "cdk.out/a%20b%23.json");
        assert_eq!(camel("plaintext-secret"), "PlaintextSecret");
    }
}
