// #/tenants/{id}/{tab}/…: one tenant, with a tab per area. Each tab is its own module; this one
// draws the header and the tabs, and hosts the setup wizard at #/tenants/{id}/setup.

import { api, h, seg, pageHeader, statusBadge, linkButton, button, loading, replace, append } from '/admin/lib.js';

const TABS = [
  { key: 'overview', label: 'Overview', module: 'tenant-overview' },
  { key: 'users', label: 'Users', module: 'tenant-users' },
  { key: 'groups', label: 'Groups', module: 'tenant-groups' },
  { key: 'sso', label: 'Single sign-on', module: 'tenant-sso' },
  { key: 'scim', label: 'SCIM', module: 'tenant-scim' },
  { key: 'access', label: 'Access policy', module: 'tenant-access' },
  { key: 'setup-links', label: 'Setup links', module: 'tenant-setup-links' },
  { key: 'audit', label: 'Audit', module: 'audit' },
];

export async function render(view, ctx) {
  const [, reference, tabKey = 'overview', ...rest] = ctx.segments;
  const tenant = await api('GET', `/tenants/${seg(reference)}`);
  if (tabKey === 'setup') {
    await renderWizard(view, ctx, tenant);
    return;
  }
  const tab = TABS.find((t) => t.key === tabKey);
  if (!tab) throw Object.assign(new Error(`This tenant has no “${tabKey}” page.`), { notFound: true });
  const base = `#/tenants/${tenant.id}`;
  append(view, header(tenant, ctx, base), tabs(base, tab.key));
  const panel = h('div', { class: 'tab-panel' }, loading());
  append(view, panel);
  const module = await import(`/admin/pages/${tab.module}.js`);
  replace(panel);
  await module.renderTab(panel, { ...ctx, tenant, rest, base });
}

function header(tenant, ctx, base) {
  const createLink = button('Create setup link', {
    onClick: async () => {
      const { createSetupLink } = await import('/admin/pages/tenant-setup-links.js');
      const created = await createSetupLink(tenant);
      if (created && ctx.segments[2] === 'setup-links') ctx.refresh();
    },
  });
  return pageHeader(tenant.display_name, {
    crumbs: [['Tenants', '#/tenants'], [tenant.display_name]],
    badge: statusBadge(tenant.status),
    subtitle: h('span', null, 'Slug ', h('code', null, tenant.slug), ' · ID ', h('code', null, tenant.id)),
    actions: [linkButton('Run setup wizard', `${base}/setup`, { kind: 'primary' }), createLink],
  });
}

function tabs(base, current) {
  return h('nav', { class: 'tabs', 'aria-label': 'Tenant sections' },
    h('ul', null, TABS.map((t) => h('li', null,
      h('a', { href: `${base}/${t.key}`, 'aria-current': t.key === current ? 'page' : null }, t.label)))));
}

/** The setup wizard, as the operator runs it for a tenant (the customer's IT admin sees the same). */
async function renderWizard(view, ctx, tenant) {
  const base = `#/tenants/${tenant.id}`;
  append(view, h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
    h('ol', null,
      h('li', null, h('a', { href: '#/tenants' }, 'Tenants')),
      h('li', null, h('a', { href: base }, tenant.display_name)),
      h('li', null, h('span', { 'aria-current': 'page' }, 'Setup wizard')))));
  const container = h('div', { class: 'wizard-host' });
  append(view, container);
  const { renderWizard: draw } = await import('/admin/wizard.js');
  // The wizard draws and focuses as it goes: it needs to be in the document from the start.
  ctx.attach();
  await draw(container, { tenant, session: ctx.session });
}
