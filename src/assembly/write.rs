//! Writing a hardened assembly: in place, or as a complete copy with `--out`.
//!
//! Only files whose bytes change are written. Each write is atomic (a temporary file in the same
//! directory, synced, then renamed over the target), so a crash or kill leaves every file
//! either old or new. While files are rewritten in place, a marker at the root records that the
//! assembly is in transition; a later run that finds it refuses to work on a possibly
//! inconsistent assembly. With `--out`, the copy is built beside the target and renamed into
//! place as a whole.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::rehash::{rehash, Renamed};
use super::{Assembly, RelPath, INCOMPLETE_MARKER};
use crate::error::{Error, Result};

/// Environment variable for the fault-injection test hook used by the kill-mid-write tests:
/// `abort-in-write:N` aborts half-way through writing the N-th file, `abort-after-rename:N`
/// aborts after the N-th file replaced its target (counting from 1).
pub const FAULT_ENV: &str = "CDK_HARDEN_FAULT";

/// The files an apply writes, in order, with their final bytes.
#[derive(Debug, Default)]
pub struct WritePlan {
    /// (path, new bytes), templates leaves-first, then asset manifests, the tree, manifests.
    pub files: Vec<(RelPath, String)>,
    /// Asset ids that were replaced.
    pub renamed: Vec<Renamed>,
}

impl WritePlan {
    /// Plans the writes for the changed templates (index into [`Assembly::stacks`] → new value).
    pub fn new(assembly: &Assembly, changed: &BTreeMap<usize, serde_json::Value>) -> Result<Self> {
        let rehashed = rehash(assembly, changed)?;
        let mut files: Vec<(RelPath, String)> = rehashed
            .templates
            .into_iter()
            .map(|(i, text)| (assembly.stacks[i].template_path.clone(), text))
            .collect();
        files.extend(rehashed.others);
        Ok(WritePlan {
            files,
            renamed: rehashed.renamed,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Rewrites the changed files of the assembly at `root` in place.
    ///
    /// Three phases: every new file is written to a temporary file beside its target; all of
    /// them are synced (concurrently, so the file system can commit them together); then each
    /// is renamed over its target, leaves first, with a marker at the root while renames are
    /// under way. Nothing is replaced until every new file is safely on disk.
    pub fn write_in_place(&self, root: &Path) -> Result<()> {
        if self.files.is_empty() {
            return Ok(());
        }
        let mut fault = Fault::from_env();
        let staged = stage(root, &self.files, fault.as_mut())?;
        let marker = root.join(INCOMPLETE_MARKER);
        let result = (|| {
            fs::write(&marker, b"cdk-harden apply in progress\n").map_err(Error::io(&marker))?;
            sync_dir(root);
            for (tmp, target) in &staged {
                fs::rename(tmp, target).map_err(Error::io(target))?;
                if let Some(f) = fault.as_mut() {
                    f.renamed();
                }
            }
            fs::remove_file(&marker).map_err(Error::io(&marker))?;
            sync_dirs(root, &self.files);
            Ok(())
        })();
        if result.is_err() {
            for (tmp, _) in &staged {
                let _ = fs::remove_file(tmp);
            }
        }
        result
    }

    /// Writes a complete hardened copy of the assembly at `root` to `out`, leaving `root` as it
    /// is. An existing `out` is replaced only if it is itself a cloud assembly (a previous
    /// output, say) or empty.
    pub fn write_copy(&self, root: &Path, out: &Path) -> Result<()> {
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
        fs::create_dir_all(&parent).map_err(Error::io(&parent))?;
        let staging = parent.join(format!(".{name}.cdk-harden-{}", std::process::id()));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(Error::io(&staging))?;
        }
        let result = (|| {
            copy_tree(root, &staging)?;
            let mut fault = Fault::from_env();
            for (tmp, target) in stage(&staging, &self.files, fault.as_mut())? {
                fs::rename(&tmp, &target).map_err(Error::io(&target))?;
            }
            sync_dir(&staging);
            if out.exists() {
                let old = parent.join(format!(".{name}.cdk-harden-old-{}", std::process::id()));
                fs::rename(out, &old).map_err(Error::io(out))?;
                fs::rename(&staging, out).map_err(Error::io(out))?;
                fs::remove_dir_all(&old).map_err(Error::io(&old))?;
            } else {
                fs::rename(&staging, out).map_err(Error::io(out))?;
            }
            Ok(())
        })();
        if result.is_err() && staging.exists() {
            let _ = fs::remove_dir_all(&staging);
        }
        result
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

/// The fault-injection hook: `abort-in-write:N` aborts half-way through writing the N-th
/// staged file; `abort-after-rename:N` aborts after the N-th rename.
struct Fault {
    in_write: Option<usize>,
    after_rename: Option<usize>,
}

impl Fault {
    fn from_env() -> Option<Fault> {
        let spec = std::env::var(FAULT_ENV).ok()?;
        let (kind, n) = spec.split_once(':')?;
        let n = n.parse().ok()?;
        match kind {
            "abort-in-write" => Some(Fault {
                in_write: Some(n),
                after_rename: None,
            }),
            "abort-after-rename" => Some(Fault {
                in_write: None,
                after_rename: Some(n),
            }),
            _ => None,
        }
    }

    /// Called before writing a file; true if this write is to be cut short.
    fn writing(&mut self) -> bool {
        match &mut self.in_write {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            None => false,
        }
    }

    fn renamed(&mut self) {
        if let Some(n) = &mut self.after_rename {
            *n = n.saturating_sub(1);
            if *n == 0 {
                std::process::abort();
            }
        }
    }
}

/// Writes every file to a temporary file beside its target and syncs them all. Returns
/// (temporary, target) pairs in write order. On failure, removes what it wrote.
fn stage(
    root: &Path,
    files: &[(RelPath, String)],
    mut fault: Option<&mut Fault>,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::with_capacity(files.len());
    let result = (|| {
        for (path, text) in files {
            let target = path.under(root);
            let tmp = temp_path(&target);
            staged.push((tmp.clone(), target.clone()));
            let mut file = fs::File::create(&tmp).map_err(Error::io(&tmp))?;
            let bytes = text.as_bytes();
            if fault.as_deref_mut().is_some_and(Fault::writing) {
                file.write_all(&bytes[..bytes.len() / 2])
                    .map_err(Error::io(&tmp))?;
                let _ = file.sync_all();
                std::process::abort();
            }
            file.write_all(bytes).map_err(Error::io(&tmp))?;
            if let Ok(meta) = fs::metadata(&target) {
                let _ = fs::set_permissions(&tmp, meta.permissions());
            }
        }
        sync_all(&staged)
    })();
    if result.is_err() {
        for (tmp, _) in &staged {
            let _ = fs::remove_file(tmp);
        }
    }
    result.map(|()| staged)
}

fn temp_path(target: &Path) -> PathBuf {
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{name}.cdk-harden-{}.tmp", std::process::id()))
}

/// Syncs the files concurrently: a journaling file system commits concurrent syncs together,
/// so this costs about one sync instead of one per file.
fn sync_all(staged: &[(PathBuf, PathBuf)]) -> Result<()> {
    let threads = staged.len().clamp(1, 16);
    let chunk = staged.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = staged
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || -> Result<()> {
                    for (tmp, _) in part {
                        fs::File::open(tmp)
                            .and_then(|f| f.sync_all())
                            .map_err(Error::io(tmp))?;
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

/// Syncs the directories that received renames, so the renames themselves are durable.
fn sync_dirs(root: &Path, files: &[(RelPath, String)]) {
    let dirs: std::collections::BTreeSet<PathBuf> =
        files.iter().map(|(p, _)| p.parent().under(root)).collect();
    for dir in dirs {
        sync_dir(&dir);
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Copies a directory tree, keeping symbolic links as links and skipping cdk-harden's own
/// temporary files.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
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
            let target = fs::read_link(&src).map_err(Error::io(&src))?;
            #[cfg(unix)]
            std::os::unix::fs::symlink(&target, &dst).map_err(Error::io(&dst))?;
            #[cfg(not(unix))]
            fs::copy(&src, &dst).map(|_| ()).map_err(Error::io(&dst))?;
        } else if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            fs::copy(&src, &dst).map_err(Error::io(&dst))?;
        }
    }
    Ok(())
}
