//! The cdk-harden benchmark: generates large CDK Pipelines assemblies from the example app,
//! then times the baseline program and `cdk-harden apply` (every built-in transform) on them
//! and prints the ratios the performance targets are stated in.
//!
//! Usage (see `scripts/bench.sh`, which builds everything in release mode first):
//!   bench --cdk-harden PATH --baseline PATH [--quick] [--stages 100,1000] [--runs 5] [--scratch DIR]
//!
//! Generation: the Dev stage of `examples/pipelines/cdk.out` is cloned N times (stage names
//! `Stage0000`…, accounts cycling through the example's Dev, UAT and Prod accounts), each clone
//! with its own nested stack; the pipeline gets one deploy stage and one nested-template
//! asset-publishing project per clone. Asset ids are recomputed the way CDK does, so the
//! assembly has the real asset-hash chain nested → parent → pipeline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cdk_harden::assembly::format::to_cdk_json;
use cdk_harden::assembly::rehash::sha256_hex;
use serde_json::{json, Value};

const ACCOUNTS: [&str; 3] = ["222222222222", "333333333333", "444444444444"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .map(|i| args[i + 1].clone())
    };
    // `bench --generate N DIR`: what the benchmark runs to generate an assembly, in a process
    // of its own (see below).
    if let Some(n) = flag("--generate") {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = PathBuf::from(args.last().expect("--generate N DIR"));
        generate(
            &repo.join("examples/pipelines/cdk.out"),
            &out,
            n.parse().unwrap(),
        );
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let cdk_harden = PathBuf::from(flag("--cdk-harden").expect("--cdk-harden PATH"));
    let baseline = PathBuf::from(flag("--baseline").expect("--baseline PATH"));
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let stages: Vec<usize> = match flag("--stages") {
        Some(s) => s
            .split(',')
            .map(|n| n.parse().expect("stage count"))
            .collect(),
        None if quick => vec![3],
        None => vec![100, 1000],
    };
    let runs: usize = flag("--runs")
        .map(|r| r.parse().unwrap())
        .unwrap_or(if quick { 1 } else { 5 });
    let work = repo.join("target/bench");
    // Where the measured copies go: the repository's disk by default; `--scratch DIR` puts
    // them elsewhere (a tmpfs, say) to separate the file system's cost from the programs'.
    let scratch_root = flag("--scratch")
        .map(PathBuf::from)
        .unwrap_or_else(|| work.clone());
    let config = repo.join("examples/pipelines/cdk-harden.json");

    // Every measured run gets its own copy, made before any is measured and removed after all
    // are: deleting thousands of files right before a run would bill the file system's inode
    // bookkeeping for the deletion (slow on ext4 without a journal, which avoids reusing
    // recently deleted inodes) to the program measured.
    let mut sizes: Vec<Size> = stages
        .iter()
        .map(|&n| {
            let generated = work.join(format!("generated-{n}"));
            // In another process: a child's peak memory, as the kernel reports it, starts at
            // the peak of the process that started it, and generating the 1,000-stage
            // assembly takes tens of MiB that would then count for every program measured.
            let status = Command::new(std::env::current_exe().unwrap())
                .args(["--generate", &n.to_string()])
                .arg(&generated)
                .status()
                .expect("run the generator");
            assert!(status.success(), "generating {n} stages: {status}");
            let scratch_dir = scratch_root.join(format!("cdk-harden-bench-runs-{n}"));
            if scratch_dir.exists() {
                std::fs::remove_dir_all(&scratch_dir).unwrap();
            }
            let copies: Vec<(PathBuf, PathBuf)> = (0..runs)
                .map(|k| {
                    let pair = (
                        scratch_dir.join(format!("baseline-{k}")),
                        scratch_dir.join(format!("apply-{k}")),
                    );
                    copy_dir(&generated, &pair.0);
                    copy_dir(&generated, &pair.1);
                    pair
                })
                .collect();
            Size {
                n,
                templates: count_templates(&generated),
                scratch_dir,
                copies,
                base: Vec::new(),
                apply: Vec::new(),
            }
        })
        .collect();
    // Round by round, every size and both programs in each: the ratios compare runs made
    // moments apart, so a machine whose speed drifts over minutes moves both sides together.
    for k in 0..runs {
        for size in &mut sizes {
            let (for_baseline, for_apply) = &size.copies[k];
            size.base
                .push(measure(Command::new(&baseline).arg(for_baseline)));
            size.apply.push(measure(
                Command::new(&cdk_harden)
                    .args(["apply", "--config"])
                    .arg(&config)
                    .arg(for_apply),
            ));
        }
    }
    for size in &sizes {
        let n = size.n;
        // The hardened output must be complete: a second apply finds nothing to do.
        let last = &size.copies[runs - 1].1;
        let check = Command::new(&cdk_harden)
            .args(["check", "--config"])
            .arg(&config)
            .arg(last)
            .output()
            .expect("run check");
        assert!(
            check.status.code() == Some(0),
            "check after apply on {n} stages: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        std::fs::remove_dir_all(&size.scratch_dir).unwrap();
        let b = median(&size.base);
        let a = median(&size.apply);
        let ratio = Ratios::of(&size.apply, &size.base, |m| m.0.as_secs_f64());
        println!(
            "{n:>5} stages, {:>5} templates: baseline {:>8.1} ms {:>7.1} MiB (cpu {:.0}+{:.0} ms) | cdk-harden apply {:>8.1} ms {:>7.1} MiB (cpu {:.0}+{:.0} ms) | ratio {:.2}",
            size.templates,
            ms(b.0),
            mib(b.1),
            ms(b.2),
            ms(b.3),
            ms(a.0),
            mib(a.1),
            ms(a.2),
            ms(a.3),
            ratio.median
        );
    }
    if quick {
        println!(
            "bench --quick: generated, hardened and checked {} assembly(ies): ok",
            sizes.len()
        );
        return;
    }
    let find = |n: usize| sizes.iter().find(|s| s.n == n);
    let report = |name: &str, what: &str, r: Ratios, target: f64| {
        let verdict = if r.median <= target { "met" } else { "MISSED" };
        println!(
            "{name}: {what} = {:.2} (rounds {:.2} to {:.2}) (target <= {target:.2}): {verdict}",
            r.median, r.min, r.max
        );
    };
    let wall = |m: &Measured| m.0.as_secs_f64();
    if let Some(s100) = find(100) {
        let r = Ratios::of(&s100.apply, &s100.base, wall);
        report("floor", "apply(100) / baseline(100)", r, 2.0);
    }
    if let (Some(s100), Some(s1000)) = (find(100), find(1000)) {
        let (a100, a1000) = (&s100.apply, &s1000.apply);
        let r = Ratios::of(a1000, a100, wall);
        report("linear", "apply(1000) / apply(100)", r, 11.0);
        let r = Ratios::of(a1000, a100, |m| m.1 as f64);
        report("memory", "peak(1000) / peak(100)", r, 2.0);
    }
}

/// A ratio taken round by round (the two runs of a round are made moments apart, so a machine
/// whose speed drifts over minutes moves both), and the median and range of the rounds'.
#[derive(Clone, Copy)]
struct Ratios {
    median: f64,
    min: f64,
    max: f64,
}

impl Ratios {
    fn of(top: &[Measured], bottom: &[Measured], value: impl Fn(&Measured) -> f64) -> Ratios {
        let mut r: Vec<f64> = top
            .iter()
            .zip(bottom)
            .map(|(t, b)| value(t) / value(b))
            .collect();
        r.sort_by(f64::total_cmp);
        let half = r.len() / 2;
        Ratios {
            median: match r.len() % 2 {
                1 => r[half],
                _ => (r[half - 1] + r[half]) / 2.0,
            },
            min: r[0],
            max: r[r.len() - 1],
        }
    }
}

/// One assembly size: its measured copies and the runs on them.
struct Size {
    n: usize,
    templates: usize,
    scratch_dir: PathBuf,
    /// Per run, a copy for the baseline and one for cdk-harden.
    copies: Vec<(PathBuf, PathBuf)>,
    base: Vec<Measured>,
    apply: Vec<Measured>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One measured run: wall time, peak RSS in KiB, user and system CPU time.
type Measured = (Duration, u64, Duration, Duration);

/// The run with the median wall time.
fn median(runs: &[Measured]) -> Measured {
    let mut sorted = runs.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// Wall time, peak resident set size (KiB) and CPU times of a child process.
fn measure(cmd: &mut Command) -> Measured {
    cmd.stdout(std::process::Stdio::null());
    let start = Instant::now();
    // Reaped below by wait4, which also reports the child's peak memory.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `usage` is a valid out-parameter.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    assert_eq!(r, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed: {status}"
    );
    let cpu = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (
        elapsed,
        usage.ru_maxrss as u64,
        cpu(usage.ru_utime),
        cpu(usage.ru_stime),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn count_templates(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            n += count_templates(&path);
        } else if path.to_string_lossy().ends_with(".template.json") {
            n += 1;
        }
    }
    n
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Writes an assembly with `n` copies of the example's Dev stage to `out`.
fn generate(example: &Path, out: &Path, n: usize) {
    if out.exists() {
        std::fs::remove_dir_all(out).unwrap();
    }
    std::fs::create_dir_all(out).unwrap();
    let dev = example.join("assembly-PipelineStack-Dev");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dev)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read(&p),
            )
        })
        .collect();
    files.sort();

    // Assets shared by every stage (the Lambda code) are copied once.
    for entry in std::fs::read_dir(example).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("asset.") {
            if entry.path().is_dir() {
                copy_dir(&entry.path(), &out.join(&name));
            } else {
                std::fs::copy(entry.path(), out.join(&name)).unwrap();
            }
        } else if name == "tree.json" || name == "cdk.out" {
            std::fs::copy(entry.path(), out.join(&name)).unwrap();
        }
    }

    // One nested assembly per stage, with the asset ids recomputed: nested, then parent.
    let mut stage_assets = Vec::new();
    for i in 0..n {
        let stage = format!("Stage{i:04}");
        let account = ACCOUNTS[i % ACCOUNTS.len()];
        let rename = |s: &str| {
            s.replace("PipelineStack-Dev", &format!("PipelineStack-{stage}"))
                .replace("PipelineStackDev", &format!("PipelineStack{stage}"))
                .replace("PipelineStack/Dev", &format!("PipelineStack/{stage}"))
                .replace("Dev-Service", &format!("{stage}-Service"))
                .replace("222222222222", account)
        };
        let mut texts: BTreeMap<String, String> =
            files.iter().map(|(n, t)| (rename(n), rename(t))).collect();
        let nested_name = texts
            .keys()
            .find(|k| k.ends_with(".nested.template.json"))
            .unwrap()
            .clone();
        let parent_name = texts
            .keys()
            .find(|k| k.ends_with(".template.json") && !k.ends_with(".nested.template.json"))
            .unwrap()
            .clone();
        let assets_name = texts
            .keys()
            .find(|k| k.ends_with(".assets.json"))
            .unwrap()
            .clone();
        let assets: Value = serde_json::from_str(&texts[&assets_name]).unwrap();
        let id_of = |file: &str| {
            assets["files"]
                .as_object()
                .unwrap()
                .iter()
                .find(|(_, e)| e["source"]["path"] == file)
                .map(|(id, _)| id.clone())
                .unwrap()
        };
        let (nested_old, parent_old) = (id_of(&nested_name), id_of(&parent_name));
        let nested_new = sha256_hex(texts[&nested_name].as_bytes());
        let parent_text = texts[&parent_name].replace(&nested_old, &nested_new);
        let parent_new = sha256_hex(parent_text.as_bytes());
        texts.insert(parent_name.clone(), parent_text);
        for name in [assets_name.clone(), "manifest.json".to_string()] {
            let t = texts[&name]
                .replace(&nested_old, &nested_new)
                .replace(&parent_old, &parent_new);
            texts.insert(name, t);
        }
        let dir = format!("assembly-PipelineStack-{stage}");
        for (name, text) in &texts {
            write(&out.join(&dir).join(name), text);
        }
        stage_assets.push((stage, account, dir, assets_name, nested_new, parent_name));
    }

    // The root manifest: one nested assembly artifact per stage instead of Dev, UAT, Prod.
    let mut manifest: Value = serde_json::from_str(&read(&example.join("manifest.json"))).unwrap();
    let artifacts = manifest["artifacts"].as_object_mut().unwrap();
    let mut rebuilt = serde_json::Map::new();
    for (stage, _, dir, ..) in &stage_assets {
        rebuilt.insert(
            dir.clone(),
            json!({"type": "cdk:cloud-assembly", "properties": {"directoryName": dir, "displayName": format!("PipelineStack/{stage}")}}),
        );
    }
    for (k, v) in artifacts.iter() {
        if !k.starts_with("assembly-") {
            rebuilt.insert(k.clone(), v.clone());
        }
    }
    *artifacts = rebuilt;

    // The pipeline: one deploy stage and one nested-template publishing project per stage.
    let mut pipeline: Value =
        serde_json::from_str(&read(&example.join("PipelineStack.template.json"))).unwrap();
    let resources = pipeline["Resources"].as_object_mut().unwrap();
    let pipeline_id = resources
        .iter()
        .find(|(_, r)| r["Type"] == "AWS::CodePipeline::Pipeline")
        .map(|(k, _)| k.clone())
        .unwrap();
    let (project_id, project) = resources
        .iter()
        .find(|(_, r)| {
            r["Type"] == "AWS::CodeBuild::Project"
                && r.to_string().contains("PipelineStack-Dev/")
                && r.to_string().matches("cdk-assets --path").count() == 1
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .expect("the Dev nested template's publishing project");
    let dev_assets = std::fs::read_dir(&dev)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".assets.json"))
        .unwrap();
    let dev_nested_id = {
        let assets: Value = serde_json::from_str(&read(&dev.join(&dev_assets))).unwrap();
        assets["files"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, e)| {
                e["source"]["path"]
                    .as_str()
                    .unwrap()
                    .ends_with(".nested.template.json")
            })
            .map(|(id, _)| id.clone())
            .unwrap()
    };
    // Drop the example's per-stage publishing projects (those naming one stage's manifest).
    let per_stage: Vec<String> = resources
        .iter()
        .filter(|(_, r)| {
            r["Type"] == "AWS::CodeBuild::Project"
                && r.to_string().matches("cdk-assets --path").count() == 1
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in &per_stage {
        resources.remove(k);
    }
    for (i, (stage, account, dir, assets_name, nested_id, _)) in stage_assets.iter().enumerate() {
        let text = project
            .to_string()
            .replace(
                &format!("assembly-PipelineStack-Dev/{dev_assets}"),
                &format!("{dir}/{assets_name}"),
            )
            .replace(&dev_nested_id, nested_id)
            .replace("222222222222", account);
        let _ = stage;
        resources.insert(
            format!("{project_id}S{i:04}"),
            serde_json::from_str(&text).unwrap(),
        );
    }
    let stages = pipeline["Resources"][&pipeline_id]["Properties"]["Stages"]
        .as_array_mut()
        .unwrap();
    let dev_stage = stages.iter().find(|s| s["Name"] == "Dev").unwrap().clone();
    let mut assets_stage = stages
        .iter()
        .find(|s| s["Name"] == "Assets")
        .unwrap()
        .clone();
    let template_action = assets_stage["Actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a.to_string().contains(&format!("\"{project_id}\"")))
        .unwrap()
        .clone();
    let mut actions: Vec<Value> = assets_stage["Actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            !per_stage
                .iter()
                .any(|p| a.to_string().contains(&format!("\"{p}\"")))
        })
        .cloned()
        .collect();
    for i in 0..n {
        let text = template_action
            .to_string()
            .replace(
                &format!("\"{project_id}\""),
                &format!("\"{project_id}S{i:04}\""),
            )
            .replace(
                "Storage_Nested_Stack_Template",
                &format!("Stage{i:04}_Nested_Stack_Template"),
            );
        actions.push(serde_json::from_str(&text).unwrap());
    }
    assets_stage["Actions"] = Value::Array(actions);
    let mut new_stages: Vec<Value> = stages
        .iter()
        .filter(|s| ["Source", "Build", "UpdatePipeline"].contains(&s["Name"].as_str().unwrap()))
        .cloned()
        .collect();
    new_stages.push(assets_stage);
    for (stage, account, dir, _, _, parent_name) in &stage_assets {
        let dev_parent = std::fs::read_dir(&dev)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|n| n.ends_with(".template.json") && !n.ends_with(".nested.template.json"))
            .unwrap();
        let text = dev_stage
            .to_string()
            .replace(
                &format!("assembly-PipelineStack-Dev/{dev_parent}"),
                &format!("{dir}/{parent_name}"),
            )
            .replace("\"Dev\"", &format!("\"{stage}\""))
            .replace("Dev-Service", &format!("{stage}-Service"))
            .replace("222222222222", account);
        new_stages.push(serde_json::from_str(&text).unwrap());
    }
    *stages = new_stages;

    let pipeline_text = to_cdk_json(&pipeline);
    let pipeline_assets_text = read(&example.join("PipelineStack.assets.json"));
    let pipeline_assets: Value = serde_json::from_str(&pipeline_assets_text).unwrap();
    let old_id = pipeline_assets["files"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, e)| e["source"]["path"] == "PipelineStack.template.json")
        .map(|(id, _)| id.clone())
        .unwrap();
    let new_id = sha256_hex(pipeline_text.as_bytes());
    write(&out.join("PipelineStack.template.json"), &pipeline_text);
    write(
        &out.join("PipelineStack.assets.json"),
        &pipeline_assets_text.replace(&old_id, &new_id),
    );
    let manifest_text = serde_json::to_string_pretty(&manifest)
        .unwrap()
        .replace(&old_id, &new_id);
    write(&out.join("manifest.json"), &manifest_text);
}
