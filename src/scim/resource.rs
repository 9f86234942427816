//! The bridge between the SCIM representation of a resource and what the directory stores:
//! `normalize` checks a client's resource against its schema and puts it in canonical form;
//! `Meta`, `with_meta` and `project` shape what goes back.
//!
//! Normalising is tolerant where the big clients need it and strict where data would be wrong:
//! attribute names are matched case-insensitively and written as the schema spells them;
//! read-only attributes a client sends are ignored (RFC 7644 §3.5.1); a single value where a
//! list belongs is wrapped, a one-element list where one value belongs is unwrapped, booleans
//! sent as "True"/"False" (Entra ID) are read as booleans, and a bare string where a complex
//! value belongs becomes its `value` (Entra ID's manager). Extensions Portcullis does not know
//! are kept as sent. A value of the wrong type is refused with `invalidValue`.

use serde_json::{Map, Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    ScimError,
    attributes::{AttrType, AttributeRules, Mutability},
    filter::AttrPath,
    schema::{AttributeDef, ResourceTypeDef, Returned},
};

/// Checks a client's resource (POST or PUT body, or the result of a PATCH) and returns it in
/// canonical form: no `schemas`, `id` or `meta`, and no read-only or write-only attributes.
pub fn normalize(def: &ResourceTypeDef, input: Value) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(input) = input else {
        return Err(ScimError::invalid_syntax("the body must be a JSON object"));
    };
    check_schemas(def, &input)?;
    let mut out = Map::new();
    for (key, value) in input {
        if ["schemas", "id", "meta"].iter().any(|k| key.eq_ignore_ascii_case(k)) {
            continue;
        }
        if is_urn(&key) {
            normalize_schema_object(def, &key, value, &mut out)?;
        } else if let Some(attribute) = def.attribute(None, &key, None) {
            put(&mut out, attribute, normalize_attribute(attribute, value, &key)?);
        } else if let Some((urn, attribute)) = extension_attribute(def, &key) {
            // An extension's attribute without its URN (Entra ID's `manager`).
            let value = normalize_attribute(attribute, value, &key)?;
            put_in_extension(&mut out, urn, attribute, value);
        }
        // Other attributes that do not exist are dropped (RFC 7644 §3.3 lets a service provider
        // ignore what it does not support).
    }
    out.retain(|_, value| is_present(value));
    for attribute in def.schema.attributes.iter().filter(|a| a.required) {
        if !out.get(attribute.name).is_some_and(is_present) {
            return Err(ScimError::invalid_value(format!("`{}` is required", attribute.name)));
        }
    }
    Ok(out)
}

fn check_schemas(def: &ResourceTypeDef, input: &Map<String, Value>) -> Result<(), ScimError> {
    let Some((_, schemas)) = input.iter().find(|(k, _)| k.eq_ignore_ascii_case("schemas")) else {
        return Ok(());
    };
    let listed = schemas.as_array().filter(|items| items.iter().all(Value::is_string));
    let Some(listed) = listed else {
        return Err(ScimError::invalid_syntax("`schemas` must be an array of schema URNs"));
    };
    if !listed.iter().filter_map(Value::as_str).any(|s| s.eq_ignore_ascii_case(def.schema.id)) {
        return Err(ScimError::invalid_syntax(format!("`schemas` must contain `{}`", def.schema.id)));
    }
    Ok(())
}

/// An object under a schema URN: a known extension (checked), the core schema itself (merged
/// into the top level), or an extension Portcullis does not know (kept as sent).
fn normalize_schema_object(
    def: &ResourceTypeDef,
    urn: &str,
    value: Value,
    out: &mut Map<String, Value>,
) -> Result<(), ScimError> {
    if value.is_null() {
        return Ok(());
    }
    let Value::Object(fields) = value else {
        return Err(ScimError::invalid_value(format!(
            "`{urn}` must be an object of the extension's attributes"
        )));
    };
    let known = def.extensions.iter().find(|(schema, _)| schema.id.eq_ignore_ascii_case(urn));
    if let Some((schema, _)) = known {
        for (key, value) in fields {
            if let Some(attribute) = schema.attribute(&key, None) {
                let path = format!("{}:{key}", schema.id);
                let value = normalize_attribute(attribute, value, &path)?;
                put_in_extension(out, schema.id, attribute, value);
            }
        }
    } else if def.is_core_schema(urn) {
        for (key, value) in fields {
            if let Some(attribute) = def.attribute(None, &key, None) {
                put(out, attribute, normalize_attribute(attribute, value, &key)?);
            }
        }
    } else if !fields.is_empty() {
        out.insert(urn.to_owned(), Value::Object(fields));
    }
    Ok(())
}

/// The attribute `name` of exactly one of the resource's extensions.
fn extension_attribute(def: &ResourceTypeDef, name: &str) -> Option<(&'static str, &'static AttributeDef)> {
    let mut found =
        def.extensions.iter().filter_map(|(schema, _)| Some((schema.id, schema.attribute(name, None)?)));
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// Stores an extension attribute's value in the extension's object, made if absent.
fn put_in_extension(out: &mut Map<String, Value>, urn: &str, attribute: &AttributeDef, value: Value) {
    let slot = out.entry(urn.to_owned()).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Some(fields) = slot.as_object_mut() {
        put(fields, attribute, value);
    }
}

/// Stores a normalised value under the schema's spelling, unless the client may not set it or
/// it is empty (which SCIM treats as unassigned).
fn put(out: &mut Map<String, Value>, attribute: &AttributeDef, value: Value) {
    let writable = !matches!(attribute.mutability, Mutability::ReadOnly | Mutability::WriteOnly)
        && attribute.returned != Returned::Never;
    if writable && is_present(&value) {
        out.insert(attribute.name.to_owned(), value);
    }
}

/// Whether a key names a schema (`urn:…`), compared without slicing inside a character.
fn is_urn(key: &str) -> bool {
    key.len() > 4 && key.get(..4).is_some_and(|prefix| prefix.eq_ignore_ascii_case("urn:"))
}

/// SCIM's notion of a value being there: not null, not an empty string, list or object.
pub fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => !fields.is_empty(),
        _ => true,
    }
}

/// The most values a multi-valued attribute may hold: a person has a handful of addresses, a group
/// may have a whole company as members. Bounds what a PATCH or a filter costs.
fn max_values(attribute: &AttributeDef) -> usize {
    if attribute.name == "members" { MAX_MEMBERS } else { MAX_VALUES }
}

pub const MAX_VALUES: usize = 1_000;
pub const MAX_MEMBERS: usize = 200_000;
/// The longest value of an indexed attribute (userName, externalId, an email, a group name).
pub const MAX_INDEXED_CHARS: usize = 1_024;

fn normalize_attribute(attribute: &AttributeDef, value: Value, path: &str) -> Result<Value, ScimError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    if !attribute.multi_valued {
        let value = match value {
            Value::Array(mut items) if items.len() == 1 => items.remove(0),
            other => other,
        };
        return normalize_single(attribute, value, path);
    }
    let items = match value {
        Value::Array(items) => items,
        single => vec![single],
    };
    let limit = max_values(attribute);
    if items.len() > limit {
        return Err(ScimError::invalid_value(format!("`{path}` may have at most {limit} values")));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let item = normalize_single(attribute, item, path)?;
        if is_present(&item) {
            out.push(item);
        }
    }
    let primaries = out.iter().filter(|item| item.get("primary") == Some(&Value::Bool(true))).count();
    if primaries > 1 {
        return Err(ScimError::invalid_value(format!("at most one value of `{path}` may be primary")));
    }
    Ok(Value::Array(out))
}

fn normalize_single(attribute: &AttributeDef, value: Value, path: &str) -> Result<Value, ScimError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let wrong = |expected: &str| ScimError::invalid_value(format!("`{path}` must be {expected}"));
    match attribute.kind {
        AttrType::Complex => {
            let fields = match value {
                Value::Object(fields) => fields,
                // A bare value where the complex attribute has a `value` (Entra ID's manager).
                scalar @ (Value::String(_) | Value::Number(_) | Value::Bool(_))
                    if attribute.sub_attributes.iter().any(|s| s.name == "value") =>
                {
                    Map::from_iter([("value".to_owned(), scalar)])
                }
                _ => return Err(wrong("an object")),
            };
            let mut out = Map::new();
            for (key, value) in fields {
                if let Some(sub) = attribute.sub_attributes.iter().find(|s| s.name.eq_ignore_ascii_case(&key))
                {
                    let sub_path = format!("{path}.{}", sub.name);
                    put(&mut out, sub, normalize_single(sub, value, &sub_path)?);
                }
            }
            Ok(Value::Object(out))
        }
        AttrType::Boolean => match value {
            Value::Bool(b) => Ok(Value::Bool(b)),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(wrong("true or false")),
        },
        AttrType::Integer => match &value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value),
            _ => Err(wrong("an integer")),
        },
        AttrType::Decimal => match &value {
            Value::Number(_) => Ok(value),
            _ => Err(wrong("a number")),
        },
        AttrType::DateTime => match &value {
            Value::String(s) if OffsetDateTime::parse(s, &Rfc3339).is_ok() => Ok(value),
            _ => Err(wrong("a date and time such as 2026-01-31T09:00:00Z")),
        },
        AttrType::String | AttrType::Reference | AttrType::Binary => match value {
            Value::String(text) if is_indexed(path) && text.chars().count() > MAX_INDEXED_CHARS => Err(
                ScimError::invalid_value(format!("`{path}` is longer than {MAX_INDEXED_CHARS} characters")),
            ),
            Value::String(_) => Ok(value),
            // Numbers and booleans are accepted as their text: IdPs map HR fields loosely.
            Value::Number(n) => Ok(Value::String(n.to_string())),
            Value::Bool(b) => Ok(Value::String(b.to_string())),
            _ => Err(wrong("a string")),
        },
    }
}

/// Whether a path names a value the directory indexes (its length is bounded: index keys).
fn is_indexed(path: &str) -> bool {
    ["userName", "externalId", "displayName", "emails.value"].iter().any(|p| path.eq_ignore_ascii_case(p))
}

/// The `meta` of a resource and the ETag that goes with it.
pub struct Meta<'a> {
    pub resource_type: &'a str,
    pub created: OffsetDateTime,
    pub last_modified: OffsetDateTime,
    pub location: String,
    pub version: u64,
}

impl Meta<'_> {
    pub fn etag(&self) -> String {
        etag(self.version)
    }

    fn to_json(&self) -> Value {
        json!({
            "resourceType": self.resource_type,
            "created": timestamp(self.created),
            "lastModified": timestamp(self.last_modified),
            "location": self.location,
            "version": self.etag(),
        })
    }
}

/// A weak ETag: resources are compared by version, not by bytes.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

pub fn timestamp(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// A stored resource (a profile: an object) with `schemas`, `id` and `meta` put back: the
/// representation a client sees (before `attributes`/`excludedAttributes`).
pub fn with_meta(core_schema: &str, id: &str, stored: &Value, meta: &Meta<'_>) -> Map<String, Value> {
    let fields = stored.as_object();
    let extensions = fields.into_iter().flat_map(|f| f.keys()).filter(|k| k.starts_with("urn:"));
    let mut schemas = vec![Value::String(core_schema.to_owned())];
    schemas.extend(extensions.map(|k| Value::String(k.clone())));
    let mut out = Map::new();
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), Value::String(id.to_owned()));
    out.extend(fields.into_iter().flatten().map(|(k, v)| (k.clone(), v.clone())));
    out.insert("meta".into(), meta.to_json());
    out
}

/// The client's choice of attributes (RFC 7644 §3.4.2.5).
#[derive(Debug, Default, Clone)]
pub struct Projection {
    pub attributes: Vec<AttrPath>,
    pub excluded: Vec<AttrPath>,
}

impl Projection {
    /// Whether the response will include the attribute `name` of the core schema (lets callers
    /// skip building an expensive attribute, such as a large group's members).
    pub fn includes(&self, name: &str) -> bool {
        let named = |p: &AttrPath| p.urn.is_none() && p.name.eq_ignore_ascii_case(name);
        if !self.attributes.is_empty() {
            return self.attributes.iter().any(named);
        }
        !self.excluded.iter().any(|p| named(p) && p.sub.is_none())
    }

    /// Applies the choice to a representation. `id` and `schemas` are always returned, as is
    /// every attribute the schema marks `returned: always`.
    pub fn apply(&self, def: &ResourceTypeDef, resource: &mut Map<String, Value>) {
        if !self.attributes.is_empty() {
            let keep: Map<String, Value> = std::mem::take(resource)
                .into_iter()
                .filter_map(|(key, value)| self.keep_requested(def, &key, value).map(|v| (key, v)))
                .collect();
            *resource = keep;
        }
        for path in &self.excluded {
            if is_always_returned(def, path) {
                continue;
            }
            remove_path(def, resource, path);
        }
    }

    fn keep_requested(&self, def: &ResourceTypeDef, key: &str, value: Value) -> Option<Value> {
        if key == "id" || key == "schemas" {
            return Some(value);
        }
        if key.starts_with("urn:") {
            let Value::Object(fields) = value else { return None };
            let kept: Map<String, Value> = fields
                .into_iter()
                .filter(|(name, _)| self.attributes.iter().any(|p| matches(def, p, Some(key), name)))
                .collect();
            let whole = self.attributes.iter().any(|p| p.urn.is_none() && p.name.eq_ignore_ascii_case(key));
            return (!kept.is_empty() || whole).then_some(Value::Object(kept));
        }
        if def.attribute(None, key, None).is_some_and(|a| a.returned == Returned::Always) {
            return Some(value);
        }
        let requested: Vec<&AttrPath> =
            self.attributes.iter().filter(|p| matches(def, p, None, key)).collect();
        if requested.is_empty() {
            return None;
        }
        if requested.iter().any(|p| p.sub.is_none()) {
            return Some(value);
        }
        let subs: Vec<&str> = requested.iter().filter_map(|p| p.sub.as_deref()).collect();
        Some(keep_subs(value, &subs))
    }
}

/// Whether `path` names the attribute `name` of the schema `urn` (None: core).
fn matches(def: &ResourceTypeDef, path: &AttrPath, urn: Option<&str>, name: &str) -> bool {
    let same_schema = match (&path.urn, urn) {
        (None, None) => true,
        (Some(p), None) => def.is_core_schema(p),
        (Some(p), Some(u)) => p.eq_ignore_ascii_case(u),
        (None, Some(_)) => false,
    };
    same_schema && path.name.eq_ignore_ascii_case(name)
}

fn keep_subs(value: Value, subs: &[&str]) -> Value {
    let filter = |fields: Map<String, Value>| -> Map<String, Value> {
        fields.into_iter().filter(|(k, _)| subs.iter().any(|s| s.eq_ignore_ascii_case(k))).collect()
    };
    match value {
        Value::Object(fields) => Value::Object(filter(fields)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| match item {
                    Value::Object(fields) => Value::Object(filter(fields)),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}

fn is_always_returned(def: &ResourceTypeDef, path: &AttrPath) -> bool {
    let core = path.urn.as_deref().is_none_or(|u| def.is_core_schema(u));
    (core && ["id", "schemas"].iter().any(|n| path.name.eq_ignore_ascii_case(n)))
        || def
            .attribute(path.urn.as_deref(), &path.name, path.sub.as_deref())
            .is_some_and(|a| a.returned == Returned::Always)
}

fn remove_path(def: &ResourceTypeDef, resource: &mut Map<String, Value>, path: &AttrPath) {
    let container = match path.urn.as_deref() {
        Some(urn) if !def.is_core_schema(urn) => {
            let key = resource.keys().find(|k| k.eq_ignore_ascii_case(urn)).cloned();
            match key.and_then(|k| resource.get_mut(&k)) {
                Some(Value::Object(fields)) => fields,
                _ => return,
            }
        }
        _ => resource,
    };
    let Some(key) = container.keys().find(|k| k.eq_ignore_ascii_case(&path.name)).cloned() else { return };
    match &path.sub {
        None => {
            container.remove(&key);
        }
        Some(sub) => match container.get_mut(&key) {
            Some(Value::Object(fields)) => fields.retain(|k, _| !k.eq_ignore_ascii_case(sub)),
            Some(Value::Array(items)) => {
                for item in items.iter_mut() {
                    if let Value::Object(fields) = item {
                        fields.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                    }
                }
            }
            _ => {}
        },
    }
}

/// Reads a comma-separated `attributes` or `excludedAttributes` list.
pub fn parse_attribute_list(list: &str) -> Result<Vec<AttrPath>, ScimError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            super::filter::parse_path(item)
                .ok()
                .filter(|p| p.filter.is_none() && p.sub.is_none())
                .map(|p| p.attr)
                .ok_or_else(|| {
                    ScimError::bad_request("invalidPath", format!("`{item}` is not an attribute name"))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, GROUP_RESOURCE, USER_RESOURCE};

    #[test]
    fn names_are_canonical_read_only_and_write_only_values_are_dropped() {
        let input = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "client-chosen", "meta": {"version": "x"}, "groups": [{"value": "g"}],
            "USERNAME": "ada", "password": "hunter2", "Name": {"GIVENNAME": "Ada"},
            "nonsense": 1,
        });
        let out = normalize(&USER_RESOURCE, input).unwrap();
        assert_eq!(Value::Object(out), json!({"userName": "ada", "name": {"givenName": "Ada"}}));
    }

    #[test]
    fn client_quirks_are_read_as_meant() {
        let input = json!({
            "userName": "ada", "active": "False",
            "emails": {"value": "ada@acme.test", "type": "work"},
            "displayName": ["Ada"],
            ENTERPRISE_USER_SCHEMA: {"manager": "boss-id", "employeeNumber": 42},
            "urn:example:custom:1.0:User": {"badge": "A-1"},
            "department": "R&D",
        });
        let out = Value::Object(normalize(&USER_RESOURCE, input).unwrap());
        assert_eq!(out["active"], json!(false));
        assert_eq!(out["emails"], json!([{"value": "ada@acme.test", "type": "work"}]));
        assert_eq!(out["displayName"], json!("Ada"));
        assert_eq!(
            out[ENTERPRISE_USER_SCHEMA],
            json!({"manager": {"value": "boss-id"}, "employeeNumber": "42", "department": "R&D"})
        );
        assert_eq!(out["urn:example:custom:1.0:User"], json!({"badge": "A-1"}));
    }

    #[test]
    fn wrong_values_are_refused_with_invalid_value() {
        for input in [
            json!({"userName": "ada", "active": "maybe"}),
            json!({"userName": "ada", "name": "Ada"}),
            json!({"userName": ""}),
            json!({"displayName": "no userName"}),
            json!({"userName": "ada", "emails": [{"value": "a@x", "primary": true}, {"value": "b@x", "primary": true}]}),
        ] {
            let err = normalize(&USER_RESOURCE, input.clone()).unwrap_err();
            assert_eq!(err.scim_type, Some("invalidValue"), "{input}");
        }
        let err = normalize(&USER_RESOURCE, json!({"schemas": ["urn:x"], "userName": "a"})).unwrap_err();
        assert_eq!(err.scim_type, Some("invalidSyntax"));
        assert!(normalize(&GROUP_RESOURCE, json!([])).is_err());
    }

    #[test]
    fn non_ascii_keys_and_oversized_values_are_handled_not_panicked_on() {
        let out =
            normalize(&USER_RESOURCE, json!({"userName": "ada", "€€": 1, "部署名": "x", "urné": 2})).unwrap();
        assert_eq!(Value::Object(out), json!({"userName": "ada"}));
        let long = "a".repeat(MAX_INDEXED_CHARS + 1);
        assert!(normalize(&USER_RESOURCE, json!({"userName": long})).is_err());
        let many: Vec<Value> = (0..=MAX_VALUES).map(|i| json!({"value": format!("{i}@x")})).collect();
        assert!(normalize(&USER_RESOURCE, json!({"userName": "a", "emails": many})).is_err());
    }

    proptest::proptest! {
        #[test]
        fn normalize_never_panics(input in arbitrary_json(4)) {
            let _ = normalize(&USER_RESOURCE, input.clone());
            let _ = normalize(&GROUP_RESOURCE, input);
        }
    }

    /// JSON values up to `depth` deep, keys drawn from attribute names, URNs and odd text.
    fn arbitrary_json(depth: u32) -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let key = prop_oneof![
            Just("userName".to_owned()),
            Just("emails".to_owned()),
            Just("name".to_owned()),
            Just("active".to_owned()),
            Just("members".to_owned()),
            Just("value".to_owned()),
            Just(ENTERPRISE_USER_SCHEMA.to_owned()),
            Just("urn:x:y".to_owned()),
            ".{0,6}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(depth, 64, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn projections_keep_what_was_asked_and_always_the_id() {
        let mut resource = Map::from_iter([
            ("schemas".into(), json!(["s"])),
            ("id".into(), json!("1")),
            ("userName".into(), json!("ada")),
            ("name".into(), json!({"givenName": "Ada", "familyName": "Lovelace"})),
            ("emails".into(), json!([{"value": "a@x", "type": "work"}])),
            (ENTERPRISE_USER_SCHEMA.into(), json!({"department": "R&D", "costCenter": "1"})),
        ]);
        let projection = Projection {
            attributes: parse_attribute_list(&format!(
                "userName,name.familyName,{ENTERPRISE_USER_SCHEMA}:department"
            ))
            .unwrap(),
            excluded: vec![],
        };
        let mut asked = resource.clone();
        projection.apply(&USER_RESOURCE, &mut asked);
        assert_eq!(
            Value::Object(asked),
            json!({"schemas": ["s"], "id": "1", "userName": "ada", "name": {"familyName": "Lovelace"},
                   ENTERPRISE_USER_SCHEMA: {"department": "R&D"}})
        );
        let excluded = Projection {
            attributes: vec![],
            excluded: parse_attribute_list("emails, id,name.givenName").unwrap(),
        };
        excluded.apply(&USER_RESOURCE, &mut resource);
        assert!(resource.contains_key("id") && !resource.contains_key("emails"));
        assert_eq!(resource["name"], json!({"familyName": "Lovelace"}));
        assert!(!excluded.includes("emails") && excluded.includes("name"));
    }
}
