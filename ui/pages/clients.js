// #/clients and #/clients/{id}: the app's OAuth clients (Portcullis is their OpenID Provider):
// create, edit, rotate the secret (shown once), delete.

import {
  api, h, seg, pageHeader, section, field, choiceGroup, onSubmit, formDialog, secretDialog, button, table,
  formatTime, copyBox, confirmDialog, toast, emptyState, splitList, numberOrNull, statusBadge, append,
} from '/admin/lib.js';

const SCOPES = [
  { value: 'openid', label: 'openid', help: 'Always granted.' },
  { value: 'profile', label: 'profile', help: 'Name claims.' },
  { value: 'email', label: 'email', help: 'Email address claims.' },
  { value: 'offline_access', label: 'offline_access', help: 'Refresh tokens.' },
];

export async function render(view, ctx) {
  if (ctx.segments[1]) await renderClient(view, ctx, ctx.segments[1]);
  else await renderList(view, ctx);
}

async function renderList(view, ctx) {
  const clients = await api('GET', '/oauth-clients');
  const create = () => button('New client', { kind: 'primary', iconName: 'plus', onClick: () => createClient(ctx) });
  append(view,
    pageHeader('OAuth clients', {
      subtitle: 'Your apps, which sign people in through Portcullis with OpenID Connect (authorization code with PKCE).',
      actions: [create()],
    }),
    table([
      { label: 'Client', cell: (c) => [h('a', { class: 'row-link', href: `#/clients/${c.client_id}` }, c.name), h('span', { class: 'sub' }, h('code', null, c.client_id))] },
      { label: 'Type', cell: (c) => statusBadge(c.client_type === 'public' ? 'public' : 'confidential', c.client_type === 'public' ? 'Public (PKCE only)' : 'Confidential') },
      { label: 'Redirect URIs', cell: (c) => [c.redirect_uris[0], c.redirect_uris.length > 1 ? h('span', { class: 'sub' }, `and ${c.redirect_uris.length - 1} more`) : null] },
      { label: 'Created', cell: (c) => formatTime(c.created_at) },
    ], clients.items, {
      caption: 'OAuth clients',
      empty: emptyState('No OAuth clients yet', 'Create one for your app: it gets a client ID and secret to give its OpenID Connect library, with the discovery URL of this instance.', create()),
    }),
  );
}

/** The fields that create and edit share. */
function settingsFields(client = {}) {
  return [
    field({ label: 'Name', name: 'name', required: true, value: client.name, placeholder: 'Our app', help: 'Shown on sign-in pages and in the audit trail.' }),
    field({
      label: 'Redirect URIs', name: 'redirect_uris', textarea: true, rows: 3, required: true, spellcheck: false,
      value: (client.redirect_uris || []).join('\n'), placeholder: 'https://app.example.com/oidc/callback',
      help: 'One per line, matched exactly. https, or http to localhost for development.',
    }),
    field({
      label: 'Post-logout redirect URIs', name: 'post_logout_redirect_uris', textarea: true, rows: 2, optional: true, spellcheck: false,
      value: (client.post_logout_redirect_uris || []).join('\n'), placeholder: 'https://app.example.com/',
    }),
    field({
      label: 'Back-channel logout URI', name: 'backchannel_logout_uri', type: 'url', optional: true, spellcheck: false,
      value: client.backchannel_logout_uri ?? '', help: 'Receives a signed logout token whenever a session of this app ends.',
    }),
    field({
      label: 'Initiate login URI', name: 'initiate_login_uri', type: 'url', optional: true, spellcheck: false,
      value: client.initiate_login_uri ?? '', help: 'Where a tenant’s sign-in address (/t/slug) sends people to start at the app.',
    }),
  ];
}

function settingsBody(values) {
  return {
    name: values.name,
    redirect_uris: splitList(values.redirect_uris),
    post_logout_redirect_uris: splitList(values.post_logout_redirect_uris),
    backchannel_logout_uri: values.backchannel_logout_uri || null,
    initiate_login_uri: values.initiate_login_uri || null,
  };
}

async function createClient(ctx) {
  const created = await formDialog({
    title: 'New OAuth client',
    wide: true,
    fields: [
      ...settingsFields(),
      choiceGroup({
        legend: 'Client type', name: 'client_type', value: 'confidential',
        options: [
          { value: 'confidential', label: 'Confidential', help: 'A server-side app that keeps a client secret.' },
          { value: 'public', label: 'Public', help: 'A single-page or native app: no secret, PKCE only. Cannot be changed later.' },
        ],
      }),
    ],
    submitLabel: 'Create client',
    submit: (values) => api('POST', '/oauth-clients', { ...settingsBody(values), public: values.client_type === 'public' }),
  });
  if (!created?.client_id) return;
  if (created.client_secret) await showSecret(created, 'Copy the client secret');
  ctx.navigate(`#/clients/${created.client_id}`);
}

async function showSecret(client, title) {
  const discovery = await discoveryUrl();
  await secretDialog({
    title,
    intro: h('p', null, 'Give your app’s OpenID Connect library the discovery URL, the client ID and this secret.'),
    items: [
      discovery ? { label: 'Discovery URL', value: discovery, secret: false } : null,
      { label: 'Client ID', value: client.client_id, secret: false },
      { label: 'Client secret', value: client.client_secret },
    ].filter(Boolean),
  });
}

async function discoveryUrl() {
  try {
    const instance = await api('GET', '/instance');
    return `${instance.public_url.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// One client

async function renderClient(view, ctx, id) {
  const path = `/oauth-clients/${seg(id)}`;
  const [client, discovery] = await Promise.all([api('GET', path), discoveryUrl()]);
  const confidential = client.client_type === 'confidential';
  const rotate = confidential ? button('Rotate secret', {
    onClick: async () => {
      const ok = await confirmDialog([
        h('p', null, `Make a new secret for ${client.name}?`),
        h('p', null, 'The current secret stops working at once: the app fails to get tokens until it has the new one.'),
      ], { title: 'Rotate client secret', confirmLabel: 'Rotate secret' });
      if (!ok) return;
      const rotated = await api('POST', `${path}/secret`);
      await showSecret(rotated, 'Copy the new client secret');
      ctx.refresh();
    },
  }) : null;
  const remove = button('Delete', {
    kind: 'danger-outline',
    onClick: async () => {
      const ok = await confirmDialog([
        h('p', null, `Delete the client ${client.name}?`),
        h('p', null, 'The app can no longer sign anyone in, and its tokens stop working.'),
      ], { title: 'Delete OAuth client', confirmLabel: 'Delete client', typeToConfirm: client.name });
      if (!ok) return;
      await api('DELETE', path);
      toast(`${client.name} deleted`);
      ctx.navigate('#/clients');
    },
  });
  append(view,
    pageHeader(client.name, {
      crumbs: [['OAuth clients', '#/clients'], [client.name]],
      badge: statusBadge(client.client_type, confidential ? 'Confidential' : 'Public'),
      subtitle: ['Created ', formatTime(client.created_at), ' · updated ', formatTime(client.updated_at, { relative: true })],
      actions: [rotate, remove],
    }),
    section('Credentials', { intro: 'What the app’s OpenID Connect library needs.' },
      discovery ? copyBox(discovery, { label: 'Discovery URL' }) : null,
      copyBox(client.client_id, { label: 'Client ID' }),
      confidential
        ? h('p', null, 'Client secret: ', h('code', null, `${client.secret_prefix}…`), h('span', { class: 'muted' }, ' (only its start is kept to recognise it; rotate it to get a new one)'))
        : h('p', { class: 'muted' }, 'A public client has no secret: it must use PKCE.')),
    settingsCard(ctx, client, path),
  );
}

function settingsCard(ctx, client, path) {
  const form = h('form', { class: 'form' },
    settingsFields(client),
    choiceGroup({ legend: 'Allowed scopes', name: 'allowed_scopes', type: 'checkbox', options: SCOPES, value: client.allowed_scopes, inline: true }),
    h('div', { class: 'form-row' },
      field({ label: 'Access token lifetime (seconds)', name: 'access_token_ttl_secs', type: 'number', min: 60, max: 86400, value: client.access_token_ttl_secs }),
      field({ label: 'ID token lifetime (seconds)', name: 'id_token_ttl_secs', type: 'number', min: 60, max: 86400, value: client.id_token_ttl_secs }),
      field({ label: 'Refresh token lifetime (seconds)', name: 'refresh_token_ttl_secs', type: 'number', min: 0, value: client.refresh_token_ttl_secs, help: '0 turns refresh tokens off.' })),
    field({ label: 'ID token signing algorithm', name: 'id_token_signing_alg', options: ['RS256', 'ES256'], value: client.id_token_signing_alg }),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save settings')));
  onSubmit(form, async (values) => {
    await api('PATCH', path, {
      ...settingsBody(values),
      allowed_scopes: values.allowed_scopes,
      access_token_ttl_secs: numberOrNull(values.access_token_ttl_secs),
      id_token_ttl_secs: numberOrNull(values.id_token_ttl_secs),
      refresh_token_ttl_secs: numberOrNull(values.refresh_token_ttl_secs),
      id_token_signing_alg: values.id_token_signing_alg,
    });
    toast('Settings saved');
    ctx.refresh();
  });
  return section('Settings', {}, form);
}
