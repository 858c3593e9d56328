// 京智 · Jingzhi — what the dashboard shows, computed from the alerts
// (pure): order, filters, counts by severity, district and cell, the
// virtualised list's window, the raised/cleared timeline, the grid.

import { SEVERITIES, severityRank, STRINGS, severityName } from './i18n.js';

/** An alert's state for lists and filters: silenced wins, then the operator's. */
export function alertState(a) {
  if (a && a.silenced) return 'silenced';
  const s = a && a.operator && a.operator.state;
  return typeof s === 'string' && s ? s : 'new';
}

/** Red first, then newest `started_at` first, then by id (stable). */
export function compareAlerts(a, b) {
  const r = severityRank(b.severity) - severityRank(a.severity);
  if (r !== 0) return r;
  const t = (b.started_at ?? 0) - (a.started_at ?? 0);
  if (t !== 0) return t;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** The alerts (any iterable) in list order, as a new array. */
export function sortAlerts(alerts) {
  return Array.from(alerts).sort(compareAlerts);
}

/** No filter: every alert. */
export function emptyFilter() {
  return { severity: null, district: null, rule: null, state: null, cell: null };
}

/** Whether any part of the filter is set. */
export function filterActive(f) {
  return Boolean(f && (f.severity || f.district || f.rule || f.state || f.cell !== null));
}

/** Whether `a` passes the filter. `district` "-" matches alerts without one. */
export function matchesFilter(a, f) {
  if (!f) return true;
  if (f.severity && a.severity !== f.severity) return false;
  if (f.district) {
    if (f.district === '-' ? a.district : a.district !== f.district) return false;
  }
  if (f.rule && a.rule !== f.rule) return false;
  if (f.state && alertState(a) !== f.state) return false;
  if (f.cell !== null && f.cell !== undefined && a.cell !== f.cell) return false;
  return true;
}

/** The sorted alerts that pass the filter. */
export function selectAlerts(sorted, f) {
  if (!filterActive(f)) return sorted;
  return sorted.filter((a) => matchesFilter(a, f));
}

function zeroCounts() {
  return { total: 0, red: 0, orange: 0, yellow: 0, blue: 0 };
}

/**
 * Counts of all alerts (not filtered): by severity, by district (code →
 * counts and name), by cell (cell → counts, highest severity, district),
 * the rules and states present.
 */
export function summarize(alerts) {
  const bySeverity = zeroCounts();
  const byDistrict = new Map();
  const byCell = new Map();
  const rules = new Map();
  const states = new Map();
  for (const a of alerts) {
    const sev = a.severity;
    bySeverity.total++;
    if (sev in bySeverity) bySeverity[sev]++;
    const dk = a.district ?? '-';
    let d = byDistrict.get(dk);
    if (!d) {
      d = { ...zeroCounts(), name: a.district_name ?? null, top: null };
      byDistrict.set(dk, d);
    }
    d.total++;
    if (sev in d) d[sev]++;
    if (severityRank(sev) > severityRank(d.top)) d.top = sev;
    if (Number.isInteger(a.cell)) {
      let c = byCell.get(a.cell);
      if (!c) {
        c = { ...zeroCounts(), top: null, district: a.district ?? null, districtName: a.district_name ?? null };
        byCell.set(a.cell, c);
      }
      c.total++;
      if (sev in c) c[sev]++;
      if (severityRank(sev) > severityRank(c.top)) c.top = sev;
    }
    const title = rules.get(a.rule);
    if (title === undefined) rules.set(a.rule, a.title ?? a.rule);
    const st = alertState(a);
    states.set(st, (states.get(st) ?? 0) + 1);
  }
  return { bySeverity, byDistrict, byCell, rules, states };
}

/** "朝阳区 · 网格 5050", "朝阳区", "网格 5050", or the key. */
export function formatPlace(a, S = STRINGS.zh) {
  const parts = [];
  if (a.district_name) parts.push(a.district_name);
  else if (a.district) parts.push(a.district);
  if (Number.isInteger(a.cell)) parts.push(S.cell(a.cell));
  if (!parts.length && a.key) parts.push(String(a.key));
  return parts.join(' · ');
}

/** The reference time for ages: the engine clock in event mode, else now. */
export function ageReference(clock, nowMs) {
  if (clock && clock.mode === 'event') return clock.engineMs ?? null;
  return nowMs;
}

/**
 * The rows of a virtualised list to render: `[start, end)` with `overscan`
 * rows either side, and the offset of row `start`.
 */
export function virtualWindow(scrollTop, viewportHeight, rowHeight, total, overscan = 6) {
  if (!(rowHeight > 0) || total <= 0) return { start: 0, end: 0, offset: 0, height: 0 };
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
  const visible = Math.ceil(Math.max(0, viewportHeight) / rowHeight) + 1;
  const start = Math.max(0, Math.min(first - overscan, total - 1));
  const end = Math.min(total, first + visible + overscan);
  return { start, end: Math.max(start, end), offset: start * rowHeight, height: total * rowHeight };
}

// ---------------------------------------------------------------- timeline

/** Timeline buckets: 10 minutes over the last 6 hours. */
export const TIMELINE_BUCKET_MS = 10 * 60 * 1000;
export const TIMELINE_HOURS = 6;

/**
 * Raised and cleared counts by time bucket, from what the page has seen:
 * active alerts' start times (from snapshots) and every raise and clear on
 * the feed. Each alert start and clear is counted once.
 */
export function createTimeline(bucketMs = TIMELINE_BUCKET_MS) {
  return { bucketMs, raised: new Map(), cleared: new Map(), seen: new Set(), seededUntil: null };
}

/**
 * Seeds the timeline with the server's recorded counts
 * (`GET /api/v1/alerts/timeline`: `{until, buckets: [[t, raised, cleared], …]}`).
 * Raises and clears before `until` come from the server from then on; the
 * live feed adds only what happens after it.
 */
export function timelineSeed(tl, reply) {
  if (!reply || !Array.isArray(reply.buckets) || !Number.isFinite(reply.until)) return false;
  // The server's counts replace what the page recorded before `until`;
  // what it recorded since stays (`seen` keys end with the time).
  tl.raised.clear();
  tl.cleared.clear();
  for (const key of tl.seen) {
    const [kind, , t] = key.split(':');
    const at = Number(t);
    if (Number.isFinite(at) && at >= reply.until) {
      bump(kind === 'cleared' ? tl.cleared : tl.raised, Math.floor(at / tl.bucketMs) * tl.bucketMs);
    }
  }
  for (const row of reply.buckets) {
    if (!Array.isArray(row) || row.length < 3) continue;
    const [t, raised, cleared] = row;
    if (!Number.isFinite(t)) continue;
    const bucket = Math.floor(t / tl.bucketMs) * tl.bucketMs;
    tl.raised.set(bucket, (tl.raised.get(bucket) ?? 0) + (Number(raised) || 0));
    tl.cleared.set(bucket, (tl.cleared.get(bucket) ?? 0) + (Number(cleared) || 0));
  }
  tl.seededUntil = reply.until;
  return true;
}

function bump(map, bucket) {
  map.set(bucket, (map.get(bucket) ?? 0) + 1);
}

/** Records an alert raise (`kind` "raised") or clear ("cleared") at `t`. */
export function timelineRecord(tl, kind, alert, t) {
  if (!alert || !Number.isFinite(t)) return false;
  // Counted by the server already.
  if (tl.seededUntil !== null && t < tl.seededUntil) return false;
  const key = `${kind}:${alert.id}:${kind === 'raised' ? alert.started_at : t}`;
  if (tl.seen.has(key)) return false;
  tl.seen.add(key);
  const bucket = Math.floor(t / tl.bucketMs) * tl.bucketMs;
  bump(kind === 'cleared' ? tl.cleared : tl.raised, bucket);
  return true;
}

/** Buckets up to `endMs` over `hours`: `[[t, raised, cleared], …]`, and drops older ones. */
export function timelineSeries(tl, endMs, hours = TIMELINE_HOURS) {
  if (!Number.isFinite(endMs)) return [];
  const last = Math.floor(endMs / tl.bucketMs) * tl.bucketMs;
  const n = Math.ceil((hours * 3600000) / tl.bucketMs);
  const first = last - (n - 1) * tl.bucketMs;
  for (const m of [tl.raised, tl.cleared]) for (const k of m.keys()) if (k < first - tl.bucketMs * n) m.delete(k);
  if (tl.seen.size > 200000) tl.seen.clear();
  const out = [];
  for (let t = first; t <= last; t += tl.bucketMs) out.push([t, tl.raised.get(t) ?? 0, tl.cleared.get(t) ?? 0]);
  return out;
}

// -------------------------------------------------------------------- grid

/**
 * The default grid (`rules/src/space.rs`, `Grid::default`): Beijing in
 * 100 × 100 cells, row 0 at the south edge, cell = row × cols + col. Used
 * when the server does not say which grid it runs (`status.grid`).
 */
export const DEFAULT_GRID = Object.freeze({ west: 115.4, south: 39.42, east: 117.52, north: 41.08, cols: 100, rows: 100 });

/** The server's grid from `GET /api/v1/status` (`grid`), or the default. */
export function gridFrom(status) {
  const g = status && status.grid;
  const ok =
    g &&
    ['west', 'south', 'east', 'north'].every((k) => Number.isFinite(g[k])) &&
    Number.isInteger(g.cols) &&
    Number.isInteger(g.rows) &&
    g.cols > 0 &&
    g.rows > 0 &&
    g.west < g.east &&
    g.south < g.north;
  return ok ? { west: g.west, south: g.south, east: g.east, north: g.north, cols: g.cols, rows: g.rows } : DEFAULT_GRID;
}

/** A cell's south-west and north-east corners `[[w, s], [e, n]]`. */
export function cellBounds(grid, cell) {
  const row = Math.floor(cell / grid.cols);
  const col = cell % grid.cols;
  const dx = (grid.east - grid.west) / grid.cols;
  const dy = (grid.north - grid.south) / grid.rows;
  const w = grid.west + col * dx;
  const s = grid.south + row * dy;
  return [
    [w, s],
    [w + dx, s + dy],
  ];
}

/** Map data for alerting cells: `[w, s, e, n, rank, cell, total, red, orange, yellow, blue]`. */
export function cellData(grid, byCell) {
  const out = [];
  const max = grid.cols * grid.rows;
  for (const [cell, c] of byCell) {
    if (!(cell >= 0 && cell < max)) continue;
    const [[w, s], [e, n]] = cellBounds(grid, cell);
    out.push([w, s, e, n, severityRank(c.top), cell, c.total, c.red, c.orange, c.yellow, c.blue]);
  }
  // Most severe drawn last (on top).
  out.sort((a, b) => a[4] - b[4]);
  return out;
}

/** "红 1 · 橙 2" for the severities present. */
export function countsText(c, S = STRINGS.zh) {
  const parts = [];
  for (const sev of SEVERITIES) if (c && c[sev]) parts.push(`${S.severityShort[sev]} ${c[sev]}`);
  return parts.join(' · ');
}

/** The district name of a code from the GeoJSON features, in the language. */
export function districtNames(geojson) {
  const out = new Map();
  for (const f of (geojson && geojson.features) || []) {
    const p = f.properties || {};
    const code = String(p.adcode ?? f.id ?? '');
    if (code) out.set(code, { zh: p.name ?? code, en: p.name_en ?? p.name ?? code });
  }
  return out;
}

/** A district's display name: from the map, or as the alert gives it, or the code. */
export function districtLabel(code, names, lang, fallback = null) {
  const n = names && names.get(code);
  if (n) return lang === 'en' ? n.en : n.zh;
  return fallback ?? code;
}

export { severityName };
