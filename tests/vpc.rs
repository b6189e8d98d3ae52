//! The `vpc` transform (issue 4) on the committed fixtures and on small hand-written templates:
//! every function and project in a VPC, the IAM that lets it deploy, SSM parameters, skips,
//! errors, idempotence, and the validators.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use cdk_harden::report::StackReport;
use cdk_harden::transform::NoteKind;
use serde_json::{json, Value};

const FUNCTION: &str = "AWS::Lambda::Function";
const PROJECT: &str = "AWS::CodeBuild::Project";

const CODEBUILD_ACTIONS: &[&str] = &[
    "ec2:CreateNetworkInterface",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeVpcs",
];

/// (template path, before, after) of every template of an example hardened into `out`.
fn before_after(app: &str, out: &Path, stacks: &[StackReport]) -> Vec<(String, Value, Value)> {
    stacks
        .iter()
        .map(|s| {
            let (before, after) = common::before_after(app, out, &s.template);
            (s.template.clone(), before, after)
        })
        .collect()
}

/// `DependsOn` as a list of ids.
fn depends_on(resource: &Value) -> Vec<String> {
    match &resource["DependsOn"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The role a `Role` / `ServiceRole` value names in the template.
fn role_of(template: &Value, value: &Value) -> Option<String> {
    let id = value["Fn::GetAtt"][0].as_str().or(value["Ref"].as_str())?;
    (template["Resources"][id]["Type"] == "AWS::IAM::Role").then(|| id.to_string())
}

/// Actions of the statements of a policy document that allow them.
fn allowed_actions(document: &Value) -> Vec<String> {
    let statements = match &document["Statement"] {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    statements
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| match &s["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Whether `grant` (a resource the target depends on) gives `role` the ENI permissions a
/// function (`lambda`) or a CodeBuild project needs.
fn grants_eni_permissions(template: &Value, grant: &str, role: &str, lambda: bool) -> bool {
    let resource = &template["Resources"][grant];
    if grant == role {
        // The role itself: the Lambda managed policy is attached.
        return lambda
            && resource["Properties"]["ManagedPolicyArns"]
                .as_array()
                .is_some_and(|m| {
                    m.iter()
                        .any(|p| p.to_string().contains("/AWSLambdaVPCAccessExecutionRole"))
                });
    }
    if resource["Type"] != "AWS::IAM::Policy" {
        return false;
    }
    let attached = resource["Properties"]["Roles"]
        .as_array()
        .is_some_and(|roles| roles.contains(&json!({"Ref": role})));
    let document = &resource["Properties"]["PolicyDocument"];
    let actions = allowed_actions(document);
    if !attached {
        return false;
    }
    if lambda {
        return [
            "ec2:CreateNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DeleteNetworkInterface",
        ]
        .iter()
        .all(|a| actions.iter().any(|x| x == a));
    }
    let statements = document["Statement"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let permission = statements
        .iter()
        .find(|s| s["Action"] == "ec2:CreateNetworkInterfacePermission");
    CODEBUILD_ACTIONS
        .iter()
        .all(|a| actions.iter().any(|x| x == a))
        && permission.is_some_and(|p| {
            p["Condition"]["StringEquals"]["ec2:AuthorizedService"] == "codebuild.amazonaws.com"
                && !p["Condition"]["ArnLike"]["ec2:Subnet"].is_null()
                && p["Resource"].to_string().contains(":network-interface/*")
        })
}

/// Every function and project of a hardened fixture: (template, logical id, type, resource).
fn targets(after: &Value) -> Vec<(String, String, Value)> {
    after["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, r)| r["Type"] == FUNCTION || r["Type"] == PROJECT)
        .map(|(id, r)| {
            (
                id.clone(),
                r["Type"].as_str().unwrap().to_string(),
                r.clone(),
            )
        })
        .collect()
}

#[test]
fn issue_4_every_function_and_project_is_in_a_vpc_except_lambda_at_edge() {
    let mut outside = BTreeSet::new();
    let mut placed = 0;
    for app in ["pipelines", "shapes", "secrets"] {
        let (_dir, out, outcome) = common::hardened(app);
        for (path, _, after) in before_after(app, &out, &outcome.report.clone().into_stacks()) {
            for (id, _, resource) in targets(&after) {
                if resource["Properties"]["VpcConfig"].is_null() {
                    outside.insert(format!("{app}/{path}#{id}"));
                } else {
                    placed += 1;
                }
            }
        }
    }
    assert_eq!(
        outside.into_iter().collect::<Vec<_>>(),
        ["shapes/EdgeStack.template.json#ViewerRequest2C5B6A1E"]
    );
    // 18 + 8 + 2 placed by the transform, plus the function that already was in a VPC.
    assert_eq!(placed, 29);
}

#[test]
fn issue_4_roles_in_the_template_grant_the_eni_permissions_and_resources_depend_on_the_grant() {
    let mut checked = 0;
    for app in ["pipelines", "shapes", "secrets"] {
        let (_dir, out, outcome) = common::hardened(app);
        for (path, before, after) in before_after(app, &out, &outcome.report.clone().into_stacks())
        {
            for (id, kind, resource) in targets(&after) {
                let given = before["Resources"][&id]["Properties"]["VpcConfig"].is_null()
                    && !resource["Properties"]["VpcConfig"].is_null();
                if !given {
                    continue;
                }
                let lambda = kind == FUNCTION;
                let role_value =
                    &resource["Properties"][if lambda { "Role" } else { "ServiceRole" }];
                let role = role_of(&after, role_value)
                    .unwrap_or_else(|| panic!("{app}/{path}#{id}: role not in the template"));
                let grants: Vec<String> = depends_on(&resource)
                    .into_iter()
                    .filter(|g| grants_eni_permissions(&after, g, &role, lambda))
                    .collect();
                assert!(
                    !grants.is_empty(),
                    "{app}/{path}#{id}: no DependsOn grants role `{role}` the ENI permissions; DependsOn = {:?}",
                    depends_on(&resource)
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 28);
}

#[test]
fn issue_4_pipeline_codebuild_projects_get_the_vpc_and_their_roles_the_grant() {
    let (_dir, out, _) = common::hardened("pipelines");
    let t = common::read_json(&out.join("PipelineStack.template.json"));
    let projects = common::resources_of(&t, PROJECT);
    let paths: Vec<&str> = projects
        .iter()
        .map(|(_, r)| r["Metadata"]["aws:cdk:path"].as_str().unwrap())
        .collect();
    assert!(
        paths.iter().any(|p| p.contains("/Build/Synth/")),
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p.contains("/UpdatePipeline/SelfMutation")),
        "{paths:?}"
    );
    assert_eq!(
        paths
            .iter()
            .filter(|p| p.contains("/Assets/FileAsset"))
            .count(),
        4
    );
    for (id, project) in &projects {
        // 111111111111/eu-west-1 has literal ids: written as literal arrays.
        assert_eq!(
            project["Properties"]["VpcConfig"],
            json!({
                "SecurityGroupIds": ["sg-0111111111111aaaa"],
                "Subnets": ["subnet-0111111111111aaaa", "subnet-0111111111111bbbb"],
                "VpcId": "vpc-0111111111111aaaa"
            }),
            "{id}"
        );
    }
    // The four asset projects share one role: one policy for it.
    let policies: Vec<_> = common::resources_of(&t, "AWS::IAM::Policy")
        .into_iter()
        .filter(|(id, _)| id.starts_with("CdkHardenCodeBuildVpc"))
        .collect();
    assert_eq!(policies.len(), 3, "synth, self-mutation and asset roles");
    let (_, policy) = policies
        .iter()
        .find(|(id, _)| id.as_str() == "CdkHardenCodeBuildVpcPipelineAssetsFileRole59943A77")
        .expect("the asset role's policy");
    let permission = &policy["Properties"]["PolicyDocument"]["Statement"][1];
    assert_eq!(
        permission["Condition"]["ArnLike"]["ec2:Subnet"],
        json!([
            "arn:*:ec2:*:*:subnet/subnet-0111111111111aaaa",
            "arn:*:ec2:*:*:subnet/subnet-0111111111111bbbb"
        ])
    );
    assert!(t
        .get("Parameters")
        .is_none_or(|p| p.get("CdkHardenVpcId").is_none()));
}

#[test]
fn issue_4_ssm_mode_gives_the_environment_agnostic_stack_three_typed_parameters() {
    let (_dir, out, _) = common::hardened("shapes");
    let t = common::read_json(&out.join("EnvironmentAgnosticStack.template.json"));
    let params = &t["Parameters"];
    for (name, kind, default) in [
        (
            "CdkHardenVpcId",
            "AWS::SSM::Parameter::Value<AWS::EC2::VPC::Id>",
            "/org/network/vpc-id",
        ),
        (
            "CdkHardenSubnetIds",
            "AWS::SSM::Parameter::Value<List<AWS::EC2::Subnet::Id>>",
            "/org/network/private-subnet-ids",
        ),
        (
            "CdkHardenSecurityGroupIds",
            "AWS::SSM::Parameter::Value<List<AWS::EC2::SecurityGroup::Id>>",
            "/org/network/default-security-group-ids",
        ),
    ] {
        assert_eq!(params[name]["Type"], kind, "{name}");
        assert_eq!(params[name]["Default"], default, "{name}");
    }
    let project = &t["Resources"]["ProjectC78D97AD"]["Properties"]["VpcConfig"];
    assert_eq!(
        *project,
        json!({
            "SecurityGroupIds": {"Ref": "CdkHardenSecurityGroupIds"},
            "Subnets": {"Ref": "CdkHardenSubnetIds"},
            "VpcId": {"Ref": "CdkHardenVpcId"}
        })
    );
    let function = &t["Resources"]["Function76856677"]["Properties"]["VpcConfig"];
    assert_eq!(
        *function,
        json!({"SecurityGroupIds": {"Ref": "CdkHardenSecurityGroupIds"}, "SubnetIds": {"Ref": "CdkHardenSubnetIds"}})
    );
    // The subnet condition is built from the SSM list.
    let policy = &t["Resources"]["CdkHardenCodeBuildVpcProjectRole4CCB274E"];
    let subnets = &policy["Properties"]["PolicyDocument"]["Statement"][1]["Condition"]["ArnLike"]
        ["ec2:Subnet"];
    assert!(
        subnets
            .to_string()
            .contains(r#"{"Ref":"CdkHardenSubnetIds"}"#),
        "{subnets}"
    );
}

#[test]
fn issue_4_nested_stacks_in_ssm_environments_get_their_own_parameters() {
    let (_dir, out, _) = common::hardened("pipelines");
    let t = common::read_json(&out.join(
        "assembly-PipelineStack-Prod/PipelineStackProdServiceStorageC69DD960.nested.template.json",
    ));
    let params = t["Parameters"].as_object().expect("parameters");
    let ours: Vec<&String> = params
        .keys()
        .filter(|k| k.starts_with("CdkHarden"))
        .collect();
    // Only a function: no VPC id needed.
    assert_eq!(ours, ["CdkHardenSecurityGroupIds", "CdkHardenSubnetIds"]);
}

#[test]
fn issue_4_functions_cdk_creates_get_the_vpc_and_a_network_path_note() {
    let (_dir, out, outcome) = common::hardened("shapes");
    let stack = outcome
        .report
        .stacks()
        .find(|s| s.template == "CustomResourcesStack.template.json")
        .unwrap();
    let (_, after) = common::before_after("shapes", &out, &stack.template);
    for id in [
        "AWS679f53fac002430cb0da5b7982bd22872D164C4C",
        "CustomCDKBucketDeployment8693BB64968944B69AAFB0CC9EB8756C81C01536",
        "LogRetentionaae0aa3c5b4d4f87b02d85b201efdd8aFD4BFC8A",
    ] {
        assert!(
            !after["Resources"][id]["Properties"]["VpcConfig"].is_null(),
            "{id}"
        );
        let note = stack
            .notes
            .iter()
            .find(|n| n.transform == "vpc" && n.logical_id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("{id}: no note"));
        assert_eq!(note.kind, NoteKind::ActionRequired);
        assert!(
            note.message.contains("NAT gateway or VPC endpoints"),
            "{}",
            note.message
        );
    }
}

#[test]
fn issue_4_lambda_at_edge_is_skipped_with_a_note_and_a_checkov_reason() {
    let (_dir, out, outcome) = common::hardened("shapes");
    let stack = outcome
        .report
        .stacks()
        .find(|s| s.template == "EdgeStack.template.json")
        .unwrap();
    let note = stack
        .notes
        .iter()
        .find(|n| n.transform == "vpc" && n.logical_id.as_deref() == Some("ViewerRequest2C5B6A1E"))
        .expect("a note for the edge function");
    assert_eq!(note.kind, NoteKind::Skipped);
    assert!(
        note.message.contains("Distribution830FAC52"),
        "{}",
        note.message
    );
    let (_, after) = common::before_after("shapes", &out, &stack.template);
    let function = &after["Resources"]["ViewerRequest2C5B6A1E"];
    assert!(function["Properties"]["VpcConfig"].is_null());
    assert_eq!(
        function["Metadata"]["checkov"]["skip"][0]["id"],
        "CKV_AWS_117"
    );
    // Its role is not given ENI permissions.
    let role =
        &after["Resources"]["ViewerRequestServiceRoleC92F4135"]["Properties"]["ManagedPolicyArns"];
    assert!(!role.to_string().contains("AWSLambdaVPCAccessExecutionRole"));
    assert!(!after["Parameters"].to_string().contains("CdkHarden"));
}

#[test]
fn issue_4_a_function_already_in_a_vpc_is_left_alone() {
    let (_dir, out, outcome) = common::hardened("shapes");
    let stack = outcome
        .report
        .stacks()
        .find(|s| s.template == "VpcFunctionStack.template.json")
        .unwrap();
    assert!(
        stack.changes.iter().all(|c| c.transform != "vpc"),
        "{:?}",
        stack.changes
    );
    let (before, after) = common::before_after("shapes", &out, &stack.template);
    assert_eq!(
        before["Resources"]["VpcFunctionAB45DF74"]["Properties"]["VpcConfig"],
        after["Resources"]["VpcFunctionAB45DF74"]["Properties"]["VpcConfig"]
    );
}

#[test]
fn issue_4_hardening_the_hardened_fixtures_again_changes_nothing() {
    for app in ["pipelines", "shapes", "secrets"] {
        let (_dir, out, first) = common::hardened(app);
        assert!(!common::changes_of(&first, "vpc").is_empty());
        let before = common::snapshot(&out);
        let second = common::apply_again(&out, app);
        let changes: Vec<_> = second
            .report
            .stacks()
            .flat_map(|s| s.changes.clone())
            .collect();
        assert!(changes.is_empty(), "{app}: {changes:?}");
        assert!(
            before == common::snapshot(&out),
            "{app}: the second apply rewrote files"
        );
    }
}

#[test]
fn issue_4_missing_vpc_config_exits_2_naming_the_environment() {
    common::assert_refused_without(
        "pipelines",
        "222222222222/eu-west-1",
        "vpc",
        &["222222222222/eu-west-1", "`vpc`"],
    );
}

#[test]
fn issue_4_validators_report_no_new_cfn_lint_errors_and_no_ckv_aws_117_failures() {
    for app in ["pipelines", "shapes"] {
        let (_dir, out, _) = common::hardened(app);
        let new = common::validators::new_cfn_lint_errors(&common::fixture(app), &out);
        assert!(new.is_empty(), "{app}: new cfn-lint errors: {new:#?}");
        let raw = common::validators::checkov_failures(
            &common::fixture(app),
            &["CKV_AWS_117", "CKV_AWS_111"],
        );
        assert!(
            raw.iter().any(|f| f.check == "CKV_AWS_117"),
            "{app}: the fixture has functions outside a VPC"
        );
        let failures = common::validators::checkov_failures(&out, &["CKV_AWS_117", "CKV_AWS_111"]);
        let new_failures: Vec<_> = failures.iter().filter(|f| !raw.contains(f)).collect();
        assert!(new_failures.is_empty(), "{app}: {new_failures:#?}");
        let vpc: Vec<_> = failures
            .iter()
            .filter(|f| f.check == "CKV_AWS_117")
            .collect();
        assert!(vpc.is_empty(), "{app}: {vpc:#?}");
    }
}

// Hand-written templates.

/// A one-stack assembly in a temporary directory.
fn assembly(environment: &str, template: Value) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cdk.out");
    std::fs::create_dir_all(&root).unwrap();
    let manifest = json!({
        "version": "55.0.0",
        "artifacts": {
            "Stack": {
                "type": "aws:cloudformation:stack",
                "environment": environment,
                "properties": {"templateFile": "Stack.template.json"},
                "displayName": "Stack"
            }
        }
    });
    std::fs::write(root.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(root.join("Stack.template.json"), template.to_string()).unwrap();
    (dir, root)
}

/// Runs only `vpc` over the assembly with these environments.
fn harden_vpc(
    root: &Path,
    environments: Value,
) -> cdk_harden::Result<cdk_harden::transform::Hardened> {
    let others = [
        "bucket-versioning",
        "bucket-logging",
        "kms",
        "key-rotation",
        "package-registry",
        "prod-approval",
    ];
    let config = json!({"environments": environments, "transforms": {"disable": others}});
    let config = cdk_harden::LoadedConfig::parse(
        Path::new("cdk-harden.json"),
        config.to_string().as_bytes(),
    )?;
    let registry = cdk_harden::Registry::builtin()?;
    let assembly = cdk_harden::Assembly::load(root)?;
    cdk_harden::transform::harden_stack(&assembly, 0, &config, &registry)
}

fn literal_vpc() -> Value {
    json!({"*": {"vpc": {
        "vpcId": "vpc-0123456789abcdef0",
        "subnetIds": ["subnet-0123456789abcdef0"],
        "securityGroupIds": ["sg-0123456789abcdef0"]
    }}})
}

fn lambda_role(managed: Value) -> Value {
    json!({"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Statement": [{"Action": "sts:AssumeRole", "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"}}], "Version": "2012-10-17"},
        "ManagedPolicyArns": managed
    }})
}

fn lambda(role: Value) -> Value {
    json!({"Type": "AWS::Lambda::Function", "Properties": {
        "Code": {"ZipFile": "exports.handler = async () => 1;"}, "Handler": "index.handler",
        "Runtime": "nodejs22.x", "Role": role
    }})
}

#[test]
fn issue_4_imported_roles_are_reported_and_not_granted() {
    let template = json!({
        "Parameters": {"BuildRoleArn": {"Type": "String"}},
        "Resources": {
            "Fn": lambda(json!("arn:aws:iam::111111111111:role/shared-lambda")),
            "Build": {"Type": "AWS::CodeBuild::Project", "Properties": {
                "Artifacts": {"Type": "NO_ARTIFACTS"},
                "Environment": {"ComputeType": "BUILD_GENERAL1_SMALL", "Image": "aws/codebuild/standard:7.0", "Type": "LINUX_CONTAINER"},
                "ServiceRole": {"Ref": "BuildRoleArn"},
                "Source": {"Type": "NO_SOURCE", "BuildSpec": "version: 0.2"}
            }}
        }
    });
    let (_dir, root) = assembly("aws://111111111111/eu-west-1", template);
    let h = harden_vpc(&root, literal_vpc()).unwrap();
    let resources = h.template["Resources"].as_object().unwrap();
    assert_eq!(
        resources.len(),
        2,
        "no policy added: {:?}",
        resources.keys()
    );
    assert!(!h.template["Resources"]["Fn"]["Properties"]["VpcConfig"].is_null());
    assert!(!h.template["Resources"]["Build"]["Properties"]["VpcConfig"].is_null());
    let required: Vec<_> = h
        .notes
        .iter()
        .filter(|n| n.kind == NoteKind::ActionRequired)
        .collect();
    assert_eq!(required.len(), 2, "{required:#?}");
    assert!(required
        .iter()
        .any(|n| n.logical_id.as_deref() == Some("Fn")
            && n.message
                .contains("arn:aws:iam::111111111111:role/shared-lambda")));
    assert!(required
        .iter()
        .any(|n| n.logical_id.as_deref() == Some("Build")
            && n.message.contains("BuildRoleArn")
            && n.message.contains("ec2:CreateNetworkInterfacePermission")));
}

#[test]
fn issue_4_a_role_that_cannot_take_another_managed_policy_gets_an_inline_policy() {
    let full: Vec<String> = (0..10)
        .map(|i| format!("arn:aws:iam::111111111111:policy/p{i}"))
        .collect();
    let template = json!({"Resources": {
        "Role": lambda_role(json!(full)),
        "Fn": lambda(json!({"Fn::GetAtt": ["Role", "Arn"]}))
    }});
    let (_dir, root) = assembly("aws://111111111111/eu-west-1", template);
    let h = harden_vpc(&root, literal_vpc()).unwrap();
    let t = &h.template;
    assert_eq!(
        t["Resources"]["Role"]["Properties"]["ManagedPolicyArns"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    assert_eq!(
        depends_on(&t["Resources"]["Fn"]),
        ["CdkHardenLambdaVpcRole"]
    );
    assert!(grants_eni_permissions(
        t,
        "CdkHardenLambdaVpcRole",
        "Role",
        true
    ));
}

#[test]
fn issue_4_a_codebuild_role_named_by_ref_gets_the_policy_and_a_single_depends_on_is_kept() {
    let template = json!({"Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Statement": [
            {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"}}]}}},
        "Other": {"Type": "AWS::SQS::Queue"},
        "Build": {"Type": "AWS::CodeBuild::Project", "DependsOn": "Other", "Properties": {
            "Artifacts": {"Type": "NO_ARTIFACTS"},
            "Environment": {"ComputeType": "BUILD_GENERAL1_SMALL", "Image": "aws/codebuild/standard:7.0", "Type": "LINUX_CONTAINER"},
            "ServiceRole": {"Ref": "Role"},
            "Source": {"Type": "NO_SOURCE", "BuildSpec": "version: 0.2"}
        }}
    }});
    let (_dir, root) = assembly("aws://unknown-account/unknown-region", template);
    let h = harden_vpc(&root, literal_vpc()).unwrap();
    let t = &h.template;
    assert_eq!(
        depends_on(&t["Resources"]["Build"]),
        ["Other", "CdkHardenCodeBuildVpcRole"]
    );
    assert!(grants_eni_permissions(
        t,
        "CdkHardenCodeBuildVpcRole",
        "Role",
        false
    ));
}

#[test]
fn issue_4_a_permissions_boundary_is_reported() {
    let mut role = lambda_role(json!([]));
    role["Properties"]["PermissionsBoundary"] = json!("arn:aws:iam::111111111111:policy/boundary");
    let template =
        json!({"Resources": {"Role": role, "Fn": lambda(json!({"Fn::GetAtt": ["Role", "Arn"]}))}});
    let (_dir, root) = assembly("aws://111111111111/eu-west-1", template);
    let h = harden_vpc(&root, literal_vpc()).unwrap();
    assert!(h.notes.iter().any(|n| n.kind == NoteKind::ActionRequired
        && n.logical_id.as_deref() == Some("Role")
        && n.message.contains("permissions boundary")));
    assert!(grants_eni_permissions(&h.template, "Role", "Role", true));
}

#[test]
fn issue_4_opted_out_functions_are_left_alone_and_need_no_config() {
    let mut function = lambda(json!({"Fn::GetAtt": ["Role", "Arn"]}));
    function["Metadata"] =
        json!({"cdk-harden": {"skip": [{"id": "vpc", "reason": "public webhook receiver"}]}});
    let template = json!({"Resources": {"Role": lambda_role(json!([])), "Fn": function}});
    let (_dir, root) = assembly("aws://111111111111/eu-west-1", template);
    // No vpc setting at all: nothing to place, so no error.
    let h = harden_vpc(&root, json!({})).unwrap();
    assert!(h.template["Resources"]["Fn"]["Properties"]["VpcConfig"].is_null());
    assert!(h.applied.is_empty());
    assert!(h
        .notes
        .iter()
        .any(|n| n.kind == NoteKind::OptOut && n.message.contains("public webhook receiver")));
}

#[test]
fn issue_4_a_different_definition_under_our_parameter_name_is_an_error() {
    let template = json!({
        "Parameters": {"CdkHardenSubnetIds": {"Type": "CommaDelimitedList"}},
        "Resources": {"Role": lambda_role(json!([])), "Fn": lambda(json!({"Fn::GetAtt": ["Role", "Arn"]}))}
    });
    let (_dir, root) = assembly("aws://111111111111/eu-west-1", template);
    let ssm = json!({"*": {"vpc": {
        "vpcId": {"ssm": "/net/vpc"}, "subnetIds": {"ssm": "/net/subnets"}, "securityGroupIds": {"ssm": "/net/sgs"}
    }}});
    let err = harden_vpc(&root, ssm).unwrap_err();
    let text = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(text.contains("/Parameters/CdkHardenSubnetIds"), "{text}");
}

#[test]
fn issue_4_bad_literal_ids_are_errors_naming_the_environment() {
    let template = json!({"Resources": {"Role": lambda_role(json!([])), "Fn": lambda(json!({"Fn::GetAtt": ["Role", "Arn"]}))}});
    let (_dir, root) = assembly("aws://111111111111/eu-west-1", template);
    let bad = json!({"*": {"vpc": {"vpcId": "vpc-1", "subnetIds": ["sg-1"], "securityGroupIds": ["sg-1"]}}});
    let err = harden_vpc(&root, bad).unwrap_err();
    let text = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(
        text.contains("111111111111/eu-west-1") && text.contains("vpc.subnetIds"),
        "{text}"
    );
}

/// A function already waits for its role (it names it with `Fn::GetAtt`): when the grant is in
/// the role, no redundant `DependsOn` is added (cfn-lint W3005).
#[test]
fn issue_4_a_grant_in_the_role_adds_no_redundant_depends_on() {
    let template = json!({"Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}},
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
            "Role": {"Fn::GetAtt": ["Role", "Arn"]}, "Runtime": "nodejs20.x", "Handler": "index.handler",
            "Code": {"ZipFile": "exports.handler = async () => {};"}}}
    }});
    let (_dir, root) = assembly("aws://111111111111/eu-west-1", template);
    let h = harden_vpc(&root, literal_vpc()).unwrap();
    let managed = h.template["Resources"]["Role"]["Properties"]["ManagedPolicyArns"].to_string();
    assert!(
        managed.contains("AWSLambdaVPCAccessExecutionRole"),
        "{managed}"
    );
    assert!(h.template["Resources"]["Fn"].get("DependsOn").is_none());
}
