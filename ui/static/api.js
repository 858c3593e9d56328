// 京智 · Jingzhi — talking to the server: the API token, requests with
// `Authorization: Bearer`, who is signed in and what they may do.
//
// The token comes from the URL fragment (`#token=…`, as the demo prints
// it; removed from the address bar at once) or the sign-in box, and is kept
// in localStorage. When the server has access control off (`whoami.auth`
// false, or no whoami endpoint) everyone may do everything.

export const TOKEN_KEY = 'jingzhi.token';

/** The token in a URL fragment (`#token=abc` or `#…&token=abc`), or null. */
export function tokenFromHash(hash) {
  const h = String(hash ?? '').replace(/^#/, '');
  if (!h) return null;
  for (const part of h.split('&')) {
    const [k, v] = part.split('=');
    if (k === 'token' && v) {
      try {
        return decodeURIComponent(v);
      } catch {
        return v;
      }
    }
  }
  return null;
}

/** The fragment without its `token=` part ('' when nothing else is left). */
export function hashWithoutToken(hash) {
  const h = String(hash ?? '').replace(/^#/, '');
  const rest = h.split('&').filter((p) => p && !p.startsWith('token='));
  return rest.length ? `#${rest.join('&')}` : '';
}

/** Reads the token: the fragment wins (and is stored), then storage. */
export function loadToken(win) {
  const fromHash = tokenFromHash(win.location.hash);
  if (fromHash) {
    saveToken(win, fromHash);
    try {
      const url = win.location.pathname + win.location.search + hashWithoutToken(win.location.hash);
      win.history.replaceState(null, '', url);
    } catch {
      // no history API: the token stays visible in the address bar
    }
    return fromHash;
  }
  try {
    return win.localStorage.getItem(TOKEN_KEY) || null;
  } catch {
    return null;
  }
}

export function saveToken(win, token) {
  try {
    if (token) win.localStorage.setItem(TOKEN_KEY, token);
    else win.localStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage unavailable: the token lasts as long as the page
  }
}

/** Who may do everything: access control is off (or the server predates it). */
export const OPEN_PRINCIPAL = Object.freeze({
  auth: false,
  known: false,
  name: null,
  roles: ['operator', 'author', 'admin'],
  districts: null,
});

/** Folds a whoami reply (or its absence) into the principal the page uses. */
export function principalFrom(status, body) {
  if (status === 200 && body && typeof body === 'object') {
    return {
      auth: body.auth !== false,
      known: true,
      name: typeof body.name === 'string' ? body.name : null,
      roles: Array.isArray(body.roles) ? body.roles.map(String) : [],
      districts: Array.isArray(body.districts) ? body.districts.map(String) : null,
    };
  }
  if (status === 401) return { auth: true, known: true, name: null, roles: [], districts: null, unauthorized: true };
  // 404 (no such endpoint yet) or a failure: assume access control is off;
  // the server still refuses what it must.
  return OPEN_PRINCIPAL;
}

/** Whether the principal has `role` (admins have every role; open access has all). */
export function hasRole(p, role) {
  if (!p || !p.auth) return true;
  return p.roles.includes(role) || p.roles.includes('admin');
}

/** May act on alerts (acknowledge, assign, silence, …). */
export const canOperate = (p) => hasRole(p, 'operator');
/** May check, backtest and publish rules. */
export const canAuthor = (p) => hasRole(p, 'author');

/**
 * A request to the API, relative to the page. Resolves to
 * `{ok, status, body, error}`; never throws. `body` is parsed JSON when the
 * reply is JSON; `error` is the reply's `error.message`, or what failed.
 */
export async function request(win, token, path, { method = 'GET', json, text, signal, timeoutMs = 15000 } = {}) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  let body;
  if (json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (text !== undefined) {
    headers['content-type'] = 'text/plain; charset=utf-8';
    body = text;
  }
  const controller = new AbortController();
  const abort = () => controller.abort();
  if (signal) {
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
  }
  const timer = win.setTimeout(abort, timeoutMs);
  try {
    const res = await win.fetch(new URL(path, win.location.href), {
      method,
      headers,
      body,
      cache: 'no-store',
      signal: controller.signal,
    });
    let parsed = null;
    const type = res.headers.get('content-type') || '';
    if (type.includes('json')) {
      try {
        parsed = await res.json();
      } catch {
        parsed = null;
      }
    }
    const error = res.ok ? null : (parsed && parsed.error && parsed.error.message) || `HTTP ${res.status}`;
    return { ok: res.ok, status: res.status, body: parsed, error, code: parsed && parsed.error && parsed.error.code };
  } catch (err) {
    const aborted = signal && signal.aborted;
    return { ok: false, status: 0, body: null, error: aborted ? 'aborted' : String(err && err.message ? err.message : err), aborted };
  } finally {
    win.clearTimeout(timer);
    if (signal) signal.removeEventListener('abort', abort);
  }
}
