// #/tenants/{id}/sso: the tenant's SAML and OpenID Connect connections to its IdP, and creating
// one. A connection's own page is #/tenants/{id}/sso/saml/{c} or …/sso/oidc/{c}.

import {
  api, h, button, table, formatTime, statusBadge, emptyState, field, choiceGroup, formDialog, toast, append,
} from '/admin/lib.js';
import { connectionStatus } from '/admin/pages/sso-common.js';

export async function renderTab(panel, ctx) {
  const [kind, id] = ctx.rest;
  if (kind === 'saml' && id) {
    await (await import('/admin/pages/sso-saml.js')).renderConnection(panel, ctx, id);
  } else if (kind === 'oidc' && id) {
    await (await import('/admin/pages/sso-oidc.js')).renderConnection(panel, ctx, id);
  } else {
    await renderList(panel, ctx);
  }
}

async function renderList(panel, ctx) {
  const t = `/tenants/${ctx.tenant.id}`;
  const [saml, oidc] = await Promise.all([api('GET', `${t}/saml-connections`), api('GET', `${t}/oidc-connections`)]);
  const rows = [
    ...saml.items.map((c) => ({ ...c, protocol: 'saml', idp: c.idp.entity_id })),
    ...oidc.items.map((c) => ({ ...c, protocol: 'oidc', idp: c.issuer })),
  ].sort((a, b) => a.created_at.localeCompare(b.created_at));
  const newSaml = () => button('New SAML connection', { kind: 'primary', iconName: 'plus', onClick: () => createSaml(ctx) });
  const newOidc = () => button('New OpenID Connect connection', { iconName: 'plus', onClick: () => createOidc(ctx) });
  append(panel,
    h('div', { class: 'panel-head' },
      h('h2', { dataset: { heading: '' } }, 'Single sign-on'),
      h('div', { class: 'page-actions' }, newSaml(), newOidc())),
    h('p', { class: 'muted' }, 'People with an address at a verified domain sign in through the oldest enabled connection. Okta, Entra ID, ADFS and most IdPs speak both protocols; SAML is the most common choice.'),
    table([
      { label: 'Connection', cell: (c) => h('a', { class: 'row-link', href: `${ctx.base}/sso/${c.protocol}/${c.id}` }, c.name) },
      { label: 'Protocol', cell: (c) => (c.protocol === 'saml' ? 'SAML 2.0' : 'OpenID Connect') },
      { label: 'Status', cell: (c) => statusBadge(connectionStatus(c)) },
      { label: 'IdP', cell: (c) => (c.idp ? h('code', null, c.idp) : h('span', { class: 'muted' }, 'not set yet')) },
      { label: 'Created', cell: (c) => formatTime(c.created_at) },
    ], rows, {
      caption: 'SSO connections',
      empty: emptyState('No SSO connection yet',
        'Connect the customer’s IdP (Okta, Entra ID, ADFS, Google Workspace…) with SAML or OpenID Connect, or send their IT admin a setup link to do it. Until then people sign in with a password or Google, unless the tenant requires SSO.',
        [newSaml(), newOidc()]),
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Creating

async function createSaml(ctx) {
  const source = choiceGroup({
    legend: 'The IdP’s settings', name: 'source', value: 'xml',
    options: [
      { value: 'xml', label: 'Upload or paste its metadata XML' },
      { value: 'url', label: 'Fetch them from its metadata URL', help: 'Refreshed every 24 hours, so certificate rotations at the IdP are followed.' },
      { value: 'later', label: 'Later', help: 'Enter them by hand, or upload the metadata once the IdP admin sends it.' },
    ],
  });
  const file = field({ label: 'Metadata file', name: 'metadata_file', type: 'file', optional: true, attrs: { accept: '.xml,application/xml,text/xml,application/samlmetadata+xml' } });
  const xml = field({ label: 'Or paste the metadata', name: 'idp_metadata', textarea: true, rows: 6, optional: true, spellcheck: false, attrs: { class: 'mono' } });
  const url = field({ label: 'Metadata URL', name: 'metadata_url', type: 'url', placeholder: 'https://login.microsoftonline.com/…/federationmetadata.xml', spellcheck: false });
  const show = (value) => {
    file.hidden = xml.hidden = value !== 'xml';
    url.hidden = value !== 'url';
    url.querySelector('input').required = value === 'url';
  };
  source.addEventListener('change', (event) => show(event.target.value));
  show('xml');
  const created = await formDialog({
    title: 'New SAML connection',
    wide: true,
    fields: [
      field({ label: 'Name', name: 'name', required: true, placeholder: 'Okta', help: 'Shown to operators and in the audit trail.' }),
      source, file, xml, url,
    ],
    submitLabel: 'Create connection',
    submit: async (values) => {
      const body = { name: values.name };
      if (values.source === 'xml') {
        const document = values.metadata_file?.length ? await values.metadata_file[0].text() : values.idp_metadata;
        if (document) body.idp_metadata = document;
      } else if (values.source === 'url') {
        body.metadata_url = values.metadata_url;
      }
      return api('POST', `/tenants/${ctx.tenant.id}/saml-connections`, body);
    },
  });
  if (created?.id) {
    toast(created.enabled ? `${created.name} is created and enabled` : `${created.name} is created`);
    ctx.navigate(`${ctx.base}/sso/saml/${created.id}`);
  }
}

async function createOidc(ctx) {
  const created = await formDialog({
    title: 'New OpenID Connect connection',
    intro: 'Register Portcullis at the IdP as a web application first; its redirect URI is shown on the connection’s page once it is created. Fields left empty can be filled in later.',
    fields: [
      field({ label: 'Name', name: 'name', required: true, placeholder: 'Okta' }),
      field({
        label: 'Issuer', name: 'issuer', type: 'url', optional: true, spellcheck: false, placeholder: 'https://acme.okta.com',
        help: 'Exactly as the IdP names itself. Okta: https://{org}.okta.com; Entra ID: https://login.microsoftonline.com/{tenant id}/v2.0 (not “common”). Its discovery document is fetched at once.',
      }),
      field({ label: 'Client ID', name: 'client_id', optional: true, spellcheck: false }),
      field({ label: 'Client secret', name: 'client_secret', type: 'password', optional: true, autocomplete: 'off', help: 'Sealed at rest and never shown again.' }),
    ],
    submitLabel: 'Create connection',
    submit: (values) => {
      const body = { name: values.name };
      for (const key of ['issuer', 'client_id', 'client_secret']) if (values[key]) body[key] = values[key];
      return api('POST', `/tenants/${ctx.tenant.id}/oidc-connections`, body);
    },
  });
  if (created?.id) {
    toast(created.enabled ? `${created.name} is created and enabled` : `${created.name} is created`);
    ctx.navigate(`${ctx.base}/sso/oidc/${created.id}`);
  }
}
