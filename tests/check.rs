//! Issue 7: `check` exit codes, and the plaintext-secret finding on the `secrets` fixture.

mod common;

use std::path::Path;

use cdk_harden::report::json::JsonReport;
use cdk_harden::report::MASK;
use common::*;
use serde_json::Value;

/// The secret values in examples/secrets (well-known documentation examples).
const SECRETS: &[&str] = &[
    "hunter2",
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ghp_exampleexampleexampleexample0000",
];

fn cli(cwd: &Path, config: &Path, args: &[&str]) -> std::process::Output {
    bin()
        .env_remove("CLICOLOR_FORCE")
        .current_dir(cwd)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run cdk-harden")
}

#[test]
fn issue_7_check_exits_1_on_a_raw_fixture_and_0_after_apply() {
    for app in ["pipelines", "shapes"] {
        let (dir, root) = copy_fixture(app);
        let o = cli(dir.path(), &config(app), &["check", "cdk.out"]);
        assert_eq!(o.status.code(), Some(1), "{app}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with("cdk-harden check: not compliant: apply would change "),
            "{}",
            stderr(&o)
        );
        // It lists what apply would do.
        let out = stdout(&o);
        assert!(
            out.contains("[~] AWS::S3::Bucket") && out.contains("Template diff"),
            "{out}"
        );
        let untouched = snapshot(&root);

        let o = cli(dir.path(), &config(app), &["apply", "cdk.out"]);
        assert_eq!(o.status.code(), Some(0), "{app}: {}", stderr(&o));
        assert!(snapshot(&root) != untouched, "{app}: apply wrote nothing");

        let o = cli(dir.path(), &config(app), &["check", "cdk.out"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{app}: after apply: {}{}",
            stdout(&o),
            stderr(&o)
        );
        assert_eq!(stderr(&o), "cdk-harden check: compliant\n");
        assert!(
            stdout(&o).contains("\napply would change nothing in "),
            "{}",
            stdout(&o)
        );
        assert!(!stdout(&o).contains("Template diff"), "{}", stdout(&o));
        let json = cli(
            dir.path(),
            &config(app),
            &["check", "cdk.out", "--format", "json"],
        );
        assert_eq!(json.status.code(), Some(0));
        let report: JsonReport = serde_json::from_str(&stdout(&json)).unwrap();
        assert!(
            report.summary.compliant && report.changes.is_empty() && report.findings.is_empty()
        );
    }
}

#[test]
fn issue_7_check_exits_2_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["check", "missing.out"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.out"), "{}", stderr(&o));
}

/// The variable name a finding points at.
fn variable(pointer: &str) -> String {
    let template = read_json(&fixture("secrets").join("SecretsStack.template.json"));
    if let Some(entry) = pointer.strip_suffix("/Value") {
        return template.pointer(entry).unwrap()["Name"]
            .as_str()
            .unwrap()
            .to_string();
    }
    pointer.rsplit('/').next().unwrap().to_string()
}

#[test]
fn issue_7_secrets_fail_check_and_are_named_without_their_values() {
    let (dir, _root) = copy_fixture("secrets");
    let cfg = config("secrets");
    let o = cli(dir.path(), &cfg, &["check", "cdk.out"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    for name in [
        "DB_PASSWORD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_TOKEN",
    ] {
        assert!(
            text.contains(&format!(
                "environment variable `{name}` holds a plaintext secret"
            )),
            "{name}: {text}"
        );
    }
    assert!(
        text.contains("SECRETS_MANAGER"),
        "says what to use instead: {text}"
    );
    assert!(text.contains("Secrets Manager"), "{text}");

    let o = cli(dir.path(), &cfg, &["check", "cdk.out", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let report: JsonReport = serde_json::from_str(&stdout(&o)).unwrap();
    let mut found: Vec<(String, String)> = report
        .findings
        .iter()
        .map(|f| {
            assert_eq!(f.rule, "plaintext-secret");
            assert_eq!(f.stack, "SecretsStack");
            (
                f.logical_id.clone().unwrap(),
                variable(f.pointer.as_deref().unwrap()),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("LeakyFunction6DD1BB4F".to_string(), "AWS_ACCESS_KEY_ID".to_string()),
            ("LeakyFunction6DD1BB4F".to_string(), "AWS_SECRET_ACCESS_KEY".to_string()),
            ("LeakyFunction6DD1BB4F".to_string(), "DB_PASSWORD".to_string()),
            ("LeakyProject4D2438D3".to_string(), "GITHUB_TOKEN".to_string()),
        ],
        "not TABLE_NAME (Ref), API_TOKEN_PARAM (a parameter name), SERVICE_TOKEN (dynamic reference), NPM_TOKEN (SECRETS_MANAGER), the CodeBuild DB_PASSWORD (PARAMETER_STORE) or STAGE"
    );

    // No output format, and nothing on stderr, shows a secret value.
    for format in ["text", "markdown", "json", "sarif"] {
        for command in ["check", "diff"] {
            let o = cli(dir.path(), &cfg, &[command, "cdk.out", "--format", format]);
            let all = format!("{}{}", stdout(&o), stderr(&o));
            for secret in SECRETS {
                assert!(
                    !all.contains(secret),
                    "{command} --format {format} prints a secret value"
                );
            }
        }
    }
}

#[test]
fn issue_7_apply_leaves_plaintext_secrets_alone_and_check_still_fails() {
    let (dir, root, outcome) = hardened("secrets");
    assert_eq!(outcome.report.findings.len(), 4);
    let before = read_json(&fixture("secrets").join("SecretsStack.template.json"));
    let after = read_json(&root.join("SecretsStack.template.json"));
    let lambda = "/Resources/LeakyFunction6DD1BB4F/Properties/Environment/Variables";
    assert_eq!(
        before.pointer(lambda),
        after.pointer(lambda),
        "Lambda variables unchanged"
    );
    let vars = "/Resources/LeakyProject4D2438D3/Properties/Environment/EnvironmentVariables";
    let after_vars = after.pointer(vars).unwrap().as_array().unwrap();
    for entry in before.pointer(vars).unwrap().as_array().unwrap() {
        let same = after_vars.iter().find(|e| e["Name"] == entry["Name"]);
        assert_eq!(
            same,
            Some(entry),
            "CodeBuild variable {} unchanged",
            entry["Name"]
        );
    }
    let o = cli(dir.path(), &config("secrets"), &["check", "cdk.out"]);
    assert_eq!(o.status.code(), Some(1), "findings remain after apply");
    assert!(stderr(&o).contains("4 findings"), "{}", stderr(&o));
}

/// A transform document that touches the secrets' neighbours: it merges a variable into every
/// Lambda environment and appends one to every CodeBuild project, so the recorded old and new
/// values and the diff context all hold the secrets.
const TOUCH: &str = r#"{
  "id": "test-touch-environment",
  "title": "Test only: add a variable next to the secrets",
  "rule": "none: exercises masking",
  "description": "Adds LOG_LEVEL to every Lambda function and CodeBuild project.",
  "select": "$.Resources[?@.Type == 'AWS::Lambda::Function' || @.Type == 'AWS::CodeBuild::Project']",
  "operations": [
    { "op": "merge", "path": "/Properties/Environment", "value": { "Variables": { "LOG_LEVEL": "info" } } }
  ]
}"#;

#[test]
fn issue_7_secret_values_are_masked_in_changes_notes_and_diffs() {
    let (dir, _root) = copy_fixture("secrets");
    std::fs::create_dir(dir.path().join("transforms")).unwrap();
    std::fs::write(dir.path().join("transforms/touch.json"), TOUCH).unwrap();
    let cfg = dir.path().join("cdk-harden.json");
    let mut config: Value = read_json(&config("secrets"));
    config.as_object_mut().unwrap().remove("$schema");
    config["transforms"] = serde_json::json!({ "include": ["transforms"] });
    std::fs::write(&cfg, config.to_string()).unwrap();

    let o = cli(dir.path(), &cfg, &["diff", "cdk.out", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: JsonReport = serde_json::from_str(&stdout(&o)).unwrap();
    let touched: Vec<_> = report
        .changes
        .iter()
        .filter(|c| c.transform == "test-touch-environment")
        .collect();
    assert_eq!(touched.len(), 2, "{touched:#?}");
    // The merge records the whole environment before and after: masked.
    let lambda = touched
        .iter()
        .find(|c| c.logical_id == "LeakyFunction6DD1BB4F")
        .unwrap();
    let (old, new) = (lambda.old.as_ref().unwrap(), &lambda.new);
    assert_eq!(old["Variables"]["DB_PASSWORD"], MASK);
    assert_eq!(new["Variables"]["AWS_SECRET_ACCESS_KEY"], MASK);
    assert_eq!(new["Variables"]["LOG_LEVEL"], "info");
    assert_eq!(
        new["Variables"]["TABLE_NAME"]["Ref"], "TableCD117FA1",
        "only secrets are masked"
    );

    for format in ["text", "markdown", "json", "sarif"] {
        let o = cli(dir.path(), &cfg, &["diff", "cdk.out", "--format", format]);
        let all = format!("{}{}", stdout(&o), stderr(&o));
        for secret in SECRETS {
            assert!(
                !all.contains(secret),
                "diff --format {format} prints a secret value:\n{all}"
            );
        }
        if format == "text" || format == "markdown" {
            // The diff's context holds the masked lines.
            assert!(
                all.contains(&format!("\"AWS_ACCESS_KEY_ID\": \"{MASK}\"")),
                "{all}"
            );
        }
    }
}

/// `./cdk-harden.json` that is there but cannot be read (a dangling link) is an error, not a
/// run without settings; with no config at all, stderr says no settings are loaded.
#[cfg(unix)]
#[test]
fn issue_7_an_unreadable_default_config_is_an_error_and_a_missing_one_is_said() {
    let (dir, root) = copy_fixture("secrets");
    let root = root.to_str().unwrap();
    std::os::unix::fs::symlink("missing.json", dir.path().join("cdk-harden.json")).unwrap();
    assert_refused(
        dir.path(),
        &["apply", root],
        &["cdk-harden.json: No such file or directory"],
        std::path::Path::new(root),
    );
    std::fs::remove_file(dir.path().join("cdk-harden.json")).unwrap();
    let o = run(dir.path(), &["diff", root]);
    assert!(
        stderr(&o).contains(
            "no cdk-harden.json in this directory and no --config: no settings are loaded"
        ),
        "{}",
        stderr(&o)
    );
}
