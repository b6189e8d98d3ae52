//! cfn-lint, checkov and Python's jsonschema, the independent judges, from the venv that
//! `scripts/install-validators.sh` creates under `target/validators`.
//!
//! These tests do not skip when the validators are missing: they fail and say how to install
//! them, because a security tool whose validation silently did not run proves nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("CDK_HARDEN_VALIDATORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::repo().join("target/validators/bin"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `scripts/install-validators.sh` (scripts/test.sh does this)",
        path.display()
    );
    path
}

/// One cfn-lint match.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lint {
    pub rule: String,
    pub level: String,
    /// The template path relative to the assembly root.
    pub file: String,
    pub message: String,
}

/// Runs cfn-lint over every template of the assembly at `root`; returns the error-level matches
/// (rules `E*`), so two runs can be compared.
pub fn cfn_lint_errors(root: &Path) -> BTreeSet<Lint> {
    cfn_lint(root, &["Error"])
}

/// cfn-lint's top-level matches of the given levels (`Error`, `Warning`, `Informational`).
pub fn cfn_lint(root: &Path, levels: &[&str]) -> BTreeSet<Lint> {
    let files: Vec<String> = super::templates(root).into_iter().map(|(p, _)| p).collect();
    let output = Command::new(tool("cfn-lint"))
        .current_dir(root)
        .args(["--format", "json", "--"])
        .args(&files)
        .output()
        .expect("run cfn-lint");
    let text = String::from_utf8_lossy(&output.stdout);
    let matches: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "cfn-lint printed no JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    matches
        .as_array()
        .expect("cfn-lint JSON is a list")
        .iter()
        .filter(|m| m["ParentId"].is_null())
        .filter(|m| levels.iter().any(|l| m["Level"] == *l))
        .map(|m| Lint {
            rule: m["Rule"]["Id"].as_str().unwrap_or("?").to_string(),
            level: m["Level"].as_str().unwrap_or("?").to_string(),
            file: m["Filename"]
                .as_str()
                .unwrap_or("?")
                .trim_start_matches("./")
                .to_string(),
            message: m["Message"].as_str().unwrap_or("").to_string(),
        })
        .collect()
}

/// Errors cfn-lint reports on `after` that it did not report on `before` (matched by rule,
/// file and message).
pub fn new_cfn_lint_errors(before: &Path, after: &Path) -> Vec<Lint> {
    let old = cfn_lint_errors(before);
    cfn_lint_errors(after)
        .into_iter()
        .filter(|e| !old.contains(e))
        .collect()
}

/// One failed checkov check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Failure {
    pub check: String,
    /// The template path relative to the assembly root.
    pub file: String,
    /// `AWS::S3::Bucket.LogicalId`.
    pub resource: String,
}

/// Runs checkov over every template of the assembly at `root`, limited to `checks`; returns
/// the failures.
pub fn checkov_failures(root: &Path, checks: &[&str]) -> Vec<Failure> {
    let files: Vec<String> = super::templates(root).into_iter().map(|(p, _)| p).collect();
    let mut cmd = Command::new(tool("checkov"));
    cmd.current_dir(root).args([
        "--framework",
        "cloudformation",
        "--output",
        "json",
        "--quiet",
        "--compact",
        "--skip-download",
        "--check",
        &checks.join(","),
    ]);
    for f in &files {
        cmd.args(["--file", f]);
    }
    let output = cmd.output().expect("run checkov");
    let text = String::from_utf8_lossy(&output.stdout);
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "checkov printed no JSON ({e}): {text}; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let reports: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for report in reports {
        for f in report["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            out.push(Failure {
                check: f["check_id"].as_str().unwrap_or("?").to_string(),
                file: f["file_path"]
                    .as_str()
                    .unwrap_or("?")
                    .trim_start_matches('/')
                    .to_string(),
                resource: f["resource"].as_str().unwrap_or("?").to_string(),
            });
        }
    }
    out.sort();
    out
}

/// Validates each instance against a schema with the Python `jsonschema` package (installed
/// with cfn-lint), an independent implementation. Returns the failures.
pub fn json_schema_errors(schema: &Path, instances: &[PathBuf]) -> Vec<String> {
    let python = tool("python");
    let script = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
v = cls(schema)
bad = 0
for path in sys.argv[2:]:
    for e in v.iter_errors(json.load(open(path))):
        bad += 1
        print(f"{path}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
print(f"checked {len(sys.argv) - 2}")
"#;
    let o = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(schema)
        .args(instances)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains(&format!("checked {}", instances.len())),
        "{out}"
    );
    out.lines()
        .filter(|l| !l.starts_with("checked "))
        .map(str::to_string)
        .collect()
}
