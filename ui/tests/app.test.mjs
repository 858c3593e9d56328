// Tests of the dashboard's pure logic: feed state and resume, the render
// throttle, order, filters, counts, the virtual list, the grid, the
// charts' options, the rule editor's diagnostics, formatting and strings.
// No npm packages, no DOM:
//
//     node ui/tests/app.test.mjs
//
// Uses node's built-in test runner (node 18+). ui/tests/node.rs runs this
// file under `cargo test`.

import test from 'node:test';
import assert from 'node:assert/strict';

const mod = (name) => import(new URL(`../static/${name}`, import.meta.url).href);
const i18n = await mod('i18n.js');
const feedjs = await mod('feed.js');
const model = await mod('model.js');
const charts = await mod('charts.js');
const api = await mod('api.js');
const rules = await mod('rules.js');
const app = await mod('app.js');

const { STRINGS, strings, formatTime, formatAge, formatNumber, formatPercent, formatDuration, escapeHtml, severityName } = i18n;
const { applyMessage, createFeed, resetConnection, mergeMark, latestTime, nextBackoff, feedUrl, createThrottle, BACKOFF_MAX_MS } = feedjs;
const {
  alertState,
  compareAlerts,
  sortAlerts,
  emptyFilter,
  filterActive,
  matchesFilter,
  selectAlerts,
  summarize,
  formatPlace,
  ageReference,
  virtualWindow,
  createTimeline,
  timelineRecord,
  timelineSeed,
  timelineSeries,
  DEFAULT_GRID,
  gridFrom,
  cellBounds,
  cellData,
  countsText,
  districtNames,
  districtLabel,
} = model;

const T0 = 1767225600000; // 2026-01-01T00:00:00Z

function alert(id, severity, startedAt = T0, extra = {}) {
  return {
    id,
    rule: 'underpass_water',
    title: '下穿桥积水',
    severity,
    message: `网格 ${id} 积水`,
    group_by: 'cell',
    key: id,
    cell: 5050,
    district: '110105',
    district_name: '朝阳区',
    started_at: startedAt,
    updated_at: startedAt,
    values: { water: 0.42 },
    labels: {},
    evidence: [],
    summary: '',
    operator: { state: 'new' },
    silenced: false,
    silences: [],
    ...extra,
  };
}

const ids = (feed) => sortAlerts(feed.alerts.values()).map((a) => a.id);

function synced(alerts = [], seq = 10) {
  const feed = createFeed();
  applyMessage(feed, { type: 'snapshot', seq, alerts });
  return feed;
}

// ------------------------------------------------------------------ feed

test('the first snapshot replaces the list and highlights nothing', () => {
  const feed = createFeed();
  const r = applyMessage(feed, { type: 'snapshot', seq: 5, alerts: [alert('a', 'red'), alert('b', 'blue')] });
  assert.equal(r.status, 'snapshot');
  assert.deepEqual(r.changes, []);
  assert.equal(feed.seq, 5);
  assert.deepEqual(ids(feed), ['a', 'b']);
});

test('changes apply in order; stale ones are ignored; a gap asks for a snapshot', () => {
  const feed = synced([alert('a', 'red')], 10);
  assert.equal(applyMessage(feed, { type: 'raised', seq: 11, alert: alert('b', 'yellow') }).status, 'change');
  assert.equal(applyMessage(feed, { type: 'raised', seq: 11, alert: alert('c', 'yellow') }).status, 'stale');
  const up = applyMessage(feed, { type: 'updated', seq: 12, alert: alert('b', 'orange') });
  assert.deepEqual(up.changes.map(([id, k]) => [id, k]), [['b', 'changed']]);
  const cleared = applyMessage(feed, { type: 'cleared', seq: 13, alert: { ...alert('a', 'red'), cleared_at: T0 + 1 } });
  assert.equal(cleared.changes[0][1], 'gone');
  assert.equal(cleared.changes[0][2].cleared_at, T0 + 1, 'the cleared alert is handed on');
  assert.deepEqual(ids(feed), ['b']);
  assert.equal(applyMessage(feed, { type: 'raised', seq: 15, alert: alert('x', 'red') }).status, 'gap');
  assert.equal(feed.seq, 13, 'a gap applies nothing');
});

test('nothing applies on a new connection before its snapshot, unless it resumes', () => {
  const feed = synced([alert('a', 'red')], 10);
  resetConnection(feed, false);
  assert.equal(applyMessage(feed, { type: 'raised', seq: 11, alert: alert('b', 'red') }).status, 'ignored');
  resetConnection(feed, true);
  const r = applyMessage(feed, { type: 'raised', seq: 11, alert: alert('b', 'red') });
  assert.equal(r.status, 'change', 'a resumed connection continues from seq');
  assert.deepEqual(ids(feed), ['a', 'b']);
  // A resumed connection that is answered with a resync snapshot is diffed.
  const s = applyMessage(feed, { type: 'snapshot', seq: 20, resync: true, alerts: [alert('b', 'red'), alert('c', 'blue')] });
  assert.equal(s.status, 'snapshot');
  assert.deepEqual(
    s.changes.map(([id, k]) => [id, k]).sort(),
    [
      ['a', 'gone'],
      ['c', 'new'],
    ],
  );
  const never = createFeed();
  resetConnection(never, true);
  assert.equal(never.synced, false, 'no resume before the first snapshot');
});

test('a district-limited client accepts skipped numbers', () => {
  const feed = synced([], 10);
  feed.allowGaps = true;
  assert.equal(applyMessage(feed, { type: 'raised', seq: 14, alert: alert('a', 'red') }).status, 'change');
  assert.equal(feed.seq, 14);
  assert.equal(applyMessage(feed, { type: 'raised', seq: 12, alert: alert('b', 'red') }).status, 'stale');
});

test('a later snapshot reports operator state changes', () => {
  const feed = synced([alert('a', 'red')], 10);
  const r = applyMessage(feed, { type: 'snapshot', seq: 11, alerts: [alert('a', 'red', T0, { operator: { state: 'acknowledged' } })] });
  assert.deepEqual(r.changes.map(([id, k]) => [id, k]), [['a', 'changed']]);
});

test('malformed messages are invalid and change nothing', () => {
  const feed = synced([alert('a', 'red')], 10);
  for (const msg of [null, 3, {}, { type: 'raised' }, { type: 'raised', seq: 11 }, { type: 'snapshot', seq: 'x', alerts: [] }]) {
    assert.equal(applyMessage(feed, msg).status, 'invalid', JSON.stringify(msg));
  }
  assert.equal(feed.seq, 10);
});

test('marks, times, backoff and the feed URL', () => {
  assert.equal(mergeMark('new', 'changed'), 'new');
  assert.equal(mergeMark('changed', 'gone'), 'gone');
  assert.equal(latestTime({ alert: { updated_at: 5, cleared_at: 9 } }), 9);
  assert.equal(latestTime({ alerts: [{ updated_at: 5 }, { updated_at: 7 }] }), 7);
  assert.equal(nextBackoff(0), 1000);
  assert.equal(nextBackoff(8000), BACKOFF_MAX_MS);
  assert.equal(feedUrl('http://h:8080/x/#token=1'), 'ws://h:8080/x/api/v1/alerts/ws');
  assert.equal(feedUrl('https://h/', { since: 17, token: 'a b' }), 'wss://h/api/v1/alerts/ws?since=17&token=a+b');
  assert.equal(feedUrl('http://h/', { since: null }), 'ws://h/api/v1/alerts/ws');
});

// -------------------------------------------------------------- throttle

function fakeTimers() {
  const t = { now: 0, queue: [], frames: [] };
  return {
    t,
    now: () => t.now,
    setTimeout: (f, ms) => {
      const id = t.queue.length + 1;
      t.queue.push({ at: t.now + ms, f, id, done: false });
      return id;
    },
    clearTimeout: (id) => {
      const x = t.queue.find((q) => q.id === id);
      if (x) x.done = true;
    },
    requestAnimationFrame: (f) => {
      t.frames.push(f);
      return t.frames.length;
    },
    /** Advances time by `ms`, running timers, and frames every 16 ms. */
    advance(ms) {
      const end = t.now + ms;
      while (t.now < end) {
        t.now = Math.min(end, t.now + 1);
        for (const q of t.queue) if (!q.done && q.at <= t.now) ((q.done = true), q.f());
        if (t.now % 16 === 0) {
          const frames = t.frames.splice(0);
          for (const f of frames) f();
        }
      }
    },
  };
}

test('the throttle coalesces 200 changes a second into at most four renders a second', () => {
  const timers = fakeTimers();
  let renders = 0;
  let pendingSince = null;
  let worstLatency = 0;
  const th = createThrottle(timers, () => {
    renders++;
    worstLatency = Math.max(worstLatency, timers.t.now - pendingSince);
    pendingSince = null;
  });
  for (let ms = 0; ms < 5000; ms += 5) {
    if (pendingSince === null) pendingSince = timers.t.now;
    th.schedule(); // one change every 5 ms
    timers.advance(5);
  }
  timers.advance(400);
  assert.ok(renders <= 21, `renders: ${renders}`);
  assert.ok(renders >= 18, `still renders regularly: ${renders}`);
  assert.ok(worstLatency <= 250 + 16, `a change waits at most one interval and a frame: ${worstLatency} ms`);
});

test('the throttle renders at once for user input and after a quiet spell', () => {
  const timers = fakeTimers();
  let renders = 0;
  const th = createThrottle(timers, () => renders++);
  th.schedule();
  timers.advance(16);
  assert.equal(renders, 1, 'first change: next frame');
  th.schedule();
  timers.advance(16);
  assert.equal(renders, 1, 'within the interval: waits');
  th.now();
  timers.advance(16);
  assert.equal(renders, 2, 'user input: next frame');
  timers.advance(1000);
  th.schedule();
  timers.advance(16);
  assert.equal(renders, 3, 'after a quiet spell: next frame');
});

test('5,000 alerts with 200 changes a second: the list window stays small and the order right', () => {
  const sevs = ['red', 'orange', 'yellow', 'blue'];
  const all = Array.from({ length: 5000 }, (_, i) => alert(`a${i}`, sevs[i % 4], T0 + (i % 977) * 1000, { cell: i, district: String(110101 + (i % 16)) }));
  const feed = synced(all, 0);
  let seq = 0;
  let worst = 0;
  for (let second = 0; second < 5; second++) {
    for (let k = 0; k < 200; k++) {
      const i = (second * 200 + k) * 13 % 5000;
      const kind = k % 10 === 0 ? 'cleared' : 'updated';
      applyMessage(feed, { type: kind, seq: ++seq, alert: alert(`a${i}`, sevs[(i + second) % 4], T0 + (i % 977) * 1000) });
    }
    for (let frame = 0; frame < 4; frame++) {
      const started = performance.now();
      const sorted = sortAlerts(feed.alerts.values());
      const summary = summarize(sorted);
      const shown = selectAlerts(sorted, emptyFilter());
      const win = virtualWindow(frame * 20000, 700, 56, shown.length);
      worst = Math.max(worst, performance.now() - started);
      assert.ok(win.end - win.start <= 30, `rows rendered: ${win.end - win.start}`);
      assert.equal(summary.bySeverity.total, feed.alerts.size);
      for (let j = 1; j < sorted.length; j++) assert.ok(compareAlerts(sorted[j - 1], sorted[j]) <= 0);
    }
  }
  assert.equal(feed.seq, 1000);
  assert.ok(feed.alerts.size < 5000 && feed.alerts.size > 4500);
  assert.ok(worst < 500, `one frame's work: ${worst.toFixed(1)} ms`);
});

// ----------------------------------------------------------------- model

test('order: red first, then newest, then id', () => {
  const list = [alert('b', 'blue', T0 + 5), alert('r1', 'red', T0), alert('r2', 'red', T0 + 9), alert('r0', 'red', T0)];
  assert.deepEqual(sortAlerts(list).map((a) => a.id), ['r2', 'r0', 'r1', 'b']);
});

test('states and filters', () => {
  assert.equal(alertState(alert('a', 'red')), 'new');
  assert.equal(alertState(alert('a', 'red', T0, { operator: { state: 'assigned' } })), 'assigned');
  assert.equal(alertState(alert('a', 'red', T0, { silenced: true, operator: { state: 'acknowledged' } })), 'silenced');
  assert.equal(alertState({ id: 'x' }), 'new', 'a server without operator state');
  const a = alert('a', 'red', T0, { rule: 'gas_leak', cell: 12, district: '110108', operator: { state: 'acknowledged' } });
  assert.ok(matchesFilter(a, emptyFilter()));
  assert.equal(filterActive(emptyFilter()), false);
  for (const [f, want] of [
    [{ severity: 'red' }, true],
    [{ severity: 'blue' }, false],
    [{ district: '110108' }, true],
    [{ district: '110105' }, false],
    [{ district: '-' }, false],
    [{ rule: 'gas_leak' }, true],
    [{ rule: 'x' }, false],
    [{ state: 'acknowledged' }, true],
    [{ state: 'new' }, false],
    [{ cell: 12 }, true],
    [{ cell: 0 }, false],
  ]) {
    const filter = { ...emptyFilter(), ...f };
    assert.equal(filterActive(filter), true);
    assert.equal(matchesFilter(a, filter), want, JSON.stringify(f));
  }
  assert.ok(matchesFilter(alert('n', 'red', T0, { district: null }), { ...emptyFilter(), district: '-' }));
});

test('summaries count by severity, district and cell with the highest severity', () => {
  const s = summarize([
    alert('a', 'blue', T0, { cell: 7, district: '110105' }),
    alert('b', 'red', T0, { cell: 7, district: '110105', rule: 'gas_leak', title: '可燃气体泄漏' }),
    alert('c', 'yellow', T0, { cell: null, district: '110108', district_name: '海淀区', silenced: true }),
  ]);
  assert.deepEqual(s.bySeverity, { total: 3, red: 1, orange: 0, yellow: 1, blue: 1 });
  assert.equal(s.byDistrict.get('110105').top, 'red');
  assert.equal(s.byDistrict.get('110108').name, '海淀区');
  assert.equal(s.byCell.get(7).total, 2);
  assert.equal(s.byCell.get(7).top, 'red');
  assert.equal(s.byCell.size, 1);
  assert.deepEqual(Array.from(s.rules.keys()).sort(), ['gas_leak', 'underpass_water']);
  assert.equal(s.states.get('silenced'), 1);
  assert.equal(countsText(s.byCell.get(7)), '红 1 · 蓝 1');
  assert.equal(countsText(s.byCell.get(7), STRINGS.en), 'R 1 · B 1');
});

test('places and ages', () => {
  assert.equal(formatPlace(alert('a', 'red')), '朝阳区 · 网格 5050');
  assert.equal(formatPlace(alert('a', 'red', T0, { district_name: null, district: null, cell: null, key: 'seg-7' })), 'seg-7');
  assert.equal(formatPlace(alert('a', 'red'), STRINGS.en), '朝阳区 · cell 5050');
  assert.equal(ageReference({ mode: 'event', engineMs: 5 }, 99), 5);
  assert.equal(ageReference({ mode: 'wall', engineMs: 5 }, 99), 99);
});

test('the virtual window covers the viewport plus overscan and no more', () => {
  assert.deepEqual(virtualWindow(0, 560, 56, 0), { start: 0, end: 0, offset: 0, height: 0 });
  const w = virtualWindow(0, 560, 56, 5000, 6);
  assert.equal(w.start, 0);
  assert.equal(w.end, 17);
  assert.equal(w.height, 5000 * 56);
  const mid = virtualWindow(56 * 2500, 560, 56, 5000, 6);
  assert.equal(mid.start, 2494);
  assert.equal(mid.end, 2517);
  assert.equal(mid.offset, 2494 * 56);
  const end = virtualWindow(56 * 10000, 560, 56, 5000, 6);
  assert.ok(end.start < 5000 && end.end === 5000, JSON.stringify(end));
  assert.equal(virtualWindow(0, 560, 56, 3).end, 3);
});

test('the timeline counts each raise and clear once, by bucket', () => {
  const tl = createTimeline(600000);
  const a = alert('a', 'red', T0 + 60000);
  assert.ok(timelineRecord(tl, 'raised', a, a.started_at));
  assert.ok(!timelineRecord(tl, 'raised', a, a.started_at), 'the same raise twice');
  assert.ok(timelineRecord(tl, 'cleared', a, T0 + 700000));
  assert.ok(timelineRecord(tl, 'raised', { ...a, started_at: T0 + 800000 }, T0 + 800000), 'raised again later');
  const series = timelineSeries(tl, T0 + 900000, 1);
  assert.equal(series.length, 6);
  assert.deepEqual(series.at(-1), [T0 + 600000, 1, 1]);
  assert.equal(series.reduce((n, [, r]) => n + r, 0), 2);
  assert.deepEqual(timelineSeries(tl, NaN), []);
});

test('the recorded counts from the server seed the timeline; the feed adds only what came later', () => {
  const tl = createTimeline(600000);
  const a = alert('a', 'red', T0 + 60000);
  // Seen in the snapshot before the seed arrives: counted by the server too.
  assert.ok(timelineRecord(tl, 'raised', a, a.started_at));
  // After the seed's end: the page's own.
  const b = alert('b', 'blue', T0 + 650000);
  assert.ok(timelineRecord(tl, 'raised', b, b.started_at));
  assert.ok(timelineSeed(tl, { until: T0 + 600000, buckets: [[T0, 3, 2]] }));
  assert.deepEqual(timelineSeries(tl, T0 + 700000, 1).slice(-2), [
    [T0, 3, 2],
    [T0 + 600000, 1, 0],
  ]);
  assert.ok(!timelineRecord(tl, 'cleared', a, T0 + 500000), 'before the seed: the server counted it');
  assert.ok(timelineRecord(tl, 'cleared', a, T0 + 660000));
  assert.ok(!timelineSeed(tl, { buckets: 'nope' }));
});

test('the grid matches rules/src/space.rs: row 0 in the south, cell = row × cols + col', () => {
  assert.equal(gridFrom(null), DEFAULT_GRID);
  assert.equal(gridFrom({ grid: { west: 1, south: 2, east: 0, north: 3, cols: 1, rows: 1 } }), DEFAULT_GRID, 'invalid grid');
  assert.deepEqual(gridFrom({ grid: { west: 0, south: 0, east: 10, north: 5, cols: 10, rows: 5 } }), { west: 0, south: 0, east: 10, north: 5, cols: 10, rows: 5 });
  const g = { west: 0, south: 0, east: 10, north: 5, cols: 10, rows: 5 };
  assert.deepEqual(cellBounds(g, 0), [[0, 0], [1, 1]]);
  assert.deepEqual(cellBounds(g, 13), [[3, 1], [4, 2]]);
  const [[w, s], [e, n]] = cellBounds(DEFAULT_GRID, 5050);
  assert.ok(Math.abs(w - (115.4 + 50 * 0.0212)) < 1e-9 && Math.abs(s - (39.42 + 50 * 0.0166)) < 1e-9);
  assert.ok(e > w && n > s);
  const data = cellData(g, new Map([[13, { top: 'red', total: 2, red: 1, orange: 0, yellow: 0, blue: 1 }], [1, { top: 'blue', total: 1, red: 0, orange: 0, yellow: 0, blue: 1 }], [99, { top: 'red', total: 1 }]]));
  assert.equal(data.length, 2, 'cells outside the grid are left out');
  assert.deepEqual(data[1].slice(0, 7), [3, 1, 4, 2, 4, 13, 2], 'most severe last (drawn on top)');
});

test('district names come from the map, in the language', () => {
  const names = districtNames({ features: [{ id: '110105', properties: { name: '朝阳区', name_en: 'Chaoyang', adcode: '110105' } }] });
  assert.equal(districtLabel('110105', names, 'zh'), '朝阳区');
  assert.equal(districtLabel('110105', names, 'en'), 'Chaoyang');
  assert.equal(districtLabel('120000', names, 'en', '天津'), '天津');
  assert.equal(districtLabel('120000', names, 'en'), '120000');
});

// ---------------------------------------------------------------- charts

test('the map draws the districts, tints alerting ones and draws alerting cells', () => {
  const s = summarize([alert('a', 'red', T0, { cell: 5050 }), alert('b', 'blue', T0, { cell: 10, district: '110108' })]);
  const names = new Map([['110105', { zh: '朝阳区', en: 'Chaoyang' }]]);
  const cells = cellData(DEFAULT_GRID, s.byCell);
  const o = charts.mapOption({ S: STRINGS.zh, lang: 'en', names, summary: s, cells, filter: { ...emptyFilter(), district: '110101' } });
  assert.equal(o.geo.map, charts.MAP_NAME);
  assert.equal(o.geo.nameProperty, 'adcode');
  assert.equal(o.geo.label.formatter({ name: '110105' }), 'Chaoyang');
  const regions = Object.fromEntries(o.geo.regions.map((r) => [r.name, r.itemStyle]));
  assert.ok(regions['110105'].areaColor.startsWith('rgba(229'), 'red tint');
  assert.ok(regions['110108'].areaColor, 'blue tint');
  assert.equal(regions['110101'].borderColor, '#ffffff', 'the selected district is outlined');
  assert.equal(o.series[0].type, 'custom');
  assert.equal(o.series[0].coordinateSystem, 'geo');
  assert.equal(o.series[0].data, cells);
  const tip = charts.mapTooltip({ componentType: 'series', value: cells[1] }, { S: STRINGS.zh, lang: 'zh', names, summary: s });
  assert.match(tip, /网格 5050/);
  assert.match(tip, /朝阳区/);
  assert.match(tip, /红 1/);
  const dtip = charts.mapTooltip({ componentType: 'geo', name: '110105' }, { S: STRINGS.en, lang: 'en', names, summary: s });
  assert.match(dtip, /Chaoyang/);
  assert.match(dtip, /1 total · R 1/);
});

test('a cell is a rectangle at its corners, at least 3 px, in its severity colour', () => {
  const value = [116, 39, 116.02, 39.02, 4, 5050];
  const api = { value: (i) => value[i], coord: ([x, y]) => [x * 100, -y * 100] };
  const shape = charts.renderCell({}, api);
  assert.equal(shape.type, 'rect');
  assert.equal(shape.style.fill, i18n.SEVERITY_COLOURS.red);
  assert.ok(Math.abs(shape.shape.width - 3) < 1e-9, 'tiny cells are drawn 3 px wide');
  const big = charts.renderCell({}, { value: (i) => value[i], coord: ([x, y]) => [x * 1000, -y * 1000] });
  assert.ok(Math.abs(big.shape.width - 20) < 1e-6);
});

test('district bars, the timeline and the backtest timeline', () => {
  const s = summarize([alert('a', 'red'), alert('b', 'red', T0, { district: '110108', district_name: '海淀区' }), alert('c', 'blue', T0, { district: '110108' })]);
  const bars = charts.districtBarOption({ S: STRINGS.zh, lang: 'zh', names: new Map(), summary: s });
  assert.deepEqual(bars.yAxis.data, ['朝阳区', '海淀区'], 'busiest last (at the top)');
  assert.deepEqual(bars.codes, ['110105', '110108']);
  assert.equal(bars.series.length, 4);
  assert.deepEqual(bars.series[0].data.map((d) => d.value), [1, 1]);
  const tl = charts.timelineOption({ S: STRINGS.en, series: [[T0, 2, 1]] });
  assert.deepEqual(tl.series.map((x) => x.name), ['raised', 'cleared']);
  assert.deepEqual(tl.series[1].data, [[T0, 1]]);
  const result = {
    end_ms: T0 + 1000,
    alerts: [
      { rule: 'r', key: '1', raised_ms: T0, cleared_ms: T0 + 500, highest_severity: 'red', duration_ms: 500 },
      { rule: 'r', key: '2', raised_ms: T0 + 100, cleared_ms: null, highest_severity: 'blue', duration_ms: 900 },
      { rule: 'r', key: '1', raised_ms: T0 + 700, cleared_ms: null, highest_severity: 'yellow', duration_ms: 300 },
    ],
  };
  const bt = charts.backtestOption({ S: STRINGS.zh, result, timeZone: 'UTC' });
  assert.deepEqual(bt.yAxis.data, ['r · 1', 'r · 2']);
  assert.deepEqual(bt.series[0].data.map((d) => d.value), [
    [0, T0, T0 + 500, 4],
    [1, T0 + 100, T0 + 1000, 1],
    [0, T0 + 700, T0 + 1000, 2],
  ]);
  assert.match(bt.tooltip.formatter({ data: bt.series[0].data[1] }), /结束时仍活动/);
});

// ------------------------------------------------------------------- api

test('the token comes from the fragment, which is then cleaned', () => {
  assert.equal(api.tokenFromHash('#token=abc'), 'abc');
  assert.equal(api.tokenFromHash('#rule=x&token=a%2Bb'), 'a+b');
  assert.equal(api.tokenFromHash('#rule=x'), null);
  assert.equal(api.tokenFromHash(''), null);
  assert.equal(api.hashWithoutToken('#token=abc'), '');
  assert.equal(api.hashWithoutToken('#rule=x&token=abc'), '#rule=x');
});

test('roles: whoami, no whoami, refused tokens', () => {
  const op = api.principalFrom(200, { auth: true, name: '王', roles: ['operator'], districts: ['110105'] });
  assert.ok(api.canOperate(op));
  assert.ok(!api.canAuthor(op));
  assert.deepEqual(op.districts, ['110105']);
  const admin = api.principalFrom(200, { auth: true, name: 'a', roles: ['admin'], districts: null });
  assert.ok(api.canOperate(admin) && api.canAuthor(admin));
  const open = api.principalFrom(200, { auth: false, name: 'anonymous', roles: [], districts: null });
  assert.ok(api.canOperate(open) && api.canAuthor(open), 'access control off: everything');
  assert.equal(api.principalFrom(404, null), api.OPEN_PRINCIPAL, 'no whoami yet');
  const refused = api.principalFrom(401, { error: { code: 'unauthorized' } });
  assert.ok(refused.unauthorized && !api.canOperate(refused));
});

// ----------------------------------------------------------- rule editor

test('lines and columns count code points from 1, as the server does', () => {
  const text = 'ab\n网格 x\n😀y\n';
  assert.deepEqual(rules.lineStarts(text), [0, 3, 8, 12]);
  assert.equal(rules.offsetOf(text, 1, 1), 0);
  assert.equal(rules.offsetOf(text, 2, 4), 6);
  assert.equal(text[rules.offsetOf(text, 2, 4)], 'x');
  assert.equal(text[rules.offsetOf(text, 3, 2)], 'y', 'an emoji is one column');
  assert.equal(rules.offsetOf(text, 1, 99), 2, 'clamped to the line end');
  assert.equal(rules.offsetOf(text, 99, 1), text.length);
});

test('diagnostics become marked spans, gutter flags and a list', () => {
  const text = 'rule a {\n  let v = avg(traffic.speed) over 5m\n}\n';
  const diags = [
    { code: 'E011', level: 'error', message: 'unknown field `speed` on stream `traffic`', file: '<request>', line: 2, column: 23, end_line: 2, end_column: 28, help: 'did you mean `speed_kmh`?' },
    { code: 'W001', level: 'warning', message: 'overlapping', file: '<request>', line: 2, column: 24, end_line: 2, end_column: 26 },
    { code: 'E020', level: 'error', message: 'in another rule', file: 'other.rules', line: 9, column: 1 },
    { code: 'E001', level: 'error', message: 'expected `}`', file: '<request>', line: 3, column: 2, end_line: 3, end_column: 2 },
  ];
  const ranges = rules.diagnosticRanges(text, diags);
  assert.deepEqual(
    ranges.map((r) => [text.slice(r.start, r.end), r.level, r.index]),
    [
      ['speed', 'error', 0],
      ['', 'error', 3],
    ],
  );
  const html = rules.highlightHtml(text, ranges);
  assert.match(html, /<mark class="diag diag-error" data-diag="0">speed<\/mark>/);
  assert.match(html, /<mark class="diag diag-error empty" data-diag="3"><\/mark>/);
  assert.equal(rules.highlightHtml('<&>', []), '&lt;&amp;&gt;\n');
  const gutter = rules.gutterHtml(text, diags);
  assert.match(gutter, /data-line="2" data-level="error">2</);
  assert.match(gutter, /data-line="3" data-level="error">3</);
  assert.doesNotMatch(gutter, /data-line="9"/);
  const list = rules.diagnosticsHtml(diags, STRINGS.zh);
  assert.match(list, /data-line="2" data-column="23"/);
  assert.match(list, /第 2 行第 23 列/);
  assert.match(list, /did you mean `speed_kmh`\?/);
  assert.match(list, /data-other="true"/);
  assert.deepEqual(rules.countLevels(diags), { errors: 3, warnings: 1 });
  assert.match(rules.diagnosticsHtml([{ ...diags[0], message: '<b>' }], STRINGS.en), /&lt;b&gt;/);
});

test('rule statistics cover the 7 days before the engine clock', () => {
  assert.equal(rules.statsSince({ clock_mode: 'event', clock: T0 }, T0 + 1e12), T0 - 7 * 86400000);
  assert.equal(rules.statsSince({ clock_mode: 'wall', clock: 5 }, T0), T0 - 7 * 86400000);
  assert.equal(rules.statsSince(null, T0), T0 - 7 * 86400000);
  assert.equal(rules.statsSince({ clock_mode: 'event', clock: 0 }, T0), 0);
});

test('rule effectiveness from the stats', () => {
  const stats = { by_rule: { gas_leak: { raised: 4, false_alarm_ratio: 0.25 } } };
  assert.deepEqual(rules.ruleEffect(stats, 'gas_leak'), { fired: 4, falseRatio: 0.25 });
  assert.deepEqual(rules.ruleEffect(stats, 'x'), { fired: null, falseRatio: null });
  assert.deepEqual(rules.ruleEffect(null, 'x'), { fired: null, falseRatio: null });
});

// ------------------------------------------------------------ alert detail

test('the detail shows rule, place, values, evidence and operator state, escaped', () => {
  const a = alert('a', 'red', T0, {
    message: '<script>x</script>',
    values: { water: 0.456789, speed: null },
    evidence: [{ term: 'water', stream: 'sensor', aggregate: 'max', window: '5m', count: 3, min: 0.1, max: 0.45, avg: 0.3, last: 0.45 }],
    labels: { team: '防汛' },
    operator: { state: 'assigned', acknowledged_by: '王', acknowledged_at: T0 + 60000, assigned_to: '二组', assigned_at: T0 + 120000, incident: 7, reopened: 1, last_comment: { text: '已到场', by: '李', at: T0 } },
    silenced: true,
    silences: [3],
  });
  const html = app.detailHtml(a, STRINGS.zh, { timeZone: 'Asia/Shanghai' });
  assert.ok(!html.includes('<script>'));
  assert.match(html, /&lt;script&gt;/);
  assert.match(html, /underpass_water/);
  assert.match(html, /rules\.html#rule=underpass_water/);
  assert.match(html, /朝阳区 · 网格 5050/);
  assert.match(html, /cell = a/);
  assert.match(html, /0\.457/);
  assert.match(html, /data-testid="detail-evidence"/);
  assert.match(html, /王 于 2026-01-01 08:01:00 确认/);
  assert.match(html, /指派给 二组/);
  assert.match(html, /事件 #7/);
  assert.match(html, /重新触发 1 次/);
  assert.match(html, /已到场/);
  assert.match(html, /data-state="silenced"/);
  assert.match(html, /被静默规则 3 覆盖/);
  assert.match(app.detailHtml(a, STRINGS.en, { timeZone: 'UTC' }), /acknowledged by 王 at 2026-01-01 00:01:00/);
});

test('the history lists changes and actions, newest first', () => {
  const html = app.historyHtml(
    {
      changes: [
        { seq: 1, time: T0, kind: 'raised', severity: 'orange' },
        { seq: 2, time: T0 + 60000, kind: 'updated', severity: 'red' },
      ],
      actions: [{ action: 'assign', to: '二组', note: '<急>', actor: '王', at: T0 + 30000 }],
    },
    STRINGS.zh,
    { timeZone: 'UTC' },
  );
  const order = ['更新', '指派', '触发'].map((w) => html.indexOf(w));
  assert.ok(order.every((i) => i > 0) && order[0] < order[1] && order[1] < order[2], html);
  assert.match(html, /→ 二组/);
  assert.match(html, /&lt;急&gt;/);
  assert.match(app.historyHtml({ changes: [], actions: [] }, STRINGS.en), /none/);
});

test('the actions offered depend on the state', () => {
  assert.deepEqual(app.actionsFor(alert('a', 'red')), { acknowledge: true, assign: true, comment: true, resolve: true, falseAlarm: true, silence: true });
  const acked = app.actionsFor(alert('a', 'red', T0, { operator: { state: 'acknowledged' } }));
  assert.equal(acked.acknowledge, false);
  assert.equal(acked.resolve, true);
  const resolved = app.actionsFor(alert('a', 'red', T0, { operator: { state: 'resolved' } }));
  assert.deepEqual([resolved.resolve, resolved.assign, resolved.comment], [false, false, true]);
  assert.equal(app.actionsFor(alert('a', 'red', T0, { silenced: true })).silence, false);
});

test('the engine clock follows the status and never goes back in event mode', () => {
  const clock = { mode: null, engineMs: null };
  app.applyStatus(clock, { clock_mode: 'event', clock: 100, version: '0.1.0', workers: 2, rules: 11 });
  assert.equal(clock.engineMs, 100);
  clock.engineMs = 200; // moved on by the feed
  app.applyStatus(clock, { clock_mode: 'event', clock: 150 });
  assert.equal(clock.engineMs, 200);
  app.applyStatus(clock, { clock_mode: 'wall', clock: 5 });
  assert.equal(clock.mode, 'wall');
  assert.equal(clock.engineMs, 5);
});

// ------------------------------------------------------ strings, formats

test('times are shown in the operator time zone', () => {
  assert.equal(formatTime(T0, true, 'Asia/Shanghai'), '2026-01-01 08:00:00');
  assert.equal(formatTime(T0, true, 'UTC'), '2026-01-01 00:00:00');
  assert.equal(formatTime(T0 + 3723000, false, 'UTC'), '01:02:03');
  assert.equal(formatTime(T0 - 1000, true, 'Asia/Shanghai'), '2026-01-01 07:59:59');
  assert.equal(formatTime(NaN), '—');
});

test('ages, numbers, percentages, durations, escaping', () => {
  assert.equal(formatAge(45000), '45 秒');
  assert.equal(formatAge(3 * 60000), '3 分钟');
  assert.equal(formatAge(125 * 60000, STRINGS.en), '2 h 5 min');
  assert.equal(formatAge(26 * 3600000), '1 天 2 小时');
  assert.equal(formatAge(-5), '0 秒');
  assert.equal(formatNumber(0.123456), '0.123');
  assert.equal(formatNumber(null), '—');
  assert.equal(formatNumber(3), '3');
  assert.equal(formatPercent(0.125), '12.5%');
  assert.equal(formatPercent(null), '—');
  assert.equal(formatDuration(3725000), '1h 2m');
  assert.equal(formatDuration(40000), '40s');
  assert.equal(formatDuration(90000), '1m 30s');
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  assert.equal(severityName('red'), '红色');
  assert.equal(severityName('purple', STRINGS.en), 'Unknown');
  assert.equal(strings('fr'), STRINGS.zh, 'unknown languages fall back to Chinese');
});

test('both languages have every string, with the same arguments', () => {
  const walk = (a, b, path) => {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const p = `${path}.${k}`;
      assert.ok(k in a && k in b, `${p} missing in one language`);
      assert.equal(typeof a[k], typeof b[k], `${p} types differ`);
      if (typeof a[k] === 'function') assert.equal(a[k].length, b[k].length, `${p} arguments differ`);
      else if (typeof a[k] === 'object') walk(a[k], b[k], p);
      else assert.ok(String(a[k]).length > 0, `${p} is empty`);
    }
  };
  walk(STRINGS.zh, STRINGS.en, 'STRINGS');
  for (const sev of i18n.SEVERITIES) assert.ok(STRINGS.en.severity[sev] && STRINGS.zh.severityShort[sev]);
  for (const st of i18n.STATES) assert.ok(STRINGS.en.state[st] && STRINGS.zh.state[st], st);
});
