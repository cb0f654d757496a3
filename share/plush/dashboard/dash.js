// The dashboard page: one WebSocket of states (plush dashboard writes one
// a half second); each replaces the page's content. The pictures come
// drawn (SVG); nothing here holds tasks.
'use strict';
const token = new URLSearchParams(location.search).get('token') || '';
const $ = id => document.getElementById(id);
let last = null, prevCpu = {};

function fmtBytes(n) {
  if (n == null) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}
function fmtSecs(s) {
  if (s == null) return '';
  if (s >= 3600) return (s / 3600).toFixed(1) + ' h';
  if (s >= 120) return (s / 60).toFixed(0) + ' min';
  if (s >= 1) return s.toFixed(1) + ' s';
  return (s * 1000).toFixed(0) + ' ms';
}
function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text == null ? '' : String(text);
  if (cls) td.className = cls;
  if (cls === 'task') td.title = td.textContent; // cut short on screen
  tr.appendChild(td);
  return td;
}
function fill(body, rows, make) {
  const frag = document.createDocumentFragment();
  rows.forEach(r => frag.appendChild(make(r)));
  body.replaceChildren(frag);
}

function renderEngines(s) {
  let live = 0;
  const cpu = {};
  fill($('engines-body'), s.engines, e => {
    const tr = document.createElement('tr');
    tr.id = 'engine-' + e.id;
    tr.className = e.dead ? 'dead' : e.state;
    if (!e.dead) live++;
    let pct = '';
    if (e.cpu != null) {
      cpu[e.id] = [e.cpu, s.now];
      const p = prevCpu[e.id];
      if (p && s.now > p[1]) pct = Math.round(100 * (e.cpu - p[0]) / (s.now - p[1])) + ' %';
    }
    cell(tr, e.id); cell(tr, e.state);
    cell(tr, e.task ? e.task + (e.task_for != null ? ' (' + fmtSecs(e.task_for) + ')' : '') : '', 'task');
    cell(tr, e.queue); cell(tr, fmtBytes(e.rss)); cell(tr, pct);
    cell(tr, e.host); cell(tr, e.pid); cell(tr, fmtSecs(e.uptime));
    cell(tr, e.dead || '', 'died');
    return tr;
  });
  prevCpu = cpu;
  $('engines-count').textContent = live + ' live, ' + (s.engines.length - live) + ' gone';
}

function renderStream(s) {
  $('stream-svg').innerHTML = s.stream.svg;
  $('stream-count').textContent = s.stream.tasks;
  $('stream-running').textContent = s.stream.running;
  document.querySelectorAll('#stream-svg .task-error').forEach(g => {
    g.addEventListener('click', () => showError(g.dataset.id));
  });
}
function showError(id) {
  const d = (last && last.errors && last.errors[id]) || {};
  const el = $('detail');
  el.textContent = 'task ' + id + '\n' + (d.message || '(its message is being fetched)') +
    (d.traceback ? '\n' + d.traceback : '');
  el.hidden = false;
}

function renderProgress(s) {
  fill($('progress-body'), s.progress, p => {
    const tr = document.createElement('tr');
    tr.id = 'progress-' + p.client + (p.finished ? '-done' : '');
    tr.dataset.percent = p.percent;
    cell(tr, p.client);
    cell(tr, p.done + ' / ' + p.total, 'count');
    const td = cell(tr, '');
    const bar = document.createElement('span');
    bar.className = 'bar';
    const fillEl = document.createElement('span');
    fillEl.style.width = p.percent + '%';
    bar.appendChild(fillEl);
    td.appendChild(bar);
    td.appendChild(document.createTextNode(' ' + p.percent + '%'));
    td.className = 'percent';
    cell(tr, p.failed);
    cell(tr, p.rate != null ? p.rate.toFixed(1) + ' /s' : '');
    cell(tr, p.finished ? 'done' : (p.eta != null ? fmtSecs(p.eta) : ''));
    cell(tr, fmtSecs(p.elapsed));
    return tr;
  });
}

function renderRest(s) {
  const r = s.rates;
  $('rates').textContent = r.tasks.toFixed(1) + ' tasks/s, ' + fmtBytes(r.bytes) + '/s' +
    (r.latency != null ? ', latency ' + fmtSecs(r.latency) : '') + ' (last 10 s)';
  $('charts').innerHTML = s.charts.tasks + s.charts.bytes + s.charts.latency;
  fill($('clients-body'), s.clients, c => {
    const tr = document.createElement('tr');
    tr.id = 'client-' + c.id;
    cell(tr, c.id === s.self ? c.id + ' (this dashboard)' : c.id);
    cell(tr, c.addr); cell(tr, c.pending); cell(tr, c.done);
    cell(tr, c.running, 'task');
    return tr;
  });
  $('logs-text').textContent = (s.logs || []).join('\n');
  const st = s.status || {};
  $('where').textContent = 'profile ' + s.profile + ' on ' + s.host;
  $('summary').textContent = (st.engines || 0) + ' engines, ' + (st.clients || 0) + ' clients, ' +
    (st.pending || 0) + ' pending, ' + (st.queued || 0) + ' queued; ' + s.total + ' done, ' +
    s.failed + ' failed' +
    (s.lost ? ' (' + s.lost + ' more finished while the feed was behind: not shown)' : '');
}

function render(s) {
  last = s;
  renderEngines(s);
  renderStream(s);
  renderProgress(s);
  renderRest(s);
  document.body.dataset.updated = String(s.now);
  const conn = $('conn');
  if (s.controller_lost) {
    conn.textContent = 'controller lost (' + s.controller_lost + '): dialling again';
    conn.className = 'off';
  } else if (conn.className === 'off' && conn.textContent.startsWith('controller')) {
    conn.textContent = 'live';
    conn.className = 'on';
  }
}

function connect() {
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') +
    location.host + '/ws?token=' + encodeURIComponent(token));
  ws.onopen = () => { $('conn').textContent = 'live'; $('conn').className = 'on'; };
  ws.onmessage = ev => render(JSON.parse(ev.data));
  ws.onclose = () => {
    $('conn').textContent = 'disconnected: retrying';
    $('conn').className = 'off';
    setTimeout(connect, 1000);
  };
}
connect();
