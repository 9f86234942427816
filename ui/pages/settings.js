// #/settings: the instance (version, public URL, effective settings), operators' admin keys
// (each shown once; the last admin key cannot be revoked), and the token signing keys.

import {
  api, h, seg, pageHeader, section, table, formatTime, statusBadge, button, field, choiceGroup, formDialog,
  secretDialog, confirmDialog, toast, notice, replace, errorMessage, details, copyInline, loading, errorState, append,
} from '/admin/lib.js';

export async function render(view, ctx) {
  append(view,
    pageHeader('Settings', { subtitle: 'This Portcullis instance, the keys operators use, and the keys that sign tokens.' }),
    lazy('Instance', 'instance', () => instanceBody()),
    keysCard(ctx),
    signingKeysCard(),
  );
}

/** A card whose body loads on its own: a failure in one part does not hide the others. */
function lazy(title, id, load, options = {}) {
  const body = h('div', null, loading());
  const run = () => load().then((content) => replace(body, content), (error) => replace(body, errorState(error, run)));
  run();
  return section(title, { id, ...options }, body);
}

async function instanceBody() {
  const instance = await api('GET', '/instance');
  return h('div', null,
    details([
      ['Version', instance.version],
      ['Public URL', copyInline(instance.public_url, 'public URL')],
      ['Database schema', String(instance.schema_version)],
    ]),
    h('details', { class: 'disclosure' },
      h('summary', null, `Effective settings (${(instance.settings || []).length})`),
      h('p', { class: 'small muted' }, 'Read at start from the configuration file and the environment (PORTCULLIS_…); change them there and restart. Secrets are masked.'),
      settingsTable(instance.settings || [])));
}

function settingsTable(settings) {
  // Older servers do not say where a value came from: the column shows only when they do.
  const sourced = settings.some((s) => s.source);
  return table([
    { label: 'Setting', cell: (s) => h('code', null, s.name) },
    { label: 'Value', cell: (s) => settingValue(s.value) },
    sourced ? { label: 'From', cell: (s) => statusBadge('neutral', sourceLabel(s.source)) } : null,
  ].filter(Boolean), settings, { caption: 'Effective settings', empty: { title: 'No settings reported', text: '' } });
}

function settingValue(value) {
  if (value === null || value === undefined || value === '') return h('span', { class: 'muted' }, 'not set');
  if (typeof value === 'object') return h('code', null, JSON.stringify(value));
  return h('code', null, String(value));
}

function sourceLabel(source) {
  return { default: 'default', file: 'config file', env: 'environment', environment: 'environment' }[source] || String(source ?? '');
}

// ---------------------------------------------------------------------------------------------
// Admin keys

function keysCard(ctx) {
  const messages = h('div', { 'aria-live': 'polite' });
  const body = h('div', null, loading());
  const reload = async () => {
    try {
      const keys = await api('GET', '/admin-keys');
      replace(body, keysTable(ctx, keys.items, reload, messages));
    } catch (error) {
      replace(body, errorState(error, reload));
    }
  };
  reload();
  const create = button('Create key', { kind: 'primary', iconName: 'plus', onClick: () => createKey(reload) });
  return section('Admin API keys', {
    id: 'admin-keys',
    actions: [create],
    intro: 'Operators sign in to this dashboard, and scripts call the admin API, with these keys. Give the app an events:read key for the events feed.',
  }, messages, body);
}

function keyStatus(key) {
  return key.revoked_at ? 'revoked' : 'active';
}

function keysTable(ctx, keys, reload, messages) {
  const mine = ctx.session?.key?.id;
  return table([
    { label: 'Name', cell: (k) => [h('span', { class: 'strong' }, k.name), k.id === mine ? h('span', { class: 'sub' }, 'this session') : null] },
    { label: 'Scope', cell: (k) => statusBadge(k.scope === 'admin' ? 'admin' : 'neutral', k.scope) },
    { label: 'Key', cell: (k) => h('code', null, k.prefix === '(supplied)' ? 'supplied at start' : `${k.prefix}…`) },
    { label: 'Status', cell: (k) => [statusBadge(keyStatus(k)), k.revoked_at ? h('span', { class: 'sub' }, formatTime(k.revoked_at, { relative: true })) : null] },
    { label: 'Created', cell: (k) => formatTime(k.created_at) },
    { label: '', class: 'actions', cell: (k) => (k.revoked_at ? null : revokeButton(ctx, k, reload, messages)) },
  ], keys, { caption: 'Admin API keys' });
}

function revokeButton(ctx, key, reload, messages) {
  const mine = ctx.session?.key?.id === key.id;
  return button('Revoke', {
    small: true,
    kind: 'danger-outline',
    onClick: async () => {
      const ok = await confirmDialog([
        h('p', null, `Revoke the key “${key.name}”? Scripts and sessions using it stop working at once.`),
        mine ? h('p', null, h('strong', null, 'You are signed in with this key: you will be signed out.')) : null,
      ], { title: 'Revoke admin key', confirmLabel: 'Revoke key' });
      if (!ok) return;
      replace(messages);
      try {
        await api('DELETE', `/admin-keys/${seg(key.id)}`);
      } catch (error) {
        // The last admin key cannot be revoked: say why, beside the list.
        if (error.status === 409) {
          append(messages, notice('error', errorMessage(error)));
          return;
        }
        throw error;
      }
      toast(`Key “${key.name}” revoked`);
      await reload();
    },
  });
}

async function createKey(reload) {
  const created = await formDialog({
    title: 'Create an admin API key',
    fields: [
      field({ label: 'Name', name: 'name', required: true, placeholder: 'Jane Doe, or deploy script', help: 'Who or what uses it: shown in the audit trail.' }),
      choiceGroup({
        legend: 'Scope', name: 'scope', value: 'admin',
        options: [
          { value: 'admin', label: 'admin', help: 'The whole admin API and this dashboard.' },
          { value: 'events:read', label: 'events:read', help: 'Only reads the events feed (GET /api/v1/events): the credential for your app.' },
          { value: 'metrics:read', label: 'metrics:read', help: 'Only reads the Prometheus metrics (GET /metrics): the credential for your Prometheus server.' },
        ],
      }),
    ],
    submitLabel: 'Create key',
    submit: (values) => api('POST', '/admin-keys', { name: values.name, scope: values.scope }),
  });
  if (!created?.key) return;
  await secretDialog({
    title: 'Copy the admin API key',
    intro: h('p', null, `The key “${created.name}” (${created.scope}). Use it as a bearer token, or to sign in here.`),
    items: [{ label: 'Admin API key', value: created.key }],
  });
  await reload();
}

// ---------------------------------------------------------------------------------------------
// Token signing keys

function signingKeysCard() {
  const body = h('div', null, loading());
  const draw = (keys) => replace(body, table([
    { label: 'Key ID', cell: (k) => h('code', null, k.kid) },
    { label: 'Algorithm', cell: (k) => k.algorithm },
    { label: 'Status', cell: (k) => statusBadge(k.status) },
    { label: 'Created', cell: (k) => formatTime(k.created_at) },
    { label: 'Signs from', cell: (k) => formatTime(k.activates_at, { relative: true }) },
    { label: 'Retired', cell: (k) => formatTime(k.retired_at, { relative: true }) },
  ], keys, { caption: 'Token signing keys' }));
  const reload = () => api('GET', '/signing-keys').then((keys) => draw(keys.items), (error) => replace(body, errorState(error, reload)));
  reload();
  const rotate = button('Rotate keys', {
    onClick: async () => {
      const choice = await rotationDialog();
      if (!choice) return;
      const keys = await api('POST', '/signing-keys/rotate', choice.immediate ? { immediate: true } : {});
      toast(choice.immediate ? 'New signing keys are in use' : 'New signing keys are published; they sign from in 6 minutes');
      draw(keys.items);
    },
  });
  return section('Token signing keys', {
    actions: [rotate],
    intro: 'Sign the ID and access tokens apps receive. Pending keys are published before they sign; retired keys stay published until their tokens expire.',
  }, body);
}

function rotationDialog() {
  return formDialog({
    title: 'Rotate the token signing keys',
    intro: h('p', null, 'New keys are published in the JWKS at once and take over after 6 minutes, longer than apps cache the key set, so no token fails to verify. The old keys stay published until their tokens expire.'),
    fields: [field({
      label: 'Hand over at once', name: 'immediate', type: 'checkbox',
      help: 'Only after a key leak: apps that cached the key set may reject new tokens until they fetch it again.',
    })],
    submitLabel: 'Rotate keys',
    submit: async (values) => ({ immediate: values.immediate }),
  });
}
