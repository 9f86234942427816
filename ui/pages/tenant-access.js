// #/tenants/{id}/access: the tenant's access policy (roles, tiers, programs, rules and the
// default) as a form rather than raw JSON, a dry run that shows who would gain and lose what,
// and a save guarded by the policy's ETag. A JSON view is there for what the form cannot say.

import {
  api, h, query, section, field, button, notice, toast, table, replace, append, showErrors, clearErrors,
  ApiError, formatTime, plural, uid, icon, confirmDialog, errorMessage,
} from '/admin/lib.js';

const KINDS = [
  { key: 'roles', one: 'role', title: 'Roles', hint: 'What people may do in the app: admin, editor, viewer…' },
  { key: 'tiers', one: 'tier', title: 'Tiers', hint: 'One feature tier per person: standard, enterprise…' },
  { key: 'programs', one: 'program', title: 'Programs', hint: 'Opt-ins such as beta or early-access.' },
];
const MODES = [
  { value: 'group', label: 'Is a member of the group' },
  { value: 'any_group', label: 'Is a member of any of the groups' },
  { value: 'attribute', label: 'Has an attribute' },
  { value: 'advanced', label: 'Combination (JSON)' },
];
const OPERATORS = [
  { value: 'eq', label: 'equals' },
  { value: 'in', label: 'is one of (comma separated)' },
  { value: 'starts_with', label: 'starts with' },
  { value: 'ends_with', label: 'ends with' },
  { value: 'contains', label: 'contains' },
  { value: 'present', label: 'is present' },
  { value: 'absent', label: 'is absent' },
];
const ATTRIBUTES = ['userName', 'email', 'emails', 'displayName', 'title', 'userType', 'department', 'division',
  'organization', 'costCenter', 'employeeNumber', 'manager', 'locale', 'preferredLanguage', 'timezone', 'roles', 'entitlements'];

export async function renderTab(panel, ctx) {
  const path = `/tenants/${ctx.tenant.id}/access-policy`;
  const [{ body, headers }, groups] = await Promise.all([
    api('GET', path, null, { withHeaders: true }),
    api('GET', `/tenants/${ctx.tenant.id}/groups${query({ limit: 200 })}`).catch(() => ({ items: [] })),
  ]);
  const editor = new PolicyEditor(panel, ctx, path, body, headers.get('etag'), groups.items || []);
  editor.render();
}

/** A policy as the API takes it: no empty descriptions, no absent tier, `final` only when set. */
function clean(policy) {
  const term = (t) => (t.description ? { name: t.name, description: t.description } : { name: t.name });
  const grant = (g) => ({ roles: [...(g?.roles || [])], ...(g?.tier ? { tier: g.tier } : {}), programs: [...(g?.programs || [])] });
  return {
    roles: policy.roles.map(term),
    tiers: policy.tiers.map(term),
    programs: policy.programs.map(term),
    rules: policy.rules.map((r) => ({
      id: r.id, ...(r.description ? { description: r.description } : {}), when: r.when, grant: grant(r.grant), ...(r.final ? { final: true } : {}),
    })),
    default: grant(policy.default),
  };
}

function modeOf(condition) {
  if (condition && typeof condition === 'object') {
    if (typeof condition.group === 'string') return 'group';
    if (Array.isArray(condition.any_group)) return 'any_group';
    if (condition.attribute && typeof condition.attribute === 'object') return 'attribute';
  }
  return 'advanced';
}

class PolicyEditor {
  constructor(panel, ctx, path, document, etag, groups) {
    this.panel = panel;
    this.ctx = ctx;
    this.path = path;
    this.etag = etag;
    this.groups = groups;
    this.datalistId = uid('groups');
    this.load(document);
  }

  load(document) {
    this.document = document;
    this.state = structuredClone(clean({
      roles: document.roles || [], tiers: document.tiers || [], programs: document.programs || [],
      rules: document.rules || [], default: document.default || {},
    }));
    this.saved = JSON.stringify(this.state);
    this.jsonMode = false;
    // The JSON typed for "combination" conditions, by rule: kept as typed until it parses.
    this.conditionText = new Map();
  }

  dirty() {
    return JSON.stringify(clean(this.state)) !== this.saved;
  }

  // -------------------------------------------------------------------------------------------
  // Layout

  render() {
    this.form = h('form', { class: 'form form-wide', novalidate: true });
    this.form.addEventListener('submit', (event) => event.preventDefault());
    this.form.addEventListener('input', () => this.markDirty());
    this.form.addEventListener('change', () => this.markDirty());
    this.body = h('div');
    this.results = h('div', { 'aria-live': 'polite' });
    this.dirtyLabel = h('span', { class: 'muted small' });
    const jsonToggle = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'aria-pressed': 'false' }, 'Edit as JSON');
    jsonToggle.addEventListener('click', () => this.toggleJson(jsonToggle));
    replace(this.panel,
      h('div', { class: 'panel-head' },
        h('h2', { dataset: { heading: '' } }, 'Access policy'),
        h('div', { class: 'page-actions' }, jsonToggle)),
      h('p', { class: 'muted' }, this.document.version
        ? ['Version ', String(this.document.version), ', saved ', formatTime(this.document.updated_at, { relative: true }), '. ']
        : 'No policy saved yet. ',
      'Rules run top to bottom: the roles and programs of every matching rule add up, the first matching rule that names a tier gives it, and a matching “final” rule stops there. What no rule gave comes from the default.'),
      this.form,
      this.results);
    append(this.form, this.body, this.actionBar());
    this.drawBody();
    this.markDirty();
  }

  drawBody() {
    if (this.jsonMode) {
      replace(this.body, this.jsonEditor());
      return;
    }
    this.vocabBox = h('div');
    this.rulesBox = h('div', { dataset: { fields: 'rules' } });
    this.defaultBox = h('div');
    replace(this.body,
      h('datalist', { id: this.datalistId }, this.groups.map((g) => h('option', { value: g.display_name }))),
      h('datalist', { id: `${this.datalistId}-attrs` }, ATTRIBUTES.map((a) => h('option', { value: a }))),
      section('Vocabulary', { intro: 'The names the app understands. Names are 1–64 letters, digits and _ . : -; renaming one here renames it in every rule.' }, this.vocabBox),
      section('Rules and group mappings', {
        intro: 'Map the IdP’s groups (by name, external ID or Portcullis ID) and attributes to roles, a tier and programs.',
      }, this.rulesBox),
      section('Default', { intro: 'What a person gets in each of roles, tier and programs when no matching rule gave them any.' }, this.defaultBox));
    this.drawVocab();
    this.drawRules();
    this.drawDefault();
  }

  actionBar() {
    const preview = button('Preview changes', { onClick: () => this.dryRun() });
    const save = button('Save policy', { kind: 'primary', onClick: () => this.save() });
    const discard = button('Discard changes', {
      kind: 'ghost',
      onClick: async () => {
        if (this.dirty() && !(await confirmDialog(h('p', null, 'Discard your unsaved changes to the policy?'), { title: 'Discard changes', confirmLabel: 'Discard' }))) return;
        this.load(this.document);
        this.render();
      },
    });
    return h('div', { class: 'sticky-actions' }, preview, save, discard, this.dirtyLabel);
  }

  markDirty() {
    if (!this.dirtyLabel) return;
    let dirty = true;
    try {
      dirty = this.jsonMode ? JSON.stringify(clean(JSON.parse(this.jsonArea.value))) !== this.saved : this.dirty();
    } catch {
      dirty = true;
    }
    this.dirtyLabel.textContent = dirty ? 'Unsaved changes' : 'No unsaved changes';
  }

  // -------------------------------------------------------------------------------------------
  // Vocabulary

  drawVocab() {
    replace(this.vocabBox, h('div', { class: 'vocab' }, KINDS.map((kind) => this.termList(kind))));
  }

  termList(kind) {
    const terms = this.state[kind.key];
    const add = h('button', { type: 'button', class: 'btn btn-secondary btn-small' }, icon('plus'), `Add ${kind.one}`);
    add.addEventListener('click', () => {
      terms.push({ name: '' });
      this.drawVocab();
      this.vocabBox.querySelector(`[data-kind="${kind.key}"] li:last-child input`)?.focus();
    });
    return h('div', { dataset: { kind: kind.key, fields: kind.key } },
      h('h3', null, kind.title),
      h('p', { class: 'small muted' }, kind.hint),
      h('ul', { class: 'vocab-list' }, terms.map((term, i) => this.termRow(kind, term, i))),
      h('p', { class: 'field-error', hidden: true }),
      add);
  }

  termRow(kind, term, index) {
    const path = `${kind.key}[${index}]`;
    const name = field({ label: `${kind.one[0].toUpperCase()}${kind.one.slice(1)} name`, name: `${path}.name`, value: term.name, required: true, spellcheck: false, errorFields: [path] });
    const description = field({ label: 'Description', name: `${path}.description`, value: term.description || '', optional: true });
    const nameInput = name.querySelector('input');
    nameInput.addEventListener('change', () => this.renameTerm(kind.key, term, nameInput.value.trim()));
    description.querySelector('input').addEventListener('input', (event) => { term.description = event.target.value; });
    const remove = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'aria-label': `Remove the ${kind.one} ${term.name || 'without a name'}` }, icon('x'));
    remove.addEventListener('click', () => this.removeTerm(kind, term));
    return h('li', { class: 'vocab-item' }, name, description, h('div', { class: 'vocab-remove' }, remove));
  }

  /** Every grant follows a renamed term. */
  renameTerm(kindKey, term, name) {
    const old = term.name;
    term.name = name;
    if (!old || old === name) {
      this.drawRules();
      this.drawDefault();
      return;
    }
    for (const grant of this.grants()) {
      if (kindKey === 'tiers' && grant.tier === old) grant.tier = name;
      if (kindKey !== 'tiers') grant[kindKey] = (grant[kindKey] || []).map((n) => (n === old ? name : n));
    }
    this.drawRules();
    this.drawDefault();
  }

  removeTerm(kind, term) {
    this.state[kind.key] = this.state[kind.key].filter((t) => t !== term);
    for (const grant of this.grants()) {
      if (kind.key === 'tiers' && grant.tier === term.name) delete grant.tier;
      if (kind.key !== 'tiers') grant[kind.key] = (grant[kind.key] || []).filter((n) => n !== term.name);
    }
    this.drawVocab();
    this.drawRules();
    this.drawDefault();
    this.markDirty();
    this.vocabBox.querySelector(`[data-kind="${kind.key}"] button.btn-secondary`)?.focus();
  }

  grants() {
    return [...this.state.rules.map((r) => (r.grant ||= { roles: [], programs: [] })), this.state.default];
  }

  // -------------------------------------------------------------------------------------------
  // Rules

  drawRules() {
    const rules = this.state.rules;
    const addGroup = h('button', { type: 'button', class: 'btn btn-secondary' }, icon('plus'), 'Map a group');
    const addRule = h('button', { type: 'button', class: 'btn btn-secondary' }, icon('plus'), 'Add an attribute rule');
    addGroup.addEventListener('click', () => this.addRule({ group: '' }));
    addRule.addEventListener('click', () => this.addRule({ attribute: { name: '', eq: '' } }));
    replace(this.rulesBox,
      h('p', { class: 'field-error', hidden: true }),
      rules.length
        ? rules.map((rule, i) => this.ruleCard(rule, i))
        : h('div', { class: 'empty' }, h('p', { class: 'empty-title' }, 'No rules yet'),
          h('p', { class: 'empty-text' }, 'Everyone gets the default. Map the IdP’s groups to roles, for example “Okta-Admins” → admin.')),
      h('div', { class: 'form-actions' }, addGroup, addRule));
  }

  addRule(when) {
    const taken = new Set(this.state.rules.map((r) => r.id));
    let n = this.state.rules.length + 1;
    while (taken.has(`rule-${n}`)) n += 1;
    this.state.rules.push({ id: `rule-${n}`, when, grant: { roles: [], programs: [] } });
    this.drawRules();
    this.markDirty();
    const cards = this.rulesBox.querySelectorAll('.rule');
    cards[cards.length - 1]?.querySelector('[data-role="condition-value"], input')?.focus();
  }

  ruleCard(rule, index) {
    const path = `rules[${index}]`;
    const id = field({ label: 'Rule ID', name: `${path}.id`, value: rule.id, required: true, spellcheck: false, help: 'Names the rule in audit records and dry runs.' });
    id.querySelector('input').addEventListener('input', (event) => { rule.id = event.target.value.trim(); });
    const description = field({ label: 'Description', name: `${path}.description`, value: rule.description || '', optional: true });
    description.querySelector('input').addEventListener('input', (event) => { rule.description = event.target.value; });
    const final = field({ label: 'Stop here when this rule matches (final)', name: `${path}.final`, type: 'checkbox', checked: Boolean(rule.final) });
    final.querySelector('input').addEventListener('change', (event) => { rule.final = event.target.checked; });
    return h('div', { class: 'rule', dataset: { fields: path } },
      h('div', { class: 'rule-head' },
        h('span', { class: 'rule-number', 'aria-hidden': 'true' }, String(index + 1)),
        h('h3', null, `Rule ${index + 1}`, rule.id ? `: ${rule.id}` : ''),
        this.moveButtons(index)),
      h('p', { class: 'field-error', hidden: true }),
      h('div', { class: 'rule-grid' },
        h('div', null, h('div', { class: 'form-row' }, id, description), this.conditionEditor(rule, `${path}.when`), final),
        h('div', null, this.grantBox(rule.grant ||= { roles: [], programs: [] }, `${path}.grant`, `rule ${index + 1}`))));
  }

  moveButtons(index) {
    const rules = this.state.rules;
    const move = (from, to, label) => {
      const b = h('button', { type: 'button', class: 'btn btn-ghost btn-small', disabled: to < 0 || to >= rules.length }, label);
      b.addEventListener('click', () => {
        [rules[from], rules[to]] = [rules[to], rules[from]];
        this.drawRules();
        this.markDirty();
        this.rulesBox.querySelectorAll('.rule')[to]?.querySelector(`button[data-move="${label}"]:not([disabled])`)?.focus();
      });
      b.dataset.move = label;
      b.setAttribute('aria-label', `Move rule ${index + 1} ${label.toLowerCase()}`);
      return b;
    };
    const remove = h('button', { type: 'button', class: 'btn btn-danger-outline btn-small' }, 'Remove');
    remove.setAttribute('aria-label', `Remove rule ${index + 1}`);
    remove.addEventListener('click', () => {
      this.state.rules.splice(index, 1);
      this.drawRules();
      this.markDirty();
    });
    return h('div', { class: 'row-actions' }, move(index, index - 1, 'Up'), move(index, index + 1, 'Down'), remove);
  }

  // -------------------------------------------------------------------------------------------
  // Conditions

  conditionEditor(rule, path) {
    const box = h('div', { dataset: { fields: path } });
    const draw = () => {
      const mode = this.conditionText.has(rule) ? 'advanced' : modeOf(rule.when);
      const modeField = field({ label: 'When the person', name: `${path}.mode`, options: MODES, value: mode });
      modeField.querySelector('select').addEventListener('change', (event) => {
        this.switchMode(rule, event.target.value);
        draw();
        box.querySelector('select')?.focus();
      });
      replace(box, modeField, this.conditionInputs(rule, mode, path), h('p', { class: 'field-error', hidden: true }));
    };
    draw();
    return box;
  }

  switchMode(rule, mode) {
    const current = modeOf(rule.when);
    if (mode === 'advanced') {
      this.conditionText.set(rule, JSON.stringify(rule.when, null, 2));
      return;
    }
    this.conditionText.delete(rule);
    if (mode === current) return;
    const groups = current === 'group' ? [rule.when.group] : current === 'any_group' ? rule.when.any_group : [];
    if (mode === 'group') rule.when = { group: groups[0] || '' };
    if (mode === 'any_group') rule.when = { any_group: groups.filter(Boolean) };
    if (mode === 'attribute') rule.when = { attribute: { name: '', eq: '' } };
  }

  conditionInputs(rule, mode, path) {
    if (mode === 'group') {
      const f = field({ label: 'Group', name: `${path}.group`, value: rule.when.group, required: true, list: this.datalistId, spellcheck: false, attrs: { 'data-role': 'condition-value' } });
      f.querySelector('input').addEventListener('input', (event) => { rule.when = { group: event.target.value.trim() }; });
      return f;
    }
    if (mode === 'any_group') {
      const f = field({ label: 'Groups', name: `${path}.any_group`, value: rule.when.any_group.join(', '), required: true, spellcheck: false, help: 'Separated by commas.', attrs: { 'data-role': 'condition-value' } });
      f.querySelector('input').addEventListener('input', (event) => { rule.when = { any_group: event.target.value.split(',').map((s) => s.trim()).filter(Boolean) }; });
      return f;
    }
    if (mode === 'attribute') return this.attributeInputs(rule, path);
    const text = this.conditionText.get(rule) ?? JSON.stringify(rule.when, null, 2);
    const f = field({
      label: 'Condition (JSON)', name: `${path}.json`, textarea: true, rows: 6, value: text, spellcheck: false, attrs: { class: 'mono', 'data-role': 'condition-value' },
      help: 'all, any, not, group, any_group and attribute, e.g. {"all": [{"any_group": ["Engineering", "Product"]}, {"not": {"group": "Interns"}}]}',
    });
    f.querySelector('textarea').addEventListener('input', (event) => {
      this.conditionText.set(rule, event.target.value);
      try {
        rule.when = JSON.parse(event.target.value);
      } catch { /* checked before a dry run or a save */ }
    });
    return f;
  }

  attributeInputs(rule, path) {
    const test = rule.when.attribute;
    const op = ['eq', 'in', 'starts_with', 'ends_with', 'contains'].find((k) => k in test) || (test.present === false ? 'absent' : 'present' in test ? 'present' : 'eq');
    const current = op === 'in' ? (test.in || []).join(', ') : op === 'present' || op === 'absent' ? '' : test[op] ?? '';
    const name = field({ label: 'Attribute', name: `${path}.attribute.name`, value: test.name, required: true, list: `${this.datalistId}-attrs`, spellcheck: false, attrs: { 'data-role': 'condition-value' } });
    const operator = field({ label: 'Test', name: `${path}.attribute.op`, options: OPERATORS, value: op });
    const value = field({ label: 'Value', name: `${path}.attribute.value`, value: current, spellcheck: false, errorFields: [`${path}.attribute`] });
    value.hidden = op === 'present' || op === 'absent';
    const update = () => {
      const chosen = operator.querySelector('select').value;
      const text = value.querySelector('input').value.trim();
      const next = { name: name.querySelector('input').value.trim() };
      if (chosen === 'present' || chosen === 'absent') next.present = chosen === 'present';
      else if (chosen === 'in') next.in = text.split(',').map((s) => s.trim()).filter(Boolean);
      else next[chosen] = text;
      rule.when = { attribute: next };
      value.hidden = chosen === 'present' || chosen === 'absent';
    };
    for (const el of [name, operator, value]) el.addEventListener('input', update);
    operator.addEventListener('change', update);
    return h('div', { class: 'condition-row' }, name, operator, value);
  }

  // -------------------------------------------------------------------------------------------
  // Grants

  grantBox(grant, path, what) {
    const names = (key) => this.state[key].map((t) => t.name).filter(Boolean);
    const checks = (key, label) => {
      const available = names(key);
      const groupId = uid('grant');
      return h('fieldset', { class: 'field choices choices-inline', dataset: { fields: `${path}.${key}` } },
        h('legend', null, label),
        available.length
          ? available.map((n) => {
            const id = uid(`${groupId}-${n}`);
            const box = h('input', { type: 'checkbox', id, checked: (grant[key] || []).includes(n) });
            box.addEventListener('change', () => {
              const set = new Set(grant[key] || []);
              if (box.checked) set.add(n); else set.delete(n);
              grant[key] = available.filter((x) => set.has(x));
            });
            return h('div', { class: 'choice' }, box, h('label', { for: id }, n));
          })
          : h('p', { class: 'small muted' }, `Define ${key} above first.`),
        h('p', { class: 'field-error', hidden: true }));
    };
    const tiers = [{ value: '', label: '— no tier —' }, ...names('tiers').map((n) => ({ value: n, label: n }))];
    const tier = field({ label: 'Tier', name: `${path}.tier`, options: tiers, value: grant.tier || '' });
    tier.querySelector('select').addEventListener('change', (event) => {
      if (event.target.value) grant.tier = event.target.value; else delete grant.tier;
    });
    return h('div', { class: 'grant-box', dataset: { fields: path }, 'aria-label': `What ${what} grants`, role: 'group' },
      h('h4', { class: 'small muted' }, 'Grants'),
      checks('roles', 'Roles'), tier, checks('programs', 'Programs'),
      h('p', { class: 'field-error', hidden: true }));
  }

  drawDefault() {
    replace(this.defaultBox, this.grantBox(this.state.default, 'default', 'the default'));
  }

  // -------------------------------------------------------------------------------------------
  // JSON view

  jsonEditor() {
    const f = field({
      label: 'The policy as JSON', name: 'policy_json', textarea: true, rows: 24, spellcheck: false, attrs: { class: 'mono' },
      value: JSON.stringify(clean(this.state), null, 2),
      help: 'The whole document as the API takes it: roles, tiers, programs, rules and default.',
    });
    this.jsonArea = f.querySelector('textarea');
    return f;
  }

  toggleJson(toggle) {
    clearErrors(this.form);
    if (this.jsonMode) {
      let parsed;
      try {
        parsed = JSON.parse(this.jsonArea.value);
      } catch (error) {
        showErrors(this.form, { field: 'policy_json', message: `not valid JSON: ${error.message}` });
        return;
      }
      try {
        this.state = clean({ roles: [], tiers: [], programs: [], rules: [], default: {}, ...parsed });
      } catch {
        showErrors(this.form, { field: 'policy_json', message: 'this is not a policy: roles, tiers, programs and rules must be lists, default an object' });
        return;
      }
      this.conditionText = new Map();
      this.jsonMode = false;
    } else {
      const problem = this.conditionProblem();
      if (problem) {
        showErrors(this.form, problem);
        return;
      }
      this.jsonMode = true;
    }
    toggle.textContent = this.jsonMode ? 'Edit as a form' : 'Edit as JSON';
    toggle.setAttribute('aria-pressed', String(this.jsonMode));
    this.drawBody();
    this.markDirty();
  }

  // -------------------------------------------------------------------------------------------
  // Dry run and save

  /** A combination condition that is not valid JSON, as an error for its field. */
  conditionProblem() {
    for (const [index, rule] of this.state.rules.entries()) {
      const text = this.conditionText.get(rule);
      if (text === undefined) continue;
      try {
        rule.when = JSON.parse(text);
      } catch (error) {
        return { field: `rules[${index}].when.json`, message: `not valid JSON: ${error.message}` };
      }
    }
    return null;
  }

  /** The policy to send, or throws an error for the form. */
  candidate() {
    if (this.jsonMode) {
      try {
        return JSON.parse(this.jsonArea.value);
      } catch (error) {
        throw Object.assign(new Error(`not valid JSON: ${error.message}`), { field: 'policy_json' });
      }
    }
    const problem = this.conditionProblem();
    if (problem) throw Object.assign(new Error(problem.message), { field: problem.field });
    return clean(this.state);
  }

  async dryRun() {
    clearErrors(this.form);
    let policy;
    try {
      policy = this.candidate();
      replace(this.results, section('Preview', {}, h('p', { class: 'muted' }, 'Evaluating every user of the tenant…')));
      const outcome = await api('POST', `${this.path}/dry-run`, policy);
      replace(this.results, dryRunView(this.ctx, outcome));
      this.results.querySelector('h2')?.focus();
    } catch (error) {
      replace(this.results);
      this.showError(error);
    }
  }

  async save() {
    clearErrors(this.form);
    let policy;
    try {
      policy = this.candidate();
    } catch (error) {
      this.showError(error);
      return;
    }
    try {
      const { body, headers } = await api('PUT', this.path, policy, {
        withHeaders: true, headers: this.etag ? { 'If-Match': this.etag } : {},
      });
      this.etag = headers.get('etag');
      this.load(body);
      this.render();
      const re = body.reevaluated;
      toast(`Policy saved (version ${body.version})${re ? `: ${plural(re.changed, 'user')} of ${re.evaluated} changed` : ''}`);
      if (body.unknown_groups?.length) append(this.results, unknownGroups(body.unknown_groups));
      this.panel.querySelector('h2')?.focus();
    } catch (error) {
      if (error.status === 412) this.showConflict();
      else this.showError(error);
    }
  }

  showError(error) {
    // In the JSON view a path inside the document cannot be pointed at: it goes above the form.
    if (this.jsonMode && error.field && error.field !== 'policy_json') {
      showErrors(this.form, { message: `at ${error.field}: ${errorMessage(error)}` });
      return;
    }
    showErrors(this.form, error instanceof ApiError ? error : { field: error.field, message: error.message });
  }

  showConflict() {
    const reload = button('Reload the saved policy', { onClick: () => this.ctx.refresh() });
    replace(this.results, notice('error',
      h('p', null, h('strong', null, 'Someone saved the policy since you opened it. '),
        'Reload to see their version. Your unsaved edits would be lost: copy them from “Edit as JSON” first if you need them.'),
      h('div', { class: 'notice-actions' }, reload)));
    const box = this.results.querySelector('.notice');
    box.tabIndex = -1;
    box.focus();
  }
}

// ---------------------------------------------------------------------------------------------
// Dry-run results

function dryRunView(ctx, outcome) {
  const summaryRows = [];
  for (const [dimension, names] of Object.entries(outcome.summary || {})) {
    for (const [name, move] of Object.entries(names)) summaryRows.push({ dimension, name, ...move });
  }
  const card = section('Preview: what saving would change', { headingAttrs: { tabindex: '-1' } },
    h('div', { class: 'stat-row' },
      stat(outcome.users_evaluated, 'users evaluated'),
      stat(outcome.users_changed, 'would change')),
    outcome.unknown_groups?.length ? unknownGroups(outcome.unknown_groups) : null,
    outcome.users_changed === 0
      ? notice('ok', 'Nobody’s access would change.')
      : [
        h('h3', null, 'Gained and lost'),
        table([
          { label: 'Kind', cell: (r) => ({ roles: 'Role', tiers: 'Tier', programs: 'Program' })[r.dimension] || r.dimension },
          { label: 'Name', cell: (r) => h('strong', null, r.name) },
          { label: 'Gained by', class: 'num', cell: (r) => (r.gained ? h('span', { class: 'diff-gain' }, `+${r.gained}`) : '0') },
          { label: 'Lost by', class: 'num', cell: (r) => (r.lost ? h('span', { class: 'diff-loss' }, `−${r.lost}`) : '0') },
        ], summaryRows, { caption: 'Summary of changes' }),
        h('h3', null, 'People whose access would change'),
        changesTable(ctx, outcome.changes || []),
        outcome.truncated ? h('p', { class: 'small muted' }, `Only the first ${outcome.changes.length} are listed.`) : null,
      ],
    h('p', { class: 'small muted' }, 'Nothing is saved by a preview.'));
  card.classList.add('dry-run-summary');
  return card;
}

function stat(value, label) {
  return h('div', { class: 'stat' }, h('span', { class: 'stat-value' }, Number(value ?? 0).toLocaleString()), h('span', { class: 'stat-label' }, label));
}

function unknownGroups(names) {
  return notice('warn', h('p', null, h('strong', null, 'Groups no group of this tenant matches: '), names.join(', '), '. '),
    h('p', null, 'Check them for typos. An IdP may still claim them at sign-in (Entra ID names groups by object ID).'));
}

function accessText(access) {
  const parts = [];
  if (access?.roles?.length) parts.push(`roles ${access.roles.join(', ')}`);
  if (access?.tier) parts.push(`tier ${access.tier}`);
  if (access?.programs?.length) parts.push(`programs ${access.programs.join(', ')}`);
  return parts.join('; ') || 'nothing';
}

function changesTable(ctx, changes) {
  return table([
    { label: 'User', cell: (c) => h('a', { href: `${ctx.base}/users/${c.user.id}` }, c.user.user_name) },
    { label: 'Now', cell: (c) => accessText(c.before) },
    { label: 'After saving', cell: (c) => accessText(c.after) },
    { label: 'Because of', cell: (c) => grantedText(c.granted_by) },
  ], changes, { caption: 'Changes per user' });
}

function grantedText(grantedBy) {
  if (!grantedBy) return null;
  const rules = new Set([...Object.values(grantedBy.roles || {}).flat(), ...Object.values(grantedBy.programs || {}).flat(), grantedBy.tier].filter(Boolean));
  return [...rules].map((r) => (r === 'default' ? 'the default' : r)).join(', ');
}
