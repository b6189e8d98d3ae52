//! Issue 2: reading and writing real cloud assemblies without breaking them.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use cdk_harden::assembly::format::to_cdk_json;
use cdk_harden::assembly::rehash::sha256_hex;
use cdk_harden::{Assembly, LoadedConfig, Registry, Writer};
use common::*;
use serde_json::Value;

const APPS: &[&str] = &["pipelines", "shapes", "secrets"];

#[test]
fn issue_2_round_trip_is_byte_identical() {
    for app in APPS {
        let assembly = Assembly::load(fixture(app)).unwrap();
        // Every template re-serializes to exactly the bytes CDK wrote.
        for (i, stack) in assembly.stacks.iter().enumerate() {
            let template = assembly.read_template(i).unwrap();
            assert_eq!(
                to_cdk_json(&template.value),
                template.text,
                "{app}: {} does not round-trip",
                stack.template_path
            );
        }
        // Writing with no transform changes nothing, in place or as a copy.
        let ids: Vec<String> = Registry::builtin()
            .unwrap()
            .iter()
            .map(|t| format!("\"{}\"", t.id()))
            .collect();
        let none = format!("{{\"transforms\": {{\"disable\": [{}]}}}}", ids.join(", "));
        let config = LoadedConfig::parse(Path::new("cdk-harden.json"), none.as_bytes()).unwrap();
        let registry = Registry::builtin().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("copy");
        let mut writer = Writer::copy(&assembly.root, &out).unwrap();
        let report = cdk_harden::harden(&assembly, &config, &registry, Some(&mut writer));
        assert!(!report.unwrap().has_changes(), "{app}: no change expected");
        assert!(writer.is_empty(), "{app}: nothing to write expected");
        assert!(writer.commit().unwrap(), "the copy is written");
        assert_eq!(
            snapshot(&fixture(app)),
            snapshot(&out),
            "{app}: copy differs"
        );
    }
}

#[test]
fn issue_2_reads_stages_nested_stacks_and_environments() {
    let pipelines = Assembly::load(fixture("pipelines")).unwrap();
    assert_eq!(pipelines.version, "55.0.0");
    let names: Vec<&str> = pipelines
        .stacks
        .iter()
        .map(|s| s.display_name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "PipelineStack/Dev/Service",
            "PipelineStack/Dev/Service/Storage",
            "PipelineStack/UAT/Service",
            "PipelineStack/UAT/Service/Storage",
            "PipelineStack/Prod/Service",
            "PipelineStack/Prod/Service/Storage",
            "PipelineStack",
        ]
    );
    let prod = &pipelines.stacks[4];
    assert_eq!(prod.environment.account.as_deref(), Some("444444444444"));
    assert_eq!(prod.environment.region.as_deref(), Some("eu-west-1"));
    assert_eq!(prod.stage.as_deref(), Some("PipelineStack/Prod"));
    assert_eq!(prod.stage_name(), Some("Prod"));
    assert_eq!(prod.assets.len(), 1, "the stack template is a file asset");
    let nested = &pipelines.stacks[5];
    let link = nested
        .nested
        .as_ref()
        .expect("nested stack linked to its parent");
    assert_eq!(link.parent, 4);
    assert!(
        pipelines.read_template(4).unwrap().value["Resources"][&link.logical_id]["Type"]
            == "AWS::CloudFormation::Stack"
    );
    assert!(nested
        .template_path
        .as_str()
        .ends_with(".nested.template.json"));
    assert_eq!(nested.environment, prod.environment);
    assert_eq!(pipelines.children(4).collect::<Vec<_>>(), [5]);
    // Templates are finished leaves first: the nested stacks, then the templates that name
    // their ids: each parent (`TemplateURL`) and the pipeline (its asset-publishing commands).
    assert_eq!(
        cdk_harden::assembly::rehash::waves(&pipelines),
        [vec![1, 3, 5], vec![0, 2, 4, 6]]
    );

    let shapes = Assembly::load(fixture("shapes")).unwrap();
    let agnostic = shapes
        .stacks
        .iter()
        .find(|s| s.name == "EnvironmentAgnosticStack")
        .unwrap();
    assert_eq!(agnostic.environment.account, None);
    assert_eq!(agnostic.environment.key(), "unknown-account/unknown-region");
    let inner = shapes
        .stacks
        .iter()
        .find(|s| {
            s.template_path
                .as_str()
                .starts_with("assembly-Outer/assembly-Outer-Inner/")
        })
        .expect("a Stage inside a Stage is read");
    assert_eq!(inner.stage.as_deref(), Some("Outer/Inner"));
    assert_eq!(inner.environment.account.as_deref(), Some("222222222222"));
    assert_eq!(shapes.dirs.len(), 3, "root, Outer, Outer/Inner");
}

/// The asset id of every template in a (re)loaded assembly, by template path.
fn template_ids(root: &Path) -> Vec<(String, String)> {
    let assembly = Assembly::load(root).unwrap();
    assembly
        .stacks
        .iter()
        .flat_map(|s| {
            s.assets
                .iter()
                .map(move |a| (s.template_path.to_string(), a.id.clone()))
        })
        .collect()
}

#[test]
fn issue_2_rehash_chain_after_editing_one_nested_template() {
    let (_dir, root) = copy_fixture("pipelines");
    let before_files = snapshot(&root);
    let before_ids = template_ids(&root);
    let config = repo().join("tests/data/touch-only.json");
    let out = run(&root, &["apply", ".", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after_files = snapshot(&root);

    let changed: BTreeSet<&str> = before_files
        .iter()
        .zip(&after_files)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.0.as_str())
        .collect();
    assert_eq!(
        before_files.len(),
        after_files.len(),
        "no file added or removed"
    );
    let expected: BTreeSet<&str> = [
        "assembly-PipelineStack-Dev/PipelineStackDevServiceStorage338AB38E.nested.template.json",
        "assembly-PipelineStack-Dev/PipelineStackDevService2FAD3E8A.template.json",
        "assembly-PipelineStack-Dev/PipelineStackDevService2FAD3E8A.assets.json",
        "assembly-PipelineStack-Dev/manifest.json",
        "PipelineStack.template.json",
        "PipelineStack.assets.json",
        "manifest.json",
        "tree.json",
    ]
    .into_iter()
    .collect();
    assert_eq!(changed, expected);

    // Every changed template's asset id is the SHA-256 of its bytes.
    let after_ids = template_ids(&root);
    let mut renamed = Vec::new();
    for ((path, old), (path2, new)) in before_ids.iter().zip(&after_ids) {
        assert_eq!(path, path2);
        let bytes = std::fs::read(root.join(path)).unwrap();
        if changed.contains(path.as_str()) {
            assert_eq!(
                new,
                &sha256_hex(&bytes),
                "{path}: id is not the hash of its bytes"
            );
            assert_ne!(old, new);
            renamed.push((path.clone(), old.clone(), new.clone()));
        } else {
            assert_eq!(old, new, "{path}: unchanged template kept its id");
        }
    }
    assert_eq!(renamed.len(), 3, "nested, its parent and the pipeline");

    let new_id = |suffix: &str| {
        renamed
            .iter()
            .find(|(p, _, _)| p.ends_with(suffix))
            .map(|(_, _, n)| n.clone())
            .unwrap()
    };
    let nested_id = new_id(".nested.template.json");
    let parent_id = new_id("PipelineStackDevService2FAD3E8A.template.json");
    let pipeline_id = new_id("PipelineStack.template.json");

    // The manifest URL, the parent TemplateURL and the pipeline buildspec name the new ids.
    let dev_manifest = read_json(&root.join("assembly-PipelineStack-Dev/manifest.json"));
    let url = dev_manifest["artifacts"]["PipelineStackDevService2FAD3E8A"]["properties"]
        ["stackTemplateAssetObjectUrl"]
        .as_str()
        .unwrap();
    assert!(url.ends_with(&format!("/{parent_id}.json")), "{url}");
    let root_manifest = read_json(&root.join("manifest.json"));
    let url = root_manifest["artifacts"]["PipelineStack"]["properties"]
        ["stackTemplateAssetObjectUrl"]
        .as_str()
        .unwrap();
    assert!(url.ends_with(&format!("/{pipeline_id}.json")), "{url}");
    let parent = std::fs::read_to_string(
        root.join("assembly-PipelineStack-Dev/PipelineStackDevService2FAD3E8A.template.json"),
    )
    .unwrap();
    let parent_json: Value = serde_json::from_str(&parent).unwrap();
    let url = parent_json["Resources"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| r["Type"] == "AWS::CloudFormation::Stack")
        .map(|r| r["Properties"]["TemplateURL"].to_string())
        .unwrap();
    assert!(url.contains(&format!("/{nested_id}.json")), "{url}");
    let pipeline = std::fs::read_to_string(root.join("PipelineStack.template.json")).unwrap();
    assert!(
        pipeline.contains(&format!(
            "publish \\\\\\\"{nested_id}:222222222222-eu-west-1"
        )) || pipeline.contains(&format!("{nested_id}:222222222222-eu-west-1")),
        "the asset-publishing buildspec names the new nested id"
    );
    let assets = read_json(
        &root.join("assembly-PipelineStack-Dev/PipelineStackDevService2FAD3E8A.assets.json"),
    );
    let entry = &assets["files"][&nested_id];
    assert!(entry.is_object(), "assets.json is keyed by the new id");
    for (_, dest) in entry["destinations"].as_object().unwrap() {
        assert_eq!(dest["objectKey"], format!("{nested_id}.json"));
    }

    // No old id of a changed template remains anywhere in the assembly.
    for (path, bytes) in &after_files {
        let text = String::from_utf8_lossy(bytes);
        for (_, old, _) in &renamed {
            assert!(
                !text.contains(old.as_str()),
                "{path} still names old id {old}"
            );
        }
    }

    // Applying again changes nothing.
    let again = run(&root, &["apply", ".", "--config", config.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(
        snapshot(&root),
        after_files,
        "apply twice equals apply once"
    );
}

#[test]
fn issue_2_out_dir_writes_a_copy_and_leaves_the_input() {
    let (dir, root) = copy_fixture("pipelines");
    let input = snapshot(&root);
    let out = dir.path().join("hardened");
    let (_dir2, in_place, _) = hardened("pipelines");
    // The second run replaces the first run's output.
    for _ in 0..2 {
        let o = apply_copy(dir.path(), "pipelines", "hardened");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(snapshot(&root), input, "input untouched");
        // The copy equals what an in-place apply produces.
        assert_eq!(snapshot(&out), snapshot(&in_place));
    }
    let apply_into = |out: &str| apply_copy(dir.path(), "pipelines", out);
    // A directory that is not an assembly is never overwritten.
    std::fs::create_dir(dir.path().join("precious")).unwrap();
    std::fs::write(dir.path().join("precious/notes.txt"), "keep").unwrap();
    let o = apply_into("precious");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("precious"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("precious/notes.txt")).unwrap(),
        "keep"
    );
    // Nor is a file: the error says `--out` names a directory.
    std::fs::write(dir.path().join("review.md"), "keep").unwrap();
    let o = apply_into("review.md");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("review.md: `--out` names a directory"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("review.md")).unwrap(),
        "keep"
    );
}

/// A failed `apply --out` leaves nothing behind: not the copy, nor the directories made for it.
#[test]
fn issue_2_a_failed_copy_leaves_no_directories_it_made() {
    let (dir, root) = copy_fixture("pipelines");
    let nested = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .flat_map(|d| std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()))
        .find(|p| p.to_string_lossy().ends_with(".nested.template.json"))
        .expect("the example has a nested stack");
    std::fs::write(&nested, "{\n \"Resources\": {\n  \"A\": \n}").unwrap();
    let o = apply_copy(dir.path(), "pipelines", "made/deep/out");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("invalid JSON at line 4"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("made").exists(), "made/ was left behind");
}

#[test]
fn issue_2_diff_writes_nothing() {
    let (dir, root) = copy_fixture("pipelines");
    let input = snapshot(&root);
    let config = config("pipelines");
    for args in [
        vec!["diff", "cdk.out", "--config", config.to_str().unwrap()],
        vec![
            "apply",
            "cdk.out",
            "--dry-run",
            "--config",
            config.to_str().unwrap(),
        ],
    ] {
        let o = run(dir.path(), &args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(!stdout(&o).is_empty());
    }
    assert_eq!(snapshot(&root), input);
}

/// Runs `apply` on `root` with the pipelines config and asserts it is refused: exit 2, an
/// error mentioning every needle, an untouched assembly.
fn refused(root: &Path, needles: &[&str]) {
    let config = config("pipelines");
    assert_refused(
        root,
        &["apply", ".", "--config", config.to_str().unwrap()],
        needles,
        root,
    );
}

#[test]
fn issue_2_missing_manifest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("template.json"), "{}").unwrap();
    refused(dir.path(), &["no manifest.json", "cloud assembly"]);
}

#[test]
fn issue_2_invalid_json_names_line_and_column() {
    let (_dir, root) = copy_fixture("pipelines");
    let path =
        root.join("assembly-PipelineStack-UAT/PipelineStackUATService21A29E43.template.json");
    let path = if path.exists() {
        path
    } else {
        // The stack's file name carries a hash; find it.
        std::fs::read_dir(root.join("assembly-PipelineStack-UAT"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.to_string_lossy().ends_with(".template.json")
                    && !p.to_string_lossy().contains("nested")
            })
            .unwrap()
    };
    let text = std::fs::read_to_string(&path).unwrap();
    // Break the third line.
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "  \"Broken\": ,";
    std::fs::write(&path, lines.join("\n")).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    refused(&root, &[&name, "invalid JSON at line 3, column"]);
}

/// Files of the assembly that are named pipes (an asset manifest, the construct tree, any file
/// a `--out` copy takes along) are refused as not regular files, without waiting for a writer
/// and without leaving staged files behind.
#[cfg(unix)]
#[test]
fn issue_2_named_pipes_in_the_assembly_are_refused_without_waiting() {
    let mkfifo = |path: &Path| {
        let _ = std::fs::remove_file(path);
        let name = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
    };
    let config = config("pipelines");
    let config = config.to_str().unwrap();
    let named =
        |file: &str| format!("names `{file}`, which does not exist or is not a regular file");
    for (file, out, needle) in [
        (
            "PipelineStack.assets.json",
            None,
            named("PipelineStack.assets.json"),
        ),
        ("tree.json", None, named("tree.json")),
        (
            "stray",
            Some("copy"),
            "stray: not a regular file".to_string(),
        ),
    ] {
        let (dir, root) = copy_fixture("pipelines");
        mkfifo(&root.join(file));
        let mut args = vec!["apply", "cdk.out", "--config", config];
        if let Some(out) = out {
            args.extend(["--out", out]);
        }
        let o = run(dir.path(), &args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{file}: {err}");
        assert!(err.contains(&needle), "{file}: {err}");
        let mut left = Vec::new();
        let mut dirs = vec![dir.path().to_path_buf()];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(d).unwrap() {
                let path = entry.unwrap().path();
                if path.to_string_lossy().contains(".cdk-harden-") {
                    left.push(path.clone());
                }
                if path.is_dir() && !path.is_symlink() {
                    dirs.push(path);
                }
            }
        }
        assert!(left.is_empty(), "{file}: left behind {left:?}");
    }
}

/// A setting whose value cannot be what it names (an S3 bucket name, an SNS topic ARN, an SSM
/// parameter name) is an error naming the environment and the key, not a value written into
/// templates that CloudFormation would then refuse.
#[test]
fn issue_7_settings_that_cannot_be_what_they_name_are_refused() {
    for (env, pointer, value, needle) in [
        (
            "444444444444/*",
            "/accessLogs/bucket",
            serde_json::json!(""),
            "`accessLogs.bucket` is ``, which is not an S3 bucket name",
        ),
        (
            "444444444444/*",
            "/accessLogs/bucket",
            serde_json::json!("Bad_Bucket.."),
            "is not an S3 bucket name",
        ),
        (
            "111111111111/eu-west-1",
            "/approval/notificationArn",
            serde_json::json!("nope"),
            "`approval.notificationArn` is `nope`, which is not an SNS topic ARN",
        ),
        (
            "111111111111/eu-west-1",
            "/vpc/vpcId",
            serde_json::json!({"ssm": "/network/vpc id"}),
            "`/network/vpc id` is not an SSM parameter name",
        ),
    ] {
        assert_refused_with(
            "pipelines",
            |config| *config["environments"][env].pointer_mut(pointer).unwrap() = value,
            &[needle],
        );
    }
}

/// An asset manifest or construct tree the manifest names but that is missing (or not a
/// regular file) is named by the manifest's entry, as a missing template is.
#[test]
fn issue_2_a_missing_asset_manifest_or_tree_is_named_by_its_manifest_entry() {
    for ((file, pointer), directory) in [
        (
            "PipelineStack.assets.json",
            "/artifacts/PipelineStack.assets/properties/file",
        ),
        ("tree.json", "/artifacts/Tree/properties/file"),
    ]
    .into_iter()
    .flat_map(|named| [(named, false), (named, true)])
    {
        let (_dir, root) = copy_fixture("pipelines");
        std::fs::remove_file(root.join(file)).unwrap();
        if directory {
            std::fs::create_dir(root.join(file)).unwrap();
        }
        refused(
            &root,
            &[&format!(
                "manifest.json: `{pointer}` names `{file}`, which does not exist or is not a regular file"
            )],
        );
    }
}

/// An empty template is an error at line 1, column 1: columns count from 1 everywhere.
#[test]
fn issue_2_an_empty_template_is_an_error_at_its_first_column() {
    let (_dir, root) = copy_fixture("pipelines");
    std::fs::write(root.join("PipelineStack.template.json"), "").unwrap();
    refused(
        &root,
        &["PipelineStack.template.json: invalid JSON at line 1, column 1:"],
    );
}

/// A manifest (the root's or a Stage's) that is a symbolic link to a file outside the
/// assembly is refused, as templates and asset manifests are, rather than read.
#[cfg(unix)]
#[test]
fn issue_2_a_manifest_linked_from_outside_is_refused() {
    for manifest in ["manifest.json", "assembly-PipelineStack-Dev/manifest.json"] {
        let (dir, root) = copy_fixture("pipelines");
        let outside = dir.path().join("outside.json");
        std::fs::rename(root.join(manifest), &outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join(manifest)).unwrap();
        let config = config("pipelines");
        let o = run(&root, &["diff", ".", "--config", config.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{manifest}: {err}");
        assert!(
            err.contains(&format!(
                "{manifest}: a symbolic link that leads outside the assembly directory"
            )),
            "{manifest}: {err}"
        );
    }
}

/// A link at the marker's name, even one leading nowhere, means an interrupted run as a file
/// there does; and nothing is ever written through it.
#[cfg(unix)]
#[test]
fn issue_2_a_link_at_the_marker_is_refused_and_not_followed() {
    let (dir, root) = copy_fixture("pipelines");
    let victim = dir.path().join("victim");
    std::os::unix::fs::symlink(&victim, root.join(".cdk-harden-incomplete")).unwrap();
    let config = config("pipelines");
    let o = run(&root, &["apply", ".", "--config", config.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("was interrupted"), "{}", stderr(&o));
    assert!(!victim.exists(), "written through the link");
}

/// A nested stack that names a template it is nested in (here, its own) is refused, naming
/// the resource, instead of being followed until the thread's stack overflows.
#[test]
fn issue_2_a_nested_stack_cycle_is_refused() {
    let (_dir, root) = copy_fixture("pipelines");
    let path = root.join("PipelineStack.template.json");
    let mut template: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    template["Resources"]["Loop"] = serde_json::json!({
        "Type": "AWS::CloudFormation::Stack",
        "Metadata": {"aws:asset:path": "PipelineStack.template.json"}
    });
    std::fs::write(&path, serde_json::to_string(&template).unwrap()).unwrap();
    refused(
        &root,
        &[
            "PipelineStack.template.json: `/Resources/Loop/Metadata/aws:asset:path` names `PipelineStack.template.json`",
            "nested stacks cannot form a cycle",
        ],
    );
}

/// A key given twice in one object of a template is refused at its second place, not at the
/// end of the object (a stack's `Resources` ends hundreds of lines later), with the first's
/// line.
#[test]
fn issue_2_a_repeated_key_is_named_where_it_is_repeated() {
    let (_dir, root) = copy_fixture("pipelines");
    let path = std::fs::read_dir(root.join("assembly-PipelineStack-UAT"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.to_string_lossy().ends_with(".template.json")
                && !p.to_string_lossy().contains("nested")
        })
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    // A resource's `Type` line, given again right after it.
    let first = lines
        .iter()
        .position(|l| l.trim_start().starts_with("\"Type\": \"") && l.ends_with(','))
        .expect("a resource type followed by its properties");
    let again = lines[first];
    lines.insert(first + 1, again);
    std::fs::write(&path, lines.join("\n")).unwrap();
    let column = again.len() - again.trim_start().len() + 1;
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let expected = format!(
        "invalid JSON at line {}, column {column}: key `Type` appears twice in one object (first at line {})",
        first + 2,
        first + 1
    );
    refused(&root, &[&name, &expected]);
}

/// serde_json gives two keys a meaning of its own; a template that uses one is refused at its
/// place (once it read `{"$serde_json::private::RawValue": "nope"}` as raw JSON and panicked
/// rendering the JSON report), in every format, and nothing is written.
#[test]
fn issue_8_a_key_serde_json_reserves_is_refused_at_its_place() {
    for (key, format) in [
        ("$serde_json::private::RawValue", "json"),
        ("$serde_json::private::Number", "text"),
    ] {
        let (_dir, root) = copy_fixture("pipelines");
        let path = root.join("PipelineStack.template.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let bucket = "\"Type\": \"AWS::S3::Bucket\",";
        assert!(text.contains(bucket));
        let broken = text.replacen(
            bucket,
            &format!("{bucket}\n   \"Metadata\": {{\"{key}\": \"nope\"}},"),
            1,
        );
        std::fs::write(&path, broken).unwrap();
        let config = config("pipelines");
        assert_refused(
            &root,
            &[
                "apply",
                ".",
                "--format",
                format,
                "--config",
                config.to_str().unwrap(),
            ],
            &[
                "PipelineStack.template.json",
                "invalid JSON at line",
                key,
                "is reserved",
            ],
            &root,
        );
    }
}

/// Two stacks naming one template file would each harden it (for its own environment) and
/// write over each other: refused at load, naming the file and both stacks.
#[test]
fn issue_2_two_stacks_sharing_a_template_file_are_refused() {
    let (_dir, root) = copy_fixture("shapes");
    let manifest = root.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let shared = text.replace(
        "\"templateFile\": \"EdgeStack.template.json\"",
        "\"templateFile\": \"CompliantStack.template.json\"",
    );
    assert_ne!(shared, text);
    std::fs::write(&manifest, shared).unwrap();
    let config = config("shapes");
    assert_refused(
        &root,
        &["apply", ".", "--config", config.to_str().unwrap()],
        &[
            "CompliantStack.template.json: the template of both stack `EdgeStack` and stack `CompliantStack`",
        ],
        &root,
    );
}

#[test]
fn issue_2_missing_template() {
    let (_dir, root) = copy_fixture("pipelines");
    std::fs::remove_file(root.join("PipelineStack.template.json")).unwrap();
    refused(
        &root,
        &[
            "manifest.json",
            "/artifacts/PipelineStack/properties/templateFile",
            "PipelineStack.template.json",
            "does not exist",
        ],
    );
    // A nested template: the error quotes the value as its parent wrote it.
    let (_dir, root) = copy_fixture("pipelines");
    let stage = "assembly-PipelineStack-Dev";
    let nested = "PipelineStackDevServiceStorage338AB38E.nested.template.json";
    std::fs::remove_file(root.join(stage).join(nested)).unwrap();
    refused(
        &root,
        &[
            "PipelineStackDevService2FAD3E8A.template.json: `/Resources/StorageNestedStackStorageNestedStackResource9807768E/Metadata/aws:asset:path`",
            &format!("names `{nested}`, which does not exist"),
        ],
    );
    // A directory where the template should be is no template either.
    let (_dir, root) = copy_fixture("pipelines");
    std::fs::remove_file(root.join("PipelineStack.template.json")).unwrap();
    std::fs::create_dir(root.join("PipelineStack.template.json")).unwrap();
    refused(
        &root,
        &[
            "/artifacts/PipelineStack/properties/templateFile",
            "names `PipelineStack.template.json`, which does not exist",
        ],
    );
    // Nor is a named pipe, which is not opened (opening one waits for a writer).
    let (_dir, root) = copy_fixture("pipelines");
    let template = root.join("PipelineStack.template.json");
    std::fs::remove_file(&template).unwrap();
    let path = std::ffi::CString::new(template.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the pipe.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    // Run directly: the usual check that nothing changed reads every file, the pipe too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cdk-harden"))
        .args([
            "apply",
            ".",
            "--config",
            config("pipelines").to_str().unwrap(),
        ])
        .current_dir(&root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("names `PipelineStack.template.json`, which does not exist"),
        "{stderr}"
    );
}

#[test]
fn issue_2_unknown_manifest_major_version() {
    let (_dir, root) = copy_fixture("pipelines");
    let path = root.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("\"version\": \"55.0.0\"", "\"version\": \"99.0.0\"", 1),
    )
    .unwrap();
    refused(&root, &["manifest.json", "`99.0.0`", "not supported"]);
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut value = read_json(path);
    edit(&mut value);
    std::fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

#[test]
fn issue_2_paths_escaping_the_assembly_are_refused() {
    // A template file outside the root.
    let (_dir, root) = copy_fixture("pipelines");
    edit_json(&root.join("manifest.json"), |m| {
        m["artifacts"]["PipelineStack"]["properties"]["templateFile"] = "../../etc/passwd".into();
    });
    refused(
        &root,
        &[
            "manifest.json",
            "templateFile",
            "`../../etc/passwd`",
            "leaves the assembly",
        ],
    );

    // An absolute asset source path.
    let (_dir, root) = copy_fixture("pipelines");
    edit_json(&root.join("PipelineStack.assets.json"), |m| {
        let files = m["files"].as_object_mut().unwrap();
        let first = files.values_mut().next().unwrap();
        first["source"]["path"] = "/etc/passwd".into();
    });
    refused(
        &root,
        &[
            "PipelineStack.assets.json",
            "source/path",
            "`/etc/passwd`",
            "leaves the assembly",
        ],
    );

    // A nested assembly directory outside the root.
    let (_dir, root) = copy_fixture("pipelines");
    edit_json(&root.join("manifest.json"), |m| {
        m["artifacts"]["assembly-PipelineStack-Dev"]["properties"]["directoryName"] = "..".into();
    });
    refused(&root, &["directoryName", "leaves the assembly"]);

    // A symbolic link pointing out.
    #[cfg(unix)]
    {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("t.json"), "{}").unwrap();
        let (_dir, root) = copy_fixture("pipelines");
        std::os::unix::fs::symlink(
            outside.path().join("t.json"),
            root.join("linked.template.json"),
        )
        .unwrap();
        edit_json(&root.join("manifest.json"), |m| {
            m["artifacts"]["PipelineStack"]["properties"]["templateFile"] =
                "linked.template.json".into();
        });
        refused(&root, &["`linked.template.json`", "leaves the assembly"]);
    }
}

/// Templates after a complete apply, for comparing with an interrupted one.
fn completed_apply(app: &str) -> Vec<(String, Vec<u8>)> {
    let (_dir, root, _) = hardened(app);
    snapshot(&root)
}

/// Runs `apply` on a copy of the pipelines fixture with a fault injected; returns the copy.
fn apply_with_fault(fault: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, root) = copy_fixture("pipelines");
    let config = config("pipelines");
    let o = bin()
        .current_dir(&root)
        .env("CDK_HARDEN_FAULT", fault)
        .args(["apply", ".", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "{fault}: the fault hook must kill the process"
    );
    (dir, root)
}

/// Asserts every file is either its old or its new version; returns how many are new.
fn old_or_new(
    root: &Path,
    old: &[(String, Vec<u8>)],
    new: &[(String, Vec<u8>)],
    what: &str,
) -> usize {
    let mut saw_new = 0;
    for (path, bytes) in snapshot(root) {
        if path.contains(".cdk-harden-") || path == cdk_harden::assembly::INCOMPLETE_MARKER {
            continue; // abandoned temporary files and the marker
        }
        let was = old.iter().find(|(p, _)| *p == path).map(|(_, b)| b);
        let will = new.iter().find(|(p, _)| *p == path).map(|(_, b)| b);
        assert!(
            Some(&bytes) == was || Some(&bytes) == will,
            "{what}: {path} is neither old nor new"
        );
        if Some(&bytes) != was {
            saw_new += 1;
        }
    }
    saw_new
}

#[test]
fn issue_2_kill_mid_write_leaves_every_file_old_or_new() {
    let old = snapshot(&fixture("pipelines"));
    let new = completed_apply("pipelines");
    let config = config("pipelines");
    // Killed while writing the new files: nothing has been replaced yet, and the assembly is
    // still the consistent input, so a new run proceeds.
    for n in [1, 4] {
        let (_dir, root) = apply_with_fault(&format!("abort-in-write:{n}"));
        assert_eq!(
            old_or_new(&root, &old, &new, &format!("abort in write {n}")),
            0
        );
        assert!(!root.join(cdk_harden::assembly::INCOMPLETE_MARKER).exists());
        let again = run(&root, &["apply", ".", "--config", config.to_str().unwrap()]);
        assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    }
    // Killed while replacing files: each is old or new, and the next run refuses the
    // half-replaced assembly instead of hardening it further. The 7 templates are renamed
    // into place first; the 9 manifests, asset manifests and the tree that name their ids
    // are then edited in place.
    for n in [1, 3, 7, 8, 12, 16] {
        let (_dir, root) = apply_with_fault(&format!("abort-after-rename:{n}"));
        assert_eq!(
            old_or_new(&root, &old, &new, &format!("abort after rename {n}")),
            n
        );
        let again = run(&root, &["apply", ".", "--config", config.to_str().unwrap()]);
        assert_eq!(again.status.code(), Some(2));
        assert!(stderr(&again).contains("interrupted"), "{}", stderr(&again));
    }
}

#[test]
fn issue_2_kill_mid_copy_leaves_no_output_and_the_input_untouched() {
    let (dir, root) = copy_fixture("pipelines");
    let input = snapshot(&root);
    let config = config("pipelines");
    let o = bin()
        .current_dir(dir.path())
        .env("CDK_HARDEN_FAULT", "abort-in-write:2")
        .args([
            "apply",
            "cdk.out",
            "--out",
            "hardened",
            "--config",
            config.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        !dir.path().join("hardened").exists(),
        "no partial output directory"
    );
    assert_eq!(snapshot(&root), input);
}

/// CDK writes object keys as `bucketPrefix + id + extension`; a prefix ending in a hex digit
/// (`team-a`) puts the id at the end of a longer hex run. It must still be replaced.
#[test]
fn issue_2_ids_after_a_bucket_prefix_are_replaced() {
    let (_dir, root) = copy_fixture("pipelines");
    let dev = root.join("assembly-PipelineStack-Dev");
    for entry in std::fs::read_dir(&dev).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = text
            .replace("\"objectKey\": \"", "\"objectKey\": \"team-a")
            .replace(
                "-assets-222222222222-eu-west-1/",
                "-assets-222222222222-eu-west-1/team-a",
            );
        std::fs::write(&path, edited).unwrap();
    }
    let before_ids = template_ids(&root);
    let config = repo().join("tests/data/touch-only.json");
    let o = run(&root, &["apply", ".", "--config", config.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after_ids = template_ids(&root);
    let renamed: Vec<(&String, &String)> = before_ids
        .iter()
        .zip(&after_ids)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, b)| (&a.1, &b.1))
        .collect();
    assert_eq!(renamed.len(), 3, "nested, parent and pipeline");
    for (path, bytes) in snapshot(&root) {
        let text = String::from_utf8_lossy(&bytes);
        for (old, _) in &renamed {
            assert!(!text.contains(old.as_str()), "{path} still names {old}");
        }
    }
    let assets = std::fs::read_dir(&dev)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".assets.json"))
        .unwrap();
    let assets = read_json(&assets);
    for (id, entry) in assets["files"].as_object().unwrap() {
        for (_, dest) in entry["destinations"].as_object().unwrap() {
            let key = dest["objectKey"].as_str().unwrap();
            assert!(
                key.starts_with(&format!("team-a{id}")),
                "{key} does not name {id}"
            );
        }
    }
}

/// A template that changes but has no asset entry would deploy under its old hash: refused.
#[test]
fn issue_2_a_changed_template_without_an_asset_entry_is_refused() {
    let (_dir, root) = copy_fixture("secrets");
    edit_json(&root.join("SecretsStack.assets.json"), |m| {
        m["files"] = serde_json::json!({});
    });
    let config = config("secrets");
    assert_refused(
        &root,
        &["apply", ".", "--config", config.to_str().unwrap()],
        &[
            "SecretsStack.template.json",
            "no asset manifest entry publishes it",
        ],
        &root,
    );
    // An asset manifest that is not an object is refused when read.
    let (_dir, root) = copy_fixture("secrets");
    std::fs::write(root.join("SecretsStack.assets.json"), "[]").unwrap();
    assert_refused(
        &root,
        &["apply", ".", "--config", config.to_str().unwrap()],
        &["SecretsStack.assets.json", "an object"],
        &root,
    );
}

#[test]
fn issue_2_malformed_resources_are_refused() {
    for (edit, needle) in [
        (
            serde_json::json!([]),
            "`/Resources` must be an object of resources",
        ),
        (
            serde_json::json!({"Broken": null}),
            "`/Resources/Broken` must be an object",
        ),
        (
            serde_json::json!({"Untyped": {"Properties": {}}}),
            "`/Resources/Untyped/Type` must be a string",
        ),
    ] {
        let (_dir, root) = copy_fixture("secrets");
        edit_json(&root.join("SecretsStack.template.json"), |t| {
            t["Resources"] = edit.clone()
        });
        let config = config("secrets");
        assert_refused(
            &root,
            &["apply", ".", "--config", config.to_str().unwrap()],
            &["SecretsStack.template.json", needle],
            &root,
        );
    }
}

/// A template within CloudFormation's 500-resource limit that hardening would take past it
/// is refused, naming the stack and the limit, and nothing is written: CloudFormation would
/// reject it at deploy time. At exactly 500 it is hardened.
#[test]
fn issue_2_hardening_never_takes_a_template_past_cloudformations_limits() {
    let file = "SecretsStack.template.json";
    let config = config("secrets");
    let config = config.to_str().unwrap();
    let count = |root: &Path| {
        read_json(&root.join(file))["Resources"]
            .as_object()
            .unwrap()
            .len()
    };
    let (_dir, root) = copy_fixture("secrets");
    let before = count(&root);
    let o = run(&root, &["apply", ".", "--config", config]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let added = count(&root) - before;
    assert!(added > 0, "hardening adds resources to {file}");
    let padded = |total: usize| {
        let (dir, root) = copy_fixture("secrets");
        edit_json(&root.join(file), |t| {
            let resources = t["Resources"].as_object_mut().unwrap();
            let mut k = 0;
            while resources.len() < total {
                resources.insert(
                    format!("Padding{k}"),
                    serde_json::json!({"Type": "AWS::CloudFormation::WaitConditionHandle"}),
                );
                k += 1;
            }
        });
        (dir, root)
    };
    let (_dir, root) = padded(500 - added + 1);
    let args = ["apply", ".", "--config", config];
    let err = assert_refused(
        &root,
        &args,
        &[
            "SecretsStack",
            "would give the template 501 Resources; CloudFormation allows at most 500",
        ],
        &root,
    );
    assert!(
        err.contains(&format!("(it had {})", 500 - added + 1)),
        "{err}"
    );
    let (_dir, root) = padded(500 - added);
    let o = run(&root, &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(count(&root), 500);

    // The same for the size of the template's text (1,000,000 bytes, as cfn-lint counts).
    let (_dir, root) = copy_fixture("secrets");
    let path = root.join(file);
    edit_json(&path, |t| {
        t["Metadata"] = serde_json::json!({"Padding": ""});
    });
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    edit_json(&path, |t| {
        t["Metadata"]["Padding"] = "x".repeat(999_000 - size).into();
    });
    let err = assert_refused(
        &root,
        &args,
        &[
            "SecretsStack",
            "bytes; CloudFormation allows at most 1000000",
        ],
        &root,
    );
    assert!(err.contains("(it had 999000)"), "{err}");
}

/// `cdk synth --no-asset-metadata` leaves nested stacks without `aws:asset:path`: their
/// templates are then found through the asset id their `TemplateURL` names, and hardened as
/// when the metadata is there; `check` then finds nothing left.
#[test]
fn issue_2_nested_stacks_are_found_without_asset_metadata() {
    let config = config("pipelines");
    let config = config.to_str().unwrap();
    let (_with, with) = copy_fixture("pipelines");
    let (_without, without) = copy_fixture("pipelines");
    let mut stripped = 0;
    for (path, _) in templates(&without) {
        edit_json(&without.join(&path), |t| {
            for (_, r) in t["Resources"].as_object_mut().unwrap() {
                if r["Type"] == "AWS::CloudFormation::Stack" {
                    let meta = r["Metadata"].as_object_mut().unwrap();
                    stripped += meta.remove("aws:asset:path").is_some() as usize;
                }
            }
        });
    }
    assert!(stripped > 0, "the example has nested stacks");
    let nested_before = snapshot(&without);
    for root in [&with, &without] {
        let o = run(root, &["apply", ".", "--config", config]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let nested = |root: &Path| -> Vec<(String, Vec<u8>)> {
        snapshot(root)
            .into_iter()
            .filter(|(p, _)| p.ends_with(".nested.template.json"))
            .collect()
    };
    let hardened = nested(&without);
    assert_eq!(hardened.len(), stripped);
    assert_eq!(hardened, nested(&with), "hardened as with the metadata");
    let unchanged = nested_before
        .iter()
        .filter(|(p, _)| p.ends_with(".nested.template.json"))
        .any(|entry| hardened.contains(entry));
    assert!(!unchanged, "every nested template was hardened");
    let o = run(&without, &["check", ".", "--config", config]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Every file apply rewrites keeps its permissions, whether or not they are the ones a new
/// file gets (read and write for all, less the umask): templates, nested templates, asset
/// manifests and manifests, in place and in a copy.
#[cfg(unix)]
#[test]
fn issue_8_rewritten_files_keep_their_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let files = [
        ("PipelineStack.template.json", 0o600),
        (
            "assembly-PipelineStack-Dev/PipelineStackDevServiceStorage338AB38E.nested.template.json",
            0o640,
        ),
        ("assembly-PipelineStack-Dev/manifest.json", 0o604),
        // Read-only: replaced rather than edited in place.
        ("assembly-PipelineStack-UAT/manifest.json", 0o444),
        ("PipelineStack.assets.json", 0o644),
        ("assembly-PipelineStack-Dev/PipelineStackDevService2FAD3E8A.template.json", 0o666),
    ];
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    let (_dir, root) = copy_fixture("pipelines");
    for (file, wanted) in files {
        let path = root.join(file);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted)).unwrap();
    }
    let before = snapshot(&root);
    let copy = apply_copy(root.parent().unwrap(), "pipelines", "hardened");
    assert_eq!(copy.status.code(), Some(0), "{}", stderr(&copy));
    let out = apply_in_place(&root, "pipelines");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after = snapshot(&root);
    for (file, wanted) in files {
        assert_ne!(
            file_in(&before, file),
            file_in(&after, file),
            "{file} was not rewritten"
        );
        assert_eq!(mode(&root.join(file)), wanted, "{file} in place");
        let copied = root.parent().unwrap().join("hardened").join(file);
        assert_eq!(mode(&copied), wanted, "{file} in the copy");
    }
}

/// A manifest or asset manifest whose ids change is edited where it is (same inode), not
/// rewritten; a file that is linked from elsewhere is replaced instead, so the other name
/// keeps what it held: a hard link's other name, a symbolic link's target. Either way its
/// bytes are those of a complete apply.
#[cfg(unix)]
#[test]
fn issue_8_manifests_are_edited_in_place_unless_another_name_would_see_it() {
    use std::os::unix::fs::MetadataExt;
    let expected = completed_apply("pipelines");
    let (dir, root) = copy_fixture("pipelines");
    let inode = |path: &Path| std::fs::symlink_metadata(path).unwrap().ino();
    let manifest = root.join("assembly-PipelineStack-Prod/manifest.json");
    let template = root.join("PipelineStack.template.json");
    // A hard link outside the assembly to the Dev stage's manifest.
    let dev = root.join("assembly-PipelineStack-Dev/manifest.json");
    let other_name = dir.path().join("dev-manifest.json");
    std::fs::hard_link(&dev, &other_name).unwrap();
    // The pipeline's asset manifest, as a symbolic link to a file inside the assembly.
    let assets = root.join("PipelineStack.assets.json");
    let real = root.join("real.assets.json");
    std::fs::rename(&assets, &real).unwrap();
    std::os::unix::fs::symlink("real.assets.json", &assets).unwrap();
    let before = (
        inode(&manifest),
        inode(&template),
        std::fs::read(&real).unwrap(),
    );
    let dev_before = std::fs::read(&dev).unwrap();

    let out = apply_in_place(&root, "pipelines");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let want = |name: &str| file_in(&expected, name);
    // Edited in place: same inode, new bytes. A template is renamed into place.
    assert_eq!(inode(&manifest), before.0);
    assert_ne!(inode(&template), before.1);
    let prod = "assembly-PipelineStack-Prod/manifest.json";
    assert_eq!(&std::fs::read(&manifest).unwrap(), want(prod));
    // The hard-linked manifest was replaced: its other name still holds the input.
    let dev_name = "assembly-PipelineStack-Dev/manifest.json";
    assert_eq!(&std::fs::read(&dev).unwrap(), want(dev_name));
    assert_ne!(&dev_before, want(dev_name));
    assert_eq!(std::fs::read(&other_name).unwrap(), dev_before);
    // The linked asset manifest: a regular file now, its old target untouched.
    assert!(std::fs::symlink_metadata(&assets).unwrap().is_file());
    assert_eq!(
        &std::fs::read(&assets).unwrap(),
        want("PipelineStack.assets.json")
    );
    assert_eq!(std::fs::read(&real).unwrap(), before.2);
}

/// Whether this test process runs as root (some tests need to act as another user).
#[cfg(target_os = "linux")]
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// A manifest this user cannot write, in a directory it can (another user's file, mode 0644),
/// is replaced rather than edited in place: editing it would fail half-way through commit,
/// after the templates were renamed. Run as `nobody`; skipped unless run as root with
/// `setpriv`.
#[cfg(target_os = "linux")]
#[test]
fn issue_8_a_manifest_this_user_cannot_write_is_replaced_not_edited() {
    let setpriv = std::path::Path::new("/usr/bin/setpriv");
    if !is_root() || !setpriv.exists() {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    let (dir, root) = copy_fixture("pipelines");
    let cfg = dir.path().join("cdk-harden.json");
    std::fs::copy(config("pipelines"), &cfg).unwrap();
    let chown = |args: &[&str], p: &Path| {
        let status = std::process::Command::new("chown")
            .args(args)
            .arg(p)
            .status();
        assert!(status.unwrap().success());
    };
    chown(&["-R", "nobody"], dir.path());
    chown(&["root"], &root.join("manifest.json"));
    let out = std::process::Command::new(setpriv)
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_cdk-harden"))
        .args(["apply", ".", "--config"])
        .arg(&cfg)
        .current_dir(&root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!root.join(cdk_harden::assembly::INCOMPLETE_MARKER).exists());
    let expected = completed_apply("pipelines");
    let want = file_in(&expected, "manifest.json");
    assert_eq!(&std::fs::read(root.join("manifest.json")).unwrap(), want);
}

/// The config can come from a pipe (`--config /dev/stdin`): a file that is not a regular
/// one is read to its end, not to the size it reports.
#[cfg(unix)]
#[test]
fn issue_8_a_config_from_a_pipe_is_read_whole() {
    use std::io::Write;
    let (_dir, root) = copy_fixture("pipelines");
    let text = std::fs::read(config("pipelines")).unwrap();
    let mut child = bin()
        .current_dir(&root)
        .args(["diff", ".", "--config", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A file's mode is its own after apply, whatever mode a new file in its directory would get:
/// under a default ACL that gives new files group write, a 0644 template stays 0644. Skipped
/// where `setfacl` is missing or the file system has no ACLs.
#[cfg(target_os = "linux")]
#[test]
fn issue_8_a_default_acl_does_not_change_modes() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, root) = copy_fixture("pipelines");
    let acl = std::process::Command::new("setfacl")
        .args(["-d", "-m", "u::rw,g::rw,o::r,m::rw"])
        .arg(&root)
        .status();
    if !matches!(acl, Ok(s) if s.success()) {
        eprintln!("skipped: no default ACLs here");
        return;
    }
    let file = root.join("PipelineStack.template.json");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = apply_in_place(&root, "pipelines");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644);
}

/// What a crashed run left at this run's temporary names does not leak into this one: a
/// leftover file's mode is not kept, and a symbolic link there is not written through.
#[cfg(unix)]
#[test]
fn issue_8_leftovers_at_the_temporary_names_are_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, root) = copy_fixture("pipelines");
    let (config, registry, assembly) = library_inputs("pipelines", &root);
    let pid = std::process::id();
    let template = root.join("PipelineStack.template.json");
    let leftover = root.join(format!(".PipelineStack.template.json.cdk-harden-{pid}.tmp"));
    std::fs::write(&leftover, "old").unwrap();
    std::fs::set_permissions(&leftover, std::fs::Permissions::from_mode(0o600)).unwrap();
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, "untouched").unwrap();
    let nested = "assembly-PipelineStack-Dev/PipelineStackDevService2FAD3E8A.template.json";
    let (parent, name) = nested.split_once('/').unwrap();
    let planted = root
        .join(parent)
        .join(format!(".{name}.cdk-harden-{pid}.tmp"));
    std::os::unix::fs::symlink(&outside, &planted).unwrap();
    let mut writer = Writer::in_place(&root);
    cdk_harden::harden(&assembly, &config.config, &registry, Some(&mut writer)).unwrap();
    writer.commit().unwrap();
    let mode = std::fs::metadata(&template).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "untouched");
    assert!(
        std::fs::symlink_metadata(&planted).is_err(),
        "nothing left at the link's name"
    );
    let expected = completed_apply("pipelines");
    let want = file_in(&expected, nested);
    assert_eq!(&std::fs::read(root.join(nested)).unwrap(), want);
}

/// A manifest changed between being read and being edited is not edited at the offsets read:
/// commit stops with an error naming it before it writes anything.
#[cfg(unix)]
#[test]
fn issue_8_a_manifest_changed_before_commit_is_not_edited() {
    let (_dir, root) = copy_fixture("pipelines");
    let (config, registry, assembly) = library_inputs("pipelines", &root);
    let mut writer = Writer::in_place(&root);
    cdk_harden::harden(&assembly, &config.config, &registry, Some(&mut writer)).unwrap();
    let manifest = root.join("assembly-PipelineStack-Prod/manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let moved = format!("{{\n \"moved\": true,{}", &text[1..]);
    std::fs::write(&manifest, &moved).unwrap();
    let files = |root: &Path| -> Vec<(String, Vec<u8>)> {
        snapshot(root)
            .into_iter()
            .filter(|(name, _)| !name.contains(".cdk-harden-"))
            .collect()
    };
    let before = files(&root);
    let error = writer
        .commit()
        .expect_err("the manifest changed")
        .to_string();
    assert!(
        error.contains("assembly-PipelineStack-Prod/manifest.json"),
        "{error}"
    );
    // Found before anything is written: no template replaced, no marker, nothing staged left.
    let after = snapshot(&root);
    assert!(after.iter().all(|(name, _)| !name.contains(".cdk-harden-")));
    assert!(files(&root) == before, "the assembly was modified");
    assert!(!root.join(cdk_harden::assembly::INCOMPLETE_MARKER).exists());
}

/// `--out` leaves the input untouched even when a Stage's directory is an absolute symbolic
/// link to a directory inside the assembly: in the copy the link leads inside the copy, so
/// the hardened files land there and not in the input.
#[cfg(unix)]
#[test]
fn issue_2_out_never_writes_through_an_absolute_link_into_the_input() {
    let (dir, root) = copy_fixture("pipelines");
    let stage = root.join("assembly-PipelineStack-Dev");
    let real = root.join("real-Dev");
    std::fs::rename(&stage, &real).unwrap();
    std::os::unix::fs::symlink(&real, &stage).unwrap();
    let before = snapshot(&real);
    let out = apply_copy(dir.path(), "pipelines", "hardened");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        snapshot(&real),
        before,
        "the input's Stage directory changed"
    );
    // The copy's link leads to the copy's directory, which holds the hardened files.
    let copied = dir.path().join("hardened");
    let link = std::fs::read_link(copied.join("assembly-PipelineStack-Dev")).unwrap();
    assert_eq!(link, std::path::PathBuf::from("real-Dev"));
    let expected = completed_apply("pipelines");
    let name = "PipelineStackDevService2FAD3E8A.template.json";
    let want = file_in(&expected, &format!("assembly-PipelineStack-Dev/{name}"));
    assert_eq!(
        &std::fs::read(copied.join("real-Dev").join(name)).unwrap(),
        want
    );
}
