// An independent, certified OpenID Provider for Portcullis' tests: panva's oidc-provider on 127.0.0.1,
// with auto-approving interactions (no browser) and /_control endpoints to reconfigure it and to craft
// bad tokens. Run through scripts/oidc-op CONFIG.json, which installs the pinned packages first.
//
// stdout carries only `OP listening on http://127.0.0.1:<port>` (once, when ready) and one line per
// back-channel logout delivery: `backchannel success <client_id> <sub> <sid>` or
// `backchannel error <client_id> <message>`. Everything else goes to stderr. README.md has the contract.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import http from 'node:http';

import Provider, { interactionPolicy } from 'oidc-provider';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';

// oidc-provider prints its notices with console.info; keep stdout for the contract lines.
console.log = console.error;
console.info = console.error;
const out = (line) => process.stdout.write(`${line}\n`);
const oneLine = (s) => String(s).replace(/\s+/g, ' ').trim();

if (process.argv.length !== 3) {
  console.error('usage: op.mjs CONFIG.json');
  process.exit(2);
}
const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const accounts = new Map(Object.entries(config.accounts ?? {}));

// ---------------------------------------------------------------- keys

const ALG_KTY = (alg) => {
  if (/^(RS|PS)\d+$/.test(alg)) return { kty: 'RSA' };
  if (alg === 'ES256') return { kty: 'EC', crv: 'P-256' };
  if (alg === 'ES384') return { kty: 'EC', crv: 'P-384' };
  if (alg === 'ES512') return { kty: 'EC', crv: 'P-521' };
  if (alg === 'EdDSA' || alg === 'Ed25519') return { kty: 'OKP', crv: 'Ed25519' };
  return undefined;
};
const fits = (jwk, alg) => {
  const want = ALG_KTY(alg);
  return !!want && jwk.kty === want.kty && (want.crv === undefined || jwk.crv === want.crv);
};

async function newKey(alg) {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg, use: 'sig' };
}

async function loadKeys(jwks) {
  if (!jwks) return Promise.all(['RS256', 'PS256', 'ES256'].map(newKey));
  return Promise.all(jwks.keys.map(async (k) => ({
    ...k,
    kid: k.kid ?? await calculateJwkThumbprint(k),
    use: k.use ?? 'sig',
  })));
}
const keys = await loadKeys(config.jwks);

// The OP's key to sign `alg` with: the one the header names if it fits, else one declared for that
// alg, else any key of the right type.
function opKey(alg, kid) {
  const usable = keys.filter((k) => fits(k, alg) && k.d !== undefined);
  return usable.find((k) => k.kid === kid && (!k.alg || k.alg === alg))
    ?? usable.find((k) => k.alg === alg)
    ?? usable.find((k) => k.kid === kid)
    ?? usable.find((k) => !k.alg)
    ?? usable[0];
}

// ---------------------------------------------------------------- storage

// Everything lives in this process's memory. Unlike the bundled MemoryAdapter (an LRU of 1000
// entries) nothing is evicted before it expires, the `Client` model holds the clients (so
// /_control/clients can add or replace them), and sessions can be listed (/_control/end-session).
const store = new Map(); // `${model}:${id}` -> { value, expiresAt }
const grantMembers = new Map(); // grantId -> Set of store keys
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode']);
let writes = 0;

function storeGet(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry.value;
}

function sweep() {
  const now = Date.now();
  for (const [key, entry] of store) if (entry.expiresAt !== undefined && entry.expiresAt <= now) store.delete(key);
  for (const [grantId, members] of grantMembers) {
    for (const key of members) if (!store.has(key)) members.delete(key);
    if (!members.size) grantMembers.delete(grantId);
  }
}

class Adapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    if (++writes % 1000 === 0) sweep();
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + (expiresIn + 15) * 1000 : undefined;
    const key = this.key(id);
    store.set(key, { value: payload, expiresAt });
    if (this.model === 'Session') store.set(`sessionUid:${payload.uid}`, { value: id, expiresAt });
    if (payload.userCode) store.set(`userCode:${payload.userCode}`, { value: id, expiresAt });
    if (GRANTABLE.has(this.model) && payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
  }

  async find(id) { return storeGet(this.key(id)); }

  async findByUid(uid) {
    const id = storeGet(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = storeGet(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = storeGet(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    const key = this.key(id);
    const payload = storeGet(key);
    store.delete(key);
    if (payload?.uid && storeGet(`sessionUid:${payload.uid}`) === id) store.delete(`sessionUid:${payload.uid}`);
  }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) ?? []) store.delete(key);
    grantMembers.delete(grantId);
  }
}

// ---------------------------------------------------------------- the provider

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(config.port ?? 0, '127.0.0.1', resolve);
});
const ISSUER = `http://127.0.0.1:${server.address().port}`;

const claimsOf = (id) => {
  const known = accounts.get(id);
  if (known) return { ...known, sub: id };
  return { sub: id, email: id.includes('@') ? id : `${id}@example.test`, email_verified: true };
};

// The account is the authorization request's login_hint: a session of another account logs in again.
const policy = interactionPolicy.base();
policy.get('login').checks.add(new interactionPolicy.Check(
  'login_hint_mismatch',
  'login_hint does not match the authenticated End-User',
  (ctx) => {
    const { params, session } = ctx.oidc;
    if (params.login_hint === undefined || !session.accountId) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
    return params.login_hint !== session.accountId;
  },
));

const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;

const provider = new Provider(ISSUER, {
  adapter: Adapter,
  jwks: { keys },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified', 'hd'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    groups: ['groups'],
    org: ['department'],
  },
  conformIdTokenClaims: !config.id_token_claims,
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => claimsOf(sub) }),
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = page('Logout', `${form}<button form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>`);
      },
      postLogoutSuccessSource: async (ctx) => { ctx.body = page('Signed out', '<p>Signed out.</p>'); },
    },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}`, policy },
  cookies: { keys: ['portcullis-test-op-cookie-key'] },
  // v9 refuses outbound requests to special-use addresses such as 127/8 through its own dispatcher:
  // drop it, the relying parties under test listen on loopback.
  fetch: (url, options) => {
    delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  ttl: {
    AccessToken: 3600, AuthorizationCode: 60, ClientCredentials: 600, IdToken: 3600,
    RefreshToken: 86400, Session: 86400, Grant: 86400, Interaction: 600,
  },
  renderError: async (ctx, errorOut, error) => {
    ctx.type = 'html';
    ctx.body = page('Error', `<pre>${JSON.stringify(errorOut, null, 2).replace(/[<>&]/g, (c) => `&#${c.charCodeAt(0)};`)}</pre>`);
    if (!(error?.expose)) console.error('render error', error);
  },
});
provider.proxy = false;

const backchannelSuccess = (clientId, sub, sid) => out(`backchannel success ${clientId} ${sub} ${sid}`);
const backchannelError = (clientId, err) => out(`backchannel error ${clientId} ${oneLine(err?.message ?? err)}`);
provider.on('backchannel.success', (ctx, client, accountId, sid) => backchannelSuccess(client.clientId, accountId, sid));
provider.on('backchannel.error', (ctx, err, client) => backchannelError(client.clientId, err));
provider.on('server_error', (ctx, err) => console.error('server_error', err));

async function putClient(metadata) {
  if (!metadata || typeof metadata.client_id !== 'string' || !metadata.client_id) {
    throw Object.assign(new Error('client metadata needs a client_id'), { status: 400 });
  }
  try {
    await provider.Client.validate(metadata);
  } catch (err) {
    throw Object.assign(new Error(`${err.message}${err.error_description ? `: ${err.error_description}` : ''}`), { status: 400 });
  }
  await new Adapter('Client').upsert(metadata.client_id, structuredClone(metadata));
}
for (const metadata of config.clients ?? []) await putClient(metadata);

// ---------------------------------------------------------------- crafted tokens

const b64 = (data) => Buffer.from(data).toString('base64url');
const decodePart = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

function mergeNulling(target, overrides) {
  for (const [key, value] of Object.entries(overrides ?? {})) {
    if (value === null) delete target[key];
    else target[key] = value;
  }
  return target;
}

function rawSign(alg, data, key) {
  const hash = `sha${alg.slice(2)}`;
  if (alg.startsWith('RS')) return crypto.sign(hash, data, key);
  if (alg.startsWith('PS')) {
    return crypto.sign(hash, data, {
      key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: +alg.slice(2) / 8,
    });
  }
  if (alg.startsWith('ES')) return crypto.sign(hash, data, { key, dsaEncoding: 'ieee-p1363' });
  if (alg === 'EdDSA' || alg === 'Ed25519') return crypto.sign(null, data, key);
  throw Object.assign(new Error(`cannot sign ${alg}`), { status: 400 });
}

const otherKeys = new Map(); // kty/crv -> a fresh private KeyObject, made at first use
async function otherKey(alg) {
  const want = ALG_KTY(alg);
  if (!want) throw Object.assign(new Error(`cannot sign ${alg}`), { status: 400 });
  const id = `${want.kty}/${want.crv ?? ''}`;
  if (!otherKeys.has(id)) {
    const genAlg = want.kty === 'RSA' ? 'RS256' : { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512', Ed25519: 'Ed25519' }[want.crv];
    const { privateKey } = await generateKeyPair(genAlg, { extractable: true, modulusLength: 2048 });
    otherKeys.set(id, crypto.createPrivateKey({ key: await exportJWK(privateKey), format: 'jwk' }));
  }
  return otherKeys.get(id);
}

// The OP's RSA public key in PEM (SPKI), the HMAC secret of the key-confusion attack.
function publicPem(kid) {
  const rsa = keys.filter((k) => k.kty === 'RSA');
  const jwk = rsa.find((k) => k.kid === kid) ?? rsa[0];
  if (!jwk) throw Object.assign(new Error('the OP has no RSA key'), { status: 400 });
  const { d, p, q, dp, dq, qi, ...pub } = jwk;
  return crypto.createPublicKey({ key: pub, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
}

const SIGN_MODES = new Set(['op', 'none', 'hs256-with-public-key', 'other-key']);

// header and payload as they stand, then the caller's overrides; `sign` chooses the signature.
async function craft(header, payload, { claims, header: headerOverrides, sign = 'op' } = {}) {
  if (!SIGN_MODES.has(sign)) throw Object.assign(new Error(`unknown sign mode ${sign}`), { status: 400 });
  const kid = header.kid;
  const h = { ...header };
  if (sign === 'none') h.alg = 'none';
  if (sign === 'hs256-with-public-key') h.alg = 'HS256';
  mergeNulling(h, headerOverrides);
  const p = mergeNulling({ ...payload }, claims);
  const input = `${b64(JSON.stringify(h))}.${b64(JSON.stringify(p))}`;
  let signature;
  switch (sign) {
    case 'none':
      return `${input}.`;
    case 'hs256-with-public-key':
      signature = crypto.createHmac('sha256', publicPem(kid)).update(input).digest();
      break;
    case 'other-key':
      signature = rawSign(h.alg, input, await otherKey(h.alg));
      break;
    default: {
      const jwk = opKey(h.alg, h.kid);
      if (!jwk) throw Object.assign(new Error(`the OP has no key for ${h.alg}`), { status: 400 });
      signature = rawSign(h.alg, input, crypto.createPrivateKey({ key: jwk, format: 'jwk' }));
    }
  }
  return `${input}.${b64(signature)}`;
}

let nextIdToken; // the transform for the next token endpoint response that carries an id_token

provider.use(async (ctx, next) => {
  await next();
  if (nextIdToken && ctx.path === '/token' && ctx.method === 'POST' && ctx.status === 200 && ctx.body?.id_token) {
    const transform = nextIdToken;
    nextIdToken = undefined;
    const [header, payload] = ctx.body.id_token.split('.').slice(0, 2).map(decodePart);
    ctx.body = { ...ctx.body, id_token: await craft(header, payload, transform) };
  }
});

// ---------------------------------------------------------------- control endpoints

async function logoutToken({ client_id: clientId, sub, sid, claims, header, sign, deliver }) {
  const client = await provider.Client.find(clientId);
  if (!client) throw Object.assign(new Error(`unknown client ${clientId}`), { status: 404 });
  const alg = client.idTokenSignedResponseAlg;
  const jwk = opKey(alg);
  const iat = Math.floor(Date.now() / 1000);
  const payload = {
    iss: ISSUER,
    aud: clientId,
    iat,
    exp: iat + 120,
    jti: crypto.randomBytes(16).toString('base64url'),
    events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
    ...(sub === undefined ? {} : { sub }),
    ...(sid === undefined ? {} : { sid }),
  };
  const token = await craft({ alg, typ: 'logout+jwt', ...(jwk ? { kid: jwk.kid } : {}) }, payload, { claims, header, sign });
  const result = { logout_token: token };
  if (deliver) {
    if (!client.backchannelLogoutUri) throw Object.assign(new Error(`client ${clientId} has no backchannel_logout_uri`), { status: 400 });
    const response = await globalThis.fetch(client.backchannelLogoutUri, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ logout_token: token }),
      signal: AbortSignal.timeout(10000),
    });
    result.status = response.status;
    result.body = await response.text();
  }
  return result;
}

// Ends every OP session of the account the way /session/end/confirm with logout=yes does: a
// back-channel logout token to each client of the session, its grants revoked, the session gone.
async function endSessions(account) {
  const deliveries = [];
  let sessions = 0;
  for (const key of [...store.keys()].filter((k) => k.startsWith('Session:'))) {
    const session = storeGet(key);
    if (!session || session.accountId !== account) continue;
    sessions += 1;
    await Promise.all(Object.entries(session.authorizations ?? {}).map(async ([clientId, { sid, grantId }]) => {
      const client = await provider.Client.find(clientId).catch(() => undefined);
      if (client?.backchannelLogoutUri) {
        try {
          await client.backchannelLogout(account, sid);
          backchannelSuccess(clientId, account, sid);
          deliveries.push({ client_id: clientId, sub: account, sid, result: 'success' });
        } catch (err) {
          backchannelError(clientId, err);
          deliveries.push({ client_id: clientId, sub: account, sid, result: 'error', error: oneLine(err.message) });
        }
      }
      if (grantId) {
        const adapter = new Adapter('Grant');
        await adapter.revokeByGrantId(grantId);
        await adapter.destroy(grantId);
      }
    }));
    await new Adapter('Session').destroy(key.slice('Session:'.length));
  }
  return { sessions, deliveries };
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw Object.assign(new Error('body is not JSON'), { status: 400 });
  }
}

async function control(req, res) {
  const route = `${req.method} ${new URL(req.url, ISSUER).pathname}`;
  let status = 200;
  let body;
  try {
    switch (route) {
      case 'POST /_control/clients': {
        const metadata = await readJson(req);
        await putClient(metadata);
        body = { client_id: metadata.client_id };
        break;
      }
      case 'POST /_control/accounts': {
        const { id, claims = {} } = await readJson(req);
        if (typeof id !== 'string' || !id) throw Object.assign(new Error('an account needs an id'), { status: 400 });
        accounts.set(id, claims);
        body = { id };
        break;
      }
      case 'GET /_control/jwks':
        body = { keys };
        break;
      case 'POST /_control/next-id-token': {
        const transform = await readJson(req);
        if (!SIGN_MODES.has(transform.sign ?? 'op')) throw Object.assign(new Error(`unknown sign mode ${transform.sign}`), { status: 400 });
        nextIdToken = transform;
        body = {};
        break;
      }
      case 'POST /_control/logout-token':
        body = await logoutToken(await readJson(req));
        break;
      case 'POST /_control/end-session': {
        const { account } = await readJson(req);
        if (typeof account !== 'string') throw Object.assign(new Error('give the account'), { status: 400 });
        body = await endSessions(account);
        break;
      }
      default:
        status = 404;
        body = { error: `no control endpoint ${route}` };
    }
  } catch (err) {
    status = err.status ?? 500;
    body = { error: err.message };
    if (status === 500) console.error('control error', err);
  }
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

// ---------------------------------------------------------------- interactions: auto-approve

async function interaction(req, res) {
  try {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params, session } = details;
    let result;
    if (prompt.name === 'login') {
      // prompt=login without a login_hint logs the same account in again.
      result = { login: { accountId: params.login_hint || session?.accountId || 'alice' } };
    } else {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const missing = prompt.details;
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      result = { consent: { grantId: await grant.save() } };
    }
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
  } catch (err) {
    console.error('interaction error', err);
    res.statusCode = 400;
    res.end(String(err.message));
  }
}

const callback = provider.callback();
server.on('request', (req, res) => {
  if (req.url.startsWith('/_control/')) {
    const remote = req.socket.remoteAddress ?? '';
    if (!(remote.startsWith('127.') || remote === '::1' || remote.startsWith('::ffff:127.'))) {
      res.writeHead(403).end();
      return;
    }
    control(req, res);
  } else if (/^\/interaction\/[^/?]+/.test(req.url)) {
    interaction(req, res);
  } else {
    callback(req, res);
  }
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
out(`OP listening on ${ISSUER}`);
