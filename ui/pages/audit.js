// #/audit and #/tenants/{id}/audit: the audit trail, searched with filters kept in the URL (so a
// search can be bookmarked or shared), a record's detail, exports, the hash-chain verification,
// the index status, and (per tenant) how long records are kept.

import {
  api, h, seg, query, pageHeader, section, field, onSubmit, table, statusBadge, formatTime, button,
  linkButton, openDialog, details, jsonBlock, notice, replace, copyInline, confirmDialog, toast, loading,
  errorState, emptyState, plural, numberOrNull, icon, showErrors, append,
} from '/admin/lib.js';

const PAGE_SIZE = 50;
const FILTERS = ['q', 'tenant', 'user', 'actor', 'action', 'target', 'outcome', 'since', 'until', 'request_id', 'source_ip'];
const ACTION_HINTS = ['scim', 'scim.user', 'scim.group', 'sso', 'sso.saml', 'sso.oidc', 'signin', 'oauth', 'session',
  'access_policy', 'tenant', 'domain', 'saml_connection', 'oidc_connection', 'scim_token', 'setup_link', 'admin_key',
  'oauth_client', 'webhook', 'audit', 'user.password_link'];

/** #/audit: every tenant's records and the instance's own. */
export async function render(view, ctx) {
  const [tenants, keys] = await Promise.all([
    api('GET', '/tenants?limit=200').then((page) => page.items, () => []),
    keyNames(),
  ]);
  const names = new Map(tenants.map((t) => [t.id, t.slug]));
  append(view,
    pageHeader('Audit trail', {
      subtitle: 'Every change, sign-in, refusal and operator action, written in the same commit as what it records, and hash-chained per tenant.',
    }),
    await searchArea(ctx, { base: '#/audit', names, tenants, keys }),
    h('div', { class: 'grid-2' }, verifyCard(null), statusCard(names)),
  );
}

/** The Audit tab of a tenant: the same search, fixed to the tenant. */
export async function renderTab(panel, ctx) {
  const names = new Map([[ctx.tenant.id, ctx.tenant.slug]]);
  const keys = await keyNames();
  append(panel,
    h('div', { class: 'panel-head' }, h('h2', { dataset: { heading: '' } }, 'Audit trail')),
    await searchArea(ctx, { base: `${ctx.base}/audit`, names, tenant: ctx.tenant, keys }),
    h('div', { class: 'grid-2' }, verifyCard(ctx.tenant), retentionCard(ctx.tenant)),
  );
}

/** Admin keys by id: records name the acting key by id only. */
async function keyNames() {
  try {
    const keys = await api('GET', '/admin-keys');
    return new Map(keys.items.map((k) => [k.id, k.name]));
  } catch {
    return new Map();
  }
}

/** The start of a long id, enough to tell records apart (the detail shows it whole). */
function shortId(id) {
  const text = String(id ?? '');
  return text.length > 14 ? `${text.slice(0, 8)}…` : text;
}

// ---------------------------------------------------------------------------------------------
// Search

function filtersFrom(params, tenant) {
  const filters = {};
  for (const key of FILTERS) if (params.get(key)) filters[key] = params.get(key);
  if (tenant) filters.tenant = tenant.id;
  return filters;
}

async function searchArea(ctx, { base, names, tenants, tenant, keys }) {
  const filters = filtersFrom(ctx.params, tenant);
  const before = ctx.params.get('before') || '';
  const results = h('div', null, loading('Searching…'));
  const form = searchForm(ctx, { base, filters, tenants, tenant });
  try {
    const page = await api('GET', `/audit/search${query({ ...filters, before, limit: PAGE_SIZE })}`);
    replace(results, resultsView(ctx, page, { base, names, filters, before, tenant, keys }));
  } catch (error) {
    // A bad filter (a malformed date, an unknown tenant) shows beside its field, not as a broken page.
    if (error.field && form.querySelector(`[data-fields~="${error.field}"]`)) {
      form.querySelector('details').open = true;
      showErrors(form, error);
      replace(results, notice('warn', 'Correct the filter to see records.'));
    } else {
      replace(results, errorState(error));
    }
  }
  return h('div', null, form, exportBar(filters), results);
}

function searchForm(ctx, { base, filters, tenants, tenant }) {
  const advanced = FILTERS.filter((k) => k !== 'q' && !(tenant && k === 'tenant')).some((k) => filters[k]);
  const listId = 'audit-actions';
  const tenantList = 'audit-tenants';
  const form = h('form', { class: 'form form-wide', role: 'search', 'aria-label': 'Search the audit trail' },
    h('div', { class: 'search-form' },
      field({ label: 'Search', name: 'q', type: 'search', value: filters.q, placeholder: 'Words in actions, reasons, names and details', attrs: { 'aria-describedby': 'audit-q-help' } }),
      h('button', { type: 'submit', class: 'btn btn-primary' }, icon('search'), 'Search'),
      Object.keys(filters).some((k) => !(tenant && k === 'tenant')) ? linkButton('Clear', base, { kind: 'ghost' }) : null),
    h('p', { class: 'field-help search-help', id: 'audit-q-help' }, 'All words must match; "quoted phrases", OR and -word work too.'),
    h('details', { class: 'disclosure', open: advanced },
      h('summary', null, 'More filters'),
      h('div', { class: 'form-row' },
        tenant ? null : field({ label: 'Tenant', name: 'tenant', value: filters.tenant, list: tenantList, placeholder: 'slug, id or instance', spellcheck: false }),
        field({ label: 'User', name: 'user', value: filters.user, placeholder: 'id, user name or email', spellcheck: false, help: 'Records about and by them, under earlier names too.' }),
        field({ label: 'Actor', name: 'actor', value: filters.actor, placeholder: 'admin_key, Okta, an id…', spellcheck: false }),
        field({ label: 'Action', name: 'action', value: filters.action, list: listId, placeholder: 'scim.user or sso.saml.refused', spellcheck: false, help: 'Exact, or a dotted prefix.' }),
        field({ label: 'Target', name: 'target', value: filters.target, placeholder: 'an id or name', spellcheck: false }),
        field({ label: 'Outcome', name: 'outcome', options: [{ value: '', label: 'Any' }, { value: 'success', label: 'Success' }, { value: 'failure', label: 'Failure' }], value: filters.outcome || '' }),
        field({ label: 'From', name: 'since', type: 'datetime-local', value: toLocalInput(filters.since), help: 'Your local time.' }),
        field({ label: 'Until', name: 'until', type: 'datetime-local', value: toLocalInput(filters.until) }),
        field({ label: 'Request ID', name: 'request_id', value: filters.request_id, spellcheck: false }),
        field({ label: 'Source IP', name: 'source_ip', value: filters.source_ip, spellcheck: false })),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-secondary' }, 'Apply filters'))),
    h('datalist', { id: listId }, ACTION_HINTS.map((a) => h('option', { value: a }))),
    tenants ? h('datalist', { id: tenantList }, h('option', { value: 'instance' }), tenants.map((t) => h('option', { value: t.slug }))) : null);
  onSubmit(form, (values) => {
    const next = {};
    for (const key of FILTERS) if (values[key]) next[key] = values[key];
    if (tenant) delete next.tenant;
    if (next.since) next.since = fromLocalInput(next.since);
    if (next.until) next.until = fromLocalInput(next.until);
    ctx.navigate(`${base}${query(next)}`);
  });
  return form;
}

/** RFC 3339 → the value of a datetime-local input, in local time. */
function toLocalInput(value) {
  if (!value) return '';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function fromLocalInput(value) {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toISOString();
}

/** Exports cover a tenant and a time range (the other filters do not apply to them). */
function exportBar(filters) {
  const range = { tenant: filters.tenant, since: filters.since, until: filters.until };
  const link = (format, label) => h('a', {
    class: 'btn btn-secondary btn-small', download: `audit.${format}`, href: `/api/v1/audit/export${query({ format, ...range })}`,
  }, icon('download'), label);
  const scope = [filters.tenant ? 'this tenant' : 'every tenant', filters.since || filters.until ? 'the chosen time range' : 'all time'].join(', ');
  return h('div', { class: 'toolbar' },
    h('span', { class: 'small muted' }, `Export (${scope}; oldest first, recorded in the trail):`),
    link('csv', 'CSV'), link('jsonl', 'JSON Lines'));
}

function resultsView(ctx, page, { base, names, filters, before, tenant, keys }) {
  const items = page.items || [];
  const columns = [
    { label: 'Time', cell: (r) => formatTime(r.at) },
    { label: 'Action', cell: (r) => [h('code', null, r.action), r.outcome === 'failure' ? [' ', statusBadge('failure')] : null, r.reason ? h('span', { class: 'sub' }, r.reason) : null] },
    { label: 'Actor', cell: (r) => actorText(r.actor, keys) },
    { label: 'Target', cell: (r) => subjectText(r.target) },
    tenant ? null : { label: 'Tenant', cell: (r) => (r.tenant ? names.get(r.tenant) || h('code', null, shortId(r.tenant)) : h('span', { class: 'muted' }, 'instance')) },
    { label: '', class: 'actions', cell: (r) => button('Details', { small: true, onClick: () => showRecord(r, base, names, keys) }) },
  ].filter(Boolean);
  const filtered = Object.keys(filters).some((k) => !(tenant && k === 'tenant'));
  return h('div', null,
    h('p', { class: 'muted small', tabindex: '-1', dataset: { queryFocus: '' } },
      items.length ? `${plural(items.length, 'record')}, newest first${before ? ' (older page)' : ''}.` : '',
      page.indexed_through !== undefined ? ` Searched through record ${page.indexed_through}.` : ''),
    table(columns, items, {
      caption: 'Audit records',
      empty: filtered
        ? emptyState('No record matches', 'Loosen the filters, or widen the time range.', linkButton('Clear the filters', base))
        : emptyState('No records yet', 'Records appear as soon as anything happens: an operator change, a SCIM request, a sign-in.'),
    }),
    pagerView(base, filters, before, page.next_before, tenant));
}

function pagerView(base, filters, before, nextBefore, tenant) {
  if (!before && !nextBefore) return null;
  const keep = { ...filters };
  if (tenant) delete keep.tenant;
  return h('div', { class: 'table-footer' }, h('span'),
    h('div', { class: 'pager' },
      before ? linkButton('Newest', `${base}${query(keep)}`, { small: true }) : null,
      nextBefore ? linkButton('Older records', `${base}${query({ ...keep, before: nextBefore })}`, { small: true }) : null));
}

function actorText(actor, keys) {
  if (!actor) return null;
  const label = actorLabel(actor, keys);
  return [label || (actor.id ? h('code', null, shortId(actor.id)) : ''), h('span', { class: 'sub' }, actor.kind.replace(/_/g, ' '))];
}

function actorLabel(actor, keys) {
  return actor.label || (actor.kind === 'admin_key' ? keys?.get(actor.id) : null) || '';
}

function subjectText(subject) {
  if (!subject) return null;
  return [subject.label || h('code', null, shortId(subject.id)), h('span', { class: 'sub' }, subject.kind.replace(/_/g, ' '))];
}

function showRecord(record, base, names, keys) {
  const related = record.request_id
    ? h('a', { href: `${base}${query({ request_id: record.request_id })}` }, 'Every record of this request') : null;
  related?.addEventListener('click', () => close());
  const { close } = openDialog({
    title: `Record ${record.seq}: ${record.action}`,
    wide: true,
    content: [
      details([
        ['When', formatTime(record.at)],
        ['Action', h('code', null, record.action)],
        ['Outcome', [statusBadge(record.outcome), record.reason ? ` ${record.reason}` : '']],
        ['Actor', record.actor ? [actorLabel(record.actor, keys) ? `${actorLabel(record.actor, keys)} ` : '', h('code', null, `${record.actor.kind}${record.actor.id ? `:${record.actor.id}` : ''}`)] : null],
        ['Target', record.target ? [record.target.label ? `${record.target.label} ` : '', h('code', null, `${record.target.kind}:${record.target.id}`)] : null],
        ['Tenant', record.tenant ? `${names.get(record.tenant) || ''} ${record.tenant}` : 'instance'],
        ['Request', record.request_id ? [h('code', null, record.request_id), ' ', related] : null],
        ['Source IP', record.source_ip],
        ['User agent', record.user_agent],
        ['Record ID', copyInline(record.id, 'record ID')],
        ['Hash', copyInline(record.hash, 'hash')],
        ['Previous hash', record.prev_hash ? copyInline(record.prev_hash, 'previous hash') : null],
      ]),
      h('h3', null, 'Detail'),
      jsonBlock(record.detail ?? {}),
    ],
  });
}

// ---------------------------------------------------------------------------------------------
// Verification, index status, retention

function verifyCard(tenant) {
  const result = h('div', { 'aria-live': 'polite' });
  const verify = button(tenant ? 'Verify this tenant’s chain' : 'Verify every chain', {
    onClick: async () => {
      replace(result, loading('Recomputing the hash chains…'));
      try {
        const report = await api('POST', `/audit/verify${query({ tenant: tenant?.id })}`);
        replace(result, verifyResult(report));
      } catch (error) {
        replace(result, errorState(error));
      }
    },
  });
  return section('Tamper evidence', {
    intro: 'Recomputes the hash of every record and checks each follows the one before it: an edited, removed or inserted record is named.',
  }, verify, result);
}

function verifyResult(report) {
  const chains = report.report?.chains || [];
  if (report.intact) {
    return notice('ok', `All ${plural(report.records, 'record')} in ${plural(chains.length, 'chain')} are intact.`);
  }
  const problems = chains.filter((c) => c.problems.length);
  return notice('error', h('p', null, h('strong', null, 'The trail has been changed. ')),
    report.report?.unchained ? h('p', null, `${plural(report.report.unchained, 'record')} belong to no chain (inserted).`) : null,
    problems.map((c) => h('div', null, h('p', null, 'Chain ', h('code', null, c.chain), ':'), h('ul', null, c.problems.map((p) => h('li', null, p))))));
}

function statusCard(names) {
  const body = h('div', null, loading());
  const load = async () => {
    try {
      const status = await api('GET', '/audit/status');
      replace(body, statusView(status, names));
    } catch (error) {
      replace(body, errorState(error, load));
    }
  };
  load();
  const reindex = button('Rebuild the index', {
    onClick: async () => {
      const ok = await confirmDialog(h('p', null, 'Rebuild the search index from the log? Searches answer from what is indexed so far until it finishes; nothing is lost.'),
        { title: 'Rebuild the audit index', confirmLabel: 'Rebuild', danger: false });
      if (!ok) return;
      await api('POST', '/audit/reindex');
      toast('The index is being rebuilt');
      await load();
    },
  });
  return section('Index and chain heads', {
    actions: [reindex],
    intro: 'Keep copies of the chain heads elsewhere from time to time: a head you hold proves nothing before it was rewritten since.',
  }, body);
}

function statusView(status, names) {
  return h('div', null,
    h('div', { class: 'stat-row' },
      stat(status.last_seq, 'records logged'),
      stat(status.indexed_seq, 'indexed through'),
      stat(status.index_lag, 'behind')),
    table([
      { label: 'Chain', cell: (c) => (c.chain === 'instance' ? 'instance' : names.get(c.chain) || h('code', null, c.chain.slice(0, 8))) },
      { label: 'Records', class: 'num', cell: (c) => Number(c.records).toLocaleString() },
      { label: 'Head', cell: (c) => copyInline(c.last_hash, `head of ${c.chain}`) },
    ], status.chains || [], { caption: 'Chain heads', empty: { title: 'No chains yet', text: 'Chains start with their first record.' } }));
}

function stat(value, label) {
  return h('div', { class: 'stat' }, h('span', { class: 'stat-value' }, Number(value ?? 0).toLocaleString()), h('span', { class: 'stat-label' }, label));
}

function retentionCard(tenant) {
  const body = h('div', null, loading());
  const path = `/tenants/${seg(tenant.id)}/audit-retention`;
  const draw = (days) => {
    const form = h('form', { class: 'form' },
      field({ label: 'Keep records for (days)', name: 'days', type: 'number', min: 1, max: 36500, value: days ?? '', optional: true, help: 'Empty keeps them forever (the default). Older records are removed at once and then hourly; the chain still verifies.' }),
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-secondary' }, 'Save retention')));
    onSubmit(form, async (values) => {
      const next = numberOrNull(values.days);
      if (next !== null && next < (days ?? Infinity)) {
        const ok = await confirmDialog(h('p', null, `Remove this tenant’s records older than ${plural(next, 'day')}? They are deleted for good (an export keeps a copy).`),
          { title: 'Shorten retention', confirmLabel: 'Remove older records' });
        if (!ok) return;
      }
      const answer = await api('PUT', path, { days: next });
      toast(answer.days ? `Records are kept ${plural(answer.days, 'day')}` : 'Records are kept forever');
      draw(answer.days);
    });
    replace(body, form);
  };
  api('GET', path).then((answer) => draw(answer.days), (error) => replace(body, errorState(error)));
  return section('Retention', {}, body);
}
