//! Keeping asset ids honest after templates change.
//!
//! CDK publishes every template as a file asset whose object key is its asset id, and
//! cdk-assets skips an upload when the key already exists. A template changed under its old id
//! would silently deploy the old bytes. So every changed template gets a new id, the SHA-256
//! of its new bytes, and every reference to the old id in the assembly is replaced:
//! the asset manifest entry and its destinations' `objectKey`, the manifest's
//! `stackTemplateAssetObjectUrl`, a parent's `TemplateURL`, CDK Pipelines' `cdk-assets publish`
//! commands, and the construct tree.
//!
//! A template that names a changed id changes too, so templates are re-hashed leaves first:
//! nested stacks, then their parents, then the pipeline that publishes them. Ids are opaque
//! strings: CDK's id for a nested template is not the hash of its file, so nothing here ever
//! recomputes an old id, it only finds and replaces it.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::format::to_cdk_json;
use super::{Assembly, RelPath};
use crate::error::{Error, Result};

/// One asset id that changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Renamed {
    /// The template it publishes.
    pub template: RelPath,
    pub old: String,
    pub new: String,
}

/// The final text of every file that changes, and the ids that were replaced.
#[derive(Debug, Default)]
pub struct Rehashed {
    /// Templates in the order they must be written: leaves first.
    pub templates: Vec<(usize, String)>,
    /// Manifests, asset manifests and the tree: (path, new text).
    pub others: Vec<(RelPath, String)>,
    pub renamed: Vec<Renamed>,
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Computes the final bytes of every file that must change when the templates in `changed`
/// (index into [`Assembly::stacks`] → new template) are written.
pub fn rehash(
    assembly: &Assembly,
    changed: &BTreeMap<usize, serde_json::Value>,
) -> Result<Rehashed> {
    let stacks = &assembly.stacks;
    // The current text of every template: new for changed ones.
    use rayon::prelude::*;
    let changed: Vec<(&usize, &serde_json::Value)> = changed.iter().collect();
    let mut text: BTreeMap<usize, String> = changed
        .par_iter()
        .map(|&(&i, v)| (i, to_cdk_json(v)))
        .filter(|(i, t)| *t != stacks[*i].original)
        .collect::<Vec<_>>()
        .into_iter()
        .collect();

    // Which template's ids does each template name?
    let id_owner: BTreeMap<&str, usize> = stacks
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.assets.iter().map(move |a| (a.id.as_str(), i)))
        .collect();
    let current = |i: usize, text: &BTreeMap<usize, String>| -> String {
        text.get(&i)
            .cloned()
            .unwrap_or_else(|| stacks[i].original.clone())
    };
    // Ids that are not 64 hex digits cannot be found by the hex scan; CDK writes none.
    let opaque: Vec<(&str, usize)> = id_owner
        .iter()
        .filter(|(id, _)| !is_hex64(id))
        .map(|(&id, &o)| (id, o))
        .collect();
    let mentions: Vec<BTreeSet<usize>> = (0..stacks.len())
        .into_par_iter()
        .map(|i| {
            let t = text
                .get(&i)
                .map(String::as_str)
                .unwrap_or(&stacks[i].original);
            find_ids(t, &id_owner, &opaque)
                .into_iter()
                .filter(|&o| o != i)
                .collect()
        })
        .collect();
    let mut mentioned_by: Vec<Vec<usize>> = vec![Vec::new(); stacks.len()];
    for (i, m) in mentions.iter().enumerate() {
        for &o in m {
            mentioned_by[o].push(i);
        }
    }

    // Every template that names a dirty template is dirty too.
    let mut dirty: BTreeSet<usize> = text.keys().copied().collect();
    let mut queue: Vec<usize> = dirty.iter().copied().collect();
    while let Some(d) = queue.pop() {
        for &i in &mentioned_by[d] {
            if dirty.insert(i) {
                queue.push(i);
            }
        }
    }

    // Leaves first: a template is finished after every dirty template it names.
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    for &d in &dirty {
        visit(d, &dirty, &mentions, &mut done, &mut order);
    }

    // A changed template deployed from an asset needs an asset entry to re-hash.
    if let Some(&i) = dirty
        .iter()
        .find(|&&i| stacks[i].published && stacks[i].assets.is_empty())
    {
        return Err(Error::UnpublishedTemplate {
            template: stacks[i].template_path.to_string(),
        });
    }
    let mut map = Renames::default();
    let mut owner_of_new: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Rehashed::default();
    for i in order {
        let new_text = map.apply(&current(i, &text));
        let new_id = sha256_hex(new_text.as_bytes());
        for asset in &stacks[i].assets {
            if asset.id == new_id {
                continue;
            }
            if let Some(prev) = map.get(&asset.id) {
                if *prev != new_id {
                    let other = owner_of_new[&asset.id];
                    return Err(Error::AmbiguousAsset {
                        id: asset.id.clone(),
                        first: stacks[other].template_path.to_string(),
                        second: stacks[i].template_path.to_string(),
                    });
                }
                continue;
            }
            map.insert(asset.id.clone(), new_id.clone());
            owner_of_new.insert(asset.id.clone(), i);
            out.renamed.push(Renamed {
                template: stacks[i].template_path.clone(),
                old: asset.id.clone(),
                new: new_id.clone(),
            });
        }
        text.insert(i, new_text.clone());
        out.templates.push((i, new_text));
    }

    if map.is_empty() {
        return Ok(out);
    }
    // Asset manifests and manifests are in memory; the tree and metadata files are read here.
    // Manifests last: a manifest names the template it deploys, so it is the final word.
    let mut others: Vec<(&RelPath, Option<&str>)> = Vec::new();
    others.extend(
        assembly
            .asset_manifests
            .iter()
            .map(|m| (&m.path, Some(m.text.as_str()))),
    );
    others.extend(assembly.reference_files.iter().map(|p| (p, None)));
    others.extend(
        assembly
            .dirs
            .iter()
            .map(|d| (&d.manifest_path, Some(d.manifest_text.as_str()))),
    );
    let mut seen = BTreeSet::new();
    others.retain(|(p, _)| seen.insert(*p));
    let rewritten: Vec<Result<Option<(RelPath, String)>>> = others
        .par_iter()
        .map(|&(path, known)| {
            let original = match known {
                Some(t) => std::borrow::Cow::Borrowed(t),
                None => std::borrow::Cow::Owned(read_text(&path.under(&assembly.root))?),
            };
            let new = map.apply(&original);
            Ok((new != *original).then(|| (path.clone(), new)))
        })
        .collect();
    for r in rewritten {
        out.others.extend(r?);
    }
    Ok(out)
}

fn read_text(file: &std::path::Path) -> Result<String> {
    let bytes = Error::read(file)?;
    String::from_utf8(bytes).map_err(|e| Error::Json {
        path: file.to_path_buf(),
        line: 0,
        column: e.utf8_error().valid_up_to(),
        message: "not UTF-8".into(),
    })
}

fn visit(
    i: usize,
    dirty: &BTreeSet<usize>,
    mentions: &[BTreeSet<usize>],
    done: &mut BTreeSet<usize>,
    order: &mut Vec<usize>,
) {
    if !done.insert(i) {
        return;
    }
    for &m in &mentions[i] {
        if dirty.contains(&m) {
            visit(m, dirty, mentions, done, order);
        }
    }
    order.push(i);
}

/// The owners of every known id that occurs in `text`. Ids are found as maximal runs of
/// hex digits (CDK's ids are 64 of them) in one pass; ids of any other form are searched for.
fn find_ids(
    text: &str,
    owners: &BTreeMap<&str, usize>,
    opaque: &[(&str, usize)],
) -> BTreeSet<usize> {
    let mut found = BTreeSet::new();
    for run in hex_runs(text) {
        if let Some(&o) = owners.get(run) {
            found.insert(o);
        }
    }
    for &(id, o) in opaque {
        if text.contains(id) {
            found.insert(o);
        }
    }
    found
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The candidate ids in `text`: the last 64 characters of every run of 64 or more hex digits.
/// An id may follow other hex digits (an S3 `bucketPrefix` such as `team-a` is written right
/// before the id in object keys and URLs) but never continues into more hex digits.
fn hex_runs(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            if bytes[i].is_ascii_hexdigit() {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
                    i += 1;
                }
                if i - start >= 64 {
                    return Some(&text[i - 64..i]);
                }
            } else {
                i += 1;
            }
        }
        None
    })
}

/// The asset ids replaced so far: old → new.
///
/// Ids of 64 hex digits (all CDK writes) are found in one scan over hex runs and looked up in
/// a hash map; any other id is searched for as a plain string.
#[derive(Debug, Default)]
pub struct Renames {
    hex: std::collections::HashMap<String, String>,
    opaque: Vec<(String, String)>,
}

impl Renames {
    pub fn insert(&mut self, old: String, new: String) {
        if is_hex64(&old) {
            self.hex.insert(old, new);
        } else {
            self.opaque.push((old, new));
        }
    }

    pub fn get(&self, old: &str) -> Option<&String> {
        self.hex
            .get(old)
            .or_else(|| self.opaque.iter().find(|(o, _)| o == old).map(|(_, n)| n))
    }

    pub fn is_empty(&self) -> bool {
        self.hex.is_empty() && self.opaque.is_empty()
    }

    /// `text` with every old id replaced by its new id.
    pub fn apply(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let bytes = text.as_bytes();
        let mut last = 0;
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_hexdigit() {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
                    i += 1;
                }
                if i - start < 64 {
                    continue;
                }
                // The id is the run's last 64 digits (see `hex_runs`).
                let id_start = i - 64;
                if let Some(new) = self.hex.get(&text[id_start..i]) {
                    out.push_str(&text[last..id_start]);
                    out.push_str(new);
                    last = i;
                }
            } else {
                i += 1;
            }
        }
        out.push_str(&text[last..]);
        for (old, new) in &self.opaque {
            out = out.replace(old.as_str(), new);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn sha256_of_empty_input() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn substitute_replaces_whole_ids_only() {
        let mut map = Renames::default();
        map.insert(A.to_string(), B.to_string());
        let text = format!("s3://bucket/{A}.json \"{A}:1-eu\" {A}0 x{A} team-a{A}.json");
        let out = map.apply(&text);
        // `{A}0` runs on into another hex digit: not the id. `x{A}` is the id after a non-hex
        // character, `team-a{A}` after a bucket prefix ending in a hex digit.
        assert_eq!(
            out,
            format!("s3://bucket/{B}.json \"{B}:1-eu\" {A}0 x{B} team-a{B}.json")
        );
    }

    #[test]
    fn opaque_ids_are_replaced_too() {
        let mut map = Renames::default();
        map.insert("my-custom-hash".to_string(), B.to_string());
        assert_eq!(map.apply("k/my-custom-hash.json"), format!("k/{B}.json"));
    }
}
