//! Reading CloudFormation templates: resources, references and intrinsic functions.
//!
//! Small, pure helpers shared by the actions. Nothing here proposes or applies changes.

use serde_json::{json, Map, Value};

/// Objects with at most this many members are searched by comparing keys.
const SMALL: usize = 8;

/// Looking up an object's member by key, quickly for the small objects templates are made of.
///
/// serde_json's objects (with `preserve_order`) hash the key for every look-up; most objects
/// in a template have a handful of members, and comparing a few short keys costs less than
/// hashing one. Larger objects (`Resources`) are looked up by hash. Keys are unique in an
/// object, so the answer is the same as `Value::get`'s.
pub trait Field {
    /// The member `key` of an object; `None` for a missing key or anything but an object.
    fn field(&self, key: &str) -> Option<&Value>;
}

impl Field for Value {
    fn field(&self, key: &str) -> Option<&Value> {
        member(self.as_object()?, key)
    }
}

impl Field for Map<String, Value> {
    fn field(&self, key: &str) -> Option<&Value> {
        member(self, key)
    }
}

/// `a == b`, comparing objects member by member when their keys come in the same order, as
/// two copies of one value's keys do; serde_json's comparison looks every key up in the other
/// object, hashing it. Objects whose keys come in another order are compared as serde_json
/// does, so the answer is always `a == b`'s.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && if x.keys().eq(y.keys()) {
                    x.values().zip(y.values()).all(|(a, b)| same(a, b))
                } else {
                    x == y
                }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        _ => a == b,
    }
}

/// `map.get(key)`, by comparing keys when the map is small (see [`Field`]).
pub fn member<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if map.len() <= SMALL {
        map.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
    } else {
        map.get(key)
    }
}

/// `map.get_mut(key)`, by comparing keys when the map is small (see [`Field`]).
pub fn member_mut<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Value> {
    if map.len() <= SMALL {
        map.iter_mut()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    } else {
        map.get_mut(key)
    }
}

/// The resources of a template, in template order.
pub fn resources(template: &Value) -> impl Iterator<Item = (&String, &Value)> {
    template
        .field("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
}

/// The resources of one type, in template order.
pub fn resources_of<'a>(
    template: &'a Value,
    kind: &'a str,
) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
    resources(template).filter(move |(_, r)| r.field("Type").and_then(Value::as_str) == Some(kind))
}

/// The resource with this logical id.
pub fn resource<'a>(template: &'a Value, logical_id: &str) -> Option<&'a Value> {
    template.field("Resources")?.get(logical_id)
}

/// The type of a resource.
pub fn type_of<'a>(template: &'a Value, logical_id: &str) -> Option<&'a str> {
    resource(template, logical_id)?.field("Type")?.as_str()
}

/// A property of a resource.
pub fn prop<'a>(resource: &'a Value, name: &str) -> Option<&'a Value> {
    resource.field("Properties")?.get(name)
}

/// `X` for `{"Ref": "X"}`.
pub fn ref_target(value: &Value) -> Option<&str> {
    let obj = value.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    obj.field("Ref")?.as_str()
}

/// `X` for `{"Fn::GetAtt": ["X", "Arn"]}` or `{"Fn::GetAtt": "X.Arn"}`.
pub fn getatt_target(value: &Value) -> Option<(&str, &str)> {
    match value.as_object()?.field("Fn::GetAtt")? {
        Value::Array(parts) => Some((parts.first()?.as_str()?, parts.get(1)?.as_str()?)),
        Value::String(s) => s.split_once('.'),
        _ => None,
    }
}

/// Every logical id referenced anywhere inside `value` by `Ref`, `Fn::GetAtt` or a
/// `${X}`/`${X.Attr}` in `Fn::Sub`, in order of appearance, without duplicates. Pseudo
/// parameters (`AWS::…`) are left out.
pub fn referenced_ids(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_refs(value, &mut out);
    out
}

fn push_unique(out: &mut Vec<String>, id: &str) {
    if !id.starts_with("AWS::") && !out.iter().any(|o| o == id) {
        out.push(id.to_string());
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(id) = ref_target(value) {
                push_unique(out, id);
                return;
            }
            if let Some((id, _)) = getatt_target(value) {
                push_unique(out, id);
                return;
            }
            if let Some(sub) = map.field("Fn::Sub") {
                let text = match sub {
                    Value::String(s) => Some(s.as_str()),
                    Value::Array(parts) => parts.first().and_then(Value::as_str),
                    _ => None,
                };
                for name in text.into_iter().flat_map(sub_names) {
                    push_unique(out, name.split('.').next().unwrap_or(name));
                }
                if let Some(Value::Array(parts)) = Some(sub) {
                    for p in parts.iter().skip(1) {
                        collect_refs(p, out);
                    }
                }
                return;
            }
            for v in map.values() {
                collect_refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The `X` of every `${X}` in an `Fn::Sub` string (not `${!Literal}`).
fn sub_names(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.starts_with('!') {
            names.push(name);
        }
        rest = &after[end + 1..];
    }
    names
}

/// The strings of a value that IAM lets be one string or a list of them (`Action`,
/// `Principal.Service`, …); anything else gives none.
pub fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// `{"Ref": id}`.
pub fn ref_to(id: &str) -> Value {
    json!({ "Ref": id })
}

/// `{"Fn::GetAtt": [id, attr]}`.
pub fn getatt(id: &str, attr: &str) -> Value {
    json!({ "Fn::GetAtt": [id, attr] })
}

/// Whether a value is an intrinsic function or a reference rather than a literal.
pub fn is_intrinsic(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|m| m.len() == 1 && m.keys().all(|k| k == "Ref" || k.starts_with("Fn::")))
}

/// A logical id not used in the template: `base` itself if free, else `base2`, `base3`…
pub fn free_id(template: &Value, base: &str) -> String {
    let taken = |id: &str| {
        resource(template, id).is_some()
            || template
                .field("Parameters")
                .and_then(|p| p.get(id))
                .is_some()
            || template
                .field("Conditions")
                .and_then(|p| p.get(id))
                .is_some()
            || template.field("Outputs").and_then(|p| p.get(id)).is_some()
    };
    if !taken(base) {
        return base.to_string();
    }
    (2..)
        .map(|n| format!("{base}{n}"))
        .find(|c| !taken(c))
        .expect("some id is free")
}

/// The parts of an ARN in one account and region,
/// `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` (the resource may hold `:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// `arn`'s parts, when it has all six, a partition, a region and a 12-digit account.
    pub fn regional(arn: &'a str) -> Option<Arn<'a>> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", partition, service, region, account, resource]
                if !partition.is_empty()
                    && !region.is_empty()
                    && account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(Arn {
                    partition,
                    service,
                    region,
                    account,
                    resource,
                })
            }
            _ => None,
        }
    }
}

/// Whether `name` can be an SSM parameter's name: 1 to 2,048 letters, digits and `_.-/`.
pub fn is_ssm_parameter_name(name: &str) -> bool {
    (1..=2048).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_through_intrinsics() {
        let v = json!({
            "Resource": [
                {"Fn::GetAtt": ["Table", "Arn"]},
                {"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket", "Arn"]}, "/*"]]},
                {"Ref": "AWS::NoValue"},
                {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${Queue.QueueName}${!Literal}"},
                {"Ref": "Table"}
            ]
        });
        assert_eq!(referenced_ids(&v), ["Table", "Bucket", "Queue"]);
    }

    /// Values from so few parts that two drawn apart are often equal.
    fn tiny_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![Just(Value::Null), Just(json!(1)), Just(json!("x"))];
        leaf.prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::vec(("[ab]", inner), 0..3)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    /// `value` with the keys of every object in reverse order: equal, laid out otherwise.
    fn reversed(value: &Value) -> Value {
        match value {
            Value::Object(m) => Value::Object(
                m.iter()
                    .rev()
                    .map(|(k, v)| (k.clone(), reversed(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(reversed).collect()),
            v => v.clone(),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        #[test]
        fn issue_8_same_answers_as_equality(a in tiny_value(), b in tiny_value()) {
            proptest::prop_assert_eq!(same(&a, &b), a == b);
            proptest::prop_assert!(same(&a, &reversed(&a)));
            let r = reversed(&b);
            proptest::prop_assert_eq!(same(&a, &r), a == r);
        }
    }

    #[test]
    fn free_ids_avoid_collisions() {
        let t = json!({"Resources": {"A": {}, "A2": {}}, "Parameters": {"A3": {}}});
        assert_eq!(free_id(&t, "B"), "B");
        assert_eq!(free_id(&t, "A"), "A4");
    }
}
