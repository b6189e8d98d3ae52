//! The review: one report model, several renderers.
//!
//! [`Report`] is built from the engine's records and the re-hashed ids; it holds no paths but the
//! assembly-relative ones and no timestamps, so its output is stable across runs and machines.
//! The renderers only format it:
//!
//! - [`text`]: the terminal review (the default), colored on a terminal;
//! - [`markdown`]: a pull-request comment, grouped across Stages and kept under a size limit;
//! - [`json`]: the documented, versioned machine format ([`json::JsonReport`]);
//! - [`sarif`]: SARIF 2.1.0 for code scanning: findings and what needs a person.
//!
//! Shared pieces: [`diff`] (unified template diffs), [`iam`] (the permissions a change adds),
//! [`store`] (where reviews wait for the renderers: in memory, or spooled to a temporary file),
//! [`sarif::Locator`] (lines of pointers, found in a template's text), both over an
//! outline (`report::outline`) of the text (where its sections and their members start). A
//! template's review is made in two steps, [`StackReport::start`] from its hardened tree and
//! [`Started::finish`] from its texts, so the tree can be dropped first. Nothing here reads or
//! writes the assembly.

mod codec;
pub mod diff;
pub mod iam;
pub mod json;
pub mod markdown;
mod myers;
pub(crate) mod outline;
pub mod sarif;
pub mod store;
pub mod text;

use crate::transform::change::Pointer;
use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use serde_json::Value;

use crate::assembly::rehash::Renamed;
use crate::assembly::Stack;
use crate::findings::Finding;
use crate::transform::{Applied, Hardened, JsonText, Note, Original, Registry};

pub use iam::Permission;
pub use store::Head;
use store::Store;

/// The version of the JSON report format; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a reviewer needs: per stack, what changed, and what did not and why.
///
/// Each template's review is read with [`Report::stack`] or [`Report::stacks`]; a large
/// assembly's reviews live in a temporary file (see [`store`]) and are read back one at a
/// time. [`Report::heads`] has what summaries need, always in memory.
#[derive(Debug, Clone)]
pub struct Report {
    pub schema_version: u32,
    /// The transforms the changes and notes name, in registry order, with their rules. Filled
    /// by [`Report::with_transforms`]; empty otherwise (renderers then show no rule lines).
    pub transforms: Vec<TransformInfo>,
    store: Store,
    /// Template asset ids replaced because their templates changed.
    pub renamed_assets: Vec<RenamedAsset>,
    /// Problems apply cannot fix; any of these fails `check`.
    pub findings: Vec<Finding>,
    /// Secret values the findings point at. Never output: every renderer shows [`MASK`] in
    /// their place, in values, messages and diffs alike.
    pub masked: Vec<String>,
}

/// What replaces a secret value in any output.
pub const MASK: &str = "***masked***";

/// What the review says about a transform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TransformInfo {
    pub id: String,
    /// One line: what it does.
    pub title: String,
    /// One line: the rule of the security catalogue it enforces.
    pub rule: String,
}

/// One template's part of the report.
#[derive(Debug, Clone)]
pub struct StackReport {
    /// The artifact id (nested stacks: parent's name, `/`, logical id).
    pub name: String,
    pub display_name: String,
    /// The template, relative to the assembly root.
    pub template: String,
    /// `ACCOUNT/REGION`, with `unknown-account`/`unknown-region` for agnostic stacks.
    pub environment: String,
    pub stage: Option<String>,
    pub nested: bool,
    pub changes: Vec<Applied>,
    pub notes: Vec<Note>,
    /// Logical ids of the resources the changes added, in template order.
    pub added: Vec<String>,
    /// IAM statements (identity and resource policies, trust policies, key policies, Lambda
    /// permissions) that are in the hardened template and were not in the input.
    pub permissions: Vec<Permission>,
    /// Construct paths of the resources that notes name (logical id → path).
    pub construct_paths: BTreeMap<String, String>,
    /// Whether applying changes the template's bytes (changes, or only replaced asset ids).
    pub rewritten: bool,
    /// The unified diff from the template as read to the template as written, with secret
    /// values masked once the report is assembled; not part of the JSON report.
    pub diff: diff::Unified,
    /// Lines of the resources and values the notes and findings name, for SARIF: pointer →
    /// line in the template as read, and as written.
    pub lines: BTreeMap<String, [Option<usize>; 2]>,
}

impl StackReport {
    /// Starts the report on one template from what the transforms did (`hardened`) and the
    /// policy statements of the template as read: the added resources, new permissions and
    /// construct paths, the parts read in the hardened tree. Returns the tree too, for the
    /// caller to serialize and drop before the texts are diffed ([`Started::finish`]), so the
    /// largest template's tree and its texts are not all alive at once.
    pub fn start(
        stack: &Stack,
        statements: &iam::Statements,
        hardened: Hardened,
    ) -> (Started, Value) {
        let added = added_resources(&hardened.original, &hardened.template);
        let permissions = iam::new_permissions(statements, &hardened.template);
        let construct_paths = hardened
            .notes
            .iter()
            .filter_map(|n| n.logical_id.as_deref())
            .filter_map(|id| {
                let path = construct_path(&hardened.template, id)
                    .or_else(|| hardened.original.construct_path(id))?;
                Some((id.to_string(), path.to_string()))
            })
            .collect();
        let report = StackReport {
            name: stack.name.clone(),
            display_name: stack.display_name.clone(),
            environment: stack.environment.key(),
            stage: stack.stage.clone(),
            nested: stack.nested.is_some(),
            changes: hardened.applied,
            added,
            permissions,
            construct_paths,
            notes: hardened.notes,
            rewritten: false,
            diff: diff::Unified::default(),
            lines: BTreeMap::new(),
            template: stack.template_path.to_string(),
        };
        (Started(report), hardened.template)
    }

    /// Whether applying changes this template's bytes (changes, or only replaced asset ids).
    pub fn changed(&self) -> bool {
        self.rewritten
    }

    /// Hides every secret in the changes, notes, permissions and diff.
    fn mask(&mut self, secrets: &[String]) {
        if secrets.is_empty() {
            return;
        }
        for c in &mut self.changes {
            c.old.iter_mut().for_each(|v| mask_text_value(v, secrets));
            mask_text_value(&mut c.new, secrets);
            c.reason = mask_text(&c.reason, secrets);
            c.warnings = c.warnings.iter().map(|w| mask_text(w, secrets)).collect();
        }
        for n in &mut self.notes {
            n.message = mask_text(&n.message, secrets);
        }
        for p in &mut self.permissions {
            mask_text_value(&mut p.statement, secrets);
        }
        for secret in secrets {
            // As the template spells it: JSON-escaped, without the quotes.
            let quoted = serde_json::to_string(secret).expect("a string serializes");
            let escaped = &quoted[1..quoted.len() - 1];
            if self.diff.text.contains(escaped) {
                self.diff.text = self.diff.text.replace(escaped, MASK);
            }
        }
    }

    /// The changes grouped by resource, in order of first appearance.
    pub fn by_resource(&self) -> Vec<ResourceChanges<'_>> {
        let mut out: Vec<ResourceChanges> = Vec::new();
        for change in &self.changes {
            match out.iter_mut().find(|r| r.logical_id == change.logical_id) {
                Some(r) => r.changes.push(change),
                None => out.push(ResourceChanges {
                    logical_id: &change.logical_id,
                    resource_type: change.resource_type.as_deref(),
                    construct_path: change.construct_path.as_deref(),
                    added: self.added.contains(&change.logical_id),
                    changes: vec![change],
                }),
            }
        }
        out
    }

    /// The last segment of the Stage path (`Prod` for `PipelineStack/Prod`).
    pub fn stage_name(&self) -> Option<&str> {
        last_segment(self.stage.as_deref())
    }
}

/// `Prod` for `PipelineStack/Prod`.
fn last_segment(stage: Option<&str>) -> Option<&str> {
    stage.map(|s| s.rsplit('/').next().unwrap_or(s))
}

/// The changes to one resource.
#[derive(Debug)]
pub struct ResourceChanges<'a> {
    pub logical_id: &'a str,
    pub resource_type: Option<&'a str>,
    pub construct_path: Option<&'a str>,
    /// The resource did not exist before: a transform added it.
    pub added: bool,
    pub changes: Vec<&'a Applied>,
}

/// A template asset id that was replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RenamedAsset {
    /// The template, relative to the assembly root.
    pub template: String,
    pub old: String,
    pub new: String,
}

impl From<&Renamed> for RenamedAsset {
    fn from(r: &Renamed) -> Self {
        RenamedAsset {
            template: r.template.to_string(),
            old: r.old.clone(),
            new: r.new.clone(),
        }
    }
}

impl Report {
    /// The report over every template, in stack order. `secrets` are the values findings
    /// point at; they are masked everywhere.
    pub fn assemble(
        stacks: Vec<StackReport>,
        findings: Vec<Finding>,
        renamed: &[Renamed],
        secrets: Vec<String>,
    ) -> Report {
        Report::from_store(Store::in_memory(stacks), findings, renamed, secrets)
    }

    pub(crate) fn from_store(
        mut store: Store,
        findings: Vec<Finding>,
        renamed: &[Renamed],
        mut secrets: Vec<String>,
    ) -> Report {
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        secrets.dedup();
        // Reviews in memory are masked once; spooled ones as they are read back.
        store.for_each_in_memory(|s| s.mask(&secrets));
        Report {
            schema_version: SCHEMA_VERSION,
            transforms: Vec::new(),
            store,
            renamed_assets: renamed.iter().map(RenamedAsset::from).collect(),
            findings,
            masked: secrets,
        }
    }

    /// What summaries need to know about each template, in stack order.
    pub fn heads(&self) -> &[Head] {
        self.store.heads()
    }

    /// The number of templates.
    pub fn templates(&self) -> usize {
        self.heads().len()
    }

    /// The review of the `i`-th template (in stack order), secrets masked.
    pub fn stack(&self, i: usize) -> Cow<'_, StackReport> {
        let mut stack = self.store.get(i);
        if let Cow::Owned(s) = &mut stack {
            s.mask(&self.masked);
        }
        stack
    }

    /// Every template's review, in stack order, read one at a time.
    pub fn stacks(&self) -> impl Iterator<Item = Cow<'_, StackReport>> + '_ {
        (0..self.templates()).map(|i| self.stack(i))
    }

    /// The reviews the text review shows (see [`Report::is_interesting`]), in stack order; the
    /// others are not read.
    pub fn interesting_stacks(&self) -> impl Iterator<Item = Cow<'_, StackReport>> + '_ {
        (0..self.templates())
            .filter(|&i| self.is_interesting(&self.heads()[i]))
            .map(|i| self.stack(i))
    }

    /// Every template's review, owned.
    pub fn into_stacks(self) -> Vec<StackReport> {
        self.stacks().map(Cow::into_owned).collect()
    }

    /// Whether the review has anything to say about a template: it changes, or has changes,
    /// notes or findings.
    pub fn is_interesting(&self, head: &Head) -> bool {
        head.changed()
            || !head.changes.is_empty()
            || !head.notes.is_empty()
            || self.findings.iter().any(|f| f.template == head.template)
    }

    /// Adds the title and rule of every transform the changes and notes name, in registry
    /// order, so each change can show the rule behind it.
    pub fn with_transforms(mut self, registry: &Registry) -> Report {
        let named: std::collections::BTreeSet<&str> = self
            .heads()
            .iter()
            .flat_map(|h| h.changes.iter().chain(&h.notes).map(|(id, _)| id.as_str()))
            .collect();
        self.transforms = registry
            .iter()
            .filter(|t| named.contains(t.id()))
            .map(|t| TransformInfo {
                id: t.id().to_string(),
                title: t.compiled.doc.title.clone(),
                rule: t.compiled.doc.rule.clone(),
            })
            .collect();
        self
    }

    /// The rule line of a transform, if known.
    pub fn rule_of(&self, transform: &str) -> Option<&str> {
        self.transforms
            .iter()
            .find(|t| t.id == transform)
            .map(|t| t.rule.as_str())
    }

    /// Transform ids in registry order (those without [`TransformInfo`] last, by first use).
    pub fn transform_order(&self) -> Vec<String> {
        let mut out: Vec<String> = self.transforms.iter().map(|t| t.id.clone()).collect();
        for head in self.heads() {
            for (id, _) in &head.changes {
                if !out.contains(id) {
                    out.push(id.clone());
                }
            }
        }
        out
    }

    /// Number of changes over all stacks.
    pub fn change_count(&self) -> usize {
        self.heads().iter().map(Head::change_count).sum()
    }

    /// Number of templates whose bytes change.
    pub fn changed_templates(&self) -> usize {
        self.heads().iter().filter(|h| h.changed()).count()
    }

    /// Whether `check` fails: apply would change something, or there are findings.
    pub fn needs_work(&self) -> bool {
        self.has_changes() || !self.findings.is_empty()
    }

    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        self.heads().iter().any(Head::changed)
    }

    /// Changes per transform id, in [`Report::transform_order`].
    pub fn counts_by_transform(&self) -> Vec<(String, usize)> {
        self.transform_order()
            .into_iter()
            .map(|id| {
                let n = self
                    .heads()
                    .iter()
                    .flat_map(|h| &h.changes)
                    .filter(|(t, _)| *t == id)
                    .map(|(_, n)| n)
                    .sum();
                (id, n)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The findings about one template.
    pub fn findings_for<'a>(&'a self, template: &'a str) -> impl Iterator<Item = &'a Finding> {
        self.findings.iter().filter(move |f| f.template == template)
    }
}

/// The string values that `plaintext-secret` findings point at, in the template as hardened
/// and as read (`before`, its text: parsed again only if there is such a finding).
pub fn secret_values(findings: &[Finding], before: &str, after: &Value) -> Vec<String> {
    let secrets: Vec<&str> = findings
        .iter()
        .filter(|f| f.rule == "plaintext-secret")
        .filter_map(|f| f.pointer.as_deref())
        .collect();
    if secrets.is_empty() {
        return Vec::new();
    }
    // The text was parsed when it was read, by the same parser; it cannot fail now.
    let before: Value = crate::assembly::format::parse(before).unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for pointer in secrets {
        for t in [after, &before] {
            if let Some(s) = t.at(pointer).and_then(Value::as_str) {
                if !s.is_empty() && !out.iter().any(|o| o == s) {
                    out.push(s.to_string());
                }
            }
        }
    }
    out
}

/// `/Resources/ID`, escaped.
fn resource_pointer(logical_id: &str) -> String {
    format!(
        "/Resources/{}",
        crate::transform::change::pointer_escape(logical_id)
    )
}

/// `text` with every secret replaced by [`MASK`].
pub fn mask_text(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

/// Masks every string inside `value` (keys stay).
/// [`mask_value`] on a value held as text.
fn mask_text_value(value: &mut JsonText, secrets: &[String]) {
    let mut tree = value.value();
    mask_value(&mut tree, secrets);
    *value = JsonText::of(&tree);
}

fn mask_value(value: &mut serde_json::Value, secrets: &[String]) {
    if secrets.is_empty() {
        return;
    }
    match value {
        serde_json::Value::String(s) => *s = mask_text(s, secrets),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| mask_value(v, secrets)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| mask_value(v, secrets)),
        _ => {}
    }
}

/// `Metadata["aws:cdk:path"]` of a resource.
fn construct_path<'a>(template: &'a serde_json::Value, logical_id: &str) -> Option<&'a str> {
    template
        .get("Resources")?
        .get(logical_id)?
        .at("/Metadata/aws:cdk:path")?
        .as_str()
}

/// A template's report with the parts read in its hardened tree; [`Started::finish`] adds
/// those read in its texts.
#[derive(Debug)]
pub struct Started(StackReport);

impl Started {
    /// About how many bytes the report holds in memory so far.
    pub(crate) fn approximate_size(&self) -> usize {
        store::approximate_size(&self.0)
    }

    /// Finishes the report from the template's text as read (`before`), the bytes written
    /// (`after`, with the new ids of the templates it names) and its findings: whether it is
    /// rewritten, its diff, and the lines of what the notes and findings name (found in the
    /// texts by [`sarif::Locator`]).
    pub fn finish(self, before: &str, after: &str, findings: &[Finding]) -> StackReport {
        let mut report = self.0;
        let pointers: Vec<String> = findings
            .iter()
            .filter_map(|f| {
                f.pointer
                    .clone()
                    .or_else(|| f.logical_id.as_deref().map(resource_pointer))
            })
            .chain(
                report
                    .notes
                    .iter()
                    .filter_map(|n| n.logical_id.as_deref().map(resource_pointer)),
            )
            .collect();
        report.rewritten = before != after;
        if pointers.is_empty() && !report.rewritten {
            return report;
        }
        // Each text is outlined once, for the locators and the diff.
        let read = outline::Outline::new(before);
        let written = match report.rewritten {
            true => outline::Outline::new(after),
            false => read.clone(),
        };
        if !pointers.is_empty() {
            let locators = (sarif::Locator::of(&read), sarif::Locator::of(&written));
            for pointer in pointers {
                let at = [locators.0.locate(&pointer), locators.1.locate(&pointer)];
                report.lines.insert(pointer, at);
            }
        }
        if report.rewritten {
            report.diff = diff::unified_outlined(&report.template, &read, &written);
        }
        report
    }
}

/// Resources present in `after` and not in the template as read, in `after`'s order.
fn added_resources(before: &Original, after: &serde_json::Value) -> Vec<String> {
    crate::transform::cfn::resources(after)
        .filter(|(id, _)| !before.has(id))
        .map(|(id, _)| id.clone())
        .collect()
}

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The terminal review.
    #[default]
    Text,
    /// A pull-request comment.
    Markdown,
    /// The machine format, [`json::JsonReport`].
    Json,
    /// SARIF 2.1.0, for code scanning.
    Sarif,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Json => "json",
            Format::Sarif => "sarif",
        }
    }
}

/// How to render; plain values, no terminal or command-line types.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// ANSI colors (text format only).
    pub color: bool,
    /// True when the changes were written (`apply`): wording says "changed", and SARIF line
    /// numbers refer to the hardened templates. False for `diff` and `check`: "would change",
    /// lines of the templates as they are on disk.
    pub applied: bool,
    /// Markdown: the maximum size in bytes; past it, diffs and then stack sections are left out
    /// with a note. `None`: no limit.
    pub markdown_limit: Option<usize>,
    /// SARIF: a relative path prepended to every template path in artifact URIs, e.g. `cdk.out`
    /// when the assembly is `cdk.out` below the repository root.
    pub uri_prefix: Option<String>,
}

/// GitHub limits a comment to 65,536 characters; this leaves room for a header a workflow adds.
pub const DEFAULT_MARKDOWN_LIMIT: usize = 60_000;

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            color: false,
            applied: false,
            markdown_limit: Some(DEFAULT_MARKDOWN_LIMIT),
            uri_prefix: None,
        }
    }
}

/// Renders the report in `format`.
pub fn render(report: &Report, format: Format, options: &RenderOptions) -> String {
    match format {
        Format::Text => text::render(report, options),
        Format::Markdown => markdown::render(report, options),
        Format::Json => json::render(report),
        Format::Sarif => sarif::render(report, options),
    }
}

/// Writes the report in `format` to `w`; the text review is written one stack at a time.
pub fn write_to(
    report: &Report,
    format: Format,
    options: &RenderOptions,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    match format {
        Format::Text => text::write(report, options, w),
        Format::Json => json::write(report, w),
        _ => w.write_all(render(report, format, options).as_bytes()),
    }
}

/// The JSON Schema of the JSON report ([`json::JsonReport`]), as committed in
/// `schema/report.schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(json::JsonReport);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}

/// One line: what apply does (or did), e.g. "apply would change 7 of 10 templates (34
/// changes); 2 findings".
pub fn headline(report: &Report, applied: bool) -> String {
    let templates = report.templates();
    let changed = report.changed_templates();
    let changes = report.change_count();
    let findings = report.findings.len();
    let verb = if applied { "changed" } else { "would change" };
    let what = if changed == 0 {
        format!(
            "apply {} nothing in {templates} template{}",
            if applied { "changed" } else { "would change" },
            plural(templates)
        )
    } else {
        format!(
            "apply {verb} {changed} of {templates} template{} ({changes} change{})",
            plural(templates),
            plural(changes)
        )
    };
    format!("{what}; {findings} finding{}", plural(findings))
}

/// A few lines for the terminal when the full report goes to a file: the headline, counts per
/// transform, per stack (at most ten), and the findings.
pub fn summary(report: &Report, applied: bool) -> String {
    use std::fmt::Write;
    let mut out = format!("cdk-harden: {}\n", headline(report, applied));
    let counts = report.counts_by_transform();
    if !counts.is_empty() {
        let list: Vec<String> = counts.iter().map(|(id, n)| format!("{id} {n}")).collect();
        let _ = writeln!(out, "  by transform: {}", list.join(", "));
    }
    let stacks: Vec<&Head> = report
        .heads()
        .iter()
        .filter(|h| report.is_interesting(h))
        .collect();
    const SHOWN: usize = 10;
    for s in stacks.iter().take(SHOWN) {
        let findings = report.findings_for(&s.template).count();
        let changes = s.change_count();
        let mut parts = vec![format!("{changes} change{}", plural(changes))];
        if findings > 0 {
            parts.push(format!("{findings} finding{}", plural(findings)));
        }
        let notes = s.note_count();
        if notes > 0 {
            parts.push(format!("{notes} note{}", plural(notes)));
        }
        let _ = writeln!(out, "  {}: {}", s.display_name, parts.join(", "));
    }
    if stacks.len() > SHOWN {
        let _ = writeln!(out, "  … and {} more stacks", stacks.len() - SHOWN);
    }
    out
}

/// `"s"` unless `n` is 1.
pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A JSON pointer relative to a resource: `/Resources/X/Properties/A` → `/Properties/A`; the
/// resource itself → empty.
pub fn relative_pointer<'a>(pointer: &'a str, logical_id: &str) -> &'a str {
    let escaped = crate::transform::change::pointer_escape(logical_id);
    match pointer
        .strip_prefix("/Resources/")
        .and_then(|rest| rest.strip_prefix(escaped.as_ref()))
    {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => pointer,
    }
}

/// The lines of `text`, as `text.split('\n')` gives them, found with a vectorized search for
/// all line breaks at once: templates have short lines, and the review splits every template
/// it diffs and locates notes in.
pub(crate) fn split_lines(text: &str) -> impl Iterator<Item = &str> + '_ {
    let mut start = 0;
    memchr::memchr_iter(b'\n', text.as_bytes())
        .map(Some)
        .chain(std::iter::once(None))
        .map(move |end| {
            let end = end.unwrap_or(text.len());
            let line = &text[start..end];
            start = end + 1;
            line
        })
}

/// The number of spaces a line starts with: its depth in CDK's one-space format.
pub(crate) fn indent(line: &str) -> usize {
    line.bytes().take_while(|&b| b == b' ').count()
}

/// `text` cut to at most `max` characters, with `…` when cut.
pub fn shorten(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    // Longer than `max` bytes: with the first `max` ASCII, it has more than `max` characters,
    // and the first `max - 1` are as many bytes.
    let end = if max > 0 && text.as_bytes()[..max].is_ascii() {
        max - 1
    } else {
        // Only the first `max` characters are looked at: a value can be a whole policy document.
        if text.char_indices().nth(max).is_none() {
            return Cow::Borrowed(text);
        }
        text.char_indices()
            .nth(max.saturating_sub(1))
            .map_or(text.len(), |(i, _)| i)
    };
    let mut cut = String::with_capacity(end + '…'.len_utf8());
    cut.push_str(&text[..end]);
    cut.push('…');
    Cow::Owned(cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn relative_pointers() {
        assert_eq!(
            relative_pointer("/Resources/B/Properties/X", "B"),
            "/Properties/X"
        );
        assert_eq!(relative_pointer("/Resources/B", "B"), "");
        assert_eq!(
            relative_pointer("/Resources/BB/Properties", "B"),
            "/Resources/BB/Properties"
        );
        assert_eq!(relative_pointer("/Parameters/P", "B"), "/Parameters/P");
    }

    #[test]
    fn split_lines_splits_as_split_does() {
        for text in [
            "",
            "\n",
            "a",
            "a\n",
            "\na",
            "a\nb",
            "a\n\nb\n",
            "é\r\n€\n\n",
        ] {
            let ours: Vec<&str> = split_lines(text).collect();
            let std: Vec<&str> = text.split('\n').collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }

    #[test]
    fn previews_are_cut_on_characters() {
        assert_eq!(
            shorten(JsonText::of(&json!("Enabled")).as_str(), 60),
            "\"Enabled\""
        );
        assert_eq!(shorten("ééééé", 3), "éé…");
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcd", 3), "ab…");
        assert_eq!(shorten("abcé", 3), "ab…");
        assert_eq!(shorten("abé", 3), "abé");
        assert_eq!(shorten("a", 0), "…");
    }

    proptest::proptest! {
        /// The ASCII shortcut cuts where counting characters does.
        #[test]
        fn issue_8_previews_cut_as_counting_characters_does(
            text in "[a-c\\\"é€]{0,12}",
            max in 0usize..10,
        ) {
            let chars: Vec<char> = text.chars().collect();
            let expected = if chars.len() <= max {
                text.clone()
            } else {
                chars[..max.saturating_sub(1)].iter().chain(['…'].iter()).collect()
            };
            proptest::prop_assert_eq!(shorten(&text, max), expected);
        }
    }

    #[test]
    fn masking_reaches_values_held_as_text() {
        let secrets = vec!["hunter2".to_string()];
        let tree = serde_json::from_str(r#"{"Variables": {"DB_PASSWORD": "hunter2"}, "N": 1.50}"#);
        let mut v = JsonText::of(&tree.unwrap());
        mask_text_value(&mut v, &secrets);
        assert_eq!(
            v.as_str(),
            format!(r#"{{"Variables":{{"DB_PASSWORD":"{MASK}"}},"N":1.50}}"#)
        );
    }

    #[test]
    fn masking_reaches_nested_strings() {
        let secrets = vec!["hunter2".to_string()];
        let mut v =
            json!({"Variables": {"DB_PASSWORD": "hunter2", "URL": "x://u:hunter2@h"}, "N": 1});
        mask_value(&mut v, &secrets);
        assert_eq!(
            v,
            json!({"Variables": {"DB_PASSWORD": MASK, "URL": format!("x://u:{MASK}@h")}, "N": 1})
        );
        assert_eq!(mask_text("is hunter2", &secrets), format!("is {MASK}"));
    }

    #[test]
    fn added_resources_keep_template_order() {
        let before = json!({"Resources": {"A": {}}});
        let after = json!({"Resources": {"A": {}, "C": {}, "B": {}}});
        assert_eq!(
            added_resources(&Original::of(&before), &after),
            vec!["C", "B"]
        );
    }
}
