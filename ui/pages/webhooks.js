// #/webhooks and #/webhooks/{id}: the app's webhook endpoints, their signing secrets (shown
// once), test sends, deliveries with their attempts, and replays.

import {
  api, h, seg, query, pageHeader, section, field, choiceGroup, onSubmit, formDialog, secretDialog, button,
  linkButton, table, formatTime, statusBadge, confirmDialog, toast, emptyState, notice, replace,
  openDialog, details, plural, errorState, loading, numberOrNull, append,
} from '/admin/lib.js';

const FAMILIES = {
  user: ['user.created', 'user.updated', 'user.deactivated', 'user.reactivated', 'user.deleted', 'user.roles_changed'],
  group: ['group.created', 'group.updated', 'group.deleted', 'group.member_added', 'group.member_removed'],
  session: ['session.revoked'],
};
const STATES = [
  { value: '', label: 'Every state' }, { value: 'pending', label: 'Pending' },
  { value: 'delivered', label: 'Delivered' }, { value: 'failed', label: 'Failed' },
];

export async function render(view, ctx) {
  const tenants = await api('GET', '/tenants?limit=200').then((page) => page.items, () => []);
  if (ctx.segments[1]) await renderEndpoint(view, ctx, ctx.segments[1], tenants);
  else await renderList(view, ctx, tenants);
}

async function renderList(view, ctx, tenants) {
  const endpoints = await api('GET', '/webhooks');
  const create = () => button('New endpoint', { kind: 'primary', iconName: 'plus', onClick: () => createEndpoint(ctx, tenants) });
  append(view,
    pageHeader('Webhooks', {
      subtitle: 'Signed deliveries (Standard Webhooks) of directory and session events to your app, at least once and in order per resource.',
      actions: [create()],
    }),
    table([
      { label: 'Endpoint', cell: (e) => [h('a', { class: 'row-link', href: `#/webhooks/${e.id}` }, e.description || hostOf(e.url)), h('span', { class: 'sub' }, e.url)] },
      { label: 'Status', cell: endpointStatus },
      { label: 'Events', cell: (e) => eventsText(e.event_types) },
      { label: 'Backlog', class: 'num', cell: (e) => String(e.backlog) },
      { label: 'Last success', cell: (e) => formatTime(e.last_success_at, { relative: true }) },
    ], endpoints.items, {
      caption: 'Webhook endpoints',
      empty: emptyState('No webhook endpoints yet', 'Add your app’s receiver to learn about new, changed and deactivated users, group changes and ended sessions as they happen. The events feed (/api/v1/events) has them too.', create()),
    }),
  );
}

function hostOf(url) {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function endpointStatus(endpoint) {
  return [statusBadge(endpoint.status), endpoint.consecutive_failures
    ? h('span', { class: 'sub' }, `${plural(endpoint.consecutive_failures, 'failure')} in a row`) : null];
}

function eventsText(types) {
  if (!types?.length || types.includes('*')) return 'Every event';
  return types.join(', ');
}

// ---------------------------------------------------------------------------------------------
// Settings, shared by create and edit

function endpointFields(endpoint, tenants) {
  const types = endpoint?.event_types || ['*'];
  const all = types.includes('*');
  const eventChoice = choiceGroup({
    legend: 'Events', name: 'events_scope', value: all ? 'all' : 'some',
    options: [{ value: 'all', label: 'Every event type' }, { value: 'some', label: 'Only these' }],
    errorFields: ['event_types'],
  });
  const typeOptions = Object.entries(FAMILIES).flatMap(([family, list]) => [
    { value: `${family}.*`, label: `Every ${family} event (${family}.*)` },
    ...list.map((t) => ({ value: t, label: t })),
  ]);
  const typeBoxes = choiceGroup({ legend: 'Event types', name: 'event_types', type: 'checkbox', options: typeOptions, value: all ? [] : types });
  typeBoxes.classList.add('choices-columns');
  const tenantChoice = choiceGroup({
    legend: 'Tenants', name: 'tenants_scope', value: endpoint?.tenants?.length ? 'some' : 'all',
    options: [{ value: 'all', label: 'Every tenant, including new ones' }, { value: 'some', label: 'Only these tenants' }],
    errorFields: ['tenants'],
  });
  const tenantBoxes = tenants.length
    ? choiceGroup({ legend: 'Tenants', name: 'tenants', type: 'checkbox', options: tenants.map((t) => ({ value: t.id, label: `${t.display_name} (${t.slug})` })), value: endpoint?.tenants || [] })
    : h('p', { class: 'muted' }, 'There are no tenants yet.');
  const sync = () => {
    typeBoxes.hidden = eventChoice.querySelector('input:checked')?.value !== 'some';
    tenantBoxes.hidden = tenantChoice.querySelector('input:checked')?.value !== 'some';
  };
  eventChoice.addEventListener('change', sync);
  tenantChoice.addEventListener('change', sync);
  sync();
  return [
    field({ label: 'URL', name: 'url', type: 'url', required: true, value: endpoint?.url, placeholder: 'https://app.example.com/webhooks/portcullis', spellcheck: false, help: 'https to a public address (the instance’s webhook_allowed_hosts may allow others). Redirects are not followed.' }),
    field({ label: 'Description', name: 'description', value: endpoint?.description, optional: true, placeholder: 'Production app' }),
    eventChoice, typeBoxes, tenantChoice, tenantBoxes,
  ];
}

/** The settings to send; an empty "only these" choice is refused here (the API would read it as "all"). */
function endpointBody(values) {
  const refuse = (field, message) => { throw Object.assign(new Error(message), { field }); };
  if (values.events_scope === 'some' && !values.event_types?.length) refuse('event_types', 'choose at least one event type, or every event type');
  if (values.tenants_scope === 'some' && !values.tenants?.length) refuse('tenants', 'choose at least one tenant, or every tenant');
  return {
    url: values.url,
    description: values.description,
    event_types: values.events_scope === 'some' ? values.event_types : ['*'],
    tenants: values.tenants_scope === 'some' ? (values.tenants || []) : [],
  };
}

async function createEndpoint(ctx, tenants) {
  const created = await formDialog({
    title: 'New webhook endpoint',
    wide: true,
    intro: 'The endpoint receives the events that happen from now on; earlier ones are in the events feed.',
    fields: endpointFields(null, tenants),
    submitLabel: 'Create endpoint',
    submit: (values) => api('POST', '/webhooks', endpointBody(values)),
  });
  if (!created?.id) return;
  await showSecret(created.secret, 'Copy the signing secret');
  ctx.navigate(`#/webhooks/${created.id}`);
}

async function showSecret(secret, title) {
  await secretDialog({
    title,
    intro: h('p', null, 'Your receiver verifies each delivery’s webhook-signature header with this secret (HMAC-SHA256, Standard Webhooks). Keep it in the app’s secret store.'),
    items: [{ label: 'Signing secret', value: secret }],
  });
}

// ---------------------------------------------------------------------------------------------
// One endpoint

async function renderEndpoint(view, ctx, id, tenants) {
  const path = `/webhooks/${seg(id)}`;
  const endpoint = await api('GET', path);
  const slugs = new Map(tenants.map((t) => [t.id, t.slug]));
  const testArea = h('div', { 'aria-live': 'polite' });
  append(view,
    pageHeader(endpoint.description || hostOf(endpoint.url), {
      crumbs: [['Webhooks', '#/webhooks'], [endpoint.description || hostOf(endpoint.url)]],
      badge: statusBadge(endpoint.status),
      subtitle: h('code', null, endpoint.url),
      actions: endpointActions(ctx, endpoint, path, testArea),
    }),
    stateNotices(endpoint),
    testArea,
    h('div', { class: 'grid-2' }, overviewCard(endpoint, slugs), settingsCard(ctx, endpoint, path, tenants)),
    deliveriesCard(ctx, endpoint, path, slugs),
  );
}

function endpointActions(ctx, endpoint, path, testArea) {
  const test = button('Send test event', {
    kind: 'primary',
    onClick: async () => {
      replace(testArea, loading('Sending a signed webhook.test event…'));
      try {
        const answer = await api('POST', `${path}/test`);
        replace(testArea, testResult(answer));
      } catch (error) {
        replace(testArea, errorState(error));
      }
    },
  });
  const paused = endpoint.status === 'paused';
  const pause = button(paused ? 'Resume' : 'Pause', {
    onClick: async () => {
      if (!paused) {
        const ok = await confirmDialog(h('p', null, 'Pause deliveries to this endpoint? Events keep queuing and are delivered when it is resumed.'),
          { title: 'Pause endpoint', confirmLabel: 'Pause', danger: false });
        if (!ok) return;
      }
      await api('PATCH', path, { status: paused ? 'active' : 'paused' });
      toast(paused ? 'Deliveries resumed' : 'Deliveries paused');
      ctx.refresh();
    },
  });
  const rotate = button('Rotate secret', { onClick: () => rotateSecret(ctx, path) });
  const remove = button('Delete', {
    kind: 'danger-outline',
    onClick: async () => {
      const ok = await confirmDialog([
        h('p', null, `Delete the endpoint ${endpoint.url}?`),
        h('p', null, `Its ${plural(endpoint.backlog, 'undelivered event')} will never be sent. The events stay in the feed.`),
      ], { title: 'Delete webhook endpoint', confirmLabel: 'Delete endpoint' });
      if (!ok) return;
      await api('DELETE', path);
      toast('Endpoint deleted');
      ctx.navigate('#/webhooks');
    },
  });
  return [test, pause, rotate, remove];
}

function stateNotices(endpoint) {
  const notices = [];
  if (endpoint.status === 'paused') {
    notices.push(notice('warn', h('p', null, h('strong', null, 'Paused '), formatTime(endpoint.paused_at, { relative: true }), ': ', endpoint.paused_reason || 'no reason given',
      '. Nothing is attempted; events keep queuing and are delivered, in order, once it is resumed.')));
  }
  if (endpoint.consecutive_failures > 0) {
    notices.push(notice('warn', h('p', null, `${plural(endpoint.consecutive_failures, 'delivery attempt')} failed in a row`,
      endpoint.failing_since ? [' since ', formatTime(endpoint.failing_since)] : '', '. An endpoint failing for a day without a success is paused. ',
      'Use “Send test event” to see what it answers.')));
  }
  return notices;
}

function testResult(answer) {
  const a = answer.attempt || {};
  const facts = details([
    ['Answer', a.status ? `HTTP ${a.status}` : 'none'],
    ['Took', a.duration_ms !== undefined ? `${a.duration_ms} ms` : null],
    ['Error', a.error],
    ['Sent', formatTime(a.at)],
  ]);
  return answer.delivered
    ? notice('ok', h('p', null, h('strong', null, 'The test event was delivered. ')), facts, a.response ? h('pre', { class: 'json' }, a.response) : null)
    : notice('error', h('p', null, h('strong', null, 'The test event was not delivered. ')), facts, a.response ? h('pre', { class: 'json' }, a.response) : null);
}

function overviewCard(endpoint, slugs) {
  return section('Endpoint', {},
    details([
      ['URL', h('code', null, endpoint.url)],
      ['Events', eventsText(endpoint.event_types)],
      ['Tenants', endpoint.tenants.length ? endpoint.tenants.map((t) => slugs.get(t) || t).join(', ') : 'Every tenant'],
      ['Backlog', `${plural(endpoint.backlog, 'delivery', 'deliveries')} not finished`],
      ['Last success', formatTime(endpoint.last_success_at, { relative: true })],
      ['Signing secrets', h('ul', { class: 'kv-list' }, (endpoint.secrets || []).map((s) => h('li', null, 'Made ', formatTime(s.created_at),
        s.expires_at ? [', signs until ', formatTime(s.expires_at)] : ', current')))],
      ['Created', formatTime(endpoint.created_at)],
    ]));
}

function settingsCard(ctx, endpoint, path, tenants) {
  const form = h('form', { class: 'form' }, endpointFields(endpoint, tenants),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save settings')));
  onSubmit(form, async (values) => {
    await api('PATCH', path, endpointBody(values));
    toast('Settings saved');
    ctx.refresh();
  });
  return section('Settings', {}, form);
}

async function rotateSecret(ctx, path) {
  const rotated = await formDialog({
    title: 'Rotate the signing secret',
    intro: 'A new secret signs every delivery from now on. During the overlap each delivery carries both signatures, so the app can switch to the new secret at leisure.',
    fields: [field({ label: 'Overlap (hours)', name: 'overlap_hours', type: 'number', min: 0, max: 168, value: 24, help: '0 to 168. With 0 the old secret stops at once.' })],
    submitLabel: 'Rotate secret',
    submit: (values) => api('POST', `${path}/secret`, { overlap_hours: numberOrNull(values.overlap_hours) ?? 24 }),
  });
  if (!rotated?.secret) return;
  await showSecret(rotated.secret, 'Copy the new signing secret');
  ctx.refresh();
}

// ---------------------------------------------------------------------------------------------
// Deliveries

function deliveriesCard(ctx, endpoint, path, slugs) {
  const state = ctx.params.get('state') || '';
  const before = ctx.params.get('before') || '';
  const base = `#/webhooks/${endpoint.id}`;
  const body = h('div', null, loading());
  api('GET', `${path}/deliveries${query({ state, before, limit: 50 })}`).then(
    (page) => replace(body, deliveriesTable(ctx, page, { path, slugs, base, state, before })),
    (error) => replace(body, errorState(error)));
  const filter = field({ label: 'Show', name: 'state', options: STATES, value: state });
  filter.querySelector('select').addEventListener('change', (event) => ctx.navigate(`${base}${query({ state: event.target.value })}`));
  const replayFailed = button('Replay failed', {
    onClick: async () => {
      const ok = await confirmDialog(h('p', null, 'Send every failed delivery again, oldest first? The app receives them with their original ids; a replay older than what the app has is recognised by its sequence.'),
        { title: 'Replay failed deliveries', confirmLabel: 'Replay', danger: false });
      if (!ok) return;
      const answer = await api('POST', `${path}/replay-failed`);
      toast(`${plural(answer.replayed, 'delivery', 'deliveries')} queued again`);
      ctx.refresh();
    },
  });
  return section('Deliveries', { actions: [replayFailed], intro: 'Newest first. Each is retried with backoff for three days before it is marked failed.' },
    h('div', { class: 'toolbar', dataset: { queryFocus: '' }, tabindex: '-1' }, filter), body);
}

function deliveriesTable(ctx, page, { path, slugs, base, state, before }) {
  const items = page.items || [];
  return h('div', null,
    table([
      { label: 'Event', cell: (d) => [h('code', null, d.type), h('span', { class: 'sub' }, `#${d.sequence}`)] },
      { label: 'Tenant', cell: (d) => slugs.get(d.tenant_id) || (d.tenant_id ? h('code', null, d.tenant_id.slice(0, 8)) : null) },
      { label: 'State', cell: (d) => [statusBadge(d.state), d.state === 'pending' && d.next_attempt_at ? h('span', { class: 'sub' }, 'next ', formatTime(d.next_attempt_at, { relative: true })) : null] },
      { label: 'Attempts', class: 'num', cell: (d) => String(d.attempt_count) },
      { label: 'Last attempt', cell: (d) => attemptText(d.last_attempt) },
      { label: 'Created', cell: (d) => formatTime(d.created_at, { relative: true }) },
      { label: '', class: 'actions', cell: (d) => h('div', { class: 'row-actions' }, button('Attempts', { small: true, onClick: () => showAttempts(path, d) }),
        d.state === 'pending' ? null : button('Replay', { small: true, onClick: () => replay(ctx, path, d) })) },
    ], items, {
      caption: 'Deliveries',
      empty: state ? emptyState(`No ${state} deliveries`, 'Choose another state to see the others.')
        : emptyState('No deliveries yet', 'Events are delivered as they happen: create a user over SCIM or end a session to see one. “Send test event” checks the receiver without queuing anything.'),
    }),
    before || page.next_before ? h('div', { class: 'table-footer' }, h('span'), h('div', { class: 'pager' },
      before ? linkButton('Newest', `${base}${query({ state })}`, { small: true }) : null,
      page.next_before ? linkButton('Older', `${base}${query({ state, before: page.next_before })}`, { small: true }) : null)) : null);
}

function attemptText(attempt) {
  if (!attempt) return h('span', { class: 'muted' }, 'none yet');
  const what = attempt.status ? `HTTP ${attempt.status}` : attempt.error || 'no answer';
  return [what, h('span', { class: 'sub' }, formatTime(attempt.at, { relative: true }), attempt.duration_ms !== undefined ? ` · ${attempt.duration_ms} ms` : '')];
}

async function replay(ctx, path, delivery) {
  await api('POST', `${path}/deliveries/${delivery.sequence}/replay`);
  toast(`Event #${delivery.sequence} queued again`);
  ctx.refresh();
}

async function showAttempts(path, delivery) {
  const body = h('div', null, loading());
  openDialog({ title: `Delivery of ${delivery.type} #${delivery.sequence}`, wide: true, content: body });
  try {
    const full = await api('GET', `${path}/deliveries/${delivery.sequence}`);
    replace(body,
      details([
        ['Event ID', h('code', null, full.event_id)],
        ['State', statusBadge(full.state)],
        ['Created', formatTime(full.created_at)],
        ['Finished', formatTime(full.finished_at)],
        ['Next attempt', full.next_attempt_at ? formatTime(full.next_attempt_at) : null],
      ]),
      h('h3', null, 'Attempts'),
      table([
        { label: 'When', cell: (a) => [formatTime(a.at), a.replay ? h('span', { class: 'sub' }, 'replay') : null] },
        { label: 'Answer', cell: (a) => (a.status ? `HTTP ${a.status}` : h('span', { class: 'muted' }, 'none')) },
        { label: 'Took', class: 'num', cell: (a) => (a.duration_ms !== undefined ? `${a.duration_ms} ms` : null) },
        { label: 'Response or error', cell: (a) => (a.error ? a.error : a.response ? h('pre', { class: 'small' }, a.response) : null) },
      ], full.attempts || [], { caption: 'Attempts', empty: { title: 'No attempts yet', text: 'The delivery is waiting for its turn.' } }));
  } catch (error) {
    replace(body, errorState(error));
  }
}
