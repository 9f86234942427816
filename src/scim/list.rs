//! Listing and searching (RFC 7644 §3.4.2, §3.4.3): the query, sorting, paging and the
//! ListResponse. Which index answers a filter is the resource modules' business; this module
//! holds what they share.

use std::{cmp::Ordering, collections::HashMap};

use serde_json::{Map, Value, json};

use super::{
    ScimError,
    attributes::AttributeRules,
    filter::{AttrPath, Filter, parse_filter},
    resource::{Projection, parse_attribute_list},
    schema::ResourceTypeDef,
};

/// The most resources one page returns (advertised as `filter.maxResults`).
pub const MAX_RESULTS: usize = 1000;
/// Filters longer than this are refused: no legitimate client needs more.
const MAX_FILTER_CHARS: usize = 8192;
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    /// 1-based, as in SCIM.
    pub start_index: usize,
    pub count: usize,
    pub sort_by: Option<AttrPath>,
    pub descending: bool,
    pub projection: Projection,
}

impl ListQuery {
    /// From the query string of a GET.
    pub fn from_params(def: &ResourceTypeDef, params: &HashMap<String, String>) -> Result<Self, ScimError> {
        let get =
            |name: &str| params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
        let number = |name: &str| -> Result<Option<i64>, ScimError> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse::<i64>()
                        .map_err(|_| ScimError::invalid_value(format!("`{name}` must be an integer")))
                })
                .transpose()
        };
        Self::build(
            def,
            get("filter"),
            number("startIndex")?,
            number("count")?,
            get("sortBy"),
            get("sortOrder"),
            get("attributes"),
            get("excludedAttributes"),
        )
    }

    /// From the body of a POST to `.search` (RFC 7644 §3.4.3).
    pub fn from_search(def: &ResourceTypeDef, body: &Value) -> Result<Self, ScimError> {
        let Value::Object(fields) = body else {
            return Err(ScimError::invalid_syntax("the body must be a SearchRequest object"));
        };
        let field = |name: &str| fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        let schemas = field("schemas").and_then(Value::as_array);
        if !schemas.is_some_and(|s| s.iter().any(|v| v.as_str() == Some(SEARCH_SCHEMA))) {
            return Err(ScimError::invalid_syntax(format!("`schemas` must contain `{SEARCH_SCHEMA}`")));
        }
        let text = |name: &str| -> Result<Option<String>, ScimError> {
            match field(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                // `attributes` may be sent as a list of names.
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                    Ok(Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")))
                }
                Some(_) => Err(ScimError::invalid_value(format!("`{name}` must be a string"))),
            }
        };
        let number = |name: &str| -> Result<Option<i64>, ScimError> {
            match field(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ScimError::invalid_value(format!("`{name}` must be an integer"))),
            }
        };
        Self::build(
            def,
            text("filter")?.as_deref(),
            number("startIndex")?,
            number("count")?,
            text("sortBy")?.as_deref(),
            text("sortOrder")?.as_deref(),
            text("attributes")?.as_deref(),
            text("excludedAttributes")?.as_deref(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        def: &ResourceTypeDef,
        filter: Option<&str>,
        start_index: Option<i64>,
        count: Option<i64>,
        sort_by: Option<&str>,
        sort_order: Option<&str>,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Result<Self, ScimError> {
        let filter = match filter.map(str::trim).filter(|f| !f.is_empty()) {
            Some(text) if text.chars().count() > MAX_FILTER_CHARS => {
                return Err(ScimError::bad_request(
                    "invalidFilter",
                    format!("filters are limited to {MAX_FILTER_CHARS} characters"),
                ));
            }
            Some(text) => {
                let filter = parse_filter(text)?;
                filter.validate(def)?;
                Some(filter)
            }
            None => None,
        };
        let sort_by = sort_by.map(str::trim).filter(|s| !s.is_empty()).map(|s| {
            super::filter::parse_path(s)
                .ok()
                .filter(|p| p.filter.is_none() && p.sub.is_none())
                .map(|p| p.attr)
                .ok_or_else(|| ScimError::bad_request("invalidPath", format!("cannot sort by `{s}`")))
        });
        let descending = match sort_order.map(str::trim) {
            None | Some("") => false,
            Some(order) if order.eq_ignore_ascii_case("ascending") => false,
            Some(order) if order.eq_ignore_ascii_case("descending") => true,
            Some(order) => {
                return Err(ScimError::invalid_value(format!(
                    "`sortOrder` must be ascending or descending, not `{order}`"
                )));
            }
        };
        // RFC 7644 §3.4.2.4: a startIndex below 1 is read as 1, a negative count as 0.
        let start_index = usize::try_from(start_index.unwrap_or(1).max(1)).unwrap_or(1);
        let count = usize::try_from(count.unwrap_or(MAX_RESULTS as i64).max(0)).unwrap_or(0).min(MAX_RESULTS);
        let projection = Projection {
            attributes: attributes.map(parse_attribute_list).transpose()?.unwrap_or_default(),
            excluded: excluded.map(parse_attribute_list).transpose()?.unwrap_or_default(),
        };
        Ok(Self { filter, start_index, count, sort_by: sort_by.transpose()?, descending, projection })
    }
}

/// The ListResponse for one page of `total` matches.
pub fn list_response(total: usize, start_index: usize, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// Whether a filter reads the core attribute `name` (so that an expensive attribute, such as a
/// group's members, is only built for the filters that need it).
pub fn mentions(filter: &Filter, name: &str) -> bool {
    let named = |path: &AttrPath| path.name.eq_ignore_ascii_case(name);
    match filter {
        Filter::Compare { path, .. } | Filter::Present(path) | Filter::ValuePath { path, .. } => named(path),
        Filter::And(a, b) | Filter::Or(a, b) => mentions(a, name) || mentions(b, name),
        Filter::Not(inner) => mentions(inner, name),
    }
}

/// Sorting by an attribute (RFC 7644 §3.4.2.3): strings by the attribute's case rule, a
/// multi-valued attribute by its primary (or first) value; items without a value sort last in
/// ascending order. Keys are taken once per item, so a scan keeps only keys, not representations.
pub struct Sorter<'a> {
    def: &'a ResourceTypeDef,
    by: &'a AttrPath,
    descending: bool,
    case_exact: bool,
}

impl<'a> Sorter<'a> {
    pub fn new(def: &'a ResourceTypeDef, by: &'a AttrPath, descending: bool) -> Self {
        let case_exact =
            def.info(by.urn.as_deref(), &by.name, by.sub.as_deref()).is_some_and(|info| info.case_exact);
        Self { def, by, descending, case_exact }
    }

    pub fn key(&self, representation: &Map<String, Value>) -> Option<SortKey> {
        sort_key(self.def, representation, self.by, self.case_exact)
    }

    pub fn sort<T>(&self, items: &mut [(Option<SortKey>, T)]) {
        items.sort_by(|(a, _), (b, _)| {
            let order = match (a, b) {
                (Some(a), Some(b)) => a.cmp(b),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            if self.descending { order.reverse() } else { order }
        });
    }
}

/// What an item sorts by.
#[derive(Debug, PartialEq)]
pub enum SortKey {
    Number(f64),
    Text(String),
}

impl Eq for SortKey {}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (SortKey::Number(a), SortKey::Number(b)) => a.total_cmp(b),
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            (SortKey::Number(_), SortKey::Text(_)) => Ordering::Less,
            (SortKey::Text(_), SortKey::Number(_)) => Ordering::Greater,
        }
    }
}

fn sort_key(
    def: &ResourceTypeDef,
    resource: &Map<String, Value>,
    by: &AttrPath,
    case_exact: bool,
) -> Option<SortKey> {
    let container = match by.urn.as_deref() {
        Some(urn) if !def.is_core_schema(urn) => get(resource, urn)?.as_object()?,
        _ => resource,
    };
    let mut value = get(container, &by.name)?;
    if let Value::Array(items) = value {
        let primary = items.iter().find(|i| i.get("primary") == Some(&Value::Bool(true)));
        value = primary.or(items.first())?;
        if by.sub.is_none() {
            value = value.get("value").unwrap_or(value);
        }
    }
    if let Some(sub) = &by.sub {
        value = get(value.as_object()?, sub)?;
    }
    match value {
        Value::Number(n) => n.as_f64().map(SortKey::Number),
        Value::String(s) if case_exact => Some(SortKey::Text(s.clone())),
        Value::String(s) => Some(SortKey::Text(s.to_lowercase())),
        Value::Bool(b) => Some(SortKey::Text(b.to_string())),
        _ => None,
    }
}

fn get<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).or_else(|| fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::USER_RESOURCE;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn paging_parameters_follow_the_rfc() {
        let q =
            ListQuery::from_params(&USER_RESOURCE, &params(&[("startIndex", "0"), ("count", "-5")])).unwrap();
        assert_eq!((q.start_index, q.count), (1, 0));
        let q = ListQuery::from_params(&USER_RESOURCE, &params(&[("count", "100000")])).unwrap();
        assert_eq!(q.count, MAX_RESULTS);
        let err = ListQuery::from_params(&USER_RESOURCE, &params(&[("count", "ten")])).unwrap_err();
        assert_eq!(err.scim_type, Some("invalidValue"));
        let err = ListQuery::from_params(&USER_RESOURCE, &params(&[("filter", "userName eq")])).unwrap_err();
        assert_eq!(err.scim_type, Some("invalidFilter"));
        let err = ListQuery::from_params(&USER_RESOURCE, &params(&[("sortOrder", "sideways")])).unwrap_err();
        assert_eq!(err.scim_type, Some("invalidValue"));
    }

    #[test]
    fn search_requests_need_their_schema() {
        let body = json!({"schemas": [SEARCH_SCHEMA], "filter": "userName sw \"a\"", "attributes": ["userName"], "count": 5});
        let q = ListQuery::from_search(&USER_RESOURCE, &body).unwrap();
        assert_eq!((q.count, q.projection.attributes.len()), (5, 1));
        assert!(q.filter.is_some());
        assert!(ListQuery::from_search(&USER_RESOURCE, &json!({"filter": "x pr"})).is_err());
    }

    #[test]
    fn sorting_puts_missing_values_last_and_honours_case_rules() {
        let items: Vec<Map<String, Value>> =
            [json!({"userName": "bob"}), json!({}), json!({"userName": "Ada"})]
                .into_iter()
                .map(|v| v.as_object().cloned().unwrap())
                .collect();
        let by = AttrPath { urn: None, name: "userName".into(), sub: None };
        let sorted = |descending: bool| {
            let sorter = Sorter::new(&USER_RESOURCE, &by, descending);
            let mut keyed: Vec<_> = items.iter().map(|i| (sorter.key(i), i)).collect();
            sorter.sort(&mut keyed);
            keyed.into_iter().map(|(_, i)| i.get("userName").and_then(Value::as_str)).collect::<Vec<_>>()
        };
        assert_eq!(sorted(false), [Some("Ada"), Some("bob"), None]);
        let names = sorted(true);
        assert_eq!(names, [None, Some("bob"), Some("Ada")]);
    }
}
