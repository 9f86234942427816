// #/tenants/{id}/overview: how far the tenant's setup is, its settings, domains, status, and
// deleting it.

import {
  api, h, seg, section, field, onSubmit, splitList, numberOrNull, toast, button, linkButton, statusBadge,
  formatTime, table, copyBox, copyButton, confirmDialog, notice, replace, errorMessage, plural, errorState,
  loading, append,
} from '/admin/lib.js';

export async function renderTab(panel, ctx) {
  const { tenant } = ctx;
  append(panel,
    h('h2', { class: 'visually-hidden', dataset: { heading: '' } }, 'Overview'),
    setupCard(ctx),
    h('div', { class: 'grid-2' }, settingsCard(ctx), h('div', null, urlsCard(tenant), statusCard(ctx))),
    domainsCard(ctx),
    deleteCard(ctx),
  );
}

// ---------------------------------------------------------------------------------------------
// Setup progress

function setupCard(ctx) {
  const body = h('div', null, loading('Checking the setup…'));
  const card = h('section', { class: 'callout', 'aria-labelledby': 'setup-title' },
    h('div', { class: 'stack' },
      h('h2', { id: 'setup-title' }, 'Setup'),
      h('p', null, 'Run the setup wizard yourself, or send the customer’s IT admin a setup link: it opens the same wizard for this tenant only.'),
      body),
    h('div', { class: 'page-actions' },
      linkButton('Run setup wizard', `${ctx.base}/setup`, { kind: 'primary' }),
      linkButton('Setup links', `${ctx.base}/setup-links`)));
  loadProgress(ctx).then((steps) => replace(body, progressList(steps)),
    (error) => replace(body, errorState(error)));
  return card;
}

async function loadProgress({ tenant, base }) {
  const t = `/tenants/${tenant.id}`;
  const [saml, oidc, tokens, policy] = await Promise.all([
    api('GET', `${t}/saml-connections`), api('GET', `${t}/oidc-connections`),
    api('GET', `${t}/scim-tokens`), api('GET', `${t}/access-policy`),
  ]);
  const connections = [...saml.items, ...oidc.items];
  const verified = tenant.domains.filter((d) => d.status === 'verified');
  const liveTokens = tokens.items.filter((tk) => !tk.revoked_at && (!tk.expires_at || new Date(tk.expires_at) > new Date()));
  const used = liveTokens.some((tk) => tk.last_used_at);
  return [
    step('Verify a domain', tenant.domains.length ? `${verified.length} of ${plural(tenant.domains.length, 'domain')} verified (below)` : 'No domain yet (below)', verified.length > 0, null),
    step('Connect the IdP', connections.length
      ? `${connections.filter((c) => c.enabled).length} of ${plural(connections.length, 'connection')} enabled`
      : 'No SSO connection yet', connections.some((c) => c.enabled), `${base}/sso`),
    step('Provision users (SCIM)', liveTokens.length ? (used ? 'The IdP is provisioning' : 'Token created, not used yet') : 'No SCIM token yet', used, `${base}/scim`),
    step('Map groups to roles', policy.version > 0 ? `Access policy version ${policy.version}` : 'No access policy yet', policy.version > 0, `${base}/access`),
  ];
}

function step(title, text, done, href) {
  return { title, text, done, href };
}

function progressList(steps) {
  return h('ol', { class: 'steps' }, steps.map((s) => h('li', { class: s.done ? 'done' : 'current' },
    h('strong', null, s.href ? h('a', { href: s.href }, s.title) : s.title), s.text,
    h('span', { class: 'visually-hidden' }, s.done ? ' (done)' : ' (to do)'))));
}

// ---------------------------------------------------------------------------------------------
// Settings

function settingsCard(ctx) {
  const { tenant } = ctx;
  const form = h('form', { class: 'form' },
    field({ label: 'Display name', name: 'display_name', value: tenant.display_name, required: true }),
    field({
      label: 'Slug', name: 'slug', value: tenant.slug, required: true, spellcheck: false,
      help: 'Changing it changes the tenant’s sign-in address (/t/slug) and the organization parameter apps send.',
    }),
    h('div', { class: 'form-row' },
      field({ label: 'Seat limit', name: 'seat_limit', type: 'number', min: 0, value: tenant.seat_limit ?? '', optional: true, help: 'Active users allowed; empty for no limit.' }),
      field({ label: 'Keep deleted users (days)', name: 'deleted_user_retention_days', type: 'number', min: 0, max: 3650, value: tenant.deleted_user_retention_days ?? '', optional: true, help: 'Empty: purged at once.' })),
    h('div', { class: 'form-row' },
      field({ label: 'Session idle limit (minutes)', name: 'idle_minutes', type: 'number', min: 5, max: 525600, value: tenant.session_policy.idle_minutes, errorFields: ['session_policy'] }),
      field({ label: 'Session length limit (hours)', name: 'max_hours', type: 'number', min: 1, max: 8760, value: tenant.session_policy.max_hours })),
    field({
      label: 'Require single sign-on', name: 'require_sso', type: 'checkbox', checked: tenant.require_sso,
      help: 'People of this tenant can only sign in through its IdP: no password, no Google.',
    }),
    field({
      label: 'Google Workspace domains', name: 'google_hosted_domains', textarea: true, rows: 2, optional: true,
      value: tenant.google_hosted_domains.join('\n'),
      help: 'One per line. When set, only Google accounts of these Workspace domains may sign in with Google, and they may be created at their first sign-in.',
    }),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save settings')));
  onSubmit(form, async (values) => {
    const changes = settingsChanges(tenant, values);
    if (Object.keys(changes).length === 0) {
      toast('Nothing to save: no setting was changed', 'info');
      return;
    }
    await api('PATCH', `/tenants/${tenant.id}`, changes);
    toast('Settings saved');
    ctx.refresh();
  });
  return section('Settings', {}, form);
}

/** Only what changed is sent: the audit trail then shows exactly what the operator changed. */
function settingsChanges(tenant, values) {
  const changes = {};
  if (values.display_name !== tenant.display_name) changes.display_name = values.display_name;
  if (values.slug !== tenant.slug) changes.slug = values.slug;
  const seats = numberOrNull(values.seat_limit);
  if (seats !== (tenant.seat_limit ?? null)) changes.seat_limit = seats;
  const retention = numberOrNull(values.deleted_user_retention_days);
  if (retention !== (tenant.deleted_user_retention_days ?? null)) changes.deleted_user_retention_days = retention;
  const idle = numberOrNull(values.idle_minutes);
  const max = numberOrNull(values.max_hours);
  if (idle !== tenant.session_policy.idle_minutes || max !== tenant.session_policy.max_hours) {
    changes.session_policy = { idle_minutes: idle, max_hours: max };
  }
  if (values.require_sso !== tenant.require_sso) changes.require_sso = values.require_sso;
  const hosted = splitList(values.google_hosted_domains);
  if (hosted.join('\n') !== tenant.google_hosted_domains.join('\n')) changes.google_hosted_domains = hosted;
  return changes;
}

function urlsCard(tenant) {
  return section('Addresses', { intro: 'What the customer’s IdP administrator and your app need.' },
    copyBox(tenant.urls.login_url, { label: 'Sign-in address', help: 'Sends people straight to this tenant’s way of signing in.' }),
    copyBox(tenant.urls.scim_base_url, { label: 'SCIM base URL', help: 'The IdP provisions users and groups here, with a SCIM token.' }));
}

// ---------------------------------------------------------------------------------------------
// Status

function statusCard(ctx) {
  const { tenant } = ctx;
  const active = tenant.status === 'active';
  const toggle = button(active ? 'Suspend tenant' : 'Activate tenant', {
    kind: active ? 'danger-outline' : 'primary',
    onClick: async () => {
      const ok = await confirmDialog(active
        ? [h('p', null, `Suspend ${tenant.display_name}?`),
          h('p', null, 'Every session of its people ends at once, nobody can sign in, and SCIM provisioning is refused until the tenant is activated again.')]
        : h('p', null, `Activate ${tenant.display_name}? Its people can sign in again and its IdP can provision again.`),
      { title: active ? 'Suspend tenant' : 'Activate tenant', confirmLabel: active ? 'Suspend and end sessions' : 'Activate', danger: active });
      if (!ok) return;
      await api('PATCH', `/tenants/${tenant.id}`, { status: active ? 'suspended' : 'active' });
      toast(active ? `${tenant.display_name} is suspended` : `${tenant.display_name} is active`);
      ctx.refresh();
    },
  });
  return section('Status', {},
    h('p', null, statusBadge(tenant.status), ' ', active
      ? 'People can sign in and the IdP can provision.'
      : 'Suspended: nobody can sign in and SCIM provisioning is refused.'),
    h('p', { class: 'small muted' }, 'Created ', formatTime(tenant.created_at), ' · updated ', formatTime(tenant.updated_at, { relative: true })),
    toggle);
}

// ---------------------------------------------------------------------------------------------
// Domains

function domainsCard(ctx) {
  const { tenant } = ctx;
  const messages = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  const draw = (domains) => replace(list, domainTable(ctx, domains, messages, reload));
  const reload = async () => draw((await api('GET', `/tenants/${tenant.id}/domains`)).items);
  draw(tenant.domains);
  const form = h('form', { class: 'search-form' },
    field({ label: 'Add a domain', name: 'domain', placeholder: 'acme.com', spellcheck: false, required: true }),
    h('button', { type: 'submit', class: 'btn btn-secondary' }, 'Add domain'));
  onSubmit(form, async (values, f) => {
    const added = await api('POST', `/tenants/${tenant.id}/domains`, { domain: values.domain });
    f.reset();
    toast(`${added.domain} added: publish its TXT record, then verify it`);
    await reload();
  });
  return section('Email domains', {
    id: 'domains',
    intro: 'Sign-ins with an address at a verified domain go to this tenant’s IdP. To verify a domain, the customer publishes the TXT record shown in its DNS.',
  }, messages, list, h('div', { class: 'add-domain' }, form));
}

function domainTable(ctx, domains, messages, reload) {
  return table([
    { label: 'Domain', cell: (d) => h('strong', null, d.domain) },
    { label: 'Status', cell: (d) => statusBadge(d.status) },
    { label: 'Proof', cell: (d) => (d.status === 'verified' ? verifiedText(d) : txtRecord(d)) },
    { label: '', class: 'actions', cell: (d) => domainActions(ctx, d, messages, reload) },
  ], domains, {
    caption: 'Email domains',
    empty: { title: 'No domains yet', text: 'Add the organisation’s email domains (acme.com) so its people are sent to its IdP when they sign in.' },
  });
}

function verifiedText(domain) {
  const how = domain.verification_method === 'manual' ? 'by hand' : 'through DNS';
  return h('span', null, 'Verified ', how, ' ', formatTime(domain.verified_at, { relative: true }),
    domain.verified_by ? h('span', { class: 'sub' }, `by ${domain.verified_by}`) : null);
}

function txtRecord(domain) {
  const v = domain.verification;
  return h('div', { class: 'stack small' },
    h('div', null, h('span', { class: 'muted' }, `${v.record_type} name `), h('code', { class: 'break' }, v.record_name), ' ', copyButton(v.record_name, { what: 'record name' })),
    h('div', null, h('span', { class: 'muted' }, 'Value '), h('code', { class: 'break' }, v.record_value), ' ', copyButton(v.record_value, { what: 'record value' })));
}

function domainActions(ctx, domain, messages, reload) {
  const path = `/tenants/${ctx.tenant.id}/domains/${seg(domain.domain)}`;
  const verify = button('Verify', {
    small: true,
    kind: 'primary',
    onClick: async () => {
      replace(messages);
      try {
        await api('POST', `${path}/verify`);
        append(messages, notice('ok', `${domain.domain} is verified.`));
        await reload();
      } catch (error) {
        if (error.status !== 409) throw error;
        // What DNS answered, in the server's words, beside the record to publish.
        append(messages, notice('error', h('p', null, h('strong', null, `${domain.domain} could not be verified. `), errorMessage(error)),
          h('p', null, 'Publish a TXT record named ', h('code', null, domain.verification.record_name), ' with the value ',
            h('code', null, domain.verification.record_value), '. DNS changes can take a while to be visible.')));
      }
    },
  });
  const manual = button('Mark verified manually', {
    small: true,
    onClick: async () => {
      const ok = await confirmDialog([
        h('p', null, `Mark ${domain.domain} verified without checking DNS?`),
        h('p', null, 'Do this only when you know the organisation controls the domain, for example on an air-gapped site. Sign-ins with addresses at this domain will go to this tenant’s IdP. It is recorded in the audit trail as your decision.'),
      ], { title: 'Verify by hand', confirmLabel: 'Mark verified', danger: false });
      if (!ok) return;
      await api('POST', `${path}/verify`, { method: 'manual' });
      toast(`${domain.domain} marked verified`);
      await reload();
    },
  });
  const remove = button('Remove', {
    small: true,
    kind: 'danger-outline',
    onClick: async () => {
      const ok = await confirmDialog(h('p', null, `Remove ${domain.domain} from ${ctx.tenant.display_name}? Sign-ins with addresses at this domain will no longer be sent to this tenant’s IdP.`),
        { title: 'Remove domain', confirmLabel: 'Remove domain' });
      if (!ok) return;
      await api('DELETE', path);
      toast(`${domain.domain} removed`);
      await reload();
    },
  });
  return h('div', { class: 'row-actions row-actions-stacked' }, domain.status === 'verified' ? null : [verify, manual], remove);
}

// ---------------------------------------------------------------------------------------------
// Deleting

function deleteCard(ctx) {
  const { tenant } = ctx;
  const remove = button('Delete tenant', {
    kind: 'danger',
    onClick: async () => {
      const ok = await confirmDialog([
        h('p', null, h('strong', null, `Delete ${tenant.display_name} and everything it owns?`)),
        h('p', null, 'Its users, groups, sessions, SSO connections, SCIM tokens, setup links and access policy are removed at once. This cannot be undone.'),
      ], { title: 'Delete tenant', confirmLabel: 'Delete tenant', typeToConfirm: tenant.slug });
      if (!ok) return;
      await api('DELETE', `/tenants/${tenant.id}`);
      toast(`${tenant.display_name} deleted`);
      ctx.navigate('#/tenants');
    },
  });
  const card = section('Delete this tenant', { intro: 'Removes the tenant and all of its data. Suspend it instead to stop sign-ins while keeping everything.' }, remove);
  card.classList.add('card-danger');
  return card;
}
