#!/usr/bin/env node
// samlify (npm, xml-crypto inside) as a second SAML identity provider, independent of pysaml2
// and of xmlsec, for Portcullis' interoperability tests. Run it as `scripts/samlify-idp ...`,
// which installs the pinned packages first. Output on stdout; errors on stderr, exit status 1.
//
//   metadata --idp ENTITYID --key PEM --cert PEM --sso URL
//       the IdP's EntityDescriptor (what its admin would download)
//   login --idp ENTITYID --key PEM --cert PEM --sso URL --sp-metadata FILE --request-url URL
//         --nameid EMAIL [--encrypt]
//       reads the SP's metadata (Portcullis' own), parses the SP's HTTP-Redirect AuthnRequest
//       from the URL the browser was sent to, verifying its signature with the SP metadata's
//       certificate, and prints the base64 SAMLResponse answering it (signed Response and
//       assertion; with --encrypt, the assertion encrypted to the SP's certificate, then signed)
'use strict';
const fs = require('fs');
const saml = require('samlify');

saml.setSchemaValidator(require('@authenio/samlify-node-xmllint'));

function options(argv) {
  const parsed = { _: argv[0] };
  for (let i = 1; i < argv.length; i += 1) {
    const name = argv[i].replace(/^--/, '');
    const value = argv[i + 1];
    if (value === undefined || value.startsWith('--')) {
      parsed[name] = true;
    } else {
      parsed[name] = value;
      i += 1;
    }
  }
  return parsed;
}

// samlify's default template leaves out the AuthnStatement, which the Web Browser SSO profile
// requires (Profiles 4.1.4.2) and Portcullis refuses to do without; deployments configure one.
const AUTHN_STATEMENT =
  '<saml:AuthnStatement AuthnInstant="{IssueInstant}" SessionIndex="{AssertionID}"><saml:AuthnContext>' +
  '<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>' +
  '</saml:AuthnContext></saml:AuthnStatement>';

function identityProvider(args, encrypt) {
  const redirect = saml.Constants.namespace.binding.redirect;
  const template = saml.SamlLib.defaultLoginResponseTemplate.context.replace('{AuthnStatement}', AUTHN_STATEMENT);
  return saml.IdentityProvider({
    tagPrefixedDefaults: { loginResponseTemplate: { context: template } },
    entityID: args.idp,
    privateKey: fs.readFileSync(args.key),
    signingCert: fs.readFileSync(args.cert),
    isAssertionEncrypted: encrypt,
    wantAuthnRequestsSigned: true,
    messageSigningOrder: 'encrypt-then-sign',
    nameIDFormat: ['urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'],
    singleSignOnService: [{ Binding: redirect, Location: args.sso }],
  });
}

// The HTTP-Redirect binding signs the query as sent (SAML Bindings 3.4.4.1): everything before
// `&Signature=`, in the order it came.
function redirectRequest(url) {
  const parsed = new URL(url);
  const raw = parsed.search.slice(1);
  const octetString = raw.split('&').filter((part) => !part.startsWith('Signature=')).join('&');
  return { query: Object.fromEntries(parsed.searchParams.entries()), octetString };
}

async function login(args) {
  const encrypt = args.encrypt === true;
  const idp = identityProvider(args, encrypt);
  const sp = saml.ServiceProvider({ metadata: fs.readFileSync(args['sp-metadata']), isAssertionEncrypted: encrypt });
  const { extract } = await idp.parseLoginRequest(sp, 'redirect', redirectRequest(args['request-url']));
  const response = await idp.createLoginResponse(
    sp,
    { extract },
    'post',
    { email: args.nameid },
    { encryptThenSign: encrypt },
  );
  process.stdout.write(response.context);
}

async function main() {
  const args = options(process.argv.slice(2));
  if (args._ === 'metadata') {
    process.stdout.write(identityProvider(args, false).getMetadata());
  } else if (args._ === 'login') {
    await login(args);
  } else {
    throw new Error(`unknown subcommand ${args._}: metadata or login`);
  }
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
