// 京智 · Jingzhi — the rule-authoring page: the rules with how often each
// fired and how often operators dismissed it, an editor that checks the
// text as you type (`POST api/v1/rules/validate`) and marks each error at
// its line and column, a backtest over a recorded event file
// (`POST api/v1/rules/backtest`) on a timeline, and publishing
// (`PUT api/v1/rules/{name}`).
//
// The editor is a plain textarea over a backdrop that repeats its text
// with the diagnostics' spans marked; a gutter numbers the lines and flags
// those with errors; a bubble under the first error says what is wrong.
// Diagnostics count lines and columns from 1, columns in characters (code
// points), as the server reports them.

import { escapeHtml, formatDuration, formatPercent, localTimeZone, severityName } from './i18n.js';
import { backtestOption, echartsGlobal } from './charts.js';
import { createShell } from './shell.js';

const VALIDATE_DELAY_MS = 250;
const STATS_DAYS = 7;
/** The name the server gives the request's text in diagnostics. */
export const REQUEST_FILE = '<request>';

export const NEW_RULE_TEMPLATE = `rule new_rule "新规则" {
  severity yellow
  group by cell
  let water = max(sensor.value where kind == "water_level") over 10m
  when water > 0.3
  message "网格 {cell} 积水 {water:.2} 米"
}
`;

// ------------------------------------------------------------------- pure

/** UTF-16 offsets where each line starts. */
export function lineStarts(text) {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  return starts;
}

/**
 * The UTF-16 offset of a 1-based line and column (columns count code
 * points), clamped to the line's end.
 */
export function offsetOf(text, line, column, starts = lineStarts(text)) {
  if (!(line >= 1)) return 0;
  if (line > starts.length) return text.length;
  const start = starts[line - 1];
  const end = line < starts.length ? starts[line] - 1 : text.length;
  let off = start;
  for (let c = 1; c < column && off < end; c++) {
    const code = text.charCodeAt(off);
    off += code >= 0xd800 && code <= 0xdbff && off + 1 < end ? 2 : 1;
  }
  return off;
}

/** Whether a diagnostic is about the edited text (not another installed rule). */
export function inEditor(d) {
  return !d.file || d.file === REQUEST_FILE;
}

/**
 * The spans to mark for diagnostics in the editor's text: `{start, end,
 * level, index}` sorted, without overlaps (the first diagnostic wins); an
 * empty span (at a line's end, say) stays empty and is drawn as a caret.
 */
export function diagnosticRanges(text, diagnostics) {
  const starts = lineStarts(text);
  const ranges = [];
  diagnostics.forEach((d, index) => {
    if (!inEditor(d) || !Number.isInteger(d.line)) return;
    const start = offsetOf(text, d.line, d.column ?? 1, starts);
    let end = Number.isInteger(d.end_line) ? offsetOf(text, d.end_line, d.end_column ?? d.column ?? 1, starts) : start;
    if (end < start) end = start;
    ranges.push({ start, end, level: d.level === 'warning' ? 'warning' : 'error', index });
  });
  ranges.sort((a, b) => a.start - b.start || a.index - b.index);
  const out = [];
  let reach = -1;
  for (const r of ranges) {
    if (r.start < reach) continue;
    out.push(r);
    reach = Math.max(r.end, r.start === r.end ? r.start + 1 : r.end);
  }
  return out;
}

/** The backdrop's HTML: the text escaped, with the ranges marked. */
export function highlightHtml(text, ranges) {
  let html = '';
  let at = 0;
  for (const r of ranges) {
    html += escapeHtml(text.slice(at, r.start));
    const cls = `diag diag-${r.level}${r.start === r.end ? ' empty' : ''}`;
    html += `<mark class="${cls}" data-diag="${r.index}">${escapeHtml(text.slice(r.start, r.end))}</mark>`;
    at = r.end;
  }
  html += escapeHtml(text.slice(at));
  // A final newline needs a character after it to take up its line.
  return `${html}\n`;
}

/** The gutter: one numbered line per text line, flagged with its worst diagnostic. */
export function gutterHtml(text, diagnostics) {
  const lines = lineStarts(text).length;
  const worst = new Map();
  for (const d of diagnostics) {
    if (!inEditor(d) || !Number.isInteger(d.line)) continue;
    const level = d.level === 'warning' ? 'warning' : 'error';
    if (worst.get(d.line) !== 'error') worst.set(d.line, level);
  }
  let html = '';
  for (let i = 1; i <= lines; i++) {
    const level = worst.get(i);
    html += `<div class="gutter-line${level ? ` has-${level}` : ''}" data-line="${i}"${level ? ` data-level="${level}"` : ''}>${i}</div>`;
  }
  return html;
}

/** The diagnostics list as HTML. */
export function diagnosticsHtml(diagnostics, S) {
  const R = S.rules;
  const e = escapeHtml;
  return diagnostics
    .map((d, i) => {
      const level = d.level === 'warning' ? 'warning' : 'error';
      const where = inEditor(d) ? R.at(d.line, d.column) : `${R.at(d.line, d.column)} ${R.otherFile(d.file)}`;
      const help = d.help ? `<span class="diag-help">${e(d.help)}</span>` : '';
      const label = d.label ? `<span class="diag-label">${e(d.label)}</span>` : '';
      return (
        `<li class="diagnostic" data-testid="diagnostic" data-index="${i}" data-level="${level}" data-code="${e(d.code ?? '')}" ` +
        `data-line="${e(d.line)}" data-column="${e(d.column)}"${inEditor(d) ? '' : ' data-other="true"'}>` +
        `<button type="button" class="diag-where">${e(where)}</button> ` +
        `<span class="diag-code">${e(d.code ?? '')}</span> <span class="diag-message">${e(d.message)}</span>${label}${help}</li>`
      );
    })
    .join('');
}

/** Counts of errors and warnings. */
export function countLevels(diagnostics) {
  let errors = 0;
  let warnings = 0;
  for (const d of diagnostics) {
    if (d.level === 'warning') warnings++;
    else errors++;
  }
  return { errors, warnings };
}

/** Per rule from `GET /api/v1/stats`: how often it fired and its false-alarm ratio. */
export function ruleEffect(stats, name) {
  const e = stats && stats.by_rule && stats.by_rule[name];
  if (!e) return { fired: null, falseRatio: null };
  return { fired: e.raised ?? null, falseRatio: e.false_alarm_ratio ?? null };
}

// ------------------------------------------------------------------- page

function createPage(win) {
  const doc = win.document;
  const $ = (sel) => doc.querySelector(sel);
  const page = {
    win,
    doc,
    shell: null,
    timeZone: localTimeZone(),
    rules: [],
    stats: null,
    listError: null,
    current: null, // the rule name loaded in the editor
    diagnostics: [],
    defined: [],
    check: { seq: 0, timer: 0, controller: null, state: 'idle', denied: false },
    backtest: { result: null, chart: null, running: false },
    el: {
      table: $('[data-testid="rule-table"] tbody'),
      listNote: $('[data-testid="rule-list-note"]'),
      newRule: $('[data-testid="new-rule"]'),
      editorRule: $('[data-testid="editor-rule"]'),
      status: $('[data-testid="check-status"]'),
      publish: $('[data-testid="publish"]'),
      notice: $('[data-testid="author-notice"]'),
      gutter: $('[data-testid="gutter"]'),
      backdrop: $('.code-backdrop'),
      input: $('[data-testid="rule-editor"]'),
      bubbles: $('.diag-bubbles'),
      diagnostics: $('[data-testid="diagnostics"]'),
      publishMessage: $('[data-testid="publish-message"]'),
      file: $('[data-testid="events-file"]'),
      run: $('[data-testid="run-backtest"]'),
      backtestStatus: $('[data-testid="backtest-status"]'),
      backtestChart: $('[data-testid="backtest-chart"]'),
      backtestSummary: $('[data-testid="backtest-summary"]'),
      timeZone: $('[data-testid="time-zone"]'),
    },
  };
  return page;
}

const S = (page) => page.shell.S();

// --------------------------------------------------------------- rule list

/** The start of the statistics window: 7 days before the engine clock (the wall clock, or event time in a replay). */
export function statsSince(status, nowMs) {
  const clock = status && status.clock_mode === 'event' && Number.isFinite(status.clock) ? status.clock : nowMs;
  return Math.max(0, clock - STATS_DAYS * 86400000);
}

async function loadRules(page) {
  const status = await page.shell.request('api/v1/status');
  const since = statsSince(status.ok ? status.body : null, Date.now());
  const [rules, stats] = await Promise.all([
    page.shell.request('api/v1/rules'),
    page.shell.request(`api/v1/stats?since=${since}`),
  ]);
  page.rules = rules.ok && rules.body && Array.isArray(rules.body.rules) ? rules.body.rules : [];
  page.listError = rules.ok ? null : rules.error;
  page.stats = stats.ok ? stats.body : null;
  renderRuleList(page);
}

function renderRuleList(page) {
  const Sx = S(page);
  const e = escapeHtml;
  page.el.table.innerHTML = page.rules
    .map((r) => {
      const { fired, falseRatio } = ruleEffect(page.stats, r.name);
      return (
        `<tr data-testid="rule-row" data-rule="${e(r.name)}"${r.name === page.current ? ' class="current"' : ''}>` +
        `<td><button type="button" class="link rule-open" data-rule="${e(r.name)}"><code>${e(r.name)}</code></button>` +
        `<span class="rule-title">${e(r.title ?? '')}</span></td>` +
        `<td><span class="sev-dot" data-severity="${e(r.severity)}"></span>${e(severityName(r.severity, Sx))}</td>` +
        `<td class="num">${e(r.version ?? '—')}</td>` +
        `<td class="num" data-testid="rule-fired">${e(fired ?? '—')}</td>` +
        `<td class="num" data-testid="rule-false-ratio">${e(formatPercent(falseRatio))}</td></tr>`
      );
    })
    .join('');
  const notes = [];
  if (page.listError) notes.push(`${Sx.rules.loadFailed}: ${page.listError}`);
  else if (!page.rules.length) notes.push(Sx.rules.none);
  if (!page.stats) notes.push(Sx.rules.noStats);
  page.el.listNote.textContent = notes.join(' · ');
}

async function openRule(page, name) {
  const r = await page.shell.request(`api/v1/rules/${encodeURIComponent(name)}`);
  const listed = page.rules.find((x) => x.name === name);
  const source = r.ok && r.body ? r.body.source : listed ? listed.source : null;
  if (source == null) return;
  page.current = name;
  setText(page, source);
  renderRuleList(page);
}

function setText(page, text) {
  page.el.input.value = text;
  page.el.input.scrollTop = 0;
  page.diagnostics = [];
  page.el.publishMessage.textContent = '';
  renderEditor(page);
  scheduleCheck(page, 0);
}

// ------------------------------------------------------------------ editor

function renderEditor(page) {
  const { el } = page;
  const text = el.input.value;
  const ranges = diagnosticRanges(text, page.diagnostics);
  el.backdrop.innerHTML = highlightHtml(text, ranges);
  el.gutter.innerHTML = gutterHtml(text, page.diagnostics);
  el.diagnostics.innerHTML = diagnosticsHtml(page.diagnostics, S(page));
  syncScroll(page);
  renderBubbles(page);
  renderStatus(page);
}

/** A bubble under the first marked error, with its message, at its column. */
function renderBubbles(page) {
  const { el } = page;
  el.bubbles.textContent = '';
  const first = page.diagnostics.findIndex((d) => inEditor(d) && d.level !== 'warning');
  const index = first >= 0 ? first : page.diagnostics.findIndex(inEditor);
  if (index < 0) return;
  const mark = el.backdrop.querySelector(`mark[data-diag="${index}"]`);
  if (!mark) return;
  const d = page.diagnostics[index];
  const bubble = page.doc.createElement('div');
  bubble.className = `diag-bubble diag-${d.level === 'warning' ? 'warning' : 'error'}`;
  bubble.dataset.testid = 'inline-diagnostic';
  bubble.dataset.line = String(d.line);
  bubble.dataset.column = String(d.column);
  bubble.textContent = `${d.code ?? ''} ${d.message}${d.help ? ` — ${d.help}` : ''}`.trim();
  bubble.dataset.top = String(mark.offsetTop + mark.offsetHeight);
  bubble.dataset.left = String(mark.offsetLeft);
  el.bubbles.appendChild(bubble);
  positionBubbles(page);
}

function positionBubbles(page) {
  const { el } = page;
  for (const b of el.bubbles.children) {
    b.style.transform = `translate(${Number(b.dataset.left) - el.input.scrollLeft}px, ${Number(b.dataset.top) - el.input.scrollTop}px)`;
  }
}

function syncScroll(page) {
  const { el } = page;
  el.backdrop.scrollTop = el.input.scrollTop;
  el.backdrop.scrollLeft = el.input.scrollLeft;
  el.gutter.scrollTop = el.input.scrollTop;
  positionBubbles(page);
}

function renderStatus(page) {
  const { el, check } = page;
  const Sx = S(page);
  const R = Sx.rules;
  const { errors, warnings } = countLevels(page.diagnostics);
  let text = '';
  let state = check.state;
  if (check.denied) {
    state = 'denied';
    text = R.needAuthor;
  } else if (check.state === 'checking') text = R.checking;
  else if (check.state === 'done') {
    state = errors ? 'errors' : 'ok';
    const parts = [errors ? R.errors(errors) : R.valid];
    if (warnings) parts.push(R.warnings(warnings));
    if (page.defined.length) parts.push(R.defines(page.defined.join(', ')));
    text = parts.join(' · ');
  } else if (check.state === 'failed') text = check.error ?? '';
  el.status.dataset.state = state;
  el.status.textContent = text;
  el.editorRule.textContent = page.defined.length === 1 ? page.defined[0] : page.current ?? '';
  const canAuthor = page.shell.canAuthor();
  el.notice.hidden = canAuthor;
  el.notice.textContent = canAuthor ? '' : R.needAuthor;
  el.publish.disabled = !canAuthor || state !== 'ok' || page.defined.length !== 1;
  el.run.disabled = !canAuthor || page.backtest.running || (check.state === 'done' && errors > 0);
}

function scheduleCheck(page, delay = VALIDATE_DELAY_MS) {
  const { check, win } = page;
  win.clearTimeout(check.timer);
  check.timer = win.setTimeout(() => runCheck(page), delay);
}

async function runCheck(page) {
  const { check } = page;
  const text = page.el.input.value;
  if (check.controller) check.controller.abort();
  const controller = new AbortController();
  check.controller = controller;
  const seq = ++check.seq;
  check.state = 'checking';
  renderStatus(page);
  const r = await page.shell.request('api/v1/rules/validate', { method: 'POST', text, signal: controller.signal });
  if (seq !== check.seq) return; // a newer check is on its way
  check.controller = null;
  check.denied = r.status === 403 || r.status === 401;
  if (r.ok && r.body) {
    check.state = 'done';
    page.diagnostics = Array.isArray(r.body.diagnostics) ? r.body.diagnostics : [];
    page.defined = Array.isArray(r.body.rules) ? r.body.rules : [];
  } else if (!r.aborted) {
    check.state = 'failed';
    check.error = r.error;
  }
  renderEditor(page);
}

async function publish(page) {
  const Sx = S(page);
  const R = Sx.rules;
  const msg = page.el.publishMessage;
  if (page.defined.length !== 1) {
    msg.textContent = R.publishOne;
    msg.dataset.ok = 'false';
    return;
  }
  const name = page.defined[0];
  msg.textContent = R.publishing;
  msg.dataset.ok = '';
  const r = await page.shell.request(`api/v1/rules/${encodeURIComponent(name)}`, {
    method: 'PUT',
    text: page.el.input.value,
  });
  if (r.ok && r.body) {
    msg.textContent = R.published(name, r.body.version, r.body.change);
    msg.dataset.ok = 'true';
    page.current = name;
    await loadRules(page);
  } else {
    msg.textContent = R.publishFailed(r.error);
    msg.dataset.ok = 'false';
    if (r.body && Array.isArray(r.body.diagnostics)) {
      page.diagnostics = r.body.diagnostics;
      renderEditor(page);
    }
  }
}

// ---------------------------------------------------------------- backtest

async function runBacktest(page) {
  const Sx = S(page);
  const R = Sx.rules;
  const { el, backtest } = page;
  const file = el.file.files && el.file.files[0];
  if (!file) {
    el.backtestStatus.textContent = R.noEvents;
    return;
  }
  backtest.running = true;
  el.backtestStatus.textContent = R.running;
  renderStatus(page);
  const events = await file.text();
  const r = await page.shell.request('api/v1/rules/backtest', {
    method: 'POST',
    json: { rules: el.input.value, events },
    timeoutMs: 300000,
  });
  backtest.running = false;
  if (r.ok && r.body) {
    backtest.result = r.body;
    el.backtestStatus.textContent = R.result(r.body.alerts?.length ?? 0, r.body.events ?? 0, r.body.rejected ?? 0);
    el.backtestStatus.dataset.ok = 'true';
  } else {
    backtest.result = null;
    el.backtestStatus.textContent = r.status === 404 || r.status === 405 ? R.backtestUnavailable : R.backtestFailed(r.error);
    el.backtestStatus.dataset.ok = 'false';
    if (r.body && Array.isArray(r.body.diagnostics)) {
      page.diagnostics = r.body.diagnostics;
      renderEditor(page);
    }
  }
  renderBacktest(page);
  renderStatus(page);
}

function renderBacktest(page) {
  const { el, backtest } = page;
  const Sx = S(page);
  const result = backtest.result;
  el.backtestChart.hidden = !result;
  el.backtestSummary.hidden = !result;
  if (!result) return;
  const e = escapeHtml;
  el.backtestSummary.querySelector('tbody').innerHTML = (result.summary ?? [])
    .map(
      (s) =>
        `<tr data-testid="backtest-rule" data-rule="${e(s.rule)}"><td><code>${e(s.rule)}</code></td><td class="num" data-testid="backtest-alerts">${e(
          s.alerts,
        )}</td><td class="num">${e(formatDuration(s.active_ms))}</td><td class="num">${e(formatDuration(s.longest_ms))}</td></tr>`,
    )
    .join('');
  const echarts = echartsGlobal(page.win);
  if (!echarts) return;
  const rows = new Set((result.alerts ?? []).map((a) => `${a.rule}|${a.key}`)).size;
  el.backtestChart.style.height = `${Math.min(480, Math.max(140, rows * 22 + 50))}px`;
  if (backtest.chart && backtest.chartLang !== page.shell.lang) {
    backtest.chart.dispose();
    backtest.chart = null;
  }
  if (!backtest.chart) {
    backtest.chart = echarts.init(el.backtestChart, null, { locale: Sx.echartsLocale });
    backtest.chartLang = page.shell.lang;
  }
  backtest.chart.resize();
  backtest.chart.setOption(backtestOption({ S: Sx, result, timeZone: page.timeZone }), { notMerge: true });
}

// -------------------------------------------------------------------- boot

function bind(page) {
  const { el } = page;
  el.input.addEventListener('input', () => {
    page.el.publishMessage.textContent = '';
    // Marks stay where they were until the check answers; the text is redrawn now.
    renderEditor(page);
    scheduleCheck(page);
  });
  el.input.addEventListener('scroll', () => syncScroll(page));
  el.input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Tab' && !ev.shiftKey && !ev.ctrlKey && !ev.metaKey) {
      ev.preventDefault();
      el.input.setRangeText('  ', el.input.selectionStart, el.input.selectionEnd, 'end');
      el.input.dispatchEvent(new Event('input'));
    }
  });
  el.diagnostics.addEventListener('click', (ev) => {
    const li = ev.target.closest('[data-testid="diagnostic"]');
    if (!li || li.dataset.other) return;
    const at = offsetOf(el.input.value, Number(li.dataset.line), Number(li.dataset.column));
    el.input.focus();
    el.input.setSelectionRange(at, at);
  });
  el.table.addEventListener('click', (ev) => {
    const b = ev.target.closest('[data-rule]');
    if (b) openRule(page, b.dataset.rule);
  });
  el.newRule.addEventListener('click', () => {
    page.current = null;
    setText(page, NEW_RULE_TEMPLATE);
    renderRuleList(page);
  });
  el.publish.addEventListener('click', () => publish(page));
  el.run.addEventListener('click', () => runBacktest(page));
  page.win.addEventListener('resize', () => {
    if (page.backtest.chart) page.backtest.chart.resize();
    renderBubbles(page);
  });
  page.win.addEventListener('hashchange', () => openFromHash(page));
}

function openFromHash(page) {
  const m = /(?:^#|&)rule=([^&]+)/.exec(page.win.location.hash);
  if (m) openRule(page, decodeURIComponent(m[1]));
}

/** Starts the rule page in a browser window. */
export function boot(win = globalThis) {
  const page = createPage(win);
  page.shell = createShell(win, {
    onLanguage: () => {
      renderRuleList(page);
      renderEditor(page);
      renderBacktest(page);
      page.el.timeZone.textContent = S(page).timeZone(page.timeZone);
    },
    onPrincipal: () => renderStatus(page),
    onToken: () => {
      loadRules(page);
      scheduleCheck(page, 0);
    },
  });
  bind(page);
  page.shell.setLanguage(page.shell.lang);
  page.shell.refreshWho().then(() => renderStatus(page));
  loadRules(page).then(() => {
    if (/rule=/.test(win.location.hash)) openFromHash(page);
    else if (!page.el.input.value) setText(page, NEW_RULE_TEMPLATE);
  });
  return page;
}

if (typeof window !== 'undefined' && typeof document !== 'undefined' && document.body?.classList.contains('page-rules')) {
  window.jingzhiRules = boot(window);
}

