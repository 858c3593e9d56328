// 京智 · Jingzhi — ECharts options for the map, the overview charts and the
// backtest timeline (pure: option objects; the pages own the instances).
//
// ECharts itself is the vendored `vendor/echarts.min.js` (Apache-2.0),
// loaded by the pages as a classic script: it is `globalThis.echarts` and
// nothing here imports it, so the option builders can be tested in Node.

import { SEVERITIES, SEVERITY_COLOURS, escapeHtml, formatTime, formatDuration } from './i18n.js';
import { countsText, districtLabel } from './model.js';

/** The name the district GeoJSON is registered under. */
export const MAP_NAME = 'jingzhi-districts';

const RANK_COLOURS = [null, SEVERITY_COLOURS.blue, SEVERITY_COLOURS.yellow, SEVERITY_COLOURS.orange, SEVERITY_COLOURS.red];
const REGION_TINTS = {
  red: 'rgba(229, 48, 42, 0.28)',
  orange: 'rgba(242, 138, 23, 0.24)',
  yellow: 'rgba(242, 194, 0, 0.2)',
  blue: 'rgba(47, 125, 225, 0.22)',
};

const TEXT = '#c9d6e3';
const MUTED = '#7d8fa3';
const LINE = '#2a3b52';
const BG = 'transparent';

/** The ECharts global, if the vendored script loaded. */
export function echartsGlobal(win = globalThis) {
  const e = win && win.echarts;
  return e && typeof e.init === 'function' ? e : null;
}

/**
 * The custom-series renderer of alerting cells: one rectangle per cell
 * from its corners (`value[0..4]`: w, s, e, n), filled by the highest
 * severity (`value[4]`), at least 3 px so that a cell stays visible when
 * the whole city is in view.
 */
export function renderCell(params, api) {
  const a = api.coord([api.value(0), api.value(1)]);
  const b = api.coord([api.value(2), api.value(3)]);
  const rank = api.value(4);
  const w = Math.max(Math.abs(b[0] - a[0]), 3);
  const h = Math.max(Math.abs(b[1] - a[1]), 3);
  const cx = (a[0] + b[0]) / 2;
  const cy = (a[1] + b[1]) / 2;
  return {
    type: 'rect',
    shape: { x: cx - w / 2, y: cy - h / 2, width: w, height: h },
    style: { fill: RANK_COLOURS[rank] || '#888', stroke: 'rgba(255,255,255,0.85)', lineWidth: 0.6 },
    emphasis: { style: { stroke: '#fff', lineWidth: 2 } },
  };
}

/**
 * The map: districts (click to filter, hover for counts) and alerting
 * cells coloured by their highest severity (click to filter).
 * `view`: {S, lang, names (code → names), summary, cells (model.cellData),
 * filter}.
 */
export function mapOption({ S, lang, names, summary, cells, filter }) {
  const regions = [];
  for (const [code, d] of summary.byDistrict) {
    if (code === '-' || !d.top) continue;
    regions.push({ name: code, itemStyle: { areaColor: REGION_TINTS[d.top] } });
  }
  if (filter && filter.district && filter.district !== '-') {
    const r = regions.find((x) => x.name === filter.district);
    const style = { borderColor: '#ffffff', borderWidth: 2 };
    if (r) Object.assign(r.itemStyle, style);
    else regions.push({ name: filter.district, itemStyle: style });
  }
  return {
    backgroundColor: BG,
    animation: false,
    tooltip: {
      trigger: 'item',
      confine: true,
      backgroundColor: 'rgba(12, 20, 32, 0.95)',
      borderColor: LINE,
      textStyle: { color: TEXT, fontSize: 12 },
      formatter: (p) => mapTooltip(p, { S, lang, names, summary }),
    },
    geo: {
      map: MAP_NAME,
      nameProperty: 'adcode',
      roam: true,
      scaleLimit: { min: 0.8, max: 40 },
      zoom: 1.1,
      selectedMode: false,
      tooltip: { show: true },
      label: {
        show: true,
        color: MUTED,
        fontSize: 10,
        formatter: (p) => districtLabel(p.name, names, lang),
      },
      itemStyle: { areaColor: '#14223a', borderColor: '#41628c', borderWidth: 1 },
      emphasis: {
        label: { show: true, color: '#fff' },
        itemStyle: { areaColor: '#1f3558' },
      },
      regions,
    },
    series: [
      {
        id: 'cells',
        name: 'cells',
        type: 'custom',
        coordinateSystem: 'geo',
        geoIndex: 0,
        renderItem: renderCell,
        data: cells,
        encode: { lng: 0, lat: 1, tooltip: [5, 6] },
        z: 10,
        animation: false,
        progressive: 0,
      },
    ],
  };
}

/** Hover text: a cell's or a district's counts by severity. */
export function mapTooltip(p, { S, lang, names, summary }) {
  if (!p) return '';
  if (p.componentType === 'series' && Array.isArray(p.value)) {
    const cell = p.value[5];
    const c = summary.byCell.get(cell);
    const district = c && c.district ? districtLabel(c.district, names, lang, c.districtName) : '';
    return (
      `<b>${escapeHtml(S.cell(cell))}</b>${district ? ` · ${escapeHtml(district)}` : ''}<br>` +
      `${escapeHtml(S.total(c ? c.total : 0))}${c ? ` · ${escapeHtml(countsText(c, S))}` : ''}`
    );
  }
  if (p.componentType === 'geo') {
    const d = summary.byDistrict.get(p.name);
    const label = districtLabel(p.name, names, lang);
    return `<b>${escapeHtml(label)}</b><br>${escapeHtml(S.total(d ? d.total : 0))}${d ? ` · ${escapeHtml(countsText(d, S))}` : ''}`;
  }
  return '';
}

/** Active alerts by district: stacked bars by severity, busiest first. */
export function districtBarOption({ S, lang, names, summary }) {
  const rows = Array.from(summary.byDistrict.entries())
    .sort((a, b) => b[1].total - a[1].total || (a[0] < b[0] ? -1 : 1))
    .slice(0, 16)
    .reverse();
  const labels = rows.map(([code, d]) => (code === '-' ? S.noDistrict : districtLabel(code, names, lang, d.name)));
  return {
    backgroundColor: BG,
    animation: false,
    grid: { left: 8, right: 16, top: 8, bottom: 8, containLabel: true },
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, confine: true },
    xAxis: {
      type: 'value',
      minInterval: 1,
      axisLabel: { color: MUTED, fontSize: 10 },
      splitLine: { lineStyle: { color: LINE } },
    },
    yAxis: {
      type: 'category',
      data: labels,
      axisLabel: { color: TEXT, fontSize: 11 },
      axisLine: { lineStyle: { color: LINE } },
    },
    series: SEVERITIES.map((sev) => ({
      name: S.severity[sev],
      type: 'bar',
      stack: 'all',
      barMaxWidth: 14,
      itemStyle: { color: SEVERITY_COLOURS[sev] },
      data: rows.map(([code, d]) => ({ value: d[sev], code })),
    })),
    // The district code of each bar, for clicks.
    codes: rows.map(([code]) => code),
  };
}

/** Raised (bars) and cleared (line) per bucket over the last hours. */
export function timelineOption({ S, series }) {
  return {
    backgroundColor: BG,
    animation: false,
    grid: { left: 8, right: 12, top: 26, bottom: 4, containLabel: true },
    legend: {
      top: 0,
      right: 0,
      textStyle: { color: TEXT, fontSize: 11 },
      itemWidth: 12,
      itemHeight: 8,
    },
    tooltip: { trigger: 'axis', confine: true },
    xAxis: {
      type: 'time',
      axisLabel: { color: MUTED, fontSize: 10, hideOverlap: true },
      axisLine: { lineStyle: { color: LINE } },
      splitLine: { show: false },
    },
    yAxis: {
      type: 'value',
      minInterval: 1,
      axisLabel: { color: MUTED, fontSize: 10 },
      splitLine: { lineStyle: { color: LINE } },
    },
    series: [
      {
        name: S.timelineRaised,
        type: 'bar',
        barMaxWidth: 8,
        itemStyle: { color: SEVERITY_COLOURS.orange },
        data: series.map(([t, raised]) => [t, raised]),
      },
      {
        name: S.timelineCleared,
        type: 'line',
        symbol: 'none',
        step: 'middle',
        lineStyle: { color: '#5cc98b', width: 1.5 },
        itemStyle: { color: '#5cc98b' },
        data: series.map(([t, , cleared]) => [t, cleared]),
      },
    ],
  };
}

const SEVERITY_RANKS = { red: 4, orange: 3, yellow: 2, blue: 1 };

/**
 * A backtest's alerts on a timeline: one row per rule and key, a bar from
 * raise to clear (or the end of the recording), coloured by the highest
 * severity it reached.
 */
export function backtestOption({ S, result, timeZone }) {
  const alerts = Array.isArray(result && result.alerts) ? result.alerts : [];
  const end = Number.isFinite(result && result.end_ms) ? result.end_ms : 0;
  const rows = [];
  const index = new Map();
  for (const a of alerts) {
    const k = `${a.rule} · ${a.key}`;
    if (!index.has(k)) {
      index.set(k, rows.length);
      rows.push(k);
    }
  }
  const data = alerts.map((a) => ({
    value: [index.get(`${a.rule} · ${a.key}`), a.raised_ms, a.cleared_ms ?? end, SEVERITY_RANKS[a.highest_severity] ?? 0],
    alert: a,
  }));
  const start = alerts.length ? Math.min(...alerts.map((a) => a.raised_ms)) : end;
  return {
    backgroundColor: BG,
    animation: false,
    grid: { left: 16, right: 16, top: 8, bottom: 24, containLabel: true },
    tooltip: {
      confine: true,
      formatter: (p) => {
        const a = p && p.data && p.data.alert;
        if (!a) return '';
        const cleared = a.cleared_ms == null ? S.rules.activeAtEnd : formatTime(a.cleared_ms, true, timeZone);
        return (
          `<b>${escapeHtml(a.rule)}</b> · ${escapeHtml(a.key)}<br>` +
          `${escapeHtml(S.severity[a.highest_severity] ?? a.highest_severity)} · ${escapeHtml(formatDuration(a.duration_ms))}<br>` +
          `${escapeHtml(formatTime(a.raised_ms, true, timeZone))} → ${escapeHtml(cleared)}`
        );
      },
    },
    xAxis: {
      type: 'time',
      min: start,
      max: Math.max(end, start + 1),
      axisLabel: { color: MUTED, fontSize: 10, hideOverlap: true },
      axisLine: { lineStyle: { color: LINE } },
      splitLine: { lineStyle: { color: LINE } },
    },
    yAxis: {
      type: 'category',
      data: rows,
      inverse: true,
      axisLabel: { color: TEXT, fontSize: 10, width: 200, overflow: 'truncate', margin: 8 },
      axisLine: { lineStyle: { color: LINE } },
    },
    series: [
      {
        type: 'custom',
        renderItem: renderInterval,
        encode: { x: [1, 2], y: 0 },
        data,
      },
    ],
  };
}

/** The custom-series renderer of one backtest alert interval. */
export function renderInterval(params, api) {
  const row = api.value(0);
  const a = api.coord([api.value(1), row]);
  const b = api.coord([api.value(2), row]);
  const h = Math.max(4, api.size([0, 1])[1] * 0.6);
  return {
    type: 'rect',
    shape: { x: a[0], y: a[1] - h / 2, width: Math.max(2, b[0] - a[0]), height: h },
    style: { fill: RANK_COLOURS[api.value(3)] || '#888' },
  };
}
