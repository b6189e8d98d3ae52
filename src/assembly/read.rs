//! Reading a cloud assembly from disk.
//!
//! Walks `manifest.json`, descends into nested assemblies (`cdk:cloud-assembly` artifacts, one
//! per Stage, to any depth), reads every stack template, follows `AWS::CloudFormation::Stack`
//! resources to their nested templates, and indexes the asset manifests so each template knows
//! the asset entries that publish it. Every path a manifest names is checked by
//! [`paths::resolve`] before it is opened. Asset payloads are never read.

use crate::transform::change::Pointer;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::Path;

use serde_json::Value;

use super::paths::{self, RelPath};
use super::rehash::Ids;
use super::{
    AssemblyDir, AssetManifest, AssetRef, Environment, NestedLink, Source, Stack, Template,
    INCOMPLETE_MARKER, SCHEMA_MAJOR_MAX, SCHEMA_MAJOR_MIN,
};
use crate::error::{Error, Result};
use crate::Assembly;

/// Loads the assembly rooted at `root`.
///
/// Fails, naming the file, on: a missing `manifest.json`, invalid JSON (with line and column)
/// in a manifest or an asset manifest, an unsupported schema major version, a manifest entry
/// of the wrong shape, a path leaving the assembly, a template that does not exist, is not
/// UTF-8 or is not a JSON object, or the marker of an interrupted `apply`. A template that
/// holds a nested stack is parsed here, and any error in it reported; the others are parsed
/// when they are read to be hardened ([`Assembly::read_template`]), which reports theirs.
pub fn load(root: &Path) -> Result<Assembly> {
    if !root.join("manifest.json").is_file() {
        return Err(Error::MissingManifest {
            path: root.to_path_buf(),
        });
    }
    // Anything at the marker's name, a link (even one leading nowhere) as well.
    if std::fs::symlink_metadata(root.join(INCOMPLETE_MARKER)).is_ok() {
        return Err(Error::Interrupted {
            path: root.to_path_buf(),
        });
    }
    let resolver = paths::Resolver::new(root);
    let mut reader = Reader {
        root,
        resolver: &resolver,
        dirs: Vec::new(),
        stacks: Vec::new(),
        asset_manifests: Vec::new(),
        reference_files: Vec::new(),
        version: String::new(),
        jobs: Vec::new(),
    };
    reader.read_dir(RelPath::root())?;
    reader.read_stacks()?;
    reader.link_assets();
    Ok(Assembly {
        root: root.to_path_buf(),
        version: reader.version,
        dirs: reader.dirs,
        stacks: reader.stacks,
        asset_manifests: reader.asset_manifests,
        reference_files: reader.reference_files,
    })
}

struct Reader<'a> {
    root: &'a Path,
    /// Checks every path named in the assembly, remembering canonical directories.
    resolver: &'a paths::Resolver<'a>,
    dirs: Vec<AssemblyDir>,
    stacks: Vec<Stack>,
    asset_manifests: Vec<AssetManifest>,
    reference_files: Vec<RelPath>,
    version: String,
    /// Stack artifacts found in the manifests, in manifest order, read afterwards in parallel.
    jobs: Vec<StackJob>,
}

/// One assembly directory as read: its manifest's entries in order, and the error reading
/// stopped at, if any.
struct Scan {
    dir: RelPath,
    manifest_path: RelPath,
    display_name: Option<String>,
    /// The manifest's schema version.
    version: String,
    items: Vec<Item>,
    error: Option<Error>,
}

/// An entry of a manifest that the load keeps.
enum Item {
    Stack(StackJob),
    AssetManifest(AssetManifest),
    /// A file kept as it is (the tree, metadata files).
    Reference(RelPath),
    Nested(Box<Nested>),
}

/// A nested assembly: named by its parent's manifest, then read.
enum Nested {
    Named(RelPath, String),
    Read(Scan),
}

/// An assembly whose templates total at most this many bytes keeps their texts from load to
/// hardening, instead of reading each file again (a 100-stage pipeline's templates take about
/// 2 MB); a larger one reads each when its turn comes, so its memory stays that of the
/// templates in flight.
pub(crate) const KEEP_TEXTS: usize = 4 << 20;

/// What the readers of the templates share: the file assets of the assembly (their ids, and
/// the file each publishes) and the bytes of template text read so far.
struct AssetIndex<'a> {
    ids: Ids,
    sources: foldhash::HashMap<&'a str, &'a RelPath>,
    read: std::sync::atomic::AtomicUsize,
}

/// A stack artifact whose template (and nested templates) are still to be read.
struct StackJob {
    name: String,
    display_name: String,
    dir: usize,
    template_path: RelPath,
    environment: Environment,
    stage: Option<String>,
    /// Whether the manifest deploys the template from an asset (`stackTemplateAssetObjectUrl`).
    published: bool,
    /// The manifest, pointer and value that name the template, for the error if it is missing.
    named_by: (std::path::PathBuf, String, String),
}

/// Reads a JSON file below the root.
fn read_json(root: &Path, rel: &RelPath) -> Result<Value> {
    let path = rel.under(root);
    let bytes = Error::read(&path)?;
    Error::parse_json(&path, &bytes)
}

/// Reads a `manifest.json`, keeping only what the walk reads ([`light::Manifest`]); anything
/// the light parse does not accept is parsed in full, so errors are those of the full parse.
fn read_manifest(root: &Path, rel: &RelPath) -> Result<Value> {
    let path = rel.under(root);
    let bytes = Error::read(&path)?;
    match serde_json::from_slice::<light::Manifest>(&bytes) {
        Ok(light) => Ok(light.into_value()),
        Err(_) => Error::parse_json(&path, &bytes),
    }
}

/// Reads a template file: its bytes and value, checked to be an object whose `Resources`, if
/// present, is an object of resources with string types.
pub(crate) fn read_template(file: &Path) -> Result<Template> {
    parse_template(file, Error::read(file)?)
}

/// [`read_template`] on bytes already read from `file`.
pub(crate) fn parse_template(file: &Path, bytes: Vec<u8>) -> Result<Template> {
    parse_template_text(file, Error::utf8(file, bytes)?)
}

/// [`read_template`] on the text of `file`, read before.
pub(crate) fn parse_template_text(file: &Path, text: String) -> Result<Template> {
    let value = super::format::parse(&text).map_err(|e| {
        match super::format::duplicate_key(&text, &e) {
            Some(twice) => Error::Json {
                path: file.to_path_buf(),
                line: twice.line,
                column: twice.column,
                message: format!(
                    "key `{}` appears twice in one object (first at line {}); JSON would keep only the last",
                    twice.key, twice.first_line
                ),
            },
            None => Error::json_in(file, text.as_bytes(), &e),
        }
    })?;
    if !value.is_object() {
        return Err(Error::Shape {
            path: file.to_path_buf(),
            pointer: String::new(),
            expected: "a JSON object (a CloudFormation template)",
        });
    }
    check_resources(&value, file)?;
    Ok(Template { text, value })
}

fn str_at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.at(pointer).and_then(Value::as_str)
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl Reader<'_> {
    fn shape(&self, file: &RelPath, pointer: String, expected: &'static str) -> Error {
        Error::Shape {
            path: file.under(self.root),
            pointer,
            expected,
        }
    }

    /// Walks the assembly in `dir` and every nested assembly below it. The manifests of
    /// nested assemblies (one per Stage) are read on every core ([`Reader::scan`]); what they
    /// hold is then taken in manifest order, depth first ([`Reader::adopt`]), so indices, order
    /// and the error reported are those of reading them one by one.
    fn read_dir(&mut self, dir: RelPath) -> Result<()> {
        let scan = self.scan(dir, None);
        self.adopt(scan, None)
    }

    /// Reads the manifest in `dir` and, in parallel, those of the assemblies nested in it.
    /// Reading stops at the first error, which is kept after what was read before it.
    fn scan(&self, dir: RelPath, display_name: Option<String>) -> Scan {
        use rayon::prelude::*;
        let mut scan = Scan {
            manifest_path: dir.join("manifest.json"),
            dir,
            display_name,
            version: String::new(),
            items: Vec::new(),
            error: None,
        };
        if let Err(e) = self.scan_manifest(&mut scan) {
            scan.error = Some(e);
        }
        scan.items.par_iter_mut().for_each(|item| {
            if let Item::Nested(nested) = item {
                let (dir, display) = match &mut **nested {
                    Nested::Named(dir, display) => (dir.clone(), std::mem::take(display)),
                    Nested::Read(_) => return,
                };
                **nested = Nested::Read(self.scan(dir, Some(display)));
            }
        });
        scan
    }

    /// The entries of one manifest, in order, into `scan`; nested assemblies only named.
    fn scan_manifest(&self, scan: &mut Scan) -> Result<()> {
        let (dir, manifest_path) = (&scan.dir, &scan.manifest_path);
        let manifest_file = manifest_path.under(self.root);
        // A manifest, too, may be a link only to a file inside the assembly.
        if let Err(Error::PathEscape { .. }) =
            self.resolver
                .resolve(dir, manifest_path.file_name(), &manifest_file, "")
        {
            return Err(Error::LinkOut {
                path: manifest_file,
            });
        }
        let manifest = read_manifest(self.root, manifest_path)?;
        let version = str_at(&manifest, "/version")
            .ok_or_else(|| self.shape(manifest_path, "/version".into(), "a version string"))?;
        check_version(&manifest_file, version)?;
        scan.version = version.to_string();

        let empty = serde_json::Map::new();
        let artifacts = match manifest.get("artifacts") {
            None => &empty,
            Some(Value::Object(map)) => map,
            Some(_) => return Err(self.shape(manifest_path, "/artifacts".into(), "an object")),
        };
        for (id, artifact) in artifacts {
            let at = format!("/artifacts/{}", escape_pointer(id));
            let kind = str_at(artifact, "/type")
                .ok_or_else(|| self.shape(manifest_path, format!("{at}/type"), "a string"))?;
            if let Some(extra) = str_at(artifact, "/additionalMetadataFile") {
                let path = self.resolver.resolve(
                    dir,
                    extra,
                    &manifest_file,
                    &format!("{at}/additionalMetadataFile"),
                )?;
                if path.under(self.root).is_file() {
                    scan.items.push(Item::Reference(path));
                }
            }
            let resolver = self.resolver;
            // The error for a file the manifest names that is not there as a regular file.
            let missing = |name: &str, written: &str| Error::MissingFile {
                path: manifest_file.clone(),
                pointer: format!("{at}/properties/{name}"),
                value: written.to_string(),
            };
            // A path-valued property: its text, and the path checked to stay in the assembly.
            let path_property = |name: &str| -> Result<(&str, RelPath)> {
                let pointer = format!("{at}/properties/{name}");
                let value = str_at(artifact, &format!("/properties/{name}")).ok_or_else(|| {
                    Error::Shape {
                        path: manifest_file.clone(),
                        pointer: pointer.clone(),
                        expected: "a string",
                    }
                })?;
                Ok((
                    value,
                    resolver.resolve(dir, value, &manifest_file, &pointer)?,
                ))
            };
            match kind {
                "aws:cloudformation:stack" => {
                    let (written, template_path) = path_property("templateFile")?;
                    let environment = match artifact.get("environment") {
                        None => Environment::default(),
                        Some(env) => {
                            env.as_str().and_then(Environment::parse).ok_or_else(|| {
                                self.shape(
                                    manifest_path,
                                    format!("{at}/environment"),
                                    "a string of the form `aws://ACCOUNT/REGION`",
                                )
                            })?
                        }
                    };
                    let display = str_at(artifact, "/displayName").unwrap_or(id).to_string();
                    scan.items.push(Item::Stack(StackJob {
                        name: id.clone(),
                        display_name: display,
                        // Set when the directory is adopted.
                        dir: usize::MAX,
                        template_path,
                        environment,
                        stage: scan.display_name.clone(),
                        published: str_at(artifact, "/properties/stackTemplateAssetObjectUrl")
                            .is_some(),
                        named_by: (
                            manifest_file.clone(),
                            format!("{at}/properties/templateFile"),
                            written.to_string(),
                        ),
                    }));
                }
                "cdk:asset-manifest" => {
                    let (written, path) = path_property("file")?;
                    let manifest = self.read_asset_manifest(path).map_err(|e| match e {
                        Error::Io { source, .. } if source.kind() == ErrorKind::NotFound => {
                            missing("file", written)
                        }
                        Error::NotRegular { .. } => missing("file", written),
                        e => e,
                    })?;
                    scan.items.push(Item::AssetManifest(manifest));
                }
                "cdk:cloud-assembly" => {
                    let (name, nested) = path_property("directoryName")?;
                    let display = str_at(artifact, "/properties/displayName")
                        .unwrap_or(id)
                        .to_string();
                    if !nested.join("manifest.json").under(self.root).is_file() {
                        return Err(Error::MissingFile {
                            path: manifest_file.clone(),
                            pointer: format!("{at}/properties/directoryName"),
                            value: format!("{name}/manifest.json"),
                        });
                    }
                    scan.items
                        .push(Item::Nested(Box::new(Nested::Named(nested, display))));
                }
                "cdk:tree" if str_at(artifact, "/properties/file").is_some() => {
                    let (written, path) = path_property("file")?;
                    // Read at the end, if an id it names is replaced: known to be there now.
                    if !path.under(self.root).is_file() {
                        return Err(missing("file", written));
                    }
                    scan.items.push(Item::Reference(path));
                }
                // Feature-flag reports, metadata files and kinds not known today are kept as
                // they are: cdk-harden never rewrites what it does not understand.
                _ => {}
            }
        }
        Ok(())
    }

    /// Takes what `scan` read, in order: the directory, then its entries, nested assemblies
    /// depth first; then its error, if reading it stopped at one.
    fn adopt(&mut self, scan: Scan, parent: Option<usize>) -> Result<()> {
        if parent.is_none() {
            self.version = scan.version;
        }
        let index = self.dirs.len();
        self.dirs.push(AssemblyDir {
            path: scan.dir,
            manifest_path: scan.manifest_path,
            display_name: scan.display_name,
            parent,
        });
        for item in scan.items {
            match item {
                Item::Stack(mut job) => {
                    job.dir = index;
                    self.jobs.push(job);
                }
                Item::AssetManifest(manifest) => self.asset_manifests.push(manifest),
                Item::Reference(path) => self.reference_files.push(path),
                Item::Nested(nested) => match *nested {
                    Nested::Read(scan) => self.adopt(scan, Some(index))?,
                    Nested::Named(..) => unreachable!("scan reads every nested assembly"),
                },
            }
        }
        scan.error.map_or(Ok(()), Err)
    }

    /// Reads every stack's template and nested templates, in parallel, keeping manifest order.
    /// The first failure in that order is the one reported. Only what the run needs later is
    /// kept (nested stacks, the asset ids each template names); the templates are dropped.
    fn read_stacks(&mut self) -> Result<()> {
        use rayon::prelude::*;
        let resolver = self.resolver;
        let files = || self.asset_manifests.iter().flat_map(|m| &m.files);
        let mut sources = foldhash::HashMap::default();
        for (id, source) in files() {
            if let Some(source) = source {
                sources.entry(id.as_str()).or_insert(source);
            }
        }
        let index = AssetIndex {
            ids: Ids::new(files().map(|(id, _)| id.as_str())),
            sources,
            read: Default::default(),
        };
        let index = &index;
        let read: Vec<Result<Vec<Stack>>> = std::mem::take(&mut self.jobs)
            .into_par_iter()
            .map(|job| {
                let mut out = Vec::new();
                let first = ToRead {
                    name: job.name.clone(),
                    display_name: job.display_name.clone(),
                    template_path: job.template_path.clone(),
                    nested: None,
                    named_by: job.named_by.clone(),
                };
                read_stack(resolver, index, &job, first, &mut out)?;
                Ok(out)
            })
            .collect();
        let mut owners: foldhash::HashMap<RelPath, usize> = Default::default();
        for group in read {
            let offset = self.stacks.len();
            for mut stack in group? {
                if let Some(link) = &mut stack.nested {
                    link.parent += offset;
                }
                if let Some(&first) = owners.get(&stack.template_path) {
                    return Err(Error::SharedTemplate {
                        path: stack.template_path.under(self.root),
                        first: self.stacks[first].display_name.clone(),
                        second: stack.display_name,
                    });
                }
                owners.insert(stack.template_path.clone(), self.stacks.len());
                self.stacks.push(stack);
            }
        }
        // Past the budget, no text is kept (those read first were kept while it lasted).
        if index.read.load(std::sync::atomic::Ordering::Relaxed) > KEEP_TEXTS {
            for stack in &mut self.stacks {
                stack.source = Source::File;
            }
        }
        Ok(())
    }

    fn read_asset_manifest(&self, path: RelPath) -> Result<AssetManifest> {
        let value = read_json(self.root, &path)?;
        let file = path.under(self.root);
        if !value.is_object() {
            return Err(self.shape(&path, String::new(), "an object (an asset manifest)"));
        }
        let base = path.parent();
        let mut files = Vec::new();
        if let Some(entries) = value.get("files") {
            let Value::Object(entries) = entries else {
                return Err(self.shape(&path, "/files".into(), "an object"));
            };
            for (id, entry) in entries {
                let pointer = format!("/files/{}/source/path", escape_pointer(id));
                let source = match entry.at("/source/path") {
                    None => None,
                    Some(Value::String(p)) => {
                        Some(self.resolver.resolve(&base, p, &file, &pointer)?)
                    }
                    Some(_) => return Err(self.shape(&path, pointer, "a string")),
                };
                files.push((id.clone(), source));
            }
        }
        if let Some(Value::Object(images)) = value.get("dockerImages") {
            for (id, entry) in images {
                if let Some(Value::String(d)) = entry.at("/source/directory") {
                    let pointer = format!("/dockerImages/{}/source/directory", escape_pointer(id));
                    self.resolver.resolve(&base, d, &file, &pointer)?;
                }
            }
        }
        Ok(AssetManifest { path, files })
    }

    /// Gives each template the asset entries whose source is that template's file.
    fn link_assets(&mut self) {
        let mut by_source: BTreeMap<&RelPath, Vec<AssetRef>> = BTreeMap::new();
        for (manifest, am) in self.asset_manifests.iter().enumerate() {
            for (id, source) in &am.files {
                if let Some(source) = source {
                    by_source.entry(source).or_default().push(AssetRef {
                        manifest,
                        id: id.clone(),
                    });
                }
            }
        }
        for stack in &mut self.stacks {
            if let Some(refs) = by_source.get(&stack.template_path) {
                stack.assets = refs.clone();
            }
        }
    }
}

/// A template still to be read: its stack's names, where it is, the nested-stack resource that
/// names it (none for a top-level stack), and the file, pointer and value that name it.
struct ToRead {
    name: String,
    display_name: String,
    template_path: RelPath,
    nested: Option<NestedLink>,
    named_by: (std::path::PathBuf, String, String),
}

/// Reads one template and, depth-first after it, its nested templates into `out`. Nested
/// links point at indices within `out`. The walk keeps its own stack, so a deep chain of nested
/// stacks costs memory, not the thread's stack; a nested template that names a template on
/// its own way down (itself, or a parent) is an error, not an endless walk.
fn read_stack(
    resolver: &paths::Resolver,
    index: &AssetIndex,
    job: &StackJob,
    first: ToRead,
    out: &mut Vec<Stack>,
) -> Result<()> {
    let root = resolver.root();
    let mut todo = vec![first];
    while let Some(ToRead {
        name,
        display_name,
        template_path,
        nested,
        named_by,
    }) = todo.pop()
    {
        let file = template_path.under(root);
        let mut up = nested.as_ref().map(|link| link.parent);
        while let Some(i) = up {
            if out[i].template_path == template_path {
                return Err(Error::NestedCycle {
                    path: named_by.0,
                    pointer: named_by.1,
                    value: named_by.2,
                });
            }
            up = out[i].nested.as_ref().map(|link| link.parent);
        }
        // Anything but a regular file (nothing, a directory, a named pipe) is a missing template.
        let Some(read) = Error::read_regular(&file)? else {
            return Err(Error::MissingFile {
                path: named_by.0,
                pointer: named_by.1,
                value: named_by.2,
            });
        };
        let permissions = Some(read.permissions);
        let (text, nested_stacks) = read_nested_stacks(&file, read.bytes, &index.ids)?;
        let position = out.len();
        let base = template_path.parent();
        let mut children = Vec::new();
        for (logical_id, found, cdk_path) in nested_stacks {
            let at = |key: &str| format!("/Resources/{}/{key}", escape_pointer(&logical_id));
            let (child, pointer, written) = match found {
                NestedTemplate::AssetPath(asset_path) => {
                    let pointer = at("Metadata/aws:asset:path");
                    let child = resolver.resolve(&base, &asset_path, &file, &pointer)?;
                    (child, pointer, asset_path)
                }
                NestedTemplate::Assets(ids) => {
                    let pointer = at("Properties/TemplateURL");
                    match ids.iter().find_map(|id| index.sources.get(id.as_str())) {
                        Some(&source) => (source.clone(), pointer, source.to_string()),
                        // Published by no file asset of this assembly: not a template it holds.
                        None => continue,
                    }
                }
            };
            let child_display = cdk_path
                .as_deref()
                .and_then(nested_display_name)
                .unwrap_or_else(|| format!("{display_name}/{logical_id}"));
            children.push(ToRead {
                name: format!("{name}/{logical_id}"),
                display_name: child_display,
                template_path: child,
                nested: Some(NestedLink {
                    parent: position,
                    logical_id,
                }),
                named_by: (file.clone(), pointer, written),
            });
        }
        out.push(Stack {
            name,
            display_name,
            dir: job.dir,
            template_path,
            environment: job.environment.clone(),
            stage: job.stage.clone(),
            // A nested stack's template is always deployed from its asset (`TemplateURL`).
            published: nested.is_some() || job.published,
            nested,
            assets: Vec::new(),
            mentions: index.ids.named_in(&text),
            size: text.len(),
            permissions,
            source: {
                let size = text.len();
                let read = index
                    .read
                    .fetch_add(size, std::sync::atomic::Ordering::Relaxed)
                    + size;
                match read <= KEEP_TEXTS {
                    true => Source::Memory(text),
                    false => Source::File,
                }
            },
        });
        // Taken from the end: the first child is read next, as a recursive walk would.
        todo.extend(children.into_iter().rev());
    }
    Ok(())
}

/// `Resources`, when present, is an object of resources, each an object with a string `Type`:
/// transforms select resources by type, so anything else is refused before they run.
fn check_resources(template: &Value, file: &Path) -> Result<()> {
    let shape = |pointer: String, expected| Error::Shape {
        path: file.to_path_buf(),
        pointer,
        expected,
    };
    let resources = match template.get("Resources") {
        None => return Ok(()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(shape("/Resources".into(), "an object of resources")),
    };
    let at = |id: &str| format!("/Resources/{}", escape_pointer(id));
    for (id, resource) in resources {
        if !resource.is_object() {
            return Err(shape(at(id), "an object (a resource)"));
        }
        if !resource.get("Type").is_some_and(Value::is_string) {
            return Err(shape(
                format!("{}/Type", at(id)),
                "a string (the resource type)",
            ));
        }
    }
    Ok(())
}

/// A template's text, and its nested stack resources in template order: logical id, where
/// its template is, and `aws:cdk:path`.
type NestedStacks = (String, Vec<(String, NestedTemplate, Option<String>)>);

/// Where a nested stack's template is.
#[derive(Debug, Clone, PartialEq)]
enum NestedTemplate {
    /// Its `aws:asset:path` metadata, as CDK writes it.
    AssetPath(String),
    /// Without that metadata (`cdk synth --no-asset-metadata`): the asset ids of this assembly
    /// its `TemplateURL` names, each published from a file by an asset manifest.
    Assets(Vec<String>),
}

/// The type of a nested stack resource.
const NESTED_STACK: &str = "AWS::CloudFormation::Stack";

/// Reads a template's bytes (`file`'s) at load time, for its nested stacks. They must be
/// UTF-8. An object whose text never spells a nested stack's type is not parsed here (it is
/// parsed, and any error in it reported, when it is hardened). The others take the light path:
/// a typed parse that validates the JSON and the resources' shape but builds no tree for
/// anything else; a template it does not accept is parsed in full, which either accepts it (the
/// light types are stricter than the template rules, say a non-string `aws:cdk:path`) or
/// reports the error with its line or pointer. So is one with a nested stack that has no
/// `aws:asset:path`: its `TemplateURL` is read for the asset ids of this assembly (`ids`).
fn read_nested_stacks(file: &Path, bytes: Vec<u8>, ids: &Ids) -> Result<NestedStacks> {
    let text = Error::utf8(file, bytes)?;
    let object = text
        .bytes()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| b == b'{');
    // An object whose text spells no nested stack's type holds none: the type can only be
    // hidden by a `\u` escape. Such a template is parsed once, when it is hardened.
    let finder = |needle: &str| memchr::memmem::find(text.as_bytes(), needle.as_bytes());
    if object && finder(NESTED_STACK).is_none() && finder("\\u").is_none() {
        return Ok((text, Vec::new()));
    }
    let light = object
        .then(|| serde_json::from_str::<light::Template>(&text).ok())
        .flatten()
        .filter(|t| {
            t.resources.0.iter().all(|(_, r)| {
                r.kind != NESTED_STACK
                    || r.metadata.as_ref().is_some_and(|m| m.asset_path.is_some())
            })
        });
    let nested: Vec<_> = match light {
        Some(t) => t
            .resources
            .0
            .into_iter()
            .filter(|(_, r)| r.kind == NESTED_STACK)
            .filter_map(|(id, r)| {
                let meta = r.metadata?;
                Some((
                    id.into_owned(),
                    NestedTemplate::AssetPath(meta.asset_path?.into_owned()),
                    meta.cdk_path.map(|p| p.into_owned()),
                ))
            })
            .collect(),
        None => {
            // The text already read, parsed in full.
            let template = parse_template_text(file, text)?;
            let resources = template.value.get("Resources").and_then(Value::as_object);
            let nested = resources
                .into_iter()
                .flatten()
                .filter(|(_, r)| str_at(r, "/Type") == Some(NESTED_STACK))
                .filter_map(|(id, r)| {
                    let cdk_path = str_at(r, "/Metadata/aws:cdk:path").map(str::to_string);
                    let found = match str_at(r, "/Metadata/aws:asset:path") {
                        Some(path) => NestedTemplate::AssetPath(path.to_string()),
                        None => {
                            // A template from outside the assembly names none of its ids.
                            let url = r.at("/Properties/TemplateURL")?;
                            let named = ids.named_in(&url.to_string());
                            (!named.is_empty()).then_some(NestedTemplate::Assets(named))?
                        }
                    };
                    Some((id.clone(), found, cdk_path))
                })
                .collect();
            return Ok((template.text, nested));
        }
    };
    Ok((text, nested))
}

/// The light view of a template: `Resources` (each with a string `Type`) and the two metadata
/// keys nested stacks need; everything else is validated and skipped.
mod light {
    use std::borrow::Cow;

    use foldhash::HashSet;

    use serde::de::{Deserializer, MapAccess, Visitor};
    use serde::Deserialize;
    use serde_json::{Map, Value};

    /// Other sections are skipped unbuilt; a repeated `Resources` fails the light parse.
    #[derive(Deserialize)]
    pub struct Template<'a> {
        #[serde(rename = "Resources", default, borrow)]
        pub resources: Resources<'a>,
    }

    #[derive(Deserialize)]
    pub struct Resource<'a> {
        #[serde(rename = "Type", borrow)]
        pub kind: Cow<'a, str>,
        #[serde(rename = "Metadata", default, borrow)]
        pub metadata: Option<Metadata<'a>>,
    }

    #[derive(Deserialize)]
    pub struct Metadata<'a> {
        #[serde(rename = "aws:asset:path", default, borrow)]
        pub asset_path: Option<Cow<'a, str>>,
        #[serde(rename = "aws:cdk:path", default, borrow)]
        pub cdk_path: Option<Cow<'a, str>>,
    }

    /// A cloud assembly manifest with only what the walk reads: the version, and of each
    /// artifact its type, environment, display name, metadata file and the properties that
    /// name files, each as the full parse has it. Other keys (a feature-flag report, the
    /// construct path of every resource) are skipped unbuilt. Anything that is not an object
    /// where the walk expects one, or a read key given twice, fails the light parse, and the
    /// full parse reports what is wrong.
    pub type Manifest = Picked<ManifestKeys>;

    /// The keys of an object that are kept, and how each member is read.
    pub trait Pick {
        const KEYS: &'static [&'static str];
        fn member<'de, A: MapAccess<'de>>(_key: &str, map: &mut A) -> Result<Value, A::Error> {
            map.next_value()
        }
    }

    /// The members of an object at `K::KEYS`, in order; the others are skipped unbuilt.
    pub struct Picked<K>(Map<String, Value>, std::marker::PhantomData<K>);

    impl<K> Picked<K> {
        /// The object as the walk reads it: the same values at the same pointers.
        pub fn into_value(self) -> Value {
            Value::Object(self.0)
        }
    }

    impl<'de, K: Pick> Deserialize<'de> for Picked<K> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<K>(std::marker::PhantomData<K>);
            impl<'de, K: Pick> Visitor<'de> for V<K> {
                type Value = Picked<K>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Picked<K>, A::Error> {
                    let mut out = Map::new();
                    while let Some(key) = map.next_key::<String>()? {
                        if !K::KEYS.contains(&key.as_str()) {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                        if out.contains_key(&key) {
                            return Err(serde::de::Error::custom("a repeated key"));
                        }
                        let value = K::member(&key, &mut map)?;
                        out.insert(key, value);
                    }
                    Ok(Picked(out, std::marker::PhantomData))
                }
            }
            d.deserialize_map(V(std::marker::PhantomData))
        }
    }

    pub struct ManifestKeys;
    impl Pick for ManifestKeys {
        const KEYS: &'static [&'static str] = &["version", "artifacts"];
        fn member<'de, A: MapAccess<'de>>(key: &str, map: &mut A) -> Result<Value, A::Error> {
            if key != "artifacts" {
                return map.next_value();
            }
            let artifacts: Entries<Picked<ArtifactKeys>> = map.next_value()?;
            let artifacts = artifacts
                .0
                .into_iter()
                .map(|(id, a)| (id.into_owned(), Value::Object(a.0)));
            Ok(Value::Object(artifacts.collect()))
        }
    }

    pub struct ArtifactKeys;
    impl Pick for ArtifactKeys {
        const KEYS: &'static [&'static str] = &[
            "type",
            "environment",
            "displayName",
            "additionalMetadataFile",
            "properties",
        ];
        fn member<'de, A: MapAccess<'de>>(key: &str, map: &mut A) -> Result<Value, A::Error> {
            if key != "properties" {
                return map.next_value();
            }
            let properties: Picked<PropertyKeys> = map.next_value()?;
            Ok(properties.into_value())
        }
    }

    /// The properties the walk reads; the others (a feature-flag report's are most of a
    /// Stage's manifest) are skipped.
    pub struct PropertyKeys;
    impl Pick for PropertyKeys {
        const KEYS: &'static [&'static str] = &[
            "templateFile",
            "stackTemplateAssetObjectUrl",
            "file",
            "directoryName",
            "displayName",
        ];
    }

    /// An object's entries in order; a repeated key fails the light parse (the full parse
    /// decides what it means).
    ///
    /// Keys are borrowed from the text where they can be (a key with no escape in it).
    pub struct Entries<'a, T>(pub Vec<(Cow<'a, str>, T)>);

    impl<T> Default for Entries<'_, T> {
        fn default() -> Self {
            Entries(Vec::new())
        }
    }

    /// A key, borrowed from the text parsed where it can be.
    #[derive(Deserialize)]
    struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

    impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for Entries<'a, T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<'a, T>(std::marker::PhantomData<(&'a (), T)>);
            impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for V<'a, T> {
                type Value = Entries<'a, T>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Entries<'a, T>, A::Error> {
                    let mut out: Vec<(Cow<'a, str>, T)> = Vec::new();
                    let mut seen: HashSet<Cow<'a, str>> = HashSet::default();
                    while let Some((Key(key), value)) = map.next_entry::<Key, T>()? {
                        if !seen.insert(key.clone()) {
                            // The full parse decides what a repeated key means.
                            return Err(serde::de::Error::custom("a repeated key"));
                        }
                        out.push((key, value));
                    }
                    Ok(Entries(out))
                }
            }
            d.deserialize_map(V(std::marker::PhantomData))
        }
    }

    /// Resources in template order; a repeated logical id fails the light parse, and the full
    /// parse refuses it.
    pub type Resources<'a> = Entries<'a, Resource<'a>>;
}

/// `Dev/Service/Nested` from a nested stack resource whose `aws:cdk:path` is
/// `Dev/Service/Nested.NestedStack/Nested.NestedStackResource`.
fn nested_display_name(path: &str) -> Option<String> {
    let (scope, _) = path.rsplit_once('/')?;
    Some(
        scope
            .strip_suffix(".NestedStack")
            .unwrap_or(scope)
            .to_string(),
    )
}

fn check_version(file: &Path, version: &str) -> Result<()> {
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u64>().ok());
    match major {
        Some(m) if (SCHEMA_MAJOR_MIN..=SCHEMA_MAJOR_MAX).contains(&m) => Ok(()),
        _ => Err(Error::UnsupportedVersion {
            path: file.to_path_buf(),
            found: version.to_string(),
            min: SCHEMA_MAJOR_MIN,
            max: SCHEMA_MAJOR_MAX,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nested assemblies are read in parallel, but the error reported is still the first in
    /// manifest order, depth first: that of reading them one by one.
    #[test]
    fn issue_8_the_first_bad_manifest_in_order_is_reported_whatever_is_read_first() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pipelines/cdk.out");
        let load = |corrupt: &[&str]| {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("cdk.out");
            crate::assembly::write::copy_tree(&example, &root).unwrap();
            for file in corrupt {
                std::fs::write(root.join(file), "{\"version\": ").unwrap();
            }
            match load(&root) {
                Ok(assembly) => Ok(assembly
                    .dirs
                    .iter()
                    .map(|d| (d.path.to_string(), d.parent))
                    .collect::<Vec<_>>()),
                Err(e) => Err(e.to_string().replace(&root.display().to_string(), "ROOT")),
            }
        };
        // The manifest lists Dev, UAT, Prod, then the pipeline's own asset manifest.
        let dirs = load(&[]).unwrap();
        assert_eq!(
            dirs,
            [
                (String::new(), None),
                ("assembly-PipelineStack-Dev".to_string(), Some(0)),
                ("assembly-PipelineStack-UAT".to_string(), Some(0)),
                ("assembly-PipelineStack-Prod".to_string(), Some(0)),
            ]
        );
        let prod = "assembly-PipelineStack-Prod/manifest.json";
        let uat = "assembly-PipelineStack-UAT/manifest.json";
        let assets = "PipelineStack.assets.json";
        let err = load(&[prod, uat]).unwrap_err();
        assert!(
            err.starts_with(&format!("ROOT/{uat}: invalid JSON")),
            "{err}"
        );
        let err = load(&[assets, prod]).unwrap_err();
        assert!(
            err.starts_with(&format!("ROOT/{prod}: invalid JSON")),
            "{err}"
        );
        let err = load(&[assets]).unwrap_err();
        assert!(
            err.starts_with(&format!("ROOT/{assets}: invalid JSON")),
            "{err}"
        );
    }

    /// A stack's `environment` that is not a string is refused, like a malformed one, instead
    /// of being read as environment-agnostic (which would give the stack only the `*` settings).
    #[test]
    fn issue_2_an_environment_that_is_not_a_string_is_refused() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/secrets/cdk.out");
        for bad in [
            serde_json::json!(5),
            serde_json::json!("aws://x"),
            serde_json::json!(null),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("cdk.out");
            crate::assembly::write::copy_tree(&example, &root).unwrap();
            let manifest = root.join("manifest.json");
            let mut value: Value =
                serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
            value["artifacts"]["SecretsStack"]["environment"] = bad.clone();
            std::fs::write(&manifest, serde_json::to_string_pretty(&value).unwrap()).unwrap();
            let err = load(&root).unwrap_err().to_string();
            assert!(
                err.ends_with("`/artifacts/SecretsStack/environment` must be a string of the form `aws://ACCOUNT/REGION`"),
                "{bad}: {err}"
            );
        }
    }

    /// A template or manifest that starts with a byte order mark says so, rather than
    /// `expected value` at line 1, column 1.
    #[test]
    fn a_byte_order_mark_is_named() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/secrets/cdk.out");
        for file in ["SecretsStack.template.json", "manifest.json"] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("cdk.out");
            crate::assembly::write::copy_tree(&example, &root).unwrap();
            let mut bytes = b"\xEF\xBB\xBF".to_vec();
            bytes.extend(std::fs::read(root.join(file)).unwrap());
            std::fs::write(root.join(file), bytes).unwrap();
            let err = load(&root).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{file}: invalid JSON at line 1, column 1: the file starts with a UTF-8 byte order mark")),
                "{err}"
            );
        }
    }

    #[test]
    fn versions_outside_the_known_range_are_refused() {
        let f = Path::new("manifest.json");
        assert!(check_version(f, "55.0.0").is_ok());
        assert!(check_version(f, "36.0.1").is_ok());
        for bad in ["56.0.0", "999.0.0", "x", "", "12.0.0"] {
            let err = check_version(f, bad).unwrap_err();
            assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
        }
    }

    /// What the walk reads of a manifest is the same after the light parse as after the full
    /// one, for every manifest of the examples and for the odd cases; what the light parse
    /// refuses goes to the full parse.
    #[test]
    fn issue_8_light_and_full_manifest_reads_agree() {
        fn walked(full: &Value) -> Value {
            let mut out = serde_json::Map::new();
            if let Some(v) = full.get("version") {
                out.insert("version".into(), v.clone());
            }
            let artifacts = full
                .get("artifacts")
                .and_then(Value::as_object)
                .into_iter()
                .flatten();
            let artifacts = artifacts.map(|(id, a)| {
                let keep = [
                    "type",
                    "environment",
                    "displayName",
                    "additionalMetadataFile",
                    "properties",
                ];
                let fields = a
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, _)| keep.contains(&k.as_str()));
                let fields = fields.map(|(k, v)| {
                    let mut v = v.clone();
                    if let (Value::Object(props), "properties") = (&mut v, k.as_str()) {
                        let read = [
                            "templateFile",
                            "stackTemplateAssetObjectUrl",
                            "file",
                            "directoryName",
                            "displayName",
                        ];
                        props.retain(|k, _| read.contains(&k.as_str()));
                    }
                    (k.clone(), v)
                });
                (id.clone(), Value::Object(fields.collect()))
            });
            if full.get("artifacts").is_some() {
                out.insert("artifacts".into(), Value::Object(artifacts.collect()));
            }
            Value::Object(out)
        }
        let manifests: Vec<String> = crate::example_files("manifest.json")
            .into_iter()
            .map(|m| std::fs::read_to_string(m).unwrap())
            .collect();
        assert!(manifests.len() >= 6, "{} manifests", manifests.len());
        let odd = [
            r#"{"version": null, "artifacts": {"A": {"type": null, "properties": {"file": "f"}}}}"#,
            r#"{"version": "36.0.0"}"#,
        ];
        for text in manifests.iter().map(String::as_str).chain(odd) {
            let full: Value = serde_json::from_str(text).unwrap();
            let light: light::Manifest = serde_json::from_str(text).unwrap();
            assert_eq!(light.into_value(), walked(&full), "{text:.200}");
        }
        // Refused by the light read, so the full read decides.
        for refused in [
            r#"{"version": "36.0.0", "artifacts": {"A": {"type": "x", "metadata": {"/A": [1]}}, "B": {"type": "y"}, "A": {"type": "z"}}}"#,
            r#"{"artifacts": null}"#,
            r#"{"artifacts": {"A": 5}}"#,
            r#"{"version": "1", "version": "2"}"#,
            r#"{"artifacts": {"A": {"type": "x", "type": "y"}}}"#,
            r#"{"artifacts": {"A": {"type": "x", "properties": ["file"]}}}"#,
            r#"{"artifacts": {"A": ["aws:cloudformation:stack"]}}"#,
            r#"["36.0.0", {}]"#,
            r#"{"artifacts": {"A": {"type": "x", "properties": {"file": "a", "file": "b"}}}}"#,
        ] {
            assert!(
                serde_json::from_str::<light::Manifest>(refused).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn light_and_full_reads_find_the_same_nested_stacks() {
        let dir = tempfile::tempdir().unwrap();
        let nested = |id: &str, path: &str| {
            serde_json::json!({"Type": "AWS::CloudFormation::Stack",
                "Metadata": {"aws:asset:path": path, "aws:cdk:path": format!("S/{id}.NestedStack/{id}.NestedStackResource")}})
        };
        let cases = [
            // Light path: nested stacks in template order, other resources and sections skipped.
            (
                r#"{"Parameters": {"P": {"Type": "String"}}, "Resources": {"B": N_B, "Q": {"Type": "AWS::SQS::Queue", "Properties": {"X": [1, {"Y": null}]}}, "A": N_A}}"#,
                vec!["B", "A"],
            ),
            // Full path: a non-string `aws:cdk:path` is not an error, only not a name.
            (
                r#"{"Resources": {"A": {"Type": "AWS::CloudFormation::Stack", "Metadata": {"aws:asset:path": "a.json", "aws:cdk:path": 7}}}}"#,
                vec!["A"],
            ),
            (r#"{"Outputs": {}}"#, vec![]),
            // The type spelled with an escape: found (the text is parsed, not searched).
            (
                r#"{"Resources": {"A": {"Type": "AWS::CloudFormation::Stac\u006b", "Metadata": {"aws:asset:path": "a.json"}}}}"#,
                vec!["A"],
            ),
        ];
        for (text, expected) in cases {
            let text = text
                .replace("N_A", &nested("A", "a.json").to_string())
                .replace("N_B", &nested("B", "b.json").to_string());
            let file = dir.path().join("t.template.json");
            std::fs::write(&file, &text).unwrap();
            let (read, found) =
                read_nested_stacks(&file, std::fs::read(&file).unwrap(), &Ids::default()).unwrap();
            assert_eq!(read, text);
            let ids: Vec<&str> = found.iter().map(|(id, _, _)| id.as_str()).collect();
            assert_eq!(ids, expected, "{text}");
            light_matches_full(&file, &found);
        }
        // A repeated id is refused, at its second place.
        let file = dir.path().join("t.template.json");
        let text = r#"{"Resources": {"A": {"Type": "AWS::SQS::Queue"}, "B": N_B, "A": N_A}}"#
            .replace("N_A", &nested("A", "a.json").to_string())
            .replace("N_B", &nested("B", "b.json").to_string());
        std::fs::write(&file, &text).unwrap();
        let err =
            read_nested_stacks(&file, std::fs::read(&file).unwrap(), &Ids::default()).unwrap_err();
        let column = text.rfind(r#""A":"#).unwrap() + 1;
        let expected = format!(
            "line 1, column {column}: key `A` appears twice in one object (first at line 1)"
        );
        assert!(err.to_string().contains(&expected), "{err}");
        // Refused by the full read, with its pointer: the light read must not let it through.
        // A template that spells no nested stack is not parsed at load at all; the full read
        // that hardens it refuses it the same way.
        for (text, pointer) in [
            (
                r#"{"Resources": {"A": {"Properties": {}}}}"#,
                "/Resources/A/Type",
            ),
            (r#"{"Resources": {"A": 3}}"#, "/Resources/A"),
            (r#"{"Resources": []}"#, "/Resources"),
        ] {
            let with_nested = text.replacen(
                r#"{"Resources": {"#,
                &format!(r#"{{"Resources": {{"N": {}, "#, nested("N", "n.json")),
                1,
            );
            let file = dir.path().join("bad.template.json");
            for text in [with_nested.as_str(), text] {
                std::fs::write(&file, text).unwrap();
                let bytes = std::fs::read(&file).unwrap();
                let read = read_nested_stacks(&file, bytes, &Ids::default());
                let refused = match text.contains(NESTED_STACK) {
                    true => read.map(|_| ()),
                    false => {
                        assert!(read.unwrap().1.is_empty(), "{text}");
                        read_template(&file).map(|_| ())
                    }
                };
                match refused {
                    Err(Error::Shape { pointer: p, .. }) => assert_eq!(p, pointer, "{text}"),
                    other => panic!("{text}: {other:?}"),
                }
            }
        }
    }

    /// A template that is not UTF-8 is refused at the first byte that is not, by line and
    /// column, whether or not it holds a nested stack.
    #[test]
    fn issue_8_a_template_that_is_not_utf8_is_refused_where_it_stops_being() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.template.json");
        for text in [
            &b"{\n \"Resources\": {\n  \"A\": {\"Type\": \"AWS::SQS::Queue\xff\"}}}"[..],
            &b"{\n \"Resources\": {\n  \"A\": {\"Type\": \"AWS::CloudFormation::Stack\xff\"}}}"[..],
            // In a key the light parse skips: it used to pass there and panic after.
            &b"{\n \"Resources\": {\n  \"A\": {\"Type\": \"AWS::CloudFormation::Stack\", \"Metadata\": {\"aws:asset:path\": \"a.json\", \"x\xff\": 1}}}}"[..],
        ] {
            std::fs::write(&file, text).unwrap();
            let err = read_nested_stacks(&file, text.to_vec(), &Ids::default()).unwrap_err();
            let third = text.split(|&b| b == b'\n').nth(2).unwrap();
            let column = third.iter().position(|&b| b == 0xff).unwrap() + 1;
            match &err {
                Error::Json {
                    line, column: c, ..
                } => assert_eq!((*line, *c), (3, column)),
                other => panic!("{other:?}"),
            }
            assert!(err.to_string().contains("not UTF-8"), "{err}");
        }
    }

    /// The full read's view of the nested stacks of `file` is `found`.
    fn light_matches_full(file: &Path, found: &[(String, NestedTemplate, Option<String>)]) {
        let t = read_template(file).unwrap();
        let full: Vec<(String, String)> = t.value["Resources"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, r)| r["Type"] == "AWS::CloudFormation::Stack")
            .map(|(id, r)| {
                (
                    id.clone(),
                    r["Metadata"]["aws:asset:path"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect();
        let light: Vec<(String, String)> = found
            .iter()
            .map(|(id, p, _)| match p {
                NestedTemplate::AssetPath(p) => (id.clone(), p.clone()),
                NestedTemplate::Assets(_) => panic!("{id}: no asset path"),
            })
            .collect();
        assert_eq!(light, full);
    }

    #[test]
    fn nested_display_names_drop_cdk_suffixes() {
        let path = "Dev/Service/Nested.NestedStack/Nested.NestedStackResource";
        assert_eq!(nested_display_name(path).unwrap(), "Dev/Service/Nested");
    }
}
