//! `bucket-logging`: every S3 bucket sends server access logs to the environment's log bucket.
//!
//! The destination is `accessLogs.bucket` (a central bucket, by name) or, with
//! `accessLogs.create`, one bucket added to the stack: SSE-S3 (log delivery cannot write to
//! SSE-KMS buckets), versioned, public access blocked, retained on delete, with a bucket policy
//! that lets `logging.s3.amazonaws.com` write only on behalf of this account's source buckets.
//! The destination bucket is never pointed at itself. No access-log setting for an environment
//! that has buckets is an error naming the environment.

use crate::transform::cfn::Field;
use serde_json::{json, Value};

use crate::error::Result;
use crate::transform::cfn::{self, getatt, ref_to};
use crate::transform::{Action, Change, Context, NoteKind, Op, Proposal};

pub struct BucketLogging;

/// Logical id of the bucket added with `accessLogs.create`.
pub const CREATED_BUCKET: &str = "CdkHardenAccessLogBucket";
/// Logical id of its bucket policy.
pub const CREATED_POLICY: &str = "CdkHardenAccessLogBucketPolicy";

impl Action for BucketLogging {
    fn propose(&self, template: &Value, selected: &[String], ctx: &Context) -> Result<Proposal> {
        let mut proposal = Proposal::default();
        if selected.is_empty() {
            return Ok(proposal);
        }
        let settings = ctx.env.access_logs.clone().unwrap_or_default();
        let central = settings.bucket.clone();
        if let Some(bucket) = central.as_deref().filter(|b| !is_bucket_name(b)) {
            return Err(ctx.invalid_setting(format!(
                "`accessLogs.bucket` is `{bucket}`, which is not an S3 bucket name (3 to 63 lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit)"
            )));
        }
        let create = settings.create.unwrap_or(false) && central.is_none();
        if central.is_none() && !create {
            return Err(ctx.missing_setting("accessLogs.bucket` or `accessLogs.create"));
        }

        let mut sources = Vec::new();
        for id in selected {
            let resource = cfn::resource(template, id).expect("selected resources exist");
            let name = cfn::prop(resource, "BucketName");
            let is_destination = match &central {
                Some(c) => name.and_then(Value::as_str) == Some(c.as_str()),
                None => id == CREATED_BUCKET,
            };
            if is_destination {
                proposal.notes.push(ctx.note(
                    Some(id),
                    NoteKind::Skipped,
                    "receives the access logs; not pointed at itself",
                ));
                continue;
            }
            if cfn::prop(resource, "LoggingConfiguration").is_some() {
                // Already logging somewhere: the engine would leave it alone anyway; say nothing.
                continue;
            }
            let destination = match &central {
                Some(c) => json!(c),
                None => ref_to(CREATED_BUCKET),
            };
            let prefix = format!("{}/{}/", ctx.stack.display_name, id);
            proposal.push(Change::on_resource(
                id,
                "/Properties/LoggingConfiguration",
                Op::SetIfAbsent,
                json!({ "DestinationBucketName": destination, "LogFilePrefix": prefix }),
                "send server access logs to the access-log bucket",
            ));
            sources.push(id.clone());
        }

        if create && !sources.is_empty() {
            add_created_bucket(template, &sources, &mut proposal);
        }
        Ok(proposal)
    }
}

/// The policy names each source bucket's ARN, so the source buckets must not also `DependsOn`
/// the policy: that would be a dependency cycle.
fn add_created_bucket(template: &Value, sources: &[String], proposal: &mut Proposal) {
    // Every bucket that logs to the created bucket, including earlier runs' sources, so a
    // second run proposes the same policy.
    let mut all: Vec<String> = cfn::resources_of(template, "AWS::S3::Bucket")
        .filter(|(_, r)| {
            cfn::prop(r, "LoggingConfiguration")
                .and_then(|l| l.field("DestinationBucketName"))
                .and_then(cfn::ref_target)
                == Some(CREATED_BUCKET)
        })
        .map(|(id, _)| id.clone())
        .collect();
    for s in sources {
        if !all.contains(s) {
            all.push(s.clone());
        }
    }
    let order: Vec<&String> = cfn::resources(template).map(|(id, _)| id).collect();
    all.sort_by_key(|id| order.iter().position(|o| *o == id));

    proposal.push(Change::new(
        CREATED_BUCKET,
        format!("/Resources/{CREATED_BUCKET}"),
        Op::AddResource,
        json!({
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        { "ServerSideEncryptionByDefault": { "SSEAlgorithm": "AES256" } }
                    ]
                },
                "OwnershipControls": { "Rules": [ { "ObjectOwnership": "BucketOwnerEnforced" } ] },
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": true,
                    "BlockPublicPolicy": true,
                    "IgnorePublicAcls": true,
                    "RestrictPublicBuckets": true
                },
                "VersioningConfiguration": { "Status": "Enabled" }
            },
            "UpdateReplacePolicy": "Retain",
            "DeletionPolicy": "Retain",
            "Metadata": {
                "checkov": {
                    "skip": [
                        { "id": "CKV_AWS_18", "comment": "This bucket receives the stack's S3 server access logs; logging it to itself would loop." },
                        { "id": "CKV_AWS_145", "comment": "S3 server access logs can only be delivered to SSE-S3 buckets, not SSE-KMS." }
                    ]
                }
            }
        }),
        "add the stack's access-log bucket (SSE-S3, versioned, private)",
    ));
    let source_arns: Vec<Value> = all.iter().map(|id| getatt(id, "Arn")).collect();
    proposal.push(Change::new(
        CREATED_POLICY,
        format!("/Resources/{CREATED_POLICY}"),
        Op::AddResource,
        json!({
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": ref_to(CREATED_BUCKET),
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "S3ServerAccessLogsPolicy",
                            "Effect": "Allow",
                            "Principal": { "Service": "logging.s3.amazonaws.com" },
                            "Action": "s3:PutObject",
                            "Resource": { "Fn::Join": ["", [getatt(CREATED_BUCKET, "Arn"), "/*"]] },
                            "Condition": {
                                "ArnLike": { "aws:SourceArn": source_arns },
                                "StringEquals": { "aws:SourceAccount": ref_to("AWS::AccountId") }
                            }
                        },
                        {
                            "Sid": "DenyInsecureTransport",
                            "Effect": "Deny",
                            "Principal": { "AWS": "*" },
                            "Action": "s3:*",
                            "Resource": [
                                getatt(CREATED_BUCKET, "Arn"),
                                { "Fn::Join": ["", [getatt(CREATED_BUCKET, "Arn"), "/*"]] }
                            ],
                            "Condition": { "Bool": { "aws:SecureTransport": "false" } }
                        }
                    ]
                }
            }
        }),
        "let S3 log delivery write to the access-log bucket, for this account's buckets only",
    ));
}
/// Whether `name` follows S3's rules for a bucket name: 3 to 63 characters of lowercase
/// letters, digits, `.` and `-`, starting and ending with a letter or digit, no `..`, and not
/// an IPv4 address.
fn is_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&b.len())
        && b.iter().all(|&c| edge(c) || c == b'.' || c == b'-')
        && edge(b[0])
        && edge(b[b.len() - 1])
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_3_bucket_names_follow_s3s_rules() {
        for good in [
            "abc",
            "org-access-logs-444444444444",
            "a.b-c",
            &"a".repeat(63),
        ] {
            assert!(is_bucket_name(good), "{good}");
        }
        for bad in [
            "",
            "ab",
            "Bad_Bucket",
            "a..b",
            "-abc",
            "abc-",
            ".abc",
            "192.168.5.4",
            &"a".repeat(64),
        ] {
            assert!(!is_bucket_name(bad), "{bad}");
        }
    }
}
