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
//! `npx cdk-harden@1 apply`, `./node_modules/.bin/cdk-harden apply`, …; not with `--dry-run`)
//! on the directory the step hands on (its `artifacts.base-directory`; not `--out` elsewhere),
//! as a command of its own (not echoed, quoted or commented out), after the last `cdk synth`
//! when the buildspec runs one. A synth step the check cannot read
//! (not CodeBuild, a project outside the template, a buildspec file in the source) is a
//! warning: it cannot be shown to be hardened.

use crate::transform::cfn::Field;
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
            let name = s.field("Name").and_then(Value::as_str).unwrap_or_default();
            s.field("Actions")
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
        synth.field("Name").and_then(Value::as_str).unwrap_or("?")
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
    // Every simple command of every buildspec command, in the order CodeBuild runs them.
    let simple: Vec<Vec<String>> = commands(&buildspec)
        .iter()
        .flat_map(|c| simple_commands(c))
        .collect();
    let output = output_dir(&buildspec);
    match (
        simple.iter().rposition(|w| runs_harden(w, &output)),
        simple.iter().rposition(|w| runs_synth(w)),
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
    if stage == "UpdatePipeline"
        && action.field("Name").and_then(Value::as_str) == Some("SelfMutate")
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
        .filter_map(|a| a.field("Name").and_then(Value::as_str))
        .collect()
}

/// A buildspec's text: the string, or the literal parts of an `Fn::Join` / `Fn::Sub`.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map) => {
            if let Some(Value::Array(parts)) = map.field("Fn::Join") {
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
            } else if let Some(sub) = map.field("Fn::Sub") {
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
        let Some(Value::Object(phases)) = spec.field("phases") else {
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
            .flat_map(|p| match phases[p].field("commands") {
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

/// The directory the synth step hands on: its buildspec's `artifacts.base-directory` (CDK
/// Pipelines writes `cdk.out`, or the `primaryOutputDirectory` of its `ShellStep`).
fn output_dir(buildspec: &str) -> String {
    if let Ok(spec) = serde_json::from_str::<Value>(buildspec) {
        if let Some(dir) = spec.at("/artifacts/base-directory").and_then(Value::as_str) {
            return dir.to_string();
        }
    }
    buildspec
        .lines()
        .find_map(|line| line.trim().strip_prefix("base-directory:"))
        .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "cdk.out".to_string())
}

/// The simple commands of a shell command line, each as its words: split at unquoted blanks
/// and at unquoted `;`, `&`, `|`, `(`, `)` and line breaks, quotes removed; a word starting
/// with an unquoted `#` starts a comment that runs to the end of the line.
fn simple_commands(command: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let (mut words, mut word) = (Vec::new(), None::<String>);
    let (mut single, mut double, mut comment) = (false, false, false);
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        if comment {
            if c == '\n' {
                comment = false;
                out.push(std::mem::take(&mut words));
            }
            continue;
        }
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '\\' if !single => {
                let w = word.get_or_insert_with(String::new);
                w.extend(chars.next());
                continue;
            }
            _ if single || double => {}
            '#' if word.is_none() => {
                comment = true;
                continue;
            }
            c if c.is_whitespace() || ";&|()".contains(c) => {
                words.extend(word.take());
                if !c.is_whitespace() || c == '\n' {
                    out.push(std::mem::take(&mut words));
                }
                continue;
            }
            _ => {}
        }
        // A quote starts a word (`""` is an empty one) but is not part of it.
        let w = word.get_or_insert_with(String::new);
        let quote = (c == '\'' && !double) || (c == '"' && !single);
        if !quote {
            w.push(c);
        }
    }
    words.extend(word);
    out.push(words);
    out.retain(|w| !w.is_empty());
    out
}

/// Words that run the command after them: `npx`, `env X=1`, `sudo`, …, with their options.
const WRAPPERS: &[&str] = &[
    "npx", "bunx", "pnpx", "yarn", "pnpm", "npm", "exec", "dlx", "x", "env", "sudo", "time",
    "command", "nice", "nohup", "then", "do", "else", "!", "{",
];

/// The program a simple command runs (without wrappers, options and assignments before it)
/// and the words after it.
fn program_of(words: &[String]) -> Option<(&str, &[String])> {
    let at = words.iter().position(|w| {
        let assignment = w.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        !(assignment || w.starts_with('-') || WRAPPERS.contains(&w.as_str()))
    })?;
    Some((program(&words[at]), &words[at + 1..]))
}

/// Whether a simple command runs cdk-harden's `apply` so that it hardens `output` in place:
/// not a dry run, and not into a copy elsewhere (`--out`). A directory named through a
/// variable is taken to be `output`.
fn runs_harden(words: &[String], output: &str) -> bool {
    let Some((name, mut rest)) = program_of(words) else {
        return false;
    };
    if name != "cdk-harden" {
        return false;
    }
    // `npx -p cdk-harden cdk-harden apply`: the package, then the program.
    while rest.first().is_some_and(|w| program(w) == "cdk-harden") {
        rest = &rest[1..];
    }
    if rest.first().map(String::as_str) != Some("apply") {
        return false;
    }
    let (mut dir, mut out) = (None, None);
    let mut args = rest[1..].iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        match flag {
            "--dry-run" => return false,
            "--out" => out = inline.or_else(|| args.next().cloned()),
            "--config" | "--format" | "--output" | "--markdown-limit" if inline.is_none() => {
                args.next();
            }
            f if f.starts_with('-') => {}
            _ if dir.is_none() => dir = Some(arg.clone()),
            _ => {}
        }
    }
    let hardened = out.or(dir).unwrap_or_else(|| "cdk.out".to_string());
    same_dir(&hardened, output)
}

/// Whether two directories written in a buildspec are the same: one's parts end the other's
/// (`cdk.out` and `infra/cdk.out`, run after a `cd`), ignoring `.` and anything up to a part
/// that names a variable (`$CODEBUILD_SRC_DIR/cdk.out`).
fn same_dir(a: &str, b: &str) -> bool {
    fn parts(path: &str) -> Vec<&str> {
        let all: Vec<&str> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        match all.iter().rposition(|p| p.contains('$')) {
            Some(i) => all[i + 1..].to_vec(),
            None => all,
        }
    }
    let (a, b) = (parts(a), parts(b));
    let n = a.len().min(b.len());
    n == 0 || a[a.len() - n..] == b[b.len() - n..]
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

/// Whether a simple command runs `cdk synth`.
fn runs_synth(words: &[String]) -> bool {
    program_of(words).is_some_and(|(name, rest)| {
        matches!(name, "cdk" | "aws-cdk")
            && rest
                .iter()
                .any(|w| matches!(w.as_str(), "synth" | "synthesize"))
    })
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

    fn spec_into(commands: &[&str], output: &str) -> Value {
        json!(json!({
            "version": "0.2",
            "phases": {"build": {"commands": commands}},
            "artifacts": {"base-directory": output, "files": "**/*"}
        })
        .to_string())
    }

    /// Only a command that runs `cdk-harden apply` on the directory the synth step hands on
    /// counts: not one that writes a copy elsewhere (`--out`), hardens another directory, is
    /// echoed, quoted or commented out.
    #[test]
    fn issue_6_only_apply_on_the_handed_on_directory_counts() {
        let not_hardened = |commands: &[&str], output: &str| {
            matches!(
                problem(&with_buildspec(spec_into(commands, output))),
                Some(Problem::NotHardened { .. })
            )
        };
        for (commands, output) in [
            (
                &[
                    "npx cdk synth",
                    "npx cdk-harden apply cdk.out --out hardened",
                ][..],
                "cdk.out",
            ),
            (
                &["npx cdk synth", "npx cdk-harden apply --out=hardened"],
                "cdk.out",
            ),
            (
                &["npx cdk synth", "npx cdk-harden apply other.out"],
                "cdk.out",
            ),
            (&["npx cdk synth", "npx cdk-harden apply"], "infra/hardened"),
            (
                &["npx cdk synth", "echo npx cdk-harden apply cdk.out"],
                "cdk.out",
            ),
            (
                &["npx cdk synth", "echo \"run: npx cdk-harden apply; done\""],
                "cdk.out",
            ),
            (
                &["npx cdk synth", "# npx cdk-harden apply cdk.out"],
                "cdk.out",
            ),
            (
                &["npx cdk synth # && npx cdk-harden apply cdk.out"],
                "cdk.out",
            ),
            (
                &[
                    "npx cdk synth",
                    "npx cdk-harden apply --config c.json --dry-run",
                ],
                "cdk.out",
            ),
        ] {
            assert!(not_hardened(commands, output), "{commands:?} into {output}");
        }
        for (commands, output) in [
            (
                &["cd infra && npx cdk synth && npx cdk-harden apply cdk.out"][..],
                "infra/cdk.out",
            ),
            (
                &[
                    "npx cdk synth",
                    "npx cdk-harden apply $CODEBUILD_SRC_DIR/cdk.out",
                ],
                "cdk.out",
            ),
            (
                &["npx cdk synth", "npx cdk-harden apply ./cdk.out/"],
                "cdk.out",
            ),
            (
                &[
                    "npx cdk synth",
                    "npx cdk-harden apply cdk.out --out hardened",
                ],
                "hardened",
            ),
            (
                &["npx cdk synth", "npx -p cdk-harden cdk-harden apply"],
                "cdk.out",
            ),
            (
                &[
                    "npx cdk synth",
                    "CI=1 npx --yes cdk-harden apply --config=c.json --format markdown cdk.out",
                ],
                "cdk.out",
            ),
            (
                &["npx cdk synth", "npx cdk-harden apply cdk.out # harden"],
                "cdk.out",
            ),
            (
                &["npx cdk synth", "yarn cdk-harden apply 'cdk.out'"],
                "cdk.out",
            ),
        ] {
            assert_eq!(
                problem(&with_buildspec(spec_into(commands, output))),
                None,
                "{commands:?} into {output}"
            );
        }
        // YAML buildspecs name their output the same way.
        let yaml = "version: 0.2\nphases:\n  build:\n    commands:\n      - npx cdk synth\n      - npx cdk-harden apply cdk.out\nartifacts:\n  base-directory: 'hardened'\n  files: '**/*'\n";
        assert!(matches!(
            problem(&with_buildspec(json!(yaml))),
            Some(Problem::NotHardened { .. })
        ));
    }

    #[test]
    fn simple_commands_split_like_a_shell() {
        let split = |c: &str| simple_commands(c);
        assert_eq!(
            split("a 'b c' \"d;e\" f\\ g; h && i | j # k\nl"),
            [
                vec!["a", "b c", "d;e", "f g"],
                vec!["h"],
                vec!["i"],
                vec!["j"],
                vec!["l"]
            ]
        );
        assert_eq!(split("a#b ''"), [vec!["a#b", ""]]);
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
