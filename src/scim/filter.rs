//! SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2): parsing, canonical printing,
//! type-checking against the schema, and evaluation against a resource.
//!
//! Filter text arrives straight from an HTTP query and PATCH paths straight from a request body, so
//! nothing here panics on any input, and nesting is bounded so that neither the recursive-descent
//! parser nor the recursive evaluator can be driven into a stack overflow.
//!
//! Evaluation choices the RFC leaves open:
//! - `ne` is the negation of `eq`: it matches when the attribute is absent, and on a multi-valued
//!   attribute when no value equals the operand. `x ne v` and `not (x eq v)` are the same filter.
//! - `eq null` means "not present" and `ne null` means "present" (RFC 7643 §2.5 treats null and
//!   unassigned alike); other operators with null are refused by [`Filter::validate`].
//! - An attribute the schema does not know still filters: strings compare case-insensitively and the
//!   type is inferred from the JSON values (two numbers compare numerically, two booleans by `eq`).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::attributes::{AttrInfo, AttrType, AttributeRules};

/// Deepest nesting of parentheses, `not` and value-path brackets the parser accepts. The parser and
/// the evaluator recurse once per level, and the input is untrusted.
pub const MAX_DEPTH: usize = 64;

/// Most attribute expressions one filter may hold. A long `and`/`or` chain is parsed by a loop but
/// builds a tree as tall as the chain, which printing, evaluating and dropping walk recursively;
/// this bound keeps that height (and the evaluation cost) small.
pub const MAX_TERMS: usize = 1000;

/// `[urn ":"] name ["." sub]`, as written by the client (names compare case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// The schema URN prefix, when the client wrote one.
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// A core-schema attribute path without a sub-attribute.
    pub fn new(name: impl Into<String>) -> Self {
        AttrPath { urn: None, name: name.into(), sub: None }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// RFC 7644 Table 3 comparison operators (`pr` is [`Filter::Present`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// The operator named by `word`, in any case.
    fn from_word(word: &str) -> Option<Self> {
        [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ]
        .into_iter()
        .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    fn is_ordering(self) -> bool {
        matches!(self, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le)
    }

    fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }

    /// Whether `ordering` (attribute value against operand) satisfies this operator.
    fn accepts(self, ordering: Ordering) -> bool {
        match self {
            CompareOp::Eq => ordering == Ordering::Equal,
            CompareOp::Ne => ordering != Ordering::Equal,
            CompareOp::Gt => ordering == Ordering::Greater,
            CompareOp::Ge => ordering != Ordering::Less,
            CompareOp::Lt => ordering == Ordering::Less,
            CompareOp::Le => ordering != Ordering::Greater,
            CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed filter. Display prints canonical text that parses back to the same value.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `path op value`; `value` is a string, number, boolean or null.
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Value,
    },
    /// `path pr`.
    Present(AttrPath),
    /// emails[type eq "work" and value co "@acme.com"]: `filter` is evaluated on each element of the
    /// multi-valued `path`; inner paths are relative to it.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

/// PATCH path (RFC 7644 §3.5.2): attrPath [ "[" valFilter "]" [ "." subAttr ] ]
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute; `attr.sub` is set only when there is no filter (`name.givenName`).
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// The sub-attribute after the brackets (`emails[type eq "work"].value`).
    pub sub: Option<String>,
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// Why a filter or path was refused. Positions count characters from 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The text does not follow the grammar.
    #[error("at character {position}: expected {expected}, found {found}")]
    Syntax { position: usize, expected: &'static str, found: String },
    /// An attribute path that is not `[urn:…:]name[.subAttr]`.
    #[error("at character {position}: invalid attribute path \"{path}\": {reason}")]
    InvalidPath { position: usize, path: String, reason: &'static str },
    /// A quoted string with a bad escape or an unescaped control character.
    #[error("at character {position}: invalid string: {reason}")]
    InvalidString { position: usize, reason: String },
    #[error("at character {position}: filter nested deeper than {MAX_DEPTH} levels")]
    TooDeep { position: usize },
    #[error("at character {position}: filter has more than {MAX_TERMS} attribute expressions")]
    TooComplex { position: usize },
    /// Well-formed, but meaningless for the schema (RFC 7644 scimType invalidFilter).
    #[error("invalid filter on {attribute}: {reason}")]
    Invalid { attribute: String, reason: String },
}

/// Parses a filter such as `userName eq "bjensen" and emails[type eq "work"]`.
pub fn parse_filter(input: &str) -> Result<Filter, FilterError> {
    let mut parser = Parser::new(input);
    let filter = parser.or_expr(0)?;
    parser.skip_whitespace();
    if !parser.at_end() {
        return Err(parser.syntax_error("'and', 'or' or the end of the filter"));
    }
    Ok(filter)
}

/// Parses a PATCH path such as `members[value eq "2819c223"]` or `emails[type eq "work"].value`.
pub fn parse_path(input: &str) -> Result<PatchPath, FilterError> {
    let mut parser = Parser::new(input);
    parser.skip_whitespace();
    let attr = parser.attr_path()?;
    let mut filter = None;
    let mut sub = None;
    if parser.peek() == Some('[') {
        filter = Some(parser.bracketed_filter(&attr, 0)?);
        if parser.eat('.') {
            sub = Some(parser.sub_attribute_after_filter()?);
        }
    }
    parser.skip_whitespace();
    if !parser.at_end() {
        return Err(parser.syntax_error("the end of the path"));
    }
    Ok(PatchPath { attr, filter, sub })
}

/// Recursive descent over the input; `pos` is a byte offset (always on a char boundary).
struct Parser<'a> {
    input: &'a str,
    pos: usize,
    terms: usize,
    in_value_filter: bool,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Parser { input, pos: 0, terms: 0, in_value_filter: false }
    }

    fn rest(&self) -> &'a str {
        self.input.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_end(&self) -> bool {
        self.rest().is_empty()
    }

    fn skip_whitespace(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, expected: char) -> bool {
        if self.peek() == Some(expected) {
            self.pos += expected.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, expected: char, what: &'static str) -> Result<(), FilterError> {
        self.skip_whitespace();
        if self.eat(expected) { Ok(()) } else { Err(self.syntax_error(what)) }
    }

    /// Takes characters while `keep` holds and returns them.
    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let len = rest.find(|c: char| !keep(c)).unwrap_or(rest.len());
        self.pos += len;
        rest.get(..len).unwrap_or("")
    }

    fn char_position_of(&self, byte_pos: usize) -> usize {
        self.input.get(..byte_pos).map_or(0, |before| before.chars().count())
    }

    fn syntax_error(&self, expected: &'static str) -> FilterError {
        let found = match self.rest().split_whitespace().next() {
            None => "the end of the input".to_owned(),
            Some(token) => format!("\"{}\"", token.chars().take(24).collect::<String>()),
        };
        FilterError::Syntax { position: self.char_position_of(self.pos), expected, found }
    }

    /// One more nesting level, or an error past [`MAX_DEPTH`].
    fn nest(&self, depth: usize) -> Result<usize, FilterError> {
        if depth >= MAX_DEPTH {
            return Err(FilterError::TooDeep { position: self.char_position_of(self.pos) });
        }
        Ok(depth + 1)
    }

    fn count_term(&mut self) -> Result<(), FilterError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(FilterError::TooComplex { position: self.char_position_of(self.pos) });
        }
        Ok(())
    }

    /// Consumes the logical word `word` (any case) if it comes next as a whole word.
    fn keyword(&mut self, word: &str) -> bool {
        let start = self.pos;
        self.skip_whitespace();
        let candidate = self.take_while(is_path_char);
        if candidate.eq_ignore_ascii_case(word) {
            return true;
        }
        self.pos = start;
        false
    }

    /// orExp: andExp *("or" andExp), left-associative.
    fn or_expr(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.and_expr(depth)?;
        while self.keyword("or") {
            let right = self.and_expr(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// andExp: factor *("and" factor), left-associative.
    fn and_expr(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let mut left = self.factor(depth)?;
        while self.keyword("and") {
            let right = self.factor(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// factor: "(" filter ")" / "not" "(" filter ")" / attrExp / valuePath.
    fn factor(&mut self, depth: usize) -> Result<Filter, FilterError> {
        self.skip_whitespace();
        if self.peek() == Some('(') {
            let inner_depth = self.nest(depth)?;
            self.pos += 1;
            let inner = self.or_expr(inner_depth)?;
            self.expect(')', "')' closing the group")?;
            return Ok(inner);
        }
        if self.at_not() {
            let inner_depth = self.nest(depth)?;
            self.pos += "not".len();
            self.expect('(', "'(' after 'not'")?;
            let inner = self.or_expr(inner_depth)?;
            self.expect(')', "')' closing 'not ('")?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        self.attr_exp(depth)
    }

    /// `not` is the operator only when a parenthesis follows; otherwise it is an attribute name.
    fn at_not(&self) -> bool {
        let rest = self.rest();
        let is_not = rest.get(..3).is_some_and(|word| word.eq_ignore_ascii_case("not"));
        is_not && rest.get(3..).is_some_and(|after| after.trim_start().starts_with('('))
    }

    fn attr_path(&mut self) -> Result<AttrPath, FilterError> {
        let start = self.pos;
        let token = self.take_while(is_path_char);
        if token.is_empty() {
            return Err(self.syntax_error("an attribute path"));
        }
        parse_attr_path(token).map_err(|reason| FilterError::InvalidPath {
            position: self.char_position_of(start),
            path: token.to_owned(),
            reason,
        })
    }

    /// attrExp (`path pr`, `path op value`) or valuePath (`path[filter]`).
    fn attr_exp(&mut self, depth: usize) -> Result<Filter, FilterError> {
        if self.at_end() || matches!(self.peek(), Some(')' | ']')) {
            return Err(self.syntax_error("an attribute path, '(' or 'not ('"));
        }
        let path = self.attr_path()?;
        self.count_term()?;
        if self.peek() == Some('[') {
            return self.value_path(path, depth);
        }
        self.comparison(path)
    }

    /// The operator and value after an attribute path: `pr`, or `op value`.
    fn comparison(&mut self, path: AttrPath) -> Result<Filter, FilterError> {
        self.skip_whitespace();
        let word = self.take_while(|c| c.is_ascii_alphabetic());
        if word.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::from_word(word) else {
            self.pos -= word.len();
            if path.name.eq_ignore_ascii_case("not") && path.urn.is_none() {
                return Err(self.syntax_error("'(' after 'not'"));
            }
            return Err(self.syntax_error("an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr)"));
        };
        let value = self.comp_value()?;
        Ok(Filter::Compare { path, op, value })
    }

    fn value_path(&mut self, path: AttrPath, depth: usize) -> Result<Filter, FilterError> {
        let mut filter = self.bracketed_filter(&path, depth)?;
        // Entra ID looks users up with `emails[type eq "work"].value eq "…"`, which RFC 7644 does
        // not define: read it as `emails[type eq "work" and value eq "…"]`, what it means.
        if self.peek() == Some('.') {
            self.pos += 1;
            let sub = self.sub_attribute_after_filter()?;
            let condition = self.comparison(AttrPath::new(sub))?;
            filter = Filter::And(Box::new(filter), Box::new(condition));
        }
        Ok(Filter::ValuePath { path, filter: Box::new(filter) })
    }

    /// `[ valFilter ]` after `path`; the parser sits on the '['.
    fn bracketed_filter(&mut self, path: &AttrPath, depth: usize) -> Result<Filter, FilterError> {
        if self.in_value_filter {
            return Err(self.syntax_error("a comparison (value filters cannot be nested)"));
        }
        if path.sub.is_some() {
            return Err(self.syntax_error("'[' only after an attribute without a sub-attribute"));
        }
        let inner_depth = self.nest(depth)?;
        self.pos += 1;
        self.in_value_filter = true;
        let inner = self.or_expr(inner_depth);
        self.in_value_filter = false;
        let inner = inner?;
        self.expect(']', "']' closing the value filter")?;
        Ok(inner)
    }

    fn sub_attribute_after_filter(&mut self) -> Result<String, FilterError> {
        let start = self.pos;
        let name = self.take_while(is_path_char);
        if is_attr_name(name) {
            return Ok(name.to_owned());
        }
        Err(FilterError::InvalidPath {
            position: self.char_position_of(start),
            path: name.to_owned(),
            reason: "expected a sub-attribute name after ']. '",
        })
    }

    /// compValue: false / null / true / number / string.
    fn comp_value(&mut self) -> Result<Value, FilterError> {
        self.skip_whitespace();
        if self.peek() == Some('"') {
            return self.string_value();
        }
        let start = self.pos;
        let token = self.take_while(|c| !c.is_whitespace() && !matches!(c, '(' | ')' | '[' | ']' | '"'));
        let value = match token.to_ascii_lowercase().as_str() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            "null" => Some(Value::Null),
            _ => parse_number(token),
        };
        // A bare word is read as a string: Microsoft's own SCIM tutorial shows Entra ID sending
        // `externalId eq jyoung`, and refusing it would fail a lookup the admin cannot fix.
        let value = value.or_else(|| {
            let word = token.chars().next().is_some_and(|c| c.is_alphanumeric());
            word.then(|| Value::String(token.to_owned()))
        });
        value.ok_or_else(|| {
            self.pos = start;
            self.syntax_error("a value: a \"string\", a number, true, false or null")
        })
    }

    /// A JSON string literal, escapes and all; the parser sits on the opening quote.
    fn string_value(&mut self) -> Result<Value, FilterError> {
        let start = self.pos;
        let Some(end) = closing_quote(self.input.as_bytes(), start) else {
            return Err(FilterError::InvalidString {
                position: self.char_position_of(start),
                reason: "no closing '\"'".to_owned(),
            });
        };
        let literal = self.input.get(start..=end).unwrap_or("");
        self.pos = end + 1;
        serde_json::from_str::<String>(literal).map(Value::String).map_err(|error| {
            FilterError::InvalidString {
                position: self.char_position_of(start),
                reason: format!("{} (use JSON escapes)", string_error_reason(&error)),
            }
        })
    }
}

/// A short description of a JSON string error, without serde_json's line and column (which count
/// within the literal, not the filter).
fn string_error_reason(error: &serde_json::Error) -> &'static str {
    let text = error.to_string();
    if text.contains("control character") {
        "unescaped control character"
    } else if text.contains("surrogate") {
        "invalid \\u surrogate"
    } else if text.contains("escape") {
        "invalid escape sequence"
    } else {
        "malformed string"
    }
}

/// Byte index of the quote that closes the string opened at `open`.
fn closing_quote(bytes: &[u8], open: usize) -> Option<usize> {
    let mut index = open + 1;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'"' => return Some(index),
            b'\\' => index += 2,
            _ => index += 1,
        }
    }
    None
}

/// A JSON number token (`-1`, `2.5e3`); anything else, including out-of-range floats, is None.
/// serde_json checks the grammar; fractions are then read by `f64::from_str`, which rounds
/// correctly, so that printed filters parse back to the same number.
fn parse_number(token: &str) -> Option<Value> {
    let starts_like_number = token.starts_with(|c: char| c == '-' || c.is_ascii_digit());
    if !starts_like_number {
        return None;
    }
    let number = serde_json::from_str::<Value>(token).ok().filter(Value::is_number)?;
    if number.is_i64() || number.is_u64() {
        return Some(number);
    }
    let float = token.parse::<f64>().ok()?;
    serde_json::Number::from_f64(float).map(Value::Number)
}

/// Characters that can appear in an attribute path token (URN prefixes included).
fn is_path_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '(' | ')' | '[' | ']' | '"')
}

/// ATTRNAME = ALPHA *(nameChar), plus `$ref` (RFC 7643 uses it for references).
fn is_attr_name(name: &str) -> bool {
    if name == "$ref" {
        return true;
    }
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Splits `[urn:…:]name[.sub]`. A URN prefix is recognised by "urn:" and ends at the last colon.
fn parse_attr_path(token: &str) -> Result<AttrPath, &'static str> {
    let has_urn = token.get(..4).is_some_and(|prefix| prefix.eq_ignore_ascii_case("urn:"));
    let (urn, rest) = match token.rfind(':') {
        Some(colon) if has_urn => (token.get(..colon), token.get(colon + 1..).unwrap_or("")),
        Some(_) => return Err("a schema prefix must start with \"urn:\""),
        None => (None, token),
    };
    if urn.is_some_and(|urn| urn.len() <= "urn:".len()) {
        return Err("expected \"urn:<schema>:<attribute>\"");
    }
    let (name, sub) = match rest.split_once('.') {
        Some((name, sub)) => (name, Some(sub)),
        None => (rest, None),
    };
    if !is_attr_name(name) {
        return Err("an attribute name starts with a letter and has letters, digits, '-' or '_'");
    }
    if sub.is_some_and(|sub| !is_attr_name(sub)) {
        return Err("expected one sub-attribute name after '.'");
    }
    Ok(AttrPath { urn: urn.map(str::to_owned), name: name.to_owned(), sub: sub.map(str::to_owned) })
}

impl Filter {
    /// How tightly the printed form binds: `or` loosest, then `and`, then everything else.
    fn precedence(&self) -> u8 {
        match self {
            Filter::Or(..) => 1,
            Filter::And(..) => 2,
            _ => 3,
        }
    }

    /// Type-checks against the schema: gt/ge/lt/le on Boolean or Binary, or a comparison value of the
    /// wrong JSON type for a known attribute, is an error (RFC: 400 invalidFilter).
    pub fn validate(&self, rules: &dyn AttributeRules) -> Result<(), FilterError> {
        validate_in(self, None, rules)
    }

    pub fn matches(&self, resource: &Value, rules: &dyn AttributeRules) -> bool {
        evaluate(self, Scope::Resource(resource), rules)
    }
}

/// Prints `filter` in parentheses when it binds more loosely than its position needs.
struct Grouped<'a>(&'a Filter, u8);

impl fmt::Display for Grouped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.precedence() < self.1 { write!(f, "({})", self.0) } else { write!(f, "{}", self.0) }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
            // Both chains are left-associative, so only a right operand of equal precedence needs
            // parentheses to come back as the same tree.
            Filter::And(left, right) => write!(f, "{} and {}", Grouped(left, 2), Grouped(right, 3)),
            Filter::Or(left, right) => write!(f, "{} or {}", Grouped(left, 1), Grouped(right, 2)),
            Filter::Not(inner) => write!(f, "not ({inner})"),
        }
    }
}

/// For the PATCH engine and the server: whether one element of a multi-valued attribute `parent`
/// matches a value filter.
pub fn element_matches(
    filter: &Filter,
    parent: &AttrPath,
    element: &Value,
    rules: &dyn AttributeRules,
) -> bool {
    evaluate(filter, Scope::Element { parent, element }, rules)
}

/// [`Filter::validate`] for the filter inside `parent[…]`, whose paths are sub-attributes of `parent`.
pub fn validate_element_filter(
    filter: &Filter,
    parent: &AttrPath,
    rules: &dyn AttributeRules,
) -> Result<(), FilterError> {
    check_value_path_parent(parent, rules)?;
    validate_in(filter, Some(parent), rules)
}

/// The member `name` of `object`, matched exactly first and then case-insensitively (a client may
/// have stored `UserName`).
pub fn member<'m>(object: &'m Map<String, Value>, name: &str) -> Option<&'m Value> {
    object.get(name).or_else(|| object.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// The key under which `object` holds the member `name`, found as in [`member`].
pub fn member_key(object: &Map<String, Value>, name: &str) -> Option<String> {
    if object.contains_key(name) {
        return Some(name.to_owned());
    }
    object.keys().find(|key| key.eq_ignore_ascii_case(name)).cloned()
}

/// The schema URN to ask the rules about: None for the core schema, however it was written.
pub fn extension_urn<'u>(urn: Option<&'u str>, rules: &dyn AttributeRules) -> Option<&'u str> {
    urn.filter(|urn| !rules.is_core_schema(urn))
}

/// Whether `value` counts as present for `pr`: not null, not an empty string, array or object
/// (an array or object of only such values is empty too).
pub fn is_present(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(is_present_scalar),
        Value::Object(members) => members.values().any(is_present_scalar),
        other => is_present_scalar(other),
    }
}

/// One level of [`is_present`], so that it never recurses into arbitrarily deep JSON.
fn is_present_scalar(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(members) => !members.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn validate_in(
    filter: &Filter,
    parent: Option<&AttrPath>,
    rules: &dyn AttributeRules,
) -> Result<(), FilterError> {
    match filter {
        Filter::Compare { path, op, value } => {
            let info = comparison_info(parent, path, rules)?;
            check_comparison(path, *op, value, info)
        }
        Filter::Present(_) => Ok(()),
        Filter::ValuePath { path, filter } => {
            if parent.is_some() {
                return Err(invalid(path, "value filters cannot be nested"));
            }
            validate_element_filter(filter, path, rules)
        }
        Filter::And(left, right) | Filter::Or(left, right) => {
            validate_in(left, parent, rules)?;
            validate_in(right, parent, rules)
        }
        Filter::Not(inner) => validate_in(inner, parent, rules),
    }
}

fn invalid(path: &AttrPath, reason: impl Into<String>) -> FilterError {
    FilterError::Invalid { attribute: path.to_string(), reason: reason.into() }
}

/// A bracketed filter needs a complex attribute to look into.
fn check_value_path_parent(parent: &AttrPath, rules: &dyn AttributeRules) -> Result<(), FilterError> {
    let urn = extension_urn(parent.urn.as_deref(), rules);
    match rules.info(urn, &parent.name, None) {
        Some(info) if info.kind != AttrType::Complex => {
            Err(invalid(parent, "a filter in brackets needs a complex attribute"))
        }
        _ => Ok(()),
    }
}

/// The schema facts for the values a comparison on `path` looks at. Comparing a complex attribute
/// itself means comparing its `value` sub-attribute (`emails eq "x"`, `manager eq "id"`).
fn comparison_info(
    parent: Option<&AttrPath>,
    path: &AttrPath,
    rules: &dyn AttributeRules,
) -> Result<Option<AttrInfo>, FilterError> {
    if let Some(parent) = parent {
        let urn = extension_urn(parent.urn.as_deref(), rules);
        return Ok(rules.info(urn, &parent.name, Some(&path.name)));
    }
    let urn = extension_urn(path.urn.as_deref(), rules);
    if let Some(sub) = &path.sub {
        return Ok(rules.info(urn, &path.name, Some(sub)));
    }
    match rules.info(urn, &path.name, None) {
        Some(info) if info.kind == AttrType::Complex => match rules.info(urn, &path.name, Some("value")) {
            Some(value_info) => Ok(Some(value_info)),
            None => Err(invalid(path, "compare one of its sub-attributes (name.sub)")),
        },
        info => Ok(info),
    }
}

fn check_comparison(
    path: &AttrPath,
    op: CompareOp,
    value: &Value,
    info: Option<AttrInfo>,
) -> Result<(), FilterError> {
    match value {
        Value::Null if matches!(op, CompareOp::Eq | CompareOp::Ne) => return Ok(()),
        Value::Null => {
            return Err(invalid(path, format!("null can only be compared with eq or ne, not {op}")));
        }
        Value::Array(_) | Value::Object(_) => {
            return Err(invalid(path, "the value must be a string, number, true, false or null"));
        }
        _ => {}
    }
    let Some(info) = info else { return Ok(()) };
    if op.is_ordering() && matches!(info.kind, AttrType::Boolean | AttrType::Binary) {
        return Err(invalid(path, format!("{op} is not defined for {:?} attributes", info.kind)));
    }
    if op.is_substring() && matches!(info.kind, AttrType::Boolean | AttrType::Integer | AttrType::Decimal) {
        return Err(invalid(path, format!("{op} is for strings, not {:?} attributes", info.kind)));
    }
    if value_fits(info.kind, value) {
        Ok(())
    } else {
        Err(invalid(path, format!("expected {} value", expected_json(info.kind))))
    }
}

/// Whether a comparison operand has the JSON type an attribute of `kind` holds.
fn value_fits(kind: AttrType, value: &Value) -> bool {
    match kind {
        AttrType::String | AttrType::Reference | AttrType::Binary | AttrType::DateTime => value.is_string(),
        AttrType::Boolean => value.is_boolean(),
        AttrType::Integer => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        AttrType::Decimal => value.is_number(),
        AttrType::Complex => false,
    }
}

/// How an error message names the JSON a value of `kind` must be.
pub fn expected_json(kind: AttrType) -> &'static str {
    match kind {
        AttrType::String | AttrType::Reference | AttrType::Binary => "a string",
        AttrType::DateTime => "an RFC 3339 date-time string",
        AttrType::Boolean => "a boolean (true or false)",
        AttrType::Integer => "an integer",
        AttrType::Decimal => "a number",
        AttrType::Complex => "an object",
    }
}

/// Where paths are resolved: the resource itself, or one element of a multi-valued attribute.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Resource(&'a Value),
    Element { parent: &'a AttrPath, element: &'a Value },
}

fn evaluate(filter: &Filter, scope: Scope<'_>, rules: &dyn AttributeRules) -> bool {
    match filter {
        Filter::Compare { path, op, value } => compare_path(scope, path, *op, value, rules),
        Filter::Present(path) => present_at(scope, path, rules),
        Filter::ValuePath { path, filter } => match scope {
            Scope::Resource(resource) => attribute_items(resource, path, rules)
                .into_iter()
                .any(|element| evaluate(filter, Scope::Element { parent: path, element }, rules)),
            // The parser never nests value filters; a hand-built one matches nothing.
            Scope::Element { .. } => false,
        },
        Filter::And(left, right) => evaluate(left, scope, rules) && evaluate(right, scope, rules),
        Filter::Or(left, right) => evaluate(left, scope, rules) || evaluate(right, scope, rules),
        Filter::Not(inner) => !evaluate(inner, scope, rules),
    }
}

/// The JSON values a path names, and the schema facts that govern comparing them.
struct Resolved<'a> {
    /// The attribute (or element member) itself, for `pr`.
    whole: Option<&'a Value>,
    /// The individual values to compare: one per element of a multi-valued attribute.
    values: Vec<&'a Value>,
    info: Option<AttrInfo>,
}

fn resolve<'a>(scope: Scope<'a>, path: &AttrPath, rules: &dyn AttributeRules) -> Resolved<'a> {
    match scope {
        Scope::Resource(resource) => resolve_in_resource(resource, path, rules),
        Scope::Element { parent, element } => resolve_in_element(parent, element, path, rules),
    }
}

fn resolve_in_resource<'a>(resource: &'a Value, path: &AttrPath, rules: &dyn AttributeRules) -> Resolved<'a> {
    let urn = extension_urn(path.urn.as_deref(), rules);
    let attribute = schema_object(resource, urn).and_then(|container| member(container, &path.name));
    if let Some(sub) = &path.sub {
        let values = flatten(attribute).into_iter().filter_map(|item| object_member(item, sub));
        let values = values.flat_map(|value| flatten(Some(value))).collect();
        return Resolved { whole: attribute, values, info: rules.info(urn, &path.name, Some(sub)) };
    }
    let info = match rules.info(urn, &path.name, None) {
        Some(info) if info.kind == AttrType::Complex => rules.info(urn, &path.name, Some("value")),
        info => info,
    };
    // `emails eq "x"` compares each element's `value`; a simple multi-valued attribute's elements
    // are compared themselves.
    let values = flatten(attribute)
        .into_iter()
        .filter_map(|item| if item.is_object() { object_member(item, "value") } else { Some(item) })
        .collect();
    Resolved { whole: attribute, values, info }
}

fn resolve_in_element<'a>(
    parent: &AttrPath,
    element: &'a Value,
    path: &AttrPath,
    rules: &dyn AttributeRules,
) -> Resolved<'a> {
    let urn = extension_urn(parent.urn.as_deref(), rules);
    let member_value = match element {
        Value::Object(_) => object_member(element, &path.name),
        // Elements of a simple multi-valued attribute are their own `value`.
        _ if path.name.eq_ignore_ascii_case("value") => Some(element),
        _ => None,
    };
    let (whole, info) = match &path.sub {
        Some(sub) => (member_value.and_then(|value| object_member(value, sub)), None),
        None => (member_value, rules.info(urn, &parent.name, Some(&path.name))),
    };
    Resolved { whole, values: flatten(whole), info }
}

/// The object holding a schema's attributes: the resource for the core schema, else the member
/// named by the extension URN.
fn schema_object<'a>(resource: &'a Value, urn: Option<&str>) -> Option<&'a Map<String, Value>> {
    let resource = resource.as_object()?;
    match urn {
        None => Some(resource),
        Some(urn) => member(resource, urn)?.as_object(),
    }
}

fn object_member<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    member(value.as_object()?, name)
}

/// The elements of an array, or the value itself.
fn flatten(value: Option<&Value>) -> Vec<&Value> {
    match value {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
    }
}

/// The elements a value path iterates over: the array's items, or a single complex value.
fn attribute_items<'a>(resource: &'a Value, path: &AttrPath, rules: &dyn AttributeRules) -> Vec<&'a Value> {
    let urn = extension_urn(path.urn.as_deref(), rules);
    flatten(schema_object(resource, urn).and_then(|container| member(container, &path.name)))
}

fn present_at(scope: Scope<'_>, path: &AttrPath, rules: &dyn AttributeRules) -> bool {
    let resolved = resolve(scope, path, rules);
    match (scope, &path.sub) {
        (Scope::Resource(_), None) => resolved.whole.is_some_and(is_present),
        _ => resolved.values.into_iter().any(is_present),
    }
}

fn compare_path(
    scope: Scope<'_>,
    path: &AttrPath,
    op: CompareOp,
    operand: &Value,
    rules: &dyn AttributeRules,
) -> bool {
    if operand.is_null() {
        let present = present_at(scope, path, rules);
        return match op {
            CompareOp::Eq => !present,
            CompareOp::Ne => present,
            _ => false,
        };
    }
    let resolved = resolve(scope, path, rules);
    let any_satisfies =
        |op| resolved.values.iter().any(|value| compare_value(value, op, operand, resolved.info));
    match op {
        CompareOp::Ne => !any_satisfies(CompareOp::Eq),
        op => any_satisfies(op),
    }
}

/// Compares one attribute value with the operand under `op` (never `ne`, which is `not eq`).
fn compare_value(value: &Value, op: CompareOp, operand: &Value, info: Option<AttrInfo>) -> bool {
    let kind = info.map_or_else(|| inferred_kind(value, operand), |info| info.kind);
    let case_exact = info.is_some_and(|info| info.case_exact);
    match kind {
        AttrType::Boolean => {
            op == CompareOp::Eq && as_bool(value).is_some_and(|value| Some(value) == as_bool(operand))
        }
        AttrType::Integer | AttrType::Decimal => {
            compare_numbers(value, operand).is_some_and(|o| op.accepts(o))
        }
        AttrType::DateTime => compare_datetimes(value, op, operand, case_exact),
        AttrType::String | AttrType::Reference | AttrType::Binary | AttrType::Complex => {
            compare_strings(value, op, operand, case_exact)
        }
    }
}

/// The type of an attribute the schema does not know, from the JSON on both sides.
fn inferred_kind(value: &Value, operand: &Value) -> AttrType {
    match (value, operand) {
        (Value::Number(_), Value::Number(_)) => AttrType::Decimal,
        (Value::Bool(_), Value::Bool(_)) => AttrType::Boolean,
        _ => AttrType::String,
    }
}

/// A boolean, or the strings "true"/"false" in any case (stored by lenient clients).
fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) => parse_bool(text),
        _ => None,
    }
}

/// "true"/"false" in any case: Microsoft Entra sends booleans as "True" and "False".
pub fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Exact for integers, by f64 otherwise.
fn compare_numbers(value: &Value, operand: &Value) -> Option<Ordering> {
    let (Value::Number(left), Value::Number(right)) = (value, operand) else { return None };
    if let (Some(left), Some(right)) = (left.as_i64(), right.as_i64()) {
        return Some(left.cmp(&right));
    }
    if let (Some(left), Some(right)) = (left.as_u64(), right.as_u64()) {
        return Some(left.cmp(&right));
    }
    left.as_f64()?.partial_cmp(&right.as_f64()?)
}

/// Chronological when both sides are RFC 3339 date-times; as strings otherwise.
fn compare_datetimes(value: &Value, op: CompareOp, operand: &Value, case_exact: bool) -> bool {
    let parse = |value: &Value| value.as_str().and_then(|text| OffsetDateTime::parse(text, &Rfc3339).ok());
    match (parse(value), parse(operand)) {
        (Some(left), Some(right)) if !op.is_substring() => op.accepts(left.cmp(&right)),
        _ => compare_strings(value, op, operand, case_exact),
    }
}

fn compare_strings(value: &Value, op: CompareOp, operand: &Value, case_exact: bool) -> bool {
    let (Some(value), Some(operand)) = (value.as_str(), operand.as_str()) else { return false };
    let fold = |text: &str| -> String { text.to_lowercase() };
    let (value, operand): (Cow<'_, str>, Cow<'_, str>) = if case_exact {
        (Cow::Borrowed(value), Cow::Borrowed(operand))
    } else {
        (Cow::Owned(fold(value)), Cow::Owned(fold(operand)))
    };
    match op {
        CompareOp::Co => value.contains(operand.as_ref()),
        CompareOp::Sw => value.starts_with(operand.as_ref()),
        CompareOp::Ew => value.ends_with(operand.as_ref()),
        op => op.accepts(value.cmp(&operand)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::scim::attributes::Mutability;
    use proptest::prelude::*;
    use serde_json::json;

    pub(crate) const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
    pub(crate) const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    /// A User-like schema: the RFC 7643 attributes the tests use, plus `loginCount` (Integer),
    /// `tags` (multi-valued strings) and an Immutable `organization` in the enterprise extension.
    pub(crate) struct UserRules;

    fn attr(
        kind: AttrType,
        multi_valued: bool,
        case_exact: bool,
        mutability: Mutability,
    ) -> Option<AttrInfo> {
        Some(AttrInfo { kind, multi_valued, case_exact, mutability })
    }

    fn rw(kind: AttrType) -> Option<AttrInfo> {
        attr(kind, false, false, Mutability::ReadWrite)
    }

    fn core_info(name: &str, sub: Option<&str>) -> Option<AttrInfo> {
        use AttrType::*;
        use Mutability::*;
        match (name, sub) {
            ("id", None) => attr(String, false, true, ReadOnly),
            ("externalid", None) => attr(String, false, true, ReadWrite),
            ("username" | "displayname" | "title" | "usertype" | "nickname", None) => rw(String),
            ("active", None) => rw(Boolean),
            ("logincount", None) => rw(Integer),
            ("tags", None) => attr(String, true, false, ReadWrite),
            ("name", None) => rw(Complex),
            ("name", Some("givenname" | "familyname" | "formatted")) => rw(String),
            ("emails", None) => attr(Complex, true, false, ReadWrite),
            ("emails", Some("value" | "type" | "display")) => rw(String),
            ("emails", Some("primary")) => rw(Boolean),
            ("x509certificates", None) => attr(Complex, true, true, ReadWrite),
            ("x509certificates", Some("value")) => attr(Binary, false, true, ReadWrite),
            ("groups", None) => attr(Complex, true, false, ReadOnly),
            ("groups", Some("value" | "display" | "$ref")) => attr(String, false, false, ReadOnly),
            ("meta", None) => attr(Complex, false, false, ReadOnly),
            ("meta", Some("created" | "lastmodified")) => attr(DateTime, false, false, ReadOnly),
            ("meta", Some("resourcetype" | "location" | "version")) => attr(String, false, true, ReadOnly),
            _ => None,
        }
    }

    fn enterprise_info(name: &str, sub: Option<&str>) -> Option<AttrInfo> {
        use AttrType::*;
        use Mutability::*;
        match (name, sub) {
            ("employeenumber" | "department" | "costcenter" | "division", None) => rw(String),
            ("organization", None) => attr(String, false, false, Immutable),
            ("manager", None) => rw(Complex),
            ("manager", Some("value")) => attr(String, false, true, ReadWrite),
            ("manager", Some("$ref")) => attr(Reference, false, true, ReadWrite),
            ("manager", Some("displayname")) => attr(String, false, false, ReadOnly),
            _ => None,
        }
    }

    impl AttributeRules for UserRules {
        fn info(&self, urn: Option<&str>, name: &str, sub: Option<&str>) -> Option<AttrInfo> {
            let name = name.to_ascii_lowercase();
            let sub = sub.map(str::to_ascii_lowercase);
            match urn {
                None => core_info(&name, sub.as_deref()),
                Some(urn) if self.is_core_schema(urn) => core_info(&name, sub.as_deref()),
                Some(urn) if urn.eq_ignore_ascii_case(ENTERPRISE) => enterprise_info(&name, sub.as_deref()),
                Some(_) => None,
            }
        }

        fn is_core_schema(&self, urn: &str) -> bool {
            urn.eq_ignore_ascii_case(CORE)
        }
    }

    fn parse(text: &str) -> Filter {
        parse_filter(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn path(name: &str) -> AttrPath {
        AttrPath::new(name)
    }

    fn sub_path(name: &str, sub: &str) -> AttrPath {
        AttrPath { urn: None, name: name.into(), sub: Some(sub.into()) }
    }

    fn compare(path: AttrPath, op: CompareOp, value: Value) -> Filter {
        Filter::Compare { path, op, value }
    }

    fn present(name: &str) -> Filter {
        Filter::Present(path(name))
    }

    fn and(left: Filter, right: Filter) -> Filter {
        Filter::And(Box::new(left), Box::new(right))
    }

    fn or(left: Filter, right: Filter) -> Filter {
        Filter::Or(Box::new(left), Box::new(right))
    }

    fn not(inner: Filter) -> Filter {
        Filter::Not(Box::new(inner))
    }

    /// Every example filter of RFC 7644 §3.4.2.2 (and Figure 3 of §3.4.2.2's list).
    const RFC_EXAMPLES: &[&str] = &[
        r#"userName eq "bjensen""#,
        r#"name.familyName co "O'Malley""#,
        r#"userName sw "J""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        r#"title pr"#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        r#"title pr and userType eq "Employee""#,
        r#"title pr or userType eq "Intern""#,
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    ];

    #[test]
    fn rfc_examples_parse_and_round_trip() {
        for text in RFC_EXAMPLES {
            let filter = parse(text);
            assert_eq!(parse(&filter.to_string()), filter, "{text}");
        }
    }

    #[test]
    fn rfc_value_path_example_has_the_expected_shape() {
        let filter =
            parse(r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#);
        let inner = and(
            compare(path("type"), CompareOp::Eq, json!("work")),
            compare(path("value"), CompareOp::Co, json!("@example.com")),
        );
        let expected = and(
            compare(path("userType"), CompareOp::Eq, json!("Employee")),
            Filter::ValuePath { path: path("emails"), filter: Box::new(inner) },
        );
        assert_eq!(filter, expected);
    }

    #[test]
    fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
        assert_eq!(parse("a pr or b pr and c pr"), or(present("a"), and(present("b"), present("c"))));
        assert_eq!(parse("a pr and b pr or c pr"), or(and(present("a"), present("b")), present("c")));
        assert_eq!(parse("not (a pr) and b pr"), and(not(present("a")), present("b")));
        assert_eq!(parse("(a pr or b pr) and c pr"), and(or(present("a"), present("b")), present("c")));
        assert_eq!(parse("a pr or b pr or c pr"), or(or(present("a"), present("b")), present("c")));
    }

    #[test]
    fn words_are_case_insensitive_and_not_needs_no_space() {
        let filter = parse(r#"userName EQ "x" AnD NOT(title Pr) oR active eq TRUE"#);
        let expected = or(
            and(compare(path("userName"), CompareOp::Eq, json!("x")), not(present("title"))),
            compare(path("active"), CompareOp::Eq, json!(true)),
        );
        assert_eq!(filter, expected);
        assert_eq!(parse("x eq NULL"), compare(path("x"), CompareOp::Eq, Value::Null));
    }

    #[test]
    fn keywords_are_attribute_names_where_a_path_is_expected() {
        assert_eq!(parse("and pr and or pr"), and(present("and"), present("or")));
        assert_eq!(parse("not eq 1"), compare(path("not"), CompareOp::Eq, json!(1)));
        assert_eq!(parse("order pr"), present("order"));
    }

    #[test]
    fn urn_prefix_ends_at_the_last_colon() {
        let filter = parse(&format!(r#"{ENTERPRISE}:manager.value eq "26118915""#));
        let expected =
            AttrPath { urn: Some(ENTERPRISE.into()), name: "manager".into(), sub: Some("value".into()) };
        assert_eq!(filter, compare(expected, CompareOp::Eq, json!("26118915")));
        assert_eq!(parse("members.$ref pr"), Filter::Present(sub_path("members", "$ref")));
    }

    #[test]
    fn values_are_json_strings_numbers_and_literals() {
        let value_of = |text: &str| match parse(&format!("x eq {text}")) {
            Filter::Compare { value, .. } => value,
            other => panic!("{other:?}"),
        };
        assert_eq!(value_of(r#""caf\u00e9 \"q\" \\""#), json!("café \"q\" \\"));
        assert_eq!(value_of("-12"), json!(-12));
        assert_eq!(value_of("2.5e3"), json!(2500.0));
        assert_eq!(value_of("False"), json!(false));
        // A bare word is a string (Entra ID's `externalId eq jyoung`); other tokens are not values.
        assert_eq!(value_of("bjensen"), json!("bjensen"));
        for bad in ["'single'", "+1", "-x", "\\x"] {
            let error = parse_filter(&format!("x eq {bad}")).unwrap_err();
            assert!(matches!(error, FilterError::Syntax { position: 5, .. }), "{bad}: {error}");
        }
    }

    #[test]
    fn errors_say_where_and_what_was_expected() {
        let error = parse_filter("userName eq").unwrap_err();
        assert_eq!(
            error.to_string(),
            "at character 11: expected a value: a \"string\", a number, true, false or null, found the end of the input"
        );
        let error = parse_filter(r#"userName like "x""#).unwrap_err();
        assert!(matches!(error, FilterError::Syntax { position: 9, .. }), "{error}");
        assert!(error.to_string().contains("an operator"));
        let error = parse_filter(r#"(userName eq "x""#).unwrap_err();
        assert!(error.to_string().contains("')' closing the group"), "{error}");
        let error = parse_filter(r#"userName eq "x")"#).unwrap_err();
        assert!(matches!(error, FilterError::Syntax { position: 15, .. }), "{error}");
        let error = parse_filter(r#"userName eq "x"#).unwrap_err();
        assert!(matches!(error, FilterError::InvalidString { position: 12, .. }), "{error}");
        let error = parse_filter("x eq \"a\u{1}\"").unwrap_err();
        assert!(error.to_string().contains("control character"), "{error}");
        let error = parse_filter(r#"x eq "\q""#).unwrap_err();
        assert!(error.to_string().contains("escape"), "{error}");
        let error = parse_filter("not x pr").unwrap_err();
        assert!(error.to_string().contains("'(' after 'not'"), "{error}");
        let error = parse_filter("foo:bar pr").unwrap_err();
        assert!(matches!(error, FilterError::InvalidPath { position: 0, .. }), "{error}");
        for bad in ["", "   ", "()", "1x pr", "a.b.c pr", "urn: pr", "émail pr", "x pr and", "x pr or ()"] {
            assert!(parse_filter(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let error = parse_filter(r#"x eq "é" y"#).unwrap_err();
        assert!(matches!(error, FilterError::Syntax { position: 9, .. }), "{error}");
    }

    #[test]
    fn value_paths_do_not_nest() {
        for bad in [
            r#"emails[type eq "work"].value"#,
            r#"emails[type eq "work"].value eq"#,
            r#"emails[type[x pr]]"#,
            r#"emails[(type[x pr])]"#,
            r#"emails.value[type eq "work"]"#,
            r#"emails[]"#,
            r#"emails[type eq "work""#,
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn entra_ids_sub_attribute_after_a_value_filter_reads_as_a_condition_inside_it() {
        let entra = parse_filter(r#"emails[type eq "work"].value eq "ada@acme.test""#).unwrap();
        let canonical = parse_filter(r#"emails[type eq "work" and value eq "ada@acme.test"]"#).unwrap();
        assert_eq!(entra, canonical);
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize| format!("{}x pr{}", "(".repeat(depth), ")".repeat(depth));
        assert!(parse_filter(&nested(MAX_DEPTH)).is_ok());
        assert!(matches!(parse_filter(&nested(MAX_DEPTH + 1)), Err(FilterError::TooDeep { .. })));
        assert!(matches!(parse_filter(&"(".repeat(200_000)), Err(FilterError::TooDeep { .. })));
        assert!(matches!(parse_filter(&"not (".repeat(200_000)), Err(FilterError::TooDeep { .. })));
        let bracketed = format!("emails[{}type pr{}]", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(matches!(parse_filter(&bracketed), Err(FilterError::TooDeep { .. })));
    }

    #[test]
    fn long_chains_are_bounded() {
        let chain = |terms: usize| vec!["x pr"; terms].join(" or ");
        assert!(parse_filter(&chain(MAX_TERMS)).is_ok());
        assert!(matches!(parse_filter(&chain(MAX_TERMS + 1)), Err(FilterError::TooComplex { .. })));
        assert!(parse_filter(&chain(200_000)).is_err());
        // The tallest tree the parser builds can be printed, checked, evaluated and dropped.
        let tallest = parse_filter(&vec![r#"userName eq "x""#; MAX_TERMS].join(" or ")).unwrap();
        assert_eq!(parse(&tallest.to_string()), tallest);
        assert_eq!(tallest.validate(&UserRules), Ok(()));
        assert!(!tallest.matches(&barbara(), &UserRules));
    }

    #[test]
    fn display_is_canonical_and_minimal() {
        let cases = [
            (r#"userName  EQ   "x""#, r#"userName eq "x""#),
            ("a pr or (b pr or c pr)", "a pr or (b pr or c pr)"),
            ("((a pr or b pr)) and c pr", "(a pr or b pr) and c pr"),
            ("a pr and (b pr and c pr)", "a pr and (b pr and c pr)"),
            ("not(a pr)", "not (a pr)"),
            (
                r#"emails[type eq "work" or (primary eq True)]"#,
                r#"emails[type eq "work" or primary eq true]"#,
            ),
            ("x eq \"tab\\tquote\\\"\"", "x eq \"tab\\tquote\\\"\""),
        ];
        for (input, canonical) in cases {
            assert_eq!(parse(input).to_string(), canonical);
        }
    }

    #[test]
    fn patch_paths_parse() {
        let members = parse_path(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#).unwrap();
        assert_eq!(members.attr, path("members"));
        assert!(members.filter.is_some() && members.sub.is_none());
        let work = parse_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(work.filter, Some(compare(path("type"), CompareOp::Eq, json!("work"))));
        assert_eq!(work.sub.as_deref(), Some("value"));
        assert_eq!(parse_path("name.familyName").unwrap().attr, sub_path("name", "familyName"));
        let manager = parse_path(&format!("{ENTERPRISE}:manager")).unwrap();
        assert_eq!(manager.attr.urn.as_deref(), Some(ENTERPRISE));
        let street = parse_path(r#"addresses[type eq "work"].streetAddress"#).unwrap();
        assert_eq!(street.to_string(), r#"addresses[type eq "work"].streetAddress"#);
    }

    #[test]
    fn bad_patch_paths_are_refused() {
        for bad in [
            "",
            r#"emails[type eq "work"]x"#,
            r#"emails[type eq "work"]."#,
            r#"emails[type eq "work"].value.x"#,
            r#"emails.value[type eq "work"]"#,
            r#"emails[type eq "work"][x pr]"#,
            "name.givenName.x",
            "name givenName",
        ] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validate_refuses_what_the_schema_rules_out() {
        let refused = [
            "active gt true",
            r#"x509Certificates.value ge "TUlJ""#,
            r#"x509Certificates[value lt "TUlJ"]"#,
            "userName eq 1",
            r#"active eq "true""#,
            "loginCount eq 1.5",
            r#"loginCount co "1""#,
            "active sw true",
            r#"emails[primary eq "yes"]"#,
            r#"name eq "Barbara""#,
            "userName gt null",
            "userName[value pr]",
            r#"meta.lastModified gt 2011"#,
        ];
        for text in refused {
            let error = parse(text).validate(&UserRules).unwrap_err();
            assert!(matches!(error, FilterError::Invalid { .. }), "{text}: {error}");
        }
        let accepted = [
            r#"emails eq "a@b""#,
            "loginCount gt 3",
            "loginCount eq 3.0e0",
            "unknownThing eq 1",
            "userName eq null",
            "userName ne null",
            r#"emails[primary eq true and type eq "work"]"#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "x""#,
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            "name pr",
        ];
        for text in accepted {
            assert_eq!(parse(text).validate(&UserRules), Ok(()), "{text}");
        }
        let message = parse("active gt true").validate(&UserRules).unwrap_err().to_string();
        assert_eq!(message, "invalid filter on active: gt is not defined for Boolean attributes");
    }

    pub(crate) fn barbara() -> Value {
        json!({
            "schemas": [CORE, ENTERPRISE],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "UserName": "BJensen",
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "active": true,
            "loginCount": 7,
            "userType": "Employee",
            "title": "",
            "nickName": null,
            "tags": ["Blue", "green"],
            "custom": "abc",
            "customNumber": 5,
            "meta": {"lastModified": "2011-05-13T04:42:34Z"},
            ENTERPRISE: {
                "employeeNumber": "701984",
                "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
            }
        })
    }

    fn matches(text: &str) -> bool {
        let filter = parse(text);
        filter.matches(&barbara(), &UserRules)
    }

    #[test]
    fn matching_follows_case_rules_and_finds_keys_in_any_case() {
        assert!(matches(r#"userName eq "bjensen""#));
        assert!(matches(r#"USERNAME EQ "BJENSEN""#));
        assert!(matches(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bj""#));
        assert!(!matches(r#"id eq "2819C223-7F76-453A-919D-413861904646""#));
        assert!(matches(r#"id eq "2819c223-7f76-453a-919d-413861904646""#));
        assert!(matches(r#"name.familyName co "ENS""#));
        assert!(matches(r#"userName ew "sen" and userName sw "b""#));
        assert!(matches(r#"custom eq "ABC""#), "unknown attributes compare case-insensitively");
    }

    #[test]
    fn matching_multi_valued_attributes_looks_at_every_element() {
        assert!(matches(r#"emails eq "babs@jensen.org""#));
        assert!(matches(r#"emails co "example.com""#));
        assert!(matches(r#"emails.type eq "home""#));
        assert!(matches(r#"emails[type eq "work" and value co "@example.com"]"#));
        assert!(!matches(r#"emails[type eq "home" and primary eq true]"#));
        assert!(matches(r#"emails[not (type eq "work")]"#));
        assert!(matches(r#"tags eq "blue""#));
        assert!(matches(r#"tags[value eq "GREEN"]"#));
        assert!(matches(
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#
        ));
        assert!(!matches(
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#
        ));
        assert!(matches(r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#));
    }

    #[test]
    fn present_means_non_null_and_non_empty() {
        assert!(!matches("title pr"), "empty string");
        assert!(!matches("nickName pr"), "null");
        assert!(!matches("displayName pr"), "absent");
        assert!(!matches("name.middleName pr"));
        assert!(matches("name pr") && matches("emails pr") && matches("emails.primary pr"));
        assert!(
            matches("nickName eq null") && matches("displayName eq null") && !matches("userName eq null")
        );
        assert!(matches("userName ne null") && !matches("title ne null"));
        let empty = json!({"emails": [], "name": {}, "tags": [""], "x": [{}]});
        for attribute in ["emails", "name", "tags", "x"] {
            assert!(!parse(&format!("{attribute} pr")).matches(&empty, &UserRules), "{attribute}");
        }
    }

    #[test]
    fn ne_matches_absent_attributes_and_is_not_eq() {
        assert!(matches(r#"displayName ne "x""#));
        assert!(!matches(r#"userName ne "bjensen""#));
        assert!(!matches(r#"emails.type ne "work""#), "one element is work");
        assert!(matches(r#"emails.type ne "other""#));
    }

    #[test]
    fn numbers_booleans_and_dates_compare_by_type() {
        assert!(matches("loginCount gt 5") && matches("loginCount ge 7") && !matches("loginCount lt 7"));
        assert!(matches("loginCount eq 7.0") && matches("loginCount le 7.5"));
        assert!(matches("customNumber gt 3"), "unknown numbers compare numerically");
        assert!(matches("active eq true") && matches("active ne false") && !matches("active eq false"));
        assert!(matches(r#"meta.lastModified gt "2011-05-13T04:42:33Z""#));
        // Chronologically 03:00Z is earlier; as text "05" would sort after "04".
        assert!(matches(r#"meta.lastModified gt "2011-05-13T05:00:00+02:00""#));
        assert!(matches(r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#));
        assert!(matches(r#"meta.lastModified sw "2011-05""#));
        assert!(!matches(r#"meta.lastModified gt "not a date""#), "falls back to text comparison");
        assert!(matches(r#"userName gt "a" and userName lt "C""#), "lexical, after lower-casing");
        assert!(!matches("userName eq 1"), "mismatched types never match");
    }

    #[test]
    fn extension_attributes_live_under_their_urn() {
        assert!(matches(&format!(r#"{ENTERPRISE}:employeeNumber eq "701984""#)));
        assert!(matches(&format!(r#"{ENTERPRISE}:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#)));
        assert!(matches(&format!(r#"{ENTERPRISE}:manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#)));
        assert!(!matches(r#"employeeNumber eq "701984""#), "not a core attribute");
        assert!(!matches(r#"urn:example:other:employeeNumber pr"#));
    }

    #[test]
    fn element_matches_evaluates_relative_paths() {
        let filter = parse(r#"type eq "WORK" and primary eq true"#);
        let emails = path("emails");
        let work = json!({"value": "a@b", "type": "work", "primary": true});
        let home = json!({"value": "a@b", "type": "home"});
        assert!(element_matches(&filter, &emails, &work, &UserRules));
        assert!(!element_matches(&filter, &emails, &home, &UserRules));
        let tags = path("tags");
        assert!(element_matches(&parse(r#"value eq "blue""#), &tags, &json!("Blue"), &UserRules));
    }

    #[test]
    fn non_object_resources_match_nothing_but_absence() {
        for resource in [json!(null), json!([1, 2]), json!("x")] {
            assert!(!parse(r#"userName eq "x""#).matches(&resource, &UserRules));
            assert!(parse("userName eq null").matches(&resource, &UserRules));
        }
    }

    // ---- properties ----

    fn name_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => "[a-zA-Z][a-zA-Z0-9_-]{0,6}",
            1 => Just("$ref".to_owned()),
            1 => prop::sample::select(vec!["not", "and", "or", "pr", "eq", "true", "null"]).prop_map(str::to_owned),
        ]
    }

    fn urn_strategy() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            4 => Just(None),
            1 => Just(Some(ENTERPRISE.to_owned())),
            1 => "urn:[a-z]{1,5}(:[a-zA-Z0-9.]{1,5}){0,3}".prop_map(Some),
        ]
    }

    fn attr_path_strategy() -> impl Strategy<Value = AttrPath> {
        (urn_strategy(), name_strategy(), prop::option::of(name_strategy()))
            .prop_map(|(urn, name, sub)| AttrPath { urn, name, sub })
    }

    fn value_strategy() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<String>().prop_map(Value::String),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            prop::num::f64::NORMAL.prop_map(Value::from),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ]
    }

    fn op_strategy() -> impl Strategy<Value = CompareOp> {
        prop::sample::select(vec![
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ])
    }

    fn attr_exp_strategy(paths: BoxedStrategy<AttrPath>) -> impl Strategy<Value = Filter> {
        prop_oneof![
            3 => (paths.clone(), op_strategy(), value_strategy())
                .prop_map(|(path, op, value)| Filter::Compare { path, op, value }),
            1 => paths.prop_map(Filter::Present),
        ]
    }

    fn logical(leaf: impl Strategy<Value = Filter> + 'static) -> impl Strategy<Value = Filter> {
        leaf.prop_recursive(4, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(l, r)| and(l, r)),
                (inner.clone(), inner.clone()).prop_map(|(l, r)| or(l, r)),
                inner.prop_map(not),
            ]
        })
    }

    /// Filters for inside brackets: relative names, no nested value paths.
    fn value_filter_strategy() -> impl Strategy<Value = Filter> {
        let relative = (name_strategy(), prop::option::of(name_strategy()))
            .prop_map(|(name, sub)| AttrPath { urn: None, name, sub })
            .boxed();
        logical(attr_exp_strategy(relative))
    }

    pub(crate) fn filter_strategy() -> impl Strategy<Value = Filter> {
        let value_path =
            (urn_strategy(), name_strategy(), value_filter_strategy()).prop_map(|(urn, name, filter)| {
                Filter::ValuePath { path: AttrPath { urn, name, sub: None }, filter: Box::new(filter) }
            });
        let leaf = prop_oneof![4 => attr_exp_strategy(attr_path_strategy().boxed()), 1 => value_path];
        logical(leaf)
    }

    fn token_soup() -> impl Strategy<Value = String> {
        let tokens = vec![
            "(",
            ")",
            "[",
            "]",
            " ",
            "not",
            "and",
            "or",
            "eq",
            "pr",
            "gt",
            "\"x\"",
            "\"\\u12",
            "\"\\\"",
            "1e5",
            "-",
            "userName",
            "emails",
            "urn:a:b:c",
            ".",
            "$ref",
            "\\",
            "\"",
            "true",
            "null",
            ":",
            "é",
            "\u{1}",
        ];
        prop::collection::vec(prop::sample::select(tokens), 0..40).prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn parse_filter_never_panics(text in any::<String>()) {
            let _ = parse_filter(&text);
            let _ = parse_path(&text);
        }

        #[test]
        fn parse_filter_never_panics_on_filter_tokens(text in token_soup()) {
            if let Ok(filter) = parse_filter(&text) {
                let _ = filter.validate(&UserRules);
                let _ = filter.matches(&barbara(), &UserRules);
                prop_assert_eq!(parse_filter(&filter.to_string()), Ok(filter));
            }
            let _ = parse_path(&text);
        }

        #[test]
        fn filters_round_trip_through_display(filter in filter_strategy()) {
            let text = filter.to_string();
            prop_assert_eq!(parse_filter(&text), Ok(filter), "{}", text);
        }

        #[test]
        fn patch_paths_round_trip_through_display(
            urn in urn_strategy(),
            name in name_strategy(),
            shape in prop_oneof![
                prop::option::of(name_strategy()).prop_map(|sub| (sub, None, None)),
                (value_filter_strategy(), prop::option::of(name_strategy()))
                    .prop_map(|(filter, sub)| (None, Some(filter), sub)),
            ],
        ) {
            let (attr_sub, filter, sub) = shape;
            let path = PatchPath { attr: AttrPath { urn, name, sub: attr_sub }, filter, sub };
            let text = path.to_string();
            prop_assert_eq!(parse_path(&text), Ok(path), "{}", text);
        }

        #[test]
        fn evaluation_never_panics_and_ne_is_not_eq(filter in filter_strategy()) {
            let _ = filter.validate(&UserRules);
            let resource = barbara();
            let _ = filter.matches(&resource, &UserRules);
            if let Filter::Compare { path, op: CompareOp::Eq, value } = &filter {
                let ne = Filter::Compare { path: path.clone(), op: CompareOp::Ne, value: value.clone() };
                prop_assert_eq!(ne.matches(&resource, &UserRules), !filter.matches(&resource, &UserRules));
            }
        }
    }
}
