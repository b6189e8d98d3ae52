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

/// Environment variable for the fault-injection test hook: `abort-after:N` aborts the process
/// half-way through writing the N-th file (counting from 1). Used by the kill-mid-write test.
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
    pub fn write_in_place(&self, root: &Path) -> Result<()> {
        if self.files.is_empty() {
            return Ok(());
        }
        let marker = root.join(INCOMPLETE_MARKER);
        atomic_write(&marker, b"cdk-harden apply in progress\n", None)?;
        let mut fault = Fault::from_env();
        for (path, text) in &self.files {
            atomic_write(&path.under(root), text.as_bytes(), fault.as_mut())?;
        }
        fs::remove_file(&marker).map_err(Error::io(&marker))?;
        sync_dir(root);
        Ok(())
    }

    /// Writes a complete hardened copy of the assembly at `root` to `out`, leaving `root` as it
    /// is. An existing `out` is replaced only if it is itself a cloud assembly (a previous
    /// output, say) or empty.
    pub fn write_copy(&self, root: &Path, out: &Path) -> Result<()> {
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
            for (path, text) in &self.files {
                atomic_write(&path.under(&staging), text.as_bytes(), fault.as_mut())?;
            }
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

/// Counts writes for the fault-injection hook.
struct Fault {
    remaining: usize,
}

impl Fault {
    fn from_env() -> Option<Fault> {
        let spec = std::env::var(FAULT_ENV).ok()?;
        let n = spec.strip_prefix("abort-after:")?.parse().ok()?;
        Some(Fault { remaining: n })
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
fn atomic_write(path: &Path, bytes: &[u8], fault: Option<&mut Fault>) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.cdk-harden-{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&tmp).map_err(Error::io(&tmp))?;
        if let Some(fault) = fault {
            fault.remaining = fault.remaining.saturating_sub(1);
            if fault.remaining == 0 {
                file.write_all(&bytes[..bytes.len() / 2])
                    .map_err(Error::io(&tmp))?;
                let _ = file.sync_all();
                std::process::abort();
            }
        }
        file.write_all(bytes).map_err(Error::io(&tmp))?;
        file.sync_all().map_err(Error::io(&tmp))?;
        drop(file);
        if let Ok(meta) = fs::metadata(path) {
            let _ = fs::set_permissions(&tmp, meta.permissions());
        }
        fs::rename(&tmp, path).map_err(Error::io(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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
