// #/tenants: every tenant (the app's customer organisations), and creating one.

import {
  api, h, query, pageHeader, button, table, statusBadge, formatTime, formDialog, field, splitList, toast,
  linkButton, emptyState, plural, append,
} from '/admin/lib.js';

const PAGE_SIZE = 50;

export async function render(view, ctx) {
  const cursor = ctx.params.get('cursor') || '';
  const page = await api('GET', `/tenants${query({ limit: PAGE_SIZE, cursor })}`);
  const create = button('New tenant', { kind: 'primary', iconName: 'plus', onClick: () => createTenant(ctx) });
  append(view,
    pageHeader('Tenants', {
      subtitle: 'The organisations that use your app. Each has its own domains, single sign-on, SCIM provisioning and access policy.',
      actions: [create],
    }),
    tenantTable(page.items, cursor, ctx),
    pager(page, cursor),
  );
}

function tenantTable(items, cursor, ctx) {
  const empty = cursor
    ? emptyState('No more tenants', 'This is past the last page.', linkButton('First page', '#/tenants'))
    : emptyState('No tenants yet',
      'Create a tenant for each customer organisation, then send its IT admin a setup link so they can connect their IdP themselves.',
      button('New tenant', { kind: 'primary', iconName: 'plus', onClick: () => createTenant(ctx) }));
  return table([
    { label: 'Tenant', cell: (t) => [h('a', { class: 'row-link', href: `#/tenants/${t.id}` }, t.display_name), h('span', { class: 'sub' }, t.slug)] },
    { label: 'Status', cell: (t) => statusBadge(t.status) },
    { label: 'Domains', cell: domainsCell },
    { label: 'Sign-in', cell: (t) => (t.require_sso ? 'SSO only' : 'SSO, password or Google') },
    { label: 'Created', cell: (t) => formatTime(t.created_at) },
  ], items, { empty, caption: 'Tenants' });
}

function domainsCell(tenant) {
  if (!tenant.domains.length) return null;
  const verified = tenant.domains.filter((d) => d.status === 'verified').length;
  return h('span', null, tenant.domains.slice(0, 3).map((d) => d.domain).join(', '),
    tenant.domains.length > 3 ? ` +${tenant.domains.length - 3}` : '',
    h('span', { class: 'sub' }, `${verified} of ${plural(tenant.domains.length, 'domain')} verified`));
}

function pager(page, cursor) {
  if (!page.next_cursor && !cursor) return null;
  return h('div', { class: 'table-footer' },
    h('span', null, cursor ? 'Later tenants' : 'First tenants', ` (${page.items.length} shown)`),
    h('div', { class: 'pager' },
      cursor ? linkButton('First page', '#/tenants', { small: true }) : null,
      page.next_cursor ? linkButton('Next page', `#/tenants${query({ cursor: page.next_cursor })}`, { small: true }) : null));
}

/** A slug from a display name: lowercase letters, digits and single hyphens, starting with a letter. */
export function slugify(name) {
  return name.toLowerCase().normalize('NFKD').replace(/[\u0300-\u036f]/g, '')
    .replace(/[^a-z0-9]+/g, '-').replace(/^[^a-z]+/, '').replace(/-+$/, '').slice(0, 63).replace(/-+$/, '');
}

async function createTenant(ctx) {
  const name = field({ label: 'Display name', name: 'display_name', required: true, placeholder: 'Acme Corporation', help: 'Shown to the organisation’s people on the sign-in pages.' });
  const slug = field({
    label: 'Slug', name: 'slug', required: true, placeholder: 'acme', pattern: '[a-z][a-z0-9]*(-[a-z0-9]+)*', spellcheck: false,
    help: '2–63 lowercase letters, digits and single hyphens, starting with a letter. It names the tenant in URLs (/t/acme) and the app’s organization parameter.',
  });
  const domains = field({
    label: 'Email domains', name: 'domains', textarea: true, rows: 3, optional: true, errorFields: ['domain'], placeholder: 'acme.com',
    help: 'One per line. Each must be verified (a DNS TXT record) before sign-ins are routed by it.',
  });
  // The slug follows the name until someone edits it by hand.
  const nameInput = name.querySelector('input');
  const slugInput = slug.querySelector('input');
  let slugEdited = false;
  slugInput.addEventListener('input', () => { slugEdited = slugInput.value !== ''; });
  nameInput.addEventListener('input', () => { if (!slugEdited) slugInput.value = slugify(nameInput.value); });
  const created = await formDialog({
    title: 'New tenant',
    fields: [name, slug, domains],
    submitLabel: 'Create tenant',
    submit: (values) => api('POST', '/tenants', {
      display_name: values.display_name, slug: values.slug, domains: splitList(values.domains),
    }),
  });
  if (created?.id) {
    toast(`Tenant ${created.display_name} created`);
    ctx.navigate(`#/tenants/${created.id}`);
  }
}
