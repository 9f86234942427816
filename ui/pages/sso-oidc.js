// #/tenants/{id}/sso/oidc/{connection}: one OpenID Connect connection. What to register at the
// IdP, the issuer and client credentials (the secret is write-only), what discovery found, the
// claim mapping and options, and a connection test.

import {
  api, h, seg, section, field, onSubmit, copyBox, button, toast, formatTime, details, numberOrNull, append,
} from '/admin/lib.js';
import { connectionHeader, mappingFields, mappingFrom, sameMapping, redrawer } from '/admin/pages/sso-common.js';

const AUTH_METHODS = [
  { value: 'client_secret_basic', label: 'client_secret_basic (HTTP Basic, the default)' },
  { value: 'client_secret_post', label: 'client_secret_post (in the request body)' },
];
const MAPPED = ['user_name', 'email', 'given_name', 'family_name', 'display_name', 'groups', 'department'];
const MAPPING_HINTS = {
  user_name: 'preferred_username', email: 'email', given_name: 'given_name', family_name: 'family_name',
  display_name: 'name', groups: 'groups', department: 'department',
};

export async function renderConnection(panel, ctx, id) {
  const path = `/tenants/${ctx.tenant.id}/oidc-connections/${seg(id)}`;
  const connection = await api('GET', path);
  const draw = (c) => drawConnection(panel, ctx, c, path, redraw);
  const redraw = redrawer(panel, draw);
  draw(connection);
}

function drawConnection(panel, ctx, connection, path, redraw) {
  const testArea = h('div', { class: 'test-result', 'aria-live': 'polite' });
  append(panel,
    connectionHeader(ctx, connection, { path, protocol: 'OpenID Connect', redraw, testArea }),
    testArea,
    registerCard(connection),
    providerCard(connection, path, redraw),
    optionsCard(connection, path, redraw),
  );
}

function registerCard(connection) {
  const urls = connection.urls;
  return section('Register Portcullis at the IdP', {
    id: 'oidc-register',
    intro: 'Create a web application at the IdP (authorization code flow) with these addresses, then enter its client ID and secret below.',
  }, h('div', { class: 'grid-2' },
    copyBox(urls.callback, { label: 'Redirect URI', help: 'Sign-in redirect URI; required.' }),
    copyBox(urls.start, { label: 'Initiate login URI', help: 'Lets the IdP’s dashboard start a sign-in.' }),
    copyBox(urls.backchannel_logout, { label: 'Back-channel logout URI', help: 'With “session required” (sid) on.' }),
    copyBox(urls.post_logout_redirect, { label: 'Sign-out redirect URI', help: 'Only when “End the IdP session too” is on.' })));
}

// ---------------------------------------------------------------------------------------------
// The IdP and our client at it

function providerCard(connection, path, redraw) {
  const form = h('form', { class: 'form form-wide' },
    field({
      label: 'Issuer', name: 'issuer', type: 'url', value: connection.issuer, spellcheck: false, placeholder: 'https://acme.okta.com',
      help: 'Exactly as the IdP names itself; its discovery document is fetched when you save. Entra ID: https://login.microsoftonline.com/{tenant id}/v2.0.',
    }),
    h('div', { class: 'form-row' },
      field({ label: 'Client ID', name: 'client_id', value: connection.client_id, spellcheck: false }),
      field({
        label: 'Client secret', name: 'client_secret', type: 'password', autocomplete: 'new-password', optional: connection.client_secret_set,
        placeholder: connection.client_secret_set ? 'Set — leave empty to keep it' : '',
        help: connection.client_secret_set ? 'A secret is set; it is never shown. Type a new one to replace it.' : 'Sealed at rest, never shown again.',
      })),
    h('div', { class: 'form-row' },
      field({ label: 'Token endpoint authentication', name: 'token_auth_method', options: AUTH_METHODS, value: connection.token_auth_method }),
      field({ label: 'Scopes', name: 'scopes', value: connection.scopes.join(' '), spellcheck: false, help: 'Separated by spaces; openid is always first. Add groups if the IdP has such a scope.' })),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save')));
  onSubmit(form, async (values) => {
    const changes = {};
    if (values.issuer && values.issuer !== connection.issuer) changes.issuer = values.issuer;
    if (values.client_id && values.client_id !== connection.client_id) changes.client_id = values.client_id;
    if (values.client_secret) changes.client_secret = values.client_secret;
    if (values.token_auth_method !== connection.token_auth_method) changes.token_auth_method = values.token_auth_method;
    const scopes = values.scopes.split(/\s+/).filter(Boolean);
    if (scopes.join(' ') !== connection.scopes.join(' ')) changes.scopes = scopes;
    if (!Object.keys(changes).length) {
      toast('Nothing to save: no setting was changed', 'info');
      return;
    }
    const updated = await api('PATCH', path, changes);
    toast(changes.issuer ? 'Saved; the discovery document was fetched' : 'Saved');
    redraw(updated, 'oidc-provider');
  });
  return section('Identity provider', { id: 'oidc-provider' }, form, discovered(connection, path, redraw));
}

function discovered(connection, path, redraw) {
  const d = connection.discovered;
  if (!d) return null;
  const refresh = button('Fetch discovery again', {
    small: true,
    onClick: async () => {
      const updated = await api('POST', `${path}/discovery`);
      toast('The discovery document was fetched again');
      redraw(updated, 'oidc-provider');
    },
  });
  return h('details', { class: 'disclosure' },
    h('summary', null, 'What discovery found'),
    details([
      ['Authorization endpoint', h('code', null, d.authorization_endpoint)],
      ['Token endpoint', d.token_endpoint ? h('code', null, d.token_endpoint) : null],
      ['Userinfo endpoint', d.userinfo_endpoint ? h('code', null, d.userinfo_endpoint) : null],
      ['Keys (JWKS)', h('code', null, d.jwks_uri)],
      ['End-session endpoint', d.end_session_endpoint ? h('code', null, d.end_session_endpoint) : h('span', { class: 'muted' }, 'none: signing out at the IdP is not possible')],
      ['ID token algorithms', (d.id_token_signing_algs || []).join(', ')],
      ['Back-channel logout', d.backchannel_logout_supported ? 'Supported' : 'Not supported'],
      ['Issuer in responses (RFC 9207)', d.authorization_response_iss_parameter_supported ? 'Yes' : 'No'],
      ['Fetched', formatTime(d.fetched_at, { relative: true })],
    ]),
    h('div', { class: 'form-actions' }, refresh));
}

// ---------------------------------------------------------------------------------------------
// Options

function optionsCard(connection, path, redraw) {
  const form = h('form', { class: 'form form-wide' },
    field({ label: 'Name', name: 'name', value: connection.name, required: true }),
    h('h3', null, 'Claim mapping'),
    h('p', { class: 'small muted' }, 'Which claim fills each field. Empty: the standard claims (preferred_username or upn for the user name, groups or roles).'),
    mappingFields(connection.claim_mapping, MAPPED, MAPPING_HINTS),
    h('h3', null, 'Behaviour'),
    field({ label: 'Create unknown people at their first sign-in (just-in-time)', name: 'jit_provisioning', type: 'checkbox', checked: connection.jit_provisioning, help: 'For IdPs that do not provision over SCIM.' }),
    field({ label: 'End the IdP session too when the app signs someone out', name: 'sign_out_at_idp', type: 'checkbox', checked: connection.sign_out_at_idp, help: 'Register the sign-out redirect URI at the IdP for this.' }),
    field({ label: 'Allowed clock skew (seconds)', name: 'clock_skew_secs', type: 'number', min: 0, max: 600, value: connection.clock_skew_secs }),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save options')));
  onSubmit(form, async (values) => {
    const changes = {};
    if (values.name !== connection.name) changes.name = values.name;
    const mapping = mappingFrom(values, MAPPED);
    if (!sameMapping(mapping, connection.claim_mapping)) changes.claim_mapping = mapping;
    for (const key of ['jit_provisioning', 'sign_out_at_idp']) if (values[key] !== connection[key]) changes[key] = values[key];
    const skew = numberOrNull(values.clock_skew_secs);
    if (skew !== connection.clock_skew_secs) changes.clock_skew_secs = skew;
    if (!Object.keys(changes).length) {
      toast('Nothing to save: no option was changed', 'info');
      return;
    }
    const updated = await api('PATCH', path, changes);
    toast('Options saved');
    redraw(updated, 'oidc-options');
  });
  return section('Sign-in options', { id: 'oidc-options' }, form);
}
