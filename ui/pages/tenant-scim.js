// #/tenants/{id}/scim: where the customer's IdP provisions users and groups, and the bearer
// tokens it authenticates with (each shown once).

import {
  api, h, seg, section, copyBox, table, statusBadge, formatTime, button, field, formDialog, secretDialog,
  confirmDialog, toast, emptyState, append,
} from '/admin/lib.js';

export async function renderTab(panel, ctx) {
  const [tokens, baseUrl] = await Promise.all([
    api('GET', `/tenants/${ctx.tenant.id}/scim-tokens`),
    scimBaseUrl(ctx.tenant),
  ]);
  const create = () => createToken(ctx, baseUrl);
  append(panel,
    h('div', { class: 'panel-head' }, h('h2', { dataset: { heading: '' } }, 'SCIM provisioning')),
    section('Connection details', { intro: 'Give these to the customer’s IdP administrator: the IdP then creates, updates and deactivates users and groups here as they change.' },
      copyBox(baseUrl, { label: 'SCIM base URL' }),
      h('div', { class: 'grid-2' }, idpSteps('Okta', [
        'Applications → your app → Provisioning → Integration → Configure API integration.',
        'SCIM connector base URL: the base URL above; unique identifier field: userName.',
        'Authentication mode: HTTP Header, with a token created below.',
        'Enable Push New Users, Push Profile Updates and Push Groups.',
      ]), idpSteps('Microsoft Entra ID', [
        'Enterprise applications → your app → Provisioning → Admin Credentials.',
        'Tenant URL: the base URL above; Secret Token: a token created below.',
        'Test Connection, then assign users and groups and start provisioning.',
      ]))),
    section('Tokens', {
      actions: [button('Create token', { kind: 'primary', iconName: 'plus', onClick: create })],
      intro: 'Each IdP authenticates with its own token. Revoke a token when an integration is removed; give it an expiry to force a rotation.',
    }, tokenTable(ctx, tokens.items, create)),
  );
}

/** `{public_url}/scim/v2/{tenant id}`, from the instance's public URL. */
async function scimBaseUrl(tenant) {
  try {
    const instance = await api('GET', '/instance');
    return `${instance.public_url.replace(/\/+$/, '')}/scim/v2/${tenant.id}`;
  } catch {
    return tenant.urls.scim_base_url;
  }
}

function idpSteps(name, steps) {
  return h('div', null, h('h3', null, `In ${name}`), h('ol', { class: 'small' }, steps.map((s) => h('li', null, s))));
}

function tokenStatus(token) {
  if (token.revoked_at) return 'revoked';
  if (token.expires_at && new Date(token.expires_at) <= new Date()) return 'expired';
  return 'active';
}

function tokenTable(ctx, items, create) {
  return table([
    { label: 'Name', cell: (t) => [h('span', { class: 'strong' }, t.name), h('span', { class: 'sub' }, h('code', null, `${t.prefix}…`))] },
    { label: 'Status', cell: (t) => statusBadge(tokenStatus(t)) },
    { label: 'Created', cell: (t) => formatTime(t.created_at) },
    { label: 'Expires', cell: (t) => (t.expires_at ? formatTime(t.expires_at, { relative: true }) : 'Never') },
    { label: 'Last used', cell: (t) => (t.last_used_at ? formatTime(t.last_used_at, { relative: true }) : h('span', { class: 'muted' }, 'Never')) },
    { label: '', class: 'actions', cell: (t) => (tokenStatus(t) === 'active' ? revokeButton(ctx, t) : null) },
  ], items, {
    caption: 'SCIM tokens',
    empty: emptyState('No SCIM tokens yet',
      'Create one for Okta or Entra ID to provision users: the IdP then keeps the tenant’s people and groups in sync.',
      button('Create token', { kind: 'primary', iconName: 'plus', onClick: create })),
  });
}

function revokeButton(ctx, token) {
  return button('Revoke', {
    small: true,
    kind: 'danger-outline',
    onClick: async () => {
      const ok = await confirmDialog(h('p', null, `Revoke the token “${token.name}”? The IdP using it can no longer provision until it is given a new token.`),
        { title: 'Revoke SCIM token', confirmLabel: 'Revoke token' });
      if (!ok) return;
      await api('DELETE', `/tenants/${ctx.tenant.id}/scim-tokens/${seg(token.id)}`);
      toast(`Token “${token.name}” revoked`);
      ctx.refresh();
    },
  });
}

const EXPIRIES = [
  { value: '', label: 'Never' },
  { value: '90', label: 'In 90 days' },
  { value: '180', label: 'In 180 days' },
  { value: '365', label: 'In 1 year' },
  { value: '730', label: 'In 2 years' },
  { value: 'date', label: 'On a date…' },
];

/** The RFC 3339 expiry the form asks for, or null for none. */
export function expiryFrom(choice, date) {
  if (!choice) return null;
  if (choice === 'date') return date ? new Date(`${date}T23:59:59`).toISOString() : null;
  return new Date(Date.now() + Number(choice) * 86400000).toISOString();
}

/** An expiry select with a date input shown for "On a date…". */
export function expiryFields() {
  const choice = field({ label: 'Expires', name: 'expires', options: EXPIRIES, value: '', errorFields: ['expires_at'] });
  const date = field({ label: 'Expiry date', name: 'expires_date', type: 'date', min: new Date().toISOString().slice(0, 10) });
  date.hidden = true;
  choice.querySelector('select').addEventListener('change', (event) => {
    date.hidden = event.target.value !== 'date';
    date.querySelector('input').required = !date.hidden;
  });
  return [choice, date];
}

async function createToken(ctx, baseUrl) {
  const created = await formDialog({
    title: 'Create a SCIM token',
    fields: [
      field({ label: 'Name', name: 'name', required: true, placeholder: 'Okta provisioning', help: 'Which IdP or integration uses it.' }),
      ...expiryFields(),
    ],
    submitLabel: 'Create token',
    submit: (values) => {
      const expiresAt = expiryFrom(values.expires, values.expires_date);
      return api('POST', `/tenants/${ctx.tenant.id}/scim-tokens`, { name: values.name, ...(expiresAt ? { expires_at: expiresAt } : {}) });
    },
  });
  if (!created?.token) return;
  await secretDialog({
    title: 'Copy the SCIM token',
    intro: h('p', null, 'Enter the base URL and this token in the IdP’s provisioning settings.'),
    items: [
      { label: 'SCIM base URL', value: baseUrl, secret: false },
      { label: 'SCIM token', value: created.token },
    ],
  });
  ctx.refresh();
}
