// The customer's IT admin runs the setup wizard from a setup link, as a person would: through the
// page's labels and buttons only. `page` is already at the link. ctx: see run.js.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const ROLE = 'admin';
const GROUP = 'Engineering';

async function runWizard(page, ctx) {
  await page.getByRole('heading', { name: /Set up single sign-on for/ }).waitFor();

  // 1. SAML with Okta: the connection is made.
  await ctx.shot('wizard-1-protocol');
  await page.getByRole('button', { name: 'Create the connection' }).click();

  // 2. The IdP's metadata, downloaded from the independent IdP, fills the connection.
  await page.getByText('Single sign-on URL (Assertion Consumer Service URL').waitFor();
  const metadataFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'idp-')), 'idp-metadata.xml');
  fs.writeFileSync(metadataFile, ctx.idp.metadataXml);
  await page.getByLabel('IdP metadata file').setInputFiles(metadataFile);
  await page.getByRole('button', { name: 'Upload metadata' }).click();
  await page.getByText('Metadata read').first().waitFor();
  await page.getByText('Complete', { exact: true }).waitFor();
  await ctx.shot('wizard-2-idp');
  await page.getByRole('button', { name: 'Continue' }).click();

  // 3. Attribute names: the IdP sends Okta's, which need no mapping.
  await page.getByRole('heading', { name: /Map attributes/ }).waitFor();
  await ctx.shot('wizard-3-attributes');
  await page.getByRole('button', { name: 'Save and continue' }).click();

  // 4. The domain's TXT record, published in DNS, verifies it.
  await page.getByRole('heading', { name: /Verify your domains/ }).waitFor();
  const card = page.locator('[data-domain="acme.test"]');
  const name = await card.getByLabel('Name (host)', { exact: true }).inputValue();
  const value = await card.getByLabel('Value', { exact: true }).inputValue();
  await ctx.dns.setTxt(name, value);
  await ctx.shot('wizard-4-domains');
  await card.getByRole('button', { name: 'Check DNS now' }).click();
  await page.locator('[data-domain="acme.test"]').getByText('Verified', { exact: true }).waitFor();
  await ctx.shot('wizard-4-domains-verified');
  await page.getByRole('button', { name: 'Continue' }).click();

  // 5. A test before anyone is provisioned: trust works, the person is not known yet.
  await page.getByRole('heading', { name: /Test the connection/ }).waitFor();
  await testSignIn(page, ctx, 'ada@acme.test', 'user-refused', 'wizard-5-test-unprovisioned');
  await page.getByRole('button', { name: 'Turn on single sign-on' }).click();
  await page.getByText(/Single sign-on through .* is on/).waitFor();
  await ctx.shot('wizard-5-enabled');
  await page.getByRole('button', { name: 'Continue' }).click();

  // 6. A SCIM token, shown once; the IdP provisions with it.
  await page.getByRole('heading', { name: /Set up provisioning/ }).waitFor();
  const scimBaseUrl = await page.getByLabel('SCIM base URL (Tenant URL)', { exact: true }).inputValue();
  await page.getByRole('button', { name: 'Create a token' }).click();
  const scimToken = await page.getByLabel('API token (Bearer)', { exact: true }).inputValue();
  if (!scimToken.startsWith('pcst_')) throw new Error(`the copy box holds no SCIM token: ${scimToken}`);
  await ctx.shot('wizard-6-scim');
  ctx.scim.token = scimToken;
  ctx.scim.baseUrl = scimBaseUrl;
  await ctx.provision();

  // 5 again: now the person is known.
  await page.getByRole('button', { name: /Test the connection/ }).click();
  await testSignIn(page, ctx, 'ada@acme.test', 'ok', 'wizard-5-test-provisioned');

  // 7. The vendor's operator defined the app's roles (run.js); the IT admin maps a group to one.
  if (!ctx.roles.includes(ROLE)) throw new Error(`the operator defined no role ${ROLE}: ${ctx.roles}`);
  await page.getByRole('button', { name: /Map groups to roles/ }).click();
  await page.getByRole('heading', { name: /Map groups to roles/ }).waitFor();
  await page.getByLabel('IdP group').first().fill(GROUP);
  await page.getByLabel('Role in the app').first().selectOption(ROLE);
  await page.getByRole('button', { name: 'Preview the effect' }).click();
  await page.getByText(/1 person of 1 would change/).waitFor();
  await ctx.shot('wizard-7-roles-preview');
  await page.getByRole('button', { name: 'Save the mappings' }).click();
  await page.getByText(/Saved: 1 person changed/).waitFor();
  await ctx.shot('wizard-7-roles');
  await page.getByRole('button', { name: 'Finish' }).click();
  await page.getByRole('heading', { name: /Setup saved/ }).waitFor();
  await ctx.shot('wizard-8-done');

  // The link's session shows nothing but this wizard, whatever page is asked for.
  await page.goto(`${ctx.base}/admin/#/tenants`);
  await page.getByRole('heading', { name: /Set up single sign-on for/ }).waitFor();
  if (await page.getByRole('link', { name: 'Tenants' }).count()) throw new Error('a setup link shows operator navigation');
  await ctx.shot('wizard-9-operator-page-asked');

  return { scimToken, scimBaseUrl, connectionId: await connectionId(ctx), role: ROLE, group: GROUP };
}

/** Runs a connection test: the IdP signs `email` in, in the tab the wizard opens. */
async function testSignIn(page, ctx, email, outcome, shot) {
  const [idpTab] = await Promise.all([
    page.context().waitForEvent('page'),
    page.getByRole('button', { name: 'Start a test sign-in' }).click(),
  ]);
  await idpTab.getByLabel('Email').fill(email);
  await ctx.shot(`${shot}-idp`, idpTab);
  await idpTab.getByRole('button', { name: 'Sign in' }).click();
  await idpTab.waitForURL(/\/sso\/saml\/.*\/acs/);
  await ctx.shot(`${shot}-result-tab`, idpTab);
  await idpTab.close();
  await page.locator(`[data-outcome="${outcome}"]`).waitFor({ timeout: 60_000 });
  await ctx.shot(shot);
}

async function adminApi(ctx, method, apiPath, body) {
  const response = await fetch(`${ctx.base}/api/v1${apiPath}`, {
    method,
    headers: { authorization: `Bearer ${process.env.PORTCULLIS_ADMIN_KEY}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw new Error(`${method} ${apiPath}: ${response.status} ${await response.text()}`);
  return response.status === 204 ? null : response.json();
}

async function connectionId(ctx) {
  const { items } = await adminApi(ctx, 'GET', `/tenants/${ctx.tenantId}/saml-connections`);
  return items[0].id;
}

module.exports = { runWizard };
