// Shared building blocks of the admin dashboard and the setup wizard.
//
// Everything here works under the dashboard's strict Content-Security-Policy: the DOM is built
// with `h()` and text nodes (never innerHTML with data), there are no inline styles or event
// attributes, and every request goes to this origin.

// ---------------------------------------------------------------------------------------------
// API

/** The CSRF token of the dashboard session: sent on every request that changes something. */
let csrfToken = null;

export function setCsrfToken(token) {
  csrfToken = token || null;
}

/** An error answer of the API (`{"error": {"code", "message", "field"?}}`), or a network failure. */
export class ApiError extends Error {
  constructor({ status, code, message, field, requestId, body }) {
    super(message || code || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code || '';
    this.field = field || null;
    this.requestId = requestId || null;
    this.body = body ?? null;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Calls the API: `/api/v1` + path, or a path under `/admin/api/` as it is.
 * options: `contentType` (a string body is then sent raw), `headers` (extra request headers),
 * `withHeaders` (answer `{body, headers, status}` instead of the body), `signal`.
 * Answers the parsed JSON, null for 204, or the text of a non-JSON answer (XML metadata).
 */
export async function api(method, path, body, options = {}) {
  method = method.toUpperCase();
  const url = path.startsWith('/admin/api/') ? path : `/api/v1${path}`;
  const headers = { Accept: 'application/json', ...(options.headers || {}) };
  if (!SAFE_METHODS.has(method) && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let payload;
  if (body !== undefined && body !== null) {
    if (typeof body === 'string' && options.contentType) {
      payload = body;
      headers['Content-Type'] = options.contentType;
    } else {
      payload = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
  }
  let response;
  try {
    response = await fetch(url, {
      method, headers, body: payload, credentials: 'same-origin', cache: 'no-store', signal: options.signal,
    });
  } catch (cause) {
    if (cause?.name === 'AbortError') throw cause;
    throw new ApiError({
      status: 0, code: 'network_error',
      message: 'Portcullis could not be reached. Check the network connection and try again.',
    });
  }
  const parsed = await readBody(response);
  if (!response.ok) throw failure(response, parsed, url);
  return options.withHeaders ? { body: parsed, headers: response.headers, status: response.status } : parsed;
}

async function readBody(response) {
  if (response.status === 204 || response.status === 205) return null;
  const type = response.headers.get('content-type') || '';
  const text = await response.text();
  if (!text) return null;
  if (/[/+]json\b/.test(type)) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

function failure(response, parsed, url) {
  const error = parsed && typeof parsed === 'object' ? parsed.error || {} : {};
  const apiError = new ApiError({
    status: response.status,
    code: error.code,
    message: error.message || defaultMessage(response.status),
    field: error.field,
    requestId: response.headers.get('x-request-id'),
    body: parsed,
  });
  // The session is gone (signed out elsewhere, expired, key or link revoked): the shell shows the
  // sign-in page. A refused sign-in at the session endpoint itself is the caller's to show.
  if (response.status === 401 && !url.startsWith('/admin/api/session')) {
    window.dispatchEvent(new CustomEvent('portcullis:signed-out', { detail: apiError }));
  }
  return apiError;
}

function defaultMessage(status) {
  if (status === 404) return 'Not found: it may have been deleted.';
  if (status === 429) return 'Too many requests: wait a moment and try again.';
  if (status >= 500) return 'The server failed to handle this request.';
  return `The request failed (HTTP ${status}).`;
}

/** The text to show for an error: capitalised API message, with the request id of a server fault. */
export function errorMessage(error) {
  if (!(error instanceof ApiError)) return error?.message ? capitalise(error.message) : 'Something went wrong.';
  let text = capitalise(error.message);
  if (error.status >= 500 && error.requestId) text += ` (request id ${error.requestId})`;
  return text;
}

/** `?a=1&b=2` from the non-empty values of `params` (empty string when there are none). */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === '') continue;
    search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** A path segment, escaped (ids and slugs are safe, domains and user names may not be). */
export const seg = (value) => encodeURIComponent(String(value));

// ---------------------------------------------------------------------------------------------
// DOM

const SVG_NS = 'http://www.w3.org/2000/svg';
const SVG_TAGS = new Set(['svg', 'path', 'circle', 'rect', 'line', 'polyline', 'polygon', 'g', 'title']);
const PROPERTIES = new Set(['value', 'checked', 'selected', 'indeterminate']);

/**
 * Creates an element. attrs: `class` (string or array), `for`, `on: {event: fn}`, `dataset`,
 * `aria-*`, booleans (true: present, false/null: absent), `value`/`checked` (set as properties).
 * Children: strings, numbers, nodes, arrays of these; null/undefined/false are skipped.
 */
export function h(tag, attrs, ...children) {
  const svg = SVG_TAGS.has(tag);
  const el = svg ? document.createElementNS(SVG_NS, tag) : document.createElement(tag);
  const deferred = [];
  for (const [key, value] of Object.entries(attrs || {})) {
    if (PROPERTIES.has(key) && !svg) deferred.push([key, value]);
    else setAttribute(el, key, value);
  }
  append(el, children);
  // A select's value can only be set once its options are there.
  for (const [key, value] of deferred) {
    if (value === undefined || value === null) continue;
    el[key] = value;
    if (key === 'checked') el.defaultChecked = Boolean(value);
  }
  return el;
}

function setAttribute(el, key, value) {
  if (value === undefined || value === null || value === false) return;
  if (key === 'on') {
    for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
  } else if (key === 'dataset') {
    for (const [name, data] of Object.entries(value)) if (data !== undefined && data !== null) el.dataset[name] = data;
  } else if (key === 'class') {
    const names = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    if (names) el.setAttribute('class', names);
  } else if (key === 'style' || /^on/i.test(key)) {
    // Inline styles and handlers would be refused by the CSP: fail loudly while developing.
    throw new Error(`h(): the attribute "${key}" is not allowed under the Content-Security-Policy`);
  } else if ((key === 'href' || key === 'src' || key === 'action') && /^\s*(javascript|vbscript|data):/i.test(String(value))) {
    throw new Error(`h(): refusing a ${key} with a script URL`);
  } else {
    el.setAttribute(key, value === true ? '' : String(value));
  }
}

/** Appends children (same forms as `h`). */
export function append(parent, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false || child === true) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces the children of `parent`. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, ...children);
}

const ICONS = {
  tenants: ['M3 21h18', 'M5 21V7l7-4 7 4v14', 'M9 21v-6h6v6', 'M9 10h.01M15 10h.01'],
  clients: ['M4 5h16v14H4z', 'M4 9h16', 'M8 13h3M8 16h6'],
  webhooks: ['M12 3a4 4 0 0 1 3.5 6', 'M9 14l-3 5a4 4 0 1 0 6 3', 'M15.5 9l3 5a4 4 0 1 1-2 6', 'M12 3a4 4 0 0 0-2 7.5l-4 8.5'],
  audit: ['M9 4h6l1 2h3v15H5V6h3z', 'M9 12l2 2 4-4'],
  settings: ['M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6z', 'M19 12l2-1-1-3-2 .3-1.4-1.4.3-2-3-1-1 2h-2l-1-2-3 1 .3 2L6.8 8.9 5 8.5l-1 3 2 1v2l-2 1 1 3 2-.3 1.4 1.4-.3 2 3 1 1-2h2l1 2 3-1-.3-2 1.4-1.4 2 .3 1-3-2-1z'],
  copy: ['M9 9h11v11H9z', 'M5 15H4V4h11v1'],
  check: ['M5 12l5 5 9-10'],
  alert: ['M12 3l10 18H2z', 'M12 10v5', 'M12 18h.01'],
  info: ['M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20z', 'M12 11v6', 'M12 7h.01'],
  x: ['M6 6l12 12', 'M18 6L6 18'],
  plus: ['M12 5v14', 'M5 12h14'],
  external: ['M14 4h6v6', 'M20 4l-9 9', 'M18 14v6H4V6h6'],
  download: ['M12 4v11', 'M7 10l5 5 5-5', 'M5 20h14'],
  shield: ['M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6z'],
  search: ['M11 18a7 7 0 1 0 0-14 7 7 0 0 0 0 14z', 'M21 21l-5-5'],
  empty: ['M4 7l8-4 8 4v10l-8 4-8-4z', 'M4 7l8 4 8-4', 'M12 11v10'],
  signout: ['M15 4h4v16h-4', 'M10 8l-4 4 4 4', 'M6 12h10'],
};

/** A decorative inline SVG icon (hidden from assistive technology). */
export function icon(name, extraClass) {
  const paths = ICONS[name] || ICONS.info;
  return h('svg', {
    class: ['icon', extraClass], viewBox: '0 0 24 24', 'aria-hidden': 'true', focusable: 'false',
    fill: 'none', stroke: 'currentColor', 'stroke-width': '1.8', 'stroke-linecap': 'round', 'stroke-linejoin': 'round',
  }, paths.map((d) => h('path', { d })));
}

/** The Portcullis mark: a portcullis gate. */
export function logo() {
  return h('svg', { class: 'logo', viewBox: '0 0 32 32', 'aria-hidden': 'true', focusable: 'false' },
    h('rect', { x: '3', y: '3', width: '26', height: '26', rx: '6', class: 'logo-bg' }),
    h('path', { d: 'M9 9h14M9 14h14M9 19h14M11 9v15M16 9v15M21 9v15', class: 'logo-bars' }));
}

// ---------------------------------------------------------------------------------------------
// Forms

let uniqueCounter = 0;
/** A document-unique id with a readable prefix. */
export function uid(prefix = 'id') {
  uniqueCounter += 1;
  return `${String(prefix).replace(/[^A-Za-z0-9_-]/g, '-')}-${uniqueCounter}`;
}

/**
 * A labelled form row with a help text and an error slot. spec: label, name, type, value, help,
 * required, placeholder, options (for a select: strings or {value, label}), textarea: true, rows,
 * autocomplete, readonly, disabled, checked (checkbox), min, max, step, pattern, inputmode, list,
 * spellcheck, errorFields (other API field names whose errors belong here), optional (shows
 * "optional" beside the label), attrs (more attributes for the control).
 */
export function field(spec) {
  const { label, name, type = 'text', help, options, textarea } = spec;
  const id = spec.id || uid(`f-${name}`);
  const helpId = help ? `${id}-help` : null;
  const errorId = `${id}-error`;
  const describedBy = [helpId, errorId].filter(Boolean).join(' ');
  const common = {
    id, name, required: spec.required, disabled: spec.disabled, 'aria-describedby': describedBy,
    ...(spec.attrs || {}),
  };
  let control;
  if (options) {
    control = h('select', { ...common, value: spec.value ?? undefined },
      options.map((option) => {
        const { value, label: text } = typeof option === 'object' ? option : { value: option, label: option };
        return h('option', { value }, text);
      }));
  } else if (textarea) {
    control = h('textarea', {
      ...common, rows: spec.rows || 4, placeholder: spec.placeholder, readonly: spec.readonly,
      spellcheck: spellcheck(spec), autocomplete: spec.autocomplete, value: spec.value ?? '',
    });
  } else {
    control = h('input', {
      ...common, type, placeholder: spec.placeholder, readonly: spec.readonly, autocomplete: spec.autocomplete,
      min: spec.min, max: spec.max, step: spec.step, pattern: spec.pattern, inputmode: spec.inputmode,
      list: spec.list, spellcheck: spellcheck(spec),
      value: type === 'checkbox' ? spec.value : (spec.value ?? ''),
      checked: type === 'checkbox' ? Boolean(spec.checked) : undefined,
    });
  }
  const labelEl = h('label', { for: id }, label,
    spec.optional ? h('span', { class: 'optional' }, ' (optional)') : null);
  const helpEl = help ? h('p', { class: 'field-help', id: helpId }, help) : null;
  const errorEl = h('p', { class: 'field-error', id: errorId, hidden: true });
  const fields = [name, ...(spec.errorFields || [])].filter(Boolean).join(' ');
  if (type === 'checkbox') {
    return h('div', { class: 'field field-check', dataset: { fields } },
      control, h('div', { class: 'field-check-text' }, labelEl, helpEl, errorEl));
  }
  return h('div', { class: ['field', spec.wide && 'field-wide'], dataset: { fields } }, labelEl, control, helpEl, errorEl);
}

// `spellcheck` is an enumerated attribute: false must be written out, not left away.
const spellcheck = (spec) => (spec.spellcheck === undefined ? undefined : String(Boolean(spec.spellcheck)));

/** A group of radio buttons or checkboxes in a fieldset, as one form row. */
export function choiceGroup({ legend, name, type = 'radio', options, value, help, errorFields, inline }) {
  const chosen = new Set(Array.isArray(value) ? value : [value]);
  const helpId = help ? uid(`${name}-help`) : null;
  const errorId = uid(`${name}-error`);
  return h('fieldset', {
    class: ['field', 'choices', inline && 'choices-inline'],
    dataset: { fields: [name, ...(errorFields || [])].join(' ') },
    'aria-describedby': [helpId, errorId].filter(Boolean).join(' '),
  },
  h('legend', null, legend),
  options.map((option) => {
    const { value: v, label, help: optionHelp } = typeof option === 'object' ? option : { value: option, label: option };
    const id = uid(`${name}-${v}`);
    return h('div', { class: 'choice' },
      h('input', { type, id, name, value: v, checked: chosen.has(v), dataset: type === 'checkbox' ? { list: '' } : null }),
      h('label', { for: id }, label, optionHelp ? h('span', { class: 'choice-help' }, optionHelp) : null));
  }),
  help ? h('p', { class: 'field-help', id: helpId }, help) : null,
  h('p', { class: 'field-error', id: errorId, hidden: true }));
}

/**
 * The values of a form: trimmed strings, booleans for single checkboxes, arrays for checkbox
 * groups (`choiceGroup` with type checkbox), the checked value of radio groups.
 */
export function readForm(form) {
  const values = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled || el.type === 'submit' || el.type === 'button' || el.tagName === 'FIELDSET') continue;
    if (el.type === 'checkbox' && 'list' in el.dataset) {
      values[el.name] = values[el.name] || [];
      if (el.checked) values[el.name].push(el.value);
    } else if (el.type === 'checkbox') {
      values[el.name] = el.checked;
    } else if (el.type === 'radio') {
      if (el.checked) values[el.name] = el.value;
      else if (!(el.name in values)) values[el.name] = '';
    } else if (el.type === 'file') {
      values[el.name] = el.files;
    } else {
      values[el.name] = typeof el.value === 'string' ? el.value.trim() : el.value;
    }
  }
  return values;
}

/** The form row (an element with `data-fields`) for an API field path, or its closest parent path. */
function rowFor(form, path) {
  const rows = [...form.querySelectorAll('[data-fields]')];
  for (let current = path; current;) {
    const row = rows.find((r) => r.dataset.fields.split(' ').includes(current));
    if (row) return row;
    const parent = current.replace(/(\.[^.[\]]+|\[\d+\])$/, '');
    current = parent === current ? '' : parent;
  }
  return null;
}

/** Removes the error messages `showErrors` put in `form`. */
export function clearErrors(form) {
  for (const slot of form.querySelectorAll('.field-error')) {
    slot.hidden = true;
    slot.textContent = '';
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  for (const el of form.querySelectorAll('.form-error')) el.remove();
}

/**
 * Shows an API error next to the field it names (`error.field`, or the closest enclosing path
 * such as `rules[2]` for `rules[2].when.group`) and focuses that field; an error about no field
 * of this form goes at the top of the form.
 */
export function showErrors(form, error) {
  clearErrors(form);
  const message = errorMessage(error);
  const row = error?.field ? rowFor(form, error.field) : null;
  // The row's own slot: a container row (a rule card) holds the slots of its inner rows too.
  const slot = row && [...row.querySelectorAll('.field-error')].find((s) => s.closest('[data-fields]') === row);
  if (slot) {
    slot.textContent = message;
    slot.hidden = false;
    const control = row.matches('input, select, textarea')
      ? row : row.querySelector('input:not([type=hidden]), select, textarea, button');
    if (control) {
      control.setAttribute('aria-invalid', 'true');
      control.focus();
    }
    return;
  }
  const label = error?.field ? `${humanise(error.field)}: ` : '';
  const box = notice('error', `${label}${message}`);
  box.classList.add('form-error');
  box.tabIndex = -1;
  form.prepend(box);
  box.focus();
}

/**
 * Handles a form's submission: the default is prevented, the submit buttons are disabled while
 * `handler(values, form)` runs, and an error it throws is shown with `showErrors`.
 */
export function onSubmit(form, handler) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (form.getAttribute('aria-busy') === 'true') return;
    clearErrors(form);
    // aria-disabled rather than disabled: a disabled button loses the focus, which then falls to
    // the page (keyboard users lose their place); aria-busy on the form stops a second submit.
    const buttons = [...form.querySelectorAll('button[type=submit], button:not([type])')];
    for (const b of buttons) b.setAttribute('aria-disabled', 'true');
    form.setAttribute('aria-busy', 'true');
    try {
      await handler(readForm(form), form, event.submitter);
    } catch (error) {
      if (error?.name === 'AbortError') return;
      if (form.isConnected) showErrors(form, error);
      else toast(errorMessage(error), 'error');
    } finally {
      form.removeAttribute('aria-busy');
      for (const b of buttons) b.removeAttribute('aria-disabled');
    }
  });
  return form;
}

/**
 * Runs an action from a button; a second click while it runs is ignored, and a failure is shown
 * as a toast. The button stays focusable (aria-disabled), so focus comes back to it after a dialog.
 */
export function action(target, run) {
  target.addEventListener('click', async (event) => {
    if (target.disabled || target.getAttribute('aria-busy') === 'true') return;
    target.setAttribute('aria-busy', 'true');
    target.setAttribute('aria-disabled', 'true');
    try {
      await run(event);
    } catch (error) {
      if (error?.name !== 'AbortError') toast(errorMessage(error), 'error');
    } finally {
      target.removeAttribute('aria-busy');
      target.removeAttribute('aria-disabled');
    }
  });
  return target;
}

/** A button. kind: 'primary' | 'secondary' (default) | 'danger' | 'ghost' | 'link'. */
export function button(label, { kind = 'secondary', type = 'button', onClick, iconName, small, attrs } = {}) {
  const el = h('button', { type, class: ['btn', `btn-${kind}`, small && 'btn-small'], ...(attrs || {}) },
    iconName ? icon(iconName) : null, label);
  if (onClick) action(el, onClick);
  return el;
}

/** A link styled as a button. */
export function linkButton(label, href, { kind = 'secondary', iconName, small, attrs } = {}) {
  return h('a', { href, class: ['btn', `btn-${kind}`, small && 'btn-small'], ...(attrs || {}) },
    iconName ? icon(iconName) : null, label);
}

// ---------------------------------------------------------------------------------------------
// Feedback

const NOTICE_ICONS = { ok: 'check', error: 'alert', warn: 'alert', info: 'info' };

/** A message box: kind 'ok' | 'error' | 'info' | 'warn'. Errors and warnings are announced at once. */
export function notice(kind, text, ...more) {
  const role = kind === 'error' || kind === 'warn' ? 'alert' : 'status';
  return h('div', { class: ['notice', `notice-${kind}`], role },
    icon(NOTICE_ICONS[kind] || 'info'), h('div', { class: 'notice-body' }, text, more));
}

function region(id, className) {
  let el = document.getElementById(id);
  if (!el) {
    el = h('div', { id, class: className, 'aria-live': 'polite', 'aria-atomic': 'false' });
    document.body.append(el);
  }
  return el;
}

/** Says `text` to screen readers without showing anything. */
export function announce(text) {
  const live = region('live', 'visually-hidden');
  live.textContent = '';
  // A change after a tick is announced even when the text is the same as the last one.
  setTimeout(() => { live.textContent = text; }, 50);
}

/** A short message in the corner, announced politely; errors stay until dismissed. */
export function toast(text, kind = 'ok') {
  const container = region('toasts', 'toasts');
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss' }, icon('x'));
  const el = h('div', { class: ['toast', `toast-${kind}`] }, icon(NOTICE_ICONS[kind] || 'info'), h('span', null, text), close);
  close.addEventListener('click', () => el.remove());
  container.append(el);
  if (kind !== 'error') setTimeout(() => el.remove(), 6000);
  return el;
}

/** A placeholder while something loads. */
export function loading(text = 'Loading…') {
  return h('div', { class: 'loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

/** A failed load, with a retry. */
export function errorState(error, retry) {
  return notice('error', errorMessage(error),
    retry ? h('div', { class: 'notice-actions' }, button('Try again', { small: true, onClick: retry })) : null);
}

/** What a list shows when it has nothing yet: a title, what to do about it, and an action. */
export function emptyState(title, text, actions) {
  return h('div', { class: 'empty' },
    icon('empty', 'empty-icon'), h('p', { class: 'empty-title' }, title),
    text ? h('p', { class: 'empty-text' }, text) : null,
    actions ? h('div', { class: 'empty-action' }, actions) : null);
}

const TONES = {
  ok: ['active', 'verified', 'delivered', 'success', 'enabled', 'live', 'intact', 'done', 'published', 'admin', 'existing'],
  warn: ['pending', 'waiting', 'paused', 'unverified', 'incomplete', 'expiring', 'would_be_created'],
  bad: ['revoked', 'failed', 'failure', 'expired', 'suspended', 'disabled', 'inactive', 'refused', 'ended', 'broken'],
};

/** A small coloured label for a status word. */
export function statusBadge(status, label) {
  const value = String(status ?? 'unknown');
  const tone = Object.keys(TONES).find((t) => TONES[t].includes(value.toLowerCase())) || 'neutral';
  return h('span', { class: ['badge', `badge-${tone}`] }, label ?? humanise(value));
}

// ---------------------------------------------------------------------------------------------
// Copying and secrets

async function writeClipboard(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain-HTTP appliances have no async clipboard: copy through a selection instead.
  const area = h('textarea', { class: 'clipboard-helper', readonly: true, 'aria-hidden': 'true', tabindex: '-1' });
  area.value = text;
  document.body.append(area);
  area.select();
  const copied = document.execCommand('copy');
  area.remove();
  if (!copied) throw new Error('The browser refused to copy: select the text and copy it by hand.');
}

/** A button that copies `value` (or what `value()` answers). */
export function copyButton(value, { label = 'Copy', what } = {}) {
  const text = h('span', null, label);
  const el = h('button', { type: 'button', class: 'btn btn-secondary btn-small btn-copy', 'aria-label': what ? `${label} ${what}` : null },
    icon('copy'), text);
  el.addEventListener('click', async () => {
    try {
      await writeClipboard(typeof value === 'function' ? value() : String(value));
      text.textContent = 'Copied';
      el.classList.add('copied');
      announce(what ? `${what} copied to the clipboard` : 'Copied to the clipboard');
      setTimeout(() => { text.textContent = label; el.classList.remove('copied'); }, 2000);
    } catch (error) {
      toast(errorMessage(error), 'error');
    }
  });
  return el;
}

/**
 * A read-only box with a value and a Copy button. With `secret`, a warning says it is shown only
 * once. `multiline` (or a value with line breaks) uses a text area.
 */
export function copyBox(value, { label, secret = false, multiline, help } = {}) {
  const id = uid('copy');
  const text = String(value ?? '');
  const long = multiline ?? text.includes('\n');
  const control = long
    ? h('textarea', { id, class: 'copy-value mono', readonly: true, rows: Math.min(12, text.split('\n').length + 1), spellcheck: 'false', value: text })
    : h('input', { id, class: 'copy-value mono', type: 'text', readonly: true, spellcheck: 'false', autocomplete: 'off', value: text });
  control.addEventListener('focus', () => control.select());
  return h('div', { class: ['copybox', secret && 'copybox-secret'] },
    label ? h('label', { for: id, class: 'copy-label' }, label) : null,
    h('div', { class: 'copy-row' }, control, copyButton(text, { what: label })),
    help ? h('p', { class: 'field-help' }, help) : null,
    secret ? h('p', { class: 'secret-warning' }, icon('alert'),
      'Copy it now: it is shown only once. Portcullis keeps only a digest of it and cannot show it again.') : null);
}

/** An inline value in monospace with a small copy button, for tables. */
export function copyInline(value, what) {
  return h('span', { class: 'copy-inline' }, h('code', null, value), copyButton(value, { what, label: 'Copy' }));
}

// ---------------------------------------------------------------------------------------------
// Dialogs

/**
 * Opens a modal dialog. content: nodes; actions: nodes for the footer. Escape closes it (the
 * browser's cancel), and focus returns to where it was. Answers {dialog, body, close(value),
 * closed: Promise<value>}.
 */
export function openDialog({ title, content, actions, wide, describedBy, onCancel }) {
  const opener = document.activeElement;
  const titleId = uid('dialog-title');
  const closeButton = h('button', { type: 'button', class: 'dialog-close', 'aria-label': 'Close' }, icon('x'));
  const body = h('div', { class: 'dialog-body' }, content);
  const dialog = h('dialog', { class: ['dialog', wide && 'dialog-wide'], 'aria-labelledby': titleId, 'aria-describedby': describedBy },
    h('div', { class: 'dialog-head' }, h('h2', { id: titleId }, title), closeButton),
    body,
    actions ? h('div', { class: 'dialog-actions' }, actions) : null);
  let resolve;
  const closed = new Promise((r) => { resolve = r; });
  let result;
  const close = (value) => { result = value; if (dialog.open) dialog.close(); };
  closeButton.addEventListener('click', () => { onCancel?.(); close(undefined); });
  dialog.addEventListener('cancel', () => { onCancel?.(); result = undefined; });
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
    resolve(result);
  });
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, body, close, closed };
}

/**
 * Asks to confirm an action; answers true when confirmed. options: title, confirmLabel, danger
 * (a red button, and the Cancel button has the focus), typeToConfirm (a word the person must
 * type first, e.g. the tenant's slug).
 */
export function confirmDialog(text, options = {}) {
  const { title = 'Are you sure?', confirmLabel = 'Confirm', danger = true, typeToConfirm } = options;
  const textId = uid('confirm-text');
  const confirm = h('button', { type: 'submit', class: ['btn', danger ? 'btn-danger' : 'btn-primary'] }, confirmLabel);
  const cancel = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Cancel');
  let typed = null;
  if (typeToConfirm) {
    typed = field({ label: `Type ${typeToConfirm} to confirm`, name: 'confirmation', autocomplete: 'off', spellcheck: false });
    confirm.disabled = true;
    typed.querySelector('input').addEventListener('input', (event) => {
      confirm.disabled = event.target.value.trim() !== typeToConfirm;
    });
  }
  const form = h('form', { method: 'dialog', class: 'confirm-form' },
    h('div', { id: textId, class: 'confirm-text' }, text), typed,
    h('div', { class: 'dialog-actions' }, cancel, confirm));
  const { close, closed } = openDialog({ title, content: form, describedBy: textId });
  cancel.addEventListener('click', () => close(false));
  form.addEventListener('submit', (event) => { event.preventDefault(); if (!confirm.disabled) close(true); });
  (typed ? typed.querySelector('input') : danger ? cancel : confirm).focus();
  return closed.then((value) => value === true);
}

/**
 * A dialog with a form: `build(form)` fills it; on submit `submit(values, form)` runs, and its
 * answer closes the dialog and resolves the promise (undefined when cancelled). Errors show in
 * the form, next to their field.
 */
export function formDialog({ title, fields, submitLabel = 'Save', submit, wide, intro, danger }) {
  const cancel = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Cancel');
  const form = h('form', { class: 'form dialog-form' },
    intro ? h('div', { class: 'form-intro' }, intro) : null,
    fields,
    h('div', { class: 'dialog-actions' }, cancel,
      h('button', { type: 'submit', class: ['btn', danger ? 'btn-danger' : 'btn-primary'] }, submitLabel)));
  const { close, closed } = openDialog({ title, content: form, wide });
  cancel.addEventListener('click', () => close(undefined));
  onSubmit(form, async (values) => {
    const answer = await submit(values, form);
    close(answer === undefined ? true : answer);
  });
  const first = form.querySelector('input:not([type=hidden]):not([readonly]), select, textarea');
  first?.focus();
  return closed;
}

/**
 * Shows a secret (or several) once, in copy boxes with the "shown only once" warning; resolves
 * when the person is done. items: [{label, value, secret = true}].
 */
export function secretDialog({ title, intro, items, after }) {
  const done = h('button', { type: 'button', class: 'btn btn-primary' }, 'I have copied it');
  const { dialog, close, closed } = openDialog({
    title,
    wide: true,
    content: [
      intro ? h('div', { class: 'form-intro' }, intro) : null,
      items.map((item) => copyBox(item.value, { label: item.label, secret: item.secret ?? true, help: item.help })),
      after || null,
    ],
    actions: [done],
  });
  done.addEventListener('click', () => close(true));
  dialog.querySelector('.copy-value')?.focus();
  return closed;
}

// ---------------------------------------------------------------------------------------------
// Display

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const UNITS = [['year', 31536000], ['month', 2592000], ['week', 604800], ['day', 86400], ['hour', 3600], ['minute', 60], ['second', 1]];

/** "3 minutes ago", "in 2 days". */
export function relativeTime(date) {
  const seconds = (new Date(date).getTime() - Date.now()) / 1000;
  if (Math.abs(seconds) < 45) return seconds <= 0 ? 'just now' : 'in a few seconds';
  const [unit, size] = UNITS.find(([, s]) => Math.abs(seconds) >= s) || UNITS[UNITS.length - 1];
  return relativeFormat.format(Math.round(seconds / size), unit);
}

/**
 * A `<time>` with the local date and time; the relative time ("3 minutes ago") is its tooltip,
 * or its text with `{relative: true}` (then the date is the tooltip). Null: a dash.
 */
export function formatTime(value, { relative = false } = {}) {
  if (!value) return h('span', { class: 'muted' }, '—');
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return h('span', null, String(value));
  const absolute = dateFormat.format(date);
  const rel = relativeTime(date);
  return h('time', { datetime: date.toISOString(), title: relative ? absolute : rel }, relative ? rel : absolute);
}

/** `client_secret_basic` → "Client secret basic"; `idp.sso_url` → "Idp sso url". */
export function humanise(text) {
  const words = String(text).replace(/[._]+/g, ' ').replace(/\s+/g, ' ').trim();
  return capitalise(words);
}

export function capitalise(text) {
  const s = String(text ?? '');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** "1 user", "3 users". */
export function plural(count, one, many = `${one}s`) {
  return `${Number(count).toLocaleString()} ${count === 1 ? one : many}`;
}

/** A definition list from [label, value] pairs (null values are skipped). */
export function details(pairs) {
  return h('dl', { class: 'details' },
    pairs.filter((pair) => pair && pair[1] !== undefined && pair[1] !== null)
      .map(([label, value]) => h('div', { class: 'details-row' }, h('dt', null, label), h('dd', null, value))));
}

/** Pretty-printed JSON in a <pre> (as text). */
export function jsonBlock(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

/**
 * A table. columns: [{label, cell(row) → node|string, class}], rows: array. With no rows it
 * shows `empty` (a node, or {title, text, action} for `emptyState`).
 */
export function table(columns, rows, { empty, caption, rowClass } = {}) {
  if (!rows || rows.length === 0) {
    if (!empty) return emptyState('Nothing here yet');
    return empty instanceof Node ? empty : emptyState(empty.title, empty.text, empty.action);
  }
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'table' },
      caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
      h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label)))),
      h('tbody', null, rows.map((row) => h('tr', { class: rowClass ? rowClass(row) : null },
        columns.map((c) => h('td', { class: c.class, dataset: { label: c.label } }, cellValue(c.cell(row)))))))));
}

function cellValue(value) {
  if (value === undefined || value === null || value === '') return h('span', { class: 'muted' }, '—');
  return value;
}

/** A page heading block: breadcrumbs, an h1 that receives focus on navigation, and actions. */
export function pageHeader(title, { subtitle, actions, crumbs, badge } = {}) {
  return h('header', { class: 'page-header' },
    crumbs ? h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('ol', null, crumbs.map(([label, href]) => h('li', null, href ? h('a', { href }, label) : h('span', { 'aria-current': 'page' }, label))))) : null,
    h('div', { class: 'page-title-row' },
      h('div', { class: 'page-title' },
        h('h1', { tabindex: '-1', dataset: { heading: '', title: typeof title === 'string' ? title : null } }, title, badge ? [' ', badge] : null),
        subtitle ? h('p', { class: 'page-subtitle' }, subtitle) : null),
      actions ? h('div', { class: 'page-actions' }, actions) : null));
}

/** A titled card. */
export function section(title, { actions, intro, id, level = 2, headingAttrs } = {}, ...children) {
  const tag = `h${level}`;
  return h('section', { class: 'card', id, 'aria-labelledby': id ? `${id}-title` : null },
    h('div', { class: 'card-head' },
      h(tag, { id: id ? `${id}-title` : null, ...(headingAttrs || {}) }, title),
      actions ? h('div', { class: 'card-actions' }, actions) : null),
    intro ? h('p', { class: 'card-intro' }, intro) : null,
    children);
}

/** Parses a list typed one per line or separated by commas; empty entries dropped. */
export function splitList(text) {
  return String(text || '').split(/[\n,]+/).map((s) => s.trim()).filter(Boolean);
}

/** The number typed in a field, or null when it is empty. */
export function numberOrNull(text) {
  if (text === undefined || text === null || String(text).trim() === '') return null;
  const n = Number(text);
  return Number.isFinite(n) ? n : NaN;
}
