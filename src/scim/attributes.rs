//! What the filter evaluator and the PATCH engine need to know about an attribute: its type, whether
//! it is multi-valued, how its strings compare, and whether a client may write it. The resource
//! schemas (`schema.rs`) answer these questions; keeping the questions here lets the protocol
//! machinery stay independent of the particular schemas.
//!
//! Resources are JSON objects: core attributes at the top level, each extension's attributes under
//! a key equal to the extension's schema URN (RFC 7643 §3.3).

/// RFC 7643 §2.3 attribute data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

/// RFC 7643 §2.2 `mutability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

/// The facts about one attribute (or sub-attribute) that filtering and patching depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttrInfo {
    pub kind: AttrType,
    pub multi_valued: bool,
    /// Whether string comparisons are case-sensitive (RFC 7643 `caseExact`).
    pub case_exact: bool,
    pub mutability: Mutability,
}

/// Answers questions about the attributes of one resource type (User with its extensions, Group).
pub trait AttributeRules {
    /// The attribute `name` (with `sub`, its sub-attribute) of the schema `urn`; `urn` None means
    /// the resource's core schema. Names compare case-insensitively. None: not a known attribute
    /// (it may still be present, for instance in an extension schema Portcullis does not know).
    fn info(&self, urn: Option<&str>, name: &str, sub: Option<&str>) -> Option<AttrInfo>;

    /// Whether `urn` names the resource's core schema (attributes at the top level). Any other URN
    /// is an extension, known or not, whose attributes live under the URN's key.
    fn is_core_schema(&self, urn: &str) -> bool;
}
