//! Unified diffs of templates, with stable context.
//!
//! Templates are diffed line by line in CDK's own format (one-space indent), so the diff shows
//! exactly the bytes `apply` writes. Headers name the template by its path relative to the
//! assembly root, `a/` before and `b/` after, as git does.
//!
//! The diff follows the template's structure: both texts are cut into segments at the keys of
//! the top two levels (a section such as `Resources`, or one resource; see `report::outline`,
//! which the review's locators share), segments are matched by
//! key, and only the segments whose bytes differ are diffed line by line. A hardened template
//! differs from its input in a few lines of many resources, so this stays linear where a diff
//! of the whole text (Myers, or patience between unique lines) spends most of its time on
//! lines that did not change. A changed segment longer than [`DEEP`] lines (a pipeline with
//! hundreds of stages is one resource of 100,000 lines) is cut again at its children, object
//! members matched by their key line and array elements in order, down to segments short
//! enough to diff line by line; every cut keeps the diff exact, so the cost stays linear in
//! the size of the template. Text that is not in CDK's format is diffed as a whole.

use std::fmt::Write;

use super::indent;
use super::outline::{Key, Outline, Segment};

use similar::{Algorithm, DiffOp, DiffTag};

/// Lines of context around each change.
pub const CONTEXT: usize = 3;

/// A changed segment with more lines than this on both sides is cut at its children rather
/// than diffed line by line.
pub const DEEP: usize = 1024;

/// A unified diff of one template, and its size.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unified {
    /// The diff text, ending with a newline; empty when nothing changed.
    pub text: String,
    pub added: usize,
    pub removed: usize,
}

/// The unified diff from `before` to `after` of the template at `path`.
pub fn unified(path: &str, before: &str, after: &str) -> Unified {
    if before == after {
        return Unified::default();
    }
    unified_outlined(path, &Outline::new(before), &Outline::new(after))
}

/// [`unified`] of two outlined texts that differ.
pub(crate) fn unified_outlined(path: &str, old: &Outline, new: &Outline) -> Unified {
    unified_cutting_at(path, old, new, DEEP)
}

/// [`unified_outlined`], cutting segments longer than `deep` lines at their children.
fn unified_cutting_at(path: &str, old: &Outline, new: &Outline, deep: usize) -> Unified {
    let ops = line_ops(old, new, deep);
    let (mut added, mut removed) = (0, 0);
    for op in &ops {
        let (_, o, n) = op.as_tag_tuple();
        match op {
            DiffOp::Equal { .. } => {}
            _ => {
                removed += o.len();
                added += n.len();
            }
        }
    }
    let groups = similar::group_diff_ops(ops, CONTEXT);
    // The text's size, give or take the markers of unterminated lines, so it is written into
    // one buffer instead of being copied as it grows.
    let size: usize = groups
        .iter()
        .flatten()
        .map(|op| {
            let (_, o, n) = op.as_tag_tuple();
            let lines = |text: &Outline, r: std::ops::Range<usize>| {
                text.lines[r].iter().map(|l| l.len() + 2).sum::<usize>()
            };
            match op {
                DiffOp::Equal { .. } => lines(old, o),
                _ => lines(old, o) + lines(new, n),
            }
        })
        .sum::<usize>()
        + 48 * groups.len();
    let mut text = String::with_capacity(2 * path.len() + 16 + size);
    let _ = write!(text, "--- a/{path}\n+++ b/{path}\n");
    for group in &groups {
        write_hunk(&mut text, group, old, new);
    }
    Unified {
        text,
        added,
        removed,
    }
}

/// The line operations that turn `old` into `new`, segment by segment.
fn line_ops(old: &Outline, new: &Outline, deep: usize) -> Vec<DiffOp> {
    let (old_segments, new_segments) = (&old.segments, &new.segments);
    if old_segments.len() < 3 || new_segments.len() < 3 {
        return similar::capture_diff_slices(Algorithm::Patience, &old.lines, &new.lines);
    }
    let mut ops = Vec::new();
    match_segments(old, new, old_segments, new_segments, deep, &mut ops);
    ops
}

/// Appends the operations that turn the lines of `old_segments` into those of `new_segments`:
/// the segments are matched by key; a matched pair is diffed on its own (see [`diff_deep`]),
/// and each run of unmatched segments is diffed line by line as one range.
fn match_segments(
    old: &Outline,
    new: &Outline,
    old_segments: &[Segment],
    new_segments: &[Segment],
    deep: usize,
    ops: &mut Vec<DiffOp>,
) {
    let old_keys: Vec<Key> = old_segments.iter().map(|s| s.key).collect();
    let new_keys: Vec<Key> = new_segments.iter().map(|s| s.key).collect();
    let end =
        |segments: &[Segment], text: &Outline| segments.last().map_or(text.lines.len(), |l| l.end);
    let (old_end, new_end) = (end(old_segments, old), end(new_segments, new));
    for op in similar::capture_diff_slices(Algorithm::Myers, &old_keys, &new_keys) {
        let (_, o, n) = op.as_tag_tuple();
        if let DiffOp::Equal { .. } = op {
            // Same keys in the same order: compare each pair of segments.
            for (a, b) in old_segments[o].iter().zip(&new_segments[n]) {
                diff_deep(old, new, a.start..a.end, b.start..b.end, deep, ops);
            }
        } else {
            // The lines of segments `r`; where there are none, the empty range where they would be.
            let span = |s: &[Segment], end: usize, r: std::ops::Range<usize>| {
                if r.is_empty() {
                    let at = s.get(r.start).map_or(end, |s| s.start);
                    at..at
                } else {
                    s[r.start].start..s[r.end - 1].end
                }
            };
            let o_range = span(old_segments, old_end, o);
            let n_range = span(new_segments, new_end, n);
            diff_range(old, new, o_range, n_range, ops);
        }
    }
}

/// Appends the operations for one matched pair of segments: line by line, unless both are
/// longer than `deep` lines and open a container in CDK's format, in which case the
/// container's children are matched and diffed the same way.
fn diff_deep(
    old: &Outline,
    new: &Outline,
    o: std::ops::Range<usize>,
    n: std::ops::Range<usize>,
    deep: usize,
    ops: &mut Vec<DiffOp>,
) {
    let large = o.len() > deep && n.len() > deep && !same_lines(old, new, &o, &n);
    let cut = large
        .then(|| {
            Some((
                children(&old.lines, o.clone())?,
                children(&new.lines, n.clone())?,
            ))
        })
        .flatten();
    match cut {
        // The opening lines are the segments' keys: equal.
        Some((old_children, new_children)) if old.lines[o.start] == new.lines[n.start] => {
            diff_range(old, new, o.start..o.start + 1, n.start..n.start + 1, ops);
            match_segments(old, new, &old_children, &new_children, deep, ops);
        }
        _ => diff_range(old, new, o, n, ops),
    }
}

/// Cuts lines `range` of a text in CDK's format, whose first line opens an object or array,
/// into the segments of its children (each starts at a line one level deeper than the first,
/// keyed by that line) and a last segment from the closing bracket on. `None` if the first
/// line opens no container.
fn children<'a>(lines: &[&'a str], range: std::ops::Range<usize>) -> Option<Vec<Segment<'a>>> {
    let first = lines[range.start];
    if !(first.ends_with('{') || first.ends_with('[')) {
        return None;
    }
    let depth = indent(first);
    let mut out: Vec<Segment<'a>> = Vec::new();
    for (i, &line) in lines
        .iter()
        .enumerate()
        .take(range.end)
        .skip(range.start + 1)
    {
        let d = indent(line);
        let closing = line[d..].starts_with(['}', ']']);
        let starts = if d <= depth {
            Some(CLOSE)
        } else if d == depth + 1 && !closing {
            Some(line)
        } else {
            None
        };
        if let Some(key) = starts {
            if let Some(last) = out.last_mut() {
                last.end = i;
            }
            out.push(Segment {
                key: (key, None),
                start: i,
                end: range.end,
            });
            if key == CLOSE {
                break;
            }
        }
    }
    // Content that is not laid out as CDK lays it out: leave it to the line diff.
    match out.first() {
        Some(f) if f.start == range.start + 1 && out.last().is_some_and(|l| l.key.0 == CLOSE) => {
            Some(out)
        }
        _ => None,
    }
}

/// The key of the segment from a container's closing bracket on; no line of JSON text holds
/// a NUL character.
const CLOSE: &str = "\0";

/// Appends the operations for `old[o]` → `new[n]`: one `Equal` if the lines are the same,
/// else a line diff of just these lines.
fn diff_range(
    old: &Outline,
    new: &Outline,
    o: std::ops::Range<usize>,
    n: std::ops::Range<usize>,
    ops: &mut Vec<DiffOp>,
) {
    // Most ranges are resources no change touched: compared once, and done.
    if same_lines(old, new, &o, &n) {
        if !o.is_empty() {
            push(
                ops,
                DiffOp::Equal {
                    old_index: o.start,
                    new_index: n.start,
                    len: o.len(),
                },
            );
        }
        return;
    }
    match plain_edit(&old.lines[o.clone()], &new.lines[n.clone()]) {
        Some(edit) => edit
            .into_iter()
            .flatten()
            .for_each(|op| push(ops, op.shifted(o.start, n.start))),
        None => myers(old, new, o, n, ops),
    }
}

/// The operations for `old` → `new` when, past the lines they start and end with, one side
/// is empty or a single line found nowhere in the other, and no line can slide across the
/// edge of the change: the one answer a line diff can give, found without running one. A
/// hardened resource usually differs from its input this way (members added at the end of
/// an object, the line before them given a comma). `None` for any other pair.
///
/// These are exactly the operations [`myers`] returns (a property test checks): with one
/// side empty, or a single line that matches nothing on the other side, the middle has no
/// common line, and the sliding checks rule out the moves similar's compaction would make.
fn plain_edit(old: &[&str], new: &[&str]) -> Option<[Option<DiffOp>; 3]> {
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (o_end, n_end) = (old.len() - suffix, new.len() - suffix);
    let (o_mid, n_mid) = (&old[prefix..o_end], &new[prefix..n_end]);
    let single = |one: &[&str], other: &[&str]| one.len() == 1 && !other.contains(&one[0]);
    let plain = match (o_mid.len(), n_mid.len()) {
        (0, 0) => return None,
        (0, _) | (_, 0) => true,
        _ => single(o_mid, n_mid) || single(n_mid, o_mid),
    };
    // A changed block whose last line equals the line before it, or whose first line equals
    // the line after it, could slide; such pairs are left to the full diff.
    let slides = |lines: &[&str], start: usize, end: usize| {
        start < end
            && ((start > 0 && lines[end - 1] == lines[start - 1])
                || (end < lines.len() && lines[start] == lines[end]))
    };
    if !plain || slides(old, prefix, o_end) || slides(new, prefix, n_end) {
        return None;
    }
    let equal = |at: usize, len: usize| {
        (len > 0).then_some(DiffOp::Equal {
            old_index: at,
            new_index: at,
            len,
        })
    };
    let (old_len, new_len) = (o_mid.len(), n_mid.len());
    let change = match (old_len, new_len) {
        (0, _) => DiffOp::Insert {
            old_index: prefix,
            new_index: prefix,
            new_len,
        },
        (_, 0) => DiffOp::Delete {
            old_index: prefix,
            old_len,
            new_index: prefix,
        },
        _ => DiffOp::Replace {
            old_index: prefix,
            old_len,
            new_index: prefix,
            new_len,
        },
    };
    let last = (suffix > 0).then_some(DiffOp::Equal {
        old_index: o_end,
        new_index: n_end,
        len: suffix,
    });
    Some([equal(0, prefix), Some(change), last])
}

/// Shifts an operation on sub-slices to the indices of the whole texts.
trait Shifted {
    fn shifted(self, old: usize, new: usize) -> DiffOp;
}

impl Shifted for DiffOp {
    fn shifted(self, old: usize, new: usize) -> DiffOp {
        let (tag, a, b) = self.as_tag_tuple();
        let (old_index, new_index) = (a.start + old, b.start + new);
        let (old_len, new_len) = (a.len(), b.len());
        match tag {
            DiffTag::Equal => DiffOp::Equal {
                old_index,
                new_index,
                len: old_len,
            },
            DiffTag::Delete => DiffOp::Delete {
                old_index,
                old_len,
                new_index,
            },
            DiffTag::Insert => DiffOp::Insert {
                old_index,
                new_index,
                new_len,
            },
            DiffTag::Replace => DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            },
        }
    }
}

/// [`diff_range`] of two ranges that differ, by similar's Myers diff (with its compaction).
fn myers(
    old: &Outline,
    new: &Outline,
    o: std::ops::Range<usize>,
    n: std::ops::Range<usize>,
    ops: &mut Vec<DiffOp>,
) {
    let (a, b) = numbered(&old.lines[o.clone()], &new.lines[n.clone()]);
    for op in super::myers::diff(&a, &b) {
        push(ops, op.shifted(o.start, n.start));
    }
}

/// The lines of `old` and `new` as numbers, equal lines the same number: the diff only ever
/// asks whether two lines are equal, so it answers the same over the numbers, comparing one
/// integer where it compared two strings (a changed resource's diff compares its lines
/// thousands of times).
fn numbered<'a>(old: &[&'a str], new: &[&'a str]) -> (Vec<u32>, Vec<u32>) {
    let mut numbers: foldhash::HashMap<&'a str, u32> =
        foldhash::HashMap::with_capacity_and_hasher(old.len() + new.len(), Default::default());
    let mut number = |line: &&'a str| {
        let next = numbers.len() as u32;
        *numbers.entry(*line).or_insert(next)
    };
    let old = old.iter().map(&mut number).collect();
    let new = new.iter().map(&mut number).collect();
    (old, new)
}

/// Whether lines `o` of `old` are lines `n` of `new`: the same number of lines, and the same
/// bytes from the first to the end of the last. Lines are cut at every `\n` and nothing else,
/// so equal bytes hold equal lines; one comparison of the whole span, not one per line.
fn same_lines(
    old: &Outline,
    new: &Outline,
    o: &std::ops::Range<usize>,
    n: &std::ops::Range<usize>,
) -> bool {
    o.len() == n.len() && old.span(o.clone()) == new.span(n.clone())
}

/// Pushes an operation, merging it into the previous one when both are `Equal`, so hunks are
/// grouped as they would be for a diff of the whole text.
fn push(ops: &mut Vec<DiffOp>, op: DiffOp) {
    if let (
        Some(DiffOp::Equal {
            old_index,
            new_index,
            len,
        }),
        DiffOp::Equal {
            old_index: o,
            new_index: n,
            len: more,
        },
    ) = (ops.last_mut(), &op)
    {
        if *old_index + *len == *o && *new_index + *len == *n {
            *len += more;
            return;
        }
    }
    ops.push(op);
}

/// Writes one hunk in unified format, with `\ No newline at end of file` after a last line
/// that lacks one, as diff and git do.
fn write_hunk(out: &mut String, group: &[DiffOp], old: &Outline, new: &Outline) {
    let (first, last) = (&group[0], &group[group.len() - 1]);
    let old_range = first.old_range().start..last.old_range().end;
    let new_range = first.new_range().start..last.new_range().end;
    let _ = writeln!(
        out,
        "@@ -{} +{} @@",
        HunkRange(old_range),
        HunkRange(new_range)
    );
    let line = |out: &mut String, sign: char, text: &str, unterminated: bool| {
        out.push(sign);
        out.push_str(text);
        out.push('\n');
        if unterminated {
            out.push_str("\\ No newline at end of file\n");
        }
    };
    for op in group {
        let (_, o, n) = op.as_tag_tuple();
        match op {
            DiffOp::Equal { .. } => {
                for (i, j) in o.zip(n) {
                    let end = old.unterminated(i) || new.unterminated(j);
                    line(out, ' ', old.lines[i], end);
                }
            }
            _ => {
                for i in o {
                    line(out, '-', old.lines[i], old.unterminated(i));
                }
                for j in n {
                    line(out, '+', new.lines[j], new.unterminated(j));
                }
            }
        }
    }
}

/// A hunk header range: `start,len`, 1-based; `start` alone for one line; the line before for
/// none.
struct HunkRange(std::ops::Range<usize>);

impl std::fmt::Display for HunkRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.0.end - self.0.start;
        match len {
            0 => write!(f, "{},0", self.0.start),
            1 => write!(f, "{}", self.0.start + 1),
            _ => write!(f, "{},{}", self.0.start + 1, len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn similar_ops(old: &[&str], new: &[&str]) -> Vec<DiffOp> {
        similar::capture_diff_slices(Algorithm::Myers, old, new)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        /// Where the plain-edit shortcut answers, it answers as similar's Myers diff does:
        /// lines from a small alphabet (so lines repeat and changes could slide), the new
        /// text the old with one run of lines replaced.
        #[test]
        fn issue_8_plain_edits_are_the_line_diff(
            old in proptest::collection::vec("(a|b|c| \\}|  \\},)", 0..10),
            at in 0usize..10,
            cut in 0usize..4,
            put in proptest::collection::vec("(a|b|c|d| \\}|  \\},)", 0..5),
        ) {
            let at = at.min(old.len());
            let mut new = old.clone();
            new.splice(at..(at + cut).min(old.len()), put);
            let (old, new): (Vec<&str>, Vec<&str>) =
                (old.iter().map(String::as_str).collect(), new.iter().map(String::as_str).collect());
            if let Some(edit) = plain_edit(&old, &new) {
                let mut ops = Vec::new();
                edit.into_iter().flatten().for_each(|op| push(&mut ops, op));
                prop_assert_eq!(ops, similar_ops(&old, &new));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        /// Diffing lines by number gives the operations diffing them as text does: lines from
        /// a small alphabet, so that many repeat and changes could slide.
        #[test]
        fn issue_8_numbered_lines_diff_as_the_lines_do(
            old in proptest::collection::vec("(a|b|c| \\}|  \\},)", 0..40),
            new in proptest::collection::vec("(a|b|c|d| \\}|  \\},)", 0..40),
        ) {
            let (old, new): (Vec<&str>, Vec<&str>) =
                (old.iter().map(String::as_str).collect(), new.iter().map(String::as_str).collect());
            let (a, b) = numbered(&old, &new);
            prop_assert_eq!(
                similar::capture_diff_slices(Algorithm::Myers, &a, &b),
                similar_ops(&old, &new)
            );
        }
    }

    /// The shapes the shortcut takes are the common ones: an insertion, and a line given a
    /// comma with members after it; a change that could slide is left to the full diff.
    #[test]
    fn issue_8_plain_edit_shapes() {
        let old = ["{", " \"A\": 1", "}"];
        let new = ["{", " \"A\": 1,", " \"B\": 2", "}"];
        assert!(plain_edit(&old, &new).is_some());
        let insert = ["{", " \"A\": 1", " \"B\": 2", "}"];
        assert!(plain_edit(&old, &insert).is_some());
        let slides = ["{", "}", "{", "}"];
        assert!(plain_edit(&["{", "}"], &slides).is_none());
        assert!(plain_edit(&old, &old).is_none());
    }

    #[test]
    fn names_the_template_and_counts_lines() {
        let before = "{\n \"A\": 1,\n \"B\": 2\n}";
        let after = "{\n \"A\": 1,\n \"B\": 3,\n \"C\": 4\n}";
        let d = unified("x/T.template.json", before, after);
        assert!(
            d.text
                .starts_with("--- a/x/T.template.json\n+++ b/x/T.template.json\n@@"),
            "{}",
            d.text
        );
        assert!(d.text.contains("- \"B\": 2\n"), "{}", d.text);
        assert_eq!((d.added, d.removed), (2, 1));
        assert_eq!(unified("t", before, before).text, "");
    }

    /// Applies a unified diff's hunks to `before`; the result must be `after`.
    fn patch(before: &str, diff: &str) -> String {
        let old: Vec<&str> = before.split('\n').collect();
        let mut out: Vec<String> = Vec::new();
        let mut at = 0;
        for line in diff.lines().skip(2) {
            if let Some(header) = line.strip_prefix("@@ -") {
                let start: usize = header.split([',', ' ']).next().unwrap().parse().unwrap();
                let len_one = !header.split(' ').next().unwrap().contains(',');
                let start = if len_one || start == 0 {
                    start.max(1)
                } else {
                    start
                };
                while at + 1 < start {
                    out.push(old[at].to_string());
                    at += 1;
                }
            } else if let Some(l) = line.strip_prefix(' ') {
                assert_eq!(old[at], l);
                out.push(l.to_string());
                at += 1;
            } else if let Some(l) = line.strip_prefix('-') {
                assert_eq!(old[at], l);
                at += 1;
            } else if let Some(l) = line.strip_prefix('+') {
                out.push(l.to_string());
            }
        }
        out.extend(old[at..].iter().map(|s| s.to_string()));
        out.join("\n")
    }

    /// [`unified`], cutting segments longer than `deep` lines.
    fn cutting_at(path: &str, before: &str, after: &str, deep: usize) -> Unified {
        unified_cutting_at(path, &Outline::new(before), &Outline::new(after), deep)
    }

    fn cdk(v: &serde_json::Value) -> String {
        crate::assembly::format::to_cdk_json(v)
    }

    #[test]
    fn structured_diffs_patch_back_to_the_new_text() {
        use serde_json::json;
        let mut resources = serde_json::Map::new();
        for i in 0..40 {
            resources.insert(
                format!("R{i}"),
                json!({"Type": "AWS::S3::Bucket", "Properties": {"Name": format!("b{i}")}}),
            );
        }
        let before = json!({"Resources": resources.clone(), "Outputs": {"O": {"Value": 1}}});
        let mut after = before.clone();
        after["Resources"]["R3"]["Properties"]["Versioning"] = json!({"Status": "Enabled"});
        after["Resources"]["R39"]["Properties"]["Logging"] = json!({"Prefix": "x"});
        after["Resources"]["New"] = json!({"Type": "AWS::KMS::Key"});
        after["Parameters"] = json!({"P": {"Type": "String"}});
        let (b, a) = (cdk(&before), cdk(&after));
        let d = unified("T", &b, &a);
        assert_eq!(patch(&b, &d.text), a, "{}", d.text);
        // Cut down to single lines, the diff is still exact.
        let cut = cutting_at("T", &b, &a, 0);
        assert_eq!(patch(&b, &cut.text), a, "{}", cut.text);
        // Only the changed resources, the appended ones and their context are in the diff.
        assert!(!d.text.contains("\"b20\""), "{}", d.text);
        // The bracket closing `Resources` is context, not removed and added again.
        assert!(!d.text.contains("\n- },\n"), "{}", d.text);
        let lines_added = a.lines().count() - b.lines().count();
        assert_eq!(d.added - d.removed, lines_added);
    }

    /// Every review diff of the hardened examples turns the template as read into the template
    /// as written.
    #[test]
    fn example_diffs_patch_back_to_the_written_templates() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for app in ["pipelines", "shapes"] {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("out");
            let outcome = crate::run(&crate::Options {
                assembly: repo.join("examples").join(app).join("cdk.out"),
                config: Some(repo.join("examples").join(app).join("cdk-harden.json")),
                out: Some(out.clone()),
                mode: crate::Mode::Apply,
            })
            .unwrap();
            let mut diffs = 0;
            for s in outcome.report.stacks() {
                let read = |root: &std::path::Path| {
                    std::fs::read_to_string(root.join(&s.template)).unwrap()
                };
                let (before, after) = (
                    read(&repo.join("examples").join(app).join("cdk.out")),
                    read(&out),
                );
                assert_eq!(patch(&before, &s.diff.text), after, "{app}: {}", s.template);
                let cut = cutting_at(&s.template, &before, &after, 0);
                assert_eq!(patch(&before, &cut.text), after, "{app}: {}", s.template);
                diffs += usize::from(!s.diff.text.is_empty());
            }
            assert!(diffs > 5, "{app}: {diffs} diffs");
        }
    }

    /// A pipeline of many stages is one resource far longer than [`DEEP`]; cut at its
    /// children, it gives the same diff as a line diff of the whole resource.
    #[test]
    fn issue_8_a_long_resource_is_cut_at_its_children_with_the_same_diff() {
        use serde_json::json;
        let action = |name: &str, order: u32| {
            json!({"ActionTypeId": {"Category": "Deploy", "Provider": "CloudFormation"},
                   "Configuration": {"StackName": name}, "Name": name, "RunOrder": order})
        };
        let stages = |approve: bool| -> Vec<serde_json::Value> {
            (0..300)
                .map(|i| {
                    let name = format!("Stage{i:04}");
                    let mut actions = vec![action(&name, 1), action(&format!("{name}b"), 2)];
                    if approve && i % 3 == 0 {
                        actions.insert(0, json!({"Name": "Approve", "RunOrder": 1}));
                        for (k, a) in actions.iter_mut().enumerate().skip(1) {
                            a["RunOrder"] = json!(k + 1);
                        }
                    }
                    json!({"Actions": actions, "Name": name})
                })
                .collect()
        };
        let template = |approve: bool| {
            json!({"Resources": {
                "Role": {"Type": "AWS::IAM::Role"},
                "Pipeline": {"Type": "AWS::CodePipeline::Pipeline",
                             "Properties": {"RoleArn": "r", "Stages": stages(approve)}},
                "Topic": {"Type": "AWS::SNS::Topic"}}})
        };
        let (b, a) = (cdk(&template(false)), cdk(&template(true)));
        assert!(
            b.lines().count() > 4 * 1024,
            "the resource must be long enough to be cut"
        );
        let (cut, whole) = (unified("T", &b, &a), cutting_at("T", &b, &a, usize::MAX));
        assert_eq!(patch(&b, &cut.text), a);
        assert_eq!(cut, whole);
        // Per approved stage: four lines of the new action, and two run orders moved on.
        assert_eq!((cut.added, cut.removed), (100 * 6, 100 * 2));
    }

    #[test]
    fn text_in_another_format_is_diffed_as_a_whole() {
        let before = "a\nb\nc";
        let after = "a\nB\nc\nd";
        let d = unified("t", before, after);
        assert_eq!(patch(before, &d.text), after, "{}", d.text);
        assert!(
            d.text.ends_with("+d\n\\ No newline at end of file\n"),
            "{}",
            d.text
        );
    }
}
