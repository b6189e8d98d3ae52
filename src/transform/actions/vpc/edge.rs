//! Finding Lambda@Edge functions, which cannot run in a VPC.
//!
//! A function is a Lambda@Edge function when, in its template:
//! - a CloudFront distribution associates it (`LambdaFunctionAssociations[*].LambdaFunctionARN`
//!   in any cache behavior), usually through an `AWS::Lambda::Version` or `AWS::Lambda::Alias`;
//! - CDK's `cloudfront.experimental.EdgeFunction` publishes its version ARN for another region
//!   (an `AWS::SSM::Parameter` named `/cdk/EdgeFunctionArn/…`); or
//! - its execution role trusts `edgelambda.amazonaws.com`, which only Lambda@Edge needs (CDK
//!   adds it for every edge function, also when the distribution is in another stack).

use crate::transform::cfn::Field;
use crate::transform::change::Pointer;
use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::transform::cfn;
use crate::transform::{Change, Op};

/// The checkov check for functions in a VPC.
pub const CHECKOV_VPC_CHECK: &str = "CKV_AWS_117";

/// The Lambda@Edge functions of a template: logical id → why it is one.
pub fn functions(template: &Value) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut mark = |ids: Vec<String>, why: &dyn Fn() -> String| {
        for id in ids {
            found.entry(id).or_insert_with(why);
        }
    };
    for (dist, resource) in cfn::resources_of(template, "AWS::CloudFront::Distribution") {
        let mut arns = Vec::new();
        if let Some(config) = cfn::prop(resource, "DistributionConfig") {
            associations(config, &mut arns);
        }
        for arn in arns {
            let ids = cfn::referenced_ids(arn)
                .iter()
                .flat_map(|id| resolve(template, id, 0))
                .collect();
            mark(ids, &|| {
                format!("CloudFront distribution `{dist}` associates it")
            });
        }
    }
    for (_, resource) in cfn::resources_of(template, "AWS::SSM::Parameter") {
        let edge_name = cfn::prop(resource, "Name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.starts_with("/cdk/EdgeFunctionArn/"));
        if let (true, Some(value)) = (edge_name, cfn::prop(resource, "Value")) {
            let ids = cfn::referenced_ids(value)
                .iter()
                .flat_map(|id| resolve(template, id, 0))
                .collect();
            mark(ids, &|| {
                "`cloudfront.experimental.EdgeFunction` publishes its version for CloudFront"
                    .to_string()
            });
        }
    }
    for (id, resource) in cfn::resources_of(template, "AWS::Lambda::Function") {
        let role = cfn::prop(resource, "Role")
            .and_then(cfn::getatt_target)
            .map(|(r, _)| r);
        let trusts_edge = role
            .and_then(|r| cfn::resource(template, r))
            .filter(|r| r.field("Type").and_then(Value::as_str) == Some("AWS::IAM::Role"))
            .and_then(|r| cfn::prop(r, "AssumeRolePolicyDocument"))
            .is_some_and(trusts_edgelambda);
        if trusts_edge {
            mark(vec![id.clone()], &|| {
                "its execution role trusts `edgelambda.amazonaws.com`".to_string()
            });
        }
    }
    found
}

/// Every `LambdaFunctionARN` below `value`.
fn associations<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "LambdaFunctionAssociations" {
                    for item in v.as_array().into_iter().flatten() {
                        out.extend(item.field("LambdaFunctionARN"));
                    }
                } else {
                    associations(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| associations(v, out)),
        _ => {}
    }
}

/// The functions a function, version or alias stands for.
fn resolve(template: &Value, id: &str, depth: usize) -> Vec<String> {
    let Some(resource) = cfn::resource(template, id) else {
        return Vec::new();
    };
    let follow = |names: &[&str]| -> Vec<String> {
        if depth > 4 {
            return Vec::new();
        }
        names
            .iter()
            .filter_map(|n| cfn::prop(resource, n))
            .flat_map(cfn::referenced_ids)
            .flat_map(|target| resolve(template, &target, depth + 1))
            .collect()
    };
    match resource.field("Type").and_then(Value::as_str) {
        Some("AWS::Lambda::Function") => vec![id.to_string()],
        Some("AWS::Lambda::Version") => follow(&["FunctionName"]),
        Some("AWS::Lambda::Alias") => follow(&["FunctionName", "FunctionVersion"]),
        _ => Vec::new(),
    }
}

fn trusts_edgelambda(document: &Value) -> bool {
    let statements = match document.field("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
        None => Vec::new(),
    };
    statements.into_iter().any(|s| {
        let service = s.field("Principal").and_then(|p| p.field("Service"));
        let names: Vec<&Value> = match service {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(one) => vec![one],
            None => Vec::new(),
        };
        s.field("Effect").and_then(Value::as_str) == Some("Allow")
            && names
                .iter()
                .any(|n| n.as_str() == Some("edgelambda.amazonaws.com"))
    })
}

/// Records for checkov why the function has no VPC, unless a skip for the check is there.
pub fn checkov_skip(logical_id: &str, resource: &Value) -> Option<Change> {
    let already = |s: &Value| s.field("id").and_then(Value::as_str) == Some(CHECKOV_VPC_CHECK);
    match resource.at("/Metadata/checkov") {
        None => {}
        Some(Value::Object(checkov)) => match checkov.field("skip") {
            None => {}
            Some(Value::Array(skips)) if !skips.iter().any(already) => {}
            Some(_) => return None,
        },
        Some(_) => return None,
    }
    if resource.field("Metadata").is_some_and(|m| !m.is_object()) {
        return None;
    }
    Some(Change::on_resource(
        logical_id,
        "/Metadata/checkov/skip",
        Op::AppendUnique,
        json!([{
            "id": CHECKOV_VPC_CHECK,
            "comment": "Lambda@Edge function: CloudFront runs it at edge locations, and Lambda@Edge functions cannot be placed in a VPC."
        }]),
        "record for checkov that a Lambda@Edge function cannot run in a VPC",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(role: &str) -> Value {
        json!({"Type": "AWS::Lambda::Function", "Properties": {"Role": {"Fn::GetAtt": [role, "Arn"]}}})
    }

    fn role(services: Value) -> Value {
        json!({"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
            "Statement": [{"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": services}}]
        }}})
    }

    #[test]
    fn associations_through_versions_and_aliases_mark_functions() {
        let t = json!({"Resources": {
            "R": role(json!("lambda.amazonaws.com")),
            "Viewer": function("R"),
            "Origin": function("R"),
            "Plain": function("R"),
            "ViewerVersion": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "Viewer"}}},
            "OriginVersion": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "Origin"}}},
            "OriginAlias": {"Type": "AWS::Lambda::Alias", "Properties": {
                "FunctionName": {"Ref": "Origin"}, "FunctionVersion": {"Fn::GetAtt": ["OriginVersion", "Version"]}}},
            "Dist": {"Type": "AWS::CloudFront::Distribution", "Properties": {"DistributionConfig": {
                "DefaultCacheBehavior": {"LambdaFunctionAssociations": [
                    {"EventType": "viewer-request", "LambdaFunctionARN": {"Ref": "ViewerVersion"}}]},
                "CacheBehaviors": [{"LambdaFunctionAssociations": [
                    {"EventType": "origin-request", "LambdaFunctionARN": {"Ref": "OriginAlias"}}]}]
            }}}
        }});
        let edge = functions(&t);
        assert_eq!(edge.keys().collect::<Vec<_>>(), ["Origin", "Viewer"]);
        assert!(edge["Viewer"].contains("`Dist`"));
    }

    #[test]
    fn edge_function_shapes_without_a_distribution_are_found() {
        let t = json!({"Resources": {
            "EdgeRole": role(json!(["edgelambda.amazonaws.com", "lambda.amazonaws.com"])),
            "ByTrust": function("EdgeRole"),
            "R": role(json!("lambda.amazonaws.com")),
            "Published": function("R"),
            "PublishedVersion": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "Published"}}},
            "Param": {"Type": "AWS::SSM::Parameter", "Properties": {
                "Name": "/cdk/EdgeFunctionArn/us-east-1/App/Edge", "Type": "String",
                "Value": {"Ref": "PublishedVersion"}}},
            "Plain": function("R")
        }});
        let edge = functions(&t);
        assert_eq!(edge.keys().collect::<Vec<_>>(), ["ByTrust", "Published"]);
    }

    #[test]
    fn the_checkov_skip_is_added_once() {
        let r = json!({"Type": "AWS::Lambda::Function", "Metadata": {"aws:cdk:path": "p"}});
        let c = checkov_skip("F", &r).unwrap();
        assert_eq!(c.pointer, "/Resources/F/Metadata/checkov/skip");
        let done =
            json!({"Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_117", "comment": "x"}]}}});
        assert!(checkov_skip("F", &done).is_none());
        let other =
            json!({"Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_116", "comment": "x"}]}}});
        assert!(checkov_skip("F", &other).is_some());
    }
}
