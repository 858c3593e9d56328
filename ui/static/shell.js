// 京智 · Jingzhi — what both pages share: the language switch, the static
// labels (`data-i18n`), who is signed in, the sign-in box, and requests
// that carry the token.

import { LANGUAGES, lookup, strings } from './i18n.js';
import { canAuthor, canOperate, loadToken, OPEN_PRINCIPAL, principalFrom, request, saveToken } from './api.js';

export const LANG_STORAGE_KEY = 'jingzhi.lang';

function storedLanguage(win) {
  try {
    const v = win.localStorage.getItem(LANG_STORAGE_KEY);
    return LANGUAGES.includes(v) ? v : 'zh';
  } catch {
    return 'zh';
  }
}

/**
 * The page shell. `hooks.onLanguage(shell)` runs after every language
 * change, `hooks.onPrincipal(shell)` after who is signed in changes (and
 * when the token was refused).
 */
export function createShell(win, hooks = {}) {
  const doc = win.document;
  const $ = (sel) => doc.querySelector(sel);
  const shell = {
    win,
    doc,
    lang: storedLanguage(win),
    token: loadToken(win),
    principal: OPEN_PRINCIPAL,
    titleKey: doc.body.dataset.titleKey || 'title',
    el: {
      langButtons: Array.from(doc.querySelectorAll('[data-lang]')),
      user: $('[data-testid="user"]'),
      userName: $('[data-testid="user-name"]'),
      userRoles: $('[data-testid="user-roles"]'),
      signIn: $('[data-testid="sign-in"]'),
      signOut: $('[data-testid="sign-out"]'),
      dialog: $('[data-testid="signin-dialog"]'),
      tokenInput: $('[data-testid="token-input"]'),
      tokenError: $('[data-testid="token-error"]'),
      timeZone: $('[data-testid="time-zone"]'),
    },
    S() {
      return strings(shell.lang);
    },
    setLanguage(lang) {
      shell.lang = LANGUAGES.includes(lang) ? lang : 'zh';
      try {
        win.localStorage.setItem(LANG_STORAGE_KEY, shell.lang);
      } catch {
        // storage unavailable: the choice is per page
      }
      applyStaticLabels(shell);
      renderUser(shell);
      if (hooks.onLanguage) hooks.onLanguage(shell);
    },
    /** An API request with the token; a 401 opens the sign-in box. */
    async request(path, opts) {
      const r = await request(win, shell.token, path, opts);
      if (r.status === 401 && !shell.el.dialog?.open) {
        shell.principal = { ...shell.principal, auth: true, unauthorized: true };
        renderUser(shell);
        if (hooks.onPrincipal) hooks.onPrincipal(shell);
        openSignIn(shell);
      }
      return r;
    },
    async refreshWho() {
      const r = await request(win, shell.token, 'api/v1/whoami');
      shell.principal = principalFrom(r.status, r.body);
      renderUser(shell);
      if (hooks.onPrincipal) hooks.onPrincipal(shell);
      if (shell.principal.unauthorized) openSignIn(shell);
      return shell.principal;
    },
    canOperate: () => canOperate(shell.principal),
    canAuthor: () => canAuthor(shell.principal),
  };
  bindShell(shell, hooks);
  applyStaticLabels(shell);
  renderUser(shell);
  return shell;
}

/** Static labels (`data-i18n`, `data-i18n-aria`, `data-i18n-placeholder`, `data-i18n-title`). */
export function applyStaticLabels(shell) {
  const S = shell.S();
  const doc = shell.doc;
  doc.documentElement.lang = S.htmlLang;
  const title = lookup(S, shell.titleKey);
  if (typeof title === 'string') doc.title = title;
  for (const el of doc.querySelectorAll('[data-i18n]')) {
    const v = lookup(S, el.dataset.i18n);
    if (typeof v === 'string') el.textContent = v;
  }
  for (const [attr, data] of [
    ['aria-label', 'i18nAria'],
    ['placeholder', 'i18nPlaceholder'],
    ['title', 'i18nTitle'],
  ]) {
    for (const el of doc.querySelectorAll(`[data-${data.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}]`)) {
      const v = lookup(S, el.dataset[data]);
      if (typeof v === 'string') el.setAttribute(attr, v);
    }
  }
  for (const b of shell.el.langButtons) b.setAttribute('aria-pressed', String(b.dataset.lang === shell.lang));
}

function renderUser(shell) {
  const { el, principal: p } = shell;
  const S = shell.S();
  if (!el.user) return;
  let name;
  if (!p.auth) name = S.user.open;
  else if (p.name) name = S.user.signedInAs(p.name);
  else name = S.user.anonymous;
  el.userName.textContent = name;
  const roles = p.auth ? p.roles.map((r) => S.user.roles[r] ?? r) : [];
  if (p.auth && p.districts && p.districts.length) roles.push(S.user.districts(p.districts.join(', ')));
  el.userRoles.textContent = roles.join(' · ');
  el.user.dataset.roles = p.roles.join(' ');
  el.user.dataset.auth = String(Boolean(p.auth));
  el.signIn.hidden = !p.auth || (Boolean(shell.token) && !p.unauthorized);
  el.signOut.hidden = !shell.token;
}

function openSignIn(shell) {
  const { dialog, tokenInput, tokenError } = shell.el;
  if (!dialog || dialog.open) return;
  tokenError.hidden = !shell.token;
  tokenError.textContent = shell.token ? shell.S().user.invalid : '';
  tokenInput.value = '';
  if (typeof dialog.showModal === 'function') dialog.showModal();
  else dialog.setAttribute('open', '');
  tokenInput.focus();
}

function bindShell(shell, hooks) {
  const { el, win } = shell;
  for (const b of el.langButtons) b.addEventListener('click', () => shell.setLanguage(b.dataset.lang));
  el.signIn?.addEventListener('click', () => openSignIn(shell));
  el.signOut?.addEventListener('click', async () => {
    shell.token = null;
    saveToken(win, null);
    await shell.refreshWho();
    if (hooks.onToken) hooks.onToken(shell);
  });
  el.dialog?.addEventListener('close', async () => {
    if (el.dialog.returnValue !== 'submit') return;
    const token = el.tokenInput.value.trim();
    if (!token) return;
    shell.token = token;
    saveToken(win, token);
    await shell.refreshWho();
    if (hooks.onToken) hooks.onToken(shell);
  });
}
