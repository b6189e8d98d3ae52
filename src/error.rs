//! Every way cdk-harden can fail, each carrying where it happened.
//!
//! Variants name the file, and where it helps the JSON pointer, line, stack, transform id or
//! config key, so that a message alone is enough to find the problem. User input is quoted in
//! backticks. There is no catch-all variant: a new failure gets a new, located variant.

use std::path::PathBuf;

/// The result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that stops cdk-harden. All of these map to exit code 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("hardening would give the template {after} {what}; CloudFormation allows at most {limit} (it had {before}): opt resources out with `cdk-harden` metadata, turn transforms off for this environment, or split the stack")]
    Limit {
        what: &'static str,
        before: usize,
        after: usize,
        limit: usize,
    },

    #[error("{}: writing its hardened version beside it as `{temp}`", path.display())]
    Staging {
        path: PathBuf,
        temp: String,
        #[source]
        source: std::io::Error,
    },

    #[error("writing to stdout")]
    Stdout {
        #[source]
        source: std::io::Error,
    },

    #[error("{}: writing the review's temporary file (set TMPDIR to use another directory)", dir.display())]
    Spool {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: invalid JSON at line {line}, column {column}: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("{}: no manifest.json: this is not a cloud assembly (run `cdk synth` first, or pass the `cdk.out` directory)", path.display())]
    MissingManifest { path: PathBuf },

    #[error("{}: cloud assembly schema version `{found}` is not supported: cdk-harden reads major versions {min} to {max}; upgrade cdk-harden, or synthesize with a matching aws-cdk-lib", path.display())]
    UnsupportedVersion {
        path: PathBuf,
        found: String,
        min: u64,
        max: u64,
    },

    #[error("{}: `{pointer}` must be {expected}", path.display())]
    Shape {
        path: PathBuf,
        pointer: String,
        expected: &'static str,
    },

    #[error("{}: `{pointer}` names `{value}`, which leaves the assembly directory; refusing to read or write outside it", path.display())]
    PathEscape {
        path: PathBuf,
        pointer: String,
        value: String,
    },

    #[error("{}: `{pointer}` names `{value}`, which does not exist or is not a regular file", path.display())]
    MissingFile {
        path: PathBuf,
        pointer: String,
        value: String,
    },

    #[error("{}: a symbolic link that leads outside the assembly directory (or nowhere); refusing to read or write outside it", path.display())]
    LinkOut { path: PathBuf },

    #[error("{}: not a regular file (a directory, a named pipe or a device); the files of a cloud assembly are regular files", path.display())]
    NotRegular { path: PathBuf },

    #[error("{}: `{pointer}` names `{value}`, a template this one is nested in (or itself): nested stacks cannot form a cycle", path.display())]
    NestedCycle {
        path: PathBuf,
        pointer: String,
        value: String,
    },

    #[error("{}: a previous `cdk-harden apply` was interrupted while writing this assembly; its files may disagree with each other. Delete the directory and run `cdk synth` again (it does not empty an existing one), then `cdk-harden apply`", path.display())]
    Interrupted { path: PathBuf },

    #[error("asset id `{id}` is shared by {first} and {second}, which harden to different templates; cdk-harden cannot tell their references apart")]
    AmbiguousAsset {
        id: String,
        first: String,
        second: String,
    },

    #[error("{}: the template of both stack `{first}` and stack `{second}`; a template file belongs to one stack (each would be hardened for its own environment and written over the other)", path.display())]
    SharedTemplate {
        path: PathBuf,
        first: String,
        second: String,
    },

    #[error("{}: `--out` must be a directory outside the assembly {} (and not one that contains it)", out.display(), input.display())]
    OutputOverlapsInput { out: PathBuf, input: PathBuf },

    #[error("{template}: the template changes, but no asset manifest entry publishes it, so its asset hash cannot be updated and the old template would deploy; synthesize with the default stack synthesizer")]
    UnpublishedTemplate { template: String },

    #[error("{}: refusing to overwrite: the directory exists and is not a cloud assembly (no manifest.json)", path.display())]
    OutputNotAssembly { path: PathBuf },

    #[error("{}: `--out` names a directory to write the hardened copy to, and this is a file", path.display())]
    OutputIsFile { path: PathBuf },

    #[error("{}: `{key}`: {problem}", path.display())]
    Config {
        path: PathBuf,
        key: String,
        problem: String,
    },

    #[error("{}: {problem}", path.display())]
    Document { path: PathBuf, problem: String },

    #[error("{}: the file changed while cdk-harden was hardening it; run again", path.display())]
    Changed { path: PathBuf },

    #[error("{}: writing the hardened files stopped part way, so the assembly is left marked incomplete; delete it and run `cdk synth` again, then `cdk-harden apply`", path.display())]
    PartlyWritten {
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },

    #[error("stack `{stack}` ({template})")]
    Stack {
        stack: String,
        template: String,
        #[source]
        source: Box<Error>,
    },

    #[error("transform `{transform}` on `{pointer}`: {problem}")]
    Transform {
        transform: String,
        pointer: String,
        problem: String,
    },

    #[error("environment `{environment}`: {problem}")]
    Environment {
        environment: String,
        problem: String,
    },

    #[error("resource `{logical_id}`: Metadata `cdk-harden`: {problem}")]
    OptOut { logical_id: String, problem: String },

    #[error("no transform with id `{id}`; `cdk-harden explain` lists them")]
    UnknownTransform { id: String },
}

/// A file's bytes, and its permissions when it was read.
#[derive(Debug)]
pub(crate) struct FileBytes {
    pub bytes: Vec<u8>,
    pub permissions: std::fs::Permissions,
    /// Whether the file may be edited where it is, if this process may write it
    /// ([`writable`]) (Unix): a regular file whose name's last component is not a symbolic link,
    /// with one link (editing it edits no other name). Writing anything else means writing a
    /// new file in its place.
    pub editable: bool,
    /// What the file was when it was read ([`Stamp`]), for an edit to check it still is.
    pub stamp: Option<Stamp>,
}

/// A file's identity and version as `fstat` gives them (Unix): device, inode, size, links and
/// modification time. The same stamp later: the same file, in all likelihood unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    device: u64,
    inode: u64,
    size: u64,
    links: u64,
    modified: (i64, i64),
}

impl Stamp {
    #[cfg(unix)]
    pub fn of(metadata: &std::fs::Metadata) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        Some(Stamp {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            links: metadata.nlink(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
        })
    }

    #[cfg(not(unix))]
    pub fn of(_metadata: &std::fs::Metadata) -> Option<Stamp> {
        None
    }
}

impl Error {
    /// The error and every cause below it, each after a colon: what the binary prints.
    /// (`Display` gives the error alone: for [`Error::Io`], the path without the system's
    /// reason, which is its source.)
    pub fn chain(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        message
    }

    /// Reads a file of the assembly, naming it on failure; see [`Error::read_file`].
    pub(crate) fn read(path: &std::path::Path) -> Result<Vec<u8>> {
        Error::read_file(path).map(|file| file.bytes)
    }

    /// Reads a file the user names (the config, a transform document), which may also be a
    /// pipe (`--config <(…)`), read to its end.
    pub(crate) fn read_any(path: &std::path::Path) -> Result<Vec<u8>> {
        Error::read_opened(path, false).map(|file| file.bytes)
    }

    /// Reads a file of the assembly and its permissions, naming it on failure: one open, one
    /// `fstat` and one read of the size it had when it was opened (`fs::read` reads once more
    /// to see its end; an assembly being read is not being written). Anything but a regular
    /// file is an error: a named pipe is opened without waiting for a writer, and refused.
    pub(crate) fn read_file(path: &std::path::Path) -> Result<FileBytes> {
        Error::read_opened(path, true)
    }

    fn read_opened(path: &std::path::Path, regular: bool) -> Result<FileBytes> {
        #[cfg(unix)]
        let (file, link) = {
            use std::os::unix::fs::OpenOptionsExt;
            let nonblock = if regular { libc::O_NONBLOCK } else { 0 };
            let mut options = std::fs::OpenOptions::new();
            options.read(true).custom_flags(libc::O_NOFOLLOW | nonblock);
            match options.open(path) {
                Ok(file) => (file, false),
                // Refused without following: a symbolic link (`ELOOP`; FreeBSD says `EMLINK`,
                // NetBSD `EFTYPE`), or something else the plain open reports. Read it, never
                // edit it.
                Err(_) => {
                    let mut options = std::fs::OpenOptions::new();
                    options.read(true).custom_flags(nonblock);
                    (options.open(path).map_err(Error::io(path))?, true)
                }
            }
        };
        #[cfg(not(unix))]
        let (file, link) = (std::fs::File::open(path).map_err(Error::io(path))?, true);
        let metadata = file.metadata().map_err(Error::io(path))?;
        if regular && !metadata.is_file() {
            return Err(Error::NotRegular {
                path: path.to_path_buf(),
            });
        }
        let read = read_open(path, file, &metadata)?;
        Ok(FileBytes {
            editable: !link && editable(&metadata),
            stamp: Stamp::of(&metadata),
            ..read
        })
    }

    /// [`Error::read_file`] for a file that must be a regular one: `None` if there is nothing
    /// at `path`, or something else (a directory; a named pipe, opened without waiting for a
    /// writer), rather than a look at the path before opening it.
    pub(crate) fn read_regular(path: &std::path::Path) -> Result<Option<FileBytes>> {
        use std::io::ErrorKind;
        // Opening a directory there fails as a permission error: look first.
        #[cfg(not(unix))]
        if !path.is_file() {
            return Ok(None);
        }
        match Error::read_opened(path, true) {
            Ok(file) => Ok(Some(file)),
            Err(Error::NotRegular { .. }) => Ok(None),
            Err(Error::Io { source, .. })
                if matches!(
                    source.kind(),
                    ErrorKind::NotFound | ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// Parses JSON, naming the file, line and column on failure.
    pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
        path: &std::path::Path,
        bytes: &[u8],
    ) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| Error::json_in(path, bytes, &e))
    }

    /// [`Error::parse_json`] for files people write (the config, transform documents): a key
    /// given twice in one object is an error at its second place. serde_json keeps the last
    /// value, so a second `"production"` would silently replace the first, and with it the
    /// production gate.
    pub(crate) fn parse_json_unique<T: serde::de::DeserializeOwned>(
        path: &std::path::Path,
        bytes: &[u8],
    ) -> Result<T> {
        // Files people write may come from an editor that starts them with a byte order
        // mark; JSON lets a reader ignore it.
        let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
        let mut de = serde_json::Deserializer::from_slice(bytes);
        serde::de::DeserializeSeed::deserialize(unique::Unique(&mut Vec::new()), &mut de)
            .and_then(|()| de.end())
            .map_err(|e| Error::json(path, &e))?;
        Error::parse_json(path, bytes)
    }

    /// The text of the file at `path`: JSON is UTF-8, so bytes that are not are an error at
    /// the first of them, by line and column (counted in bytes, as for JSON errors).
    pub(crate) fn utf8(path: &std::path::Path, bytes: Vec<u8>) -> Result<String> {
        String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let before = &e.as_bytes()[..at];
            let line_start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            Error::Json {
                path: path.to_path_buf(),
                line: before.iter().filter(|&&b| b == b'\n').count() + 1,
                column: at - line_start + 1,
                message: "not UTF-8 (JSON text is UTF-8)".into(),
            }
        })
    }

    /// [`Error::json`] for a parse of `bytes`: one that starts with a UTF-8 byte order mark
    /// says so, instead of `expected value` at its first column. CDK writes none; a file that
    /// has one was edited, and the files around it expect none.
    pub(crate) fn json_in(path: &std::path::Path, bytes: &[u8], e: &serde_json::Error) -> Error {
        if bytes.starts_with(BOM) && e.line() == 1 && e.column() <= 1 {
            return Error::Json {
                path: path.to_path_buf(),
                line: 1,
                column: 1,
                message: "the file starts with a UTF-8 byte order mark (BOM), which cdk-harden does not read here; save it as UTF-8 without one".into(),
            };
        }
        Error::json(path, e)
    }

    /// A JSON syntax error in the file at `path`, with its position.
    pub(crate) fn json(path: &std::path::Path, e: &serde_json::Error) -> Error {
        Error::Json {
            path: path.to_path_buf(),
            line: e.line(),
            // serde_json counts an empty text's end as column 0; every other place is 1-based.
            column: e.column().max(1),
            message: strip_position(&e.to_string()),
        }
    }
}

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// serde_json appends " at line L column C"; we print the position ourselves.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// The pass of [`Error::parse_json_unique`] that finds repeated keys, naming where they are.
mod unique {
    use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

    /// Walks a value; the keys and indices leading to it are in `.0`.
    pub struct Unique<'p>(pub &'p mut Vec<String>);

    impl<'de> DeserializeSeed<'de> for Unique<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Unique<'_> {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let path = self.0;
            for i in 0.. {
                path.push(format!("[{i}]"));
                let more = seq.next_element_seed(Unique(&mut *path))?;
                path.pop();
                if more.is_none() {
                    break;
                }
            }
            Ok(())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let path = self.0;
            let mut seen = foldhash::HashSet::default();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    let within = match path.is_empty() {
                        true => "the top level".to_string(),
                        false => format!("`{}`", dotted(path)),
                    };
                    return Err(A::Error::custom(format_args!(
                        "key `{key}` appears twice in {within}; JSON would keep only the last"
                    )));
                }
                path.push(key);
                map.next_value_seed(Unique(&mut *path))?;
                path.pop();
            }
            Ok(())
        }
    }

    /// `environments.*.kms`, `production.stages[0]`.
    fn dotted(path: &[String]) -> String {
        let mut out = String::new();
        for part in path {
            if !out.is_empty() && !part.starts_with('[') {
                out.push('.');
            }
            out.push_str(part);
        }
        out
    }
}

/// Whether a file of `metadata`, opened by a name that is not a symbolic link, may be edited
/// where it is ([`FileBytes::editable`]): a regular file with one link.
#[cfg(unix)]
fn editable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    metadata.is_file() && metadata.nlink() == 1
}

#[cfg(not(unix))]
fn editable(_metadata: &std::fs::Metadata) -> bool {
    false
}

/// Whether this process may write the file at `path` (`access` with the effective ids: its
/// mode, owner and ACL all count). Asked only of a file about to be edited in place.
#[cfg(unix)]
pub(crate) fn writable(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(name) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `name` is a NUL-terminated path that lives across the call; `faccessat` only
    // reads it.
    unsafe { libc::faccessat(libc::AT_FDCWD, name.as_ptr(), libc::W_OK, libc::AT_EACCESS) == 0 }
}

#[cfg(not(unix))]
pub(crate) fn writable(_path: &std::path::Path) -> bool {
    false
}

/// Reads the open `file`, of `metadata`'s size, in as few reads as the system allows (one, for
/// a regular file); a file that shrank since is read to its end. Not [`FileBytes::editable`]:
/// the caller knows how it was opened.
fn read_open(
    path: &std::path::Path,
    mut file: std::fs::File,
    metadata: &std::fs::Metadata,
) -> Result<FileBytes> {
    use std::io::Read;
    let mut bytes = Vec::new();
    if metadata.is_file() {
        let size = usize::try_from(metadata.len()).unwrap_or(usize::MAX);
        // Zeroed by the allocator: a large buffer comes from fresh, already zero pages.
        bytes = vec![0; size];
        let mut filled = 0;
        while filled < size {
            match file.read(&mut bytes[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(path)(e)),
            }
        }
        bytes.truncate(filled);
    } else {
        file.read_to_end(&mut bytes).map_err(Error::io(path))?;
    }
    Ok(FileBytes {
        bytes,
        permissions: metadata.permissions(),
        editable: false,
        stamp: None,
    })
}
