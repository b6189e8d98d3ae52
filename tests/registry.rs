//! Issue 3: tests over the whole registry of built-in transforms, and a golden-file fixture
//! test per transform: the transform alone applied to the real example assemblies, the
//! resulting template diff compared with `tests/golden/<id>.diff`.
//!
//! Regenerate the golden files with `UPDATE_GOLDEN=1 cargo test --test registry`.

mod common;

use std::collections::BTreeSet;

use cdk_harden::transform::document::is_kebab;
use cdk_harden::{Assembly, LoadedConfig, Registry, Writer};
use common::*;

#[test]
fn issue_3_ids_are_unique_and_kebab_case() {
    let registry = Registry::builtin().unwrap();
    let mut seen = BTreeSet::new();
    for t in registry.iter() {
        assert!(is_kebab(t.id()), "{}", t.id());
        assert!(seen.insert(t.id().to_string()), "duplicate id {}", t.id());
        assert!(t.builtin);
    }
    assert_eq!(seen.len(), cdk_harden::transform::registry::BUILTINS.len());
}

#[test]
fn issue_3_every_transform_has_an_explanation() {
    let registry = Registry::builtin().unwrap();
    for t in registry.iter() {
        let d = &t.compiled.doc;
        assert!(
            !d.title.trim().is_empty() && !d.rule.trim().is_empty(),
            "{}",
            d.id
        );
        for part in ["**Why.**", "**Before**", "**After**", "**Opt out.**"] {
            assert!(
                d.description.contains(part),
                "`{}` description lacks {part}",
                d.id
            );
        }
        // `explain ID` prints it.
        let o = run(&repo(), &["explain", t.id()]);
        assert_eq!(o.status.code(), Some(0));
        assert!(stdout(&o).contains(&d.description), "{}", d.id);
    }
    let o = run(&repo(), &["explain"]);
    let list = stdout(&o);
    for t in registry.iter() {
        assert!(list.contains(t.id()), "{list}");
    }
    let o = run(&repo(), &["explain", "no-such-transform"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("`no-such-transform`"), "{}", stderr(&o));
}

/// The unified diff of every template the transform `id` alone changes in `app`.
fn diff_of(app: &str, id: &str) -> String {
    let loaded = LoadedConfig::load(Some(&config(app))).unwrap();
    let mut config = loaded.config.clone();
    let registry = Registry::load(&loaded).unwrap();
    config.transforms.disable = registry
        .iter()
        .map(|t| t.id().to_string())
        .filter(|t| t != id)
        .collect();
    let assembly = Assembly::load(fixture(app)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("out");
    let mut writer = Writer::copy(&assembly.root, &copy).unwrap();
    cdk_harden::harden(&assembly, &config, &registry, Some(&mut writer)).unwrap();
    writer.commit().unwrap();
    let mut out = String::new();
    for stack in &assembly.stacks {
        let path = &stack.template_path;
        let before = std::fs::read_to_string(path.under(&assembly.root)).unwrap();
        let after = std::fs::read_to_string(path.under(&copy)).unwrap();
        if before == after {
            continue;
        }
        let diff = similar::TextDiff::from_lines(&before, &after);
        out.push_str(
            &diff
                .unified_diff()
                .context_radius(3)
                .header(&format!("a/{app}/{path}"), &format!("b/{app}/{path}"))
                .to_string(),
        );
        out.push('\n');
    }
    out
}

#[test]
fn issue_3_every_transform_has_a_golden_fixture_test() {
    let registry = Registry::builtin().unwrap();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for t in registry.iter() {
        let mut diff = String::new();
        for app in ["pipelines", "shapes"] {
            diff.push_str(&diff_of(app, t.id()));
        }
        assert!(
            diff.contains("\n+"),
            "`{}` changes nothing in the example assemblies: every transform needs a fixture that exercises it",
            t.id()
        );
        let path = repo().join("tests/golden").join(format!("{}.diff", t.id()));
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &diff).unwrap();
        }
        if std::fs::read_to_string(&path).unwrap_or_default() != diff {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "golden diffs differ (review, then `UPDATE_GOLDEN=1 cargo test --test registry`): {stale:#?}"
    );
}
