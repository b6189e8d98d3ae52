//! Buckets that must not get SSE-KMS, because a reader or writer that cannot use a KMS key
//! depends on them.
//!
//! - Log destinations: S3 server access logs (the bucket `bucket-logging` created, any bucket
//!   another bucket's `LoggingConfiguration` names by `Ref` or by literal name, buckets with the
//!   `LogDeliveryWrite` ACL or a bucket policy for `logging.s3.amazonaws.com`), Elastic Load
//!   Balancing access logs and CloudFront standard logs. These services deliver only to SSE-S3
//!   buckets.
//! - Anonymous readers: static website buckets, buckets whose policy allows anonymous
//!   `s3:GetObject`, and buckets read through a CloudFront origin access identity. None of them
//!   can call KMS.
//! - Replication sources: S3 replicates SSE-KMS objects only with settings and grants for both
//!   keys that the app must choose; switching the source to SSE-KMS would silently stop
//!   replication.

use crate::transform::cfn::Field;
use std::collections::BTreeMap;

use serde_json::Value;

use super::super::bucket_logging::CREATED_BUCKET;
use super::grants::{action_patterns, covers};
use crate::transform::cfn;

const ACCESS_LOGS: &str =
    "receives S3 server access logs, which S3 delivers only to SSE-S3 buckets; stays SSE-S3";
const ELB_LOGS: &str =
    "receives Elastic Load Balancing access logs, which support only SSE-S3 buckets; stays SSE-S3";
const CLOUDFRONT_LOGS: &str = "receives CloudFront standard logs; stays SSE-S3";
const WEBSITE: &str =
    "hosts a static website: anonymous website requests cannot decrypt SSE-KMS objects; left as is";
const PUBLIC: &str =
    "its bucket policy allows anonymous reads, which cannot decrypt SSE-KMS objects; left as is";
const REPLICATION: &str = "replicates to another bucket: S3 replicates SSE-KMS objects only with `SourceSelectionCriteria.SseKmsEncryptedObjects`, a `ReplicaKmsKeyID` per destination and a replication role that may use both keys; left as is (encrypt it in the app, with those settings)";
const OAI: &str = "is read through a CloudFront origin access identity, which cannot decrypt SSE-KMS objects; left as is (move the distribution to origin access control to encrypt it)";

/// The buckets of the template that stay as they are, each with the reason, by logical id.
pub fn exempt_buckets(template: &Value) -> BTreeMap<String, &'static str> {
    let mut out = BTreeMap::new();
    let mut add = |ids: Vec<String>, reason: &'static str| {
        for id in ids {
            out.entry(id).or_insert(reason);
        }
    };
    let buckets: Vec<(&String, &Value)> = cfn::resources_of(template, "AWS::S3::Bucket").collect();
    if cfn::type_of(template, CREATED_BUCKET) == Some("AWS::S3::Bucket") {
        add(vec![CREATED_BUCKET.to_string()], ACCESS_LOGS);
    }
    for (id, bucket) in &buckets {
        if let Some(dest) =
            cfn::prop(bucket, "LoggingConfiguration").and_then(|l| l.field("DestinationBucketName"))
        {
            add(named_buckets(template, dest), ACCESS_LOGS);
        }
        if cfn::prop(bucket, "AccessControl").and_then(Value::as_str) == Some("LogDeliveryWrite") {
            add(vec![(*id).clone()], ACCESS_LOGS);
        }
    }
    for (_, policy) in cfn::resources_of(template, "AWS::S3::BucketPolicy") {
        let Some(target) = cfn::prop(policy, "Bucket") else {
            continue;
        };
        let ids = named_buckets(template, target);
        for statement in statements(cfn::prop(policy, "PolicyDocument")) {
            if statement.field("Effect").and_then(Value::as_str) != Some("Allow") {
                continue;
            }
            let principal = statement.field("Principal");
            let services = service_principals(principal);
            if services.iter().any(|s| s == "logging.s3.amazonaws.com") {
                add(ids.clone(), ACCESS_LOGS);
            }
            if services
                .iter()
                .any(|s| s == "logdelivery.elasticloadbalancing.amazonaws.com")
            {
                add(ids.clone(), ELB_LOGS);
            }
            let anonymous = matches!(principal, Some(Value::String(s)) if s == "*")
                || principal.and_then(|p| p.field("AWS")).is_some_and(|a| {
                    a == "*" || a.as_array().is_some_and(|l| l.iter().any(|x| x == "*"))
                });
            let reads = covers(&action_patterns(statement), "s3:GetObject");
            if anonymous && reads && statement.field("Condition").is_none() {
                add(ids.clone(), PUBLIC);
            }
            if is_oai(template, principal) {
                add(ids.clone(), OAI);
            }
        }
    }
    for (_, lb) in cfn::resources_of(template, "AWS::ElasticLoadBalancingV2::LoadBalancer") {
        let attributes = cfn::prop(lb, "LoadBalancerAttributes").and_then(Value::as_array);
        for attribute in attributes.into_iter().flatten() {
            // `access_logs.s3.bucket`, `connection_logs.s3.bucket`: SSE-S3 only.
            let key = attribute.field("Key").and_then(Value::as_str).unwrap_or("");
            if let (true, Some(v)) = (key.ends_with("_logs.s3.bucket"), attribute.field("Value")) {
                add(named_buckets(template, v), ELB_LOGS);
            }
        }
    }
    for (_, lb) in cfn::resources_of(template, "AWS::ElasticLoadBalancing::LoadBalancer") {
        if let Some(name) =
            cfn::prop(lb, "AccessLoggingPolicy").and_then(|p| p.field("S3BucketName"))
        {
            add(named_buckets(template, name), ELB_LOGS);
        }
    }
    for (_, distribution) in cfn::resources_of(template, "AWS::CloudFront::Distribution") {
        if let Some(bucket) = cfn::prop(distribution, "DistributionConfig")
            .and_then(|c| c.field("Logging"))
            .and_then(|l| l.field("Bucket"))
        {
            add(named_buckets(template, bucket), CLOUDFRONT_LOGS);
        }
    }
    for (id, bucket) in &buckets {
        if cfn::prop(bucket, "WebsiteConfiguration").is_some() {
            add(vec![(*id).clone()], WEBSITE);
        }
        if cfn::prop(bucket, "ReplicationConfiguration").is_some() {
            add(vec![(*id).clone()], REPLICATION);
        }
    }
    out
}

/// The template's buckets a value names: by `Ref`/`GetAtt`/`Fn::Sub`, or by a literal name
/// equal to a bucket's literal `BucketName`.
pub fn named_buckets(template: &Value, value: &Value) -> Vec<String> {
    let is_bucket = |id: &str| cfn::type_of(template, id) == Some("AWS::S3::Bucket");
    match value {
        Value::String(name) => cfn::resources_of(template, "AWS::S3::Bucket")
            .filter(|(_, b)| {
                cfn::prop(b, "BucketName").and_then(Value::as_str) == Some(name.as_str())
            })
            .map(|(id, _)| id.clone())
            .collect(),
        other => cfn::referenced_ids(other)
            .into_iter()
            .filter(|id| is_bucket(id))
            .collect(),
    }
}

/// The statements of a policy document (a single statement counts as a list of one).
pub fn statements(document: Option<&Value>) -> Vec<&Value> {
    match document.and_then(|d| d.field("Statement")) {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single @ Value::Object(_)) => vec![single],
        _ => Vec::new(),
    }
}

/// The literal service principals of a statement's `Principal`.
pub fn service_principals(principal: Option<&Value>) -> Vec<String> {
    cfn::string_list(principal.and_then(|p| p.field("Service")))
}

fn is_oai(template: &Value, principal: Option<&Value>) -> bool {
    let Some(principal) = principal else {
        return false;
    };
    if principal.field("CanonicalUser").is_some() {
        return true;
    }
    let Some(aws) = principal.field("AWS") else {
        return false;
    };
    let text = aws.to_string();
    text.contains("CloudFront Origin Access Identity")
        || cfn::referenced_ids(aws).iter().any(|id| {
            cfn::type_of(template, id) == Some("AWS::CloudFront::CloudFrontOriginAccessIdentity")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_destinations_and_anonymous_readers_are_exempt() {
        let t = json!({"Resources": {
            "Logs": {"Type": "AWS::S3::Bucket"},
            "Named": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "org-logs"}},
            "Data": {"Type": "AWS::S3::Bucket", "Properties": {"LoggingConfiguration": {"DestinationBucketName": {"Ref": "Logs"}}}},
            "Other": {"Type": "AWS::S3::Bucket", "Properties": {"LoggingConfiguration": {"DestinationBucketName": "org-logs"}}},
            "Acl": {"Type": "AWS::S3::Bucket", "Properties": {"AccessControl": "LogDeliveryWrite"}},
            "Site": {"Type": "AWS::S3::Bucket", "Properties": {"WebsiteConfiguration": {"IndexDocument": "index.html"}}},
            "Replicated": {"Type": "AWS::S3::Bucket", "Properties": {"ReplicationConfiguration": {"Role": "arn:aws:iam::111111111111:role/r", "Rules": []}}},
            "Public": {"Type": "AWS::S3::Bucket"},
            "PublicPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "Public"}, "PolicyDocument": {"Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject", "Resource": "*"}]}}},
            "Oac": {"Type": "AWS::S3::Bucket"},
            "OacPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "Oac"}, "PolicyDocument": {"Statement": [
                {"Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject", "Resource": "*"}]}}},
            "Oai": {"Type": "AWS::S3::Bucket"},
            "OaiPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "Oai"}, "PolicyDocument": {"Statement": [
                {"Effect": "Allow", "Principal": {"CanonicalUser": {"Fn::GetAtt": ["Identity", "S3CanonicalUserId"]}}, "Action": "s3:GetObject", "Resource": "*"}]}}},
            "Alb": {"Type": "AWS::S3::Bucket"},
            "Lb": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {"LoadBalancerAttributes": [
                {"Key": "access_logs.s3.enabled", "Value": "true"}, {"Key": "access_logs.s3.bucket", "Value": {"Ref": "Alb"}}]}}
        }});
        let exempt = exempt_buckets(&t);
        let ids: Vec<&str> = exempt.keys().map(String::as_str).collect();
        assert_eq!(
            ids,
            [
                "Acl",
                "Alb",
                "Logs",
                "Named",
                "Oai",
                "Public",
                "Replicated",
                "Site"
            ]
        );
        assert!(exempt["Replicated"].contains("SseKmsEncryptedObjects"));
        assert!(exempt["Logs"].contains("server access logs"));
        assert!(exempt["Alb"].contains("Elastic Load Balancing"));
        assert!(exempt["Site"].contains("website"));
    }
}
