//! The SCIM PATCH engine (RFC 7644 §3.5.2): parses a PatchOp request and applies its operations to
//! a resource held as JSON (the shape described in `attributes.rs`).
//!
//! It follows the RFC, and accepts what Microsoft Entra ID and Okta really send:
//! - op names in any case (`Replace`), and the `Operations` key in any case;
//! - booleans as the strings "True"/"False" for Boolean attributes;
//! - a bare string for a complex attribute with a `value` sub-attribute (Entra's manager id);
//! - a one-element array for a single-valued attribute (`[{"value": "id"}]` for manager);
//! - attribute paths as keys of a pathless value (`"name.givenName"`, URN-qualified names,
//!   `emails[type eq "work"].value`), and extension objects keyed by their schema URN;
//! - `add`/`replace` on `attr[filter].sub` when nothing matches: the element is created from the
//!   filter's `eq` terms, provided the filter is a conjunction of them;
//! - `remove` of a multi-valued attribute with a `value` array and no filter (Entra's member removal):
//!   the listed elements go, matched by their `value`;
//! - `add` of an element that an existing element already holds (`{"value": "id"}` re-added for a
//!   member stored with its `display`) is a no-op rather than a duplicate.
//!
//! Choices where the RFC is open: setting an attribute to null or `[]` clears it (RFC 7643 §2.5);
//! removing an absent attribute, or listed elements that are not there, is a no-op, while a filter
//! that matches nothing is `noTarget` as the RFC says; `schemas` keys in a pathless value are
//! ignored (the server derives `schemas`); read-only sub-attributes inside a value are dropped, as
//! RFC 7643 §7 has servers ignore them, while a path naming a read-only attribute is refused.
//! Attributes the rules do not know pass through untouched: the server validates the result.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::attributes::{AttrInfo, AttrType, AttributeRules, Mutability};
use super::filter::{
    self, AttrPath, CompareOp, Filter, PatchPath, element_matches, expected_json, extension_urn, member,
    member_key, parse_bool,
};

/// The message schema every PATCH body must name (RFC 7644 §3.5.2).
pub const PATCH_OP_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    Add,
    Remove,
    Replace,
}

impl PatchOpKind {
    /// The operation named `name`, in any case (Entra capitalises: `Replace`).
    fn from_name(name: &str) -> Option<Self> {
        [PatchOpKind::Add, PatchOpKind::Remove, PatchOpKind::Replace]
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Remove => "remove",
            PatchOpKind::Replace => "replace",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    pub op: PatchOpKind,
    pub path: Option<PatchPath>,
    /// As sent: an explicit `null` is `Some(Value::Null)`.
    pub value: Option<Value>,
}

/// Why a PATCH was refused; each variant is the SCIM `scimType` of the same name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("invalid PATCH request: {0}")]
    InvalidSyntax(String),
    #[error("invalid path: {0}")]
    InvalidPath(String),
    #[error("invalid value: {0}")]
    InvalidValue(String),
    #[error("no target: {0}")]
    NoTarget(String),
    #[error("not modifiable: {0}")]
    Mutability(String),
}

impl PatchError {
    /// The RFC 7644 Table 9 `scimType` for the error response.
    pub fn scim_type(&self) -> &'static str {
        match self {
            PatchError::InvalidSyntax(_) => "invalidSyntax",
            PatchError::InvalidPath(_) => "invalidPath",
            PatchError::InvalidValue(_) => "invalidValue",
            PatchError::NoTarget(_) => "noTarget",
            PatchError::Mutability(_) => "mutability",
        }
    }

    /// The same error, its message prefixed with where it happened.
    fn at(self, place: &str) -> Self {
        match self {
            PatchError::InvalidSyntax(m) => PatchError::InvalidSyntax(format!("{place}: {m}")),
            PatchError::InvalidPath(m) => PatchError::InvalidPath(format!("{place}: {m}")),
            PatchError::InvalidValue(m) => PatchError::InvalidValue(format!("{place}: {m}")),
            PatchError::NoTarget(m) => PatchError::NoTarget(format!("{place}: {m}")),
            PatchError::Mutability(m) => PatchError::Mutability(format!("{place}: {m}")),
        }
    }
}

fn syntax(message: impl Into<String>) -> PatchError {
    PatchError::InvalidSyntax(message.into())
}

fn bad_path(message: impl Into<String>) -> PatchError {
    PatchError::InvalidPath(message.into())
}

fn bad_value(message: impl Into<String>) -> PatchError {
    PatchError::InvalidValue(message.into())
}

fn no_target(message: impl Into<String>) -> PatchError {
    PatchError::NoTarget(message.into())
}

fn immutable(message: impl Into<String>) -> PatchError {
    PatchError::Mutability(message.into())
}

/// The most operations one PATCH may carry (Entra ID sends group members in batches well below).
pub const MAX_OPERATIONS: usize = 1_000;

/// Parses a PatchOp request body: schemas must contain "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// "Operations" a non-empty array (accept the key case-insensitively); op names case-insensitive
/// ("Replace", "add"); path via parse_path (error → InvalidPath).
pub fn parse_request(body: &Value) -> Result<Vec<PatchOperation>, PatchError> {
    let body = body.as_object().ok_or_else(|| syntax("the body must be a JSON object"))?;
    let names_patch_op = member(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|schemas| schemas.iter().any(|s| s.as_str().is_some_and(is_patch_op_urn)));
    if !names_patch_op {
        return Err(syntax(format!("\"schemas\" must contain \"{PATCH_OP_URN}\"")));
    }
    let operations = member(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| syntax("\"Operations\" must be an array of operations"))?;
    if operations.is_empty() {
        return Err(syntax("\"Operations\" is empty"));
    }
    if operations.len() > MAX_OPERATIONS {
        return Err(bad_value(format!("a request may carry at most {MAX_OPERATIONS} operations")));
    }
    operations
        .iter()
        .enumerate()
        .map(|(index, operation)| {
            parse_operation(operation).map_err(|e| e.at(&format!("Operations[{index}]")))
        })
        .collect()
}

fn is_patch_op_urn(urn: &str) -> bool {
    urn.eq_ignore_ascii_case(PATCH_OP_URN)
}

fn parse_operation(operation: &Value) -> Result<PatchOperation, PatchError> {
    let operation = operation.as_object().ok_or_else(|| syntax("an operation must be a JSON object"))?;
    let op = member(operation, "op")
        .and_then(Value::as_str)
        .and_then(PatchOpKind::from_name)
        .ok_or_else(|| syntax("\"op\" must be \"add\", \"remove\" or \"replace\""))?;
    let path = match member(operation, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.trim().is_empty() => None,
        Some(Value::String(text)) => Some(filter::parse_path(text).map_err(|e| bad_path(e.to_string()))?),
        Some(_) => return Err(bad_path("\"path\" must be a string")),
    };
    let value = member(operation, "value").cloned();
    if op != PatchOpKind::Remove && value.is_none() {
        return Err(syntax(format!("\"{}\" needs a \"value\"", op.as_str())));
    }
    Ok(PatchOperation { op, path, value })
}

/// Applies operations in order to a resource (the JSON object shape described in attributes.rs).
/// All-or-nothing is the caller's job (he applies to a clone).
pub fn apply(
    resource: &mut Value,
    ops: &[PatchOperation],
    rules: &dyn AttributeRules,
) -> Result<(), PatchError> {
    let resource = resource.as_object_mut().ok_or_else(|| bad_value("the resource is not a JSON object"))?;
    for (index, operation) in ops.iter().enumerate() {
        apply_operation(resource, operation, rules).map_err(|e| e.at(&format!("Operations[{index}]")))?;
    }
    Ok(())
}

fn apply_operation(
    resource: &mut Map<String, Value>,
    operation: &PatchOperation,
    rules: &dyn AttributeRules,
) -> Result<(), PatchError> {
    let value = operation.value.as_ref();
    match (&operation.path, operation.op) {
        (None, PatchOpKind::Remove) => Err(no_target("remove needs a \"path\"")),
        (None, kind) => {
            let value = value.ok_or_else(|| syntax(format!("\"{}\" needs a \"value\"", kind.as_str())))?;
            apply_pathless(resource, kind, value, rules)
        }
        (Some(path), kind) => apply_at_path(resource, kind, path, value, rules),
    }
}

/// Without a path the value is an object of attributes, each key itself a path (RFC 7644 §3.5.2.1
/// and §3.5.2.3; Entra also writes sub-attribute and filtered paths as keys).
fn apply_pathless(
    resource: &mut Map<String, Value>,
    kind: PatchOpKind,
    value: &Value,
    rules: &dyn AttributeRules,
) -> Result<(), PatchError> {
    let entries = unwrap_singleton(value)
        .as_object()
        .ok_or_else(|| bad_value("without a \"path\", \"value\" must be an object of attributes"))?;
    apply_entries(resource, kind, None, entries, rules)
}

/// Applies each `key: value` of `entries` as an operation on path `key`, inside the extension
/// `schema` when given.
fn apply_entries(
    resource: &mut Map<String, Value>,
    kind: PatchOpKind,
    schema: Option<&str>,
    entries: &Map<String, Value>,
    rules: &dyn AttributeRules,
) -> Result<(), PatchError> {
    for (key, value) in entries {
        if schema.is_none() && key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if schema.is_none() {
            if let Some(container) = schema_container(key, Some(value), resource, rules) {
                apply_to_schema(resource, kind, container, Some(value), rules)?;
                continue;
            }
        }
        let mut path = filter::parse_path(key).map_err(|e| bad_path(format!("key \"{key}\": {e}")))?;
        if let Some(schema) = schema {
            if path.attr.urn.is_some() {
                return Err(bad_path(format!("key \"{key}\" inside \"{schema}\" must not name a schema")));
            }
            path.attr.urn = Some(schema.to_owned());
        }
        // A read-only attribute in a value object is ignored, as in a PUT (RFC 7643 §2.2): Okta
        // renames a group with `{"id": …, "displayName": …}`. Only a path naming one is refused.
        let urn = extension_urn(path.attr.urn.as_deref(), rules);
        if rules.info(urn, &path.attr.name, None).is_some_and(|info| info.mutability == Mutability::ReadOnly)
        {
            continue;
        }
        apply_at_path(resource, kind, &path, Some(value), rules)?;
    }
    Ok(())
}

/// A whole schema named as an attribute: `{"urn:…:enterprise:2.0:User": {…}}` or that URN as a path.
enum SchemaContainer {
    Core,
    Extension(String),
}

/// Whether `text` names a schema rather than an attribute. A URN is a schema when the rules say it
/// is the core one, when the resource holds it as a key, or when it is no known attribute and the
/// value is an object of attributes (an extension the resource does not have yet).
fn schema_container(
    text: &str,
    value: Option<&Value>,
    resource: &Map<String, Value>,
    rules: &dyn AttributeRules,
) -> Option<SchemaContainer> {
    if !text.get(..4).is_some_and(|prefix| prefix.eq_ignore_ascii_case("urn:")) {
        return None;
    }
    if rules.is_core_schema(text) {
        return Some(SchemaContainer::Core);
    }
    if let Some(key) = member_key(resource, text) {
        return Some(SchemaContainer::Extension(key));
    }
    let path = filter::parse_path(text).ok()?;
    let plain = path.filter.is_none() && path.attr.sub.is_none();
    let urn = extension_urn(path.attr.urn.as_deref(), rules);
    let known = rules.info(urn, &path.attr.name, None).is_some();
    let object = value.is_some_and(|value| unwrap_singleton(value).is_object());
    (plain && !known && object).then(|| SchemaContainer::Extension(text.to_owned()))
}

fn apply_to_schema(
    resource: &mut Map<String, Value>,
    kind: PatchOpKind,
    container: SchemaContainer,
    value: Option<&Value>,
    rules: &dyn AttributeRules,
) -> Result<(), PatchError> {
    let schema = match (&container, kind) {
        (SchemaContainer::Core, PatchOpKind::Remove) => {
            return Err(bad_path("the core schema cannot be removed"));
        }
        (SchemaContainer::Extension(urn), PatchOpKind::Remove) => {
            if let Some(key) = member_key(resource, urn) {
                resource.remove(&key);
            }
            return Ok(());
        }
        (SchemaContainer::Core, _) => None,
        (SchemaContainer::Extension(urn), _) => Some(urn.as_str()),
    };
    let entries = value
        .map(unwrap_singleton)
        .and_then(Value::as_object)
        .ok_or_else(|| bad_value("a schema's value must be an object of its attributes"))?;
    apply_entries(resource, kind, schema, entries, rules)
}

/// What one path addresses, with the schema facts that govern it.
struct Target<'p> {
    /// The attribute (its `sub` is None when there is a filter).
    attr: &'p AttrPath,
    /// The extension URN holding the attribute; None for the core schema.
    schema: Option<&'p str>,
    filter: Option<&'p Filter>,
    /// The sub-attribute, written either as `name.sub` or after the filter.
    sub: Option<&'p str>,
    info: Option<AttrInfo>,
    sub_info: Option<AttrInfo>,
}

impl<'p> Target<'p> {
    /// Resolves `path` and refuses what no client may touch: `schemas`, read-only attributes, and a
    /// filter or sub-attribute the schema rules out.
    fn resolve(path: &'p PatchPath, rules: &dyn AttributeRules) -> Result<Self, PatchError> {
        let attr = &path.attr;
        let sub = match (attr.sub.as_deref(), path.sub.as_deref()) {
            (Some(_), Some(_)) => return Err(bad_path(format!("{path}: two sub-attributes"))),
            (inner, outer) => inner.or(outer),
        };
        let schema = extension_urn(attr.urn.as_deref(), rules);
        if schema.is_none() && attr.name.eq_ignore_ascii_case("schemas") {
            return Err(immutable("\"schemas\" is maintained by the server"));
        }
        let info = rules.info(schema, &attr.name, None);
        let sub_info = sub.and_then(|sub| rules.info(schema, &attr.name, Some(sub)));
        let target = Target { attr, schema, filter: path.filter.as_ref(), sub, info, sub_info };
        target.check_shape(path, rules)?;
        target.check_writable(path)?;
        Ok(target)
    }

    fn check_shape(&self, path: &PatchPath, rules: &dyn AttributeRules) -> Result<(), PatchError> {
        if let Some(filter) = self.filter {
            if self.attr.sub.is_some() {
                return Err(bad_path(format!(
                    "{path}: a filter follows the attribute, not its sub-attribute"
                )));
            }
            if self.info.is_some_and(|info| !info.multi_valued) {
                return Err(bad_path(format!("{path}: a filter needs a multi-valued attribute")));
            }
            filter::validate_element_filter(filter, self.attr, rules).map_err(|e| bad_path(e.to_string()))?;
        }
        if self.sub.is_some() && self.info.is_some_and(|info| info.kind != AttrType::Complex) {
            return Err(bad_path(format!("{path}: {} has no sub-attributes", self.attr.name)));
        }
        Ok(())
    }

    fn check_writable(&self, path: &PatchPath) -> Result<(), PatchError> {
        let read_only =
            |info: Option<AttrInfo>| info.is_some_and(|info| info.mutability == Mutability::ReadOnly);
        if read_only(self.info) || read_only(self.sub_info) {
            return Err(immutable(format!("{path} is read-only")));
        }
        Ok(())
    }

    fn label(&self) -> String {
        match self.sub {
            Some(sub) => format!("{}.{sub}", self.attr.name),
            None => self.attr.name.clone(),
        }
    }

    /// Whether the attribute holds an array: from the schema, or for an unknown attribute from the
    /// JSON on either side.
    fn is_multi_valued(&self, current: Option<&Value>, value: &Value) -> bool {
        self.info.map_or_else(
            || matches!(current, Some(Value::Array(_))) || value.is_array(),
            |info| info.multi_valued,
        )
    }

    fn value_case_exact(&self, rules: &dyn AttributeRules) -> bool {
        rules.info(self.schema, &self.attr.name, Some("value")).is_some_and(|info| info.case_exact)
    }

    /// Immutable attributes may be set once: a change to a present value is refused.
    fn check_immutable(&self, before: Option<&Value>, after: Option<&Value>) -> Result<(), PatchError> {
        let is_immutable =
            |info: Option<AttrInfo>| info.is_some_and(|i| i.mutability == Mutability::Immutable);
        let changed = |before: Option<&Value>, after: Option<&Value>| {
            before.is_some_and(filter::is_present) && before != after
        };
        if is_immutable(self.info) && changed(before, after) {
            return Err(immutable(format!("{} is immutable", self.label())));
        }
        if let Some(sub) = self.sub.filter(|_| is_immutable(self.sub_info)) {
            if changed(sub_value(before, sub), sub_value(after, sub)) {
                return Err(immutable(format!("{} is immutable", self.label())));
            }
        }
        Ok(())
    }
}

fn sub_value<'v>(value: Option<&'v Value>, sub: &str) -> Option<&'v Value> {
    member(value?.as_object()?, sub)
}

fn apply_at_path(
    resource: &mut Map<String, Value>,
    kind: PatchOpKind,
    path: &PatchPath,
    value: Option<&Value>,
    rules: &dyn AttributeRules,
) -> Result<(), PatchError> {
    if let Some(container) = whole_schema_path(path, value, resource, rules) {
        return apply_to_schema(resource, kind, container, value, rules);
    }
    let target = Target::resolve(path, rules)?;
    let create = kind != PatchOpKind::Remove;
    let Some(container) = schema_object_mut(resource, target.schema, create)? else {
        // Removing from an extension the resource does not have: only a filter can fail.
        return change_attribute(&mut None, kind, &target, value, rules);
    };
    let key = member_key(container, &target.attr.name).unwrap_or_else(|| target.attr.name.clone());
    let before = container.get(&key).cloned();
    let mut slot = before.clone();
    change_attribute(&mut slot, kind, &target, value, rules)?;
    let after = slot.filter(|value| !is_cleared(value));
    target.check_immutable(before.as_ref(), after.as_ref())?;
    match after {
        Some(value) => container.insert(key, value),
        None => container.remove(&key),
    };
    prune_empty_extension(resource, target.schema);
    Ok(())
}

/// A path that is a schema URN itself (`"path": "urn:…:enterprise:2.0:User"`), which the path
/// grammar reads as attribute `User` of schema `urn:…:2.0`.
fn whole_schema_path(
    path: &PatchPath,
    value: Option<&Value>,
    resource: &Map<String, Value>,
    rules: &dyn AttributeRules,
) -> Option<SchemaContainer> {
    let plain = path.filter.is_none() && path.sub.is_none() && path.attr.sub.is_none();
    let urn = path.attr.urn.as_deref().filter(|_| plain)?;
    schema_container(&format!("{urn}:{}", path.attr.name), value, resource, rules)
}

/// Null, `[]` and `{}` all mean "unassigned" (RFC 7643 §2.5): the attribute is left absent.
fn is_cleared(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(members) => members.is_empty(),
        _ => false,
    }
}

/// The object holding the attributes of `schema` (the resource itself for the core schema),
/// created when absent if `create`.
fn schema_object_mut<'r>(
    resource: &'r mut Map<String, Value>,
    schema: Option<&str>,
    create: bool,
) -> Result<Option<&'r mut Map<String, Value>>, PatchError> {
    let Some(urn) = schema else { return Ok(Some(resource)) };
    let key = member_key(resource, urn).unwrap_or_else(|| urn.to_owned());
    let missing = resource.get(&key).is_none_or(Value::is_null);
    if missing {
        if !create {
            return Ok(None);
        }
        resource.insert(key.clone(), Value::Object(Map::new()));
    }
    match resource.get_mut(&key) {
        Some(Value::Object(attributes)) => Ok(Some(attributes)),
        _ => Err(bad_value(format!("{urn} must be an object of attributes"))),
    }
}

/// An extension left without attributes is dropped, like an emptied attribute.
fn prune_empty_extension(resource: &mut Map<String, Value>, schema: Option<&str>) {
    let Some(key) = schema.and_then(|urn| member_key(resource, urn)) else { return };
    if resource.get(&key).is_some_and(is_cleared) {
        resource.remove(&key);
    }
}

/// Runs one operation on the attribute's current value `slot` (None: absent).
fn change_attribute(
    slot: &mut Option<Value>,
    kind: PatchOpKind,
    target: &Target<'_>,
    value: Option<&Value>,
    rules: &dyn AttributeRules,
) -> Result<(), PatchError> {
    match kind {
        PatchOpKind::Remove => remove(slot, target, value, rules),
        PatchOpKind::Add | PatchOpKind::Replace => {
            let value = value.ok_or_else(|| syntax(format!("\"{}\" needs a \"value\"", kind.as_str())))?;
            set(slot, kind, target, value, rules)
        }
    }
}

/// `add` and `replace` (RFC 7644 §3.5.2.1, §3.5.2.3). They differ only for a multi-valued
/// attribute without a filter (add appends, replace swaps the set) and for a filtered element
/// (add merges into it, replace swaps it).
fn set(
    slot: &mut Option<Value>,
    kind: PatchOpKind,
    target: &Target<'_>,
    value: &Value,
    rules: &dyn AttributeRules,
) -> Result<(), PatchError> {
    if let Some(filter) = target.filter {
        return set_in_matching(slot, kind, target, filter, value, rules);
    }
    if let Some(sub) = target.sub {
        return set_sub_attribute(slot, target, sub, value);
    }
    if target.is_multi_valued(slot.as_ref(), value) {
        let elements = coerce_elements(target, value, rules)?;
        return match kind {
            PatchOpKind::Add => append(slot, elements),
            _ => replace_all(slot, elements),
        };
    }
    let new = coerce_attribute(target, value, rules)?;
    merge_or_set(slot, new);
    Ok(())
}

/// A complex value merges into the existing one sub-attribute by sub-attribute (RFC: "sub-attributes
/// that are not specified are left unchanged"); anything else replaces it.
fn merge_or_set(slot: &mut Option<Value>, new: Value) {
    match (slot.as_mut(), new) {
        (Some(Value::Object(existing)), Value::Object(members)) => merge_members(existing, members),
        (_, new) => *slot = Some(new),
    }
}

/// Sets each member of `members` on `object`, matching keys case-insensitively; null clears.
fn merge_members(object: &mut Map<String, Value>, members: Map<String, Value>) {
    for (name, value) in members {
        set_member(object, &name, value);
    }
}

fn set_member(object: &mut Map<String, Value>, name: &str, value: Value) {
    let key = member_key(object, name).unwrap_or_else(|| name.to_owned());
    if value.is_null() {
        object.remove(&key);
    } else {
        object.insert(key, value);
    }
}

fn remove_member(object: &mut Map<String, Value>, name: &str) {
    if let Some(key) = member_key(object, name) {
        object.remove(&key);
    }
}

/// `add` to a multi-valued attribute: new elements are appended, unless one already holds them.
fn append(slot: &mut Option<Value>, elements: Vec<Value>) -> Result<(), PatchError> {
    let mut items = take_array(slot);
    let mut added = Vec::new();
    for element in elements.into_iter().filter(|element| !element.is_null()) {
        if !items.iter().any(|existing| holds(existing, &element)) {
            items.push(element);
            added.push(items.len() - 1);
        }
    }
    settle_primary(&mut items, &added);
    *slot = Some(Value::Array(items));
    Ok(())
}

/// Whether `existing` equals `element` or has all its members with equal values: IdPs re-add
/// `{"value": "id"}` for a member stored as `{"value": "id", "display": "…"}`, which is no new member.
fn holds(existing: &Value, element: &Value) -> bool {
    match (existing, element) {
        (Value::Object(existing), Value::Object(element)) if !element.is_empty() => {
            element.iter().all(|(name, value)| member(existing, name) == Some(value))
        }
        (existing, element) => existing == element,
    }
}

fn replace_all(slot: &mut Option<Value>, elements: Vec<Value>) -> Result<(), PatchError> {
    let mut items: Vec<Value> = elements.into_iter().filter(|element| !element.is_null()).collect();
    let all: Vec<usize> = (0..items.len()).collect();
    settle_primary(&mut items, &all);
    *slot = Some(Value::Array(items));
    Ok(())
}

/// The elements in `slot`, taken out: none if the attribute is absent, one if it was (wrongly)
/// stored as a single value. The caller puts the array back.
fn take_array(slot: &mut Option<Value>) -> Vec<Value> {
    match slot.take() {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(single) => vec![single],
    }
}

/// `name.sub` without a filter: on a single complex attribute (created if absent), or on every
/// element of a multi-valued one.
fn set_sub_attribute(
    slot: &mut Option<Value>,
    target: &Target<'_>,
    sub: &str,
    value: &Value,
) -> Result<(), PatchError> {
    let new = coerce_sub(target, sub, value)?;
    match slot {
        Some(Value::Array(items)) if !items.is_empty() => {
            for item in items.iter_mut() {
                set_member(element_object(item, target)?, sub, new.clone());
            }
            let all: Vec<usize> = (0..items.len()).collect();
            settle_primary(items, &all);
            Ok(())
        }
        Some(Value::Object(object)) => {
            set_member(object, sub, new);
            Ok(())
        }
        None | Some(Value::Null) | Some(Value::Array(_)) => {
            if target.info.is_some_and(|info| info.multi_valued) {
                return Err(no_target(format!("{} has no elements to set {sub} on", target.attr.name)));
            }
            let mut object = Map::new();
            set_member(&mut object, sub, new);
            *slot = Some(Value::Object(object));
            Ok(())
        }
        Some(_) => Err(bad_path(format!("{} is not complex", target.attr.name))),
    }
}

fn element_object<'v>(
    item: &'v mut Value,
    target: &Target<'_>,
) -> Result<&'v mut Map<String, Value>, PatchError> {
    item.as_object_mut()
        .ok_or_else(|| bad_path(format!("the elements of {} are not complex", target.attr.name)))
}

/// `attr[filter]` or `attr[filter].sub` with add or replace.
fn set_in_matching(
    slot: &mut Option<Value>,
    kind: PatchOpKind,
    target: &Target<'_>,
    filter: &Filter,
    value: &Value,
    rules: &dyn AttributeRules,
) -> Result<(), PatchError> {
    let new = match target.sub {
        Some(sub) => coerce_sub(target, sub, value)?,
        None => coerce_element(target, unwrap_singleton(value), rules)?,
    };
    let mut items = take_array(slot);
    let matched = matching_indices(&items, target, filter, rules);
    if matched.is_empty() {
        create_element(&mut items, target, filter, new, rules)?;
        *slot = Some(Value::Array(items));
        return Ok(());
    }
    for &index in &matched {
        let Some(item) = items.get_mut(index) else { continue };
        match (target.sub, kind) {
            (Some(sub), _) => set_member(element_object(item, target)?, sub, new.clone()),
            (None, PatchOpKind::Add) => merge_element(item, new.clone()),
            (None, _) => *item = replacement_element(filter, new.clone()),
        }
    }
    settle_primary(&mut items, &matched);
    *slot = Some(Value::Array(items));
    Ok(())
}

fn matching_indices(
    items: &[Value],
    target: &Target<'_>,
    filter: &Filter,
    rules: &dyn AttributeRules,
) -> Vec<usize> {
    let matches = |item: &Value| element_matches(filter, target.attr, item, rules);
    items.iter().enumerate().filter(|(_, item)| matches(item)).map(|(index, _)| index).collect()
}

fn merge_element(item: &mut Value, new: Value) {
    match (item.as_object_mut(), new) {
        (Some(existing), Value::Object(members)) => merge_members(existing, members),
        (_, new) => *item = new,
    }
}

/// A replaced element keeps what the filter's `eq` terms say about it unless the new value says
/// otherwise, so the same replace applied twice (an IdP retry) finds and yields the same element.
fn replacement_element(filter: &Filter, new: Value) -> Value {
    match (eq_terms(filter), new) {
        (Some(mut seed), Value::Object(members)) => {
            merge_members(&mut seed, members);
            Value::Object(seed)
        }
        (_, new) => new,
    }
}

/// Nothing matched `attr[filter]`: Entra still expects the value set, so an element is made from the
/// filter's `eq` terms plus the value, if the filter is a conjunction of `eq` terms and the value
/// does not contradict them (the new element must match the filter it was made from).
fn create_element(
    items: &mut Vec<Value>,
    target: &Target<'_>,
    filter: &Filter,
    new: Value,
    rules: &dyn AttributeRules,
) -> Result<(), PatchError> {
    let none_match = || no_target(format!("no element of {} matches [{filter}]", target.attr.name));
    let mut element = eq_terms(filter).ok_or_else(none_match)?;
    match (target.sub, new) {
        (Some(sub), new) => set_member(&mut element, sub, new),
        (None, Value::Object(members)) => merge_members(&mut element, members),
        (None, _) => return Err(bad_value(format!("{} elements are objects", target.attr.name))),
    }
    let element = Value::Object(element);
    if !element_matches(filter, target.attr, &element, rules) {
        return Err(none_match());
    }
    items.push(element);
    let added = items.len() - 1;
    settle_primary(items, &[added]);
    Ok(())
}

/// The members a filter pins down when it is `a eq x and b eq y …` on plain sub-attribute names.
fn eq_terms(filter: &Filter) -> Option<Map<String, Value>> {
    match filter {
        Filter::Compare { path, op: CompareOp::Eq, value } if path.urn.is_none() && path.sub.is_none() => {
            if value.is_null() {
                return None;
            }
            Some(Map::from_iter([(path.name.clone(), value.clone())]))
        }
        Filter::And(left, right) => {
            let mut terms = eq_terms(left)?;
            for (name, value) in eq_terms(right)? {
                match member(&terms, &name) {
                    Some(existing) if *existing != value => return None,
                    _ => set_member(&mut terms, &name, value),
                }
            }
            Some(terms)
        }
        _ => None,
    }
}

/// `remove` (RFC 7644 §3.5.2.2).
fn remove(
    slot: &mut Option<Value>,
    target: &Target<'_>,
    value: Option<&Value>,
    rules: &dyn AttributeRules,
) -> Result<(), PatchError> {
    if let Some(filter) = target.filter {
        return remove_matching(slot, target, filter, rules);
    }
    if let Some(sub) = target.sub {
        remove_sub_attribute(slot, sub);
        return Ok(());
    }
    match (slot.as_mut(), value) {
        (Some(Value::Array(items)), Some(listed)) if !listed.is_null() => {
            remove_listed(items, listed, target.value_case_exact(rules));
        }
        _ => *slot = None,
    }
    Ok(())
}

fn remove_matching(
    slot: &mut Option<Value>,
    target: &Target<'_>,
    filter: &Filter,
    rules: &dyn AttributeRules,
) -> Result<(), PatchError> {
    let none_match = || no_target(format!("no element of {} matches [{filter}]", target.attr.name));
    let Some(Value::Array(items)) = slot.as_mut() else { return Err(none_match()) };
    let matched = matching_indices(items, target, filter, rules);
    if matched.is_empty() {
        return Err(none_match());
    }
    match target.sub {
        None => {
            let mut index = 0;
            items.retain(|_| {
                index += 1;
                !matched.contains(&(index - 1))
            });
        }
        Some(sub) => {
            for &index in &matched {
                if let Some(object) = items.get_mut(index).and_then(Value::as_object_mut) {
                    remove_member(object, sub);
                }
            }
            items.retain(|item| !is_cleared(item));
        }
    }
    Ok(())
}

fn remove_sub_attribute(slot: &mut Option<Value>, sub: &str) {
    match slot {
        Some(Value::Object(object)) => remove_member(object, sub),
        Some(Value::Array(items)) => {
            for object in items.iter_mut().filter_map(Value::as_object_mut) {
                remove_member(object, sub);
            }
            items.retain(|item| !is_cleared(item));
        }
        _ => {}
    }
}

/// Entra removes members as `{"op":"remove","path":"members","value":[{"value":"id"}]}`: each
/// listed element goes, matched whole or by its `value`.
fn remove_listed(items: &mut Vec<Value>, listed: &Value, case_exact: bool) {
    let listed: Vec<&Value> = match listed {
        Value::Array(listed) => listed.iter().collect(),
        single => vec![single],
    };
    items.retain(|item| !listed.iter().any(|wanted| same_element(item, wanted, case_exact)));
}

fn same_element(item: &Value, wanted: &Value, case_exact: bool) -> bool {
    if item == wanted {
        return true;
    }
    let value_of = |v: &Value| v.as_object().and_then(|object| member(object, "value")).cloned();
    match (value_of(item), value_of(wanted)) {
        (Some(Value::String(left)), Some(Value::String(right))) if !case_exact => {
            left.to_lowercase() == right.to_lowercase()
        }
        (Some(left), Some(right)) => left == right,
        _ => false,
    }
}

/// After elements were set or added (`touched`), the last of them with `primary: true` keeps it and
/// every other element loses it (RFC 7643 §2.4: at most one primary value).
fn settle_primary(items: &mut [Value], touched: &[usize]) {
    let Some(keep) = touched.iter().rev().copied().find(|&index| items.get(index).is_some_and(is_primary))
    else {
        return;
    };
    for (index, item) in items.iter_mut().enumerate() {
        if index != keep && is_primary(item) {
            if let Some(object) = item.as_object_mut() {
                set_member(object, "primary", Value::Bool(false));
            }
        }
    }
}

fn is_primary(item: &Value) -> bool {
    item.as_object().and_then(|object| member(object, "primary")) == Some(&Value::Bool(true))
}

/// Entra wraps single values in one-element arrays; a single-valued attribute takes the element.
fn unwrap_singleton(value: &Value) -> &Value {
    match value {
        Value::Array(items) if items.len() == 1 => items.first().unwrap_or(value),
        other => other,
    }
}

/// The value for a single-valued attribute, coerced to its type.
fn coerce_attribute(
    target: &Target<'_>,
    value: &Value,
    rules: &dyn AttributeRules,
) -> Result<Value, PatchError> {
    let Some(info) = target.info else { return Ok(value.clone()) };
    let value = unwrap_singleton(value);
    match value {
        Value::Array(_) => Err(bad_value(format!("{} takes a single value, not an array", target.label()))),
        value => coerce_typed(target, info, value, rules),
    }
}

/// The elements for a multi-valued attribute: an array, or one value taken as a one-element array.
fn coerce_elements(
    target: &Target<'_>,
    value: &Value,
    rules: &dyn AttributeRules,
) -> Result<Vec<Value>, PatchError> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        single => vec![single],
    };
    items.into_iter().map(|item| coerce_element(target, item, rules)).collect()
}

fn coerce_element(
    target: &Target<'_>,
    item: &Value,
    rules: &dyn AttributeRules,
) -> Result<Value, PatchError> {
    match target.info {
        None => Ok(item.clone()),
        Some(info) => coerce_typed(target, info, item, rules),
    }
}

fn coerce_typed(
    target: &Target<'_>,
    info: AttrInfo,
    value: &Value,
    rules: &dyn AttributeRules,
) -> Result<Value, PatchError> {
    match info.kind {
        AttrType::Complex => coerce_complex(target, value, rules),
        kind => coerce_scalar(value, kind, &target.attr.name),
    }
}

/// An object whose known sub-attributes are coerced and read-only ones dropped; a bare scalar
/// becomes `{"value": scalar}` when the attribute has a `value` (Entra's manager id).
fn coerce_complex(
    target: &Target<'_>,
    value: &Value,
    rules: &dyn AttributeRules,
) -> Result<Value, PatchError> {
    let name = &target.attr.name;
    match value {
        Value::Null => Ok(Value::Null),
        Value::Object(members) => {
            let mut coerced = Map::new();
            for (sub, value) in members {
                match rules.info(target.schema, name, Some(sub)) {
                    Some(info) if info.mutability == Mutability::ReadOnly => {}
                    Some(info) => {
                        coerced.insert(sub.clone(), coerce_sub_value(info, value, &format!("{name}.{sub}"))?);
                    }
                    None => {
                        coerced.insert(sub.clone(), value.clone());
                    }
                }
            }
            Ok(Value::Object(coerced))
        }
        Value::Bool(_) | Value::Number(_) | Value::String(_)
            if rules.info(target.schema, name, Some("value")).is_some() =>
        {
            let wrapped = Value::Object(Map::from_iter([("value".to_owned(), value.clone())]));
            coerce_complex(target, &wrapped, rules)
        }
        _ => Err(bad_value(format!("{name} must be an object of sub-attributes"))),
    }
}

/// The value for `name.sub`, coerced when the schema knows the sub-attribute.
fn coerce_sub(target: &Target<'_>, sub: &str, value: &Value) -> Result<Value, PatchError> {
    match target.sub_info {
        None => Ok(value.clone()),
        Some(info) => coerce_sub_value(info, value, &format!("{}.{sub}", target.attr.name)),
    }
}

fn coerce_sub_value(info: AttrInfo, value: &Value, label: &str) -> Result<Value, PatchError> {
    if info.kind == AttrType::Complex {
        return Ok(value.clone());
    }
    if !info.multi_valued {
        return coerce_scalar(unwrap_singleton(value), info.kind, label);
    }
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| coerce_scalar(item, info.kind, label))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        single => coerce_scalar(single, info.kind, label).map(|item| Value::Array(vec![item])),
    }
}

/// Checks a simple value against its type, converting what lenient clients send: "True"/"False"
/// for booleans, `5.0` for an integer.
fn coerce_scalar(value: &Value, kind: AttrType, label: &str) -> Result<Value, PatchError> {
    let coerced = match (kind, value) {
        (_, Value::Null) => Some(Value::Null),
        (AttrType::Boolean, Value::Bool(_)) => Some(value.clone()),
        (AttrType::Boolean, Value::String(text)) => parse_bool(text).map(Value::Bool),
        (AttrType::Integer, Value::Number(number)) => integer(number),
        (AttrType::Decimal, Value::Number(_)) => Some(value.clone()),
        (AttrType::DateTime, Value::String(text)) => {
            OffsetDateTime::parse(text, &Rfc3339).is_ok().then(|| value.clone())
        }
        (AttrType::String | AttrType::Reference | AttrType::Binary, Value::String(_)) => Some(value.clone()),
        (AttrType::Complex, _) => Some(value.clone()),
        _ => None,
    };
    coerced.ok_or_else(|| bad_value(format!("{label} must be {}", expected_json(kind))))
}

/// An integral JSON number (`5` or `5.0`) as an integer.
fn integer(number: &serde_json::Number) -> Option<Value> {
    if number.is_i64() || number.is_u64() {
        return Some(Value::Number(number.clone()));
    }
    let float = number.as_f64()?;
    let in_range = float.fract() == 0.0 && float.abs() < 9.0e15;
    in_range.then(|| Value::from(float as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::tests::{ENTERPRISE, UserRules, barbara};
    use proptest::prelude::*;
    use serde_json::json;

    fn request(operations: Value) -> Value {
        json!({"schemas": [PATCH_OP_URN], "Operations": operations})
    }

    /// Parses `operations` as a request body and applies them to a copy of `resource`.
    fn patched(resource: &Value, operations: Value) -> Result<Value, PatchError> {
        let ops = parse_request(&request(operations))?;
        let mut copy = resource.clone();
        apply(&mut copy, &ops, &UserRules)?;
        Ok(copy)
    }

    fn ok(resource: &Value, operations: Value) -> Value {
        patched(resource, operations).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(resource: &Value, operations: Value) -> PatchError {
        patched(resource, operations).unwrap_err()
    }

    fn enterprise(resource: &Value) -> &Value {
        &resource[ENTERPRISE]
    }

    // ---- parse_request ----

    #[test]
    fn parses_the_rfc_add_members_request() {
        let body = request(json!([{
            "op": "add",
            "path": "members",
            "value": [{"display": "Babs Jensen", "$ref": "https://example.com/v2/Users/2819c223", "value": "2819c223"}]
        }]));
        let ops = parse_request(&body).unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].op, PatchOpKind::Add);
        assert_eq!(ops[0].path.as_ref().map(|p| p.attr.name.as_str()), Some("members"));
    }

    #[test]
    fn parse_accepts_any_case_for_op_names_and_the_operations_key() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "operations": [{"Op": "Replace", "Path": "active", "Value": "False"}, {"op": "REMOVE", "path": "title"}]
        });
        let ops = parse_request(&body).unwrap();
        assert_eq!(ops[0].op, PatchOpKind::Replace);
        assert_eq!(ops[1].op, PatchOpKind::Remove);
        assert_eq!(ops[1].value, None);
    }

    #[test]
    fn parse_refuses_malformed_requests() {
        let cases = [
            json!([]),
            json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]}),
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": []}),
            json!({"schemas": [PATCH_OP_URN]}),
            json!({"schemas": [PATCH_OP_URN], "Operations": []}),
            json!({"schemas": [PATCH_OP_URN], "Operations": {"op": "add"}}),
            json!({"schemas": [PATCH_OP_URN], "Operations": ["add"]}),
            json!({"schemas": [PATCH_OP_URN], "Operations": [{"op": "move", "path": "title"}]}),
            json!({"schemas": [PATCH_OP_URN], "Operations": [{"op": "add", "path": "title"}]}),
            json!({"schemas": [PATCH_OP_URN], "Operations": [{"path": "title", "value": "x"}]}),
        ];
        for body in cases {
            assert!(matches!(parse_request(&body), Err(PatchError::InvalidSyntax(_))), "{body}");
        }
    }

    #[test]
    fn parse_reports_bad_paths_with_the_operation_index() {
        let body = request(json!([
            {"op": "remove", "path": "title"},
            {"op": "remove", "path": "emails[type eq \"work\""}
        ]));
        let error = parse_request(&body).unwrap_err();
        assert!(matches!(&error, PatchError::InvalidPath(m) if m.starts_with("Operations[1]: ")), "{error}");
        let body = request(json!([{"op": "remove", "path": 5}]));
        assert!(matches!(parse_request(&body), Err(PatchError::InvalidPath(_))));
    }

    #[test]
    fn errors_map_to_scim_types() {
        let types: Vec<_> = [
            PatchError::InvalidSyntax(String::new()),
            PatchError::InvalidPath(String::new()),
            PatchError::InvalidValue(String::new()),
            PatchError::NoTarget(String::new()),
            PatchError::Mutability(String::new()),
        ]
        .iter()
        .map(PatchError::scim_type)
        .collect();
        assert_eq!(types, ["invalidSyntax", "invalidPath", "invalidValue", "noTarget", "mutability"]);
    }

    // ---- RFC 7644 §3.5.2.1 add ----

    fn group() -> Value {
        json!({
            "id": "e9e30dba",
            "displayName": "Tour Guides",
            "members": [
                {"value": "2819c223", "display": "Babs Jensen"},
                {"value": "902c246b", "display": "Mandy Pepperidge"}
            ]
        })
    }

    #[test]
    fn add_appends_to_a_multi_valued_attribute_and_skips_equal_elements() {
        let member = json!({"value": "08e1d05d", "display": "James Smith"});
        let added = ok(&group(), json!([{"op": "add", "path": "members", "value": [member.clone()]}]));
        assert_eq!(added["members"].as_array().unwrap().len(), 3);
        assert_eq!(added["members"][2], member);
        let again = ok(&added, json!([{"op": "add", "path": "members", "value": [member]}]));
        assert_eq!(again, added);
        let known = ok(&group(), json!([{"op": "Add", "path": "members", "value": [{"value": "2819c223"}]}]));
        assert_eq!(known, group(), "an element holding the new one's members is the same element");
    }

    #[test]
    fn add_without_path_merges_attributes() {
        let value = json!({"emails": [{"value": "babs@jensen.org", "type": "home"}], "nickName": "Babs"});
        let result = ok(&barbara(), json!([{"op": "add", "value": value}]));
        assert_eq!(result["nickName"], "Babs");
        assert_eq!(result["emails"], barbara()["emails"], "the equal home email is not added twice");
        let name = ok(&barbara(), json!([{"op": "add", "value": {"name": {"middleName": "Jane"}}}]));
        assert_eq!(
            name["name"],
            json!({"familyName": "Jensen", "givenName": "Barbara", "middleName": "Jane"})
        );
    }

    #[test]
    fn add_to_a_simple_attribute_replaces_it() {
        let result = ok(&barbara(), json!([{"op": "add", "path": "userType", "value": "Contractor"}]));
        assert_eq!(result["userType"], "Contractor");
    }

    #[test]
    fn primary_true_clears_primary_on_the_other_elements() {
        let new = json!({"value": "b@new.org", "type": "other", "primary": true});
        let result = ok(&barbara(), json!([{"op": "add", "path": "emails", "value": [new]}]));
        assert_eq!(result["emails"][0]["primary"], false);
        assert_eq!(result["emails"][2]["primary"], true);
        let result = ok(
            &barbara(),
            json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]),
        );
        assert_eq!(result["emails"][0]["primary"], false);
        assert_eq!(result["emails"][1]["primary"], true);
        let two = json!([{"value": "a@x", "primary": true}, {"value": "b@x", "primary": true}]);
        let result = ok(&barbara(), json!([{"op": "replace", "path": "emails", "value": two}]));
        assert_eq!(
            result["emails"],
            json!([{"value": "a@x", "primary": false}, {"value": "b@x", "primary": true}])
        );
    }

    // ---- RFC 7644 §3.5.2.2 remove ----

    #[test]
    fn remove_needs_a_path() {
        assert!(matches!(err(&group(), json!([{"op": "remove"}])), PatchError::NoTarget(_)));
    }

    #[test]
    fn remove_by_filter_drops_matching_elements() {
        let result = ok(&group(), json!([{"op": "remove", "path": "members[value eq \"2819c223\"]"}]));
        assert_eq!(result["members"], json!([{"value": "902c246b", "display": "Mandy Pepperidge"}]));
        let error = err(&group(), json!([{"op": "remove", "path": "members[value eq \"nobody\"]"}]));
        assert!(matches!(error, PatchError::NoTarget(_)), "{error}");
        let work = ok(
            &barbara(),
            json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}]),
        );
        assert_eq!(work["emails"], json!([{"value": "babs@jensen.org", "type": "home"}]));
    }

    #[test]
    fn removing_everything_leaves_the_attribute_absent() {
        let all = ok(&group(), json!([{"op": "remove", "path": "members"}]));
        assert!(all.get("members").is_none());
        let each = ok(
            &group(),
            json!([
                {"op": "remove", "path": "members[value eq \"2819c223\"]"},
                {"op": "remove", "path": "members[value eq \"902c246b\"]"}
            ]),
        );
        assert!(each.get("members").is_none());
        let name = ok(
            &barbara(),
            json!([{"op": "remove", "path": "name.givenName"}, {"op": "remove", "path": "name.familyName"}]),
        );
        assert!(name.get("name").is_none());
    }

    #[test]
    fn remove_of_a_sub_attribute_of_matching_elements() {
        let result = ok(&barbara(), json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]));
        assert_eq!(result["emails"][0], json!({"value": "bjensen@example.com", "type": "work"}));
    }

    #[test]
    fn remove_of_an_absent_attribute_is_a_no_op() {
        assert_eq!(ok(&barbara(), json!([{"op": "remove", "path": "displayName"}])), barbara());
        let no_extension = json!({"userName": "x"});
        let result = ok(&no_extension, json!([{"op": "remove", "path": format!("{ENTERPRISE}:department")}]));
        assert_eq!(result, no_extension);
    }

    #[test]
    fn remove_with_a_value_list_removes_those_elements() {
        // Entra's member removal, without a filter.
        let operation = json!([{"op": "Remove", "path": "members", "value": [{"value": "2819c223"}]}]);
        let result = ok(&group(), operation);
        assert_eq!(result["members"], json!([{"value": "902c246b", "display": "Mandy Pepperidge"}]));
        let operation = json!([{"op": "remove", "path": "emails", "value": [{"value": "BABS@jensen.org"}]}]);
        let result = ok(&barbara(), operation);
        assert_eq!(result["emails"].as_array().unwrap().len(), 1, "emails values are not case-exact");
        let absent = json!([{"op": "remove", "path": "members", "value": [{"value": "nobody"}]}]);
        assert_eq!(ok(&group(), absent), group());
    }

    // ---- RFC 7644 §3.5.2.3 replace ----

    #[test]
    fn replace_of_a_multi_valued_attribute_replaces_the_set() {
        let members = json!([{"display": "James Smith", "value": "08e1d05d"}]);
        let result = ok(&group(), json!([{"op": "replace", "path": "members", "value": members.clone()}]));
        assert_eq!(result["members"], members);
    }

    #[test]
    fn replace_of_a_filtered_element_and_of_its_sub_attribute() {
        let user = json!({"addresses": [
            {"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood"},
            {"type": "home", "streetAddress": "456 Hollywood Blvd"}
        ]});
        let street = json!([{"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1010 Broadway Ave"}]);
        let result = ok(&user, street);
        assert_eq!(result["addresses"][0]["streetAddress"], "1010 Broadway Ave");
        assert_eq!(result["addresses"][0]["locality"], "Hollywood");
        let work = json!({"type": "work", "streetAddress": "911 Universal City Plaza", "primary": true});
        let result = ok(
            &user,
            json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": work.clone()}]),
        );
        assert_eq!(result["addresses"][0], work);
        assert_eq!(result["addresses"][1], user["addresses"][1]);
    }

    #[test]
    fn replaced_elements_keep_the_filter_eq_terms() {
        let operation =
            json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": {"value": "new@x.com"}}]);
        let result = ok(&barbara(), operation);
        assert_eq!(result["emails"][0], json!({"type": "work", "value": "new@x.com"}));
    }

    #[test]
    fn replace_without_path_replaces_each_attribute() {
        let value = json!({"emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}], "nickName": "Babs"});
        let result = ok(&barbara(), json!([{"op": "replace", "value": value}]));
        assert_eq!(result["emails"].as_array().unwrap().len(), 1);
        assert_eq!(result["nickName"], "Babs");
    }

    #[test]
    fn replace_of_a_complex_attribute_merges_sub_attributes() {
        // Okta replaces the whole name object; unspecified sub-attributes stay (RFC 7644 §3.5.2.3).
        let operation =
            json!([{"op": "replace", "value": {"name": {"givenName": "Babs", "formatted": "Babs Jensen"}}}]);
        let result = ok(&barbara(), operation);
        assert_eq!(
            result["name"],
            json!({"familyName": "Jensen", "givenName": "Babs", "formatted": "Babs Jensen"})
        );
    }

    #[test]
    fn null_or_empty_values_clear_an_attribute() {
        let result = ok(
            &barbara(),
            json!([
                {"op": "replace", "path": "userType", "value": null},
                {"op": "replace", "path": "emails", "value": []},
                {"op": "replace", "path": "name", "value": {"givenName": null, "familyName": null}}
            ]),
        );
        for attribute in ["userType", "emails", "name"] {
            assert!(result.get(attribute).is_none(), "{attribute}");
        }
    }

    #[test]
    fn keys_are_matched_case_insensitively() {
        let result = ok(&barbara(), json!([{"op": "replace", "path": "userName", "value": "babs"}]));
        assert_eq!(result["UserName"], "babs");
        assert!(result.get("userName").is_none());
        let result = ok(&barbara(), json!([{"op": "replace", "path": "NAME.GIVENNAME", "value": "B"}]));
        assert_eq!(result["name"]["givenName"], "B");
    }

    // ---- mutability ----

    #[test]
    fn read_only_attributes_and_schemas_are_refused() {
        let operations = [
            json!({"op": "replace", "path": "id", "value": "x"}),
            json!({"op": "add", "path": "groups", "value": [{"value": "g"}]}),
            json!({"op": "remove", "path": "meta"}),
            json!({"op": "replace", "path": "meta.lastModified", "value": "2020-01-01T00:00:00Z"}),
            json!({"op": "remove", "path": "groups[value eq \"g\"]"}),
            json!({"op": "replace", "path": "schemas", "value": []}),
            json!({"op": "replace", "path": format!("{ENTERPRISE}:manager.displayName"), "value": "x"}),
        ];
        for operation in operations {
            let error = err(&barbara(), json!([operation.clone()]));
            assert!(matches!(error, PatchError::Mutability(_)), "{operation}: {error}");
        }
        // In a value object they are ignored, as in a PUT.
        assert_eq!(ok(&barbara(), json!([{"op": "replace", "value": {"id": "x", "meta": {}}}])), barbara());
    }

    #[test]
    fn schemas_in_a_pathless_value_are_left_to_the_server() {
        let result = ok(&barbara(), json!([{"op": "replace", "value": {"schemas": [], "nickName": "B"}}]));
        assert_eq!(result["schemas"], barbara()["schemas"]);
    }

    #[test]
    fn read_only_sub_attributes_inside_a_value_are_dropped() {
        let manager = json!({"value": "boss", "displayName": "Not Mine"});
        let path = format!("{ENTERPRISE}:manager");
        let result = ok(&json!({}), json!([{"op": "add", "path": path, "value": manager}]));
        assert_eq!(enterprise(&result)["manager"], json!({"value": "boss"}));
    }

    #[test]
    fn immutable_attributes_can_be_set_once() {
        let path = format!("{ENTERPRISE}:organization");
        let set = ok(&json!({}), json!([{"op": "add", "path": path, "value": "Acme"}]));
        assert_eq!(enterprise(&set)["organization"], "Acme");
        assert_eq!(ok(&set, json!([{"op": "replace", "path": path, "value": "Acme"}])), set);
        for operation in
            [json!({"op": "replace", "path": path, "value": "Other"}), json!({"op": "remove", "path": path})]
        {
            assert!(matches!(err(&set, json!([operation])), PatchError::Mutability(_)));
        }
    }

    // ---- types ----

    #[test]
    fn values_of_the_wrong_type_are_refused() {
        let operations = [
            json!({"op": "replace", "path": "active", "value": "yes"}),
            json!({"op": "replace", "path": "userName", "value": 5}),
            json!({"op": "replace", "path": "loginCount", "value": "5"}),
            json!({"op": "replace", "path": "loginCount", "value": 5.5}),
            json!({"op": "add", "path": "emails", "value": [{"value": 1}]}),
            json!({"op": "add", "path": "emails[type eq \"work\"].primary", "value": "maybe"}),
            json!({"op": "replace", "path": "name", "value": "Barbara"}),
            json!({"op": "replace", "path": "userName", "value": ["a", "b"]}),
            json!({"op": "replace", "value": {"active": 1}}),
            json!({"op": "replace", "value": "active"}),
        ];
        for operation in operations {
            let error = err(&barbara(), json!([operation.clone()]));
            assert!(matches!(error, PatchError::InvalidValue(_)), "{operation}: {error}");
        }
        let result = ok(&barbara(), json!([{"op": "replace", "path": "loginCount", "value": 9.0}]));
        assert_eq!(result["loginCount"], json!(9));
    }

    #[test]
    fn bad_paths_for_the_schema_are_refused() {
        let operations = [
            json!({"op": "replace", "path": "userName.first", "value": "x"}),
            json!({"op": "replace", "path": "name[givenName eq \"x\"]", "value": {}}),
            json!({"op": "replace", "path": "emails[primary gt true].value", "value": "x"}),
            json!({"op": "replace", "value": {"emails[type eq": "x"}}),
        ];
        for operation in operations {
            let error = err(&barbara(), json!([operation.clone()]));
            assert!(matches!(error, PatchError::InvalidPath(_)), "{operation}: {error}");
        }
    }

    #[test]
    fn the_resource_must_be_an_object() {
        let ops = parse_request(&request(json!([{"op": "remove", "path": "title"}]))).unwrap();
        assert!(matches!(apply(&mut json!([]), &ops, &UserRules), Err(PatchError::InvalidValue(_))));
    }

    // ---- what Microsoft Entra ID sends ----

    #[test]
    fn entra_user_update() {
        let operations = json!([
            {"op": "Replace", "path": "displayName", "value": "True"},
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "babs@contoso.com"},
            {"op": "Replace", "path": "name.givenName", "value": "Babs"},
            {"op": "Replace", "path": format!("{ENTERPRISE}:manager"), "value": "b4c1e2"},
            {"op": "Add", "path": format!("{ENTERPRISE}:employeeNumber"), "value": "42"},
            {"op": "Replace", "path": "title", "value": ["Tour Guide"]}
        ]);
        let result = ok(&barbara(), operations);
        assert_eq!(result["displayName"], "True", "a String attribute keeps the text");
        assert_eq!(result["active"], false);
        assert_eq!(result["emails"][0]["value"], "babs@contoso.com");
        assert_eq!(result["name"]["givenName"], "Babs");
        assert_eq!(enterprise(&result)["manager"], json!({"value": "b4c1e2", "displayName": "John Smith"}));
        assert_eq!(enterprise(&result)["employeeNumber"], "42");
        assert_eq!(result["title"], "Tour Guide");
    }

    #[test]
    fn entra_manager_shapes() {
        let path = format!("{ENTERPRISE}:manager");
        let wrapped = ok(&json!({}), json!([{"op": "Add", "path": path, "value": [{"value": "m1"}]}]));
        assert_eq!(enterprise(&wrapped)["manager"], json!({"value": "m1"}));
        let bare = ok(&json!({}), json!([{"op": "Replace", "path": path, "value": "m2"}]));
        assert_eq!(enterprise(&bare)["manager"], json!({"value": "m2"}));
        let removed = ok(&bare, json!([{"op": "Remove", "path": path, "value": [{"value": "m2"}]}]));
        assert_eq!(removed, json!({}), "the emptied extension is dropped too");
    }

    #[test]
    fn entra_filtered_add_creates_the_element_when_none_matches() {
        let user = json!({"userName": "babs"});
        let add =
            json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "babs@contoso.com"}]);
        let result = ok(&user, add.clone());
        assert_eq!(result["emails"], json!([{"type": "work", "value": "babs@contoso.com"}]));
        assert_eq!(ok(&result, add), result, "a retry finds the element it made");
        let both = json!([{"op": "replace", "path": "emails[type eq \"work\" and primary eq true].value", "value": "a@b"}]);
        assert_eq!(ok(&user, both)["emails"], json!([{"type": "work", "primary": true, "value": "a@b"}]));
        for path in ["emails[value co \"@\"].type", "emails[type eq \"work\" or type eq \"home\"].value"] {
            let error = err(&user, json!([{"op": "add", "path": path, "value": "x"}]));
            assert!(matches!(error, PatchError::NoTarget(_)), "{path}: {error}");
        }
        let contradicts = json!([{"op": "add", "path": "emails[type eq \"work\"].type", "value": "home"}]);
        assert!(matches!(err(&user, contradicts), PatchError::NoTarget(_)));
    }

    #[test]
    fn entra_pathless_values_keyed_by_paths() {
        let value = json!({
            "name.givenName": "Ada",
            format!("{ENTERPRISE}:department"): "R&D",
            "emails[type eq \"work\"].value": "ada@acme.com",
            "active": "True"
        });
        let result = ok(&json!({"active": false}), json!([{"op": "Replace", "value": value}]));
        assert_eq!(result["name"], json!({"givenName": "Ada"}));
        assert_eq!(enterprise(&result)["department"], "R&D");
        assert_eq!(result["emails"], json!([{"type": "work", "value": "ada@acme.com"}]));
        assert_eq!(result["active"], true);
    }

    #[test]
    fn extension_objects_keyed_or_addressed_by_their_urn() {
        let keyed = json!([{"op": "add", "value": {ENTERPRISE: {"department": "R&D", "manager": "m1"}}}]);
        let result = ok(&json!({}), keyed);
        assert_eq!(result, json!({ENTERPRISE: {"department": "R&D", "manager": {"value": "m1"}}}));
        let addressed = json!([{"op": "replace", "path": ENTERPRISE, "value": {"department": "Ops"}}]);
        let replaced = ok(&result, addressed);
        assert_eq!(enterprise(&replaced)["department"], "Ops");
        assert_eq!(enterprise(&replaced)["manager"], json!({"value": "m1"}));
        let removed = ok(&replaced, json!([{"op": "remove", "path": ENTERPRISE}]));
        assert_eq!(removed, json!({}));
        let core = json!([{"op": "replace", "value": {"urn:ietf:params:scim:schemas:core:2.0:User": {"userName": "c"}}}]);
        assert_eq!(ok(&json!({}), core), json!({"userName": "c"}));
    }

    // ---- what Okta sends ----

    #[test]
    fn okta_deactivate_and_group_membership() {
        let result = ok(&barbara(), json!([{"op": "replace", "value": {"active": false}}]));
        assert_eq!(result["active"], false);
        // Okta renames a group with its id in the value: the id is ignored.
        let operations = json!([
            {"op": "add", "path": "members", "value": [{"value": "08e1d05d", "display": "James"}]},
            {"op": "remove", "path": "members[value eq \"2819c223\"]"},
            {"op": "replace", "value": {"id": "e9e30dba", "displayName": "Tour Guides 2"}}
        ]);
        let result = ok(&group(), operations);
        let ids: Vec<_> = result["members"].as_array().unwrap().iter().map(|m| m["value"].clone()).collect();
        assert_eq!(ids, [json!("902c246b"), json!("08e1d05d")]);
        assert_eq!(result["displayName"], "Tour Guides 2");
    }

    // ---- properties ----

    fn email_strategy(index: usize) -> impl Strategy<Value = Value> {
        (prop::sample::select(vec!["work", "home", "other"]), prop::option::of(any::<bool>())).prop_map(
            move |(kind, primary)| {
                let mut email = json!({"value": format!("old{index}@example.com"), "type": kind});
                if let Some(primary) = primary {
                    email["primary"] = json!(primary);
                }
                email
            },
        )
    }

    fn emails_strategy() -> impl Strategy<Value = Vec<Value>> {
        (0usize..4).prop_flat_map(|count| (0..count).map(email_strategy).collect::<Vec<_>>())
    }

    /// A User as the server stores it: optional parts absent, never empty.
    fn resource_strategy() -> impl Strategy<Value = Value> {
        (
            prop::option::of("[a-z]{1,8}"),
            prop::option::of(("[A-Z][a-z]{0,6}", prop::option::of("[A-Z][a-z]{0,6}"))),
            emails_strategy(),
            prop::option::of(any::<bool>()),
            prop::option::of(("[0-9]{1,6}", prop::option::of("[a-f0-9]{4,8}"))),
            prop::collection::vec("[a-z]{1,4}", 0..3),
        )
            .prop_map(|(user_name, name, emails, active, enterprise, tags)| {
                let mut user = json!({"id": "u1", "meta": {"resourceType": "User"}});
                if let Some(user_name) = user_name {
                    user["userName"] = json!(user_name);
                }
                if let Some((given, family)) = name {
                    user["name"] = json!({"givenName": given});
                    if let Some(family) = family {
                        user["name"]["familyName"] = json!(family);
                    }
                }
                if !emails.is_empty() {
                    user["emails"] = Value::Array(emails);
                }
                if let Some(active) = active {
                    user["active"] = json!(active);
                }
                if let Some((number, manager)) = enterprise {
                    user[ENTERPRISE] = json!({"employeeNumber": number});
                    if let Some(manager) = manager {
                        user[ENTERPRISE]["manager"] = json!({"value": manager});
                    }
                }
                if !tags.is_empty() {
                    user["tags"] = json!(tags);
                }
                user
            })
    }

    fn any_path() -> impl Strategy<Value = Option<String>> {
        let paths: Vec<String> = [
            "userName",
            "name",
            "name.givenName",
            "emails",
            "emails.type",
            "emails.primary",
            "emails[type eq \"work\"]",
            "emails[type eq \"work\"].value",
            "emails[type eq \"home\" and primary eq true].value",
            "emails[value co \"old\"]",
            "emails[primary eq true].primary",
            "emails[not (type eq \"work\")].display",
            "active",
            "id",
            "meta",
            "groups",
            "schemas",
            "tags",
            "tags[value eq \"a\"]",
            "unknown",
            "unknown.sub",
            "urn:x:y:thing",
            "x509Certificates",
        ]
        .iter()
        .map(|path| path.to_string())
        .chain(
            ["manager", "manager.value", "employeeNumber", "organization"]
                .iter()
                .map(|a| format!("{ENTERPRISE}:{a}")),
        )
        .chain([ENTERPRISE.to_owned()])
        .collect();
        prop::option::of(prop::sample::select(paths))
    }

    fn any_value() -> impl Strategy<Value = Option<Value>> {
        let values = vec![
            json!("x"),
            json!("True"),
            json!(true),
            json!(5),
            json!(1.5),
            Value::Null,
            json!([]),
            json!({}),
            json!(["x"]),
            json!([{"value": "a"}]),
            json!({"value": "b", "type": "work"}),
            json!([{"value": "c", "primary": true}, {"value": "d", "primary": true}]),
            json!({"givenName": "Ada"}),
            json!({"name.givenName": "Ada", "active": "False", "emails[type eq \"work\"].value": "w@x"}),
            json!({ENTERPRISE: {"department": "R&D"}}),
            json!({"a": {"b": [1, {"c": null}]}}),
            json!("2011-05-13T04:42:34Z"),
        ];
        prop::option::of(prop::sample::select(values))
    }

    fn operation_strategy() -> impl Strategy<Value = PatchOperation> {
        let kinds = prop::sample::select(vec![PatchOpKind::Add, PatchOpKind::Remove, PatchOpKind::Replace]);
        (kinds, any_path(), any_value()).prop_map(|(op, path, value)| PatchOperation {
            op,
            path: path.map(|path| filter::parse_path(&path).unwrap()),
            value,
        })
    }

    /// Replace operations whose values do not contradict their own filter, so that a retry
    /// addresses what the first attempt wrote.
    fn replace_strategy() -> impl Strategy<Value = PatchOperation> {
        let manager = format!("{ENTERPRISE}:manager");
        let organization = format!("{ENTERPRISE}:organization");
        let cases: Vec<(Option<&str>, Value)> = vec![
            (Some("userName"), json!("ada")),
            (Some("name"), json!({"givenName": "Ada", "familyName": "Lovelace"})),
            (Some("name.givenName"), json!("Ada")),
            (Some("emails"), json!([{"value": "a@x", "primary": true}, {"value": "b@x", "primary": true}])),
            (Some("emails"), json!({"value": "single@x"})),
            (Some("emails.type"), json!("other")),
            (Some("emails.primary"), json!(true)),
            (Some("emails[type eq \"work\"]"), json!({"value": "w@x", "primary": true})),
            (Some("emails[type eq \"work\"].value"), json!("w@x")),
            (Some("emails[type eq \"home\"].primary"), json!("True")),
            (Some("active"), json!("False")),
            (Some("tags"), json!(["a", "b"])),
            (Some(&manager), json!("m9")),
            (Some(&organization), json!("Acme")),
            (Some(ENTERPRISE), json!({"department": "R&D"})),
            (None, json!({"active": false, "name.familyName": "L", "emails[type eq \"home\"].value": "h@x"})),
            (Some("userType"), Value::Null),
        ];
        let operations: Vec<PatchOperation> = cases
            .into_iter()
            .map(|(path, value)| PatchOperation {
                op: PatchOpKind::Replace,
                path: path.map(|path| filter::parse_path(path).unwrap()),
                value: Some(value),
            })
            .collect();
        prop::sample::select(operations)
    }

    proptest! {
        #[test]
        fn apply_never_panics(
            resource in resource_strategy(),
            ops in prop::collection::vec(operation_strategy(), 1..6),
        ) {
            let mut copy = resource.clone();
            let _ = apply(&mut copy, &ops, &UserRules);
        }

        #[test]
        fn parse_request_never_panics(body in any_value(), op in any::<String>(), path in any::<String>()) {
            let _ = parse_request(&request(json!([{"op": op, "path": path, "value": body}])));
            let _ = parse_request(&body.unwrap_or_default());
        }

        #[test]
        fn add_then_remove_restores_the_resource(
            resource in resource_strategy(),
            suffix in "[a-z0-9]{1,8}",
            kind in prop::sample::select(vec!["work", "home", "other"]),
            pathless in any::<bool>(),
            by_value_list in any::<bool>(),
        ) {
            let address = format!("new-{suffix}@example.com");
            let email = json!({"value": address, "type": kind});
            let add = if pathless {
                json!({"op": "add", "value": {"emails": [email]}})
            } else {
                json!({"op": "add", "path": "emails", "value": [email]})
            };
            let remove = if by_value_list {
                json!({"op": "remove", "path": "emails", "value": [{"value": address}]})
            } else {
                json!({"op": "remove", "path": format!("emails[value eq \"{address}\"]")})
            };
            prop_assert_eq!(patched(&resource, json!([add, remove])), Ok(resource.clone()));
            let middle = json!([
                {"op": "add", "path": "name.middleName", "value": suffix},
                {"op": "remove", "path": "name.middleName"}
            ]);
            prop_assert_eq!(patched(&resource, middle), Ok(resource));
        }

        #[test]
        fn replace_is_idempotent(resource in resource_strategy(), op in replace_strategy()) {
            let mut once = resource.clone();
            if apply(&mut once, std::slice::from_ref(&op), &UserRules).is_ok() {
                let mut twice = once.clone();
                prop_assert_eq!(apply(&mut twice, &[op], &UserRules), Ok(()));
                prop_assert_eq!(twice, once);
            }
        }
    }
}
