// 京智 · Jingzhi — the client's copy of the alert feed (pure), the feed's
// URL with resume, and the render throttle.
//
// The WebSocket sends a snapshot, then numbered changes without gaps. A
// client that reconnects with `?since=SEQ` (the last number it applied)
// gets the missed changes in order — or, when they are no longer kept, a
// fresh snapshot marked `resync` — so a dropped connection shows no gaps.
// `applyMessage` folds one message into the state and says what changed;
// it does no DOM and no I/O, so tests can drive it directly.

const NO_CHANGES = Object.freeze([]);

/** Reconnect delays: 1 s doubling to 15 s. */
export const BACKOFF_MIN_MS = 1000;
export const BACKOFF_MAX_MS = 15000;

/** The page renders at most this often while changes stream in. */
export const RENDER_INTERVAL_MS = 250;

/**
 * The client's copy of the alert feed.
 *
 * - `seq`: the last sequence number applied (null before the first snapshot).
 * - `alerts`: active alerts by id.
 * - `synced`: changes may be applied on the current connection (a snapshot
 *   arrived on it, or it resumes from `seq`).
 * - `everSynced`: some snapshot has arrived (later snapshots are diffed).
 * - `orderVersion`: bumped whenever the order or membership may have changed.
 * - `version`: bumped on every applied change.
 * - `allowGaps`: the client sees only some districts, so the numbers of the
 *   changes it gets skip those of other districts' changes.
 */
export function createFeed() {
  return {
    seq: null,
    alerts: new Map(),
    synced: false,
    everSynced: false,
    orderVersion: 0,
    version: 0,
    allowGaps: false,
  };
}

/**
 * A new connection. With `resume` (the URL carries `since=feed.seq`) the
 * changes that follow continue the current state; without it, nothing is
 * applied until the connection's snapshot arrives.
 */
export function resetConnection(feed, resume = false) {
  feed.synced = Boolean(resume) && feed.everSynced && feed.seq !== null;
}

function isAlert(a) {
  return a !== null && typeof a === 'object' && typeof a.id === 'string' && a.id !== '';
}

/**
 * Folds one feed message into `feed` (updated in place; no DOM, no I/O).
 *
 * Returns `{status, changes}`:
 * - `snapshot`: the list was replaced (first message, a resync, or the
 *   snapshot of a new connection);
 * - `change`: a raised/updated/cleared message was applied;
 * - `stale`: an already applied seq, ignored;
 * - `gap`: a seq was skipped: the client is out of step and should
 *   reconnect for a snapshot (the server promises no gaps to a client that
 *   sees every district: a safety net; with `allowGaps` skips are normal);
 * - `ignored`: nothing to apply (no snapshot yet on this connection, or an
 *   unknown message type, whose seq is still taken);
 * - `invalid`: a malformed message.
 *
 * `changes` lists `[id, kind, alert]` with kind `new`, `changed` or `gone`
 * (`alert`: the alert as sent, for `gone` as it was when cleared). The
 * first snapshot ever yields none (nothing to highlight); later snapshots
 * yield the difference to the list they replace.
 */
export function applyMessage(feed, msg) {
  if (msg === null || typeof msg !== 'object' || typeof msg.type !== 'string') {
    return { status: 'invalid', changes: NO_CHANGES };
  }
  if (msg.type === 'snapshot') return applySnapshot(feed, msg);
  if (!feed.synced) return { status: 'ignored', changes: NO_CHANGES };
  if (!Number.isSafeInteger(msg.seq)) return { status: 'invalid', changes: NO_CHANGES };
  if (msg.seq <= feed.seq) return { status: 'stale', changes: NO_CHANGES };
  if (msg.seq !== feed.seq + 1 && !feed.allowGaps) return { status: 'gap', changes: NO_CHANGES };

  const kind = msg.type;
  if (kind !== 'raised' && kind !== 'updated' && kind !== 'cleared') {
    feed.seq = msg.seq;
    return { status: 'ignored', changes: NO_CHANGES };
  }
  const alert = msg.alert;
  if (!isAlert(alert)) return { status: 'invalid', changes: NO_CHANGES };

  feed.seq = msg.seq;
  feed.version++;
  const old = feed.alerts.get(alert.id);
  if (kind === 'cleared') {
    if (!old) return { status: 'change', changes: NO_CHANGES };
    feed.alerts.delete(alert.id);
    feed.orderVersion++;
    return { status: 'change', changes: [[alert.id, 'gone', alert]] };
  }
  feed.alerts.set(alert.id, alert);
  if (!old || old.severity !== alert.severity || old.started_at !== alert.started_at) {
    feed.orderVersion++;
  }
  // A `raised` for a known id, or an `updated` for an unknown one, should
  // not happen; either way the alert is now shown as it was sent.
  return { status: 'change', changes: [[alert.id, old ? 'changed' : 'new', alert]] };
}

function applySnapshot(feed, msg) {
  if (!Number.isSafeInteger(msg.seq) || !Array.isArray(msg.alerts)) {
    return { status: 'invalid', changes: NO_CHANGES };
  }
  const next = new Map();
  for (const a of msg.alerts) if (isAlert(a)) next.set(a.id, a);
  let changes = NO_CHANGES;
  if (feed.everSynced) {
    changes = [];
    for (const [id, a] of next) {
      const old = feed.alerts.get(id);
      if (!old) changes.push([id, 'new', a]);
      else if (old.updated_at !== a.updated_at || old.severity !== a.severity || !sameOperator(old, a)) {
        changes.push([id, 'changed', a]);
      }
    }
    for (const [id, a] of feed.alerts) if (!next.has(id)) changes.push([id, 'gone', a]);
  }
  feed.alerts = next;
  feed.seq = msg.seq;
  feed.synced = true;
  feed.everSynced = true;
  feed.orderVersion++;
  feed.version++;
  return { status: 'snapshot', changes };
}

function sameOperator(a, b) {
  return (a.operator?.state ?? null) === (b.operator?.state ?? null) && Boolean(a.silenced) === Boolean(b.silenced);
}

/**
 * Combines two marks for the same alert between renders: the later one
 * wins, except that an alert raised and then updated is still new.
 */
export function mergeMark(prev, next) {
  if (prev === 'new' && next === 'changed') return 'new';
  return next;
}

/** The latest engine time a message carries (ms), or null. */
export function latestTime(msg) {
  let t = null;
  const see = (a) => {
    if (!a) return;
    for (const v of [a.updated_at, a.cleared_at]) {
      if (Number.isFinite(v) && (t === null || v > t)) t = v;
    }
  };
  if (msg && Array.isArray(msg.alerts)) msg.alerts.forEach(see);
  else if (msg) see(msg.alert);
  return t;
}

/** The reconnect delay after `prevMs` (0: none yet): 1 s doubling to 15 s. */
export function nextBackoff(prevMs) {
  if (!(prevMs > 0)) return BACKOFF_MIN_MS;
  return Math.min(prevMs * 2, BACKOFF_MAX_MS);
}

/**
 * The WebSocket URL of the feed, relative to the page (ws: or wss:), with
 * `since` to resume after a sequence number and `token` (browsers cannot
 * set headers on a WebSocket).
 */
export function feedUrl(pageHref, { since = null, token = null } = {}) {
  const url = new URL('api/v1/alerts/ws', pageHref);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.hash = '';
  url.search = '';
  if (Number.isSafeInteger(since)) url.searchParams.set('since', String(since));
  if (token) url.searchParams.set('token', token);
  return url.href;
}

/**
 * Calls `render` at most once per `intervalMs`, on an animation frame:
 * `schedule()` may be called for every message; the renders coalesce.
 * `timers` supplies `now`, `setTimeout`, `clearTimeout` and
 * `requestAnimationFrame` (the window's, or fakes in tests).
 */
export function createThrottle(timers, render, intervalMs = RENDER_INTERVAL_MS) {
  const state = { pending: false, last: -Infinity, renders: 0, timer: 0, frame: 0 };
  const run = () => {
    state.frame = 0;
    state.pending = false;
    state.last = timers.now();
    state.renders++;
    render();
  };
  const frame = () => {
    state.timer = 0;
    state.frame = timers.requestAnimationFrame(run);
  };
  return {
    state,
    /** Asks for a render; returns whether a new one was scheduled. */
    schedule() {
      if (state.pending) return false;
      state.pending = true;
      const wait = state.last + intervalMs - timers.now();
      if (wait > 0) state.timer = timers.setTimeout(frame, wait);
      else frame();
      return true;
    },
    /** Renders on the next frame regardless of the interval (user input). */
    now() {
      if (state.timer) {
        timers.clearTimeout(state.timer);
        state.timer = 0;
        state.pending = false;
      }
      if (state.pending) return;
      state.pending = true;
      frame();
    },
  };
}
