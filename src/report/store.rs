//! Where the report keeps each template's review while the rest of the assembly is hardened.
//!
//! A review is small next to its template, but an assembly has thousands of templates: at
//! 1,000 Stages the reviews (changes, diffs, permissions) would outweigh every template in
//! flight. So the store keeps reviews in memory up to [`MEMORY_BUDGET`] bytes, and writes the
//! rest to an anonymous temporary file (the *spool*, removed by the operating system when the
//! process ends). Renderers read them back one at a time, through [`crate::Report::stacks`].
//!
//! The budget is shared with the templates in flight: a template being hardened
//! reserves (`StoreBuilder::reserve`) what it will hold (about [`IN_FLIGHT_PER_BYTE`] bytes per
//! byte of its text), and reviews already in memory move to the spool to make room. So the
//! peak is the larger of the budget and the templates in flight, not their sum: a
//! thousand-stage pipeline template (4 MB of text, about 28 MB hardened) does not come on top
//! of the budget of reviews.
//!
//! Every template also has a [`Head`]: the few fields summaries, counts and grouping need,
//! always in memory.
//!
//! This module only stores and loads; it does not render, mask or interpret a review.

use std::borrow::Cow;
use std::fs::File;
#[cfg(not(unix))]
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::StackReport;
use crate::error::{Error, Result};

/// How many bytes of reviews (and reserved templates in flight) the store keeps in memory
/// before it spools reviews.
pub const MEMORY_BUDGET: usize = 16 << 20;

/// How many bytes a template in flight reserves per byte of its text. It holds about 7 (the
/// pipeline template of a 1,000-stage assembly: 4 MB of text, 16 MB as a tree, 28 MB with its
/// changes and records at its peak); reserving three times that leaves room for the pages the
/// allocator keeps around a large tree, and measured a lower peak (53 against 55 MiB).
pub const IN_FLIGHT_PER_BYTE: usize = 24;

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
    /// How many new IAM statements the review lists.
    pub permissions: usize,
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
            permissions: s.permissions.len(),
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
    /// The review, and its [`approximate_size`] when it was stored.
    Memory(Box<StackReport>, usize),
    /// The review's fields in the spool's form (see [`super::codec`]), then its diff text as
    /// is (the bulk of a review): their lengths, from `offset`.
    Spooled {
        offset: u64,
        fields: usize,
        diff: usize,
    },
}

/// The reviews of an assembly's templates, in stack order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Store {
    heads: Vec<Head>,
    bodies: Vec<Body>,
    spool: Option<Arc<Spool>>,
}

/// The anonymous temporary file reviews are spooled to. Each review is written at and read
/// from its own place: only finding the place is serialized.
#[derive(Debug)]
struct Spool {
    file: File,
    /// Where the next review goes (and, off Unix, the file's cursor's lock).
    end: Mutex<u64>,
}

impl Store {
    /// Every review in memory, whatever its size.
    pub fn in_memory(stacks: Vec<StackReport>) -> Store {
        Store {
            heads: stacks.iter().map(Head::of).collect(),
            bodies: stacks
                .into_iter()
                .map(|s| Body::Memory(Box::new(s), 0))
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
            Body::Memory(s, _) => Cow::Borrowed(s),
            Body::Spooled {
                offset,
                fields,
                diff,
            } => {
                let spool = self.spool.as_ref().expect("a spooled review has a spool");
                let [bytes, diff] = spool
                    .read(*offset, [*fields, *diff])
                    .unwrap_or_else(|e| panic!("reading back the review's temporary file: {e}"));
                let text =
                    String::from_utf8(diff).expect("a spooled diff reads back as it was written");
                Cow::Owned(super::codec::decode(&bytes, text))
            }
        }
    }

    /// Applies `f` to every review kept in memory (spooled ones are not touched).
    pub fn for_each_in_memory(&mut self, mut f: impl FnMut(&mut StackReport)) {
        for b in &mut self.bodies {
            if let Body::Memory(s, _) = b {
                f(s);
            }
        }
    }
}

impl Spool {
    fn new() -> Result<Spool> {
        let file = tempfile::tempfile().map_err(spool_error)?;
        Ok(Spool {
            file,
            end: Mutex::new(0),
        })
    }

    /// Appends `bytes`; returns their offset.
    fn append(&self, bytes: &[u8]) -> Result<u64> {
        let mut end = self.end.lock().expect("the spool lock is not poisoned");
        let offset = *end;
        *end += bytes.len() as u64;
        #[cfg(unix)]
        {
            drop(end);
            std::os::unix::fs::FileExt::write_all_at(&self.file, bytes, offset)
                .map_err(spool_error)?;
        }
        #[cfg(not(unix))]
        {
            let mut file = &self.file;
            file.seek(SeekFrom::Start(offset)).map_err(spool_error)?;
            file.write_all(bytes).map_err(spool_error)?;
            drop(end);
        }
        Ok(offset)
    }

    /// Reads consecutive parts of these lengths from `offset`, each into its own buffer.
    fn read<const N: usize>(&self, offset: u64, lens: [usize; N]) -> std::io::Result<[Vec<u8>; N]> {
        let mut parts = lens.map(|len| vec![0; len]);
        #[cfg(unix)]
        {
            let mut at = offset;
            for part in &mut parts {
                std::os::unix::fs::FileExt::read_exact_at(&self.file, part, at)?;
                at += part.len() as u64;
            }
        }
        #[cfg(not(unix))]
        {
            let _cursor = self.end.lock().expect("the spool lock is not poisoned");
            let mut file = &self.file;
            file.seek(SeekFrom::Start(offset))?;
            for part in &mut parts {
                file.read_exact(part)?;
            }
        }
        Ok(parts)
    }
}

fn spool_error(source: std::io::Error) -> Error {
    Error::Spool {
        dir: std::env::temp_dir(),
        source,
    }
}

/// Builds a [`Store`] as templates finish, on any thread and in any order: reviews stay in
/// memory until `budget` bytes are held, then go to the spool. A finished template's review
/// goes here at once, so a wave of thousands of templates never holds its reviews whole.
#[derive(Debug)]
pub(crate) struct StoreBuilder {
    slots: Mutex<Vec<Option<(Head, Body)>>>,
    budget: usize,
    /// Bytes of reviews in memory.
    held: AtomicUsize,
    /// Bytes reserved by templates in flight.
    in_flight: AtomicUsize,
    spool: Mutex<Option<Arc<Spool>>>,
}

/// A template's reservation in the budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Flight<'a> {
    store: &'a StoreBuilder,
    bytes: usize,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.store
            .in_flight
            .fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl StoreBuilder {
    pub fn new(templates: usize, budget: usize) -> StoreBuilder {
        StoreBuilder {
            slots: Mutex::new((0..templates).map(|_| None).collect()),
            budget,
            held: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            spool: Mutex::new(None),
        }
    }

    /// The bytes of reviews and reservations kept in memory before reviews are spooled.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Reserves `bytes` of the budget for a template in flight, moving reviews from memory to
    /// the spool until it fits (or none is left in memory).
    pub fn reserve(&self, bytes: usize) -> Result<Flight<'_>> {
        let flight = Flight { store: self, bytes };
        let in_flight = self.in_flight.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let held = self.held.load(Ordering::Relaxed);
        // With nothing held there is nothing to move (while a large template waits, every
        // review goes straight to the spool): the slots are not searched.
        if held > 0 && held + in_flight > self.budget {
            // Take reviews out under the lock, until enough is taken; spool them outside it, so
            // other templates can store theirs meanwhile.
            let mut taken = Vec::new();
            {
                let mut slots = self.slots.lock().expect("the store lock is not poisoned");
                for (index, slot) in slots.iter_mut().enumerate() {
                    let over = self.held.load(Ordering::Relaxed)
                        + self.in_flight.load(Ordering::Relaxed)
                        > self.budget;
                    if !over {
                        break;
                    }
                    if !matches!(slot, Some((_, Body::Memory(..)))) {
                        continue;
                    }
                    if let Some((head, Body::Memory(report, size))) = slot.take() {
                        self.held.fetch_sub(size, Ordering::Relaxed);
                        taken.push((index, head, report));
                    }
                }
            }
            let mut spooled = Vec::with_capacity(taken.len());
            for (index, head, report) in taken {
                spooled.push((index, head, self.spool(*report)?));
            }
            let mut slots = self.slots.lock().expect("the store lock is not poisoned");
            for (index, head, body) in spooled {
                slots[index] = Some((head, body));
            }
        }
        Ok(flight)
    }

    /// Stores the review of `stacks[index]`: in memory within the budget, else serialized (on
    /// the calling thread) and appended to the spool.
    pub fn put(&self, index: usize, report: StackReport) -> Result<()> {
        let head = Head::of(&report);
        let size = approximate_size(&report);
        let within = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                let in_flight = self.in_flight.load(Ordering::Relaxed);
                (held + in_flight + size <= self.budget).then_some(held + size)
            })
            .is_ok();
        let body = if within {
            Body::Memory(Box::new(report), size)
        } else {
            self.spool(report)?
        };
        self.slots.lock().expect("the store lock is not poisoned")[index] = Some((head, body));
        Ok(())
    }

    /// Serializes a review to the spool.
    fn spool(&self, report: StackReport) -> Result<Body> {
        let mut bytes = Vec::new();
        super::codec::encode(&report, &mut bytes);
        let fields = bytes.len();
        bytes.reserve_exact(report.diff.text.len());
        bytes.extend_from_slice(report.diff.text.as_bytes());
        drop(report);
        let spool = {
            let mut spool = self.spool.lock().expect("the spool lock is not poisoned");
            match &*spool {
                Some(s) => Arc::clone(s),
                None => Arc::clone(spool.insert(Arc::new(Spool::new()?))),
            }
        };
        Ok(Body::Spooled {
            offset: spool.append(&bytes)?,
            fields,
            diff: bytes.len() - fields,
        })
    }

    pub fn build(self) -> Store {
        let slots = self
            .slots
            .into_inner()
            .expect("the store lock is not poisoned");
        let (heads, bodies) = slots.into_iter().flatten().unzip();
        Store {
            heads,
            bodies,
            spool: self
                .spool
                .into_inner()
                .expect("the spool lock is not poisoned"),
        }
    }
}

/// About how many bytes a review holds in memory: its diff, and its records with their JSON
/// values (held as text), counted the way they are laid out, plus a quarter for the
/// allocator's rounding.
pub(crate) fn approximate_size(s: &StackReport) -> usize {
    use std::mem::size_of;
    let changes: usize = s
        .changes
        .iter()
        .map(|c| {
            size_of::<crate::transform::Applied>()
                + c.old.as_ref().map_or(0, |v| v.as_str().len())
                + c.new.as_str().len()
                + c.transform.len()
                + c.logical_id.len()
                + c.construct_path.as_ref().map_or(0, String::len)
                + c.resource_type.as_ref().map_or(0, String::len)
                + c.pointer.len()
                + c.reason.len()
                + c.warnings.iter().map(|w| w.len() + 24).sum::<usize>()
        })
        .sum();
    let permissions: usize = s
        .permissions
        .iter()
        .map(|p| {
            size_of::<super::Permission>()
                + p.statement.as_str().len()
                + p.logical_id.len()
                + p.document.len()
                + [&p.actions, &p.resources, &p.principals]
                    .iter()
                    .flat_map(|v| v.iter())
                    .map(|a| a.len() + 24)
                    .sum::<usize>()
        })
        .sum();
    let notes: usize = s
        .notes
        .iter()
        .map(|n| size_of::<crate::transform::Note>() + n.message.len() + n.transform.len())
        .sum();
    let small: usize = s.added.iter().map(|a| a.len() + 24).sum::<usize>()
        + s.construct_paths
            .iter()
            .map(|(k, v)| k.len() + v.len() + 64)
            .sum::<usize>()
        + s.lines.keys().map(|k| k.len() + 80).sum::<usize>();
    let total = size_of::<StackReport>()
        + s.diff.text.capacity()
        + changes
        + permissions
        + notes
        + small
        + s.name.len() * 4;
    total + total / 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::diff::Unified;

    fn review(name: &str) -> StackReport {
        StackReport {
            name: name.into(),
            display_name: name.into(),
            template: format!("{name}.template.json"),
            environment: "111111111111/eu-west-1".into(),
            stage: None,
            nested: false,
            changes: Vec::new(),
            notes: Vec::new(),
            added: Vec::new(),
            permissions: Vec::new(),
            construct_paths: Default::default(),
            rewritten: false,
            diff: Unified {
                text: format!("--- a/{name}\n+++ b/{name}\n@@ -1 +1 @@\n-x\n+y\n"),
                added: 1,
                removed: 1,
            },
            lines: Default::default(),
        }
    }

    fn in_memory(store: &Store) -> usize {
        (store.bodies.iter())
            .filter(|b| matches!(b, Body::Memory(..)))
            .count()
    }

    /// A template in flight takes its share of the budget from the reviews held, which move
    /// to the spool and read back the same.
    #[test]
    fn issue_8_a_template_in_flight_moves_reviews_to_the_spool() {
        let size = approximate_size(&review("A"));
        let builder = StoreBuilder::new(3, 3 * size);
        builder.put(0, review("A")).unwrap();
        builder.put(1, review("B")).unwrap();
        {
            // Room for one more review: nothing moves.
            let _small = builder.reserve(size).unwrap();
            assert_eq!(builder.held.load(Ordering::Relaxed), 2 * size);
            // Room for two: one review moves out.
            let _more = builder.reserve(size).unwrap();
            assert_eq!(builder.held.load(Ordering::Relaxed), size);
            // While both are in flight, a new review does not fit.
            builder.put(2, review("C")).unwrap();
        }
        assert_eq!(builder.in_flight.load(Ordering::Relaxed), 0);
        let store = builder.build();
        assert_eq!(
            in_memory(&store),
            1,
            "B stays in memory; A and C are spooled"
        );
        assert!(matches!(store.bodies[1], Body::Memory(..)));
        for (i, name) in ["A", "B", "C"].into_iter().enumerate() {
            let back = store.get(i);
            assert_eq!(back.name, name);
            assert_eq!(back.diff.text, review(name).diff.text);
        }
    }
}
