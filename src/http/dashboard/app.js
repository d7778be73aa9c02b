// The dendrite dashboard: plain JavaScript, no build step. Everything it shows comes from the
// service's own /v1 API on the same origin; the page is served with
// `Content-Security-Policy: default-src 'self'`, so nothing here uses inline scripts, inline
// style attributes or eval. Untrusted text (space, neuron and pattern names, error details) is
// only ever set with textContent.
(function () {
  'use strict';

  const POLL_MS = 2000;
  const HISTORY_SECONDS = 300;
  const NEURONS_PAGE = 50;
  const SEGMENTS_LIMIT = 100;
  const REPORT_CONCURRENCY = 4;
  const THEORY_CONCURRENCY = 3;
  const MAX_CURVE_POINTS = 60;
  const MISS_POINTS = 20;
  const KEY_STORAGE = 'dendrite.apiKey';

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- the API

  class ApiError extends Error {
    constructor(status, problem) {
      const title = (problem && problem.title) || (status ? 'HTTP ' + status : 'Network error');
      super(title);
      this.status = status;
      this.problem = problem || {};
    }
  }

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || '';
    } catch (e) {
      return '';
    }
  }

  function storeKey(key) {
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch (e) {
      // Storage refused (a private mode): the key then lasts until the page is closed.
    }
    memoryKey = key;
    $('key-clear').hidden = !key;
  }

  let memoryKey = storedKey();

  async function api(method, path, body) {
    const headers = { accept: 'application/json, application/problem+json' };
    const key = memoryKey;
    if (key) headers.authorization = 'Bearer ' + key;
    const init = { method, headers, cache: 'no-store', credentials: 'same-origin' };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, { title: 'The service did not answer', detail: String(e && e.message || e) });
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    if (!response.ok) {
      const problem = data && typeof data === 'object'
        ? data
        : { title: response.statusText || 'HTTP ' + response.status, detail: text.slice(0, 300) };
      if (response.status === 401) askForKey(Boolean(key));
      throw new ApiError(response.status, problem);
    }
    keyAccepted();
    return data;
  }

  const enc = encodeURIComponent;

  // Runs fn over items with at most `limit` calls in flight; stops starting new ones once
  // isStale() says the answers are no longer wanted.
  async function eachLimited(items, limit, fn, isStale) {
    let next = 0;
    async function worker() {
      while (next < items.length && !isStale()) {
        const i = next++;
        await fn(items[i], i);
      }
    }
    const workers = [];
    for (let w = 0; w < Math.min(limit, items.length); w++) workers.push(worker());
    await Promise.all(workers);
  }

  // ---------------------------------------------------------------- formatting

  const intFormat = new Intl.NumberFormat('en-US');

  function fmtInt(n) {
    return n == null ? '–' : intFormat.format(n);
  }

  function fmtNum(x, digits) {
    if (x == null || !isFinite(x)) return '–';
    if (x === 0) return '0';
    const abs = Math.abs(x);
    if (abs >= 1e6 || abs < 1e-3) {
      const { mantissa, exponent } = splitLog10(Math.log10(abs));
      return (x < 0 ? '-' : '') + Number(mantissa.toPrecision(digits || 3)) + '×10' + superscript(exponent);
    }
    return String(Number(x.toPrecision(digits || 3)));
  }

  function fmtBytes(n) {
    if (n == null) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = n;
    let u = 0;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return (u === 0 ? String(v) : v.toFixed(v < 10 ? 2 : 1)) + ' ' + units[u];
  }

  function fmtMs(ms) {
    if (ms == null) return '–';
    return (ms < 1 ? ms.toPrecision(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)) + ' ms';
  }

  const SUPERSCRIPT = { '-': '⁻', '0': '⁰', '1': '¹', '2': '²', '3': '³', '4': '⁴', '5': '⁵', '6': '⁶', '7': '⁷', '8': '⁸', '9': '⁹' };

  function superscript(text) {
    return String(text).replace(/[-0-9]/g, (c) => SUPERSCRIPT[c]);
  }

  // A power of ten as plain text for canvas labels: 10⁻¹², or 3.2×10⁻¹² off the integers.
  function powText(log10) {
    if (log10 == null || !isFinite(log10)) return '0';
    if (Math.abs(log10 - Math.round(log10)) < 1e-9) return '10' + superscript(Math.round(log10));
    return probText(log10);
  }

  function splitLog10(log10) {
    let exponent = Math.floor(log10);
    let mantissa = Math.pow(10, log10 - exponent);
    if (mantissa >= 9.995) {
      mantissa = 1;
      exponent += 1;
    }
    return { mantissa, exponent };
  }

  // A probability from its log10, as text: 2.25×10⁻²³; exactly 0 when log10 is null.
  function probText(log10) {
    if (log10 == null) return '0';
    const { mantissa, exponent } = splitLog10(log10);
    if (exponent === 0) return mantissa.toFixed(2);
    return mantissa.toFixed(2) + '×10' + superscript(exponent);
  }

  // The same as an element (a <sup> for the exponent), with the exact value as a tooltip.
  function probNode(p) {
    const span = document.createElement('span');
    span.className = 'prob';
    if (!p || p.log10 == null) {
      span.textContent = p && p.value === 0 ? '0' : '–';
      if (p && p.value === 0) span.title = 'exactly 0';
      return span;
    }
    const { mantissa, exponent } = splitLog10(p.log10);
    if (exponent === 0) {
      span.textContent = mantissa.toFixed(2);
    } else {
      span.append(mantissa.toFixed(2) + ' × 10');
      const sup = document.createElement('sup');
      sup.textContent = String(exponent);
      span.append(sup);
    }
    span.title = 'value ' + p.value + ', log10 ' + p.log10;
    return span;
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v == null) continue;
        if (k === 'className') node.className = v;
        else if (k === 'text') node.textContent = v;
        else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v);
      }
    }
    for (const c of children) {
      if (c == null) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  function td(content, className) {
    return el('td', { className }, content);
  }

  function showProblem(box, err) {
    if (!err) {
      box.hidden = true;
      box.textContent = '';
      return;
    }
    const p = err.problem || {};
    box.textContent = '';
    const head = el('strong', { text: (err.status ? err.status + ' ' : '') + (p.title || err.message || 'Error') });
    box.append(head);
    const extra = [];
    if (p.detail) extra.push(p.detail);
    if (p.field) extra.push('field: ' + p.field);
    if (p.index != null) extra.push('item: ' + p.index);
    if (extra.length) box.append(' — ' + extra.join('; '));
    box.hidden = false;
  }

  function setStatus(text, bad) {
    const s = $('status');
    s.textContent = text;
    s.classList.toggle('bad', Boolean(bad));
  }

  // ---------------------------------------------------------------- API keys

  function askForKey(wasRefused) {
    const form = $('key-form');
    $('key-why').textContent = wasRefused
      ? 'The service refused this API key (401). Enter another one.'
      : 'This service needs an API key (401).';
    if (form.hidden) {
      form.hidden = false;
      $('key-input').focus();
    }
    setStatus('API key needed', true);
  }

  function keyAccepted() {
    const form = $('key-form');
    if (!form.hidden && memoryKey) form.hidden = true;
  }

  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const key = $('key-input').value.trim();
    if (!key) return;
    storeKey(key);
    $('key-input').value = '';
    $('key-form').hidden = true;
    setStatus('trying the key…');
    pollNow();
    if (state.space) selectSpace(state.space, true);
  });

  function forgetKey() {
    storeKey('');
    $('key-input').value = '';
    pollNow();
  }

  $('key-forget').addEventListener('click', forgetKey);
  $('key-clear').addEventListener('click', forgetKey);
  $('key-clear').hidden = !memoryKey;

  // ---------------------------------------------------------------- charts

  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  function palette() {
    return {
      text: cssVar('--text', '#1d2330'),
      muted: cssVar('--muted', '#5b6474'),
      grid: cssVar('--grid', 'rgba(0,0,0,0.08)'),
      c1: cssVar('--series-1', '#2563eb'),
      c2: cssVar('--series-2', '#d97706'),
      c3: cssVar('--series-3', '#059669'),
      c4: cssVar('--series-4', '#dc2626'),
    };
  }

  function axis(colors, extra) {
    return Object.assign({
      stroke: colors.muted,
      grid: { stroke: colors.grid, width: 1 },
      ticks: { stroke: colors.grid, width: 1 },
      font: '11px system-ui, sans-serif',
      labelFont: '12px system-ui, sans-serif',
    }, extra);
  }

  function chartHeight(container) {
    return container.clientWidth < 480 ? 200 : 240;
  }

  // One uPlot chart in a container, resized with it; `build` gives the options for a width.
  class ChartSlot {
    constructor(container) {
      this.container = container;
      this.plot = null;
      this.observer = new ResizeObserver(() => this.resize());
      this.observer.observe(container);
    }

    set(options, data) {
      this.clear();
      if (typeof uPlot !== 'function') {
        this.container.textContent = 'The chart library did not load.';
        return;
      }
      const width = Math.max(160, this.container.clientWidth || 300);
      const opts = Object.assign({ width, height: chartHeight(this.container) }, options);
      this.plot = new uPlot(opts, data, this.container);
    }

    setData(data) {
      if (this.plot) this.plot.setData(data);
    }

    resize() {
      if (!this.plot) return;
      const width = Math.max(160, this.container.clientWidth);
      const height = chartHeight(this.container);
      if (width !== this.plot.width || height !== this.plot.height) this.plot.setSize({ width, height });
    }

    clear() {
      if (this.plot) this.plot.destroy();
      this.plot = null;
      this.container.textContent = '';
    }
  }

  // Dashed markers drawn over a chart: vertical ones at x values, each with a label.
  function markersPlugin(marks) {
    return {
      hooks: {
        draw: [(u) => {
          const ctx = u.ctx;
          const px = (typeof uPlot === 'function' && uPlot.pxRatio) || window.devicePixelRatio || 1;
          ctx.save();
          ctx.lineWidth = 1.5 * px;
          ctx.setLineDash([5 * px, 4 * px]);
          ctx.font = Math.round(11 * px) + 'px system-ui, sans-serif';
          for (const m of marks) {
            if (m.x == null) continue;
            const x = Math.round(u.valToPos(m.x, 'x', true));
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            ctx.strokeStyle = m.color;
            ctx.fillStyle = m.color;
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            const right = x + ctx.measureText(m.label).width + 8 * px < u.bbox.left + u.bbox.width;
            ctx.textAlign = right ? 'left' : 'right';
            ctx.fillText(m.label, x + (right ? 4 : -4) * px, u.bbox.top + 12 * px);
          }
          ctx.restore();
        }],
      },
    };
  }

  // An axis as wide as its longest tick label (uPlot calls this with the labels it made).
  function fitSize(minimum) {
    return (u, values) => {
      if (!values || !values.length) return minimum;
      const longest = Math.max(...values.map((v) => String(v == null ? '' : v).length));
      return Math.max(minimum, Math.ceil(longest * 6.6) + 16);
    };
  }

  const log10Axis = (colors, label) => axis(colors, {
    label,
    size: fitSize(44),
    incrs: [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500],
    values: (u, splits) => splits.map((v) => powText(v)),
  });

  // A legend's value: '–' while the cursor is off the chart, else the formatted value.
  const legend = (format) => (u, v) => (u.cursor.idx == null ? '–' : format(v));
  const probLegend = legend((v) => (v == null ? '0' : probText(v)));

  // Clock times on the service charts' x axis: a tick every minute or more, labelled HH:MM.
  const clock = (t, seconds) => new Date(t * 1000).toLocaleTimeString([], seconds
    ? { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false }
    : { hour: '2-digit', minute: '2-digit', hour12: false });
  const timeAxis = (colors) => axis(colors, {
    incrs: [60, 120, 300, 600],
    values: (u, splits) => splits.map((t) => clock(t, false)),
  });
  const timeSeries = { label: 'time', value: (u, v) => (v == null ? '–' : clock(v, true)) };

  // The service charts show the last HISTORY_SECONDS, ending at the latest poll.
  const timeWindow = () => {
    const last = samples.t.length ? samples.t[samples.t.length - 1] : Date.now() / 1000;
    return [last - HISTORY_SECONDS, last];
  };

  // ---------------------------------------------------------------- service statistics

  const samples = { t: [], qps: [], sps: [], qp99: [], sp99: [] };
  let previous = null;
  let rateChart = null;
  let latencyChart = null;
  let pollTimer = null;
  let polling = false;

  function initServiceCharts() {
    const colors = palette();
    rateChart = new ChartSlot($('chart-rates'));
    rateChart.set({
      scales: { x: { time: true, range: timeWindow }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
      series: [
        timeSeries,
        { label: 'queries/s', stroke: colors.c1, width: 2, value: legend((v) => (v == null ? '–' : fmtNum(v))) },
        { label: 'stores/s', stroke: colors.c2, width: 2, value: legend((v) => (v == null ? '–' : fmtNum(v))) },
      ],
      axes: [timeAxis(colors), axis(colors, { size: fitSize(40), values: (u, s) => s.map((v) => fmtNum(v)) })],
    }, [[], [], []]);
    latencyChart = new ChartSlot($('chart-latency'));
    latencyChart.set({
      scales: { x: { time: true, range: timeWindow }, y: { range: (u, min, max) => [0, Math.max(1, (max || 0) * 1.1)] } },
      series: [
        timeSeries,
        { label: 'query p99', stroke: colors.c1, width: 2, points: { show: true, size: 4 }, value: legend(fmtMs) },
        { label: 'store p99', stroke: colors.c2, width: 2, points: { show: true, size: 4 }, value: legend(fmtMs) },
      ],
      axes: [timeAxis(colors), axis(colors, { size: fitSize(40), values: (u, s) => s.map((v) => fmtNum(v)) })],
    }, [[], [], []]);
  }

  function recordSample(stats) {
    const now = Date.now() / 1000;
    let qps = null;
    let sps = null;
    if (previous) {
      const dt = now - previous.t;
      if (dt > 0 && stats.queries >= previous.queries && stats.stores >= previous.stores) {
        qps = (stats.queries - previous.queries) / dt;
        sps = (stats.stores - previous.stores) / dt;
      }
    }
    previous = { t: now, queries: stats.queries, stores: stats.stores };
    samples.t.push(now);
    samples.qps.push(qps);
    samples.sps.push(sps);
    samples.qp99.push(stats.query_latency ? stats.query_latency.p99_ms : null);
    samples.sp99.push(stats.store_latency ? stats.store_latency.p99_ms : null);
    while (samples.t.length && samples.t[0] < now - HISTORY_SECONDS) {
      for (const k of Object.keys(samples)) samples[k].shift();
    }
    rateChart.setData([samples.t.slice(), samples.qps.slice(), samples.sps.slice()]);
    latencyChart.setData([samples.t.slice(), samples.qp99.slice(), samples.sp99.slice()]);
  }

  function showStats(stats) {
    $('version').textContent = stats.version ? 'version ' + stats.version : 'version unknown';
    $('stat-spaces').textContent = fmtInt(stats.spaces);
    $('stat-neurons').textContent = fmtInt(stats.neurons);
    $('stat-segments').textContent = fmtInt(stats.segments);
    $('stat-patterns').textContent = fmtInt(stats.patterns);
    $('stat-synapses').textContent = fmtInt(stats.synapses);
    $('stat-memory').textContent = fmtBytes(stats.memory_bytes)
      + (stats.memory_limit ? ' of ' + fmtBytes(stats.memory_limit) : '');
    $('stat-backend').textContent = stats.backend ? stats.backend + ' database' : 'database';
    $('stat-database').textContent = fmtBytes(stats.database_bytes);
    // Replicas on PostgreSQL follow each other's writes: how far behind this one is matters.
    $('stat-sequence').textContent = fmtInt(stats.applied_sequence)
      + (stats.backend === 'postgres' ? ' · ' + fmtInt(stats.replication_lag) + ' behind' : '');
    $('stat-queue').textContent = fmtInt(stats.writer_queue_depth);
    $('stat-queries').textContent = fmtInt(stats.queries);
    $('stat-matches').textContent = fmtInt(stats.matches);
    $('stat-stores').textContent = fmtInt(stats.stores);
    const errors = Object.entries(stats.errors_by_status || {}).sort((a, b) => a[0].localeCompare(b[0]));
    const errorCell = $('stat-errors');
    errorCell.textContent = '';
    if (!errors.length) {
      errorCell.textContent = 'none';
    } else {
      for (const [status, count] of errors) {
        errorCell.append(el('span', { className: 'err-chip ' + (status >= '500' ? 'err-5xx' : 'err-4xx'), text: status + ': ' + fmtInt(count) }));
      }
    }
    const ql = stats.query_latency || {};
    const sl = stats.store_latency || {};
    $('stat-query-latency').textContent = fmtMs(ql.p50_ms) + ' / ' + fmtMs(ql.p99_ms);
    $('stat-store-latency').textContent = fmtMs(sl.p50_ms) + ' / ' + fmtMs(sl.p99_ms);
    showSpaces(stats.by_space || []);
  }

  function showSpaces(spaces) {
    const body = $('spaces-table').querySelector('tbody');
    body.textContent = '';
    for (const s of spaces) {
      const pick = el('button', { type: 'button', className: 'link', text: s.name, onclick: () => pickSpace(s.name) });
      const row = el('tr', { 'data-space': s.name },
        el('th', { scope: 'row' }, pick),
        td(fmtInt(s.neurons), 'num'),
        td(fmtInt(s.segments), 'num'),
        td(fmtInt(s.patterns), 'num patterns'),
        td(fmtInt(s.synapses), 'num'),
        td(fmtBytes(s.memory_bytes), 'num'),
        td(fmtNum(s.mean_patterns_per_segment), 'num'),
        td(fmtInt(s.max_patterns_per_segment), 'num'),
        td(fmtInt(s.segments_at_capacity), 'num'));
      if (s.name === state.space) row.classList.add('current');
      body.append(row);
    }
    $('spaces-empty').hidden = spaces.length > 0;

    const select = $('space-select');
    const names = spaces.map((s) => s.name);
    const have = Array.from(select.options).slice(1).map((o) => o.value);
    const wanted = state.space && !names.includes(state.space) ? names.concat([state.space]) : names;
    if (wanted.join('\n') !== have.join('\n')) {
      while (select.options.length > 1) select.remove(1);
      for (const name of wanted) select.add(new Option(name, name));
    }
    select.value = state.space || '';
    if (!state.space && state.wanted && names.includes(state.wanted)) pickSpace(state.wanted);
  }

  async function poll() {
    if (polling) return;
    polling = true;
    clearTimeout(pollTimer);
    try {
      const stats = await api('GET', '/v1/stats');
      showStats(stats);
      recordSample(stats);
      showProblem($('stats-problem'), null);
      setStatus('updated ' + new Date().toLocaleTimeString());
    } catch (err) {
      if (err.status !== 401) {
        showProblem($('stats-problem'), err);
        setStatus('statistics unavailable', true);
      }
    } finally {
      polling = false;
      pollTimer = setTimeout(poll, POLL_MS);
    }
  }

  function pollNow() {
    clearTimeout(pollTimer);
    poll();
  }

  // ---------------------------------------------------------------- one space

  const state = {
    space: '',
    wanted: '',
    report: null,
    generation: 0,
    pages: [],
    after: null,
    next: null,
  };

  function readHash() {
    const m = /(?:^#|&)space=([^&]*)/.exec(location.hash);
    if (!m) return '';
    try {
      return decodeURIComponent(m[1]);
    } catch (e) {
      return '';
    }
  }

  function pickSpace(name) {
    if (name === state.space) return;
    window.history.replaceState(null, '', name ? '#space=' + enc(name) : location.pathname + location.search);
    selectSpace(name, false);
  }

  $('space-select').addEventListener('change', (e) => pickSpace(e.target.value));

  async function selectSpace(name, again) {
    state.space = name;
    state.wanted = name;
    const generation = ++state.generation;
    const stale = () => generation !== state.generation;
    for (const row of $('spaces-table').querySelectorAll('tbody tr')) {
      row.classList.toggle('current', row.getAttribute('data-space') === name);
    }
    $('space-select').value = name;
    for (const section of document.querySelectorAll('.space-only')) section.hidden = !name;
    $('space-body').hidden = true;
    showProblem($('space-problem'), null);
    if (!again) {
      $('query-result').hidden = true;
      showProblem($('query-problem'), null);
      $('neuron-detail').hidden = true;
    }
    if (!name) return;

    let report;
    try {
      report = await api('GET', '/v1/spaces/' + enc(name));
    } catch (err) {
      if (stale()) return;
      showProblem($('space-problem'), err);
      for (const section of document.querySelectorAll('.space-only')) section.hidden = true;
      return;
    }
    if (stale()) return;
    state.report = report;
    showSpaceReport(report);
    state.pages = [];
    loadNeurons(null, generation);
    loadCalibration(generation);
    drawTheory(report, generation);
  }

  function showSpaceReport(report) {
    const p = report.parameters;
    const t = report.theory;
    const params = $('space-params');
    params.textContent = '';
    const item = (dl, term, value) => dl.append(el('div', null, el('dt', { text: term }), el('dd', null, value)));
    item(params, 'input bits (n)', fmtInt(p.input_size));
    item(params, 'active bits (a)', fmtInt(p.active_bits));
    item(params, 'synapses per pattern (s)', fmtInt(p.synapses_per_pattern));
    item(params, 'threshold (θ)', fmtInt(p.threshold));
    item(params, 'max false match', probNode({ value: p.max_false_match, log10: Math.log10(p.max_false_match) }));
    item(params, 'max segments per neuron', fmtInt(p.max_segments_per_neuron));
    item(params, 'seed', String(p.seed));
    const c = report.counts || {};
    item(params, 'neurons', fmtInt(c.neurons));
    item(params, 'segments', fmtInt(c.segments));
    item(params, 'patterns', fmtInt(c.patterns));
    item(params, 'memory', fmtBytes(c.memory_bytes));
    const theory = $('space-theory');
    theory.textContent = '';
    item(theory, 'false match of a one-pattern segment', probNode(t.segment_false_match));
    item(theory, 'patterns per segment within max false match', fmtInt(t.max_patterns_per_segment));
    item(theory, 'miss at 20% noise', probNode(t.false_miss_at_20_percent_noise));
    item(theory, 'threshold with least error at 20% noise', fmtInt(t.threshold_min_error));
    item(theory, 'smallest threshold meeting max false match', t.threshold_for_target == null ? '–' : fmtInt(t.threshold_for_target));
    showEncoder(p.encoder, report.encoder);
    $('space-body').hidden = false;
    $('query-threshold').placeholder = String(p.threshold);
  }

  // Per field of the space's encoder: its type and bits, how far it may move and still be
  // recognised (in its own units), and the chance a record still matches when it alone changes.
  function showEncoder(spec, meaning) {
    const box = $('space-encoder');
    const body = $('encoder-table').querySelector('tbody');
    body.textContent = '';
    box.hidden = !meaning;
    if (!meaning) return;
    for (const [name, f] of Object.entries(meaning.fields)) {
      const unit = f.unit ? ' ' + f.unit : '';
      const radius = f.recognition_radius == null ? '–' : fmtNum(f.recognition_radius) + unit;
      body.append(el('tr', null,
        el('th', { scope: 'row', text: name }),
        td(spec.fields[name].type),
        td(fmtInt(f.active_bits), 'num'),
        td(radius, 'num'),
        td(probNode(f.match_if_changed_entirely), 'num'),
        td(f.warning ? 'alone, it cannot tell records apart' : '')));
    }
  }

  // ---------------------------------------------------------------- neurons

  let neuronChart = null;

  async function loadNeurons(after, generation) {
    const stale = () => generation !== state.generation;
    const space = state.space;
    const capacity = state.report && state.report.theory ? state.report.theory.max_patterns_per_segment : 0;
    showProblem($('neurons-problem'), null);
    let page;
    try {
      let path = '/v1/spaces/' + enc(space) + '/neurons?limit=' + NEURONS_PAGE;
      if (after != null) path += '&after=' + enc(after);
      page = await api('GET', path);
    } catch (err) {
      if (!stale()) showProblem($('neurons-problem'), err);
      return;
    }
    if (stale()) return;
    state.after = after;
    state.next = page.next;
    $('neurons-next').disabled = page.next == null;
    $('neurons-prev').disabled = state.pages.length === 0;
    $('neurons-first').disabled = after == null;
    const pageNumber = state.pages.length + 1;
    $('neurons-page').textContent = page.neurons.length
      ? 'page ' + pageNumber + ': ' + page.neurons.length + ' neuron' + (page.neurons.length === 1 ? '' : 's')
      : 'no neurons yet';

    const body = $('neurons-table').querySelector('tbody');
    body.textContent = '';
    const cells = [];
    for (const n of page.neurons) {
      const perSegment = n.segments ? n.patterns / n.segments : 0;
      const fill = el('div', { className: 'fill' });
      if (capacity > 0) {
        fill.append(el('meter', { min: '0', max: String(capacity), value: String(Math.min(perSegment, capacity)), 'aria-label': 'patterns per segment' }));
      }
      fill.append(el('span', { text: fmtNum(perSegment) + (capacity > 0 ? ' / ' + capacity : '') }));
      const falseMatch = td('…', 'num false-match');
      const room = td('…', 'num');
      const open = el('button', { type: 'button', className: 'link', text: n.name, onclick: () => showNeuron(n.name, generation) });
      body.append(el('tr', { 'data-neuron': n.name },
        el('th', { scope: 'row' }, open),
        falseMatch,
        td(fill),
        td(fmtInt(n.patterns), 'num'),
        td(fmtInt(n.segments), 'num'),
        room));
      cells.push({ falseMatch, room });
    }

    const names = page.neurons.map((n) => n.name);
    const logs = page.neurons.map(() => null);
    drawNeuronChart(names, logs);
    const reports = new Array(page.neurons.length);
    await eachLimited(page.neurons, REPORT_CONCURRENCY, async (n, i) => {
      try {
        const report = await api('GET', '/v1/spaces/' + enc(space) + '/neurons/' + enc(n.name) + '?segments_limit=' + SEGMENTS_LIMIT);
        if (stale()) return;
        reports[i] = report;
        cells[i].falseMatch.textContent = '';
        cells[i].falseMatch.append(probNode(report.false_match));
        cells[i].room.textContent = fmtInt(report.patterns_before_new_segment);
        logs[i] = report.false_match ? report.false_match.log10 : null;
      } catch (err) {
        if (stale()) return;
        cells[i].falseMatch.textContent = err.status ? String(err.status) : 'error';
        cells[i].falseMatch.title = (err.problem && err.problem.detail) || err.message;
      }
    }, stale);
    if (stale()) return;
    drawNeuronChart(names, logs);
  }

  function drawNeuronChart(names, logs) {
    if (!neuronChart) neuronChart = new ChartSlot($('chart-neurons'));
    const colors = palette();
    const xs = names.map((_, i) => i);
    const short = (s) => (s.length > 12 ? s.slice(0, 11) + '…' : s);
    neuronChart.set({
      scales: { x: { time: false, range: [-0.5, Math.max(0.5, names.length - 0.5)] } },
      series: [
        { label: 'neuron', value: (u, v) => (v == null ? '–' : names[Math.round(v)] || '–') },
        {
          label: 'false match',
          stroke: colors.c1,
          fill: colors.c1,
          paths: () => null,
          points: { show: true, size: 8, fill: colors.c1 },
          value: legend((v) => (v == null ? '–' : probText(v))),
        },
      ],
      axes: [
        axis(colors, {
          incrs: [1, 2, 5, 10, 20, 50],
          values: (u, splits) => splits.map((v) => (Number.isInteger(v) && names[v] != null ? short(names[v]) : '')),
        }),
        log10Axis(colors),
      ],
    }, [xs, logs]);
  }

  $('neurons-next').addEventListener('click', () => {
    if (state.next == null) return;
    state.pages.push(state.after);
    loadNeurons(state.next, state.generation);
  });
  $('neurons-prev').addEventListener('click', () => {
    if (!state.pages.length) return;
    loadNeurons(state.pages.pop(), state.generation);
  });
  $('neurons-first').addEventListener('click', () => {
    state.pages = [];
    loadNeurons(null, state.generation);
  });

  async function showNeuron(name, generation) {
    const stale = () => generation !== state.generation;
    const box = $('neuron-detail');
    $('neuron-detail-title').textContent = 'Neuron ' + name;
    const body = $('segments-table').querySelector('tbody');
    body.textContent = '';
    $('neuron-detail-more').textContent = 'loading…';
    box.hidden = false;
    let report;
    try {
      report = await api('GET', '/v1/spaces/' + enc(state.space) + '/neurons/' + enc(name) + '?segments_limit=' + SEGMENTS_LIMIT);
    } catch (err) {
      if (!stale()) $('neuron-detail-more').textContent = (err.status || '') + ' ' + ((err.problem && err.problem.detail) || err.message);
      return;
    }
    if (stale()) return;
    for (const seg of report.segments) {
      const ids = el('div', { className: 'ids' });
      for (const id of seg.patterns) {
        ids.append(el('button', { type: 'button', className: 'chip', text: id, title: 'put this pattern in the query box', onclick: () => loadPattern(name, id) }));
      }
      body.append(el('tr', null, td(String(seg.segment), 'num'), td(ids), td(fmtInt(seg.synapses), 'num'), td(probNode(seg.false_match), 'num')));
    }
    const misses = (report.false_miss_by_noise || []).map((m) => Math.round(m.noise * 100) + '% noise: ' + probText(m.probability.log10));
    $('neuron-detail-more').textContent = report.segment_count + ' segment' + (report.segment_count === 1 ? '' : 's')
      + (report.next_segment != null ? ' (first ' + report.segments.length + ' shown)' : '')
      + (misses.length ? '; miss probability at ' + misses.join(', ') : '');
  }

  async function loadPattern(neuron, id) {
    try {
      const p = await api('GET', '/v1/spaces/' + enc(state.space) + '/neurons/' + enc(neuron) + '/patterns/' + enc(id));
      $('query-active').value = p.active.join(', ');
      $('query').scrollIntoView({ behavior: 'smooth', block: 'start' });
      $('query-active').focus({ preventScroll: true });
    } catch (err) {
      showProblem($('query-problem'), err);
    }
  }

  // ---------------------------------------------------------------- theory curves

  // Answers of GET /v1/theory by query string: they depend on the parameters only, so they are
  // kept for the life of the page, shared by every space with the same parameters.
  const theoryCache = new Map();

  function theoryPoint(params) {
    const query = new URLSearchParams(params).toString();
    if (!theoryCache.has(query)) {
      const promise = api('GET', '/v1/theory?' + query).catch((err) => {
        if (err.status === 400) return { failed: err };
        theoryCache.delete(query);
        throw err;
      });
      theoryCache.set(query, promise);
    }
    return theoryCache.get(query);
  }

  function spread(lo, hi, count, must) {
    const out = new Set();
    if (hi - lo + 1 <= count) {
      for (let v = lo; v <= hi; v++) out.add(v);
    } else {
      const step = (hi - lo) / (count - 1);
      for (let i = 0; i < count; i++) out.add(Math.round(lo + i * step));
    }
    for (const m of must || []) if (m >= lo && m <= hi) out.add(m);
    return Array.from(out).sort((a, b) => a - b);
  }

  const thetaChart = () => (charts.theta = charts.theta || new ChartSlot($('chart-theta')));
  const unionChart = () => (charts.union = charts.union || new ChartSlot($('chart-union')));
  const missChart = () => (charts.miss = charts.miss || new ChartSlot($('chart-miss')));
  const charts = {};

  // The curve's y for each x (null where the probability is exactly 0). With `upTo`, x values
  // past the first one the service refuses (400: past its cost limit) are not asked for, and
  // `curve.limit` says where that was.
  async function curve(xs, paramsFor, pick, generation, upTo) {
    const ys = xs.map(() => null);
    let done = 0;
    let firstError = null;
    let refused = Infinity;
    await eachLimited(xs, THEORY_CONCURRENCY, async (x, i) => {
      try {
        if (upTo && x > refused) return;
        const answer = await theoryPoint(paramsFor(x));
        if (answer.failed) {
          refused = Math.min(refused, x);
          return;
        }
        ys[i] = pick(answer);
      } catch (err) {
        firstError = firstError || err;
      } finally {
        done++;
        if (generation === state.generation) $('theory-progress').textContent = 'computing… ' + done + ' of ' + xs.length;
      }
    }, () => generation !== state.generation || firstError != null);
    if (firstError) throw firstError;
    return { ys, refused };
  }

  async function drawTheory(report, generation) {
    const stale = () => generation !== state.generation;
    const p = report.parameters;
    const n = p.input_size;
    const a = p.active_bits;
    const s = p.synapses_per_pattern;
    const theta = p.threshold;
    const sampled = Math.min(s, a);
    const capacity = report.theory.max_patterns_per_segment || 0;
    const logTarget = Math.log10(p.max_false_match);
    const colors = palette();
    showProblem($('theory-problem'), null);
    for (const make of [thetaChart, unionChart, missChart]) make().clear();
    const lg = (prob) => (prob ? prob.log10 : null);

    try {
      // (a) θ = 1..s, at most MAX_CURVE_POINTS of them, the space's θ among them.
      const thetas = spread(1, s, MAX_CURVE_POINTS, [theta]);
      const fm = (await curve(thetas, (t) => ({ n, a, s, theta: t, patterns: 1 }), (r) => lg(r.segment_false_match), generation)).ys;
      if (stale()) return;
      thetaChart().set({
        scales: { x: { time: false } },
        series: [
          { label: 'θ', value: (u, v) => (v == null ? '–' : String(v)) },
          { label: 'false match', stroke: colors.c1, width: 2, points: { show: thetas.length <= 30 }, value: probLegend },
        ],
        axes: [axis(colors, { label: 'threshold θ' }), log10Axis(colors)],
        plugins: [markersPlugin([{ x: theta, label: 'θ = ' + theta, color: colors.c4 }])],
      }, [thetas, fm]);

      // (b) M = 1..2×capacity (at most MAX_CURVE_POINTS, within M·min(s, a) ≤ 50000).
      const maxM = Math.max(2, Math.min(2 * Math.max(capacity, 1), Math.floor(50000 / sampled)));
      let ms = spread(1, maxM, MAX_CURVE_POINTS, capacity ? [capacity] : []);
      const unionCurve = await curve(ms, (m) => ({ n, a, s, theta, patterns: m }), (r) => lg(r.union_false_match), generation, true);
      if (stale()) return;
      let union = unionCurve.ys;
      let unionNote = '';
      if (unionCurve.refused !== Infinity) {
        const kept = ms.filter((m) => m < unionCurve.refused).length;
        ms = ms.slice(0, Math.max(kept, 1));
        union = union.slice(0, ms.length);
        unionNote = 'The curve of M stops at M = ' + ms[ms.length - 1] + ': past it the exact union model is beyond /v1/theory\'s cost limit. ';
      }
      unionChart().set({
        scales: { x: { time: false } },
        series: [
          { label: 'M', value: (u, v) => (v == null ? '–' : String(v)) },
          { label: 'false match', stroke: colors.c1, width: 2, points: { show: ms.length <= 30 }, value: probLegend },
          { label: 'max false match', stroke: colors.c4, width: 1.5, dash: [6, 4], points: { show: false }, value: () => probText(logTarget) },
        ],
        axes: [axis(colors, { label: 'patterns per segment M' }), log10Axis(colors)],
        plugins: capacity ? [markersPlugin([{ x: capacity, label: 'capacity ' + capacity, color: colors.c3 }])] : [],
      }, [ms, union, ms.map(() => logTarget)]);

      // (c) v = 0..a noise bits, about MISS_POINTS of them, at the space's θ.
      const noise20 = Math.round(0.2 * a);
      const vs = spread(0, a, MISS_POINTS + 1, [noise20, Math.max(0, s - theta), Math.max(0, s - theta + 1)]);
      const miss = (await curve(vs, (v) => ({ n, a, s, theta, noise_bits: v }), (r) => lg(r.false_miss), generation)).ys;
      if (stale()) return;
      missChart().set({
        scales: { x: { time: false } },
        series: [
          { label: 'v', value: (u, v) => (v == null ? '–' : String(v)) },
          { label: 'miss', stroke: colors.c2, width: 2, points: { show: true, size: 5 }, value: probLegend },
        ],
        axes: [axis(colors, { label: 'noise bits v' }), log10Axis(colors)],
        plugins: [markersPlugin([{ x: noise20, label: '20%', color: colors.c3 }])],
      }, [vs, miss]);
      $('theory-progress').textContent = unionNote;
    } catch (err) {
      if (stale()) return;
      $('theory-progress').textContent = '';
      showProblem($('theory-problem'), err);
    }
  }

  // ---------------------------------------------------------------- query

  function parseActive(text) {
    const parts = text.split(/[\s,;]+/).filter((t) => t !== '');
    const active = [];
    for (const part of parts) {
      if (!/^\d+$/.test(part)) throw new ApiError(0, { title: 'Not an index', detail: '"' + part.slice(0, 20) + '" is not a whole number' });
      active.push(Number(part));
    }
    if (!active.length) throw new ApiError(0, { title: 'No indices', detail: 'paste the active bits of a pattern, separated by commas or spaces' });
    return active;
  }

  $('query-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const space = state.space;
    if (!space) return;
    showProblem($('query-problem'), null);
    const body = {};
    try {
      body.active = parseActive($('query-active').value);
      const t = $('query-threshold').value.trim();
      if (t !== '') {
        if (!/^\d+$/.test(t)) throw new ApiError(0, { title: 'Bad threshold', detail: 'the threshold is a whole number' });
        body.threshold = Number(t);
      }
    } catch (err) {
      showProblem($('query-problem'), err);
      return;
    }
    const button = $('query-run');
    button.disabled = true;
    try {
      const answer = await api('POST', '/v1/spaces/' + enc(space) + '/query', body);
      if (space === state.space) showMatches(answer, body.active.length);
    } catch (err) {
      $('query-result').hidden = true;
      showProblem($('query-problem'), err);
    } finally {
      button.disabled = false;
    }
  });

  function showMatches(answer, count) {
    const body = $('query-table').querySelector('tbody');
    body.textContent = '';
    for (const m of answer.matches) {
      body.append(el('tr', null,
        td(m.neuron, 'neuron'),
        td(probNode(m.p_value), 'num p-value'),
        td(fmtInt(m.overlap), 'num'),
        td(m.pattern == null ? '–' : m.pattern),
        td(m.pattern_overlap == null ? '–' : fmtInt(m.pattern_overlap), 'num'),
        td(String(m.segment), 'num'),
        td(probNode(m.neuron_false_match), 'num')));
    }
    const summary = $('query-summary');
    summary.textContent = '';
    summary.append(
      answer.matches.length + ' match' + (answer.matches.length === 1 ? '' : 'es')
      + ' for ' + count + ' active bits at threshold ' + answer.threshold
      + '; ' + fmtInt(answer.segments_overlapped) + ' segments overlapped; expected false matches ',
      probNode(answer.expected_false_matches), '.');
    if (answer.note) summary.append(el('span', { className: 'note', text: ' ' + answer.note }));
    $('query-table').hidden = answer.matches.length === 0;
    $('query-result').hidden = false;
  }

  // ---------------------------------------------------------------- calibration

  async function loadCalibration(generation) {
    const stale = () => generation !== state.generation;
    $('calibration-result').hidden = true;
    showProblem($('calibration-problem'), null);
    $('calibration-state').textContent = 'loading…';
    try {
      const answer = await api('GET', '/v1/spaces/' + enc(state.space) + '/calibration');
      if (stale()) return;
      showCalibration(answer);
      $('calibration-state').textContent = '';
    } catch (err) {
      if (stale()) return;
      if (err.status === 404) {
        $('calibration-state').textContent = 'No calibration has been run for this space yet.';
      } else {
        $('calibration-state').textContent = '';
        showProblem($('calibration-problem'), err);
      }
    }
  }

  $('calibrate-run').addEventListener('click', async () => {
    const space = state.space;
    const generation = state.generation;
    if (!space) return;
    const button = $('calibrate-run');
    button.disabled = true;
    showProblem($('calibration-problem'), null);
    const started = Date.now();
    const tick = setInterval(() => {
      $('calibration-state').textContent = 'running… ' + Math.round((Date.now() - started) / 1000) + ' s';
    }, 1000);
    $('calibration-state').textContent = 'running…';
    try {
      const answer = await api('POST', '/v1/spaces/' + enc(space) + '/calibrate', {});
      if (generation !== state.generation) return;
      showCalibration(answer);
      $('calibration-state').textContent = 'done in ' + ((Date.now() - started) / 1000).toFixed(1) + ' s';
    } catch (err) {
      if (generation !== state.generation) return;
      $('calibration-state').textContent = err.status === 404 && /route/i.test((err.problem && err.problem.detail) || '')
        ? 'This service has no calibration yet.'
        : '';
      showProblem($('calibration-problem'), err);
    } finally {
      clearInterval(tick);
      button.disabled = false;
    }
  });

  function showCalibration(answer) {
    const body = $('calibration-table').querySelector('tbody');
    body.textContent = '';
    for (const line of answer.lines || []) {
      const verdict = String(line.verdict || '');
      const interval = Array.isArray(line.interval) ? fmtNum(line.interval[0]) + ' – ' + fmtNum(line.interval[1]) : '–';
      const check = el('td', { className: 'desc' },
        el('strong', { text: line.check }),
        line.description ? el('div', { className: 'hint', text: line.description }) : null);
      body.append(el('tr', { 'data-verdict': verdict },
        check,
        td(el('span', { className: 'verdict verdict-' + verdict.replace(/[^a-z]/g, ''), text: verdict })),
        td(fmtNum(line.observed_rate), 'num'),
        td(interval, 'num'),
        td(fmtNum(line.predicted_rate), 'num'),
        td(line.factor == null ? '–' : fmtNum(line.factor), 'num'),
        td(fmtInt(line.events) + ' / ' + fmtInt(line.trials), 'num')));
    }
    const summary = $('calibration-summary');
    const parts = [];
    if (answer.sample != null) parts.push(fmtInt(answer.sample) + ' stored patterns sampled');
    if (answer.random_inputs != null) parts.push(fmtInt(answer.random_inputs) + ' random inputs');
    summary.textContent = 'Space ' + answer.space + (parts.length ? ': ' + parts.join(', ') : '') + '.';
    $('calibration-result').hidden = false;
  }

  // ---------------------------------------------------------------- start

  function start() {
    initServiceCharts();
    state.wanted = readHash();
    window.addEventListener('hashchange', () => {
      const name = readHash();
      if (name !== state.space) selectSpace(name, false);
    });
    poll();
  }

  start();
})();
