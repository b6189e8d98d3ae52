//! Issue 3: the JSON Schemas in schema/ are current, and what they describe validates.
//!
//! Regenerate the schema files with `UPDATE_SCHEMAS=1 cargo test --test schema`.

mod common;

use std::path::{Path, PathBuf};

use common::validators::json_schema_errors;
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
    let failures = json_schema_errors(&repo().join("schema/transform.schema.json"), &docs);
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn issue_3_example_configs_validate_against_the_config_schema() {
    let configs: Vec<PathBuf> = ["pipelines", "shapes", "secrets"]
        .iter()
        .map(|a| config(a))
        .collect();
    let failures = json_schema_errors(&repo().join("schema/cdk-harden.schema.json"), &configs);
    assert!(failures.is_empty(), "{failures:#?}");
    // And the independent validator rejects what cdk-harden rejects: an unknown key.
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.json");
    std::fs::write(
        &typo,
        r#"{"environments": {"*": {"accesLogs": {"create": true}}}}"#,
    )
    .unwrap();
    let failures = json_schema_errors(&repo().join("schema/cdk-harden.schema.json"), &[typo]);
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(failures[0].contains("accesLogs"), "{failures:#?}");
}
