//! Helpers shared by the integration tests: fixtures, the real binary, JSON access.
#![allow(dead_code)]

pub mod validators;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The committed, synthesized assembly of an example app (`pipelines`, `shapes`, `secrets`).
pub fn fixture(app: &str) -> PathBuf {
    repo().join("examples").join(app).join("cdk.out")
}

/// The example app's cdk-harden.json.
pub fn config(app: &str) -> PathBuf {
    repo().join("examples").join(app).join("cdk-harden.json")
}

/// A fresh copy of a fixture in a temporary directory; the copy is at `dir.path()/cdk.out`.
pub fn copy_fixture(app: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("cdk.out");
    copy_dir(&fixture(app), &out);
    (dir, out)
}

pub fn copy_dir(from: &Path, to: &Path) {
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

/// Every file below `dir`, relative, with its bytes, sorted.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            walk(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, std::fs::read(&path).unwrap()));
        }
    }
}

/// The cdk-harden binary built for these tests.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdk-harden"));
    cmd.env_remove("NO_COLOR").env_remove("CDK_HARDEN_FAULT");
    cmd
}

/// Runs the binary with `args` in `cwd`.
pub fn run(cwd: &Path, args: &[&str]) -> Output {
    bin()
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run cdk-harden")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Applies the example's config to a copy of its fixture with the library; returns the copy.
pub fn hardened(app: &str) -> (tempfile::TempDir, PathBuf, cdk_harden::Outcome) {
    let (dir, out) = copy_fixture(app);
    let outcome = cdk_harden::run(&cdk_harden::Options {
        assembly: out.clone(),
        config: Some(config(app)),
        out: None,
        mode: cdk_harden::Mode::Apply,
    })
    .unwrap_or_else(|e| panic!("apply {app}: {e}"));
    (dir, out, outcome)
}

/// A template of an example, parsed: as the fixture has it, and as a hardened copy at `out`
/// has it.
pub fn before_after(app: &str, out: &Path, template: &str) -> (Value, Value) {
    (
        read_json(&fixture(app).join(template)),
        read_json(&out.join(template)),
    )
}

/// Every template of an assembly (stack and nested), relative path → parsed template.
pub fn templates(root: &Path) -> Vec<(String, Value)> {
    let assembly = cdk_harden::Assembly::load(root).expect("load");
    (0..assembly.stacks.len())
        .map(|i| {
            let path = assembly.stacks[i].template_path.to_string();
            (path, assembly.read_template(i).expect("read").value)
        })
        .collect()
}

/// The resources of a template with the given type: (logical id, resource).
pub fn resources_of<'a>(template: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    template["Resources"]
        .as_object()
        .map(|m| m.iter().filter(|(_, r)| r["Type"] == kind).collect())
        .unwrap_or_default()
}

/// What the library needs to harden `app`'s example config over the assembly at `root`: the
/// loaded config, its registry and the assembly.
pub fn library_inputs(
    app: &str,
    root: &Path,
) -> (
    cdk_harden::LoadedConfig,
    cdk_harden::Registry,
    cdk_harden::Assembly,
) {
    let loaded = cdk_harden::LoadedConfig::load(Some(&config(app))).unwrap();
    let registry = cdk_harden::Registry::load(&loaded).unwrap();
    (loaded, registry, cdk_harden::Assembly::load(root).unwrap())
}

/// Runs the binary in `cwd` with `args` and asserts that it fails with exit 2, that stderr
/// mentions every needle, and that the assembly at `watched` is byte-identical afterwards.
/// Returns stderr.
pub fn assert_refused(cwd: &Path, args: &[&str], needles: &[&str], watched: &Path) -> String {
    let before = snapshot(watched);
    let o = run(cwd, args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "stderr lacks `{needle}`: {err}");
    }
    assert!(snapshot(watched) == before, "the assembly was modified");
    err
}

/// Applies the example's config (in place, with the library) to an assembly already hardened
/// with it, for idempotence tests.
pub fn apply_again(root: &Path, app: &str) -> cdk_harden::Outcome {
    cdk_harden::run(&cdk_harden::Options {
        assembly: root.to_path_buf(),
        config: Some(config(app)),
        out: None,
        mode: cdk_harden::Mode::Apply,
    })
    .unwrap_or_else(|e| panic!("apply {app} again: {e}"))
}

/// Runs `apply cdk.out --config <the app's config> --out OUT` in `cwd`.
pub fn apply_copy(cwd: &Path, app: &str, out: &str) -> Output {
    let config = config(app);
    let args = [
        "apply",
        "cdk.out",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out,
    ];
    run(cwd, &args)
}

/// Runs `apply . --config <the app's config>` in the assembly `root`, in place.
pub fn apply_in_place(root: &Path, app: &str) -> Output {
    run(
        root,
        &["apply", ".", "--config", config(app).to_str().unwrap()],
    )
}

/// The bytes of the file `name` in a [`snapshot`].
pub fn file_in<'a>(snapshot: &'a [(String, Vec<u8>)], name: &str) -> &'a Vec<u8> {
    let found = snapshot.iter().find(|(p, _)| p == name);
    &found
        .unwrap_or_else(|| panic!("{name} is not in the snapshot"))
        .1
}

/// Applies the example's config with `setting` removed from its `environments[env]` entry, and
/// asserts the run is refused (exit 2, every needle in stderr, nothing written).
pub fn assert_refused_without(app: &str, env: &str, setting: &str, needles: &[&str]) {
    assert_refused_with(
        app,
        |config| {
            let removed = config["environments"][env]
                .as_object_mut()
                .and_then(|e| e.remove(setting));
            assert!(
                removed.is_some(),
                "the {app} config sets `{setting}` for `{env}`"
            );
        },
        needles,
    );
}

/// Applies the example's config as `edit` changes it, and asserts the run is refused (exit 2,
/// every needle in stderr, nothing written).
pub fn assert_refused_with(app: &str, edit: impl FnOnce(&mut Value), needles: &[&str]) {
    let (dir, out) = copy_fixture(app);
    let mut config = read_json(&config(app));
    edit(&mut config);
    let path = dir.path().join("edited.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let args = [
        "apply",
        out.to_str().unwrap(),
        "--config",
        path.to_str().unwrap(),
    ];
    assert_refused(dir.path(), &args, needles, &out);
}

/// The changes a run recorded for one transform.
pub fn changes_of(
    outcome: &cdk_harden::Outcome,
    transform: &str,
) -> Vec<cdk_harden::transform::Applied> {
    outcome
        .report
        .stacks()
        .flat_map(|s| s.into_owned().changes)
        .filter(|c| c.transform == transform)
        .collect()
}
