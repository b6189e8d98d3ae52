//! The plain-text review: per stack, each changed resource with the changes under it.

use std::fmt::Write;

use super::Report;

/// Renders the report as text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for stack in &report.stacks {
        if stack.changes.is_empty() && stack.notes.is_empty() {
            continue;
        }
        let _ = writeln!(out, "Stack {} ({})", stack.display_name, stack.template);
        let mut last: Option<&str> = None;
        for change in &stack.changes {
            if last != Some(change.logical_id.as_str()) {
                let _ = writeln!(
                    out,
                    "[~] {} {} ({})",
                    change.resource_type.as_deref().unwrap_or("?"),
                    change.construct_path.as_deref().unwrap_or("-"),
                    change.logical_id
                );
                last = Some(change.logical_id.as_str());
            }
            let _ = writeln!(
                out,
                "    {} {}: {}",
                change.transform, change.pointer, change.reason
            );
        }
        for note in &stack.notes {
            let _ = writeln!(
                out,
                "    note [{}] {}{}",
                note.transform,
                note.logical_id
                    .as_deref()
                    .map(|l| format!("{l}: "))
                    .unwrap_or_default(),
                note.message
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{} change(s) in {} template(s); {} asset id(s) replaced",
        report.change_count(),
        report.stacks.iter().filter(|s| s.before != s.after).count(),
        report.renamed_assets.len()
    );
    out
}
