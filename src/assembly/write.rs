//! Writing a hardened assembly: in place, or as a complete copy with `--out`.
//!
//! Only files whose bytes change are written. Each file is staged as soon as its bytes are
//! final (a temporary file beside its target), so a run never holds more than the templates
//! in flight; nothing replaces anything until [`Writer::commit`]. A file whose only change is
//! ids replaced by ids as long (a manifest or asset manifest naming a template's new asset id)
//! is not staged but patched: the ids are overwritten where they are, at commit. Commit syncs
//! every staged file, then renames each over its target and makes each patch. A kill leaves
//! every renamed file either old or new, and a patched file valid JSON with some or all of its
//! ids new. While files are replaced in place, a marker at the root records that the assembly
//! is in transition; a later run that finds it refuses to work on a possibly inconsistent
//! assembly. With `--out`, the copy is built beside the target and renamed into place as a
//! whole. A writer dropped without a commit removes
//! everything it staged, and has patched nothing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{RelPath, INCOMPLETE_MARKER};
use crate::error::{Error, Result, Stamp};

/// Environment variable for the fault-injection test hook used by the kill-mid-write tests:
/// `abort-in-write:N` aborts half-way through writing the N-th file, `abort-after-rename:N`
/// aborts after the N-th file replaced its target (counting from 1).
pub const FAULT_ENV: &str = "CDK_HARDEN_FAULT";

/// Stages files and commits them, in place or as a copy.
#[derive(Debug)]
pub struct Writer {
    /// Where the staged files go: the assembly root, or the copy being built.
    base: PathBuf,
    copy: Option<CopyTarget>,
    /// (temporary, target) pairs, in rename order.
    staged: Vec<(PathBuf, PathBuf)>,
    /// Files whose ids are overwritten where they are, at commit.
    patches: Vec<Patch>,
    fault: Fault,
    /// Files staged so far, for the fault hook.
    writes: AtomicUsize,
    /// How many of `staged` (the first) are synced already ([`Writer::sync`]).
    synced: usize,
    /// Which directories are on a file system kept in memory, where syncing does nothing.
    volatile: Volatile,
    done: bool,
}

/// Where a copy goes once complete.
#[derive(Debug)]
struct CopyTarget {
    out: PathBuf,
    parent: PathBuf,
    name: String,
    /// The outermost directory made for `parent`, if it did not exist: removed (with the
    /// empty directories under it, up to `parent`) when the copy is discarded.
    made: Option<PathBuf>,
}

/// Ids to overwrite in a file where they are, at commit: each is a byte offset and an id as
/// long as the one there. Nothing is written before commit.
#[derive(Debug)]
pub struct Patch {
    target: PathBuf,
    edits: Vec<(u64, String)>,
    stamp: Stamp,
}

/// A file's new version, waiting for commit: written beside it, or edits to make in it.
#[derive(Debug)]
pub enum Pending {
    Staged(Staged),
    Patch(Patch),
}

/// A file written beside its target, not yet handed to the [`Writer`]; dropping it removes it.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    target: PathBuf,
    armed: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Writer {
    /// A writer that rewrites the assembly at `root` in place.
    pub fn in_place(root: &Path) -> Writer {
        Writer {
            base: root.to_path_buf(),
            copy: None,
            staged: Vec::new(),
            patches: Vec::new(),
            fault: Fault::from_env(),
            writes: AtomicUsize::new(0),
            synced: 0,
            volatile: Volatile::default(),
            done: false,
        }
    }

    /// A writer that builds a complete hardened copy of the assembly at `root` and, on commit,
    /// puts it at `out`, leaving `root` as it is. An existing `out` is replaced only if it is
    /// itself a cloud assembly (a previous output, say) or empty; `out` may not be, contain or
    /// lie inside the input.
    pub fn copy(root: &Path, out: &Path) -> Result<Writer> {
        if out.exists() && !out.is_dir() {
            return Err(Error::OutputIsFile {
                path: out.to_path_buf(),
            });
        }
        let input = root.canonicalize().map_err(Error::io(root))?;
        let target = canonical_target(out)?;
        if target.starts_with(&input) || input.starts_with(&target) {
            return Err(Error::OutputOverlapsInput {
                out: out.to_path_buf(),
                input: root.to_path_buf(),
            });
        }
        if out.exists() {
            let empty = fs::read_dir(out).map_err(Error::io(out))?.next().is_none();
            if !empty && !out.join("manifest.json").is_file() {
                return Err(Error::OutputNotAssembly {
                    path: out.to_path_buf(),
                });
            }
        }
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let made = parent
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .last()
            .map(Path::to_path_buf);
        fs::create_dir_all(&parent).map_err(Error::io(&parent))?;
        let staging = parent.join(format!(".{name}.cdk-harden-{}", std::process::id()));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(Error::io(&staging))?;
        }
        let mut writer = Writer::in_place(&staging);
        writer.copy = Some(CopyTarget {
            out: out.to_path_buf(),
            parent,
            name,
            made,
        });
        // A failed copy is discarded with the writer, directories made for it included.
        copy_tree(root, &staging)?;
        Ok(writer)
    }

    /// Writes `text` to a temporary file beside the file at `path` (relative to the assembly
    /// root), with the target's `permissions` when they are known (else they are looked up).
    /// Safe to call from many threads; hand the result to [`Writer::add`] in the order the
    /// files are to replace their targets.
    pub fn stage(
        &self,
        path: &RelPath,
        text: &str,
        permissions: Option<&fs::Permissions>,
    ) -> Result<Staged> {
        let target = path.under(&self.base);
        let tmp = temp_path(&target);
        let staged = Staged {
            tmp: tmp.clone(),
            target: target.clone(),
            armed: true,
        };
        // Named by the file it replaces: the temporary name means nothing to the reader.
        let failed = |source| Error::Staging {
            path: target.clone(),
            temp: tmp
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            source,
        };
        let mut file = create(&tmp).map_err(failed)?;
        let bytes = text.as_bytes();
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fault.in_write == Some(n) {
            file.write_all(&bytes[..bytes.len() / 2]).map_err(failed)?;
            let _ = file.sync_all();
            std::process::abort();
        }
        file.write_all(bytes).map_err(failed)?;
        // On the open file, not by its path. Always: a new file's mode is not only the umask's
        // doing (a directory's default ACL), and a leftover temporary file keeps its own. A
        // file system without permissions (or that refuses them) keeps what it gave.
        let wanted = match permissions {
            Some(wanted) => Some(wanted.clone()),
            None => fs::metadata(&target).ok().map(|m| m.permissions()),
        };
        if let Some(wanted) = wanted {
            let _ = file.set_permissions(wanted);
        }
        Ok(staged)
    }

    /// The edits of a file (relative to the assembly root) to make in place at commit: for a
    /// file that is [`crate::assembly::rehash::Rewrite::InPlace`]. Nothing is written now; hand
    /// the result to [`Writer::add_pending`].
    /// `stamp` is the file as it was read: the patch is made only to that file, unchanged.
    pub fn patch(&self, path: &RelPath, edits: Vec<(u64, String)>, stamp: Stamp) -> Patch {
        Patch {
            target: path.under(&self.base),
            edits,
            stamp,
        }
    }

    /// Takes a staged file ([`Writer::add`]) or a patch, which is made at commit, after the
    /// renames.
    pub fn add_pending(&mut self, pending: Pending) {
        match pending {
            Pending::Staged(staged) => self.add(staged),
            Pending::Patch(patch) => self.patches.push(patch),
        }
    }

    /// Takes a staged file; it replaces its target at commit, after those added before it.
    pub fn add(&mut self, mut staged: Staged) {
        staged.armed = false;
        self.staged.push((
            std::mem::take(&mut staged.tmp),
            std::mem::take(&mut staged.target),
        ));
    }

    /// Whether the writer rewrites the assembly in place (not a copy with `--out`): only then
    /// are files patched where they are ([`Writer::patch`]).
    pub fn is_in_place(&self) -> bool {
        self.copy.is_none()
    }

    /// Whether nothing was staged or patched.
    pub fn is_empty(&self) -> bool {
        self.staged.is_empty() && self.patches.is_empty()
    }

    /// Syncs the files staged so far, so that [`Writer::commit`] has only the rest to sync: for
    /// a caller with other work to do meanwhile, such as printing the review. Nothing replaces
    /// anything yet. In place only; a copy's files are not synced one by one.
    pub fn sync(&mut self) -> Result<()> {
        if self.copy.is_none() {
            let staged = self.staged[self.synced..]
                .iter()
                .map(|(tmp, _)| tmp.as_path());
            sync_files(staged, &mut self.volatile)?;
            self.synced = self.staged.len();
        }
        Ok(())
    }

    /// Syncs every staged file, then renames each over its target. In place, a marker at the
    /// root covers the renames; a copy is then moved to its place as a whole. Returns whether
    /// anything was written.
    pub fn commit(mut self) -> Result<bool> {
        self.done = true;
        let result = self.finish();
        if result.is_err() {
            self.discard();
        }
        result
    }

    fn finish(&mut self) -> Result<bool> {
        let wrote = !self.is_empty();
        match self.copy.take() {
            None => {
                if !wrote {
                    return Ok(false);
                }
                self.sync()?;
                // Every file to patch is as it was read, and may be written, before anything
                // is: a file changed by something else while the run went on stops it here,
                // with nothing written. (The patches check again as they are made.)
                {
                    use rayon::prelude::*;
                    // On every core; the first file in order that fails is the one named.
                    let checked: Vec<Result<()>> =
                        self.patches.par_iter().map(Patch::check).collect();
                    checked.into_iter().collect::<Result<()>>()?;
                }
                let marker = self.base.join(INCOMPLETE_MARKER);
                // A new file, never through a link left at its name (`O_EXCL`).
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&marker)
                    .and_then(|mut f| f.write_all(b"cdk-harden apply in progress\n"))
                    .map_err(Error::io(&marker))?;
                self.volatile.sync_dir(&self.base);
                let base = self.base.clone();
                let partly = |source| Error::PartlyWritten {
                    path: base.clone(),
                    source: Box::new(source),
                };
                self.replace_all().map_err(partly)?;
                // Durable before the marker goes: an overwrite in place is not ordered with
                // the journal as renames and the marker's removal are.
                let patched = self.patches.iter().map(|p| p.target.as_path());
                sync_files(patched, &mut self.volatile).map_err(partly)?;
                let dirs: std::collections::BTreeSet<&Path> =
                    self.staged.iter().filter_map(|(_, t)| t.parent()).collect();
                for dir in dirs {
                    self.volatile.sync_dir(dir);
                }
                fs::remove_file(&marker).map_err(Error::io(&marker))?;
                self.volatile.sync_dir(&self.base);
                self.staged.clear();
            }
            Some(copy) => {
                let placed = self.place_copy(&copy);
                if placed.is_err() {
                    // Still the writer's to remove, as a copy that failed.
                    self.copy = Some(copy);
                }
                placed?;
                // The copy is written even when no file in it changed.
                return Ok(true);
            }
        }
        Ok(wrote)
    }

    /// Finishes the copy under construction and puts it at `copy.out`, in place of what was
    /// there: that is moved aside first, and back if the copy cannot take its place.
    fn place_copy(&mut self, copy: &CopyTarget) -> Result<()> {
        self.replace_all()?;
        self.staged.clear();
        self.volatile.sync_dir(&self.base);
        let CopyTarget {
            out, parent, name, ..
        } = copy;
        if fs::symlink_metadata(out).is_ok() {
            let old = parent.join(format!(".{name}.cdk-harden-old-{}", std::process::id()));
            fs::rename(out, &old).map_err(Error::io(out))?;
            if let Err(e) = fs::rename(&self.base, out) {
                let _ = fs::rename(&old, out);
                return Err(Error::io(out)(e));
            }
            fs::remove_dir_all(&old).map_err(Error::io(&old))?;
        } else {
            fs::rename(&self.base, out).map_err(Error::io(out))?;
        }
        Ok(())
    }

    /// Renames every staged file over its target, then makes every patch. The marker (in
    /// place) or the unfinished copy covers them as a whole, so their order does not matter
    /// and they run on every core: each is an update the file system makes in memory, and a
    /// thousand stages stage two thousand files and patch two thousand more. Under the fault
    /// hook they run in order, so the fault lands after an exact number of files.
    fn replace_all(&mut self) -> Result<()> {
        use rayon::prelude::*;
        let Some(mut left) = self.fault.after_rename else {
            self.staged
                .par_iter()
                .try_for_each(|(tmp, target)| fs::rename(tmp, target).map_err(Error::io(target)))?;
            return self.patches.par_iter().try_for_each(Patch::make);
        };
        let renames = self
            .staged
            .iter()
            .map(|(tmp, target)| fs::rename(tmp, target).map_err(Error::io(target)));
        for done in renames.chain(self.patches.iter().map(Patch::make)) {
            done?;
            left -= 1;
            if left == 0 {
                std::process::abort();
            }
        }
        Ok(())
    }

    /// Removes what was staged (and a copy under construction).
    fn discard(&mut self) {
        for (tmp, _) in self.staged.drain(..) {
            let _ = fs::remove_file(tmp);
        }
        if let Some(copy) = self.copy.take() {
            let _ = fs::remove_dir_all(&self.base);
            // The directories made for the copy, innermost first; one that is not empty is
            // someone else's now and stays.
            if let Some(made) = &copy.made {
                for dir in copy.parent.ancestors() {
                    let _ = fs::remove_dir(dir);
                    if dir == made {
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.done {
            self.discard();
        }
    }
}

impl Patch {
    /// Whether the file is still as it was read, and may be written.
    fn check(&self) -> Result<()> {
        self.open().map(drop)
    }

    /// The file opened to be written (never through a symbolic link put in its place), if it
    /// is still as it was read.
    #[cfg(unix)]
    fn open(&self) -> Result<fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&self.target)
            .map_err(Error::io(&self.target))?;
        let now = file.metadata().map_err(Error::io(&self.target))?;
        if Stamp::of(&now) != Some(self.stamp) {
            return Err(Error::Changed {
                path: self.target.clone(),
            });
        }
        Ok(file)
    }

    #[cfg(not(unix))]
    fn open(&self) -> Result<fs::File> {
        fs::OpenOptions::new()
            .write(true)
            .open(&self.target)
            .map_err(Error::io(&self.target))
    }

    /// Overwrites the ids, in the file itself (never through a symbolic link put in its place).
    fn make(&self) -> Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            let file = self.open()?;
            for (at, id) in &self.edits {
                file.write_all_at(id.as_bytes(), *at)
                    .map_err(Error::io(&self.target))?;
            }
        }
        #[cfg(not(unix))]
        {
            use std::io::{Seek, SeekFrom};
            let mut file = self.open()?;
            for (at, id) in &self.edits {
                file.seek(SeekFrom::Start(*at))
                    .and_then(|_| file.write_all(id.as_bytes()))
                    .map_err(Error::io(&self.target))?;
            }
        }
        Ok(())
    }
}

/// Where `out` is, or would be once created: its canonical form, or its parent's joined with
/// its name.
fn canonical_target(out: &Path) -> Result<PathBuf> {
    if out.exists() {
        return out.canonicalize().map_err(Error::io(out));
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out.file_name().map(PathBuf::from).unwrap_or_default();
    match parent.canonicalize() {
        Ok(p) => Ok(p.join(name)),
        // The parent does not exist yet either: it cannot be inside the input then, unless
        // an ancestor is; check the closest existing ancestor.
        Err(_) => Ok(canonical_target(&parent)?.join(name)),
    }
}

/// The fault-injection hook (see [`FAULT_ENV`]).
#[derive(Debug, Default)]
struct Fault {
    in_write: Option<usize>,
    after_rename: Option<usize>,
}

impl Fault {
    fn from_env() -> Fault {
        let spec = std::env::var(FAULT_ENV).unwrap_or_default();
        let parsed = spec
            .split_once(':')
            .and_then(|(kind, n)| Some((kind, n.parse::<usize>().ok().filter(|&n| n > 0)?)));
        match parsed {
            Some(("abort-in-write", n)) => Fault {
                in_write: Some(n),
                after_rename: None,
            },
            Some(("abort-after-rename", n)) => Fault {
                in_write: None,
                after_rename: Some(n),
            },
            _ => Fault::default(),
        }
    }
}

/// Creates (or truncates) the temporary file at `tmp`, never through a symbolic link left at
/// its name: one is removed first.
fn create(tmp: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    match options.open(tmp) {
        Err(e) if fs::symlink_metadata(tmp).is_ok_and(|m| m.file_type().is_symlink()) => {
            fs::remove_file(tmp)?;
            options.open(tmp).map_err(|_| e)
        }
        other => other,
    }
}

fn temp_path(target: &Path) -> PathBuf {
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The process id, asked for once (each call is a system call).
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let pid = PID.get_or_init(std::process::id);
    dir.join(format!(".{name}.cdk-harden-{pid}.tmp"))
}

/// Makes `files` durable, file by file, concurrently: a journaling file system commits
/// concurrent syncs together, so this costs about one sync instead of one per file. (One
/// `syncfs` would be fewer calls, but it waits for every write on the file system, a build's
/// as well, where these wait only for the assembly's.) Files kept only in memory (tmpfs,
/// ramfs), where a sync does nothing, are skipped.
fn sync_files<'a>(files: impl Iterator<Item = &'a Path>, volatile: &mut Volatile) -> Result<()> {
    let files: Vec<&Path> = files
        .filter(|f| !f.parent().is_some_and(|d| volatile.holds(d)))
        .collect();
    let threads = files.len().clamp(1, 16);
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || -> Result<()> {
                    for file in part {
                        fs::File::open(file)
                            .and_then(|f| f.sync_all())
                            .map_err(Error::io(*file))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("sync thread does not panic"))
    })
}

/// Which directories lie on a file system kept only in memory (Linux: tmpfs, ramfs), asked of
/// each directory once.
#[derive(Debug, Default)]
struct Volatile(std::collections::HashMap<PathBuf, bool>);

impl Volatile {
    /// Syncs the directory `dir`, unless it is kept in memory.
    fn sync_dir(&mut self, dir: &Path) {
        if self.holds(dir) {
            return;
        }
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }

    fn holds(&mut self, dir: &Path) -> bool {
        if let Some(&known) = self.0.get(dir) {
            return known;
        }
        let volatile = in_memory(dir);
        self.0.insert(dir.to_path_buf(), volatile);
        volatile
    }
}

/// Whether `dir` is on tmpfs or ramfs (`statfs`); `false` if that cannot be told.
#[cfg(target_os = "linux")]
fn in_memory(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(name) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `name` is NUL-terminated and outlives the call; `statfs` writes only `stat`,
    // a plain struct it may fill.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(name.as_ptr(), &mut stat) } != 0 {
        return false;
    }
    // ramfs's magic number, which libc does not name (`linux/magic.h`).
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    let kind = stat.f_type as i64;
    // A `c_long`: not 64 bits everywhere.
    #[allow(clippy::useless_conversion)]
    let tmpfs = i64::from(libc::TMPFS_MAGIC);
    kind == tmpfs || kind == RAMFS_MAGIC
}

#[cfg(not(target_os = "linux"))]
fn in_memory(_dir: &Path) -> bool {
    false
}

/// Copies a directory tree, keeping symbolic links as links and skipping cdk-harden's own
/// temporary files. A link that leads inside the tree is made relative, so that in the copy it
/// leads inside the copy: one written as an absolute path (or climbing out and back in) would
/// otherwise lead back into the original, and writing the copy would write the input.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let root = from.canonicalize().map_err(Error::io(from))?;
    copy_dir(&root, from, to, Path::new(""))
}

/// [`copy_tree`] of the directory `from`, at `within` below the tree's canonical `root`.
fn copy_dir(root: &Path, from: &Path, to: &Path, within: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(Error::io(to))?;
    let mut entries: Vec<_> = fs::read_dir(from)
        .map_err(Error::io(from))?
        .collect::<std::io::Result<_>>()
        .map_err(Error::io(from))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let lossy = name.to_string_lossy();
        if lossy.contains(".cdk-harden-") || lossy == INCOMPLETE_MARKER {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        let kind = entry.file_type().map_err(Error::io(&src))?;
        if kind.is_symlink() {
            let written = fs::read_link(&src).map_err(Error::io(&src))?;
            // Where it leads, if that is inside the tree: from this directory, in the copy.
            let inside = src.canonicalize().ok().and_then(|real| {
                let rel = real.strip_prefix(root).ok()?;
                let up = within.components().map(|_| Path::new(".."));
                Some(up.collect::<PathBuf>().join(rel))
            });
            let target = match inside {
                Some(rel) if rel.as_os_str().is_empty() => PathBuf::from("."),
                Some(rel) => rel,
                None => written,
            };
            #[cfg(unix)]
            std::os::unix::fs::symlink(&target, &dst).map_err(Error::io(&dst))?;
            #[cfg(not(unix))]
            {
                let _ = target;
                fs::copy(&src, &dst).map(|_| ()).map_err(Error::io(&dst))?;
            }
        } else if kind.is_dir() {
            copy_dir(root, &src, &dst, &within.join(&name))?;
        } else if kind.is_file() {
            fs::copy(&src, &dst).map_err(Error::io(&dst))?;
        } else {
            // A named pipe would block the copy until something wrote to it.
            return Err(Error::NotRegular { path: src });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-place writer with `a.json` staged and `b.json` (holding `b`) to patch.
    fn staged_and_patched() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.json"), "a").unwrap();
        std::fs::write(dir.path().join("b.json"), "b").unwrap();
        let mut writer = Writer::in_place(dir.path());
        let staged = writer
            .stage(&RelPath::root().join("a.json"), "A", None)
            .unwrap();
        writer.add(staged);
        let stamp = crate::error::Stamp::of(&fs::metadata(dir.path().join("b.json")).unwrap());
        let patch = writer.patch(
            &RelPath::root().join("b.json"),
            vec![(0, "B".into())],
            stamp.unwrap(),
        );
        writer.add_pending(Pending::Patch(patch));
        (dir, writer)
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A file to patch that changed after it was read stops the commit before anything is
    /// written: no rename, no marker, no temporary file left.
    #[cfg(unix)]
    #[test]
    fn issue_2_a_changed_file_stops_the_commit_before_anything_is_written() {
        let (dir, writer) = staged_and_patched();
        std::fs::write(dir.path().join("b.json"), "bb").unwrap();
        let err = writer.commit().unwrap_err();
        assert!(matches!(err, Error::Changed { .. }), "{err}");
        assert_eq!(names(dir.path()), ["a.json", "b.json"]);
        assert_eq!(fs::read_to_string(dir.path().join("a.json")).unwrap(), "a");
        // Unchanged, the same writer's commit would have made both.
        let (dir, writer) = staged_and_patched();
        assert!(writer.commit().unwrap());
        assert_eq!(fs::read_to_string(dir.path().join("a.json")).unwrap(), "A");
        assert_eq!(fs::read_to_string(dir.path().join("b.json")).unwrap(), "B");
    }

    /// A rename that fails once others may have been made says that the assembly is left
    /// incomplete, and leaves the marker that makes the next run refuse it.
    #[test]
    fn issue_2_a_commit_that_stops_part_way_says_so_and_leaves_the_marker() {
        let (dir, writer) = staged_and_patched();
        // A directory that is not empty where `a.json` was: the rename over it fails.
        fs::remove_file(dir.path().join("a.json")).unwrap();
        fs::create_dir_all(dir.path().join("a.json").join("full")).unwrap();
        let err = writer.commit().unwrap_err();
        assert!(matches!(err, Error::PartlyWritten { .. }), "{err}");
        assert!(err.chain().contains("marked incomplete"), "{}", err.chain());
        assert!(dir.path().join(INCOMPLETE_MARKER).exists());
    }

    /// A copy that cannot take its place at commit is removed, and what was at `--out` is put
    /// back: nothing of the failed run is left.
    #[test]
    fn issue_2_a_copy_that_cannot_take_its_place_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cdk.out");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("manifest.json"), "{}").unwrap();
        let out = dir.path().join("hardened");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("manifest.json"), "old").unwrap();
        let writer = Writer::copy(&root, &out).unwrap();
        // Where the old copy is moved aside: taken, by a directory that is not empty.
        let aside = dir
            .path()
            .join(format!(".hardened.cdk-harden-old-{}", std::process::id()));
        std::fs::create_dir_all(aside.join("full")).unwrap();
        assert!(writer.commit().is_err());
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let aside_name = aside.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(names, [aside_name, "cdk.out".into(), "hardened".into()]);
        assert_eq!(
            std::fs::read_to_string(out.join("manifest.json")).unwrap(),
            "old"
        );
    }

    /// A file that cannot be staged is named in the error by the file it would replace, with
    /// the temporary name beside it.
    #[test]
    fn a_failed_stage_names_the_file_it_would_replace() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::in_place(dir.path());
        let target = dir.path().join("Stack.template.json");
        // A directory where the temporary file would go: creating it fails, even as root.
        std::fs::create_dir(temp_path(&target)).unwrap();
        let Err(err) = writer.stage(&RelPath::root().join("Stack.template.json"), "{}", None)
        else {
            panic!("staged over a directory");
        };
        let message = err.chain();
        assert!(
            message.starts_with(&format!(
                "{}: writing its hardened version beside it as `.Stack.template.json.cdk-harden-",
                target.display()
            )),
            "{message}"
        );
        assert!(message.contains("Is a directory"), "{message}");
    }
}
