//! `cdk-harden.json`: what the security catalogue asks of each environment.
//!
//! The config is strict: an unknown key anywhere is an error naming its path, because a typo in a
//! security config must not silently turn a rule off. Environment entries are keyed
//! `ACCOUNT/REGION` with `*` wildcards (`*` alone matches everything, including
//! environment-agnostic stacks); for a stack, every matching entry applies, the more specific
//! merged over the less specific. The JSON Schema in `schema/cdk-harden.schema.json` is generated
//! from these types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::assembly::Environment;
use crate::error::{Error, Result};

/// The default config file name, looked up in the current directory.
pub const FILE_NAME: &str = "cdk-harden.json";

/// The whole `cdk-harden.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "cdk-harden configuration")]
pub struct Config {
    /// Editor hint, e.g. `./schema/cdk-harden.schema.json`. Ignored by cdk-harden.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,

    /// Per-environment settings, keyed `ACCOUNT/REGION` with `*` wildcards, e.g. `*`,
    /// `444444444444/*`, `444444444444/eu-west-1`. Every matching entry applies; more specific
    /// keys (an account beats a region, both beat neither) are merged over less specific ones.
    /// Environment-agnostic stacks match `*`, `*/*` and `unknown-account/unknown-region`.
    #[serde(default)]
    pub environments: BTreeMap<String, EnvConfig>,

    /// What counts as production, for the manual approval gate.
    #[serde(default)]
    pub production: Production,

    /// Which transforms run.
    #[serde(default)]
    pub transforms: TransformsConfig,

    /// Resources excluded by construct path, each with the reason a reviewer will read.
    #[serde(default)]
    pub exclude: Vec<Exclusion>,

    /// Transforms allowed to make a change that makes CloudFormation replace a stateful
    /// resource (losing its data). Empty by default: such changes are refused and reported.
    #[serde(default)]
    pub allow_replacement: Vec<String>,
}

/// Settings for the stacks of one environment pattern. All optional; a transform that needs a
/// setting its stack's environment lacks fails with an error naming the environment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvConfig {
    /// Where S3 server access logs go (`bucket-logging`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_logs: Option<AccessLogs>,

    /// The VPC that functions and builds run in (`vpc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc: Option<VpcConfig>,

    /// The internal package mirrors builds use (`package-registry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_registry: Option<PackageRegistry>,

    /// The customer-managed KMS key everything is encrypted with (`kms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<KmsConfig>,

    /// Details of the manual approval before production (`prod-approval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalConfig>,
}

/// The access-log destination: an existing central bucket, or one created per stack.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessLogs {
    /// Name of an existing bucket that receives S3 server access logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Add one access-log bucket to each stack that has buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<bool>,
}

/// A value given literally or read from SSM Parameter Store at deploy time.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum Source<T> {
    /// The value itself.
    Literal(T),
    /// An SSM parameter name; the template gets an SSM-typed parameter defaulting to it.
    Ssm(SsmRef),
}

/// `{"ssm": "/org/network/vpc-id"}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SsmRef {
    pub ssm: String,
}

/// The company VPC.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VpcConfig {
    pub vpc_id: Source<String>,
    pub subnet_ids: Source<Vec<String>>,
    pub security_group_ids: Source<Vec<String>>,
}

/// Internal package mirrors.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PackageRegistry {
    /// npm registry URL (also used by yarn and pnpm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub npm: Option<String>,
    /// PyPI-compatible index URL (pip, and uv/poetry where they read the same variables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pip: Option<String>,
    /// Maven repository URL (Maven and Gradle, as far as environment variables reach).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maven: Option<String>,
}

/// The customer-managed key: a central one, or one created per stack.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KmsConfig {
    /// ARN of a central key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_arn: Option<String>,
    /// SSM parameter holding the ARN of a central key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssm: Option<String>,
    /// Add one rotating key per stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<bool>,
}

/// Optional details of the manual approval action.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApprovalConfig {
    /// SNS topic ARN notified when approval is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_arn: Option<String>,
    /// Shown to the approver (`CustomData`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// A link for the approver, e.g. the UAT sign-off page (`ExternalEntityLink`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_entity_link: Option<String>,
}

/// What counts as production.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Production {
    /// Production AWS account ids.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Globs over Stage and pipeline stage names, e.g. `Prod*`.
    #[serde(default)]
    pub stages: Vec<String>,
}

/// Which transforms run, and how strictly.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformsConfig {
    /// Built-in or included transform ids not to run.
    #[serde(default)]
    pub disable: Vec<String>,
    /// Directories of additional transform documents (`*.json`), relative to this file.
    #[serde(default)]
    pub include: Vec<PathBuf>,
    /// Transform ids whose values override what the app set explicitly. Without this, a
    /// property the app set is left alone and the report says so.
    #[serde(default)]
    pub enforce: Vec<String>,
}

/// Excludes resources whose construct path matches a glob.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    /// Glob over `aws:cdk:path`, e.g. `*/Legacy/*`.
    pub path: String,
    /// Transform ids excluded; empty means all.
    #[serde(default)]
    pub transforms: Vec<String>,
    /// Why: shown in the review. Required.
    pub reason: String,
}

/// A loaded config and where it came from (for relative paths and messages).
#[derive(Debug, Clone, Default)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file, or `None` for the built-in empty config.
    pub path: Option<PathBuf>,
}

/// Whether `./cdk-harden.json` is there, readable or not. Only a config that is not there at
/// all means the empty config: one that is there but cannot be read (a dangling link, a
/// directory) is an error, not a run without the security team's settings.
pub fn default_present() -> bool {
    std::fs::symlink_metadata(FILE_NAME).is_ok()
}

impl LoadedConfig {
    /// Reads `path`, or `./cdk-harden.json` if `path` is `None` and that file exists; with
    /// neither, the empty config.
    pub fn load(path: Option<&Path>) -> Result<LoadedConfig> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => {
                let default = PathBuf::from(FILE_NAME);
                if !default_present() {
                    return Ok(LoadedConfig::default());
                }
                default
            }
        };
        let bytes = Error::read_any(&path)?;
        let config = Self::parse(&path, &bytes)?;
        Ok(LoadedConfig {
            config,
            path: Some(path),
        })
    }

    /// Parses and validates config text; errors name the file and the key path.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Config> {
        let value: Value = Error::parse_json_unique(path, bytes)?;
        if !value.is_object() {
            return Err(Error::Config {
                path: path.to_path_buf(),
                key: "(top level)".into(),
                problem: "must be a JSON object".into(),
            });
        }
        let config: Config = serde_path_to_error::deserialize(&value).map_err(|e| {
            let key = e.path().to_string();
            Error::Config {
                path: path.to_path_buf(),
                key: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                problem: e.into_inner().to_string(),
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// The directory relative paths in the config are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// Names the config in messages.
    pub fn display_path(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| PathBuf::from("(no config file)"))
    }
}

impl Config {
    fn validate(&self, path: &Path) -> Result<()> {
        let err = |key: String, problem: String| Error::Config {
            path: path.to_path_buf(),
            key,
            problem,
        };
        for key in self.environments.keys() {
            let parts: Vec<&str> = key.split('/').collect();
            let ok = match parts.as_slice() {
                ["*"] => true,
                [a, r] => !a.is_empty() && !r.is_empty(),
                _ => false,
            };
            if !ok {
                return Err(err(
                    format!("environments.{key}"),
                    "an environment key is `*` or `ACCOUNT/REGION`, each part a name or a `*` glob"
                        .into(),
                ));
            }
            for part in &parts {
                glob(part).map_err(|e| err(format!("environments.{key}"), e))?;
            }
        }
        for (i, pattern) in self.production.stages.iter().enumerate() {
            glob(pattern).map_err(|e| err(format!("production.stages[{i}]"), e))?;
        }
        // Compared with the accounts of ARNs, which never match another form: a mistyped id
        // would silently drop the approval before production.
        for (i, account) in self.production.accounts.iter().enumerate() {
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(
                    format!("production.accounts[{i}]"),
                    format!(
                        "`{account}` is not an AWS account id (12 digits, e.g. `444444444444`)"
                    ),
                ));
            }
        }
        for (i, ex) in self.exclude.iter().enumerate() {
            glob(&ex.path).map_err(|e| err(format!("exclude[{i}].path"), e))?;
            if ex.reason.trim().is_empty() {
                return Err(err(
                    format!("exclude[{i}].reason"),
                    "an exclusion needs a reason a reviewer can read".into(),
                ));
            }
        }
        Ok(())
    }

    /// The merged settings for a stack's environment, most specific last. Returns the merged
    /// config and the keys that matched (for messages).
    pub fn for_environment(&self, env: &Environment) -> (EnvConfig, Vec<String>) {
        let account = env.account.as_deref().unwrap_or("unknown-account");
        let region = env.region.as_deref().unwrap_or("unknown-region");
        let mut matched: Vec<(u8, &String, &EnvConfig)> = self
            .environments
            .iter()
            .filter_map(|(key, cfg)| {
                let (a, r) = key.split_once('/').unwrap_or(("*", "*"));
                let hit = glob_matches(a, account) && glob_matches(r, region);
                let rank = u8::from(!a.contains('*')) * 2 + u8::from(!r.contains('*'));
                hit.then_some((rank, key, cfg))
            })
            .collect();
        matched.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.cmp(y.1)));
        let mut merged = Value::Object(Default::default());
        for (_, _, cfg) in &matched {
            deep_merge(
                &mut merged,
                serde_json::to_value(cfg).expect("config serializes"),
            );
        }
        let config = serde_json::from_value(merged).expect("merged config keeps its shape");
        (config, matched.into_iter().map(|m| m.1.clone()).collect())
    }

    /// Whether a Stage or pipeline stage name matches `production.stages`.
    pub fn is_production_stage(&self, name: &str) -> bool {
        self.production.stages.iter().any(|p| glob_matches(p, name))
    }

    /// Whether an account is a production account.
    pub fn is_production_account(&self, account: &str) -> bool {
        self.production.accounts.iter().any(|a| a == account)
    }
}

/// The JSON Schema of cdk-harden.json, as committed in `schema/cdk-harden.schema.json`.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Config);
    let mut text = serde_json::to_string_pretty(&schema).expect("schemas serialize");
    text.push('\n');
    text
}

fn glob(pattern: &str) -> std::result::Result<globset::GlobMatcher, String> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("`{pattern}` is not a valid glob: {}", e.kind()))
}

/// Whether `text` matches the glob `pattern` (`*` matches across `/`). Compiled globs are
/// cached: the same few patterns are matched against every stack and resource.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    use foldhash::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Option<globset::GlobMatcher>>>> = OnceLock::new();
    if !pattern.contains(['*', '?', '[', '{']) {
        return pattern == text;
    }
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    if !map.contains_key(pattern) {
        map.insert(pattern.to_string(), glob(pattern).ok());
    }
    map[pattern].as_ref().is_some_and(|g| g.is_match(text))
}

/// Merges `over` into `base`: objects key by key, anything else replaced.
fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        LoadedConfig::parse(Path::new("cdk-harden.json"), text.as_bytes())
    }

    #[test]
    fn unknown_keys_name_their_path() {
        let err = parse(r#"{"environments": {"*": {"accessLogs": {"bukket": "x"}}}}"#).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("environments.*.accessLogs"), "{msg}");
        assert!(msg.contains("bukket"), "{msg}");
    }

    /// A key given twice is refused where it repeats: serde_json would keep the last, so a
    /// second `production` (say, from pasting two snippets together) would silently drop the
    /// production gate. A file that is not an object is refused too (serde would read an
    /// array's items by position).
    #[test]
    fn issue_7_repeated_keys_and_non_objects_are_refused() {
        let twice = "{\n \"production\": {\"accounts\": [\"444444444444\"]},\n \"production\": {\"stages\": []}\n}";
        let msg = parse(twice).unwrap_err().to_string();
        assert!(
            msg.starts_with("cdk-harden.json: invalid JSON at line 3, column 13: key `production` appears twice in the top level"),
            "{msg}"
        );
        let nested = r#"{"environments": {"*": {"kms": {"create": true, "create": false}}}}"#;
        let msg = parse(nested).unwrap_err().to_string();
        assert!(
            msg.contains("key `create` appears twice in `environments.*.kms`"),
            "{msg}"
        );
        let in_array = r#"{"production": {"stages": ["Prod*"]}, "transforms": {"include": [{"a": 1, "a": 2}]}}"#;
        let msg = parse(in_array).unwrap_err().to_string();
        assert!(msg.contains("in `transforms.include[0]`"), "{msg}");
        for not_object in ["[]", "[null, {}]", "null", "7"] {
            let msg = parse(not_object).unwrap_err().to_string();
            assert!(msg.contains("must be a JSON object"), "{not_object}: {msg}");
        }
        // The same keys in different objects are fine.
        assert!(parse(r#"{"environments": {"*": {"kms": {"create": true}}, "1/r": {"kms": {"create": false}}}}"#).is_ok());
    }

    /// A production account that is not 12 digits could never match an ARN's account, so
    /// it would silently drop the approval before production: it is refused.
    #[test]
    fn issue_6_production_accounts_must_be_account_ids() {
        for bad in ["4444-4444-4444", "44444444444", "4444444444445", "*", ""] {
            let text = format!(r#"{{"production": {{"accounts": ["111111111111", "{bad}"]}}}}"#);
            let msg = parse(&text).unwrap_err().to_string();
            assert!(
                msg.contains("production.accounts[1]") && msg.contains("not an AWS account id"),
                "{bad}: {msg}"
            );
        }
        assert!(parse(r#"{"production": {"accounts": ["444444444444"]}}"#).is_ok());
    }

    /// A config saved with a byte order mark (as some Windows editors save UTF-8) is read.
    #[test]
    fn a_config_with_a_byte_order_mark_is_read() {
        let text = "\u{feff}{\"production\": {\"accounts\": [\"444444444444\"]}}";
        let config = parse(text).unwrap();
        assert_eq!(config.production.accounts, ["444444444444"]);
    }

    #[test]
    fn most_specific_environment_wins() {
        let config = parse(
            r#"{"environments": {
                "*": {"accessLogs": {"create": true}, "packageRegistry": {"npm": "https://a"}},
                "444444444444/*": {"accessLogs": {"bucket": "central"}},
                "444444444444/eu-west-1": {"packageRegistry": {"pip": "https://p"}},
                "*/us-east-1": {"packageRegistry": {"npm": "https://us"}}
            }}"#,
        )
        .unwrap();
        let prod = Environment::parse("aws://444444444444/eu-west-1").unwrap();
        let (cfg, keys) = config.for_environment(&prod);
        assert_eq!(keys, ["*", "444444444444/*", "444444444444/eu-west-1"]);
        let logs = cfg.access_logs.unwrap();
        assert_eq!(logs.bucket.as_deref(), Some("central"));
        assert_eq!(logs.create, Some(true));
        let reg = cfg.package_registry.unwrap();
        assert_eq!(reg.npm.as_deref(), Some("https://a"));
        assert_eq!(reg.pip.as_deref(), Some("https://p"));

        let agnostic = Environment::default();
        let (_, keys) = config.for_environment(&agnostic);
        assert_eq!(keys, ["*"]);
    }

    #[test]
    fn exclusions_need_reasons() {
        let err = parse(r#"{"exclude": [{"path": "*/Legacy/*", "reason": " "}]}"#).unwrap_err();
        assert!(err.to_string().contains("exclude[0].reason"), "{err}");
    }

    #[test]
    fn bad_environment_keys_are_refused() {
        let err = parse(r#"{"environments": {"a/b/c": {}}}"#).unwrap_err();
        assert!(err.to_string().contains("environments.a/b/c"), "{err}");
    }
}
