// #/tenants/{id}/setup-links: links that open the setup wizard of this tenant for the customer's
// IT admin, without an account. Each is shown once, expires, and can be revoked.

import {
  api, h, seg, table, statusBadge, formatTime, button, field, formDialog, secretDialog, confirmDialog, toast,
  emptyState, plural, append,
} from '/admin/lib.js';

export async function renderTab(panel, ctx) {
  const links = await api('GET', `/tenants/${ctx.tenant.id}/setup-links`);
  const create = () => createSetupLink(ctx.tenant).then((made) => { if (made) ctx.refresh(); });
  append(panel,
    h('div', { class: 'panel-head' },
      h('h2', { dataset: { heading: '' } }, 'Setup links'),
      h('div', { class: 'page-actions' }, button('Create setup link', { kind: 'primary', iconName: 'plus', onClick: create }))),
    h('p', { class: 'muted' }, 'A setup link lets the customer’s IT admin connect their IdP, verify domains, create a SCIM token and map groups to roles for this tenant only, without an account here. Their changes are recorded in the audit trail under the link.'),
    linksTable(ctx, links.items, create),
  );
}

function linksTable(ctx, items, create) {
  return table([
    { label: 'Note', cell: (l) => l.note || h('span', { class: 'muted' }, 'No note') },
    { label: 'Status', cell: (l) => statusBadge(l.status) },
    { label: 'Created', cell: (l) => formatTime(l.created_at) },
    { label: 'Expires', cell: (l) => (l.status === 'revoked' ? ['Revoked ', formatTime(l.revoked_at, { relative: true })] : formatTime(l.expires_at, { relative: true })) },
    { label: 'Opened', cell: (l) => (l.opened_count ? [plural(l.opened_count, 'time'), h('span', { class: 'sub' }, 'last ', formatTime(l.last_opened_at, { relative: true }))] : h('span', { class: 'muted' }, 'Not yet')) },
    { label: '', class: 'actions', cell: (l) => (l.status === 'active' ? revokeButton(ctx, l) : null) },
  ], items, {
    caption: 'Setup links',
    empty: emptyState('No setup links yet',
      'Create one and send it to the customer’s IT admin: it opens the setup wizard for this tenant only, so they can connect their IdP themselves.',
      button('Create setup link', { kind: 'primary', iconName: 'plus', onClick: create })),
  });
}

function revokeButton(ctx, link) {
  return button('Revoke', {
    small: true,
    kind: 'danger-outline',
    onClick: async () => {
      const ok = await confirmDialog(h('p', null, `Revoke ${link.note ? `the link “${link.note}”` : 'this setup link'}? It stops working at once, and anyone using it is signed out. What they configured stays.`),
        { title: 'Revoke setup link', confirmLabel: 'Revoke link' });
      if (!ok) return;
      await api('DELETE', `/tenants/${ctx.tenant.id}/setup-links/${seg(link.id)}`);
      toast('Setup link revoked');
      ctx.refresh();
    },
  });
}

const LIFETIMES = [
  { value: '24', label: '1 day' },
  { value: '72', label: '3 days (default)' },
  { value: '168', label: '1 week' },
  { value: '336', label: '2 weeks' },
  { value: '720', label: '30 days (longest)' },
];

/** Creates a setup link of `tenant` and shows it once; answers the link, or undefined if cancelled. */
export async function createSetupLink(tenant) {
  const created = await formDialog({
    title: `Create a setup link for ${tenant.display_name}`,
    intro: 'Anyone with the link can configure this tenant’s single sign-on, domains, SCIM and access policy until it expires or is revoked. Send it only to the customer’s IT admin.',
    fields: [
      field({ label: 'Note', name: 'note', optional: true, placeholder: 'For Jane Doe, IT at Acme', help: 'Who it is for: shown in the list and the audit trail.' }),
      field({ label: 'Expires after', name: 'expires_in_hours', options: LIFETIMES, value: '72' }),
    ],
    submitLabel: 'Create link',
    submit: (values) => api('POST', `/tenants/${tenant.id}/setup-links`, {
      ...(values.note ? { note: values.note } : {}), expires_in_hours: Number(values.expires_in_hours),
    }),
  });
  if (!created?.url) return undefined;
  await secretDialog({
    title: 'Send this setup link',
    intro: h('p', null, 'Send this to the customer’s IT admin; it opens the setup wizard for this tenant only. It expires ',
      formatTime(created.expires_at), '. Use a channel you trust: the link is the only credential.'),
    items: [{ label: 'Setup link', value: created.url }],
  });
  toast('Setup link created');
  return created;
}
