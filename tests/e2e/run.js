#!/usr/bin/env node
// Portcullis' end-to-end browser test: Debian's Chromium, driven by playwright-core, uses the real
// admin dashboard and sign-in pages of a running Portcullis. Run it through `scripts/e2e`, which
// installs what it needs first (see README.md beside this file).
//
//   node run.js wizard     the whole story: an operator creates a tenant and a setup link; the
//                          customer's IT admin opens the link and runs the setup wizard
//                          (wizard-steps.js); an Okta stand-in provisions a user and a group over
//                          SCIM; the user signs in to the app through the customer's IdP
//   node run.js selftest   the same story with the wizard's work done through the admin API
//                          instead of the wizard's pages (the connection test still runs in the
//                          browser): checks the harness, the IdP and the sign-in on their own
//   node run.js idp        only starts the test IdP and prints `idp URL`, until stdin closes
//
// Environment: PORTCULLIS_URL (the server's base URL), PORTCULLIS_ADMIN_KEY, E2E_SCREENSHOTS (a
// folder for the screenshots; made if missing). For a person working by hand, never the test
// suite: E2E_IGNORE_CONSOLE (a regular expression) ignores console problems that match it, and
// E2E_WIZARD_STEPS runs another file than wizard-steps.js.
//
// Its stdout carries only protocol lines, for the program that runs it:
//   step NAME              a stage begins
//   dns-txt NAME VALUE     publish this TXT record, then answer a line `ok` on stdin
//   done                   everything passed (exit status 0)
// Everything else goes to stderr. On a failure it writes failure.png and exits with status 1.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');
const readline = require('readline');
const { chromium } = require('playwright-core');
const { startIdp } = require('./idp');

// stdout is the protocol's: libraries that print (node-xmllint logs through console.log) go to stderr.
console.log = (...args) => console.error(...args);

const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
];
const VIEWPORT = { width: 1280, height: 900 };
/** The wizard's steps; E2E_WIZARD_STEPS names another file, to work on them by hand. */
const WIZARD_STEPS = path.resolve(process.env.E2E_WIZARD_STEPS || path.join(__dirname, 'wizard-steps.js'));

/** The story's people and names. */
const TENANT = { slug: 'acme', name: 'Acme Corp', domain: 'acme.test' };
const USER = { email: 'ada@acme.test', givenName: 'Ada', familyName: 'Lovelace' };
const GROUP = 'Engineering';
/** The app's vocabulary, which the vendor (the operator) defines and the IT admin maps to. */
const ROLES = [
  { name: 'admin', description: 'Manages the workspace' },
  { name: 'engineer', description: 'Works on the product' },
  { name: 'viewer', description: 'Reads only' },
];

// ---------------------------------------------------------------------------------------------
// Output and input

function protocol(line) {
  process.stdout.write(`${line}\n`);
}

function log(message) {
  process.stderr.write(`e2e: ${message}\n`);
}

function step(name) {
  log(`--- ${name}`);
  protocol(`step ${name}`);
}

/** Lines on stdin, handed out one at a time to whoever waits for one. */
const stdin = (() => {
  const lines = [];
  const waiting = [];
  let closed = false;
  let reader = null;
  const start = () => {
    if (reader) return;
    reader = readline.createInterface({ input: process.stdin });
    reader.on('line', (line) => {
      const next = waiting.shift();
      if (next) next.resolve(line.trim());
      else lines.push(line.trim());
    });
    reader.on('close', () => {
      closed = true;
      for (const next of waiting.splice(0)) next.reject(new Error('stdin closed while waiting for a line'));
    });
  };
  return {
    next() {
      start();
      if (lines.length) return Promise.resolve(lines.shift());
      if (closed) return Promise.reject(new Error('stdin closed while waiting for a line'));
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    },
    wait() {
      start();
      return new Promise((resolve) => (closed ? resolve() : reader.on('close', resolve)));
    },
    close() {
      if (reader) reader.close();
      process.stdin.destroy();
    },
  };
})();

// ---------------------------------------------------------------------------------------------
// HTTP helpers (Node's fetch)

async function call(method, url, { headers = {}, json, form, expect } = {}) {
  const init = { method, headers: { accept: 'application/json', ...headers }, redirect: 'manual' };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['content-type'] = headers['content-type'] || 'application/json';
  } else if (form !== undefined) {
    init.body = new URLSearchParams(form).toString();
    init.headers['content-type'] = 'application/x-www-form-urlencoded';
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let body = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: keep the text.
  }
  const wanted = expect === undefined ? [] : [].concat(expect);
  if (wanted.length && !wanted.includes(response.status)) {
    throw new Error(`${method} ${url} answered ${response.status}, expected ${wanted.join(' or ')}: ${text.slice(0, 2000)}`);
  }
  return { status: response.status, headers: response.headers, body };
}

function adminApi(run) {
  const headers = { authorization: `Bearer ${run.adminKey}` };
  const url = (p) => `${run.base}/api/v1${p}`;
  return {
    get: (p, expect = 200) => call('GET', url(p), { headers, expect }).then((r) => r.body),
    post: (p, json, expect = [200, 201]) => call('POST', url(p), { headers, json, expect }).then((r) => r.body),
    put: (p, json, expect = 200) => call('PUT', url(p), { headers, json, expect }).then((r) => r.body),
  };
}

function base64url(buffer) {
  return buffer.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function jwtClaims(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

// ---------------------------------------------------------------------------------------------
// The browser, and what it must never show on Portcullis' pages

/** Console errors, page errors, CSP violations, failed loads and 5xx answers on Portcullis pages. */
function problemWatcher(base) {
  const origin = new URL(base).origin;
  const ignore = process.env.E2E_IGNORE_CONSOLE ? new RegExp(process.env.E2E_IGNORE_CONSOLE) : null;
  const problems = [];
  const ours = (url) => {
    try {
      return new URL(url).origin === origin;
    } catch {
      return false;
    }
  };
  // The dashboard shows the API's refusals itself (a 401 before sign-in, a 409 while a DNS record
  // is missing); Chromium still logs each as "Failed to load resource". A missing script, style
  // or page is a real fault and stays one.
  const expectedApiAnswer = (url) => {
    try {
      const { pathname } = new URL(url);
      return pathname.startsWith('/admin/api/') || pathname.startsWith('/api/v1/');
    } catch {
      return false;
    }
  };
  const add = (who, page, what) => {
    const line = `[${who}] ${page.url()}: ${what}`;
    if (ignore && ignore.test(line)) {
      log(`ignored (E2E_IGNORE_CONSOLE): ${line}`);
      return;
    }
    log(`PROBLEM ${line}`);
    problems.push(line);
  };
  return {
    problems,
    async watch(context, who) {
      await context.exposeBinding('__e2eCspViolation', ({ page }, violation) => {
        if (ours(page.url())) add(who, page, `CSP violation: ${violation}`);
      });
      await context.addInitScript(() => {
        document.addEventListener('securitypolicyviolation', (event) => {
          const report = `${event.effectiveDirective || event.violatedDirective} blocked ${event.blockedURI || 'inline'}` +
            ` at ${event.sourceFile || '?'}:${event.lineNumber || '?'}${event.sample ? ` (${event.sample})` : ''}`;
          if (window.__e2eCspViolation) window.__e2eCspViolation(report);
        }, true);
      });
      context.on('page', (page) => {
        page.on('console', (message) => {
          if (message.type() !== 'error' || !ours(page.url())) return;
          const at = message.location() && message.location().url;
          if (/^Failed to load resource/.test(message.text()) && expectedApiAnswer(at)) return;
          add(who, page, `console error: ${message.text()}${at ? ` (${at})` : ''}`);
        });
        page.on('pageerror', (error) => {
          if (ours(page.url())) add(who, page, `uncaught: ${error && error.stack ? error.stack : error}`);
        });
        page.on('response', (response) => {
          if (ours(response.url()) && response.status() >= 500) {
            add(who, page, `HTTP ${response.status()} from ${response.request().method()} ${response.url()}`);
          }
        });
        page.on('requestfailed', (request) => {
          const failure = request.failure();
          if (ours(request.url()) && failure && !/ERR_ABORTED/.test(failure.errorText)) {
            add(who, page, `request failed: ${request.method()} ${request.url()}: ${failure.errorText}`);
          }
        });
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The story

async function main(mode) {
  if (mode === 'idp') return idpOnly();
  if (mode !== 'wizard' && mode !== 'selftest') {
    throw new Error(`unknown mode ${mode || '(none)'}: wizard, selftest or idp`);
  }
  const run = {
    mode,
    base: requiredEnv('PORTCULLIS_URL').replace(/\/+$/, ''),
    adminKey: requiredEnv('PORTCULLIS_ADMIN_KEY'),
    shots: path.resolve(requiredEnv('E2E_SCREENSHOTS')),
    lastPage: null,
  };
  fs.mkdirSync(run.shots, { recursive: true });
  for (const old of fs.readdirSync(run.shots)) if (old.endsWith('.png')) fs.rmSync(path.join(run.shots, old));
  run.shot = async (page, name) => {
    const file = path.join(run.shots, name.endsWith('.png') ? name : `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    log(`screenshot ${file}`);
  };

  let idp = null;
  let browser = null;
  try {
    step('start');
    idp = await startIdp({ log });
    log(`test IdP at ${idp.url}`);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    log(`Chromium ${browser.version()}`);
    run.browser = browser;
    run.watcher = problemWatcher(run.base);
    run.newPage = async (who) => {
      const context = await browser.newContext({ viewport: VIEWPORT, locale: 'en-GB', timezoneId: 'UTC' });
      context.setDefaultTimeout(30_000);
      context.setDefaultNavigationTimeout(60_000);
      await run.watcher.watch(context, who);
      const page = await context.newPage();
      run.lastPage = page;
      return page;
    };

    const tenant = await operator(run);
    const result = await itAdmin(run, idp, tenant);
    await userSignsIn(run, result);

    step('checks');
    const { problems } = run.watcher;
    if (problems.length) {
      throw new Error(`${problems.length} problem(s) on Portcullis' pages:\n  ${problems.join('\n  ')}`);
    }
    protocol('done');
  } catch (error) {
    log(`FAILED: ${error && error.stack ? error.stack : error}`);
    if (run.lastPage && !run.lastPage.isClosed()) {
      await run.shot(run.lastPage, 'failure').catch((e) => log(`no failure screenshot: ${e.message}`));
      log(`the page was at ${run.lastPage.url()}`);
    }
    process.exitCode = 1;
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (idp) await idp.close().catch(() => {});
    stdin.close();
  }
}

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
}

async function idpOnly() {
  const idp = await startIdp({ log });
  protocol(`idp ${idp.url}`);
  await stdin.wait();
  await idp.close();
}

// a. The operator signs in, creates the tenant and a setup link in the dashboard.
async function operator(run) {
  step('operator-signin');
  const page = await run.newPage('operator');
  await page.goto(`${run.base}/admin/`);
  await page.getByLabel('Admin API key').fill(run.adminKey);
  await run.shot(page, 'op-01-signin');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Tenants' }).waitFor();
  await run.shot(page, 'op-02-tenants');

  step('operator-creates-tenant');
  await page.getByRole('button', { name: 'New tenant' }).first().click();
  const dialog = page.getByRole('dialog', { name: 'New tenant' });
  await dialog.getByLabel('Display name').fill(TENANT.name);
  await dialog.getByLabel('Slug').fill(TENANT.slug);
  await dialog.getByLabel('Email domains').fill(TENANT.domain);
  await run.shot(page, 'op-03-new-tenant');
  await dialog.getByRole('button', { name: 'Create tenant' }).click();
  await page.getByRole('heading', { level: 1, name: TENANT.name }).waitFor();
  await page.waitForURL(/#\/tenants\/[0-9a-f-]+$/);
  const tenantId = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
  await run.shot(page, 'op-04-tenant');
  const api = adminApi(run);
  const tenant = await api.get(`/tenants/${tenantId}`);
  assert(tenant.slug === TENANT.slug && tenant.domains.some((d) => d.domain === TENANT.domain),
    `the tenant the dashboard made is not as typed: ${JSON.stringify(tenant)}`);

  // The app's vocabulary is the vendor's to define (a setup link may map groups to it, not change
  // it); the dashboard's access-policy editor is not part of this story, so the API does it.
  step('operator-defines-roles');
  const policy = await api.get(`/tenants/${tenantId}/access-policy`);
  await api.put(`/tenants/${tenantId}/access-policy`, {
    roles: ROLES, tiers: policy.tiers, programs: policy.programs, rules: policy.rules, default: policy.default,
  });

  step('operator-creates-setup-link');
  await page.getByRole('navigation', { name: 'Tenant sections' }).getByRole('link', { name: 'Setup links' }).click();
  await page.getByRole('heading', { level: 2, name: 'Setup links' }).waitFor();
  await run.shot(page, 'op-05-setup-links');
  await page.locator('.panel-head').getByRole('button', { name: 'Create setup link' }).click();
  const create = page.getByRole('dialog', { name: /Create a setup link/ });
  await create.getByLabel('Note').fill('For Grace, IT at Acme');
  await run.shot(page, 'op-06-create-setup-link');
  await create.getByRole('button', { name: 'Create link' }).click();
  const shown = page.getByRole('dialog', { name: 'Send this setup link' });
  const setupUrl = await shown.getByLabel('Setup link', { exact: true }).inputValue();
  assert(setupUrl.startsWith(`${run.base}/admin/setup#`), `unexpected setup link ${setupUrl}`);
  await run.shot(page, 'op-07-setup-link-shown');
  await shown.getByRole('button', { name: 'I have copied it' }).click();
  await page.getByRole('cell', { name: 'For Grace, IT at Acme' }).waitFor();
  await run.shot(page, 'op-08-setup-link-listed');
  log(`setup link made for tenant ${tenantId}`);
  await page.context().close();
  return { id: tenantId, json: tenant, setupUrl };
}

// b. The customer's IT admin opens the link (a fresh browser: no operator cookie) and runs the
// wizard; c. provisioning happens when the wizard calls ctx.provision().
async function itAdmin(run, idp, tenant) {
  step('it-admin-opens-link');
  const page = await run.newPage('it-admin');
  await page.goto(tenant.setupUrl);
  await page.getByText(`Setting up ${TENANT.name}`).waitFor();
  await page.waitForURL(`${run.base}/admin/setup`);
  await run.shot(page, 'it-01-link-opened');

  const ctx = wizardContext(run, idp, tenant, page);
  let result;
  if (run.mode === 'wizard' && fs.existsSync(WIZARD_STEPS)) {
    step('wizard');
    const { runWizard } = require(WIZARD_STEPS);
    result = await runWizard(page, ctx);
  } else {
    if (run.mode === 'wizard') {
      log(`SKIPPED THE WIZARD: ${WIZARD_STEPS} does not exist yet; doing its work through the admin API instead`);
      step('wizard-skipped');
    }
    step('wizard-through-api');
    result = await wizardThroughApi(run, ctx, page);
  }
  for (const key of ['scimToken', 'scimBaseUrl', 'connectionId', 'role', 'group']) {
    assert(result && result[key], `the wizard's result has no ${key}: ${JSON.stringify(result)}`);
  }
  // Provisioned already if the wizard called ctx.provision(); else now, with its token.
  ctx.scim.token = ctx.scim.token || result.scimToken;
  ctx.scim.baseUrl = ctx.scim.baseUrl || result.scimBaseUrl;
  await ctx.provision();
  await page.context().close();
  return result;
}

/** What wizard-steps.js gets: runWizard(page, ctx). */
function wizardContext(run, idp, tenant, page) {
  let provisioned = null;
  const ctx = {
    base: run.base,
    tenantId: tenant.id,
    tenant: tenant.json,
    idp,
    user: USER,
    group: GROUP,
    roles: ROLES.map((r) => r.name),
    step,
    log,
    /** A full-page screenshot of the IT admin's page (or of `on`, another tab) as NAME.png. */
    shot: (name, on = page) => run.shot(on, name),
    /** Signs in at the test IdP's page (on `on`, the IT admin's page unless given). */
    idpSignIn: async (email = USER.email, on = page) => {
      await on.getByRole('heading', { name: 'Test IdP — sign in' }).waitFor();
      await on.getByLabel('Email').fill(email);
      await on.getByRole('button', { name: 'Sign in' }).click();
    },
    dns: {
      /** Publishes a TXT record through the program running this one; resolves once it is. */
      async setTxt(name, value) {
        assert(/^\S+$/.test(name) && /^\S+$/.test(value), `a TXT record without spaces, please: ${name} ${value}`);
        protocol(`dns-txt ${name} ${value}`);
        const answer = await stdin.next();
        assert(answer === 'ok', `expected "ok" after dns-txt, got "${answer}"`);
        log(`TXT ${name} published`);
      },
    },
    scim: { token: null, baseUrl: null, userId: null, groupId: null },
    /** Okta's provisioning, once the wizard has made ctx.scim.token: ada and the group
     *  Engineering with her in it. Idempotent; answers {userId, groupId}. */
    provision: () => {
      if (!provisioned) {
        provisioned = provision(run, ctx).catch((error) => {
          provisioned = null;
          throw error;
        });
      }
      return provisioned;
    },
  };
  return ctx;
}

// c. Provisioning, as Okta would: SCIM with the token the wizard made.
async function provision(run, ctx) {
  step('scim-provisioning');
  assert(ctx.scim.token, 'ctx.provision() needs ctx.scim.token (the SCIM token the wizard made)');
  const scimBase = (ctx.scim.baseUrl || `${run.base}/scim/v2/${ctx.tenantId}`).replace(/\/+$/, '');
  const headers = { authorization: `Bearer ${ctx.scim.token}`, 'content-type': 'application/scim+json' };
  const scim = (method, p, json, expect) => call(method, `${scimBase}${p}`, { headers, json, expect });
  const filter = (expression) => `?filter=${encodeURIComponent(expression)}`;

  let user = await scim('POST', '/Users', {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
    userName: USER.email,
    name: { givenName: USER.givenName, familyName: USER.familyName },
    displayName: `${USER.givenName} ${USER.familyName}`,
    emails: [{ value: USER.email, type: 'work', primary: true }],
    active: true,
  }, [201, 409]);
  if (user.status === 409) {
    const found = await scim('GET', `/Users${filter(`userName eq "${USER.email}"`)}`, undefined, 200);
    user = { body: found.body.Resources[0] };
  }
  const userId = user.body.id;

  let group = await scim('POST', '/Groups', {
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'],
    displayName: GROUP,
    members: [{ value: userId }],
  }, [201, 409]);
  if (group.status === 409) {
    const found = await scim('GET', `/Groups${filter(`displayName eq "${GROUP}"`)}`, undefined, 200);
    group = { body: found.body.Resources[0] };
    await scim('PATCH', `/Groups/${group.body.id}`, {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
      Operations: [{ op: 'add', path: 'members', value: [{ value: userId }] }],
    }, [200, 204]);
  }
  ctx.scim.baseUrl = scimBase;
  ctx.scim.userId = userId;
  ctx.scim.groupId = group.body.id;
  log(`provisioned ${USER.email} (${userId}) in ${GROUP} (${group.body.id})`);
  return { userId, groupId: group.body.id };
}

/** What the wizard does, through the admin API (selftest, or no wizard-steps.js yet). The
 *  connection test still runs in the IT admin's browser, against the test IdP. */
async function wizardThroughApi(run, ctx, page) {
  const api = adminApi(run);
  const t = `/tenants/${ctx.tenantId}`;
  const domain = ctx.tenant.domains.find((d) => d.domain === TENANT.domain);
  await ctx.dns.setTxt(domain.verification.record_name, domain.verification.record_value);
  const verified = await api.post(`${t}/domains/${TENANT.domain}/verify`, {}, 200);
  assert(verified.status === 'verified', `domain not verified: ${JSON.stringify(verified)}`);

  const connection = await api.post(`${t}/saml-connections`, { name: 'Acme test IdP', idp_metadata: ctx.idp.metadataXml }, 201);
  assert(connection.enabled === true, `the connection is not enabled: ${JSON.stringify(connection)}`);

  const token = await api.post(`${t}/scim-tokens`, { name: 'Okta provisioning' }, 201);
  ctx.scim.token = token.token;
  ctx.scim.baseUrl = ctx.tenant.urls.scim_base_url;
  await ctx.provision();

  step('connection-test');
  const test = await api.post(`${t}/saml-connections/${connection.id}/tests`, {}, 201);
  await page.goto(test.start_url);
  await run.shot(page, 'it-02-idp-signin');
  await ctx.idpSignIn(USER.email, page);
  await page.getByRole('heading', { name: 'SAML connection test' }).waitFor();
  await page.getByText('passed every check').waitFor();
  await run.shot(page, 'it-03-connection-test');
  const outcome = await api.get(`${t}/saml-connections/${connection.id}/tests/${test.id}`);
  assert(outcome.status === 'done' && outcome.result && outcome.result.ok === true, `connection test: ${JSON.stringify(outcome)}`);

  const policy = await api.get(`${t}/access-policy`);
  await api.put(`${t}/access-policy`, {
    roles: policy.roles, tiers: policy.tiers, programs: policy.programs, default: policy.default,
    rules: [...policy.rules, { id: 'engineering', when: { group: GROUP }, grant: { roles: ['engineer'] } }],
  });
  return {
    scimToken: ctx.scim.token, scimBaseUrl: ctx.scim.baseUrl, connectionId: connection.id, role: 'engineer', group: GROUP,
  };
}

// d. A person signs in to the app: the app's OAuth client, Authorization Code + PKCE, and the
// routing by verified domain to the tenant's SAML connection at the test IdP.
async function userSignsIn(run, wizard) {
  step('app-signin');
  const api = adminApi(run);
  const app = await startApp();
  try {
    await signInThroughTheApp(run, wizard, api, app);
  } finally {
    await app.close();
  }
}

/**
 * The app's redirect URI: a listener on loopback (http to loopback is allowed) that keeps the
 * query it was called with and shows a tiny page. (page.route cannot stand in for it: a route
 * sees only the first URL of a redirect chain, and Portcullis reaches the app by redirects.)
 */
async function startApp() {
  let callback = null;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname !== '/callback') {
      res.writeHead(404).end();
      return;
    }
    callback = url;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Acme app</title></head>' +
      '<body><h1>Acme app: signed in</h1><p>The app received an authorization code.</p></body></html>');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    redirectUri: `http://127.0.0.1:${server.address().port}/callback`,
    callback: () => callback,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
}

async function signInThroughTheApp(run, wizard, api, app) {
  const REDIRECT_URI = app.redirectUri;
  const discovery = (await call('GET', `${run.base}/.well-known/openid-configuration`, { expect: 200 })).body;
  const client = await api.post('/oauth-clients', {
    name: 'Acme app (e2e)', redirect_uris: [REDIRECT_URI], allowed_scopes: ['openid', 'email', 'profile'],
  }, 201);
  assert(client.client_id && client.client_secret, `a confidential client: ${JSON.stringify(client)}`);

  const verifier = base64url(crypto.randomBytes(32));
  const state = base64url(crypto.randomBytes(16));
  const nonce = base64url(crypto.randomBytes(16));
  const authorize = new URL(discovery.authorization_endpoint);
  for (const [key, value] of Object.entries({
    response_type: 'code', client_id: client.client_id, redirect_uri: REDIRECT_URI, scope: 'openid email profile',
    state, nonce, code_challenge: base64url(crypto.createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
  })) authorize.searchParams.set(key, value);

  const page = await run.newPage('user');
  await page.goto(authorize.toString());
  await page.getByLabel('Work email').fill(USER.email);
  await run.shot(page, 'user-01-portcullis-login');
  await page.getByRole('button', { name: 'Continue' }).click();
  // A tenant that still allows passwords offers its SSO first, and a password beside it.
  const sso = page.getByRole('link', { name: /single sign-on/ });
  const idpPage = page.getByRole('heading', { name: 'Test IdP — sign in' });
  await sso.or(idpPage).first().waitFor();
  if (await sso.isVisible()) {
    await run.shot(page, 'user-02-choose-sso');
    await sso.click();
  }
  await idpPage.waitFor();
  await page.getByLabel('Email').fill(USER.email);
  await run.shot(page, 'user-03-idp-signin');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.href.startsWith(REDIRECT_URI));
  await page.getByRole('heading', { name: 'Acme app: signed in' }).waitFor();
  await run.shot(page, 'user-04-back-at-the-app');

  step('app-tokens');
  const callback = app.callback();
  assert(callback, 'the redirect URI was not reached');
  const params = Object.fromEntries(callback.searchParams.entries());
  assert(!params.error, `the authorization failed: ${JSON.stringify(params)}`);
  assert(params.state === state, `state came back as ${params.state}`);
  assert(params.iss === discovery.issuer, `iss came back as ${params.iss}, the issuer is ${discovery.issuer}`);
  assert(params.code, `no code: ${callback}`);
  const basic = Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`).toString('base64');
  const tokens = (await call('POST', discovery.token_endpoint, {
    headers: { authorization: `Basic ${basic}` },
    form: { grant_type: 'authorization_code', code: params.code, redirect_uri: REDIRECT_URI, code_verifier: verifier },
    expect: 200,
  })).body;
  const idToken = jwtClaims(tokens.id_token);
  assert(idToken.nonce === nonce, `the ID token's nonce is ${idToken.nonce}`);
  assert(idToken.email === USER.email, `the ID token's email is ${idToken.email}`);
  const userinfo = (await call('GET', discovery.userinfo_endpoint, {
    headers: { authorization: `Bearer ${tokens.access_token}` }, expect: 200,
  })).body;
  log(`userinfo: ${JSON.stringify(userinfo)}`);
  assert(userinfo.email === USER.email, `userinfo's email is ${userinfo.email}`);
  assert(Array.isArray(userinfo.roles) && userinfo.roles.includes(wizard.role),
    `userinfo's roles ${JSON.stringify(userinfo.roles)} lack ${wizard.role}, which the wizard mapped ${wizard.group} to`);
  assert(userinfo.org_slug === undefined || userinfo.org_slug === TENANT.slug, `org_slug ${userinfo.org_slug}`);
  await page.context().close();
}

main(process.argv[2]).catch((error) => {
  log(`FAILED: ${error && error.stack ? error.stack : error}`);
  process.exitCode = 1;
});
