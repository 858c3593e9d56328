// Tests of the dashboard's pure logic (ui/static/app.js): feed state,
// ordering, selection and formatting. No npm packages, no DOM:
//
//     node ui/tests/app.test.mjs
//
// Uses node's built-in test runner (node 18+).

import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const appUrl = new URL('../static/app.js', import.meta.url);
let app;
try {
  app = await import(appUrl.href);
} catch (err) {
  // Node versions without module-syntax detection load a `.js` file outside
  // a `"type": "module"` package as CommonJS; load the source as a module.
  const source = readFileSync(appUrl, 'utf8');
  try {
    app = await import(`data:text/javascript;base64,${Buffer.from(source).toString('base64')}`);
  } catch {
    throw err;
  }
}

const {
  applyMessage,
  applyStatus,
  ageReference,
  compareAlerts,
  countBySeverity,
  createFeed,
  detailHtml,
  escapeHtml,
  feedUrl,
  formatAge,
  formatNumber,
  formatPlace,
  formatTime,
  latestTime,
  mergeLeaving,
  mergeMark,
  nextBackoff,
  resetConnection,
  selectVisible,
  severityName,
  sortAlerts,
  strings,
  LANGUAGES,
  MAX_ROWS,
  STRINGS,
} = app;

const T0 = 1767225600000; // 2026-01-01T00:00:00Z

function alert(id, severity, startedAt = T0, extra = {}) {
  return {
    id,
    rule: 'underpass_flooding',
    title: '下穿桥积水影响通行',
    severity,
    message: `网格 ${id} 积水`,
    group_by: 'cell',
    key: id,
    cell: 5050,
    district: '110105',
    district_name: '朝阳区',
    started_at: startedAt,
    updated_at: startedAt,
    values: { water: 0.42, speed: 12.5 },
    evidence: [],
    summary: '',
    ...extra,
  };
}

const ids = (feed) => sortAlerts(feed.alerts.values()).map((a) => a.id);

function synced(alerts = [], seq = 10) {
  const feed = createFeed();
  const r = applyMessage(feed, { type: 'snapshot', seq, alerts });
  assert.equal(r.status, 'snapshot');
  return feed;
}

// ------------------------------------------------------------------ feed

test('the first snapshot fills the list without highlights', () => {
  const feed = createFeed();
  assert.equal(feed.seq, null);
  const r = applyMessage(feed, { type: 'snapshot', seq: 16, alerts: [alert('a', 'blue'), alert('b', 'red')] });
  assert.equal(r.status, 'snapshot');
  assert.deepEqual(r.changes, []);
  assert.equal(feed.seq, 16);
  assert.equal(feed.synced, true);
  assert.deepEqual(ids(feed), ['b', 'a']);
});

test('changes before any snapshot are ignored', () => {
  const feed = createFeed();
  const r = applyMessage(feed, { type: 'raised', seq: 1, alert: alert('a', 'red') });
  assert.equal(r.status, 'ignored');
  assert.equal(feed.alerts.size, 0);
});

test('raised, updated and cleared change the active list', () => {
  const feed = synced([alert('a', 'yellow')], 10);

  let r = applyMessage(feed, { type: 'raised', seq: 11, alert: alert('b', 'orange', T0 + 1000) });
  assert.equal(r.status, 'change');
  assert.deepEqual(r.changes, [['b', 'new']]);
  assert.deepEqual(ids(feed), ['b', 'a']);

  const before = feed.orderVersion;
  r = applyMessage(feed, {
    type: 'updated',
    seq: 12,
    alert: alert('a', 'yellow', T0, { updated_at: T0 + 5000, values: { water: 0.5 } }),
  });
  assert.deepEqual(r.changes, [['a', 'changed']]);
  assert.equal(feed.alerts.get('a').values.water, 0.5);
  assert.equal(feed.orderVersion, before, 'an update that keeps severity and start keeps the order');

  r = applyMessage(feed, { type: 'updated', seq: 13, alert: alert('a', 'red', T0) });
  assert.ok(feed.orderVersion > before, 'a severity change may change the order');
  assert.deepEqual(ids(feed), ['a', 'b']);

  r = applyMessage(feed, { type: 'cleared', seq: 14, alert: { ...alert('b', 'orange'), cleared_at: T0 + 9000 } });
  assert.deepEqual(r.changes, [['b', 'gone']]);
  assert.deepEqual(ids(feed), ['a']);
  assert.equal(feed.seq, 14);
});

test('an already applied seq is ignored', () => {
  const feed = synced([alert('a', 'blue')], 10);
  const r = applyMessage(feed, { type: 'cleared', seq: 10, alert: alert('a', 'blue') });
  assert.equal(r.status, 'stale');
  assert.equal(feed.alerts.size, 1);
  assert.equal(applyMessage(feed, { type: 'raised', seq: 3, alert: alert('x', 'red') }).status, 'stale');
  assert.equal(feed.alerts.has('x'), false);
});

test('a skipped seq is reported as a gap and not applied', () => {
  const feed = synced([], 10);
  const r = applyMessage(feed, { type: 'raised', seq: 12, alert: alert('a', 'red') });
  assert.equal(r.status, 'gap');
  assert.equal(feed.seq, 10);
  assert.equal(feed.alerts.size, 0);
});

test('a resync snapshot replaces the whole list and reports the difference', () => {
  const feed = synced([alert('a', 'red'), alert('b', 'blue'), alert('c', 'yellow')], 10);
  const r = applyMessage(feed, {
    type: 'snapshot',
    resync: true,
    seq: 5000,
    alerts: [
      alert('a', 'red'), // unchanged
      alert('b', 'blue', T0, { updated_at: T0 + 1 }), // changed
      alert('d', 'orange'), // new; c is gone
    ],
  });
  assert.equal(r.status, 'snapshot');
  assert.equal(feed.seq, 5000);
  assert.deepEqual(ids(feed), ['a', 'd', 'b']);
  const changes = new Map(r.changes);
  assert.deepEqual(
    [...changes.entries()].sort(),
    [
      ['b', 'changed'],
      ['c', 'gone'],
      ['d', 'new'],
    ],
  );
  // Changes continue from the snapshot's seq.
  assert.equal(applyMessage(feed, { type: 'cleared', seq: 5001, alert: alert('a', 'red') }).status, 'change');
  assert.deepEqual(ids(feed), ['d', 'b']);
});

test('a new connection waits for its snapshot, whose seq may start over', () => {
  const feed = synced([alert('a', 'red')], 900);
  resetConnection(feed);
  assert.equal(applyMessage(feed, { type: 'raised', seq: 901, alert: alert('b', 'red') }).status, 'ignored');
  // The server restarted: its seq counts from the beginning again.
  const r = applyMessage(feed, { type: 'snapshot', seq: 3, alerts: [alert('c', 'blue')] });
  assert.equal(r.status, 'snapshot');
  assert.deepEqual(ids(feed), ['c']);
  assert.equal(feed.seq, 3);
  assert.equal(applyMessage(feed, { type: 'raised', seq: 4, alert: alert('d', 'red') }).status, 'change');
  assert.deepEqual(ids(feed), ['d', 'c']);
});

test('malformed and unknown messages', () => {
  const feed = synced([], 1);
  for (const bad of [null, 42, 'x', {}, { type: 'raised', seq: 2 }, { type: 'raised', seq: '2', alert: alert('a', 'red') }]) {
    assert.equal(applyMessage(feed, bad).status, 'invalid', JSON.stringify(bad));
  }
  assert.equal(applyMessage(feed, { type: 'snapshot', seq: 1 }).status, 'invalid');
  assert.equal(feed.seq, 1);
  // An unknown type is skipped but its seq is taken, so no gap follows.
  assert.equal(applyMessage(feed, { type: 'heartbeat', seq: 2 }).status, 'ignored');
  assert.equal(applyMessage(feed, { type: 'raised', seq: 3, alert: alert('a', 'red') }).status, 'change');
  // Alerts without an id are dropped from a snapshot.
  applyMessage(feed, { type: 'snapshot', seq: 4, alerts: [alert('b', 'red'), { title: 'no id' }, null] });
  assert.deepEqual(ids(feed), ['b']);
});

test('clearing an unknown alert changes nothing but takes the seq', () => {
  const feed = synced([], 1);
  const r = applyMessage(feed, { type: 'cleared', seq: 2, alert: alert('zz', 'red') });
  assert.equal(r.status, 'change');
  assert.deepEqual(r.changes, []);
  assert.equal(feed.seq, 2);
});

test('marks merge: later wins, but raised-then-updated stays new', () => {
  assert.equal(mergeMark(undefined, 'new'), 'new');
  assert.equal(mergeMark('new', 'changed'), 'new');
  assert.equal(mergeMark('new', 'gone'), 'gone');
  assert.equal(mergeMark('gone', 'new'), 'new');
  assert.equal(mergeMark('changed', 'changed'), 'changed');
  assert.equal(mergeMark('changed', 'gone'), 'gone');
});

test('latestTime reads updated_at and cleared_at', () => {
  assert.equal(latestTime({ type: 'snapshot', seq: 1, alerts: [] }), null);
  assert.equal(
    latestTime({ type: 'snapshot', seq: 1, alerts: [alert('a', 'red', T0), alert('b', 'red', T0 + 7)] }),
    T0 + 7,
  );
  assert.equal(latestTime({ type: 'cleared', seq: 2, alert: { ...alert('a', 'red'), cleared_at: T0 + 99 } }), T0 + 99);
});

// -------------------------------------------------------- sorting, selection

test('sorting: red first, then newest start, then id', () => {
  const list = [
    alert('y1', 'yellow', T0 + 5),
    alert('r-old', 'red', T0),
    alert('b', 'blue', T0 + 100),
    alert('o', 'orange', T0),
    alert('r-new', 'red', T0 + 10),
    alert('odd', 'purple', T0 + 1000),
    alert('r-new2', 'red', T0 + 10),
  ];
  assert.deepEqual(
    sortAlerts(list).map((a) => a.id),
    ['r-new', 'r-new2', 'r-old', 'o', 'y1', 'b', 'odd'],
  );
  assert.equal(compareAlerts(list[0], list[0]), 0);
});

test('counts by severity', () => {
  const c = countBySeverity([alert('a', 'red'), alert('b', 'red'), alert('c', 'blue'), alert('d', 'nope')]);
  assert.deepEqual(c, { red: 2, orange: 0, yellow: 0, blue: 1, other: 1, total: 4 });
});

test('selection caps the rows and counts the rest', () => {
  const many = [];
  for (let i = 0; i < 1200; i++) many.push(alert(`a${String(i).padStart(4, '0')}`, i % 2 ? 'red' : 'blue', T0 + i));
  const sorted = sortAlerts(many);
  let s = selectVisible(sorted, null);
  assert.equal(s.rows.length, MAX_ROWS);
  assert.equal(s.total, 1200);
  assert.equal(s.hidden, 700);
  assert.ok(s.rows.every((a, i) => i === 0 || compareAlerts(s.rows[i - 1], a) < 0));
  s = selectVisible(sorted, 'blue');
  assert.equal(s.total, 600);
  assert.equal(s.rows.length, 500);
  assert.ok(s.rows.every((a) => a.severity === 'blue'));
  s = selectVisible(sorted, 'orange');
  assert.deepEqual(s, { rows: [], total: 0, hidden: 0 });
  s = selectVisible(sorted.slice(0, 3), null);
  assert.equal(s.rows.length, 3);
  assert.equal(s.hidden, 0);
});

test('fading alerts are merged at their sorted place', () => {
  const rows = sortAlerts([alert('r', 'red'), alert('y', 'yellow'), alert('b', 'blue')]);
  const leaving = sortAlerts([alert('o', 'orange'), alert('z', 'blue', T0 - 1)]);
  const merged = mergeLeaving(rows, leaving);
  assert.deepEqual(
    merged.map((m) => [m.alert.id, m.leaving]),
    [
      ['r', false],
      ['o', true],
      ['y', false],
      ['b', false],
      ['z', true],
    ],
  );
  // A full page does not grow at its end.
  assert.deepEqual(
    mergeLeaving(rows, leaving, 3).map((m) => m.alert.id),
    ['r', 'o', 'y', 'b'],
  );
});

test('a thousand changes on five thousand alerts', () => {
  const feed = synced(
    Array.from({ length: 5000 }, (_, i) => alert(`id${i}`, ['red', 'orange', 'yellow', 'blue'][i % 4], T0 + i)),
    0,
  );
  let seq = 0;
  const start = performance.now();
  for (let i = 0; i < 1000; i++) {
    const id = `id${(i * 7) % 5000}`;
    const a = feed.alerts.get(id);
    applyMessage(feed, { type: 'updated', seq: ++seq, alert: { ...a, updated_at: a.updated_at + 1 } });
  }
  const sorted = sortAlerts(feed.alerts.values());
  selectVisible(sorted, null);
  const elapsed = performance.now() - start;
  assert.equal(feed.seq, 1000);
  assert.equal(sorted.length, 5000);
  assert.ok(elapsed < 1000, `took ${elapsed} ms`);
});

// ------------------------------------------------------------ formatting

test('ages', () => {
  const zh = STRINGS.zh;
  assert.equal(formatAge(0, zh), '0 秒');
  assert.equal(formatAge(-5000, zh), '0 秒');
  assert.equal(formatAge(59_999, zh), '59 秒');
  assert.equal(formatAge(3 * 60_000 + 10_000, zh), '3 分钟');
  assert.equal(formatAge(2 * 3_600_000 + 5 * 60_000, zh), '2 小时 5 分');
  assert.equal(formatAge(27 * 3_600_000, zh), '1 天 3 小时');
  assert.equal(formatAge(NaN, zh), '—');
  assert.equal(formatAge(3 * 60_000, STRINGS.en), '3 min');
});

test('ages are measured against the engine clock in event mode', () => {
  const now = T0 + 1e9;
  assert.equal(ageReference({ mode: 'event', engineMs: T0 }, now), T0);
  assert.equal(ageReference({ mode: 'event', engineMs: null }, now), null);
  assert.equal(ageReference({ mode: 'wall', engineMs: T0 }, now), now);
  assert.equal(ageReference({ mode: null, engineMs: null }, now), now);
});

test('status reply', () => {
  const clock = applyStatus({}, { clock: T0, clock_mode: 'event', workers: 2, rules: 5, version: '0.1.0' });
  assert.equal(clock.mode, 'event');
  assert.equal(clock.engineMs, T0);
  assert.equal(STRINGS.zh.info(clock.status), '规则 5 · 工作线程 2 · v0.1.0');
  assert.equal(applyStatus({}, { clock_mode: 'wall', clock: T0 }).mode, 'wall');
  assert.equal(applyStatus({}, { clock_mode: 'event' }).engineMs, null);
});

test('places', () => {
  assert.equal(formatPlace(alert('a', 'red')), '朝阳区 · 网格 5050');
  assert.equal(formatPlace({ ...alert('a', 'red'), cell: null, group_by: 'district' }), '朝阳区');
  assert.equal(formatPlace({ ...alert('a', 'red'), cell: 0, district_name: null }), '网格 0');
  assert.equal(formatPlace({ ...alert('k', 'red'), cell: null, district_name: null }), 'k');
  assert.equal(formatPlace(alert('a', 'red'), STRINGS.en), '朝阳区 · cell 5050');
});

test('local times', () => {
  const t = new Date(2026, 0, 2, 3, 4, 5).getTime(); // local time zone
  assert.equal(formatTime(t), '03:04:05');
  assert.equal(formatTime(t, true), '2026-01-02 03:04:05');
  assert.equal(formatTime(null), '—');
});

test('numbers', () => {
  assert.equal(formatNumber(null), '—');
  assert.equal(formatNumber(12), '12');
  assert.equal(formatNumber(0.1 + 0.2), '0.3');
  assert.equal(formatNumber(0.42), '0.42');
  assert.equal(formatNumber(12.34567), '12.346');
});

test('server text is escaped in the detail', () => {
  assert.equal(escapeHtml(`<b a="1">'&`), '&lt;b a=&quot;1&quot;&gt;&#39;&amp;');
  const html = detailHtml(
    alert('a', 'red', T0, {
      summary: '<script>x</script>',
      values: { '<w>': 0.5, speed: null },
      evidence: [{ term: 'water', stream: 'sensor', aggregate: 'max', window: '5m', count: 12, min: 0.1, max: 0.42, sum: 3.1, avg: 0.26 }],
    }),
  );
  assert.ok(!html.includes('<script>'));
  assert.ok(html.includes('&lt;script&gt;'));
  assert.ok(html.includes('&lt;w&gt;'));
  assert.ok(html.includes('<td>0.42</td>'));
  assert.ok(html.includes('—'), 'an empty window shows a dash');
});

test('the feed URL follows the page protocol', () => {
  assert.equal(feedUrl('http://127.0.0.1:8080/'), 'ws://127.0.0.1:8080/api/v1/alerts/ws');
  assert.equal(feedUrl('https://city.example/index.html?x=1#y'), 'wss://city.example/api/v1/alerts/ws');
});

test('reconnect backoff: 1 s doubling to 15 s', () => {
  const delays = [];
  let d = 0;
  for (let i = 0; i < 7; i++) delays.push((d = nextBackoff(d)));
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 15000, 15000, 15000]);
});

test('every language has every string', () => {
  const shape = (o) =>
    Object.entries(o)
      .map(([k, v]) => (v && typeof v === 'object' ? `${k}{${shape(v)}}` : `${k}:${typeof v}`))
      .sort()
      .join(',');
  for (const lang of LANGUAGES) assert.equal(shape(STRINGS[lang]), shape(STRINGS.zh), lang);
  assert.deepEqual(LANGUAGES, ['zh', 'en']);
  assert.equal(strings('fr'), STRINGS.zh);
  assert.equal(strings('constructor'), STRINGS.zh);
  assert.equal(severityName('red'), '红色');
  assert.equal(severityName('toString'), '未知');
  assert.equal(severityName('orange', STRINGS.en), 'Orange');
});
