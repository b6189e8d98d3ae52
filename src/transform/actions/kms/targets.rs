//! What `kms` encrypts: the resource types it covers, where each names its key, and how the key
//! a resource has now compares with the environment's key.
//!
//! Pure functions over one resource. A resource with no key, or an AWS-managed one
//! (`alias/aws/…`, SSE-S3, SQS-managed SSE, DynamoDB's AWS-owned key), gets the environment's
//! key; a resource with any other key is left alone. Nothing here knows where the key comes
//! from: it is a value (`{"Fn::GetAtt": ["CdkHardenKey", "Arn"]}`, a `Ref` to a parameter, or a
//! literal ARN).

use crate::transform::cfn::Field;
use serde_json::{json, Value};

use crate::transform::cfn;
use crate::transform::{Change, Op};

/// The resource types `kms` encrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Bucket,
    Project,
    Pipeline,
    LogGroup,
    Topic,
    Queue,
    Function,
    Table,
    Secret,
    FileSystem,
    Stream,
}

/// CloudFormation type → kind, in the order the transform's description lists them.
pub const TYPES: &[(&str, Kind)] = &[
    ("AWS::S3::Bucket", Kind::Bucket),
    ("AWS::CodeBuild::Project", Kind::Project),
    ("AWS::CodePipeline::Pipeline", Kind::Pipeline),
    ("AWS::Logs::LogGroup", Kind::LogGroup),
    ("AWS::SNS::Topic", Kind::Topic),
    ("AWS::SQS::Queue", Kind::Queue),
    ("AWS::Lambda::Function", Kind::Function),
    ("AWS::DynamoDB::Table", Kind::Table),
    ("AWS::SecretsManager::Secret", Kind::Secret),
    ("AWS::EFS::FileSystem", Kind::FileSystem),
    ("AWS::Kinesis::Stream", Kind::Stream),
];

impl Kind {
    pub fn of(resource_type: &str) -> Option<Kind> {
        TYPES
            .iter()
            .find(|(t, _)| *t == resource_type)
            .map(|(_, k)| *k)
    }
}

/// What encrypting one resource takes.
#[derive(Debug, Default, PartialEq)]
pub struct Assessment {
    /// The changes that give the resource the key; empty when it has a customer-managed key
    /// already (the environment's or another), or nothing to encrypt.
    pub changes: Vec<Change>,
    /// The resource uses the environment's key already.
    pub ours: bool,
    /// Why parts were left alone (e.g. an artifact store in another region).
    pub skipped: Vec<String>,
}

/// Where the key is, for resources that can only use a key of their own region.
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a> {
    pub value: &'a Value,
    /// The key's region, when known.
    pub region: Option<&'a str>,
}

/// Whether `value` names an AWS-managed key: `alias/aws/…`, or an alias ARN ending so.
pub fn is_aws_managed(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.starts_with("alias/aws/") || s.contains(":alias/aws/"))
}

/// Whether two key values are the same reference (`GetAtt` in either spelling).
pub fn same_key(a: &Value, b: &Value) -> bool {
    match (cfn::getatt_target(a), cfn::getatt_target(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn truthy(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Bool(true))) || value.and_then(Value::as_str) == Some("true")
}

const ENCRYPT: &str = "encrypt with the customer-managed KMS key";

fn upgrade_reason(old: &Value) -> String {
    format!(
        "replace {} with the customer-managed KMS key",
        match old.as_str() {
            Some(s) => format!("the AWS-managed key `{s}`"),
            None => "the AWS-managed encryption".to_string(),
        }
    )
}

/// What the resource needs to be encrypted with `key`.
pub fn assess(id: &str, kind: Kind, resource: &Value, key: KeyRef) -> Assessment {
    match kind {
        Kind::Bucket => bucket(id, resource, key.value),
        Kind::Project => single(id, resource, "EncryptionKey", key.value),
        Kind::Pipeline => pipeline(id, resource, key),
        Kind::LogGroup => single(id, resource, "KmsKeyId", key.value),
        Kind::Topic => single(id, resource, "KmsMasterKeyId", key.value),
        Kind::Queue => queue(id, resource, key.value),
        Kind::Function => {
            let vars = cfn::prop(resource, "Environment").and_then(|e| e.field("Variables"));
            let has_vars = match vars {
                None => false,
                Some(Value::Object(m)) => !m.is_empty(),
                Some(_) => true,
            };
            if has_vars {
                single(id, resource, "KmsKeyArn", key.value)
            } else {
                Assessment::default()
            }
        }
        Kind::Table => table(id, resource, key.value),
        Kind::Secret => single(id, resource, "KmsKeyId", key.value),
        Kind::FileSystem => file_system(id, resource, key.value),
        Kind::Stream => stream(id, resource, key.value),
    }
}

/// One property naming the key: absent → set; AWS-managed → upgrade; ours or another
/// customer-managed key → nothing.
fn single(id: &str, resource: &Value, property: &str, key: &Value) -> Assessment {
    let rel = format!("/Properties/{property}");
    match cfn::prop(resource, property) {
        None | Some(Value::Null) => Assessment {
            changes: vec![Change::on_resource(
                id,
                &rel,
                Op::SetIfAbsent,
                key.clone(),
                ENCRYPT,
            )],
            ..Default::default()
        },
        Some(old) if is_aws_managed(old) => Assessment {
            changes: vec![Change::on_resource(
                id,
                &rel,
                Op::Upgrade,
                key.clone(),
                upgrade_reason(old),
            )],
            ..Default::default()
        },
        Some(old) => Assessment {
            ours: same_key(old, key),
            ..Default::default()
        },
    }
}

fn bucket(id: &str, resource: &Value, key: &Value) -> Assessment {
    let Some(encryption) = cfn::prop(resource, "BucketEncryption") else {
        return Assessment {
            changes: vec![Change::on_resource(
                id,
                "/Properties/BucketEncryption",
                Op::SetIfAbsent,
                json!({
                    "ServerSideEncryptionConfiguration": [{
                        "BucketKeyEnabled": true,
                        "ServerSideEncryptionByDefault": { "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key }
                    }]
                }),
                format!("{ENCRYPT} (SSE-KMS, with an S3 Bucket Key)"),
            )],
            ..Default::default()
        };
    };
    let rule = encryption
        .field("ServerSideEncryptionConfiguration")
        .and_then(Value::as_array)
        .and_then(|rules| rules.first());
    let Some(rule) = rule.filter(|r| r.is_object()) else {
        // An intrinsic or an empty list: the app decides; nothing to compare.
        return Assessment::default();
    };
    let base = "/Properties/BucketEncryption/ServerSideEncryptionConfiguration/0";
    let default = rule.field("ServerSideEncryptionByDefault");
    let algorithm = default
        .and_then(|d| d.field("SSEAlgorithm"))
        .and_then(Value::as_str);
    let current = default.and_then(|d| d.field("KMSMasterKeyID"));
    let new_algorithm = match algorithm {
        None | Some("AES256") => "aws:kms",
        Some(a @ ("aws:kms" | "aws:kms:dsse")) => match current {
            Some(k) if !is_aws_managed(k) => {
                return Assessment {
                    ours: same_key(k, key),
                    ..Default::default()
                }
            }
            _ => a,
        },
        Some(_) => return Assessment::default(),
    };
    let old = default.cloned().unwrap_or(Value::Null);
    let reason = match (algorithm, current) {
        (Some("AES256"), _) => {
            "replace SSE-S3 (`AES256`) with SSE-KMS under the customer-managed key".to_string()
        }
        (_, Some(k)) => upgrade_reason(k),
        (Some(_), None) => {
            "replace the AWS-managed key `aws/s3` with the customer-managed KMS key".to_string()
        }
        (None, None) => ENCRYPT.to_string(),
    };
    let mut changes = vec![Change::on_resource(
        id,
        &format!("{base}/ServerSideEncryptionByDefault"),
        if old.is_null() {
            Op::SetIfAbsent
        } else {
            Op::Upgrade
        },
        json!({ "SSEAlgorithm": new_algorithm, "KMSMasterKeyID": key }),
        reason,
    )];
    if new_algorithm == "aws:kms" {
        // DSSE-KMS does not support S3 Bucket Keys.
        changes.push(Change::on_resource(
            id,
            &format!("{base}/BucketKeyEnabled"),
            Op::SetIfAbsent,
            json!(true),
            "use an S3 Bucket Key (fewer KMS requests)",
        ));
    }
    Assessment {
        changes,
        ..Default::default()
    }
}

fn queue(id: &str, resource: &Value, key: &Value) -> Assessment {
    let mut out = single(id, resource, "KmsMasterKeyId", key);
    if !out.changes.is_empty() && truthy(cfn::prop(resource, "SqsManagedSseEnabled")) {
        // CloudFormation rejects SQS-managed SSE together with a KMS key.
        out.changes.push(Change::on_resource(
            id,
            "/Properties/SqsManagedSseEnabled",
            Op::Upgrade,
            json!(false),
            "replace SQS-managed SSE with the customer-managed KMS key (the two are exclusive)",
        ));
    }
    out
}

fn table(id: &str, resource: &Value, key: &Value) -> Assessment {
    let wanted = |old: Option<&Value>| {
        let mut spec = old
            .filter(|o| o.is_object())
            .cloned()
            .unwrap_or_else(|| json!({}));
        spec["SSEEnabled"] = json!(true);
        spec["SSEType"] = json!("KMS");
        spec["KMSMasterKeyId"] = key.clone();
        spec
    };
    match cfn::prop(resource, "SSESpecification") {
        None => Assessment {
            changes: vec![Change::on_resource(
                id,
                "/Properties/SSESpecification",
                Op::SetIfAbsent,
                wanted(None),
                ENCRYPT,
            )],
            ..Default::default()
        },
        Some(spec) if !spec.is_object() => Assessment::default(),
        Some(spec) => {
            let current = spec.field("KMSMasterKeyId");
            if truthy(spec.field("SSEEnabled")) {
                if let Some(k) = current.filter(|k| !is_aws_managed(k)) {
                    return Assessment {
                        ours: same_key(k, key),
                        ..Default::default()
                    };
                }
            }
            let reason = match current {
                Some(k) if truthy(spec.field("SSEEnabled")) => upgrade_reason(k),
                _ if truthy(spec.field("SSEEnabled")) => {
                    "replace the AWS-managed key `aws/dynamodb` with the customer-managed KMS key"
                        .to_string()
                }
                _ => "replace the AWS-owned key with the customer-managed KMS key".to_string(),
            };
            Assessment {
                changes: vec![Change::on_resource(
                    id,
                    "/Properties/SSESpecification",
                    Op::Upgrade,
                    wanted(Some(spec)),
                    reason,
                )],
                ..Default::default()
            }
        }
    }
}

fn pipeline(id: &str, resource: &Value, key: KeyRef) -> Assessment {
    let mut out = Assessment::default();
    let store = |rel: String, store: &Value, out: &mut Assessment| {
        if !store.is_object() {
            return;
        }
        match store.field("EncryptionKey").and_then(|k| k.field("Id")) {
            None => out.changes.push(Change::on_resource(
                id,
                &format!("{rel}/EncryptionKey"),
                Op::SetIfAbsent,
                json!({ "Id": key.value, "Type": "KMS" }),
                "encrypt pipeline artifacts with the customer-managed KMS key",
            )),
            Some(old) if is_aws_managed(old) => out.changes.push(Change::on_resource(
                id,
                &format!("{rel}/EncryptionKey/Id"),
                Op::Upgrade,
                key.value.clone(),
                upgrade_reason(old),
            )),
            Some(old) => out.ours |= same_key(old, key.value),
        }
    };
    if let Some(single) = cfn::prop(resource, "ArtifactStore") {
        store("/Properties/ArtifactStore".to_string(), single, &mut out);
    }
    if let Some(Value::Array(stores)) = cfn::prop(resource, "ArtifactStores") {
        for (i, entry) in stores.iter().enumerate() {
            let region = entry.field("Region").and_then(Value::as_str);
            if let Some(region) = region {
                if key.region != Some(region) {
                    out.skipped.push(format!(
                        "the artifact store for region `{region}` needs a key in that region{}; left alone",
                        match key.region {
                            Some(r) => format!(" (the environment's key is in `{r}`)"),
                            None => String::new(),
                        }
                    ));
                    continue;
                }
            }
            if let Some(s) = entry.field("ArtifactStore") {
                store(
                    format!("/Properties/ArtifactStores/{i}/ArtifactStore"),
                    s,
                    &mut out,
                );
            }
        }
    }
    out
}

fn file_system(id: &str, resource: &Value, key: &Value) -> Assessment {
    let mut out = single(id, resource, "KmsKeyId", key);
    if !out.changes.is_empty() && !truthy(cfn::prop(resource, "Encrypted")) {
        out.changes.push(Change::on_resource(
            id,
            "/Properties/Encrypted",
            Op::Upgrade,
            json!(true),
            "encrypt the file system at rest",
        ));
    }
    out
}

fn stream(id: &str, resource: &Value, key: &Value) -> Assessment {
    let wanted = json!({ "EncryptionType": "KMS", "KeyId": key });
    match cfn::prop(resource, "StreamEncryption") {
        None => Assessment {
            changes: vec![Change::on_resource(
                id,
                "/Properties/StreamEncryption",
                Op::SetIfAbsent,
                wanted,
                ENCRYPT,
            )],
            ..Default::default()
        },
        Some(spec) => {
            let current = spec.field("KeyId");
            match current {
                Some(k)
                    if !is_aws_managed(k)
                        && spec.field("EncryptionType").and_then(Value::as_str) != Some("NONE") =>
                {
                    Assessment {
                        ours: same_key(k, key),
                        ..Default::default()
                    }
                }
                _ => Assessment {
                    changes: vec![Change::on_resource(
                        id,
                        "/Properties/StreamEncryption",
                        Op::Upgrade,
                        wanted,
                        match current {
                            Some(k) if is_aws_managed(k) => upgrade_reason(k),
                            _ => ENCRYPT.to_string(),
                        },
                    )],
                    ..Default::default()
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Value {
        json!({"Fn::GetAtt": ["CdkHardenKey", "Arn"]})
    }

    fn run(kind: Kind, props: Value) -> Assessment {
        let k = key();
        assess(
            "R",
            kind,
            &json!({"Properties": props}),
            KeyRef {
                value: &k,
                region: Some("eu-west-1"),
            },
        )
    }

    fn ops(a: &Assessment) -> Vec<(String, Op)> {
        a.changes
            .iter()
            .map(|c| (c.pointer.clone(), c.op))
            .collect()
    }

    #[test]
    fn aws_managed_keys_are_recognised() {
        assert!(is_aws_managed(&json!("alias/aws/s3")));
        assert!(is_aws_managed(&json!(
            "arn:aws:kms:eu-west-1:111111111111:alias/aws/sns"
        )));
        assert!(!is_aws_managed(&json!("alias/app-key")));
        assert!(!is_aws_managed(&json!({"Ref": "KeyParam"})));
        assert!(same_key(&json!({"Fn::GetAtt": "CdkHardenKey.Arn"}), &key()));
    }

    #[test]
    fn buckets_without_encryption_get_sse_kms_with_a_bucket_key() {
        let a = run(Kind::Bucket, json!({}));
        assert_eq!(
            ops(&a),
            [(
                "/Resources/R/Properties/BucketEncryption".to_string(),
                Op::SetIfAbsent
            )]
        );
        let rule = &a.changes[0].value["ServerSideEncryptionConfiguration"][0];
        assert_eq!(rule["BucketKeyEnabled"], json!(true));
        assert_eq!(
            rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"],
            key()
        );
    }

    #[test]
    fn sse_s3_and_aws_managed_kms_are_upgraded_customer_keys_left_alone() {
        let sse_s3 = json!({"BucketEncryption": {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}});
        let a = run(Kind::Bucket, sse_s3);
        assert_eq!(a.changes[0].op, Op::Upgrade);
        assert_eq!(a.changes[0].value["SSEAlgorithm"], json!("aws:kms"));
        assert!(a.changes[0].reason.contains("AES256"));
        assert_eq!(a.changes[1].pointer, "/Resources/R/Properties/BucketEncryption/ServerSideEncryptionConfiguration/0/BucketKeyEnabled");

        let dsse = json!({"BucketEncryption": {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms:dsse"}}]}});
        let a = run(Kind::Bucket, dsse);
        assert_eq!(a.changes.len(), 1, "no bucket key for DSSE-KMS");
        assert_eq!(a.changes[0].value["SSEAlgorithm"], json!("aws:kms:dsse"));

        let cmk = json!({"BucketEncryption": {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": ["AppKey", "Arn"]}}}]}});
        let a = run(Kind::Bucket, cmk);
        assert_eq!(a, Assessment::default());

        let ours = json!({"BucketEncryption": {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key()}}]}});
        assert!(run(Kind::Bucket, ours).ours);
    }

    #[test]
    fn sqs_managed_sse_is_turned_off_with_the_key() {
        let a = run(Kind::Queue, json!({"SqsManagedSseEnabled": true}));
        assert_eq!(
            ops(&a),
            [
                (
                    "/Resources/R/Properties/KmsMasterKeyId".to_string(),
                    Op::SetIfAbsent
                ),
                (
                    "/Resources/R/Properties/SqsManagedSseEnabled".to_string(),
                    Op::Upgrade
                )
            ]
        );
        assert_eq!(a.changes[1].value, json!(false));
        let a = run(Kind::Queue, json!({"KmsMasterKeyId": "alias/aws/sqs"}));
        assert_eq!(a.changes[0].op, Op::Upgrade);
        assert!(a.changes[0].reason.contains("alias/aws/sqs"));
    }

    #[test]
    fn functions_need_a_key_only_for_environment_variables() {
        assert!(run(Kind::Function, json!({})).changes.is_empty());
        assert!(
            run(Kind::Function, json!({"Environment": {"Variables": {}}}))
                .changes
                .is_empty()
        );
        let a = run(
            Kind::Function,
            json!({"Environment": {"Variables": {"A": "b"}}}),
        );
        assert_eq!(
            ops(&a),
            [(
                "/Resources/R/Properties/KmsKeyArn".to_string(),
                Op::SetIfAbsent
            )]
        );
    }

    #[test]
    fn dynamodb_aws_owned_and_aws_managed_become_the_key() {
        let a = run(Kind::Table, json!({}));
        assert_eq!(
            a.changes[0].value,
            json!({"SSEEnabled": true, "SSEType": "KMS", "KMSMasterKeyId": key()})
        );
        let a = run(
            Kind::Table,
            json!({"SSESpecification": {"SSEEnabled": false}}),
        );
        assert_eq!(a.changes[0].op, Op::Upgrade);
        assert!(a.changes[0].reason.contains("AWS-owned"));
        let a = run(
            Kind::Table,
            json!({"SSESpecification": {"SSEEnabled": true}}),
        );
        assert!(a.changes[0].reason.contains("aws/dynamodb"));
        let a = run(
            Kind::Table,
            json!({"SSESpecification": {"SSEEnabled": true, "KMSMasterKeyId": "arn:aws:kms:eu-west-1:1:key/x"}}),
        );
        assert!(a.changes.is_empty() && !a.ours);
    }

    #[test]
    fn pipelines_set_artifact_keys_in_the_key_region_only() {
        let a = run(
            Kind::Pipeline,
            json!({"ArtifactStores": [
                {"Region": "eu-west-1", "ArtifactStore": {"Type": "S3", "Location": "a"}},
                {"Region": "us-east-1", "ArtifactStore": {"Type": "S3", "Location": "b"}}
            ]}),
        );
        assert_eq!(
            ops(&a),
            [(
                "/Resources/R/Properties/ArtifactStores/0/ArtifactStore/EncryptionKey".to_string(),
                Op::SetIfAbsent
            )]
        );
        assert_eq!(a.skipped.len(), 1);
        assert!(a.skipped[0].contains("us-east-1"));
        let a = run(
            Kind::Pipeline,
            json!({"ArtifactStore": {"Type": "S3", "Location": "a", "EncryptionKey": {"Id": "alias/aws/s3", "Type": "KMS"}}}),
        );
        assert_eq!(
            ops(&a),
            [(
                "/Resources/R/Properties/ArtifactStore/EncryptionKey/Id".to_string(),
                Op::Upgrade
            )]
        );
    }

    #[test]
    fn file_systems_are_encrypted_with_the_key() {
        let a = run(Kind::FileSystem, json!({}));
        assert_eq!(
            ops(&a),
            [
                (
                    "/Resources/R/Properties/KmsKeyId".to_string(),
                    Op::SetIfAbsent
                ),
                ("/Resources/R/Properties/Encrypted".to_string(), Op::Upgrade)
            ]
        );
        let a = run(Kind::FileSystem, json!({"Encrypted": true}));
        assert_eq!(a.changes.len(), 1);
    }

    #[test]
    fn streams_get_kms_encryption() {
        let a = run(
            Kind::Stream,
            json!({"StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}}),
        );
        assert_eq!(a.changes[0].op, Op::Upgrade);
        assert_eq!(
            a.changes[0].value,
            json!({"EncryptionType": "KMS", "KeyId": key()})
        );
    }
}
