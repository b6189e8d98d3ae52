//! The JSON report: a documented, versioned format for machines.
//!
//! [`JsonReport`] is the format; its JSON Schema is `schema/report.schema.json`
//! (`cdk-harden schema --report`). Lists are flat, and every item names its stack, so
//! `jq '.changes[] | select(.transform == "kms")'` needs no nesting. `schemaVersion` changes only
//! on incompatible changes; new fields may appear within a version. Output is deterministic:
//! assembly order, no timestamps, paths relative to the assembly root.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Head, Permission, RenamedAsset, Report, StackReport, TransformInfo};
use crate::findings::Finding;
use crate::transform::{JsonText, NoteKind, Op};

/// The JSON report of `cdk-harden apply|diff|check --format json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "cdk-harden report")]
pub struct JsonReport {
    /// The version of this format (currently 1).
    pub schema_version: u32,
    pub summary: Summary,
    /// The transforms named by changes and notes, in the order they run.
    pub transforms: Vec<TransformInfo>,
    /// Every template of the assembly (stacks and nested stacks), in assembly order.
    pub stacks: Vec<StackEntry>,
    /// Every change, in stack order, then in the order the engine applied them.
    pub changes: Vec<ChangeEntry>,
    /// What the transforms did not do, and what needs a person.
    pub notes: Vec<NoteEntry>,
    /// IAM statements the changes add (new or changed statements).
    pub permissions: Vec<PermissionEntry>,
    /// Problems apply cannot fix; any of these fails `check`. Secret values are never included.
    pub findings: Vec<Finding>,
    /// Template asset ids replaced because their templates changed.
    pub renamed_assets: Vec<RenamedAsset>,
}

/// Counts over the whole assembly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Summary {
    /// Number of templates (stacks and nested stacks).
    pub templates: usize,
    /// Templates whose bytes change (including those that change only in asset ids).
    pub changed_templates: usize,
    pub changes: usize,
    pub notes: usize,
    pub findings: usize,
    /// True when apply would change nothing and there are no findings: `check` exits 0.
    pub compliant: bool,
}

/// One template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackEntry {
    /// The artifact id (for a nested stack: the parent's artifact id, `/`, its logical id).
    pub stack: String,
    /// The construct path CDK shows, e.g. `PipelineStack/Prod/Service`.
    pub display_name: String,
    /// The template file, relative to the assembly root.
    pub template: String,
    /// `ACCOUNT/REGION`; `unknown-account`/`unknown-region` for environment-agnostic stacks.
    pub environment: String,
    /// The enclosing Stage's construct path, e.g. `PipelineStack/Prod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub nested: bool,
    /// Whether the template's bytes change.
    pub changed: bool,
    pub changes: usize,
}

/// One change, applied (`apply`) or to apply (`diff`, `check`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeEntry {
    /// The stack's artifact id.
    pub stack: String,
    pub display_name: String,
    /// The template file, relative to the assembly root.
    pub template: String,
    pub logical_id: String,
    /// `Metadata["aws:cdk:path"]` of the resource, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub construct_path: Option<String>,
    /// The resource type, e.g. `AWS::S3::Bucket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// True when the resource itself is new (a transform added it).
    pub resource_added: bool,
    /// The transform that made the change.
    pub transform: String,
    /// The transform's rule, one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// JSON pointer into the template (RFC 6901).
    pub pointer: String,
    pub op: Op,
    /// The value before; absent when there was none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The value after.
    pub new: Value,
    /// One line: what and why.
    pub reason: String,
    /// True when a value the app set was overwritten under `transforms.enforce`.
    pub enforced: bool,
    /// Review warnings, e.g. "requires replacement: …".
    pub warnings: Vec<String>,
}

/// One note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NoteEntry {
    pub stack: String,
    pub display_name: String,
    pub template: String,
    pub transform: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub construct_path: Option<String>,
    /// `skipped`, `opt-out`, `left-alone`, `action-required` or `refused`.
    pub kind: NoteKind,
    pub message: String,
}

/// One new IAM statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermissionEntry {
    pub stack: String,
    pub display_name: String,
    pub template: String,
    #[serde(flatten)]
    pub permission: Permission,
}

impl JsonReport {
    /// The JSON view of a report, whole in memory. [`write()`] writes the same JSON without
    /// building it.
    pub fn from_report(report: &Report) -> JsonReport {
        let stacks: Vec<_> = report.stacks().collect();
        let changes: Vec<_> = stacks
            .iter()
            .flat_map(|s| change_entries(report, s))
            .collect();
        let notes: Vec<_> = stacks.iter().flat_map(|s| note_entries(s)).collect();
        JsonReport {
            schema_version: report.schema_version,
            summary: summary(report),
            transforms: report.transforms.clone(),
            stacks: stack_entries(report).collect(),
            changes,
            notes,
            permissions: stacks.iter().flat_map(|s| permission_entries(s)).collect(),
            findings: report.findings.clone(),
            renamed_assets: report.renamed_assets.clone(),
        }
    }
}

fn summary(report: &Report) -> Summary {
    let heads = report.heads();
    Summary {
        templates: report.templates(),
        changed_templates: report.changed_templates(),
        changes: heads.iter().map(|h| h.change_count()).sum(),
        notes: heads.iter().map(|h| h.note_count()).sum(),
        findings: report.findings.len(),
        compliant: !report.needs_work(),
    }
}

fn stack_entries(report: &Report) -> impl Iterator<Item = StackEntry> + '_ {
    report.heads().iter().map(|h| StackEntry {
        stack: h.name.clone(),
        display_name: h.display_name.clone(),
        template: h.template.clone(),
        environment: h.environment.clone(),
        stage: h.stage.clone(),
        nested: h.nested,
        changed: h.changed(),
        changes: h.change_count(),
    })
}

fn change_entries<'a>(
    report: &'a Report,
    s: &'a StackReport,
) -> impl Iterator<Item = ChangeEntry> + 'a {
    s.changes.iter().map(move |c| ChangeEntry {
        stack: s.name.clone(),
        display_name: s.display_name.clone(),
        template: s.template.clone(),
        logical_id: c.logical_id.clone(),
        construct_path: c.construct_path.clone(),
        resource_type: c.resource_type.clone(),
        resource_added: s.added.contains(&c.logical_id),
        transform: c.transform.clone(),
        rule: report.rule_of(&c.transform).map(str::to_string),
        pointer: c.pointer.clone(),
        op: c.op,
        old: c.old.as_ref().map(JsonText::value),
        new: c.new.value(),
        reason: c.reason.clone(),
        enforced: c.enforced,
        warnings: c.warnings.clone(),
    })
}

fn note_entries(s: &StackReport) -> impl Iterator<Item = NoteEntry> + '_ {
    s.notes.iter().map(move |n| NoteEntry {
        stack: s.name.clone(),
        display_name: s.display_name.clone(),
        template: s.template.clone(),
        transform: n.transform.clone(),
        logical_id: n.logical_id.clone(),
        construct_path: n
            .logical_id
            .as_deref()
            .and_then(|id| s.construct_paths.get(id).cloned()),
        kind: n.kind,
        message: n.message.clone(),
    })
}

fn permission_entries(s: &StackReport) -> impl Iterator<Item = PermissionEntry> + '_ {
    s.permissions.iter().map(move |p| PermissionEntry {
        stack: s.name.clone(),
        display_name: s.display_name.clone(),
        template: s.template.clone(),
        permission: p.clone(),
    })
}

/// The JSON report serialized straight from the report: each list is made one entry at a
/// time, reading one template's review at a time (the reviews of large assemblies are in the
/// spool), so memory stays flat however many changes there are. Field for field the same as
/// [`JsonReport`].
struct Streamed<'a>(&'a Report);

/// A list serialized from an iterator made when it is serialized.
struct List<F>(F);

impl<F, I> Serialize for List<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((self.0)())
    }
}

impl Serialize for Streamed<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let report = self.0;
        // Only the templates with something to list are read (from the spool, for a large
        // assembly), once for each list they are in.
        let with = |wanted: fn(&Head) -> bool| {
            (0..report.templates())
                .filter(move |&i| wanted(&report.heads()[i]))
                .map(|i| report.stack(i))
        };
        let mut out = s.serialize_struct("JsonReport", 9)?;
        out.serialize_field("schemaVersion", &report.schema_version)?;
        out.serialize_field("summary", &summary(report))?;
        out.serialize_field("transforms", &report.transforms)?;
        out.serialize_field("stacks", &List(|| stack_entries(report)))?;
        let changes = List(|| {
            with(|h| h.change_count() > 0)
                .flat_map(|s| change_entries(report, &s).collect::<Vec<_>>())
        });
        out.serialize_field("changes", &changes)?;
        let notes = List(|| {
            with(|h| h.note_count() > 0).flat_map(|s| note_entries(&s).collect::<Vec<_>>())
        });
        out.serialize_field("notes", &notes)?;
        let permissions = List(|| {
            with(|h| h.permissions > 0).flat_map(|s| permission_entries(&s).collect::<Vec<_>>())
        });
        out.serialize_field("permissions", &permissions)?;
        out.serialize_field("findings", &report.findings)?;
        out.serialize_field("renamedAssets", &report.renamed_assets)?;
        out.end()
    }
}

/// Writes the report as pretty-printed JSON (two-space indent), ending with a newline.
pub fn write(report: &Report, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, &Streamed(report))?;
    w.write_all(b"\n")
}

/// The report as pretty-printed JSON (two-space indent), ending with a newline.
pub fn render(report: &Report) -> String {
    let mut text = Vec::new();
    write(report, &mut text).expect("a report serializes into memory");
    String::from_utf8(text).expect("serde_json writes UTF-8")
}
