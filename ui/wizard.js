// The setup wizard: one tenant's SSO and SCIM, in seven steps, for an operator (from the tenant's
// page) or for the customer's IT admin (from a setup link, who sees nothing else). Every value
// the IdP admin must paste has a copy button; each step says where it goes in Okta and Entra ID.
//
// The wizard keeps no state of its own beyond the step on screen: what is done is read back from
// the server (the connection, the domains, the tokens, the policy), so it can be left and resumed.

import {
  api, h, replace, field, choiceGroup, onSubmit, button, notice, copyBox,
  formatTime, statusBadge, table, emptyState, loading, errorState, confirmDialog, seg, errorMessage,
  toast, icon, announce, plural,
} from '/admin/lib.js';

const STEPS = [
  { id: 'protocol', title: 'Choose the protocol' },
  { id: 'idp', title: 'Connect your identity provider' },
  { id: 'attributes', title: 'Map attributes' },
  { id: 'domains', title: 'Verify your domains' },
  { id: 'test', title: 'Test the connection' },
  { id: 'scim', title: 'Set up provisioning' },
  { id: 'roles', title: 'Map groups to roles' },
];

const VENDORS = [
  { value: 'okta', label: 'Okta' },
  { value: 'entra', label: 'Microsoft Entra ID' },
  { value: 'other', label: 'Another identity provider', help: 'ADFS, Ping, Google Workspace, Keycloak, JumpCloud…' },
];

/** Mounts the wizard for `tenant` ({id, slug, display_name}) in `container`. */
export function renderWizard(container, { tenant, session }) {
  const wizard = new Wizard(container, tenant, session);
  wizard.start();
  return wizard;
}

class Wizard {
  constructor(container, tenant, session) {
    this.container = container;
    this.tenant = tenant;
    this.session = session;
    this.base = `/tenants/${seg(tenant.id)}`;
    this.publicUrl = session?.public_url || window.location.origin;
    this.storageKey = `portcullis-wizard:${tenant.id}`;
    this.state = JSON.parse(sessionStorage.getItem(this.storageKey) || '{}');
    this.connection = null;
  }

  remember(changes) {
    Object.assign(this.state, changes);
    sessionStorage.setItem(this.storageKey, JSON.stringify(this.state));
  }

  async start() {
    replace(this.container, loading('Loading the setup…'));
    try {
      await this.loadConnection();
    } catch (error) {
      replace(this.container, errorState(error, () => this.start()));
      return;
    }
    this.nav = h('ol', { class: 'wizard-steps' });
    this.body = h('div', { class: 'wizard-body' });
    replace(this.container, h('div', { class: 'wizard' },
      h('header', { class: 'wizard-head' },
        h('h1', null, `Set up single sign-on for ${this.tenant.display_name}`),
        h('p', { class: 'wizard-intro' },
          'Connect your identity provider, prove you own your email domains, provision users with SCIM and ',
          'decide who gets which role. Each step saves as you go: you can stop and come back.')),
      h('nav', { 'aria-label': 'Setup steps' }, this.nav),
      this.body));
    const saved = STEPS.findIndex((s) => s.id === this.state.step);
    this.show(saved >= 0 ? STEPS[saved].id : (this.connection ? 'idp' : 'protocol'));
  }

  /** The connection the wizard works on: the one it made, else the tenant's first. */
  async loadConnection() {
    const [saml, oidc] = await Promise.all([
      api('GET', `${this.base}/saml-connections`),
      api('GET', `${this.base}/oidc-connections`),
    ]);
    const all = [
      ...(saml.items || []).map((c) => ({ protocol: 'saml', connection: c })),
      ...(oidc.items || []).map((c) => ({ protocol: 'oidc', connection: c })),
    ];
    this.existing = all;
    const chosen = all.find((c) => c.connection.id === this.state.connectionId) || all[0];
    this.protocol = chosen?.protocol || null;
    this.connection = chosen?.connection || null;
  }

  get connectionPath() {
    const kind = this.protocol === 'saml' ? 'saml-connections' : 'oidc-connections';
    return `${this.base}/${kind}/${seg(this.connection.id)}`;
  }

  async reloadConnection() {
    this.connection = await api('GET', this.connectionPath);
    return this.connection;
  }

  show(stepId) {
    this.current = stepId;
    this.remember({ step: stepId });
    this.renderNav();
    const step = STEPS.find((s) => s.id === stepId);
    const index = STEPS.indexOf(step);
    const heading = h('h2', { tabindex: '-1', class: 'wizard-step-title' },
      h('span', { class: 'wizard-step-number' }, `Step ${index + 1} of ${STEPS.length}`), step.title);
    const content = h('div', { class: 'wizard-step', dataset: { step: stepId } }, loading());
    replace(this.body, heading, content);
    heading.focus();
    announce(`Step ${index + 1}: ${step.title}`);
    Promise.resolve(this[`step_${stepId}`](content)).catch((error) => {
      replace(content, errorState(error, () => this.show(stepId)));
    });
  }

  renderNav() {
    const needsConnection = new Set(['idp', 'attributes', 'test']);
    replace(this.nav, STEPS.map((step, index) => {
      const blocked = needsConnection.has(step.id) && !this.connection;
      const current = step.id === this.current;
      return h('li', { class: ['wizard-nav-item', current && 'is-current'] },
        h('button', {
          type: 'button', class: 'wizard-nav-button', disabled: blocked,
          'aria-current': current ? 'step' : null,
          title: blocked ? 'Choose the protocol first' : null,
          on: { click: () => this.show(step.id) },
        }, h('span', { class: 'wizard-nav-number', 'aria-hidden': 'true' }, String(index + 1)), step.title));
    }));
  }

  /**
   * Back and Continue. With `submits`, Continue is that form's submit button ("Save and
   * continue"): what was typed is never left behind unsaved.
   */
  footer(nextLabel = 'Continue', { onNext, submits } = {}) {
    const index = STEPS.findIndex((s) => s.id === this.current);
    const next = STEPS[index + 1];
    let forward;
    if (submits) {
      submits.id = submits.id || `wizard-form-${this.current}`;
      forward = h('button', { type: 'submit', form: submits.id, class: 'btn btn-primary' }, 'Save and continue');
    } else if (next) {
      forward = button(nextLabel, { kind: 'primary', onClick: async () => { if (onNext) await onNext(); this.show(next.id); } });
    } else {
      forward = button('Finish', { kind: 'primary', onClick: () => this.finish() });
    }
    return h('div', { class: 'wizard-footer' },
      index > 0 ? button('Back', { onClick: () => this.show(STEPS[index - 1].id) }) : h('span'), forward);
  }

  vendorName() {
    return VENDORS.find((v) => v.value === this.state.vendor)?.label || 'your identity provider';
  }

  // ---------------------------------------------------------------------------------------------
  // 1. Protocol

  step_protocol(content) {
    const existing = this.existing.length
      ? h('div', { class: 'wizard-existing' },
        notice('info', `${this.tenant.display_name} already has ${plural(this.existing.length, 'connection')}. Continue with one, or add another below.`),
        h('ul', { class: 'wizard-choice-list' }, this.existing.map(({ protocol, connection }) => h('li', null,
          h('span', null, h('strong', null, connection.name), ` · ${protocol === 'saml' ? 'SAML 2.0' : 'OpenID Connect'} · `,
            statusBadge(connection.enabled ? 'enabled' : 'disabled')),
          button('Continue with this one', {
            small: true,
            onClick: () => {
              this.protocol = protocol;
              this.connection = connection;
              this.remember({ connectionId: connection.id, protocol });
              this.show('idp');
            },
          })))))
      : null;
    const form = h('form', { class: 'form wizard-form' },
      choiceGroup({
        legend: 'How does your identity provider sign people in?', name: 'protocol',
        value: this.state.protocol || 'saml',
        options: [
          { value: 'saml', label: 'SAML 2.0', help: 'Supported by every enterprise IdP. Choose this if unsure.' },
          { value: 'oidc', label: 'OpenID Connect', help: 'A newer standard: Okta, Entra ID, Auth0, Keycloak, Ping.' },
        ],
      }),
      choiceGroup({ legend: 'Which identity provider do you use?', name: 'vendor', value: this.state.vendor || 'okta', options: VENDORS }),
      field({
        label: 'Connection name', name: 'name', required: true,
        help: 'Shown to you and in the audit trail, e.g. the IdP’s name.',
      }),
      h('div', { class: 'wizard-footer' }, h('span'), h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create the connection')));
    // The name follows the chosen IdP until the person types one of their own.
    const nameInput = form.querySelector('input[name=name]');
    let suggested = '';
    const suggestName = () => {
      const vendor = form.querySelector('input[name=vendor]:checked')?.value;
      const name = vendor === 'other' ? 'SSO' : VENDORS.find((v) => v.value === vendor).label.replace('Microsoft ', '');
      if (nameInput.value === suggested) nameInput.value = name;
      suggested = name;
    };
    form.addEventListener('change', (event) => { if (event.target.name === 'vendor') suggestName(); });
    suggestName();
    onSubmit(form, async (values) => {
      const protocol = values.protocol === 'oidc' ? 'oidc' : 'saml';
      const name = values.name;
      const kind = protocol === 'saml' ? 'saml-connections' : 'oidc-connections';
      const connection = await api('POST', `${this.base}/${kind}`, { name });
      this.protocol = protocol;
      this.connection = connection;
      this.existing.push({ protocol, connection });
      this.remember({ connectionId: connection.id, protocol, vendor: values.vendor });
      toast(`Connection “${connection.name}” created`);
      this.show('idp');
    });
    replace(content, existing, form);
  }

  // ---------------------------------------------------------------------------------------------
  // 2. Identity provider

  step_idp(content) {
    if (this.protocol === 'saml') this.samlIdp(content);
    else this.oidcIdp(content);
  }

  samlIdp(content) {
    const c = this.connection;
    const metadataHref = `/api/v1${this.connectionPath}/sp-metadata`;
    const give = h('section', { class: 'card' },
      h('h3', null, `1. Add Portcullis as an application in ${this.vendorName()}`),
      instructions(SAML_INSTRUCTIONS[this.state.vendor] || SAML_INSTRUCTIONS.other),
      copyBox(c.sp.acs_url, { label: 'Single sign-on URL (Assertion Consumer Service URL, Reply URL)' }),
      copyBox(c.sp.entity_id, { label: 'Audience URI (SP Entity ID, Identifier)',
        help: 'It is also the address of the SP metadata: IdPs that read metadata from a URL need nothing else.' }),
      h('p', null, h('a', { href: metadataHref, download: `portcullis-${this.tenant.slug}-sp-metadata.xml`, class: 'btn btn-secondary btn-small' },
        icon('download'), 'Download SP metadata')));
    const summary = h('div', { class: 'wizard-idp-summary' });
    const renderSummary = () => replace(summary, idpSummary(this.connection));
    renderSummary();

    const upload = h('form', { class: 'form wizard-form' },
      field({ label: 'IdP metadata file', name: 'file', type: 'file', attrs: { accept: '.xml,application/xml,text/xml' }, errorFields: ['idp_metadata'],
        help: 'The XML file your IdP offers for download (“IdP metadata”, “Federation Metadata XML”).' }),
      field({ label: 'Or paste the metadata XML', name: 'xml', textarea: true, rows: 5, spellcheck: false, optional: true }),
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Upload metadata'));
    onSubmit(upload, async (values) => {
      const file = values.file && values.file[0];
      const xml = file ? await file.text() : values.xml;
      if (!xml) throw Object.assign(new Error('Choose the metadata file, or paste its XML.'), { field: 'idp_metadata' });
      this.connection = await api('PUT', `${this.connectionPath}/idp-metadata`, xml, { contentType: 'application/xml' });
      upload.reset();
      renderSummary();
      replace(manualSlot, manualForm());
      toast('Metadata read: the connection is filled in');
    });

    const byUrl = h('form', { class: 'form wizard-form' },
      field({ label: 'IdP metadata URL', name: 'metadata_url', type: 'url', value: c.metadata_source?.url || '',
        placeholder: 'https://login.microsoftonline.com/…/federationmetadata.xml',
        help: 'Portcullis fetches it now and every 24 hours, so certificate rotations at the IdP need nothing from you.' }),
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Fetch metadata'));
    onSubmit(byUrl, async (values) => {
      this.connection = await api('PATCH', this.connectionPath, { metadata_url: values.metadata_url });
      renderSummary();
      replace(manualSlot, manualForm());
      toast('Metadata fetched: the connection is filled in');
    });

    const manualSlot = h('div');
    const manualForm = () => {
      const idp = this.connection.idp || {};
      const form = h('form', { class: 'form wizard-form' },
        field({ label: 'IdP entity ID (Issuer)', name: 'entity_id', value: idp.entity_id || '', errorFields: ['idp.entity_id'] }),
        field({ label: 'IdP single sign-on URL', name: 'sso_url', type: 'url', value: idp.sso_url || '', errorFields: ['idp.sso_url'] }),
        field({ label: 'IdP signing certificate (PEM)', name: 'certificate', textarea: true, rows: 5, spellcheck: false,
          errorFields: ['idp.signing_certificates'],
          help: idp.signing_certificates?.length ? 'Leave empty to keep the certificates shown above; paste one to replace them.' : 'Begins with -----BEGIN CERTIFICATE-----' }),
        h('button', { type: 'submit', class: 'btn btn-secondary' }, 'Save these settings'));
      onSubmit(form, async (values) => {
        const update = { entity_id: values.entity_id, sso_url: values.sso_url };
        if (values.certificate) update.signing_certificates = [values.certificate];
        this.connection = await api('PATCH', this.connectionPath, { idp: update });
        renderSummary();
        toast('IdP settings saved');
      });
      return form;
    };
    replace(manualSlot, manualForm());

    const tell = h('section', { class: 'card' },
      h('h3', null, '2. Tell Portcullis about your IdP'),
      h('p', null, 'Upload the metadata your IdP gives you: it fills in everything below. A metadata URL keeps it current. Or enter the values by hand.'),
      summary,
      tabs([
        { label: 'Upload metadata', content: upload },
        { label: 'Metadata URL', content: byUrl },
        { label: 'Enter by hand', content: manualSlot },
      ]));
    replace(content, give, tell, this.footer('Continue', {
      onNext: async () => { await this.reloadConnection(); },
    }));
  }

  oidcIdp(content) {
    const c = this.connection;
    const give = h('section', { class: 'card' },
      h('h3', null, `1. Register Portcullis as a web application in ${this.vendorName()}`),
      instructions(OIDC_INSTRUCTIONS[this.state.vendor] || OIDC_INSTRUCTIONS.other),
      copyBox(c.urls.callback, { label: 'Sign-in redirect URI' }),
      copyBox(c.urls.start, { label: 'Initiate login URI' }),
      copyBox(c.urls.backchannel_logout, { label: 'Back-channel logout URI', help: 'Require the session id (sid) if the IdP asks.' }),
      copyBox(c.urls.post_logout_redirect, { label: 'Sign-out redirect URI' }));
    const form = h('form', { class: 'form wizard-form' },
      field({ label: 'Issuer', name: 'issuer', type: 'url', value: c.issuer || '', required: true,
        placeholder: this.state.vendor === 'entra' ? 'https://login.microsoftonline.com/{tenant id}/v2.0' : 'https://acme.okta.com',
        help: 'Portcullis reads its discovery document now to check it.' }),
      field({ label: 'Client ID', name: 'client_id', value: c.client_id || '', required: true, spellcheck: false }),
      field({ label: 'Client secret', name: 'client_secret', type: 'password', autocomplete: 'off',
        placeholder: c.client_secret_set ? 'Saved — leave empty to keep it' : '', required: !c.client_secret_set,
        help: 'Stored encrypted; never shown again.' }),
      field({ label: 'Scopes', name: 'scopes', value: (c.scopes || ['openid', 'email', 'profile']).join(' '),
        help: 'Add “groups” if your IdP sends groups that way. Saving checks the issuer’s discovery document.' }));
    onSubmit(form, async (values) => {
      const update = { issuer: values.issuer, client_id: values.client_id, scopes: values.scopes.split(/\s+/).filter(Boolean) };
      if (values.client_secret) update.client_secret = values.client_secret;
      this.connection = await api('PATCH', this.connectionPath, update);
      form.querySelector('input[name=client_secret]').value = '';
      toast('Saved: the issuer answered with its discovery document');
      this.show('attributes');
    });
    replace(content, give, h('section', { class: 'card' }, h('h3', null, '2. Tell Portcullis about the application'), form),
      this.footer('Continue', { submits: form }));
  }

  // ---------------------------------------------------------------------------------------------
  // 3. Attributes

  step_attributes(content) {
    const saml = this.protocol === 'saml';
    const mapping = (saml ? this.connection.attribute_mapping : this.connection.claim_mapping) || {};
    const rows = saml ? SAML_ATTRIBUTES : OIDC_CLAIMS;
    const form = h('form', { class: 'form wizard-form' },
      h('p', null, saml
        ? 'Which SAML attribute carries each value. Leave a field empty to accept the names Okta, Entra ID and ADFS send by default (shown greyed).'
        : 'Which ID token or userinfo claim carries each value. Leave a field empty for the standard claim (shown greyed).'),
      rows.map(([name, label, fallback]) => field({
        label, name, value: mapping[name] || '', placeholder: fallback, optional: true, spellcheck: false,
        errorFields: [`${saml ? 'attribute_mapping' : 'claim_mapping'}.${name}`],
      })),
      field({ label: 'Create users at their first sign-in (just-in-time)', name: 'jit_provisioning', type: 'checkbox',
        checked: this.connection.jit_provisioning,
        help: 'Only if you will not provision users with SCIM (step 6). Otherwise only provisioned users can sign in.' }));
    onSubmit(form, async (values) => {
      const mapped = {};
      for (const [name] of rows) mapped[name] = values[name] || null;
      const key = saml ? 'attribute_mapping' : 'claim_mapping';
      this.connection = await api('PATCH', this.connectionPath, { [key]: mapped, jit_provisioning: values.jit_provisioning });
      toast('Mapping saved');
      this.show('domains');
    });
    replace(content, h('section', { class: 'card' }, form), this.footer('Continue', { submits: form }));
  }

  // ---------------------------------------------------------------------------------------------
  // 4. Domains

  async step_domains(content) {
    const { items } = await api('GET', `${this.base}/domains`);
    const list = h('div', { class: 'wizard-domains' }, items.length ? items.map((d) => this.domainCard(d)) : emptyState(
      'No email domains yet', 'Add the domains your people sign in with, e.g. acme.com. Sign-ins with these addresses go to your IdP once verified.'));
    const add = h('form', { class: 'form form-inline wizard-form' },
      field({ label: 'Add a domain', name: 'domain', placeholder: 'acme.com', spellcheck: false, required: true }),
      h('button', { type: 'submit', class: 'btn btn-secondary' }, 'Add domain'));
    onSubmit(add, async (values) => {
      await api('POST', `${this.base}/domains`, { domain: values.domain });
      toast(`${values.domain} added: publish its TXT record to verify it`);
      this.show('domains');
    });
    replace(content,
      h('p', null, 'Prove that your organisation controls each email domain by publishing a DNS TXT record. ',
        'Only verified domains send sign-ins to your IdP. DNS changes can take a few minutes to be seen.'),
      list, h('section', { class: 'card' }, add), this.footer());
  }

  domainCard(domain) {
    const result = h('div', { class: 'wizard-domain-result', 'aria-live': 'polite' });
    const verified = domain.status === 'verified';
    const check = button('Check DNS now', {
      kind: 'primary',
      onClick: async () => {
        replace(result);
        try {
          await api('POST', `${this.base}/domains/${seg(domain.domain)}/verify`, {});
          toast(`${domain.domain} is verified`);
          this.show('domains');
        } catch (error) {
          replace(result, notice('error', errorMessage(error)));
        }
      },
    });
    return h('section', { class: 'card wizard-domain', dataset: { domain: domain.domain } },
      h('div', { class: 'card-head' }, h('h3', null, domain.domain), statusBadge(domain.status)),
      verified
        ? h('p', null, 'Verified ', formatTime(domain.verified_at), domain.verification_method === 'manual' ? ' (by the operator)' : ' through DNS', '.')
        : [
          h('p', null, `Add this TXT record at your DNS provider for ${domain.domain}:`),
          copyBox(domain.verification.record_name, { label: 'Name (host)' }),
          copyBox(domain.verification.record_value, { label: 'Value' }),
          h('div', { class: 'wizard-actions' }, check),
          result,
        ]);
  }

  // ---------------------------------------------------------------------------------------------
  // 5. Test

  async step_test(content) {
    await this.reloadConnection();
    const c = this.connection;
    const status = h('div', { class: 'wizard-test-result', 'aria-live': 'polite' });
    const enable = h('div', { class: 'wizard-enable' });
    const renderEnable = () => replace(enable, c.enabled
      ? [notice('ok', `Single sign-on through “${c.name}” is on: people with a verified domain are sent to ${this.vendorName()}.`),
        button('Turn it off', { small: true, onClick: () => this.setEnabled(false).then(() => this.show('test')) })]
      : [h('p', null, 'When the test works, turn single sign-on on. Until then nobody is sent to the IdP.'),
        button('Turn on single sign-on', { kind: 'primary', onClick: () => this.setEnabled(true).then(() => this.show('test')) })]);
    if (c.missing && c.missing.length) {
      replace(content, notice('warn', `The connection still needs: ${c.missing.map(humaniseMissing).join(', ')}.`,
        h('div', { class: 'notice-actions' }, button('Go to step 2', { small: true, onClick: () => this.show('idp') }))), this.footer());
      return;
    }
    renderEnable();
    const start = button('Start a test sign-in', {
      kind: 'primary',
      onClick: async () => {
        const test = await api('POST', `${this.connectionPath}/tests`, {});
        window.open(test.start_url, '_blank', 'noopener');
        replace(status,
          notice('info', 'A new tab is signing you in at your IdP. Come back here when it is done: the result shows below.',
            h('p', null, 'No new tab? ', h('a', { href: test.start_url, target: '_blank', rel: 'noopener' }, 'Open the test sign-in'), '.')),
          loading('Waiting for the sign-in…'));
        this.pollTest(test.id, status);
      },
    });
    replace(content,
      h('section', { class: 'card' },
        h('p', null, 'A test runs a real sign-in at your IdP and checks everything a sign-in checks, but signs nobody in. ',
          'Use an account of your organisation that is assigned to the application.'),
        h('div', { class: 'wizard-actions' }, start), status),
      h('section', { class: 'card' }, h('h3', null, 'Turn it on'), enable),
      this.footer());
  }

  async pollTest(id, status) {
    this.polling = id;
    const deadline = Date.now() + 30 * 60 * 1000;
    while (this.polling === id && status.isConnected && Date.now() < deadline) {
      const test = await api('GET', `${this.connectionPath}/tests/${seg(id)}`);
      if (test.status === 'done') {
        replace(status, testOutcome(test.result));
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
  }

  async setEnabled(enabled) {
    this.connection = await api('PATCH', this.connectionPath, { enabled });
    toast(enabled ? 'Single sign-on is on' : 'Single sign-on is off');
  }

  // ---------------------------------------------------------------------------------------------
  // 6. SCIM

  async step_scim(content) {
    const { items } = await api('GET', `${this.base}/scim-tokens`);
    const baseUrl = `${this.publicUrl}/scim/v2/${this.tenant.id}`;
    const created = h('div', { class: 'wizard-token' });
    const form = h('form', { class: 'form form-inline wizard-form' },
      field({ label: 'Token name', name: 'name', value: `${this.vendorName().replace('Microsoft ', '')} provisioning`, required: true }),
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create a token'));
    onSubmit(form, async (values) => {
      const token = await api('POST', `${this.base}/scim-tokens`, { name: values.name });
      replace(created, copyBox(token.token, { label: 'API token (Bearer)', secret: true }));
      replace(tokenList, tokenTable([token, ...items], this));
      created.querySelector('input')?.focus();
    });
    const tokenList = h('div', null, tokenTable(items, this));
    replace(content,
      h('p', null, `With SCIM, ${this.vendorName()} creates, updates and deactivates your people and groups here, `,
        'and a deactivated person is signed out everywhere at once.'),
      h('section', { class: 'card' },
        instructions(SCIM_INSTRUCTIONS[this.state.vendor] || SCIM_INSTRUCTIONS.other),
        copyBox(baseUrl, { label: 'SCIM base URL (Tenant URL)' }),
        form, created),
      h('section', { class: 'card' }, h('h3', null, 'Tokens'), tokenList),
      this.footer());
  }

  // ---------------------------------------------------------------------------------------------
  // 7. Groups to roles

  async step_roles(content) {
    const [{ body: policy, headers }, groups] = await Promise.all([
      api('GET', `${this.base}/access-policy`, null, { withHeaders: true }),
      api('GET', `${this.base}/groups?limit=200`),
    ]);
    const etag = headers.get('etag');
    const roles = policy.roles || [];
    if (!roles.length) {
      replace(content, emptyState('No roles to map yet',
        'The application’s roles have not been defined by its operator yet. You can finish now and map groups later.'), this.footer());
      return;
    }
    const groupNames = (groups.items || []).map((g) => g.display_name);
    const mappings = (policy.rules || []).filter(isGroupMapping).map((r) => ({ group: r.when.group, role: r.grant.roles[0], id: r.id }));
    const rows = h('div', { class: 'wizard-mappings' });
    const listId = 'wizard-groups';
    const addRow = (mapping = { group: '', role: roles[0].name }) => {
      const remove = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'aria-label': 'Remove this mapping' }, icon('x'));
      const row = h('div', { class: 'wizard-mapping' },
        field({ label: 'IdP group', name: 'group', value: mapping.group, list: listId, spellcheck: false, required: true }),
        field({ label: 'Role in the app', name: 'role', value: mapping.role, options: roles.map((r) => ({ value: r.name, label: r.description ? `${r.name} — ${r.description}` : r.name })) }),
        remove);
      remove.addEventListener('click', () => row.remove());
      rows.append(row);
      return row;
    };
    mappings.forEach((m) => addRow(m));
    if (!mappings.length) addRow();
    const preview = h('div', { class: 'wizard-preview', 'aria-live': 'polite' });
    const form = h('form', { class: 'form wizard-form' },
      h('datalist', { id: listId }, groupNames.map((name) => h('option', { value: name }))),
      groupNames.length
        ? h('p', null, `Groups provisioned so far: ${groupNames.slice(0, 12).join(', ')}${groupNames.length > 12 ? '…' : ''}.`)
        : notice('info', 'No groups have been provisioned yet. Type the group names as your IdP sends them; they apply as soon as the groups arrive.'),
      rows,
      h('div', { class: 'wizard-actions' },
        button('Add a mapping', { iconName: 'plus', onClick: () => addRow().querySelector('input')?.focus() }),
        h('button', { type: 'button', class: 'btn btn-secondary', dataset: { action: 'preview' } }, 'Preview the effect'),
        h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save the mappings')),
      preview);
    const candidate = () => {
      const chosen = [...rows.querySelectorAll('.wizard-mapping')].map((row) => ({
        group: row.querySelector('input[name=group]').value.trim(),
        role: row.querySelector('select[name=role]').value,
      })).filter((m) => m.group);
      const kept = (policy.rules || []).filter((r) => !isGroupMapping(r));
      const made = chosen.map((m, i) => ({ id: ruleId(m, i), when: { group: m.group }, grant: { roles: [m.role] } }));
      return { roles: policy.roles, tiers: policy.tiers, programs: policy.programs, default: policy.default, rules: [...kept, ...made] };
    };
    form.querySelector('[data-action=preview]').addEventListener('click', async () => {
      try {
        const run = await api('POST', `${this.base}/access-policy/dry-run`, candidate());
        replace(preview, notice('info', `${plural(run.users_changed, 'person', 'people')} of ${run.users_evaluated} would change.`,
          run.unknown_groups?.length ? h('p', null, `No group is named ${run.unknown_groups.join(', ')} yet.`) : null));
      } catch (error) {
        replace(preview, notice('error', errorMessage(error)));
      }
    });
    onSubmit(form, async () => {
      const saved = await api('PUT', `${this.base}/access-policy`, candidate(), { headers: etag ? { 'If-Match': etag } : {} });
      toast(`Saved: ${plural(saved.reevaluated?.changed ?? 0, 'person', 'people')} changed`);
      this.show('roles');
    });
    replace(content,
      h('p', null, 'Give each group of your IdP a role in the application. Someone in several groups gets every role they map to. ',
        'People in no mapped group get the default role.'),
      h('section', { class: 'card' }, form),
      this.footer('Continue'));
  }

  finish() {
    sessionStorage.removeItem(this.storageKey);
    replace(this.body, h('section', { class: 'card wizard-done' },
      h('h2', { tabindex: '-1' }, icon('check'), ' Setup saved'),
      h('p', null, 'Everything you entered is saved. People from your verified domains now sign in through your IdP once single sign-on is on, ',
        'and provisioning keeps the directory current.'),
      h('div', { class: 'wizard-actions' }, button('Review the steps', { onClick: () => this.show('protocol') }))));
    this.body.querySelector('h2').focus();
  }
}

// ---------------------------------------------------------------------------------------------
// Pieces

function tabs(panels) {
  const list = h('div', { class: 'wizard-tabs', role: 'tablist' });
  const bodies = panels.map((panel, index) => h('div', { role: 'tabpanel', class: 'wizard-tab-panel', hidden: index !== 0 }, panel.content));
  const buttons = panels.map((panel, index) => {
    const b = h('button', { type: 'button', role: 'tab', class: 'wizard-tab', 'aria-selected': String(index === 0), tabindex: index === 0 ? '0' : '-1' }, panel.label);
    b.addEventListener('click', () => select(index));
    b.addEventListener('keydown', (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (step) { event.preventDefault(); select((index + step + panels.length) % panels.length, true); }
    });
    return b;
  });
  function select(chosen, focus) {
    buttons.forEach((b, i) => { b.setAttribute('aria-selected', String(i === chosen)); b.tabIndex = i === chosen ? 0 : -1; });
    bodies.forEach((body, i) => { body.hidden = i !== chosen; });
    if (focus) buttons[chosen].focus();
  }
  list.append(...buttons);
  return h('div', { class: 'wizard-tabset' }, list, bodies);
}

function instructions(steps) {
  return h('details', { class: 'wizard-instructions', open: true },
    h('summary', null, steps.title), h('ol', null, steps.steps.map((s) => h('li', null, s))));
}

function idpSummary(c) {
  const idp = c.idp || {};
  if (!idp.entity_id && !idp.sso_url) return notice('info', 'Nothing from your IdP yet.');
  const certs = idp.signing_certificates || [];
  return h('dl', { class: 'details' },
    row('IdP entity ID', idp.entity_id), row('Single sign-on URL', idp.sso_url),
    row('Signing certificates', certs.length ? certs.map((cert) => h('div', { class: 'wizard-cert' },
      h('code', null, `SHA-256 ${cert.sha256_fingerprint.slice(0, 23)}…`),
      cert.not_after ? [' · expires ', formatTime(cert.not_after)] : null)) : null),
    c.missing?.length ? row('Still needed', c.missing.map(humaniseMissing).join(', ')) : row('Status', statusBadge('complete', 'Complete')));
}

function row(label, value) {
  return h('div', { class: 'details-row' }, h('dt', null, label), h('dd', null, value || h('span', { class: 'muted' }, '—')));
}

function humaniseMissing(name) {
  return {
    'idp.entity_id': 'the IdP entity ID', 'idp.sso_url': 'the single sign-on URL', 'idp.signing_certificates': 'a signing certificate',
    issuer: 'a checked issuer', client_id: 'the client ID', client_secret: 'the client secret',
  }[name] || name.replace(/[._]/g, ' ');
}

/**
 * A finished test: the IdP's answer refused (`stage: message`, with the failed check); or trust
 * works and the person signs in (ok); or trust works but this person could not sign in: say both.
 */
function testOutcome(result) {
  if (!result) return notice('error', 'The test ended without a result.');
  const user = result.user || {};
  const claims = result.attributes || result.claims || {};
  const list = h('dl', { class: 'details' }, Object.entries(claims).map(([name, values]) =>
    row(name, Array.isArray(values) ? values.join(', ') : typeof values === 'object' ? JSON.stringify(values) : String(values))));
  const who = user.user_name || result.user_name || result.name_id || 'the person';
  if (result.stage === 'message') {
    return h('div', { class: 'wizard-outcome', dataset: { outcome: 'refused' } },
      notice('error', `The IdP’s answer was refused: ${result.reason} (check “${result.check}”). `,
        'Compare the IdP’s settings with step 2: the URLs, the entity IDs and the signing certificate.'));
  }
  const heading = result.ok
    ? notice('ok', `The connection works: ${who} ${user.outcome === 'would_be_created' ? 'would be created at sign-in' : 'was recognised'}.`)
    : notice('warn', 'Your IdP and Portcullis trust each other: the sign-in passed every check. ',
      `But ${who} could not sign in: ${user.reason || 'see below'}. `,
      'Provision people with SCIM (step 6), or turn on just-in-time creation (step 3), then test again.');
  return h('div', { class: 'wizard-outcome', dataset: { outcome: result.ok ? 'ok' : 'user-refused' } },
    heading, h('h3', null, 'What the IdP sent'), list);
}

function tokenTable(tokens, wizard) {
  return table([
    { label: 'Name', cell: (t) => t.name },
    { label: 'Token', cell: (t) => h('code', null, `${t.prefix}…`) },
    { label: 'Created', cell: (t) => formatTime(t.created_at) },
    { label: 'Last used', cell: (t) => formatTime(t.last_used_at, { relative: true }) },
    { label: 'Status', cell: (t) => statusBadge(t.revoked_at ? 'revoked' : 'active') },
    { label: '', cell: (t) => (t.revoked_at ? null : button('Revoke', {
      small: true, kind: 'danger',
      onClick: async () => {
        if (!await confirmDialog(`Revoke “${t.name}”? Provisioning with it stops at once.`, { confirmLabel: 'Revoke' })) return;
        await api('DELETE', `${wizard.base}/scim-tokens/${seg(t.id)}`);
        wizard.show('scim');
      },
    })) },
  ], tokens, { empty: { title: 'No SCIM tokens yet', text: 'Create one and paste it into your IdP’s provisioning settings.' } });
}

const isGroupMapping = (rule) => rule.when && typeof rule.when.group === 'string' && !rule.final
  && rule.grant && (rule.grant.roles || []).length === 1 && !rule.grant.tier && !(rule.grant.programs || []).length;

const ruleId = (mapping, index) => `group-${index + 1}-${mapping.group.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'group'}`;

const SAML_ATTRIBUTES = [
  ['email', 'Email', 'email · http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress'],
  ['given_name', 'First name', 'firstName · …/claims/givenname'],
  ['family_name', 'Last name', 'lastName · …/claims/surname'],
  ['display_name', 'Display name', 'displayName · http://schemas.microsoft.com/identity/claims/displayname'],
  ['groups', 'Groups', 'groups · http://schemas.microsoft.com/ws/2008/06/identity/claims/groups'],
  ['department', 'Department', 'department'],
];

const OIDC_CLAIMS = [
  ['user_name', 'User name', 'preferred_username'],
  ['email', 'Email', 'email'],
  ['given_name', 'First name', 'given_name'],
  ['family_name', 'Last name', 'family_name'],
  ['display_name', 'Display name', 'name'],
  ['groups', 'Groups', 'groups (or roles)'],
  ['department', 'Department', 'department'],
];

const SAML_INSTRUCTIONS = {
  okta: { title: 'In the Okta Admin Console', steps: [
    'Applications → Applications → Create App Integration → SAML 2.0 → Next.',
    'Paste the Single sign-on URL and the Audience URI below. Name ID format: EmailAddress; Application username: Email.',
    'Attribute statements: email → user.email, firstName → user.firstName, lastName → user.lastName. Group attribute statement: groups, filter “Matches regex” .*',
    'Finish, then on the Sign On tab copy the “Metadata URL” or download the metadata file for the next part.',
    'Assign the application to the people or groups who should use it.',
  ] },
  entra: { title: 'In the Microsoft Entra admin center', steps: [
    'Enterprise applications → New application → Create your own application → “Integrate any other application you don’t find in the gallery”.',
    'Single sign-on → SAML → Basic SAML Configuration: paste the Identifier (Entity ID) and the Reply URL (Assertion Consumer Service URL) below.',
    'Attributes & Claims → Add a group claim (Security groups), if roles should follow groups.',
    'SAML Certificates: copy the “App Federation Metadata Url”, or download the “Federation Metadata XML”, for the next part.',
    'Users and groups: assign the people or groups who should use it.',
  ] },
  other: { title: 'In your identity provider', steps: [
    'Create a SAML 2.0 application (a “service provider” or “relying party”).',
    'Give it the single sign-on (ACS) URL and the entity ID below, or upload the SP metadata file. Requests are signed; assertions may be encrypted.',
    'Send the email address as NameID or as an attribute, and the groups as a multi-valued attribute.',
    'Download the IdP metadata, or copy its URL, for the next part.',
  ] },
};

const OIDC_INSTRUCTIONS = {
  okta: { title: 'In the Okta Admin Console', steps: [
    'Applications → Create App Integration → OIDC – OpenID Connect → Web Application.',
    'Grant type: Authorization Code. Paste the sign-in redirect URI, sign-out redirect URI and initiate login URI below.',
    'Copy the Client ID and Client secret. The issuer is https://your-org.okta.com (or your custom authorization server).',
    'For groups: on the Sign On tab, set a Groups claim filter, and add the “groups” scope below.',
  ] },
  entra: { title: 'In the Microsoft Entra admin center', steps: [
    'App registrations → New registration. Redirect URI: Web, the sign-in redirect URI below.',
    'Authentication: add the front-channel and back-channel URIs if offered. Certificates & secrets: a new client secret.',
    'Token configuration: add the optional claim “email”, and a groups claim if roles should follow groups.',
    'The issuer is https://login.microsoftonline.com/<your directory (tenant) id>/v2.0.',
  ] },
  other: { title: 'In your identity provider', steps: [
    'Register a confidential web application using the authorization code flow with PKCE.',
    'Give it the URIs below, and note its client ID, secret and issuer.',
  ] },
};

const SCIM_INSTRUCTIONS = {
  okta: { title: 'In the Okta Admin Console', steps: [
    'On the application: General → App Settings → Provisioning: SCIM. Then the Provisioning tab → Integration → Edit.',
    'SCIM connector base URL: the base URL below. Unique identifier field for users: userName.',
    'Supported provisioning actions: Push New Users, Push Profile Updates, Push Groups. Authentication Mode: HTTP Header, Bearer: the token below.',
    'Test Connector Configuration, Save, then under “To App” enable Create Users, Update User Attributes and Deactivate Users.',
  ] },
  entra: { title: 'In the Microsoft Entra admin center', steps: [
    'On the enterprise application: Provisioning → Get started → Provisioning Mode: Automatic.',
    'Tenant URL: the base URL below. Secret Token: the token below. Test Connection, then Save.',
    'Mappings: keep userPrincipalName → userName. Turn Provisioning Status on.',
  ] },
  other: { title: 'In your identity provider', steps: [
    'Set up SCIM 2.0 provisioning with the base URL and a bearer token from below.',
    'Users are matched by userName; groups by displayName.',
  ] },
};
