//! Issue 6: a manual approval before every production deployment, and the check that CDK
//! Pipelines' synth step runs cdk-harden so self-mutation cannot undo it.

mod common;

use std::path::Path;

use cdk_harden::findings::Severity;
use cdk_harden::{Mode, Options, Outcome};
use common::validators::new_cfn_lint_errors;
use common::*;
use serde_json::{json, Value};

const PIPELINE_TEMPLATE: &str = "PipelineStack.template.json";
const PIPELINE: &str = "Pipeline9850B417";
const SYNTH_PROJECT: &str = "PipelineBuildSynthCdkBuildProject6BEFA8E6";
const RULE: &str = "pipeline-synth-not-hardened";

fn is_approval(action: &Value) -> bool {
    action["ActionTypeId"]["Category"] == "Approval"
        && action["ActionTypeId"]["Provider"] == "Manual"
}

fn run_order(action: &Value) -> u64 {
    action
        .get("RunOrder")
        .map(|r| r.as_u64().unwrap())
        .unwrap_or(1)
}

/// The stage of a pipeline with this name.
fn stage<'a>(pipeline: &'a Value, name: &str) -> &'a Value {
    pipeline["Properties"]["Stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Name"] == name)
        .unwrap_or_else(|| panic!("no stage {name}"))
}

fn approvals(stage: &Value) -> Vec<&Value> {
    stage["Actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| is_approval(a))
        .collect()
}

/// The approval gating the stage: exactly one, running before every other action.
fn gate(stage: &Value) -> &Value {
    let found = approvals(stage);
    assert_eq!(found.len(), 1, "{}: {found:#?}", stage["Name"]);
    let gate = found[0];
    for other in stage["Actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| !is_approval(a))
    {
        assert!(
            run_order(gate) < run_order(other),
            "{}: the approval (RunOrder {}) must come before {} (RunOrder {})",
            stage["Name"],
            run_order(gate),
            other["Name"],
            run_order(other)
        );
    }
    gate
}

fn run(root: &Path, config: &Path, mode: Mode) -> Outcome {
    cdk_harden::run(&Options {
        assembly: root.to_path_buf(),
        config: Some(config.to_path_buf()),
        out: None,
        mode,
    })
    .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
}

/// Rewrites one template of an assembly on disk.
fn edit(root: &Path, template: &str, f: impl FnOnce(&mut Value)) {
    let path = root.join(template);
    let mut value = read_json(&path);
    f(&mut value);
    std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

#[test]
fn issue_6_cdk_pipelines_prod_is_gated_once_dev_and_uat_are_not() {
    // The raw fixture has no approval anywhere: the test can see one being added.
    let raw = read_json(&fixture("pipelines").join(PIPELINE_TEMPLATE));
    assert!(approvals(stage(&raw["Resources"][PIPELINE], "Prod")).is_empty());

    let (_dir, root, _) = hardened("pipelines");
    let template = read_json(&root.join(PIPELINE_TEMPLATE));
    let pipeline = &template["Resources"][PIPELINE];

    let prod = stage(pipeline, "Prod");
    let gate = gate(prod);
    assert_eq!(gate["Name"], "ManualApproval");
    assert_eq!(gate["RunOrder"], 1);
    assert_eq!(
        gate["ActionTypeId"],
        json!({"Category": "Approval", "Owner": "AWS", "Provider": "Manual", "Version": "1"})
    );
    assert!(
        gate.get("RoleArn").is_none(),
        "approvals run as the pipeline role"
    );
    // The pipeline stack's environment (111111111111/eu-west-1) sets `approval`.
    assert_eq!(
        gate["Configuration"],
        json!({
            "NotificationArn": "arn:aws:sns:eu-west-1:111111111111:production-approvals",
            "CustomData": "UAT signed off? Check the release ticket before approving.",
            "ExternalEntityLink": "https://wiki.example.com/release-checklist"
        })
    );
    // Prepare then Deploy, each one step later, otherwise untouched.
    let raw_prod = stage(&raw["Resources"][PIPELINE], "Prod");
    let moved: Vec<(String, u64)> = prod["Actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| !is_approval(a))
        .map(|a| (a["Name"].as_str().unwrap().to_string(), run_order(a)))
        .collect();
    assert_eq!(
        moved,
        [("Prepare".to_string(), 2), ("Deploy".to_string(), 3)]
    );
    for (before, after) in raw_prod["Actions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(prod["Actions"].as_array().unwrap().iter().skip(1))
    {
        let mut expected = before.clone();
        expected["RunOrder"] = json!(run_order(before) + 1);
        assert_eq!(&expected, after);
    }

    // No other stage has an approval, and nothing else in the pipeline changed.
    for name in ["Source", "Build", "UpdatePipeline", "Assets", "Dev", "UAT"] {
        assert!(approvals(stage(pipeline, name)).is_empty(), "{name}");
        assert_eq!(
            stage(pipeline, name),
            stage(&raw["Resources"][PIPELINE], name),
            "{name}"
        );
    }

    // The pipeline role may publish to the notification topic.
    let statements = template["Resources"]["PipelineRoleDefaultPolicy7BDC1ABB"]["Properties"]
        ["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    assert!(statements.contains(&json!({
        "Action": "sns:Publish",
        "Effect": "Allow",
        "Resource": "arn:aws:sns:eu-west-1:111111111111:production-approvals"
    })));
}

#[test]
fn issue_6_review_says_it_plainly() {
    let out = common::run(
        &repo(),
        &[
            "diff",
            fixture("pipelines").to_str().unwrap(),
            "--config",
            config("pipelines").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("prod-approval (upgrade): Prod: manual approval added before Prepare (stack `Prod-Service`; stage name matches `Prod*`, action role in production account 444444444444)"),
        "{text}"
    );
    assert!(!text.contains("Dev: manual approval"), "{text}");
    assert!(!text.contains("UAT: manual approval"), "{text}");
}

#[test]
fn issue_6_apply_twice_equals_apply_once() {
    let (_dir, root, first) = hardened("pipelines");
    assert_eq!(
        changes_of(&first, "prod-approval").len(),
        2,
        "the gate and the sns:Publish grant"
    );
    let once = snapshot(&root);
    let second = run(&root, &config("pipelines"), Mode::Apply);
    assert!(changes_of(&second, "prod-approval").is_empty());
    assert!(!second.report.has_changes());
    assert_eq!(once, snapshot(&root), "a second apply changed files");
}

#[test]
fn issue_6_cfn_lint_reports_no_new_errors() {
    for app in ["pipelines", "shapes"] {
        let (_dir, root, outcome) = hardened(app);
        assert!(
            !changes_of(&outcome, "prod-approval").is_empty(),
            "{app}: the gate was added"
        );
        let new = new_cfn_lint_errors(&fixture(app), &root);
        assert!(new.is_empty(), "{app}: {new:#?}");
    }
}

#[test]
fn issue_6_classic_pipeline_production_stage_is_gated() {
    let (_dir, root, outcome) = hardened("shapes");
    let template = read_json(&root.join("ClassicPipelineStack.template.json"));
    let (id, pipeline) = resources_of(&template, "AWS::CodePipeline::Pipeline")[0];
    let production = stage(pipeline, "Production");
    let gate = gate(production);
    assert_eq!(gate["RunOrder"], 1);
    // The shapes config sets no `approval`: a bare approval.
    assert!(gate.get("Configuration").is_none());
    for name in ["Source", "Build", "Staging"] {
        assert!(approvals(stage(pipeline, name)).is_empty(), "{name}");
    }
    let changes = changes_of(&outcome, "prod-approval");
    let reasons: Vec<&str> = changes
        .iter()
        .filter(|c| &c.logical_id == id)
        .map(|c| c.reason.as_str())
        .collect();
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].starts_with(
            "Production: manual approval added before Deploy (stack `example-app-production`"
        ),
        "{reasons:?}"
    );
}

/// Runs a dry run on a copy of the pipelines fixture whose pipeline was edited by `f`; returns
/// the pipeline's stages before the run and the prod-approval changes.
fn gate_after_edit(f: impl FnOnce(&mut Value)) -> (Value, Vec<String>) {
    let (_dir, root) = copy_fixture("pipelines");
    edit(&root, PIPELINE_TEMPLATE, |t| {
        f(&mut t["Resources"][PIPELINE]["Properties"]["Stages"])
    });
    let stages = read_json(&root.join(PIPELINE_TEMPLATE))["Resources"][PIPELINE]["Properties"]
        ["Stages"]
        .clone();
    let outcome = run(&root, &config("pipelines"), Mode::DryRun);
    let reasons = changes_of(&outcome, "prod-approval")
        .iter()
        .filter(|c| c.pointer.contains("/Stages/"))
        .map(|c| c.reason.clone())
        .collect();
    (stages, reasons)
}

fn approval(name: &str, run_order: u64) -> Value {
    json!({
        "ActionTypeId": {"Category": "Approval", "Owner": "AWS", "Provider": "Manual", "Version": "1"},
        "Name": name,
        "RunOrder": run_order
    })
}

fn stage_index(stages: &Value, name: &str) -> usize {
    stages
        .as_array()
        .unwrap()
        .iter()
        .position(|s| s["Name"] == name)
        .unwrap()
}

#[test]
fn issue_6_gate_detection_an_existing_gate_gets_no_second_one() {
    // As CDK Pipelines writes `stage.addPre(new ManualApprovalStep('PromoteToProd'))`.
    let (_, reasons) = gate_after_edit(|stages| {
        let prod = stage_index(stages, "Prod");
        let actions = stages[prod]["Actions"].as_array_mut().unwrap();
        for a in actions.iter_mut() {
            a["RunOrder"] = json!(run_order(a) + 1);
        }
        actions.insert(0, approval("PromoteToProd", 1));
    });
    assert!(reasons.is_empty(), "{reasons:?}");

    // Its own stage between UAT and Prod.
    let (_, reasons) = gate_after_edit(|stages| {
        let prod = stage_index(stages, "Prod");
        stages.as_array_mut().unwrap().insert(
            prod,
            json!({"Name": "Approve", "Actions": [approval("PromoteToProd", 1)]}),
        );
    });
    assert!(reasons.is_empty(), "{reasons:?}");

    // An approval before Dev and UAT does not gate Prod: UAT deploys after it.
    let (_, reasons) = gate_after_edit(|stages| {
        let dev = stage_index(stages, "Dev");
        stages.as_array_mut().unwrap().insert(
            dev,
            json!({"Name": "Approve", "Actions": [approval("Promote", 1)]}),
        );
    });
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].starts_with("Prod: manual approval added before Prepare"),
        "{reasons:?}"
    );

    // Running in parallel with Prod's first action gates nothing either.
    let (_, reasons) = gate_after_edit(|stages| {
        let prod = stage_index(stages, "Prod");
        stages[prod]["Actions"]
            .as_array_mut()
            .unwrap()
            .push(approval("Promote", 1));
    });
    assert_eq!(reasons.len(), 1, "{reasons:?}");
}

#[test]
fn issue_6_gate_detection_applying_to_a_gated_pipeline_keeps_it() {
    let (_dir, root, _) = hardened("pipelines");
    let gated = read_json(&root.join(PIPELINE_TEMPLATE))["Resources"][PIPELINE].clone();
    let again = run(&root, &config("pipelines"), Mode::Apply);
    assert!(changes_of(&again, "prod-approval").is_empty());
    let after = read_json(&root.join(PIPELINE_TEMPLATE));
    assert_eq!(after["Resources"][PIPELINE], gated);
    assert_eq!(
        approvals(stage(&after["Resources"][PIPELINE], "Prod")).len(),
        1
    );
}

/// The findings of this rule for a run.
fn findings(outcome: &Outcome) -> Vec<&cdk_harden::findings::Finding> {
    outcome
        .report
        .findings
        .iter()
        .filter(|f| f.rule == RULE)
        .collect()
}

/// Replaces the synth step's build commands in a copy of the pipelines fixture.
fn with_synth_commands(root: &Path, commands: &[&str]) {
    edit(root, PIPELINE_TEMPLATE, |t| {
        let source = &mut t["Resources"][SYNTH_PROJECT]["Properties"]["Source"];
        let mut spec: Value = serde_json::from_str(source["BuildSpec"].as_str().unwrap()).unwrap();
        spec["phases"]["build"]["commands"] = json!(commands);
        source["BuildSpec"] = json!(serde_json::to_string_pretty(&spec).unwrap());
    });
}

#[test]
fn issue_6_check_reports_a_synth_step_that_does_not_run_cdk_harden() {
    let (_dir, root) = copy_fixture("pipelines");
    with_synth_commands(&root, &["npm ci", "npx cdk synth"]);
    let outcome = run(&root, &config("pipelines"), Mode::DryRun);
    let found = findings(&outcome);
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = found[0];
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.stack, "PipelineStack");
    assert_eq!(f.template, PIPELINE_TEMPLATE);
    assert_eq!(f.logical_id.as_deref(), Some(SYNTH_PROJECT));
    assert_eq!(
        f.pointer.as_deref(),
        Some("/Resources/PipelineBuildSynthCdkBuildProject6BEFA8E6/Properties/Source/BuildSpec")
    );
    assert!(
        f.message.contains("never runs `cdk-harden apply`"),
        "{}",
        f.message
    );
    assert!(
        f.message.contains("self-mutation redeploys the pipeline"),
        "{}",
        f.message
    );
    assert!(
        f.help.contains("npx cdk-harden apply cdk.out"),
        "{}",
        f.help
    );

    // Hardening first and synthesizing after is no better.
    let (_dir2, early) = copy_fixture("pipelines");
    with_synth_commands(
        &early,
        &["npm ci", "npx cdk-harden apply cdk.out", "npx cdk synth"],
    );
    let found = run(&early, &config("pipelines"), Mode::DryRun);
    assert!(findings(&found)[0].message.contains("before `cdk synth`"));
}

#[test]
fn issue_6_check_is_silent_when_the_synth_step_runs_cdk_harden() {
    let outcome = run(&fixture("pipelines"), &config("pipelines"), Mode::DryRun);
    assert!(findings(&outcome).is_empty(), "{:#?}", findings(&outcome));
    // The shapes app's classic pipeline does not self-mutate: nothing to say.
    let outcome = run(&fixture("shapes"), &config("shapes"), Mode::DryRun);
    assert!(findings(&outcome).is_empty(), "{:#?}", findings(&outcome));
}

#[test]
fn issue_6_check_exits_1_only_for_the_unhardened_synth_step() {
    let config = config("pipelines");
    let config = config.to_str().unwrap();

    // The real fixture, applied: compliant.
    let (_dir, good, _) = hardened("pipelines");
    let out = common::run(&good, &["check", ".", "--config", config]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // The same with a synth step that does not run cdk-harden: applying cannot fix it.
    let (_dir2, bad) = copy_fixture("pipelines");
    with_synth_commands(&bad, &["npm ci", "npx cdk synth"]);
    let out = common::run(&bad, &["apply", ".", "--config", config]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = common::run(&bad, &["check", ".", "--config", config]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn issue_6_a_pipeline_can_opt_out_with_a_reason() {
    let (_dir, root) = copy_fixture("pipelines");
    edit(&root, PIPELINE_TEMPLATE, |t| {
        t["Resources"][PIPELINE]["Metadata"]["cdk-harden"] = json!({"skip": [{"id": "prod-approval", "reason": "release approvals happen in the change tool"}]});
    });
    let outcome = run(&root, &config("pipelines"), Mode::DryRun);
    assert!(changes_of(&outcome, "prod-approval").is_empty());
    let notes: Vec<String> = outcome
        .report
        .stacks()
        .flat_map(|s| s.into_owned().notes)
        .filter(|n| n.transform == "prod-approval" && n.logical_id.as_deref() == Some(PIPELINE))
        .map(|n| n.message)
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("change tool"), "{notes:?}");
}

#[test]
fn issue_6_without_a_production_definition_the_pipeline_gets_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cdk-harden.json");
    std::fs::write(&config, r#"{"transforms": {"disable": ["bucket-versioning", "bucket-logging", "kms", "key-rotation", "vpc", "package-registry"]}}"#).unwrap();
    let outcome = run(&fixture("pipelines"), &config, Mode::DryRun);
    assert!(changes_of(&outcome, "prod-approval").is_empty());
    let note = outcome
        .report
        .stacks()
        .flat_map(|s| s.into_owned().notes)
        .find(|n| n.transform == "prod-approval")
        .expect("a note");
    assert_eq!(note.logical_id.as_deref(), Some(PIPELINE));
    assert!(note.message.contains("`production`"), "{}", note.message);
}

/// The actions of the `Production` stage of the classic pipeline in `template`.
fn production_actions(template: &mut serde_json::Value) -> &mut Vec<serde_json::Value> {
    let pipeline = template["Resources"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .find(|r| r["Type"] == "AWS::CodePipeline::Pipeline")
        .unwrap();
    pipeline["Properties"]["Stages"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|stage| stage["Name"] == "Production")
        .unwrap()["Actions"]
        .as_array_mut()
        .unwrap()
}

/// Whether the review has a `prod-approval` note that says all of `needles`.
fn approval_noted(outcome: &cdk_harden::Outcome, needles: &[&str]) -> bool {
    outcome
        .report
        .stacks()
        .flat_map(|s| s.into_owned().notes)
        .any(|n| n.transform == "prod-approval" && needles.iter().all(|x| n.message.contains(x)))
}

/// CodePipeline accepts RunOrder 1 to 999: when shifting a production stage's actions would
/// pass that, no approval is added, and the review says why.
#[test]
fn issue_6_run_orders_are_never_shifted_past_999() {
    let (_dir, root) = copy_fixture("shapes");
    edit(&root, "ClassicPipelineStack.template.json", |t| {
        for action in production_actions(t) {
            action["RunOrder"] = serde_json::json!(999);
        }
    });
    let outcome = run(&root, &config("shapes"), Mode::DryRun);
    assert!(changes_of(&outcome, "prod-approval").is_empty());
    assert!(
        approval_noted(&outcome, &["RunOrder 1000", "999"]),
        "the review says why no approval was added"
    );
}

/// CodePipeline allows at most 50 actions in a stage: when an approval would make a
/// production stage's 51st, none is added (the pipeline would not deploy), and the review
/// says why.
#[test]
fn issue_6_an_approval_never_makes_a_stage_pass_50_actions() {
    let fill = |to: usize| {
        move |t: &mut serde_json::Value| {
            let actions = production_actions(t);
            let first = actions[0].clone();
            for k in 0.. {
                if actions.len() >= to {
                    break;
                }
                let mut copy = first.clone();
                copy["Name"] = serde_json::json!(format!("Extra{k}"));
                actions.push(copy);
            }
        }
    };
    let (_dir, root) = copy_fixture("shapes");
    edit(&root, "ClassicPipelineStack.template.json", fill(50));
    let outcome = run(&root, &config("shapes"), Mode::DryRun);
    assert!(changes_of(&outcome, "prod-approval").is_empty());
    assert!(
        approval_noted(&outcome, &["51 actions", "at most 50"]),
        "the review says why no approval was added"
    );
    // At 49 actions the approval makes 50, which is allowed.
    let (_dir, root) = copy_fixture("shapes");
    edit(&root, "ClassicPipelineStack.template.json", fill(49));
    let outcome = run(&root, &config("shapes"), Mode::DryRun);
    assert!(!changes_of(&outcome, "prod-approval").is_empty());
}
