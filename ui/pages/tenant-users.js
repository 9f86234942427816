// #/tenants/{id}/users: the tenant's people (provisioned by SCIM, created at sign-in, or local),
// and #/tenants/{id}/users/{user}: one person, their access, sessions and password.

import {
  api, h, seg, query, field, onSubmit, formDialog, secretDialog, button, linkButton, table, statusBadge,
  formatTime, details, section, copyInline, confirmDialog, toast, emptyState, plural, replace, errorState,
  loading, append,
} from '/admin/lib.js';

const PAGE_SIZE = 50;

export async function renderTab(panel, ctx) {
  if (ctx.rest.length > 0) await renderUser(panel, ctx, ctx.rest[0]);
  else await renderList(panel, ctx);
}

// ---------------------------------------------------------------------------------------------
// The list

async function renderList(panel, ctx) {
  const q = ctx.params.get('q') || '';
  const after = ctx.params.get('after') || '';
  const page = await api('GET', `/tenants/${ctx.tenant.id}/users${query({ q, after, limit: PAGE_SIZE })}`);
  const add = button('Add local user', { iconName: 'plus', onClick: () => addLocalUser(ctx) });
  append(panel,
    h('div', { class: 'panel-head' },
      h('h2', { dataset: { heading: '' } }, 'Users'),
      h('div', { class: 'page-actions' }, add)),
    searchForm(ctx, q, 'users', 'Search users', 'Name, user name or email'),
    h('p', { class: 'muted', tabindex: '-1', dataset: { queryFocus: '' } }, resultCount(page, q, 'user')),
    usersTable(ctx, page.items, q),
    pager(ctx, 'users', q, after, page.next_after),
  );
}

/** A search box that puts its query in the URL, so results can be bookmarked and go back. */
export function searchForm(ctx, q, tab, label, placeholder) {
  const form = h('form', { class: 'search-form', role: 'search' },
    field({ label, name: 'q', type: 'search', value: q, placeholder, spellcheck: false }),
    h('button', { type: 'submit', class: 'btn btn-secondary' }, 'Search'),
    q ? linkButton('Clear', `${ctx.base}/${tab}`, { kind: 'ghost' }) : null);
  onSubmit(form, (values) => ctx.navigate(`${ctx.base}/${tab}${query({ q: values.q })}`));
  return form;
}

/** "2 users match “ada” (of 40 in this tenant)": `total` counts the whole tenant, not the matches. */
export function resultCount(page, q, noun) {
  const total = page.total ?? null;
  if (!q) return total === null ? '' : `${plural(total, noun)} in this tenant`;
  const shown = page.items.length;
  const matches = `${plural(shown, noun)}${page.next_after ? ' on this page' : ''} ${shown === 1 ? 'matches' : 'match'} “${q}”`;
  return total === null ? matches : `${matches} (of ${total.toLocaleString()} in this tenant)`;
}

export function pager(ctx, tab, q, after, nextAfter) {
  if (!after && !nextAfter) return null;
  return h('div', { class: 'table-footer' }, h('span'),
    h('div', { class: 'pager' },
      after ? linkButton('First page', `${ctx.base}/${tab}${query({ q })}`, { small: true }) : null,
      nextAfter ? linkButton('Next page', `${ctx.base}/${tab}${query({ q, after: nextAfter })}`, { small: true }) : null));
}

function usersTable(ctx, items, q) {
  const empty = q
    ? emptyState('No user matches', `Nobody’s name, user name or email contains “${q}”.`)
    : emptyState('No users yet',
      'People arrive when the customer’s IdP provisions them over SCIM, or at their first SSO sign-in with just-in-time provisioning. You can also add a local user who signs in with a password.',
      [linkButton('Set up SCIM', `${ctx.base}/scim`, { kind: 'primary' }),
        button('Add local user', { iconName: 'plus', onClick: () => addLocalUser(ctx) })]);
  return table([
    { label: 'User', cell: (u) => [h('a', { class: 'row-link', href: `${ctx.base}/users/${u.id}` }, u.user_name), u.display_name ? h('span', { class: 'sub' }, u.display_name) : null] },
    { label: 'Email', cell: (u) => u.email },
    { label: 'Status', cell: (u) => statusBadge(u.active ? 'active' : 'inactive') },
    { label: 'External ID', cell: (u) => (u.external_id ? h('code', null, u.external_id) : null) },
    { label: 'Created', cell: (u) => formatTime(u.created_at) },
  ], items, { empty, caption: 'Users' });
}

async function addLocalUser(ctx) {
  const created = await formDialog({
    title: 'Add a local user',
    intro: 'A local user signs in with a password, for organisations without an IdP. They receive an invitation link to choose their password.',
    fields: [
      field({ label: 'Email', name: 'email', type: 'email', required: true, autocomplete: 'off', spellcheck: false }),
      field({ label: 'Display name', name: 'display_name', optional: true }),
    ],
    submitLabel: 'Add user',
    submit: (values) => api('POST', `/tenants/${ctx.tenant.id}/users`, {
      email: values.email, ...(values.display_name ? { display_name: values.display_name } : {}),
    }),
  });
  if (!created?.id) return;
  if (created.emailed) toast(`Invitation emailed to ${created.email}`);
  else await showPasswordLink(created.password_link, created.password_link_expires_at, created.email, 'invitation');
  ctx.navigate(`${ctx.base}/users/${created.id}`);
}

async function showPasswordLink(link, expiresAt, email, kind) {
  await secretDialog({
    title: kind === 'invitation' ? 'Send the invitation link' : 'Send the password link',
    intro: [
      h('p', null, `No mail server is configured, so send this link to ${email} yourself. It lets them choose a password, works once, and expires `, formatTime(expiresAt), '.'),
    ],
    items: [{ label: kind === 'invitation' ? 'Invitation link' : 'Password link', value: link }],
  });
}

// ---------------------------------------------------------------------------------------------
// One user

async function renderUser(panel, ctx, userId) {
  const path = `/tenants/${ctx.tenant.id}/users/${seg(userId)}`;
  const user = await api('GET', path);
  append(panel,
    h('a', { class: 'back-link', href: `${ctx.base}/users` }, '← All users'),
    h('div', { class: 'panel-head' },
      h('h2', { dataset: { heading: '' } }, user.display_name || user.user_name, ' ', statusBadge(user.active ? 'active' : 'inactive'))),
    h('div', { class: 'grid-2' }, profileCard(user), h('div', null, groupsCard(ctx, user), passwordCard(ctx, user, path))),
    lazyCard('Access', 'Roles, tier and programs, and the rules that gave them.', () => accessBody(ctx, path)),
    sessionsCard(ctx, user, path),
  );
}

function profileCard(user) {
  const others = (user.emails || []).filter((e) => e !== user.email);
  return section('Profile', {}, details([
    ['User name', user.user_name],
    ['Display name', user.display_name || h('span', { class: 'muted' }, '—')],
    ['Sign-in email', user.email || h('span', { class: 'muted' }, 'none')],
    others.length ? ['Other emails', others.join(', ')] : null,
    ['Status', user.active ? 'Active' : 'Deactivated: cannot sign in'],
    ['External ID', user.external_id ? h('code', null, user.external_id) : h('span', { class: 'muted' }, '—')],
    ['ID', copyInline(user.id, 'user ID')],
    ['Created', formatTime(user.created_at)],
    ['Updated', formatTime(user.updated_at)],
  ]));
}

function groupsCard(ctx, user) {
  const groups = user.groups || [];
  return section('Groups', {},
    groups.length
      ? h('ul', { class: 'chips' }, groups.map((g) => h('li', null, h('a', { class: 'chip', href: `${ctx.base}/groups/${g.id}` }, g.display_name))))
      : h('p', { class: 'muted' }, 'Not a member of any group.'));
}

function passwordCard(ctx, user, path) {
  const link = button('Send a password link', {
    onClick: async () => {
      const answer = await api('POST', `${path}/password-link`);
      if (answer.emailed) toast(`A password link was emailed to ${user.email}`);
      else await showPasswordLink(answer.password_link, answer.expires_at, user.email, 'reset');
    },
  });
  const remove = button('Remove password', {
    kind: 'danger-outline',
    onClick: async () => {
      const ok = await confirmDialog(h('p', null, `Remove ${user.user_name}’s password? They can no longer sign in with it, and their sessions end now.`),
        { title: 'Remove password', confirmLabel: 'Remove password' });
      if (!ok) return;
      await api('DELETE', `${path}/password`);
      toast('Password removed and sessions ended');
    },
  });
  return section('Password', {
    intro: 'For people who sign in with a password. A password link lets them choose a new one; it is emailed when a mail server is configured.',
  }, h('div', { class: 'page-actions' }, link, remove));
}

/** A card whose body loads after the page is shown (a slow or failed part does not hold the page). */
function lazyCard(title, intro, load) {
  const body = h('div', null, loading());
  load().then((content) => replace(body, content), (error) => replace(body, errorState(error)));
  return section(title, { intro }, body);
}

async function accessBody(ctx, path) {
  const access = await api('GET', `${path}/access`);
  const grantedBy = access.granted_by || {};
  const chips = (names, by) => (names && names.length
    ? h('ul', { class: 'chips' }, names.map((name) => h('li', { class: 'chip' }, name, h('span', { class: 'chip-by' }, ` · ${rulesText(by?.[name])}`))))
    : h('span', { class: 'muted' }, 'none'));
  const claims = access.sign_in_claims;
  return h('div', null,
    details([
      ['Roles', chips(access.roles, grantedBy.roles)],
      ['Tier', access.tier ? h('span', { class: 'chip' }, access.tier, h('span', { class: 'chip-by' }, ` · ${rulesText([grantedBy.tier].filter(Boolean))}`)) : h('span', { class: 'muted' }, 'none')],
      ['Programs', chips(access.programs, grantedBy.programs)],
      ['From groups', access.groups?.length ? access.groups.map((g) => g.display_name).join(', ') : h('span', { class: 'muted' }, 'none')],
      claims && (claims.groups?.length || Object.keys(claims.attributes || {}).length)
        ? ['Sign-in claims', claimsText(claims)] : null,
      ['Policy version', access.policy_version ?? h('span', { class: 'muted' }, 'not evaluated yet')],
      ['Evaluated', formatTime(access.updated_at)],
    ]),
    h('p', { class: 'small muted' }, h('a', { href: `${ctx.base}/access` }, 'Edit the access policy')));
}

function rulesText(rules) {
  if (!rules || rules.length === 0) return 'rule unknown';
  return rules.map((r) => (r === 'default' ? 'the default' : `rule ${r}`)).join(', ');
}

function claimsText(claims) {
  const parts = [];
  if (claims.groups?.length) parts.push(`groups: ${claims.groups.join(', ')}`);
  for (const [name, values] of Object.entries(claims.attributes || {})) parts.push(`${name}: ${values.join(', ')}`);
  return parts.join(' · ');
}

// ---------------------------------------------------------------------------------------------
// Sessions

function sessionsCard(ctx, user, path) {
  const body = h('div', null, loading());
  const reload = async () => {
    try {
      const sessions = await api('GET', `${path}/sessions`);
      replace(body, sessionsTable(ctx, sessions.items, reload));
    } catch (error) {
      replace(body, errorState(error, reload));
    }
  };
  reload();
  const endAll = button('Sign out everywhere', {
    kind: 'danger-outline',
    onClick: async () => {
      const ok = await confirmDialog(h('p', null, `End every session of ${user.user_name}? Their apps are told at once (back-channel logout) and they must sign in again.`),
        { title: 'Sign out everywhere', confirmLabel: 'End all sessions' });
      if (!ok) return;
      const answer = await api('DELETE', `${path}/sessions`);
      toast(`${plural(answer?.ended ?? 0, 'session')} ended`);
      await reload();
    },
  });
  return section('Sessions', { actions: [endAll], intro: 'Sign-ins to Portcullis; each can hold tokens of several apps.' }, body);
}

function sessionsTable(ctx, sessions, reload) {
  return table([
    { label: 'Started', cell: (s) => formatTime(s.created_at) },
    { label: 'Last active', cell: (s) => formatTime(s.last_active_at, { relative: true }) },
    { label: 'Signed in with', cell: (s) => [s.idp, s.amr?.length ? h('span', { class: 'sub' }, s.amr.join(', ')) : null] },
    { label: 'From', cell: (s) => [s.ip || '—', s.user_agent ? h('span', { class: 'sub', title: s.user_agent }, shortAgent(s.user_agent)) : null] },
    { label: 'Apps', class: 'num', cell: (s) => String(s.clients?.length ?? 0) },
    { label: 'Status', cell: sessionStatus },
    { label: '', class: 'actions', cell: (s) => (s.live ? endOne(ctx, s, reload) : null) },
  ], sessions, {
    caption: 'Sessions',
    empty: { title: 'No sessions', text: 'This person has not signed in, or their sessions have ended and been cleaned up.' },
  });
}

function sessionStatus(session) {
  if (session.live) return [statusBadge('live'), h('span', { class: 'sub' }, 'until ', formatTime(session.expires_at))];
  if (session.revoked_at) return [statusBadge('ended'), h('span', { class: 'sub' }, session.revoked_reason || '', ' ', formatTime(session.revoked_at, { relative: true }))];
  return statusBadge('expired');
}

function endOne(ctx, session, reload) {
  return button('End session', {
    small: true,
    kind: 'danger-outline',
    onClick: async () => {
      const ok = await confirmDialog(h('p', null, 'End this session? The apps signed in through it are told at once.'), { title: 'End session', confirmLabel: 'End session' });
      if (!ok) return;
      await api('DELETE', `/tenants/${ctx.tenant.id}/sessions/${seg(session.id)}`);
      toast('Session ended');
      await reload();
    },
  });
}

/** "Firefox on Windows": enough to recognise a device without the whole user agent. */
function shortAgent(agent) {
  const browser = /Edg\//.test(agent) ? 'Edge' : /Firefox\//.test(agent) ? 'Firefox' : /Chrome\//.test(agent) ? 'Chrome' : /Safari\//.test(agent) ? 'Safari' : null;
  const os = /Windows/.test(agent) ? 'Windows' : /Mac OS X/.test(agent) ? 'macOS' : /Android/.test(agent) ? 'Android' : /iPhone|iPad/.test(agent) ? 'iOS' : /Linux/.test(agent) ? 'Linux' : null;
  if (browser && os) return `${browser} on ${os}`;
  return agent.length > 40 ? `${agent.slice(0, 40)}…` : agent;
}
