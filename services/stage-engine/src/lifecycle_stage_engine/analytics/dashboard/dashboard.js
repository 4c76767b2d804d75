// The lifecycle dashboard: reads the analytics API with the user's API token and draws it with plotly.js.
// No build step, no framework. Every string from the API reaches the page through textContent (customer ids
// are whatever a shop sent: never markup), and no customer data goes into this page's own address.
'use strict';

(() => {
  const STAGES = ['awareness', 'consideration', 'purchase', 'retention', 'loyalty', 'at_risk', 'lapsed'];
  const COLORS = {awareness: '#9ecae1', consideration: '#4292c6', purchase: '#74c476', retention: '#31a354',
    loyalty: '#006d2c', at_risk: '#fd8d3c', lapsed: '#de2d26'};
  const SEGMENT_COLORS = ['#006d2c', '#31a354', '#74c476', '#9ecae1', '#4292c6', '#08519c', '#fdae6b',
    '#fd8d3c', '#e6550d', '#de2d26', '#a50f15'];
  // Light for few, dark for many (plotly's own 'Blues' and 'Greens' run the other way).
  const BLUES = [[0, '#f7fbff'], [0.5, '#6baed6'], [1, '#08306b']];
  const GREENS = [[0, '#f7fcf5'], [0.5, '#74c476'], [1, '#00441b']];
  const TOKEN_KEY = 'lifecycle-dashboard-token';
  const API_ROOT = new URL('.', location.href);  // the service's root: /dashboard -> /
  const CONFIG = {displaylogo: false, responsive: true};
  const LAYOUT = {margin: {t: 16, r: 16, b: 48, l: 56}, font: {family: 'system-ui, sans-serif', size: 12},
    paper_bgcolor: '#ffffff', plot_bgcolor: '#ffffff', legend: {orientation: 'h', y: -0.2}};
  const $ = (id) => document.getElementById(id);
  let token = null;
  let generation = 0;

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // --- small helpers ---------------------------------------------------------------------------------

  function el(tag, text, className, ...children) {  // text always as text, never markup
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    node.append(...children);
    return node;
  }

  function button(text, onClick) {
    const node = el('button', text, 'link');
    node.type = 'button';
    node.addEventListener('click', onClick);
    return node;
  }

  const fmt = {  // '–' for what is not known
    int: (n) => (n == null ? '–' : Math.round(Number(n)).toLocaleString('en-US')),
    money: (n) => (n == null ? '–' : Number(n).toLocaleString('en-US', {minimumFractionDigits: 2,
      maximumFractionDigits: 2})),
    pct: (x) => (x == null ? '–' : `${(100 * x).toFixed(0)}%`),
    num: (x, digits = 2) => (x == null ? '–' : Number(x).toFixed(digits)),
    days: (d) => (d == null ? '–' : `${Number(d).toFixed(1)} d`),
    date: (s) => (s ? new Date(s).toISOString().slice(0, 10) : '–'),
    time: (s) => (s ? `${new Date(s).toISOString().slice(0, 16).replace('T', ' ')} UTC` : '–'),
    label: (stage) => (stage ? String(stage).replace('_', ' ') : '–'),
  };

  let plotlyLoaded = null;
  // plotly.js runs only after the API calls have started: evaluating it holds the page for about a second.
  function plotly() {
    plotlyLoaded ??= new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = $('plotly').href;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => reject(new Error('plotly.js did not load'));
      document.head.append(script);
    });
    return plotlyLoaded;
  }
  const plot = async (id, data, layout) => (await plotly()).react($(id), data, {...LAYOUT, ...layout}, CONFIG);

  const emptyNote = (shown) => (shown ? [] : [{text: 'No data for these filters', showarrow: false, xref: 'paper',
    yref: 'paper', x: 0.5, y: 0.5, font: {size: 14, color: '#616e7c'}}]);

  // --- the token and the API -------------------------------------------------------------------------

  function takeToken() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (fragment.has('token')) {
      if (fragment.get('token')) sessionStorage.setItem(TOKEN_KEY, fragment.get('token'));
      history.replaceState(null, '', location.pathname + location.search);  // the token leaves the address
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  async function api(path, params = {}) {
    const url = new URL(path, API_ROOT);
    for (const [name, value] of Object.entries(params)) if (value) url.searchParams.set(name, value);
    const response = await fetch(url, {headers: {Authorization: `Bearer ${token}`}, cache: 'no-store',
      credentials: 'omit'});
    if (!response.ok) {
      let message = response.statusText;
      try { message = (await response.json()).message || message; } catch { /* not JSON */ }
      throw new ApiError(response.status, `${url.pathname}: ${response.status} ${message}`);
    }
    return response;
  }

  const json = async (path, params) => (await api(path, params)).json();

  function customerPath(id) {
    // The id is the one thing of a customer's that goes into a URL: encoded, and refused when the URL
    // parser would read it as something else ('..' segments).
    const path = `v1/customers/${encodeURIComponent(id)}`;
    if (new URL(path, API_ROOT).pathname !== API_ROOT.pathname + path) {
      throw new Error('This customer id cannot be looked up from the dashboard.');
    }
    return path;
  }

  function filters() {  // the end date is included: the API's end is the next midnight (UTC)
    const form = $('filters').elements;
    const end = form.end.value && new Date(Date.parse(`${form.end.value}T00:00:00Z`) + 86400000).toISOString();
    return {source: form.source.value.trim(), channel: form.channel.value.trim(),
      start: form.start.value && `${form.start.value}T00:00:00Z`, end};
  }

  // --- errors and the token form ---------------------------------------------------------------------

  function fail(error) {
    const banner = $('error');
    banner.textContent = error && error.message ? error.message : String(error);
    banner.hidden = false;
    document.body.dataset.ready = 'error';
    if (error instanceof ApiError && error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken();
    }
  }

  function askForToken() {
    $('content').hidden = true;
    $('token-form').hidden = false;
    $('token-form').elements.token.focus();
  }

  // --- loading ---------------------------------------------------------------------------------------

  async function load() {
    const run = ++generation;
    document.body.dataset.ready = 'false';
    $('error').hidden = true;
    const chosen = filters();
    try {
      const answers = Promise.all([
        json('v1/analytics/stages', {...chosen, period: 'month'}), json('v1/analytics/funnel', chosen),
        json('v1/analytics/cohorts', chosen), json('v1/analytics/rfm'), json('v1/analytics/clv', {top: 20}),
        json('v1/analytics/transitions', {...chosen, limit: 50})]);
      const [[stages, funnel, cohorts, rfm, clv, moves]] = await Promise.all([answers, plotly()]);
      if (run !== generation) return;  // newer filters were applied meanwhile
      renderFigures(stages, clv, rfm);
      renderFit(clv.fit);
      renderTopCustomers(clv.top);
      renderTransitions(moves);
      renderDownloads(rfm.segments);
      await Promise.all([plotStageMix(stages), plotFunnel(funnel), plotCohorts(cohorts, chosen), plotRfm(rfm),
        plotSegments(rfm), plotClv(clv)]);
      if (run !== generation) return;
      window.dashboardTiming = {readyMs: performance.now()};
      document.body.dataset.ready = 'true';
    } catch (error) {
      if (run === generation) fail(error);
    }
  }

  // --- figures ---------------------------------------------------------------------------------------

  function renderFigures(stages, clv, rfm) {
    $('fig-customers').textContent = fmt.int(Object.values(stages.current).reduce((a, b) => a + b, 0));
    $('fig-buyers').textContent = fmt.int(clv.customers);
    $('fig-clv').textContent = fmt.money(clv.total);
    $('fig-scored').textContent = fmt.time(rfm.scored_at || clv.scored_at);  // the latest refresh
  }

  function renderFit(fit) {
    const problems = $('fit-problems');
    problems.replaceChildren();
    if (!fit) {
      $('fit-summary').textContent = 'No model fit yet: scores appear after the first refresh.';
      return;
    }
    const parts = [`${fmt.int(fit.repeat_buyers)} repeat buyers of ${fmt.int(fit.customers)}`];
    const params = (model) => Object.entries(model.params).map(([k, v]) => `${k} ${fmt.num(v, 3)}`).join(', ');
    if (fit.bgnbd) parts.push(`BG/NBD ${params(fit.bgnbd)} (log-likelihood ${fmt.num(fit.bgnbd.log_likelihood, 1)})`);
    if (fit.gamma_gamma) parts.push(`Gamma-Gamma ${params(fit.gamma_gamma)}`);
    if (fit.independence && fit.independence.correlation != null) {
      parts.push(`frequency–spend correlation ${fmt.num(fit.independence.correlation)}`);
    }
    $('fit-summary').textContent = parts.join(' · ');
    for (const problem of fit.problems || []) problems.append(el('li', `⚠ ${problem}`));
  }

  // --- charts ----------------------------------------------------------------------------------------

  function plotStageMix(stages) {
    const x = stages.series.map((point) => point.period);
    const shown = STAGES.filter((stage) => stages.series.some((point) => point.customers[stage]));
    const traces = shown.map((stage) => ({type: 'scatter', mode: 'lines', stackgroup: 'mix', name: fmt.label(stage),
      x, y: stages.series.map((point) => point.customers[stage] || 0), line: {color: COLORS[stage], width: 1},
      fillcolor: COLORS[stage], hovertemplate: '%{y} customers<extra>%{fullData.name}</extra>'}));
    return plot('stage-mix', traces, {yaxis: {title: {text: 'customers'}, rangemode: 'tozero'},
      annotations: emptyNote(traces.length)});
  }

  function plotFunnel(funnel) {
    const x = funnel.stages.map((s) => `${fmt.label(s.stage)}<br>${fmt.days(s.median_days_in_stage)} median`);
    const bar = (name, key, color) => ({type: 'bar', name, x, y: funnel.stages.map((s) => s[key]),
      marker: {color}, hovertemplate: `%{y} ${name}<extra></extra>`});
    const converted = {...bar('converted', 'converted', '#31a354'), textposition: 'outside', cliponaxis: false,
      constraintext: 'none', textfont: {size: 11},
      text: funnel.stages.map((s) => (s.conversion == null ? '' : `${fmt.pct(s.conversion)} convert`))};
    const period = `${fmt.date(funnel.start)} – ${fmt.date(funnel.end)}`;
    return plot('funnel', [bar('entered', 'entered', '#4292c6'), converted], {barmode: 'group',
      yaxis: {title: {text: `customers, ${period}`}, rangemode: 'tozero'},
      annotations: emptyNote(funnel.stages.some((s) => s.entered))});
  }

  function monthsBetween(month, until) {  // "2025-01" and a Date
    const [year, number] = month.split('-').map(Number);
    return (until.getUTCFullYear() - year) * 12 + until.getUTCMonth() + 1 - number;
  }

  function plotCohorts(cohorts, chosen) {
    const until = chosen.end ? new Date(chosen.end) : new Date();
    const offsets = cohorts.flatMap((c) => Object.keys(c.buyers_by_offset).map(Number));
    const x = Array.from({length: Math.max(0, ...offsets) + 1}, (_, k) => k);
    // Month 0 is the cohort itself (100%); a month the cohort has not reached yet is blank, not 0%.
    const z = cohorts.map((c) => x.map((k) => (k === 0 ? 1 : k > monthsBetween(c.month, until) ? null
      : (c.retention[k] || 0))));
    const later = z.flatMap((row) => row.slice(1)).filter((v) => v != null);
    const heatmap = {type: 'heatmap', x, y: cohorts.map((c) => `${c.month} (${c.size})`), z, zmin: 0,
      zmax: Math.max(0.05, ...later), colorscale: BLUES, xgap: 2, ygap: 2,
      text: z.map((row) => row.map((v) => (v == null ? '' : fmt.pct(v)))), texttemplate: '%{text}',
      hovertemplate: 'cohort %{y}, month %{x}: %{text}<extra></extra>', colorbar: {tickformat: '.0%'}};
    return plot('cohorts', cohorts.length ? [heatmap] : [], {xaxis: {title: {text: 'months since first purchase'},
      dtick: 1}, yaxis: {autorange: 'reversed', type: 'category'}, margin: {...LAYOUT.margin, l: 90},
      annotations: emptyNote(cohorts.length)});
  }

  function plotRfm(rfm) {
    const rows = [5, 4, 3, 2, 1];
    const columns = [1, 2, 3, 4, 5];
    const cell = (r, fm) => rfm.grid.find((c) => c.r === r && c.fm === fm) || {segment: '', customers: 0};
    const grid = rows.map((r) => columns.map((fm) => cell(r, fm)));
    return plot('rfm-grid', [{type: 'heatmap', x: columns.map((fm) => `FM ${fm}`), y: rows.map((r) => `R ${r}`),
      z: grid.map((row) => row.map((c) => c.customers)), colorscale: GREENS, xgap: 2, ygap: 2,
      text: grid.map((row) => row.map((c) => `${c.segment}<br>${c.customers}`)), texttemplate: '%{text}',
      textfont: {size: 11},
      hovertemplate: '%{y}, %{x}<br>%{text}<extra></extra>', showscale: false}],
    {yaxis: {autorange: 'reversed', type: 'category'}, xaxis: {side: 'top', type: 'category'},
      margin: {...LAYOUT.margin, t: 40, b: 16}});
  }

  function plotSegments(rfm) {
    const names = Object.keys(rfm.segments);
    return plot('segments', [{type: 'bar', x: names, y: names.map((name) => rfm.segments[name]),
      marker: {color: names.map((_, i) => SEGMENT_COLORS[i % SEGMENT_COLORS.length])}, text: names.map(
        (name) => String(rfm.segments[name])), textposition: 'outside', cliponaxis: false,
      hovertemplate: '%{x}: %{y} customers<extra></extra>'}],
    {yaxis: {title: {text: 'customers'}, rangemode: 'tozero'}, xaxis: {tickangle: -30}, margin: {...LAYOUT.margin,
      b: 90}});
  }

  function plotClv(clv) {
    const buckets = clv.distribution;
    const x = buckets.map((b, i) => `${fmt.int(b.low)}${i === buckets.length - 1 ? '+' : `–${fmt.int(b.high)}`}`);
    return plot('clv-distribution', [{type: 'bar', x, y: buckets.map((b) => b.customers), marker: {color: '#4292c6'},
      hovertemplate: 'total CLV %{x}: %{y} customers<extra></extra>'}],
    {bargap: 0.05, xaxis: {title: {text: 'total CLV (historic + predicted)'}, type: 'category', automargin: true},
      yaxis: {title: {text: 'customers'}}, annotations: emptyNote(clv.customers)});
  }

  // --- tables ----------------------------------------------------------------------------------------

  const customerButton = (id) => button(id, () => openCustomer(id));
  const row = (cells) => el('tr', null, null, ...cells.map((c) => (c instanceof Node ? el('td', null, null, c)
    : el('td', c))));
  const pill = (band) => el('span', band || '–', `pill ${band || ''}`);

  function renderTopCustomers(top) {
    $('top-customers').tBodies[0].replaceChildren(...top.map((c) => row([customerButton(c.customer_id),
      fmt.int(c.orders), c.segment, fmt.money(c.historic_clv), c.predicted_clv == null ? '–'
        : `${fmt.money(c.predicted_clv)} (${(c.predicted_clv_range || []).map(fmt.money).join('–') || '–'})`,
      fmt.money(c.total_clv), fmt.pct(c.p_alive), pill(c.churn_band), fmt.date(c.next_order_expected_at)])));
  }

  function renderTransitions(moves) {
    $('recent-transitions').tBodies[0].replaceChildren(...moves.map((t) => row([fmt.time(t.event_time),
      customerButton(t.customer_id), fmt.label(t.from_stage), fmt.label(t.to_stage), t.reason,
      t.historical ? 'yes' : 'no'])));
  }

  function renderDownloads(segments) {
    $('segment-downloads').replaceChildren(...Object.keys(segments).map((segment) => el('li', null, null,
      button(`${segment} (${segments[segment]})`, () => download(segment)))));
  }

  async function download(segment) {
    try {
      const blob = await (await api('v1/analytics/customers.csv', {segment})).blob();
      const url = URL.createObjectURL(blob);
      const name = `${segment.toLowerCase().replace(/[^a-z0-9]+/g, '-')}.csv`;
      const link = Object.assign(el('a'), {href: url, download: name});
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (error) {
      fail(error);
    }
  }

  // --- the drill-down --------------------------------------------------------------------------------

  async function openCustomer(id) {
    const panel = $('customer');
    panel.hidden = false;
    panel.dataset.state = 'loading';
    $('customer-title').textContent = id;
    $('customer-profile').replaceChildren(el('dd', 'Loading…'));
    $('customer-history').replaceChildren();
    try {
      const path = customerPath(id);
      const [profile, history] = await Promise.all([json(path), json(`${path}/transitions`)]);
      if ($('customer-title').textContent !== id) return;  // another customer was opened meanwhile
      renderProfile(profile);
      renderHistory(history);
      panel.dataset.state = 'loaded';
    } catch (error) {
      panel.dataset.state = 'error';
      $('customer-profile').replaceChildren(el('dd', error.message));
      fail(error);
    }
  }

  function renderProfile(p) {
    const s = p.scores;
    const acquisition = [p.acquisition.source, p.acquisition.channel].filter(Boolean).join(' / ') || '–';
    const fields = [['Stage', `${fmt.label(p.stage)} since ${fmt.date(p.stage_since)}`],
      ['Previous stage', fmt.label(p.previous_stage)], ['Orders', fmt.int(p.orders)],
      ['Revenue', fmt.money(p.revenue)], ['Acquisition', acquisition], ['First seen', fmt.date(p.first_seen_at)],
      ['Last seen', fmt.date(p.last_seen_at)]];
    if (s) {
      const range = s.predicted_clv_range ? ` (${s.predicted_clv_range.map(fmt.money).join('–')})` : '';
      fields.push(['Segment', `${s.segment} (R${s.r} F${s.f} M${s.m})`], ['Historic CLV', fmt.money(s.historic_clv)],
        ['Predicted CLV', `${fmt.money(s.predicted_clv)}${range}`], ['Total CLV', fmt.money(s.total_clv)],
        ['Churn risk', `${fmt.pct(s.churn_risk)} (${s.churn_band || '–'})`], ['P(alive)', fmt.pct(s.p_alive)],
        ['Days between orders', fmt.days(s.avg_days_between_orders)],
        ['Next order expected', fmt.date(s.next_order_expected_at)], ['Scored at', fmt.time(p.scored_at)]);
    } else {
      fields.push(['Scores', 'not scored yet (no order, or since the last refresh)']);
    }
    $('customer-profile').replaceChildren(...fields.flatMap(([name, value]) => [el('dt', name), el('dd', value)]));
  }

  function renderHistory(history) {
    $('customer-history').replaceChildren(...history.map((t) => el('li', null, null,
      el('span', fmt.time(t.event_time), 'when'),
      el('strong', `${t.from_stage ? `${fmt.label(t.from_stage)} → ` : ''}${fmt.label(t.to_stage)}`),
      el('span', ` · ${t.reason}${t.historical ? ' · imported' : ''}`, 'muted'))));
  }

  // --- start -----------------------------------------------------------------------------------------

  function start() {
    $('filters').addEventListener('submit', (event) => { event.preventDefault(); load(); });
    $('filters').addEventListener('change', () => load());
    $('sign-out').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      token = null;
      askForToken();
    });
    $('customer-close').addEventListener('click', () => { $('customer').hidden = true; });
    $('token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      token = event.target.elements.token.value.trim();
      sessionStorage.setItem(TOKEN_KEY, token);
      event.target.reset();
      showDashboard();
    });
    token = takeToken();
    if (token) showDashboard(); else askForToken();
  }

  function showDashboard() {
    $('token-form').hidden = true;
    $('content').hidden = false;
    load();
  }

  start();
})();
