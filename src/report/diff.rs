//! Unified diffs of templates, with stable context.
//!
//! Templates are diffed line by line in CDK's own format (one-space indent), so the diff shows
//! exactly the bytes `apply` writes. Headers name the template by its path relative to the
//! assembly root, `a/` before and `b/` after, as git does.

use similar::{ChangeTag, TextDiff};

/// Lines of context around each change.
pub const CONTEXT: usize = 3;

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
        return Unified {
            text: String::new(),
            added: 0,
            removed: 0,
        };
    }
    // Patience anchors on lines that occur once on both sides and runs Myers only between
    // them: near-linear on large templates whose changes are spread out, where plain Myers
    // is quadratic. Deterministic, like any of similar's algorithms without a deadline.
    let diff = TextDiff::configure()
        .algorithm(similar::Algorithm::Patience)
        .diff_lines(before, after);
    let (mut added, mut removed) = (0, 0);
    for change in diff.iter_all_changes() {
        match change.tag() {
            ChangeTag::Insert => added += 1,
            ChangeTag::Delete => removed += 1,
            ChangeTag::Equal => {}
        }
    }
    let mut text = diff
        .unified_diff()
        .context_radius(CONTEXT)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Unified {
        text,
        added,
        removed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(
            d.text.contains("-  \"B\": 2\n") || d.text.contains("- \"B\": 2\n"),
            "{}",
            d.text
        );
        assert_eq!((d.added, d.removed), (2, 1));
        assert_eq!(unified("t", before, before).text, "");
    }
}
