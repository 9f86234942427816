//! A tenant's access policy, validated and compiled for evaluation: names resolved, values
//! lower-cased, attribute names turned into where the value is read from. A policy that
//! compiles can be evaluated for any user; everything that could make it fail is refused when it
//! is saved, with the path of the offending value.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::Value;

use crate::store::{
    access::{AttributeTest, Condition, Grant, GrantedBy, Policy, SignInClaims, Term},
    directory::UserRecord,
};

const MAX_TERMS: usize = 200;
const MAX_RULES: usize = 500;
const MAX_DEPTH: usize = 8;
const MAX_CONDITIONS_PER_RULE: usize = 200;
const MAX_LIST: usize = 200;
const MAX_VALUE_LEN: usize = 256;
const MAX_NAME_LEN: usize = 64;
const MAX_DESCRIPTION_LEN: usize = 1000;
/// Names the policy's default in `granted_by`.
pub const DEFAULT_RULE: &str = "default";

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Core attributes read from the top of the SCIM profile.
const CORE: &[&str] = &[
    "displayName",
    "nickName",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "profileUrl",
];
const NAME_PARTS: &[&str] = &["givenName", "familyName", "middleName", "formatted"];
const ENTERPRISE_ATTRIBUTES: &[&str] =
    &["department", "division", "organization", "costCenter", "employeeNumber", "manager"];

/// Why a policy cannot be saved: the JSON path of the value, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PolicyError {
    pub path: String,
    pub message: String,
}

fn refuse(path: &str, message: impl Into<String>) -> PolicyError {
    PolicyError { path: path.to_owned(), message: message.into() }
}

/// A policy ready for evaluation.
#[derive(Debug, Clone)]
pub struct Compiled {
    rules: Vec<CompiledRule>,
    default: Grant,
    /// Lower-cased group names and external ids that some rule reads.
    groups: HashSet<String>,
    reads_attributes: bool,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    id: String,
    when: Test,
    grant: Grant,
    is_final: bool,
}

#[derive(Debug, Clone)]
enum Test {
    Group(String),
    AnyGroup(Vec<String>),
    All(Vec<Test>),
    Any(Vec<Test>),
    Not(Box<Test>),
    Attribute(Attribute, Op),
}

/// Where an attribute's values are read from.
#[derive(Debug, Clone)]
enum Attribute {
    UserName,
    Email,
    /// A path into the SCIM profile; values the profile lacks come from the last sign-in's claim
    /// of the same name (`claim`).
    Profile {
        path: Vec<String>,
        claim: Option<String>,
    },
    /// A field of the last sign-in's claims (`claim.<field>`).
    Claim(String),
}

/// Lower-cased operands.
#[derive(Debug, Clone)]
enum Op {
    Eq(String),
    OneOf(Vec<String>),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    Present(bool),
}

/// What a user brings to an evaluation.
pub struct Subject<'a> {
    pub user: &'a UserRecord,
    /// Lower-cased names and external ids of the user's groups, and the groups their last
    /// sign-in claimed.
    pub groups: &'a HashSet<String>,
    pub claims: Option<&'a SignInClaims>,
}

/// A user's roles, tier and programs, and the rules that gave them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Evaluated {
    pub roles: BTreeSet<String>,
    pub tier: Option<String>,
    pub programs: BTreeSet<String>,
    pub granted_by: GrantedBy,
}

pub fn compile(policy: &Policy) -> Result<Compiled, PolicyError> {
    let roles = vocabulary(&policy.roles, "roles")?;
    let tiers = vocabulary(&policy.tiers, "tiers")?;
    let programs = vocabulary(&policy.programs, "programs")?;
    let known = Known { roles, tiers, programs };
    if policy.rules.len() > MAX_RULES {
        return Err(refuse("rules", format!("at most {MAX_RULES} rules")));
    }
    let mut compiled = Compiled {
        rules: Vec::with_capacity(policy.rules.len()),
        default: policy.default.clone(),
        groups: HashSet::new(),
        reads_attributes: false,
    };
    let mut ids = HashSet::new();
    for (i, rule) in policy.rules.iter().enumerate() {
        let path = format!("rules[{i}]");
        check_name(&rule.id, &format!("{path}.id"))?;
        if !ids.insert(rule.id.to_lowercase()) {
            return Err(refuse(&format!("{path}.id"), format!("another rule is named `{}`", rule.id)));
        }
        if rule.id.eq_ignore_ascii_case(DEFAULT_RULE) {
            return Err(refuse(&format!("{path}.id"), "`default` names the policy's default"));
        }
        check_description(&rule.description, &format!("{path}.description"))?;
        known.check(&rule.grant, &format!("{path}.grant"))?;
        if rule.grant.is_empty() && !rule.is_final {
            return Err(refuse(
                &format!("{path}.grant"),
                "the rule grants nothing; give it roles, a tier or programs, or make it final",
            ));
        }
        let mut budget = MAX_CONDITIONS_PER_RULE;
        let when = compile_condition(&rule.when, &format!("{path}.when"), 1, &mut budget, &mut compiled)?;
        compiled.rules.push(CompiledRule {
            id: rule.id.clone(),
            when,
            grant: rule.grant.clone(),
            is_final: rule.is_final,
        });
    }
    known.check(&policy.default, "default")?;
    Ok(compiled)
}

struct Known {
    roles: HashSet<String>,
    tiers: HashSet<String>,
    programs: HashSet<String>,
}

impl Known {
    fn check(&self, grant: &Grant, path: &str) -> Result<(), PolicyError> {
        for (i, role) in grant.roles.iter().enumerate() {
            if !self.roles.contains(role) {
                return Err(refuse(&format!("{path}.roles[{i}]"), format!("no role is named `{role}`")));
            }
        }
        if let Some(tier) = &grant.tier {
            if !self.tiers.contains(tier) {
                return Err(refuse(&format!("{path}.tier"), format!("no tier is named `{tier}`")));
            }
        }
        for (i, program) in grant.programs.iter().enumerate() {
            if !self.programs.contains(program) {
                return Err(refuse(
                    &format!("{path}.programs[{i}]"),
                    format!("no program is named `{program}`"),
                ));
            }
        }
        Ok(())
    }
}

fn vocabulary(terms: &[Term], kind: &str) -> Result<HashSet<String>, PolicyError> {
    if terms.len() > MAX_TERMS {
        return Err(refuse(kind, format!("at most {MAX_TERMS} {kind}")));
    }
    let mut names = HashSet::new();
    let mut folded = HashSet::new();
    for (i, term) in terms.iter().enumerate() {
        check_name(&term.name, &format!("{kind}[{i}].name"))?;
        check_description(&term.description, &format!("{kind}[{i}].description"))?;
        if !folded.insert(term.name.to_lowercase()) {
            return Err(refuse(&format!("{kind}[{i}].name"), format!("`{}` is defined twice", term.name)));
        }
        names.insert(term.name.clone());
    }
    Ok(names)
}

/// Names of roles, tiers, programs and rules: what apps compare tokens' claims with, so kept to
/// a plain alphabet.
fn check_name(name: &str, path: &str) -> Result<(), PolicyError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_.:-".contains(c);
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(refuse(path, format!("must be 1 to {MAX_NAME_LEN} characters")));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.chars().all(plain) {
        return Err(refuse(
            path,
            format!("`{name}` must start with a letter or digit and use only letters, digits and _ . : -"),
        ));
    }
    Ok(())
}

fn check_description(description: &str, path: &str) -> Result<(), PolicyError> {
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(refuse(path, format!("at most {MAX_DESCRIPTION_LEN} characters")));
    }
    Ok(())
}

fn check_value(value: &str, path: &str) -> Result<String, PolicyError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > MAX_VALUE_LEN {
        return Err(refuse(path, format!("must be 1 to {MAX_VALUE_LEN} characters")));
    }
    Ok(trimmed.to_lowercase())
}

fn check_list(values: &[String], path: &str) -> Result<Vec<String>, PolicyError> {
    if values.is_empty() || values.len() > MAX_LIST {
        return Err(refuse(path, format!("must list 1 to {MAX_LIST} values")));
    }
    values.iter().enumerate().map(|(i, v)| check_value(v, &format!("{path}[{i}]"))).collect()
}

fn compile_condition(
    condition: &Condition,
    path: &str,
    depth: usize,
    budget: &mut usize,
    compiled: &mut Compiled,
) -> Result<Test, PolicyError> {
    if depth > MAX_DEPTH {
        return Err(refuse(path, format!("conditions nest at most {MAX_DEPTH} deep")));
    }
    if *budget == 0 {
        return Err(refuse(path, format!("a rule has at most {MAX_CONDITIONS_PER_RULE} conditions")));
    }
    *budget -= 1;
    Ok(match condition {
        Condition::Group(name) => {
            let name = check_value(name, &format!("{path}.group"))?;
            compiled.groups.insert(name.clone());
            Test::Group(name)
        }
        Condition::AnyGroup(names) => {
            let names = check_list(names, &format!("{path}.any_group"))?;
            compiled.groups.extend(names.iter().cloned());
            Test::AnyGroup(names)
        }
        Condition::All(parts) | Condition::Any(parts) => {
            let key = if matches!(condition, Condition::All(_)) { "all" } else { "any" };
            if parts.is_empty() {
                return Err(refuse(&format!("{path}.{key}"), "must list at least one condition"));
            }
            let tests = parts
                .iter()
                .enumerate()
                .map(|(i, part)| {
                    compile_condition(part, &format!("{path}.{key}[{i}]"), depth + 1, budget, compiled)
                })
                .collect::<Result<Vec<_>, _>>()?;
            if key == "all" { Test::All(tests) } else { Test::Any(tests) }
        }
        Condition::Not(inner) => Test::Not(Box::new(compile_condition(
            inner,
            &format!("{path}.not"),
            depth + 1,
            budget,
            compiled,
        )?)),
        Condition::Attribute(test) => {
            compiled.reads_attributes = true;
            let path = format!("{path}.attribute");
            Test::Attribute(attribute(&test.name, &format!("{path}.name"))?, operator(test, &path)?)
        }
    })
}

fn attribute(name: &str, path: &str) -> Result<Attribute, PolicyError> {
    let profile = |path: &[&str], claim: Option<&str>| Attribute::Profile {
        path: path.iter().map(|s| (*s).to_owned()).collect(),
        claim: claim.map(str::to_owned),
    };
    if let Some(part) = name.strip_prefix("name.").filter(|part| NAME_PARTS.contains(part)) {
        return Ok(profile(&["name", part], None));
    }
    if let Some(field) = name.strip_prefix("claim.").filter(|field| !field.is_empty()) {
        return Ok(Attribute::Claim(field.to_owned()));
    }
    if name.starts_with("urn:") {
        return scim_path(name, path);
    }
    Ok(match name {
        "userName" => Attribute::UserName,
        "email" => Attribute::Email,
        "emails" => profile(&["emails"], None),
        core if CORE.contains(&core) => profile(&[core], Some(core)),
        enterprise if ENTERPRISE_ATTRIBUTES.contains(&enterprise) => {
            profile(&[ENTERPRISE, enterprise], Some(enterprise))
        }
        _ => {
            return Err(refuse(
                path,
                format!(
                    "unknown attribute `{name}`; use userName, email, emails, {}, name.{}, {}, a SCIM \
                     path (urn:…:User:attribute) or claim.<field>",
                    CORE.join(", "),
                    NAME_PARTS.join("/"),
                    ENTERPRISE_ATTRIBUTES.join(", ")
                ),
            ));
        }
    })
}

/// `urn:…:User:attribute` or `urn:…:User:attribute.sub`, as SCIM paths name extension attributes.
fn scim_path(name: &str, path: &str) -> Result<Attribute, PolicyError> {
    let (schema, attribute) = name.rsplit_once(':').unwrap_or((name, ""));
    if attribute.is_empty() || schema.split(':').count() < 3 {
        return Err(refuse(path, format!("`{name}` is not a SCIM path (urn:…:User:attribute)")));
    }
    let mut parts = vec![schema.to_owned()];
    parts.extend(attribute.split('.').map(str::to_owned));
    Ok(Attribute::Profile { path: parts, claim: None })
}

fn operator(test: &AttributeTest, path: &str) -> Result<Op, PolicyError> {
    let mut ops = Vec::new();
    if let Some(v) = &test.eq {
        ops.push(Op::Eq(check_value(v, &format!("{path}.eq"))?));
    }
    if let Some(list) = &test.one_of {
        ops.push(Op::OneOf(check_list(list, &format!("{path}.in"))?));
    }
    if let Some(v) = &test.starts_with {
        ops.push(Op::StartsWith(check_value(v, &format!("{path}.starts_with"))?));
    }
    if let Some(v) = &test.ends_with {
        ops.push(Op::EndsWith(check_value(v, &format!("{path}.ends_with"))?));
    }
    if let Some(v) = &test.contains {
        ops.push(Op::Contains(check_value(v, &format!("{path}.contains"))?));
    }
    if let Some(present) = test.present {
        ops.push(Op::Present(present));
    }
    match ops.len() {
        1 => Ok(ops.remove(0)),
        _ => Err(refuse(path, "needs exactly one of eq, in, starts_with, ends_with, contains, present")),
    }
}

impl Compiled {
    /// Which of a group's keys (id, name, external id) some rule names: a change of its
    /// membership matters only when there is one, and a rename only when the set changes.
    pub fn named<'k>(&self, keys: &'k [String]) -> BTreeSet<&'k str> {
        keys.iter().filter(|key| self.groups.contains(*key)).map(String::as_str).collect()
    }

    /// Whether a change of a user's attributes can change their access.
    pub fn reads_attributes(&self) -> bool {
        self.reads_attributes
    }

    /// Group names the rules read, for dry runs to say which no group has.
    pub fn group_names(&self) -> impl Iterator<Item = &String> {
        self.groups.iter()
    }

    pub fn evaluate(&self, subject: &Subject<'_>) -> Evaluated {
        let mut result = Evaluated::default();
        for rule in &self.rules {
            if !rule.when.holds(subject) {
                continue;
            }
            give(&mut result, &rule.grant, &rule.id);
            if rule.is_final {
                break;
            }
        }
        let default = Grant {
            roles: if result.roles.is_empty() { self.default.roles.clone() } else { Vec::new() },
            tier: if result.tier.is_none() { self.default.tier.clone() } else { None },
            programs: if result.programs.is_empty() { self.default.programs.clone() } else { Vec::new() },
        };
        give(&mut result, &default, DEFAULT_RULE);
        result
    }
}

fn give(result: &mut Evaluated, grant: &Grant, by: &str) {
    let add = |set: &mut BTreeSet<String>, reasons: &mut BTreeMap<String, Vec<String>>, name: &String| {
        set.insert(name.clone());
        let rules = reasons.entry(name.clone()).or_default();
        if !rules.iter().any(|r| r == by) {
            rules.push(by.to_owned());
        }
    };
    for role in &grant.roles {
        add(&mut result.roles, &mut result.granted_by.roles, role);
    }
    for program in &grant.programs {
        add(&mut result.programs, &mut result.granted_by.programs, program);
    }
    if let (None, Some(tier)) = (&result.tier, &grant.tier) {
        result.tier = Some(tier.clone());
        result.granted_by.tier = Some(by.to_owned());
    }
}

impl Test {
    fn holds(&self, subject: &Subject<'_>) -> bool {
        match self {
            Test::Group(name) => subject.groups.contains(name),
            Test::AnyGroup(names) => names.iter().any(|n| subject.groups.contains(n)),
            Test::All(tests) => tests.iter().all(|t| t.holds(subject)),
            Test::Any(tests) => tests.iter().any(|t| t.holds(subject)),
            Test::Not(test) => !test.holds(subject),
            Test::Attribute(attribute, op) => op.holds(&attribute.values(subject)),
        }
    }
}

impl Op {
    fn holds(&self, values: &[String]) -> bool {
        let any = |pass: &dyn Fn(&str) -> bool| values.iter().any(|v| pass(&v.to_lowercase()));
        match self {
            Op::Eq(expected) => any(&|v| v == expected),
            Op::OneOf(list) => any(&|v| list.iter().any(|e| e == v)),
            Op::StartsWith(prefix) => any(&|v| v.starts_with(prefix.as_str())),
            Op::EndsWith(suffix) => any(&|v| v.ends_with(suffix.as_str())),
            Op::Contains(part) => any(&|v| v.contains(part.as_str())),
            Op::Present(present) => values.is_empty() != *present,
        }
    }
}

impl Attribute {
    fn values(&self, subject: &Subject<'_>) -> Vec<String> {
        let claim =
            |name: &str| subject.claims.and_then(|c| c.attributes.get(name)).cloned().unwrap_or_default();
        match self {
            Attribute::UserName => vec![subject.user.user_name.clone()],
            Attribute::Email => subject.user.email.iter().cloned().collect(),
            Attribute::Claim(name) => claim(name),
            Attribute::Profile { path, claim: fallback } => {
                let mut found = &subject.user.profile;
                for part in path {
                    found = &found[part.as_str()];
                }
                let mut values = Vec::new();
                flatten(found, &mut values);
                match fallback {
                    Some(name) if values.is_empty() => claim(name),
                    _ => values,
                }
            }
        }
    }
}

/// The strings a SCIM value holds: itself, each element of a list, the `value` of a complex one
/// (emails, manager).
fn flatten(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_owned()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(b) => out.push(b.to_string()),
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        Value::Object(fields) => {
            if let Some(inner) = fields.get("value") {
                flatten(inner, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{ids::TenantId, store::directory::tests::user_record};

    fn policy(value: Value) -> Policy {
        serde_json::from_value(value).unwrap()
    }

    fn sales_policy() -> Policy {
        policy(json!({
            "roles": [{ "name": "admin" }, { "name": "member" }, { "name": "sales" }],
            "tiers": [{ "name": "gold" }, { "name": "silver" }],
            "programs": [{ "name": "beta" }],
            "rules": [
                { "id": "contractors", "when": { "group": "Contractors" }, "grant": { "roles": ["member"] }, "final": true },
                { "id": "sales-admins", "when": { "all": [{ "group": "Sales" }, { "group": "Admins" }] }, "grant": { "roles": ["admin"], "tier": "gold" } },
                { "id": "sales", "when": { "any": [{ "group": "Sales" }, { "attribute": { "name": "department", "eq": "sales" } }] }, "grant": { "roles": ["sales"], "tier": "silver" } },
                { "id": "not-eng", "when": { "all": [{ "group": "Beta" }, { "not": { "group": "Engineering" } }] }, "grant": { "programs": ["beta"] } },
            ],
            "default": { "roles": ["member"], "tier": "silver" },
        }))
    }

    fn evaluate(policy: &Policy, groups: &[&str], profile: Value) -> Evaluated {
        let mut user = user_record(TenantId::generate(), "ada", "ada@acme.test");
        user.profile = profile;
        let groups: HashSet<String> = groups.iter().map(|g| g.to_lowercase()).collect();
        compile(policy).unwrap().evaluate(&Subject { user: &user, groups: &groups, claims: None })
    }

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    #[test]
    fn roles_add_up_the_first_tier_wins_and_the_default_fills_what_no_rule_gave() {
        let p = sales_policy();
        let both = evaluate(&p, &["sales", "ADMINS"], json!({}));
        assert_eq!(names(&both.roles), ["admin", "sales"]);
        assert_eq!(both.tier.as_deref(), Some("gold"));
        assert_eq!(both.granted_by.tier.as_deref(), Some("sales-admins"));
        assert_eq!(both.granted_by.roles["sales"], ["sales"]);
        let nobody = evaluate(&p, &[], json!({}));
        assert_eq!(names(&nobody.roles), ["member"]);
        assert_eq!(nobody.granted_by.roles["member"], [DEFAULT_RULE]);
        assert_eq!(nobody.tier.as_deref(), Some("silver"));
    }

    #[test]
    fn a_final_rule_ends_the_evaluation() {
        let contractor = evaluate(&sales_policy(), &["Contractors", "Sales", "Admins"], json!({}));
        assert_eq!(names(&contractor.roles), ["member"]);
        assert_eq!(contractor.granted_by.roles["member"], ["contractors"]);
        // No rule named a tier: the default's.
        assert_eq!(contractor.granted_by.tier.as_deref(), Some(DEFAULT_RULE));
    }

    #[test]
    fn not_and_attributes_are_read_from_the_profile_ignoring_case() {
        let p = sales_policy();
        assert_eq!(names(&evaluate(&p, &["Beta"], json!({})).programs), ["beta"]);
        assert!(evaluate(&p, &["Beta", "engineering"], json!({})).programs.is_empty());
        let by_department = evaluate(&p, &[], json!({ ENTERPRISE: { "department": "SALES" } }));
        assert_eq!(names(&by_department.roles), ["sales"]);
    }

    #[test]
    fn every_operator_and_attribute_source() {
        let mut user = user_record(TenantId::generate(), "ada@acme.test", "ada@acme.test");
        user.profile = json!({
            "title": "Staff Engineer",
            "emails": [{ "value": "ada@acme.test" }, { "value": "ada@old.test" }],
            "name": { "givenName": "Ada" },
            ENTERPRISE: { "manager": { "value": "m-1" }, "costCenter": 42 },
            "urn:ietf:params:scim:schemas:extension:acme:2.0:User": { "region": { "code": "EU" } },
        });
        let claims = SignInClaims {
            groups: vec![],
            attributes: BTreeMap::from([
                ("department".to_owned(), vec!["Research".to_owned()]),
                ("clearance".to_owned(), vec!["secret".to_owned(), "internal".to_owned()]),
            ]),
        };
        let groups = HashSet::new();
        let subject = Subject { user: &user, groups: &groups, claims: Some(&claims) };
        let holds = |test: Value| {
            let p = policy(json!({
                "roles": [{ "name": "r" }],
                "rules": [{ "id": "x", "when": { "attribute": test }, "grant": { "roles": ["r"] } }],
            }));
            !compile(&p).unwrap().evaluate(&subject).roles.is_empty()
        };
        assert!(holds(json!({ "name": "title", "contains": "engineer" })));
        assert!(holds(json!({ "name": "title", "starts_with": "staff" })));
        assert!(!holds(json!({ "name": "title", "eq": "staff" })));
        assert!(holds(json!({ "name": "emails", "ends_with": "@old.test" })));
        assert!(holds(json!({ "name": "email", "eq": "ADA@acme.test" })));
        assert!(holds(json!({ "name": "userName", "in": ["bob", "ada@acme.test"] })));
        assert!(holds(json!({ "name": "name.givenName", "eq": "ada" })));
        assert!(holds(json!({ "name": "manager", "eq": "m-1" })));
        assert!(holds(json!({ "name": "costCenter", "eq": "42" })));
        assert!(holds(json!({ "name": "department", "eq": "research" })), "the claim fills the gap");
        assert!(holds(json!({ "name": "claim.clearance", "eq": "internal" })));
        assert!(holds(
            json!({ "name": "urn:ietf:params:scim:schemas:extension:acme:2.0:User:region.code", "eq": "eu" })
        ));
        assert!(holds(json!({ "name": "division", "present": false })));
        assert!(!holds(json!({ "name": "title", "present": false })));
    }

    fn refusal(value: Value) -> PolicyError {
        compile(&policy(value)).unwrap_err()
    }

    #[test]
    fn a_policy_that_cannot_be_evaluated_is_refused_with_the_path_of_the_fault() {
        let role = json!([{ "name": "admin" }]);
        let cases = [
            (json!({ "roles": [{ "name": "admin" }, { "name": "Admin" }] }), "roles[1].name"),
            (json!({ "roles": [{ "name": "has space" }] }), "roles[0].name"),
            (
                json!({ "roles": role, "rules": [{ "id": "a", "when": { "group": "x" }, "grant": { "roles": ["owner"] } }] }),
                "rules[0].grant.roles[0]",
            ),
            (json!({ "tiers": [], "default": { "tier": "gold" } }), "default.tier"),
            (
                json!({ "roles": role, "rules": [{ "id": "a", "when": { "all": [] }, "grant": { "roles": ["admin"] } }] }),
                "rules[0].when.all",
            ),
            (
                json!({ "roles": role, "rules": [{ "id": "a", "when": { "any": [{ "group": " " }] }, "grant": { "roles": ["admin"] } }] }),
                "rules[0].when.any[0].group",
            ),
            (
                json!({ "roles": role, "rules": [{ "id": "a", "when": { "attribute": { "name": "shoeSize", "eq": "9" } }, "grant": { "roles": ["admin"] } }] }),
                "rules[0].when.attribute.name",
            ),
            (
                json!({ "roles": role, "rules": [{ "id": "a", "when": { "attribute": { "name": "title", "eq": "x", "contains": "y" } }, "grant": { "roles": ["admin"] } }] }),
                "rules[0].when.attribute",
            ),
            (
                json!({ "roles": role, "rules": [{ "id": "a", "when": { "attribute": { "name": "title" } }, "grant": { "roles": ["admin"] } }] }),
                "rules[0].when.attribute",
            ),
            (json!({ "roles": role, "rules": [{ "id": "a", "when": { "group": "x" } }] }), "rules[0].grant"),
            (
                json!({ "roles": role, "rules": [
                { "id": "a", "when": { "group": "x" }, "grant": { "roles": ["admin"] } },
                { "id": "A", "when": { "group": "y" }, "grant": { "roles": ["admin"] } },
            ] }),
                "rules[1].id",
            ),
            (
                json!({ "roles": role, "rules": [{ "id": "default", "when": { "group": "x" }, "grant": { "roles": ["admin"] } }] }),
                "rules[0].id",
            ),
        ];
        for (value, path) in cases {
            assert_eq!(refusal(value.clone()).path, path, "{value}");
        }
        let mut deep = json!({ "group": "x" });
        for _ in 0..MAX_DEPTH {
            deep = json!({ "not": deep });
        }
        let refused = refusal(
            json!({ "roles": role, "rules": [{ "id": "a", "when": deep, "grant": { "roles": ["admin"] } }] }),
        );
        assert!(refused.message.contains("nest"), "{refused}");
    }

    #[test]
    fn the_policy_says_which_groups_and_whether_attributes_matter() {
        let compiled = compile(&sales_policy()).unwrap();
        let keys = ["sales".to_owned(), "marketing".to_owned()];
        assert_eq!(compiled.named(&keys).into_iter().collect::<Vec<_>>(), ["sales"]);
        assert!(compiled.named(&keys[1..]).is_empty());
        assert!(compiled.reads_attributes());
        let groups_only = policy(
            json!({ "roles": [{ "name": "a" }], "rules": [{ "id": "a", "when": { "any_group": ["X", "Y"] }, "grant": { "roles": ["a"] } }] }),
        );
        let compiled = compile(&groups_only).unwrap();
        assert!(!compiled.reads_attributes() && !compiled.named(&["y".into()]).is_empty());
    }
}
