// 京智 · Jingzhi decision dashboard: first cut.
//
// One ES module (no build step, no dependencies), in sections that can later
// become files of their own:
//
//   constants · i18n · feed state (pure) · ordering and selection (pure) ·
//   formatting (pure) · view (DOM) · connection (WebSocket) · engine clock ·
//   boot
//
// The page talks only to the documented API (docs/api.md), same origin:
// the WebSocket feed /api/v1/alerts/ws and GET /api/v1/status.
//
// Data flow: each WebSocket message is parsed and folded into the feed
// state at once by `applyMessage` (pure apart from updating the state object
// it is given; no DOM, no I/O). What changed is collected as "marks" (new /
// changed / gone per alert id) and the DOM is updated at most once per
// animation frame, by keyed row updates: at most MAX_ROWS row elements
// exist, each reused while its alert stays visible.
//
// The pure parts are exported for ui/tests/app.test.mjs; `boot` runs only in
// a browser.

// ---------------------------------------------------------------- constants

/** Severities, most severe first. */
export const SEVERITIES = Object.freeze(['red', 'orange', 'yellow', 'blue']);
const SEVERITY_RANK = new Map([
  ['red', 4],
  ['orange', 3],
  ['yellow', 2],
  ['blue', 1],
]);

/** Rows rendered at most; the rest are counted in a note. */
export const MAX_ROWS = 500;
export const BACKOFF_MIN_MS = 1000;
export const BACKOFF_MAX_MS = 15000;
const STATUS_REFRESH_MS = 10000;
const STATUS_TIMEOUT_MS = 5000;
const FLASH_NEW_MS = 2500;
const FLASH_CHANGED_MS = 1200;
const LEAVE_MS = 600;
const LANG_STORAGE_KEY = 'jingzhi.lang';

const API = Object.freeze({
  feed: 'api/v1/alerts/ws',
  status: 'api/v1/status',
});

// --------------------------------------------------------------------- i18n

/** Every UI string, keyed by language. Functions take the varying parts. */
export const STRINGS = Object.freeze({
  zh: {
    htmlLang: 'zh-CN',
    title: '京智 · Jingzhi 城市风险实时研判',
    tagline: '城市风险实时研判',
    language: '语言',
    conn: { connecting: '连接中', open: '已连接', closed: '已断开' },
    reconnectIn: (s) => `${s} 秒后重连`,
    lastUpdate: '最近更新',
    clockEvent: '事件时钟',
    clockWall: '本地时间',
    clockStatusFailed: '无法获取引擎状态',
    severity: { red: '红色', orange: '橙色', yellow: '黄色', blue: '蓝色' },
    severityUnknown: '未知',
    countsHeading: '预警统计',
    tileHint: (sev) => `只看${sev}预警(再次点击取消筛选)`,
    listHeading: '活动预警',
    total: (n) => `共 ${n} 条`,
    filterNote: (sev) => `筛选:${sev}`,
    empty: '当前无活动预警',
    emptyFiltered: (sev) => `当前无${sev}预警`,
    waiting: '等待数据…',
    more: (n) => `还有 ${n} 条`,
    stale: '连接已断开,列表为断开前的数据',
    cell: (c) => `网格 ${c}`,
    age: {
      s: (n) => `${n} 秒`,
      m: (n) => `${n} 分钟`,
      h: (h, m) => `${h} 小时 ${m} 分`,
      d: (d, h) => `${d} 天 ${h} 小时`,
    },
    detail: {
      rule: '规则',
      started: '开始',
      updated: '更新',
      id: '编号',
      values: '当前数值',
      summary: '证据摘要',
      evidence: '证据',
      term: '项',
      stream: '数据流',
      aggregate: '聚合',
      window: '窗口',
      count: '样本',
      min: '最小',
      max: '最大',
      avg: '平均',
      none: '无',
    },
    info: (s) => `规则 ${s.rules} · 工作线程 ${s.workers} · v${s.version}`,
  },
  en: {
    htmlLang: 'en',
    title: 'Jingzhi · real-time city risk assessment',
    tagline: 'real-time city risk assessment',
    language: 'Language',
    conn: { connecting: 'Connecting', open: 'Connected', closed: 'Disconnected' },
    reconnectIn: (s) => `retry in ${s} s`,
    lastUpdate: 'last update',
    clockEvent: 'Event clock',
    clockWall: 'Local time',
    clockStatusFailed: 'engine status unavailable',
    severity: { red: 'Red', orange: 'Orange', yellow: 'Yellow', blue: 'Blue' },
    severityUnknown: 'Unknown',
    countsHeading: 'Alerts by severity',
    tileHint: (sev) => `Show only ${sev} alerts (click again to clear)`,
    listHeading: 'Active alerts',
    total: (n) => `${n} total`,
    filterNote: (sev) => `filter: ${sev}`,
    empty: 'No active alerts',
    emptyFiltered: (sev) => `No ${sev} alerts`,
    waiting: 'Waiting for data…',
    more: (n) => `${n} more`,
    stale: 'Disconnected: the list shows the data from before',
    cell: (c) => `cell ${c}`,
    age: {
      s: (n) => `${n} s`,
      m: (n) => `${n} min`,
      h: (h, m) => `${h} h ${m} min`,
      d: (d, h) => `${d} d ${h} h`,
    },
    detail: {
      rule: 'Rule',
      started: 'Started',
      updated: 'Updated',
      id: 'ID',
      values: 'Current values',
      summary: 'Evidence summary',
      evidence: 'Evidence',
      term: 'Term',
      stream: 'Stream',
      aggregate: 'Aggregate',
      window: 'Window',
      count: 'n',
      min: 'min',
      max: 'max',
      avg: 'avg',
      none: 'none',
    },
    info: (s) => `${s.rules} rules · ${s.workers} workers · v${s.version}`,
  },
});

export const LANGUAGES = Object.freeze(Object.keys(STRINGS));

/** The strings of `lang`, falling back to Chinese. */
export function strings(lang) {
  return LANGUAGES.includes(lang) ? STRINGS[lang] : STRINGS.zh;
}

// ------------------------------------------------------- feed state (pure)

const NO_CHANGES = Object.freeze([]);

/**
 * The client's copy of the alert feed.
 *
 * - `seq`: the last sequence number applied (null before the first snapshot).
 * - `alerts`: active alerts by id.
 * - `synced`: a snapshot has arrived on the current connection; changes are
 *   applied only then.
 * - `everSynced`: some snapshot has arrived (later snapshots are diffed).
 * - `orderVersion`: bumped whenever the order or membership may have changed
 *   (so the sorted array can be reused in between).
 * - `version`: bumped on every applied change.
 */
export function createFeed() {
  return {
    seq: null,
    alerts: new Map(),
    synced: false,
    everSynced: false,
    orderVersion: 0,
    version: 0,
  };
}

/** A new connection: wait for its snapshot before applying changes. */
export function resetConnection(feed) {
  feed.synced = false;
}

function isAlert(a) {
  return a !== null && typeof a === 'object' && typeof a.id === 'string' && a.id !== '';
}

/**
 * Folds one feed message into `feed` (updated in place; no DOM, no I/O).
 *
 * Returns `{status, changes}`:
 * - status `snapshot`: the list was replaced (first message, a `resync`, or
 *   the snapshot of a new connection);
 * - `change`: a raised/updated/cleared message was applied;
 * - `stale`: an already applied seq, ignored;
 * - `gap`: a seq was skipped: the client is out of step and should
 *   reconnect (the server promises no gaps, so this is a safety net);
 * - `ignored`: nothing to apply (no snapshot yet on this connection, or an
 *   unknown message type, whose seq is still taken);
 * - `invalid`: a malformed message.
 *
 * `changes` lists `[id, kind]` with kind `new`, `changed` or `gone`. The
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
  if (msg.seq !== feed.seq + 1) return { status: 'gap', changes: NO_CHANGES };

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
    return { status: 'change', changes: [[alert.id, 'gone']] };
  }
  feed.alerts.set(alert.id, alert);
  if (!old || old.severity !== alert.severity || old.started_at !== alert.started_at) {
    feed.orderVersion++;
  }
  // A `raised` for a known id, or an `updated` for an unknown one, should
  // not happen; either way the alert is now shown as it was sent.
  return { status: 'change', changes: [[alert.id, old ? 'changed' : 'new']] };
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
      if (!old) changes.push([id, 'new']);
      else if (old.updated_at !== a.updated_at || old.severity !== a.severity) changes.push([id, 'changed']);
    }
    for (const id of feed.alerts.keys()) if (!next.has(id)) changes.push([id, 'gone']);
  }
  feed.alerts = next;
  feed.seq = msg.seq;
  feed.synced = true;
  feed.everSynced = true;
  feed.orderVersion++;
  feed.version++;
  return { status: 'snapshot', changes };
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

/** The WebSocket URL of the feed, relative to the page (ws: or wss:). */
export function feedUrl(pageHref) {
  const url = new URL(API.feed, pageHref);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.hash = '';
  url.search = '';
  return url.href;
}

// --------------------------------------------- ordering and selection (pure)

/** Rank of a severity: red 4 … blue 1, unknown 0. */
export function severityRank(sev) {
  return SEVERITY_RANK.get(sev) ?? 0;
}

/** Whether `sev` is one of the four warning colours. */
export function isSeverity(sev) {
  return SEVERITY_RANK.has(sev);
}

/** The display name of a severity ("红色"), or "unknown". */
export function severityName(sev, S = STRINGS.zh) {
  return isSeverity(sev) ? S.severity[sev] : S.severityUnknown;
}

/** Red first, then newest `started_at` first, then by id (stable). */
export function compareAlerts(a, b) {
  const r = severityRank(b.severity) - severityRank(a.severity);
  if (r !== 0) return r;
  const t = (b.started_at ?? 0) - (a.started_at ?? 0);
  if (t !== 0) return t;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** The alerts of an iterable as a new array in display order. */
export function sortAlerts(alerts) {
  return Array.from(alerts).sort(compareAlerts);
}

/** Counts per severity, plus `other` (unknown severity) and `total`. */
export function countBySeverity(alerts) {
  const counts = { red: 0, orange: 0, yellow: 0, blue: 0, other: 0, total: 0 };
  for (const a of alerts) {
    if (isSeverity(a.severity)) counts[a.severity]++;
    else counts.other++;
    counts.total++;
  }
  return counts;
}

/**
 * The rows to render from a sorted array: those of severity `filter` (all
 * when null), at most `cap`. `total` counts all that match, `hidden` those
 * beyond the cap.
 */
export function selectVisible(sorted, filter, cap = MAX_ROWS) {
  if (!filter) {
    const rows = sorted.length > cap ? sorted.slice(0, cap) : sorted.slice();
    return { rows, total: sorted.length, hidden: sorted.length - rows.length };
  }
  const rows = [];
  let total = 0;
  for (const a of sorted) {
    if (a.severity !== filter) continue;
    total++;
    if (rows.length < cap) rows.push(a);
  }
  return { rows, total, hidden: total - rows.length };
}

/**
 * Merges fading (just cleared) alerts into the visible rows at their sorted
 * place. Both inputs are sorted; leaving alerts that would fall beyond a
 * full page are dropped. Returns `[{alert, leaving}]`.
 */
export function mergeLeaving(rows, leaving, cap = MAX_ROWS) {
  const out = [];
  let i = 0;
  let j = 0;
  while (i < rows.length || j < leaving.length) {
    if (j >= leaving.length) out.push({ alert: rows[i++], leaving: false });
    else if (i >= rows.length) {
      if (rows.length >= cap) break;
      out.push({ alert: leaving[j++], leaving: true });
    } else if (compareAlerts(leaving[j], rows[i]) < 0) out.push({ alert: leaving[j++], leaving: true });
    else out.push({ alert: rows[i++], leaving: false });
  }
  return out;
}

// -------------------------------------------------------- formatting (pure)

/** An age in ms as text ("3 分钟"); negative ages count as 0. */
export function formatAge(ms, S = STRINGS.zh) {
  if (!Number.isFinite(ms)) return '—';
  const s = Math.floor(Math.max(0, ms) / 1000);
  if (s < 60) return S.age.s(s);
  const m = Math.floor(s / 60);
  if (m < 60) return S.age.m(m);
  const h = Math.floor(m / 60);
  if (h < 24) return S.age.h(h, m % 60);
  return S.age.d(Math.floor(h / 24), h % 24);
}

/**
 * The time ages are measured against: the engine clock in event mode
 * (null until known), the browser's clock otherwise.
 */
export function ageReference(clock, nowMs) {
  if (clock.mode === 'event') return clock.engineMs;
  return nowMs;
}

/** Where an alert is: district name and grid cell, or its key. */
export function formatPlace(alert, S = STRINGS.zh) {
  const parts = [];
  if (alert.district_name) parts.push(alert.district_name);
  if (alert.cell !== null && alert.cell !== undefined) parts.push(S.cell(alert.cell));
  if (parts.length === 0 && alert.key) parts.push(String(alert.key));
  return parts.join(' · ');
}

/** A number for people: up to 3 decimals; null (empty window) as a dash. */
export function formatNumber(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v !== 'number') return String(v);
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toFixed(3)));
}

const pad2 = (n) => String(n).padStart(2, '0');

/**
 * Local time of an epoch-ms instant as `HH:mm:ss`, with `withDate` as
 * `YYYY-MM-DD HH:mm:ss` (unambiguous in both languages).
 */
export function formatTime(ms, withDate = false) {
  if (!Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  const time = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  if (!withDate) return time;
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${time}`;
}

const HTML_ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text made safe for HTML content and attribute values. */
export function escapeHtml(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

/** The detail of one alert as HTML (all server text escaped). */
export function detailHtml(alert, S = STRINGS.zh) {
  const D = S.detail;
  const e = escapeHtml;
  const values = Object.entries(alert.values ?? {});
  const valuesHtml = values.length
    ? values.map(([k, v]) => `<span class="value"><span class="value-name">${e(k)}</span> ${e(formatNumber(v))}</span>`).join('')
    : `<span class="muted">${e(D.none)}</span>`;
  const evidence = Array.isArray(alert.evidence) ? alert.evidence : [];
  const evidenceHtml = evidence.length
    ? `<table class="evidence"><thead><tr>${[D.term, D.stream, D.aggregate, D.window, D.count, D.min, D.max, D.avg]
        .map((h) => `<th scope="col">${e(h)}</th>`)
        .join('')}</tr></thead><tbody>${evidence
        .map(
          (ev) =>
            `<tr><td>${e(ev.term)}</td><td>${e(ev.stream)}</td><td>${e(ev.aggregate)}</td><td>${e(ev.window)}</td>` +
            `<td>${e(formatNumber(ev.count))}</td><td>${e(formatNumber(ev.min))}</td><td>${e(formatNumber(ev.max))}</td>` +
            `<td>${e(formatNumber(ev.avg))}</td></tr>`,
        )
        .join('')}</tbody></table>`
    : '';
  return (
    `<dl class="facts">` +
    `<div><dt>${e(D.rule)}</dt><dd><code>${e(alert.rule)}</code></dd></div>` +
    `<div><dt>${e(D.started)}</dt><dd>${e(formatTime(alert.started_at, true))}</dd></div>` +
    `<div><dt>${e(D.updated)}</dt><dd>${e(formatTime(alert.updated_at, true))}</dd></div>` +
    `<div><dt>${e(D.id)}</dt><dd><code>${e(alert.id)}</code></dd></div>` +
    `</dl>` +
    `<div class="detail-block"><h3>${e(D.values)}</h3><div class="values">${valuesHtml}</div></div>` +
    (alert.summary ? `<div class="detail-block"><h3>${e(D.summary)}</h3><p class="summary">${e(alert.summary)}</p></div>` : '') +
    (evidenceHtml ? `<div class="detail-block"><h3>${e(D.evidence)}</h3>${evidenceHtml}</div>` : '')
  );
}

// --------------------------------------------------------------- view (DOM)

const FLASH_COLOURS = Object.freeze({
  red: 'rgba(217, 30, 24, 0.55)',
  orange: 'rgba(240, 120, 0, 0.5)',
  yellow: 'rgba(242, 194, 0, 0.4)',
  blue: 'rgba(30, 111, 217, 0.55)',
});
const FLASH_CHANGED = 'rgba(255, 255, 255, 0.14)';

/** Everything the page shows that is not in the feed itself. */
function createView(doc) {
  const $ = (sel) => doc.querySelector(sel);
  return {
    doc,
    lang: 'zh',
    filter: null,
    el: {
      list: $('[data-testid="alert-list"]'),
      empty: $('[data-testid="empty-state"]'),
      more: $('[data-testid="alert-list-more"]'),
      total: $('[data-testid="alert-total"]'),
      filterNote: $('[data-testid="filter-note"]'),
      stale: $('[data-testid="stale-banner"]'),
      tiles: Array.from(doc.querySelectorAll('[data-testid="severity-tile"]')),
      conn: $('[data-testid="connection-status"]'),
      connLabel: $('[data-testid="connection-status"] .conn-label'),
      connMeta: $('[data-testid="connection-status"] .conn-meta'),
      clock: $('[data-testid="engine-clock"]'),
      clockLabel: $('[data-testid="engine-clock"] .clock-label'),
      clockTime: $('[data-testid="engine-clock"] .clock-time'),
      info: $('[data-testid="engine-info"]'),
      langButtons: Array.from(doc.querySelectorAll('[data-lang]')),
      rowTemplate: $('#alert-row-template'),
    },
    rows: new Map(), // id -> row record {el, alert, lang, leaving, ...}
    expanded: new Set(), // ids whose detail is open
    marks: new Map(), // id -> 'new' | 'changed' | 'gone', since the last render
    leaving: new Map(), // id -> {alert, until}: cleared, fading out
    leaveTimer: 0,
    sorted: [],
    counts: countBySeverity([]),
    orderVersion: -1,
    frame: 0,
  };
}

/** The whole page's state: feed, view, connection and engine clock. */
function createApp(doc, win) {
  return {
    win,
    feed: createFeed(),
    view: createView(doc),
    conn: { state: 'connecting', ws: null, backoffMs: 0, retryAt: null, timer: 0, lastMessageAt: null },
    clock: { mode: null, engineMs: null, status: null, failed: false },
  };
}

function uiStrings(app) {
  return strings(app.view.lang);
}

function scheduleRender(app) {
  const view = app.view;
  if (view.frame) return;
  view.frame = app.win.requestAnimationFrame(() => render(app));
}

/** One frame: apply marks, recompute order if needed, update the DOM. */
function render(app) {
  const { view, feed } = app;
  view.frame = 0;
  const now = Date.now();

  if (feed.orderVersion !== view.orderVersion) {
    view.sorted = sortAlerts(feed.alerts.values());
    view.counts = countBySeverity(view.sorted);
    view.orderVersion = feed.orderVersion;
  }

  const flashes = new Map();
  for (const [id, kind] of view.marks) {
    if (kind === 'gone') {
      const row = view.rows.get(id);
      if (row && !row.leaving && !feed.alerts.has(id)) view.leaving.set(id, { alert: row.alert, until: now + LEAVE_MS });
    } else {
      view.leaving.delete(id);
      flashes.set(id, kind);
    }
  }
  view.marks.clear();
  for (const [id, l] of view.leaving) {
    if (l.until <= now || feed.alerts.has(id)) view.leaving.delete(id);
  }
  for (const id of view.expanded) {
    if (!feed.alerts.has(id) && !view.leaving.has(id)) view.expanded.delete(id);
  }

  const { rows, total, hidden } = selectVisible(view.sorted, view.filter, MAX_ROWS);
  let items;
  if (view.leaving.size) {
    const leaving = sortAlerts(
      Array.from(view.leaving.values(), (l) => l.alert).filter((a) => !view.filter || a.severity === view.filter),
    );
    items = mergeLeaving(rows, leaving, MAX_ROWS);
  } else {
    items = rows.map((alert) => ({ alert, leaving: false }));
  }
  reconcileRows(app, items, flashes, now);
  renderSummary(app, total, hidden);
  renderConnection(app);

  if (view.leaving.size && !view.leaveTimer) {
    view.leaveTimer = app.win.setTimeout(() => {
      view.leaveTimer = 0;
      scheduleRender(app);
    }, LEAVE_MS + 20);
  }
}

/** Keyed update of the list: reuse, update, move, create or drop rows. */
function reconcileRows(app, items, flashes, now) {
  const { view, feed } = app;
  const list = view.el.list;
  const wanted = new Set();
  for (const item of items) wanted.add(item.alert.id);
  for (const [id, row] of view.rows) {
    if (!wanted.has(id)) {
      row.el.remove();
      view.rows.delete(id);
    }
  }
  const ref = ageReference(app.clock, now);
  let cursor = list.firstElementChild;
  for (const item of items) {
    const id = item.alert.id;
    const alert = item.leaving ? item.alert : feed.alerts.get(id) ?? item.alert;
    let row = view.rows.get(id);
    if (!row) {
      row = createRow(app, alert);
      view.rows.set(id, row);
    } else if (row.alert !== alert || row.lang !== view.lang) {
      updateRow(app, row, alert);
    }
    setLeaving(row, item.leaving);
    updateAge(app, row, ref);
    if (row.el !== cursor) list.insertBefore(row.el, cursor);
    else cursor = cursor.nextElementSibling;
    const flash = flashes.get(id);
    if (flash && !item.leaving) flashRow(row, flash);
  }
}

function createRow(app, alert) {
  const el = app.view.el.rowTemplate.content.firstElementChild.cloneNode(true);
  const row = {
    el,
    main: el.querySelector('.alert-main'),
    badge: el.querySelector('.sev-badge'),
    title: el.querySelector('.alert-title'),
    message: el.querySelector('.alert-message'),
    place: el.querySelector('.alert-place'),
    age: el.querySelector('.alert-age'),
    detail: el.querySelector('.alert-detail'),
    alert: null,
    lang: null,
    ageText: null,
    leaving: false,
  };
  const detailId = `detail-${alert.id}`;
  row.detail.id = detailId;
  row.main.setAttribute('aria-controls', detailId);
  el.dataset.alertId = alert.id;
  updateRow(app, row, alert);
  return row;
}

function updateRow(app, row, alert) {
  const S = uiStrings(app);
  const { el } = row;
  const sev = alert.severity;
  if (el.dataset.severity !== sev) el.dataset.severity = sev;
  row.badge.textContent = severityName(sev, S);
  row.title.textContent = alert.title ?? alert.rule ?? '';
  row.message.textContent = alert.message ?? '';
  row.place.textContent = formatPlace(alert, S);
  const open = app.view.expanded.has(alert.id);
  row.main.setAttribute('aria-expanded', String(open));
  row.detail.hidden = !open;
  if (open) row.detail.innerHTML = detailHtml(alert, S);
  row.alert = alert;
  row.lang = app.view.lang;
  row.ageText = null;
}

function setLeaving(row, leaving) {
  if (row.leaving === leaving) return;
  row.leaving = leaving;
  row.el.classList.toggle('leaving', leaving);
  row.el.dataset.testid = leaving ? 'alert-row-leaving' : 'alert-row';
  row.main.disabled = leaving;
}

function updateAge(app, row, ref) {
  const text = ref === null || ref === undefined ? '—' : formatAge(ref - row.alert.started_at, uiStrings(app));
  if (text !== row.ageText) {
    row.age.textContent = text;
    row.ageText = text;
  }
}

function flashRow(row, kind) {
  if (typeof row.el.animate !== 'function') return;
  const sev = row.alert.severity;
  const colour = kind === 'new' && isSeverity(sev) ? FLASH_COLOURS[sev] : FLASH_CHANGED;
  const duration = kind === 'new' ? FLASH_NEW_MS : FLASH_CHANGED_MS;
  if (row.flash) row.flash.cancel();
  row.flash = row.el.animate([{ backgroundColor: colour, offset: 0 }], { duration, easing: 'ease-out' });
}

function toggleRow(app, id) {
  const { view } = app;
  const row = view.rows.get(id);
  if (!row || row.leaving) return;
  if (view.expanded.has(id)) view.expanded.delete(id);
  else view.expanded.add(id);
  updateRow(app, row, row.alert);
  updateAge(app, row, ageReference(app.clock, Date.now()));
}

/** Tiles, totals, the empty state, the "N more" note, the stale banner. */
function renderSummary(app, total, hidden) {
  const { view, feed, conn } = app;
  const S = uiStrings(app);
  const counts = view.counts;
  for (const tile of view.el.tiles) {
    const sev = tile.dataset.severity;
    const n = counts[sev] ?? 0;
    if (tile.dataset.count !== String(n)) {
      tile.dataset.count = String(n);
      tile.querySelector('.tile-count').textContent = String(n);
    }
    tile.setAttribute('aria-pressed', String(view.filter === sev));
    tile.classList.toggle('dimmed', view.filter !== null && view.filter !== sev);
  }
  view.el.total.textContent = feed.everSynced ? S.total(counts.total) : '';
  const filterName = view.filter ? severityName(view.filter, S) : null;
  view.el.filterNote.hidden = !filterName;
  view.el.filterNote.textContent = filterName ? S.filterNote(filterName) : '';

  const empty = total === 0;
  view.el.empty.hidden = !empty;
  if (empty) view.el.empty.textContent = !feed.everSynced ? S.waiting : filterName ? S.emptyFiltered(filterName) : S.empty;
  view.el.more.hidden = hidden <= 0;
  view.el.more.textContent = hidden > 0 ? S.more(hidden) : '';
  view.el.more.dataset.count = String(Math.max(0, hidden));

  const stale = feed.everSynced && conn.state !== 'open';
  view.el.stale.hidden = !stale;
  view.el.list.classList.toggle('stale', stale);

  const title = counts.red > 0 ? `(${counts.red}) ${S.title}` : S.title;
  if (app.win.document.title !== title) app.win.document.title = title;
}

function renderConnection(app) {
  const { view, conn, feed } = app;
  const S = uiStrings(app);
  const el = view.el;
  if (el.conn.dataset.state !== conn.state) el.conn.dataset.state = conn.state;
  const label = S.conn[conn.state];
  if (el.connLabel.textContent !== label) el.connLabel.textContent = label;
  const parts = [];
  if (feed.seq !== null) parts.push(`seq ${feed.seq}`);
  if (conn.lastMessageAt !== null) parts.push(`${S.lastUpdate} ${formatTime(conn.lastMessageAt)}`);
  if (conn.state === 'closed' && conn.retryAt !== null) {
    parts.push(S.reconnectIn(Math.max(0, Math.ceil((conn.retryAt - Date.now()) / 1000))));
  }
  const meta = parts.join(' · ');
  if (el.connMeta.textContent !== meta) el.connMeta.textContent = meta;
  el.conn.dataset.seq = feed.seq === null ? '' : String(feed.seq);
}

function renderClock(app) {
  const { view, clock } = app;
  const S = uiStrings(app);
  const el = view.el;
  const event = clock.mode === 'event';
  el.clock.dataset.mode = clock.mode ?? '';
  el.clockLabel.textContent = event ? S.clockEvent : S.clockWall;
  const text = event ? formatTime(clock.engineMs, true) : formatTime(Date.now());
  if (el.clockTime.textContent !== text) el.clockTime.textContent = text;
  const ms = event ? clock.engineMs : Date.now();
  if (Number.isFinite(ms)) el.clockTime.setAttribute('datetime', new Date(ms).toISOString());
  el.clock.title = clock.failed ? S.clockStatusFailed : '';
  el.clock.classList.toggle('failed', clock.failed);
  el.info.textContent = clock.status ? S.info(clock.status) : '';
}

/** Every second: ages, the wall clock, the reconnect countdown. */
function tick(app) {
  if (app.win.document.hidden) return;
  const ref = ageReference(app.clock, Date.now());
  for (const row of app.view.rows.values()) updateAge(app, row, ref);
  renderClock(app);
  renderConnection(app);
}

/** Static labels (data-i18n*) and everything language-dependent. */
function applyLanguage(app, lang) {
  const view = app.view;
  view.lang = LANGUAGES.includes(lang) ? lang : 'zh';
  const S = uiStrings(app);
  const doc = app.win.document;
  doc.documentElement.lang = S.htmlLang;
  const lookup = (key) => key.split('.').reduce((o, k) => (o == null ? o : o[k]), S);
  for (const el of doc.querySelectorAll('[data-i18n]')) {
    const v = lookup(el.dataset.i18n);
    if (typeof v === 'string') el.textContent = v;
  }
  for (const el of doc.querySelectorAll('[data-i18n-aria]')) {
    const v = lookup(el.dataset.i18nAria);
    if (typeof v === 'string') el.setAttribute('aria-label', v);
  }
  for (const tile of view.el.tiles) {
    const name = severityName(tile.dataset.severity, S);
    tile.querySelector('.tile-label').textContent = name;
    tile.title = S.tileHint(name);
  }
  for (const b of view.el.langButtons) b.setAttribute('aria-pressed', String(b.dataset.lang === view.lang));
  try {
    app.win.localStorage.setItem(LANG_STORAGE_KEY, view.lang);
  } catch {
    // storage may be unavailable (private mode, policy): the choice is per page
  }
  renderClock(app);
  scheduleRender(app); // rows notice the language change and redraw
}

function bindEvents(app) {
  const { view } = app;
  view.el.list.addEventListener('click', (ev) => {
    const main = ev.target.closest('.alert-main');
    if (!main) return;
    const rowEl = main.closest('[data-alert-id]');
    if (rowEl) toggleRow(app, rowEl.dataset.alertId);
  });
  for (const tile of view.el.tiles) {
    tile.addEventListener('click', () => {
      const sev = tile.dataset.severity;
      view.filter = view.filter === sev ? null : sev;
      scheduleRender(app);
    });
  }
  for (const b of view.el.langButtons) b.addEventListener('click', () => applyLanguage(app, b.dataset.lang));
}

// ------------------------------------------------- connection (WebSocket)

function setConnState(app, state) {
  app.conn.state = state;
  renderConnection(app);
  scheduleRender(app);
}

function connect(app) {
  const { conn, win } = app;
  win.clearTimeout(conn.timer);
  conn.timer = 0;
  conn.retryAt = null;
  resetConnection(app.feed);
  setConnState(app, 'connecting');
  let ws;
  try {
    ws = new win.WebSocket(feedUrl(win.location.href));
  } catch (err) {
    console.warn('jingzhi: cannot open the alert feed', err);
    setConnState(app, 'closed');
    scheduleReconnect(app);
    return;
  }
  conn.ws = ws;
  ws.addEventListener('open', () => {
    if (conn.ws === ws) setConnState(app, 'open');
  });
  ws.addEventListener('message', (ev) => {
    if (conn.ws === ws) onFeedMessage(app, ev.data);
  });
  ws.addEventListener('close', () => {
    if (conn.ws !== ws) return;
    conn.ws = null;
    setConnState(app, 'closed');
    scheduleReconnect(app);
  });
  // 'error' is always followed by 'close', which reconnects.
}

function scheduleReconnect(app) {
  const { conn, win } = app;
  win.clearTimeout(conn.timer);
  conn.backoffMs = nextBackoff(conn.backoffMs);
  conn.retryAt = Date.now() + conn.backoffMs;
  conn.timer = win.setTimeout(() => connect(app), conn.backoffMs);
  renderConnection(app);
}

/** Drop the connection on purpose (out of step) and come back soon. */
function dropConnection(app, reason) {
  const { conn } = app;
  const ws = conn.ws;
  conn.ws = null;
  if (ws) {
    try {
      ws.close(4000, reason);
    } catch {
      // already closing
    }
  }
  setConnState(app, 'closed');
  scheduleReconnect(app);
}

function onFeedMessage(app, data) {
  if (typeof data !== 'string') return;
  let msg;
  try {
    msg = JSON.parse(data);
  } catch {
    console.warn('jingzhi: feed message is not JSON');
    return;
  }
  const result = applyMessage(app.feed, msg);
  switch (result.status) {
    case 'snapshot':
      app.conn.backoffMs = 0; // a working connection: next drop retries after 1 s
    // falls through
    case 'change': {
      const marks = app.view.marks;
      for (const [id, kind] of result.changes) marks.set(id, mergeMark(marks.get(id), kind));
      app.conn.lastMessageAt = Date.now();
      advanceEngineClock(app, latestTime(msg));
      scheduleRender(app);
      break;
    }
    case 'gap':
      console.warn(`jingzhi: feed skipped from seq ${app.feed.seq} to ${msg.seq}; reconnecting`);
      dropConnection(app, 'sequence gap');
      break;
    case 'invalid':
      console.warn('jingzhi: malformed feed message', msg);
      break;
    default:
      break;
  }
}

// ------------------------------------------------------------ engine clock

/** Folds a GET /api/v1/status reply into the clock state (pure). */
export function applyStatus(clock, status) {
  clock.mode = status && status.clock_mode === 'event' ? 'event' : 'wall';
  clock.engineMs = status && Number.isFinite(status.clock) ? status.clock : null;
  clock.status = {
    version: status?.version ?? '?',
    workers: status?.workers ?? '?',
    rules: status?.rules ?? '?',
  };
  clock.failed = false;
  return clock;
}

/** Alert times are engine-clock times: in event mode they move the clock on. */
function advanceEngineClock(app, t) {
  const clock = app.clock;
  if (clock.mode !== 'event' || t === null) return;
  if (clock.engineMs === null || t > clock.engineMs) {
    clock.engineMs = t;
    renderClock(app);
  }
}

async function refreshStatus(app) {
  const { win } = app;
  const controller = new AbortController();
  const timer = win.setTimeout(() => controller.abort(), STATUS_TIMEOUT_MS);
  try {
    const url = new URL(API.status, win.location.href);
    const res = await win.fetch(url, {
      cache: 'no-store',
      headers: { accept: 'application/json' },
      signal: controller.signal,
    });
    if (!res.ok) throw new Error(`status ${res.status}`);
    applyStatus(app.clock, await res.json());
  } catch (err) {
    app.clock.failed = true;
    console.warn('jingzhi: engine status unavailable', err);
  } finally {
    win.clearTimeout(timer);
  }
  renderClock(app);
  scheduleRender(app); // ages depend on the clock mode
}

// -------------------------------------------------------------------- boot

function storedLanguage(win) {
  try {
    const v = win.localStorage.getItem(LANG_STORAGE_KEY);
    return LANGUAGES.includes(v) ? v : 'zh';
  } catch {
    return 'zh';
  }
}

/** Starts the dashboard in a browser window. Returns the app (for debugging). */
export function boot(win = globalThis) {
  const app = createApp(win.document, win);
  bindEvents(app);
  applyLanguage(app, storedLanguage(win));
  connect(app);
  refreshStatus(app);
  win.setInterval(() => refreshStatus(app), STATUS_REFRESH_MS);
  win.setInterval(() => tick(app), 1000);
  win.addEventListener('online', () => {
    if (app.conn.state === 'closed') connect(app);
  });
  scheduleRender(app);
  return app;
}

if (typeof window !== 'undefined' && typeof document !== 'undefined' && document.querySelector('[data-testid="alert-list"]')) {
  window.jingzhi = boot(window);
}
