//! The resource schemas Portcullis serves: core User and Group (RFC 7643 §4.1, §4.2) and the
//! Enterprise User extension (§4.3), as static data. The same definitions answer two questions:
//! what `/Schemas` and `/ResourceTypes` publish (§6, §7, with the §8.6 and §8.7.1 representations
//! as the model), and what the filter evaluator and PATCH engine need to know about an attribute
//! ([`AttributeRules`]).
//!
//! Attribute characteristics follow the normative JSON of §8.7.1, with these deliberate departures:
//!
//! - `reference` and `binary` attributes are `caseExact` (§2.3.6, §2.3.7 say so; the §8.7.1 JSON
//!   says otherwise for some of them).
//! - `groups.$ref` references `Group` only (§4.1.2; the §8.7.1 JSON also lists `User`).
//! - `addresses` has the `primary` sub-attribute every multi-valued attribute may have (§2.4,
//!   §4.1.2), which the §8.7.1 JSON leaves out.
//! - Group `displayName` is required (§4.2; the §8.7.1 JSON says `"required": false`) and unique
//!   per tenant (`server`): Portcullis refuses two groups whose names differ only in case.
//! - Group `members` has a `display` sub-attribute (used in the §8.4 and RFC 7644 examples, absent
//!   from §8.7.1). It is `readOnly`: the server fills it from the member's name and ignores what a
//!   client sends, which is stricter than the `immutable` §4.2 gives the other member
//!   sub-attributes.

use serde_json::{Map, Value, json};

use super::attributes::{AttrInfo, AttrType, AttributeRules, Mutability};

/// The core User schema URN (RFC 7643 §4.1).
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The Enterprise User extension URN (RFC 7643 §4.3).
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The core Group schema URN (RFC 7643 §4.2).
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The `schemas` value of a `/Schemas` resource (RFC 7643 §7).
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
/// The `schemas` value of a `/ResourceTypes` resource (RFC 7643 §6).
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

/// RFC 7643 §2.2 `returned`: when an attribute appears in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    /// The RFC keyword.
    pub const fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// RFC 7643 §2.2 `uniqueness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    /// Unique within the service provider; for Portcullis, within the tenant.
    Server,
    Global,
}

impl Uniqueness {
    /// The RFC keyword.
    pub const fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute or sub-attribute with its RFC 7643 §7 characteristics.
#[derive(Debug, PartialEq, Eq)]
pub struct AttributeDef {
    pub name: &'static str,
    pub kind: AttrType,
    pub multi_valued: bool,
    pub description: &'static str,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    /// Empty: none declared.
    pub canonical_values: &'static [&'static str],
    /// Only for `reference` attributes: the resource types (or `external`, `uri`) referenced.
    pub reference_types: &'static [&'static str],
    /// Only for `complex` attributes.
    pub sub_attributes: &'static [AttributeDef],
}

/// A schema as `/Schemas/{id}` publishes it.
#[derive(Debug, PartialEq, Eq)]
pub struct SchemaDef {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [AttributeDef],
}

/// A resource type as `/ResourceTypes/{name}` publishes it.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceTypeDef {
    pub id: &'static str,
    pub name: &'static str,
    /// Relative to the SCIM base URL, e.g. `/Users`.
    pub endpoint: &'static str,
    pub description: &'static str,
    pub schema: &'static SchemaDef,
    /// Each extension schema with whether resources must include it.
    pub extensions: &'static [(&'static SchemaDef, bool)],
}

// Constructors for the tables below. Each starts from the RFC 7643 §7 defaults (single-valued,
// optional, not case-exact, readWrite, returned by default, no uniqueness); the methods change one
// characteristic each.

const fn attr(name: &'static str, kind: AttrType, description: &'static str) -> AttributeDef {
    AttributeDef {
        name,
        kind,
        multi_valued: false,
        description,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        canonical_values: &[],
        reference_types: &[],
        sub_attributes: &[],
    }
}

const fn string(name: &'static str, description: &'static str) -> AttributeDef {
    attr(name, AttrType::String, description)
}

const fn boolean(name: &'static str, description: &'static str) -> AttributeDef {
    attr(name, AttrType::Boolean, description)
}

const fn date_time(name: &'static str, description: &'static str) -> AttributeDef {
    attr(name, AttrType::DateTime, description)
}

/// "A binary is case exact and has no uniqueness" (RFC 7643 §2.3.6).
const fn binary(name: &'static str, description: &'static str) -> AttributeDef {
    attr(name, AttrType::Binary, description).case_exact()
}

/// "A reference is case exact" (RFC 7643 §2.3.7).
const fn reference(
    name: &'static str,
    description: &'static str,
    types: &'static [&'static str],
) -> AttributeDef {
    AttributeDef { reference_types: types, ..attr(name, AttrType::Reference, description).case_exact() }
}

const fn complex(
    name: &'static str,
    description: &'static str,
    sub_attributes: &'static [AttributeDef],
) -> AttributeDef {
    AttributeDef { sub_attributes, ..attr(name, AttrType::Complex, description) }
}

impl AttributeDef {
    const fn multi_valued(self) -> Self {
        AttributeDef { multi_valued: true, ..self }
    }

    const fn required(self) -> Self {
        AttributeDef { required: true, ..self }
    }

    const fn case_exact(self) -> Self {
        AttributeDef { case_exact: true, ..self }
    }

    const fn read_only(self) -> Self {
        AttributeDef { mutability: Mutability::ReadOnly, ..self }
    }

    const fn immutable(self) -> Self {
        AttributeDef { mutability: Mutability::Immutable, ..self }
    }

    const fn write_only(self) -> Self {
        AttributeDef { mutability: Mutability::WriteOnly, ..self }
    }

    const fn returned(self, returned: Returned) -> Self {
        AttributeDef { returned, ..self }
    }

    const fn uniqueness(self, uniqueness: Uniqueness) -> Self {
        AttributeDef { uniqueness, ..self }
    }

    const fn canonical(self, canonical_values: &'static [&'static str]) -> Self {
        AttributeDef { canonical_values, ..self }
    }
}

// Common attributes (RFC 7643 §3.1). Every resource has them, but they belong to no schema: the
// RFC's own `/Schemas` representations (§8.7.1) do not list them, so neither do ours. They are
// kept here, outside every `SchemaDef`, so that `ResourceTypeDef::attribute` (and with it
// filtering and PATCH) still knows them under the core schema.

const META_SUB: &[AttributeDef] = &[
    string("resourceType", "The name of the resource type of the resource.").case_exact().read_only(),
    date_time("created", "The \"DateTime\" that the resource was added to the service provider.").read_only(),
    date_time(
        "lastModified",
        "The most recent DateTime that the details of this resource were updated at the service provider.",
    )
    .read_only(),
    reference("location", "The URI of the resource being returned.", &["uri"]).read_only(),
    string("version", "The version of the resource being returned.").case_exact().read_only(),
];

/// `id`, `externalId` and `meta`: answered by [`ResourceTypeDef::attribute`] for the core schema,
/// never rendered by [`SchemaDef::to_json`].
pub static COMMON_ATTRIBUTES: &[AttributeDef] = &[
    string(
        "id",
        "A unique identifier for a SCIM resource as defined by the service provider.  Each \
         representation of the resource MUST include a non-empty \"id\" value.",
    )
    .case_exact()
    .read_only()
    .returned(Returned::Always)
    .uniqueness(Uniqueness::Server),
    string(
        "externalId",
        "A String that is an identifier for the resource as defined by the provisioning client.",
    )
    .case_exact(),
    complex("meta", "A complex attribute containing resource metadata.", META_SUB).read_only(),
];

// Core User (RFC 7643 §4.1).

const NAME_SUB: &[AttributeDef] = &[
    string(
        "formatted",
        "The full name, including all middle names, titles, and suffixes as appropriate, formatted for \
         display (e.g., 'Ms. Barbara J Jensen, III').",
    ),
    string(
        "familyName",
        "The family name of the User, or last name in most Western languages (e.g., 'Jensen' given the \
         full name 'Ms. Barbara J Jensen, III').",
    ),
    string(
        "givenName",
        "The given name of the User, or first name in most Western languages (e.g., 'Barbara' given the \
         full name 'Ms. Barbara J Jensen, III').",
    ),
    string(
        "middleName",
        "The middle name(s) of the User (e.g., 'Jane' given the full name 'Ms. Barbara J Jensen, III').",
    ),
    string(
        "honorificPrefix",
        "The honorific prefix(es) of the User, or title in most Western languages (e.g., 'Ms.' given the \
         full name 'Ms. Barbara J Jensen, III').",
    ),
    string(
        "honorificSuffix",
        "The honorific suffix(es) of the User, or suffix in most Western languages (e.g., 'III' given the \
         full name 'Ms. Barbara J Jensen, III').",
    ),
];

const DISPLAY: &str = "A human-readable name, primarily used for display purposes.  READ-ONLY.";
const PRIMARY: &str = "A Boolean value indicating the 'primary' or preferred attribute value for this \
                       attribute.  The primary attribute value 'true' MUST appear no more than once.";

const EMAILS: &str = "Email addresses for the user.  The value SHOULD be canonicalized by the service \
                      provider, e.g., 'bjensen@example.com' instead of 'bjensen@EXAMPLE.COM'. Canonical \
                      type values of 'work', 'home', and 'other'.";

const EMAILS_SUB: &[AttributeDef] = &[
    // The RFC repeats the parent's description here.
    string("value", EMAILS),
    string("display", DISPLAY),
    string("type", "A label indicating the attribute's function, e.g., 'work' or 'home'.")
        .canonical(&["work", "home", "other"]),
    boolean(
        "primary",
        "A Boolean value indicating the 'primary' or preferred attribute value for this attribute, e.g., \
         the preferred mailing address or primary email address.  The primary attribute value 'true' \
         MUST appear no more than once.",
    ),
];

const PHONE_NUMBERS_SUB: &[AttributeDef] = &[
    string("value", "Phone number of the User."),
    string("display", DISPLAY),
    string("type", "A label indicating the attribute's function, e.g., 'work', 'home', 'mobile'.")
        .canonical(&["work", "home", "mobile", "fax", "pager", "other"]),
    boolean(
        "primary",
        "A Boolean value indicating the 'primary' or preferred attribute value for this attribute, e.g., \
         the preferred phone number or primary phone number.  The primary attribute value 'true' MUST \
         appear no more than once.",
    ),
];

const IMS_SUB: &[AttributeDef] = &[
    string("value", "Instant messaging address for the User."),
    string("display", DISPLAY),
    string("type", "A label indicating the attribute's function, e.g., 'aim', 'gtalk', 'xmpp'.")
        .canonical(&["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
    boolean(
        "primary",
        "A Boolean value indicating the 'primary' or preferred attribute value for this attribute, e.g., \
         the preferred messenger or primary messenger.  The primary attribute value 'true' MUST appear \
         no more than once.",
    ),
];

const PHOTOS_SUB: &[AttributeDef] = &[
    reference("value", "URL of a photo of the User.", &["external"]),
    string("display", DISPLAY),
    string("type", "A label indicating the attribute's function, i.e., 'photo' or 'thumbnail'.")
        .canonical(&["photo", "thumbnail"]),
    boolean(
        "primary",
        "A Boolean value indicating the 'primary' or preferred attribute value for this attribute, e.g., \
         the preferred photo or thumbnail.  The primary attribute value 'true' MUST appear no more than \
         once.",
    ),
];

const ADDRESSES_SUB: &[AttributeDef] = &[
    string(
        "formatted",
        "The full mailing address, formatted for display or use with a mailing label.  This attribute \
         MAY contain newlines.",
    ),
    string(
        "streetAddress",
        "The full street address component, which may include house number, street name, P.O. box, and \
         multi-line extended street address information.  This attribute MAY contain newlines.",
    ),
    string("locality", "The city or locality component."),
    string("region", "The state or region component."),
    string("postalCode", "The zip code or postal code component."),
    string("country", "The country name component."),
    string("type", "A label indicating the attribute's function, e.g., 'work' or 'home'.")
        .canonical(&["work", "home", "other"]),
    boolean("primary", PRIMARY),
];

const GROUPS_SUB: &[AttributeDef] = &[
    string("value", "The identifier of the User's group.").read_only(),
    reference("$ref", "The URI of the corresponding 'Group' resource to which the user belongs.", &["Group"])
        .read_only(),
    string("display", DISPLAY).read_only(),
    string("type", "A label indicating the attribute's function, e.g., 'direct' or 'indirect'.")
        .read_only()
        .canonical(&["direct", "indirect"]),
];

const ENTITLEMENTS_SUB: &[AttributeDef] = &[
    string("value", "The value of an entitlement."),
    string("display", DISPLAY),
    string("type", "A label indicating the attribute's function."),
    boolean("primary", PRIMARY),
];

const ROLES_SUB: &[AttributeDef] = &[
    string("value", "The value of a role."),
    string("display", DISPLAY),
    string("type", "A label indicating the attribute's function."),
    boolean("primary", PRIMARY),
];

const X509_CERTIFICATES_SUB: &[AttributeDef] = &[
    binary("value", "The value of an X.509 certificate."),
    string("display", DISPLAY),
    string("type", "A label indicating the attribute's function."),
    boolean("primary", PRIMARY),
];

pub static USER: SchemaDef = SchemaDef {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: &[
        string(
            "userName",
            "Unique identifier for the User, typically used by the user to directly authenticate to the \
             service provider. Each User MUST include a non-empty userName value.  This identifier MUST \
             be unique across the service provider's entire set of Users. REQUIRED.",
        )
        .required()
        .uniqueness(Uniqueness::Server),
        complex(
            "name",
            "The components of the user's real name. Providers MAY return just the full name as a single \
             string in the formatted sub-attribute, or they MAY return just the individual component \
             attributes using the other sub-attributes, or they MAY return both.  If both variants are \
             returned, they SHOULD be describing the same name, with the formatted name indicating how \
             the component attributes should be combined.",
            NAME_SUB,
        ),
        string(
            "displayName",
            "The name of the User, suitable for display to end-users.  The name SHOULD be the full name \
             of the User being described, if known.",
        ),
        string(
            "nickName",
            "The casual way to address the user in real life, e.g., 'Bob' or 'Bobby' instead of \
             'Robert'.  This attribute SHOULD NOT be used to represent a User's username (e.g., \
             'bjensen' or 'mpepperidge').",
        ),
        reference(
            "profileUrl",
            "A fully qualified URL pointing to a page representing the User's online profile.",
            &["external"],
        ),
        string("title", "The user's title, such as \"Vice President.\""),
        string(
            "userType",
            "Used to identify the relationship between the organization and the user.  Typical values \
             used might be 'Contractor', 'Employee', 'Intern', 'Temp', 'External', and 'Unknown', but \
             any value may be used.",
        ),
        string(
            "preferredLanguage",
            "Indicates the User's preferred written or spoken language.  Generally used for selecting a \
             localized user interface; e.g., 'en_US' specifies the language English and country US.",
        ),
        string(
            "locale",
            "Used to indicate the User's default location for purposes of localizing items such as \
             currency, date time format, or numerical representations.",
        ),
        string(
            "timezone",
            "The User's time zone in the 'Olson' time zone database format, e.g., 'America/Los_Angeles'.",
        ),
        boolean("active", "A Boolean value indicating the User's administrative status."),
        string(
            "password",
            "The User's cleartext password.  This attribute is intended to be used as a means to specify \
             an initial password when creating a new User or to reset an existing User's password.",
        )
        .write_only()
        .returned(Returned::Never),
        complex("emails", EMAILS, EMAILS_SUB).multi_valued(),
        complex(
            "phoneNumbers",
            "Phone numbers for the User.  The value SHOULD be canonicalized by the service provider \
             according to the format specified in RFC 3966, e.g., 'tel:+1-201-555-0123'. Canonical type \
             values of 'work', 'home', 'mobile', 'fax', 'pager', and 'other'.",
            PHONE_NUMBERS_SUB,
        )
        .multi_valued(),
        complex("ims", "Instant messaging addresses for the User.", IMS_SUB).multi_valued(),
        complex("photos", "URLs of photos of the User.", PHOTOS_SUB).multi_valued(),
        complex(
            "addresses",
            "A physical mailing address for this User. Canonical type values of 'work', 'home', and \
             'other'.  This attribute is a complex type with the following sub-attributes.",
            ADDRESSES_SUB,
        )
        .multi_valued(),
        complex(
            "groups",
            "A list of groups to which the user belongs, either through direct membership, through \
             nested groups, or dynamically calculated.",
            GROUPS_SUB,
        )
        .multi_valued()
        .read_only(),
        complex(
            "entitlements",
            "A list of entitlements for the User that represent a thing the User has.",
            ENTITLEMENTS_SUB,
        )
        .multi_valued(),
        complex(
            "roles",
            "A list of roles for the User that collectively represent who the User is, e.g., 'Student', \
             'Faculty'.",
            ROLES_SUB,
        )
        .multi_valued(),
        complex("x509Certificates", "A list of certificates issued to the User.", X509_CERTIFICATES_SUB)
            .multi_valued(),
    ],
};

// Enterprise User extension (RFC 7643 §4.3).

const MANAGER_SUB: &[AttributeDef] = &[
    // "REQUIRED" in the description but `"required": false` in §8.7.1, as here.
    string("value", "The id of the SCIM resource representing the User's manager.  REQUIRED."),
    reference("$ref", "The URI of the SCIM resource representing the User's manager.  REQUIRED.", &["User"]),
    string("displayName", "The displayName of the User's manager. OPTIONAL and READ-ONLY.").read_only(),
];

pub static ENTERPRISE_USER: SchemaDef = SchemaDef {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &[
        string(
            "employeeNumber",
            "Numeric or alphanumeric identifier assigned to a person, typically based on order of hire or \
             association with an organization.",
        ),
        string("costCenter", "Identifies the name of a cost center."),
        string("organization", "Identifies the name of an organization."),
        string("division", "Identifies the name of a division."),
        string("department", "Identifies the name of a department."),
        complex(
            "manager",
            "The User's manager.  A complex type that optionally allows service providers to represent \
             organizational hierarchy by referencing the 'id' attribute of another User.",
            MANAGER_SUB,
        ),
    ],
};

// Core Group (RFC 7643 §4.2).

const MEMBERS_SUB: &[AttributeDef] = &[
    string("value", "Identifier of the member of this Group.").immutable(),
    reference(
        "$ref",
        "The URI corresponding to a SCIM resource that is a member of this Group.",
        &["User", "Group"],
    )
    .immutable(),
    string("type", "A label indicating the type of resource, e.g., 'User' or 'Group'.")
        .immutable()
        .canonical(&["User", "Group"]),
    // Not in §8.7.1; see the module documentation.
    string("display", DISPLAY).read_only(),
];

pub static GROUP: SchemaDef = SchemaDef {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attributes: &[
        string("displayName", "A human-readable name for the Group. REQUIRED.")
            .required()
            .uniqueness(Uniqueness::Server),
        complex("members", "A list of members of the Group.", MEMBERS_SUB).multi_valued(),
    ],
};

pub static USER_RESOURCE: ResourceTypeDef = ResourceTypeDef {
    id: "User",
    name: "User",
    endpoint: "/Users",
    description: "User Account",
    schema: &USER,
    extensions: &[(&ENTERPRISE_USER, false)],
};

pub static GROUP_RESOURCE: ResourceTypeDef = ResourceTypeDef {
    id: "Group",
    name: "Group",
    endpoint: "/Groups",
    description: "Group",
    schema: &GROUP,
    extensions: &[],
};

/// Every schema `/Schemas` lists, in the order it lists them.
pub static SCHEMAS: &[&SchemaDef] = &[&USER, &ENTERPRISE_USER, &GROUP];

/// Every resource type `/ResourceTypes` lists, in the order it lists them.
pub static RESOURCE_TYPES: &[&ResourceTypeDef] = &[&USER_RESOURCE, &GROUP_RESOURCE];

/// The attribute called `name` (ASCII case-insensitively, RFC 7643 §2.1).
fn find(attributes: &'static [AttributeDef], name: &str) -> Option<&'static AttributeDef> {
    attributes.iter().find(|attribute| attribute.name.eq_ignore_ascii_case(name))
}

fn type_keyword(kind: AttrType) -> &'static str {
    match kind {
        AttrType::String => "string",
        AttrType::Boolean => "boolean",
        AttrType::Decimal => "decimal",
        AttrType::Integer => "integer",
        AttrType::DateTime => "dateTime",
        AttrType::Binary => "binary",
        AttrType::Reference => "reference",
        AttrType::Complex => "complex",
    }
}

fn mutability_keyword(mutability: Mutability) -> &'static str {
    match mutability {
        Mutability::ReadOnly => "readOnly",
        Mutability::ReadWrite => "readWrite",
        Mutability::Immutable => "immutable",
        Mutability::WriteOnly => "writeOnly",
    }
}

/// `base_url` without a trailing slash, so `https://host/scim/v2/` and `https://host/scim/v2` give
/// the same locations.
fn base(base_url: &str) -> &str {
    base_url.trim_end_matches('/')
}

impl AttributeDef {
    /// The RFC 7643 §7 representation. Every characteristic is written out, defaults included;
    /// `canonicalValues`, `referenceTypes` and `subAttributes` only when there are some.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("name".into(), self.name.into());
        out.insert("type".into(), type_keyword(self.kind).into());
        out.insert("multiValued".into(), self.multi_valued.into());
        out.insert("description".into(), self.description.into());
        out.insert("required".into(), self.required.into());
        out.insert("caseExact".into(), self.case_exact.into());
        out.insert("mutability".into(), mutability_keyword(self.mutability).into());
        out.insert("returned".into(), self.returned.as_str().into());
        out.insert("uniqueness".into(), self.uniqueness.as_str().into());
        if !self.canonical_values.is_empty() {
            out.insert("canonicalValues".into(), self.canonical_values.into());
        }
        if !self.reference_types.is_empty() {
            out.insert("referenceTypes".into(), self.reference_types.into());
        }
        if !self.sub_attributes.is_empty() {
            let subs = self.sub_attributes.iter().map(AttributeDef::to_json).collect();
            out.insert("subAttributes".into(), Value::Array(subs));
        }
        Value::Object(out)
    }

    /// What filtering and patching need to know, as the attribute itself declares it.
    fn info(&self) -> AttrInfo {
        AttrInfo {
            kind: self.kind,
            multi_valued: self.multi_valued,
            case_exact: self.case_exact,
            mutability: self.mutability,
        }
    }
}

impl SchemaDef {
    /// The `/Schemas/{id}` resource (RFC 7643 §7, §8.7.1). `base_url` is the tenant's SCIM base
    /// URL, e.g. `https://idp.example.com/t/acme/scim/v2`. Common attributes are not listed.
    pub fn to_json(&self, base_url: &str) -> Value {
        let attributes: Vec<Value> = self.attributes.iter().map(AttributeDef::to_json).collect();
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": attributes,
            "meta": {
                "resourceType": "Schema",
                "location": format!("{}/Schemas/{}", base(base_url), self.id),
            },
        })
    }

    /// The schema's own attribute `name` (with `sub`, its sub-attribute), case-insensitively.
    /// Common attributes are not part of any schema: see [`ResourceTypeDef::attribute`].
    pub fn attribute(&self, name: &str, sub: Option<&str>) -> Option<&'static AttributeDef> {
        let attribute = find(self.attributes, name)?;
        match sub {
            None => Some(attribute),
            Some(sub) => find(attribute.sub_attributes, sub),
        }
    }
}

impl ResourceTypeDef {
    /// The `/ResourceTypes/{name}` resource (RFC 7643 §6, §8.6). `schemaExtensions` is left out
    /// when there are none, as in the RFC's Group example.
    pub fn to_json(&self, base_url: &str) -> Value {
        let mut out = Map::new();
        out.insert("schemas".into(), json!([RESOURCE_TYPE_SCHEMA]));
        out.insert("id".into(), self.id.into());
        out.insert("name".into(), self.name.into());
        out.insert("endpoint".into(), self.endpoint.into());
        out.insert("description".into(), self.description.into());
        out.insert("schema".into(), self.schema.id.into());
        if !self.extensions.is_empty() {
            let extensions = self
                .extensions
                .iter()
                .map(|(schema, required)| json!({ "schema": schema.id, "required": required }))
                .collect();
            out.insert("schemaExtensions".into(), Value::Array(extensions));
        }
        let location = format!("{}/ResourceTypes/{}", base(base_url), self.name);
        out.insert("meta".into(), json!({ "resourceType": "ResourceType", "location": location }));
        Value::Object(out)
    }

    /// The attribute `name` (with `sub`, its sub-attribute) of schema `urn`, names and URNs
    /// compared case-insensitively. `urn` None or the core schema's id: the core schema, then the
    /// common attributes (`id`, `externalId`, `meta`). An extension's id: that extension. Any
    /// other URN: None. The definition is returned as declared; [`AttributeRules::info`] also
    /// applies what a parent imposes on its sub-attributes.
    pub fn attribute(
        &self,
        urn: Option<&str>,
        name: &str,
        sub: Option<&str>,
    ) -> Option<&'static AttributeDef> {
        let attribute = match urn {
            Some(urn) if !self.is_core_schema(urn) => {
                let (schema, _) =
                    self.extensions.iter().find(|(schema, _)| schema.id.eq_ignore_ascii_case(urn))?;
                find(schema.attributes, name)?
            }
            _ => find(self.schema.attributes, name).or_else(|| find(COMMON_ATTRIBUTES, name))?,
        };
        match sub {
            None => Some(attribute),
            Some(sub) => find(attribute.sub_attributes, sub),
        }
    }
}

impl AttributeRules for ResourceTypeDef {
    fn info(&self, urn: Option<&str>, name: &str, sub: Option<&str>) -> Option<AttrInfo> {
        let attribute = self.attribute(urn, name, None)?;
        let Some(sub) = sub else {
            return Some(attribute.info());
        };
        let mut info = find(attribute.sub_attributes, sub)?.info();
        // A client cannot write into an attribute it cannot write (RFC 7643 §2.2).
        if attribute.mutability == Mutability::ReadOnly {
            info.mutability = Mutability::ReadOnly;
        }
        Some(info)
    }

    fn is_core_schema(&self, urn: &str) -> bool {
        urn.eq_ignore_ascii_case(self.schema.id)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    const BASE: &str = "https://idp.example.com/t/acme/scim/v2";

    fn info(resource: &ResourceTypeDef, urn: Option<&str>, name: &str, sub: Option<&str>) -> AttrInfo {
        resource.info(urn, name, sub).unwrap()
    }

    /// Every attribute of `attributes`, with its dotted path, depth first.
    fn walk(
        prefix: &str,
        attributes: &'static [AttributeDef],
        out: &mut Vec<(String, &'static AttributeDef)>,
    ) {
        for attribute in attributes {
            let path = if prefix.is_empty() {
                attribute.name.to_owned()
            } else {
                format!("{prefix}.{}", attribute.name)
            };
            out.push((path.clone(), attribute));
            walk(&path, attribute.sub_attributes, out);
        }
    }

    fn all_attributes() -> Vec<(String, &'static AttributeDef)> {
        let mut out = Vec::new();
        for schema in SCHEMAS {
            walk(schema.id, schema.attributes, &mut out);
        }
        walk("common", COMMON_ATTRIBUTES, &mut out);
        out
    }

    fn names(attributes: &[AttributeDef]) -> Vec<&str> {
        attributes.iter().map(|attribute| attribute.name).collect()
    }

    #[test]
    fn schemas_declare_exactly_the_rfc_attributes() {
        assert_eq!(
            names(USER.attributes),
            [
                "userName",
                "name",
                "displayName",
                "nickName",
                "profileUrl",
                "title",
                "userType",
                "preferredLanguage",
                "locale",
                "timezone",
                "active",
                "password",
                "emails",
                "phoneNumbers",
                "ims",
                "photos",
                "addresses",
                "groups",
                "entitlements",
                "roles",
                "x509Certificates",
            ]
        );
        let sub =
            |schema: &SchemaDef, name: &str| names(schema.attribute(name, None).unwrap().sub_attributes);
        assert_eq!(
            sub(&USER, "name"),
            ["formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"]
        );
        for multi in ["emails", "phoneNumbers", "ims", "photos", "entitlements", "roles", "x509Certificates"]
        {
            assert_eq!(sub(&USER, multi), ["value", "display", "type", "primary"], "{multi}");
        }
        assert_eq!(
            sub(&USER, "addresses"),
            ["formatted", "streetAddress", "locality", "region", "postalCode", "country", "type", "primary"]
        );
        assert_eq!(sub(&USER, "groups"), ["value", "$ref", "display", "type"]);
        assert_eq!(
            names(ENTERPRISE_USER.attributes),
            ["employeeNumber", "costCenter", "organization", "division", "department", "manager"]
        );
        assert_eq!(sub(&ENTERPRISE_USER, "manager"), ["value", "$ref", "displayName"]);
        assert_eq!(names(GROUP.attributes), ["displayName", "members"]);
        assert_eq!(sub(&GROUP, "members"), ["value", "$ref", "type", "display"]);
        assert_eq!(names(COMMON_ATTRIBUTES), ["id", "externalId", "meta"]);
        assert_eq!(names(META_SUB), ["resourceType", "created", "lastModified", "location", "version"]);
    }

    #[test]
    fn characteristics_follow_the_rfc() {
        let user_name = USER.attribute("userName", None).unwrap();
        assert!(user_name.required && !user_name.case_exact);
        assert_eq!(user_name.uniqueness, Uniqueness::Server);

        let password = USER.attribute("password", None).unwrap();
        assert_eq!((password.mutability, password.returned), (Mutability::WriteOnly, Returned::Never));

        let profile = USER.attribute("profileUrl", None).unwrap();
        assert_eq!((profile.kind, profile.reference_types), (AttrType::Reference, &["external"][..]));
        assert_eq!(USER.attribute("active", None).unwrap().kind, AttrType::Boolean);
        assert_eq!(USER.attribute("x509Certificates", Some("value")).unwrap().kind, AttrType::Binary);
        assert_eq!(USER.attribute("groups", Some("$ref")).unwrap().reference_types, ["Group"]);
        assert_eq!(ENTERPRISE_USER.attribute("manager", Some("$ref")).unwrap().reference_types, ["User"]);
        assert_eq!(GROUP.attribute("members", Some("$ref")).unwrap().reference_types, ["User", "Group"]);

        let display_name = GROUP.attribute("displayName", None).unwrap();
        assert!(display_name.required && !display_name.case_exact);
        assert_eq!(display_name.uniqueness, Uniqueness::Server);
        for sub in ["value", "$ref", "type"] {
            assert_eq!(GROUP.attribute("members", Some(sub)).unwrap().mutability, Mutability::Immutable);
        }
        assert_eq!(GROUP.attribute("members", Some("display")).unwrap().mutability, Mutability::ReadOnly);
        assert_eq!(GROUP.attribute("members", None).unwrap().mutability, Mutability::ReadWrite);

        let id = USER_RESOURCE.attribute(None, "id", None).unwrap();
        assert_eq!((id.returned, id.uniqueness), (Returned::Always, Uniqueness::Server));

        // Only these attributes depart from the §7 defaults on these characteristics.
        let mut required = BTreeSet::new();
        let mut unique = BTreeSet::new();
        let mut not_default = BTreeSet::new();
        for (path, attribute) in all_attributes() {
            if attribute.required {
                required.insert(path.clone());
            }
            if attribute.uniqueness != Uniqueness::None {
                unique.insert(path.clone());
            }
            if attribute.returned != Returned::Default {
                not_default.insert(path);
            }
        }
        let set = |paths: &[&str]| paths.iter().map(|path| path.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            required,
            set(&[&format!("{USER_SCHEMA}.userName"), &format!("{GROUP_SCHEMA}.displayName")])
        );
        assert_eq!(
            unique,
            set(&[&format!("{USER_SCHEMA}.userName"), &format!("{GROUP_SCHEMA}.displayName"), "common.id"])
        );
        assert_eq!(not_default, set(&[&format!("{USER_SCHEMA}.password"), "common.id"]));
    }

    #[test]
    fn references_and_binaries_are_case_exact_and_reference_types_only_on_references() {
        for (path, attribute) in all_attributes() {
            match attribute.kind {
                AttrType::Reference => {
                    assert!(attribute.case_exact, "{path}");
                    assert!(!attribute.reference_types.is_empty(), "{path}");
                }
                AttrType::Binary => assert!(attribute.case_exact, "{path}"),
                _ => assert!(attribute.reference_types.is_empty(), "{path}"),
            }
            assert_eq!(attribute.kind == AttrType::Complex, !attribute.sub_attributes.is_empty(), "{path}");
            // RFC 7643 §2.3.8: no complex sub-attributes.
            for sub in attribute.sub_attributes {
                assert!(sub.sub_attributes.is_empty() && !sub.multi_valued, "{path}.{}", sub.name);
            }
        }
    }

    #[test]
    fn canonical_values_match_the_rfc() {
        let expected: BTreeMap<String, &[&str]> = [
            (format!("{USER_SCHEMA}.emails.type"), &["work", "home", "other"][..]),
            (
                format!("{USER_SCHEMA}.phoneNumbers.type"),
                &["work", "home", "mobile", "fax", "pager", "other"],
            ),
            (
                format!("{USER_SCHEMA}.ims.type"),
                &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
            ),
            (format!("{USER_SCHEMA}.photos.type"), &["photo", "thumbnail"]),
            (format!("{USER_SCHEMA}.addresses.type"), &["work", "home", "other"]),
            (format!("{USER_SCHEMA}.groups.type"), &["direct", "indirect"]),
            (format!("{GROUP_SCHEMA}.members.type"), &["User", "Group"]),
        ]
        .into_iter()
        .collect();
        let actual: BTreeMap<String, &[&str]> = all_attributes()
            .into_iter()
            .filter(|(_, attribute)| !attribute.canonical_values.is_empty())
            .map(|(path, attribute)| (path, attribute.canonical_values))
            .collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn no_two_attributes_share_a_name_at_any_level() {
        fn check(what: &str, attributes: &[AttributeDef]) {
            let mut seen = BTreeSet::new();
            for attribute in attributes {
                assert!(seen.insert(attribute.name.to_ascii_lowercase()), "{what}: {}", attribute.name);
                check(&format!("{what}.{}", attribute.name), attribute.sub_attributes);
            }
        }
        for schema in SCHEMAS {
            check(schema.id, schema.attributes);
        }
        check("common", COMMON_ATTRIBUTES);
        // The core schemas share one namespace with the common attributes.
        for resource in RESOURCE_TYPES {
            for common in COMMON_ATTRIBUTES {
                assert!(resource.schema.attribute(common.name, None).is_none(), "{}", common.name);
            }
        }
    }

    #[test]
    fn readonly_parents_have_readonly_sub_attributes_in_the_tables_too() {
        for (path, attribute) in all_attributes() {
            if attribute.mutability == Mutability::ReadOnly {
                for sub in attribute.sub_attributes {
                    assert_eq!(sub.mutability, Mutability::ReadOnly, "{path}.{}", sub.name);
                }
            }
        }
    }

    #[test]
    fn lookups_are_case_insensitive() {
        let given = USER_RESOURCE.attribute(None, "NAME", Some("GivenName")).unwrap();
        assert_eq!(given.name, "givenName");
        assert_eq!(USER_RESOURCE.attribute(None, "username", None).unwrap().name, "userName");
        assert_eq!(
            USER_RESOURCE.attribute(Some(&USER_SCHEMA.to_uppercase()), "EMAILS", Some("VALUE")).unwrap().name,
            "value"
        );
        let manager = USER_RESOURCE
            .attribute(Some(&ENTERPRISE_USER_SCHEMA.to_ascii_uppercase()), "Manager", Some("displayname"))
            .unwrap();
        assert_eq!(manager.name, "displayName");
        assert_eq!(
            USER_RESOURCE.attribute(Some(ENTERPRISE_USER_SCHEMA), "EMPLOYEENUMBER", None).unwrap().name,
            "employeeNumber"
        );
        assert_eq!(USER_RESOURCE.attribute(None, "GROUPS", Some("$REF")).unwrap().name, "$ref");
        assert_eq!(
            GROUP_RESOURCE
                .attribute(Some("urn:ietf:params:scim:schemas:core:2.0:group"), "Members", Some("TYPE"))
                .unwrap()
                .name,
            "type"
        );

        // Common attributes, under the core schema only.
        for resource in RESOURCE_TYPES {
            assert_eq!(resource.attribute(None, "ID", None).unwrap().name, "id");
            assert_eq!(
                resource.attribute(Some(resource.schema.id), "externalid", None).unwrap().name,
                "externalId"
            );
            assert_eq!(
                resource.attribute(None, "Meta", Some("LASTMODIFIED")).unwrap().kind,
                AttrType::DateTime
            );
        }
        assert!(USER_RESOURCE.attribute(Some(ENTERPRISE_USER_SCHEMA), "id", None).is_none());
    }

    #[test]
    fn lookups_of_unknown_things_answer_none() {
        let r = &USER_RESOURCE;
        assert!(r.attribute(None, "employeeNumber", None).is_none(), "extension attributes need their URN");
        assert!(r.attribute(Some(ENTERPRISE_USER_SCHEMA), "userName", None).is_none());
        assert!(r.attribute(Some(GROUP_SCHEMA), "displayName", None).is_none(), "not an extension of User");
        assert!(r.attribute(Some("urn:example:unknown"), "userName", None).is_none());
        assert!(r.attribute(None, "userName", Some("value")).is_none(), "not complex");
        assert!(r.attribute(None, "emails", Some("nope")).is_none());
        assert!(r.attribute(None, "", None).is_none());
        assert!(r.attribute(Some(""), "", Some("")).is_none());
        assert!(r.attribute(None, "üsername", Some("\u{0}")).is_none());
        assert!(GROUP_RESOURCE.attribute(None, "userName", None).is_none());
        assert!(GROUP_RESOURCE.attribute(Some(ENTERPRISE_USER_SCHEMA), "manager", None).is_none());
        assert!(r.info(Some("urn:example:unknown"), "x", None).is_none());
    }

    #[test]
    fn info_answers_for_filtering_and_patching() {
        let u = &USER_RESOURCE;
        let id = info(u, None, "id", None);
        assert_eq!(
            id,
            AttrInfo {
                kind: AttrType::String,
                multi_valued: false,
                case_exact: true,
                mutability: Mutability::ReadOnly
            }
        );
        let external = info(u, Some(USER_SCHEMA), "externalId", None);
        assert_eq!(
            external,
            AttrInfo {
                kind: AttrType::String,
                multi_valued: false,
                case_exact: true,
                mutability: Mutability::ReadWrite
            }
        );
        assert!(!info(u, None, "userName", None).case_exact);
        let emails = info(u, None, "emails", None);
        assert_eq!((emails.kind, emails.multi_valued), (AttrType::Complex, true));
        let email = info(u, None, "emails", Some("value"));
        assert_eq!(
            email,
            AttrInfo {
                kind: AttrType::String,
                multi_valued: false,
                case_exact: false,
                mutability: Mutability::ReadWrite
            }
        );
        assert_eq!(info(u, None, "emails", Some("primary")).kind, AttrType::Boolean);
        assert_eq!(info(u, None, "groups", None).mutability, Mutability::ReadOnly);
        assert_eq!(info(u, None, "groups", Some("value")).mutability, Mutability::ReadOnly);
        assert_eq!(info(u, None, "password", None).mutability, Mutability::WriteOnly);
        let meta = info(u, None, "meta", Some("created"));
        assert_eq!((meta.kind, meta.mutability), (AttrType::DateTime, Mutability::ReadOnly));
        assert_eq!(
            info(u, Some(ENTERPRISE_USER_SCHEMA), "manager", Some("displayName")).mutability,
            Mutability::ReadOnly
        );
        assert_eq!(
            info(u, Some(ENTERPRISE_USER_SCHEMA), "manager", Some("value")).mutability,
            Mutability::ReadWrite
        );
        let g = &GROUP_RESOURCE;
        assert_eq!(info(g, None, "members", Some("value")).mutability, Mutability::Immutable);
        assert!(!info(g, None, "displayName", None).case_exact);
        assert!(u.info(None, "name", Some("nope")).is_none());
    }

    #[test]
    fn info_makes_sub_attributes_of_readonly_parents_readonly() {
        static PARENT_SUB: &[AttributeDef] = &[string("value", "")];
        static ODD: SchemaDef = SchemaDef {
            id: "urn:example:odd",
            name: "Odd",
            description: "",
            attributes: &[complex("locked", "", PARENT_SUB).read_only()],
        };
        static ODD_RESOURCE: ResourceTypeDef = ResourceTypeDef {
            id: "Odd",
            name: "Odd",
            endpoint: "/Odds",
            description: "",
            schema: &ODD,
            extensions: &[],
        };
        assert_eq!(
            ODD_RESOURCE.attribute(None, "locked", Some("value")).unwrap().mutability,
            Mutability::ReadWrite
        );
        assert_eq!(info(&ODD_RESOURCE, None, "locked", Some("value")).mutability, Mutability::ReadOnly);
    }

    #[test]
    fn core_schema_is_recognised_case_insensitively() {
        assert!(USER_RESOURCE.is_core_schema(USER_SCHEMA));
        assert!(USER_RESOURCE.is_core_schema(&USER_SCHEMA.to_uppercase()));
        assert!(!USER_RESOURCE.is_core_schema(ENTERPRISE_USER_SCHEMA));
        assert!(!USER_RESOURCE.is_core_schema(GROUP_SCHEMA));
        assert!(GROUP_RESOURCE.is_core_schema("URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:GROUP"));
        assert!(!GROUP_RESOURCE.is_core_schema(""));
    }

    /// Checks one rendered attribute and its sub-attributes; returns how many it checked.
    fn check_attribute_json(path: &str, value: &Value) -> usize {
        let object = value.as_object().unwrap();
        for key in ["name", "type", "description", "mutability", "returned", "uniqueness"] {
            assert!(object.get(key).is_some_and(Value::is_string), "{path}: {key}");
        }
        for key in ["multiValued", "required", "caseExact"] {
            assert!(object.get(key).is_some_and(Value::is_boolean), "{path}: {key}");
        }
        let keyword = |key: &str| object[key].as_str().unwrap().to_owned();
        assert!(
            ["string", "boolean", "decimal", "integer", "dateTime", "binary", "reference", "complex"]
                .contains(&keyword("type").as_str()),
            "{path}"
        );
        assert!(
            ["readOnly", "readWrite", "immutable", "writeOnly"].contains(&keyword("mutability").as_str())
        );
        assert!(["always", "never", "default", "request"].contains(&keyword("returned").as_str()));
        assert!(["none", "server", "global"].contains(&keyword("uniqueness").as_str()));
        let allowed = [
            "name",
            "type",
            "multiValued",
            "description",
            "required",
            "caseExact",
            "mutability",
            "returned",
            "uniqueness",
            "canonicalValues",
            "referenceTypes",
            "subAttributes",
        ];
        for key in object.keys() {
            assert!(allowed.contains(&key.as_str()), "{path}: unexpected {key}");
        }
        for key in ["canonicalValues", "referenceTypes"] {
            if let Some(list) = object.get(key) {
                let list = list.as_array().unwrap();
                assert!(!list.is_empty() && list.iter().all(Value::is_string), "{path}: {key}");
            }
        }
        assert_eq!(object.contains_key("referenceTypes"), keyword("type") == "reference", "{path}");
        assert_eq!(object.contains_key("subAttributes"), keyword("type") == "complex", "{path}");
        let mut count = 1;
        if let Some(subs) = object.get("subAttributes") {
            let subs = subs.as_array().unwrap();
            assert!(!subs.is_empty(), "{path}");
            for sub in subs {
                count += check_attribute_json(&format!("{path}.{}", sub["name"]), sub);
            }
        }
        count
    }

    #[test]
    fn schema_json_has_the_rfc_shape() {
        for schema in SCHEMAS {
            let doc = schema.to_json(BASE);
            assert_eq!(doc["schemas"], json!([SCHEMA_SCHEMA]));
            assert_eq!(doc["id"], schema.id);
            assert_eq!(doc["name"], schema.name);
            assert_eq!(doc["description"], schema.description);
            assert_eq!(
                doc["meta"],
                json!({ "resourceType": "Schema", "location": format!("{BASE}/Schemas/{}", schema.id) })
            );
            assert_eq!(doc.as_object().unwrap().len(), 6);
            let attributes = doc["attributes"].as_array().unwrap();
            assert_eq!(attributes.len(), schema.attributes.len());
            let mut walked = Vec::new();
            walk("", schema.attributes, &mut walked);
            let checked: usize = attributes.iter().map(|a| check_attribute_json(schema.id, a)).sum();
            assert_eq!(checked, walked.len());
            // Common attributes are not published.
            for attribute in attributes {
                assert!(!["id", "externalId", "meta"].contains(&attribute["name"].as_str().unwrap()));
            }
        }
        // A trailing slash on the base URL does not double up.
        assert_eq!(
            USER.to_json(&format!("{BASE}/"))["meta"]["location"],
            format!("{BASE}/Schemas/{USER_SCHEMA}")
        );
    }

    #[test]
    fn schema_json_renders_characteristics_as_rfc_keywords() {
        let doc = USER.to_json(BASE);
        let attribute = |name: &str| {
            doc["attributes"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap().clone()
        };
        assert_eq!(
            attribute("userName"),
            json!({
                "name": "userName",
                "type": "string",
                "multiValued": false,
                "description": USER.attribute("userName", None).unwrap().description,
                "required": true,
                "caseExact": false,
                "mutability": "readWrite",
                "returned": "default",
                "uniqueness": "server",
            })
        );
        let password = attribute("password");
        assert_eq!((&password["mutability"], &password["returned"]), (&json!("writeOnly"), &json!("never")));
        let groups = attribute("groups");
        assert_eq!(groups["mutability"], "readOnly");
        assert_eq!(groups["subAttributes"][3]["canonicalValues"], json!(["direct", "indirect"]));
        assert_eq!(attribute("profileUrl")["referenceTypes"], json!(["external"]));
        assert_eq!(attribute("x509Certificates")["subAttributes"][0]["type"], "binary");
        assert!(attribute("emails")["subAttributes"][0].get("canonicalValues").is_none());

        let members = &GROUP.to_json(BASE)["attributes"][1];
        assert_eq!(members["subAttributes"][0]["mutability"], "immutable");
        assert_eq!(members["subAttributes"][3]["mutability"], "readOnly");
        assert_eq!(
            ENTERPRISE_USER.to_json(BASE)["attributes"][5]["subAttributes"][2]["mutability"],
            "readOnly"
        );
    }

    #[test]
    fn resource_type_json_has_the_rfc_shape() {
        assert_eq!(
            USER_RESOURCE.to_json(BASE),
            json!({
                "schemas": [RESOURCE_TYPE_SCHEMA],
                "id": "User",
                "name": "User",
                "endpoint": "/Users",
                "description": "User Account",
                "schema": USER_SCHEMA,
                "schemaExtensions": [{ "schema": ENTERPRISE_USER_SCHEMA, "required": false }],
                "meta": { "resourceType": "ResourceType", "location": format!("{BASE}/ResourceTypes/User") },
            })
        );
        assert_eq!(
            GROUP_RESOURCE.to_json(&format!("{BASE}/")),
            json!({
                "schemas": [RESOURCE_TYPE_SCHEMA],
                "id": "Group",
                "name": "Group",
                "endpoint": "/Groups",
                "description": "Group",
                "schema": GROUP_SCHEMA,
                "meta": { "resourceType": "ResourceType", "location": format!("{BASE}/ResourceTypes/Group") },
            })
        );
        // Every schema a resource type names is published.
        for resource in RESOURCE_TYPES {
            assert!(SCHEMAS.contains(&resource.schema));
            for (extension, _) in resource.extensions {
                assert!(SCHEMAS.contains(extension));
            }
        }
    }
}
