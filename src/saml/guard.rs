//! Hostile-XML gate in front of libxml2/xmlsec.
//!
//! samael hands SAML messages to libxml2 and xmlsec, whose DTD, entity and URI machinery is exactly what
//! XXE, billion-laughs and signature-wrapping attacks use. Every message from the browser therefore passes
//! [`inspect`] first: one streaming pass with quick_xml, which expands nothing and dereferences nothing,
//! refusing every construct an honest IdP never sends. Only what passes reaches the XML libraries.
//!
//! Names are matched on resolved namespace + local name, never on prefix: IdPs use `saml2p:`, `samlp:`
//! or default namespaces for the same elements.

use std::collections::HashSet;
use std::fmt;

use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesRef, BytesStart, BytesText, Event};
use quick_xml::name::{NamespaceError, NamespaceResolver, ResolveResult};

/// XML-DSig namespace.
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// XML-Enc 1.0 namespace.
pub const XENC_NS: &str = "http://www.w3.org/2001/04/xmlenc#";
/// SAML 2.0 assertion namespace.
pub const SAML_ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// SAML 2.0 protocol namespace.
pub const SAML_PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
/// SAML 2.0 metadata namespace.
pub const SAML_METADATA_NS: &str = "urn:oasis:names:tc:SAML:2.0:metadata";

const ENVELOPED_SIGNATURE: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const C14N_10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const C14N_11: &str = "http://www.w3.org/2006/12/xml-c14n11";
const XENC_ENCRYPTED_KEY_TYPE: &str = "http://www.w3.org/2001/04/xmlenc#EncryptedKey";

/// Size bounds for one document. The defaults fit every IdP response seen in practice with a wide margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted input, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted element nesting; the root is at depth 1 for this bound.
    pub max_depth: usize,
    /// Most elements in the whole document.
    pub max_elements: usize,
    /// Most attributes (namespace declarations included) on one element.
    pub max_attributes_per_element: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_bytes: 512 * 1024, max_depth: 32, max_elements: 10_000, max_attributes_per_element: 64 }
    }
}

/// Which [`Limits`] bound a document exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Bytes,
    Depth,
    Elements,
    Attributes,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Bytes => "input size",
            Limit::Depth => "nesting depth",
            Limit::Elements => "element count",
            Limit::Attributes => "attributes per element",
        })
    }
}

/// Why a document was refused. The messages are safe to log; none echoes attacker text except
/// [`Rejected::Malformed`], which carries the parser's own diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("document type declarations are not accepted")]
    Dtd,
    #[error("entity references other than the predefined five are not accepted")]
    Entity,
    #[error("comments and processing instructions are not accepted")]
    CommentOrPi,
    #[error("document exceeds the {what} limit")]
    TooLarge { what: Limit },
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("signature reference is not a same-document reference to the signed element")]
    ReferenceUri,
    #[error("signature transform or canonicalization algorithm not accepted")]
    Transform,
    #[error("RetrievalMethod is not accepted")]
    KeyReference,
    #[error("ds:Object is not accepted in signatures")]
    SignatureObject,
    #[error("signature is not a direct child of a signable SAML element")]
    SignaturePlacement,
    #[error("xenc:CipherReference is not accepted")]
    CipherReference,
    #[error("the same ID value occurs twice")]
    DuplicateId,
}

/// An element name after namespace resolution.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ElementName {
    /// Namespace URI; `None` when the element is in no namespace.
    pub namespace: Option<String>,
    pub local: String,
}

/// The shape of a document that passed [`inspect`].
///
/// NOTHING in here is authenticated: it is read before any signature check, so it may be attacker-chosen.
/// Use it to route the message and to word refusals (e.g. the IdP's status), never to grant access.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inspected {
    pub root: ElementName,
    /// Present when the root is a SAML protocol `Response`.
    pub response: Option<ResponseShape>,
    /// Every SAML `Assertion` element, in document order, wherever it sits.
    pub assertions: Vec<AssertionShape>,
    /// Depth of every SAML `EncryptedAssertion` element, in document order (root = depth 0).
    pub encrypted_assertion_depths: Vec<usize>,
    /// Whether a `ds:Signature` is a direct child of the root.
    pub root_signed: bool,
    /// `Algorithm` of every `Signature/SignedInfo/SignatureMethod`, in document order ("" when absent),
    /// so weak algorithms can be refused by name before xmlsec refuses them as merely invalid.
    pub signature_algorithms: Vec<String>,
    /// `Algorithm` of every `SignedInfo/Reference/DigestMethod`, in document order ("" when absent).
    /// The `ds:DigestMethod` inside an XML-Enc `EncryptionMethod` (an OAEP parameter) is not listed.
    pub digest_algorithms: Vec<String>,
}

/// Unauthenticated facts about a root `Response`; attribute values are as written (entities resolved).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseShape {
    pub id: Option<String>,
    pub destination: Option<String>,
    pub in_response_to: Option<String>,
    pub issue_instant: Option<String>,
    /// Text of the Response's own direct-child `saml:Issuer`.
    pub issuer: Option<String>,
    /// `Value` of `Status/StatusCode`.
    pub status_code: Option<String>,
    /// `Value` of `Status/StatusCode/StatusCode`, the refusal's finer reason.
    pub second_status_code: Option<String>,
    /// Text of `Status/StatusMessage`.
    pub status_message: Option<String>,
}

/// One `Assertion` element as seen in the stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssertionShape {
    /// Depth below the root (a root assertion is 0, one directly under a Response is 1).
    pub depth: usize,
    pub id: Option<String>,
    /// Whether a `ds:Signature` is a direct child of this assertion.
    pub signed: bool,
}

/// Checks `xml` against every rule of this module and describes its shape; see the module docs.
pub fn inspect(xml: &str, limits: &Limits) -> Result<Inspected, Rejected> {
    if xml.len() > limits.max_bytes {
        return Err(Rejected::TooLarge { what: Limit::Bytes });
    }
    let mut reader = NsReader::from_str(xml);
    // quick_xml allocates per namespace declaration before we see the tag; cap it at our own bound.
    reader.resolver_mut().set_max_declarations_per_element(limits.max_attributes_per_element);
    let mut gate = Gate::new(limits);
    loop {
        let event = reader.read_event().map_err(|e| from_quick(e, reader.error_position()))?;
        if gate.on_event(reader.resolver(), event)? {
            return gate.finish();
        }
    }
}

fn from_quick(err: quick_xml::Error, position: u64) -> Rejected {
    match err {
        quick_xml::Error::Namespace(NamespaceError::TooManyDeclarations(_)) => {
            Rejected::TooLarge { what: Limit::Attributes }
        }
        quick_xml::Error::Escape(quick_xml::escape::EscapeError::UnrecognizedEntity(..)) => Rejected::Entity,
        other => Rejected::Malformed(format!("{other} (near byte {position})")),
    }
}

/// What an element means to the gate. Context-dependent kinds (e.g. [`Kind::ResponseIssuer`]) are only
/// assigned where the SAML schema puts them, so a look-alike elsewhere stays [`Kind::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Response,
    Assertion,
    /// Other elements SAML allows a signature on.
    Signable,
    EncryptedAssertion,
    ResponseIssuer,
    ResponseStatus,
    TopStatusCode,
    SecondStatusCode,
    StatusMessage,
    Signature,
    SignedInfo,
    SignatureMethod,
    Reference,
    DigestMethod,
    Transform,
    C14nMethod,
    RetrievalMethod,
    Object,
    EncryptedData,
    CipherReference,
    Other,
}

impl Kind {
    fn signable(self) -> bool {
        matches!(self, Kind::Response | Kind::Assertion | Kind::Signable)
    }

    fn captures_text(self) -> bool {
        matches!(self, Kind::ResponseIssuer | Kind::StatusMessage)
    }
}

fn classify(ns: Option<&[u8]>, local: &[u8], parent: Option<Kind>, depth: usize) -> Kind {
    let ns = ns.unwrap_or_default();
    if ns == DSIG_NS.as_bytes() {
        return classify_dsig(local, parent);
    }
    if ns == XENC_NS.as_bytes() {
        return match local {
            b"EncryptedData" => Kind::EncryptedData,
            b"CipherReference" => Kind::CipherReference,
            _ => Kind::Other,
        };
    }
    if ns == SAML_ASSERTION_NS.as_bytes() {
        return match (local, parent) {
            (b"Assertion", _) => Kind::Assertion,
            (b"EncryptedAssertion", _) => Kind::EncryptedAssertion,
            (b"Issuer", Some(Kind::Response)) if depth == 1 => Kind::ResponseIssuer,
            _ => Kind::Other,
        };
    }
    if ns == SAML_PROTOCOL_NS.as_bytes() {
        return classify_protocol(local, parent, depth);
    }
    if ns == SAML_METADATA_NS.as_bytes() && matches!(local, b"EntityDescriptor" | b"EntitiesDescriptor") {
        return Kind::Signable;
    }
    Kind::Other
}

fn classify_dsig(local: &[u8], parent: Option<Kind>) -> Kind {
    match (local, parent) {
        (b"Signature", _) => Kind::Signature,
        (b"SignedInfo", _) => Kind::SignedInfo,
        (b"SignatureMethod", Some(Kind::SignedInfo)) => Kind::SignatureMethod,
        (b"Reference", _) => Kind::Reference,
        (b"DigestMethod", Some(Kind::Reference)) => Kind::DigestMethod,
        (b"Transform", _) => Kind::Transform,
        (b"CanonicalizationMethod", _) => Kind::C14nMethod,
        (b"RetrievalMethod", _) => Kind::RetrievalMethod,
        (b"Object", _) => Kind::Object,
        _ => Kind::Other,
    }
}

fn classify_protocol(local: &[u8], parent: Option<Kind>, depth: usize) -> Kind {
    match (local, parent) {
        (b"Response", _) => Kind::Response,
        (b"LogoutRequest" | b"LogoutResponse" | b"AuthnRequest", _) => Kind::Signable,
        (b"Status", Some(Kind::Response)) if depth == 1 => Kind::ResponseStatus,
        (b"StatusCode", Some(Kind::ResponseStatus)) => Kind::TopStatusCode,
        (b"StatusCode", Some(Kind::TopStatusCode)) => Kind::SecondStatusCode,
        (b"StatusMessage", Some(Kind::ResponseStatus)) => Kind::StatusMessage,
        _ => Kind::Other,
    }
}

/// The attributes the gate acts on, read once per element.
#[derive(Default)]
struct Attrs {
    id: Option<String>,
    destination: Option<String>,
    in_response_to: Option<String>,
    issue_instant: Option<String>,
    uri: Option<String>,
    algorithm: Option<String>,
    value: Option<String>,
    type_: Option<String>,
}

struct Frame {
    kind: Kind,
    id: Option<String>,
    signatures: usize,
    /// For a Signature: how many `SignedInfo/Reference` it has.
    references: usize,
    assertion: Option<usize>,
}

struct Gate<'l> {
    limits: &'l Limits,
    stack: Vec<Frame>,
    elements: usize,
    ids: HashSet<String>,
    seen_event: bool,
    root_done: bool,
    out: Inspected,
}

impl<'l> Gate<'l> {
    fn new(limits: &'l Limits) -> Self {
        Self {
            limits,
            stack: Vec::new(),
            elements: 0,
            ids: HashSet::new(),
            seen_event: false,
            root_done: false,
            out: Inspected::default(),
        }
    }

    /// Returns `Ok(true)` at end of input.
    fn on_event(&mut self, resolver: &NamespaceResolver, event: Event<'_>) -> Result<bool, Rejected> {
        let first = !self.seen_event;
        self.seen_event = true;
        match event {
            Event::Start(e) => self.on_start(resolver, &e)?,
            Event::Empty(e) => {
                self.on_start(resolver, &e)?;
                self.on_end()?;
            }
            Event::End(_) => self.on_end()?,
            Event::Text(t) => self.on_text(&t)?,
            Event::CData(c) => self.on_cdata(&c.into_inner())?,
            Event::GeneralRef(r) => self.on_reference(&r)?,
            Event::Decl(d) if first => check_decl(&d)?,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => return Err(Rejected::CommentOrPi),
            Event::DocType(_) => return Err(Rejected::Dtd),
            Event::Eof => return Ok(true),
        }
        Ok(false)
    }

    fn finish(self) -> Result<Inspected, Rejected> {
        if !self.root_done {
            return Err(Rejected::Malformed("no complete root element".into()));
        }
        Ok(self.out)
    }

    fn on_start(&mut self, resolver: &NamespaceResolver, e: &BytesStart<'_>) -> Result<(), Rejected> {
        if self.root_done {
            return Err(Rejected::Malformed("more than one root element".into()));
        }
        self.count_element()?;
        let depth = self.stack.len();
        let (ns, local) = resolve_element(resolver, e)?;
        let attrs = self.read_attributes(resolver, e)?;
        let parent = self.stack.last().map(|f| f.kind);
        let kind = classify(ns.as_deref(), &local, parent, depth);
        self.check_element(kind, &attrs)?;
        let assertion = self.record(kind, depth, &attrs);
        if depth == 0 {
            self.out.root = element_name(ns, &local);
        }
        self.stack.push(Frame { kind, id: attrs.id, signatures: 0, references: 0, assertion });
        Ok(())
    }

    fn count_element(&mut self) -> Result<(), Rejected> {
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(Rejected::TooLarge { what: Limit::Elements });
        }
        if self.stack.len() >= self.limits.max_depth {
            return Err(Rejected::TooLarge { what: Limit::Depth });
        }
        Ok(())
    }

    fn on_end(&mut self) -> Result<(), Rejected> {
        let frame = self.stack.pop().ok_or_else(|| Rejected::Malformed("unmatched end tag".into()))?;
        // xmlsec would verify whichever Reference it met; SAML allows exactly one, to the signed element.
        if frame.kind == Kind::Signature && frame.references != 1 {
            return Err(Rejected::ReferenceUri);
        }
        if self.stack.is_empty() {
            self.root_done = true;
        }
        Ok(())
    }

    fn read_attributes(
        &mut self,
        resolver: &NamespaceResolver,
        e: &BytesStart<'_>,
    ) -> Result<Attrs, Rejected> {
        let mut attrs = Attrs::default();
        for (count, attr) in e.attributes().enumerate() {
            if count >= self.limits.max_attributes_per_element {
                return Err(Rejected::TooLarge { what: Limit::Attributes });
            }
            let attr = attr.map_err(|err| Rejected::Malformed(err.to_string()))?;
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| from_quick(err, 0))?
                .into_owned();
            self.note_attribute(resolver, &attr, value, &mut attrs)?;
        }
        Ok(attrs)
    }

    fn note_attribute(
        &mut self,
        resolver: &NamespaceResolver,
        attr: &Attribute<'_>,
        value: String,
        attrs: &mut Attrs,
    ) -> Result<(), Rejected> {
        if attr.key.as_namespace_binding().is_some() {
            return Ok(());
        }
        let (ns, local) = resolver.resolve_attribute(attr.key);
        match ns {
            ResolveResult::Unbound => {}
            ResolveResult::Bound(ns) if ns.as_ref() == b"http://www.w3.org/XML/1998/namespace" => {
                if local.as_ref() == b"id" {
                    self.note_id(&value)?;
                }
                return Ok(());
            }
            ResolveResult::Bound(_) => return Ok(()),
            ResolveResult::Unknown(p) => return Err(unknown_prefix(&p)),
        }
        match local.as_ref() {
            b"ID" | b"Id" | b"id" => {
                self.note_id(&value)?;
                attrs.id = Some(value);
            }
            b"Destination" => attrs.destination = Some(value),
            b"InResponseTo" => attrs.in_response_to = Some(value),
            b"IssueInstant" => attrs.issue_instant = Some(value),
            b"URI" => attrs.uri = Some(value),
            b"Algorithm" => attrs.algorithm = Some(value),
            b"Value" => attrs.value = Some(value),
            b"Type" => attrs.type_ = Some(value),
            _ => {}
        }
        Ok(())
    }

    /// All ID-like attributes share one value space: xmlsec resolves `#x` against whichever it registered,
    /// and two candidates is how signature wrapping picks the one that was not verified.
    fn note_id(&mut self, value: &str) -> Result<(), Rejected> {
        if !self.ids.insert(value.trim_matches(is_xml_space).to_owned()) {
            return Err(Rejected::DuplicateId);
        }
        Ok(())
    }

    fn check_element(&mut self, kind: Kind, attrs: &Attrs) -> Result<(), Rejected> {
        match kind {
            Kind::Signature => self.check_signature(),
            Kind::Reference => self.check_reference(attrs.uri.as_deref()),
            Kind::Transform => check_algorithm(attrs, &[ENVELOPED_SIGNATURE, EXC_C14N]),
            Kind::C14nMethod => check_algorithm(attrs, &[EXC_C14N, C14N_10, C14N_11]),
            Kind::RetrievalMethod => self.check_retrieval(attrs),
            Kind::Object => Err(Rejected::SignatureObject),
            Kind::CipherReference => Err(Rejected::CipherReference),
            _ => Ok(()),
        }
    }

    fn check_signature(&mut self) -> Result<(), Rejected> {
        let at_root = self.stack.len() == 1;
        let parent = self.stack.last_mut().ok_or(Rejected::SignaturePlacement)?;
        if !parent.kind.signable() || parent.signatures > 0 {
            return Err(Rejected::SignaturePlacement);
        }
        parent.signatures += 1;
        if at_root {
            self.out.root_signed = true;
        }
        if let Some(shape) = parent.assertion.and_then(|i| self.out.assertions.get_mut(i)) {
            shape.signed = true;
        }
        Ok(())
    }

    /// A SignedInfo reference must name the ID of the element the signature is a direct child of
    /// (SAML core §5.4.2); anything else is the opening move of signature wrapping.
    fn check_reference(&mut self, uri: Option<&str>) -> Result<(), Rejected> {
        let target = uri.and_then(same_document_id).ok_or(Rejected::ReferenceUri)?;
        let n = self.stack.len();
        let under_signed_info = n >= 3
            && self.stack.get(n - 1).map(|f| f.kind) == Some(Kind::SignedInfo)
            && self.stack.get(n - 2).map(|f| f.kind) == Some(Kind::Signature);
        if !under_signed_info {
            return Ok(());
        }
        let signed_id = self.stack.get(n - 3).and_then(|f| f.id.as_deref());
        if signed_id != Some(target) {
            return Err(Rejected::ReferenceUri);
        }
        if let Some(signature) = self.stack.get_mut(n - 2) {
            signature.references += 1;
        }
        Ok(())
    }

    /// The one RetrievalMethod allowed points an EncryptedData at a sibling EncryptedKey by ID. Our own
    /// decrypter resolves that without dereferencing; xmlsec never sees encrypted data.
    fn check_retrieval(&self, attrs: &Attrs) -> Result<(), Rejected> {
        let in_encrypted_data = self.stack.iter().any(|f| f.kind == Kind::EncryptedData);
        let typed = attrs.type_.as_deref() == Some(XENC_ENCRYPTED_KEY_TYPE);
        let local = attrs.uri.as_deref().and_then(same_document_id).is_some();
        if in_encrypted_data && typed && local { Ok(()) } else { Err(Rejected::KeyReference) }
    }

    fn record(&mut self, kind: Kind, depth: usize, attrs: &Attrs) -> Option<usize> {
        match kind {
            Kind::Assertion => {
                self.out.assertions.push(AssertionShape { depth, id: attrs.id.clone(), signed: false });
                return Some(self.out.assertions.len() - 1);
            }
            Kind::EncryptedAssertion => self.out.encrypted_assertion_depths.push(depth),
            Kind::SignatureMethod => {
                self.out.signature_algorithms.push(attrs.algorithm.clone().unwrap_or_default())
            }
            Kind::DigestMethod => {
                self.out.digest_algorithms.push(attrs.algorithm.clone().unwrap_or_default())
            }
            Kind::Response if depth == 0 => self.out.response = Some(response_shape(attrs)),
            Kind::TopStatusCode => set_once(self.response().map(|r| &mut r.status_code), &attrs.value),
            Kind::SecondStatusCode => {
                set_once(self.response().map(|r| &mut r.second_status_code), &attrs.value)
            }
            _ => {}
        }
        None
    }

    fn response(&mut self) -> Option<&mut ResponseShape> {
        self.out.response.as_mut()
    }

    fn on_text(&mut self, text: &BytesText<'_>) -> Result<(), Rejected> {
        let text = text.xml10_content().map_err(|e| Rejected::Malformed(e.to_string()))?;
        self.on_chars(&text)
    }

    fn on_cdata(&mut self, raw: &[u8]) -> Result<(), Rejected> {
        let text = std::str::from_utf8(raw).map_err(|e| Rejected::Malformed(e.to_string()))?;
        if self.stack.is_empty() {
            return Err(Rejected::Malformed("CDATA outside the root element".into()));
        }
        self.on_chars(text)
    }

    fn on_reference(&mut self, r: &BytesRef<'_>) -> Result<(), Rejected> {
        let c = resolve_reference(r)?;
        if self.stack.is_empty() {
            return Err(Rejected::Malformed("character reference outside the root element".into()));
        }
        self.on_chars(c.encode_utf8(&mut [0; 4]))
    }

    fn on_chars(&mut self, text: &str) -> Result<(), Rejected> {
        let Some(frame) = self.stack.last() else {
            if text.chars().all(is_xml_space) {
                return Ok(());
            }
            return Err(Rejected::Malformed("text outside the root element".into()));
        };
        let kind = frame.kind;
        if !kind.captures_text() {
            return Ok(());
        }
        if let Some(response) = self.response() {
            let slot = if kind == Kind::ResponseIssuer {
                &mut response.issuer
            } else {
                &mut response.status_message
            };
            slot.get_or_insert_with(String::new).push_str(text);
        }
        Ok(())
    }
}

fn resolve_element(
    resolver: &NamespaceResolver,
    e: &BytesStart<'_>,
) -> Result<(Option<Vec<u8>>, Vec<u8>), Rejected> {
    let (ns, local) = resolver.resolve_element(e.name());
    let ns = match ns {
        ResolveResult::Bound(ns) => Some(ns.as_ref().to_vec()),
        ResolveResult::Unbound => None,
        ResolveResult::Unknown(p) => return Err(unknown_prefix(&p)),
    };
    Ok((ns, local.as_ref().to_vec()))
}

fn element_name(ns: Option<Vec<u8>>, local: &[u8]) -> ElementName {
    ElementName {
        namespace: ns.map(|n| String::from_utf8_lossy(&n).into_owned()),
        local: String::from_utf8_lossy(local).into_owned(),
    }
}

fn unknown_prefix(prefix: &[u8]) -> Rejected {
    Rejected::Malformed(format!("undeclared namespace prefix `{}`", String::from_utf8_lossy(prefix)))
}

fn response_shape(attrs: &Attrs) -> ResponseShape {
    ResponseShape {
        id: attrs.id.clone(),
        destination: attrs.destination.clone(),
        in_response_to: attrs.in_response_to.clone(),
        issue_instant: attrs.issue_instant.clone(),
        ..ResponseShape::default()
    }
}

fn set_once(slot: Option<&mut Option<String>>, value: &Option<String>) {
    if let Some(slot) = slot.filter(|s| s.is_none()) {
        slot.clone_from(value);
    }
}

fn check_algorithm(attrs: &Attrs, allowed: &[&str]) -> Result<(), Rejected> {
    match attrs.algorithm.as_deref() {
        Some(alg) if allowed.contains(&alg) => Ok(()),
        _ => Err(Rejected::Transform),
    }
}

/// libxml2 honours the declared encoding and version; quick_xml has already read the input as UTF-8
/// XML 1.0. Refusing anything else keeps both parsers reading the same characters.
fn check_decl(decl: &BytesDecl<'_>) -> Result<(), Rejected> {
    let version = decl.version().map_err(|e| Rejected::Malformed(e.to_string()))?;
    if version.as_ref() != b"1.0" {
        return Err(Rejected::Malformed("only XML 1.0 is accepted".into()));
    }
    match decl.encoding() {
        None => Ok(()),
        Some(Ok(enc)) if enc.eq_ignore_ascii_case(b"utf-8") => Ok(()),
        Some(_) => Err(Rejected::Malformed("only UTF-8 is accepted".into())),
    }
}

fn resolve_reference(r: &BytesRef<'_>) -> Result<char, Rejected> {
    if r.is_char_ref() {
        let c = r.resolve_char_ref().map_err(|e| Rejected::Malformed(e.to_string()))?;
        return c
            .filter(|c| is_xml_char(*c))
            .ok_or_else(|| Rejected::Malformed("illegal character reference".into()));
    }
    let name = r.decode().map_err(|e| Rejected::Malformed(e.to_string()))?;
    resolve_predefined_entity(&name).and_then(|s| s.chars().next()).ok_or(Rejected::Entity)
}

/// XML 1.0 `Char` production; surrogates cannot occur in a Rust `char`.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// `#id` with an NCName-shaped id (ASCII subset: every IdP we know uses `_hex`/`id123` ids) → `id`.
/// Empty, absolute, `#xpointer(...)` and everything else → `None`.
pub fn same_document_id(uri: &str) -> Option<&str> {
    let id = uri.strip_prefix('#')?;
    let mut chars = id.chars();
    let first = chars.next()?;
    let ok = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    ok.then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: &str = SAML_PROTOCOL_NS;
    const A: &str = SAML_ASSERTION_NS;
    const DS: &str = DSIG_NS;

    fn check(xml: &str) -> Result<Inspected, Rejected> {
        inspect(xml, &Limits::default())
    }

    fn signature(id: &str, transforms: &str) -> String {
        format!(
            r##"<ds:Signature xmlns:ds="{DS}"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="{EXC_C14N}"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#{id}"><ds:Transforms>{transforms}</ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>bWFkZSB1cA==</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>c2lnbmF0dXJl</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>TUlJQ2VydA==</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"##
        )
    }

    fn standard_transforms() -> String {
        format!(r#"<ds:Transform Algorithm="{ENVELOPED_SIGNATURE}"/><ds:Transform Algorithm="{EXC_C14N}"/>"#)
    }

    /// A minimal signed response whose signature block can be swapped for a crafted one.
    fn signed_response(sig: &str) -> String {
        format!(
            r#"<samlp:Response xmlns:samlp="{P}" xmlns:saml="{A}" ID="_r1" Version="2.0"><saml:Issuer>idp</saml:Issuer>{sig}<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:Response>"#
        )
    }

    fn okta_response() -> String {
        let response_sig = signature(
            "id7160912795196091370553917",
            &format!(
                r#"<ds:Transform Algorithm="{ENVELOPED_SIGNATURE}"/><ds:Transform Algorithm="{EXC_C14N}"><ec:InclusiveNamespaces xmlns:ec="{EXC_C14N}" PrefixList="xs"/></ds:Transform>"#
            ),
        );
        let assertion_sig = signature("id71609127952807141645729885", &standard_transforms());
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><saml2p:Response xmlns:saml2p="{P}" Destination="https://sso.example.com/saml/acs" ID="id7160912795196091370553917" InResponseTo="_4fee3b046395c4e751011e97f8900b5273d56685" IssueInstant="2024-05-01T12:00:00.000Z" Version="2.0"><saml2:Issuer xmlns:saml2="{A}" Format="urn:oasis:names:tc:SAML:2.0:nameid-format:entity">http://www.okta.com/exk1abcd2EFGH3ijk4l5</saml2:Issuer>{response_sig}<saml2p:Status xmlns:saml2p="{P}"><saml2p:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></saml2p:Status><saml2:Assertion xmlns:saml2="{A}" ID="id71609127952807141645729885" IssueInstant="2024-05-01T12:00:00.000Z" Version="2.0"><saml2:Issuer Format="urn:oasis:names:tc:SAML:2.0:nameid-format:entity">http://www.okta.com/exk1abcd2EFGH3ijk4l5</saml2:Issuer>{assertion_sig}<saml2:Subject><saml2:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">alice@example.com</saml2:NameID><saml2:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml2:SubjectConfirmationData InResponseTo="_4fee3b046395c4e751011e97f8900b5273d56685" NotOnOrAfter="2024-05-01T12:05:00.000Z" Recipient="https://sso.example.com/saml/acs"/></saml2:SubjectConfirmation></saml2:Subject><saml2:Conditions NotBefore="2024-05-01T11:55:00.000Z" NotOnOrAfter="2024-05-01T12:05:00.000Z"><saml2:AudienceRestriction><saml2:Audience>https://sso.example.com/saml/metadata</saml2:Audience></saml2:AudienceRestriction></saml2:Conditions><saml2:AuthnStatement AuthnInstant="2024-05-01T12:00:00.000Z" SessionIndex="_1714564800"><saml2:AuthnContext><saml2:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml2:AuthnContextClassRef></saml2:AuthnContext></saml2:AuthnStatement><saml2:AttributeStatement><saml2:Attribute Name="email" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"><saml2:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">alice@example.com</saml2:AttributeValue></saml2:Attribute></saml2:AttributeStatement></saml2:Assertion></saml2p:Response>"#
        )
    }

    fn entra_response() -> String {
        let sig = signature("_d71a3a8e-9fcc-45c2-a5d6-4a1b1e5c8100", &standard_transforms())
            .replace("ds:", "")
            .replace("xmlns:ds=", "xmlns=");
        format!(
            r#"<samlp:Response ID="_a8f4b1c2-33d4-4e5f-8a9b-0c1d2e3f4a5b" Version="2.0" IssueInstant="2024-05-01T12:00:00.123Z" Destination="https://sso.example.com/saml/acs" InResponseTo="_8e8dc5f69a98cc4c1ff3427e5ce34606fd672f91e6" xmlns:samlp="{P}"><Issuer xmlns="{A}">https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/</Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><Assertion ID="_d71a3a8e-9fcc-45c2-a5d6-4a1b1e5c8100" IssueInstant="2024-05-01T12:00:00.118Z" Version="2.0" xmlns="{A}"><Issuer>https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/</Issuer>{sig}<Subject><NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">alice@contoso.com</NameID><SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><SubjectConfirmationData InResponseTo="_8e8dc5f69a98cc4c1ff3427e5ce34606fd672f91e6" NotOnOrAfter="2024-05-01T13:00:00.118Z" Recipient="https://sso.example.com/saml/acs"/></SubjectConfirmation></Subject><Conditions NotBefore="2024-05-01T11:55:00.118Z" NotOnOrAfter="2024-05-01T13:00:00.118Z"><AudienceRestriction><Audience>spn:00000000-1111-2222-3333-444444444444</Audience></AudienceRestriction></Conditions><AttributeStatement><Attribute Name="http://schemas.microsoft.com/identity/claims/tenantid"><AttributeValue>72f988bf-86f1-41af-91ab-2d7cd011db47</AttributeValue></Attribute><Attribute Name="http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"><AttributeValue>alice@contoso.com</AttributeValue></Attribute></AttributeStatement><AuthnStatement AuthnInstant="2024-05-01T11:59:58.000Z" SessionIndex="_d71a3a8e-9fcc-45c2-a5d6-4a1b1e5c8100"><AuthnContext><AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password</AuthnContextClassRef></AuthnContext></AuthnStatement></Assertion></samlp:Response>"#
        )
    }

    #[test]
    fn okta_shape_passes_and_is_described() {
        let got = check(&okta_response()).unwrap();
        assert_eq!(got.root, ElementName { namespace: Some(P.into()), local: "Response".into() });
        let r = got.response.unwrap();
        assert_eq!(r.id.as_deref(), Some("id7160912795196091370553917"));
        assert_eq!(r.destination.as_deref(), Some("https://sso.example.com/saml/acs"));
        assert_eq!(r.in_response_to.as_deref(), Some("_4fee3b046395c4e751011e97f8900b5273d56685"));
        assert_eq!(r.issue_instant.as_deref(), Some("2024-05-01T12:00:00.000Z"));
        assert_eq!(r.issuer.as_deref(), Some("http://www.okta.com/exk1abcd2EFGH3ijk4l5"));
        assert_eq!(r.status_code.as_deref(), Some("urn:oasis:names:tc:SAML:2.0:status:Success"));
        assert_eq!(r.second_status_code, None);
        assert!(got.root_signed);
        let expected =
            AssertionShape { depth: 1, id: Some("id71609127952807141645729885".into()), signed: true };
        assert_eq!(got.assertions, vec![expected]);
        assert!(got.encrypted_assertion_depths.is_empty());
        let rsa_sha256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
        assert_eq!(got.signature_algorithms, vec![rsa_sha256, rsa_sha256]);
        let sha256 = "http://www.w3.org/2001/04/xmlenc#sha256";
        assert_eq!(got.digest_algorithms, vec![sha256, sha256]);
    }

    #[test]
    fn entra_shape_passes_and_is_described() {
        let got = check(&entra_response()).unwrap();
        let r = got.response.unwrap();
        assert_eq!(
            r.issuer.as_deref(),
            Some("https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/")
        );
        assert!(!got.root_signed);
        assert_eq!(got.assertions.len(), 1);
        assert!(got.assertions[0].signed);
        assert_eq!(got.assertions[0].depth, 1);
    }

    #[test]
    fn error_status_is_reported_with_its_reason() {
        let xml = format!(
            r#"<p:Response xmlns:p="{P}" ID="_e"><i:Issuer xmlns:i="{A}"> idp &amp; co </i:Issuer><p:Status><p:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester"><p:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"/></p:StatusCode><p:StatusMessage>Unsupported &#x4E;ameID</p:StatusMessage></p:Status></p:Response>"#
        );
        let r = check(&xml).unwrap().response.unwrap();
        assert_eq!(r.issuer.as_deref(), Some(" idp & co "));
        assert_eq!(r.status_code.as_deref(), Some("urn:oasis:names:tc:SAML:2.0:status:Requester"));
        assert_eq!(
            r.second_status_code.as_deref(),
            Some("urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy")
        );
        assert_eq!(r.status_message.as_deref(), Some("Unsupported NameID"));
    }

    #[test]
    fn encrypted_assertions_are_counted_with_depth() {
        let xml = format!(
            r#"<Response xmlns="{P}" ID="_r"><EncryptedAssertion xmlns="{A}"><xenc:EncryptedData xmlns:xenc="{XENC_NS}"/></EncryptedAssertion><x><EncryptedAssertion xmlns="{A}"/></x></Response>"#
        );
        assert_eq!(check(&xml).unwrap().encrypted_assertion_depths, vec![1, 2]);
    }

    #[test]
    fn lookalikes_in_other_namespaces_are_not_reported() {
        let xml = r#"<Response xmlns="urn:evil" ID="_r"><Assertion ID="_a"/></Response>"#;
        let got = check(xml).unwrap();
        assert_eq!(got.response, None);
        assert!(got.assertions.is_empty());
    }

    #[test]
    fn doctype_is_refused() {
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
        assert_eq!(check(xxe), Err(Rejected::Dtd));
        let laughs = r#"<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><r>&b;</r>"#;
        assert_eq!(check(laughs), Err(Rejected::Dtd));
    }

    #[test]
    fn unknown_entities_are_refused_in_text_and_attributes() {
        assert_eq!(check("<r>&nbsp;</r>"), Err(Rejected::Entity));
        assert_eq!(check(r#"<r a="&x;"/>"#), Err(Rejected::Entity));
        assert!(check("<r a=\"&lt;&#65;\">&lt;&gt;&amp;&apos;&quot;&#65;&#x42;</r>").is_ok());
    }

    #[test]
    fn illegal_character_references_are_malformed() {
        assert!(matches!(check("<r>&#0;</r>"), Err(Rejected::Malformed(_))));
        assert!(matches!(check("<r>&#x1;</r>"), Err(Rejected::Malformed(_))));
    }

    #[test]
    fn comments_and_processing_instructions_are_refused() {
        let nameid = format!(r#"<NameID xmlns="{A}">admin@example.com<!---->.evil.com</NameID>"#);
        assert_eq!(check(&nameid), Err(Rejected::CommentOrPi));
        assert_eq!(check("<!-- hi --><r/>"), Err(Rejected::CommentOrPi));
        assert_eq!(check("<r/><!-- hi -->"), Err(Rejected::CommentOrPi));
        assert_eq!(check("<r><?php x?></r>"), Err(Rejected::CommentOrPi));
        assert_eq!(check(r#"<?xml-stylesheet href="x"?><r/>"#), Err(Rejected::CommentOrPi));
        assert_eq!(check(r#"<r/><?xml version="1.0"?>"#), Err(Rejected::CommentOrPi));
    }

    #[test]
    fn declaration_must_be_utf8_xml_10() {
        assert!(check(r#"<?xml version="1.0" encoding="utf-8" standalone="yes"?><r/>"#).is_ok());
        assert!(matches!(
            check(r#"<?xml version="1.0" encoding="UTF-16"?><r/>"#),
            Err(Rejected::Malformed(_))
        ));
        assert!(matches!(check(r#"<?xml version="1.1"?><r/>"#), Err(Rejected::Malformed(_))));
    }

    #[test]
    fn limits_are_enforced() {
        let small = Limits { max_bytes: 10, ..Limits::default() };
        assert_eq!(inspect("<r>0123456789</r>", &small), Err(Rejected::TooLarge { what: Limit::Bytes }));
        let deep = format!("{}{}", "<a>".repeat(33), "</a>".repeat(33));
        assert_eq!(check(&deep), Err(Rejected::TooLarge { what: Limit::Depth }));
        let ok = format!("{}{}", "<a>".repeat(32), "</a>".repeat(32));
        assert!(check(&ok).is_ok());
        let wide = format!("<r>{}</r>", "<a/>".repeat(10_000));
        assert_eq!(check(&wide), Err(Rejected::TooLarge { what: Limit::Elements }));
        let attrs: String = (0..65).map(|i| format!(" a{i}=\"x\"")).collect();
        assert_eq!(check(&format!("<r{attrs}/>")), Err(Rejected::TooLarge { what: Limit::Attributes }));
        let decls: String = (0..65).map(|i| format!(" xmlns:p{i}=\"urn:x\"")).collect();
        assert_eq!(check(&format!("<r{decls}/>")), Err(Rejected::TooLarge { what: Limit::Attributes }));
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            "",
            "   ",
            "<r>",
            "<r></s>",
            "</r>",
            "<r/><r/>",
            "text<r/>",
            "<r/>text",
            "<r a=1/>",
            r#"<r a="1" a="2"/>"#,
            "<p:r/>",
            "<r>&</r>",
            "<![CDATA[x]]><r/>",
            "<r><a></r></a>",
        ] {
            assert!(matches!(check(bad), Err(Rejected::Malformed(_))), "{bad:?} gave {:?}", check(bad));
        }
    }

    #[test]
    fn whitespace_and_cdata_are_fine() {
        assert!(check("\n<r><![CDATA[<x>]]></r>\n").is_ok());
    }

    #[test]
    fn reference_uri_must_be_local_id_of_signed_element() {
        for uri in
            ["", "http://evil/x", "file:///etc/passwd", "#xpointer(/)", "#", "#1abc", "#a b", "#_other"]
        {
            let sig =
                signature("X", &standard_transforms()).replace(r##"URI="#X""##, &format!(r#"URI="{uri}""#));
            let xml = format!(r#"<r xmlns="{A}"><Assertion ID="_other"/>{}</r>"#, signed_response(&sig));
            assert_eq!(check(&xml), Err(Rejected::ReferenceUri), "URI {uri:?}");
        }
        assert!(check(&signed_response(&signature("_r1", &standard_transforms()))).is_ok());
    }

    #[test]
    fn exactly_one_reference_per_signature() {
        let one = signature("_r1", &standard_transforms());
        let reference_start = one.find("<ds:Reference").unwrap();
        let reference_end = one.find("</ds:SignedInfo>").unwrap();
        let reference = &one[reference_start..reference_end];
        let two = one.replacen(reference, &format!("{reference}{reference}"), 1);
        assert_eq!(check(&signed_response(&two)), Err(Rejected::ReferenceUri));
        let none = one.replacen(reference, "", 1);
        assert_eq!(check(&signed_response(&none)), Err(Rejected::ReferenceUri));
    }

    #[test]
    fn only_enveloped_and_exclusive_c14n_transforms() {
        for alg in [
            "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
            "http://www.w3.org/TR/1999/REC-xslt-19991116",
            "http://www.w3.org/TR/1999/REC-xpath-19991116",
            "http://www.w3.org/2000/09/xmldsig#base64",
        ] {
            let sig = signature("_r1", &format!(r#"<ds:Transform Algorithm="{alg}"/>"#));
            assert_eq!(check(&signed_response(&sig)), Err(Rejected::Transform), "{alg}");
        }
        let sig = signature("_r1", r#"<ds:Transform/>"#);
        assert_eq!(check(&signed_response(&sig)), Err(Rejected::Transform));
        let with_comments = signature("_r1", &standard_transforms()).replace(
            &format!(r#"CanonicalizationMethod Algorithm="{EXC_C14N}""#),
            r#"CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#WithComments""#,
        );
        assert_eq!(check(&signed_response(&with_comments)), Err(Rejected::Transform));
    }

    #[test]
    fn retrieval_method_and_object_are_refused() {
        let retrieval = signature("_r1", &standard_transforms()).replace(
            "<ds:X509Data>",
            r#"<ds:RetrievalMethod URI="http://evil/key" Type="http://www.w3.org/2000/09/xmldsig#X509Data"/><ds:X509Data>"#,
        );
        assert_eq!(check(&signed_response(&retrieval)), Err(Rejected::KeyReference));
        let object = signature("_r1", &standard_transforms())
            .replace("</ds:Signature>", r#"<ds:Object><x ID="_copy"/></ds:Object></ds:Signature>"#);
        assert_eq!(check(&signed_response(&object)), Err(Rejected::SignatureObject));
    }

    #[test]
    fn retrieval_method_to_sibling_encrypted_key_is_allowed() {
        let xml = format!(
            r##"<saml:EncryptedAssertion xmlns:saml="{A}"><xenc:EncryptedData xmlns:xenc="{XENC_NS}" xmlns:ds="{DS}"><ds:KeyInfo><ds:RetrievalMethod Type="{XENC_ENCRYPTED_KEY_TYPE}" URI="#_k1"/></ds:KeyInfo></xenc:EncryptedData><xenc:EncryptedKey xmlns:xenc="{XENC_NS}" Id="_k1"/></saml:EncryptedAssertion>"##
        );
        assert!(check(&xml).is_ok());
        let remote = xml.replace("#_k1", "http://evil/k1");
        assert_eq!(check(&remote), Err(Rejected::KeyReference));
    }

    #[test]
    fn signature_must_sit_directly_under_a_signable_element() {
        let sig = signature("_x", &standard_transforms());
        let nested = format!(
            r#"<samlp:Response xmlns:samlp="{P}" ID="_r1"><samlp:Extensions><x ID="_x">{sig}</x></samlp:Extensions></samlp:Response>"#
        );
        assert_eq!(check(&nested), Err(Rejected::SignaturePlacement));
        let bare = signature("_x", &standard_transforms());
        assert_eq!(check(&bare), Err(Rejected::SignaturePlacement));
        let sig_r1 = signature("_r1", &standard_transforms());
        let twice = signed_response(&format!("{sig_r1}{sig_r1}"));
        assert_eq!(check(&twice), Err(Rejected::SignaturePlacement));
        for (ns, local) in [
            (P, "LogoutRequest"),
            (P, "LogoutResponse"),
            (P, "AuthnRequest"),
            (SAML_METADATA_NS, "EntityDescriptor"),
            (SAML_METADATA_NS, "EntitiesDescriptor"),
            (A, "Assertion"),
        ] {
            let xml = format!(r#"<m:{local} xmlns:m="{ns}" ID="_r1">{sig_r1}</m:{local}>"#);
            let got = check(&xml).unwrap();
            assert!(got.root_signed, "{local}");
        }
    }

    #[test]
    fn cipher_reference_is_refused() {
        let xml = format!(
            r#"<EncryptedAssertion xmlns="{A}"><e:EncryptedData xmlns:e="{XENC_NS}"><e:CipherData><e:CipherReference URI="file:///etc/shadow"/></e:CipherData></e:EncryptedData></EncryptedAssertion>"#
        );
        assert_eq!(check(&xml), Err(Rejected::CipherReference));
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let xml = format!(r#"<Response xmlns="{P}" ID="_a"><Assertion xmlns="{A}" ID="_a"/></Response>"#);
        assert_eq!(check(&xml), Err(Rejected::DuplicateId));
        let mixed = format!(r#"<Response xmlns="{P}" ID="_a"><x Id=" _a"/></Response>"#);
        assert_eq!(check(&mixed), Err(Rejected::DuplicateId));
        let xml_id = r#"<r ID="_a"><x xml:id="_a"/></r>"#;
        assert_eq!(check(xml_id), Err(Rejected::DuplicateId));
    }

    #[test]
    fn wrapped_assertion_is_visible_in_the_counts() {
        // The classic XSW shape: a forged unsigned assertion beside the signed one; the caller must see two.
        let okta = okta_response();
        let forged =
            format!(r#"<saml2:Assertion xmlns:saml2="{A}" ID="_forged"><saml2:Subject/></saml2:Assertion>"#);
        let xml = okta.replacen("<saml2:Assertion ", &format!("{forged}<saml2:Assertion "), 1);
        let got = check(&xml).unwrap();
        assert_eq!(got.assertions.len(), 2);
        assert!(!got.assertions[0].signed);
    }

    #[test]
    fn hundred_thousand_nested_elements_are_refused_quickly() {
        let xml = "<a>".repeat(100_000);
        let start = std::time::Instant::now();
        let limits = Limits { max_bytes: usize::MAX, ..Limits::default() };
        assert_eq!(inspect(&xml, &limits), Err(Rejected::TooLarge { what: Limit::Depth }));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = check(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn arbitrary_markup_never_panics(parts in proptest::collection::vec(
            prop_oneof![
                Just("<a>"), Just("</a>"), Just("<b/>"), Just("&amp;"), Just("&x;"), Just("<!--c-->"),
                Just("<?p?>"), Just("<![CDATA[x]]>"), Just(" ID=\"_1\""), Just("t"), Just("<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">"),
                Just("</ds:Signature>"), Just("<!DOCTYPE a>"), Just("\""), Just(">"), Just("<"),
            ],
            0..200,
        )) {
            let _ = check(&parts.concat());
        }

        #[test]
        fn arbitrary_nesting_never_panics(depth in 0usize..5000, close in 0usize..5000) {
            let xml = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(close));
            let result = check(&xml);
            if depth == close && (1..=32).contains(&depth) {
                prop_assert!(result.is_ok());
            } else {
                prop_assert!(result.is_err());
            }
        }
    }
}
