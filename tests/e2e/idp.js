// A browser-facing SAML 2.0 identity provider for the end-to-end tests, built on samlify (npm,
// xml-crypto inside: an implementation nobody here wrote). It plays the customer's IdP (Okta,
// Entra ID…) for a real browser:
//
//   GET  /metadata     the IdP's metadata (what its admin downloads and uploads to Portcullis):
//                      SSO over HTTP-Redirect at /sso, WantAuthnRequestsSigned="true"
//   GET  /sso?SAMLRequest=…&RelayState=…&SigAlg=…&Signature=…
//                      reads the request's Issuer (Portcullis' SP entity ID is the URL of its
//                      public SP metadata), fetches that metadata, verifies the request's
//                      signature with the certificate in it, then shows a sign-in page
//   POST /sso/login    email + the stored request's reference → a signed Response and a signed
//                      assertion (NameID = email; attributes email, firstName, lastName, groups)
//                      in a page that posts it to the SP's ACS with the RelayState
//
// Its key and self-signed certificate are made at start with the openssl CLI in a temporary
// folder. Everyone may sign in: the email typed is who they are; names and groups come from
// `users` (startIdp's option) or are derived from the address.
'use strict';

const crypto = require('crypto');
const { execFileSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const zlib = require('zlib');
const saml = require('samlify');

saml.setSchemaValidator(require('@authenio/samlify-node-xmllint'));

const { binding } = saml.Constants.namespace;
const EMAIL_FORMAT = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';
const BASIC = 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic';

// samlify's default template leaves out the AuthnStatement, which the Web Browser SSO profile
// requires (Profiles 4.1.4.2) and Portcullis refuses to do without (as tests/saml/samlify/idp.js).
const AUTHN_STATEMENT =
  '<saml:AuthnStatement AuthnInstant="{IssueInstant}" SessionIndex="{AssertionID}"><saml:AuthnContext>' +
  '<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>' +
  '</saml:AuthnContext></saml:AuthnStatement>';

// The attribute statement, through samlify's own loginResponseTemplate.attributes: each becomes
// `<saml:Attribute Name=…><saml:AttributeValue>{attrX}</saml:AttributeValue></saml:Attribute>`
// with its placeholder named after valueTag (`groups` → {attrGroups}).
const ATTRIBUTES = [
  { name: 'email', valueTag: 'email', nameFormat: BASIC, valueXsiType: 'xs:string' },
  { name: 'firstName', valueTag: 'firstName', nameFormat: BASIC, valueXsiType: 'xs:string' },
  { name: 'lastName', valueTag: 'lastName', nameFormat: BASIC, valueXsiType: 'xs:string' },
  { name: 'groups', valueTag: 'groups', nameFormat: BASIC, valueXsiType: 'xs:string' },
];

/** Who signs in as ada unless told otherwise: her groups are what an Okta admin would send. */
const DEFAULT_USERS = {
  'ada@acme.test': { firstName: 'Ada', lastName: 'Lovelace', groups: ['Engineering'] },
};

/** How long a verified request waits for its person to sign in. */
const REQUEST_LIFETIME_MS = 30 * 60 * 1000;

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function escapeXml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' }[c]));
}

/** A key and a self-signed certificate, made by openssl in `dir`. */
function makeKeys(dir) {
  const key = path.join(dir, 'idp.key');
  const cert = path.join(dir, 'idp.crt');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '30',
    '-subj', '/CN=Portcullis e2e test IdP', '-keyout', key, '-out', cert,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  return { key: fs.readFileSync(key, 'utf8'), cert: fs.readFileSync(cert, 'utf8') };
}

/** The HTTP-Redirect binding signs the query as sent (SAML Bindings 3.4.4.1): everything but
 *  `Signature=`, in the order it came. */
function redirectRequest(url) {
  const raw = url.search.slice(1);
  const octetString = raw.split('&').filter((part) => !part.startsWith('Signature=')).join('&');
  return { query: Object.fromEntries(url.searchParams.entries()), octetString };
}

/** The Issuer of a deflated, base64 AuthnRequest: where the SP's metadata is. */
function issuerOf(samlRequest) {
  const xml = zlib.inflateRawSync(Buffer.from(samlRequest, 'base64')).toString('utf8');
  const match = /<(?:\w+:)?Issuer\b[^>]*>\s*([^<\s]+)\s*<\/(?:\w+:)?Issuer>/.exec(xml);
  if (!match) throw new Error('the AuthnRequest has no Issuer');
  return match[1].replace(/&amp;/g, '&');
}

function page(title, body, { status = 200 } = {}) {
  return {
    status,
    type: 'text/html; charset=utf-8',
    body: `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body { font-family: "DejaVu Sans", sans-serif; background: #f3f0ea; color: #222; margin: 0; }
main { max-width: 26rem; margin: 4rem auto; background: #fff; border: 1px solid #d8d2c4; border-radius: 6px; padding: 2rem; }
.idp-brand { color: #8a5a00; font-weight: bold; letter-spacing: .04em; text-transform: uppercase; font-size: .8rem; }
label { display: block; margin: 1rem 0 .3rem; font-weight: bold; }
input[type=email] { width: 100%; box-sizing: border-box; padding: .5rem; font-size: 1rem; }
button { margin-top: 1rem; padding: .5rem 1.2rem; font-size: 1rem; background: #8a5a00; color: #fff; border: 0; border-radius: 4px; }
.muted { color: #666; font-size: .85rem; }
.error { color: #a00; }
</style></head><body><main><p class="idp-brand">Test IdP (samlify)</p>${body}</main></body></html>`,
  };
}

/**
 * Starts the IdP on 127.0.0.1 (an ephemeral port). options.users: {email: {firstName, lastName,
 * groups}} overriding the defaults; options.log: a function for one-line diagnostics.
 * Answers {url, entityId, metadataXml, close()}.
 */
async function startIdp(options = {}) {
  const users = { ...DEFAULT_USERS, ...(options.users || {}) };
  const log = options.log || (() => {});
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-e2e-idp-'));
  const keys = makeKeys(dir);
  const pending = new Map();
  let idp;

  const server = http.createServer((req, res) => {
    handle(req).then((answer) => {
      res.writeHead(answer.status, { 'content-type': answer.type, 'cache-control': 'no-store' });
      res.end(answer.body);
    }, (error) => {
      log(`idp: ${req.method} ${req.url.split('?')[0]} failed: ${error && error.stack ? error.stack : error}`);
      const answer = page('Test IdP — error', `<h1>Sign-in failed</h1><p class="error">${escapeHtml(error && error.message ? error.message : error)}</p>`, { status: 400 });
      res.writeHead(answer.status, { 'content-type': answer.type });
      res.end(answer.body);
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${server.address().port}`;
  const entityId = `${url}/metadata`;

  const template = saml.SamlLib.defaultLoginResponseTemplate.context.replace('{AuthnStatement}', AUTHN_STATEMENT);
  idp = saml.IdentityProvider({
    entityID: entityId,
    privateKey: keys.key,
    signingCert: keys.cert,
    wantAuthnRequestsSigned: true,
    nameIDFormat: [EMAIL_FORMAT],
    singleSignOnService: [{ Binding: binding.redirect, Location: `${url}/sso` }],
    loginResponseTemplate: { context: template, attributes: ATTRIBUTES },
  });
  const metadataXml = idp.getMetadata();

  async function handle(req) {
    const at = new URL(req.url, url);
    if (req.method === 'GET' && at.pathname === '/metadata') {
      return { status: 200, type: 'application/samlmetadata+xml', body: metadataXml };
    }
    if (req.method === 'GET' && at.pathname === '/sso') return showSignIn(at);
    if (req.method === 'POST' && at.pathname === '/sso/login') return signIn(new URLSearchParams(await readBody(req)));
    return { status: 404, type: 'text/plain', body: 'not found\n' };
  }

  /** Verifies the SP's signed AuthnRequest, keeps it, and asks who is signing in. */
  async function showSignIn(at) {
    const samlRequest = at.searchParams.get('SAMLRequest');
    if (!samlRequest) throw new Error('no SAMLRequest in the query');
    if (!at.searchParams.get('Signature')) throw new Error('the AuthnRequest is not signed (this IdP wants signed requests)');
    const issuer = issuerOf(samlRequest);
    if (!/^https?:\/\//.test(issuer)) throw new Error(`the Issuer ${issuer} is not a metadata URL`);
    const fetched = await fetch(issuer);
    if (!fetched.ok) throw new Error(`the SP metadata at ${issuer} answered ${fetched.status}`);
    const spMetadata = await fetched.text();
    const sp = saml.ServiceProvider({ metadata: spMetadata, wantMessageSigned: true });
    const { extract } = await idp.parseLoginRequest(sp, 'redirect', redirectRequest(at));
    const reference = crypto.randomBytes(16).toString('hex');
    pending.set(reference, { sp, extract, relayState: at.searchParams.get('RelayState'), at: Date.now() });
    for (const [key, value] of pending) if (Date.now() - value.at > REQUEST_LIFETIME_MS) pending.delete(key);
    log(`idp: verified AuthnRequest ${extract.request.id} from ${issuer}`);
    return page('Test IdP — sign in', `<h1>Test IdP — sign in</h1>
<p class="muted">Signing in to <code>${escapeHtml(issuer)}</code></p>
<form method="post" action="/sso/login">
<input type="hidden" name="request" value="${reference}">
<label for="email">Email</label>
<input type="email" id="email" name="email" autocomplete="username" required autofocus>
<button type="submit">Sign in</button>
</form>`);
  }

  /** Answers a kept request with a signed Response for the person, posted to the SP's ACS. */
  async function signIn(form) {
    const request = pending.get(form.get('request') || '');
    if (!request) throw new Error('unknown or already answered sign-in request: start again from the application');
    pending.delete(form.get('request'));
    const email = (form.get('email') || '').trim().toLowerCase();
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) throw new Error('enter an email address');
    const known = users[email] || {};
    const local = email.split('@')[0];
    const user = {
      email,
      firstName: known.firstName || local.charAt(0).toUpperCase() + local.slice(1),
      lastName: known.lastName || 'Tester',
      groups: known.groups || [],
    };
    const response = await idp.createLoginResponse(request.sp, { extract: request.extract }, 'post', user, {
      customTagReplacement: (xml) => fillResponse(xml, request, user),
    });
    const acs = response.entityEndpoint;
    // Both the Response and the assertion are signed (the SP wants assertions signed; the
    // message is signed because this IdP asks samlify to): a self-check of the IdP.
    const signatures = (Buffer.from(response.context, 'base64').toString('utf8').match(/<ds:Signature\b/g) || []).length;
    if (signatures !== 2) throw new Error(`the Response carries ${signatures} signatures, not 2 (Response and assertion)`);
    log(`idp: signed in ${email} (groups: ${user.groups.join(', ') || 'none'}) → ${acs}`);
    const relay = request.relayState === null ? '' : `<input type="hidden" name="RelayState" value="${escapeHtml(request.relayState)}">`;
    return page('Test IdP — signing you in', `<h1>Signing you in…</h1>
<form method="post" action="${escapeHtml(acs)}" id="to-sp">
<input type="hidden" name="SAMLResponse" value="${escapeHtml(response.context)}">${relay}
<p class="muted">You are signed in as ${escapeHtml(email)}. Taking you back to the application.</p>
<button type="submit">Continue</button>
</form>
<script>document.getElementById('to-sp').submit();</script>`);
  }

  /** samlify's customTagReplacement: the template's values (as its default path fills them),
   *  with each group as its own AttributeValue. */
  function fillResponse(xml, request, user) {
    const id = idp.entitySetting.generateID();
    const now = new Date();
    const later = new Date(now.getTime() + 5 * 60 * 1000).toISOString();
    const acs = request.sp.entityMeta.getAssertionConsumerService(saml.Constants.wording.binding.post);
    const groupValue = /<saml:AttributeValue\b[^>]*>\{attrGroups\}<\/saml:AttributeValue>/;
    const element = groupValue.exec(xml);
    if (!element) throw new Error('samlify template has no {attrGroups} value');
    const values = user.groups.map((g) => element[0].replace('{attrGroups}', escapeXml(g))).join('');
    const withGroups = user.groups.length
      ? xml.replace(groupValue, values)
      : xml.replace(/<saml:Attribute Name="groups"[^>]*>.*?<\/saml:Attribute>/, '');
    const context = saml.SamlLib.replaceTagsByValue(withGroups, {
      ID: id,
      AssertionID: idp.entitySetting.generateID(),
      Destination: acs,
      Audience: request.sp.entityMeta.getEntityID(),
      SubjectRecipient: acs,
      Issuer: entityId,
      IssueInstant: now.toISOString(),
      StatusCode: saml.Constants.StatusCode.Success,
      ConditionsNotBefore: now.toISOString(),
      ConditionsNotOnOrAfter: later,
      SubjectConfirmationDataNotOnOrAfter: later,
      NameIDFormat: EMAIL_FORMAT,
      NameID: user.email,
      InResponseTo: request.extract.request.id,
      attrEmail: user.email,
      attrFirstName: user.firstName,
      attrLastName: user.lastName,
    });
    return { id, context };
  }

  return {
    url,
    entityId,
    metadataXml,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => {
        fs.rmSync(dir, { recursive: true, force: true });
        resolve();
      });
    }),
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > 1 << 20) {
        reject(new Error('request body too large'));
        req.destroy();
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

module.exports = { startIdp };
