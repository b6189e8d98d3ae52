//! Where the report keeps each template's review while the rest of the assembly is hardened.
//!
//! A review is small next to its template, but an assembly has thousands of templates: at
//! 1,000 Stages the reviews (changes, diffs, permissions) would outweigh every template in
//! flight. So the store keeps reviews in memory up to [`MEMORY_BUDGET`] bytes, and writes the
//! rest to an anonymous temporary file (the *spool*, removed by the operating system when the
//! process ends). Renderers read them back one at a time, through [`crate::Report::stacks`].
//!
//! Every template also has a [`Head`]: the few fields summaries, counts and grouping need,
//! always in memory.
//!
//! This module only stores and loads; it does not render, mask or interpret a review.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::diff::Unified;
use super::StackReport;
use crate::error::{Error, Result};

/// How many bytes of reviews the store keeps in memory before it spools the rest.
pub const MEMORY_BUDGET: usize = 32 << 20;

/// What the review needs to know about a template without its changes and diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The artifact id (nested stacks: parent's name, `/`, logical id).
    pub name: String,
    pub display_name: String,
    /// The template, relative to the assembly root.
    pub template: String,
    /// `ACCOUNT/REGION`.
    pub environment: String,
    pub stage: Option<String>,
    pub nested: bool,
    /// Whether applying changes the template's bytes.
    pub rewritten: bool,
    /// Changes per transform id, in order of first use.
    pub changes: Vec<(String, usize)>,
    /// Notes per transform id, in order of first use.
    pub notes: Vec<(String, usize)>,
}

impl Head {
    pub fn of(s: &StackReport) -> Head {
        Head {
            name: s.name.clone(),
            display_name: s.display_name.clone(),
            template: s.template.clone(),
            environment: s.environment.clone(),
            stage: s.stage.clone(),
            nested: s.nested,
            rewritten: s.rewritten,
            changes: tally(s.changes.iter().map(|c| c.transform.as_str())),
            notes: tally(s.notes.iter().map(|n| n.transform.as_str())),
        }
    }

    /// Whether applying changes this template's bytes.
    pub fn changed(&self) -> bool {
        self.rewritten
    }

    pub fn change_count(&self) -> usize {
        self.changes.iter().map(|(_, n)| n).sum()
    }

    pub fn note_count(&self) -> usize {
        self.notes.iter().map(|(_, n)| n).sum()
    }

    /// The last segment of the Stage path (`Prod` for `PipelineStack/Prod`).
    pub fn stage_name(&self) -> Option<&str> {
        super::last_segment(self.stage.as_deref())
    }
}

/// Counts per id, in order of first appearance.
fn tally<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for id in ids {
        match out.iter_mut().find(|(known, _)| known == id) {
            Some((_, n)) => *n += 1,
            None => out.push((id.to_string(), 1)),
        }
    }
    out
}

/// A template's review: in memory, or at a place in the spool.
#[derive(Debug, Clone)]
enum Body {
    Memory(Box<StackReport>),
    Spooled { offset: u64, len: usize },
}

/// The reviews of an assembly's templates, in stack order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Store {
    heads: Vec<Head>,
    bodies: Vec<Body>,
    spool: Option<Arc<Spool>>,
}

/// The anonymous temporary file reviews are spooled to.
#[derive(Debug)]
struct Spool {
    file: Mutex<File>,
}

/// A review as spooled: the report's fields, and those the JSON report leaves out.
#[derive(Serialize, Deserialize)]
struct Spooled {
    report: StackReport,
    rewritten: bool,
    diff: Unified,
    lines: std::collections::BTreeMap<String, [Option<usize>; 2]>,
}

impl Store {
    /// Every review in memory, whatever its size.
    pub fn in_memory(stacks: Vec<StackReport>) -> Store {
        Store {
            heads: stacks.iter().map(Head::of).collect(),
            bodies: stacks
                .into_iter()
                .map(|s| Body::Memory(Box::new(s)))
                .collect(),
            spool: None,
        }
    }

    pub fn heads(&self) -> &[Head] {
        &self.heads
    }

    /// The review of the `i`-th template, read back from the spool if it was spooled.
    ///
    /// # Panics
    /// If the spool cannot be read back: the process's own temporary file failing under it
    /// is not something the review can recover from.
    pub fn get(&self, i: usize) -> Cow<'_, StackReport> {
        match &self.bodies[i] {
            Body::Memory(s) => Cow::Borrowed(s),
            Body::Spooled { offset, len } => {
                let spool = self.spool.as_ref().expect("a spooled review has a spool");
                let bytes = spool
                    .read(*offset, *len)
                    .unwrap_or_else(|e| panic!("reading back the review's temporary file: {e}"));
                let s: Spooled = serde_json::from_slice(&bytes)
                    .expect("a spooled review reads back as it was written");
                let mut report = s.report;
                report.rewritten = s.rewritten;
                report.diff = s.diff;
                report.lines = s.lines;
                Cow::Owned(report)
            }
        }
    }

    /// Applies `f` to every review kept in memory (spooled ones are not touched).
    pub fn for_each_in_memory(&mut self, mut f: impl FnMut(&mut StackReport)) {
        for b in &mut self.bodies {
            if let Body::Memory(s) = b {
                f(s);
            }
        }
    }
}

impl Spool {
    fn new() -> Result<Spool> {
        let file = tempfile::tempfile().map_err(spool_error)?;
        Ok(Spool {
            file: Mutex::new(file),
        })
    }

    /// Appends `bytes`; returns their offset.
    fn append(&self, bytes: &[u8]) -> Result<u64> {
        let mut file = self.file.lock().expect("the spool lock is not poisoned");
        let offset = file.seek(SeekFrom::End(0)).map_err(spool_error)?;
        file.write_all(bytes).map_err(spool_error)?;
        Ok(offset)
    }

    fn read(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut file = self.file.lock().expect("the spool lock is not poisoned");
        file.seek(SeekFrom::Start(offset))?;
        let mut bytes = vec![0; len];
        file.read_exact(&mut bytes)?;
        Ok(bytes)
    }
}

fn spool_error(source: std::io::Error) -> Error {
    Error::Spool {
        dir: std::env::temp_dir(),
        source,
    }
}

/// Builds a [`Store`] as templates finish, in any order: reviews stay in memory until
/// `budget` bytes are held, then go to the spool.
#[derive(Debug)]
pub(crate) struct StoreBuilder {
    slots: Vec<Option<(Head, Body)>>,
    budget: usize,
    held: usize,
    spool: Option<Arc<Spool>>,
}

impl StoreBuilder {
    pub fn new(templates: usize, budget: usize) -> StoreBuilder {
        StoreBuilder {
            slots: (0..templates).map(|_| None).collect(),
            budget,
            held: 0,
            spool: None,
        }
    }

    /// Adds the reviews of a wave of templates, `(stack index, review)`; spooled reviews are
    /// serialized on every core.
    pub fn add(&mut self, reviews: Vec<(usize, StackReport)>) -> Result<()> {
        use rayon::prelude::*;
        let mut spill = Vec::new();
        for (index, report) in reviews {
            let size = approximate_size(&report);
            let head = Head::of(&report);
            if self.held + size <= self.budget {
                self.held += size;
                self.slots[index] = Some((head, Body::Memory(Box::new(report))));
            } else {
                spill.push((index, head, report));
            }
        }
        if spill.is_empty() {
            return Ok(());
        }
        let spool = match &self.spool {
            Some(s) => Arc::clone(s),
            None => Arc::clone(self.spool.insert(Arc::new(Spool::new()?))),
        };
        let encoded: Vec<(usize, Head, Vec<u8>)> = spill
            .into_par_iter()
            .map(|(index, head, mut report)| {
                let spooled = Spooled {
                    rewritten: report.rewritten,
                    diff: std::mem::take(&mut report.diff),
                    lines: std::mem::take(&mut report.lines),
                    report,
                };
                let bytes = serde_json::to_vec(&spooled).expect("a review serializes");
                (index, head, bytes)
            })
            .collect();
        for (index, head, bytes) in encoded {
            let offset = spool.append(&bytes)?;
            let body = Body::Spooled {
                offset,
                len: bytes.len(),
            };
            self.slots[index] = Some((head, body));
        }
        Ok(())
    }

    pub fn build(self) -> Store {
        let (heads, bodies) = self.slots.into_iter().flatten().unzip();
        Store {
            heads,
            bodies,
            spool: self.spool,
        }
    }
}

/// About how many bytes a review holds: its diff, and its changes' and permissions' values.
fn approximate_size(s: &StackReport) -> usize {
    let values: usize = s
        .changes
        .iter()
        .map(|c| {
            c.old.as_ref().map_or(0, value_size)
                + value_size(&c.new)
                + c.reason.len()
                + c.pointer.len()
                + c.logical_id.len()
                + 128
        })
        .sum();
    let permissions: usize = s
        .permissions
        .iter()
        .map(|p| value_size(&p.statement) + 128)
        .sum();
    let notes: usize = s.notes.iter().map(|n| n.message.len() + 64).sum();
    s.diff.text.len() + values + permissions + notes + 512
}

/// About how many bytes a JSON value holds in memory.
fn value_size(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    const NODE: usize = 32;
    match v {
        Value::String(s) => NODE + s.len(),
        Value::Array(items) => NODE + items.iter().map(value_size).sum::<usize>(),
        Value::Object(map) => {
            NODE + map
                .iter()
                .map(|(k, v)| k.len() + NODE + value_size(v))
                .sum::<usize>()
        }
        _ => NODE,
    }
}
