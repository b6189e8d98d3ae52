//! Issue 5: the `kms` transform, on the committed fixtures and on small hand-written templates.
//!
//! The validator tests run the real cfn-lint and checkov (see `common::validators`).

mod common;

use std::path::{Path, PathBuf};

use cdk_harden::report::StackReport;
use cdk_harden::transform::{JsonText, NoteKind, Op};
use serde_json::{json, Value};

use common::validators::{checkov_failures, new_cfn_lint_errors};
use common::{fixture, hardened, read_json, resources_of, templates};

/// The checks of the issue's acceptance.
const KMS_CHECKS: &[&str] = &[
    "CKV_AWS_119",
    "CKV_AWS_158",
    "CKV_AWS_173",
    "CKV_AWS_26",
    "CKV_AWS_27",
    "CKV_AWS_149",
];

const PROD_KEY: &str =
    "arn:aws:kms:eu-west-1:444444444444:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn created_key() -> Value {
    json!({"Fn::GetAtt": ["CdkHardenKey", "Arn"]})
}

/// The `Action` of a statement as a list of strings.
fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn kms_notes(stack: &StackReport, kind: NoteKind) -> Vec<&str> {
    stack
        .notes
        .iter()
        .filter(|n| n.transform == "kms" && n.kind == kind)
        .map(|n| n.message.as_str())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The committed fixtures.

#[test]
fn issue_5_checkov_finds_no_unencrypted_resources_after_apply() {
    let before = checkov_failures(&fixture("pipelines"), KMS_CHECKS);
    assert!(
        before.len() >= 20,
        "the raw pipelines fixture fails the KMS checks (else this test proves nothing): {before:#?}"
    );
    for app in ["pipelines", "shapes", "secrets"] {
        let (_dir, out, _) = hardened(app);
        let failures = checkov_failures(&out, KMS_CHECKS);
        assert!(failures.is_empty(), "{app}: {failures:#?}");
    }
}

#[test]
fn issue_5_cfn_lint_reports_no_new_errors() {
    for app in ["pipelines", "shapes", "secrets"] {
        let (_dir, out, _) = hardened(app);
        let new = new_cfn_lint_errors(&fixture(app), &out);
        assert!(new.is_empty(), "{app}: {new:#?}");
    }
}

#[test]
fn issue_5_every_build_and_artifact_store_names_a_customer_managed_key() {
    let mut projects = 0;
    let mut stores = 0;
    for app in ["pipelines", "shapes", "secrets"] {
        let (_dir, out, _) = hardened(app);
        for (path, template) in templates(&out) {
            // A customer-managed key: a key of this template, or the environment's central key.
            let is_cmk = |key: &Value| {
                let in_template = key["Fn::GetAtt"][0]
                    .as_str()
                    .is_some_and(|id| template["Resources"][id]["Type"] == "AWS::KMS::Key");
                in_template || key == PROD_KEY
            };
            for (id, project) in resources_of(&template, "AWS::CodeBuild::Project") {
                projects += 1;
                let key = &project["Properties"]["EncryptionKey"];
                assert!(is_cmk(key), "{path}: project {id} uses {key}");
            }
            for (id, pipeline) in resources_of(&template, "AWS::CodePipeline::Pipeline") {
                let props = &pipeline["Properties"];
                let mut all: Vec<&Value> = props.get("ArtifactStore").into_iter().collect();
                for entry in props["ArtifactStores"].as_array().into_iter().flatten() {
                    all.push(&entry["ArtifactStore"]);
                }
                for store in all {
                    stores += 1;
                    let key = &store["EncryptionKey"]["Id"];
                    assert!(
                        is_cmk(key),
                        "{path}: pipeline {id} artifact store uses {key}"
                    );
                }
            }
        }
    }
    assert!(
        projects >= 10 && stores >= 2,
        "{projects} projects, {stores} stores"
    );
}

#[test]
fn issue_5_access_log_buckets_stay_sse_s3() {
    let mut seen = 0;
    for app in ["pipelines", "shapes"] {
        let (_dir, out, _) = hardened(app);
        for (path, template) in templates(&out) {
            let mut log_buckets: Vec<String> = Vec::new();
            for (_, bucket) in resources_of(&template, "AWS::S3::Bucket") {
                if let Some(dest) = bucket["Properties"]["LoggingConfiguration"]
                    ["DestinationBucketName"]["Ref"]
                    .as_str()
                {
                    log_buckets.push(dest.to_string());
                }
            }
            log_buckets.sort();
            log_buckets.dedup();
            for id in log_buckets {
                seen += 1;
                let rules = &template["Resources"][&id]["Properties"]["BucketEncryption"]
                    ["ServerSideEncryptionConfiguration"];
                assert_eq!(
                    rules[0]["ServerSideEncryptionByDefault"],
                    json!({"SSEAlgorithm": "AES256"}),
                    "{path}: access-log bucket {id}"
                );
            }
        }
    }
    // The created access-log bucket of most stacks, and CompliantStack's own log bucket.
    assert!(seen >= 10, "{seen}");
}

/// Grant test: the Handler reads the table and sends to the queue; after apply its role's
/// policy allows kms:Decrypt and kms:GenerateDataKey* on the key that now encrypts both.
#[test]
fn issue_5_grant_test_handler_can_use_the_key_of_its_table_and_queue() {
    let (_dir, out, _) = hardened("pipelines");
    let cases = [
        (
            "assembly-PipelineStack-Dev/PipelineStackDevService2FAD3E8A.template.json",
            created_key(),
        ),
        (
            "assembly-PipelineStack-Prod/PipelineStackProdService88ED0A80.template.json",
            json!(PROD_KEY),
        ),
    ];
    for (path, key) in cases {
        let t = read_json(&out.join(path));
        let r = &t["Resources"];
        assert_eq!(
            r["TableCD117FA1"]["Properties"]["SSESpecification"]["KMSMasterKeyId"], key,
            "{path}"
        );
        assert_eq!(
            r["Queue4A7E3555"]["Properties"]["KmsMasterKeyId"], key,
            "{path}"
        );
        assert_eq!(
            r["Handler886CB40B"]["Properties"]["KmsKeyArn"], key,
            "{path}"
        );
        let policy = &r["HandlerServiceRoleDefaultPolicyCBD0CC91"]["Properties"];
        assert_eq!(
            policy["Roles"],
            json!([{"Ref": "HandlerServiceRoleFCDC14AE"}])
        );
        assert_eq!(
            r["Handler886CB40B"]["Properties"]["Role"]["Fn::GetAtt"][0],
            "HandlerServiceRoleFCDC14AE"
        );
        let grants: Vec<&Value> = policy["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Resource"] == key && s["Effect"] == "Allow")
            .collect();
        assert_eq!(grants.len(), 1, "{path}: one grant statement: {grants:#?}");
        let granted = actions(grants[0]);
        for needed in ["kms:Decrypt", "kms:GenerateDataKey*"] {
            assert!(
                granted.iter().any(|a| a == needed),
                "{path}: {needed} missing from {granted:?}"
            );
        }
        assert_eq!(grants[0]["Sid"], "CdkHardenKms");
    }
}

/// Create-mode test: the key rotates, is retained, has its alias, and its policy names the
/// CloudWatch Logs principal exactly when the template has log groups.
#[test]
fn issue_5_create_mode_key_rotates_and_names_logs_exactly_with_log_groups() {
    let (mut with_logs, mut without_logs) = (0, 0);
    for app in ["pipelines", "shapes", "secrets"] {
        let (_dir, out, _) = hardened(app);
        for (path, template) in templates(&out) {
            let Some(key) = template["Resources"].get("CdkHardenKey") else {
                continue;
            };
            assert_eq!(key["Type"], "AWS::KMS::Key");
            assert_eq!(
                key["Properties"]["EnableKeyRotation"],
                json!(true),
                "{path}"
            );
            assert_eq!(key["DeletionPolicy"], "Retain");
            assert_eq!(key["UpdateReplacePolicy"], "Retain");
            let alias = &template["Resources"]["CdkHardenKeyAlias"];
            assert_eq!(alias["Properties"]["TargetKeyId"], created_key(), "{path}");
            assert_eq!(
                alias["Properties"]["AliasName"],
                json!({"Fn::Sub": "alias/cdk-harden/${AWS::StackName}"})
            );
            let statements = key["Properties"]["KeyPolicy"]["Statement"]
                .as_array()
                .unwrap();
            assert!(
                statements.iter().any(|s| s["Principal"]["AWS"]["Fn::Sub"]
                    == "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"
                    && s["Action"] == "kms:*"),
                "{path}: the account administers the key"
            );
            let logs: Vec<&Value> = statements
                .iter()
                .filter(|s| {
                    s["Principal"]["Service"]["Fn::Sub"] == "logs.${AWS::Region}.amazonaws.com"
                })
                .collect();
            let has_log_groups = !resources_of(&template, "AWS::Logs::LogGroup").is_empty();
            assert_eq!(logs.len(), usize::from(has_log_groups), "{path}");
            if has_log_groups {
                with_logs += 1;
                assert_eq!(
                    logs[0]["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
                        ["Fn::Sub"],
                    "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"
                );
                for (id, group) in resources_of(&template, "AWS::Logs::LogGroup") {
                    assert_eq!(
                        group["Properties"]["KmsKeyId"],
                        created_key(),
                        "{path}: {id}"
                    );
                }
            } else {
                without_logs += 1;
            }
        }
    }
    // ClassicPipelineStack and OptOutStack have buckets but no log groups.
    assert!(
        with_logs >= 8 && without_logs >= 2,
        "{with_logs} with, {without_logs} without"
    );
}

#[test]
fn issue_5_edge_bucket_key_policy_lets_cloudfront_decrypt() {
    let (_dir, out, _) = hardened("shapes");
    let t = read_json(&out.join("EdgeStack.template.json"));
    let statements = t["Resources"]["CdkHardenKey"]["Properties"]["KeyPolicy"]["Statement"]
        .as_array()
        .unwrap()
        .clone();
    let cloudfront = statements
        .iter()
        .find(|s| s["Principal"]["Service"] == "cloudfront.amazonaws.com")
        .expect("a statement for CloudFront origin access control");
    assert_eq!(actions(cloudfront), ["kms:Decrypt"]);
    assert_eq!(
        cloudfront["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"],
        "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/*"
    );
}

#[test]
fn issue_5_central_key_is_used_literally_and_its_policy_needs_are_reported() {
    let (_dir, out, outcome) = hardened("pipelines");
    for stack in outcome
        .report
        .stacks()
        .filter(|s| s.environment.starts_with("444444444444/"))
    {
        let t = read_json(&out.join(&stack.template));
        assert!(
            t["Resources"].get("CdkHardenKey").is_none(),
            "{}: no key created with keyArn",
            stack.template
        );
        let required = kms_notes(&stack, NoteKind::ActionRequired);
        assert_eq!(required.len(), 1, "{}: {required:#?}", stack.template);
        assert!(required[0].contains(PROD_KEY), "{}", required[0]);
        assert!(
            required[0].contains("`logs.eu-west-1.amazonaws.com`"),
            "{}",
            required[0]
        );
        assert!(
            required[0].contains("arn:aws:iam::444444444444:root"),
            "{}",
            required[0]
        );
        for (id, group) in resources_of(&t, "AWS::Logs::LogGroup") {
            assert_eq!(group["Properties"]["KmsKeyId"], PROD_KEY, "{id}");
        }
    }
}

#[test]
fn issue_5_customer_managed_keys_are_left_alone() {
    let (_dir, _out, outcome) = hardened("shapes");
    let (_dir2, _out2, pipelines) = hardened("pipelines");
    let stacks = outcome.report.stacks().chain(pipelines.report.stacks());
    for stack in stacks {
        for change in stack.changes.iter().filter(|c| c.transform == "kms") {
            // The pipelines' artifact buckets and builds, EncryptedQueue and CompliantStack's
            // data bucket use CDK's keys already.
            for untouched in [
                "PipelineArtifactsBucketAEA9A052",
                "PipelineArtifactsBucket22248F97",
                "BuildProject097C5DB7",
                "Pipeline9850B417",
                "PipelineC660917D",
                "EncryptedQueue0428C61A",
                "DataBucketE3889A50",
                "AccessLogsBucket83982689",
            ] {
                assert_ne!(
                    change.logical_id, untouched,
                    "{}: {change:#?}",
                    stack.template
                );
            }
        }
        if stack.name == "PipelineStack" || stack.name == "CompliantStack" {
            assert!(
                stack.changes.iter().all(|c| c.transform != "kms"),
                "{} uses customer-managed keys already",
                stack.name
            );
        }
    }
}

#[test]
fn issue_5_apply_twice_is_apply_once() {
    for app in ["pipelines", "shapes", "secrets"] {
        let (_dir, out, first) = hardened(app);
        assert!(!common::changes_of(&first, "kms").is_empty());
        let after_first = common::snapshot(&out);
        let second = common::apply_again(&out, app);
        let kms_changes = common::changes_of(&second, "kms");
        assert!(kms_changes.is_empty(), "{app}: {kms_changes:#?}");
        assert!(!second.written, "{app}: the second apply writes nothing");
        assert_eq!(common::snapshot(&out), after_first, "{app}");
    }
}

// ---------------------------------------------------------------------------------------------
// Small hand-written templates.

/// A one-stack assembly in `dir` with this template, and a config file.
fn assembly(dir: &Path, template: &Value, environment: &str, config: &Value) -> (PathBuf, PathBuf) {
    let root = dir.join("cdk.out");
    std::fs::create_dir_all(&root).unwrap();
    let manifest = json!({
        "version": "55.0.0",
        "artifacts": {
            "Stack": {
                "type": "aws:cloudformation:stack",
                "environment": environment,
                "properties": { "templateFile": "Stack.template.json" },
                "displayName": "Stack"
            }
        }
    });
    std::fs::write(
        root.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
    std::fs::write(
        root.join("Stack.template.json"),
        serde_json::to_string_pretty(template).unwrap(),
    )
    .unwrap();
    let config_path = dir.join("cdk-harden.json");
    std::fs::write(&config_path, serde_json::to_string_pretty(config).unwrap()).unwrap();
    (root, config_path)
}

/// `kms` (and `key-rotation`) only, with these environment settings.
fn config(kms: Value, allow_replacement: &[&str]) -> Value {
    json!({
        "environments": { "*": { "kms": kms } },
        "transforms": { "disable": ["bucket-versioning", "bucket-logging", "vpc", "package-registry", "prod-approval"] },
        "allowReplacement": allow_replacement
    })
}

struct Run {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// The template as written before the run.
    input: String,
    template: Value,
    stack: StackReport,
}

fn apply(template: Value, environment: &str, config: Value) -> cdk_harden::Result<Run> {
    let dir = tempfile::tempdir().unwrap();
    let (root, config_path) = assembly(dir.path(), &template, environment, &config);
    let input = std::fs::read_to_string(root.join("Stack.template.json")).unwrap();
    let outcome = cdk_harden::run(&cdk_harden::Options {
        assembly: root.clone(),
        config: Some(config_path),
        out: None,
        mode: cdk_harden::Mode::Apply,
    })?;
    let template = read_json(&root.join("Stack.template.json"));
    let stack = outcome.report.into_stacks().into_iter().next().unwrap();
    Ok(Run {
        _dir: dir,
        root,
        input,
        template,
        stack,
    })
}

const ENV: &str = "aws://222222222222/eu-west-1";

fn file_system_template() -> Value {
    json!({"Resources": {
        "Fs": {"Type": "AWS::EFS::FileSystem", "Properties": {"PerformanceMode": "generalPurpose"}, "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
    }})
}

/// Replacement guard test: EFS encryption is create-only; replacing a file system loses its
/// data, so the change is refused and reported, and no key is created for it.
#[test]
fn issue_5_replacement_guard_refuses_encrypting_a_file_system_by_default() {
    let run = apply(
        file_system_template(),
        ENV,
        config(json!({"create": true}), &[]),
    )
    .unwrap();
    assert_eq!(run.template, file_system_template(), "nothing applied");
    assert!(run.stack.changes.is_empty(), "{:#?}", run.stack.changes);
    let refused: Vec<&str> = run
        .stack
        .notes
        .iter()
        .filter(|n| n.kind == NoteKind::Refused && n.logical_id.as_deref() == Some("Fs"))
        .map(|n| n.message.as_str())
        .collect();
    assert!(!refused.is_empty(), "{:#?}", run.stack.notes);
    assert!(
        refused
            .iter()
            .all(|m| m.contains("requires replacement") && m.contains("allowReplacement")),
        "{refused:?}"
    );
}

#[test]
fn issue_5_allow_replacement_lets_the_file_system_change_through_with_a_warning() {
    let run = apply(
        file_system_template(),
        ENV,
        config(json!({"create": true}), &["kms"]),
    )
    .unwrap();
    let fs = &run.template["Resources"]["Fs"]["Properties"];
    assert_eq!(fs["KmsKeyId"], created_key());
    assert_eq!(fs["Encrypted"], json!(true));
    assert!(run.template["Resources"]["CdkHardenKey"].is_object());
    let fs_changes: Vec<_> = run
        .stack
        .changes
        .iter()
        .filter(|c| c.logical_id == "Fs")
        .collect();
    assert_eq!(fs_changes.len(), 2);
    assert!(
        fs_changes.iter().all(|c| c
            .warnings
            .iter()
            .any(|w| w.contains("requires replacement"))),
        "{fs_changes:#?}"
    );
}

#[test]
fn issue_5_aws_managed_encryption_is_upgraded_and_the_old_value_recorded() {
    let template = json!({"Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"SqsManagedSseEnabled": true}},
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"KmsMasterKeyId": "alias/aws/sns"}},
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketEncryption": {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}}},
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
            "SSESpecification": {"SSEEnabled": true}}},
        "Project": {"Type": "AWS::CodeBuild::Project", "Properties": {
            "Artifacts": {"Type": "NO_ARTIFACTS"}, "Source": {"Type": "NO_SOURCE", "BuildSpec": "{}"},
            "Environment": {"Type": "LINUX_CONTAINER", "ComputeType": "BUILD_GENERAL1_SMALL", "Image": "aws/codebuild/standard:7.0"},
            "ServiceRole": "arn:aws:iam::222222222222:role/build", "EncryptionKey": "alias/aws/s3"}},
        "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {"KmsKeyId": {"Ref": "AppKeyParam"}}}
    }, "Parameters": {"AppKeyParam": {"Type": "String"}}});
    let run = apply(template, ENV, config(json!({"create": true}), &[])).unwrap();
    let upgrade = |pointer: &str| {
        run.stack
            .changes
            .iter()
            .find(|c| c.pointer == pointer)
            .unwrap_or_else(|| panic!("{pointer}: {:#?}", run.stack.changes))
    };
    let q = upgrade("/Resources/Queue/Properties/SqsManagedSseEnabled");
    assert_eq!(
        (q.op, q.old.as_ref().map(JsonText::value), q.new.value()),
        (Op::Upgrade, Some(json!(true)), json!(false))
    );
    let t = upgrade("/Resources/Topic/Properties/KmsMasterKeyId");
    assert_eq!(
        (t.op, t.old.as_ref().map(JsonText::value)),
        (Op::Upgrade, Some(json!("alias/aws/sns")))
    );
    let b = upgrade("/Resources/Bucket/Properties/BucketEncryption/ServerSideEncryptionConfiguration/0/ServerSideEncryptionByDefault");
    assert_eq!(
        b.old.as_ref().map(JsonText::value),
        Some(json!({"SSEAlgorithm": "AES256"}))
    );
    let d = upgrade("/Resources/Table/Properties/SSESpecification");
    assert_eq!(
        d.old.as_ref().map(JsonText::value),
        Some(json!({"SSEEnabled": true}))
    );
    assert_eq!(
        d.new.value(),
        json!({"SSEEnabled": true, "SSEType": "KMS", "KMSMasterKeyId": created_key()})
    );
    let p = upgrade("/Resources/Project/Properties/EncryptionKey");
    assert_eq!(
        p.old.as_ref().map(JsonText::value),
        Some(json!("alias/aws/s3"))
    );

    let r = &run.template["Resources"];
    assert_eq!(r["Queue"]["Properties"]["KmsMasterKeyId"], created_key());
    assert_eq!(
        r["Secret"]["Properties"]["KmsKeyId"],
        json!({"Ref": "AppKeyParam"}),
        "a customer's key is kept"
    );
    // The build's role is not in the template: the review says what it needs.
    let required = kms_notes(&run.stack, NoteKind::ActionRequired);
    assert!(
        required
            .iter()
            .any(|m| m.contains("arn:aws:iam::222222222222:role/build")
                && m.contains("kms:Decrypt, kms:Encrypt, kms:GenerateDataKey*, kms:ReEncrypt*")
                && m.contains("`CdkHardenKey`")),
        "{required:#?}"
    );

    let new = new_cfn_lint_errors(&no_kms(&run), &run.root);
    assert!(new.is_empty(), "{new:#?}");
}

/// The same assembly before hardening, for cfn-lint comparisons.
fn no_kms(run: &Run) -> PathBuf {
    let before = run.root.parent().unwrap().join("before");
    std::fs::create_dir_all(&before).unwrap();
    std::fs::copy(run.root.join("manifest.json"), before.join("manifest.json")).unwrap();
    std::fs::write(before.join("Stack.template.json"), &run.input).unwrap();
    before
}

#[test]
fn issue_5_no_key_setting_is_an_error_only_when_there_is_something_to_encrypt() {
    let no_kms_config = json!({"transforms": {"disable": ["bucket-versioning", "bucket-logging", "vpc", "package-registry", "prod-approval"]}});
    let queue = json!({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}});
    let err = apply(queue, ENV, no_kms_config.clone())
        .err()
        .expect("an error");
    assert!(err.to_string().contains("`Stack`"), "{err}");
    let source = std::error::Error::source(&err)
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        source.contains("222222222222/eu-west-1") && source.contains("kms.keyArn"),
        "{source}"
    );

    let nothing = json!({"Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}}}});
    assert!(apply(nothing, ENV, no_kms_config).is_ok());
}

#[test]
fn issue_5_key_arn_must_name_a_key_of_the_stack_region() {
    let queue = json!({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}});
    let source = |kms: Value| {
        let err = apply(queue.clone(), ENV, config(kms, &[]))
            .err()
            .expect("an error");
        std::error::Error::source(&err)
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let alias = source(json!({"keyArn": "arn:aws:kms:eu-west-1:444444444444:alias/org"}));
    assert!(alias.contains("not a KMS key ARN"), "{alias}");
    let region = source(json!({"keyArn": "arn:aws:kms:us-east-1:444444444444:key/abc"}));
    assert!(
        region.contains("`us-east-1`") && region.contains("`eu-west-1`"),
        "{region}"
    );
}

#[test]
fn issue_5_ssm_key_source_reads_the_key_arn_at_deploy_time() {
    let template = json!({"Resources": {
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST"}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}},
        "Policy": {"Type": "AWS::IAM::Policy", "Properties": {"PolicyName": "p", "Roles": [{"Ref": "Role"}], "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": {"Fn::GetAtt": ["Table", "Arn"]}}]}}}
    }});
    let run = apply(
        template,
        ENV,
        config(json!({"ssm": "/org/kms/key-arn"}), &[]),
    )
    .unwrap();
    let t = &run.template;
    assert_eq!(
        t["Parameters"]["CdkHardenKmsKeyArn"],
        json!({
            "Type": "AWS::SSM::Parameter::Value<String>",
            "Default": "/org/kms/key-arn",
            "Description": "ARN of the customer-managed KMS key, read from SSM Parameter Store (added by cdk-harden `kms`)"
        })
    );
    let key = json!({"Ref": "CdkHardenKmsKeyArn"});
    assert_eq!(
        t["Resources"]["Table"]["Properties"]["SSESpecification"]["KMSMasterKeyId"],
        key
    );
    let grant = &t["Resources"]["Policy"]["Properties"]["PolicyDocument"]["Statement"][1];
    assert_eq!(grant["Resource"], key);
    assert_eq!(
        actions(grant),
        [
            "kms:Decrypt",
            "kms:Encrypt",
            "kms:GenerateDataKey*",
            "kms:ReEncrypt*"
        ]
    );
    assert!(t["Resources"].get("CdkHardenKey").is_none());
    let required = kms_notes(&run.stack, NoteKind::ActionRequired);
    assert!(
        required
            .iter()
            .any(|m| m.contains("SSM parameter `/org/kms/key-arn`")),
        "{required:#?}"
    );

    let new = new_cfn_lint_errors(&no_kms(&run), &run.root);
    assert!(new.is_empty(), "{new:#?}");
}

/// An SNS topic delivering to a queue: once the queue has the key, SNS must be able to use
/// it, or every delivery fails.
#[test]
fn issue_5_sns_to_sqs_subscription_keeps_working() {
    let template = json!({"Resources": {
        "Topic": {"Type": "AWS::SNS::Topic"},
        "Queue": {"Type": "AWS::SQS::Queue"},
        "QueuePolicy": {"Type": "AWS::SQS::QueuePolicy", "Properties": {"Queues": [{"Ref": "Queue"}], "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["Queue", "Arn"]},
             "Condition": {"ArnEquals": {"aws:SourceArn": {"Ref": "Topic"}}}}]}}},
        "Subscription": {"Type": "AWS::SNS::Subscription", "Properties": {"Protocol": "sqs", "TopicArn": {"Ref": "Topic"}, "Endpoint": {"Fn::GetAtt": ["Queue", "Arn"]}}},
        "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 1, "Threshold": 1,
            "MetricName": "Errors", "Namespace": "AWS/Lambda", "Period": 60, "Statistic": "Sum", "AlarmActions": [{"Ref": "Topic"}]}}
    }});
    let run = apply(template, ENV, config(json!({"create": true}), &[])).unwrap();
    let statements = run.template["Resources"]["CdkHardenKey"]["Properties"]["KeyPolicy"]
        ["Statement"]
        .as_array()
        .unwrap()
        .clone();
    let sns = statements
        .iter()
        .find(|s| s["Principal"]["Service"] == "sns.amazonaws.com")
        .expect("sns");
    assert_eq!(actions(sns), ["kms:Decrypt", "kms:GenerateDataKey*"]);
    assert_eq!(
        sns["Condition"],
        json!({"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}})
    );
    assert!(statements
        .iter()
        .any(|s| s["Principal"]["Service"] == "cloudwatch.amazonaws.com"));
    assert!(
        !statements.iter().any(|s| s.to_string().contains("logs.")),
        "no log groups, no logs principal"
    );
    assert_eq!(
        run.template["Resources"]["Queue"]["Properties"]["KmsMasterKeyId"],
        created_key()
    );
    assert_eq!(
        run.template["Resources"]["Topic"]["Properties"]["KmsMasterKeyId"],
        created_key()
    );

    let new = new_cfn_lint_errors(&no_kms(&run), &run.root);
    assert!(new.is_empty(), "{new:#?}");
}

#[test]
fn issue_5_opted_out_resources_are_left_and_opted_out_policies_reported() {
    let skip = json!({"cdk-harden": {"skip": [{"id": "kms", "reason": "legacy consumer cannot use KMS"}]}});
    let template = json!({"Resources": {
        "Legacy": {"Type": "AWS::SQS::Queue", "Metadata": skip},
        "Queue": {"Type": "AWS::SQS::Queue"},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
        "Policy": {"Type": "AWS::IAM::Policy", "Metadata": skip, "Properties": {"PolicyName": "p", "Roles": [{"Ref": "Role"}], "PolicyDocument": {"Statement": [
            {"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": [{"Fn::GetAtt": ["Queue", "Arn"]}, {"Fn::GetAtt": ["Legacy", "Arn"]}]}]}}}
    }});
    let run = apply(template, ENV, config(json!({"create": true}), &[])).unwrap();
    let r = &run.template["Resources"];
    assert!(r["Legacy"].get("Properties").is_none());
    assert_eq!(r["Queue"]["Properties"]["KmsMasterKeyId"], created_key());
    assert_eq!(
        r["Policy"]["Properties"]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let required = kms_notes(&run.stack, NoteKind::ActionRequired);
    assert!(
        required.iter().any(|m| m.contains("opted out")
            && m.contains("`Queue`")
            && m.contains("kms:Decrypt")
            && !m.contains("Legacy")),
        "{required:#?}"
    );
}

#[test]
fn issue_5_functions_roles_get_decrypt_for_environment_variables_and_pipelines_report_imported_roles(
) {
    let template = json!({"Resources": {
        "FnRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Role": {"Fn::GetAtt": ["FnRole", "Arn"]}, "Environment": {"Variables": {"A": "b"}}}},
        "Quiet": {"Type": "AWS::Lambda::Function", "Properties": {"Role": "arn:aws:iam::222222222222:role/quiet"}},
        "Pipeline": {"Type": "AWS::CodePipeline::Pipeline", "Properties": {
            "RoleArn": "arn:aws:iam::222222222222:role/pipeline",
            "ArtifactStore": {"Type": "S3", "Location": "artifacts-bucket"},
            "Stages": [{"Name": "Source", "Actions": [{"Name": "S", "RoleArn": "arn:aws:iam::222222222222:role/source"}]}]}}
    }});
    let run = apply(template, ENV, config(json!({"create": true}), &[])).unwrap();
    let r = &run.template["Resources"];
    assert_eq!(r["Fn"]["Properties"]["KmsKeyArn"], created_key());
    assert!(
        r["Quiet"]["Properties"].get("KmsKeyArn").is_none(),
        "no environment variables, nothing to encrypt"
    );
    assert_eq!(
        r["FnRole"]["Properties"]["Policies"],
        json!([{"PolicyName": "CdkHardenKms", "PolicyDocument": {"Statement": [
            {"Action": ["kms:Decrypt"], "Effect": "Allow", "Resource": created_key(), "Sid": "CdkHardenKms"}], "Version": "2012-10-17"}}])
    );
    assert_eq!(
        r["Pipeline"]["Properties"]["ArtifactStore"]["EncryptionKey"],
        json!({"Id": created_key(), "Type": "KMS"})
    );
    let required = kms_notes(&run.stack, NoteKind::ActionRequired);
    for role in ["role/pipeline", "role/source"] {
        assert!(
            required
                .iter()
                .any(|m| m.contains(role) && m.contains("the artifacts of `Pipeline`")),
            "{role}: {required:#?}"
        );
    }
}

/// Principals that a bucket policy lets read the bucket keep reading it: a role of the
/// template through its IAM policy, another account through the key policy (and a note).
#[test]
fn issue_5_principals_of_resource_policies_keep_access() {
    let template = json!({"Resources": {
        "Bucket": {"Type": "AWS::S3::Bucket"},
        "Reader": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}},
        "BucketPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "Bucket"}, "PolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::333333333333:root", {"Fn::GetAtt": ["Reader", "Arn"]}]},
             "Action": "s3:GetObject", "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket", "Arn"]}, "/*"]]}}]}}}
    }});
    let run = apply(template, ENV, config(json!({"create": true}), &[])).unwrap();
    let r = &run.template["Resources"];
    let statements = r["CdkHardenKey"]["Properties"]["KeyPolicy"]["Statement"]
        .as_array()
        .unwrap()
        .clone();
    let other = statements
        .iter()
        .find(|s| s["Sid"] == "AllowPrincipalsOfBucketPolicy")
        .unwrap_or_else(|| panic!("{statements:#?}"));
    assert_eq!(
        other["Principal"],
        json!({"AWS": "arn:aws:iam::333333333333:root"})
    );
    assert_eq!(actions(other), ["kms:Decrypt"]);
    assert_eq!(
        r["Reader"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0],
        json!({"Action": ["kms:Decrypt"], "Effect": "Allow", "Resource": created_key(), "Sid": "CdkHardenKms"})
    );
    let required = kms_notes(&run.stack, NoteKind::ActionRequired);
    assert!(
        required
            .iter()
            .any(|m| m.contains("333333333333") && m.contains("own IAM policies")),
        "{required:#?}"
    );

    let new = new_cfn_lint_errors(&no_kms(&run), &run.root);
    assert!(new.is_empty(), "{new:#?}");
}

/// `Resource: "*"` reaches every encrypted resource; a policy that already allows the KMS
/// actions on `"*"` needs nothing more.
#[test]
fn issue_5_wildcard_resources_are_granted_unless_kms_is_allowed_already() {
    let policy = |statements: Value| {
        json!({"Type": "AWS::IAM::Policy", "Properties": {"PolicyName": "p", "Roles": [{"Ref": "Role"}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}})
    };
    let template = json!({"Resources": {
        "Queue": {"Type": "AWS::SQS::Queue"},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
        "Sender": policy(json!([{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}])),
        "Admin": policy(json!([{"Effect": "Allow", "Action": ["sqs:*", "kms:*"], "Resource": "*"}])),
        "Lister": policy(json!([{"Effect": "Allow", "Action": "sqs:ListQueues", "Resource": "*"}]))
    }});
    let run = apply(template, ENV, config(json!({"create": true}), &[])).unwrap();
    let statements = |id: &str| {
        run.template["Resources"][id]["Properties"]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap()
            .clone()
    };
    let sender = statements("Sender");
    assert_eq!(sender.len(), 2);
    assert_eq!(
        actions(&sender[1]),
        [
            "kms:Decrypt",
            "kms:Encrypt",
            "kms:GenerateDataKey*",
            "kms:ReEncrypt*"
        ]
    );
    assert_eq!(statements("Admin").len(), 1, "kms:* on * covers the key");
    assert_eq!(
        statements("Lister").len(),
        1,
        "listing queues reads no message"
    );
}

/// A role with no policy of its own gets the key in an inline policy; `vpc` then attaches a
/// policy to the same role. A second run must leave the grant where it is.
#[test]
fn issue_5_grant_on_a_role_without_policies_converges_in_one_run() {
    use cdk_harden::assembly::Environment;
    use cdk_harden::transform::harden_stack;
    let template = serde_json::json!({"Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}},
        "Build": {"Type": "AWS::CodeBuild::Project", "Properties": {
            "ServiceRole": {"Fn::GetAtt": ["Role", "Arn"]},
            "Artifacts": {"Type": "NO_ARTIFACTS"},
            "Environment": {"ComputeType": "BUILD_GENERAL1_SMALL", "Image": "aws/codebuild/standard:7.0", "Type": "LINUX_CONTAINER"},
            "Source": {"Type": "NO_SOURCE", "BuildSpec": "version: 0.2"}}}
    }});
    let config = cdk_harden::LoadedConfig::parse(
        std::path::Path::new("cdk-harden.json"),
        br#"{"environments": {"*": {"kms": {"create": true},
            "vpc": {"vpcId": "vpc-0123456789abcdef0", "subnetIds": ["subnet-0123456789abcdef0"], "securityGroupIds": ["sg-0123456789abcdef0"]},
            "packageRegistry": {"npm": "https://npm.example.com/"}}}}"#,
    )
    .unwrap();
    let registry = cdk_harden::Registry::builtin().unwrap();
    let run = |t: serde_json::Value| {
        let assembly = cdk_harden::Assembly::from_template("T", t, Environment::default());
        harden_stack(&assembly, 0, &config, &registry).unwrap()
    };
    let once = run(template);
    assert!(once.applied.iter().any(|a| a.transform == "kms"));
    let twice = run(once.template.clone());
    assert!(twice.applied.is_empty(), "{:#?}", twice.applied);
}

/// A resource other stacks use through an export: their roles need the key too, and the
/// review must say so (they are not in this template to be granted).
#[test]
fn issue_5_exported_encrypted_resources_are_reported() {
    use cdk_harden::assembly::Environment;
    use cdk_harden::transform::{harden_stack, NoteKind};
    let template = serde_json::json!({
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"ExportsOutputFnGetAttQueueArn": {
            "Value": {"Fn::GetAtt": ["Queue", "Arn"]},
            "Export": {"Name": "Storage:ExportsOutputFnGetAttQueueArn"}}}
    });
    let config = cdk_harden::LoadedConfig::parse(
        std::path::Path::new("cdk-harden.json"),
        br#"{"environments": {"*": {"kms": {"create": true}}}}"#,
    )
    .unwrap();
    let registry = cdk_harden::Registry::builtin().unwrap();
    let assembly = cdk_harden::Assembly::from_template("T", template, Environment::default());
    let out = harden_stack(&assembly, 0, &config, &registry).unwrap();
    assert!(out.template["Resources"]["Queue"]["Properties"]["KmsMasterKeyId"].is_object());
    assert!(
        out.notes.iter().any(|n| n.kind == NoteKind::ActionRequired
            && n.logical_id.as_deref() == Some("Queue")
            && n.message.contains("ExportsOutputFnGetAttQueueArn")),
        "{:#?}",
        out.notes
    );
}

/// A role whose only policy is inline gets the key once: in that policy, not also in a new
/// inline `CdkHardenKms` policy.
#[test]
fn issue_5_a_role_with_an_inline_policy_gets_one_grant() {
    use cdk_harden::assembly::Environment;
    use cdk_harden::transform::harden_stack;
    let template = serde_json::json!({"Resources": {
        "Queue": {"Type": "AWS::SQS::Queue"},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": "App", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["Queue", "Arn"]}}]}}]}},
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
            "Role": {"Fn::GetAtt": ["Role", "Arn"]}, "Runtime": "nodejs20.x", "Handler": "index.handler",
            "Code": {"ZipFile": "exports.handler = async () => {};"},
            "Environment": {"Variables": {"QUEUE_URL": {"Ref": "Queue"}}}}}
    }});
    let config = cdk_harden::LoadedConfig::parse(
        std::path::Path::new("cdk-harden.json"),
        br#"{"environments": {"*": {"kms": {"create": true}}}, "transforms": {"disable": ["vpc"]}}"#,
    )
    .unwrap();
    let registry = cdk_harden::Registry::builtin().unwrap();
    let assembly = cdk_harden::Assembly::from_template("T", template, Environment::default());
    let out = harden_stack(&assembly, 0, &config, &registry).unwrap();
    let policies = out.template["Resources"]["Role"]["Properties"]["Policies"]
        .as_array()
        .unwrap();
    assert_eq!(policies.len(), 1, "no second inline policy: {policies:#?}");
    let grants: Vec<_> = policies[0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Sid"] == "CdkHardenKms")
        .collect();
    assert_eq!(grants.len(), 1, "{grants:#?}");
    let actions = grants[0]["Action"].to_string();
    for a in ["kms:Decrypt", "kms:GenerateDataKey*"] {
        assert!(actions.contains(a), "{actions}");
    }
}

/// A resource a parent stack passes to a nested stack (CDK's `referenceto…` parameters), and a
/// nested stack's output its parent reads: the roles on the other side need the key too, and
/// are in another template, so the review says so.
#[test]
fn issue_5_encrypted_resources_shared_with_a_nested_stack_are_reported() {
    let (_dir, root) = common::copy_fixture("pipelines");
    let dev = root.join("assembly-PipelineStack-Dev");
    let edit = |file: &str, f: &dyn Fn(&mut Value)| {
        let path = dev.join(file);
        let mut t = read_json(&path);
        f(&mut t);
        std::fs::write(&path, serde_json::to_string_pretty(&t).unwrap()).unwrap();
    };
    edit("PipelineStackDevService2FAD3E8A.template.json", &|t| {
        t["Resources"]["StorageNestedStackStorageNestedStackResource9807768E"]["Properties"]
            ["Parameters"] = json!({
            "referencetoPipelineStackDevServiceUploadsBucketArn": {"Fn::GetAtt": ["UploadsBucket5E5E9B64", "Arn"]}
        });
    });
    edit(
        "PipelineStackDevServiceStorage338AB38E.nested.template.json",
        &|t| {
            t["Outputs"] =
                json!({"ArchiveArn": {"Value": {"Fn::GetAtt": ["ArchiveBucket9DECBF5D", "Arn"]}}});
        },
    );
    let outcome = cdk_harden::run(&cdk_harden::Options {
        assembly: root.clone(),
        config: Some(common::config("pipelines")),
        out: None,
        mode: cdk_harden::Mode::DryRun,
    })
    .unwrap();
    let notes: Vec<(String, String)> = outcome
        .report
        .stacks()
        .flat_map(|s| s.into_owned().notes)
        .filter(|n| n.kind == NoteKind::ActionRequired && n.transform == "kms")
        .map(|n| (n.logical_id.unwrap_or_default(), n.message))
        .collect();
    let noted = |id: &str, text: &str| {
        notes
            .iter()
            .any(|(l, m)| l == id && m.contains(text) && m.contains("kms:Decrypt"))
    };
    assert!(
        noted(
            "UploadsBucket5E5E9B64",
            "is passed to nested stack `StorageNestedStackStorageNestedStackResource9807768E` (parameter `referencetoPipelineStackDevServiceUploadsBucketArn`)"
        ),
        "{notes:#?}"
    );
    assert!(
        noted(
            "ArchiveBucket9DECBF5D",
            "is an output of this nested stack (`ArchiveArn`): roles in its parent stack"
        ),
        "{notes:#?}"
    );
}
