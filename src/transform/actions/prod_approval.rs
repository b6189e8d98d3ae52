//! `prod-approval`: a manual approval before every production deployment of a pipeline.
//!
//! For each `AWS::CodePipeline::Pipeline`, the action finds the actions that deploy to
//! production: every action of a stage whose name matches `production.stages`, and every
//! action whose role (`RoleArn`, `Configuration.RoleArn`) is in a production account or whose
//! `Configuration.TemplatePath` names a stack of the assembly whose environment is a production
//! account. It then walks the pipeline in execution order (stages in order, within a stage by
//! `RunOrder`) and asks, for each production action, whether a manual approval ran before it
//! with no deployment to a non-production environment in between. Where none did, it proposes
//! one, as CDK Pipelines places a `ManualApprovalStep`: an approval action at the `RunOrder` of
//! the first ungated production action of the stage (1 when the whole stage is production), with
//! that action and every later one of the stage moved one `RunOrder` on. The stage's `Actions`
//! list is replaced as a whole (an [`Op::Upgrade`] whose record keeps the old list), with a
//! reason that names the stage and the action the approval now comes before.
//!
//! With `approval.notificationArn`, the pipeline role gets `sns:Publish` on the topic: in the
//! policy attached to it in the template, or (without one) as an inline policy of the role. A
//! pipeline role that is not in the template gets an action-required note instead.
//!
//! The action only reads; it proposes nothing for a pipeline whose production actions are all
//! gated already, which also makes a second run propose nothing.

use crate::transform::cfn::Field;
use crate::transform::change::Pointer;
use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::config::{glob_matches, Config};
use crate::error::Result;
use crate::transform::cfn;
use crate::transform::change::pointer_escape;
use crate::transform::{Action, Change, Context, NoteKind, Op, Proposal};

pub struct ProdApproval;

/// The name given to an added approval action (with a number appended if the stage already
/// has an action of that name).
pub const APPROVAL_NAME: &str = "ManualApproval";

/// The inline policy added to a pipeline role that has no policy in the template.
pub const INLINE_POLICY_NAME: &str = "CdkHardenApprovalNotifications";

impl Action for ProdApproval {
    fn propose(&self, template: &Value, selected: &[String], ctx: &Context) -> Result<Proposal> {
        let mut proposal = Proposal::default();
        if selected.is_empty() {
            return Ok(proposal);
        }
        let facts = Facts {
            config: ctx.config,
            pipeline_account: ctx.stack.environment.account.as_deref(),
            stacks: ctx
                .assembly
                .stacks
                .iter()
                .map(|s| TargetStack {
                    template_path: s.template_path.to_string(),
                    display_name: s.display_name.clone(),
                    account: s.environment.account.clone(),
                })
                .collect(),
        };
        for id in selected {
            let resource = cfn::resource(template, id).expect("selected resources exist");
            if ctx.config.production.accounts.is_empty() && ctx.config.production.stages.is_empty()
            {
                proposal.notes.push(ctx.note(
                    Some(id),
                    NoteKind::Skipped,
                    "`production` in cdk-harden.json names no accounts and no stages, so nothing counts as production; set it to gate production deployments",
                ));
                continue;
            }
            let stages = match read_stages(resource, &facts) {
                Ok(stages) => stages,
                Err(problem) => {
                    proposal
                        .notes
                        .push(ctx.note(Some(id), NoteKind::Skipped, problem));
                    continue;
                }
            };
            let insertions = plan(&stages);
            if insertions.is_empty() {
                continue;
            }
            let approval = ctx.env.approval.clone().unwrap_or_default();
            if let Some(arn) = approval.notification_arn.as_deref() {
                if !is_topic_arn(arn) {
                    return Err(ctx.invalid_setting(format!(
                        "`approval.notificationArn` is `{arn}`, which is not an SNS topic ARN (`arn:PARTITION:sns:REGION:ACCOUNT:TOPIC`)"
                    )));
                }
            }
            let configuration = approval_configuration(&approval);
            for stage in &stages {
                let here: Vec<&Insertion> = insertions
                    .iter()
                    .filter(|i| i.stage == stage.index)
                    .collect();
                if here.is_empty() {
                    continue;
                }
                let actions = resource
                    .at(&format!("/Properties/Stages/{}/Actions", stage.index))
                    .and_then(Value::as_array)
                    .expect("read_stages checked the shape");
                let new = gated_actions(actions, stage, &here, &configuration);
                if let Some(late) = new
                    .iter()
                    .filter_map(|a| a.field("RunOrder").and_then(Value::as_u64))
                    .find(|&r| r > MAX_RUN_ORDER)
                {
                    proposal.notes.push(ctx.note(
                        Some(id),
                        NoteKind::ActionRequired,
                        format!(
                            "{}: no approval added: moving the stage's actions one step later would give RunOrder {late}, and CodePipeline allows at most {MAX_RUN_ORDER}; add the approval in the app",
                            stage.name
                        ),
                    ));
                    continue;
                }
                if new.len() > MAX_ACTIONS {
                    proposal.notes.push(ctx.note(
                        Some(id),
                        NoteKind::ActionRequired,
                        format!(
                            "{}: no approval added: the stage would have {} actions, and CodePipeline allows at most {MAX_ACTIONS} in a stage; add the approval in the app, in a stage of its own",
                            stage.name,
                            new.len()
                        ),
                    ));
                    continue;
                }
                proposal.push(Change::on_resource(
                    id,
                    &format!("/Properties/Stages/{}/Actions", stage.index),
                    Op::Upgrade,
                    Value::Array(new),
                    reason(stage, &here),
                ));
            }
            if let Some(topic) = &approval.notification_arn {
                match publish_grant(template, resource, topic) {
                    Ok(change) => proposal.push(change),
                    Err(role) => proposal.notes.push(ctx.note(
                        Some(id),
                        NoteKind::ActionRequired,
                        format!(
                            "the pipeline role {role} is not in this template: grant it `sns:Publish` on `{topic}` so the manual approval can notify the approvers"
                        ),
                    )),
                }
            }
        }
        Ok(proposal)
    }
}

/// What the action knows beyond the template: the config and the assembly's stacks.
struct Facts<'a> {
    config: &'a Config,
    /// The pipeline stack's account, for `AWS::AccountId` in role ARNs.
    pipeline_account: Option<&'a str>,
    stacks: Vec<TargetStack>,
}

/// A stack a CloudFormation action may deploy.
struct TargetStack {
    /// Relative to the assembly root, as a `TemplatePath` names it after the artifact.
    template_path: String,
    display_name: String,
    account: Option<String>,
}

/// One pipeline stage as the gate analysis sees it.
#[derive(Debug, Clone, PartialEq)]
struct Stage {
    /// Index in `Properties.Stages`.
    index: usize,
    name: String,
    actions: Vec<Act>,
}

/// One action of a stage.
#[derive(Debug, Clone, PartialEq)]
struct Act {
    name: String,
    /// `RunOrder`, 1 when absent.
    run_order: u64,
    category: String,
    /// Manual approval (`Category: Approval, Provider: Manual`).
    approval: bool,
    /// Why the action deploys to production, if it does.
    production: Option<Why>,
    /// `Configuration.StackName`, for the review.
    stack_name: Option<String>,
}

/// Why an action counts as production.
#[derive(Debug, Clone, PartialEq, Default)]
struct Why {
    /// The `production.stages` glob its stage name matches.
    glob: Option<String>,
    /// The production account it deploys into, and how that was read.
    account: Option<(String, String)>,
}

impl Why {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(glob) = &self.glob {
            parts.push(format!("stage name matches `{glob}`"));
        }
        if let Some((account, via)) = &self.account {
            parts.push(format!("{via} in production account {account}"));
        }
        parts.join(", ")
    }
}

/// Where an approval goes: before the actions at `run_order` (original numbering) of a stage.
#[derive(Debug, Clone, PartialEq)]
struct Insertion {
    stage: usize,
    run_order: u64,
    /// The first ungated production action at that `RunOrder`, for the review.
    before: Act,
}

/// Reads the stages of a pipeline; an error is the note explaining why it cannot be read.
fn read_stages(pipeline: &Value, facts: &Facts) -> std::result::Result<Vec<Stage>, String> {
    let Some(stages) = cfn::prop(pipeline, "Stages").and_then(Value::as_array) else {
        return Err(
            "`Stages` is not a literal list; cannot tell where production deployments are".into(),
        );
    };
    let mut out = Vec::new();
    for (index, stage) in stages.iter().enumerate() {
        let name = stage.field("Name").and_then(Value::as_str).ok_or_else(|| {
            format!("`Stages/{index}/Name` is not a literal string; cannot tell whether the stage is production")
        })?;
        let glob = facts
            .config
            .production
            .stages
            .iter()
            .find(|g| glob_matches(g, name))
            .cloned();
        let Some(actions) = stage.field("Actions").and_then(Value::as_array) else {
            return Err(format!("`Stages/{index}/Actions` is not a literal list"));
        };
        let mut acts = Vec::new();
        for (i, action) in actions.iter().enumerate() {
            let at = format!("Stages/{index}/Actions/{i}");
            let name = action
                .field("Name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("`{at}/Name` is not a literal string"))?;
            let run_order = match action.field("RunOrder") {
                None => 1,
                Some(v) => read_run_order(v).ok_or_else(|| {
                    format!("`{at}/RunOrder` is not a literal positive number; cannot tell the order of actions")
                })?,
            };
            let type_id = |key: &str| {
                action
                    .at(&format!("/ActionTypeId/{key}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let category = type_id("Category");
            let approval = category == "Approval" && type_id("Provider") == "Manual";
            let production = if approval || category == "Source" {
                None
            } else {
                let account = production_account(action, facts);
                (glob.is_some() || account.is_some()).then(|| Why {
                    glob: glob.clone(),
                    account,
                })
            };
            acts.push(Act {
                name: name.to_string(),
                run_order,
                category,
                approval,
                production,
                stack_name: action
                    .at("/Configuration/StackName")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
        }
        out.push(Stage {
            index,
            name: name.to_string(),
            actions: acts,
        });
    }
    Ok(out)
}

/// A `RunOrder`: a positive integer, or a string holding one.
fn read_run_order(value: &Value) -> Option<u64> {
    let n = match value {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (n >= 1).then_some(n)
}

/// The production account an action deploys into, with how it was read.
fn production_account(action: &Value, facts: &Facts) -> Option<(String, String)> {
    let is_prod = |account: &str| facts.config.is_production_account(account);
    for (pointer, via) in [
        ("/RoleArn", "action role"),
        ("/Configuration/RoleArn", "CloudFormation role"),
    ] {
        if let Some(arn) = action.at(pointer) {
            if let Some(account) = arn_account(&literal_text(arn, facts.pipeline_account)) {
                if is_prod(&account) {
                    return Some((account, via.to_string()));
                }
            }
        }
    }
    let path = action
        .at("/Configuration/TemplatePath")
        .and_then(Value::as_str)?;
    let (_artifact, file) = path.split_once("::")?;
    let stack = facts.stacks.iter().find(|s| s.template_path == file)?;
    let account = stack.account.as_deref()?;
    is_prod(account).then(|| {
        (
            account.to_string(),
            format!("stack `{}`", stack.display_name),
        )
    })
}

/// The text of a string built with intrinsics, as far as it is literal: `Fn::Join` and
/// `Fn::Sub` are expanded, `AWS::Partition` reads `aws`, `AWS::AccountId` the pipeline's
/// account when known; anything else becomes `?`.
fn literal_text(value: &Value, account: Option<&str>) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map) if map.len() == 1 => {
            if let Some(target) = cfn::ref_target(value) {
                return pseudo(target, account);
            }
            if let Some(Value::Array(parts)) = map.field("Fn::Join") {
                let delimiter = parts.first().and_then(Value::as_str).unwrap_or("?");
                return match parts.get(1) {
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|i| literal_text(i, account))
                        .collect::<Vec<_>>()
                        .join(delimiter),
                    _ => "?".into(),
                };
            }
            if let Some(sub) = map.field("Fn::Sub") {
                let (text, vars) = match sub {
                    Value::String(s) => (s.as_str(), None),
                    Value::Array(parts) => match parts.first().and_then(Value::as_str) {
                        Some(s) => (s, parts.get(1).and_then(Value::as_object)),
                        None => return "?".into(),
                    },
                    _ => return "?".into(),
                };
                return substitute(text, vars, account);
            }
            "?".into()
        }
        _ => "?".into(),
    }
}

fn pseudo(name: &str, account: Option<&str>) -> String {
    match (name, account) {
        ("AWS::Partition", _) => "aws".into(),
        ("AWS::AccountId", Some(a)) => a.into(),
        _ => "?".into(),
    }
}

/// Expands `${X}` in an `Fn::Sub` string.
fn substitute(text: &str, vars: Option<&Map<String, Value>>, account: Option<&str>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        if let Some(literal) = name.strip_prefix('!') {
            out.push_str("${");
            out.push_str(literal);
            out.push('}');
        } else if let Some(v) = vars.and_then(|m| m.get(name)) {
            out.push_str(&literal_text(v, account));
        } else {
            out.push_str(&pseudo(name, account));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The account of an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:…`), when it is 12 digits.
fn arn_account(arn: &str) -> Option<String> {
    let mut parts = arn.split(':');
    if parts.next()? != "arn" {
        return None;
    }
    let account = parts.nth(3)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .then(|| account.to_string())
}

/// Where approvals are missing, walking the pipeline in execution order.
///
/// A production action is gated when a manual approval finished before it started (in an
/// earlier stage, or earlier in its stage by `RunOrder`) and no deployment to a non-production
/// environment ran in between: an approval before Dev and UAT says nothing about what UAT
/// showed. An approval running in parallel (same `RunOrder`) gates nothing. Where a production
/// action is not gated, an approval is planned before its `RunOrder` group, and it gates what
/// follows by the same rule.
fn plan(stages: &[Stage]) -> Vec<Insertion> {
    let mut out = Vec::new();
    let mut approved = false;
    for stage in stages {
        let orders: BTreeSet<u64> = stage.actions.iter().map(|a| a.run_order).collect();
        for order in orders {
            let group: Vec<&Act> = stage
                .actions
                .iter()
                .filter(|a| a.run_order == order)
                .collect();
            if !approved {
                if let Some(first) = group.iter().find(|a| a.production.is_some()) {
                    out.push(Insertion {
                        stage: stage.index,
                        run_order: order,
                        before: (*first).clone(),
                    });
                    approved = true;
                }
            }
            let elsewhere = group
                .iter()
                .any(|a| a.category == "Deploy" && a.production.is_none());
            if elsewhere {
                approved = false;
            } else if group.iter().any(|a| a.approval) {
                approved = true;
            }
        }
    }
    out
}

/// The `Configuration` of an added approval, from the environment's `approval` settings.
fn approval_configuration(approval: &crate::config::ApprovalConfig) -> Option<Value> {
    let mut map = Map::new();
    if let Some(arn) = &approval.notification_arn {
        map.insert("NotificationArn".into(), json!(arn));
    }
    if let Some(comment) = &approval.comment {
        map.insert("CustomData".into(), json!(comment));
    }
    if let Some(link) = &approval.external_entity_link {
        map.insert("ExternalEntityLink".into(), json!(link));
    }
    (!map.is_empty()).then_some(Value::Object(map))
}

/// The highest RunOrder CodePipeline accepts.
const MAX_RUN_ORDER: u64 = 999;

/// The most actions CodePipeline allows in one stage.
const MAX_ACTIONS: usize = 50;

/// The stage's actions with the approvals added and later actions moved on.
///
/// An action at original `RunOrder` `r` moves on by the number of approvals inserted at or
/// before `r`; the approval planned at `p` gets `p` plus the number planned before it. Each
/// approval is placed in the list just before the first action it precedes. The caller
/// refuses the result when a RunOrder passes [`MAX_RUN_ORDER`].
fn gated_actions(
    actions: &[Value],
    stage: &Stage,
    insertions: &[&Insertion],
    configuration: &Option<Value>,
) -> Vec<Value> {
    let points: Vec<u64> = insertions.iter().map(|i| i.run_order).collect();
    let mut taken: BTreeSet<String> = stage.actions.iter().map(|a| a.name.clone()).collect();
    let mut approvals: Vec<(usize, Value)> = Vec::new();
    for (n, point) in points.iter().enumerate() {
        let name = std::iter::once(APPROVAL_NAME.to_string())
            .chain((2..).map(|k| format!("{APPROVAL_NAME}{k}")))
            .find(|c| !taken.contains(c))
            .expect("some name is free");
        taken.insert(name.clone());
        let mut action = Map::new();
        action.insert(
            "ActionTypeId".into(),
            json!({"Category": "Approval", "Owner": "AWS", "Provider": "Manual", "Version": "1"}),
        );
        if let Some(c) = configuration {
            action.insert("Configuration".into(), c.clone());
        }
        action.insert("Name".into(), json!(name));
        action.insert("RunOrder".into(), json!(point.saturating_add(n as u64)));
        let position = stage
            .actions
            .iter()
            .position(|a| a.run_order >= *point)
            .expect("an insertion precedes an action of the stage");
        approvals.push((position, Value::Object(action)));
    }
    let mut out = Vec::new();
    for (i, (action, act)) in actions.iter().zip(&stage.actions).enumerate() {
        for (_, approval) in approvals.iter().filter(|(p, _)| *p == i) {
            out.push(approval.clone());
        }
        let shift = points.iter().filter(|p| **p <= act.run_order).count() as u64;
        if shift == 0 {
            out.push(action.clone());
        } else {
            let mut moved = action.clone();
            moved["RunOrder"] = json!(act.run_order.saturating_add(shift));
            out.push(moved);
        }
    }
    out
}

/// The review line: the stage, the action the approval now precedes, and why it is production,
/// e.g. "Prod: manual approval added before Prepare (stack `Prod-Service`; stage name matches
/// `Prod*`); the stage's actions from RunOrder 1 on run one step later".
fn reason(stage: &Stage, insertions: &[&Insertion]) -> String {
    let each: Vec<String> = insertions
        .iter()
        .map(|i| {
            let mut details = Vec::new();
            if let Some(s) = &i.before.stack_name {
                details.push(format!("stack `{s}`"));
            }
            if let Some(why) = &i.before.production {
                details.push(why.describe());
            }
            format!(
                "manual approval added before {} ({}); the stage's actions from RunOrder {} on run one step later",
                i.before.name,
                details.join("; "),
                i.run_order
            )
        })
        .collect();
    format!("{}: {}", stage.name, each.join("; "))
}

/// `sns:Publish` on the topic for the pipeline role: appended to the policy attached to the role
/// in the template, or an inline policy of the role. `Err` names a role that is not in the
/// template.
fn publish_grant(
    template: &Value,
    pipeline: &Value,
    topic: &str,
) -> std::result::Result<Change, String> {
    let role_arn = cfn::prop(pipeline, "RoleArn");
    let role = role_arn
        .and_then(cfn::getatt_target)
        .filter(|(id, attr)| *attr == "Arn" && cfn::type_of(template, id) == Some("AWS::IAM::Role"))
        .map(|(id, _)| id.to_string());
    let Some(role) = role else {
        let shown = match role_arn {
            Some(Value::String(s)) => format!("`{s}`"),
            Some(other) => format!("`{other}`"),
            None => "(none given)".into(),
        };
        return Err(shown);
    };
    let statement = json!({
        "Action": "sns:Publish",
        "Effect": "Allow",
        "Resource": topic
    });
    let reason =
        format!("let the pipeline role publish the manual approval's notifications to `{topic}`");
    let policy = cfn::resources_of(template, "AWS::IAM::Policy").find(|(_, p)| {
        cfn::prop(p, "Roles")
            .and_then(Value::as_array)
            .is_some_and(|roles| {
                roles
                    .iter()
                    .any(|r| cfn::ref_target(r) == Some(role.as_str()))
            })
    });
    Ok(match policy {
        Some((policy, _)) => Change::new(
            policy.clone(),
            format!(
                "/Resources/{}/Properties/PolicyDocument/Statement",
                pointer_escape(policy)
            ),
            Op::AppendUnique,
            json!([statement]),
            reason,
        ),
        None => Change::on_resource(
            &role,
            "/Properties/Policies",
            Op::AppendUnique,
            json!([{
                "PolicyDocument": { "Statement": [statement], "Version": "2012-10-17" },
                "PolicyName": INLINE_POLICY_NAME
            }]),
            reason,
        ),
    })
}

/// Whether `arn` is an SNS topic's ARN: `arn:PARTITION:sns:REGION:ACCOUNT:TOPIC`, the account
/// 12 digits and the topic a name SNS allows (letters, digits, `-`, `_`, at most 256; `.fifo`
/// at the end of a FIFO topic).
fn is_topic_arn(arn: &str) -> bool {
    let Some(arn) = crate::transform::cfn::Arn::regional(arn) else {
        return false;
    };
    let topic = arn.resource;
    let name = topic.strip_suffix(".fifo").unwrap_or(topic);
    arn.partition.starts_with("aws")
        && arn.service == "sns"
        && (1..=256).contains(&topic.len())
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    #[test]
    fn issue_6_notification_arns_are_sns_topic_arns() {
        for good in [
            "arn:aws:sns:eu-west-1:111111111111:production-approvals",
            "arn:aws-cn:sns:cn-north-1:111111111111:t_1.fifo",
        ] {
            assert!(is_topic_arn(good), "{good}");
        }
        for bad in [
            "nope",
            "arn:aws:sqs:eu-west-1:111111111111:q",
            "arn:aws:sns:eu-west-1:1111:t",
            "arn:aws:sns:eu-west-1:111111111111:",
            "arn:aws:sns:eu-west-1:111111111111:a:b",
            "arn:aws:sns:eu-west-1:111111111111:bad name",
        ] {
            assert!(!is_topic_arn(bad), "{bad}");
        }
    }

    use super::*;
    use crate::config::Production;

    fn config(accounts: &[&str], stages: &[&str]) -> Config {
        Config {
            production: Production {
                accounts: accounts.iter().map(|s| s.to_string()).collect(),
                stages: stages.iter().map(|s| s.to_string()).collect(),
            },
            ..Default::default()
        }
    }

    fn facts(config: &Config) -> Facts<'_> {
        Facts {
            config,
            pipeline_account: Some("111111111111"),
            stacks: vec![TargetStack {
                template_path: "assembly-App-Prod/AppProdService.template.json".into(),
                display_name: "App/Prod/Service".into(),
                account: Some("444444444444".into()),
            }],
        }
    }

    fn deploy(name: &str, run_order: u64, role: &str) -> Value {
        json!({
            "ActionTypeId": {"Category": "Deploy", "Owner": "AWS", "Provider": "CloudFormation", "Version": "1"},
            "Configuration": {"StackName": "S", "ActionMode": "CHANGE_SET_EXECUTE", "ChangeSetName": "C"},
            "Name": name,
            "RoleArn": role,
            "RunOrder": run_order
        })
    }

    fn approval(name: &str, run_order: u64) -> Value {
        json!({
            "ActionTypeId": {"Category": "Approval", "Owner": "AWS", "Provider": "Manual", "Version": "1"},
            "Name": name,
            "RunOrder": run_order
        })
    }

    fn role(account: &str) -> String {
        format!("arn:aws:iam::{account}:role/deploy")
    }

    fn pipeline(stages: Value) -> Value {
        json!({"Type": "AWS::CodePipeline::Pipeline", "Properties": {"Stages": stages}})
    }

    fn insertions(pipeline: &Value, config: &Config) -> Vec<(usize, u64, String)> {
        let stages = read_stages(pipeline, &facts(config)).unwrap();
        plan(&stages)
            .into_iter()
            .map(|i| (i.stage, i.run_order, i.before.name))
            .collect()
    }

    #[test]
    fn accounts_are_read_from_literal_and_joined_arns() {
        assert_eq!(
            arn_account("arn:aws:iam::444444444444:role/x").as_deref(),
            Some("444444444444")
        );
        assert_eq!(arn_account("arn:aws:iam::?:role/x"), None);
        assert_eq!(arn_account("not-an-arn"), None);
        let joined = json!({"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::444444444444:role/cdk-deploy"]]});
        assert_eq!(
            arn_account(&literal_text(&joined, None)).as_deref(),
            Some("444444444444")
        );
        let own = json!({"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/r"});
        assert_eq!(
            arn_account(&literal_text(&own, Some("444444444444"))).as_deref(),
            Some("444444444444")
        );
        assert_eq!(arn_account(&literal_text(&own, None)), None);
        let getatt = json!({"Fn::GetAtt": ["Role", "Arn"]});
        assert_eq!(
            arn_account(&literal_text(&getatt, Some("444444444444"))),
            None
        );
        let vars = json!({"Fn::Sub": ["arn:aws:iam::${Acct}:role/r", {"Acct": "444444444444"}]});
        assert_eq!(
            arn_account(&literal_text(&vars, None)).as_deref(),
            Some("444444444444")
        );
    }

    #[test]
    fn production_is_a_stage_name_an_account_or_a_stack_of_the_assembly() {
        let c = config(&["444444444444"], &["Prod*"]);
        let p = pipeline(json!([
            {"Name": "UAT", "Actions": [deploy("Deploy", 1, &role("333333333333"))]},
            {"Name": "Release", "Actions": [deploy("Deploy", 1, &role("444444444444"))]},
            {"Name": "Blue", "Actions": [{
                "ActionTypeId": {"Category": "Deploy", "Owner": "AWS", "Provider": "CloudFormation", "Version": "1"},
                "Configuration": {"TemplatePath": "Synth_Output::assembly-App-Prod/AppProdService.template.json"},
                "Name": "Prepare"
            }]},
            {"Name": "Production", "Actions": [deploy("Deploy", 1, &role("555555555555"))]}
        ]));
        let stages = read_stages(&p, &facts(&c)).unwrap();
        assert_eq!(stages[0].actions[0].production, None);
        assert_eq!(
            stages[1].actions[0].production.as_ref().unwrap().describe(),
            "action role in production account 444444444444"
        );
        assert_eq!(
            stages[2].actions[0].production.as_ref().unwrap().describe(),
            "stack `App/Prod/Service` in production account 444444444444"
        );
        assert_eq!(stages[2].actions[0].run_order, 1, "a missing RunOrder is 1");
        assert_eq!(
            stages[3].actions[0].production.as_ref().unwrap().describe(),
            "stage name matches `Prod*`"
        );
    }

    #[test]
    fn the_gate_goes_before_the_first_production_action_only() {
        let c = config(&["444444444444"], &["Prod*"]);
        let p = pipeline(json!([
            {"Name": "Dev", "Actions": [deploy("Deploy", 1, &role("222222222222"))]},
            {"Name": "UAT", "Actions": [deploy("Deploy", 1, &role("333333333333"))]},
            {"Name": "Prod", "Actions": [deploy("Prepare", 1, &role("444444444444")), deploy("Deploy", 2, &role("444444444444"))]}
        ]));
        assert_eq!(insertions(&p, &c), [(2, 1, "Prepare".to_string())]);
    }

    #[test]
    fn existing_gates_count_in_the_stage_or_an_earlier_one() {
        let c = config(&["444444444444"], &["Prod*"]);
        let same_stage = pipeline(json!([
            {"Name": "UAT", "Actions": [deploy("Deploy", 1, &role("333333333333"))]},
            {"Name": "Prod", "Actions": [approval("Promote", 1), deploy("Prepare", 2, &role("444444444444")), deploy("Deploy", 3, &role("444444444444"))]}
        ]));
        assert!(insertions(&same_stage, &c).is_empty());
        let earlier_stage = pipeline(json!([
            {"Name": "UAT", "Actions": [deploy("Deploy", 1, &role("333333333333"))]},
            {"Name": "Approve", "Actions": [approval("Promote", 1)]},
            {"Name": "Prod", "Actions": [deploy("Prepare", 1, &role("444444444444"))]},
            {"Name": "ProdUS", "Actions": [deploy("Prepare", 1, &role("444444444444"))]}
        ]));
        assert!(insertions(&earlier_stage, &c).is_empty());
    }

    #[test]
    fn an_approval_that_does_not_gate_is_not_counted() {
        let c = config(&["444444444444"], &[]);
        // Before UAT: UAT deploys after it.
        let before_uat = pipeline(json!([
            {"Name": "Approve", "Actions": [approval("Promote", 1)]},
            {"Name": "UAT", "Actions": [deploy("Deploy", 1, &role("333333333333"))]},
            {"Name": "Release", "Actions": [deploy("Deploy", 1, &role("444444444444"))]}
        ]));
        assert_eq!(insertions(&before_uat, &c), [(2, 1, "Deploy".to_string())]);
        // In parallel with the production action.
        let parallel = pipeline(json!([
            {"Name": "Release", "Actions": [approval("Promote", 1), deploy("Deploy", 1, &role("444444444444"))]}
        ]));
        assert_eq!(insertions(&parallel, &c), [(0, 1, "Deploy".to_string())]);
        // A production stage later in a mixed stage: only its RunOrder group is gated.
        let mixed = pipeline(json!([
            {"Name": "Wave", "Actions": [
                deploy("UAT.Deploy", 1, &role("333333333333")),
                deploy("Prod.Deploy", 2, &role("444444444444"))
            ]}
        ]));
        assert_eq!(insertions(&mixed, &c), [(0, 2, "Prod.Deploy".to_string())]);
    }

    #[test]
    fn inserting_shifts_later_actions_and_keeps_names_unique() {
        let c = config(&["444444444444"], &[]);
        let p = pipeline(json!([
            {"Name": "Wave", "Actions": [
                deploy("UAT.Deploy", 1, &role("333333333333")),
                deploy("ManualApproval", 2, &role("444444444444")),
                {
                    "ActionTypeId": {"Category": "Test", "Owner": "AWS", "Provider": "CodeBuild", "Version": "1"},
                    "Name": "Smoke"
                }
            ]}
        ]));
        let stages = read_stages(&p, &facts(&c)).unwrap();
        let planned = plan(&stages);
        let refs: Vec<&Insertion> = planned.iter().collect();
        let actions = p
            .at("/Properties/Stages/0/Actions")
            .unwrap()
            .as_array()
            .unwrap();
        let out = gated_actions(
            actions,
            &stages[0],
            &refs,
            &Some(json!({"CustomData": "ok?"})),
        );
        let summary: Vec<(String, Value)> = out
            .iter()
            .map(|a| {
                (
                    a["Name"].as_str().unwrap().to_string(),
                    a.field("RunOrder").cloned().unwrap_or(Value::Null),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("UAT.Deploy".to_string(), json!(1)),
                ("ManualApproval2".to_string(), json!(2)),
                ("ManualApproval".to_string(), json!(3)),
                // RunOrder absent means 1: it runs with UAT.Deploy and is not moved.
                ("Smoke".to_string(), Value::Null),
            ]
        );
        assert_eq!(out[1]["Configuration"], json!({"CustomData": "ok?"}));
        assert_eq!(out[1]["ActionTypeId"]["Category"], "Approval");
        // The result is gated: a second plan finds nothing.
        let again = pipeline(json!([{"Name": "Wave", "Actions": out}]));
        assert!(insertions(&again, &c).is_empty());
    }

    #[test]
    fn the_reason_names_stage_action_and_why() {
        let c = config(&["444444444444"], &["Prod*"]);
        let p = pipeline(json!([
            {"Name": "Prod", "Actions": [deploy("Service.Prepare", 1, &role("444444444444")), deploy("Service.Deploy", 2, &role("444444444444"))]}
        ]));
        let stages = read_stages(&p, &facts(&c)).unwrap();
        let planned = plan(&stages);
        let text = reason(&stages[0], &planned.iter().collect::<Vec<_>>());
        assert_eq!(
            text,
            "Prod: manual approval added before Service.Prepare (stack `S`; stage name matches `Prod*`, action role in production account 444444444444); the stage's actions from RunOrder 1 on run one step later"
        );
    }

    #[test]
    fn unreadable_pipelines_are_explained() {
        let c = config(&["444444444444"], &[]);
        let p = json!({"Properties": {"Stages": {"Fn::If": ["C", [], []]}}});
        assert!(read_stages(&p, &facts(&c))
            .unwrap_err()
            .contains("not a literal list"));
        let p =
            pipeline(json!([{"Name": "S", "Actions": [{"Name": "A", "RunOrder": {"Ref": "N"}}]}]));
        assert!(read_stages(&p, &facts(&c))
            .unwrap_err()
            .contains("RunOrder"));
    }

    #[test]
    fn publish_is_granted_to_the_pipeline_role() {
        let template = json!({"Resources": {
            "Role": {"Type": "AWS::IAM::Role"},
            "Policy": {"Type": "AWS::IAM::Policy", "Properties": {"Roles": [{"Ref": "Role"}], "PolicyDocument": {"Statement": []}}},
            "P": {"Type": "AWS::CodePipeline::Pipeline", "Properties": {"RoleArn": {"Fn::GetAtt": ["Role", "Arn"]}}}
        }});
        let change = publish_grant(
            &template,
            &template["Resources"]["P"],
            "arn:aws:sns:eu-west-1:1:t",
        )
        .unwrap();
        assert_eq!(
            change.pointer,
            "/Resources/Policy/Properties/PolicyDocument/Statement"
        );
        assert_eq!(change.value[0]["Action"], "sns:Publish");

        let no_policy = json!({"Resources": {
            "Role": {"Type": "AWS::IAM::Role"},
            "P": {"Type": "AWS::CodePipeline::Pipeline", "Properties": {"RoleArn": {"Fn::GetAtt": ["Role", "Arn"]}}}
        }});
        let change = publish_grant(&no_policy, &no_policy["Resources"]["P"], "arn:t").unwrap();
        assert_eq!(change.pointer, "/Resources/Role/Properties/Policies");
        assert_eq!(change.value[0]["PolicyName"], INLINE_POLICY_NAME);

        let imported = json!({"Resources": {
            "P": {"Type": "AWS::CodePipeline::Pipeline", "Properties": {"RoleArn": "arn:aws:iam::1:role/p"}}
        }});
        let err = publish_grant(&imported, &imported["Resources"]["P"], "arn:t").unwrap_err();
        assert_eq!(err, "`arn:aws:iam::1:role/p`");
    }
}
