//! Paths inside a cloud assembly, checked so that nothing is read or written outside it.
//!
//! Manifests are input, and input is not trusted: a `templateFile`, an asset `source.path` or a
//! nested `directoryName` that leaves the assembly root (through `..`, an absolute path or a
//! symbolic link pointing out) is refused before anything is read.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// A path relative to the assembly root, with `/` separators and no `.` or `..` parts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RelPath(String);

impl RelPath {
    pub fn root() -> Self {
        RelPath(String::new())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path on disk below `root`.
    pub fn under(&self, root: &Path) -> PathBuf {
        if self.0.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&self.0)
        }
    }

    /// The directory part (the root for a top-level file).
    pub fn parent(&self) -> RelPath {
        match self.0.rfind('/') {
            Some(i) => RelPath(self.0[..i].to_string()),
            None => RelPath::root(),
        }
    }

    /// The final component.
    pub fn file_name(&self) -> &str {
        match self.0.rfind('/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// `self` joined with a plain, already-checked relative name.
    pub fn join(&self, name: &str) -> RelPath {
        if self.0.is_empty() {
            RelPath(name.to_string())
        } else {
            RelPath(format!("{}/{}", self.0, name))
        }
    }

    /// `self` relative to the directory `base`, with `..` where needed, as cdk-assets writes it.
    pub fn relative_to(&self, base: &RelPath) -> String {
        let mine: Vec<&str> = self.0.split('/').filter(|s| !s.is_empty()).collect();
        let theirs: Vec<&str> = base.0.split('/').filter(|s| !s.is_empty()).collect();
        let common = mine.iter().zip(&theirs).take_while(|(a, b)| a == b).count();
        let mut parts: Vec<&str> = vec![".."; theirs.len() - common];
        parts.extend(&mine[common..]);
        parts.join("/")
    }
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Resolves `value`, a path written in the file `manifest` (at JSON pointer `pointer`), against
/// the assembly directory `base`, and checks that it stays inside `root`.
///
/// The check is lexical first (absolute paths and `..` that climbs above the root are refused),
/// then physical: if the path exists, its canonical form must lie under the canonical root, which
/// catches symbolic links that point out.
pub fn resolve(
    root: &Path,
    base: &RelPath,
    value: &str,
    manifest: &Path,
    pointer: &str,
) -> Result<RelPath> {
    Resolver::new(root).resolve(base, value, manifest, pointer)
}

/// [`resolve`] for many paths of one assembly: the canonical forms of the root and of every
/// directory are found once and remembered, so a path costs one `lstat` unless it is a link,
/// and a path named again (a template named by its manifest and by its asset manifest, an
/// asset directory every Stage names) costs nothing. For one load: a directory replaced by a
/// link while it runs is not seen.
#[derive(Debug)]
pub struct Resolver<'a> {
    root: &'a Path,
    canonical: std::sync::Mutex<foldhash::HashMap<RelPath, Option<PathBuf>>>,
    /// Paths already checked and found inside the root.
    inside: std::sync::Mutex<foldhash::HashSet<RelPath>>,
}

impl<'a> Resolver<'a> {
    pub fn new(root: &'a Path) -> Resolver<'a> {
        Resolver {
            root,
            canonical: Default::default(),
            inside: Default::default(),
        }
    }

    pub fn root(&self) -> &'a Path {
        self.root
    }

    /// See [`resolve`].
    pub fn resolve(
        &self,
        base: &RelPath,
        value: &str,
        manifest: &Path,
        pointer: &str,
    ) -> Result<RelPath> {
        let escape = || Error::PathEscape {
            path: manifest.to_path_buf(),
            pointer: pointer.to_string(),
            value: value.to_string(),
        };
        let candidate = Path::new(value);
        if value.is_empty() || candidate.is_absolute() {
            return Err(escape());
        }
        let mut parts: Vec<String> = base
            .as_str()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        for component in candidate.components() {
            match component {
                Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(escape());
                    }
                }
                Component::RootDir | Component::Prefix(_) => return Err(escape()),
            }
        }
        if parts.is_empty() {
            return Err(escape());
        }
        let rel = RelPath(parts.join("/"));
        if self.was_inside(&rel) {
            return Ok(rel);
        }
        if let Ok(meta) = std::fs::symlink_metadata(rel.under(self.root)) {
            let root = self
                .canonical(&RelPath::root())?
                .expect("a root without a canonical form is an error");
            // A link is followed to where it points; anything else is where its directory is.
            let real = if meta.file_type().is_symlink() {
                rel.under(self.root).canonicalize().ok()
            } else {
                let name = parts.last().expect("not empty");
                self.canonical(&rel.parent())?.map(|dir| dir.join(name))
            };
            match real {
                Some(real) if real.starts_with(&root) => {}
                // Outside, or a dangling link: it points somewhere we cannot see, so refuse it.
                _ => return Err(escape()),
            }
        }
        self.inside
            .lock()
            .expect("the resolver lock is not poisoned")
            .insert(rel.clone());
        Ok(rel)
    }

    fn was_inside(&self, rel: &RelPath) -> bool {
        self.inside
            .lock()
            .expect("the resolver lock is not poisoned")
            .contains(rel)
    }

    /// The canonical form of directory `dir` of the assembly, remembered; `None` if it has
    /// none (a dangling link). The root's failure is an error.
    fn canonical(&self, dir: &RelPath) -> Result<Option<PathBuf>> {
        if let Some(known) = self.lock().get(dir) {
            return Ok(known.clone());
        }
        let on_disk = dir.under(self.root);
        let found = if dir.as_str().is_empty() {
            Some(on_disk.canonicalize().map_err(Error::io(self.root))?)
        } else {
            // A directory that is not a link is where its parent is: one look at it, rather
            // than a look at every directory on the way from `/`.
            match std::fs::symlink_metadata(&on_disk) {
                Ok(meta) if meta.is_dir() => self
                    .canonical(&dir.parent())?
                    .map(|parent| parent.join(dir.file_name())),
                Ok(_) => on_disk.canonicalize().ok(),
                Err(_) => None,
            }
        };
        self.lock().insert(dir.clone(), found.clone());
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, foldhash::HashMap<RelPath, Option<PathBuf>>> {
        self.canonical
            .lock()
            .expect("the resolver lock is not poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(base: &str, value: &str) -> Result<RelPath> {
        let dir = tempfile::tempdir().unwrap();
        let base = if base.is_empty() {
            RelPath::root()
        } else {
            RelPath(base.to_string())
        };
        resolve(dir.path(), &base, value, Path::new("manifest.json"), "/x")
    }

    #[test]
    fn plain_and_nested_paths_resolve() {
        assert_eq!(
            check("", "a.template.json").unwrap().as_str(),
            "a.template.json"
        );
        assert_eq!(
            check("assembly-Dev", "../asset.abc").unwrap().as_str(),
            "asset.abc"
        );
        assert_eq!(
            check("assembly-A/assembly-B", "./x/../y.json")
                .unwrap()
                .as_str(),
            "assembly-A/assembly-B/y.json"
        );
    }

    #[test]
    fn escapes_are_refused() {
        for (base, value) in [
            ("", "../outside.json"),
            ("assembly-Dev", "../../outside"),
            ("", "/etc/passwd"),
            ("", ""),
            ("", "."),
        ] {
            let err = check(base, value).unwrap_err();
            assert!(
                matches!(err, Error::PathEscape { .. }),
                "{base} {value}: {err}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlink_pointing_out_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
        let err = resolve(
            root.path(),
            &RelPath::root(),
            "link",
            Path::new("m.json"),
            "/p",
        )
        .unwrap_err();
        assert!(err.to_string().contains("leaves the assembly"), "{err}");
    }

    #[test]
    fn relative_to_climbs_as_needed() {
        let p = RelPath("assembly-Dev/x.assets.json".into());
        assert_eq!(
            p.relative_to(&RelPath::root()),
            "assembly-Dev/x.assets.json"
        );
        assert_eq!(
            p.relative_to(&RelPath("assembly-Dev".into())),
            "x.assets.json"
        );
        assert_eq!(
            p.relative_to(&RelPath("assembly-Other".into())),
            "../assembly-Dev/x.assets.json"
        );
    }
}
