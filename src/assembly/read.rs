//! Reading a cloud assembly from disk.
//!
//! Walks `manifest.json`, descends into nested assemblies (`cdk:cloud-assembly` artifacts, one
//! per Stage, to any depth), reads every stack template, follows `AWS::CloudFormation::Stack`
//! resources to their nested templates, and indexes the asset manifests so each template knows
//! the asset entries that publish it. Every path a manifest names is checked by
//! [`paths::resolve`] before it is opened. Asset payloads are never read.

use std::collections::BTreeMap;
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
/// Fails, naming the file, on: a missing `manifest.json`, invalid JSON (with line and column),
/// an unsupported schema major version, a manifest entry of the wrong shape, a path leaving
/// the assembly, a template that does not exist, or the marker of an interrupted `apply`.
pub fn load(root: &Path) -> Result<Assembly> {
    if !root.join("manifest.json").is_file() {
        return Err(Error::MissingManifest {
            path: root.to_path_buf(),
        });
    }
    if root.join(INCOMPLETE_MARKER).exists() {
        return Err(Error::Interrupted {
            path: root.to_path_buf(),
        });
    }
    let mut reader = Reader {
        root,
        dirs: Vec::new(),
        stacks: Vec::new(),
        asset_manifests: Vec::new(),
        reference_files: Vec::new(),
        version: String::new(),
        jobs: Vec::new(),
    };
    reader.read_dir(RelPath::root(), None, None)?;
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
    dirs: Vec<AssemblyDir>,
    stacks: Vec<Stack>,
    asset_manifests: Vec<AssetManifest>,
    reference_files: Vec<RelPath>,
    version: String,
    /// Stack artifacts found in the manifests, in manifest order, read afterwards in parallel.
    jobs: Vec<StackJob>,
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
    /// The manifest and pointer that name the template, for the error if it is missing.
    named_by: (std::path::PathBuf, String),
}

/// Reads a JSON file below the root.
fn read_json(root: &Path, rel: &RelPath) -> Result<Value> {
    let path = rel.under(root);
    let bytes = Error::read(&path)?;
    Error::parse_json(&path, &bytes)
}

/// Reads a template file: its bytes and value, checked to be an object whose `Resources`, if
/// present, is an object of resources with string types.
pub(crate) fn read_template(file: &Path) -> Result<Template> {
    parse_template(file, Error::read(file)?)
}

/// [`read_template`] on bytes already read from `file`.
fn parse_template(file: &Path, bytes: Vec<u8>) -> Result<Template> {
    let value: Value = Error::parse_json(file, &bytes)?;
    if !value.is_object() {
        return Err(Error::Shape {
            path: file.to_path_buf(),
            pointer: String::new(),
            expected: "a JSON object (a CloudFormation template)",
        });
    }
    check_resources(&value, file)?;
    // parse_json accepted it, so it is valid UTF-8.
    let text = String::from_utf8(bytes).expect("valid JSON is UTF-8");
    Ok(Template { text, value })
}

fn str_at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str)
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

    fn read_dir(
        &mut self,
        dir: RelPath,
        display_name: Option<String>,
        parent: Option<usize>,
    ) -> Result<()> {
        let manifest_path = dir.join("manifest.json");
        let manifest_file = manifest_path.under(self.root);
        let manifest = read_json(self.root, &manifest_path)?;
        let version = str_at(&manifest, "/version")
            .ok_or_else(|| self.shape(&manifest_path, "/version".into(), "a version string"))?;
        check_version(&manifest_file, version)?;
        if parent.is_none() {
            self.version = version.to_string();
        }
        let index = self.dirs.len();
        self.dirs.push(AssemblyDir {
            path: dir.clone(),
            manifest_path: manifest_path.clone(),
            display_name: display_name.clone(),
            parent,
        });

        let empty = serde_json::Map::new();
        let artifacts = match manifest.get("artifacts") {
            None => &empty,
            Some(Value::Object(map)) => map,
            Some(_) => return Err(self.shape(&manifest_path, "/artifacts".into(), "an object")),
        };
        for (id, artifact) in artifacts {
            let at = format!("/artifacts/{}", escape_pointer(id));
            let kind = str_at(artifact, "/type")
                .ok_or_else(|| self.shape(&manifest_path, format!("{at}/type"), "a string"))?;
            if let Some(extra) = str_at(artifact, "/additionalMetadataFile") {
                let path = paths::resolve(
                    self.root,
                    &dir,
                    extra,
                    &manifest_file,
                    &format!("{at}/additionalMetadataFile"),
                )?;
                if path.under(self.root).is_file() {
                    self.reference_files.push(path);
                }
            }
            let root = self.root;
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
                    paths::resolve(root, &dir, value, &manifest_file, &pointer)?,
                ))
            };
            match kind {
                "aws:cloudformation:stack" => {
                    let (_, template_path) = path_property("templateFile")?;
                    let environment = match str_at(artifact, "/environment") {
                        None => Environment::default(),
                        Some(env) => Environment::parse(env).ok_or_else(|| {
                            self.shape(
                                &manifest_path,
                                format!("{at}/environment"),
                                "of the form `aws://ACCOUNT/REGION`",
                            )
                        })?,
                    };
                    let display = str_at(artifact, "/displayName").unwrap_or(id).to_string();
                    self.jobs.push(StackJob {
                        name: id.clone(),
                        display_name: display,
                        dir: index,
                        template_path,
                        environment,
                        stage: display_name.clone(),
                        published: str_at(artifact, "/properties/stackTemplateAssetObjectUrl")
                            .is_some(),
                        named_by: (
                            manifest_file.clone(),
                            format!("{at}/properties/templateFile"),
                        ),
                    });
                }
                "cdk:asset-manifest" => {
                    let (_, path) = path_property("file")?;
                    self.read_asset_manifest(path)?;
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
                    self.read_dir(nested, Some(display), Some(index))?;
                }
                "cdk:tree" if str_at(artifact, "/properties/file").is_some() => {
                    let (_, path) = path_property("file")?;
                    self.reference_files.push(path);
                }
                // Feature-flag reports, metadata files and kinds not known today are kept as
                // they are: cdk-harden never rewrites what it does not understand.
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads every stack's template and nested templates, in parallel, keeping manifest order.
    /// The first failure in that order is the one reported. Only what the run needs later is
    /// kept (nested stacks, the asset ids each template names); the templates are dropped.
    fn read_stacks(&mut self) -> Result<()> {
        use rayon::prelude::*;
        let root = self.root;
        let ids = Ids::new(
            self.asset_manifests
                .iter()
                .flat_map(|m| m.files.iter().map(|(id, _)| id.as_str())),
        );
        let ids = &ids;
        let read: Vec<Result<Vec<Stack>>> = std::mem::take(&mut self.jobs)
            .into_par_iter()
            .map(|job| {
                let mut out = Vec::new();
                let named_by = (job.named_by.0.as_path(), job.named_by.1.clone());
                read_stack(
                    root,
                    ids,
                    &job,
                    job.name.clone(),
                    job.display_name.clone(),
                    job.template_path.clone(),
                    None,
                    named_by,
                    &mut out,
                )?;
                Ok(out)
            })
            .collect();
        for group in read {
            let offset = self.stacks.len();
            for mut stack in group? {
                if let Some(link) = &mut stack.nested {
                    link.parent += offset;
                }
                self.stacks.push(stack);
            }
        }
        Ok(())
    }

    fn read_asset_manifest(&mut self, path: RelPath) -> Result<()> {
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
                let source = match entry.pointer("/source/path") {
                    None => None,
                    Some(Value::String(p)) => {
                        Some(paths::resolve(self.root, &base, p, &file, &pointer)?)
                    }
                    Some(_) => return Err(self.shape(&path, pointer, "a string")),
                };
                files.push((id.clone(), source));
            }
        }
        if let Some(Value::Object(images)) = value.get("dockerImages") {
            for (id, entry) in images {
                if let Some(Value::String(d)) = entry.pointer("/source/directory") {
                    let pointer = format!("/dockerImages/{}/source/directory", escape_pointer(id));
                    paths::resolve(self.root, &base, d, &file, &pointer)?;
                }
            }
        }
        self.asset_manifests.push(AssetManifest { path, files });
        Ok(())
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

/// Reads one template and, depth-first after it, its nested templates into `out`. Nested
/// links point at indices within `out`.
#[allow(clippy::too_many_arguments)]
fn read_stack(
    root: &Path,
    ids: &Ids,
    job: &StackJob,
    name: String,
    display_name: String,
    template_path: RelPath,
    nested: Option<NestedLink>,
    named_by: (&Path, String),
    out: &mut Vec<Stack>,
) -> Result<()> {
    let file = template_path.under(root);
    if !file.is_file() {
        return Err(Error::MissingFile {
            path: named_by.0.to_path_buf(),
            pointer: named_by.1,
            value: template_path.as_str().to_string(),
        });
    }
    let (text, nested_stacks) = read_nested_stacks(&file)?;
    let index = out.len();
    let base = template_path.parent();
    let mut children = Vec::new();
    for (logical_id, asset_path, cdk_path) in nested_stacks {
        let pointer = format!(
            "/Resources/{}/Metadata/aws:asset:path",
            escape_pointer(&logical_id)
        );
        let child = paths::resolve(root, &base, &asset_path, &file, &pointer)?;
        let child_display = cdk_path
            .as_deref()
            .and_then(nested_display_name)
            .unwrap_or_else(|| format!("{display_name}/{logical_id}"));
        children.push((logical_id, child, child_display, pointer));
    }
    out.push(Stack {
        name: name.clone(),
        display_name,
        dir: job.dir,
        template_path,
        environment: job.environment.clone(),
        stage: job.stage.clone(),
        // A nested stack's template is always deployed from its asset (`TemplateURL`).
        published: nested.is_some() || job.published,
        nested,
        assets: Vec::new(),
        mentions: ids.named_in(&text),
        source: Source::File,
    });
    drop(text);
    for (logical_id, child, child_display, pointer) in children {
        read_stack(
            root,
            ids,
            job,
            format!("{name}/{logical_id}"),
            child_display,
            child,
            Some(NestedLink {
                parent: index,
                logical_id,
            }),
            (&file, pointer),
            out,
        )?;
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
    for (id, resource) in resources {
        let at = format!("/Resources/{}", escape_pointer(id));
        if !resource.is_object() {
            return Err(shape(at, "an object (a resource)"));
        }
        if !resource.get("Type").is_some_and(Value::is_string) {
            return Err(shape(format!("{at}/Type"), "a string (the resource type)"));
        }
    }
    Ok(())
}

/// A template's text, and its nested stack resources in template order: logical id,
/// `aws:asset:path` and `aws:cdk:path`.
type NestedStacks = (String, Vec<(String, String, Option<String>)>);

/// Reads a template at load time, for its nested stacks. Most templates take the light path:
/// a typed parse that validates the JSON and the resources' shape but builds no tree for
/// anything else. A template it does not accept is read in full, which either succeeds (the
/// light types are stricter than the template rules, say a non-string `aws:cdk:path`) or
/// reports the error with its line or pointer.
fn read_nested_stacks(file: &Path) -> Result<NestedStacks> {
    let bytes = Error::read(file)?;
    let light = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
        .then(|| serde_json::from_slice::<light::Template>(&bytes).ok())
        .flatten();
    let nested: Vec<_> = match light {
        Some(t) => t
            .resources
            .0
            .into_iter()
            .filter(|(_, r)| r.kind == "AWS::CloudFormation::Stack")
            .filter_map(|(id, r)| {
                let meta = r.metadata?;
                Some((id, meta.asset_path?, meta.cdk_path))
            })
            .collect(),
        None => {
            // The bytes already read, parsed in full.
            let template = parse_template(file, bytes)?;
            let resources = template.value.get("Resources").and_then(Value::as_object);
            let nested = resources
                .into_iter()
                .flatten()
                .filter(|(_, r)| str_at(r, "/Type") == Some("AWS::CloudFormation::Stack"))
                .filter_map(|(id, r)| {
                    let asset_path = str_at(r, "/Metadata/aws:asset:path")?;
                    let cdk_path = str_at(r, "/Metadata/aws:cdk:path");
                    Some((
                        id.clone(),
                        asset_path.to_string(),
                        cdk_path.map(str::to_string),
                    ))
                })
                .collect();
            return Ok((template.text, nested));
        }
    };
    // The JSON parsed, so it is valid UTF-8.
    let text = String::from_utf8(bytes).expect("valid JSON is UTF-8");
    Ok((text, nested))
}

/// The light view of a template: `Resources` (each with a string `Type`) and the two metadata
/// keys nested stacks need; everything else is validated and skipped.
mod light {
    use std::collections::HashMap;

    use serde::de::{Deserializer, MapAccess, Visitor};
    use serde::Deserialize;

    /// Other sections are skipped unbuilt; a repeated `Resources` fails the light parse.
    #[derive(Deserialize)]
    pub struct Template {
        #[serde(rename = "Resources", default)]
        pub resources: Resources,
    }

    #[derive(Deserialize)]
    pub struct Resource {
        #[serde(rename = "Type")]
        pub kind: String,
        #[serde(rename = "Metadata", default)]
        pub metadata: Option<Metadata>,
    }

    #[derive(Deserialize)]
    pub struct Metadata {
        #[serde(rename = "aws:asset:path", default)]
        pub asset_path: Option<String>,
        #[serde(rename = "aws:cdk:path", default)]
        pub cdk_path: Option<String>,
    }

    /// Resources in template order; a repeated logical id keeps its first place and its last
    /// value, as the full parse does.
    #[derive(Default)]
    pub struct Resources(pub Vec<(String, Resource)>);

    impl<'de> Deserialize<'de> for Resources {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Resources;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object of resources")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Resources, A::Error> {
                    let mut out: Vec<(String, Resource)> = Vec::new();
                    let mut seen: HashMap<String, usize> = HashMap::new();
                    while let Some((id, resource)) = map.next_entry::<String, Resource>()? {
                        match seen.get(&id) {
                            Some(&i) => out[i].1 = resource,
                            None => {
                                seen.insert(id.clone(), out.len());
                                out.push((id, resource));
                            }
                        }
                    }
                    Ok(Resources(out))
                }
            }
            d.deserialize_map(V)
        }
    }
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
            // A repeated id keeps its first place and its last value.
            (
                r#"{"Resources": {"A": {"Type": "AWS::SQS::Queue"}, "B": N_B, "A": N_A}}"#,
                vec!["A", "B"],
            ),
            // Full path: a non-string `aws:cdk:path` is not an error, only not a name.
            (
                r#"{"Resources": {"A": {"Type": "AWS::CloudFormation::Stack", "Metadata": {"aws:asset:path": "a.json", "aws:cdk:path": 7}}}}"#,
                vec!["A"],
            ),
            (r#"{"Outputs": {}}"#, vec![]),
        ];
        for (text, expected) in cases {
            let text = text
                .replace("N_A", &nested("A", "a.json").to_string())
                .replace("N_B", &nested("B", "b.json").to_string());
            let file = dir.path().join("t.template.json");
            std::fs::write(&file, &text).unwrap();
            let (read, found) = read_nested_stacks(&file).unwrap();
            assert_eq!(read, text);
            let ids: Vec<&str> = found.iter().map(|(id, _, _)| id.as_str()).collect();
            assert_eq!(ids, expected, "{text}");
            light_matches_full(&file, &found);
        }
        // Refused by the full read, with its pointer: the light read must not let it through.
        for (text, pointer) in [
            (
                r#"{"Resources": {"A": {"Properties": {}}}}"#,
                "/Resources/A/Type",
            ),
            (r#"{"Resources": {"A": 3}}"#, "/Resources/A"),
            (r#"{"Resources": []}"#, "/Resources"),
        ] {
            let file = dir.path().join("bad.template.json");
            std::fs::write(&file, text).unwrap();
            match read_nested_stacks(&file) {
                Err(Error::Shape { pointer: p, .. }) => assert_eq!(p, pointer, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    /// The full read's view of the nested stacks of `file` is `found`.
    fn light_matches_full(file: &Path, found: &[(String, String, Option<String>)]) {
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
            .map(|(id, p, _)| (id.clone(), p.clone()))
            .collect();
        assert_eq!(light, full);
    }

    #[test]
    fn nested_display_names_drop_cdk_suffixes() {
        let path = "Dev/Service/Nested.NestedStack/Nested.NestedStackResource";
        assert_eq!(nested_display_name(path).unwrap(), "Dev/Service/Nested");
    }
}
