//! Issue 3: the JSON Schemas in schema/ are current, and what they describe validates.
//!
//! Regenerate the schema files with `UPDATE_SCHEMAS=1 cargo test --test schema`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn check_current(file: &str, generated: String) {
    let path = repo().join("schema").join(file);
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schema/{file} is stale: regenerate with `UPDATE_SCHEMAS=1 cargo test --test schema`"
    );
}

#[test]
fn issue_3_schema_files_are_current() {
    check_current("cdk-harden.schema.json", cdk_harden::config::schema_json());
    check_current(
        "transform.schema.json",
        cdk_harden::transform::document::schema_json(),
    );
}

#[test]
fn issue_3_schema_command_prints_the_config_schema() {
    let o = run(&repo(), &["schema"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), cdk_harden::config::schema_json());
    let o = run(&repo(), &["schema", "--transform"]);
    assert_eq!(stdout(&o), cdk_harden::transform::document::schema_json());
}

/// Validates each instance against a schema with the Python `jsonschema` package (installed
/// with cfn-lint), an independent implementation. Returns the failures.
fn validate(schema: &Path, instances: &[PathBuf]) -> Vec<String> {
    let dir = std::env::var_os("CDK_HARDEN_VALIDATORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/validators/bin"));
    let python = dir.join("python");
    assert!(
        python.exists(),
        "{} missing: run scripts/install-validators.sh",
        python.display()
    );
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

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn issue_3_every_transform_document_validates_against_its_schema() {
    let mut docs = json_files(&repo().join("transforms"));
    docs.extend(json_files(&repo().join("tests/data/transforms")));
    assert!(docs.len() >= 8, "{docs:?}");
    let failures = validate(&repo().join("schema/transform.schema.json"), &docs);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn issue_3_example_configs_validate_against_the_config_schema() {
    let configs: Vec<PathBuf> = ["pipelines", "shapes", "secrets"]
        .iter()
        .map(|a| config(a))
        .collect();
    let failures = validate(&repo().join("schema/cdk-harden.schema.json"), &configs);
    assert!(failures.is_empty(), "{failures:#?}");
    // And the independent validator rejects what cdk-harden rejects: an unknown key.
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.json");
    std::fs::write(
        &typo,
        r#"{"environments": {"*": {"accesLogs": {"create": true}}}}"#,
    )
    .unwrap();
    let failures = validate(&repo().join("schema/cdk-harden.schema.json"), &[typo]);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(failures[0].contains("accesLogs"), "{failures:#?}");
}
