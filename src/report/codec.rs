//! The spool's form of a review: every field of a [`StackReport`] but its diff text, in a
//! compact binary layout that [`decode`] reads back exactly.
//!
//! At 1,000 Stages nearly every review goes through the spool (see [`super::store`]), and as
//! JSON its writing (every string escaped) and reading (every string scanned and unescaped)
//! were a tenth of the run. Here each string is its length and its bytes, each list its length
//! and its items, each number a LEB128 varint, each choice one byte: written by copying, read
//! by slicing. The layout is private to one process (the spool is an anonymous temporary file),
//! so it has no version and no compatibility to keep; a test round-trips a review that sets
//! every field.
//!
//! This module only converts; it does no I/O and knows nothing of budgets.

use std::collections::BTreeMap;

use super::iam::Permission;
use super::StackReport;
use crate::transform::{Applied, JsonText, Note, NoteKind, Op};

/// Appends the fields of `report`, all but its diff's text (which the spool writes after
/// them, as is), to `out`.
pub(super) fn encode(report: &StackReport, out: &mut Vec<u8>) {
    let w = &mut Writer(out);
    let StackReport {
        name,
        display_name,
        template,
        environment,
        stage,
        nested,
        changes,
        notes,
        added,
        permissions,
        construct_paths,
        rewritten,
        diff,
        lines,
    } = report;
    w.str(name);
    w.str(display_name);
    w.str(template);
    w.str(environment);
    w.opt_str(stage.as_deref());
    w.bool(*nested);
    w.bool(*rewritten);
    w.num(diff.added);
    w.num(diff.removed);
    w.num(changes.len());
    for c in changes {
        let Applied {
            transform,
            logical_id,
            construct_path,
            resource_type,
            pointer,
            op,
            old,
            new,
            reason,
            enforced,
            warnings,
        } = c;
        w.str(transform);
        w.str(logical_id);
        w.opt_str(construct_path.as_deref());
        w.opt_str(resource_type.as_deref());
        w.str(pointer);
        w.byte(op_code(*op));
        w.opt_str(old.as_ref().map(JsonText::as_str));
        w.str(new.as_str());
        w.str(reason);
        w.bool(*enforced);
        w.strs(warnings);
    }
    w.num(notes.len());
    for n in notes {
        let Note {
            transform,
            logical_id,
            kind,
            message,
        } = n;
        w.str(transform);
        w.opt_str(logical_id.as_deref());
        w.byte(kind_code(*kind));
        w.str(message);
    }
    w.strs(added);
    w.num(permissions.len());
    for p in permissions {
        let Permission {
            logical_id,
            resource_type,
            document,
            effect,
            actions,
            resources,
            principals,
            condition,
            statement,
        } = p;
        w.str(logical_id);
        w.str(resource_type);
        w.str(document);
        w.str(effect);
        w.strs(actions);
        w.strs(resources);
        w.strs(principals);
        w.opt_str(condition.as_deref());
        w.str(statement.as_str());
    }
    w.num(construct_paths.len());
    for (id, path) in construct_paths {
        w.str(id);
        w.str(path);
    }
    w.num(lines.len());
    for (pointer, [before, after]) in lines {
        w.str(pointer);
        w.opt_num(*before);
        w.opt_num(*after);
    }
}

/// The review [`encode`] wrote as `bytes`, with `diff_text` the text of its diff.
///
/// # Panics
/// If `bytes` are not what [`encode`] wrote: the spool is the process's own file.
pub(super) fn decode(bytes: &[u8], diff_text: String) -> StackReport {
    let r = &mut Reader { bytes, at: 0 };
    let name = r.string();
    let display_name = r.string();
    let template = r.string();
    let environment = r.string();
    let stage = r.opt_string();
    let nested = r.bool();
    let rewritten = r.bool();
    let diff = super::diff::Unified {
        text: diff_text,
        added: r.num(),
        removed: r.num(),
    };
    let changes = r.list(|r| Applied {
        transform: r.string(),
        logical_id: r.string(),
        construct_path: r.opt_string(),
        resource_type: r.opt_string(),
        pointer: r.string(),
        op: op_of(r.byte()),
        old: r.opt_str().map(JsonText::from_written),
        new: JsonText::from_written(r.str()),
        reason: r.string(),
        enforced: r.bool(),
        warnings: r.strings(),
    });
    let notes = r.list(|r| Note {
        transform: r.string(),
        logical_id: r.opt_string(),
        kind: kind_of(r.byte()),
        message: r.string(),
    });
    let added = r.strings();
    let permissions = r.list(|r| Permission {
        logical_id: r.string(),
        resource_type: r.string(),
        document: r.string(),
        effect: r.string(),
        actions: r.strings(),
        resources: r.strings(),
        principals: r.strings(),
        condition: r.opt_string(),
        statement: JsonText::from_written(r.str()),
    });
    let construct_paths: BTreeMap<String, String> =
        (0..r.num()).map(|_| (r.string(), r.string())).collect();
    let lines = (0..r.num())
        .map(|_| (r.string(), [r.opt_num(), r.opt_num()]))
        .collect();
    assert_eq!(r.at, bytes.len(), "a spooled review is read to its end");
    StackReport {
        name,
        display_name,
        template,
        environment,
        stage,
        nested,
        changes,
        notes,
        added,
        permissions,
        construct_paths,
        rewritten,
        diff,
        lines,
    }
}

fn op_code(op: Op) -> u8 {
    match op {
        Op::SetIfAbsent => 0,
        Op::Enforce => 1,
        Op::Merge => 2,
        Op::AppendUnique => 3,
        Op::AddResource => 4,
        Op::Upgrade => 5,
    }
}

fn op_of(code: u8) -> Op {
    match code {
        0 => Op::SetIfAbsent,
        1 => Op::Enforce,
        2 => Op::Merge,
        3 => Op::AppendUnique,
        4 => Op::AddResource,
        5 => Op::Upgrade,
        _ => panic!("a spooled change has operation code {code}"),
    }
}

fn kind_code(kind: NoteKind) -> u8 {
    match kind {
        NoteKind::Skipped => 0,
        NoteKind::OptOut => 1,
        NoteKind::LeftAlone => 2,
        NoteKind::ActionRequired => 3,
        NoteKind::Refused => 4,
    }
}

fn kind_of(code: u8) -> NoteKind {
    match code {
        0 => NoteKind::Skipped,
        1 => NoteKind::OptOut,
        2 => NoteKind::LeftAlone,
        3 => NoteKind::ActionRequired,
        4 => NoteKind::Refused,
        _ => panic!("a spooled note has kind code {code}"),
    }
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn byte(&mut self, b: u8) {
        self.0.push(b);
    }

    fn bool(&mut self, b: bool) {
        self.byte(u8::from(b));
    }

    /// LEB128: seven bits a byte, low bits first, the high bit set on all but the last.
    fn num(&mut self, mut n: usize) {
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }

    fn str(&mut self, s: &str) {
        self.num(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.byte(0),
            Some(s) => {
                self.byte(1);
                self.str(s);
            }
        }
    }

    fn opt_num(&mut self, n: Option<usize>) {
        match n {
            None => self.byte(0),
            Some(n) => {
                self.byte(1);
                self.num(n);
            }
        }
    }

    fn strs(&mut self, list: &[String]) {
        self.num(list.len());
        list.iter().for_each(|s| self.str(s));
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> u8 {
        let b = self.bytes[self.at];
        self.at += 1;
        b
    }

    fn bool(&mut self) -> bool {
        self.byte() == 1
    }

    fn num(&mut self) -> usize {
        let (mut n, mut shift) = (0usize, 0);
        loop {
            let b = self.byte();
            n |= usize::from(b & 0x7f) << shift;
            if b < 0x80 {
                return n;
            }
            shift += 7;
        }
    }

    fn str(&mut self) -> &'a str {
        let len = self.num();
        let bytes = &self.bytes[self.at..self.at + len];
        self.at += len;
        std::str::from_utf8(bytes).expect("a spooled string is UTF-8")
    }

    fn string(&mut self) -> String {
        self.str().to_string()
    }

    fn opt_str(&mut self) -> Option<&'a str> {
        (self.byte() == 1).then(|| self.str())
    }

    fn opt_num(&mut self) -> Option<usize> {
        (self.byte() == 1).then(|| self.num())
    }

    fn opt_string(&mut self) -> Option<String> {
        self.opt_str().map(str::to_string)
    }

    fn strings(&mut self) -> Vec<String> {
        self.list(Reader::string)
    }

    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let n = self.num();
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(item(self));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A review that sets every field, each to something its neighbours do not hold, comes
    /// back the same (compared through `Debug`, which shows every field).
    #[test]
    fn issue_8_a_review_round_trips_through_the_spool_form() {
        let applied = |old: Option<serde_json::Value>, op: Op| Applied {
            transform: "kms".into(),
            logical_id: "Bucket".into(),
            construct_path: Some("App/Bucket/Resource".into()),
            resource_type: None,
            pointer: "/Resources/Bucket/Properties/X".into(),
            op,
            old: old.as_ref().map(JsonText::of),
            new: JsonText::of(&json!({"a": [1, "b", "é\n\"q\""]})),
            reason: "r".into(),
            enforced: true,
            warnings: vec!["w1".into(), "w2".into()],
        };
        let kinds = [
            NoteKind::Skipped,
            NoteKind::OptOut,
            NoteKind::LeftAlone,
            NoteKind::ActionRequired,
            NoteKind::Refused,
        ];
        let olds = [None, Some(serde_json::Value::Null), Some(json!("v"))];
        let report = StackReport {
            name: "App/Stage/Stack".into(),
            display_name: "Stage/Stack".into(),
            template: "assembly-App-Stage/Stack.template.json".into(),
            environment: "111111111111/eu-west-1".into(),
            stage: Some("App/Stage".into()),
            nested: true,
            changes: Op::ALL
                .iter()
                .zip(olds.iter().cycle())
                .map(|(op, old)| applied(old.clone(), *op))
                .collect(),
            notes: kinds
                .iter()
                .enumerate()
                .map(|(i, kind)| Note {
                    transform: format!("t{i}"),
                    logical_id: (i % 2 == 0).then(|| format!("L{i}")),
                    kind: *kind,
                    message: format!("m{i} → `x`"),
                })
                .collect(),
            added: vec!["CdkHardenKey".into(), "CdkHardenKeyAlias".into()],
            permissions: vec![Permission {
                logical_id: "Policy".into(),
                resource_type: "AWS::IAM::Policy".into(),
                document: "/Properties/PolicyDocument".into(),
                effect: "Allow".into(),
                actions: vec!["kms:Decrypt".into(), "NOT s3:*".into()],
                resources: vec!["${Key.Arn}".into()],
                principals: vec!["role ${Role}".into()],
                condition: Some("Bool aws:SecureTransport=false".into()),
                statement: JsonText::of(&json!({"Effect": "Allow", "Action": "kms:Decrypt"})),
            }],
            construct_paths: [("A".to_string(), "App/A".to_string())].into(),
            rewritten: true,
            diff: super::super::diff::Unified {
                text: "--- a/x\n+++ b/x\n".into(),
                added: 7,
                removed: 300,
            },
            lines: [
                ("/Resources/A".to_string(), [Some(3), None]),
                ("/Resources/B".to_string(), [None, Some(1 << 40)]),
            ]
            .into(),
        };
        let mut bytes = Vec::new();
        encode(&report, &mut bytes);
        let back = decode(&bytes, report.diff.text.clone());
        assert_eq!(format!("{back:?}"), format!("{report:?}"));
        assert_eq!((back.diff.added, back.diff.removed), (7, 300));
        // No value before and an explicit `null` before stay apart.
        assert_eq!(back.changes[0].old, None);
        assert_eq!(
            back.changes[1].old.as_ref().map(JsonText::as_str),
            Some("null")
        );
    }

    #[test]
    fn numbers_take_seven_bits_a_byte() {
        for n in [0, 1, 127, 128, 300, 16_383, 16_384, usize::MAX] {
            let mut out = Vec::new();
            Writer(&mut out).num(n);
            assert_eq!(
                out.len(),
                (usize::BITS - n.leading_zeros()).div_ceil(7).max(1) as usize
            );
            assert_eq!(Reader { bytes: &out, at: 0 }.num(), n);
        }
    }
}
