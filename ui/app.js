// The admin dashboard's entry point: finds out who is here (an operator's session, a customer's
// setup-link session, or nobody), shows the sign-in page, the setup wizard or the operator shell,
// and routes the operator shell by the URL's hash (#/tenants/…).

import {
  api, setCsrfToken, h, replace, icon, logo, field, onSubmit, showErrors, loading, errorState,
  notice, formatTime, relativeTime, pageHeader, linkButton, toast, errorMessage,
} from '/admin/lib.js';

const root = document.getElementById('app');

/** 'operator', 'setup', or null before anyone signed in. */
let mode = null;
let routeGeneration = 0;
let lastPath = null;

/** The operator shell's sections: the nav, and the page module that draws each. */
const SECTIONS = {
  tenants: { label: 'Tenants', icon: 'tenants', page: (segments) => (segments.length > 1 ? 'tenant' : 'tenants') },
  clients: { label: 'OAuth clients', icon: 'clients', page: () => 'clients' },
  webhooks: { label: 'Webhooks', icon: 'webhooks', page: () => 'webhooks' },
  audit: { label: 'Audit', icon: 'audit', page: () => 'audit' },
  settings: { label: 'Settings', icon: 'settings', page: () => 'settings' },
};

window.addEventListener('portcullis:signed-out', onSignedOut);
window.addEventListener('hashchange', () => {
  // A setup link pasted into a tab already at /admin/setup changes only the hash: open it.
  if (setupTokenInUrl()) boot();
  else if (mode === 'operator') route();
});
document.getElementById('skip-link')?.addEventListener('click', skipToContent);
boot();

// ---------------------------------------------------------------------------------------------
// Who is here

async function boot() {
  teardown();
  replace(root, centered(loading('Opening the dashboard…')));
  const token = setupTokenInUrl();
  let session = null;
  try {
    session = await api('GET', '/admin/api/session');
  } catch (error) {
    if (error.status !== 401) {
      showFatal(error, boot);
      return;
    }
  }
  if (token && session?.kind === 'operator') showOperatorOpenedLink(session, token);
  else if (token) redeemSetupLink(token);
  else if (session) start(session);
  else showSignIn();
}

/** The token of a setup link (`/admin/setup#<token>`); hash routes start with a slash. */
function setupTokenInUrl() {
  if (location.pathname !== '/admin/setup') return null;
  const hash = location.hash.slice(1);
  return hash && !hash.startsWith('/') ? decodeURIComponent(hash) : null;
}

function start(session) {
  setCsrfToken(session.csrf_token);
  if (session.kind === 'setup') startSetup(session);
  else startOperator(session);
}

function teardown() {
  mode = null;
  setCsrfToken(null);
  document.body.classList.remove('layout-shell');
  document.getElementById('sidebar')?.remove();
  document.getElementById('setup-bar')?.remove();
  lastPath = null;
}

function onSignedOut() {
  if (mode === 'operator') {
    teardown();
    showSignIn({ message: 'Your session has ended: it expired, was idle for an hour, or its key was revoked. Sign in again to continue.' });
  } else if (mode === 'setup') {
    teardown();
    showMessage({
      title: 'Your setup session has ended',
      text: 'Open the setup link you received again to continue. Everything you already configured is kept. If the link has expired, ask your contact for a new one.',
    });
  }
}

async function signOut() {
  try {
    await api('DELETE', '/admin/api/session');
  } catch (error) {
    // Already ended: there is nothing left to sign out of.
    if (error.status !== 401) {
      toast(errorMessage(error), 'error');
      return;
    }
  }
  const wasSetup = mode === 'setup';
  teardown();
  if (wasSetup) {
    showMessage({ title: 'You have signed out', text: 'Open the setup link again to continue setting up; everything you configured is kept.', kind: 'ok' });
  } else {
    showSignIn({ message: 'You have signed out.', kind: 'ok' });
  }
}

// ---------------------------------------------------------------------------------------------
// Sign-in, setup links, and full-page messages

function centered(...children) {
  return h('div', { class: 'centered-page' }, children);
}

function brand() {
  return h('div', { class: 'brand' }, logo(), h('span', null, 'Portcullis', h('small', null, 'Administration')));
}

function showSignIn({ message, kind = 'info' } = {}) {
  mode = null;
  document.title = 'Sign in · Portcullis admin';
  const keyField = field({
    label: 'Admin API key', name: 'key', type: 'password', required: true, autocomplete: 'off', spellcheck: false,
    help: 'An admin key (pcak_…) or the bootstrap key. It is exchanged for a session cookie and not kept in the browser.',
  });
  const form = h('form', { class: 'form', 'aria-labelledby': 'signin-title' },
    keyField, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in'));
  onSubmit(form, async (values) => {
    try {
      const session = await api('POST', '/admin/api/session', { key: values.key });
      if (location.pathname !== '/admin/') history.replaceState(null, '', `/admin/${location.hash}`);
      start(session);
    } catch (error) {
      showErrors(form, { ...error, message: signInMessage(error), field: error.status === 401 || error.status === 403 ? 'key' : error.field });
    }
  });
  replace(root, centered(h('div', { class: 'signin-card' },
    brand(),
    h('h1', { id: 'signin-title', tabindex: '-1' }, 'Sign in'),
    h('p', { class: 'lead' }, 'Manage tenants, single sign-on, provisioning and the audit trail of this Portcullis instance.'),
    message ? notice(kind, message) : null,
    form,
    h('p', { class: 'footnote' }, 'Sessions end after an hour without activity. Every change you make is recorded in the audit trail under this key.'))));
  form.querySelector('input').focus();
}

function signInMessage(error) {
  if (error.code === 'invalid_credentials') return 'This key is not valid: it may be mistyped or revoked.';
  if (error.code === 'insufficient_scope') return 'This key may only read the events feed; sign in with an admin key.';
  return errorMessage(error);
}

async function redeemSetupLink(token) {
  document.title = 'Setup · Portcullis';
  replace(root, centered(loading('Opening your setup link…')));
  try {
    const session = await api('POST', '/admin/api/session', { setup_token: token });
    // The token must not stay in the address bar, the history or a bookmark.
    history.replaceState(null, '', '/admin/setup');
    start(session);
  } catch (error) {
    if (error.status >= 400 && error.status < 500) {
      history.replaceState(null, '', '/admin/setup');
      showLinkProblem(error);
    } else {
      showFatal(error, () => redeemSetupLink(token));
    }
  }
}

const LINK_PROBLEMS = {
  link_expired: {
    title: 'This setup link has expired',
    text: 'Setup links work for a limited time. Ask your contact at the company that sent it to you for a new one; anything you already configured is kept.',
  },
  link_revoked: {
    title: 'This setup link is no longer valid',
    text: 'It was withdrawn by the people who sent it. Ask your contact at the company that sent it to you for a new one; anything you already configured is kept.',
  },
  invalid_credentials: {
    title: 'This setup link is not valid',
    text: 'Check that you opened the whole link from the message you received: some mail programs break long links. If it still does not work, ask your contact for a new one.',
  },
};

function showLinkProblem(error) {
  const problem = LINK_PROBLEMS[error.code] || { title: 'This setup link cannot be opened', text: errorMessage(error) };
  showMessage(problem);
}

function showMessage({ title, text, kind = 'warn', actions }) {
  document.title = `${title} · Portcullis`;
  const heading = h('h1', { tabindex: '-1' }, title);
  replace(root, centered(h('div', { class: 'signin-card message-card' },
    brand(), icon(kind === 'ok' ? 'check' : 'alert', 'big-icon'), heading, h('p', { class: 'lead' }, text),
    actions ? h('div', { class: 'form-actions' }, actions) : null)));
  heading.focus();
}

function showFatal(error, retry) {
  replace(root, centered(h('div', { class: 'signin-card message-card' },
    brand(), h('h1', { tabindex: '-1' }, 'The dashboard could not start'), errorState(error, retry))));
}

/** An operator opened a setup link: opening it here would replace their session. */
function showOperatorOpenedLink(session, token) {
  const toDashboard = h('button', { type: 'button', class: 'btn btn-primary' }, 'Go to the dashboard');
  const openIt = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Sign out and open the link');
  toDashboard.addEventListener('click', () => {
    history.replaceState(null, '', '/admin/#/tenants');
    start(session);
  });
  openIt.addEventListener('click', async () => {
    setCsrfToken(session.csrf_token);
    try { await api('DELETE', '/admin/api/session'); } catch { /* already ended */ }
    setCsrfToken(null);
    redeemSetupLink(token);
  });
  showMessage({
    title: 'This is a customer setup link',
    text: `You are signed in as an operator (key “${session.key?.name ?? 'admin'}”). Opening the link here ends your operator session; to see what the customer sees, open it in a private window instead.`,
    kind: 'info',
    actions: [toDashboard, openIt],
  });
}

// ---------------------------------------------------------------------------------------------
// Setup mode: the wizard of one tenant, nothing else

async function startSetup(session) {
  teardown();
  mode = 'setup';
  setCsrfToken(session.csrf_token);
  if (location.pathname !== '/admin/setup') history.replaceState(null, '', '/admin/setup');
  const tenant = session.tenant;
  document.title = `Set up ${tenant.display_name} · Portcullis`;
  const expires = session.link?.expires_at;
  const signOutButton = h('button', { type: 'button', class: 'btn btn-secondary btn-small' }, icon('signout'), 'Sign out');
  signOutButton.addEventListener('click', signOut);
  const bar = h('header', { class: 'setup-bar', id: 'setup-bar' },
    h('span', { class: 'brand' }, logo(), 'Portcullis'),
    h('span', { class: 'setup-what' }, 'Setting up ', h('strong', null, tenant.display_name),
      expires ? [' · link expires ', h('time', { datetime: expires, title: new Date(expires).toLocaleString() }, relativeTime(expires))] : null),
    signOutButton);
  root.before(bar);
  const container = h('div', { class: 'content wizard-host' }, loading('Loading the setup wizard…'));
  replace(root, container);
  try {
    const { renderWizard } = await import('/admin/wizard.js');
    replace(container);
    await renderWizard(container, { tenant, session });
  } catch (error) {
    replace(container, errorState(error, () => startSetup(session)));
  }
}

// ---------------------------------------------------------------------------------------------
// Operator shell

function startOperator(session) {
  teardown();
  mode = 'operator';
  setCsrfToken(session.csrf_token);
  if (location.pathname !== '/admin/') history.replaceState(null, '', `/admin/${location.hash}`);
  document.body.classList.add('layout-shell');
  currentSession = session;
  root.before(sidebar(session));
  route(session);
}

let currentSession = null;

function sidebar(session) {
  const signOutButton = h('button', { type: 'button', class: 'btn btn-secondary btn-small' }, icon('signout'), 'Sign out');
  signOutButton.addEventListener('click', signOut);
  return h('header', { class: 'sidebar', id: 'sidebar' },
    h('a', { class: 'brand', href: '#/tenants' }, logo(), h('span', null, 'Portcullis', h('small', null, 'Administration'))),
    h('nav', { class: 'nav', 'aria-label': 'Main' },
      h('ul', null, Object.entries(SECTIONS).map(([key, section]) =>
        h('li', null, h('a', { href: `#/${key}`, dataset: { section: key } }, icon(section.icon), section.label))))),
    h('div', { class: 'sidebar-foot' },
      h('div', { class: 'who' }, 'Signed in with the key ', h('strong', null, session.key?.name ?? 'admin'),
        session.expires_at ? h('div', null, 'Session ends ', formatTime(session.expires_at, { relative: true })) : null),
      signOutButton));
}

/** The hash as a path and its query: `#/audit?q=x` → {path: '/audit', params}. */
function parseHash() {
  const raw = location.hash.slice(1);
  const at = raw.indexOf('?');
  const path = at < 0 ? raw : raw.slice(0, at);
  const params = new URLSearchParams(at < 0 ? '' : raw.slice(at + 1));
  return { path, params };
}

function markNav(sectionKey) {
  for (const link of document.querySelectorAll('#sidebar .nav a')) {
    if (link.dataset.section === sectionKey) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

async function route(sessionArg) {
  const session = sessionArg || currentSession;
  const { path, params } = parseHash();
  if (!path || path === '/') {
    history.replaceState(null, '', '/admin/#/tenants');
    route(session);
    return;
  }
  let segments;
  try {
    segments = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    segments = ['not-found'];
  }
  const section = SECTIONS[segments[0]];
  markNav(section ? segments[0] : null);
  const generation = ++routeGeneration;
  const queryOnly = lastPath === path;
  lastPath = path;
  const view = h('div', { class: 'content' });
  let attached = false;
  const slow = setTimeout(() => {
    if (generation === routeGeneration && !queryOnly) replace(root, h('div', { class: 'content' }, loading()));
  }, 200);
  const ctx = {
    session, segments, params, path,
    /** Still the page on screen: long-running work (polling) stops once it is not. */
    current: () => generation === routeGeneration,
    navigate: (hash) => { location.hash = hash; },
    refresh: () => { lastPath = null; route(session); },
    /** Shows the page before it is complete, for code that needs it in the document (the wizard). */
    attach: () => {
      if (generation !== routeGeneration || attached) return;
      clearTimeout(slow);
      replace(root, view);
      attached = true;
    },
  };
  try {
    if (!section) throw Object.assign(new Error('There is no such page.'), { notFound: true });
    const module = await import(`/admin/pages/${section.page(segments)}.js`);
    await module.render(view, ctx);
  } catch (error) {
    if (generation !== routeGeneration) return;
    replace(view, pageHeader(error.notFound || error.status === 404 ? 'Not found' : 'Something went wrong'),
      errorState(error, error.notFound ? null : () => ctx.refresh()),
      h('p', null, linkButton('Go to the tenants', '#/tenants')));
  }
  clearTimeout(slow);
  if (generation !== routeGeneration) return;
  if (!attached) replace(root, view);
  document.title = `${pageTitle(view)} · Portcullis admin`;
  focusAfterRoute(view, queryOnly);
}

/** "Users · Acme Corporation": the section's heading, then the page's (badges left out). */
function pageTitle(view) {
  const text = (el) => (el ? (el.dataset.title || el.firstChild?.textContent || el.textContent).trim() : '');
  const main = text(view.querySelector('h1'));
  const headings = view.querySelectorAll('[data-heading]');
  const inner = headings.length > 1 ? text(headings[headings.length - 1]) : '';
  return [inner, main].filter(Boolean).join(' · ') || 'Admin';
}

/** Moves focus to the new page's heading (the most specific one), or after a query change to the results. */
function focusAfterRoute(view, queryOnly) {
  const headings = view.querySelectorAll('[data-heading]');
  const target = (queryOnly && view.querySelector('[data-query-focus]')) || headings[headings.length - 1] || view.querySelector('h1');
  if (!queryOnly) window.scrollTo(0, 0);
  if (target) {
    if (!target.hasAttribute('tabindex')) target.tabIndex = -1;
    target.focus({ preventScroll: queryOnly });
  }
}

function skipToContent(event) {
  // The skip link's #app would be taken for a route: move the focus by hand instead.
  event.preventDefault();
  const target = root.querySelector('h1') || root;
  if (!target.hasAttribute('tabindex')) target.tabIndex = -1;
  target.focus();
}
