//! The benchmark's floor: read, parse, pretty-print (CDK's one-space format) and atomically
//! write every `*.template.json` below a directory, on one thread, with serde_json — the least
//! any tool that rewrites the templates must do.
//!
//! Usage: `baseline DIR`

use std::path::{Path, PathBuf};

use serde::Serialize;

fn templates(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            templates(&path, out);
        } else if path.to_string_lossy().ends_with(".template.json") {
            out.push(path);
        }
    }
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: baseline DIR"));
    let mut files = Vec::new();
    templates(&dir, &mut files);
    let mut bytes_out = 0;
    for path in &files {
        let bytes = std::fs::read(path).expect("read");
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("parse");
        let mut out = Vec::with_capacity(bytes.len());
        let mut ser = serde_json::Serializer::with_formatter(
            &mut out,
            serde_json::ser::PrettyFormatter::with_indent(b" "),
        );
        value.serialize(&mut ser).expect("serialize");
        let tmp = path.with_extension("baseline.tmp");
        std::fs::write(&tmp, &out).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
        bytes_out += out.len();
    }
    println!("{} templates, {} bytes", files.len(), bytes_out);
}
