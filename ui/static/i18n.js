// 京智 · Jingzhi — every UI string in Chinese (the default) and English,
// and the formatting of times, ages and numbers.
//
// Pure: no DOM, no I/O. Times are shown in the operator's time zone (the
// browser's, through Intl) as `YYYY-MM-DD HH:mm:ss`, which reads the same
// in both languages.

/** Severities, most severe first. */
export const SEVERITIES = Object.freeze(['red', 'orange', 'yellow', 'blue']);

/** Operator states of an alert, as lists show them. */
export const STATES = Object.freeze(['new', 'acknowledged', 'assigned', 'silenced', 'resolved', 'false_alarm']);

const zh = {
  htmlLang: 'zh-CN',
  echartsLocale: 'ZH',
  title: '京智 · Jingzhi 城市风险实时研判',
  rulesTitle: '京智 · 规则编写',
  tagline: '城市风险实时研判',
  nav: { dashboard: '监测预警', rules: '规则编写' },
  language: '语言',
  conn: { connecting: '连接中', open: '已连接', closed: '已断开' },
  reconnectIn: (s) => `${s} 秒后重连`,
  resumed: '已续传',
  lastUpdate: '最近更新',
  clockEvent: '事件时钟',
  clockWall: '本地时间',
  clockStatusFailed: '无法获取引擎状态',
  timeZone: (z) => `时区 ${z}`,
  severity: { red: '红色', orange: '橙色', yellow: '黄色', blue: '蓝色' },
  severityShort: { red: '红', orange: '橙', yellow: '黄', blue: '蓝' },
  severityUnknown: '未知',
  state: {
    new: '新预警',
    acknowledged: '已确认',
    assigned: '已指派',
    silenced: '已静默',
    resolved: '已处置',
    false_alarm: '误报',
  },
  countsHeading: '预警统计',
  tileHint: (sev) => `只看${sev}预警(再次点击取消)`,
  byDistrict: '各区预警',
  timeline: '预警趋势',
  timelineRaised: '新增',
  timelineCleared: '解除',
  timelineNote: (h) => `近 ${h} 小时 · 解除数自本页打开起`,
  timelineNoteRecorded: (h) => `近 ${h} 小时 · 含服务端记录的新增与解除`,
  mapHeading: '城市风险地图',
  mapUnavailable: '地图组件未加载',
  mapHint: '点击区或网格筛选列表',
  listHeading: '活动预警',
  total: (n) => `共 ${n} 条`,
  shown: (n, total) => `显示 ${n} / ${total} 条`,
  filters: '筛选',
  filterAll: '全部',
  filterDistrict: '区',
  filterSeverity: '级别',
  filterRule: '规则',
  filterState: '状态',
  filterCell: (c) => `网格 ${c}`,
  clearFilters: '清除筛选',
  empty: '当前无活动预警',
  emptyFiltered: '没有符合筛选条件的预警',
  waiting: '等待数据…',
  stale: '连接已断开,列表为断开前的数据',
  cell: (c) => `网格 ${c}`,
  noDistrict: '(无区)',
  age: {
    s: (n) => `${n} 秒`,
    m: (n) => `${n} 分钟`,
    h: (h, m) => `${h} 小时 ${m} 分`,
    d: (d, h) => `${d} 天 ${h} 小时`,
  },
  sound: '红色预警提示音',
  soundOn: '提示音:开',
  soundOff: '提示音:关',
  user: {
    signIn: '登录',
    signOut: '退出',
    signedInAs: (n) => `${n}`,
    open: '未启用访问控制',
    anonymous: '未登录',
    tokenLabel: '访问令牌',
    tokenHint: '粘贴管理员发放的令牌(演示程序启动时会打印)',
    submit: '登录',
    cancel: '取消',
    invalid: '令牌无效',
    needed: '请登录后查看预警',
    roles: { operator: '值班员', author: '规则编写', admin: '管理员', ingest: '数据接入' },
    districts: (d) => `辖区 ${d}`,
  },
  detail: {
    heading: '预警详情',
    close: '关闭',
    rule: '规则',
    message: '消息',
    key: '分组键',
    place: '位置',
    started: '开始',
    updated: '更新',
    cleared: '已解除',
    clearedAt: (t) => `该预警已于 ${t} 解除`,
    id: '编号',
    state: '处置状态',
    values: '当前数值',
    summary: '证据摘要',
    evidence: '证据(触发依据)',
    term: '项',
    stream: '数据流',
    aggregate: '聚合',
    window: '窗口',
    count: '样本',
    min: '最小',
    max: '最大',
    avg: '平均',
    last: '最新',
    none: '无',
    labels: '标签',
    acknowledgedBy: (who, t) => `${who} 于 ${t} 确认`,
    assignedTo: (who, t) => `指派给 ${who}(${t})`,
    resolvedBy: (who, t) => `${who} 于 ${t} 处置`,
    falseAlarmBy: (who, t) => `${who} 于 ${t} 标记为误报`,
    lastComment: '最新批注',
    reopened: (n) => `重新触发 ${n} 次`,
    incident: (n) => `事件 #${n}`,
    silencedBy: (ids) => `被静默规则 ${ids} 覆盖`,
    history: '历史',
    historyUnavailable: '历史暂不可用',
    historyLoading: '正在加载历史…',
    changes: '变化',
    actions: '处置记录',
    kind: { raised: '触发', updated: '更新', cleared: '解除' },
    action: {
      acknowledge: '确认',
      assign: '指派',
      comment: '批注',
      resolve: '处置完毕',
      false_alarm: '误报',
      'false-alarm': '误报',
      silence: '静默',
    },
  },
  act: {
    heading: '处置',
    acknowledge: '确认',
    assign: '指派',
    assignTo: '指派给(人员或班组)',
    comment: '批注',
    commentText: '批注内容',
    resolve: '处置完毕',
    falseAlarm: '标记误报',
    note: '备注(可选)',
    silence: '静默',
    silenceScope: '范围',
    scopeRuleCell: '本规则 · 本网格',
    scopeRuleDistrict: '本规则 · 本区',
    scopeRule: '本规则 · 全市',
    silenceFor: '时长',
    untilCleared: '直到解除',
    reason: '原因(必填)',
    noRole: '当前角色不能处置预警',
    done: '已提交',
    failed: (m) => `操作失败:${m}`,
    forbidden: '无权执行此操作',
    needReason: '请填写原因',
    needTo: '请填写指派对象',
    needText: '请填写批注内容',
  },
  info: (s) => `规则 ${s.rules} · 工作线程 ${s.workers} · v${s.version}`,
  attribution: '图表:Apache ECharts(Apache-2.0)',
  attributionMap: '图表与区界数据:Apache ECharts(Apache-2.0)',
  rules: {
    heading: '规则',
    newRule: '新建规则',
    name: '名称',
    titleCol: '标题',
    severity: '级别',
    version: '版本',
    fired: '触发次数',
    falseRatio: '误报率',
    statsSince: '近 7 天',
    noStats: '暂无统计',
    none: '尚无规则',
    loadFailed: '无法加载规则列表',
    editor: '编辑',
    editorHint: '输入规则文本;错误会随输入即时标注在对应行列',
    checking: '检查中…',
    valid: '检查通过',
    errors: (n) => `${n} 个错误`,
    warnings: (n) => `${n} 个警告`,
    at: (l, c) => `第 ${l} 行第 ${c} 列`,
    otherFile: (f) => `(在 ${f} 中)`,
    defines: (names) => `定义:${names}`,
    publish: '发布',
    publishing: '发布中…',
    published: (name, v, change) =>
      `${name} ${change === 'created' ? '已创建' : change === 'updated' ? '已更新' : '未变化'}(版本 ${v})`,
    publishOne: '一次发布一条规则:文本中应只定义一条规则',
    publishFailed: (m) => `发布失败:${m}`,
    needAuthor: '需要“规则编写”角色才能检查、回测和发布规则',
    backtest: '回测',
    backtestHint: '选择录制的事件文件(NDJSON),看这些规则会在何时触发哪些预警',
    eventsFile: '事件文件',
    run: '运行回测',
    running: '回测中…',
    backtestFailed: (m) => `回测失败:${m}`,
    backtestUnavailable: '服务器尚未提供回测接口',
    result: (n, ev, rej) => `${ev} 条事件(${rej} 条无法读取)· ${n} 条预警`,
    alertsCol: '预警数',
    activeCol: '累计时长',
    longestCol: '最长',
    raisedCol: '触发',
    clearedCol: '解除',
    keyCol: '键',
    activeAtEnd: '结束时仍活动',
    noEvents: '请先选择事件文件',
    history: '版本历史',
  },
};

const en = {
  htmlLang: 'en',
  echartsLocale: 'EN',
  title: 'Jingzhi · real-time city risk assessment',
  rulesTitle: 'Jingzhi · rule authoring',
  tagline: 'real-time city risk assessment',
  nav: { dashboard: 'Monitoring', rules: 'Rules' },
  language: 'Language',
  conn: { connecting: 'Connecting', open: 'Connected', closed: 'Disconnected' },
  reconnectIn: (s) => `retry in ${s} s`,
  resumed: 'resumed',
  lastUpdate: 'last update',
  clockEvent: 'Event clock',
  clockWall: 'Local time',
  clockStatusFailed: 'engine status unavailable',
  timeZone: (z) => `time zone ${z}`,
  severity: { red: 'Red', orange: 'Orange', yellow: 'Yellow', blue: 'Blue' },
  severityShort: { red: 'R', orange: 'O', yellow: 'Y', blue: 'B' },
  severityUnknown: 'Unknown',
  state: {
    new: 'New',
    acknowledged: 'Acknowledged',
    assigned: 'Assigned',
    silenced: 'Silenced',
    resolved: 'Resolved',
    false_alarm: 'False alarm',
  },
  countsHeading: 'Alerts by severity',
  tileHint: (sev) => `Show only ${sev} alerts (click again to clear)`,
  byDistrict: 'By district',
  timeline: 'Raised and cleared',
  timelineRaised: 'raised',
  timelineCleared: 'cleared',
  timelineNote: (h) => `last ${h} hours · clears counted since this page opened`,
  timelineNoteRecorded: (h) => `last ${h} hours · raised and cleared as recorded by the server`,
  mapHeading: 'City risk map',
  mapUnavailable: 'map component not loaded',
  mapHint: 'click a district or a cell to filter the list',
  listHeading: 'Active alerts',
  total: (n) => `${n} total`,
  shown: (n, total) => `${n} of ${total} shown`,
  filters: 'Filters',
  filterAll: 'All',
  filterDistrict: 'District',
  filterSeverity: 'Severity',
  filterRule: 'Rule',
  filterState: 'State',
  filterCell: (c) => `cell ${c}`,
  clearFilters: 'Clear filters',
  empty: 'No active alerts',
  emptyFiltered: 'No alerts match the filters',
  waiting: 'Waiting for data…',
  stale: 'Disconnected: the list shows the data from before',
  cell: (c) => `cell ${c}`,
  noDistrict: '(no district)',
  age: {
    s: (n) => `${n} s`,
    m: (n) => `${n} min`,
    h: (h, m) => `${h} h ${m} min`,
    d: (d, h) => `${d} d ${h} h`,
  },
  sound: 'Sound for red alerts',
  soundOn: 'Sound: on',
  soundOff: 'Sound: off',
  user: {
    signIn: 'Sign in',
    signOut: 'Sign out',
    signedInAs: (n) => `${n}`,
    open: 'access control off',
    anonymous: 'not signed in',
    tokenLabel: 'API token',
    tokenHint: 'paste the token you were given (the demo prints them at start)',
    submit: 'Sign in',
    cancel: 'Cancel',
    invalid: 'invalid token',
    needed: 'Sign in to see the alerts',
    roles: { operator: 'operator', author: 'rule author', admin: 'admin', ingest: 'ingest' },
    districts: (d) => `districts ${d}`,
  },
  detail: {
    heading: 'Alert detail',
    close: 'Close',
    rule: 'Rule',
    message: 'Message',
    key: 'Key',
    place: 'Place',
    started: 'Started',
    updated: 'Updated',
    cleared: 'Cleared',
    clearedAt: (t) => `This alert cleared at ${t}`,
    id: 'ID',
    state: 'State',
    values: 'Current values',
    summary: 'Evidence summary',
    evidence: 'Evidence (why it fired)',
    term: 'Term',
    stream: 'Stream',
    aggregate: 'Aggregate',
    window: 'Window',
    count: 'n',
    min: 'min',
    max: 'max',
    avg: 'avg',
    last: 'last',
    none: 'none',
    labels: 'Labels',
    acknowledgedBy: (who, t) => `acknowledged by ${who} at ${t}`,
    assignedTo: (who, t) => `assigned to ${who} (${t})`,
    resolvedBy: (who, t) => `resolved by ${who} at ${t}`,
    falseAlarmBy: (who, t) => `marked false alarm by ${who} at ${t}`,
    lastComment: 'Latest comment',
    reopened: (n) => `reopened ${n}×`,
    incident: (n) => `incident #${n}`,
    silencedBy: (ids) => `covered by silence ${ids}`,
    history: 'History',
    historyUnavailable: 'history unavailable',
    historyLoading: 'loading history…',
    changes: 'Changes',
    actions: 'Actions',
    kind: { raised: 'raised', updated: 'updated', cleared: 'cleared' },
    action: {
      acknowledge: 'acknowledged',
      assign: 'assigned',
      comment: 'comment',
      resolve: 'resolved',
      false_alarm: 'false alarm',
      'false-alarm': 'false alarm',
      silence: 'silenced',
    },
  },
  act: {
    heading: 'Actions',
    acknowledge: 'Acknowledge',
    assign: 'Assign',
    assignTo: 'Assign to (person or team)',
    comment: 'Comment',
    commentText: 'Comment',
    resolve: 'Resolve',
    falseAlarm: 'False alarm',
    note: 'Note (optional)',
    silence: 'Silence',
    silenceScope: 'Scope',
    scopeRuleCell: 'this rule · this cell',
    scopeRuleDistrict: 'this rule · this district',
    scopeRule: 'this rule · whole city',
    silenceFor: 'For',
    untilCleared: 'until cleared',
    reason: 'Reason (required)',
    noRole: 'Your role cannot act on alerts',
    done: 'Done',
    failed: (m) => `Failed: ${m}`,
    forbidden: 'You may not do this',
    needReason: 'Give a reason',
    needTo: 'Say whom to assign it to',
    needText: 'Write the comment',
  },
  info: (s) => `${s.rules} rules · ${s.workers} workers · v${s.version}`,
  attribution: 'Charts: Apache ECharts (Apache-2.0)',
  attributionMap: 'Charts and district boundaries: Apache ECharts (Apache-2.0)',
  rules: {
    heading: 'Rules',
    newRule: 'New rule',
    name: 'Name',
    titleCol: 'Title',
    severity: 'Severity',
    version: 'Version',
    fired: 'Fired',
    falseRatio: 'False alarms',
    statsSince: 'last 7 days',
    noStats: 'no statistics yet',
    none: 'No rules yet',
    loadFailed: 'cannot load the rules',
    editor: 'Edit',
    editorHint: 'Type rule text; errors are marked at their line and column as you type',
    checking: 'checking…',
    valid: 'checks',
    errors: (n) => `${n} error${n === 1 ? '' : 's'}`,
    warnings: (n) => `${n} warning${n === 1 ? '' : 's'}`,
    at: (l, c) => `line ${l}, column ${c}`,
    otherFile: (f) => `(in ${f})`,
    defines: (names) => `defines: ${names}`,
    publish: 'Publish',
    publishing: 'publishing…',
    published: (name, v, change) => `${name} ${change} (version ${v})`,
    publishOne: 'Publish one rule at a time: the text must define exactly one rule',
    publishFailed: (m) => `Publishing failed: ${m}`,
    needAuthor: 'Checking, backtesting and publishing rules need the rule-author role',
    backtest: 'Backtest',
    backtestHint: 'Pick a recorded event file (NDJSON) to see which alerts these rules would have raised, and when',
    eventsFile: 'Event file',
    run: 'Run backtest',
    running: 'running…',
    backtestFailed: (m) => `Backtest failed: ${m}`,
    backtestUnavailable: 'the server does not offer backtests yet',
    result: (n, ev, rej) => `${ev} events (${rej} unreadable) · ${n} alerts`,
    alertsCol: 'Alerts',
    activeCol: 'Active',
    longestCol: 'Longest',
    raisedCol: 'Raised',
    clearedCol: 'Cleared',
    keyCol: 'Key',
    activeAtEnd: 'active at end',
    noEvents: 'Pick an event file first',
    history: 'Versions',
  },
};

/** Every UI string, keyed by language. Functions take the varying parts. */
export const STRINGS = Object.freeze({ zh, en });

export const LANGUAGES = Object.freeze(Object.keys(STRINGS));

/** The strings of `lang`, falling back to Chinese. */
export function strings(lang) {
  return LANGUAGES.includes(lang) ? STRINGS[lang] : STRINGS.zh;
}

/** Looks up a dotted key ("detail.rule") in a string table. */
export function lookup(S, key) {
  return key.split('.').reduce((o, k) => (o == null ? o : o[k]), S);
}

// ------------------------------------------------------------- severities

const SEVERITY_RANK = new Map([
  ['red', 4],
  ['orange', 3],
  ['yellow', 2],
  ['blue', 1],
]);

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

/** The warning colours, as the map and charts draw them. */
export const SEVERITY_COLOURS = Object.freeze({
  red: '#e5302a',
  orange: '#f28a17',
  yellow: '#f2c200',
  blue: '#2f7de1',
});

// -------------------------------------------------------------- formatting

/** A number for people: up to 3 decimals; null (empty window) as a dash. */
export function formatNumber(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v !== 'number') return String(v);
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toFixed(3)));
}

/** A ratio 0–1 as a percentage ("12.5%"), or a dash. */
export function formatPercent(v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '—';
  return `${Number((v * 100).toFixed(1))}%`;
}

const formatters = new Map();

function partsFormatter(timeZone) {
  const key = timeZone ?? '';
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(key, f);
  }
  return f;
}

/**
 * An epoch-ms instant in the operator's time zone (the browser's, or
 * `timeZone`): `HH:mm:ss`, or with `withDate` `YYYY-MM-DD HH:mm:ss`.
 */
export function formatTime(ms, withDate = false, timeZone = undefined) {
  if (!Number.isFinite(ms)) return '—';
  const parts = {};
  for (const p of partsFormatter(timeZone).formatToParts(new Date(ms))) parts[p.type] = p.value;
  const hour = parts.hour === '24' ? '00' : parts.hour;
  const time = `${hour}:${parts.minute}:${parts.second}`;
  if (!withDate) return time;
  return `${parts.year}-${parts.month}-${parts.day} ${time}`;
}

/** The operator's time zone name ("Asia/Shanghai"). */
export function localTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/** How long ago, from milliseconds: "45 秒", "3 分钟", "2 小时 5 分". */
export function formatAge(ms, S = STRINGS.zh) {
  if (!Number.isFinite(ms)) return '—';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return S.age.s(s);
  const m = Math.floor(s / 60);
  if (m < 60) return S.age.m(m);
  const h = Math.floor(m / 60);
  if (h < 24) return S.age.h(h, m % 60);
  return S.age.d(Math.floor(h / 24), h % 24);
}

/** A duration in ms as "1h 5m", "12m", "40s". */
export function formatDuration(ms) {
  if (!Number.isFinite(ms)) return '—';
  let s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (h) return m ? `${h}h ${m}m` : `${h}h`;
  if (m) return s ? `${m}m ${s}s` : `${m}m`;
  return `${s}s`;
}

const HTML_ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text made safe for HTML content and attribute values. */
export function escapeHtml(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}
