//! Issue 3: properties of the engine and every built-in over generated templates mixing buckets,
//! keys and other resources, with and without existing settings: deterministic, idempotent,
//! never removes or changes what the input had (outside enforce mode; tightening upgrades are
//! recorded), always valid JSON.

use std::path::Path;

use cdk_harden::assembly::format::to_cdk_json;
use cdk_harden::assembly::Environment;
use cdk_harden::transform::{harden_stack, Op};
use cdk_harden::{Assembly, Config, LoadedConfig, Registry};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn config() -> Config {
    LoadedConfig::parse(
        Path::new("cdk-harden.json"),
        br#"{"environments": {"*": {
            "accessLogs": {"create": true},
            "kms": {"create": true},
            "vpc": {"vpcId": "vpc-0123456789abcdef0", "subnetIds": ["subnet-0123456789abcdef0"], "securityGroupIds": ["sg-0123456789abcdef0"]},
            "packageRegistry": {"npm": "https://npm.example.com/", "pip": "https://pypi.example.com/simple/"}
        }}}"#,
    )
    .unwrap()
}

fn bucket() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop_oneof![Just("Enabled"), Just("Suspended")]),
        any::<bool>(),
        prop::option::of(prop_oneof![Just("AES256"), Just("aws:kms")]),
        any::<bool>(),
    )
        .prop_map(|(versioning, logging, sse, named)| {
            let mut p = Map::new();
            if let Some(v) = versioning {
                p.insert("VersioningConfiguration".into(), json!({"Status": v}));
            }
            if logging {
                p.insert("LoggingConfiguration".into(), json!({"DestinationBucketName": "central-logs"}));
            }
            if let Some(a) = sse {
                p.insert(
                    "BucketEncryption".into(),
                    json!({"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": a}}]}),
                );
            }
            if named {
                p.insert("BucketName".into(), json!("my-bucket"));
            }
            json!({"Type": "AWS::S3::Bucket", "Properties": p, "UpdateReplacePolicy": "Retain", "DeletionPolicy": "Retain"})
        })
}

fn key() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop_oneof![
            Just("SYMMETRIC_DEFAULT"),
            Just("RSA_2048"),
            Just("HMAC_256")
        ]),
        prop::option::of(any::<bool>()),
        any::<bool>(),
    )
        .prop_map(|(spec, rotation, external)| {
            let mut p = Map::new();
            p.insert(
                "KeyPolicy".into(),
                json!({"Version": "2012-10-17", "Statement": []}),
            );
            if let Some(s) = spec {
                p.insert("KeySpec".into(), json!(s));
            }
            if let Some(r) = rotation {
                p.insert("EnableKeyRotation".into(), json!(r));
            }
            if external {
                p.insert("Origin".into(), json!("EXTERNAL"));
            }
            json!({"Type": "AWS::KMS::Key", "Properties": p})
        })
}

fn other() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 30}})),
        Just(json!({"Type": "AWS::SNS::Topic"})),
        Just(
            json!({"Type": "AWS::SSM::Parameter", "Properties": {"Type": "String", "Value": "x"}})
        ),
        Just(json!({"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}})),
    ]
}

fn template() -> impl Strategy<Value = Value> {
    prop::collection::vec(prop_oneof![bucket(), key(), other()], 0..7).prop_map(|resources| {
        let mut map = Map::new();
        for (i, r) in resources.into_iter().enumerate() {
            map.insert(format!("Resource{i}"), r);
        }
        json!({"Resources": map, "Outputs": {"Out": {"Value": "x"}}})
    })
}

fn harden(template: Value) -> cdk_harden::Hardened {
    let registry = Registry::builtin().unwrap();
    let assembly = Assembly::from_template("Generated", template, Environment::default());
    harden_stack(&assembly, 0, &config(), &registry).unwrap()
}

/// (pointer, value) of every scalar and empty container in `value`.
fn leaves(value: &Value, pointer: String, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                leaves(
                    v,
                    format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                leaves(v, format!("{pointer}/{i}"), out);
            }
        }
        _ => out.push((pointer, value.clone())),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn issue_3_apply_is_deterministic_and_idempotent(t in template()) {
        let once = harden(t.clone());
        let again = harden(t);
        prop_assert_eq!(to_cdk_json(&once.template), to_cdk_json(&again.template));
        let twice = harden(once.template.clone());
        prop_assert!(twice.applied.is_empty(), "second pass applied {:#?}", twice.applied);
        prop_assert_eq!(&twice.template, &once.template);
    }

    #[test]
    fn issue_3_never_removes_or_changes_what_the_input_had(t in template()) {
        let out = harden(t.clone());
        let upgraded: Vec<&str> = out.applied.iter().filter(|a| a.op == Op::Upgrade).map(|a| a.pointer.as_str()).collect();
        let mut input = Vec::new();
        leaves(&t, String::new(), &mut input);
        for (pointer, value) in input {
            if upgraded.iter().any(|u| pointer.starts_with(u)) {
                continue; // a recorded tightening, shown with its old value in the review
            }
            let now = out.template.pointer(&pointer);
            match &value {
                // An empty container may gain members; it must still be one.
                Value::Object(_) => prop_assert!(now.is_some_and(Value::is_object), "{} changed", pointer),
                Value::Array(_) => prop_assert!(now.is_some_and(Value::is_array), "{} changed", pointer),
                _ => prop_assert_eq!(now, Some(&value), "{} changed", pointer),
            }
        }
    }

    #[test]
    fn issue_3_output_is_always_valid_json(t in template()) {
        let out = harden(t);
        let text = to_cdk_json(&out.template);
        let back: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, out.template);
    }
}
