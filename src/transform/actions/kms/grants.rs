//! Grants: who must be able to use the key once a resource is encrypted with it.
//!
//! Every IAM policy of the template (`AWS::IAM::Policy`, `AWS::IAM::ManagedPolicy`, the inline
//! `Policies` of `AWS::IAM::Role`) whose `Allow` statements reach an encrypted resource — by
//! `Ref`/`GetAtt`/`Fn::Join`/`Fn::Sub` in `Resource`, or by `"*"` — gets one statement, Sid
//! [`GRANT_SID`], with the KMS actions the data actions need: reading needs `kms:Decrypt`,
//! writing `kms:Encrypt`, `kms:ReEncrypt*`, `kms:GenerateDataKey*` (and `kms:Decrypt` where the
//! service needs it for writes too: S3 multipart uploads, SQS, SNS, DynamoDB, Secrets Manager).
//! Roles that use the key directly (a function's role for its environment variables, a build's
//! service role, a pipeline's roles) get it in the policy attached to them, or in an inline
//! policy named [`GRANT_SID`]. A role that is not in the template gets a note instead.

use crate::transform::cfn::Field;
use crate::transform::change::Pointer;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::exempt::statements;
use super::targets::Kind;
use crate::transform::cfn;
use crate::transform::change::pointer_escape;
use crate::transform::{Change, Context, NoteKind, Op, Proposal};

/// The Sid of the statement added to policies, and the name of inline policies added to roles.
pub const GRANT_SID: &str = "CdkHardenKms";

pub const DECRYPT: u8 = 1;
pub const ENCRYPT: u8 = 2;
pub const GENERATE: u8 = 4;
pub const REENCRYPT: u8 = 8;
/// Everything a service role that encrypts and decrypts with the key needs.
pub const ENCRYPT_DECRYPT: u8 = DECRYPT | ENCRYPT | GENERATE | REENCRYPT;

const ACTIONS: [(u8, &str); 4] = [
    (DECRYPT, "kms:Decrypt"),
    (ENCRYPT, "kms:Encrypt"),
    (GENERATE, "kms:GenerateDataKey*"),
    (REENCRYPT, "kms:ReEncrypt*"),
];

/// The KMS actions of a mask, sorted.
pub fn kms_actions(mask: u8) -> Vec<&'static str> {
    ACTIONS
        .iter()
        .filter(|(bit, _)| mask & bit != 0)
        .map(|(_, a)| *a)
        .collect()
}

/// The mask of a statement's `Action` (only the actions this module grants count).
fn mask_of(actions: Option<&Value>) -> u8 {
    let names: Vec<&str> = match actions {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    ACTIONS
        .iter()
        .filter(|(_, a)| names.contains(a))
        .fold(0, |m, (bit, _)| m | bit)
}

/// The data actions of a service that read or write encrypted data.
struct Service {
    prefix: &'static str,
    reads: &'static [&'static str],
    writes: &'static [&'static str],
    /// Whether writers need `kms:Decrypt` too.
    write_decrypts: bool,
}

const S3: Service = Service {
    prefix: "s3",
    reads: &["GetObject", "GetObjectVersion", "GetObjectAttributes"],
    writes: &["PutObject", "ReplicateObject"],
    write_decrypts: true,
};
const DYNAMODB: Service = Service {
    prefix: "dynamodb",
    reads: &[
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "GetRecords",
        "PartiQLSelect",
    ],
    writes: &[
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "PartiQLInsert",
        "PartiQLUpdate",
        "PartiQLDelete",
    ],
    write_decrypts: true,
};
const SQS: Service = Service {
    prefix: "sqs",
    reads: &["ReceiveMessage"],
    writes: &["SendMessage"],
    write_decrypts: true,
};
const SNS: Service = Service {
    prefix: "sns",
    reads: &[],
    writes: &["Publish"],
    write_decrypts: true,
};
const SECRETS: Service = Service {
    prefix: "secretsmanager",
    reads: &["GetSecretValue", "BatchGetSecretValue"],
    writes: &["PutSecretValue", "UpdateSecret"],
    write_decrypts: true,
};
const KINESIS: Service = Service {
    prefix: "kinesis",
    reads: &["GetRecords", "SubscribeToShard"],
    writes: &["PutRecord", "PutRecords"],
    write_decrypts: false,
};

/// The service whose data actions need the key of a resource of this kind; `None` where the
/// service uses the key itself (log groups, file systems) or only its own role does.
fn service(kind: Kind) -> Option<&'static Service> {
    match kind {
        Kind::Bucket => Some(&S3),
        Kind::Table => Some(&DYNAMODB),
        Kind::Queue => Some(&SQS),
        Kind::Topic => Some(&SNS),
        Kind::Secret => Some(&SECRETS),
        Kind::Stream => Some(&KINESIS),
        _ => None,
    }
}

/// A statement's `Action` or `NotAction` patterns.
pub enum Patterns {
    Action(Vec<String>),
    NotAction(Vec<String>),
}

pub fn action_patterns(statement: &Value) -> Patterns {
    let list = cfn::string_list;
    match statement.field("NotAction") {
        Some(not) => Patterns::NotAction(list(Some(not))),
        None => Patterns::Action(list(statement.field("Action"))),
    }
}

/// Whether the patterns allow `action` (IAM matching: case-insensitive, `*` and `?`).
pub fn covers(patterns: &Patterns, action: &str) -> bool {
    match patterns {
        Patterns::Action(list) => list.iter().any(|p| glob(p, action)),
        Patterns::NotAction(list) => !list.iter().any(|p| glob(p, action)),
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    // IAM actions are ASCII: match bytes without copying; anything else by characters.
    if pattern.is_ascii() && text.is_ascii() {
        return glob_in(pattern.as_bytes(), text.as_bytes(), |a, b| {
            a.eq_ignore_ascii_case(b)
        });
    }
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    glob_in(&p, &t, |a, b| a == b)
}

/// `*` and `?` wildcard matching of `t` by `p`, with `same` comparing items.
fn glob_in<T: Copy + PartialEq + From<u8>>(
    p: &[T],
    t: &[T],
    same: impl Fn(&T, &T) -> bool,
) -> bool {
    let (star_item, any_item) = (T::from(b'*'), T::from(b'?'));
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == any_item || same(&p[pi], &t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == star_item {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == star_item)
}

/// How a statement uses a resource of this kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    pub read: bool,
    pub write: bool,
}

pub fn access(statement: &Value, kind: Kind) -> Access {
    access_by(&action_patterns(statement), kind)
}

/// [`access`] by a statement's patterns, read once for all the kinds asked about.
fn access_by(patterns: &Patterns, kind: Kind) -> Access {
    let Some(service) = service(kind) else {
        return Access::default();
    };
    // Each action spelled `prefix:name` in one buffer, not a string apiece.
    let mut action = String::with_capacity(64);
    let mut any = |names: &[&str]| {
        names.iter().any(|a| {
            action.clear();
            action.push_str(service.prefix);
            action.push(':');
            action.push_str(a);
            covers(patterns, &action)
        })
    };
    Access {
        read: any(service.reads),
        write: any(service.writes),
    }
}

/// The KMS actions an IAM principal needs for this access.
fn identity_mask(access: Access, kind: Kind) -> u8 {
    let mut mask = 0;
    if access.read {
        mask |= DECRYPT;
    }
    if access.write {
        mask |= ENCRYPT | GENERATE | REENCRYPT;
        if service(kind).is_some_and(|s| s.write_decrypts) {
            mask |= DECRYPT;
        }
    }
    mask
}

/// One IAM policy document of the template.
struct Doc {
    logical_id: String,
    /// JSON pointer to the `PolicyDocument`.
    pointer: String,
    /// The template roles it is attached to.
    roles: Vec<String>,
    /// The policy name, for inline policies of roles.
    inline: Option<String>,
    policy_resource: bool,
}

fn documents(template: &Value) -> Vec<Doc> {
    let is_role = |id: &str| cfn::type_of(template, id) == Some("AWS::IAM::Role");
    let mut out = Vec::new();
    for (id, resource) in cfn::resources(template) {
        let kind = resource.field("Type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" => {
                let mut roles: Vec<String> = cfn::prop(resource, "Roles")
                    .map(cfn::referenced_ids)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| is_role(r))
                    .collect();
                if kind == "AWS::IAM::ManagedPolicy" {
                    for (role_id, role) in cfn::resources_of(template, "AWS::IAM::Role") {
                        let arns = cfn::prop(role, "ManagedPolicyArns")
                            .map(cfn::referenced_ids)
                            .unwrap_or_default();
                        if arns.iter().any(|a| a == id) && !roles.contains(role_id) {
                            roles.push(role_id.clone());
                        }
                    }
                }
                out.push(Doc {
                    logical_id: id.clone(),
                    pointer: format!(
                        "/Resources/{}/Properties/PolicyDocument",
                        pointer_escape(id)
                    ),
                    roles,
                    inline: None,
                    policy_resource: kind == "AWS::IAM::Policy",
                });
            }
            "AWS::IAM::Role" => {
                for (i, policy) in cfn::prop(resource, "Policies")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    out.push(Doc {
                        logical_id: id.clone(),
                        pointer: format!(
                            "/Resources/{}/Properties/Policies/{i}/PolicyDocument",
                            pointer_escape(id)
                        ),
                        roles: vec![id.clone()],
                        inline: Some(
                            policy
                                .field("PolicyName")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                        ),
                        policy_resource: false,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// A role that uses the key through a service (not through a policy statement).
#[derive(Debug, Clone)]
pub struct RoleUse {
    /// The role as the resource names it: `GetAtt Role.Arn`, a `Ref`, an ARN string…
    pub role: Value,
    pub mask: u8,
    /// What for, e.g. "the environment variables of `Handler`".
    pub why: String,
}

/// What one grant target needs, and why.
#[derive(Default)]
struct Need {
    mask: u8,
    why: BTreeSet<String>,
}

impl Need {
    fn add(&mut self, mask: u8, why: String) {
        self.mask |= mask;
        self.why.insert(why);
    }
}

/// The key to grant, and the resources it encrypts.
pub struct Grant<'a> {
    /// The key as resources name it.
    pub key: &'a Value,
    /// The key as the review names it.
    pub label: &'a str,
    /// The resources encrypted with the key, in template order.
    pub encrypted: &'a [(String, Kind)],
}

impl Grant<'_> {
    fn kind(&self, id: &str) -> Option<Kind> {
        self.encrypted
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, k)| *k)
    }

    /// Proposes the grants of the key to everyone who uses an encrypted resource.
    pub fn propose(
        &self,
        template: &Value,
        selected: &[String],
        role_uses: &[RoleUse],
        ctx: &Context,
        proposal: &mut Proposal,
    ) {
        propose(self, template, selected, role_uses, ctx, proposal)
    }
}

fn propose(
    grant: &Grant,
    template: &Value,
    selected: &[String],
    role_uses: &[RoleUse],
    ctx: &Context,
    proposal: &mut Proposal,
) {
    let (key, key_label) = (grant.key, grant.label);
    let docs = documents(template);
    let mut needs: Vec<Need> = docs.iter().map(|_| Need::default()).collect();
    for (doc, need) in docs.iter().zip(needs.iter_mut()) {
        for statement in statements(template.at(&doc.pointer)) {
            if statement.field("Effect").and_then(Value::as_str) != Some("Allow")
                || statement.field("Sid").and_then(Value::as_str) == Some(GRANT_SID)
            {
                continue;
            }
            let Some(resource) = statement.field("Resource") else {
                continue;
            };
            let wildcard = resource == "*"
                || resource
                    .as_array()
                    .is_some_and(|l| l.iter().any(|r| r == "*"));
            let ids: Vec<String> = if wildcard {
                grant.encrypted.iter().map(|(id, _)| id.clone()).collect()
            } else {
                cfn::referenced_ids(resource)
            };
            // The statement's patterns read once, and its access found once a kind: a
            // wildcard statement names every encrypted resource of the template.
            let mut patterns = None;
            let mut masks: Vec<(Kind, u8)> = Vec::new();
            for id in ids {
                let Some(kind) = grant.kind(&id) else {
                    continue;
                };
                let mask = match masks.iter().find(|(k, _)| *k == kind) {
                    Some(&(_, mask)) => mask,
                    None => {
                        let patterns = patterns.get_or_insert_with(|| action_patterns(statement));
                        let mask = identity_mask(access_by(patterns, kind), kind);
                        masks.push((kind, mask));
                        mask
                    }
                };
                if mask != 0 {
                    need.add(mask, format!("`{id}`"));
                }
            }
        }
    }

    // Roles that use the key through a service.
    let mut new_inline: BTreeMap<String, Need> = BTreeMap::new();
    let mut imported: BTreeMap<String, Need> = BTreeMap::new();
    let order: Vec<&String> = cfn::resources(template).map(|(id, _)| id).collect();
    for usage in role_uses {
        let role_id = cfn::getatt_target(&usage.role)
            .map(|(id, _)| id)
            .or_else(|| cfn::ref_target(&usage.role))
            .filter(|id| cfn::type_of(template, id) == Some("AWS::IAM::Role"));
        let Some(role_id) = role_id else {
            let label = match &usage.role {
                Value::String(s) => format!("`{s}`"),
                other => format!("`{other}`"),
            };
            imported
                .entry(label)
                .or_default()
                .add(usage.mask, usage.why.clone());
            continue;
        };
        // The app's own policy attached only to this role, never one cdk-harden added (a
        // later transform may attach one, and the grant must not move there on a second run).
        let attached = docs.iter().position(|d| {
            d.policy_resource
                && d.roles == [role_id]
                && selected.contains(&d.logical_id)
                && !d.logical_id.starts_with("CdkHarden")
        });
        let inline = docs
            .iter()
            .position(|d| d.logical_id == role_id && d.inline.as_deref() == Some(GRANT_SID));
        // Else one of the role's own inline policies, so the role gets one grant, not two.
        let own_inline = docs.iter().position(|d| {
            d.logical_id == role_id
                && selected.contains(&d.logical_id)
                && d.inline
                    .as_deref()
                    .is_some_and(|n| !n.starts_with("CdkHarden"))
        });
        // An inline grant from an earlier run stays where it is.
        match inline.or(attached).or(own_inline) {
            Some(i) => needs[i].add(usage.mask, usage.why.clone()),
            None => new_inline
                .entry(role_id.to_string())
                .or_default()
                .add(usage.mask, usage.why.clone()),
        }
    }

    let actions = |mask: u8| kms_actions(mask).join(", ");
    for (doc, need) in docs.iter().zip(&needs) {
        let granted = already_granted(statements(template.at(&doc.pointer)), key);
        if need.mask & !granted == 0 {
            continue;
        }
        let why = need.why.iter().cloned().collect::<Vec<_>>().join(", ");
        if !selected.contains(&doc.logical_id) {
            proposal.notes.push(ctx.note(
                Some(&doc.logical_id),
                NoteKind::ActionRequired,
                format!(
                    "opted out of `kms`, but its principals use {why}, now encrypted with {key_label}; they need {} on that key",
                    actions(need.mask)
                ),
            ));
            continue;
        }
        let document = template.at(&doc.pointer);
        let existing = match document.and_then(|d| d.field("Statement")) {
            Some(Value::Array(items)) => items
                .iter()
                .position(|s| s.field("Sid").and_then(Value::as_str) == Some(GRANT_SID))
                .map(|i| (format!("{}/Statement/{i}", doc.pointer), &items[i])),
            Some(single) if single.field("Sid").and_then(Value::as_str) == Some(GRANT_SID) => {
                Some((format!("{}/Statement", doc.pointer), single))
            }
            _ => None,
        };
        let reason = format!(
            "let this policy's principals use the customer-managed KMS key ({}) for {why}",
            actions(need.mask)
        );
        match existing {
            Some((pointer, old)) => {
                let mask = need.mask | mask_of(old.field("Action"));
                proposal.push(Change::new(
                    &doc.logical_id,
                    pointer,
                    Op::Upgrade,
                    statement(mask, key),
                    reason,
                ));
            }
            None => proposal.push(Change::new(
                &doc.logical_id,
                format!("{}/Statement", doc.pointer),
                Op::AppendUnique,
                json!([statement(need.mask, key)]),
                reason,
            )),
        }
    }

    let mut roles: Vec<(&String, &Need)> = new_inline.iter().collect();
    roles.sort_by_key(|(id, _)| order.iter().position(|o| o == id));
    for (role_id, need) in roles {
        let why = need.why.iter().cloned().collect::<Vec<_>>().join(", ");
        if !selected.contains(role_id) {
            proposal.notes.push(ctx.note(
                Some(role_id),
                NoteKind::ActionRequired,
                format!(
                    "opted out of `kms`, but it uses {key_label} for {why}; it needs {} on that key",
                    actions(need.mask)
                ),
            ));
            continue;
        }
        proposal.push(Change::on_resource(
            role_id,
            "/Properties/Policies",
            Op::AppendUnique,
            json!([{
                "PolicyName": GRANT_SID,
                "PolicyDocument": { "Statement": [statement(need.mask, key)], "Version": "2012-10-17" }
            }]),
            format!("let the role use the customer-managed KMS key ({}) for {why}", actions(need.mask)),
        ));
    }

    for (label, need) in &imported {
        let why = need.why.iter().cloned().collect::<Vec<_>>().join(", ");
        proposal.notes.push(ctx.note(
            None,
            NoteKind::ActionRequired,
            format!(
                "role {label} is not defined in this stack; it needs {} on {key_label} for {why}: grant it in the role's IAM policy (and, for a role of another account, in the key policy)",
                actions(need.mask)
            ),
        ));
    }
}

/// The KMS actions a document grants on the key already (on `"*"` or on the key itself), not
/// counting the statement this module adds.
fn already_granted(statements: Vec<&Value>, key: &Value) -> u8 {
    let mut mask = 0;
    for statement in statements {
        if statement.field("Effect").and_then(Value::as_str) != Some("Allow")
            || statement.field("Sid").and_then(Value::as_str) == Some(GRANT_SID)
        {
            continue;
        }
        let Some(resource) = statement.field("Resource") else {
            continue;
        };
        let items: Vec<&Value> = match resource {
            Value::Array(list) => list.iter().collect(),
            other => vec![other],
        };
        if !items
            .iter()
            .any(|r| *r == "*" || super::targets::same_key(r, key))
        {
            continue;
        }
        let patterns = action_patterns(statement);
        for (bit, action) in ACTIONS {
            if covers(&patterns, action.trim_end_matches('*')) {
                mask |= bit;
            }
        }
    }
    mask
}

/// The grant statement, in the key order CDK writes.
fn statement(mask: u8, key: &Value) -> Value {
    json!({
        "Action": kms_actions(mask),
        "Effect": "Allow",
        "Resource": key,
        "Sid": GRANT_SID
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_globs_match_case_insensitively() {
        assert!(glob("s3:Get*", "s3:GetObject"));
        assert!(glob("S3:getobject*", "s3:GetObject"));
        assert!(glob("*", "sqs:SendMessage"));
        assert!(glob("sqs:?endMessage", "sqs:SendMessage"));
        assert!(!glob("s3:GetBucket*", "s3:GetObject"));
        assert!(!glob("s3:List*", "s3:GetObject"));
        // Not ASCII: by characters, `?` matching one.
        assert!(glob("kms:?crypt", "kms:écrypt"));
        assert!(glob("kms:é*", "KMS:éTAT"));
        assert!(!glob("kms:é*", "kms:ÉTAT"), "only ASCII letters fold");
        assert!(!glob("kms:??crypt", "kms:écrypt"));
    }

    #[test]
    fn actions_are_classified_per_service() {
        let s = |action: Value| json!({"Effect": "Allow", "Action": action});
        assert_eq!(
            access(
                &s(json!(["s3:GetObject*", "s3:GetBucket*", "s3:List*"])),
                Kind::Bucket
            ),
            Access {
                read: true,
                write: false
            }
        );
        assert_eq!(
            access(&s(json!("s3:*")), Kind::Bucket),
            Access {
                read: true,
                write: true
            }
        );
        assert_eq!(
            access(&s(json!(["s3:GetBucket*", "s3:List*"])), Kind::Bucket),
            Access::default()
        );
        assert_eq!(
            access(
                &s(json!([
                    "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl",
                    "sqs:SendMessage"
                ])),
                Kind::Queue
            ),
            Access {
                read: false,
                write: true
            }
        );
        assert_eq!(
            access(&s(json!("dynamodb:Query")), Kind::Table),
            Access {
                read: true,
                write: false
            }
        );
        assert_eq!(
            access(&s(json!("dynamodb:BatchWriteItem")), Kind::Table),
            Access {
                read: false,
                write: true
            }
        );
        assert_eq!(
            access(&s(json!("secretsmanager:GetSecretValue")), Kind::Secret),
            Access {
                read: true,
                write: false
            }
        );
        assert_eq!(
            access(&s(json!("sns:Publish")), Kind::Topic),
            Access {
                read: false,
                write: true
            }
        );
        assert_eq!(
            access(&s(json!("logs:PutLogEvents")), Kind::LogGroup),
            Access::default()
        );
        let not = json!({"Effect": "Allow", "NotAction": "s3:PutObject"});
        assert_eq!(
            access(&not, Kind::Bucket),
            Access {
                read: true,
                write: true
            },
            "ReplicateObject is still allowed"
        );
    }

    #[test]
    fn masks_name_kms_actions_in_order() {
        assert_eq!(kms_actions(DECRYPT), ["kms:Decrypt"]);
        assert_eq!(
            kms_actions(identity_mask(
                Access {
                    read: false,
                    write: true
                },
                Kind::Queue
            )),
            [
                "kms:Decrypt",
                "kms:Encrypt",
                "kms:GenerateDataKey*",
                "kms:ReEncrypt*"
            ]
        );
        assert_eq!(
            kms_actions(identity_mask(
                Access {
                    read: false,
                    write: true
                },
                Kind::Stream
            )),
            ["kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
        );
        assert_eq!(
            mask_of(Some(&json!(["kms:Decrypt", "kms:ReEncrypt*"]))),
            DECRYPT | REENCRYPT
        );
    }
}
