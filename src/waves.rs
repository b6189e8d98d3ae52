//! The path of each template through steps 2 to 4, and the order templates take it in.
//!
//! A template is *serialized* (read, hardened in place, scanned, its tree written out as text
//! and dropped) and then *finished* (the new ids of the templates it names put in, its final
//! bytes hashed and staged, its review diffed from the two texts). Finishing needs the final
//! ids of the templates it names, so templates finish in waves, leaves first
//! ([`rehash::waves`]); the templates of a wave are independent and run on every core, largest
//! first.
//!
//! Serializing needs no other template, so a template larger than the review budget (a large
//! pipeline's) is serialized in the first wave, whatever wave it finishes in, and waits as
//! text: its tree is built while little else is in memory, beside the small templates of the
//! first wave, instead of on top of everything the waves before it left.
//!
//! Every step reserves its share of the review budget ([`StoreBuilder::reserve`]) for what it
//! holds, so reviews move to the spool to make room rather than pile up beside it.
//!
//! This module orders and runs; it does not transform, re-hash, write or render by itself.

use foldhash::HashMap;
use std::borrow::Cow;

use rayon::prelude::*;

use crate::assembly::format::into_cdk_json;
use crate::assembly::rehash::{self, sha256_hex, Rehash};
use crate::assembly::write::Staged;
use crate::assembly::{Assembly, Environment, Writer};
use crate::config::{Config, EnvConfig};
use crate::error::{Error, Result};
use crate::findings::{self, Finding};
use crate::report::store::{Flight, StoreBuilder, IN_FLIGHT_PER_BYTE};
use crate::report::{self, StackReport, Started};
use crate::transform::{self, limits, Registry};

/// About how many bytes finishing holds per byte of a template's text, on top of what waits:
/// the text as read again, the final text and the diff. A waiting template reserves it from
/// the start, so reviews do not pile up while it waits only to be spooled when it finishes
/// (their pages are given back to the system later than its texts are taken).
const FINISHING_PER_BYTE: usize = 3;

/// What the waves leave for the report: per template, in stack order, its findings and secret
/// values; and the templates whose bytes changed, with their new ids, in the order they were
/// finished.
pub(crate) struct Outcome {
    pub findings: Vec<Finding>,
    pub secrets: Vec<String>,
    pub rehash: Rehash,
}

/// Runs every template of the assembly through the waves, storing each review in `reviews`
/// and staging each changed template to `writer` (added in a deterministic order). The first
/// wave with a failure stops the run, and of its failures the first in stack order is
/// returned; a template serialized early counts in the wave it finishes in, so the error does
/// not depend on the budget.
pub(crate) fn run(
    assembly: &Assembly,
    config: &Config,
    registry: &Registry,
    mut writer: Option<&mut Writer>,
    reviews: &StoreBuilder,
) -> Result<Outcome> {
    let mut rehash = Rehash::default();
    let mut findings = Vec::new();
    let mut secrets = Vec::new();
    let waves = rehash::waves(assembly);
    // Each environment's settings merged once: the stacks of an assembly share a few.
    let mut settings = Settings::default();
    for stack in &assembly.stacks {
        let env = &stack.environment;
        settings
            .entry(env)
            .or_insert_with(|| config.for_environment(env));
    }
    let size = |index: usize| assembly.stacks[index].size;
    let large = |index: usize| size(index).saturating_mul(IN_FLIGHT_PER_BYTE) > reviews.budget();
    let early: Vec<usize> = waves
        .iter()
        .skip(1)
        .flatten()
        .copied()
        .filter(|&i| large(i))
        .collect();
    let mut waiting: Vec<Option<Result<Box<Serialized>>>> =
        (0..assembly.stacks.len()).map(|_| None).collect();
    for (w, wave) in waves.iter().enumerate() {
        // A template serialized early that failed fails in its own wave, like the others: the
        // error reported does not depend on which templates the budget moves to the first.
        let mut failed: Vec<(usize, Result<Step>)> = Vec::new();
        let mut jobs: Vec<Job> = wave
            .iter()
            .filter_map(|&index| match waiting[index].take() {
                Some(Ok(serialized)) => Some(Job::Finish(index, serialized)),
                Some(Err(e)) => {
                    failed.push((index, Err(e)));
                    None
                }
                None if early.contains(&index) => None,
                None => Some(Job::Whole(index)),
            })
            .collect();
        if w == 0 {
            jobs.extend(early.iter().map(|&index| Job::Serialize(index)));
        }
        // Largest first: a large template then runs beside the small ones rather than after
        // them, and its reservation spools the reviews held before they pile up.
        jobs.sort_by_key(|job| (std::cmp::Reverse(size(job.index())), job.index()));
        let ctx = Context {
            assembly,
            config,
            settings: &settings,
            registry,
            reviews,
            rehash: &rehash,
            writer: writer.as_deref(),
        };
        let mut results: Vec<(usize, Result<Step>)> = jobs
            .into_par_iter()
            .map(|job| (job.index(), ctx.run(job)))
            .collect();
        results.append(&mut failed);
        // In stack order: the first failure is the one reported, and staged files are handed
        // to the writer in a deterministic order.
        results.sort_by_key(|(index, _)| *index);
        for (index, result) in results {
            let done = match result {
                Ok(Step::Waiting(serialized)) => {
                    waiting[index] = Some(Ok(serialized));
                    continue;
                }
                // Serialized early: it fails in the wave it finishes in.
                Err(e) if w == 0 && early.contains(&index) => {
                    waiting[index] = Some(Err(e));
                    continue;
                }
                Ok(Step::Done(done)) => done,
                Err(e) => return Err(e),
            };
            if let Some(id) = &done.new_id {
                rehash.record(assembly, index, id)?;
            }
            if let (Some(w), Some(staged)) = (writer.as_deref_mut(), done.staged) {
                w.add(staged);
            }
            findings.push((index, done.findings));
            secrets.extend(done.secrets);
        }
    }
    // Findings in stack order, like the reviews.
    findings.sort_by_key(|(index, _)| *index);
    Ok(Outcome {
        findings: findings.into_iter().flat_map(|(_, f)| f).collect(),
        secrets,
        rehash,
    })
}

/// What a wave does with one template.
enum Job<'r> {
    /// Serialize and finish it.
    Whole(usize),
    /// Only serialize it; it finishes in a later wave.
    Serialize(usize),
    /// Finish it, serialized in an earlier wave.
    Finish(usize, Box<Serialized<'r>>),
}

impl Job<'_> {
    fn index(&self) -> usize {
        match self {
            Job::Whole(i) | Job::Serialize(i) | Job::Finish(i, _) => *i,
        }
    }
}

/// Where a job left its template.
enum Step<'r> {
    Waiting(Box<Serialized<'r>>),
    Done(Done),
}

/// One template, finished; its review is in the store.
struct Done {
    findings: Vec<Finding>,
    secrets: Vec<String>,
    /// The id of its final bytes, if they differ from the bytes read.
    new_id: Option<String>,
    staged: Option<Staged>,
}

/// One template hardened and serialized, its tree dropped: what finishing it needs.
struct Serialized<'r> {
    review: Started,
    before: Before,
    /// The hardened text, if hardening changed the tree.
    hardened: Option<String>,
    findings: Vec<Finding>,
    secrets: Vec<String>,
    /// While it waits, its share of the review budget.
    _waiting: Option<Flight<'r>>,
}

/// The text of a template as read: kept, or given up to wait (finishing reads it again, and
/// checks it against its SHA-256).
enum Before {
    Kept(String),
    GivenUp { sha256: String },
}

/// Each environment's merged settings ([`Config::for_environment`]).
type Settings<'a> = HashMap<&'a Environment, (EnvConfig, Vec<String>)>;

/// What every job of a wave shares.
struct Context<'a, 'r> {
    assembly: &'a Assembly,
    config: &'a Config,
    settings: &'a Settings<'a>,
    registry: &'a Registry,
    reviews: &'r StoreBuilder,
    rehash: &'a Rehash,
    writer: Option<&'a Writer>,
}

impl<'r> Context<'_, 'r> {
    fn run(&self, job: Job<'r>) -> Result<Step<'r>> {
        let index = job.index();
        let size = self.assembly.stacks[index].size;
        match job {
            Job::Whole(_) => {
                let (review, done) = {
                    // Room for the template's tree, texts and review, made by spooling
                    // reviews held so far: before the template is read, so they are not in
                    // memory beside its tree.
                    let _flight = self
                        .reviews
                        .reserve(size.saturating_mul(IN_FLIGHT_PER_BYTE))?;
                    let serialized = self.serialize(index, true)?;
                    self.finish(index, serialized)?
                };
                self.store(index, review, done)
            }
            Job::Serialize(_) => {
                let flight = self
                    .reviews
                    .reserve(size.saturating_mul(IN_FLIGHT_PER_BYTE))?;
                let mut serialized = self.serialize(index, false)?;
                drop(flight);
                let held = serialized.hardened.as_ref().map_or(0, String::len)
                    + serialized.review.approximate_size()
                    + size.saturating_mul(FINISHING_PER_BYTE);
                serialized._waiting = Some(self.reviews.reserve(held)?);
                Ok(Step::Waiting(Box::new(serialized)))
            }
            Job::Finish(_, serialized) => {
                // Its reservation, made when it began to wait, is given back once finished.
                let (review, done) = self.finish(index, *serialized)?;
                self.store(index, review, done)
            }
        }
    }

    /// Reads, hardens and scans one template, and serializes its tree. Unless `keep_text`,
    /// the text as read is given up, its SHA-256 kept.
    fn serialize(&self, index: usize, keep_text: bool) -> Result<Serialized<'r>> {
        let stack = &self.assembly.stacks[index];
        let read = self.assembly.read_template(index)?;
        let (text, tree) = (read.text, read.value);
        // Hardening adds to a template; the pipeline of a large app grows by about 45%.
        let capacity = text.len() + text.len() / 2;
        let before = match keep_text {
            true => Before::Kept(text),
            false => {
                let sha256 = sha256_hex(text.as_bytes());
                // Given up now: the text is not in memory beside the tree being hardened.
                drop(text);
                Before::GivenUp { sha256 }
            }
        };
        // The tree is hardened in place; the review compares policies with these.
        let statements = report::iam::Statements::of(&tree);
        let (assembly, config, registry) = (self.assembly, self.config, self.registry);
        let in_stack = |e: Error| Error::Stack {
            stack: stack.display_name.clone(),
            template: stack.template_path.to_string(),
            source: Box::new(e),
        };
        let counts = limits::counts(&tree);
        let settings = &self.settings[&stack.environment];
        let hardened =
            transform::harden_template_in(assembly, index, tree, config, settings, registry)
                .and_then(|h| limits::check_counts(counts, limits::counts(&h.template)).map(|()| h))
                .map_err(in_stack)?;
        let findings = findings::scan(self.assembly, index, &hardened.template);
        let secrets = match &before {
            Before::Kept(text) => report::secret_values(&findings, text, &hardened.template),
            Before::GivenUp { .. } if findings.is_empty() => Vec::new(),
            Before::GivenUp { sha256 } => {
                let text = self.read_again(index, sha256)?;
                report::secret_values(&findings, &text, &hardened.template)
            }
        };
        // Only an applied change changes the tree, so without one the bytes read are kept.
        let changed = !hardened.applied.is_empty();
        let (review, tree) = StackReport::start(stack, &statements, hardened);
        // Written as it is given up: the tree shrinks as its text grows.
        let hardened = changed.then(|| into_cdk_json(tree, capacity));
        if let Some(text) = &hardened {
            limits::check_size(stack.size, text.len()).map_err(in_stack)?;
        }
        Ok(Serialized {
            review,
            before,
            hardened,
            findings,
            secrets,
            _waiting: None,
        })
    }

    /// The text of a template read before, whose SHA-256 was `sha256`: an error if it
    /// changed since.
    fn read_again(&self, index: usize, sha256: &str) -> Result<String> {
        let changed = || Error::Changed {
            path: self.assembly.stacks[index]
                .template_path
                .under(&self.assembly.root),
        };
        let bytes = self.assembly.read_template_bytes(index)?;
        if sha256_hex(&bytes) != sha256 {
            return Err(changed());
        }
        String::from_utf8(bytes).map_err(|_| changed())
    }

    /// Stores a finished template's review at once (once its reservation is given back), so
    /// a wave holds no reviews.
    fn store(&self, index: usize, review: StackReport, done: Done) -> Result<Step<'r>> {
        self.reviews.put(index, review)?;
        Ok(Step::Done(done))
    }

    /// Finishes one template: its final bytes are the hardened text with the new ids of the
    /// templates it names, staged if they differ from the bytes read; its review is diffed
    /// from the two texts.
    fn finish(&self, index: usize, s: Serialized) -> Result<(StackReport, Done)> {
        let stack = &self.assembly.stacks[index];
        let before = match s.before {
            Before::Kept(text) => text,
            Before::GivenUp { sha256 } => self.read_again(index, &sha256)?,
        };
        // Only a template that names another's asset id can need new ids; one that needs
        // neither keeps the bytes read, uncopied.
        let after: Cow<str> = match (stack.mentions.is_empty(), s.hardened) {
            (true, Some(text)) => Cow::Owned(text),
            (true, None) => Cow::Borrowed(&before),
            (false, Some(text)) => Cow::Owned(self.rehash.finish_owned(text)),
            (false, None) => Cow::Owned(self.rehash.finish(&before)),
        };
        let review = s.review.finish(&before, &after, &s.findings);
        let rewritten = review.rewritten;
        let staged = match self.writer {
            Some(w) if rewritten => {
                Some(w.stage(&stack.template_path, &after, stack.permissions.as_ref())?)
            }
            _ => None,
        };
        let done = Done {
            secrets: s.secrets,
            findings: s.findings,
            new_id: rewritten.then(|| sha256_hex(after.as_bytes())),
            staged,
        };
        Ok((review, done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoadedConfig;

    /// A small assembly keeps its templates' texts from load; hardened from them or from the
    /// files, it gives the same files and the same review.
    #[test]
    fn issue_8_templates_kept_from_load_harden_as_read_from_their_files() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let example = repo.join("examples/pipelines");
        let config = LoadedConfig::load(Some(&example.join("cdk-harden.json"))).unwrap();
        let registry = Registry::load(&config).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut outputs = Vec::new();
        for kept in [true, false] {
            let mut assembly = Assembly::load(example.join("cdk.out")).unwrap();
            let in_memory = |a: &Assembly| {
                a.stacks
                    .iter()
                    .all(|s| matches!(s.source, crate::assembly::Source::Memory(_)))
            };
            assert!(
                in_memory(&assembly),
                "the example is small: its texts are kept"
            );
            if !kept {
                for s in &mut assembly.stacks {
                    s.source = crate::assembly::Source::File;
                }
            }
            let out = dir.path().join(format!("out-{kept}"));
            let mut writer = Writer::copy(&assembly.root, &out).unwrap();
            let report = crate::harden(&assembly, &config.config, &registry, Some(&mut writer));
            let report = report.unwrap();
            writer.commit().unwrap();
            let json = crate::report::render(
                &report,
                crate::report::Format::Json,
                &crate::report::RenderOptions {
                    color: false,
                    applied: true,
                    markdown_limit: None,
                    uri_prefix: None,
                },
            );
            outputs.push((out, json));
        }
        assert_eq!(outputs[0].1, outputs[1].1);
        let files = |root: &std::path::Path| {
            let mut all = Vec::new();
            let mut dirs = vec![root.to_path_buf()];
            while let Some(d) = dirs.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        dirs.push(p);
                    } else {
                        let rel = p.strip_prefix(root).unwrap().to_path_buf();
                        all.push((rel, std::fs::read(&p).unwrap()));
                    }
                }
            }
            all.sort();
            all
        };
        let (a, b) = (files(&outputs[0].0), files(&outputs[1].0));
        assert!(a.len() > 10);
        assert!(a == b, "the two copies differ");
    }

    /// A template given up to wait is read again to finish; if its bytes changed meanwhile,
    /// finishing fails naming it, instead of diffing (and re-hashing) against other bytes.
    #[test]
    fn issue_8_a_template_that_changed_while_it_waited_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cdk.out");
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shapes");
        crate::assembly::write::copy_tree(&example.join("cdk.out"), &root).unwrap();
        // Read from their files, as a large assembly's templates are (a small one's are kept
        // from load, and are what was read then).
        let from_files = |mut assembly: Assembly| {
            assembly
                .stacks
                .iter_mut()
                .for_each(|s| s.source = crate::assembly::Source::File);
            assembly
        };
        let assembly = from_files(Assembly::load(&root).unwrap());
        let config = LoadedConfig::load(Some(&example.join("cdk-harden.json"))).unwrap();
        let registry = Registry::load(&config).unwrap();
        let reviews = StoreBuilder::new(assembly.stacks.len(), 0);
        let rehash = Rehash::default();
        let env = &assembly.stacks[0].environment;
        let settings = Settings::from_iter([(env, config.config.for_environment(env))]);
        let ctx = Context {
            assembly: &assembly,
            config: &config.config,
            settings: &settings,
            registry: &registry,
            reviews: &reviews,
            rehash: &rehash,
            writer: None,
        };
        let waiting = ctx.serialize(0, false).unwrap();
        assert!(matches!(waiting.before, Before::GivenUp { .. }));
        let file = assembly.stacks[0].template_path.under(&root);
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push(' ');
        std::fs::write(&file, text).unwrap();
        let Err(err) = ctx.finish(0, waiting) else {
            panic!("finished a template that changed");
        };
        assert!(
            matches!(&err, Error::Changed { path } if *path == file),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains("changed while cdk-harden was hardening it"));
        // Unchanged, it finishes.
        let again = from_files(Assembly::load(&root).unwrap());
        let ctx = Context {
            assembly: &again,
            ..ctx
        };
        let waiting = ctx.serialize(0, false).unwrap();
        assert!(ctx.finish(0, waiting).is_ok());
    }
}
