//! `package-registry`: every CodeBuild project points the package managers at the environment's
//! internal mirrors through environment variables.
//!
//! For each mirror the config gives (`packageRegistry.npm`, `.pip`, `.maven`), the project gets
//! the variables of [`VARIABLES`], as `PLAINTEXT` entries appended to
//! `Environment.EnvironmentVariables` in that fixed order. A variable the project already sets
//! (by name, ignoring case) is left alone, with a note when its value differs. A template with
//! CodeBuild projects in an environment without any mirror is an error naming the environment.

use crate::transform::cfn::Field;
use serde_json::{json, Value};

use crate::config::PackageRegistry as Mirrors;
use crate::error::{Error, Result};
use crate::transform::cfn;
use crate::transform::{Action, Change, Context, NoteKind, Op, Proposal};

pub struct PackageRegistry;

/// Which mirror a variable carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mirror {
    Npm,
    Pip,
    Maven,
}

impl Mirror {
    fn key(self) -> &'static str {
        match self {
            Mirror::Npm => "packageRegistry.npm",
            Mirror::Pip => "packageRegistry.pip",
            Mirror::Maven => "packageRegistry.maven",
        }
    }

    fn url(self, mirrors: &Mirrors) -> Option<&str> {
        match self {
            Mirror::Npm => mirrors.npm.as_deref(),
            Mirror::Pip => mirrors.pip.as_deref(),
            Mirror::Maven => mirrors.maven.as_deref(),
        }
    }
}

/// The variables, in the order they are appended, with the mirror each carries.
pub const VARIABLES: &[(&str, Mirror)] = &[
    // npm and pnpm read `npm_config_*` from the environment.
    ("NPM_CONFIG_REGISTRY", Mirror::Npm),
    // Yarn 1 reads `yarn_*`; Yarn 2 and later read `npmRegistryServer` as YARN_NPM_REGISTRY_SERVER.
    ("YARN_REGISTRY", Mirror::Npm),
    ("YARN_NPM_REGISTRY_SERVER", Mirror::Npm),
    ("PIP_INDEX_URL", Mirror::Pip),
    // uv 0.4.23 and later; UV_INDEX_URL for older uv (deprecated, still read).
    ("UV_DEFAULT_INDEX", Mirror::Pip),
    ("UV_INDEX_URL", Mirror::Pip),
    ("PIPENV_PYPI_MIRROR", Mirror::Pip),
    ("PDM_PYPI_URL", Mirror::Pip),
    // No Maven or Gradle setting reads an environment variable by itself: settings.xml
    // (`${env.MAVEN_MIRROR_URL}`) and Gradle init scripts or settings refer to this one.
    ("MAVEN_MIRROR_URL", Mirror::Maven),
];

impl Action for PackageRegistry {
    fn propose(&self, template: &Value, selected: &[String], ctx: &Context) -> Result<Proposal> {
        let mut proposal = Proposal::default();
        if selected.is_empty() {
            return Ok(proposal);
        }
        let mirrors = ctx.env.package_registry.clone().unwrap_or_default();
        if mirrors.npm.is_none() && mirrors.pip.is_none() && mirrors.maven.is_none() {
            return Err(ctx.missing_setting(
                "packageRegistry.npm`, `packageRegistry.pip` or `packageRegistry.maven",
            ));
        }
        for mirror in [Mirror::Npm, Mirror::Pip, Mirror::Maven] {
            if let Some(problem) = mirror.url(&mirrors).and_then(url_problem) {
                return Err(Error::Environment {
                    environment: ctx.environment(),
                    problem: format!("`{}`: {problem}", mirror.key()),
                });
            }
        }
        let wanted: Vec<(&str, &str)> = VARIABLES
            .iter()
            .filter_map(|(name, mirror)| mirror.url(&mirrors).map(|url| (*name, url)))
            .collect();

        for id in selected {
            let Some(resource) = cfn::resource(template, id) else {
                continue;
            };
            if cfn::prop(resource, "Environment").is_some_and(|e| !e.is_object()) {
                proposal.notes.push(ctx.note(
                    Some(id),
                    NoteKind::LeftAlone,
                    "`Environment` is not a plain object; left alone, so the build does not get the package mirror variables",
                ));
                continue;
            }
            let existing = match cfn::prop(resource, "Environment")
                .map(|e| e.field("EnvironmentVariables"))
            {
                None | Some(None) => Vec::new(),
                Some(Some(Value::Array(items))) => items.clone(),
                Some(Some(_)) => {
                    proposal.notes.push(ctx.note(
                        Some(id),
                        NoteKind::LeftAlone,
                        "`Environment.EnvironmentVariables` is not a plain list; left alone, so the build does not get the package mirror variables",
                    ));
                    continue;
                }
            };
            let mut add = Vec::new();
            for (name, url) in &wanted {
                let set = existing.iter().find(|v| {
                    v.field("Name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                });
                match set {
                    None => add.push(json!({ "Name": name, "Type": "PLAINTEXT", "Value": url })),
                    Some(v) if v.field("Value").and_then(Value::as_str) == Some(url) => {}
                    Some(v) => proposal.notes.push(ctx.note(
                        Some(id),
                        NoteKind::LeftAlone,
                        format!(
                            "the project already sets `{}` ({}); left alone, so that tool may not use the mirror `{url}`",
                            v.field("Name").and_then(Value::as_str).unwrap_or(name),
                            describe(v)
                        ),
                    )),
                }
            }
            if !add.is_empty() {
                proposal.push(Change::on_resource(
                    id,
                    "/Properties/Environment/EnvironmentVariables",
                    Op::AppendUnique,
                    Value::Array(add),
                    "point the package managers at the internal mirrors",
                ));
            }
        }
        Ok(proposal)
    }
}

/// Why a mirror URL cannot be used, if it cannot: it must be http(s), and it must not carry
/// credentials, which would be stored in plain text in the template.
fn url_problem(url: &str) -> Option<String> {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Some(format!("`{url}` is not an http(s) URL"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || url.contains(char::is_whitespace) {
        return Some(format!("`{url}` is not an http(s) URL"));
    }
    if host.contains('@') {
        return Some(
            "the URL carries credentials, which would be stored in plain text in the template; give the build its token through a SECRETS_MANAGER or PARAMETER_STORE variable instead".into(),
        );
    }
    None
}

/// A variable's value for a note, without printing what may be a secret reference.
fn describe(variable: &Value) -> String {
    let kind = variable
        .field("Type")
        .and_then(Value::as_str)
        .unwrap_or("PLAINTEXT");
    match (kind, variable.field("Value")) {
        ("PLAINTEXT", Some(Value::String(s))) => format!("to `{s}`"),
        ("PLAINTEXT", _) => "to a computed value".to_string(),
        (other, _) => format!("from {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mirror_has_variables_and_names_are_unique() {
        for mirror in [Mirror::Npm, Mirror::Pip, Mirror::Maven] {
            assert!(VARIABLES.iter().any(|(_, m)| *m == mirror), "{mirror:?}");
        }
        let mut names: Vec<&str> = VARIABLES.iter().map(|(n, _)| *n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), VARIABLES.len());
    }

    #[test]
    fn mirror_urls_are_http_and_carry_no_credentials() {
        assert_eq!(url_problem("https://npm.mirror.example.com/"), None);
        assert_eq!(
            url_problem("http://10.0.0.1:8081/repository/pypi/simple"),
            None
        );
        assert!(url_problem("npm.mirror.example.com")
            .unwrap()
            .contains("not an http(s) URL"));
        assert!(url_problem("https://").is_some());
        let secret = url_problem("https://ci:s3cret@npm.mirror.example.com/").unwrap();
        assert!(
            secret.contains("credentials") && !secret.contains("s3cret"),
            "{secret}"
        );
        // An `@` in the path (npm scopes) is not a credential.
        assert_eq!(url_problem("https://mirror.example.com/@scope/"), None);
    }

    #[test]
    fn notes_never_print_secret_references() {
        let v = json!({"Name": "PIP_INDEX_URL", "Type": "SECRETS_MANAGER", "Value": "arn:aws:secretsmanager:…"});
        assert_eq!(describe(&v), "from SECRETS_MANAGER");
        let v = json!({"Name": "PIP_INDEX_URL", "Type": "PLAINTEXT", "Value": "https://p"});
        assert_eq!(describe(&v), "to `https://p`");
    }
}
