// #/tenants/{id}/sso/saml/{connection}: one SAML connection. What the IdP admin needs from us
// (SP URLs, metadata, certificates), the IdP's metadata (upload, paste or URL), its settings by
// hand, sign-in options, SP key rotation, and a connection test.

import {
  api, h, seg, section, field, onSubmit, copyBox, button, linkButton, notice, toast, formatTime, details,
  table, numberOrNull, confirmDialog, statusBadge, append,
} from '/admin/lib.js';
import { connectionHeader, mappingFields, mappingFrom, sameMapping, redrawer } from '/admin/pages/sso-common.js';

const NAME_ID_FORMATS = [
  { value: '', label: 'As the IdP’s metadata says (or the IdP’s default)' },
  { value: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress', label: 'Email address' },
  { value: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent', label: 'Persistent' },
  { value: 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient', label: 'Transient' },
  { value: 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified', label: 'Unspecified' },
  { value: 'urn:oasis:names:tc:SAML:2.0:nameid-format:kerberos', label: 'Kerberos' },
];
const BINDINGS = [{ value: 'http_redirect', label: 'HTTP-Redirect' }, { value: 'http_post', label: 'HTTP-POST' }];
const MAPPED = ['email', 'given_name', 'family_name', 'display_name', 'groups', 'department'];
const MAPPING_HINTS = {
  email: 'e.g. email or http://schemas…/emailaddress', given_name: 'firstName', family_name: 'lastName',
  display_name: 'displayName', groups: 'groups', department: 'department',
};

export async function renderConnection(panel, ctx, id) {
  const path = `/tenants/${ctx.tenant.id}/saml-connections/${seg(id)}`;
  const connection = await api('GET', path);
  const draw = (c) => drawConnection(panel, ctx, c, path, redraw);
  const redraw = redrawer(panel, draw);
  draw(connection);
}

function drawConnection(panel, ctx, connection, path, redraw) {
  const testArea = h('div', { class: 'test-result', 'aria-live': 'polite' });
  append(panel,
    connectionHeader(ctx, connection, { path, protocol: 'SAML', redraw, testArea }),
    testArea,
    spCard(connection, path),
    metadataCard(connection, path, redraw),
    idpCard(connection, path, redraw),
    optionsCard(connection, path, redraw),
    rotationCard(connection, path, redraw),
  );
}

// ---------------------------------------------------------------------------------------------
// What the IdP admin needs

function spCard(connection, path) {
  const sp = connection.sp;
  return section('For the IdP administrator', {
    id: 'saml-sp',
    intro: 'Create a SAML application at the IdP with these values, or upload the SP metadata there.',
    actions: [linkButton('Download SP metadata', `/api/v1${path}/sp-metadata`, { iconName: 'download', attrs: { download: 'portcullis-sp-metadata.xml' } })],
  },
  h('div', { class: 'grid-2' },
    copyBox(sp.acs_url, { label: 'ACS (reply) URL', help: 'Okta: Single sign-on URL. Entra ID: Reply URL. HTTP-POST binding.' }),
    copyBox(sp.entity_id, { label: 'SP entity ID (audience)', help: 'Okta: Audience URI. Entra ID: Identifier.' }),
    copyBox(sp.slo_url, { label: 'Single logout URL', help: 'Optional at most IdPs.' }),
    copyBox(sp.metadata_url, { label: 'SP metadata URL', help: 'Public: IdPs that read metadata by URL can use it.' })),
  h('details', { class: 'disclosure' },
    h('summary', null, 'SP certificates'),
    copyBox(sp.signing_certificate, { label: 'Signing certificate (requests and logout messages)', multiline: true }),
    copyBox(sp.encryption_certificate, { label: 'Encryption certificate (for encrypted assertions)', multiline: true })));
}

// ---------------------------------------------------------------------------------------------
// IdP metadata

function metadataCard(connection, path, redraw) {
  const source = connection.metadata_source;
  return section('IdP metadata', {
    id: 'saml-metadata',
    intro: 'The IdP’s metadata fills its entity ID, sign-on URL and signing certificates. Signed metadata must verify against the pinned certificate or the certificates already trusted.',
  },
  source ? sourceDetails(source, path, redraw) : null,
  connection.metadata_valid_until ? h('p', { class: 'small muted' }, 'The metadata is valid until ', formatTime(connection.metadata_valid_until), '.') : null,
  h('div', { class: 'grid-2' }, uploadForm(path, redraw), urlForm(connection, path, redraw)));
}

function sourceDetails(source, path, redraw) {
  const refresh = button('Refresh now', {
    onClick: async () => {
      const updated = await api('POST', `${path}/idp-metadata/refresh`);
      toast('The metadata was fetched again');
      redraw(updated, 'saml-metadata');
    },
  });
  const stop = button('Stop fetching', {
    kind: 'ghost',
    onClick: async () => {
      const ok = await confirmDialog(h('p', null, 'Stop fetching the metadata from its URL? The current settings stay; certificate changes at the IdP are no longer picked up by themselves.'),
        { title: 'Stop fetching metadata', confirmLabel: 'Stop fetching', danger: false });
      if (!ok) return;
      redraw(await api('PATCH', path, { metadata_url: null }), 'saml-metadata');
    },
  });
  return h('div', null,
    source.last_error ? notice('warn', h('p', null, h('strong', null, 'The last refresh failed: '), source.last_error, '. The connection keeps the settings of the last good fetch.')) : null,
    details([
      ['Fetched from', h('code', null, source.url)],
      ['Refreshed', `every ${source.refresh_hours} hours`],
      ['Last fetched', formatTime(source.fetched_at, { relative: true })],
    ]),
    h('div', { class: 'form-actions' }, refresh, stop));
}

function uploadForm(path, redraw) {
  const form = h('form', { class: 'form' },
    h('h3', null, 'Upload metadata'),
    field({ label: 'Metadata file', name: 'file', type: 'file', optional: true, attrs: { accept: '.xml,application/xml,text/xml,application/samlmetadata+xml' } }),
    field({ label: 'Or paste the XML', name: 'xml', textarea: true, rows: 5, optional: true, spellcheck: false, errorFields: ['idp_metadata'], attrs: { class: 'mono' } }),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Upload metadata')));
  onSubmit(form, async (values) => {
    const document = values.file?.length ? await values.file[0].text() : values.xml;
    if (!document) throw Object.assign(new Error('choose a metadata file or paste the XML'), { field: 'idp_metadata' });
    const updated = await api('PUT', `${path}/idp-metadata`, document, { contentType: 'application/xml' });
    toast('The IdP metadata was read');
    redraw(updated, 'saml-idp');
  });
  return form;
}

function urlForm(connection, path, redraw) {
  const source = connection.metadata_source;
  const form = h('form', { class: 'form' },
    h('h3', null, source ? 'Change the metadata URL' : 'Fetch from a URL'),
    field({ label: 'Metadata URL', name: 'metadata_url', type: 'url', required: true, value: source?.url ?? '', spellcheck: false, placeholder: 'https://idp.example.com/metadata.xml' }),
    field({ label: 'Refresh every (hours)', name: 'metadata_refresh_hours', type: 'number', min: 1, max: 168, value: source?.refresh_hours ?? 24 }),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-secondary' }, source ? 'Save' : 'Fetch metadata')));
  onSubmit(form, async (values) => {
    const body = { metadata_refresh_hours: numberOrNull(values.metadata_refresh_hours) };
    if (values.metadata_url !== source?.url) body.metadata_url = values.metadata_url;
    const updated = await api('PATCH', path, body);
    toast('The metadata source is saved');
    redraw(updated, 'saml-metadata');
  });
  return form;
}

// ---------------------------------------------------------------------------------------------
// IdP settings by hand

function idpCard(connection, path, redraw) {
  const idp = connection.idp;
  const form = h('form', { class: 'form form-wide' },
    h('div', { class: 'form-row' },
      field({ label: 'IdP entity ID (issuer)', name: 'entity_id', value: idp.entity_id, spellcheck: false, errorFields: ['idp.entity_id'] }),
      field({ label: 'Sign-on URL', name: 'sso_url', type: 'url', value: idp.sso_url, spellcheck: false, errorFields: ['idp.sso_url'] })),
    h('div', { class: 'form-row' },
      field({ label: 'Sign-on binding', name: 'sso_binding', options: BINDINGS, value: idp.sso_binding, errorFields: ['idp.sso_binding'] }),
      field({ label: 'Logout URL', name: 'slo_url', type: 'url', value: idp.slo_url ?? '', optional: true, spellcheck: false, errorFields: ['idp.slo_url'] }),
      field({ label: 'Logout binding', name: 'slo_binding', options: BINDINGS, value: idp.slo_binding, errorFields: ['idp.slo_binding'] })),
    field({ label: 'The IdP wants signed requests', name: 'wants_signed_requests', type: 'checkbox', checked: idp.wants_signed_requests, help: 'Authentication requests are always signed; this records what the IdP asks for.' }),
    h('h3', null, 'Signing certificates'),
    certificatesTable(idp.signing_certificates),
    field({
      label: 'Replace the certificates', name: 'signing_certificates', textarea: true, rows: 5, optional: true, spellcheck: false,
      errorFields: ['idp.signing_certificates'], attrs: { class: 'mono' },
      help: 'Up to 5 PEM certificates (with their BEGIN/END lines), or base64 separated by blank lines. Leave empty to keep the current ones. During an IdP certificate rotation, give both.',
    }),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save IdP settings')));
  onSubmit(form, async (values) => {
    const next = {
      entity_id: values.entity_id, sso_url: values.sso_url, sso_binding: values.sso_binding,
      slo_url: values.slo_url || null, slo_binding: values.slo_binding, wants_signed_requests: values.wants_signed_requests,
    };
    const changes = {};
    for (const [key, value] of Object.entries(next)) if (value !== (idp[key] ?? null)) changes[key] = value;
    const certificates = splitCertificates(values.signing_certificates);
    if (certificates.length) changes.signing_certificates = certificates;
    if (!Object.keys(changes).length) {
      toast('Nothing to save: no setting was changed', 'info');
      return;
    }
    const updated = await api('PATCH', path, { idp: changes });
    toast('IdP settings saved');
    redraw(updated, 'saml-idp');
  });
  return section('IdP settings', { id: 'saml-idp', intro: 'Filled by the metadata; edit them by hand when the IdP has none.' }, form);
}

function certificatesTable(certificates) {
  return table([
    { label: 'SHA-256 fingerprint', cell: (c) => h('span', { class: 'cert' }, c.sha256_fingerprint.replace(/(..)(?!$)/g, '$1:')) },
    { label: 'Expires', cell: (c) => (c.not_after ? [formatTime(c.not_after), expiryBadge(c.not_after)] : null) },
  ], certificates, { caption: 'Signing certificates', empty: { title: 'No signing certificate', text: 'Upload the IdP’s metadata or paste its certificate below: responses cannot be verified without one.' } });
}

function expiryBadge(notAfter) {
  const days = (new Date(notAfter).getTime() - Date.now()) / 86400000;
  if (days < 0) return [' ', statusBadge('expired')];
  if (days < 30) return [' ', statusBadge('expiring', `expires in ${Math.ceil(days)} days`)];
  return null;
}

/** PEM blocks, or base64 certificates separated by blank lines. */
function splitCertificates(text) {
  const value = String(text || '').trim();
  if (!value) return [];
  const pems = value.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  if (pems) return pems;
  return value.split(/\n\s*\n/).map((s) => s.replace(/\s+/g, '')).filter(Boolean);
}

// ---------------------------------------------------------------------------------------------
// Sign-in options

function optionsCard(connection, path, redraw) {
  const form = h('form', { class: 'form form-wide' },
    h('div', { class: 'form-row' },
      field({ label: 'Name', name: 'name', value: connection.name, required: true }),
      field({ label: 'NameID format', name: 'name_id_format', options: NAME_ID_FORMATS, value: connection.name_id_format ?? '' })),
    h('h3', null, 'Attribute mapping'),
    h('p', { class: 'small muted' }, 'Which SAML attribute fills each field. Empty: the names Okta, Entra ID and ADFS send.'),
    mappingFields(connection.attribute_mapping, MAPPED, MAPPING_HINTS),
    h('h3', null, 'Behaviour'),
    field({ label: 'Create unknown people at their first sign-in (just-in-time)', name: 'jit_provisioning', type: 'checkbox', checked: connection.jit_provisioning, help: 'For IdPs that do not provision over SCIM. Created people are audited as created by the IdP.' }),
    field({ label: 'Allow IdP-initiated sign-in', name: 'allow_idp_initiated', type: 'checkbox', checked: connection.allow_idp_initiated, help: 'Accepts unsolicited responses (a tile in the IdP’s dashboard). Off is safer.' }),
    field({ label: 'Accept SHA-1 signatures', name: 'allow_sha1', type: 'checkbox', checked: connection.allow_sha1, help: 'Only for IdPs that cannot sign with SHA-256.' }),
    field({ label: 'Allowed clock skew (seconds)', name: 'clock_skew_secs', type: 'number', min: 0, max: 600, value: connection.clock_skew_secs }),
    field({
      label: 'Pinned metadata signing certificate', name: 'metadata_certificate', textarea: true, rows: 3, optional: true, spellcheck: false, attrs: { class: 'mono' },
      value: connection.metadata_certificate?.certificate ?? '',
      help: 'When set, signed metadata must be signed with this key. Empty removes the pin.',
    }),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save options')));
  onSubmit(form, async (values) => {
    const changes = optionChanges(connection, values);
    if (!Object.keys(changes).length) {
      toast('Nothing to save: no option was changed', 'info');
      return;
    }
    const updated = await api('PATCH', path, changes);
    toast('Options saved');
    redraw(updated, 'saml-options');
  });
  return section('Sign-in options', { id: 'saml-options' }, form);
}

function optionChanges(connection, values) {
  const changes = {};
  if (values.name !== connection.name) changes.name = values.name;
  if ((values.name_id_format || null) !== (connection.name_id_format ?? null)) changes.name_id_format = values.name_id_format || null;
  const mapping = mappingFrom(values, MAPPED);
  if (!sameMapping(mapping, connection.attribute_mapping)) changes.attribute_mapping = mapping;
  for (const key of ['jit_provisioning', 'allow_idp_initiated', 'allow_sha1']) {
    if (values[key] !== connection[key]) changes[key] = values[key];
  }
  const skew = numberOrNull(values.clock_skew_secs);
  if (skew !== connection.clock_skew_secs) changes.clock_skew_secs = skew;
  const pinned = values.metadata_certificate.replace(/\s+/g, '');
  const current = (connection.metadata_certificate?.certificate ?? '').replace(/\s+/g, '');
  if (pinned !== current) changes.metadata_certificate = values.metadata_certificate || null;
  return changes;
}

// ---------------------------------------------------------------------------------------------
// SP key rotation: prepare, activate, forget the old keys

function rotationCard(connection, path, redraw) {
  const sp = connection.sp;
  const stage = sp.next ? 2 : sp.previous_replaced_at ? 3 : 1;
  const run = (method, suffix, message, focus = 'saml-rotation') => async () => {
    const updated = await api(method, `${path}/sp-keys${suffix}`);
    toast(message);
    redraw(updated, focus);
  };
  const actions = {
    1: button('Prepare new keys', { onClick: run('POST', '', 'New SP keys are published beside the current ones') }),
    2: button('Start signing with the new keys', {
      kind: 'primary',
      onClick: async () => {
        const ok = await confirmDialog(h('p', null, 'Has the IdP been given the new SP metadata (or the new certificates)? From now on requests are signed with the new key; the old encryption key still decrypts.'),
          { title: 'Activate new SP keys', confirmLabel: 'Activate', danger: false });
        if (ok) await run('POST', '/activate', 'The new SP keys are active')();
      },
    }),
    3: button('Forget the replaced keys', {
      kind: 'danger-outline',
      onClick: async () => {
        const ok = await confirmDialog(h('p', null, 'Forget the replaced keys? Assertions the IdP still encrypts to the old certificate will no longer decrypt. Do this once the IdP uses the new certificate.'),
          { title: 'End the overlap', confirmLabel: 'Forget old keys' });
        if (ok) await run('DELETE', '/previous', 'The replaced SP keys are forgotten')();
      },
    }),
  };
  const steps = [
    ['Prepare new keys', 'New keys are published in the SP metadata beside the current ones. Requests are still signed with the current key.'],
    ['Give the IdP the new metadata, then activate', sp.next ? ['Prepared ', formatTime(sp.next.prepared_at, { relative: true }), '. Upload the SP metadata (or the new certificates) at the IdP, then start signing with the new keys.'] : 'Requests are then signed with the new key; the replaced encryption key still decrypts.'],
    ['Forget the replaced keys', sp.previous_replaced_at ? ['Replaced ', formatTime(sp.previous_replaced_at, { relative: true }), '. Once the IdP encrypts to the new certificate, forget the old keys.'] : 'Once the IdP encrypts to the new certificate.'],
  ];
  return section('SP key rotation', { id: 'saml-rotation', intro: 'Rotating the SP keys never refuses a sign-in: each step is audited with the certificates’ fingerprints.' },
    h('ol', { class: 'steps' }, steps.map(([title, text], i) => h('li', { class: i + 1 < stage ? 'done' : i + 1 === stage ? 'current' : '' }, h('strong', null, title), text))),
    sp.next ? h('details', { class: 'disclosure' }, h('summary', null, 'The new certificates'),
      copyBox(sp.next.signing_certificate, { label: 'New signing certificate', multiline: true }),
      copyBox(sp.next.encryption_certificate, { label: 'New encryption certificate', multiline: true })) : null,
    h('div', { class: 'form-actions' }, actions[stage]));
}
