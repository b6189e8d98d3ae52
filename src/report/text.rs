//! The terminal review, the default format.
//!
//! Per stack: each changed resource as `cdk diff` shows it (`[~]` changed, `[+]` added), with
//! its changes as a tree (pointer relative to the resource, operation, transform, reason, rule
//! and warnings); the new IAM permissions as a table; notes (action required, refused, opt-outs,
//! left alone, skipped); findings; then the unified diff of the template. A summary line ends
//! the review. Colors are ANSI escapes, only when [`RenderOptions::color`] says so.

use std::fmt::Write;

use super::{headline, relative_pointer, shorten, RenderOptions, Report, StackReport};
use crate::findings::{Finding, Severity};
use crate::transform::{Note, NoteKind};

/// ANSI styling, or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Writes `parts`, one after another, straight into `out`: colored as one with `code` if
    /// colors are on and there is anything to color (no escape codes around nothing). Pieces
    /// rather than formatting: a review writes a few of these for each of thousands of changes.
    fn put_str(self, out: &mut String, code: &str, parts: &[&str]) {
        let color = self.color && parts.iter().any(|p| !p.is_empty());
        if color {
            out.push_str("\x1b[");
            out.push_str(code);
            out.push('m');
        }
        parts.iter().for_each(|p| out.push_str(p));
        if color {
            out.push_str("\x1b[0m");
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 9);
        self.put_str(&mut out, code, &[text]);
        out
    }
    pub fn bold(self, t: &str) -> String {
        self.paint("1", t)
    }
    pub fn dim(self, t: &str) -> String {
        self.paint("2", t)
    }
    pub fn red(self, t: &str) -> String {
        self.paint("31", t)
    }
    pub fn green(self, t: &str) -> String {
        self.paint("32", t)
    }
    pub fn yellow(self, t: &str) -> String {
        self.paint("33", t)
    }
    pub fn cyan(self, t: &str) -> String {
        self.paint("36", t)
    }
}

/// Longest value shown inline in a change line; the diff shows the rest.
const PREVIEW: usize = 72;

/// Stacks rendered at once, before they are written.
const BATCH: usize = 64;

/// Renders the report as text.
pub fn render(report: &Report, options: &RenderOptions) -> String {
    let mut out = Vec::new();
    write(report, options, &mut out).expect("writing to memory does not fail");
    String::from_utf8(out).expect("the review is UTF-8")
}

/// Writes the review to `w` one stack at a time, so a large review is never held whole.
pub fn write(
    report: &Report,
    options: &RenderOptions,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let s = Style {
        color: options.color,
    };
    // Stacks are read back and rendered on every core, a batch at a time, and written in
    // order: the review of a thousand-stage assembly is tens of megabytes.
    use rayon::prelude::*;
    let shown: Vec<usize> = (0..report.templates())
        .filter(|&i| report.is_interesting(&report.heads()[i]))
        .collect();
    // Each batch is rendered into the buffers of the one before, so the review's tens of
    // megabytes pass through a batch's worth of memory instead of fresh pages.
    let mut buffers = vec![String::new(); BATCH.min(shown.len())];
    for batch in shown.chunks(BATCH) {
        let buffers = &mut buffers[..batch.len()];
        buffers
            .par_iter_mut()
            .zip(batch.par_iter())
            .for_each(|(out, &i)| {
                let stack = report.stack(i);
                // Room for the diff, copied in whole, and a few lines per change, so the text
                // is not copied again and again as it grows.
                // The permissions table takes a few kilobytes a row: its cells are padded to
                // its widest.
                let room = stack.diff.text.len()
                    + 400 * (stack.changes.len() + stack.notes.len())
                    + 3000 * stack.permissions.len();
                out.clear();
                // A buffer a large stack grew is not kept for the small ones after it.
                if out.capacity() > 2 * (room + 4096) {
                    out.shrink_to(room + 4096);
                }
                out.reserve(room + 4096);
                render_stack(out, report, &stack, s);
            });
        for text in buffers.iter() {
            w.write_all(text.as_bytes())?;
        }
    }
    w.write_all(last_line(report, options, s).as_bytes())
}

/// The summary line that ends the review.
fn last_line(report: &Report, options: &RenderOptions, s: Style) -> String {
    let mut out = String::new();
    let line = headline(report, options.applied);
    let assets = report.renamed_assets.len();
    let line = if assets > 0 {
        format!(
            "{line}; {assets} template asset id{} replaced",
            super::plural(assets)
        )
    } else {
        line
    };
    let _ = writeln!(out, "{}", s.bold(&line));
    out
}

fn render_stack(out: &mut String, report: &Report, stack: &StackReport, s: Style) {
    let _ = writeln!(
        out,
        "{} {}",
        s.bold(&format!("Stack {}", stack.display_name)),
        s.dim(&format!("({})", stack.environment))
    );
    let _ = writeln!(out, "{}", s.dim(&format!("template {}", stack.template)));

    let resources = stack.by_resource();
    if !resources.is_empty() {
        out.push('\n');
        for r in &resources {
            match r.added {
                true => s.put_str(out, "32", &["[+]"]),
                false => s.put_str(out, "33", &["[~]"]),
            }
            out.push(' ');
            out.push_str(r.resource_type.unwrap_or("?"));
            if let Some(path) = r.construct_path {
                out.push(' ');
                out.push_str(path);
            }
            out.push(' ');
            s.put_str(out, "2", &["(", r.logical_id, ")"]);
            out.push('\n');
            for (i, c) in r.changes.iter().enumerate() {
                let last = i + 1 == r.changes.len();
                let (branch, stem) = if last {
                    (" └─ ", "    ")
                } else {
                    (" ├─ ", " │  ")
                };
                let rel = relative_pointer(&c.pointer, &c.logical_id);
                let what = if rel.is_empty() { "(resource)" } else { rel };
                out.push_str(branch);
                match &c.old {
                    None => s.put_str(out, "32", &["[+]"]),
                    Some(_) => s.put_str(out, "33", &["[~]"]),
                }
                out.push(' ');
                out.push_str(what);
                if !rel.is_empty() {
                    match &c.old {
                        Some(old) => {
                            out.push(' ');
                            out.push_str(&shorten(old.as_str(), PREVIEW / 2));
                            out.push_str(" → ");
                            out.push_str(&shorten(c.new.as_str(), PREVIEW / 2));
                        }
                        None => {
                            out.push_str(" = ");
                            out.push_str(&shorten(c.new.as_str(), PREVIEW));
                        }
                    }
                }
                out.push('\n');
                out.push_str(stem);
                out.push_str("    ");
                s.put_str(out, "36", &[&c.transform]);
                out.push(' ');
                s.put_str(out, "2", &["(", c.op.name(), ")"]);
                out.push_str(": ");
                out.push_str(&c.reason);
                out.push('\n');
                if let Some(rule) = report.rule_of(&c.transform) {
                    out.push_str(stem);
                    out.push_str("    ");
                    s.put_str(out, "2", &["rule: ", rule]);
                    out.push('\n');
                }
                if c.enforced {
                    let _ = writeln!(
                        out,
                        "{stem}    {}",
                        s.yellow("! enforced: overwrote a value the app set (transforms.enforce)")
                    );
                }
                for w in &c.warnings {
                    let _ = writeln!(out, "{stem}    {}", s.yellow(&format!("! warning: {w}")));
                }
            }
        }
    }

    if !stack.permissions.is_empty() {
        out.push('\n');
        let _ = writeln!(out, "{}", s.bold("IAM permissions added"));
        let with_condition = stack.permissions.iter().any(|p| p.condition.is_some());
        let mut header = vec!["Policy", "Effect", "Action", "Resource", "Principal"];
        if with_condition {
            header.push("Condition");
        }
        // The cells written one after another into one text, then cut out of it: a table of
        // many rows is not a string per cell.
        let mut text = String::new();
        let mut spans = Vec::with_capacity(stack.permissions.len() * header.len());
        // Each cell's lines, one after another.
        let mut cell = |parts: &mut dyn Iterator<Item = &str>| {
            let start = text.len();
            for (i, part) in parts.enumerate() {
                if i > 0 {
                    text.push('\n');
                }
                text.push_str(part);
            }
            spans.push(start..text.len());
        };
        for p in &stack.permissions {
            cell(&mut std::iter::once(p.logical_id.as_str()));
            cell(&mut std::iter::once(p.effect.as_str()));
            cell(&mut p.actions.iter().map(String::as_str));
            cell(&mut p.resources.iter().map(String::as_str));
            cell(&mut p.principals.iter().map(String::as_str));
            if with_condition {
                cell(&mut p.condition.as_deref().unwrap_or_default().split("; "));
            }
        }
        let cells: Vec<&str> = spans.into_iter().map(|r| &text[r]).collect();
        table(out, &header, &cells, s);
    }

    if !stack.notes.is_empty() {
        out.push('\n');
        let _ = writeln!(out, "{}", s.bold("Notes"));
        let mut notes: Vec<&Note> = stack.notes.iter().collect();
        notes.sort_by_key(|n| note_rank(n.kind));
        for n in notes {
            let (mark, label) = note_label(n.kind);
            let code = match n.kind {
                NoteKind::ActionRequired | NoteKind::Refused => "31",
                NoteKind::LeftAlone => "33",
                _ => "2",
            };
            out.push(' ');
            s.put_str(out, code, &[mark, " ", label]);
            out.push(' ');
            s.put_str(out, "36", &[&n.transform]);
            if let Some(l) = &n.logical_id {
                out.push(' ');
                out.push_str(l);
            }
            let _ = writeln!(out, ": {}", n.message);
        }
    }

    let findings: Vec<&Finding> = report.findings_for(&stack.template).collect();
    if !findings.is_empty() {
        out.push('\n');
        let _ = writeln!(out, "{}", s.bold("Findings"));
        let mut last_help: Option<&str> = None;
        for f in findings {
            let level = match f.severity {
                Severity::Error => s.red("✗ error"),
                Severity::Warning => s.yellow("! warning"),
            };
            let mut about = String::new();
            if let Some(l) = &f.logical_id {
                about.push(' ');
                about.push_str(l);
            }
            if let Some(p) = &f.construct_path {
                let _ = write!(about, " {}", s.dim(&format!("({p})")));
            }
            let _ = writeln!(out, " {level} {}{about}", s.cyan(&f.rule));
            let _ = writeln!(out, "     {}", f.message);
            if last_help == Some(f.help.as_str()) {
                let _ = writeln!(out, "     {}", s.dim("fix: as above"));
            } else {
                let _ = writeln!(out, "     {}", s.dim(&format!("fix: {}", f.help)));
            }
            last_help = Some(&f.help);
        }
    }

    let d = &stack.diff;
    if !d.text.is_empty() {
        out.push('\n');
        let _ = writeln!(
            out,
            "{} {}",
            s.bold("Template diff"),
            s.dim(&format!("(+{} -{})", d.added, d.removed))
        );
        if !s.color {
            // The diff as it is: by far the largest part of a review, so copied in one go.
            out.push_str(&d.text);
        } else {
            for line in d.text.lines() {
                let code = if line.starts_with("+++") || line.starts_with("---") {
                    "1"
                } else if line.starts_with('+') {
                    "32"
                } else if line.starts_with('-') {
                    "31"
                } else if line.starts_with("@@") {
                    "36"
                } else {
                    ""
                };
                if code.is_empty() || line.is_empty() {
                    out.push_str(line);
                } else {
                    let _ = write!(out, "\x1b[{code}m{line}\x1b[0m");
                }
                out.push('\n');
            }
        }
    }
    out.push('\n');
}

/// Notes needing a person first.
pub(crate) fn note_rank(kind: NoteKind) -> u8 {
    match kind {
        NoteKind::ActionRequired => 0,
        NoteKind::Refused => 1,
        NoteKind::LeftAlone => 2,
        NoteKind::OptOut => 3,
        NoteKind::Skipped => 4,
    }
}

/// A mark and a label for a note kind.
pub(crate) fn note_label(kind: NoteKind) -> (&'static str, &'static str) {
    match kind {
        NoteKind::ActionRequired => ("!", "action required"),
        NoteKind::Refused => ("!", "refused"),
        NoteKind::LeftAlone => ("-", "left alone"),
        NoteKind::OptOut => ("-", "opt-out"),
        NoteKind::Skipped => ("-", "skipped"),
    }
}

/// Writes a boxed table of `header` and the rows of `cells` (row by row, as many a row as
/// `header` has names); a cell may hold several lines, and a column is as wide as its widest.
fn table(out: &mut String, header: &[&str], cells: &[&str], s: Style) {
    let n = header.len();
    // Each cell cut into lines once, with each line's width in characters: the lines of
    // every cell in one list, each cell its run of them.
    let mut lines: Vec<(&str, usize)> = Vec::new();
    let mut runs: Vec<std::ops::Range<usize>> = Vec::with_capacity(n + cells.len());
    for cell in header.iter().chain(cells) {
        let start = lines.len();
        lines.extend(cell.lines().map(|l| (l, l.chars().count())));
        runs.push(start..lines.len());
    }
    let mut widths = vec![0; n];
    for (i, run) in runs.iter().enumerate() {
        for &(_, w) in &lines[run.clone()] {
            widths[i % n] = widths[i % n].max(w);
        }
    }
    // Each rule drawn once; a table's width is mostly padding and rules, written as runs.
    let rule = |l: &str, m: &str, r: &str| {
        let mut line = String::from(l);
        for (i, w) in widths.iter().enumerate() {
            if i > 0 {
                line.push_str(m);
            }
            line.extend(std::iter::repeat_n('─', w + 2));
        }
        line.push_str(r);
        line.push('\n');
        line
    };
    let (top, middle, bottom) = (
        rule("┌", "┬", "┐"),
        rule("├", "┼", "┤"),
        rule("└", "┴", "┘"),
    );
    let rows: Vec<&[std::ops::Range<usize>]> = runs.chunks(n).collect();
    // A row is as tall as its tallest cell.
    let height = |row: &[std::ops::Range<usize>]| row.iter().map(|c| c.len().max(1)).max();
    let count: usize = rows.iter().filter_map(|r| height(r)).sum();
    // A rule is about as long as a line of cells.
    out.reserve(middle.len() * (count + rows.len() + 1));
    let line = |out: &mut String, row: &[std::ops::Range<usize>], bold: bool| {
        for k in 0..height(row).unwrap_or(1) {
            out.push('│');
            for (i, cell) in row.iter().enumerate() {
                let (text, width) = lines[cell.clone()].get(k).copied().unwrap_or(("", 0));
                out.push(' ');
                match bold {
                    true => out.push_str(&s.bold(text)),
                    false => out.push_str(text),
                }
                pad(out, widths[i] - width);
                out.push_str(" │");
            }
            out.push('\n');
        }
    };
    out.push_str(&top);
    line(out, rows[0], true);
    for row in &rows[1..] {
        out.push_str(&middle);
        line(out, row, false);
    }
    out.push_str(&bottom);
}

/// Appends `n` spaces.
fn pad(out: &mut String, mut n: usize) {
    const SPACES: &str = "                                                                ";
    while n > 0 {
        let run = n.min(SPACES.len());
        out.push_str(&SPACES[..run]);
        n -= run;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_fit_multi_line_cells() {
        let table = |header: &[&str], cells: &[&str]| {
            let mut out = String::new();
            table(&mut out, header, cells, Style { color: false });
            out
        };
        let t = table(&["A", "Bee"], &["x", "one\ntwo longer"]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 6, "{t}");
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() == lines[0].chars().count()),
            "{t}"
        );
        assert!(t.contains("│ x │ one        │"), "{t}");
        // Padding longer than one run of spaces.
        let wide = "w".repeat(150);
        let t = table(&["A"], &[&wide, "x"]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines.iter().all(|l| l.chars().count() == 154), "{t}");
        assert!(t.contains(&format!("│ x{} │", " ".repeat(149))), "{t}");
    }

    #[test]
    fn color_only_when_asked() {
        assert_eq!(Style { color: false }.red("x"), "x");
        assert_eq!(Style { color: true }.red("x"), "\x1b[31mx\x1b[0m");
    }
}
