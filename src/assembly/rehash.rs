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

use std::collections::BTreeSet;

use foldhash::{HashMap, HashSet};

use sha2::{Digest, Sha256};

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

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// The template asset ids of an assembly, to find which of them a text names.
#[derive(Debug, Default)]
pub struct Ids {
    hex: HashSet<String>,
    /// Ids that are not 64 hex digits cannot be found by the hex scan; CDK writes none.
    opaque: Vec<String>,
}

impl Ids {
    pub fn new<'a>(ids: impl IntoIterator<Item = &'a str>) -> Ids {
        let mut out = Ids::default();
        for id in ids {
            if is_hex64(id) {
                out.hex.insert(id.to_string());
            } else if !out.opaque.iter().any(|o| o == id) {
                out.opaque.push(id.to_string());
            }
        }
        out
    }

    /// The known ids that occur in `text`, sorted. Ids are found as maximal runs of hex digits
    /// in one pass; ids of any other form are searched for.
    pub fn named_in(&self, text: &str) -> Vec<String> {
        let mut found: BTreeSet<&str> = hex_runs(text).filter(|r| self.hex.contains(*r)).collect();
        found.extend(
            self.opaque
                .iter()
                .filter(|id| text.contains(id.as_str()))
                .map(String::as_str),
        );
        found.into_iter().map(str::to_string).collect()
    }
}

/// The order templates are finished in: waves, leaves first. A template is in a later wave than
/// every template whose asset id it names, so when a wave starts, the final ids of everything
/// its templates name are known. Templates within a wave are independent; each wave lists them
/// in stack order.
pub fn waves(assembly: &Assembly) -> Vec<Vec<usize>> {
    let stacks = &assembly.stacks;
    let owner: HashMap<&str, usize> = stacks
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.assets.iter().map(move |a| (a.id.as_str(), i)))
        .collect();
    let named: Vec<Vec<usize>> = stacks
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut named: Vec<usize> = s
                .mentions
                .iter()
                .filter_map(|id| owner.get(id.as_str()).copied())
                .filter(|&o| o != i)
                .collect();
            named.sort_unstable();
            named.dedup();
            named
        })
        .collect();
    let mut wave: Vec<Wave> = vec![Wave::Unknown; stacks.len()];
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in 0..stacks.len() {
        let w = wave_of(i, &named, &mut wave);
        if out.len() <= w {
            out.resize(w + 1, Vec::new());
        }
        out[w].push(i);
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Wave {
    Unknown,
    Visiting,
    Known(usize),
}

/// Depth-first, with a stack of its own (a chain of nested stacks may be deep); a cycle (which
/// a real assembly cannot have: each id hashes the bytes that name the other) is cut where it
/// closes.
fn wave_of(i: usize, named: &[Vec<usize>], wave: &mut [Wave]) -> usize {
    if let Wave::Known(w) = wave[i] {
        return w;
    }
    // Each template being visited, and how many of the templates it names are done.
    let mut path: Vec<(usize, usize)> = vec![(i, 0)];
    wave[i] = Wave::Visiting;
    while let Some(&mut (at, ref mut next)) = path.last_mut() {
        if let Some(&n) = named[at].get(*next) {
            *next += 1;
            if let Wave::Unknown = wave[n] {
                wave[n] = Wave::Visiting;
                path.push((n, 0));
            }
            continue;
        }
        // Every template `at` names is known now, but those on the path (a cycle).
        let w = named[at]
            .iter()
            .filter_map(|&n| match wave[n] {
                Wave::Known(w) => Some(w + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        wave[at] = Wave::Known(w);
        path.pop();
    }
    match wave[i] {
        Wave::Known(w) => w,
        _ => unreachable!("the walk ends with its first template known"),
    }
}

/// The ids replaced so far, and the templates they belong to.
#[derive(Debug, Default)]
pub struct Rehash {
    renames: Renames,
    owner_of_new: HashMap<String, usize>,
    /// Every replaced id, in the order templates were finished.
    pub renamed: Vec<Renamed>,
}

impl Rehash {
    /// A template's final text: `text` (as hardened) with the new id of every template it names.
    pub fn finish(&self, text: &str) -> String {
        self.renames.apply(text)
    }

    /// [`Rehash::finish`] on a text given up: ids of the same length as their replacements
    /// (all SHA-256 ids) are replaced in place, so a large template's text is not copied.
    pub fn finish_owned(&self, text: String) -> String {
        self.renames.apply_owned(text)
    }

    /// Records that the template of `stacks[index]` changed and its final bytes hash to
    /// `new_id`: every asset entry publishing it gets the new id.
    ///
    /// Fails if the template is deployed from an asset but has no asset entry to re-hash, or
    /// if its old id is shared with a template that hashes differently.
    pub fn record(&mut self, assembly: &Assembly, index: usize, new_id: &str) -> Result<()> {
        let stack = &assembly.stacks[index];
        if stack.published && stack.assets.is_empty() {
            return Err(Error::UnpublishedTemplate {
                template: stack.template_path.to_string(),
            });
        }
        for asset in &stack.assets {
            if asset.id == new_id {
                continue;
            }
            if let Some(prev) = self.renames.get(&asset.id) {
                if prev != new_id {
                    let other = self.owner_of_new[&asset.id];
                    return Err(Error::AmbiguousAsset {
                        id: asset.id.clone(),
                        first: assembly.stacks[other].template_path.to_string(),
                        second: stack.template_path.to_string(),
                    });
                }
                continue;
            }
            self.renames.insert(asset.id.clone(), new_id.to_string());
            self.owner_of_new.insert(asset.id.clone(), index);
            self.renamed.push(Renamed {
                template: stack.template_path.clone(),
                old: asset.id.clone(),
                new: new_id.to_string(),
            });
        }
        Ok(())
    }

    /// Rewrites the other files that name a replaced id: asset manifests, the tree and
    /// metadata files, then the manifests (last: a manifest names the template it deploys, so
    /// it is the final word). Each is read and handed to `put` (which stages it) with its new
    /// ids, on every core, so no more than one file per thread is held; what `put` returns
    /// comes back in that order, for the files that changed. With `edit_in_place`, a file that
    /// can be edited where it is, and whose ids are all replaced by ids as long, is handed over
    /// as those edits: a stage's manifest is tens of kilobytes of feature flags around one id.
    pub fn rewrite_others<T: Send>(
        &self,
        assembly: &Assembly,
        edit_in_place: bool,
        put: impl Fn(&RelPath, Rewrite<'_>) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        use rayon::prelude::*;
        if self.renames.is_empty() {
            return Ok(Vec::new());
        }
        let mut others: Vec<&RelPath> = Vec::new();
        others.extend(assembly.asset_manifests.iter().map(|m| &m.path));
        others.extend(&assembly.reference_files);
        others.extend(assembly.dirs.iter().map(|d| &d.manifest_path));
        let mut seen = BTreeSet::new();
        others.retain(|p| seen.insert(*p));
        let rewritten: Vec<Result<Option<T>>> = others
            .par_iter()
            .map(|&path| {
                let file = path.under(&assembly.root);
                let read = Error::read_file(&file)?;
                let editable = read.editable && edit_in_place;
                let original = Error::utf8(&file, read.bytes)?;
                if let Some(edits) = editable.then(|| self.renames.edits(&original)).flatten() {
                    if edits.is_empty() {
                        return Ok(None);
                    }
                    if let Some(stamp) = read.stamp.filter(|_| crate::error::writable(&file)) {
                        return put(path, Rewrite::InPlace { edits, stamp }).map(Some);
                    }
                }
                let new = self.renames.apply(&original);
                (new != original)
                    .then(|| {
                        let permissions = &read.permissions;
                        put(
                            path,
                            Rewrite::Whole {
                                text: &new,
                                permissions,
                            },
                        )
                    })
                    .transpose()
            })
            .collect();
        rewritten
            .into_iter()
            .filter_map(Result::transpose)
            .collect()
    }
}

/// Makes `edits` ([`Renames::edits`]) in `bytes`.
fn make_edits(bytes: &mut [u8], edits: &[(u64, String)]) {
    for (at, id) in edits {
        let at = *at as usize;
        bytes[at..at + id.len()].copy_from_slice(id.as_bytes());
    }
}

/// How a file other than a template gets its new ids ([`Rehash::rewrite_others`]).
#[derive(Debug)]
pub enum Rewrite<'a> {
    /// Its new text, to take its place, with its permissions.
    Whole {
        text: &'a str,
        permissions: &'a std::fs::Permissions,
    },
    /// Ids to overwrite where they are: the byte offset of each and the new id, as long as the
    /// id it replaces; and what the file was when read, for the edit to check it still is.
    InPlace {
        edits: Vec<(u64, String)>,
        stamp: crate::error::Stamp,
    },
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The candidate ids in `text`: the last 64 characters of every run of 64 or more hex digits.
/// An id may follow other hex digits (an S3 `bucketPrefix` such as `team-a` is written right
/// before the id in object keys and URLs) but never continues into more hex digits.
fn hex_runs(text: &str) -> impl Iterator<Item = &str> {
    hex_run_ends(text.as_bytes()).map(move |end| &text[end - 64..end])
}

/// Where each run of 64 or more hex digits in `bytes` ends. Skips ahead 64 bytes at a time:
/// a run that starts in `i..i + 64` and is 64 long covers `i + 63`, so when that byte is not
/// a hex digit no such run starts there, and most bytes of a template are never looked at.
fn hex_run_ends(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    // Invariant: `i` is 0 or follows a byte that is not a hex digit.
    let mut i = 0;
    std::iter::from_fn(move || loop {
        let probe = i + 63;
        if probe >= bytes.len() {
            return None;
        }
        if !bytes[probe].is_ascii_hexdigit() {
            i = probe + 1;
            continue;
        }
        let mut start = probe;
        while start > i && bytes[start - 1].is_ascii_hexdigit() {
            start -= 1;
        }
        let mut end = probe + 1;
        while end < bytes.len() && bytes[end].is_ascii_hexdigit() {
            end += 1;
        }
        i = end;
        if end - start >= 64 {
            return Some(end);
        }
    })
}

/// The asset ids replaced so far: old → new.
///
/// Ids of 64 hex digits (all CDK writes) are found in one scan over hex runs and looked up in
/// a hash map; any other id is searched for as a plain string.
#[derive(Debug, Default)]
pub struct Renames {
    hex: HashMap<String, String>,
    opaque: Vec<(String, String)>,
    /// Some hex id's replacement is not 64 bytes long, so texts cannot be rewritten in place.
    uneven: bool,
}

impl Renames {
    pub fn insert(&mut self, old: String, new: String) {
        if is_hex64(&old) {
            self.uneven |= new.len() != old.len();
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

    /// [`Renames::apply`], in place where the new ids are as long as the old.
    pub fn apply_owned(&self, text: String) -> String {
        let Some(edits) = self.edits(&text) else {
            return self.apply(&text);
        };
        let mut bytes = text.into_bytes();
        make_edits(&mut bytes, &edits);
        String::from_utf8(bytes).expect("ASCII digits replaced by ASCII digits")
    }

    /// The edits that turn `text` into [`Renames::apply`]'s result where it is: the byte
    /// offset of each replaced id and its new id, as long as the old. `None` if an id could be
    /// replaced by one of another length (an opaque id, or a hex id given an id of other length).
    pub fn edits(&self, text: &str) -> Option<Vec<(u64, String)>> {
        if !self.opaque.is_empty() || self.uneven {
            return None;
        }
        let edits = hex_run_ends(text.as_bytes()).filter_map(|end| {
            let start = end - 64;
            let new = self.hex.get(&text[start..end])?;
            Some((start as u64, new.clone()))
        });
        Some(edits.collect())
    }

    /// `text` with every old id replaced by its new id.
    pub fn apply(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for end in hex_run_ends(text.as_bytes()) {
            // The id is the run's last 64 digits (see `hex_runs`).
            let start = end - 64;
            if let Some(new) = self.hex.get(&text[start..end]) {
                out.push_str(&text[last..start]);
                out.push_str(new);
                last = end;
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

    /// The byte-by-byte scan `hex_run_ends` must agree with.
    fn naive_run_ends(bytes: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_hexdigit() {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_hexdigit() {
                    i += 1;
                }
                if i - start >= 64 {
                    out.push(i);
                }
            } else {
                i += 1;
            }
        }
        out
    }

    #[test]
    fn skipping_scan_finds_the_runs_a_full_scan_finds() {
        // Runs of every length around 64, at every offset, between separators and not.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let mut text = String::new();
            while text.len() < 400 {
                let n = (next() % 140) as usize;
                text.extend((0..n).map(|k| b"0123456789abcdefABCDEF"[(k + n) % 22] as char));
                text.push(['"', '/', 'x', '-', 'g'][(next() % 5) as usize]);
            }
            let cut = (next() % 40) as usize;
            let text = &text[..text.len() - cut];
            let fast: Vec<usize> = hex_run_ends(text.as_bytes()).collect();
            assert_eq!(fast, naive_run_ends(text.as_bytes()), "{text}");
        }
        assert_eq!(hex_run_ends(A.as_bytes()).collect::<Vec<_>>(), vec![64]);
        assert_eq!(hex_run_ends(&A.as_bytes()[1..]).count(), 0);
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    /// Waves put every template after those it names; a cycle is cut where it closes, and a
    /// chain far deeper than a thread's stack would allow a recursive walk is fine.
    #[test]
    fn issue_2_waves_follow_what_templates_name_without_recursion() {
        let waves_of = |named: &[Vec<usize>]| {
            let mut wave = vec![Wave::Unknown; named.len()];
            (0..named.len())
                .map(|i| wave_of(i, named, &mut wave))
                .collect::<Vec<_>>()
        };
        // 0 names 1 and 2; 2 names 1: leaves first.
        assert_eq!(waves_of(&[vec![1, 2], vec![], vec![1]]), [2, 0, 1]);
        // 0 → 1 → 0: the cycle is cut where it closes, at 0.
        assert_eq!(waves_of(&[vec![1], vec![0]]), [1, 0]);
        let deep = 200_000;
        let chain: Vec<Vec<usize>> = (0..deep)
            .map(|i| if i + 1 < deep { vec![i + 1] } else { vec![] })
            .collect();
        let waves = waves_of(&chain);
        assert_eq!((waves[0], waves[deep - 1]), (deep - 1, 0));
    }

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
        assert_eq!(map.apply_owned(text), out, "in place, the same text");
    }

    #[test]
    fn issue_8_in_place_replacement_agrees_with_copying_on_the_example_templates() {
        // Every id the examples' asset manifests publish, renamed to its digits reversed.
        let mut map = Renames::default();
        for manifest in crate::example_files(".assets.json") {
            let text = std::fs::read_to_string(&manifest).unwrap();
            let ids: Vec<&str> = hex_runs(&text).collect();
            for id in ids {
                map.insert(id.to_string(), id.chars().rev().collect());
            }
        }
        assert!(map.hex.len() > 5, "{}", map.hex.len());
        let mut replaced = 0;
        for file in crate::example_files(".template.json") {
            let text = std::fs::read_to_string(&file).unwrap();
            let copied = map.apply(&text);
            replaced += usize::from(copied != text);
            assert_eq!(map.apply_owned(text), copied, "{}", file.display());
        }
        assert!(replaced > 0);
    }

    /// `text` with `edits` made where they are.
    fn edited(text: &str, edits: &[(u64, String)]) -> String {
        let mut bytes = text.as_bytes().to_vec();
        make_edits(&mut bytes, edits);
        String::from_utf8(bytes).unwrap()
    }

    /// The edits made in place give the text `apply` gives, on every manifest, asset manifest
    /// and template of the examples; there are none where nothing changes.
    #[test]
    fn issue_8_edits_in_place_agree_with_apply() {
        let mut map = Renames::default();
        for manifest in crate::example_files(".assets.json") {
            let text = std::fs::read_to_string(&manifest).unwrap();
            for id in hex_runs(&text) {
                map.insert(id.to_string(), id.chars().rev().collect());
            }
        }
        let mut edited_files = 0;
        for suffix in ["manifest.json", ".assets.json", ".template.json"] {
            for file in crate::example_files(suffix) {
                let text = std::fs::read_to_string(&file).unwrap();
                let edits = map
                    .edits(&text)
                    .expect("every id is hex, as are the new ones");
                assert_eq!(
                    edited(&text, &edits),
                    map.apply(&text),
                    "{}",
                    file.display()
                );
                edited_files += usize::from(!edits.is_empty());
            }
        }
        assert!(edited_files > 10, "{edited_files}");
        let text = format!("s3://bucket/{A}.json \"{A}:1-eu\" {A}0 team-a{A}.json");
        assert_eq!(map.edits(&text), Some(Vec::new()));
    }

    /// No edits in place where an id would change length: the text must be written anew.
    #[test]
    fn issue_8_no_edits_in_place_where_an_id_changes_length() {
        let mut opaque = Renames::default();
        opaque.insert("my-custom-hash".to_string(), B.to_string());
        assert_eq!(opaque.edits(&format!("k/{A}.json")), None);
        let mut uneven = Renames::default();
        uneven.insert(A.to_string(), "short".to_string());
        assert_eq!(uneven.edits(&format!("k/{A}.json")), None);
        let mut even = Renames::default();
        even.insert(A.to_string(), B.to_string());
        let text = format!("k/{A}.json x{A}");
        assert_eq!(
            even.edits(&text),
            Some(vec![(2, B.to_string()), (73, B.to_string())])
        );
        assert_eq!(
            edited(&text, &even.edits(&text).unwrap()),
            even.apply(&text)
        );
    }

    #[test]
    fn opaque_ids_are_replaced_too() {
        let mut map = Renames::default();
        map.insert("my-custom-hash".to_string(), B.to_string());
        assert_eq!(map.apply("k/my-custom-hash.json"), format!("k/{B}.json"));
        let owned = "k/my-custom-hash.json".to_string();
        assert_eq!(map.apply_owned(owned), format!("k/{B}.json"));
    }
}
