//! The README is the user's manual: its transform table comes from the same documents as
//! `cdk-harden explain`, and its two set-up commands are the ones CI runs.

mod common;

use cdk_harden::Registry;
use common::repo;

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

#[test]
fn the_transform_table_matches_the_registry() {
    let readme = readme();
    for t in Registry::builtin().unwrap().iter() {
        let d = &t.compiled.doc;
        let row = format!("| `{}` | {} | {} |", d.id, d.title, d.rule);
        assert!(readme.contains(&row), "README lacks the row:\n{row}");
    }
}

#[test]
fn the_setup_commands_are_first_and_ci_runs_the_test_command() {
    let readme = readme();
    let setup = readme.find("## Set up").expect("a Set up section");
    let blocks: Vec<&str> = readme[setup..]
        .split("```sh\n")
        .skip(1)
        .take(2)
        .map(|b| b.split("\n```").next().unwrap())
        .collect();
    assert!(
        blocks[0].starts_with("cargo run --release -- apply examples/"),
        "{blocks:?}"
    );
    assert_eq!(blocks[1], "scripts/test.sh");
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(ci.contains("scripts/test.sh"), "{ci}");
}
