//! `vpc`: every Lambda function and CodeBuild project runs in the environment's VPC, with the
//! IAM that lets it deploy.
//!
//! The targets are the selected functions and projects that have no `VpcConfig`, including
//! those CDK adds itself (custom-resource providers, singleton functions, BucketDeployment,
//! LogRetention, the CodeBuild projects of CDK Pipelines). A resource with a `VpcConfig` is left
//! alone. Lambda@Edge functions ([`edge`]) cannot run in a VPC: they are skipped with a note.
//!
//! The network comes from `vpc` in the environment's config ([`network`]); `{"ssm": …}` values
//! become SSM-typed template parameters. Each target's role gets the permissions VPC placement
//! needs, and the target `DependsOn` the grant ([`grant`]); a role that is not in the template
//! is reported, as is a custom-resource provider that now needs a network path to AWS. A
//! template with targets in an environment without `vpc` is an error naming the environment.

mod edge;
mod grant;
mod network;

use crate::transform::cfn::Field;
use crate::transform::change::Pointer;
use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::transform::cfn;
use crate::transform::{Action, Change, Context, NoteKind, Op, Proposal};
use grant::{RoleRef, LAMBDA_VPC_MANAGED_POLICY};
use network::Network;

pub struct Vpc;

const FUNCTION: &str = "AWS::Lambda::Function";
const PROJECT: &str = "AWS::CodeBuild::Project";

impl Action for Vpc {
    fn propose(&self, template: &Value, selected: &[String], ctx: &Context) -> Result<Proposal> {
        let mut proposal = Proposal::default();
        let edges = edge::functions(template);
        let mut targets = Vec::new();
        for id in selected {
            let Some(resource) = cfn::resource(template, id) else {
                continue;
            };
            let kind = resource.field("Type").and_then(Value::as_str);
            if !matches!(kind, Some(FUNCTION | PROJECT))
                || cfn::prop(resource, "VpcConfig").is_some()
            {
                continue;
            }
            if let (Some(FUNCTION), Some(why)) = (kind, edges.get(id)) {
                proposal.notes.push(ctx.note(
                    Some(id),
                    NoteKind::Skipped,
                    format!("Lambda@Edge function ({why}): CloudFront runs it at edge locations, and Lambda@Edge functions cannot be placed in a VPC; left outside"),
                ));
                proposal.changes.extend(edge::checkov_skip(id, resource));
                continue;
            }
            targets.push((id.as_str(), kind == Some(FUNCTION)));
        }
        if targets.is_empty() {
            return Ok(proposal);
        }
        let config = ctx
            .env
            .vpc
            .as_ref()
            .ok_or_else(|| ctx.missing_setting("vpc"))?;
        let mut network = Network::new(config, &ctx.environment())?;
        let backers = custom_resource_backers(template);
        let mut added = Added::default();
        for (id, is_function) in targets {
            let resource = cfn::resource(template, id).expect("targets exist");
            if is_function {
                place_function(
                    template,
                    id,
                    resource,
                    &mut network,
                    &backers,
                    &mut added,
                    &mut proposal,
                    ctx,
                )?;
            } else {
                place_project(
                    template,
                    id,
                    resource,
                    &mut network,
                    &mut added,
                    &mut proposal,
                    ctx,
                )?;
            }
            added.first_target.get_or_insert_with(|| id.to_string());
        }
        let first = added.first_target.clone().unwrap_or_default();
        for (name, definition) in network.parameters() {
            let pointer = format!("/Parameters/{name}");
            let reason = format!(
                "read the {} from SSM parameter `{}` at deploy time",
                name.trim_start_matches("CdkHarden"),
                definition["Default"].as_str().unwrap_or_default()
            );
            added.add(
                template,
                &first,
                &pointer,
                definition,
                reason,
                &mut proposal,
                ctx,
            )?;
        }
        Ok(proposal)
    }
}

/// Resources and parameters the action adds, so each is proposed once.
#[derive(Default)]
struct Added {
    pointers: Vec<String>,
    first_target: Option<String>,
}

impl Added {
    /// Proposes `value` at `pointer` unless it is there already. Something different there is an
    /// error: the target would depend on a grant or parameter that is not the one intended.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        template: &Value,
        logical_id: &str,
        pointer: &str,
        value: Value,
        reason: String,
        proposal: &mut Proposal,
        ctx: &Context,
    ) -> Result<()> {
        if self.pointers.iter().any(|p| p == pointer) {
            return Ok(());
        }
        self.pointers.push(pointer.to_string());
        match template.at(pointer) {
            None => {
                proposal.push(Change::new(logical_id, pointer, Op::AddResource, value, reason));
                Ok(())
            }
            Some(existing) if *existing == value => Ok(()),
            Some(_) => Err(Error::Transform {
                transform: ctx.doc.id.clone(),
                pointer: pointer.to_string(),
                problem: "cdk-harden adds its own definition under this name, and the template already defines something different there; rename the app's resource or parameter".into(),
            }),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn place_function(
    template: &Value,
    id: &str,
    resource: &Value,
    network: &mut Network,
    backers: &BTreeMap<String, Vec<String>>,
    added: &mut Added,
    proposal: &mut Proposal,
    ctx: &Context,
) -> Result<()> {
    proposal.push(Change::on_resource(
        id,
        "/Properties/VpcConfig",
        Op::SetIfAbsent,
        network.lambda_vpc_config(),
        "run the function in the environment's VPC",
    ));
    match grant::role_ref(template, cfn::prop(resource, "Role")) {
        RoleRef::InTemplate(role) => {
            let role_resource = cfn::resource(template, role).expect("role_ref checked it");
            if cfn::prop(role_resource, "PermissionsBoundary").is_some() {
                proposal.notes.push(ctx.note(
                    Some(role),
                    NoteKind::ActionRequired,
                    format!("execution role of `{id}` has a permissions boundary; it must allow {}, or Lambda cannot create the function's network interfaces", grant::LAMBDA_ENI_ACTIONS.join(", ")),
                ));
            }
            let grant = if grant::has_lambda_vpc_policy(role_resource) {
                role.to_string()
            } else if grant::can_append_managed_policy(role_resource) {
                proposal.push(Change::on_resource(
                    role,
                    "/Properties/ManagedPolicyArns",
                    Op::AppendUnique,
                    json!([grant::lambda_managed_policy_arn()]),
                    format!("let `{id}` manage its VPC network interfaces ({LAMBDA_VPC_MANAGED_POLICY})"),
                ));
                role.to_string()
            } else {
                let policy = grant::lambda_policy_id(role);
                added.add(
                    template,
                    &policy,
                    &format!("/Resources/{policy}"),
                    grant::lambda_policy(role),
                    format!("let `{id}` manage its VPC network interfaces (the role cannot take another managed policy)"),
                    proposal,
                    ctx,
                )?;
                policy
            };
            // The function names its role (`Fn::GetAtt`), so it already waits for a grant
            // made in the role itself; only a separate policy needs an explicit `DependsOn`.
            if grant != role {
                proposal.push(Change::on_resource(
                    id,
                    "/DependsOn",
                    Op::AppendUnique,
                    json!([grant]),
                    "create the function only after its role may manage network interfaces",
                ));
            }
        }
        RoleRef::Imported(value) => proposal.notes.push(ctx.note(
            Some(id),
            NoteKind::ActionRequired,
            format!(
                "execution role {} is not defined in this template; it must already allow {} (the AWS managed policy {LAMBDA_VPC_MANAGED_POLICY} does), or CloudFormation cannot create the function in the VPC",
                grant::describe_imported(value),
                grant::LAMBDA_ENI_ACTIONS.join(", ")
            ),
        )),
        RoleRef::Absent => {}
    }
    if let Some(resources) = backers.get(id) {
        proposal.notes.push(ctx.note(
            Some(id),
            NoteKind::ActionRequired,
            format!(
                "backs custom resource {}: in the VPC it reaches the CloudFormation response URL (S3) and the AWS APIs it calls only through a NAT gateway or VPC endpoints (an S3 gateway endpoint and interface endpoints for those APIs); without them stack operations wait until the custom resource times out",
                resources.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    Ok(())
}

fn place_project(
    template: &Value,
    id: &str,
    resource: &Value,
    network: &mut Network,
    added: &mut Added,
    proposal: &mut Proposal,
    ctx: &Context,
) -> Result<()> {
    proposal.push(Change::on_resource(
        id,
        "/Properties/VpcConfig",
        Op::SetIfAbsent,
        network.codebuild_vpc_config(),
        "run the build in the environment's VPC",
    ));
    match grant::role_ref(template, cfn::prop(resource, "ServiceRole")) {
        RoleRef::InTemplate(role) => {
            let policy = grant::codebuild_policy_id(role);
            let document = grant::codebuild_policy(role, network.subnet_arn_patterns());
            added.add(
                template,
                &policy,
                &format!("/Resources/{policy}"),
                document,
                format!("let CodeBuild create the network interfaces of VPC builds with role `{role}`"),
                proposal,
                ctx,
            )?;
            proposal.push(Change::on_resource(
                id,
                "/DependsOn",
                Op::AppendUnique,
                json!([policy]),
                "create the project only after its role may create VPC network interfaces (CodeBuild checks at creation)",
            ));
        }
        RoleRef::Imported(value) => proposal.notes.push(ctx.note(
            Some(id),
            NoteKind::ActionRequired,
            format!(
                "service role {} is not defined in this template; it must already allow {} and ec2:CreateNetworkInterfacePermission (for `codebuild.amazonaws.com`, in the configured subnets), or CodeBuild cannot run builds in the VPC",
                grant::describe_imported(value),
                grant::CODEBUILD_ENI_ACTIONS.join(", ")
            ),
        )),
        RoleRef::Absent => {}
    }
    Ok(())
}

/// Functions that back custom resources of the template (their `ServiceToken`): function →
/// custom resources, in template order.
fn custom_resource_backers(template: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, resource) in cfn::resources(template) {
        let kind = resource
            .field("Type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !(kind.starts_with("Custom::") || kind == "AWS::CloudFormation::CustomResource") {
            continue;
        }
        for target in cfn::prop(resource, "ServiceToken")
            .map(cfn::referenced_ids)
            .unwrap_or_default()
        {
            if cfn::type_of(template, &target) == Some(FUNCTION) {
                out.entry(target).or_default().push(id.clone());
            }
        }
    }
    out
}
