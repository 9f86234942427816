// #/tenants/{id}/groups: the tenant's groups (from SCIM), and one group with its members.

import {
  api, h, seg, query, table, formatTime, details, section, copyInline, emptyState, linkButton, plural, statusBadge, append,
} from '/admin/lib.js';
import { searchForm, resultCount, pager } from '/admin/pages/tenant-users.js';

const PAGE_SIZE = 50;
/** The group view lists at most this many members. */
const MEMBERS_SHOWN = 500;

export async function renderTab(panel, ctx) {
  if (ctx.rest.length > 0) await renderGroup(panel, ctx, ctx.rest[0]);
  else await renderList(panel, ctx);
}

async function renderList(panel, ctx) {
  const q = ctx.params.get('q') || '';
  const after = ctx.params.get('after') || '';
  const page = await api('GET', `/tenants/${ctx.tenant.id}/groups${query({ q, after, limit: PAGE_SIZE })}`);
  const empty = q
    ? emptyState('No group matches', `No group name contains “${q}”.`)
    : emptyState('No groups yet',
      'Groups arrive when the customer’s IdP pushes them over SCIM (in Okta: Push Groups; in Entra ID: assign groups to the app). The access policy turns them into roles.',
      linkButton('Set up SCIM', `${ctx.base}/scim`, { kind: 'primary' }));
  append(panel,
    h('div', { class: 'panel-head' }, h('h2', { dataset: { heading: '' } }, 'Groups')),
    searchForm(ctx, q, 'groups', 'Search groups', 'Group name'),
    h('p', { class: 'muted', tabindex: '-1', dataset: { queryFocus: '' } }, resultCount(page, q, 'group')),
    table([
      { label: 'Group', cell: (g) => h('a', { class: 'row-link', href: `${ctx.base}/groups/${g.id}` }, g.display_name) },
      { label: 'Members', class: 'num', cell: (g) => String(g.member_count ?? 0) },
      { label: 'External ID', cell: (g) => (g.external_id ? h('code', null, g.external_id) : null) },
      { label: 'Updated', cell: (g) => formatTime(g.updated_at, { relative: true }) },
    ], page.items, { empty, caption: 'Groups' }),
    pager(ctx, 'groups', q, after, page.next_after),
  );
}

async function renderGroup(panel, ctx, groupId) {
  const group = await api('GET', `/tenants/${ctx.tenant.id}/groups/${seg(groupId)}`);
  const members = group.members || [];
  const count = group.member_count ?? members.length;
  append(panel,
    h('a', { class: 'back-link', href: `${ctx.base}/groups` }, '← All groups'),
    h('div', { class: 'panel-head' }, h('h2', { dataset: { heading: '' } }, group.display_name)),
    section('Group', {}, details([
      ['Name', group.display_name],
      ['Members', plural(count, 'member')],
      ['External ID', group.external_id ? h('code', null, group.external_id) : h('span', { class: 'muted' }, '—')],
      ['ID', copyInline(group.id, 'group ID')],
      ['Created', formatTime(group.created_at)],
      ['Updated', formatTime(group.updated_at)],
    ]), h('p', { class: 'small muted' }, 'Access rules can name this group by its name, its external ID, or its ID (which survives renames). ',
      h('a', { href: `${ctx.base}/access` }, 'Open the access policy'))),
    section('Members', {
      intro: count > members.length ? `Showing the first ${Math.min(members.length, MEMBERS_SHOWN)} of ${plural(count, 'member')}.` : null,
    }, table([
      { label: 'User', cell: (m) => h('a', { class: 'row-link', href: `${ctx.base}/users/${m.id}` }, m.user_name) },
      { label: 'Display name', cell: (m) => m.display_name },
      { label: 'Status', cell: (m) => (m.active === undefined ? null : statusBadge(m.active ? 'active' : 'inactive')) },
    ], members, { caption: 'Members', empty: { title: 'No members', text: 'The IdP has not assigned anyone to this group.' } })),
  );
}
