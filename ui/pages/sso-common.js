// What the SAML and OpenID Connect connection pages share: the header with enable/disable and
// delete, connection tests, and the attribute (claim) mapping fields.

import {
  api, h, seg, button, linkButton, statusBadge, confirmDialog, toast, notice, field, replace, details, jsonBlock,
  table, errorMessage, formatTime, humanise,
} from '/admin/lib.js';

const POLL_MS = 2000;

/** The connection's status word: enabled, disabled, or incomplete (cannot be enabled yet). */
export function connectionStatus(connection) {
  if (connection.enabled) return 'enabled';
  return connection.missing?.length ? 'incomplete' : 'disabled';
}

/**
 * The heading of a connection page with its actions: enable/disable, test, delete. `path` is the
 * connection's API path; `redraw(connection)` draws the page again after a change.
 */
export function connectionHeader(ctx, connection, { path, protocol, redraw, testArea }) {
  const toggle = button(connection.enabled ? 'Disable' : 'Enable', {
    kind: connection.enabled ? 'secondary' : 'primary',
    onClick: async () => {
      if (connection.enabled) {
        const ok = await confirmDialog(h('p', null, `Disable ${connection.name}? People of ${ctx.tenant.display_name} can no longer sign in through it until it is enabled again.`),
          { title: 'Disable connection', confirmLabel: 'Disable' });
        if (!ok) return;
      }
      try {
        const updated = await api('PATCH', path, { enabled: !connection.enabled });
        toast(updated.enabled ? `${connection.name} is enabled` : `${connection.name} is disabled`);
        redraw(updated);
      } catch (error) {
        toast(errorMessage(error), 'error');
      }
    },
  });
  const test = button('Test connection', { onClick: () => startTest(ctx, path, testArea, protocol) });
  if (connection.missing?.length) test.disabled = true;
  const remove = button('Delete', {
    kind: 'danger-outline',
    onClick: async () => {
      const ok = await confirmDialog([
        h('p', null, `Delete the ${protocol} connection “${connection.name}”?`),
        h('p', null, 'People of this tenant can no longer sign in through it. Its settings (and, for SAML, its service provider keys) are gone for good; a new connection needs a new set-up at the IdP.'),
      ], { title: 'Delete connection', confirmLabel: 'Delete connection' });
      if (!ok) return;
      await api('DELETE', path);
      toast(`${connection.name} deleted`);
      ctx.navigate(`${ctx.base}/sso`);
    },
  });
  return [
    h('a', { class: 'back-link', href: `${ctx.base}/sso` }, '← All connections'),
    h('div', { class: 'panel-head' },
      h('h2', { dataset: { heading: '' } }, connection.name, ' ', statusBadge(connectionStatus(connection)),
        h('span', { class: 'badge badge-info' }, protocol)),
      h('div', { class: 'page-actions' }, connection.missing?.length ? null : toggle, test, remove)),
    connection.missing?.length
      ? notice('warn', h('p', null, h('strong', null, 'Not complete yet. '),
        `It needs ${listFormat.format(connection.missing.map(missingLabel))} before it can be tested or enabled.`))
      : null,
  ];
}

const MISSING = {
  'idp.entity_id': 'the IdP’s entity ID', 'idp.sso_url': 'its sign-on URL', 'idp.signing_certificates': 'its signing certificate',
  issuer: 'the issuer (with its discovery document)', client_id: 'a client ID', client_secret: 'a client secret',
};

const listFormat = new Intl.ListFormat('en', { type: 'conjunction' });

function missingLabel(name) {
  return MISSING[name] || humanise(name);
}

// ---------------------------------------------------------------------------------------------
// Connection tests

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** Starts a test: opens the IdP sign-in in a new tab, then polls for the outcome. */
async function startTest(ctx, path, area, protocol) {
  const test = await api('POST', `${path}/tests`);
  // Opened from the click (the request is quick); the link below is there if a blocker stopped it.
  window.open(test.start_url, '_blank', 'noopener');
  const status = h('p', null, 'Waiting for the sign-in…');
  replace(area, notice('info',
    h('p', null, h('strong', null, 'Sign in at the IdP in the new tab. '), 'Nobody is signed in by a test: the result shows here and in that tab.'),
    h('p', null, h('a', { href: test.start_url, target: '_blank', rel: 'noopener noreferrer' }, 'Open the test sign-in again'),
      ' · the test expires ', formatTime(test.expires_at, { relative: true }), '.'),
    status));
  area.scrollIntoView({ block: 'nearest' });
  const until = new Date(test.expires_at).getTime();
  while (area.isConnected && Date.now() < until) {
    await sleep(POLL_MS);
    if (!area.isConnected) return;
    let answer;
    try {
      answer = await api('GET', `${path}/tests/${seg(test.id)}`);
    } catch (error) {
      replace(area, notice('error', errorMessage(error)));
      return;
    }
    if (answer.status === 'done') {
      replace(area, testResult(ctx, answer.result || {}, protocol));
      return;
    }
  }
  if (area.isConnected) {
    replace(area, notice('warn', h('p', null, 'The test expired without an answer. If the IdP’s response was refused before a user could be mapped (a signature, certificate or audience problem), the reason is in the ',
      linkButton('audit trail', `${ctx.base}/audit${auditQuery(protocol)}`, { kind: 'link' }), '.')));
  }
}

function auditQuery(protocol) {
  return `?action=${protocol === 'SAML' ? 'sso.saml' : 'sso.oidc'}`;
}

function testResult(ctx, result, protocol) {
  const user = result.user || {};
  // `stage: message`: the IdP's answer itself failed a check; otherwise trust worked and only
  // the person could not be signed in.
  const refusal = result.stage === 'message' ? result : user;
  const summary = result.ok
    ? notice('ok', h('p', null, h('strong', null, 'The connection works. '), userOutcome(ctx, user)))
    : notice('error', h('p', null, h('strong', null, result.stage === 'message' ? 'The IdP’s answer was refused' : 'The sign-in was refused'),
      refusal.check ? ` (check: ${refusal.check})` : '', '. ', refusal.reason || ''));
  const rows = protocol === 'SAML'
    ? [['NameID', result.name_id ? h('code', null, result.name_id) : null], ['NameID format', result.name_id_format], ['Session index', result.session_index]]
    : [['Subject', result.subject ? h('code', null, result.subject) : null], ['User name', result.user_name], ['Email verified', result.email_verified === undefined ? null : String(result.email_verified)]];
  return h('div', { class: 'stack' },
    summary,
    details([...rows, ['Tested', formatTime(result.at)]]),
    result.mapped ? [h('h3', null, 'Mapped profile'), mappedTable(result.mapped)] : null,
    result.attributes ? [h('h3', null, 'Attributes the IdP sent'), attributesTable(result.attributes)] : null,
    result.claims ? [h('h3', null, 'Claims the IdP sent'), jsonBlock(result.claims)] : null);
}

function userOutcome(ctx, user) {
  if (user.outcome === 'existing') {
    return h('span', null, 'It signs in as ', h('a', { href: `${ctx.base}/users/${user.id}` }, user.user_name), '.');
  }
  if (user.outcome === 'would_be_created') return `A new user ${user.user_name} would be created at the first sign-in (just-in-time provisioning).`;
  return '';
}

function mappedTable(mapped) {
  const rows = Object.entries(mapped).filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && !v.length) && !(typeof v === 'object' && !Array.isArray(v) && !Object.keys(v).length));
  return table([
    { label: 'Field', cell: ([k]) => humanise(k) },
    { label: 'Value', cell: ([, v]) => (typeof v === 'object' ? (Array.isArray(v) ? v.join(', ') : JSON.stringify(v)) : String(v)) },
  ], rows, { caption: 'Mapped profile', empty: { title: 'Nothing mapped', text: 'The IdP sent none of the mapped attributes.' } });
}

function attributesTable(attributes) {
  const rows = Array.isArray(attributes) ? attributes.map((a) => [a.name, a.values ?? a.value]) : Object.entries(attributes);
  return table([
    { label: 'Attribute', cell: ([k]) => h('code', null, k) },
    { label: 'Values', cell: ([, v]) => (Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? JSON.stringify(v) : String(v)) },
  ], rows, { caption: 'Attributes', empty: { title: 'No attributes', text: 'The assertion carried no attributes.' } });
}

// ---------------------------------------------------------------------------------------------
// Attribute and claim mapping

/** Text fields for a mapping (`email` → the IdP attribute or claim), and the custom fields. */
export function mappingFields(mapping, names, placeholders) {
  return [
    h('div', { class: 'form-row' }, names.map((name) => field({
      label: humanise(name), name: `map_${name}`, value: mapping?.[name] ?? '', optional: true,
      placeholder: placeholders[name] || '', spellcheck: false,
    }))),
    field({
      label: 'Custom fields', name: 'map_custom', textarea: true, rows: 3, optional: true, spellcheck: false,
      value: Object.entries(mapping?.custom || {}).map(([k, v]) => `${k} = ${v}`).join('\n'),
      help: 'One per line: field = attribute. The app receives these fields; access rules read them as claim.field.',
      errorFields: ['attribute_mapping', 'claim_mapping'],
    }),
  ];
}

/** The mapping the fields describe (empty fields: the standard names). */
export function mappingFrom(values, names) {
  const mapping = {};
  for (const name of names) if (values[`map_${name}`]) mapping[name] = values[`map_${name}`];
  mapping.custom = {};
  for (const line of String(values.map_custom || '').split('\n')) {
    const at = line.indexOf('=');
    if (at < 0) continue;
    const key = line.slice(0, at).trim();
    const value = line.slice(at + 1).trim();
    if (key && value) mapping.custom[key] = value;
  }
  return mapping;
}

/** Whether two mappings say the same (absent and null are alike). */
export function sameMapping(a, b) {
  const norm = (m) => JSON.stringify(Object.entries(m || {}).filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => [k, k === 'custom' ? Object.entries(v || {}).sort() : v]).sort());
  return norm(a) === norm(b);
}

/** Draws `connection` in `panel` again and puts the focus back on the section the person was in. */
export function redrawer(panel, draw) {
  return (connection, focusId) => {
    replace(panel);
    draw(connection);
    const heading = focusId ? panel.querySelector(`#${focusId} h3, #${focusId} h2`) : null;
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: false });
    }
  };
}
