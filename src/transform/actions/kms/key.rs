//! The key itself: the key `kms.create` adds to a stack, its key policy, and what a central
//! key's policy must allow.
//!
//! The key policy lets the account administer the key (the root principal, so IAM policies in
//! the account can grant its use) and lets exactly the AWS services this template makes use the
//! key do so: CloudWatch Logs for encrypted log groups (scoped by the log-group encryption
//! context), and every service principal that delivers to or reads from an encrypted resource
//! (a resource policy naming it, an SNS subscription to an encrypted queue, an alarm, rule or
//! bucket notification targeting an encrypted topic or queue), scoped to this account. The policy
//! names no resource of the template, so the key depends on nothing and nothing cycles.

use crate::transform::cfn::Field;
use crate::transform::change::Pointer;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::exempt::{service_principals, statements};
use super::grants::{access, kms_actions, DECRYPT, GENERATE};
use super::targets::Kind;
use crate::transform::cfn;

/// Logical id of the key added with `kms.create`.
pub const KEY_ID: &str = "CdkHardenKey";
/// Logical id of its alias.
pub const ALIAS_ID: &str = "CdkHardenKeyAlias";
/// Logical id of the parameter added with `kms.ssm`.
pub const PARAMETER_ID: &str = "CdkHardenKmsKeyArn";

/// CloudWatch Logs, whose principal depends on the region.
pub const LOGS: &str = "logs";

/// A service that uses the key on its own, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUse {
    /// The service principal, e.g. `sns.amazonaws.com`; [`LOGS`] for CloudWatch Logs.
    pub principal: String,
    pub mask: u8,
    pub because: BTreeSet<String>,
}

/// The services the template makes use the key, CloudWatch Logs first, then by principal.
pub fn service_uses(template: &Value, encrypted: &[(String, Kind)]) -> Vec<ServiceUse> {
    let kind = |id: &str| encrypted.iter().find(|(i, _)| i == id).map(|(_, k)| *k);
    let mut uses: BTreeMap<String, ServiceUse> = BTreeMap::new();
    let mut add = |principal: &str, mask: u8, because: String| {
        let entry = uses
            .entry(principal.to_string())
            .or_insert_with(|| ServiceUse {
                principal: principal.to_string(),
                mask: 0,
                because: BTreeSet::new(),
            });
        entry.mask |= mask;
        entry.because.insert(because);
    };
    let publish = DECRYPT | GENERATE;

    let log_groups: Vec<&String> = encrypted
        .iter()
        .filter(|(_, k)| *k == Kind::LogGroup)
        .map(|(id, _)| id)
        .collect();
    let mut logs = None;
    if !log_groups.is_empty() {
        logs = Some(ServiceUse {
            principal: LOGS.to_string(),
            mask: 0,
            because: log_groups
                .iter()
                .map(|id| format!("log group `{id}`"))
                .collect(),
        });
    }

    // Resource policies of encrypted resources that let a service in.
    let policies = [
        ("AWS::S3::BucketPolicy", "Bucket"),
        ("AWS::SQS::QueuePolicy", "Queues"),
        ("AWS::SNS::TopicPolicy", "Topics"),
    ];
    for (policy_type, target) in policies {
        for (policy_id, policy) in cfn::resources_of(template, policy_type) {
            let targets: Vec<(String, Kind)> = cfn::prop(policy, target)
                .map(cfn::referenced_ids)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|id| kind(&id).map(|k| (id, k)))
                .collect();
            for statement in statements(cfn::prop(policy, "PolicyDocument")) {
                if statement.field("Effect").and_then(Value::as_str) != Some("Allow") {
                    continue;
                }
                for service in service_principals(statement.field("Principal")) {
                    for (id, k) in &targets {
                        let a = access(statement, *k);
                        let mask = if a.write {
                            publish
                        } else if a.read {
                            DECRYPT
                        } else {
                            0
                        };
                        if mask != 0 {
                            add(&service, mask, format!("`{policy_id}` lets it use `{id}`"));
                        }
                    }
                }
            }
        }
    }
    for (id, subscription) in cfn::resources_of(template, "AWS::SNS::Subscription") {
        if cfn::prop(subscription, "Protocol").and_then(Value::as_str) != Some("sqs") {
            continue;
        }
        for queue in cfn::prop(subscription, "Endpoint")
            .map(cfn::referenced_ids)
            .unwrap_or_default()
        {
            if kind(&queue) == Some(Kind::Queue) {
                add(
                    "sns.amazonaws.com",
                    publish,
                    format!("subscription `{id}` delivers to `{queue}`"),
                );
            }
        }
    }
    let messaging = |id: &str| matches!(kind(id), Some(Kind::Topic | Kind::Queue));
    for (id, alarm) in cfn::resources_of(template, "AWS::CloudWatch::Alarm") {
        for property in ["AlarmActions", "OKActions", "InsufficientDataActions"] {
            for target in cfn::prop(alarm, property)
                .map(cfn::referenced_ids)
                .unwrap_or_default()
            {
                if messaging(&target) {
                    add(
                        "cloudwatch.amazonaws.com",
                        publish,
                        format!("alarm `{id}` notifies `{target}`"),
                    );
                }
            }
        }
    }
    for (id, rule) in cfn::resources_of(template, "AWS::Events::Rule") {
        // A target's `Arn`, and its `DeadLetterConfig.Arn`: EventBridge sends to both.
        for entry in cfn::prop(rule, "Targets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let sent_to = [entry.field("Arn"), entry.at("/DeadLetterConfig/Arn")];
            for target in sent_to.into_iter().flatten().flat_map(cfn::referenced_ids) {
                if messaging(&target) {
                    add(
                        "events.amazonaws.com",
                        publish,
                        format!("rule `{id}` targets `{target}`"),
                    );
                }
            }
        }
    }
    let notifications = cfn::resources_of(template, "AWS::S3::Bucket")
        .filter_map(|(id, b)| cfn::prop(b, "NotificationConfiguration").map(|n| (id, n)))
        .chain(
            cfn::resources_of(template, "Custom::S3BucketNotifications")
                .filter_map(|(id, b)| cfn::prop(b, "NotificationConfiguration").map(|n| (id, n))),
        );
    for (id, config) in notifications {
        for section in ["TopicConfigurations", "QueueConfigurations"] {
            for target in config
                .get(section)
                .map(cfn::referenced_ids)
                .unwrap_or_default()
            {
                if messaging(&target) {
                    add(
                        "s3.amazonaws.com",
                        publish,
                        format!("bucket notifications of `{id}` go to `{target}`"),
                    );
                }
            }
        }
    }
    logs.into_iter().chain(uses.into_values()).collect()
}

/// Principals other than services that a resource policy lets use an encrypted resource.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyPrincipals {
    /// The bucket, queue or topic policy.
    pub policy: String,
    /// `AWS` principals as written (ARN strings, intrinsics), without duplicates.
    pub aws: Vec<Value>,
    /// Any other principal (`*`, `CanonicalUser`, `Federated`), quoted.
    pub others: BTreeSet<String>,
    /// The encrypted resources they may use, quoted.
    pub resources: BTreeSet<String>,
    pub mask: u8,
}

/// The principals other than services that resource policies of encrypted resources let in.
/// They use the resources with their own credentials, so they need the key: in the key policy,
/// or in their own IAM policies.
pub fn policy_principals(template: &Value, encrypted: &[(String, Kind)]) -> Vec<PolicyPrincipals> {
    let kind = |id: &str| encrypted.iter().find(|(i, _)| i == id).map(|(_, k)| *k);
    let mut out = Vec::new();
    let policies = [
        ("AWS::S3::BucketPolicy", "Bucket"),
        ("AWS::SQS::QueuePolicy", "Queues"),
        ("AWS::SNS::TopicPolicy", "Topics"),
    ];
    for (policy_id, policy) in cfn::resources(template) {
        let Some(target) = policies
            .iter()
            .find(|(t, _)| policy.field("Type").and_then(Value::as_str) == Some(t))
            .map(|(_, p)| *p)
        else {
            continue;
        };
        let targets: Vec<(String, Kind)> = cfn::prop(policy, target)
            .map(cfn::referenced_ids)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|id| kind(&id).map(|k| (id, k)))
            .collect();
        let (mut aws, mut others, mut resources, mut mask) =
            (Vec::new(), BTreeSet::new(), BTreeSet::new(), 0);
        for statement in statements(cfn::prop(policy, "PolicyDocument")) {
            if statement.field("Effect").and_then(Value::as_str) != Some("Allow") {
                continue;
            }
            let Some(principal) = statement.field("Principal") else {
                continue;
            };
            let mut named_aws: Vec<&Value> = Vec::new();
            let mut named_others: Vec<&Value> = Vec::new();
            match principal {
                Value::Object(m) => {
                    for (key, value) in m.iter().filter(|(k, _)| *k != "Service") {
                        let list: Vec<&Value> = match value {
                            Value::Array(items) => items.iter().collect(),
                            other => vec![other],
                        };
                        for v in list {
                            if key == "AWS" && v != "*" {
                                named_aws.push(v);
                            } else {
                                named_others.push(v);
                            }
                        }
                    }
                }
                other => named_others.push(other),
            }
            if named_aws.is_empty() && named_others.is_empty() {
                continue;
            }
            for (id, k) in &targets {
                let a = access(statement, *k);
                let m = if a.write {
                    DECRYPT | GENERATE | super::grants::ENCRYPT
                } else if a.read {
                    DECRYPT
                } else {
                    0
                };
                if m != 0 {
                    mask |= m;
                    resources.insert(format!("`{id}`"));
                    for p in &named_aws {
                        if !aws.contains(*p) {
                            aws.push((*p).clone());
                        }
                    }
                    for p in &named_others {
                        others.insert(quote(p));
                    }
                }
            }
        }
        if mask != 0 {
            out.push(PolicyPrincipals {
                policy: policy_id.clone(),
                aws,
                others,
                resources,
                mask,
            });
        }
    }
    out
}

/// A value for a message: a string as is, anything else as compact JSON, in backticks.
pub fn quote(value: &Value) -> String {
    match value {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

/// Principals outside the template that the key policy of the created key lets use it,
/// because a resource policy lets them use an encrypted resource.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPrincipals {
    pub sid: String,
    pub principals: Vec<Value>,
    pub mask: u8,
}

/// `AllowSns` for `sns.amazonaws.com`, `AllowCodestarNotifications` for
/// `codestar-notifications.amazonaws.com`.
fn sid(principal: &str) -> String {
    let name = principal.split('.').next().unwrap_or(principal);
    let camel: String = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect();
    format!("Allow{camel}")
}

const LOGS_ACTIONS: [&str; 5] = [
    "kms:Decrypt*",
    "kms:Describe*",
    "kms:Encrypt*",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
];

/// The key policy of the created key.
pub fn key_policy(uses: &[ServiceUse], principals: &[KeyPrincipals]) -> Value {
    let mut statements = vec![json!({
        "Action": "kms:*",
        "Effect": "Allow",
        "Principal": { "AWS": { "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root" } },
        "Resource": "*",
        "Sid": "AllowAccountAdministration"
    })];
    for service in uses {
        statements.push(if service.principal == LOGS {
            json!({
                "Action": LOGS_ACTIONS,
                "Condition": {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": {
                            "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:*"
                        }
                    }
                },
                "Effect": "Allow",
                "Principal": { "Service": { "Fn::Sub": "logs.${AWS::Region}.amazonaws.com" } },
                "Resource": "*",
                "Sid": "AllowCloudWatchLogs"
            })
        } else {
            json!({
                "Action": kms_actions(service.mask),
                "Condition": condition(&service.principal),
                "Effect": "Allow",
                "Principal": { "Service": service.principal },
                "Resource": "*",
                "Sid": sid(&service.principal)
            })
        });
    }
    for p in principals {
        let aws = match p.principals.as_slice() {
            [one] => one.clone(),
            many => Value::Array(many.to_vec()),
        };
        statements.push(json!({
            "Action": kms_actions(p.mask),
            "Effect": "Allow",
            "Principal": { "AWS": aws },
            "Resource": "*",
            "Sid": p.sid
        }));
    }
    json!({ "Statement": statements, "Version": "2012-10-17" })
}

/// Services act for this account's resources only. CloudFront is scoped by the distribution
/// ARN, account-wide: naming the distribution would make the key depend on it, and the
/// distribution already depends on the bucket, which depends on the key.
fn condition(principal: &str) -> Value {
    if principal == "cloudfront.amazonaws.com" {
        json!({ "ArnLike": { "aws:SourceArn": { "Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/*" } } })
    } else {
        json!({ "StringEquals": { "aws:SourceAccount": { "Ref": "AWS::AccountId" } } })
    }
}

/// The key `kms.create` adds.
pub fn key_resource(uses: &[ServiceUse], principals: &[KeyPrincipals]) -> Value {
    json!({
        "Type": "AWS::KMS::Key",
        "Properties": {
            "Description": { "Fn::Sub": "Encrypts the resources of stack ${AWS::StackName} (added by cdk-harden)" },
            "EnableKeyRotation": true,
            "KeyPolicy": key_policy(uses, principals)
        },
        "UpdateReplacePolicy": "Retain",
        "DeletionPolicy": "Retain"
    })
}

/// Its alias, `alias/cdk-harden/<stack name>`: unique per account and region at deploy time.
pub fn alias_resource() -> Value {
    json!({
        "Type": "AWS::KMS::Alias",
        "Properties": {
            "AliasName": { "Fn::Sub": "alias/cdk-harden/${AWS::StackName}" },
            "TargetKeyId": cfn::getatt(KEY_ID, "Arn")
        }
    })
}

/// The parameter `kms.ssm` adds: the key ARN, read from SSM Parameter Store at deploy time.
pub fn parameter(name: &str) -> Value {
    json!({
        "Type": "AWS::SSM::Parameter::Value<String>",
        "Default": name,
        "Description": "ARN of the customer-managed KMS key, read from SSM Parameter Store (added by cdk-harden `kms`)"
    })
}

/// What the policy of a key this stack cannot edit must allow, as one sentence.
pub fn central_requirements(
    uses: &[ServiceUse],
    account: Option<&str>,
    region: Option<&str>,
) -> String {
    let account = account.unwrap_or("<account>");
    let region = region.unwrap_or("<region>");
    let mut parts = vec![format!(
        "this account's IAM policies (principal `arn:aws:iam::{account}:root`), so the grants added to this stack's roles take effect, and the CloudFormation execution role that deploys the stack (kms:CreateGrant, kms:DescribeKey, kms:Encrypt, kms:GenerateDataKey*, kms:Decrypt)"
    )];
    for service in uses {
        let because = service
            .because
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        parts.push(if service.principal == LOGS {
            format!(
                "`logs.{region}.amazonaws.com` ({}) with `kms:EncryptionContext:aws:logs:arn` like `arn:aws:logs:{region}:{account}:log-group:*`, for {because}",
                LOGS_ACTIONS.join(", ")
            )
        } else {
            format!(
                "`{}` ({}) for resources of account {account}, because {because}",
                service.principal,
                kms_actions(service.mask).join(", ")
            )
        });
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_principals_of_resource_policies_are_found() {
        let t = json!({"Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket"},
            "Policy": {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "Bucket"}, "PolicyDocument": {"Statement": [
                {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*", "Resource": "*"},
                {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::333333333333:root"]}, "Action": ["s3:GetObject*", "s3:List*"], "Resource": "*"},
                {"Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject", "Resource": "*"}
            ]}}}
        }});
        let found = policy_principals(&t, &[("Bucket".to_string(), Kind::Bucket)]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].policy, "Policy");
        assert_eq!(found[0].aws, [json!("arn:aws:iam::333333333333:root")]);
        assert!(found[0].others.is_empty());
        assert_eq!(found[0].mask, DECRYPT);
        assert!(policy_principals(&t, &[]).is_empty());
    }

    #[test]
    fn sids_are_alphanumeric() {
        assert_eq!(sid("sns.amazonaws.com"), "AllowSns");
        assert_eq!(
            sid("codestar-notifications.amazonaws.com"),
            "AllowCodestarNotifications"
        );
    }

    #[test]
    fn services_come_from_the_template() {
        let t = json!({"Resources": {
            "Topic": {"Type": "AWS::SNS::Topic"},
            "Queue": {"Type": "AWS::SQS::Queue"},
            "Logs": {"Type": "AWS::Logs::LogGroup"},
            "Sub": {"Type": "AWS::SNS::Subscription", "Properties": {"Protocol": "sqs", "TopicArn": {"Ref": "Topic"}, "Endpoint": {"Fn::GetAtt": ["Queue", "Arn"]}}},
            "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"AlarmActions": [{"Ref": "Topic"}]}},
            "TopicPolicy": {"Type": "AWS::SNS::TopicPolicy", "Properties": {"Topics": [{"Ref": "Topic"}], "PolicyDocument": {"Statement": [
                {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sns:Publish", "Resource": {"Ref": "Topic"}}]}}}
        }});
        let encrypted = vec![
            ("Topic".to_string(), Kind::Topic),
            ("Queue".to_string(), Kind::Queue),
            ("Logs".to_string(), Kind::LogGroup),
        ];
        let uses = service_uses(&t, &encrypted);
        let principals: Vec<&str> = uses.iter().map(|u| u.principal.as_str()).collect();
        assert_eq!(
            principals,
            [
                LOGS,
                "cloudwatch.amazonaws.com",
                "events.amazonaws.com",
                "sns.amazonaws.com"
            ]
        );
        assert_eq!(
            kms_actions(uses[3].mask),
            ["kms:Decrypt", "kms:GenerateDataKey*"]
        );
        let policy = key_policy(&uses, &[]);
        assert_eq!(policy["Statement"][1]["Sid"], json!("AllowCloudWatchLogs"));
        assert_eq!(
            policy["Statement"][4]["Principal"]["Service"],
            json!("sns.amazonaws.com")
        );

        let no_logs = service_uses(&t, &encrypted[..2]);
        assert!(no_logs.iter().all(|u| u.principal != LOGS));
    }
}
