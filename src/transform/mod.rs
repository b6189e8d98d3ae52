//! The transform engine: transforms propose, the engine applies.
//!
//! For each template, the engine runs the enabled transforms of the [`Registry`] in order. A
//! transform sees the template as the previous transforms left it, with its stack's
//! [`Context`], and returns a [`Proposal`]. The engine drops changes to resources that opted
//! out, refuses changes that would make CloudFormation replace a stateful resource, sorts the
//! rest by pointer (stable) and applies them. Each operation only adds or tightens; an explicit
//! value of the app is overwritten only under `transforms.enforce`, and the record says so.
//!
//! The engine never touches files: it maps templates to templates and records what it did.

pub mod actions;
pub mod cfn;
pub mod change;
pub mod document;
pub mod limits;
pub mod optout;
pub mod original;
pub mod registry;
pub mod replacement;

use crate::transform::cfn::Field;
use std::borrow::Cow;

use crate::transform::change::Pointer;
use serde_json::Value;

use crate::assembly::{Assembly, Stack};
use crate::config::{Config, EnvConfig};
use crate::error::{Error, Result};
pub use change::{Applied, Change, JsonText, Note, NoteKind, Op, Proposal};
pub use document::{Compiled, Document};
pub use original::Original;
pub use registry::{Registry, Transform};

/// What a transform knows about the template it is looking at.
pub struct Context<'a> {
    pub assembly: &'a Assembly,
    /// The template's resources as the app wrote them, before any transform.
    pub original: &'a Original,
    /// Index of the stack in [`Assembly::stacks`].
    pub index: usize,
    pub stack: &'a Stack,
    /// The merged settings for the stack's environment.
    pub env: &'a EnvConfig,
    /// The `environments` keys that matched, least specific first.
    pub env_keys: &'a [String],
    pub config: &'a Config,
    /// The document of the transform running (its id, parameters).
    pub doc: &'a Document,
}

impl Context<'_> {
    /// The environment, as `ACCOUNT/REGION`, for messages.
    pub fn environment(&self) -> String {
        self.stack.environment.key()
    }

    /// An error naming the environment, for settings it lacks.
    /// A setting of this environment that is set, but not to something it can be.
    pub fn invalid_setting(&self, problem: String) -> Error {
        Error::Environment {
            environment: self.environment(),
            problem,
        }
    }

    pub fn missing_setting(&self, setting: &str) -> Error {
        Error::Environment {
            environment: self.environment(),
            problem: format!(
                "transform `{}` needs `{setting}`, and no entry of `environments` that matches this environment sets it (matched: {}); add it to cdk-harden.json, or disable the transform",
                self.doc.id,
                if self.env_keys.is_empty() {
                    "none".to_string()
                } else {
                    self.env_keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                }
            ),
        }
    }

    /// A note from the running transform.
    pub fn note(
        &self,
        logical_id: Option<&str>,
        kind: NoteKind,
        message: impl Into<String>,
    ) -> Note {
        Note {
            transform: self.doc.id.clone(),
            logical_id: logical_id.map(str::to_string),
            kind,
            message: message.into(),
        }
    }
}

/// Logic a document cannot express, named by a document's `action`.
pub trait Action: Send + Sync {
    /// Proposes changes to `template`. `selected` are the resources the document's `select`
    /// chose (after `unless` and opt-outs); an action without a `select` gets none and finds
    /// its own resources.
    fn propose(&self, template: &Value, selected: &[String], ctx: &Context) -> Result<Proposal>;
}

/// The result of hardening one template.
#[derive(Debug, Clone, Default)]
pub struct Hardened {
    pub template: Value,
    pub applied: Vec<Applied>,
    pub notes: Vec<Note>,
    /// The template's resources as read.
    pub original: Original,
}

/// Reads the template of `assembly.stacks[index]` and runs every enabled transform on it.
pub fn harden_stack(
    assembly: &Assembly,
    index: usize,
    config: &Config,
    registry: &Registry,
) -> Result<Hardened> {
    let template = assembly.read_template(index)?;
    harden_template(assembly, index, template.value, config, registry)
}

/// Runs every enabled transform on `template`, the template of `assembly.stacks[index]`.
///
/// The tree is hardened in place, not copied: what the engine and the review need of the
/// template as read is kept in [`Hardened::original`] first.
pub fn harden_template(
    assembly: &Assembly,
    index: usize,
    template: Value,
    config: &Config,
    registry: &Registry,
) -> Result<Hardened> {
    let settings = config.for_environment(&assembly.stacks[index].environment);
    harden_template_in(assembly, index, template, config, &settings, registry)
}

/// [`harden_template`] with the stack's settings merged already
/// ([`Config::for_environment`]): the stacks of an assembly share a few environments.
pub(crate) fn harden_template_in(
    assembly: &Assembly,
    index: usize,
    template: Value,
    config: &Config,
    (env, env_keys): &(EnvConfig, Vec<String>),
    registry: &Registry,
) -> Result<Hardened> {
    let stack = &assembly.stacks[index];
    let optouts = optout::OptOuts::read(&template, config, registry)?;
    let mut out = Hardened {
        original: Original::of(&template),
        template,
        ..Default::default()
    };
    // Equal record texts kept once: most projects of a pipeline get the same values.
    let mut texts = change::Texts::default();
    for transform in registry.enabled(config) {
        let ctx = Context {
            assembly,
            original: &out.original,
            index,
            stack,
            env,
            env_keys,
            config,
            doc: &transform.compiled.doc,
        };
        let id = transform.id();
        let document::Selection {
            chosen: mut selected,
            skipped,
        } = transform.compiled.select_in(&mut out.template)?;
        for (logical_id, note) in skipped {
            out.notes
                .push(ctx.note(Some(&logical_id), NoteKind::Skipped, note));
        }
        selected.retain(
            |logical_id| match optouts.reason(&out.template, logical_id, id) {
                Some(reason) => {
                    out.notes
                        .push(ctx.note(Some(logical_id), NoteKind::OptOut, reason));
                    false
                }
                None => true,
            },
        );
        let mut proposal = match transform.action {
            Some(action) => action.propose(&out.template, &selected, &ctx)?,
            None => Proposal {
                changes: transform.compiled.operations(&selected),
                notes: Vec::new(),
            },
        };
        out.notes.append(&mut proposal.notes);
        proposal.changes.sort_by(|a, b| a.pointer.cmp(&b.pointer));
        let enforce = config.transforms.enforce.iter().any(|e| e == id);
        let may_replace = config.allow_replacement.iter().any(|e| e == id);
        out.applied.reserve(proposal.changes.len());
        for mut change in proposal.changes {
            let verdict = replacement::check(&out.original, &change, may_replace);
            if let Some(replacement::Verdict::Refuse(message)) = &verdict {
                // Only refuse what would change something: a no-op is not a replacement. The
                // trial runs on a copy of the one resource (the guard only looks at resources
                // as read, so the change is under `/Resources/ID`).
                let mut trial = serde_json::json!({ "Resources": {} });
                if let Some(resource) = out.template["Resources"].get(&change.logical_id) {
                    trial["Resources"][&change.logical_id] = resource.clone();
                }
                if matches!(
                    apply(&mut trial, &change, enforce, id)?,
                    Outcome::Applied { .. }
                ) {
                    out.notes.push(ctx.note(
                        Some(&change.logical_id),
                        NoteKind::Refused,
                        message.clone(),
                    ));
                }
                continue;
            }
            let warning = verdict.map(replacement::Verdict::message);
            let value = std::mem::take(&mut change.value);
            match apply_value(&mut out.template, &change, value, enforce, id)? {
                Outcome::Unchanged => {}
                Outcome::LeftAlone(message) => {
                    out.notes
                        .push(ctx.note(Some(&change.logical_id), NoteKind::LeftAlone, message))
                }
                Outcome::Applied { old, new, enforced } => {
                    let resource = out
                        .template
                        .field("Resources")
                        .and_then(|r| r.get(&change.logical_id));
                    // The change is done with: the record takes its strings.
                    let mut warnings = std::mem::take(&mut change.warnings);
                    warnings.extend(warning);
                    out.applied.push(Applied {
                        transform: id.to_string(),
                        logical_id: std::mem::take(&mut change.logical_id),
                        construct_path: resource
                            .and_then(|r| r.at("/Metadata/aws:cdk:path"))
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        resource_type: resource
                            .and_then(|r| r.field("Type"))
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        pointer: std::mem::take(&mut change.pointer),
                        op: change.op,
                        old: old.map(|old| texts.share(old)),
                        new: texts.share(new),
                        reason: std::mem::take(&mut change.reason),
                        enforced,
                        warnings,
                    });
                }
            }
        }
    }
    out.notes.sort();
    out.notes.dedup();
    Ok(out)
}

/// What applying one change did.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Unchanged,
    LeftAlone(String),
    Applied {
        old: Option<JsonText>,
        new: JsonText,
        enforced: bool,
    },
}

/// Applies one change to a template. Never removes anything; see [`Op`].
pub fn apply(
    template: &mut Value,
    change: &Change,
    enforce: bool,
    transform: &str,
) -> Result<Outcome> {
    apply_value(template, change, change.value.clone(), enforce, transform)
}

/// [`apply`] with the change's value given up (`value`), so the tree takes it instead of a
/// copy: the engine applies thousands of changes to a large template, and each proposal
/// holds its values until they are applied.
fn apply_value(
    template: &mut Value,
    change: &Change,
    value: Value,
    enforce: bool,
    transform: &str,
) -> Result<Outcome> {
    // Looked at in place; the value replaced is taken out of the tree by `set`, not copied.
    let existing = template.at(&change.pointer);
    let describe = |v: &Value| {
        let s = v.to_string();
        if s.len() > 80 {
            format!(
                "{}…",
                &s[..s.char_indices().nth(77).map(|(i, _)| i).unwrap_or(s.len())]
            )
        } else {
            s
        }
    };
    let new = match (change.op, existing) {
        (_, None) => value,
        (Op::SetIfAbsent | Op::AddResource, Some(old)) => {
            if *old == value {
                return Ok(Outcome::Unchanged);
            }
            return Ok(Outcome::LeftAlone(format!(
                "`{}` is already set to {}; left alone",
                change.pointer,
                describe(old)
            )));
        }
        (Op::Enforce, Some(old)) => {
            if *old == value {
                return Ok(Outcome::Unchanged);
            }
            if !enforce {
                return Ok(Outcome::LeftAlone(format!(
                    "`{}` is set explicitly to {} where the rule wants {}; left alone (list `{transform}` in `transforms.enforce` to override)",
                    change.pointer,
                    describe(old),
                    describe(&value)
                )));
            }
            // A failed set fails the whole run, so a half-made change is never written.
            let new = JsonText::of(&value);
            let old = set(template, change, value, transform)?;
            return Ok(Outcome::Applied {
                old: old.as_ref().map(JsonText::of),
                new,
                enforced: true,
            });
        }
        (Op::Upgrade, Some(old)) => {
            if *old == value {
                return Ok(Outcome::Unchanged);
            }
            value
        }
        (Op::Merge, Some(old)) => {
            if !old.is_object() || !value.is_object() {
                return Ok(Outcome::LeftAlone(format!(
                    "`{}` is {}, not an object to merge into; left alone",
                    change.pointer,
                    describe(old)
                )));
            }
            if !adds_any(old, &value) {
                return Ok(Outcome::Unchanged);
            }
            // Merged in place: the record keeps the value before as text.
            let before = JsonText::of(old);
            let target = template.at_mut(&change.pointer).expect("found above");
            merge_absent(target, &value);
            return Ok(Outcome::Applied {
                old: Some(before),
                new: JsonText::of(target),
                enforced: false,
            });
        }
        (Op::AppendUnique, Some(old)) => {
            // A single value is a list of one.
            let items: &[Value] = match old {
                Value::Array(a) => a,
                other => std::slice::from_ref(other),
            };
            let mut missing: Vec<Value> = Vec::new();
            if let Value::Array(wanted) = value {
                for item in wanted {
                    if !items.contains(&item) && !missing.contains(&item) {
                        missing.push(item);
                    }
                }
            }
            if missing.is_empty() {
                return Ok(Outcome::Unchanged);
            }
            // Appended in place: the record keeps the value before as text, and the value
            // after as that text with the items appended.
            let before = JsonText::of(old);
            let was_list = old.is_array();
            let after = JsonText::appended(&before, &missing);
            let target = template.at_mut(&change.pointer).expect("found above");
            if !was_list {
                *target = Value::Array(vec![target.take()]);
            }
            let items = target.as_array_mut().expect("made an array above");
            debug_assert_eq!(after, {
                let mut made = items.clone();
                made.extend(missing.iter().cloned());
                JsonText::of(&Value::Array(made))
            });
            items.extend(missing);
            return Ok(Outcome::Applied {
                old: Some(before),
                new: after,
                enforced: false,
            });
        }
    };
    // The record keeps the values as text; the tree takes the new value itself.
    let text = JsonText::of(&new);
    let old = set(template, change, new, transform)?;
    Ok(Outcome::Applied {
        old: old.as_ref().map(JsonText::of),
        new: text,
        enforced: false,
    })
}

/// Whether [`merge_absent`] would add anything: a key of `over` that `base` lacks, at any
/// depth where both have an object.
fn adds_any(base: &Value, over: &Value) -> bool {
    let (Value::Object(b), Value::Object(o)) = (base, over) else {
        return false;
    };
    o.iter()
        .any(|(k, v)| b.get(k).is_none_or(|existing| adds_any(existing, v)))
}

/// Adds every key of `over` that `base` lacks, recursing into objects present in both.
pub fn merge_absent(base: &mut Value, over: &Value) {
    if let (Value::Object(b), Value::Object(o)) = (base, over) {
        for (k, v) in o {
            match b.get_mut(k) {
                Some(existing) => merge_absent(existing, v),
                None => {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

/// Sets the value at the change's pointer, creating objects on the way; returns the value it
/// replaces.
fn set(
    template: &mut Value,
    change: &Change,
    value: Value,
    transform: &str,
) -> Result<Option<Value>> {
    let tokens: Vec<Cow<str>> = change::pointer_segments(&change.pointer).collect();
    let Some((last, parents)) = tokens.split_last() else {
        return Err(Error::Transform {
            transform: transform.to_string(),
            pointer: change.pointer.clone(),
            problem: "cannot replace the whole template".into(),
        });
    };
    let mut node = template;
    for token in parents {
        let next = match node {
            Value::Object(map) => {
                // Looked up first: most parents exist, and a new key costs a copy of the token.
                if !map.contains_key(token.as_ref()) {
                    map.insert(token.to_string(), Value::Object(Default::default()));
                }
                map.get_mut(token.as_ref())
                    .expect("present or just inserted")
            }
            Value::Array(items) => {
                match change::array_index(token).and_then(|i| items.get_mut(i)) {
                    Some(item) => item,
                    None => {
                        return Err(Error::Transform {
                            transform: transform.to_string(),
                            pointer: change.pointer.clone(),
                            problem: format!("no array item `{token}`"),
                        })
                    }
                }
            }
            _ => {
                return Err(Error::Transform {
                    transform: transform.to_string(),
                    pointer: change.pointer.clone(),
                    problem: format!("`{token}` is inside a value that is not an object"),
                })
            }
        };
        node = next;
    }
    match node {
        Value::Object(map) => match map.get_mut(last.as_ref()) {
            Some(slot) => Ok(Some(std::mem::replace(slot, value))),
            None => Ok(map.insert(last.to_string(), value)),
        },
        // Indexes as look-ups read them (`01` and `+1` are not indexes), so `set` never
        // writes where `apply` saw nothing.
        Value::Array(items) => match change::array_index(last) {
            Some(i) if i < items.len() => Ok(Some(std::mem::replace(&mut items[i], value))),
            Some(i) if i == items.len() => {
                items.push(value);
                Ok(None)
            }
            _ if last == "-" => {
                items.push(value);
                Ok(None)
            }
            _ => Err(Error::Transform {
                transform: transform.to_string(),
                pointer: change.pointer.clone(),
                problem: format!("no array item `{last}`"),
            }),
        },
        _ => Err(Error::Transform {
            transform: transform.to_string(),
            pointer: change.pointer.clone(),
            problem: "the parent is not an object".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `apply` decides "unchanged" before copying anything: the check agrees with merging.
    #[test]
    fn issue_8_adds_any_agrees_with_merge_absent() {
        let cases = [
            (json!({"A": 1}), json!({"A": 2})),
            (json!({"A": 1}), json!({"B": 2})),
            (json!({"A": {"X": 1}}), json!({"A": {"X": 2}})),
            (json!({"A": {"X": 1}}), json!({"A": {"Y": 2}})),
            (json!({"A": 1}), json!({"A": {"Y": 2}})),
            (json!({"A": {"X": 1}}), json!({})),
            (json!({}), json!({"A": null})),
            (json!([1]), json!({"A": 1})),
        ];
        for (base, over) in cases {
            let mut merged = base.clone();
            merge_absent(&mut merged, &over);
            assert_eq!(adds_any(&base, &over), merged != base, "{base} + {over}");
        }
    }

    fn change(op: Op, pointer: &str, value: Value) -> Change {
        Change::new("B", pointer, op, value, "r")
    }

    #[test]
    fn set_if_absent_sets_once_and_respects_the_app() {
        let mut t = json!({"Resources": {"B": {"Type": "AWS::S3::Bucket"}}});
        let c = change(Op::SetIfAbsent, "/Resources/B/Properties/X", json!(1));
        assert!(matches!(
            apply(&mut t, &c, false, "t").unwrap(),
            Outcome::Applied { old: None, .. }
        ));
        assert_eq!(t.at("/Resources/B/Properties/X"), Some(&json!(1)));
        assert_eq!(apply(&mut t, &c, false, "t").unwrap(), Outcome::Unchanged);
        let other = change(Op::SetIfAbsent, "/Resources/B/Properties/X", json!(2));
        assert!(matches!(
            apply(&mut t, &other, true, "t").unwrap(),
            Outcome::LeftAlone(_)
        ));
        assert_eq!(t.at("/Resources/B/Properties/X"), Some(&json!(1)));
    }

    /// `01` and `+1` are not array indexes to look-ups, so they are not to `set` either: a
    /// set-if-absent through one once overwrote item 1, which the look-up had not seen.
    #[test]
    fn a_loose_array_index_is_an_error_not_a_silent_overwrite() {
        for index in ["01", "+1"] {
            let mut t = json!({"Resources": {"B": {"Properties": {"L": [{"K": 0}, {"K": 1}]}}}});
            let before = t.clone();
            for pointer in [
                format!("/Resources/B/Properties/L/{index}/K"),
                format!("/Resources/B/Properties/L/{index}"),
            ] {
                let c = change(Op::SetIfAbsent, &pointer, json!(2));
                let err = apply(&mut t, &c, false, "t").unwrap_err().to_string();
                assert!(err.contains(&format!("no array item `{index}`")), "{err}");
                assert_eq!(t, before);
            }
        }
    }

    #[test]
    fn enforce_overrides_only_when_configured() {
        let mut t = json!({"Resources": {"B": {"Properties": {"S": "Suspended"}}}});
        let c = change(Op::Enforce, "/Resources/B/Properties/S", json!("Enabled"));
        assert!(
            matches!(apply(&mut t, &c, false, "t").unwrap(), Outcome::LeftAlone(m) if m.contains("transforms.enforce"))
        );
        assert_eq!(t.at("/Resources/B/Properties/S"), Some(&json!("Suspended")));
        let out = apply(&mut t, &c, true, "t").unwrap();
        assert_eq!(
            out,
            Outcome::Applied {
                old: Some(JsonText::of(&json!("Suspended"))),
                new: JsonText::of(&json!("Enabled")),
                enforced: true
            }
        );
    }

    #[test]
    fn merge_adds_only_absent_keys() {
        let mut t = json!({"R": {"a": 1, "o": {"x": 1}}});
        let c = change(
            Op::Merge,
            "/R",
            json!({"a": 2, "b": 3, "o": {"x": 9, "y": 2}}),
        );
        apply(&mut t, &c, false, "t").unwrap();
        assert_eq!(t, json!({"R": {"a": 1, "o": {"x": 1, "y": 2}, "b": 3}}));
        assert_eq!(apply(&mut t, &c, false, "t").unwrap(), Outcome::Unchanged);
    }

    #[test]
    fn append_unique_keeps_a_single_depends_on() {
        let mut t = json!({"Resources": {"F": {"DependsOn": "Role"}}});
        let c = change(
            Op::AppendUnique,
            "/Resources/F/DependsOn",
            json!(["Policy"]),
        );
        apply(&mut t, &c, false, "t").unwrap();
        assert_eq!(
            t.at("/Resources/F/DependsOn"),
            Some(&json!(["Role", "Policy"]))
        );
        assert_eq!(apply(&mut t, &c, false, "t").unwrap(), Outcome::Unchanged);
        let same = change(Op::AppendUnique, "/Resources/F/DependsOn", json!(["Role"]));
        let mut t2 = json!({"Resources": {"F": {"DependsOn": "Role"}}});
        assert_eq!(
            apply(&mut t2, &same, false, "t").unwrap(),
            Outcome::Unchanged
        );
    }

    #[test]
    fn setting_inside_a_scalar_is_an_error_naming_the_pointer() {
        let mut t = json!({"Resources": {"B": {"Properties": "oops"}}});
        let c = change(Op::SetIfAbsent, "/Resources/B/Properties/X", json!(1));
        let err = apply(&mut t, &c, false, "bucket-versioning").unwrap_err();
        assert!(
            err.to_string().contains("/Resources/B/Properties/X"),
            "{err}"
        );
    }
}
