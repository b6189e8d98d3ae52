//! Issue 7: the review in text, markdown, JSON and SARIF, and `--output`.
//!
//! The snapshot tests run the real binary on copies of the committed fixtures and compare its
//! output with the files in `tests/snapshots/`. When the review changes on purpose (a new or
//! changed transform alters the hardened fixtures, a renderer changes), regenerate them with
//!
//! ```sh
//! UPDATE_SNAPSHOTS=1 cargo test --test report
//! ```
//!
//! and read the diff of `tests/snapshots/` before committing it. `schema/report.schema.json` is
//! regenerated the same way as the other schemas: `UPDATE_SCHEMAS=1 cargo test --test report`.
//!
//! The snapshots must not need sanitizing: the binary runs in the copy's directory with the
//! assembly given as the relative `cdk.out`, and every output is checked for absolute paths and
//! timestamps before it is compared.

mod common;

use std::path::Path;

use cdk_harden::report::json::JsonReport;
use cdk_harden::report::{self, Format, RenderOptions, Report};
use common::*;
use serde_json::Value;

const APPS: &[&str] = &["pipelines", "shapes", "secrets"];

/// Runs `cdk-harden ARGS` in `cwd` with the example's config, colors left to the binary.
fn harden_cli(cwd: &Path, app: &str, args: &[&str]) -> std::process::Output {
    let config = config(app);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", config.to_str().unwrap()]);
    bin()
        .env_remove("CLICOLOR_FORCE")
        .current_dir(cwd)
        .args(&all)
        .output()
        .expect("run cdk-harden")
}

/// Compares `actual` with `tests/snapshots/NAME`, or rewrites it under `UPDATE_SNAPSHOTS`.
fn assert_snapshot(name: &str, actual: &str) {
    let path = repo().join("tests/snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "tests/snapshots/{name} is missing: run `UPDATE_SNAPSHOTS=1 cargo test --test report`"
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "tests/snapshots/{name} differs from the output, first at line {}:\n  expected: {:?}\n  actual:   {:?}\nIf the change is intended, run `UPDATE_SNAPSHOTS=1 cargo test --test report` and review the diff.",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

/// Fails if `text` holds an absolute path of this machine or a timestamp.
fn assert_portable(what: &str, text: &str, dirs: &[&Path]) {
    for dir in dirs {
        let d = dir.to_string_lossy();
        assert!(
            !text.contains(d.as_ref()),
            "{what}: contains the absolute path {d}"
        );
    }
    for needle in ["/tmp/", "/home/", "/root/", "/Users/", "C:\\"] {
        assert!(!text.contains(needle), "{what}: contains `{needle}`");
    }
    // ISO 8601 date-times: 2024-01-31T12:34
    let b = text.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    for i in 0..b.len().saturating_sub(16) {
        let stamp = (0..4).all(|k| digit(i + k))
            && b[i + 4] == b'-'
            && digit(i + 5)
            && digit(i + 6)
            && b[i + 7] == b'-'
            && digit(i + 8)
            && digit(i + 9)
            && (b[i + 10] == b'T' || b[i + 10] == b' ')
            && digit(i + 11)
            && digit(i + 12)
            && b[i + 13] == b':';
        assert!(
            !stamp,
            "{what}: contains a timestamp at byte {i}: {}",
            &text[i..i + 16]
        );
    }
}

fn ext(format: &str) -> &str {
    match format {
        "markdown" => "md",
        "text" => "txt",
        "sarif" => "sarif.json",
        other => other,
    }
}

#[test]
fn issue_7_snapshots_of_text_markdown_and_json_are_deterministic_and_portable() {
    for app in APPS {
        let (dir, _root) = copy_fixture(app);
        let mut formats = vec!["text", "markdown", "json"];
        if *app == "secrets" {
            formats.push("sarif");
        }
        for format in formats {
            let args = ["diff", "cdk.out", "--format", format];
            let first = harden_cli(dir.path(), app, &args);
            assert_eq!(
                first.status.code(),
                Some(0),
                "{app} {format}: {}",
                stderr(&first)
            );
            let out = stdout(&first);
            let again = stdout(&harden_cli(dir.path(), app, &args));
            assert_eq!(out, again, "{app} {format}: two runs differ");
            assert!(
                !out.contains('\x1b'),
                "{app} {format}: colors in piped output"
            );
            assert_portable(&format!("{app} {format}"), &out, &[dir.path(), &repo()]);
            assert_snapshot(&format!("{app}.diff.{}", ext(format)), &out);
        }
    }
}

#[test]
fn issue_7_json_output_deserializes_into_the_documented_types() {
    for app in APPS {
        let (dir, _root) = copy_fixture(app);
        let out = stdout(&harden_cli(
            dir.path(),
            app,
            &["diff", "cdk.out", "--format", "json"],
        ));
        // `deny_unknown_fields`: a field the types do not document fails here.
        let report: JsonReport =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{app}: {e}"));
        assert_eq!(
            serde_json::to_string_pretty(&report).unwrap() + "\n",
            out,
            "{app}: the types do not round-trip the output"
        );
        assert_eq!(report.schema_version, cdk_harden::report::SCHEMA_VERSION);
        assert_eq!(report.summary.changes, report.changes.len());
        assert_eq!(report.summary.findings, report.findings.len());
        assert_eq!(report.summary.templates, report.stacks.len());
        for c in &report.changes {
            let stack = report
                .stacks
                .iter()
                .find(|s| s.stack == c.stack)
                .expect("the change's stack is listed");
            assert_eq!(stack.display_name, c.display_name);
            // A change is on its resource, or adds a template parameter that resource needs.
            assert!(
                c.pointer
                    .starts_with(&format!("/Resources/{}", c.logical_id))
                    || c.pointer.starts_with("/Parameters/"),
                "{c:?}"
            );
            assert!(c.resource_type.is_some(), "{c:?}");
            assert!(
                c.rule.as_deref().is_some_and(|r| !r.is_empty()),
                "every change carries its rule: {c:?}"
            );
            assert!(
                report.transforms.iter().any(|t| t.id == c.transform),
                "{c:?}"
            );
        }
        if *app != "secrets" {
            assert!(
                !report.changes.is_empty(),
                "{app}: the fixture has changes to show"
            );
            assert!(report.changes.iter().any(|c| c.construct_path.is_some()));
        }
    }
}

#[test]
fn issue_7_json_output_validates_against_the_committed_schema() {
    let schema = repo().join("schema/report.schema.json");
    let mut files = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    for app in APPS {
        let (copy, _root) = copy_fixture(app);
        let out = stdout(&harden_cli(
            copy.path(),
            app,
            &["diff", "cdk.out", "--format", "json"],
        ));
        let file = dir.path().join(format!("{app}.json"));
        std::fs::write(&file, out).unwrap();
        files.push(file);
    }
    let failures = common::validators::json_schema_errors(&schema, &files);
    assert!(failures.is_empty(), "{failures:#?}");
    // The validator does reject a report that breaks the schema.
    let bad = dir.path().join("bad.json");
    let mut value = read_json(&files[0]);
    value["changes"][0]["op"] = Value::String("delete".into());
    std::fs::write(&bad, value.to_string()).unwrap();
    assert_eq!(
        common::validators::json_schema_errors(&schema, &[bad]).len(),
        1
    );
}

#[test]
fn issue_7_report_schema_is_current_and_printed_by_schema_report() {
    let generated = report::schema_json();
    let path = repo().join("schema/report.schema.json");
    if std::env::var_os("UPDATE_SCHEMAS").is_some()
        || std::env::var_os("UPDATE_SNAPSHOTS").is_some()
    {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schema/report.schema.json is stale: regenerate with `UPDATE_SCHEMAS=1 cargo test --test report`"
    );
    let o = run(&repo(), &["schema", "--report"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), generated);
}

#[test]
fn issue_7_markdown_renders_to_html_with_tables_and_details() {
    let (dir, _root) = copy_fixture("pipelines");
    let md = stdout(&harden_cli(
        dir.path(),
        "pipelines",
        &[
            "diff",
            "cdk.out",
            "--format",
            "markdown",
            "--markdown-limit",
            "0",
        ],
    ));
    let mut options = pulldown_cmark::Options::empty();
    options.insert(pulldown_cmark::Options::ENABLE_TABLES);
    let parser = pulldown_cmark::Parser::new_ext(&md, options);
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);

    // The summary table: stacks × transforms.
    let summary = html.split("</table>").next().unwrap();
    assert!(summary.contains("<table>"), "{html}");
    for header in [
        "Stack",
        "<code>bucket-versioning</code>",
        "<code>bucket-logging</code>",
        "<code>key-rotation</code>",
        "Changes",
    ] {
        assert!(
            summary.contains(&format!("<th>{header}</th>"))
                || summary.contains(&format!(">{header}</th>")),
            "{header}: {summary}"
        );
    }
    assert!(
        summary.contains("<code>PipelineStack/{Dev,UAT}/Service</code>"),
        "{summary}"
    );
    // The IAM tables, one per section with new permissions.
    assert!(html.matches("<table>").count() >= 2, "{html}");
    assert!(
        html.contains("<code>Service:logging.s3.amazonaws.com</code>"),
        "{html}"
    );
    // Diffs in collapsible blocks, as diff code.
    let details = html.matches("<details>").count();
    assert!(details >= 5, "{details}: {html}");
    assert_eq!(details, html.matches("</details>").count());
    assert_eq!(details, html.matches("<summary>").count());
    assert_eq!(
        details,
        html.matches("<pre><code class=\"language-diff\">").count(),
        "{html}"
    );
    // No table fell apart into a paragraph of pipes.
    assert!(!html.contains("<p>| "), "{html}");
    // Stages with the same changes are grouped.
    assert!(html.contains("Same in Dev, UAT"), "{html}");
}

/// The pipelines report, dry-run, through the library.
fn pipelines_report() -> Report {
    cdk_harden::run(&cdk_harden::Options {
        assembly: fixture("pipelines"),
        config: Some(config("pipelines")),
        out: None,
        mode: cdk_harden::Mode::DryRun,
    })
    .unwrap()
    .report
}

/// `s` with `from` replaced by `to` in every text it holds.
fn renamed(
    s: &cdk_harden::report::StackReport,
    from: &str,
    to: &str,
) -> cdk_harden::report::StackReport {
    let text = |t: &mut String| *t = t.replace(from, to);
    let json = |t: &mut cdk_harden::transform::JsonText| {
        *t = cdk_harden::transform::JsonText::of(
            &serde_json::from_str(&t.as_str().replace(from, to)).unwrap(),
        )
    };
    let mut copy = s.clone();
    for t in [
        &mut copy.name,
        &mut copy.display_name,
        &mut copy.template,
        &mut copy.environment,
        &mut copy.diff.text,
    ] {
        text(t);
    }
    copy.stage.iter_mut().for_each(text);
    copy.added.iter_mut().for_each(text);
    for c in &mut copy.changes {
        for t in [
            &mut c.transform,
            &mut c.logical_id,
            &mut c.pointer,
            &mut c.reason,
        ] {
            text(t);
        }
        c.construct_path.iter_mut().for_each(text);
        c.resource_type.iter_mut().for_each(text);
        c.warnings.iter_mut().for_each(text);
        c.old.iter_mut().for_each(json);
        json(&mut c.new);
    }
    for n in &mut copy.notes {
        text(&mut n.transform);
        text(&mut n.message);
        n.logical_id.iter_mut().for_each(text);
    }
    for p in &mut copy.permissions {
        for t in [
            &mut p.logical_id,
            &mut p.resource_type,
            &mut p.document,
            &mut p.effect,
        ] {
            text(t);
        }
        for list in [&mut p.actions, &mut p.resources, &mut p.principals] {
            list.iter_mut().for_each(text);
        }
        p.condition.iter_mut().for_each(text);
        json(&mut p.statement);
    }
    copy.construct_paths = std::mem::take(&mut copy.construct_paths)
        .into_iter()
        .map(|(k, v)| (k.replace(from, to), v.replace(from, to)))
        .collect();
    copy
}

/// A report for an assembly with `stages` copies of the pipelines app's Dev stage.
fn many_stages(stages: usize, distinct: bool) -> Report {
    let report = pipelines_report();
    let all = report.clone().into_stacks();
    let dev: Vec<_> = all
        .iter()
        .filter(|s| s.stage.as_deref() == Some("PipelineStack/Dev"))
        .cloned()
        .collect();
    let pipeline = all.iter().find(|s| s.stage.is_none()).cloned().unwrap();
    let mut stacks = Vec::new();
    for n in 0..stages {
        let name = format!("Stage{n:03}");
        for s in &dev {
            let mut copy = renamed(s, "PipelineStack/Dev", &format!("PipelineStack/{name}"));
            copy.template = s.template.replace("Dev", &name);
            if distinct {
                for c in &mut copy.changes {
                    c.reason = format!("{} ({name})", c.reason);
                }
            }
            stacks.push(copy);
        }
    }
    stacks.push(pipeline);
    let mut many = Report::assemble(stacks, report.findings.clone(), &[], report.masked.clone());
    many.transforms = report.transforms.clone();
    many.renamed_assets = report.renamed_assets.clone();
    many
}

#[test]
fn issue_7_markdown_stays_readable_on_a_100_stage_assembly() {
    // Identical stages: one section per stack kind, whatever the number of stages.
    let report = many_stages(100, false);
    let md = report::render(&report, Format::Markdown, &RenderOptions::default());
    assert!(md.len() <= report::DEFAULT_MARKDOWN_LIMIT, "{}", md.len());
    assert_eq!(
        md.matches("\n### ").count(),
        3,
        "Service, Storage, PipelineStack:\n{md}"
    );
    assert!(md.contains("PipelineStack/{Stage000,Stage001,"), "{md}");
    assert!(md.contains("Same in Stage000, Stage001, Stage002"), "{md}");

    // 100 different stages: cut to the limit, diffs first, with a note.
    let report = many_stages(100, true);
    let full = report::render(
        &report,
        Format::Markdown,
        &RenderOptions {
            markdown_limit: None,
            ..Default::default()
        },
    );
    assert!(
        full.len() > report::DEFAULT_MARKDOWN_LIMIT,
        "{}",
        full.len()
    );
    let md = report::render(&report, Format::Markdown, &RenderOptions::default());
    assert!(md.len() <= report::DEFAULT_MARKDOWN_LIMIT, "{}", md.len());
    assert!(md.contains("left out to keep this comment"), "{md}");
    assert!(md.contains("| Stack |"), "the summary table is kept");
    assert!(md.ends_with("</sub>\n"), "the footer is kept");
}

#[test]
fn issue_7_diff_and_dry_run_leave_the_assembly_byte_identical() {
    let (dir, root) = copy_fixture("pipelines");
    let before = snapshot(&root);
    let mut outputs = Vec::new();
    for format in ["text", "markdown", "json", "sarif"] {
        let o = harden_cli(
            dir.path(),
            "pipelines",
            &["diff", "cdk.out", "--format", format],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        outputs.push(stdout(&o));
    }
    let dry = harden_cli(dir.path(), "pipelines", &["apply", "--dry-run", "cdk.out"]);
    assert_eq!(dry.status.code(), Some(0));
    assert_eq!(stdout(&dry), outputs[0], "`apply --dry-run` is `diff`");
    let check = harden_cli(dir.path(), "pipelines", &["check", "cdk.out"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(snapshot(&root) == before, "the assembly changed");
    assert!(
        outputs[0].contains("apply would change 7 of 7 templates"),
        "{}",
        outputs[0]
    );
}

#[test]
fn issue_7_output_writes_the_full_report_and_prints_a_summary() {
    let (dir, root) = copy_fixture("pipelines");
    let full = stdout(&harden_cli(
        dir.path(),
        "pipelines",
        &["diff", "cdk.out", "--format", "markdown"],
    ));
    let o = harden_cli(
        dir.path(),
        "pipelines",
        &[
            "diff",
            "cdk.out",
            "--format",
            "markdown",
            "--output",
            "review.md",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("review.md")).unwrap(),
        full
    );
    let summary = stdout(&o);
    let json: JsonReport = serde_json::from_str(&stdout(&harden_cli(
        dir.path(),
        "pipelines",
        &["diff", "cdk.out", "--format", "json"],
    )))
    .unwrap();
    assert!(summary.lines().count() <= 15, "{summary}");
    let headline = format!(
        "cdk-harden: apply would change {} of {} templates ({} changes); 0 findings\n",
        json.summary.changed_templates, json.summary.templates, json.summary.changes
    );
    assert!(summary.starts_with(&headline), "{summary}");
    let mut by_transform: Vec<String> = Vec::new();
    for t in &json.transforms {
        let n = json.changes.iter().filter(|c| c.transform == t.id).count();
        if n > 0 {
            by_transform.push(format!("{} {n}", t.id));
        }
    }
    assert!(
        summary.contains(&format!("  by transform: {}\n", by_transform.join(", "))),
        "{summary}"
    );
    let prod = json
        .stacks
        .iter()
        .find(|s| s.display_name == "PipelineStack/Prod/Service")
        .unwrap();
    assert!(
        summary.contains(&format!(
            "  PipelineStack/Prod/Service: {} changes",
            prod.changes
        )),
        "{summary}"
    );
    assert!(
        summary.ends_with("full review (markdown): review.md\n"),
        "{summary}"
    );

    // The file gets no colors even when the terminal would.
    let o = bin()
        .env("CLICOLOR_FORCE", "1")
        .current_dir(dir.path())
        .args([
            "diff",
            "cdk.out",
            "--format",
            "text",
            "--output",
            "review.txt",
            "--config",
        ])
        .arg(config("pipelines"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let text = std::fs::read_to_string(dir.path().join("review.txt")).unwrap();
    assert!(
        !text.contains('\x1b') && text.contains("[~] AWS::S3::Bucket"),
        "{text}"
    );

    // apply with --output: the changes are written, the review goes to the file.
    let o = harden_cli(
        dir.path(),
        "pipelines",
        &[
            "apply",
            "cdk.out",
            "--format",
            "json",
            "--output",
            "applied.json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("cdk-harden: apply changed 7 of 7 templates"),
        "{}",
        stdout(&o)
    );
    let applied: JsonReport =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("applied.json")).unwrap())
            .unwrap();
    assert_eq!(applied.changes.len(), json.changes.len());
    assert!(
        snapshot(&root) != snapshot(&fixture("pipelines")),
        "apply wrote the assembly"
    );

    // An unwritable --output is an error naming the file (exit 2).
    let o = harden_cli(
        dir.path(),
        "pipelines",
        &["diff", "cdk.out", "--output", "no/such/dir/review.txt"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no/such/dir/review.txt"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn issue_7_text_is_colored_only_on_request_and_never_under_no_color() {
    let (dir, _root) = copy_fixture("pipelines");
    let with = |vars: &[(&str, &str)]| {
        let mut cmd = bin();
        cmd.env_remove("CLICOLOR_FORCE").current_dir(dir.path());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let o = cmd
            .args(["diff", "cdk.out", "--config"])
            .arg(config("pipelines"))
            .output()
            .unwrap();
        stdout(&o)
    };
    let piped = with(&[]);
    assert!(!piped.contains('\x1b'), "piped output is plain");
    let forced = with(&[("CLICOLOR_FORCE", "1")]);
    assert!(forced.contains("\x1b[32m[+]\x1b[0m"), "{forced}");
    assert!(forced.contains("\x1b[31m-"), "removed diff lines are red");
    assert!(
        with(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]) == piped,
        "NO_COLOR wins"
    );
    assert!(
        with(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "yes")]) == piped,
        "any non-empty NO_COLOR"
    );
    // Colors only decorate: stripped of escapes, the text is the same.
    assert_eq!(strip_ansi(&forced), piped);
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn issue_7_text_shows_resources_rules_permissions_and_notes() {
    let (dir, _root) = copy_fixture("shapes");
    let text = stdout(&harden_cli(dir.path(), "shapes", &["diff", "cdk.out"]));
    // cdk-diff-like resource lines: [~] changed, [+] added.
    assert!(
        text.contains(
            "[~] AWS::S3::Bucket OptOutStack/WebsiteBucket/Resource (WebsiteBucket75C24D94)"
        ),
        "{text}"
    );
    assert!(
        text.contains("[+] AWS::S3::Bucket (CdkHardenAccessLogBucket)"),
        "{text}"
    );
    // Each change: pointer relative to the resource, transform, op, reason, then the rule.
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.ends_with("─ [+] /Properties/VersioningConfiguration/Status = \"Enabled\""))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        lines[at + 1].ends_with("    bucket-versioning (enforce): enable object versioning"),
        "{text}"
    );
    assert!(
        lines[at + 2]
            .trim_start_matches([' ', '│'])
            .starts_with("rule: S3 buckets keep object versions"),
        "{text}"
    );
    // IAM permissions in a table.
    assert!(text.contains("IAM permissions added"), "{text}");
    assert!(text.contains("│ Policy "), "{text}");
    // Notes: opt-outs with their reasons, skips.
    assert!(text.contains("- opt-out bucket-logging WebsiteBucket75C24D94: opted out in metadata: public website bucket"), "{text}");
    assert!(
        text.contains(
            "- skipped key-rotation MacKey790F75A3: asymmetric and HMAC keys cannot rotate"
        ),
        "{text}"
    );
    // The unified diff names the template relative to the assembly.
    assert!(
        text.contains("--- a/OptOutStack.template.json\n+++ b/OptOutStack.template.json\n@@"),
        "{text}"
    );
}

#[test]
fn issue_7_sarif_has_the_required_structure() {
    let (dir, _root) = copy_fixture("secrets");
    let o = harden_cli(
        dir.path(),
        "secrets",
        &["check", "cdk.out", "--format", "sarif"],
    );
    assert_eq!(o.status.code(), Some(1));
    let log: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(log["version"], "2.1.0");
    assert_eq!(
        log["$schema"],
        "https://json.schemastore.org/sarif-2.1.0.json"
    );
    let runs = log["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert_eq!(driver["name"], "cdk-harden");
    let rules = driver["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"plaintext-secret"), "{ids:?}");
    for r in rules {
        assert!(
            r["shortDescription"]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "{r}"
        );
        assert!(
            r["help"]["text"].as_str().is_some_and(|t| !t.is_empty()),
            "{r}"
        );
        assert!(
            ["error", "warning", "note"]
                .contains(&r["defaultConfiguration"]["level"].as_str().unwrap()),
            "{r}"
        );
    }
    let results = runs[0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{results:#?}");
    let template =
        std::fs::read_to_string(fixture("secrets").join("SecretsStack.template.json")).unwrap();
    let lines: Vec<&str> = template.lines().collect();
    for (r, name) in results.iter().zip([
        "DB_PASSWORD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_TOKEN",
    ]) {
        assert_eq!(r["ruleId"], "plaintext-secret");
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], r["ruleId"]);
        assert_eq!(r["level"], "error");
        assert!(r["message"]["text"].as_str().unwrap().contains(name), "{r}");
        let loc = &r["locations"][0]["physicalLocation"];
        assert_eq!(
            loc["artifactLocation"]["uri"],
            "cdk.out/SecretsStack.template.json"
        );
        assert_eq!(loc["artifactLocation"]["uriBaseId"], "%SRCROOT%");
        let line = loc["region"]["startLine"].as_u64().unwrap() as usize;
        assert!(line >= 1);
        // The line of the variable's value (CodeBuild: the `Value` after the `Name`).
        let at = lines[line - 1];
        if name == "GITHUB_TOKEN" {
            assert!(at.trim_start().starts_with("\"Value\":"), "{line}: {at}");
            assert!(
                lines[line - 4..line - 1].iter().any(|l| l.contains(name)),
                "{line}: {at}"
            );
        } else {
            assert!(
                at.trim_start().starts_with(&format!("\"{name}\":")),
                "{line}: {at}"
            );
        }
        assert_eq!(r["locations"][0]["logicalLocations"][0]["kind"], "resource");
    }
}

/// Test-only documents whose changes CloudFormation would answer with a replacement: a
/// stateless function gets a name (applied, with a warning), a stateful bucket gets a name
/// (refused, with a note).
const RENAME_FUNCTION: &str = r#"{
  "id": "test-name-functions",
  "title": "Test only: name every function",
  "rule": "none: exercises replacement warnings",
  "description": "Sets FunctionName, a create-only property.",
  "select": "$.Resources[?@.Type == 'AWS::Lambda::Function']",
  "operations": [{ "op": "set-if-absent", "path": "/Properties/FunctionName", "value": "named", "reason": "give the function a name" }]
}"#;
const RENAME_BUCKET: &str = r#"{
  "id": "test-name-buckets",
  "title": "Test only: name every bucket",
  "rule": "none: exercises refusals",
  "description": "Sets BucketName, a create-only property.",
  "select": "$.Resources[?@.Type == 'AWS::S3::Bucket']",
  "operations": [{ "op": "set-if-absent", "path": "/Properties/BucketName", "value": "named", "reason": "give the bucket a name" }]
}"#;

#[test]
fn issue_7_replacement_warnings_and_refusals_are_flagged_in_every_format() {
    let (shapes, _root) = copy_fixture("shapes");
    std::fs::create_dir(shapes.path().join("transforms")).unwrap();
    std::fs::write(shapes.path().join("transforms/a.json"), RENAME_FUNCTION).unwrap();
    std::fs::write(shapes.path().join("transforms/b.json"), RENAME_BUCKET).unwrap();
    std::fs::write(
        shapes.path().join("cdk-harden.json"),
        r#"{"transforms": {"include": ["transforms"], "disable": ["bucket-versioning", "bucket-logging", "kms", "key-rotation", "vpc", "package-registry"]}}"#,
    )
    .unwrap();
    let out = |format: &str| {
        let o = bin()
            .env_remove("CLICOLOR_FORCE")
            .current_dir(shapes.path())
            .args(["diff", "cdk.out", "--format", format])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o)
    };

    let json: JsonReport = serde_json::from_str(&out("json")).unwrap();
    let named: Vec<_> = json
        .changes
        .iter()
        .filter(|c| c.transform == "test-name-functions")
        .collect();
    assert!(!named.is_empty());
    for c in &named {
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("requires replacement")),
            "{c:?}"
        );
    }
    assert!(
        json.changes
            .iter()
            .all(|c| c.transform != "test-name-buckets"),
        "refused"
    );
    let refused: Vec<_> = json
        .notes
        .iter()
        .filter(|n| n.kind == cdk_harden::transform::NoteKind::Refused)
        .collect();
    assert!(!refused.is_empty());
    assert!(
        refused.iter().all(|n| n.construct_path.is_some()),
        "{refused:#?}"
    );

    let text = out("text");
    assert!(text.contains("! warning: requires replacement: `/FunctionName` is create-only for AWS::Lambda::Function"), "{text}");
    assert!(text.contains(" ! refused test-name-buckets "), "{text}");
    // Notes needing a person come before the others.
    let compliant = text.split("Stack CompliantStack").nth(1).unwrap();
    let notes = compliant.split("\nNotes\n").nth(1).unwrap();
    assert!(notes.starts_with(" ! refused"), "{notes}");

    let md = out("markdown");
    assert!(
        md.contains("    - ⚠️ **warning**: requires replacement:"),
        "{md}"
    );
    assert!(
        md.contains("- ⚠️ **refused** (`test-name-buckets`, "),
        "{md}"
    );

    // Refusals need a person: SARIF reports them as warnings on the bucket's line.
    let sarif: Value = serde_json::from_str(&out("sarif")).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), refused.len());
    for r in results {
        assert_eq!(r["ruleId"], "change-refused");
        assert_eq!(r["level"], "warning");
        let uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap();
        let line = r["locations"][0]["physicalLocation"]["region"]["startLine"]
            .as_u64()
            .unwrap() as usize;
        let id = r["locations"][0]["logicalLocations"][0]["name"]
            .as_str()
            .unwrap();
        let template = std::fs::read_to_string(shapes.path().join(uri)).unwrap();
        assert_eq!(
            template.lines().nth(line - 1).unwrap().trim(),
            format!("\"{id}\": {{")
        );
    }
}

/// With two bad templates, the error is the same whatever the budget: a template hardened
/// early because it is large (every one, with a budget of 0) fails in the wave it finishes in,
/// after a nested stack that fails in an earlier wave.
#[test]
fn issue_8_the_error_reported_does_not_depend_on_the_budget() {
    let (_dir, root) = copy_fixture("pipelines");
    let dev = root.join("assembly-PipelineStack-Dev");
    for file in [
        "PipelineStackDevService2FAD3E8A.template.json",
        "PipelineStackDevServiceStorage338AB38E.nested.template.json",
    ] {
        let path = dev.join(file);
        let mut template: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let resources = template["Resources"].as_object_mut().unwrap();
        let first = resources.values_mut().next().unwrap();
        // An opt-out without a reason is an error.
        first["Metadata"]["cdk-harden"] = serde_json::json!({"skip": [{"id": "*"}]});
        std::fs::write(&path, serde_json::to_string(&template).unwrap()).unwrap();
    }
    let (config, registry, assembly) = library_inputs("pipelines", &root);
    let error = |budget| {
        cdk_harden::harden_with_review_budget(&assembly, &config.config, &registry, None, budget)
            .map(|_| ())
            .expect_err("two bad templates fail")
            .to_string()
    };
    let unlimited = error(usize::MAX);
    assert!(
        unlimited.contains("PipelineStackDevServiceStorage338AB38E.nested.template.json"),
        "{unlimited}"
    );
    assert_eq!(error(0), unlimited);
    assert_eq!(error(20_000), unlimited);
}

/// The reviews of a large assembly are spooled to a temporary file past a memory budget; every
/// renderer must say exactly what it says when they are all in memory, secrets masked alike.
#[test]
fn issue_8_spooled_reviews_render_exactly_like_reviews_in_memory() {
    for app in APPS {
        let (config, registry, assembly) = library_inputs(app, &fixture(app));
        let harden = |budget| {
            cdk_harden::harden_with_review_budget(
                &assembly,
                &config.config,
                &registry,
                None,
                budget,
            )
            .unwrap()
        };
        let (memory, spooled, half) = (harden(usize::MAX), harden(0), harden(20_000));
        for format in [Format::Text, Format::Markdown, Format::Json, Format::Sarif] {
            for applied in [false, true] {
                let options = RenderOptions {
                    applied,
                    markdown_limit: None,
                    ..Default::default()
                };
                let expected = report::render(&memory, format, &options);
                for (what, r) in [("all spooled", &spooled), ("some spooled", &half)] {
                    assert!(
                        report::render(r, format, &options) == expected,
                        "{app}: {} review, {what}, differs",
                        format.name()
                    );
                }
            }
        }
        assert_eq!(
            report::summary(&spooled, false),
            report::summary(&memory, false)
        );
        assert_eq!(spooled.clone().into_stacks().len(), memory.templates());
        if *app == "secrets" {
            assert!(!spooled.masked.is_empty(), "the secrets app has secrets");
            let json = report::render(&spooled, Format::Json, &RenderOptions::default());
            for secret in &spooled.masked {
                assert!(!json.contains(secret.as_str()), "{secret} leaked");
            }
            assert!(json.contains(report::MASK), "{json}");
        }
    }
}

/// The JSON review is written straight from the reviews, a template at a time, not built as a
/// [`JsonReport`] first (a 1,000-stage report is 80 MB of JSON); it reads only the templates
/// with entries for each list. It must be exactly the `JsonReport` serialized, whether the
/// reviews are in memory or spooled, on a first pass (every template changes) and on a second
/// (none does; some only have notes), and the snapshots hold it too.
#[test]
fn issue_8_the_json_review_written_as_it_is_made_is_the_json_report() {
    let mut only_notes = 0;
    for app in APPS {
        let (_dir, hardened, _) = hardened(app);
        for (pass, root) in [("first pass", fixture(app)), ("second pass", hardened)] {
            let (config, registry, assembly) = library_inputs(app, &root);
            for budget in [usize::MAX, 0] {
                let report = cdk_harden::harden_with_review_budget(
                    &assembly,
                    &config.config,
                    &registry,
                    None,
                    budget,
                )
                .unwrap();
                only_notes += report
                    .heads()
                    .iter()
                    .filter(|h| h.change_count() == 0 && h.note_count() > 0)
                    .count();
                let typed = JsonReport::from_report(&report);
                assert_eq!(typed.changes.is_empty(), pass == "second pass", "{app}");
                let expected = serde_json::to_string_pretty(&typed).unwrap() + "\n";
                let written = report::render(&report, Format::Json, &RenderOptions::default());
                assert!(
                    written == expected,
                    "{app}, {pass}, budget {budget}: differs"
                );
                let mut streamed = Vec::new();
                report::write_to(
                    &report,
                    Format::Json,
                    &RenderOptions::default(),
                    &mut streamed,
                )
                .unwrap();
                assert!(
                    streamed == expected.as_bytes(),
                    "{app}, {pass}, budget {budget}"
                );
            }
        }
    }
    assert!(
        only_notes > 0,
        "no template with notes and no changes was written"
    );
}

/// A template larger than the review budget is serialized in the first wave and finished in
/// its own (a budget of 0 makes every template that names another's id such a template): the
/// assembly written must be byte for byte the one written when every template is serialized
/// and finished at once.
#[test]
fn issue_8_templates_serialized_early_write_the_same_assembly() {
    use cdk_harden::Writer;
    for app in APPS {
        let (config, registry, assembly) = library_inputs(app, &fixture(app));
        let dir = tempfile::tempdir().unwrap();
        let write = |budget: usize| {
            let out = dir.path().join(format!("out-{budget}"));
            let mut writer = Writer::copy(&assembly.root, &out).unwrap();
            let r = cdk_harden::harden_with_review_budget(
                &assembly,
                &config.config,
                &registry,
                Some(&mut writer),
                budget,
            )
            .unwrap();
            writer.commit().unwrap();
            (
                snapshot(&out),
                report::render(&r, Format::Text, &RenderOptions::default()),
            )
        };
        let (at_once, early) = (write(usize::MAX), write(0));
        assert!(at_once.0.len() > 5, "{app}");
        assert!(at_once == early, "{app}: the assembly or review differs");
        if *app == "pipelines" {
            let before = snapshot(&fixture(app));
            assert_ne!(before, at_once.0, "the pipelines app is rewritten");
        }
    }
}

/// The review is written out before the assembly is: an `--output` that cannot be written
/// stops `apply` with exit 2 before anything is rewritten, so a rewritten assembly never goes
/// without its review (a second run would only say there is nothing left to change).
#[test]
fn issue_7_an_unwritable_output_stops_apply_before_anything_is_written() {
    let (dir, root) = copy_fixture("secrets");
    let root = root.to_str().unwrap();
    let config = config("secrets");
    let config = config.to_str().unwrap();
    let missing = dir.path().join("missing/review.md");
    let err = assert_refused(
        dir.path(),
        &[
            "apply",
            root,
            "--config",
            config,
            "--output",
            missing.to_str().unwrap(),
        ],
        &["missing/review.md", "No such file or directory"],
        Path::new(root),
    );
    assert!(!err.contains("panicked"), "{err}");
    // A directory in its place is refused the same way.
    std::fs::create_dir(dir.path().join("review.md")).unwrap();
    assert_refused(
        dir.path(),
        &["apply", root, "--config", config, "--output", "review.md"],
        &["review.md: is a directory"],
        Path::new(root),
    );
    // Writable: the assembly is rewritten and the review is in place, no temporary left.
    let o = run(
        dir.path(),
        &["apply", root, "--config", config, "--output", "review.txt"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let review = std::fs::read_to_string(dir.path().join("review.txt")).unwrap();
    assert!(review.contains("apply changed 1 of 1 template"), "{review}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("cdk-harden-review"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The files other than templates are restaged while the review is printed: one that cannot
/// be (here `tree.json`, which names replaced ids, holds a byte that is not UTF-8) stops
/// `apply` with exit 2, naming it, and nothing is written or left behind.
#[test]
fn issue_8_a_file_that_cannot_be_restaged_stops_apply_and_nothing_is_written() {
    let (dir, root) = copy_fixture("pipelines");
    let tree = root.join("tree.json");
    let mut bytes = std::fs::read(&tree).unwrap();
    bytes.extend_from_slice(b"\xff\xfe");
    std::fs::write(&tree, bytes).unwrap();
    let config = config("pipelines");
    assert_refused(
        dir.path(),
        &[
            "apply",
            root.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        &["tree.json", "UTF-8"],
        &root,
    );
}

/// A review that cannot be written to stdout (a full disk behind `> review.sarif`) is an
/// error, exit 2, and `apply` then writes nothing; only a closed pipe is not an error.
#[test]
fn issue_7_a_failed_write_to_stdout_is_an_error_and_apply_writes_nothing() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        eprintln!("no /dev/full on this system: skipped");
        return;
    }
    let (dir, root) = copy_fixture("secrets");
    let before = snapshot(&root);
    for command in ["apply", "diff", "check"] {
        let o = bin()
            .current_dir(dir.path())
            .args([
                command,
                root.to_str().unwrap(),
                "--format",
                "sarif",
                "--config",
            ])
            .arg(config("secrets"))
            .stdout(std::fs::File::create(full).unwrap())
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{command}: {err}");
        assert!(
            err.contains("writing to stdout: No space left on device"),
            "{command}: {err}"
        );
        assert!(snapshot(&root) == before, "{command} modified the assembly");
    }
    // A closed pipe: apply goes on and writes.
    let mut child = bin()
        .current_dir(dir.path())
        .args(["apply", root.to_str().unwrap(), "--config"])
        .arg(config("secrets"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(snapshot(&root) != before, "apply wrote nothing");
}

/// `--markdown-limit` is kept to: a value too small for the headline and the note that the
/// review was cut is refused (exit 2), and from the smallest accepted value up, the review
/// fits.
#[test]
fn issue_7_the_markdown_limit_is_kept_or_refused() {
    let (dir, _root) = copy_fixture("pipelines");
    let markdown = |limit: &str| {
        let args = [
            "diff",
            "cdk.out",
            "--format",
            "markdown",
            "--markdown-limit",
            limit,
        ];
        harden_cli(dir.path(), "pipelines", &args)
    };
    for limit in ["1", "100", "255"] {
        let o = markdown(limit);
        assert_eq!(o.status.code(), Some(2), "{limit}");
        assert!(stderr(&o).contains("give at least 256"), "{}", stderr(&o));
    }
    for limit in [256usize, 1000, 4000] {
        let o = markdown(&limit.to_string());
        assert_eq!(o.status.code(), Some(0), "{limit}: {}", stderr(&o));
        assert!(o.stdout.len() <= limit, "{limit}: {} bytes", o.stdout.len());
    }
}
