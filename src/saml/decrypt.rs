//! XML Encryption of SAML `EncryptedAssertion`, composed from OpenSSL primitives.
//!
//! samael only knows aes128 with RSA key transport and panics on short input, while Okta, Entra ID and
//! ADFS send aes256-cbc/-gcm too. This module parses the encryption structure with quick_xml (which
//! dereferences nothing: a `RetrievalMethod` pointing at a sibling `EncryptedKey` is honoured by looking
//! among the siblings, never by resolving its URI), unwraps the session key with RSA-OAEP and decrypts.
//!
//! Decryption says nothing about who wrote the assertion: anyone holding our public key can encrypt.
//! The caller must verify the assertion's signature after decrypting, and must answer every failure
//! after this point (including XML errors in the plaintext) identically, since CBC is malleable and
//! distinguishable errors on its plaintext are an oracle.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use openssl::md::{Md, MdRef};
use openssl::pkey::{Id, PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};
use quick_xml::NsReader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::{NamespaceResolver, ResolveResult};

const SAML_ASSERTION_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";
const XENC_NS: &[u8] = b"http://www.w3.org/2001/04/xmlenc#";
const XENC11_NS: &[u8] = b"http://www.w3.org/2009/xmlenc11#";
const DSIG_NS: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";

const XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
const XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
const TYPE_ELEMENT: &str = "http://www.w3.org/2001/04/xmlenc#Element";
const RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
const RSA_OAEP: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
const MGF1_SHA1: &str = "http://www.w3.org/2009/xmlenc11#mgf1sha1";

/// Inputs beyond this are refused unread; the SAML gate already caps whole responses at 512 KiB.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
const MAX_DEPTH: usize = 64;
/// Multi-recipient messages carry one EncryptedKey per recipient; more than this is not an IdP.
const MAX_ENCRYPTED_KEYS: usize = 8;
const GCM_IV_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;
const AES_BLOCK: usize = 16;

/// Why an encrypted assertion could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// The XML structure is not a usable EncryptedAssertion (nothing secret has been touched yet).
    #[error("malformed encrypted assertion: {0}")]
    Malformed(String),
    /// An algorithm we refuse or do not implement; carries its URI.
    #[error("unsupported encryption algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// Any cryptographic failure. Deliberately one variant: telling key, padding, tag or encoding
    /// failures apart would be an oracle.
    #[error("decryption failed")]
    Failed,
}

/// Decrypts the single SAML `EncryptedAssertion` in `xml` and returns the plaintext (the `Assertion`
/// element as the IdP serialised it, UTF-8).
///
/// `xml` may be the whole `Response` document or just the `EncryptedAssertion` element with its namespace
/// declarations. Passing the whole document is the robust choice: prefixes declared on ancestors resolve
/// correctly and no fragment has to be cut out by hand. Exactly one `EncryptedAssertion` must occur.
///
/// The plaintext is serialised by the IdP and may use namespace prefixes declared only on ancestors of the
/// `EncryptedData`; every IdP we know declares them on the assertion itself.
pub fn decrypt_assertion(xml: &str, key: &PKey<Private>) -> Result<String, DecryptError> {
    if xml.len() > MAX_INPUT_BYTES {
        return Err(DecryptError::Malformed("input too large".into()));
    }
    if key.id() != Id::RSA {
        return Err(DecryptError::UnsupportedAlgorithm("private key is not RSA".into()));
    }
    let parsed = parse(xml)?;
    let content = ContentCipher::from_uri(&parsed.data.algorithm)?;
    let ciphertext = decode_base64(&parsed.data.cipher_value)?;
    let transports = parsed.keys.iter().map(KeyTransport::from_spec).collect::<Result<Vec<_>, _>>()?;
    let session_key = unwrap_any(key, &transports, content.key_len)?;
    let plaintext = content.decrypt(&session_key, &ciphertext)?;
    String::from_utf8(plaintext).map_err(|_| DecryptError::Failed)
}

fn unwrap_any(
    key: &PKey<Private>,
    transports: &[KeyTransport],
    key_len: usize,
) -> Result<Vec<u8>, DecryptError> {
    // Every failure folds into one answer whichever EncryptedKey it came from.
    transports
        .iter()
        .find_map(|t| t.unwrap(key).ok().filter(|k| k.len() == key_len))
        .ok_or(DecryptError::Failed)
}

// ---------------------------------------------------------------------------------------------------
// Algorithms

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentMode {
    Cbc,
    Gcm,
}

struct ContentCipher {
    mode: ContentMode,
    key_len: usize,
    cipher: Cipher,
}

impl ContentCipher {
    fn from_uri(uri: &str) -> Result<Self, DecryptError> {
        let (mode, key_len, cipher) = if let Some(name) = uri.strip_prefix(XENC) {
            match name {
                "aes128-cbc" => (ContentMode::Cbc, 16, Cipher::aes_128_cbc()),
                "aes192-cbc" => (ContentMode::Cbc, 24, Cipher::aes_192_cbc()),
                "aes256-cbc" => (ContentMode::Cbc, 32, Cipher::aes_256_cbc()),
                _ => return Err(unsupported(uri)),
            }
        } else if let Some(name) = uri.strip_prefix(XENC11) {
            match name {
                "aes128-gcm" => (ContentMode::Gcm, 16, Cipher::aes_128_gcm()),
                "aes192-gcm" => (ContentMode::Gcm, 24, Cipher::aes_192_gcm()),
                "aes256-gcm" => (ContentMode::Gcm, 32, Cipher::aes_256_gcm()),
                _ => return Err(unsupported(uri)),
            }
        } else {
            return Err(unsupported(uri));
        };
        Ok(Self { mode, key_len, cipher })
    }

    fn decrypt(&self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, DecryptError> {
        if key.len() != self.key_len {
            return Err(DecryptError::Failed);
        }
        match self.mode {
            ContentMode::Cbc => decrypt_cbc(self.cipher, key, data),
            ContentMode::Gcm => decrypt_gcm(self.cipher, key, data),
        }
    }
}

/// XML-Enc CBC: 16-byte IV prefix, then blocks whose last byte gives the pad length; the other pad bytes
/// are arbitrary, unlike PKCS#7, so OpenSSL's own unpadding must stay off.
fn decrypt_cbc(cipher: Cipher, key: &[u8], data: &[u8]) -> Result<Vec<u8>, DecryptError> {
    if data.len() < 2 * AES_BLOCK || data.len() % AES_BLOCK != 0 {
        return Err(DecryptError::Failed);
    }
    let (iv, body) = data.split_at_checked(AES_BLOCK).ok_or(DecryptError::Failed)?;
    let mut crypter = Crypter::new(cipher, Mode::Decrypt, key, Some(iv)).map_err(|_| DecryptError::Failed)?;
    crypter.pad(false);
    // Crypter::update panics unless the buffer has a spare block.
    let mut out = vec![0; body.len() + AES_BLOCK];
    let n = crypter.update(body, &mut out).map_err(|_| DecryptError::Failed)?;
    let tail = out.get_mut(n..).ok_or(DecryptError::Failed)?;
    let m = crypter.finalize(tail).map_err(|_| DecryptError::Failed)?;
    out.truncate(n + m);
    strip_xmlenc_padding(out)
}

fn strip_xmlenc_padding(mut out: Vec<u8>) -> Result<Vec<u8>, DecryptError> {
    let pad = usize::from(*out.last().ok_or(DecryptError::Failed)?);
    if pad == 0 || pad > AES_BLOCK || pad > out.len() {
        return Err(DecryptError::Failed);
    }
    out.truncate(out.len() - pad);
    Ok(out)
}

/// XML-Enc 1.1 GCM: 12-byte IV prefix, ciphertext, 16-byte tag suffix, no additional data.
fn decrypt_gcm(cipher: Cipher, key: &[u8], data: &[u8]) -> Result<Vec<u8>, DecryptError> {
    let (iv, rest) = data.split_at_checked(GCM_IV_LEN).ok_or(DecryptError::Failed)?;
    let body_len = rest.len().checked_sub(GCM_TAG_LEN).ok_or(DecryptError::Failed)?;
    let (body, tag) = rest.split_at_checked(body_len).ok_or(DecryptError::Failed)?;
    openssl::symm::decrypt_aead(cipher, key, Some(iv), &[], body, tag).map_err(|_| DecryptError::Failed)
}

struct KeyTransport {
    digest: &'static MdRef,
    mgf: &'static MdRef,
    label: Vec<u8>,
    wrapped: Vec<u8>,
}

impl KeyTransport {
    fn from_spec(spec: &KeySpec) -> Result<Self, DecryptError> {
        let digest = spec.digest.as_deref().map_or(Ok(Md::sha1()), digest_from_uri)?;
        let mgf = match spec.algorithm.as_str() {
            // mgf1p fixes MGF1-SHA1 whatever else the element says.
            RSA_OAEP_MGF1P => match spec.mgf.as_deref() {
                None | Some(MGF1_SHA1) => Md::sha1(),
                Some(uri) => return Err(unsupported(uri)),
            },
            RSA_OAEP => spec.mgf.as_deref().map_or(Ok(Md::sha1()), mgf_from_uri)?,
            // rsa-1_5 lands here on purpose: PKCS#1 v1.5 decryption is Bleichenbacher's oracle.
            other => return Err(unsupported(other)),
        };
        let label = spec.oaep_params.as_deref().map_or(Ok(Vec::new()), decode_base64)?;
        let wrapped = decode_base64(&spec.cipher_value)?;
        Ok(Self { digest, mgf, label, wrapped })
    }

    fn unwrap(&self, key: &PKey<Private>) -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let mut ctx = PkeyCtx::new(key)?;
        ctx.decrypt_init()?;
        ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
        ctx.set_rsa_oaep_md(self.digest)?;
        ctx.set_rsa_mgf1_md(self.mgf)?;
        if !self.label.is_empty() {
            ctx.set_rsa_oaep_label(&self.label)?;
        }
        let mut out = Vec::new();
        ctx.decrypt_to_vec(&self.wrapped, &mut out)?;
        Ok(out)
    }
}

fn digest_from_uri(uri: &str) -> Result<&'static MdRef, DecryptError> {
    match uri {
        "http://www.w3.org/2000/09/xmldsig#sha1" => Ok(Md::sha1()),
        "http://www.w3.org/2001/04/xmldsig-more#sha224" => Ok(Md::sha224()),
        "http://www.w3.org/2001/04/xmlenc#sha256" => Ok(Md::sha256()),
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => Ok(Md::sha384()),
        "http://www.w3.org/2001/04/xmlenc#sha512" => Ok(Md::sha512()),
        other => Err(unsupported(other)),
    }
}

fn mgf_from_uri(uri: &str) -> Result<&'static MdRef, DecryptError> {
    match uri.strip_prefix(XENC11) {
        Some("mgf1sha1") => Ok(Md::sha1()),
        Some("mgf1sha224") => Ok(Md::sha224()),
        Some("mgf1sha256") => Ok(Md::sha256()),
        Some("mgf1sha384") => Ok(Md::sha384()),
        Some("mgf1sha512") => Ok(Md::sha512()),
        _ => Err(unsupported(uri)),
    }
}

fn unsupported(uri: &str) -> DecryptError {
    DecryptError::UnsupportedAlgorithm(uri.to_owned())
}

/// CipherValue is base64Binary: whitespace anywhere, padding sometimes omitted by hand-rolled encoders.
fn decode_base64(text: &str) -> Result<Vec<u8>, DecryptError> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    LENIENT.decode(compact).map_err(|e| DecryptError::Malformed(format!("base64: {e}")))
}

// ---------------------------------------------------------------------------------------------------
// Structure

#[derive(Debug, Default)]
struct DataSpec {
    algorithm: String,
    cipher_value: String,
}

#[derive(Debug, Default)]
struct KeySpec {
    algorithm: String,
    digest: Option<String>,
    mgf: Option<String>,
    oaep_params: Option<String>,
    cipher_value: String,
}

#[derive(Debug)]
struct Parsed {
    data: DataSpec,
    keys: Vec<KeySpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    EncryptedAssertion,
    EncryptedData,
    EncryptedKey,
    DataMethod,
    KeyMethod,
    DataCipherData,
    KeyCipherData,
    DataCipherValue,
    KeyCipherValue,
    OaepParams,
    Other,
}

#[derive(Default)]
struct Parser {
    stack: Vec<Kind>,
    assertions: usize,
    data: Option<DataSpec>,
    keys: Vec<KeySpec>,
    data_count: usize,
}

fn parse(xml: &str) -> Result<Parsed, DecryptError> {
    let mut reader = NsReader::from_str(xml);
    let mut parser = Parser::default();
    loop {
        let event = reader.read_event().map_err(|e| DecryptError::Malformed(e.to_string()))?;
        match event {
            Event::Start(e) => parser.on_start(reader.resolver(), &e)?,
            Event::Empty(e) => {
                parser.on_start(reader.resolver(), &e)?;
                parser.stack.pop();
            }
            Event::End(_) => {
                parser.stack.pop();
            }
            Event::Text(t) => {
                parser.on_text(&t.decode().map_err(|e| DecryptError::Malformed(e.to_string()))?)
            }
            Event::CData(c) => parser.on_text(&String::from_utf8_lossy(&c)),
            Event::GeneralRef(r) => parser.on_text(&resolve_reference(&r)?),
            Event::DocType(_) => return Err(DecryptError::Malformed("DTD not accepted".into())),
            Event::Eof => return parser.finish(),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
}

fn resolve_reference(r: &BytesRef<'_>) -> Result<String, DecryptError> {
    let bad = || DecryptError::Malformed("unknown entity reference".into());
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Ok(c.to_string());
    }
    let name = r.decode().map_err(|_| bad())?;
    resolve_predefined_entity(&name).map(str::to_owned).ok_or_else(bad)
}

impl Parser {
    fn on_start(&mut self, resolver: &NamespaceResolver, e: &BytesStart<'_>) -> Result<(), DecryptError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(DecryptError::Malformed("nesting too deep".into()));
        }
        let (ns, local) = resolver.resolve_element(e.name());
        let ns: &[u8] = match &ns {
            ResolveResult::Bound(n) => n.as_ref(),
            ResolveResult::Unbound => b"",
            ResolveResult::Unknown(_) => return Err(DecryptError::Malformed("undeclared prefix".into())),
        };
        let kind = self.classify(ns, local.as_ref())?;
        self.enter(kind, resolver, e)?;
        self.stack.push(kind);
        Ok(())
    }

    fn inside_assertion(&self) -> bool {
        self.stack.contains(&Kind::EncryptedAssertion)
    }

    fn classify(&self, ns: &[u8], local: &[u8]) -> Result<Kind, DecryptError> {
        if ns == SAML_ASSERTION_NS && local == b"EncryptedAssertion" {
            return Ok(Kind::EncryptedAssertion);
        }
        if !self.inside_assertion() {
            return Ok(Kind::Other);
        }
        let parent = self.stack.last().copied().unwrap_or(Kind::Other);
        Ok(match (ns, local, parent) {
            (XENC_NS, b"EncryptedData", _) => Kind::EncryptedData,
            (XENC_NS, b"EncryptedKey", _) => Kind::EncryptedKey,
            (XENC_NS, b"EncryptionMethod", Kind::EncryptedData) => Kind::DataMethod,
            (XENC_NS, b"EncryptionMethod", Kind::EncryptedKey) => Kind::KeyMethod,
            (XENC_NS, b"CipherData", Kind::EncryptedData) => Kind::DataCipherData,
            (XENC_NS, b"CipherData", Kind::EncryptedKey) => Kind::KeyCipherData,
            (XENC_NS, b"CipherValue", Kind::DataCipherData) => Kind::DataCipherValue,
            (XENC_NS, b"CipherValue", Kind::KeyCipherData) => Kind::KeyCipherValue,
            (XENC_NS, b"CipherReference", _) => {
                return Err(DecryptError::Malformed("CipherReference is not accepted".into()));
            }
            (XENC_NS, b"OAEPparams", Kind::KeyMethod) => Kind::OaepParams,
            _ => Kind::Other,
        })
    }

    /// Records what the element contributes; `self.stack` still ends at its parent.
    fn enter(
        &mut self,
        kind: Kind,
        resolver: &NamespaceResolver,
        e: &BytesStart<'_>,
    ) -> Result<(), DecryptError> {
        match kind {
            Kind::EncryptedAssertion => self.enter_assertion(),
            Kind::EncryptedData => self.enter_data(attr(resolver, e, b"Type")?),
            Kind::EncryptedKey => self.enter_key(),
            Kind::DataMethod => {
                let algorithm = required(attr(resolver, e, b"Algorithm")?)?;
                self.data.get_or_insert_default().algorithm = algorithm;
                Ok(())
            }
            Kind::KeyMethod => {
                let algorithm = required(attr(resolver, e, b"Algorithm")?)?;
                self.current_key()?.algorithm = algorithm;
                Ok(())
            }
            Kind::Other => self.enter_method_child(resolver, e),
            _ => Ok(()),
        }
    }

    fn enter_assertion(&mut self) -> Result<(), DecryptError> {
        self.assertions += 1;
        if self.assertions > 1 || self.inside_assertion() {
            return Err(DecryptError::Malformed("more than one EncryptedAssertion".into()));
        }
        Ok(())
    }

    fn enter_data(&mut self, type_: Option<String>) -> Result<(), DecryptError> {
        self.data_count += 1;
        if self.data_count > 1 {
            return Err(DecryptError::Malformed("more than one EncryptedData".into()));
        }
        if type_.is_some_and(|t| t != TYPE_ELEMENT) {
            return Err(DecryptError::Malformed("EncryptedData must have Type Element".into()));
        }
        self.data.get_or_insert_default();
        Ok(())
    }

    fn enter_key(&mut self) -> Result<(), DecryptError> {
        // A key wrapped under another EncryptedKey is a chain we do not follow.
        if self.stack.contains(&Kind::EncryptedKey) {
            return Err(DecryptError::Malformed("nested EncryptedKey".into()));
        }
        if self.keys.len() >= MAX_ENCRYPTED_KEYS {
            return Err(DecryptError::Malformed("too many EncryptedKey elements".into()));
        }
        self.keys.push(KeySpec::default());
        Ok(())
    }

    /// `ds:DigestMethod` and `xenc11:MGF` refine an EncryptedKey's OAEP parameters.
    fn enter_method_child(
        &mut self,
        resolver: &NamespaceResolver,
        e: &BytesStart<'_>,
    ) -> Result<(), DecryptError> {
        if self.stack.last() != Some(&Kind::KeyMethod) {
            return Ok(());
        }
        let (ns, local) = resolver.resolve_element(e.name());
        let ns: &[u8] = match &ns {
            ResolveResult::Bound(n) => n.as_ref(),
            _ => return Ok(()),
        };
        let algorithm = attr(resolver, e, b"Algorithm")?;
        match (ns, local.as_ref()) {
            (DSIG_NS, b"DigestMethod") => self.current_key()?.digest = Some(required(algorithm)?),
            (XENC11_NS, b"MGF") => self.current_key()?.mgf = Some(required(algorithm)?),
            _ => {}
        }
        Ok(())
    }

    fn current_key(&mut self) -> Result<&mut KeySpec, DecryptError> {
        self.keys
            .last_mut()
            .ok_or_else(|| DecryptError::Malformed("EncryptionMethod outside EncryptedKey".into()))
    }

    fn on_text(&mut self, text: &str) {
        match self.stack.last() {
            Some(Kind::DataCipherValue) => {
                if let Some(data) = self.data.as_mut() {
                    data.cipher_value.push_str(text);
                }
            }
            Some(Kind::KeyCipherValue) => {
                if let Some(key) = self.keys.last_mut() {
                    key.cipher_value.push_str(text);
                }
            }
            Some(Kind::OaepParams) => {
                if let Some(key) = self.keys.last_mut() {
                    key.oaep_params.get_or_insert_default().push_str(text);
                }
            }
            _ => {}
        }
    }

    fn finish(self) -> Result<Parsed, DecryptError> {
        if self.assertions != 1 {
            return Err(DecryptError::Malformed("no EncryptedAssertion".into()));
        }
        let data = self.data.ok_or_else(|| DecryptError::Malformed("no EncryptedData".into()))?;
        if data.algorithm.is_empty() || data.cipher_value.trim().is_empty() {
            return Err(DecryptError::Malformed(
                "EncryptedData lacks EncryptionMethod or CipherValue".into(),
            ));
        }
        if self.keys.is_empty() {
            return Err(DecryptError::Malformed("no EncryptedKey".into()));
        }
        if self.keys.iter().any(|k| k.algorithm.is_empty() || k.cipher_value.trim().is_empty()) {
            return Err(DecryptError::Malformed("EncryptedKey lacks EncryptionMethod or CipherValue".into()));
        }
        Ok(Parsed { data, keys: self.keys })
    }
}

/// The unprefixed attribute `name`, entities resolved.
fn attr(
    resolver: &NamespaceResolver,
    e: &BytesStart<'_>,
    name: &[u8],
) -> Result<Option<String>, DecryptError> {
    for a in e.attributes() {
        let a = a.map_err(|err| DecryptError::Malformed(err.to_string()))?;
        let (ns, local) = resolver.resolve_attribute(a.key);
        if matches!(ns, ResolveResult::Unbound) && local.as_ref() == name {
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|err| DecryptError::Malformed(err.to_string()))?;
            return Ok(Some(Cow::into_owned(value)));
        }
    }
    Ok(None)
}

fn required(value: Option<String>) -> Result<String, DecryptError> {
    value.ok_or_else(|| DecryptError::Malformed("EncryptionMethod without Algorithm".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/xmlenc/", $name))
        };
    }

    const ASSERTION: &str = fixture!("assertion.xml");

    /// Every fixture made by xmlsec1 1.2.37 or libxmlsec1 1.3.9; see tests/fixtures/xmlenc/README.md.
    const FIXTURES: &[(&str, &str)] = &[
        ("aes128-cbc_rsa-oaep-mgf1p", fixture!("aes128-cbc_rsa-oaep-mgf1p.xml")),
        ("aes192-cbc_rsa-oaep-mgf1p", fixture!("aes192-cbc_rsa-oaep-mgf1p.xml")),
        ("aes256-cbc_rsa-oaep-mgf1p", fixture!("aes256-cbc_rsa-oaep-mgf1p.xml")),
        ("aes128-gcm_rsa-oaep-mgf1p", fixture!("aes128-gcm_rsa-oaep-mgf1p.xml")),
        ("aes192-gcm_rsa-oaep-mgf1p", fixture!("aes192-gcm_rsa-oaep-mgf1p.xml")),
        ("aes256-gcm_rsa-oaep-mgf1p", fixture!("aes256-gcm_rsa-oaep-mgf1p.xml")),
        ("aes128-cbc_rsa-oaep", fixture!("aes128-cbc_rsa-oaep.xml")),
        ("aes192-cbc_rsa-oaep", fixture!("aes192-cbc_rsa-oaep.xml")),
        ("aes256-cbc_rsa-oaep", fixture!("aes256-cbc_rsa-oaep.xml")),
        ("aes128-gcm_rsa-oaep", fixture!("aes128-gcm_rsa-oaep.xml")),
        ("aes192-gcm_rsa-oaep", fixture!("aes192-gcm_rsa-oaep.xml")),
        ("aes256-gcm_rsa-oaep", fixture!("aes256-gcm_rsa-oaep.xml")),
        ("aes256-gcm_rsa-oaep-sha256-mgf1sha256", fixture!("aes256-gcm_rsa-oaep-sha256-mgf1sha256.xml")),
        ("aes128-cbc_rsa-oaep-sha256-mgf1sha256", fixture!("aes128-cbc_rsa-oaep-sha256-mgf1sha256.xml")),
        ("aes256-cbc_rsa-oaep-mgf1p-sha256", fixture!("aes256-cbc_rsa-oaep-mgf1p-sha256.xml")),
    ];

    const GCM: &str = fixture!("aes256-gcm_rsa-oaep-mgf1p.xml");
    const CBC: &str = fixture!("aes256-cbc_rsa-oaep-mgf1p.xml");

    fn key() -> PKey<Private> {
        PKey::private_key_from_pem(fixture!("key.pem").as_bytes()).unwrap()
    }

    const OPEN: &str = "<xenc:CipherValue>";
    const CLOSE: &str = "</xenc:CipherValue>";

    /// The fixtures hold two CipherValues: the wrapped key first, the content last.
    fn cipher_value(xml: &str, content: bool) -> (usize, usize) {
        let start = if content { xml.rfind(OPEN) } else { xml.find(OPEN) }.unwrap() + OPEN.len();
        let end = start + xml[start..].find(CLOSE).unwrap();
        (start, end)
    }

    fn cipher_bytes(xml: &str, content: bool) -> Vec<u8> {
        let (start, end) = cipher_value(xml, content);
        decode_base64(&xml[start..end]).unwrap()
    }

    fn with_cipher_bytes(xml: &str, content: bool, bytes: &[u8]) -> String {
        let (start, end) = cipher_value(xml, content);
        format!("{}{}{}", &xml[..start], STANDARD.encode(bytes), &xml[end..])
    }

    #[test]
    fn every_xmlsec_fixture_decrypts_to_the_original_assertion() {
        let key = key();
        for (name, xml) in FIXTURES {
            let plaintext = decrypt_assertion(xml, &key).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(plaintext, ASSERTION, "{name}");
        }
    }

    #[test]
    fn fixtures_pass_the_hostile_xml_gate() {
        use super::super::guard::{Limits, inspect};
        for (name, xml) in FIXTURES {
            let shape = inspect(xml, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(shape.encrypted_assertion_depths, vec![0], "{name}");
            // The OAEP DigestMethod is a key-transport parameter, not a signature digest.
            assert!(shape.digest_algorithms.is_empty(), "{name}");
        }
        let pointer = r##"<ds:KeyInfo><ds:RetrievalMethod Type="http://www.w3.org/2001/04/xmlenc#EncryptedKey" URI="#_ek1"/></ds:KeyInfo>"##;
        assert!(inspect(&sibling_layout(GCM, pointer), &Limits::default()).is_ok());
    }

    #[test]
    fn whole_response_with_prefixes_declared_on_the_root() {
        let inner = CBC
            .trim_start_matches(r#"<?xml version="1.0"?>"#)
            .replace(r#" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#""#, "")
            .replace(r#" xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion""#, "");
        let response = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><saml2p:Response xmlns:saml2p="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" ID="_r"><saml2:Issuer>idp</saml2:Issuer>{inner}</saml2p:Response>"#
        );
        assert!(!inner.contains("xmlns:xenc"));
        assert_eq!(decrypt_assertion(&response, &key()).unwrap(), ASSERTION);
    }

    fn key_info(xml: &str) -> (usize, usize) {
        let start = xml.find("<ds:KeyInfo>").unwrap();
        let end = xml.find("</ds:KeyInfo>").unwrap() + "</ds:KeyInfo>".len();
        (start, end)
    }

    /// Moves the EncryptedKey out of KeyInfo to be a sibling of EncryptedData, as some IdPs send it.
    fn sibling_layout(xml: &str, key_info_replacement: &str) -> String {
        let (start, end) = key_info(xml);
        let encrypted_key = &xml[start + "<ds:KeyInfo>".len()..end - "</ds:KeyInfo>".len()];
        let encrypted_key = encrypted_key.replacen(
            "<xenc:EncryptedKey ",
            r#"<xenc:EncryptedKey xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" "#,
            1,
        );
        let moved = format!("{}{}{}", &xml[..start], key_info_replacement, &xml[end..]);
        moved.replacen("</xenc:EncryptedData>", &format!("</xenc:EncryptedData>{encrypted_key}"), 1)
    }

    #[test]
    fn sibling_encrypted_key_with_or_without_retrieval_method() {
        let pointer = r##"<ds:KeyInfo><ds:RetrievalMethod Type="http://www.w3.org/2001/04/xmlenc#EncryptedKey" URI="#_ek1"/></ds:KeyInfo>"##;
        for replacement in [pointer, ""] {
            for xml in [CBC, GCM] {
                let moved = sibling_layout(xml, replacement);
                assert!(moved.contains("</xenc:EncryptedData><xenc:EncryptedKey"));
                assert_eq!(decrypt_assertion(&moved, &key()).unwrap(), ASSERTION);
            }
        }
    }

    #[test]
    fn retrieval_method_is_never_dereferenced() {
        // The URI points nowhere useful; only the sibling EncryptedKey can supply the key.
        let remote = r#"<ds:KeyInfo><ds:RetrievalMethod Type="http://www.w3.org/2001/04/xmlenc#EncryptedKey" URI="file:///etc/passwd"/></ds:KeyInfo>"#;
        let (start, end) = key_info(GCM);
        let without_key = format!("{}{}{}", &GCM[..start], remote, &GCM[end..]);
        assert!(matches!(decrypt_assertion(&without_key, &key()), Err(DecryptError::Malformed(_))));
    }

    #[test]
    fn char_references_and_odd_whitespace_in_cipher_values() {
        let xml = GCM.replace('\n', "&#13;\n\t ");
        assert_eq!(decrypt_assertion(&xml, &key()).unwrap(), ASSERTION);
    }

    #[test]
    fn rsa_1_5_is_refused() {
        let xml = fixture!("aes128-cbc_rsa-1_5.xml");
        assert_eq!(
            decrypt_assertion(xml, &key()),
            Err(DecryptError::UnsupportedAlgorithm("http://www.w3.org/2001/04/xmlenc#rsa-1_5".into()))
        );
    }

    #[test]
    fn triple_des_and_unknown_algorithms_are_refused() {
        for alg in [
            "http://www.w3.org/2001/04/xmlenc#tripledes-cbc",
            "http://www.w3.org/2009/xmlenc11#aes256-ctr",
            "urn:evil",
        ] {
            let xml = CBC.replacen("http://www.w3.org/2001/04/xmlenc#aes256-cbc", alg, 1);
            assert_eq!(decrypt_assertion(&xml, &key()), Err(DecryptError::UnsupportedAlgorithm(alg.into())));
        }
        let xml = CBC.replace("#rsa-oaep-mgf1p", "#kw-aes256");
        assert!(matches!(decrypt_assertion(&xml, &key()), Err(DecryptError::UnsupportedAlgorithm(_))));
        let sha1 = fixture!("aes256-gcm_rsa-oaep-sha256-mgf1sha256.xml");
        let md5 = sha1
            .replace("http://www.w3.org/2001/04/xmlenc#sha256", "http://www.w3.org/2001/04/xmldsig-more#md5");
        assert!(matches!(decrypt_assertion(&md5, &key()), Err(DecryptError::UnsupportedAlgorithm(_))));
    }

    #[test]
    fn wrong_oaep_parameters_fail() {
        let xml = fixture!("aes256-gcm_rsa-oaep-sha256-mgf1sha256.xml").replace("#mgf1sha256", "#mgf1sha1");
        assert_eq!(decrypt_assertion(&xml, &key()), Err(DecryptError::Failed));
    }

    #[test]
    fn tampered_gcm_ciphertext_or_tag_fails() {
        let original = cipher_bytes(GCM, true);
        for index in [0, GCM_IV_LEN, original.len() / 2, original.len() - 1] {
            let mut bytes = original.clone();
            bytes[index] ^= 0x01;
            let xml = with_cipher_bytes(GCM, true, &bytes);
            assert_eq!(decrypt_assertion(&xml, &key()), Err(DecryptError::Failed), "byte {index}");
        }
    }

    #[test]
    fn tampered_wrapped_key_fails() {
        for xml in [CBC, GCM] {
            let mut bytes = cipher_bytes(xml, false);
            bytes[100] ^= 0x80;
            let xml = with_cipher_bytes(xml, false, &bytes);
            assert_eq!(decrypt_assertion(&xml, &key()), Err(DecryptError::Failed));
        }
    }

    #[test]
    fn tampered_cbc_padding_fails() {
        // Flipping the second-to-last block's last byte flips the pad-length byte.
        let mut bytes = cipher_bytes(CBC, true);
        let at = bytes.len() - AES_BLOCK - 1;
        bytes[at] ^= 0x40;
        let xml = with_cipher_bytes(CBC, true, &bytes);
        assert_eq!(decrypt_assertion(&xml, &key()), Err(DecryptError::Failed));
    }

    #[test]
    fn wrong_private_key_fails() {
        let other = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        for (_, xml) in FIXTURES {
            assert_eq!(decrypt_assertion(xml, &other), Err(DecryptError::Failed));
        }
    }

    #[test]
    fn non_rsa_key_is_refused() {
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let ec = PKey::from_ec_key(ec).unwrap();
        assert!(matches!(decrypt_assertion(GCM, &ec), Err(DecryptError::UnsupportedAlgorithm(_))));
    }

    #[test]
    fn key_length_must_match_the_cipher() {
        // Unwraps fine (32 bytes) but aes128 needs 16.
        let xml = CBC.replacen("#aes256-cbc", "#aes128-cbc", 1);
        assert_eq!(decrypt_assertion(&xml, &key()), Err(DecryptError::Failed));
    }

    #[test]
    fn truncated_ciphertexts_and_keys_are_errors_not_panics() {
        for (_, xml) in FIXTURES {
            let content = cipher_bytes(xml, true);
            let wrapped = cipher_bytes(xml, false);
            for len in 0..40 {
                let short = with_cipher_bytes(xml, true, &content[..len.min(content.len())]);
                assert!(decrypt_assertion(&short, &key()).is_err(), "content {len}");
                let short = with_cipher_bytes(xml, false, &wrapped[..len.min(wrapped.len())]);
                assert!(decrypt_assertion(&short, &key()).is_err(), "key {len}");
            }
        }
    }

    #[test]
    fn xml_padding_accepts_arbitrary_pad_bytes_and_checks_range() {
        assert_eq!(strip_xmlenc_padding(b"abc\xAA\xBB\x03".to_vec()), Ok(b"abc".to_vec()));
        assert_eq!(strip_xmlenc_padding(vec![16; 16]), Ok(vec![]));
        assert_eq!(strip_xmlenc_padding(b"abc\x00".to_vec()), Err(DecryptError::Failed));
        assert_eq!(strip_xmlenc_padding(vec![17; 32]), Err(DecryptError::Failed));
        assert_eq!(strip_xmlenc_padding(vec![5; 3]), Err(DecryptError::Failed));
        assert_eq!(strip_xmlenc_padding(vec![]), Err(DecryptError::Failed));
    }

    #[test]
    fn structural_problems_are_malformed() {
        let key = key();
        let no_assertion = GCM.replace("EncryptedAssertion", "Other");
        let two = format!(
            r#"<r xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion">{}{}</r>"#,
            GCM.trim_start_matches(r#"<?xml version="1.0"?>"#),
            GCM.trim_start_matches(r#"<?xml version="1.0"?>"#)
        );
        let content_type = GCM.replace("#Element", "#Content");
        let no_key = {
            let (start, end) = key_info(GCM);
            format!("{}{}", &GCM[..start], &GCM[end..])
        };
        let bad_base64 = GCM.replacen(OPEN, &format!("{OPEN}!!"), 1);
        let reference =
            GCM.replace("<xenc:CipherValue>", r#"<xenc:CipherReference URI="file:///x"/><xenc:CipherValue>"#);
        for xml in [&no_assertion, &two, &content_type, &no_key, &bad_base64, &reference, "", "<", "not xml"]
        {
            assert!(matches!(decrypt_assertion(xml, &key), Err(DecryptError::Malformed(_))), "{xml}");
        }
    }

    #[test]
    fn non_utf8_plaintext_fails() {
        // Encrypt Latin-1 bytes ourselves under a key we wrap with OAEP, to reach the UTF-8 check.
        let session = [7u8; 16];
        let iv = [1u8; 12];
        let mut tag = [0u8; 16];
        let body = openssl::symm::encrypt_aead(
            Cipher::aes_128_gcm(),
            &session,
            Some(&iv),
            &[],
            b"<a>\xE9</a>",
            &mut tag,
        )
        .unwrap();
        let content = [&iv[..], &body, &tag].concat();
        let rsa = key().rsa().unwrap();
        let mut wrapped = vec![0; rsa.size() as usize];
        let n = rsa.public_encrypt(&session, &mut wrapped, Padding::PKCS1_OAEP).unwrap();
        wrapped.truncate(n);
        let xml = fixture!("aes128-gcm_rsa-oaep-mgf1p.xml");
        let xml = with_cipher_bytes(&with_cipher_bytes(xml, true, &content), false, &wrapped);
        assert_eq!(decrypt_assertion(&xml, &key()), Err(DecryptError::Failed));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_cipher_values_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            which in 0usize..4,
        ) {
            let key = key();
            let (xml, content) = [(CBC, true), (GCM, true), (CBC, false), (GCM, false)][which];
            let result = decrypt_assertion(&with_cipher_bytes(xml, content, &bytes), &key);
            if which != 0 {
                prop_assert!(result.is_err());
            }
        }

        #[test]
        fn random_cipher_value_text_never_panics(text in "[A-Za-z0-9+/= \n&#;x]{0,200}") {
            let (start, end) = cipher_value(GCM, true);
            let xml = format!("{}{}{}", &GCM[..start], text, &GCM[end..]);
            let _ = decrypt_assertion(&xml, &key());
        }
    }
}
