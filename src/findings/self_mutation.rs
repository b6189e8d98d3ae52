//! `pipeline-synth-not-hardened`: a CDK Pipelines pipeline whose synth step does not run
//! cdk-harden.
//!
//! CDK Pipelines' self-mutation (the `UpdatePipeline` stage's `SelfMutate` action) redeploys the
//! pipeline stack from the cloud assembly its own synth step produced. If that synth step does
//! not run `cdk-harden apply` after `cdk synth`, the first self-mutation replaces the hardened
//! pipeline with an unhardened one: the manual approval before production disappears, with
//! every other hardening of the pipeline stack.
//!
//! A pipeline is CDK Pipelines' when it has a self-mutation action: an action named
//! `SelfMutate` in a stage named `UpdatePipeline`, or one whose CodeBuild project's construct
//! path contains `/UpdatePipeline/SelfMutation/`. Its synth step is the action that produces the
//! artifact the self-mutation reads. The check reads the commands of that CodeBuild project's
//! inline buildspec (JSON as CDK writes it, or YAML) in phase order and wants a command that
//! runs `cdk-harden` with the `apply` subcommand (`cdk-harden apply`, `npx cdk-harden apply`,
//! `npx cdk-harden@1 apply`, `./node_modules/.bin/cdk-harden apply`, …; not with `--dry-run`),
//! after the last `cdk synth` when the buildspec runs one. A synth step the check cannot read
//! (not CodeBuild, a project outside the template, a buildspec file in the source) is a
//! warning: it cannot be shown to be hardened.

use crate::transform::change::Pointer;
use serde_json::Value;

use super::{Check, Finding, Severity};
use crate::assembly::{Assembly, Stack};
use crate::transform::cfn;
use crate::transform::change::pointer_escape;

pub struct SelfMutation;

/// The fix, shown with every finding of this rule.
pub const HELP: &str = "run cdk-harden in the synth step's own commands, after `cdk synth`, with cdk-harden.json committed next to the app; in CDK Pipelines: `synth: new ShellStep('Synth', { input, commands: ['npm ci', 'npx cdk synth', 'npx cdk-harden apply cdk.out'] })`. The check reads the buildspec's commands: a `cdk-harden apply` hidden in a script they call is not seen";

impl Check for SelfMutation {
    fn rule(&self) -> &'static str {
        "pipeline-synth-not-hardened"
    }

    fn description(&self) -> &'static str {
        "The synth step of a self-mutating CDK Pipelines pipeline runs cdk-harden, so self-mutation does not deploy an unhardened pipeline"
    }

    fn check(&self, _assembly: &Assembly, stack: &Stack, template: &Value) -> Vec<Finding> {
        let mut out = Vec::new();
        for (pipeline_id, pipeline) in cfn::resources_of(template, "AWS::CodePipeline::Pipeline") {
            let Some(problem) = inspect(template, pipeline_id, pipeline) else {
                continue;
            };
            let pipeline_path = pipeline
                .at("/Metadata/aws:cdk:path")
                .and_then(Value::as_str)
                .unwrap_or(pipeline_id);
            let (logical_id, severity, message) = match problem {
                Problem::NotHardened { project, step } => (
                    project,
                    Severity::Error,
                    format!(
                        "the synth step `{step}` of CDK Pipelines pipeline `{pipeline_path}` never runs `cdk-harden apply`: self-mutation redeploys the pipeline from that synth output without hardening, removing the manual approval before production and every other hardening of the pipeline stack"
                    ),
                ),
                Problem::HardenedTooEarly { project, step } => (
                    project,
                    Severity::Error,
                    format!(
                        "the synth step `{step}` of CDK Pipelines pipeline `{pipeline_path}` runs `cdk-harden apply` before `cdk synth`, which then writes an unhardened assembly: self-mutation redeploys the pipeline without hardening, removing the manual approval before production and every other hardening of the pipeline stack"
                    ),
                ),
                Problem::Unreadable { logical_id, step, why } => (
                    logical_id,
                    Severity::Warning,
                    format!(
                        "cannot tell whether the synth step `{step}` of CDK Pipelines pipeline `{pipeline_path}` runs `cdk-harden apply` ({why}); if it does not, self-mutation redeploys the pipeline without hardening"
                    ),
                ),
            };
            let is_project = cfn::type_of(template, &logical_id) == Some("AWS::CodeBuild::Project");
            out.push(Finding {
                rule: self.rule().to_string(),
                severity,
                stack: stack.display_name.clone(),
                template: stack.template_path.to_string(),
                construct_path: cfn::resource(template, &logical_id)
                    .and_then(|r| r.at("/Metadata/aws:cdk:path"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                pointer: Some(if is_project {
                    format!(
                        "/Resources/{}/Properties/Source/BuildSpec",
                        pointer_escape(&logical_id)
                    )
                } else {
                    format!("/Resources/{}", pointer_escape(&logical_id))
                }),
                logical_id: Some(logical_id),
                message,
                help: HELP.to_string(),
            });
        }
        out
    }
}

/// What is wrong with a self-mutating pipeline's synth step.
#[derive(Debug, PartialEq)]
enum Problem {
    NotHardened {
        project: String,
        step: String,
    },
    HardenedTooEarly {
        project: String,
        step: String,
    },
    Unreadable {
        logical_id: String,
        step: String,
        why: String,
    },
}

/// `None` when the pipeline does not self-mutate, or its synth step runs cdk-harden.
fn inspect(template: &Value, pipeline_id: &str, pipeline: &Value) -> Option<Problem> {
    let stages = cfn::prop(pipeline, "Stages")?.as_array()?;
    // (stage name, action), in pipeline order.
    let actions: Vec<(&str, &Value)> = stages
        .iter()
        .flat_map(|s| {
            let name = s.get("Name").and_then(Value::as_str).unwrap_or_default();
            s.get("Actions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(move |a| (name, a))
        })
        .collect();
    let (_, self_mutate) = actions
        .iter()
        .find(|(stage, action)| is_self_mutation(template, stage, action))?;
    let inputs = artifact_names(self_mutate, "InputArtifacts");
    let pipeline_id = || pipeline_id.to_string();
    let Some((stage, synth)) = actions.iter().find(|(_, a)| {
        artifact_names(a, "OutputArtifacts")
            .iter()
            .any(|o| inputs.contains(o))
    }) else {
        return Some(Problem::Unreadable {
            logical_id: pipeline_id(),
            step: "?".into(),
            why: "no action produces the artifact the self-mutation reads".into(),
        });
    };
    let step = format!(
        "{stage}/{}",
        synth.get("Name").and_then(Value::as_str).unwrap_or("?")
    );
    let unreadable = |logical_id: String, why: &str| {
        Some(Problem::Unreadable {
            logical_id,
            step: step.clone(),
            why: why.to_string(),
        })
    };
    if synth.at("/ActionTypeId/Provider").and_then(Value::as_str) != Some("CodeBuild") {
        return unreadable(pipeline_id(), "it is not a CodeBuild action");
    }
    let project = synth
        .at("/Configuration/ProjectName")
        .and_then(cfn::ref_target)
        .filter(|id| cfn::type_of(template, id) == Some("AWS::CodeBuild::Project"));
    let Some(project) = project else {
        return unreadable(
            pipeline_id(),
            "its CodeBuild project is not in this template",
        );
    };
    let resource = cfn::resource(template, project)?;
    let Some(buildspec) = resource.at("/Properties/Source/BuildSpec").map(text_of) else {
        return unreadable(
            project.to_string(),
            "its project reads `buildspec.yml` from the source",
        );
    };
    if !buildspec.contains('\n') && (buildspec.ends_with(".yml") || buildspec.ends_with(".yaml")) {
        return unreadable(project.to_string(), "its buildspec is a file in the source");
    }
    let commands = commands(&buildspec);
    match (
        last_position(&commands, runs_harden),
        last_position(&commands, runs_synth),
    ) {
        (None, _) => Some(Problem::NotHardened {
            project: project.to_string(),
            step,
        }),
        (Some(harden), Some(synth)) if synth > harden => Some(Problem::HardenedTooEarly {
            project: project.to_string(),
            step,
        }),
        _ => None,
    }
}

/// CDK Pipelines' self-mutation action.
fn is_self_mutation(template: &Value, stage: &str, action: &Value) -> bool {
    if stage == "UpdatePipeline" && action.get("Name").and_then(Value::as_str) == Some("SelfMutate")
    {
        return true;
    }
    action
        .at("/Configuration/ProjectName")
        .and_then(cfn::ref_target)
        .and_then(|id| cfn::resource(template, id))
        .and_then(|r| r.at("/Metadata/aws:cdk:path"))
        .and_then(Value::as_str)
        .is_some_and(|p| p.contains("/UpdatePipeline/SelfMutation/"))
}

fn artifact_names<'a>(action: &'a Value, key: &str) -> Vec<&'a str> {
    action
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.get("Name").and_then(Value::as_str))
        .collect()
}

/// A buildspec's text: the string, or the literal parts of an `Fn::Join` / `Fn::Sub`.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map) => {
            if let Some(Value::Array(parts)) = map.get("Fn::Join") {
                let delimiter = parts.first().and_then(Value::as_str).unwrap_or("");
                parts
                    .get(1)
                    .and_then(Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .map(text_of)
                            .collect::<Vec<_>>()
                            .join(delimiter)
                    })
                    .unwrap_or_default()
            } else if let Some(sub) = map.get("Fn::Sub") {
                match sub {
                    Value::Array(parts) => parts.first().map(text_of).unwrap_or_default(),
                    other => text_of(other),
                }
            } else {
                String::new()
            }
        }
        _ => String::new(),
    }
}

/// The phases CodeBuild runs, in order.
const PHASES: &[&str] = &["install", "pre_build", "build", "post_build"];

/// The commands of a buildspec, in the order CodeBuild runs them. JSON (as CDK writes inline
/// buildspecs) is read by phase; anything else is read as YAML, one list item per command, in
/// text order.
fn commands(buildspec: &str) -> Vec<String> {
    if let Ok(Value::Object(spec)) = serde_json::from_str::<Value>(buildspec) {
        let Some(Value::Object(phases)) = spec.get("phases") else {
            return Vec::new();
        };
        let mut names: Vec<&str> = PHASES
            .iter()
            .copied()
            .filter(|p| phases.contains_key(*p))
            .collect();
        names.extend(
            phases
                .keys()
                .map(String::as_str)
                .filter(|k| !PHASES.contains(k)),
        );
        return names
            .into_iter()
            .flat_map(|p| match phases[p].get("commands") {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            })
            .collect();
    }
    buildspec
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("- "))
        .map(|item| {
            let item = item.trim();
            let unquoted = item
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| item.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')));
            unquoted.unwrap_or(item).to_string()
        })
        .collect()
}

/// The words of a shell command, split at blanks, quotes and `;&|()`.
fn words(command: &str) -> Vec<&str> {
    command
        .split(|c: char| c.is_whitespace() || "\"'`;&|()".contains(c))
        .filter(|w| !w.is_empty())
        .collect()
}

/// A program word without its directory, version and `.exe`: `cdk-harden` for
/// `./node_modules/.bin/cdk-harden` or `cdk-harden@1.2.0`.
fn program(word: &str) -> &str {
    let base = word.rsplit(['/', '\\']).next().unwrap_or(word);
    let base = match base.find('@') {
        Some(0) | None => base,
        Some(i) => &base[..i],
    };
    base.strip_suffix(".exe").unwrap_or(base)
}

/// Position of the word after which a command has run cdk-harden's `apply` (not as a dry run).
fn runs_harden(command: &str) -> Option<usize> {
    let w = words(command);
    let start = w.iter().position(|x| program(x) == "cdk-harden")?;
    let apply = start + w[start..].iter().position(|x| *x == "apply")?;
    if w[apply..].contains(&"--dry-run") {
        return None;
    }
    Some(apply)
}

/// Position of the word after which a command has run `cdk synth`.
fn runs_synth(command: &str) -> Option<usize> {
    let w = words(command);
    let start = w
        .iter()
        .position(|x| matches!(program(x), "cdk" | "aws-cdk"))?;
    w[start..]
        .iter()
        .position(|x| matches!(*x, "synth" | "synthesize"))
        .map(|p| start + p)
}

/// The last (command, word) position where `f` finds something.
fn last_position(commands: &[String], f: fn(&str) -> Option<usize>) -> Option<(usize, usize)> {
    commands
        .iter()
        .enumerate()
        .filter_map(|(i, c)| f(c).map(|w| (i, w)))
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_buildspec(buildspec: Value) -> Value {
        json!({"Resources": {
            "Synth": {
                "Type": "AWS::CodeBuild::Project",
                "Properties": {"Source": {"BuildSpec": buildspec, "Type": "CODEPIPELINE"}},
                "Metadata": {"aws:cdk:path": "App/Pipeline/Pipeline/Build/Synth/CdkBuildProject/Resource"}
            },
            "Mutate": {
                "Type": "AWS::CodeBuild::Project",
                "Metadata": {"aws:cdk:path": "App/Pipeline/UpdatePipeline/SelfMutation/Resource"}
            },
            "Pipeline": {
                "Type": "AWS::CodePipeline::Pipeline",
                "Properties": {"Stages": [
                    {"Name": "Build", "Actions": [{
                        "ActionTypeId": {"Category": "Build", "Owner": "AWS", "Provider": "CodeBuild", "Version": "1"},
                        "Configuration": {"ProjectName": {"Ref": "Synth"}},
                        "Name": "Synth",
                        "OutputArtifacts": [{"Name": "Synth_Output"}]
                    }]},
                    {"Name": "UpdatePipeline", "Actions": [{
                        "ActionTypeId": {"Category": "Build", "Owner": "AWS", "Provider": "CodeBuild", "Version": "1"},
                        "Configuration": {"ProjectName": {"Ref": "Mutate"}},
                        "InputArtifacts": [{"Name": "Synth_Output"}],
                        "Name": "SelfMutate"
                    }]}
                ]}
            }
        }})
    }

    fn json_spec(commands: &[&str]) -> Value {
        json!(serde_json::to_string_pretty(&json!({
            "version": "0.2",
            "phases": {"build": {"commands": commands}},
            "artifacts": {"base-directory": "cdk.out", "files": "**/*"}
        }))
        .unwrap())
    }

    fn problem(template: &Value) -> Option<Problem> {
        inspect(template, "Pipeline", &template["Resources"]["Pipeline"])
    }

    #[test]
    fn a_synth_step_that_runs_cdk_harden_is_fine() {
        for commands in [
            &["npm ci", "npx cdk synth", "npx cdk-harden apply cdk.out"][..],
            &["npx cdk synth && npx cdk-harden@0.1 apply --config cdk-harden.json cdk.out"],
            &["npx cdk synth", "./node_modules/.bin/cdk-harden apply"],
            &["cdk-harden apply"],
        ] {
            assert_eq!(
                problem(&with_buildspec(json_spec(commands))),
                None,
                "{commands:?}"
            );
        }
    }

    #[test]
    fn a_synth_step_without_cdk_harden_apply_is_found() {
        for commands in [
            &["npm ci", "npx cdk synth"][..],
            &["npx cdk synth", "npx cdk-harden check cdk.out"],
            &["npx cdk synth", "npx cdk-harden apply --dry-run"],
            &["echo cdk-harden-apply", "npx cdk synth"],
        ] {
            assert!(
                matches!(problem(&with_buildspec(json_spec(commands))), Some(Problem::NotHardened { ref project, ref step }) if project == "Synth" && step == "Build/Synth"),
                "{commands:?}"
            );
        }
        assert!(matches!(
            problem(&with_buildspec(json_spec(&[
                "npx cdk-harden apply",
                "npx cdk synth"
            ]))),
            Some(Problem::HardenedTooEarly { .. })
        ));
    }

    #[test]
    fn phases_run_in_codebuild_order_and_yaml_is_read() {
        let spec = json!(json!({
            "version": "0.2",
            "phases": {"post_build": {"commands": ["npx cdk-harden apply"]}, "build": {"commands": ["npx cdk synth"]}}
        })
        .to_string());
        assert_eq!(problem(&with_buildspec(spec)), None);
        let yaml = "version: 0.2\nphases:\n  build:\n    commands:\n      - npm ci\n      - \"npx cdk synth\"\n      - npx cdk-harden apply cdk.out\n";
        assert_eq!(problem(&with_buildspec(json!(yaml))), None);
        let unhardened = "version: 0.2\nphases:\n  build:\n    commands:\n      - npx cdk synth\n";
        assert!(matches!(
            problem(&with_buildspec(json!(unhardened))),
            Some(Problem::NotHardened { .. })
        ));
        let joined = json!({"Fn::Join": ["\n", ["phases:", "  build:", "    commands:", "      - npx cdk synth"]]});
        assert!(matches!(
            problem(&with_buildspec(joined)),
            Some(Problem::NotHardened { .. })
        ));
    }

    #[test]
    fn unreadable_synth_steps_are_warnings_and_other_pipelines_are_ignored() {
        let mut t = with_buildspec(json!("buildspec.yml"));
        assert!(
            matches!(problem(&t), Some(Problem::Unreadable { ref why, .. }) if why.contains("file"))
        );
        t["Resources"]["Synth"]["Properties"]["Source"]
            .as_object_mut()
            .unwrap()
            .remove("BuildSpec");
        assert!(matches!(problem(&t), Some(Problem::Unreadable { .. })));

        // No self-mutation: not CDK Pipelines' (or self-mutation is off).
        let mut plain = with_buildspec(json_spec(&["npx cdk synth"]));
        plain["Resources"]["Pipeline"]["Properties"]["Stages"]
            .as_array_mut()
            .unwrap()
            .pop();
        assert_eq!(problem(&plain), None);
    }

    #[test]
    fn program_names_lose_paths_versions_and_exe() {
        assert_eq!(program("./node_modules/.bin/cdk-harden"), "cdk-harden");
        assert_eq!(program("cdk-harden@1.2.0"), "cdk-harden");
        assert_eq!(program("C:\\tools\\cdk-harden.exe"), "cdk-harden");
        assert_eq!(program("@scope/cdk-harden"), "cdk-harden");
        assert_eq!(program("aws-cdk@2"), "aws-cdk");
    }
}
