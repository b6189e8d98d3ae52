//! `kms`: everything is encrypted with a customer-managed KMS key, and everyone who used the
//! resources can still use them.
//!
//! The key comes from the environment's `kms` setting: a central key by ARN (`keyArn`), a central
//! key whose ARN is in SSM Parameter Store (`ssm`, read at deploy time through a template
//! parameter), or one key added to each template (`create`). The action
//!
//! 1. finds what to encrypt ([`targets`]), leaving alone buckets that must stay SSE-S3
//!    ([`exempt`]) and resources that already use a customer-managed key;
//! 2. adds the key (or the parameter), with a key policy for the services that use it ([`key`]);
//! 3. grants the key to the IAM policies and service roles that use the encrypted resources
//!    ([`grants`]).
//!
//! Changes to create-only properties (EFS) are proposed like any other; the engine's replacement
//! guard refuses them on stateful resources, and this action then neither creates a key nor
//! grants anything for them.

mod exempt;
mod grants;
mod key;
mod targets;

use crate::transform::cfn::Field;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::transform::replacement::{self, Verdict};
use crate::transform::{cfn, Action, Change, Context, NoteKind, Op, Proposal};
use grants::{RoleUse, DECRYPT, ENCRYPT_DECRYPT};
use targets::{assess, KeyRef, Kind};

pub use key::{ALIAS_ID, KEY_ID, PARAMETER_ID};

pub struct Kms;

/// Where the key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Arn { arn: String, region: String },
    Ssm(String),
    Create,
}

impl Source {
    /// The environment's key source; `None` when `kms` sets none. `keyArn` wins over `ssm`,
    /// which wins over `create` (a more specific environment entry can name a central key where
    /// `*` creates one).
    fn from_config(ctx: &Context) -> Result<Option<Source>> {
        let Some(settings) = &ctx.env.kms else {
            return Ok(None);
        };
        let invalid = |problem: String| ctx.invalid_setting(problem);
        if let Some(arn) = &settings.key_arn {
            let region = key_arn_region(arn).ok_or_else(|| {
                invalid(format!(
                    "`kms.keyArn` is `{arn}`, which is not a KMS key ARN (`arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID`); an alias ARN cannot be granted in IAM policies"
                ))
            })?;
            return Ok(Some(Source::Arn {
                arn: arn.clone(),
                region: region.to_string(),
            }));
        }
        if let Some(name) = &settings.ssm {
            if !crate::transform::cfn::is_ssm_parameter_name(name) {
                return Err(invalid(format!(
                    "`kms.ssm` is `{name}`, which is not an SSM parameter name (letters, digits, `_.-/`)"
                )));
            }
            return Ok(Some(Source::Ssm(name.clone())));
        }
        Ok((settings.create == Some(true)).then_some(Source::Create))
    }

    /// The value resources name the key with.
    fn value(&self) -> Value {
        match self {
            Source::Arn { arn, .. } => Value::String(arn.clone()),
            Source::Ssm(_) => cfn::ref_to(PARAMETER_ID),
            Source::Create => cfn::getatt(KEY_ID, "Arn"),
        }
    }

    /// How the review names the key.
    fn label(&self) -> String {
        match self {
            Source::Arn { arn, .. } => format!("the key `{arn}`"),
            Source::Ssm(name) => format!("the key named by SSM parameter `{name}`"),
            Source::Create => format!("the key `{KEY_ID}` of this stack"),
        }
    }
}

/// Encrypted resources another stack may use: through an export (CDK's cross-stack
/// references), as an output of a nested stack (its parent reads it), or as a parameter of a
/// nested stack (CDK passes a parent's resource to a nested stack that uses it). The roles that
/// use them there need the key too, and they are not in this template, so the review says so.
fn exported_notes(
    template: &Value,
    encrypted: &[(String, Kind)],
    key: &str,
    ctx: &Context,
    proposal: &mut Proposal,
) {
    let need = format!(
        "now also need {key} (`kms:Decrypt` to read; `kms:GenerateDataKey*` and `kms:Decrypt` to write); grant it there"
    );
    let mut note = |refs: Vec<String>, how: &dyn Fn(&str) -> String| {
        for (id, _) in encrypted.iter().filter(|(id, _)| refs.contains(id)) {
            proposal.notes.push(ctx.note(
                Some(id),
                NoteKind::ActionRequired,
                format!("{}: {need}", how(id)),
            ));
        }
    };
    let nested = ctx.stack.nested.is_some();
    for (name, output) in template
        .field("Outputs")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let refs = cfn::referenced_ids(output.field("Value").unwrap_or(&Value::Null));
        if output.field("Export").is_some() {
            note(refs, &|id| {
                format!("`{id}` is exported (output `{name}`): roles in other stacks that use it through `Fn::ImportValue`")
            });
        } else if nested {
            note(refs, &|id| {
                format!("`{id}` is an output of this nested stack (`{name}`): roles in its parent stack that use it")
            });
        }
    }
    for (stack_id, resource) in cfn::resources_of(template, "AWS::CloudFormation::Stack") {
        for (parameter, value) in cfn::prop(resource, "Parameters")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            note(cfn::referenced_ids(value), &|id| {
                format!("`{id}` is passed to nested stack `{stack_id}` (parameter `{parameter}`): roles there that use it")
            });
        }
    }
}

/// The region of `arn:PARTITION:kms:REGION:ACCOUNT:key/ID`.
fn key_arn_region(arn: &str) -> Option<&str> {
    crate::transform::cfn::Arn::regional(arn)
        .filter(|a| {
            a.service == "kms"
                && a.resource
                    .strip_prefix("key/")
                    .is_some_and(|id| !id.is_empty() && !id.contains('/'))
        })
        .map(|a| a.region)
}

impl Action for Kms {
    fn propose(&self, template: &Value, selected: &[String], ctx: &Context) -> Result<Proposal> {
        let mut proposal = Proposal::default();
        let stack_region = ctx.stack.environment.region.as_deref();

        let exempt = exempt::exempt_buckets(template);
        let mut candidates: Vec<(&String, Kind, &Value)> = Vec::new();
        for id in selected {
            let Some(resource) = cfn::resource(template, id) else {
                continue;
            };
            let Some(kind) = resource
                .field("Type")
                .and_then(Value::as_str)
                .and_then(Kind::of)
            else {
                continue;
            };
            if kind == Kind::Bucket {
                if let Some(reason) = exempt.get(id) {
                    proposal
                        .notes
                        .push(ctx.note(Some(id), NoteKind::Skipped, *reason));
                    continue;
                }
            }
            candidates.push((id, kind, resource));
        }
        log_retention_notes(template, ctx, &mut proposal);

        let unset = Value::Null;
        let unset_key = KeyRef {
            value: &unset,
            region: stack_region,
        };
        let needs_key = candidates
            .iter()
            .any(|(id, kind, r)| !assess(id, *kind, r, unset_key).changes.is_empty());
        let source = match Source::from_config(ctx)? {
            Some(source) => source,
            None if needs_key => {
                return Err(ctx.missing_setting("kms.keyArn`, `kms.ssm` or `kms.create"));
            }
            None => return Ok(proposal),
        };
        let key_region = match &source {
            Source::Arn { region, .. } => Some(region.as_str()),
            _ => stack_region,
        };
        if let (Some(key_region), Some(stack_region)) = (key_region, stack_region) {
            if key_region != stack_region && needs_key {
                return Err(Error::Environment {
                    environment: ctx.environment(),
                    problem: format!(
                        "`kms.keyArn` is a key in `{key_region}`, but this stack deploys to `{stack_region}`; a KMS key only encrypts resources of its own region: set `kms` for `*/{stack_region}` (or `ACCOUNT/{stack_region}`)"
                    ),
                });
            }
        }
        let key = source.value();
        let key_ref = KeyRef {
            value: &key,
            region: key_region,
        };

        // 1. What to encrypt.
        let may_replace = ctx.config.allow_replacement.contains(&ctx.doc.id);
        let mut encrypted: Vec<(String, Kind)> = Vec::new();
        for (id, kind, resource) in &candidates {
            let assessment = assess(id, *kind, resource, key_ref);
            for message in assessment.skipped {
                proposal
                    .notes
                    .push(ctx.note(Some(id), NoteKind::Skipped, message));
            }
            let refused = assessment.changes.iter().any(|c| {
                matches!(
                    replacement::check(ctx.original, c, may_replace),
                    Some(Verdict::Refuse(_))
                )
            });
            if assessment.ours || (!assessment.changes.is_empty() && !refused) {
                encrypted.push(((*id).clone(), *kind));
            }
            proposal.changes.extend(assessment.changes);
        }
        if encrypted.is_empty() {
            return Ok(proposal);
        }

        // 2. The key, and who outside the template it must let in.
        let uses = key::service_uses(template, &encrypted);
        let label = source.label();
        exported_notes(template, &encrypted, &label, ctx, &mut proposal);
        let mut role_uses = role_uses(template, &encrypted);
        let key_principals = outside_principals(
            template,
            &encrypted,
            &source,
            ctx,
            &mut role_uses,
            &mut proposal,
        );
        match &source {
            Source::Create => {
                proposal.push(Change::new(
                    KEY_ID,
                    format!("/Resources/{KEY_ID}"),
                    Op::AddResource,
                    key::key_resource(&uses, &key_principals),
                    "add the stack's customer-managed KMS key (rotating, retained, policy for the services that use it)",
                ));
                proposal.push(Change::new(
                    ALIAS_ID,
                    format!("/Resources/{ALIAS_ID}"),
                    Op::AddResource,
                    key::alias_resource(),
                    "name the key `alias/cdk-harden/<stack name>`",
                ));
            }
            Source::Ssm(name) => {
                proposal.push(Change::new(
                    &encrypted[0].0,
                    format!("/Parameters/{PARAMETER_ID}"),
                    Op::AddResource,
                    key::parameter(name),
                    format!("read the KMS key ARN from SSM parameter `{name}` at deploy time"),
                ));
            }
            Source::Arn { .. } => {}
        }
        if source != Source::Create {
            proposal.notes.push(ctx.note(
                None,
                NoteKind::ActionRequired,
                format!(
                    "{label} is managed outside this stack; its key policy must allow {}",
                    key::central_requirements(
                        &uses,
                        ctx.stack.environment.account.as_deref(),
                        stack_region
                    )
                ),
            ));
        }

        // 3. The grants.
        let grant = grants::Grant {
            key: &key,
            label: &label,
            encrypted: &encrypted,
        };
        grant.propose(template, selected, &role_uses, ctx, &mut proposal);
        Ok(proposal)
    }
}

/// The principals other than services that resource policies of encrypted resources let in:
/// roles of the template get the key through their IAM policies (added to `role_uses`);
/// principals given by ARN get it in the created key's policy (returned); the review names
/// them, and anyone this stack cannot grant.
fn outside_principals(
    template: &Value,
    encrypted: &[(String, Kind)],
    source: &Source,
    ctx: &Context,
    role_uses: &mut Vec<RoleUse>,
    proposal: &mut Proposal,
) -> Vec<key::KeyPrincipals> {
    let label = source.label();
    let mut key_principals = Vec::new();
    for found in key::policy_principals(template, encrypted) {
        let list = |items: &[String]| items.join(", ");
        let resources: Vec<String> = found.resources.iter().cloned().collect();
        let actions = grants::kms_actions(found.mask).join(", ");
        let mut external = Vec::new();
        let mut unreachable: Vec<String> = found.others.iter().cloned().collect();
        for principal in &found.aws {
            let role = cfn::getatt_target(principal)
                .map(|(id, _)| id)
                .or_else(|| cfn::ref_target(principal))
                .filter(|id| cfn::type_of(template, id) == Some("AWS::IAM::Role"));
            if role.is_some() {
                role_uses.push(RoleUse {
                    role: principal.clone(),
                    mask: found.mask,
                    why: format!("{} (through `{}`)", list(&resources), found.policy),
                });
            } else if cfn::referenced_ids(principal).is_empty() {
                external.push(principal.clone());
            } else {
                unreachable.push(key::quote(principal));
            }
        }
        if !external.is_empty() {
            let names: Vec<String> = external.iter().map(key::quote).collect();
            let message = if *source == Source::Create {
                key_principals.push(key::KeyPrincipals {
                    sid: format!("AllowPrincipalsOf{}", found.policy),
                    principals: external.clone(),
                    mask: found.mask,
                });
                format!(
                    "lets {} use {}, now encrypted with {label}; the key policy allows them {actions}, and a principal of another account also needs these actions on the key in its own IAM policies",
                    list(&names),
                    list(&resources)
                )
            } else {
                format!(
                    "lets {} use {}, now encrypted with {label}; they need {actions} on that key, in its key policy and (for another account) in their own IAM policies",
                    list(&names),
                    list(&resources)
                )
            };
            proposal
                .notes
                .push(ctx.note(Some(&found.policy), NoteKind::ActionRequired, message));
        }
        if !unreachable.is_empty() {
            proposal.notes.push(ctx.note(
                Some(&found.policy),
                NoteKind::ActionRequired,
                format!(
                    "lets {} use {}, now encrypted with {label}; they need {actions} on that key, which this stack cannot grant",
                    list(&unreachable),
                    list(&resources)
                ),
            ));
        }
    }
    key_principals
}

/// A `LogRetention` custom resource creates its log group outside the template, where no
/// property can encrypt it: the review says so.
fn log_retention_notes(template: &Value, ctx: &Context, proposal: &mut Proposal) {
    for (id, custom) in cfn::resources_of(template, "Custom::LogRetention") {
        let name = cfn::prop(custom, "LogGroupName").map(|n| match n {
            Value::String(s) => format!("`{s}`"),
            other => format!("`{other}`"),
        });
        proposal.notes.push(ctx.note(
            Some(id),
            NoteKind::Skipped,
            format!(
                "the log group {} is created by this LogRetention custom resource, not by the template, so it cannot be encrypted here; give the function a `logGroup` in the app instead",
                name.unwrap_or_else(|| "it manages".to_string())
            ),
        ));
    }
}

/// The roles that use the key through a service: a function's role decrypts its environment
/// variables; a build's service role and a pipeline's roles encrypt and decrypt artifacts.
fn role_uses(template: &Value, encrypted: &[(String, Kind)]) -> Vec<RoleUse> {
    let mut out = Vec::new();
    for (id, kind) in encrypted {
        let Some(resource) = cfn::resource(template, id) else {
            continue;
        };
        let mut push = |role: Option<&Value>, mask: u8, why: String| {
            if let Some(role) = role {
                out.push(RoleUse {
                    role: role.clone(),
                    mask,
                    why,
                });
            }
        };
        match kind {
            Kind::Function => push(
                cfn::prop(resource, "Role"),
                DECRYPT,
                format!("the environment variables of `{id}`"),
            ),
            Kind::Project => push(
                cfn::prop(resource, "ServiceRole"),
                ENCRYPT_DECRYPT,
                format!("the build artifacts of `{id}`"),
            ),
            Kind::Pipeline => {
                push(
                    cfn::prop(resource, "RoleArn"),
                    ENCRYPT_DECRYPT,
                    format!("the artifacts of `{id}`"),
                );
                let stages = cfn::prop(resource, "Stages").and_then(Value::as_array);
                for stage in stages.into_iter().flatten() {
                    let actions = stage.field("Actions").and_then(Value::as_array);
                    for action in actions.into_iter().flatten() {
                        push(
                            action.field("RoleArn"),
                            ENCRYPT_DECRYPT,
                            format!("the artifacts of `{id}`"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_arns_are_checked() {
        assert_eq!(
            key_arn_region(
                "arn:aws:kms:eu-west-1:444444444444:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            ),
            Some("eu-west-1")
        );
        assert_eq!(
            key_arn_region("arn:aws-cn:kms:cn-north-1:444444444444:key/x"),
            Some("cn-north-1")
        );
        assert_eq!(
            key_arn_region("arn:aws:kms:eu-west-1:444444444444:alias/app"),
            None
        );
        assert_eq!(key_arn_region("1234abcd-12ab-34cd-56ef-1234567890ab"), None);
        assert_eq!(key_arn_region("arn:aws:kms:eu-west-1:4444:key/x"), None);
    }
}
