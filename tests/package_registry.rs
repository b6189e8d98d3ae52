//! The `package-registry` transform (issue 4) on the committed fixtures and on small
//! hand-written templates: the mirror variables on every CodeBuild project, variables the app
//! set left alone, errors, and idempotence.

mod common;

use std::path::Path;

use cdk_harden::transform::NoteKind;
use serde_json::{json, Value};

const PROJECT: &str = "AWS::CodeBuild::Project";
const NPM: &str = "https://npm.mirror.example.com/";
const PIP: &str = "https://pypi.mirror.example.com/simple/";
const MAVEN: &str = "https://maven.mirror.example.com/releases/";

/// The variables each mirror of the example configs brings, in the order they are appended.
fn expected(npm: bool, pip: bool, maven: bool) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if npm {
        out.extend([
            ("NPM_CONFIG_REGISTRY", NPM),
            ("YARN_REGISTRY", NPM),
            ("YARN_NPM_REGISTRY_SERVER", NPM),
        ]);
    }
    if pip {
        out.extend([
            ("PIP_INDEX_URL", PIP),
            ("UV_DEFAULT_INDEX", PIP),
            ("UV_INDEX_URL", PIP),
            ("PIPENV_PYPI_MIRROR", PIP),
            ("PDM_PYPI_URL", PIP),
        ]);
    }
    if maven {
        out.push(("MAVEN_MIRROR_URL", MAVEN));
    }
    out
}

fn variables(project: &Value) -> Vec<Value> {
    project["Properties"]["Environment"]["EnvironmentVariables"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn issue_4_every_codebuild_project_gets_the_mirror_variables_and_keeps_its_own() {
    let mut projects = 0;
    for (app, npm, pip, maven) in [
        ("pipelines", true, true, true),
        ("shapes", true, true, true),
        ("secrets", true, false, false),
    ] {
        let (_dir, out, outcome) = common::hardened(app);
        for stack in outcome.report.stacks() {
            let (before, after) = common::before_after(app, &out, &stack.template);
            for (id, project) in common::resources_of(&after, PROJECT) {
                projects += 1;
                let old = variables(&before["Resources"][id]);
                let new = variables(project);
                // What the app set comes first, unchanged and in order.
                assert_eq!(new[..old.len()], old[..], "{app}/{}#{id}", stack.template);
                let added: Vec<(String, String)> = new[old.len()..]
                    .iter()
                    .map(|v| {
                        assert_eq!(v["Type"], "PLAINTEXT");
                        (
                            v["Name"].as_str().unwrap().to_string(),
                            v["Value"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect();
                let want: Vec<(String, String)> = expected(npm, pip, maven)
                    .into_iter()
                    .filter(|(name, _)| !old.iter().any(|v| v["Name"] == *name))
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect();
                assert_eq!(added, want, "{app}/{}#{id}", stack.template);
            }
        }
    }
    // pipelines: 6 pipeline projects and one per stage; shapes: 2; secrets: 1.
    assert_eq!(projects, 12);
}

#[test]
fn issue_4_the_service_projects_own_pip_index_url_is_left_alone_and_reported() {
    let (_dir, out, outcome) = common::hardened("pipelines");
    for stage in ["Dev", "UAT", "Prod"] {
        let stack = outcome
            .report
            .stacks()
            .find(|s| s.display_name == format!("PipelineStack/{stage}/Service"))
            .unwrap();
        let t = common::read_json(&out.join(&stack.template));
        let vars = variables(&t["Resources"]["Build45A36621"]);
        let pip: Vec<&Value> = vars
            .iter()
            .filter(|v| v["Name"] == "PIP_INDEX_URL")
            .collect();
        assert_eq!(pip.len(), 1, "{stage}");
        assert_eq!(pip[0]["Value"], "https://pypi.internal.example.com/simple");
        assert_eq!(
            vars[1],
            json!({"Name": "BUILD_FLAVOR", "Type": "PLAINTEXT", "Value": "release"})
        );
        assert!(vars
            .iter()
            .any(|v| v["Name"] == "UV_DEFAULT_INDEX" && v["Value"] == PIP));
        let note = stack
            .notes
            .iter()
            .find(|n| {
                n.transform == "package-registry"
                    && n.logical_id.as_deref() == Some("Build45A36621")
            })
            .expect("a note");
        assert_eq!(note.kind, NoteKind::LeftAlone);
        assert!(
            note.message.contains("PIP_INDEX_URL") && note.message.contains(PIP),
            "{}",
            note.message
        );
    }
}

#[test]
fn issue_4_secret_variables_of_the_secrets_fixture_are_untouched() {
    let (_dir, out, _) = common::hardened("secrets");
    let before = common::read_json(&common::fixture("secrets").join("SecretsStack.template.json"));
    let after = common::read_json(&out.join("SecretsStack.template.json"));
    let (id, _) = common::resources_of(&before, PROJECT)[0];
    let old = variables(&before["Resources"][id]);
    let new = variables(&after["Resources"][id]);
    assert!(old.len() >= 4);
    assert_eq!(new[..old.len()], old[..]);
    assert!(
        !new.iter().any(|v| v["Name"] == "PIP_INDEX_URL"),
        "no pip mirror configured"
    );
}

#[test]
fn issue_4_package_registry_proposes_nothing_the_second_time() {
    for app in ["pipelines", "shapes", "secrets"] {
        let (_dir, out, _) = common::hardened(app);
        let again = cdk_harden::run(&cdk_harden::Options {
            assembly: out.clone(),
            config: Some(common::config(app)),
            out: None,
            mode: cdk_harden::Mode::DryRun,
        })
        .unwrap();
        let ours: Vec<_> = again
            .report
            .stacks()
            .flat_map(|s| s.into_owned().changes)
            .filter(|c| c.transform == "package-registry")
            .collect();
        assert!(ours.is_empty(), "{app}: {ours:?}");
    }
}

#[test]
fn issue_4_missing_package_registry_exits_2_naming_the_environment() {
    common::assert_refused_without(
        "shapes",
        "*",
        "packageRegistry",
        &["environment `", "packageRegistry.npm"],
    );
}

// Hand-written templates.

fn assembly(template: Value) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cdk.out");
    std::fs::create_dir_all(&root).unwrap();
    let manifest = json!({
        "version": "55.0.0",
        "artifacts": {"Stack": {
            "type": "aws:cloudformation:stack",
            "environment": "aws://222222222222/eu-west-1",
            "properties": {"templateFile": "Stack.template.json"},
            "displayName": "Stack"
        }}
    });
    std::fs::write(root.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(root.join("Stack.template.json"), template.to_string()).unwrap();
    (dir, root)
}

fn harden(root: &Path, registry: Value) -> cdk_harden::Result<cdk_harden::transform::Hardened> {
    let others = [
        "bucket-versioning",
        "bucket-logging",
        "kms",
        "key-rotation",
        "vpc",
        "prod-approval",
    ];
    let config = json!({"environments": {"*": {"packageRegistry": registry}}, "transforms": {"disable": others}});
    let config = cdk_harden::LoadedConfig::parse(
        Path::new("cdk-harden.json"),
        config.to_string().as_bytes(),
    )?;
    let assembly = cdk_harden::Assembly::load(root)?;
    let registry = cdk_harden::Registry::builtin()?;
    cdk_harden::transform::harden_stack(&assembly, 0, &config, &registry)
}

fn project(environment: Value) -> Value {
    json!({"Type": PROJECT, "Properties": {
        "Artifacts": {"Type": "NO_ARTIFACTS"},
        "Environment": environment,
        "ServiceRole": "arn:aws:iam::222222222222:role/build",
        "Source": {"Type": "NO_SOURCE", "BuildSpec": "version: 0.2"}
    }})
}

fn base_environment() -> Value {
    json!({"ComputeType": "BUILD_GENERAL1_SMALL", "Image": "aws/codebuild/standard:7.0", "Type": "LINUX_CONTAINER"})
}

#[test]
fn issue_4_names_match_ignoring_case_and_secret_values_are_not_printed() {
    let mut env = base_environment();
    env["EnvironmentVariables"] = json!([
        {"Name": "npm_config_registry", "Type": "PLAINTEXT", "Value": "https://registry.npmjs.org/"},
        {"Name": "YARN_REGISTRY", "Type": "PLAINTEXT", "Value": NPM},
        {"Name": "PIP_INDEX_URL", "Type": "SECRETS_MANAGER", "Value": "ci/pip-index-with-token"}
    ]);
    let (_dir, root) = assembly(json!({"Resources": {"Build": project(env)}}));
    let h = harden(&root, json!({"npm": NPM, "pip": PIP})).unwrap();
    let names: Vec<String> = variables(&h.template["Resources"]["Build"])
        .iter()
        .map(|v| v["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "npm_config_registry",
            "YARN_REGISTRY",
            "PIP_INDEX_URL",
            "YARN_NPM_REGISTRY_SERVER",
            "UV_DEFAULT_INDEX",
            "UV_INDEX_URL",
            "PIPENV_PYPI_MIRROR",
            "PDM_PYPI_URL"
        ]
    );
    let notes: Vec<&String> = h.notes.iter().map(|n| &n.message).collect();
    // The lower-case npm variable and the secret differ: noted. YARN_REGISTRY matches: silent.
    assert_eq!(notes.len(), 2, "{notes:#?}");
    assert!(notes.iter().any(|m| m.contains("npm_config_registry")));
    assert!(notes
        .iter()
        .any(|m| m.contains("PIP_INDEX_URL") && m.contains("SECRETS_MANAGER")));
    assert!(!notes.iter().any(|m| m.contains("ci/pip-index-with-token")));
}

#[test]
fn issue_4_a_project_without_variables_gets_a_new_list_and_an_intrinsic_list_is_left_alone() {
    let mut computed = base_environment();
    computed["EnvironmentVariables"] = json!({"Fn::If": ["UseVars", [], {"Ref": "AWS::NoValue"}]});
    let template = json!({
        "Conditions": {"UseVars": {"Fn::Equals": ["a", "a"]}},
        "Resources": {"Plain": project(base_environment()), "Computed": project(computed.clone())}
    });
    let (_dir, root) = assembly(template);
    let h = harden(&root, json!({"maven": MAVEN})).unwrap();
    assert_eq!(
        variables(&h.template["Resources"]["Plain"]),
        [json!({"Name": "MAVEN_MIRROR_URL", "Type": "PLAINTEXT", "Value": MAVEN})]
    );
    assert_eq!(
        h.template["Resources"]["Computed"]["Properties"]["Environment"],
        computed
    );
    assert!(h
        .notes
        .iter()
        .any(|n| n.logical_id.as_deref() == Some("Computed") && n.kind == NoteKind::LeftAlone));
}

#[test]
fn issue_4_mirror_urls_with_credentials_are_refused() {
    let (_dir, root) = assembly(json!({"Resources": {"Build": project(base_environment())}}));
    let err = harden(
        &root,
        json!({"npm": "https://ci:s3cret@npm.mirror.example.com/"}),
    )
    .unwrap_err();
    let text = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(
        text.contains("222222222222/eu-west-1") && text.contains("packageRegistry.npm"),
        "{text}"
    );
    assert!(
        text.contains("credentials") && !text.contains("s3cret"),
        "{text}"
    );
}

#[test]
fn issue_4_templates_without_projects_need_no_mirror_setting() {
    let (_dir, root) = assembly(json!({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}));
    let h = harden(&root, json!({})).unwrap();
    assert!(h.applied.is_empty());
    let (_dir, root) = assembly(json!({"Resources": {"Build": project(base_environment())}}));
    let err = harden(&root, json!({})).unwrap_err();
    let text = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(text.contains("packageRegistry.npm"), "{text}");
}
