//! `plaintext-secret`: secrets written into a template as plain environment variables.
//!
//! Looks at Lambda `Environment.Variables` and at CodeBuild `Environment.EnvironmentVariables`
//! whose `Type` is `PLAINTEXT` or absent. A variable is reported when its value is a literal,
//! non-empty string (not a `Ref`, `Fn::*` or other object, and not a `{{resolve:…}}` dynamic
//! reference) and one of these holds:
//!
//! 1. the value contains an AWS access key id: `AKIA` or `ASIA` and 16 upper-case letters or
//!    digits, as a whole word;
//! 2. the value contains a token in a well-known, unambiguous format: GitHub (`ghp_`, `gho_`,
//!    `ghu_`, `ghs_`, `ghr_`, `github_pat_`), GitLab (`glpat-`), Slack (`xoxb-`, `xoxp-`, …), npm
//!    (`npm_`);
//! 3. the value looks like an AWS secret access key (exactly 40 characters of `A-Za-z0-9/+=`,
//!    with upper- and lower-case letters and a digit or `/`/`+`) and the name suggests a key
//!    (`SECRET` or `KEY` in it) or another variable of the same resource holds an access key
//!    id. Without that context a 40-character value is more likely a hash or an id, so it is
//!    not reported;
//! 4. the name contains `SECRET`, `PASSWORD`, `PASSWD`, `TOKEN`, `API_KEY`, `APIKEY` or
//!    `PRIVATE_KEY` (case-insensitive, `-` read as `_`), unless the name ends in a part that
//!    says the value *names* a secret rather than holds one (`_ARN`, `_NAME`, `_ID`, `_PARAM`,
//!    `_PARAMETER`, `_PATH`, `_KEY_ID`, `_URL`, `_URI`, `_ENDPOINT`, `_FILE`, `_REF`, `_TTL`,
//!    `_EXPIRY`, `_TYPE`, `_HEADER`, `_TABLE`, `_BUCKET`, `_QUEUE`, `_TOPIC`, `_REGION`,
//!    `_ENABLED`), or the value is an ARN, an SSM parameter path (`/a/b`), a boolean (`true`,
//!    `false`, `yes`, `no`, `on`, `off`, `enabled`, `disabled`) or a number.
//!
//! A finding cannot be waived: a false positive is fixed by renaming the variable (for
//! example with one of the suffixes above when it holds a name, not a secret).
//!
//! The value is never printed: messages give its length only (and for an access key id, the
//! four-letter prefix that makes it one). `apply` never changes these variables; moving a
//! secret is the app authors' job.

use crate::transform::cfn::Field;
use crate::transform::change::Pointer;
use serde_json::Value;

use super::{Check, Finding, Severity};
use crate::assembly::{Assembly, Stack};
use crate::transform::change::pointer_escape;

pub struct PlaintextSecrets;

impl Check for PlaintextSecrets {
    fn rule(&self) -> &'static str {
        "plaintext-secret"
    }

    fn description(&self) -> &'static str {
        "Secrets must not be written into templates as plaintext Lambda or CodeBuild environment variables: they are readable by anyone who can read the template or the function/project configuration."
    }

    fn check(&self, _assembly: &Assembly, stack: &Stack, template: &Value) -> Vec<Finding> {
        let mut out = Vec::new();
        let Some(resources) = template.field("Resources").and_then(Value::as_object) else {
            return out;
        };
        for (logical_id, resource) in resources {
            let kind = resource.field("Type").and_then(Value::as_str).unwrap_or("");
            let variables = match kind {
                "AWS::Lambda::Function" => lambda_variables(resource),
                "AWS::CodeBuild::Project" => codebuild_variables(resource),
                _ => continue,
            };
            let has_key_id = variables
                .iter()
                .any(|v| v.value.is_some_and(|s| find_access_key_id(s).is_some()));
            for var in &variables {
                let Some(value) = var.value else { continue };
                let Some(why) = classify(var.name, value, has_key_id) else {
                    continue;
                };
                let base = format!("/Resources/{}", pointer_escape(logical_id));
                let (what, help) = match kind {
                    "AWS::Lambda::Function" => ("Lambda function", LAMBDA_HELP),
                    _ => ("CodeBuild project", CODEBUILD_HELP),
                };
                out.push(Finding {
                    rule: self.rule().to_string(),
                    severity: Severity::Error,
                    stack: stack.display_name.clone(),
                    template: stack.template_path.to_string(),
                    logical_id: Some(logical_id.clone()),
                    construct_path: resource
                        .at("/Metadata/aws:cdk:path")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    pointer: Some(format!("{base}{}", var.pointer())),
                    message: format!(
                        "{what} `{logical_id}` in stack `{}`: environment variable `{}` holds a plaintext secret ({why}; value masked: {}).",
                        stack.display_name,
                        var.name,
                        mask(value)
                    ),
                    help: help.to_string(),
                });
            }
        }
        out
    }
}

const LAMBDA_HELP: &str = "Store the secret in AWS Secrets Manager (or as an SSM SecureString parameter), put only its name or ARN in the environment, grant the function read access, and read the value at runtime (for example with the AWS Parameters and Secrets Lambda Extension); for AWS credentials, use the function's execution role instead of access keys. Never put the value in the template, and rotate it: it has already been written to the synthesized template.";

const CODEBUILD_HELP: &str = "Store the secret in AWS Secrets Manager or as an SSM SecureString parameter and give the variable `Type` `SECRETS_MANAGER` or `PARAMETER_STORE` with the secret's name as `Value` (in CDK: `{ type: BuildEnvironmentVariableType.SECRETS_MANAGER, value: 'name' }`); for AWS credentials, use the project's service role instead of access keys. Never put the value in the template, and rotate it: it has already been written to the synthesized template.";

/// One environment variable: its name, its literal string value (if it is one) and its place
/// in the resource (written out only for a finding).
struct Variable<'a> {
    name: &'a str,
    value: Option<&'a str>,
    place: Place,
}

/// Where a variable's value is: a Lambda function's variables are keyed by name, a CodeBuild
/// project's are the items of a list.
enum Place {
    Lambda,
    CodeBuild(usize),
}

impl Variable<'_> {
    /// The variable's value, as a JSON pointer relative to the resource.
    fn pointer(&self) -> String {
        match self.place {
            Place::Lambda => format!(
                "/Properties/Environment/Variables/{}",
                pointer_escape(self.name)
            ),
            Place::CodeBuild(i) => {
                format!("/Properties/Environment/EnvironmentVariables/{i}/Value")
            }
        }
    }
}

/// Whether `needle` occurs in `haystack`: tried where its first byte is, which for a
/// variable's name or value, a few dozen bytes, costs less than building a substring
/// searcher once per name and needle.
fn has(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let Some(&first) = n.first() else {
        return true;
    };
    memchr::memchr_iter(first, h).any(|i| h[i..].starts_with(n))
}

fn lambda_variables(resource: &Value) -> Vec<Variable<'_>> {
    resource
        .at("/Properties/Environment/Variables")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, value)| Variable {
            name,
            value: literal(value),
            place: Place::Lambda,
        })
        .collect()
}

fn codebuild_variables(resource: &Value) -> Vec<Variable<'_>> {
    resource
        .at("/Properties/Environment/EnvironmentVariables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, entry)| {
            let name = entry.field("Name").and_then(Value::as_str)?;
            // Only plaintext variables; SECRETS_MANAGER and PARAMETER_STORE values are names.
            let plain = match entry.field("Type") {
                None => true,
                Some(Value::String(t)) => t == "PLAINTEXT",
                Some(_) => false,
            };
            Some(Variable {
                name,
                value: if plain {
                    entry.field("Value").and_then(literal)
                } else {
                    None
                },
                place: Place::CodeBuild(i),
            })
        })
        .collect()
}

/// The string, if `value` is a literal, non-empty string that is not a dynamic reference.
fn literal(value: &Value) -> Option<&str> {
    let s = value.as_str()?;
    if s.trim().is_empty() || has(s, "{{resolve:") {
        return None;
    }
    Some(s)
}

/// What the value is, if it is a secret.
fn classify(name: &str, value: &str, resource_has_key_id: bool) -> Option<&'static str> {
    if find_access_key_id(value).is_some() {
        return Some("an AWS access key id");
    }
    if has_known_token(value) {
        return Some("an access token");
    }
    let upper = name.to_ascii_uppercase().replace('-', "_");
    if looks_like_secret_key(value)
        && (has(&upper, "SECRET") || has(&upper, "KEY") || resource_has_key_id)
    {
        return Some("what looks like an AWS secret access key");
    }
    const NAMES: &[&str] = &[
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
    ];
    if NAMES.iter().any(|n| has(&upper, n)) && !names_a_secret(&upper) && !harmless_value(value) {
        return Some("a literal value under a secret's name");
    }
    None
}

/// Suffixes saying the variable holds where a secret is, not the secret.
const REFERENCE_SUFFIXES: &[&str] = &[
    "_ARN",
    "_NAME",
    "_ID",
    "_PARAM",
    "_PARAMETER",
    "_PATH",
    "_KEY_ID",
    "_URL",
    "_URI",
    "_ENDPOINT",
    "_FILE",
    "_REF",
    "_TTL",
    "_EXPIRY",
    "_TYPE",
    "_HEADER",
    "_TABLE",
    "_BUCKET",
    "_QUEUE",
    "_TOPIC",
    "_REGION",
    "_ENABLED",
];

fn names_a_secret(upper: &str) -> bool {
    REFERENCE_SUFFIXES.iter().any(|s| upper.ends_with(s))
}

/// Values that cannot be a secret: ARNs, SSM parameter paths, booleans, numbers.
fn harmless_value(value: &str) -> bool {
    let v = value.trim();
    if v.starts_with("arn:") {
        return true;
    }
    if v.len() > 1
        && v.starts_with('/')
        && v[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        })
    {
        return true;
    }
    const WORDS: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "enabled", "disabled",
    ];
    if WORDS.iter().any(|w| v.eq_ignore_ascii_case(w)) {
        return true;
    }
    v.parse::<f64>().is_ok()
}

/// The byte offset of an AWS access key id (`AKIA`/`ASIA` + 16 of `A-Z0-9`, as a whole word).
fn find_access_key_id(value: &str) -> Option<usize> {
    let b = value.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric();
    (0..b.len().saturating_sub(19)).find(|&i| {
        (b[i..].starts_with(b"AKIA") || b[i..].starts_with(b"ASIA"))
            && b[i + 4..i + 20]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && (i == 0 || !word(b[i - 1]))
            && b.get(i + 20).is_none_or(|c| !word(*c))
    })
}

/// Tokens whose format alone says what they are: a prefix, and how many token characters
/// at least follow it.
const PREFIXES: &[(&str, usize)] = &[
    ("ghp_", 30),
    ("gho_", 30),
    ("ghu_", 30),
    ("ghs_", 30),
    ("ghr_", 30),
    ("github_pat_", 30),
    ("glpat-", 20),
    ("xoxb-", 20),
    ("xoxp-", 20),
    ("xoxa-", 20),
    ("xoxr-", 20),
    ("npm_", 36),
];

/// Whether `value` holds one of the [`PREFIXES`] tokens.
fn has_known_token(value: &str) -> bool {
    // Each place a prefix could start (every prefix starts with `g`, `x` or `n`, which a test
    // checks) tried against each prefix: a value is short, and no prefix can overlap itself,
    // so these are the places a search for each prefix finds.
    let b = value.as_bytes();
    memchr::memchr3_iter(b'g', b'x', b'n', b).any(|i| {
        PREFIXES.iter().any(|(prefix, min)| {
            if !b[i..].starts_with(prefix.as_bytes()) {
                return false;
            }
            let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
            let rest = b[i + prefix.len()..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'-')
                .count();
            boundary && rest >= *min
        })
    })
}

/// Exactly 40 characters of base64, mixing cases and digits or `/`/`+`, like an AWS secret key.
fn looks_like_secret_key(value: &str) -> bool {
    let v = value.as_bytes();
    v.len() == 40
        && v.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"/+=".contains(c))
        && v.iter().any(u8::is_ascii_uppercase)
        && v.iter().any(u8::is_ascii_lowercase)
        && v.iter().any(|c| c.is_ascii_digit() || b"/+".contains(c))
}

/// A description of a secret that does not reveal it.
fn mask(value: &str) -> String {
    let n = value.chars().count();
    match find_access_key_id(value) {
        Some(i) if value.len() == 20 => format!("`{}…`, 20 characters", &value[i..i + 4]),
        _ => format!("{n} character{}", if n == 1 { "" } else { "s" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The position-by-position searches find what substring searches find: values made
        /// of the prefixes' own characters, so that near misses and repeats are common.
        #[test]
        fn issue_8_token_and_name_searches_agree_with_substring_search(
            value in "[ghpousrtbxanml_i-]{0,60}",
            name in "[A-Z_]{0,12}",
        ) {
            let by_search = |value: &str| {
                PREFIXES.iter().any(|(prefix, min)| {
                    value.match_indices(prefix).any(|(i, _)| {
                        let boundary = i == 0 || !value.as_bytes()[i - 1].is_ascii_alphanumeric();
                        let rest = value[i + prefix.len()..]
                            .bytes()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
                            .count();
                        boundary && rest >= *min
                    })
                })
            };
            // Long enough runs to pass the length checks, too.
            let long = format!("{value}{}", "a".repeat(40));
            proptest::prop_assert!(PREFIXES.iter().all(|(p, _)| p.starts_with(['g', 'x', 'n'])));
            proptest::prop_assert_eq!(has_known_token(&value), by_search(&value));
            proptest::prop_assert_eq!(has_known_token(&long), by_search(&long));
            for needle in ["SECRET", "KEY", "API_KEY", "_", "{{resolve:"] {
                proptest::prop_assert_eq!(has(&name, needle), name.contains(needle));
                proptest::prop_assert_eq!(has(&value, needle), value.contains(needle));
            }
        }
    }

    #[test]
    fn access_key_ids_are_whole_words() {
        assert_eq!(find_access_key_id("AKIAIOSFODNN7EXAMPLE"), Some(0));
        assert_eq!(find_access_key_id("key=ASIAIOSFODNN7EXAMPLE;"), Some(4));
        assert_eq!(find_access_key_id("XAKIAIOSFODNN7EXAMPLE"), None);
        assert_eq!(find_access_key_id("AKIAIOSFODNN7EXAMPLEX"), None);
        assert_eq!(find_access_key_id("AKIAiosfodnn7example"), None);
    }

    #[test]
    fn secret_keys_need_context() {
        let key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert!(classify("AWS_SECRET_ACCESS_KEY", key, false).is_some());
        assert!(classify("SIGNING_KEY", key, false).is_some());
        assert!(
            classify("BLOB", key, true).is_some(),
            "next to an access key id"
        );
        assert!(
            classify("BLOB", key, false).is_none(),
            "no context: could be anything"
        );
        let sha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
        assert!(
            classify("CACHE_KEY", sha1, false).is_none(),
            "a hex hash is not a secret key"
        );
    }

    #[test]
    fn names_flag_literals_but_not_references_to_secrets() {
        assert!(classify("DB_PASSWORD", "hunter2", false).is_some());
        assert!(classify("github-token", "abc", false).is_some());
        assert!(classify("STRIPE_API_KEY", "sk_test_123", false).is_some());
        assert!(classify("API_TOKEN_PARAM", "/example/app/api-token", false).is_none());
        assert!(classify(
            "DB_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-1:1:secret:x",
            false
        )
        .is_none());
        assert!(classify("SECRET_NAME", "prod/db", false).is_none());
        assert!(
            classify("DB_PASSWORD", "/prod/db/password", false).is_none(),
            "an SSM path"
        );
        assert!(classify("ENABLE_TOKEN_AUTH", "true", false).is_none());
        assert!(classify("TOKEN_LIFETIME", "3600", false).is_none());
        assert!(classify("TOKENS_TABLE", "prod-tokens", false).is_none());
        assert!(classify("STAGE", "dev", false).is_none());
        assert!(
            classify("TABLE", "ghp_exampleexampleexampleexample0000", false).is_some(),
            "a GitHub token"
        );
    }

    #[test]
    fn dynamic_references_and_intrinsics_are_not_literals() {
        assert_eq!(
            literal(&serde_json::json!(
                "{{resolve:secretsmanager:prod/token:SecretString:::}}"
            )),
            None
        );
        assert_eq!(literal(&serde_json::json!({"Ref": "T"})), None);
        assert_eq!(literal(&serde_json::json!("")), None);
        assert_eq!(literal(&serde_json::json!("x")), Some("x"));
    }

    #[test]
    fn masks_never_show_the_value() {
        assert_eq!(mask("hunter2"), "7 characters");
        assert_eq!(mask("AKIAIOSFODNN7EXAMPLE"), "`AKIA…`, 20 characters");
        assert!(!mask("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").contains("wJal"));
    }
}
