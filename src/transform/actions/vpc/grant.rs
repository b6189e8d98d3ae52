//! The IAM a function or project needs to run in a VPC, and the grant it must depend on.
//!
//! - A Lambda function's execution role in the template gets the AWS managed policy
//!   `AWSLambdaVPCAccessExecutionRole` (partition-aware, as CDK writes it). If the role's
//!   `ManagedPolicyArns` is not a plain list, or already holds IAM's default quota of managed
//!   policies, it gets an inline `AWS::IAM::Policy` with the same EC2 actions instead.
//! - A CodeBuild service role in the template gets an inline `AWS::IAM::Policy` with the EC2
//!   permissions CodeBuild documents for VPC builds; `ec2:CreateNetworkInterfacePermission` is
//!   scoped to network interfaces of the stack's account and region, created for CodeBuild, in
//!   the configured subnets.
//!
//! Logical ids of added policies are derived from the role's, so every run picks the same one.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::transform::cfn::{self, ref_to};

/// The AWS managed policy that lets a Lambda function manage its network interfaces.
pub const LAMBDA_VPC_MANAGED_POLICY: &str = "AWSLambdaVPCAccessExecutionRole";

/// IAM's default quota of managed policies attached to one role.
pub const MANAGED_POLICY_QUOTA: usize = 10;

/// The EC2 actions of `AWSLambdaVPCAccessExecutionRole`.
pub const LAMBDA_ENI_ACTIONS: &[&str] = &[
    "ec2:AssignPrivateIpAddresses",
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:UnassignPrivateIpAddresses",
];

/// The EC2 actions CodeBuild documents for VPC builds, besides
/// `ec2:CreateNetworkInterfacePermission`.
pub const CODEBUILD_ENI_ACTIONS: &[&str] = &[
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
];

/// Where a function's or project's role is.
#[derive(Debug, PartialEq)]
pub enum RoleRef<'a> {
    /// An `AWS::IAM::Role` of this template (by `Fn::GetAtt … Arn`, or `Ref` for CodeBuild,
    /// which accepts a role name).
    InTemplate(&'a str),
    /// Anything else: an ARN string, a parameter, an import, a role of another template.
    Imported(&'a Value),
    /// No role given.
    Absent,
}

/// Classifies the `Role` / `ServiceRole` value of a resource of `template`.
pub fn role_ref<'a>(template: &Value, value: Option<&'a Value>) -> RoleRef<'a> {
    let Some(value) = value else {
        return RoleRef::Absent;
    };
    let target = match cfn::getatt_target(value) {
        Some((id, "Arn")) => Some(id),
        Some(_) => None,
        None => cfn::ref_target(value),
    };
    match target {
        Some(id) if cfn::type_of(template, id) == Some("AWS::IAM::Role") => RoleRef::InTemplate(id),
        _ => RoleRef::Imported(value),
    }
}

/// A short description of an imported role, for notes.
pub fn describe_imported(value: &Value) -> String {
    if let Some(arn) = value.as_str() {
        return format!("`{arn}`");
    }
    if let Some(target) = cfn::ref_target(value) {
        return format!("the value of `{target}`");
    }
    let text = value.to_string();
    if text.chars().count() > 80 {
        format!("`{}…`", text.chars().take(77).collect::<String>())
    } else {
        format!("`{text}`")
    }
}

/// `arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole`, in the
/// form CDK writes it, so an attachment CDK made is recognized.
pub fn lambda_managed_policy_arn() -> Value {
    json!({
        "Fn::Join": [
            "",
            ["arn:", { "Ref": "AWS::Partition" }, format!(":iam::aws:policy/service-role/{LAMBDA_VPC_MANAGED_POLICY}")]
        ]
    })
}

/// Whether the role's managed policies already include `AWSLambdaVPCAccessExecutionRole`, in
/// whatever form.
pub fn has_lambda_vpc_policy(role: &Value) -> bool {
    cfn::prop(role, "ManagedPolicyArns").is_some_and(|m| {
        let items = match m {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        items.into_iter().any(|item| {
            item.to_string()
                .contains(&format!("/{LAMBDA_VPC_MANAGED_POLICY}"))
        })
    })
}

/// Whether a managed policy can be appended to the role's `ManagedPolicyArns`: absent, or a
/// plain list below the quota.
pub fn can_append_managed_policy(role: &Value) -> bool {
    match cfn::prop(role, "ManagedPolicyArns") {
        None => true,
        Some(Value::Array(items)) => items.len() < MANAGED_POLICY_QUOTA,
        Some(_) => false,
    }
}

/// Logical id of the policy added for a CodeBuild service role.
pub fn codebuild_policy_id(role: &str) -> String {
    derived_id("CdkHardenCodeBuildVpc", role)
}

/// Logical id of the policy added for a Lambda execution role that cannot take the managed
/// policy.
pub fn lambda_policy_id(role: &str) -> String {
    derived_id("CdkHardenLambdaVpc", role)
}

/// `prefix` + `base`, shortened with a hash of `base` if longer than CloudFormation's 255
/// characters.
pub fn derived_id(prefix: &str, base: &str) -> String {
    const MAX: usize = 255;
    let id = format!("{prefix}{base}");
    if id.len() <= MAX {
        return id;
    }
    let hash = Sha256::digest(base.as_bytes());
    let hex: String = hash.iter().take(4).map(|b| format!("{b:02X}")).collect();
    // Logical ids are ASCII alphanumeric, so byte slicing is safe.
    format!("{prefix}{}{hex}", &base[..MAX - prefix.len() - hex.len()])
}

/// The inline policy with the EC2 permissions of a CodeBuild project in a VPC.
/// `subnet_arns` are the `ec2:Subnet` patterns ([`super::network::Network::subnet_arn_patterns`]).
pub fn codebuild_policy(role: &str, subnet_arns: Value) -> Value {
    json!({
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyDocument": {
                "Statement": [
                    {
                        "Sid": "CodeBuildVpcNetworkInterfaces",
                        "Action": CODEBUILD_ENI_ACTIONS,
                        "Effect": "Allow",
                        "Resource": "*"
                    },
                    {
                        "Sid": "CodeBuildVpcNetworkInterfacePermission",
                        "Action": "ec2:CreateNetworkInterfacePermission",
                        "Effect": "Allow",
                        "Resource": { "Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:network-interface/*" },
                        "Condition": {
                            "StringEquals": { "ec2:AuthorizedService": "codebuild.amazonaws.com" },
                            "ArnLike": { "ec2:Subnet": subnet_arns }
                        }
                    }
                ],
                "Version": "2012-10-17"
            },
            "PolicyName": "cdk-harden-codebuild-vpc",
            "Roles": [ref_to(role)]
        },
        "Metadata": {
            "checkov": {
                "skip": [
                    {
                        "id": "CKV_AWS_111",
                        "comment": "CodeBuild creates and deletes its build network interfaces itself; the EC2 actions it documents for VPC builds take no resource-level scope that is known before the build."
                    }
                ]
            }
        }
    })
}

/// The inline policy with the EC2 actions of `AWSLambdaVPCAccessExecutionRole`, for a role that
/// cannot take the managed policy.
pub fn lambda_policy(role: &str) -> Value {
    json!({
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyDocument": {
                "Statement": [
                    {
                        "Sid": "LambdaVpcNetworkInterfaces",
                        "Action": LAMBDA_ENI_ACTIONS,
                        "Effect": "Allow",
                        "Resource": "*"
                    }
                ],
                "Version": "2012-10-17"
            },
            "PolicyName": "cdk-harden-lambda-vpc",
            "Roles": [ref_to(role)]
        },
        "Metadata": {
            "checkov": {
                "skip": [
                    {
                        "id": "CKV_AWS_111",
                        "comment": "The EC2 actions of the AWS managed policy AWSLambdaVPCAccessExecutionRole, which Lambda needs on network interfaces it creates itself."
                    }
                ]
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_in_the_template_are_found_by_getatt_or_ref() {
        let t = json!({"Resources": {
            "R": {"Type": "AWS::IAM::Role"},
            "P": {"Type": "AWS::IAM::Policy"}
        }, "Parameters": {"RoleArn": {"Type": "String"}}});
        assert_eq!(
            role_ref(&t, Some(&json!({"Fn::GetAtt": ["R", "Arn"]}))),
            RoleRef::InTemplate("R")
        );
        assert_eq!(
            role_ref(&t, Some(&json!({"Fn::GetAtt": "R.Arn"}))),
            RoleRef::InTemplate("R")
        );
        assert_eq!(
            role_ref(&t, Some(&json!({"Ref": "R"}))),
            RoleRef::InTemplate("R")
        );
        let arn = json!("arn:aws:iam::111111111111:role/build");
        assert_eq!(role_ref(&t, Some(&arn)), RoleRef::Imported(&arn));
        let param = json!({"Ref": "RoleArn"});
        assert_eq!(role_ref(&t, Some(&param)), RoleRef::Imported(&param));
        assert_eq!(describe_imported(&param), "the value of `RoleArn`");
        let not_role = json!({"Fn::GetAtt": ["P", "Arn"]});
        assert_eq!(role_ref(&t, Some(&not_role)), RoleRef::Imported(&not_role));
        assert_eq!(role_ref(&t, None), RoleRef::Absent);
    }

    #[test]
    fn the_managed_policy_is_recognized_in_any_form() {
        let cdk = json!({"Properties": {"ManagedPolicyArns": [lambda_managed_policy_arn()]}});
        assert!(has_lambda_vpc_policy(&cdk));
        let literal = json!({"Properties": {"ManagedPolicyArns": [
            "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"]}});
        assert!(has_lambda_vpc_policy(&literal));
        let basic = json!({"Properties": {"ManagedPolicyArns": [
            "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]}});
        assert!(!has_lambda_vpc_policy(&basic));
        assert!(can_append_managed_policy(&basic));
        let full = json!({"Properties": {"ManagedPolicyArns": vec!["x"; MANAGED_POLICY_QUOTA]}});
        assert!(!can_append_managed_policy(&full));
        let intrinsic = json!({"Properties": {"ManagedPolicyArns": {"Ref": "Arns"}}});
        assert!(!can_append_managed_policy(&intrinsic));
    }

    #[test]
    fn derived_ids_stay_within_the_limit_and_are_stable() {
        assert_eq!(
            codebuild_policy_id("BuildRoleB7C66CB2"),
            "CdkHardenCodeBuildVpcBuildRoleB7C66CB2"
        );
        let long = "R".repeat(250);
        let id = codebuild_policy_id(&long);
        assert_eq!(id.len(), 255);
        assert_eq!(id, codebuild_policy_id(&long));
        assert_ne!(id, codebuild_policy_id(&format!("{}X", "R".repeat(249))));
    }

    #[test]
    fn the_codebuild_policy_scopes_the_permission_to_codebuild_and_the_subnets() {
        let p = codebuild_policy("Role", json!(["arn:*:ec2:*:*:subnet/subnet-a"]));
        assert_eq!(p["Properties"]["Roles"], json!([{"Ref": "Role"}]));
        let statements = p["Properties"]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap();
        let actions = statements[0]["Action"].as_array().unwrap();
        for a in [
            "ec2:CreateNetworkInterface",
            "ec2:DescribeDhcpOptions",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DeleteNetworkInterface",
            "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeVpcs",
        ] {
            assert!(actions.contains(&json!(a)), "{a}");
        }
        let permission = &statements[1];
        assert_eq!(permission["Action"], "ec2:CreateNetworkInterfacePermission");
        assert_eq!(
            permission["Condition"]["StringEquals"]["ec2:AuthorizedService"],
            "codebuild.amazonaws.com"
        );
        assert_eq!(
            permission["Condition"]["ArnLike"]["ec2:Subnet"][0],
            "arn:*:ec2:*:*:subnet/subnet-a"
        );
    }
}
