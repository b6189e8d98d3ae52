//! The IAM permissions a hardening adds, for the review's permissions table.
//!
//! Reviewers care most about new permissions. Every resource that carries a policy (identity
//! policies of `AWS::IAM::Policy`/`ManagedPolicy`/`Role`/`User`/`Group`, role trust policies,
//! key policies, bucket, queue, topic and secret resource policies, and `AWS::Lambda::Permission`)
//! is compared between the input and the hardened template; each statement of the hardened one
//! that the input did not have, word for word, is a new permission. This module only reads
//! templates.

use std::borrow::Cow;

use crate::transform::cfn::Field;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::transform::JsonText;

/// One new or changed policy statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    /// The resource that carries the policy.
    pub logical_id: String,
    pub resource_type: String,
    /// Where the statement is, relative to the resource, e.g. `/Properties/PolicyDocument`.
    pub document: String,
    /// `Allow` or `Deny`.
    pub effect: String,
    /// Actions; `NotAction` entries are prefixed with `NOT `.
    pub actions: Vec<String>,
    /// Resources, with intrinsics shown as `${Id}` / `${Id.Attr}`; for a trust policy, the role.
    pub resources: Vec<String>,
    /// Who gets the permission: the statement's principals (`Service:…`, `AWS:…`, `*`), or for
    /// an identity policy the roles, users and groups it is attached to.
    pub principals: Vec<String>,
    /// The statement's condition, on one line, e.g. `StringEquals aws:SourceAccount=${AWS::AccountId}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The statement as it is in the template.
    // Held as compact JSON text (a review holds one per new statement, and the spool writes
    // and reads it back as is); written out as the value.
    #[serde(serialize_with = "as_value")]
    pub statement: JsonText,
}

/// Writes a value held as text as the value itself, so a pretty-printed report indents it.
fn as_value<S: serde::Serializer>(text: &JsonText, s: S) -> Result<S::Ok, S::Error> {
    text.value().serialize(s)
}

/// The policy statements of a template as read: kept before its tree is hardened in place,
/// to tell which statements of the hardened template are new.
///
/// Kept as compact JSON text, one after another in one buffer, not as values: a template's
/// trust, identity and key policies are copied for every template, and a copied value is an
/// allocation per string, list and object in it. "Word for word" is then the same text.
#[derive(Debug, Clone, Default)]
pub struct Statements {
    /// Every statement's compact text, one after another.
    text: Vec<u8>,
    /// Logical id → resource type and its statements.
    by_resource: foldhash::HashMap<String, (String, Vec<Kept>)>,
}

/// A statement as read: its document's pointer, and where its text is in [`Statements`].
type Kept = (Cow<'static, str>, std::ops::Range<usize>);

impl Statements {
    /// The statements of every policy-bearing resource of `template`.
    pub fn of(template: &Value) -> Statements {
        let mut text = Vec::new();
        let by_resource = crate::transform::cfn::resources(template)
            .filter_map(|(logical_id, resource)| {
                let found = statements(logical_id, resource).found;
                if found.is_empty() {
                    return None;
                }
                let kind = resource.field("Type").and_then(Value::as_str).unwrap_or("");
                let found = found.into_iter().map(|s| {
                    let start = text.len();
                    crate::assembly::format::write_compact(&s.statement, &mut text);
                    (s.document, start..text.len())
                });
                Some((logical_id.clone(), (kind.to_string(), found.collect())))
            })
            .collect();
        Statements { text, by_resource }
    }
}

/// The policy statements of every policy-bearing resource in `after` that are not in the same
/// place in `before` (a resource of the same type and logical id), in template order.
pub fn new_permissions(before: &Statements, after: &Value) -> Vec<Permission> {
    let mut out = Vec::new();
    let none = Vec::new();
    // The text of the statement being compared, in one buffer for them all.
    let mut written = Vec::new();
    for (logical_id, resource) in crate::transform::cfn::resources(after) {
        let kind = resource.field("Type").and_then(Value::as_str).unwrap_or("");
        let old = match before.by_resource.get(logical_id) {
            Some((old_kind, old)) if old_kind == kind => old,
            _ => &none,
        };
        let collected = statements(logical_id, resource);
        // Each document's names, made when its first new statement needs them.
        let mut named: Vec<Option<(Vec<String>, Vec<String>)>> =
            vec![None; collected.contexts.len()];
        for s in collected.found {
            if !old.is_empty() {
                written.clear();
                crate::assembly::format::write_compact(&s.statement, &mut written);
                if old
                    .iter()
                    .any(|(d, span)| *d == s.document && before.text[span.clone()] == written[..])
                {
                    continue;
                }
            }
            let (attached, default_resource) = named[s.context].get_or_insert_with(|| {
                let (attached, on) = collected.contexts[s.context];
                (attached.names(), on.names())
            });
            // `written` holds this statement's text when it was compared above.
            let text = (!old.is_empty()).then(|| {
                let text = std::str::from_utf8(&written).expect("compact JSON text is UTF-8");
                JsonText::from_written(text)
            });
            out.push(s.into_permission(logical_id, kind, attached, default_resource, text));
        }
    }
    out
}

/// A statement found in a resource, borrowed from it where the resource spells it out.
struct Found<'a> {
    /// The document's pointer, relative to the resource.
    document: Cow<'static, str>,
    statement: Cow<'a, Value>,
    /// Its document's place in [`Collected::contexts`].
    context: usize,
}

/// The statements of one resource, and per policy document what its statements do not say
/// themselves: for identity policies, who the policy is attached to; for resource policies
/// without a `Resource`, what the policy is on.
struct Collected<'a> {
    found: Vec<Found<'a>>,
    /// Per document: who it is attached to, and what it is on. Named only for a new statement:
    /// most statements are in the input too, and the two passes over a template look at all.
    contexts: Vec<(Names<'a>, Names<'a>)>,
}

/// Whom or what a policy document names without its statements saying so.
#[derive(Clone, Copy)]
enum Names<'a> {
    None,
    /// The resource itself: `LABEL ${ID}`.
    Itself(&'static str, &'a str),
    /// The roles, users and groups an identity policy is attached to (its properties).
    Attached(&'a Value),
    /// A property's value, or each item of its list, rendered.
    Listed(Option<&'a Value>),
}

impl Names<'_> {
    fn names(self) -> Vec<String> {
        match self {
            Names::None => Vec::new(),
            Names::Itself(label, logical_id) => vec![format!("{label} ${{{logical_id}}}")],
            Names::Attached(props) => {
                let mut attached = Vec::new();
                for (key, label) in [("Roles", "role"), ("Users", "user"), ("Groups", "group")] {
                    attached.extend(
                        list(props.get(key))
                            .into_iter()
                            .map(|r| format!("{label} {r}")),
                    );
                }
                attached
            }
            Names::Listed(value) => list(value),
        }
    }
}

impl Found<'_> {
    /// The permission this statement grants; `text` is the statement's compact text, if it
    /// was already written.
    fn into_permission(
        self,
        logical_id: &str,
        kind: &str,
        attached: &[String],
        default_resource: &[String],
        text: Option<JsonText>,
    ) -> Permission {
        let s = &self.statement;
        let effect = s
            .field("Effect")
            .map(render_value)
            .unwrap_or_else(|| "Allow".into());
        let mut actions = list(s.field("Action"));
        actions.extend(
            list(s.field("NotAction"))
                .into_iter()
                .map(|a| format!("NOT {a}")),
        );
        let mut resources = list(s.field("Resource"));
        resources.extend(
            list(s.field("NotResource"))
                .into_iter()
                .map(|r| format!("NOT {r}")),
        );
        if resources.is_empty() {
            resources = default_resource.to_vec();
        }
        let mut principals = principals_of(s.field("Principal"));
        principals.extend(
            principals_of(s.field("NotPrincipal"))
                .into_iter()
                .map(|p| format!("NOT {p}")),
        );
        if principals.is_empty() {
            principals = attached.to_vec();
        }
        Permission {
            logical_id: logical_id.to_string(),
            resource_type: kind.to_string(),
            document: self.document.into_owned(),
            effect,
            actions,
            resources,
            principals,
            condition: s.field("Condition").map(render_condition),
            statement: text.unwrap_or_else(|| JsonText::of(&self.statement)),
        }
    }
}

/// Collects the statements of the policy documents of one resource.
struct Collector<'a> {
    props: &'a Value,
    out: Collected<'a>,
}

impl<'a> Collector<'a> {
    /// The statements of the policy at `document` (a pointer relative to the resource).
    fn doc(
        &mut self,
        document: impl Into<Cow<'static, str>>,
        policy: Option<&'a Value>,
        attached: Names<'a>,
        on: Names<'a>,
    ) {
        let Some(policy) = policy else { return };
        let items = match policy.field("Statement") {
            Some(Value::Array(items)) => items.as_slice(),
            Some(one @ Value::Object(_)) => std::slice::from_ref(one),
            _ => &[],
        };
        self.found(
            document.into(),
            items.iter().map(Cow::Borrowed),
            attached,
            on,
        );
    }

    /// [`Collector::doc`] for a statement made from the resource's properties.
    fn made(&mut self, document: &'static str, statement: Value) {
        let made = std::iter::once(Cow::Owned(statement));
        self.found(document.into(), made, Names::None, Names::None);
    }

    fn found(
        &mut self,
        document: Cow<'static, str>,
        statements: impl Iterator<Item = Cow<'a, Value>>,
        attached: Names<'a>,
        on: Names<'a>,
    ) {
        let context = self.out.contexts.len();
        self.out.contexts.push((attached, on));
        for statement in statements {
            self.out.found.push(Found {
                document: document.clone(),
                statement,
                context,
            });
        }
    }

    /// The inline `Policies` of a role, user or group.
    fn inline(&mut self, who: Names<'a>) {
        let props = self.props;
        for (i, p) in props
            .field("Policies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            self.doc(
                format!("/Properties/Policies/{i}/PolicyDocument"),
                p.field("PolicyDocument"),
                who,
                Names::None,
            );
        }
    }
}

/// Every policy statement a resource carries.
fn statements<'a>(logical_id: &'a str, resource: &'a Value) -> Collected<'a> {
    let kind = resource.field("Type").and_then(Value::as_str).unwrap_or("");
    // No properties reads as properties without the ones looked up.
    static NONE: Value = Value::Null;
    let props = resource.field("Properties").unwrap_or(&NONE);
    let mut c = Collector {
        props,
        out: Collected {
            found: Vec::new(),
            contexts: Vec::new(),
        },
    };
    match kind {
        "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" => c.doc(
            "/Properties/PolicyDocument",
            props.field("PolicyDocument"),
            Names::Attached(props),
            Names::None,
        ),
        "AWS::IAM::Role" => {
            let me = Names::Itself("role", logical_id);
            c.doc(
                "/Properties/AssumeRolePolicyDocument",
                props.field("AssumeRolePolicyDocument"),
                Names::None,
                me,
            );
            c.inline(me);
        }
        "AWS::IAM::User" => c.inline(Names::Itself("user", logical_id)),
        "AWS::IAM::Group" => c.inline(Names::Itself("group", logical_id)),
        "AWS::KMS::Key" => c.doc(
            "/Properties/KeyPolicy",
            props.field("KeyPolicy"),
            Names::None,
            Names::Itself("key", logical_id),
        ),
        "AWS::S3::BucketPolicy" => c.doc(
            "/Properties/PolicyDocument",
            props.field("PolicyDocument"),
            Names::None,
            Names::Listed(props.field("Bucket")),
        ),
        "AWS::SQS::QueuePolicy" => c.doc(
            "/Properties/PolicyDocument",
            props.field("PolicyDocument"),
            Names::None,
            Names::Listed(props.field("Queues")),
        ),
        "AWS::SNS::TopicPolicy" => c.doc(
            "/Properties/PolicyDocument",
            props.field("PolicyDocument"),
            Names::None,
            Names::Listed(props.field("Topics")),
        ),
        "AWS::SecretsManager::ResourcePolicy" => c.doc(
            "/Properties/ResourcePolicy",
            props.field("ResourcePolicy"),
            Names::None,
            Names::Listed(props.field("SecretId")),
        ),
        "AWS::Lambda::Permission" => {
            // One statement, spelled out as properties.
            let mut statement = Map::new();
            statement.insert("Effect".into(), Value::String("Allow".into()));
            for (from, to) in [("Action", "Action"), ("FunctionName", "Resource")] {
                if let Some(v) = props.get(from) {
                    statement.insert(to.into(), v.clone());
                }
            }
            if let Some(p) = props.field("Principal") {
                let key = match p.as_str() {
                    Some(s)
                        if s.ends_with(".amazonaws.com") || s.ends_with(".amazonaws.com.cn") =>
                    {
                        "Service"
                    }
                    _ => "AWS",
                };
                let mut principal = Map::new();
                principal.insert(key.into(), p.clone());
                statement.insert("Principal".into(), Value::Object(principal));
            }
            let mut condition = Map::new();
            for (prop, key, op) in [
                ("SourceArn", "AWS:SourceArn", "ArnLike"),
                ("SourceAccount", "AWS:SourceAccount", "StringEquals"),
                ("PrincipalOrgID", "aws:PrincipalOrgID", "StringEquals"),
            ] {
                if let Some(v) = props.get(prop) {
                    let entry = condition
                        .entry(op.to_string())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(m) = entry {
                        m.insert(key.into(), v.clone());
                    }
                }
            }
            if !condition.is_empty() {
                statement.insert("Condition".into(), Value::Object(condition));
            }
            c.made("/Properties", Value::Object(statement));
        }
        _ => {}
    }
    c.out
}

/// A value, or each item of an array, rendered.
fn list(value: Option<&Value>) -> Vec<String> {
    match value {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(render_value).collect(),
        Some(v) => vec![render_value(v)],
    }
}

/// `Principal` as `*`, `Service:x`, `AWS:y`, …
fn principals_of(value: Option<&Value>) -> Vec<String> {
    match value {
        None => Vec::new(),
        Some(Value::Object(map)) if !is_intrinsic(map) => map
            .iter()
            .flat_map(|(kind, v)| {
                list(Some(v))
                    .into_iter()
                    .map(move |p| format!("{kind}:{p}"))
            })
            .collect(),
        Some(v) => list(Some(v)),
    }
}

fn is_intrinsic(map: &Map<String, Value>) -> bool {
    map.len() == 1 && map.keys().all(|k| k == "Ref" || k.starts_with("Fn::"))
}

/// A template value on one line: strings as they are, `${X}` for `Ref`, `${X.Attr}` for
/// `Fn::GetAtt`, joins and subs spelled out; anything else as compact JSON.
pub fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map) if map.len() == 1 => {
            let (key, arg) = map.iter().next().expect("one entry");
            match (key.as_str(), arg) {
                ("Ref", Value::String(id)) => format!("${{{id}}}"),
                ("Fn::GetAtt", Value::Array(parts)) => {
                    let parts: Vec<String> = parts.iter().map(render_value).collect();
                    format!("${{{}}}", parts.join("."))
                }
                ("Fn::GetAtt", Value::String(s)) => format!("${{{s}}}"),
                ("Fn::Join", Value::Array(args)) if args.len() == 2 => {
                    let sep = args[0].as_str().unwrap_or("");
                    match &args[1] {
                        Value::Array(parts) => {
                            parts.iter().map(render_value).collect::<Vec<_>>().join(sep)
                        }
                        other => render_value(other),
                    }
                }
                ("Fn::Sub", Value::String(s)) => s.clone(),
                ("Fn::Sub", Value::Array(args)) if !args.is_empty() => render_value(&args[0]),
                ("Fn::ImportValue", v) => format!("${{Import:{}}}", render_value(v)),
                _ => value.to_string(),
            }
        }
        other => other.to_string(),
    }
}

/// `{"StringEquals": {"aws:SourceAccount": X}}` → `StringEquals aws:SourceAccount=X`.
pub fn render_condition(value: &Value) -> String {
    let Some(ops) = value.as_object() else {
        return render_value(value);
    };
    let mut parts = Vec::new();
    for (op, keys) in ops {
        match keys.as_object() {
            Some(keys) => {
                for (key, v) in keys {
                    parts.push(format!("{op} {key}={}", list(Some(v)).join(",")));
                }
            }
            None => parts.push(format!("{op} {}", render_value(keys))),
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_render_like_cdk_diff() {
        assert_eq!(render_value(&json!({"Ref": "B"})), "${B}");
        assert_eq!(
            render_value(&json!({"Fn::GetAtt": ["B", "Arn"]})),
            "${B.Arn}"
        );
        assert_eq!(
            render_value(&json!({"Fn::Join": ["", [{"Fn::GetAtt": ["B", "Arn"]}, "/*"]]})),
            "${B.Arn}/*"
        );
        assert_eq!(
            render_value(&json!({"Fn::Sub": "arn:${AWS::Partition}:s3:::x"})),
            "arn:${AWS::Partition}:s3:::x"
        );
        assert_eq!(render_value(&json!(true)), "true");
    }

    #[test]
    fn only_statements_the_input_lacked_are_new() {
        let stmt_a = json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"});
        let stmt_b = json!({"Effect": "Allow", "Action": ["kms:Decrypt", "kms:Encrypt"], "Resource": {"Fn::GetAtt": ["K", "Arn"]}});
        let before = json!({"Resources": {"P": {"Type": "AWS::IAM::Policy", "Properties": {
            "PolicyDocument": {"Statement": [stmt_a.clone()]}, "Roles": [{"Ref": "R"}]}}}});
        let after = json!({"Resources": {"P": {"Type": "AWS::IAM::Policy", "Properties": {
            "PolicyDocument": {"Statement": [stmt_a, stmt_b]}, "Roles": [{"Ref": "R"}]}}}});
        let new = new_permissions(&Statements::of(&before), &after);
        assert_eq!(new.len(), 1, "{new:#?}");
        assert_eq!(new[0].actions, vec!["kms:Decrypt", "kms:Encrypt"]);
        assert_eq!(new[0].resources, vec!["${K.Arn}"]);
        assert_eq!(new[0].principals, vec!["role ${R}"]);
        assert!(new_permissions(&Statements::of(&after), &after).is_empty());
    }

    /// A statement is the input's only word for word: one that gained an action is new, and
    /// is named with the document it is in and the role it belongs to.
    #[test]
    fn issue_8_a_statement_changed_in_place_is_new_and_an_untouched_one_is_not() {
        let trust = json!({"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}});
        let role = |actions: Value| {
            json!({"Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": {
                "AssumeRolePolicyDocument": {"Statement": [trust.clone()]},
                "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [
                    {"Effect": "Allow", "Action": actions, "Resource": "*"}]}}]}}}})
        };
        let before = role(json!(["sqs:SendMessage"]));
        let after = role(json!(["sqs:SendMessage", "kms:Decrypt"]));
        let new = new_permissions(&Statements::of(&before), &after);
        assert_eq!(new.len(), 1, "{new:#?}");
        assert_eq!(new[0].document, "/Properties/Policies/0/PolicyDocument");
        assert_eq!(new[0].actions, vec!["sqs:SendMessage", "kms:Decrypt"]);
        assert_eq!(new[0].principals, vec!["role ${Role}"]);
        assert!(new_permissions(&Statements::of(&after), &after).is_empty());
    }

    #[test]
    fn resource_policies_show_principals_and_conditions() {
        let after = json!({"Resources": {"BP": {"Type": "AWS::S3::BucketPolicy", "Properties": {
            "Bucket": {"Ref": "Logs"},
            "PolicyDocument": {"Statement": {"Effect": "Allow", "Action": "s3:PutObject",
                "Principal": {"Service": "logging.s3.amazonaws.com"},
                "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": ["Logs", "Arn"]}, "/*"]]},
                "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}}}}}}});
        let new = new_permissions(&Statements::of(&json!({"Resources": {}})), &after);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].principals, vec!["Service:logging.s3.amazonaws.com"]);
        assert_eq!(new[0].resources, vec!["${Logs.Arn}/*"]);
        assert_eq!(
            new[0].condition.as_deref(),
            Some("StringEquals aws:SourceAccount=${AWS::AccountId}")
        );
    }

    #[test]
    fn lambda_permissions_and_trust_policies_count() {
        let after = json!({"Resources": {
            "Perm": {"Type": "AWS::Lambda::Permission", "Properties": {"Action": "lambda:InvokeFunction",
                "FunctionName": {"Fn::GetAtt": ["F", "Arn"]}, "Principal": "events.amazonaws.com",
                "SourceArn": {"Fn::GetAtt": ["Rule", "Arn"]}}},
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {"Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": "arn:aws:iam::111111111111:root"}}]}}}}});
        let new = new_permissions(&Statements::of(&json!({})), &after);
        assert_eq!(new.len(), 2);
        assert_eq!(new[0].principals, vec!["Service:events.amazonaws.com"]);
        assert_eq!(new[0].resources, vec!["${F.Arn}"]);
        assert_eq!(
            new[0].condition.as_deref(),
            Some("ArnLike AWS:SourceArn=${Rule.Arn}")
        );
        assert_eq!(new[1].resources, vec!["role ${Role}"]);
        assert_eq!(
            new[1].principals,
            vec!["AWS:arn:aws:iam::111111111111:root"]
        );
    }
}
