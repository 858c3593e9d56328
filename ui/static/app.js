// 京智 · Jingzhi — the decision dashboard.
//
// Modules (plain ES modules, no build step, nothing from the internet):
//
//   i18n.js   strings (zh-CN, en), times in the operator's zone, numbers
//   feed.js   the alert feed's state, resume, the render throttle   (pure)
//   model.js  order, filters, counts, the virtual list, the grid     (pure)
//   charts.js ECharts options: map, districts, timeline             (pure)
//   api.js    token, requests, roles
//   shell.js  language switch, signed-in user, sign-in box
//   app.js    this page: DOM, WebSocket, charts, alert detail
//
// The page talks only to the documented API (docs/api.md), same origin:
// the feed `api/v1/alerts/ws` (resumed with `since`), `api/v1/status`,
// `api/v1/whoami`, an alert's history and the operator actions.
//
// Data flow: each feed message is folded into the feed state at once
// (`applyMessage`); the DOM is updated at most every 250 ms on an
// animation frame (`createThrottle`), and only the visible rows of the
// list exist (`virtualWindow`), so 5,000 alerts and hundreds of changes a
// second cost a bounded amount of work per frame. The charts and the map
// are refreshed at most once a second.

import {
  SEVERITIES,
  STATES,
  escapeHtml,
  formatAge,
  formatNumber,
  formatTime,
  localTimeZone,
  severityName,
} from './i18n.js';
import {
  applyMessage,
  createFeed,
  createThrottle,
  feedUrl,
  latestTime,
  nextBackoff,
  resetConnection,
} from './feed.js';
import {
  ageReference,
  alertState,
  cellData,
  createTimeline,
  districtLabel,
  districtNames,
  emptyFilter,
  filterActive,
  formatPlace,
  gridFrom,
  selectAlerts,
  sortAlerts,
  summarize,
  timelineRecord,
  timelineSeed,
  timelineSeries,
  virtualWindow,
  TIMELINE_HOURS,
} from './model.js';
import { MAP_NAME, districtBarOption, echartsGlobal, mapOption, timelineOption } from './charts.js';
import { createShell } from './shell.js';

export const ROW_HEIGHT = 56;
const CHART_INTERVAL_MS = 1000;
const STATUS_REFRESH_MS = 10000;
const FRESH_MS = 3000;
const HISTORY_REFRESH_MS = 2000;
const SOUND_KEY = 'jingzhi.sound';
const SOUND_GAP_MS = 4000;

const API = Object.freeze({
  feed: 'api/v1/alerts/ws',
  status: 'api/v1/status',
  alert: (id) => `api/v1/alerts/${encodeURIComponent(id)}`,
  history: (id) => `api/v1/alerts/${encodeURIComponent(id)}/history`,
  act: (id, verb) => `api/v1/alerts/${encodeURIComponent(id)}/${verb}`,
  silences: 'api/v1/silences',
  timeline: (stepMs) => `api/v1/alerts/timeline?step=${stepMs}`,
});

// ------------------------------------------------------------- detail (pure)

/** The detail of one alert as HTML (every server text escaped). */
export function detailHtml(alert, S, { names = null, lang = 'zh', timeZone } = {}) {
  const D = S.detail;
  const e = escapeHtml;
  const t = (ms) => formatTime(ms, true, timeZone);
  const values = Object.entries(alert.values ?? {});
  const valuesHtml = values.length
    ? values
        .map(([k, v]) => `<span class="value"><span class="value-name">${e(k)}</span> ${e(formatNumber(v))}</span>`)
        .join('')
    : `<span class="muted">${e(D.none)}</span>`;
  const evidence = Array.isArray(alert.evidence) ? alert.evidence : [];
  const evidenceHtml = evidence.length
    ? `<table class="evidence" data-testid="detail-evidence"><thead><tr>${[
        D.term,
        D.stream,
        D.aggregate,
        D.window,
        D.count,
        D.min,
        D.max,
        D.avg,
        D.last,
      ]
        .map((h) => `<th scope="col">${e(h)}</th>`)
        .join('')}</tr></thead><tbody>${evidence
        .map(
          (ev) =>
            `<tr><td>${e(ev.term)}</td><td>${e(ev.stream)}</td><td>${e(ev.aggregate)}</td><td>${e(ev.window)}</td>` +
            `<td>${e(formatNumber(ev.count))}</td><td>${e(formatNumber(ev.min))}</td><td>${e(formatNumber(ev.max))}</td>` +
            `<td>${e(formatNumber(ev.avg))}</td><td>${e(formatNumber(ev.last))}</td></tr>`,
        )
        .join('')}</tbody></table>`
    : '';
  const labels = Object.entries(alert.labels ?? {});
  const district = alert.district ? districtLabel(alert.district, names, lang, alert.district_name) : null;
  const place = [district, Number.isInteger(alert.cell) ? S.cell(alert.cell) : null].filter(Boolean).join(' · ');
  const op = alert.operator ?? {};
  const opLines = [];
  if (op.acknowledged_at) opLines.push(D.acknowledgedBy(op.acknowledged_by ?? '?', t(op.acknowledged_at)));
  if (op.assigned_to) opLines.push(D.assignedTo(op.assigned_to, t(op.assigned_at)));
  if (op.resolved_at) opLines.push(D.resolvedBy(op.resolved_by ?? '?', t(op.resolved_at)));
  if (op.false_alarm) opLines.push(D.falseAlarmBy(op.false_alarm_by ?? '?', t(op.false_alarm_at)));
  if (Number.isInteger(op.incident)) opLines.push(D.incident(op.incident));
  if (op.reopened > 0) opLines.push(D.reopened(op.reopened));
  if (alert.silenced) opLines.push(D.silencedBy((alert.silences ?? []).join(', ')));
  const state = alertState(alert);
  const comment = op.last_comment;
  return (
    `<p class="detail-message" data-testid="detail-message">${e(alert.message)}</p>` +
    `<dl class="facts">` +
    `<div><dt>${e(D.state)}</dt><dd><span class="state-chip" data-state="${e(state)}" data-testid="detail-state">${e(
      S.state[state] ?? state,
    )}</span></dd></div>` +
    `<div><dt>${e(D.rule)}</dt><dd><a href="rules.html#rule=${encodeURIComponent(alert.rule)}"><code>${e(alert.rule)}</code></a></dd></div>` +
    `<div><dt>${e(D.place)}</dt><dd>${e(place || '—')}</dd></div>` +
    `<div><dt>${e(D.key)}</dt><dd><code>${e(alert.group_by)} = ${e(alert.key)}</code></dd></div>` +
    `<div><dt>${e(D.started)}</dt><dd>${e(t(alert.started_at))}</dd></div>` +
    `<div><dt>${e(D.updated)}</dt><dd>${e(t(alert.updated_at))}</dd></div>` +
    `<div><dt>${e(D.id)}</dt><dd><code>${e(alert.id)}</code></dd></div>` +
    (labels.length
      ? `<div><dt>${e(D.labels)}</dt><dd>${labels.map(([k, v]) => `<span class="label">${e(k)}: ${e(v)}</span>`).join(' ')}</dd></div>`
      : '') +
    `</dl>` +
    (opLines.length ? `<ul class="op-lines" data-testid="detail-operator">${opLines.map((l) => `<li>${e(l)}</li>`).join('')}</ul>` : '') +
    (comment && comment.text
      ? `<div class="detail-block"><h3>${e(D.lastComment)}</h3><p class="comment">${e(comment.text)} <span class="muted">— ${e(comment.by)} ${e(
          t(comment.at),
        )}</span></p></div>`
      : '') +
    `<div class="detail-block"><h3>${e(D.values)}</h3><div class="values" data-testid="detail-values">${valuesHtml}</div></div>` +
    (evidenceHtml ? `<div class="detail-block"><h3>${e(D.evidence)}</h3>${evidenceHtml}</div>` : '') +
    (alert.summary ? `<div class="detail-block"><h3>${e(D.summary)}</h3><p class="summary">${e(alert.summary)}</p></div>` : '')
  );
}

/** The history of an alert (`GET …/history`) as HTML: changes and actions, newest first. */
export function historyHtml(history, S, { timeZone } = {}) {
  const D = S.detail;
  const e = escapeHtml;
  const t = (ms) => formatTime(ms, true, timeZone);
  const items = [];
  for (const c of Array.isArray(history && history.changes) ? history.changes : []) {
    items.push({
      at: c.time,
      html: `<span class="h-kind" data-kind="${e(c.kind)}">${e(D.kind[c.kind] ?? c.kind)}</span> ${e(
        S.severity[c.severity] ?? c.severity ?? '',
      )}`,
      seq: c.seq,
    });
  }
  for (const a of Array.isArray(history && history.actions) ? history.actions : []) {
    const what = D.action[a.action] ?? a.action;
    const extra = [a.to ? `→ ${a.to}` : '', a.text ? `“${a.text}”` : '', a.note ? `(${a.note})` : ''].filter(Boolean).join(' ');
    items.push({
      at: a.at,
      html: `<span class="h-action">${e(what)}</span> ${e(a.actor ?? '')}${extra ? ` ${e(extra)}` : ''}`,
    });
  }
  items.sort((x, y) => (y.at ?? 0) - (x.at ?? 0) || (y.seq ?? 0) - (x.seq ?? 0));
  if (!items.length) return `<p class="muted">${e(D.none)}</p>`;
  return `<ol class="history-list">${items
    .map((i) => `<li><time>${e(t(i.at))}</time> ${i.html}</li>`)
    .join('')}</ol>`;
}

/** The operator actions offered for an alert in a state. */
export function actionsFor(alert) {
  const state = alert && alert.operator ? alert.operator.state : 'new';
  const closed = state === 'resolved' || state === 'false_alarm';
  return {
    acknowledge: !closed && (state === 'new' || !state),
    assign: !closed,
    comment: true,
    resolve: !closed,
    falseAlarm: !closed,
    silence: !alert.silenced,
  };
}

// --------------------------------------------------------------------- app

function createApp(win) {
  const doc = win.document;
  const $ = (sel) => doc.querySelector(sel);
  const app = {
    win,
    doc,
    shell: null,
    feed: createFeed(),
    timeline: createTimeline(),
    conn: {
      state: 'connecting',
      ws: null,
      backoffMs: 0,
      retryAt: null,
      timer: 0,
      lastMessageAt: null,
      forceSnapshot: false,
      resumed: false,
    },
    clock: { mode: null, engineMs: null, status: null, failed: false },
    grid: gridFrom(null),
    names: new Map(),
    geo: null,
    timeZone: localTimeZone(),
    view: {
      filter: emptyFilter(),
      sorted: [],
      shown: [],
      summary: summarize([]),
      version: -1,
      orderVersion: -1,
      filterVersion: 0,
      shownFor: '',
      lang: null,
      fresh: new Map(), // id -> until (ms)
      freshTimer: 0,
      pool: [], // row records, reused
      selectedId: null,
      optionsKey: '',
    },
    charts: { map: null, districts: null, timeline: null, last: 0, timer: 0, lang: null, failed: false },
    detail: { id: null, alert: null, cleared: false, history: null, historyFor: null, message: null },
    sound: { on: false, ctx: null, last: 0 },
    el: {
      viewport: $('[data-testid="alert-list"]'),
      spacer: $('[data-testid="alert-list"] .list-spacer'),
      empty: $('[data-testid="empty-state"]'),
      total: $('[data-testid="alert-total"]'),
      stale: $('[data-testid="stale-banner"]'),
      tiles: Array.from(doc.querySelectorAll('[data-testid="severity-tile"]')),
      conn: $('[data-testid="connection-status"]'),
      connLabel: $('[data-testid="connection-status"] .conn-label'),
      connMeta: $('[data-testid="connection-status"] .conn-meta'),
      clock: $('[data-testid="engine-clock"]'),
      clockLabel: $('[data-testid="engine-clock"] .clock-label'),
      clockTime: $('[data-testid="engine-clock"] .clock-time'),
      info: $('[data-testid="engine-info"]'),
      timeZone: $('[data-testid="time-zone"]'),
      rowTemplate: $('#alert-row-template'),
      filters: {
        district: $('[data-testid="filter-district"]'),
        severity: $('[data-testid="filter-severity"]'),
        rule: $('[data-testid="filter-rule"]'),
        state: $('[data-testid="filter-state"]'),
      },
      filterCell: $('[data-testid="filter-cell"]'),
      filterClear: $('[data-testid="filter-clear"]'),
      map: $('[data-testid="map"]'),
      districtChart: $('[data-testid="district-chart"]'),
      timelineChart: $('[data-testid="timeline-chart"]'),
      timelineNote: $('[data-testid="timeline-note"]'),
      sound: $('[data-testid="sound-toggle"]'),
      detail: $('[data-testid="alert-detail"]'),
      detailTitle: $('[data-testid="detail-title"]'),
      detailSeverity: $('[data-testid="detail-severity"]'),
      detailCleared: $('[data-testid="detail-cleared"]'),
      detailBody: $('[data-testid="detail-body"]'),
      detailActions: $('[data-testid="detail-actions"]'),
      detailHistory: $('[data-testid="detail-history"]'),
      detailClose: $('[data-testid="detail-close"]'),
    },
  };
  app.throttle = createThrottle(
    {
      now: () => win.performance.now(),
      setTimeout: (f, ms) => win.setTimeout(f, ms),
      clearTimeout: (t) => win.clearTimeout(t),
      requestAnimationFrame: (f) => win.requestAnimationFrame(f),
    },
    () => render(app),
  );
  return app;
}

const S = (app) => app.shell.S();

function scheduleRender(app) {
  app.throttle.schedule();
}

// ------------------------------------------------------------------ render

/** One frame: order, filter, the visible rows, counts, charts (throttled). */
function render(app) {
  const { view, feed } = app;
  const now = Date.now();
  let changed = false;
  if (feed.version !== view.version) {
    if (feed.orderVersion !== view.orderVersion) {
      view.sorted = sortAlerts(feed.alerts.values());
      view.orderVersion = feed.orderVersion;
    } else {
      view.sorted = view.sorted.map((a) => feed.alerts.get(a.id) ?? a);
    }
    view.summary = summarize(view.sorted);
    view.version = feed.version;
    changed = true;
  }
  const shownFor = `${view.version}/${view.filterVersion}`;
  if (view.shownFor !== shownFor) {
    view.shown = selectAlerts(view.sorted, view.filter);
    view.shownFor = shownFor;
  }
  for (const [id, until] of view.fresh) if (until <= now) view.fresh.delete(id);

  renderRows(app, now);
  renderSummary(app);
  renderFilters(app);
  renderConnection(app);
  if (app.detail.id) renderDetail(app, false);
  if (changed) scheduleCharts(app);
  if (view.fresh.size && !view.freshTimer) {
    // Ends the highlights that ran out, even when nothing else changes.
    view.freshTimer = app.win.setTimeout(() => {
      view.freshTimer = 0;
      scheduleRender(app);
    }, 500);
  }
}

/** The virtualised list: only the rows in view (plus a few) exist. */
function renderRows(app, now) {
  const { view, el } = app;
  const shown = view.shown;
  const vp = el.viewport;
  const win = virtualWindow(vp.scrollTop, vp.clientHeight || 600, ROW_HEIGHT, shown.length);
  const height = `${win.height}px`;
  if (el.spacer.style.height !== height) el.spacer.style.height = height;
  const needed = win.end - win.start;
  while (view.pool.length < needed) {
    const row = createRow(app);
    view.pool.push(row);
    el.spacer.appendChild(row.el);
  }
  const ref = ageReference(app.clock, now);
  const lang = app.shell.lang;
  for (let k = 0; k < view.pool.length; k++) {
    const row = view.pool[k];
    const i = win.start + k;
    if (k >= needed) {
      if (!row.el.hidden) {
        row.el.hidden = true;
        row.alert = null;
      }
      continue;
    }
    const alert = shown[i];
    row.el.hidden = false;
    const top = `translateY(${i * ROW_HEIGHT}px)`;
    if (row.top !== top) {
      row.el.style.transform = top;
      row.top = top;
    }
    if (row.alert !== alert || row.lang !== lang) fillRow(app, row, alert);
    const age = ref === null ? '—' : formatAge(ref - alert.started_at, S(app));
    if (row.ageText !== age) {
      row.age.textContent = age;
      row.ageText = age;
    }
    const fresh = view.fresh.has(alert.id);
    if (row.fresh !== fresh) {
      row.el.classList.toggle('fresh', fresh);
      row.fresh = fresh;
    }
    const selected = view.selectedId === alert.id;
    if (row.selected !== selected) {
      row.el.classList.toggle('selected', selected);
      row.main.setAttribute('aria-current', String(selected));
      row.selected = selected;
    }
  }
  // Drop surplus rows after a big shrink (keep a few for scrolling).
  while (view.pool.length > needed + 20) view.pool.pop().el.remove();
}

function createRow(app) {
  const el = app.el.rowTemplate.content.firstElementChild.cloneNode(true);
  return {
    el,
    main: el.querySelector('.alert-main'),
    badge: el.querySelector('.sev-badge'),
    title: el.querySelector('.alert-title'),
    place: el.querySelector('.alert-place'),
    state: el.querySelector('.alert-state'),
    age: el.querySelector('.alert-age'),
    alert: null,
    lang: null,
    ageText: null,
    top: null,
    fresh: false,
    selected: false,
  };
}

function fillRow(app, row, alert) {
  const Sx = S(app);
  const el = row.el;
  const sameAlert = row.alert && row.alert.id === alert.id;
  el.dataset.alertId = alert.id;
  el.dataset.severity = alert.severity;
  el.dataset.district = alert.district ?? '';
  el.dataset.cell = Number.isInteger(alert.cell) ? String(alert.cell) : '';
  el.dataset.rule = alert.rule;
  const state = alertState(alert);
  el.dataset.state = state;
  row.badge.textContent = severityName(alert.severity, Sx);
  row.title.textContent = alert.title || alert.rule || '';
  row.title.title = alert.message ?? '';
  const district = alert.district ? districtLabel(alert.district, app.names, app.shell.lang, alert.district_name) : null;
  row.place.textContent = district
    ? [district, Number.isInteger(alert.cell) ? Sx.cell(alert.cell) : null].filter(Boolean).join(' · ')
    : formatPlace(alert, Sx);
  row.state.textContent = Sx.state[state] ?? state;
  row.state.dataset.state = state;
  row.alert = alert;
  row.lang = app.shell.lang;
  row.ageText = null;
  if (!sameAlert) {
    // A recycled row: restart the highlight for its new alert.
    row.fresh = false;
    el.classList.remove('fresh');
  }
}

/** Tiles, totals, the empty state, the stale banner, the page title. */
function renderSummary(app) {
  const { view, feed, conn, el } = app;
  const Sx = S(app);
  const counts = view.summary.bySeverity;
  for (const tile of el.tiles) {
    const sev = tile.dataset.severity;
    const n = counts[sev] ?? 0;
    if (tile.dataset.count !== String(n)) {
      tile.dataset.count = String(n);
      tile.querySelector('.tile-count').textContent = String(n);
    }
    tile.setAttribute('aria-pressed', String(view.filter.severity === sev));
    tile.classList.toggle('dimmed', Boolean(view.filter.severity) && view.filter.severity !== sev);
  }
  const filtered = filterActive(view.filter);
  el.total.textContent = feed.everSynced
    ? filtered
      ? Sx.shown(view.shown.length, counts.total)
      : Sx.total(counts.total)
    : '';
  const empty = view.shown.length === 0;
  el.empty.hidden = !empty;
  if (empty) el.empty.textContent = !feed.everSynced ? Sx.waiting : filtered ? Sx.emptyFiltered : Sx.empty;
  const stale = feed.everSynced && conn.state !== 'open';
  el.stale.hidden = !stale;
  el.viewport.classList.toggle('stale', stale);
  const title = counts.red > 0 ? `(${counts.red}) ${Sx.title}` : Sx.title;
  if (app.doc.title !== title) app.doc.title = title;
}

/** The filter selects' options (districts, rules present) and values. */
function renderFilters(app) {
  const { view, el } = app;
  const Sx = S(app);
  const lang = app.shell.lang;
  const districts = new Map();
  for (const code of app.names.keys()) districts.set(code, districtLabel(code, app.names, lang));
  for (const [code, d] of view.summary.byDistrict) {
    if (!districts.has(code)) districts.set(code, code === '-' ? Sx.noDistrict : d.name ?? code);
  }
  const rules = new Map(view.summary.rules);
  if (view.filter.rule && !rules.has(view.filter.rule)) rules.set(view.filter.rule, view.filter.rule);
  const key = `${lang}|${Array.from(districts.keys()).join(',')}|${Array.from(rules.keys()).join(',')}`;
  if (key !== view.optionsKey) {
    view.optionsKey = key;
    const counted = (code) => view.summary.byDistrict.get(code)?.total ?? 0;
    setOptions(
      el.filters.district,
      Sx.filterAll,
      Array.from(districts, ([code, label]) => [code, counted(code) ? `${label} (${counted(code)})` : label]),
    );
    setOptions(el.filters.severity, Sx.filterAll, SEVERITIES.map((s) => [s, Sx.severity[s]]));
    setOptions(
      el.filters.rule,
      Sx.filterAll,
      Array.from(rules, ([name, title]) => [name, title && title !== name ? `${title} (${name})` : name]).sort((a, b) =>
        a[1].localeCompare(b[1]),
      ),
    );
    setOptions(el.filters.state, Sx.filterAll, STATES.map((s) => [s, Sx.state[s]]));
  }
  for (const k of ['district', 'severity', 'rule', 'state']) {
    const v = view.filter[k] ?? '';
    if (el.filters[k].value !== v) el.filters[k].value = v;
  }
  const cell = view.filter.cell;
  el.filterCell.hidden = cell === null;
  el.filterCell.textContent = cell === null ? '' : `${Sx.filterCell(cell)} ×`;
  el.filterClear.hidden = !filterActive(view.filter);
}

function setOptions(select, allLabel, options) {
  const value = select.value;
  const doc = select.ownerDocument;
  select.textContent = '';
  const all = doc.createElement('option');
  all.value = '';
  all.textContent = allLabel;
  select.appendChild(all);
  for (const [v, label] of options) {
    const o = doc.createElement('option');
    o.value = v;
    o.textContent = label;
    select.appendChild(o);
  }
  select.value = value;
}

function renderConnection(app) {
  const { conn, feed, el } = app;
  const Sx = S(app);
  if (el.conn.dataset.state !== conn.state) el.conn.dataset.state = conn.state;
  const label = Sx.conn[conn.state];
  if (el.connLabel.textContent !== label) el.connLabel.textContent = label;
  const parts = [];
  if (feed.seq !== null) parts.push(`seq ${feed.seq}`);
  if (conn.resumed && conn.state === 'open') parts.push(Sx.resumed);
  if (conn.lastMessageAt !== null) parts.push(`${Sx.lastUpdate} ${formatTime(conn.lastMessageAt, false, app.timeZone)}`);
  if (conn.state === 'closed' && conn.retryAt !== null) {
    parts.push(Sx.reconnectIn(Math.max(0, Math.ceil((conn.retryAt - Date.now()) / 1000))));
  }
  const meta = parts.join(' · ');
  if (el.connMeta.textContent !== meta) el.connMeta.textContent = meta;
  el.conn.dataset.seq = feed.seq === null ? '' : String(feed.seq);
}

function renderClock(app) {
  const { clock, el } = app;
  const Sx = S(app);
  const event = clock.mode === 'event';
  el.clock.dataset.mode = clock.mode ?? '';
  el.clockLabel.textContent = event ? Sx.clockEvent : Sx.clockWall;
  const ms = event ? clock.engineMs : Date.now();
  const text = formatTime(ms, event, app.timeZone);
  if (el.clockTime.textContent !== text) el.clockTime.textContent = text;
  if (Number.isFinite(ms)) el.clockTime.setAttribute('datetime', new Date(ms).toISOString());
  el.clock.title = clock.failed ? Sx.clockStatusFailed : '';
  el.clock.classList.toggle('failed', clock.failed);
  el.info.textContent = clock.status ? Sx.info(clock.status) : '';
  el.timeZone.textContent = Sx.timeZone(app.timeZone);
}

// ------------------------------------------------------------------ charts

function scheduleCharts(app) {
  const { charts, win } = app;
  if (charts.timer) return;
  const wait = Math.max(0, charts.last + CHART_INTERVAL_MS - Date.now());
  charts.timer = win.setTimeout(() => {
    charts.timer = 0;
    charts.last = Date.now();
    renderCharts(app);
  }, wait);
}

function initCharts(app) {
  const echarts = echartsGlobal(app.win);
  const { charts, el } = app;
  if (!echarts) {
    charts.failed = true;
    el.map.textContent = S(app).mapUnavailable;
    return;
  }
  const locale = S(app).echartsLocale;
  for (const c of [charts.map, charts.districts, charts.timeline]) if (c) c.dispose();
  charts.lang = app.shell.lang;
  charts.map = echarts.init(el.map, null, { locale, renderer: 'canvas' });
  charts.districts = echarts.init(el.districtChart, null, { locale });
  charts.timeline = echarts.init(el.timelineChart, null, { locale });
  charts.map.on('click', (p) => onMapClick(app, p));
  charts.districts.on('click', (p) => {
    const code = p && p.data && p.data.code;
    if (code) setFilter(app, { district: app.view.filter.district === code ? null : code });
  });
}

function renderCharts(app) {
  const { charts, view } = app;
  if (charts.failed) return;
  const echarts = echartsGlobal(app.win);
  if (!echarts) return;
  if (!charts.map || charts.lang !== app.shell.lang) initCharts(app);
  const Sx = S(app);
  const lang = app.shell.lang;
  const summary = view.summary;
  const cells = cellData(app.grid, summary.byCell);
  if (app.geo) {
    charts.map.setOption(
      mapOption({ S: Sx, lang, names: app.names, summary, cells, filter: view.filter }),
      { replaceMerge: ['series'], lazyUpdate: true },
    );
    app.el.map.dataset.cells = String(cells.length);
    app.el.map.dataset.cellList = cells
      .slice(-200)
      .map((c) => c[5])
      .join(' ');
  }
  const bars = districtBarOption({ S: Sx, lang, names: app.names, summary });
  delete bars.codes;
  charts.districts.setOption(bars, { notMerge: true, lazyUpdate: true });
  const end = ageReference(app.clock, Date.now()) ?? Date.now();
  charts.timeline.setOption(timelineOption({ S: Sx, series: timelineSeries(app.timeline, end) }), {
    notMerge: true,
    lazyUpdate: true,
  });
  app.el.timelineNote.textContent =
    app.timeline.seededUntil === null ? Sx.timelineNote(TIMELINE_HOURS) : Sx.timelineNoteRecorded(TIMELINE_HOURS);
}

function onMapClick(app, p) {
  if (!p) return;
  if (p.componentType === 'series' && Array.isArray(p.value)) {
    const cell = p.value[5];
    setFilter(app, { cell: app.view.filter.cell === cell ? null : cell });
  } else if (p.componentType === 'geo' && p.name) {
    setFilter(app, { district: app.view.filter.district === p.name ? null : p.name });
  }
}

async function loadMap(app) {
  const echarts = echartsGlobal(app.win);
  try {
    const res = await app.win.fetch(new URL('assets/beijing-districts.geojson', app.win.location.href));
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const geo = await res.json();
    app.names = districtNames(geo);
    if (echarts) echarts.registerMap(MAP_NAME, geo);
    app.geo = geo;
  } catch (err) {
    console.warn('jingzhi: district boundaries unavailable', err);
  }
  app.view.optionsKey = '';
  scheduleRender(app);
  scheduleCharts(app);
}

// ----------------------------------------------------------------- filters

function setFilter(app, patch) {
  Object.assign(app.view.filter, patch);
  app.view.filterVersion++;
  app.el.viewport.scrollTop = 0;
  app.throttle.now();
  scheduleCharts(app);
}

// ------------------------------------------------------------------ detail

function openDetail(app, id) {
  const alert = app.feed.alerts.get(id);
  if (!alert) return;
  Object.assign(app.detail, { id, alert, cleared: false, history: null, historyFor: null, message: null });
  app.view.selectedId = id;
  app.el.detail.hidden = false;
  renderDetail(app, true);
  loadHistory(app, id);
  app.throttle.now();
}

function closeDetail(app) {
  app.detail.id = null;
  app.view.selectedId = null;
  app.el.detail.hidden = true;
  app.throttle.now();
}

/** Renders the open detail; `full` also rebuilds the action forms. */
function renderDetail(app, full) {
  const { detail, el } = app;
  if (!detail.id) return;
  const live = app.feed.alerts.get(detail.id);
  const changedAlert = live && live !== detail.alert;
  if (live) detail.alert = live;
  const alert = detail.alert;
  const Sx = S(app);
  if (!full && !changedAlert && detail.renderedLang === app.shell.lang && detail.renderedCleared === detail.cleared) return;
  detail.renderedLang = app.shell.lang;
  detail.renderedCleared = detail.cleared;
  el.detail.dataset.alertId = alert.id;
  el.detail.dataset.severity = alert.severity;
  el.detail.dataset.state = alertState(alert);
  el.detailSeverity.textContent = severityName(alert.severity, Sx);
  el.detailTitle.textContent = alert.title || alert.rule;
  el.detailCleared.hidden = !detail.cleared;
  el.detailCleared.textContent = detail.cleared
    ? Sx.detail.clearedAt(formatTime(alert.cleared_at ?? app.clock.engineMs, true, app.timeZone))
    : '';
  el.detailBody.innerHTML = detailHtml(alert, Sx, { names: app.names, lang: app.shell.lang, timeZone: app.timeZone });
  // The forms are rebuilt only when the actions on offer change, so that
  // what the operator is typing survives the alert's updates.
  if (full || detail.actionsKey !== actionsKey(app, alert)) renderActions(app);
  renderHistory(app);
  const now = Date.now();
  if (changedAlert && detail.historyFor === alert.id && now - (detail.historyAt ?? 0) > HISTORY_REFRESH_MS) loadHistory(app, alert.id);
}

function actionsKey(app, alert) {
  return `${app.shell.lang}|${app.shell.canOperate()}|${JSON.stringify(actionsFor(alert))}`;
}

function renderHistory(app) {
  const { detail, el } = app;
  const Sx = S(app);
  const body =
    detail.history === null
      ? `<p class="muted">${escapeHtml(Sx.detail.historyLoading)}</p>`
      : detail.history === false
        ? `<p class="muted">${escapeHtml(Sx.detail.historyUnavailable)}</p>`
        : historyHtml(detail.history, Sx, { timeZone: app.timeZone });
  el.detailHistory.innerHTML = `<h3>${escapeHtml(Sx.detail.history)}</h3>${body}`;
}

/** Fills the timeline with the raises and clears the server recorded. */
async function seedTimeline(app) {
  const r = await app.shell.request(API.timeline(app.timeline.bucketMs));
  if (r.ok && timelineSeed(app.timeline, r.body)) scheduleCharts(app);
}

async function loadHistory(app, id) {
  app.detail.historyFor = id;
  app.detail.historyAt = Date.now();
  const r = await app.shell.request(API.history(id));
  if (app.detail.id !== id) return;
  app.detail.history = r.ok ? r.body : false;
  renderHistory(app);
}

/** The action forms for the signed-in role. */
function renderActions(app) {
  const { detail, el } = app;
  const Sx = S(app);
  const A = Sx.act;
  const alert = detail.alert;
  detail.actionsKey = actionsKey(app, alert);
  const e = escapeHtml;
  if (!app.shell.canOperate()) {
    el.detailActions.innerHTML = `<h3>${e(A.heading)}</h3><p class="muted" data-testid="no-actions">${e(A.noRole)}</p>`;
    return;
  }
  const can = actionsFor(alert);
  const button = (verb, label, on, primary = false) =>
    on
      ? `<button type="button" class="${primary ? 'primary' : ''}" data-action="${verb}" data-testid="action-${verb}">${e(label)}</button>`
      : '';
  const hasCell = Number.isInteger(alert.cell);
  const hasDistrict = Boolean(alert.district);
  el.detailActions.innerHTML =
    `<h3>${e(A.heading)}</h3>` +
    `<div class="action-row">${button('acknowledge', A.acknowledge, can.acknowledge, true)}${button('resolve', A.resolve, can.resolve)}${button(
      'false-alarm',
      A.falseAlarm,
      can.falseAlarm,
    )}</div>` +
    `<label class="field"><span>${e(A.note)}</span><input name="note" data-testid="action-note" maxlength="500"></label>` +
    (can.assign
      ? `<div class="action-row"><input name="to" data-testid="assign-to" placeholder="${e(A.assignTo)}" maxlength="100">${button(
          'assign',
          A.assign,
          true,
        )}</div>`
      : '') +
    `<div class="action-row"><input name="text" data-testid="comment-text" placeholder="${e(A.commentText)}" maxlength="2000">${button(
      'comment',
      A.comment,
      true,
    )}</div>` +
    (can.silence
      ? `<details class="silence"><summary>${e(A.silence)}</summary>` +
        `<label class="field"><span>${e(A.silenceScope)}</span><select name="scope" data-testid="silence-scope">` +
        (hasCell ? `<option value="cell">${e(A.scopeRuleCell)}</option>` : '') +
        (hasDistrict ? `<option value="district">${e(A.scopeRuleDistrict)}</option>` : '') +
        `<option value="rule">${e(A.scopeRule)}</option></select></label>` +
        `<label class="field"><span>${e(A.silenceFor)}</span><select name="duration" data-testid="silence-duration">` +
        ['1h', '2h', '4h', '8h', '24h'].map((d) => `<option value="${d}">${d}</option>`).join('') +
        `<option value="">${e(A.untilCleared)}</option></select></label>` +
        `<label class="field"><span>${e(A.reason)}</span><input name="reason" data-testid="silence-reason" maxlength="500"></label>` +
        `<div class="action-row">${button('silence', A.silence, true)}</div></details>`
      : '') +
    `<p class="action-message" data-testid="action-message" role="status"></p>`;
}

async function runAction(app, verb) {
  const { detail, el } = app;
  const alert = detail.alert;
  if (!alert) return;
  const A = S(app).act;
  const form = el.detailActions;
  const val = (name) => (form.querySelector(`[name="${name}"]`)?.value ?? '').trim();
  const message = form.querySelector('[data-testid="action-message"]');
  const say = (text, ok) => {
    if (!message) return;
    message.textContent = text;
    message.dataset.ok = String(ok);
  };
  let path;
  let body;
  const note = val('note');
  if (verb === 'silence') {
    const reason = val('reason');
    if (!reason) return say(A.needReason, false);
    const scope = val('scope');
    body = { rule: alert.rule, reason };
    if (scope === 'cell') body.cell = alert.cell;
    if (scope === 'district') body.district = alert.district;
    const duration = val('duration');
    if (duration) body.duration = duration;
    path = API.silences;
  } else {
    body = note ? { note } : {};
    if (verb === 'assign') {
      const to = val('to');
      if (!to) return say(A.needTo, false);
      body.to = to;
    }
    if (verb === 'comment') {
      const text = val('text');
      if (!text) return say(A.needText, false);
      body = { text };
    }
    path = API.act(alert.id, verb);
  }
  for (const b of form.querySelectorAll('button')) b.disabled = true;
  const r = await app.shell.request(path, { method: 'POST', json: body });
  for (const b of form.querySelectorAll('button')) b.disabled = false;
  if (!r.ok) {
    say(r.status === 403 ? A.forbidden : A.failed(r.error), false);
    return;
  }
  // The change also arrives on the feed; show it now.
  const updated = r.body && (r.body.alert || (r.body.id === alert.id ? r.body : null));
  if (updated && updated.id === alert.id && app.feed.alerts.has(alert.id)) {
    app.feed.alerts.set(alert.id, updated);
    app.feed.version++;
  } else if (r.body && r.body.operator && app.feed.alerts.has(alert.id)) {
    app.feed.alerts.set(alert.id, { ...app.feed.alerts.get(alert.id), operator: r.body.operator });
    app.feed.version++;
  }
  renderDetail(app, true);
  const again = el.detailActions.querySelector('[data-testid="action-message"]');
  if (again) {
    again.textContent = A.done;
    again.dataset.ok = 'true';
  }
  loadHistory(app, alert.id);
  app.throttle.now();
}

// ------------------------------------------------------------------- sound

function toggleSound(app) {
  const sound = app.sound;
  sound.on = !sound.on;
  try {
    app.win.localStorage.setItem(SOUND_KEY, sound.on ? '1' : '0');
  } catch {
    // per page
  }
  if (sound.on && !sound.ctx) {
    const Ctx = app.win.AudioContext || app.win.webkitAudioContext;
    if (Ctx) sound.ctx = new Ctx();
  }
  renderSound(app);
}

function renderSound(app) {
  const Sx = S(app);
  app.el.sound.setAttribute('aria-pressed', String(app.sound.on));
  app.el.sound.textContent = app.sound.on ? Sx.soundOn : Sx.soundOff;
  app.el.sound.title = Sx.sound;
}

/** A short two-tone chime for a new red alert, at most every few seconds. */
function chime(app) {
  const { sound } = app;
  if (!sound.on || !sound.ctx) return;
  const now = Date.now();
  if (now - sound.last < SOUND_GAP_MS) return;
  sound.last = now;
  const ctx = sound.ctx;
  if (ctx.state === 'suspended') ctx.resume();
  const t0 = ctx.currentTime;
  for (const [i, f] of [880, 660].entries()) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = f;
    gain.gain.setValueAtTime(0.0001, t0 + i * 0.18);
    gain.gain.exponentialRampToValueAtTime(0.2, t0 + i * 0.18 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + i * 0.18 + 0.16);
    osc.connect(gain).connect(ctx.destination);
    osc.start(t0 + i * 0.18);
    osc.stop(t0 + i * 0.18 + 0.17);
  }
}

// ------------------------------------------------------- feed (WebSocket)

function setConnState(app, state) {
  app.conn.state = state;
  renderConnection(app);
  scheduleRender(app);
}

function connect(app) {
  const { conn, win, feed } = app;
  win.clearTimeout(conn.timer);
  conn.timer = 0;
  conn.retryAt = null;
  const resume = feed.everSynced && feed.seq !== null && !conn.forceSnapshot;
  conn.forceSnapshot = false;
  conn.resumed = resume;
  resetConnection(feed, resume);
  setConnState(app, 'connecting');
  let ws;
  try {
    ws = new win.WebSocket(feedUrl(win.location.href, { since: resume ? feed.seq : null, token: app.shell.token }));
  } catch (err) {
    console.warn('jingzhi: cannot open the alert feed', err);
    setConnState(app, 'closed');
    scheduleReconnect(app);
    return;
  }
  conn.ws = ws;
  ws.addEventListener('open', () => {
    if (conn.ws !== ws) return;
    if (resume) conn.backoffMs = 0;
    setConnState(app, 'open');
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

/** Drop the connection on purpose and come back soon. */
function dropConnection(app, reason, forceSnapshot) {
  const { conn } = app;
  const ws = conn.ws;
  conn.ws = null;
  conn.forceSnapshot = forceSnapshot;
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
  const firstSnapshot = msg && msg.type === 'snapshot' && !app.feed.everSynced;
  const result = applyMessage(app.feed, msg);
  switch (result.status) {
    case 'snapshot':
      app.conn.backoffMs = 0;
      app.conn.resumed = false;
      if (firstSnapshot) {
        for (const a of app.feed.alerts.values()) timelineRecord(app.timeline, 'raised', a, a.started_at);
        seedTimeline(app);
      }
    // falls through
    case 'change': {
      const now = Date.now();
      const t = latestTime(msg);
      advanceEngineClock(app, t);
      for (const [id, kind, alert] of result.changes) {
        if (kind === 'new') {
          app.view.fresh.set(id, now + FRESH_MS);
          timelineRecord(app.timeline, 'raised', alert, alert.started_at);
          if (alert.severity === 'red' && !alert.silenced && msg.type === 'raised') chime(app);
        } else if (kind === 'gone') {
          app.view.fresh.delete(id);
          timelineRecord(app.timeline, 'cleared', alert, alert.cleared_at ?? t ?? app.clock.engineMs ?? now);
          if (app.detail.id === id) {
            app.detail.alert = alert;
            app.detail.cleared = true;
          }
        } else if (kind === 'changed') {
          app.view.fresh.set(id, now + FRESH_MS);
        }
      }
      app.conn.lastMessageAt = now;
      scheduleRender(app);
      break;
    }
    case 'gap':
      console.warn(`jingzhi: feed skipped from seq ${app.feed.seq} to ${msg.seq}; reconnecting for a snapshot`);
      dropConnection(app, 'sequence gap', true);
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
  const t = status && Number.isFinite(status.clock) ? status.clock : null;
  if (clock.mode !== 'event' || clock.engineMs === null || (t !== null && t > clock.engineMs)) clock.engineMs = t;
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
  const r = await app.shell.request(API.status, { timeoutMs: 5000 });
  if (r.ok && r.body) {
    applyStatus(app.clock, r.body);
    const grid = gridFrom(r.body);
    if (grid !== app.grid && JSON.stringify(grid) !== JSON.stringify(app.grid)) {
      app.grid = grid;
      scheduleCharts(app);
    }
  } else {
    app.clock.failed = true;
  }
  renderClock(app);
  scheduleRender(app);
}

// -------------------------------------------------------------------- boot

function bindEvents(app) {
  const { el, view } = app;
  el.viewport.addEventListener('scroll', () => app.throttle.now(), { passive: true });
  el.viewport.addEventListener('click', (ev) => {
    const rowEl = ev.target.closest('[data-alert-id]');
    if (rowEl) openDetail(app, rowEl.dataset.alertId);
  });
  for (const tile of el.tiles) {
    tile.addEventListener('click', () => {
      const sev = tile.dataset.severity;
      setFilter(app, { severity: view.filter.severity === sev ? null : sev });
    });
  }
  for (const [k, select] of Object.entries(el.filters)) {
    select.addEventListener('change', () => setFilter(app, { [k]: select.value || null }));
  }
  el.filterCell.addEventListener('click', () => setFilter(app, { cell: null }));
  el.filterClear.addEventListener('click', () => {
    view.filter = emptyFilter();
    setFilter(app, {});
  });
  el.detailClose.addEventListener('click', () => closeDetail(app));
  el.detailActions.addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-action]');
    if (b) runAction(app, b.dataset.action);
  });
  el.sound.addEventListener('click', () => toggleSound(app));
  // Browsers allow sound only after a gesture: a sound switched on in an
  // earlier visit starts with the first click on the page.
  app.doc.addEventListener(
    'pointerdown',
    () => {
      const Ctx = app.win.AudioContext || app.win.webkitAudioContext;
      if (app.sound.on && !app.sound.ctx && Ctx) app.sound.ctx = new Ctx();
    },
    { capture: true },
  );
  app.doc.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && app.detail.id) closeDetail(app);
  });
  app.win.addEventListener('resize', () => app.throttle.now());
  // Charts follow their boxes (the grid settles after the first layout).
  if (typeof app.win.ResizeObserver === 'function') {
    const observer = new app.win.ResizeObserver((entries) => {
      for (const entry of entries) {
        const chart = echartsGlobal(app.win)?.getInstanceByDom(entry.target);
        if (chart) chart.resize();
      }
    });
    for (const box of [el.map, el.districtChart, el.timelineChart]) observer.observe(box);
  }
  app.win.addEventListener('online', () => {
    if (app.conn.state === 'closed') connect(app);
  });
}

/** Every second: ages, the wall clock, the reconnect countdown. */
function tick(app) {
  if (app.doc.hidden) return;
  renderClock(app);
  renderConnection(app);
  scheduleRender(app);
}

/** Starts the dashboard in a browser window. Returns the app (for debugging and tests). */
export function boot(win = globalThis) {
  const app = createApp(win);
  app.shell = createShell(win, {
    onLanguage: () => {
      const Sx = S(app);
      for (const tile of app.el.tiles) tile.title = Sx.tileHint(severityName(tile.dataset.severity, Sx));
      renderClock(app);
      renderSound(app);
      app.view.optionsKey = '';
      for (const row of app.view.pool) row.lang = null;
      if (app.detail.id) renderDetail(app, true);
      app.throttle.now();
      scheduleCharts(app);
    },
    onPrincipal: (shell) => {
      const p = shell.principal;
      app.feed.allowGaps = Boolean(p.auth && Array.isArray(p.districts));
      if (app.detail.id) renderActions(app);
    },
    onToken: () => {
      // A new identity sees other districts: start over from a snapshot.
      app.conn.forceSnapshot = true;
      if (app.conn.ws) dropConnection(app, 'signed in', true);
      else connect(app);
      refreshStatus(app);
    },
  });
  try {
    app.sound.on = win.localStorage.getItem(SOUND_KEY) === '1';
  } catch {
    app.sound.on = false;
  }
  bindEvents(app);
  app.shell.setLanguage(app.shell.lang);
  renderSound(app);
  app.shell.refreshWho();
  connect(app);
  refreshStatus(app);
  loadMap(app);
  win.setInterval(() => refreshStatus(app), STATUS_REFRESH_MS);
  win.setInterval(() => tick(app), 1000);
  scheduleRender(app);
  return app;
}

if (typeof window !== 'undefined' && typeof document !== 'undefined' && document.body?.classList.contains('page-dashboard')) {
  window.jingzhi = boot(window);
}
