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
  const ADMIN_KEY = 'lifecycle-dashboard-admin-token';  // asked for only when the operator refreshes
  const LAST_JOURNEY_STAGE = 'loyalty';  // nothing to convert to: no conversion shown
  const API_ROOT = new URL('.', location.href);  // the service's root: /dashboard -> /
  const CONFIG = {displaylogo: false, responsive: true};
  const LAYOUT = {margin: {t: 16, r: 16, b: 48, l: 56}, font: {family: 'system-ui, sans-serif', size: 12},
    paper_bgcolor: '#ffffff', plot_bgcolor: '#ffffff', legend: {orientation: 'h', y: -0.2}};
  const $ = (id) => document.getElementById(id);
  let token = null;
  let generation = 0;
  let currency = 'USD';  // the API's, with the CLV figures
  let money = new Intl.NumberFormat('en-US', {style: 'currency', currency});
  let moneyShort = new Intl.NumberFormat('en-US', {style: 'currency', currency, notation: 'compact'});

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
    money: (n) => (n == null ? '–' : money.format(Number(n))),
    moneyShort: (n) => (n == null ? '–' : moneyShort.format(Number(n))),
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

  // Over an empty chart: why it is empty (nothing at all yet, or nothing that passes the filters).
  const emptyNote = (shown, chosen) => (shown ? [] : [{
    text: Object.values(chosen).some(Boolean) ? 'No data for these filters' : 'No data yet', showarrow: false,
    xref: 'paper', yref: 'paper', x: 0.5, y: 0.5, font: {size: 14, color: '#616e7c'}}]);

  function useCurrency(code) {
    if (!code || code === currency) return;
    try {
      money = new Intl.NumberFormat('en-US', {style: 'currency', currency: code});
      moneyShort = new Intl.NumberFormat('en-US', {style: 'currency', currency: code, notation: 'compact'});
      currency = code;
    } catch { /* not a currency Intl knows: amounts stay in the last one known */ }
  }

  // --- the token and the API -------------------------------------------------------------------------

  function takeToken() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (fragment.has('token')) {
      if (fragment.get('token')) sessionStorage.setItem(TOKEN_KEY, fragment.get('token'));
      history.replaceState(null, '', location.pathname + location.search);  // the token leaves the address
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  async function api(path, params = {}, {method = 'GET', body, bearer = token} = {}) {
    const url = new URL(path, API_ROOT);
    for (const [name, value] of Object.entries(params)) if (value) url.searchParams.set(name, value);
    const headers = {Authorization: `Bearer ${bearer}`};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(url, {method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body)});
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
        json('v1/analytics/cohorts', chosen), json('v1/analytics/rfm', chosen),
        json('v1/analytics/clv', {...chosen, top: 20}), json('v1/analytics/transitions', {...chosen, limit: 50})]);
      const [[stages, funnel, cohorts, rfm, clv, moves]] = await Promise.all([answers, plotly()]);
      if (run !== generation) return;  // newer filters were applied meanwhile
      useCurrency(clv.currency);
      renderFigures(stages, clv, rfm);
      renderFit(clv.fit, clv.scored_at);
      renderTopCustomers(clv.top, chosen);
      renderTransitions(moves, chosen);
      renderDownloads(rfm.segments, chosen);
      await Promise.all([plotStageMix(stages, chosen), plotFunnel(funnel, chosen), plotCohorts(cohorts, chosen),
        plotRfm(rfm, chosen), plotSegments(rfm, chosen), plotClv(clv, chosen)]);
      if (run !== generation) return;
      window.dashboardTiming = {readyMs: performance.now()};
      document.body.dataset.ready = 'true';
    } catch (error) {
      if (run === generation) fail(error);
    }
  }

  // --- figures ---------------------------------------------------------------------------------------

  const scoredNobody = (fit) => fit != null && (fit.scored_customers ?? fit.customers) === 0;

  function renderFigures(stages, clv, rfm) {
    $('fig-customers').textContent = fmt.int(Object.values(stages.current).reduce((a, b) => a + b, 0));
    $('fig-buyers').textContent = fmt.int(clv.customers);
    $('fig-clv').textContent = fmt.money(clv.total);
    // The latest refresh's time, and only when it scored someone: a fresh time over empty figures misleads.
    const at = clv.scored_at || rfm.scored_at;
    if (!at) {
      $('fig-scored').textContent = 'not yet';
      $('fig-scored-note').textContent = 'no refresh has run';
    } else if (scoredNobody(clv.fit)) {
      $('fig-scored').textContent = 'no buyers yet';
      $('fig-scored-note').textContent = `the last refresh (${fmt.time(at)}) found no orders`;
    } else {
      $('fig-scored').textContent = fmt.time(at);
      $('fig-scored-note').textContent = '';
    }
  }

  function renderFit(fit, at) {
    const problems = $('fit-problems');
    problems.replaceChildren();
    if (!fit) {
      $('fit-summary').textContent = 'No model fit yet: scores appear after the first refresh ("Refresh figures").';
      return;
    }
    if (scoredNobody(fit)) {
      $('fit-summary').textContent = `The last refresh (${fmt.time(at)}) found no buyers: once orders are in, `
        + '"Refresh figures" scores them (or wait for the next scheduled refresh).';
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

  function plotStageMix(stages, chosen) {
    const x = stages.series.map((point) => point.period);
    const shown = STAGES.filter((stage) => stages.series.some((point) => point.customers[stage]));
    const traces = shown.map((stage) => ({type: 'scatter', mode: 'lines', stackgroup: 'mix', name: fmt.label(stage),
      x, y: stages.series.map((point) => point.customers[stage] || 0), line: {color: COLORS[stage], width: 1},
      fillcolor: COLORS[stage], hovertemplate: '%{y} customers<extra>%{fullData.name}</extra>'}));
    return plot('stage-mix', traces, {yaxis: {title: {text: 'customers'}, rangemode: 'tozero'},
      annotations: emptyNote(traces.length, chosen)});
  }

  function plotFunnel(funnel, chosen) {
    const x = funnel.stages.map((s) => `${fmt.label(s.stage)}<br>${fmt.days(s.median_days_in_stage)} median`);
    const last = (s) => s.stage === LAST_JOURNEY_STAGE;  // the journey's end: no later stage to convert to
    const bar = (name, key, color) => ({type: 'bar', name, x, y: funnel.stages.map((s) => s[key]),
      marker: {color}, hovertemplate: `%{y} ${name}<extra></extra>`});
    const converted = {...bar('converted', 'converted', '#31a354'), textposition: 'outside', cliponaxis: false,
      constraintext: 'none', textfont: {size: 11}, y: funnel.stages.map((s) => (last(s) ? null : s.converted)),
      text: funnel.stages.map((s) => (s.conversion == null || last(s) ? '' : `${fmt.pct(s.conversion)} convert`))};
    const period = `${fmt.date(funnel.start)} – ${fmt.date(funnel.end)}`;
    return plot('funnel', [bar('entered', 'entered', '#4292c6'), converted], {barmode: 'group',
      yaxis: {title: {text: `customers, ${period}`}, rangemode: 'tozero'},
      annotations: emptyNote(funnel.stages.some((s) => s.entered), chosen)});
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
    // The colour scale ends at the 95th percentile of the later months (a one-buyer cohort's 100% would
    // wash out every other cell); darker cells get light text (plotly's contrast), every cell its percentage.
    const later = z.flatMap((row) => row.slice(1)).filter((v) => v != null).sort((a, b) => a - b);
    const high = later.length ? later[Math.floor(0.95 * (later.length - 1))] : 0;
    const height = Math.max(360, 22 * cohorts.length + 100);
    $('cohorts').style.height = `${height}px`;
    const heatmap = {type: 'heatmap', x, y: cohorts.map((c) => `${c.month} (${c.size})`), z, zmin: 0,
      zmax: Math.max(0.05, high), colorscale: BLUES, xgap: 2, ygap: 2, textfont: {size: 11},
      text: z.map((row) => row.map((v) => (v == null ? '' : fmt.pct(v)))), texttemplate: '%{text}',
      hovertemplate: 'cohort %{y}, month %{x}: %{text}<extra></extra>', colorbar: {tickformat: '.0%'}};
    return plot('cohorts', cohorts.length ? [heatmap] : [], {height, xaxis: {title: {text: 'months since first purchase'},
      dtick: 1}, yaxis: {autorange: 'reversed', type: 'category', automargin: true, dtick: 1},
      margin: {...LAYOUT.margin, l: 16},
      annotations: emptyNote(cohorts.length, chosen)});
  }

  function plotRfm(rfm, chosen) {
    const rows = [5, 4, 3, 2, 1];
    const columns = [1, 2, 3, 4, 5];
    const cell = (r, fm) => rfm.grid.find((c) => c.r === r && c.fm === fm) || {segment: '', customers: 0};
    const grid = rows.map((r) => columns.map((fm) => cell(r, fm)));
    return plot('rfm-grid', [{type: 'heatmap', x: columns.map((fm) => `FM ${fm}`), y: rows.map((r) => `R ${r}`),
      z: grid.map((row) => row.map((c) => c.customers)), colorscale: GREENS, xgap: 2, ygap: 2, zmin: 0,
      zmax: Math.max(1, ...grid.flat().map((c) => c.customers)),
      text: grid.map((row) => row.map((c) => `${c.segment}<br>${c.customers}`)), texttemplate: '%{text}',
      textfont: {size: 11},
      hovertemplate: '%{y}, %{x}<br>%{text}<extra></extra>', showscale: false}],
    {yaxis: {autorange: 'reversed', type: 'category'}, xaxis: {side: 'top', type: 'category'},
      margin: {...LAYOUT.margin, t: 40, b: 32},  // an empty grid's note goes below it, not over its cells
      annotations: emptyNote(rfm.grid.some((c) => c.customers), chosen).map((note) => ({...note, y: 0,
        yanchor: 'top', yshift: -4}))});
  }

  function plotSegments(rfm, chosen) {
    const names = Object.keys(rfm.segments);
    return plot('segments', [{type: 'bar', x: names, y: names.map((name) => rfm.segments[name]),
      marker: {color: names.map((_, i) => SEGMENT_COLORS[i % SEGMENT_COLORS.length])}, text: names.map(
        (name) => String(rfm.segments[name])), textposition: 'outside', cliponaxis: false,
      hovertemplate: '%{x}: %{y} customers<extra></extra>'}],
    {yaxis: {title: {text: 'customers'}, rangemode: 'tozero'}, xaxis: {tickangle: -30}, margin: {...LAYOUT.margin,
      b: 90}, annotations: emptyNote(names.some((name) => rfm.segments[name]), chosen)});
  }

  function plotClv(clv, chosen) {
    const buckets = clv.distribution;
    const x = buckets.map((b, i) => `${fmt.moneyShort(b.low)}${i === buckets.length - 1 ? '+'
      : `–${fmt.moneyShort(b.high)}`}`);
    return plot('clv-distribution', [{type: 'bar', x, y: buckets.map((b) => b.customers), marker: {color: '#4292c6'},
      hovertemplate: 'total CLV %{x}: %{y} customers<extra></extra>'}],
    {bargap: 0.05, xaxis: {title: {text: `total CLV in ${currency} (historic + predicted)`}, type: 'category',
      automargin: true}, yaxis: {title: {text: 'customers'}}, annotations: emptyNote(clv.customers, chosen)});
  }

  // --- tables ----------------------------------------------------------------------------------------

  const customerButton = (id) => button(id, () => openCustomer(id));
  const row = (cells) => el('tr', null, null, ...cells.map((c) => (c instanceof Node ? el('td', null, null, c)
    : el('td', c))));
  const pill = (band) => el('span', band || '–', `pill ${band || ''}`);

  function nextOrder(at) {  // the expected date, marked when it has passed without an order
    const cell = el('span', fmt.date(at));
    if (at && Date.parse(at) < Date.now()) cell.append(el('span', 'overdue', 'overdue'));
    return cell;
  }

  // An empty table says why, as the charts do.
  const emptyRow = (columns, chosen) => el('tr', null, 'empty', Object.assign(el('td',
    Object.values(chosen).some(Boolean) ? 'No data for these filters' : 'No data yet', 'muted'), {colSpan: columns}));

  function renderTopCustomers(top, chosen) {
    const rows = top.map((c) => row([customerButton(c.customer_id),
      fmt.int(c.orders), c.segment, fmt.money(c.historic_clv), c.predicted_clv == null ? '–'
        : `${fmt.money(c.predicted_clv)} (${(c.predicted_clv_range || []).map(fmt.money).join('–') || '–'})`,
      fmt.money(c.total_clv), fmt.pct(c.p_alive), pill(c.churn_band), nextOrder(c.next_order_expected_at)]));
    $('top-customers').tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(9, chosen)]));
  }

  function renderTransitions(moves, chosen) {
    const rows = moves.map((t) => row([fmt.time(t.event_time),
      customerButton(t.customer_id), fmt.label(t.from_stage), fmt.label(t.to_stage), t.reason,
      t.historical ? 'yes' : 'no']));
    $('recent-transitions').tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(6, chosen)]));
  }

  function renderDownloads(segments, chosen) {
    $('segment-downloads').replaceChildren(...Object.keys(segments).map((segment) => el('li', null, null,
      button(`${segment} (${segments[segment]})`, () => download(segment, chosen)))));
  }

  async function download(segment, chosen) {
    try {
      const blob = await (await api('v1/analytics/customers.csv', {...chosen, segment})).blob();
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
        ['Churn risk', `${fmt.pct(s.churn_risk)} (${s.churn_band || '–'})`],
        ['P(alive)', s.p_alive == null ? '–' : `${fmt.pct(s.p_alive)}${s.orders === 1
          ? ' (BG/NBD: a one-time buyer counts as alive until a repeat purchase; see churn risk)' : ''}`],
        ['Days between orders', fmt.days(s.avg_days_between_orders)],
        ['Next order expected', `${fmt.date(s.next_order_expected_at)}${s.next_order_expected_at
          && Date.parse(s.next_order_expected_at) < Date.now() ? ' (overdue)' : ''}`],
        ['Scored at', fmt.time(p.scored_at)]);
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

  // --- the refresh (admin token) -------------------------------------------------------------------------

  function refreshNote(text, bad = false) {
    const note = $('refresh-status');
    note.textContent = text;
    note.classList.toggle('bad', bad);
    note.hidden = !text;
    document.body.dataset.refresh = bad ? 'error' : text ? 'busy' : '';
  }

  function askForAdminToken() {
    $('admin-form').hidden = false;
    $('admin-form').elements.token.focus();
  }

  const pause = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

  async function refreshFigures() {
    const admin = sessionStorage.getItem(ADMIN_KEY);
    if (!admin) {
      askForAdminToken();
      return;
    }
    $('refresh').disabled = true;
    refreshNote('Asking for a refresh…');
    try {
      let fit;
      try {
        fit = await (await api('v1/admin/analytics/fits', {}, {method: 'POST', body: {}, bearer: admin})).json();
      } catch (error) {
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
          sessionStorage.removeItem(ADMIN_KEY);  // the refused token is forgotten
          refreshNote(error.status === 401
            ? 'The admin token was refused (401): enter the stage engine\'s admin token '
              + '(LIFECYCLE_STAGE_ENGINE_ADMIN_TOKEN), not the API token.'
            : `Refreshing is disabled on this stage engine (403): ${error.message}`, true);
          if (error.status === 401) askForAdminToken();
          return;
        }
        throw error;
      }
      const deadline = Date.now() + 15 * 60 * 1000;
      while (fit.status !== 'done' && fit.status !== 'failed') {
        if (Date.now() > deadline) throw new Error('The refresh has not finished after 15 minutes; it goes on.');
        refreshNote(`Refreshing the figures (${fit.status})…`);
        await pause(1000);
        fit = await json(`v1/analytics/fits/${encodeURIComponent(fit.id)}`);
      }
      if (fit.status === 'failed') {
        refreshNote(`The refresh failed: ${(fit.result && fit.result.error) || 'see the stage engine log'}`, true);
        return;
      }
      refreshNote(`Figures refreshed at ${fmt.time(fit.finished_at)}: ${fmt.int(fit.result.scored_customers)} `
        + 'buyers scored.');
      document.body.dataset.refresh = 'done';
      await load();
    } catch (error) {
      refreshNote(error && error.message ? error.message : String(error), true);
    } finally {
      $('refresh').disabled = false;
    }
  }

  // --- start -----------------------------------------------------------------------------------------

  function start() {
    $('filters').addEventListener('submit', (event) => { event.preventDefault(); load(); });
    $('filters').addEventListener('change', () => load());
    $('sign-out').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      sessionStorage.removeItem(ADMIN_KEY);
      token = null;
      askForToken();
    });
    $('refresh').addEventListener('click', () => refreshFigures());
    $('admin-cancel').addEventListener('click', () => { $('admin-form').hidden = true; });
    $('admin-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const admin = event.target.elements.token.value.trim();
      event.target.reset();
      if (!admin) return;
      sessionStorage.setItem(ADMIN_KEY, admin);
      $('admin-form').hidden = true;
      refreshFigures();
    });
    $('customer-close').addEventListener('click', () => { $('customer').hidden = true; });
    linkCampaigns();
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

  // The campaigns page (messaging's origin) when the stage engine knows its address: the API token goes in
  // its fragment (never to a server), with this page's address for its link back.
  function linkCampaigns() {
    const link = $('campaigns-link');
    const base = link.getAttribute('href');
    if (!/^https?:\/\//.test(base)) return;
    link.hidden = false;
    link.addEventListener('click', () => {
      const fragment = new URLSearchParams({dashboard: location.origin + location.pathname});
      if (token) fragment.set('token', token);
      link.href = base.split('#')[0] + '#' + fragment.toString();
    });
  }

  function showDashboard() {
    $('token-form').hidden = true;
    $('content').hidden = false;
    load();
  }

  start();
})();
