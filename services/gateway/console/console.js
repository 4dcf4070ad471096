// orderflow console: a dependency-free single-page app over the gateway's JSON API.
// Hash routing; each view gets an AbortSignal that stops its fetches, polling, stream and timers.
'use strict';

const TOKEN_KEY = 'orderflow.token';
const STATUSES = ['PENDING', 'RESERVED', 'PAID', 'SHIPPED', 'CANCELLED', 'REFUND_PENDING'];
const REASONS = ['OUT_OF_STOCK', 'PAYMENT_DECLINED', 'PAYMENT_UNAVAILABLE', 'SHIPPING_FAILED'];
const COMPENSATIONS = new Set(['InventoryReleased', 'PaymentRefunded', 'PaymentRefundFailed', 'OrderCancelled']);
const FAILURES = new Set(['InventoryUnavailable', 'PaymentFailed', 'ShipmentFailed']);
const MAX_ROWS = 200;

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
const main = () => $('#view');
const enc = encodeURIComponent;

// Tiny templating: interpolated values are HTML-escaped unless wrapped in raw().
class Raw { constructor(s) { this.s = s; } }
const raw = (s) => new Raw(s);
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const val = (v) => (v instanceof Raw ? v.s : Array.isArray(v) ? v.map(val).join('') : v === false ? '' : esc(v));
const html = (strs, ...vals) => raw(strs.reduce((a, s, i) => a + s + (i < vals.length ? val(vals[i]) : ''), ''));
const DASH = raw('<span class="muted">—</span>');
const row = (k, v, cls = '') => html`<div><dt>${k}</dt><dd class="${cls}">${v}</dd></div>`;

// ---- formatting ----
// Timestamps may carry µs/ns; Date.parse wants at most milliseconds.
const parseTime = (s) => (s ? Date.parse(String(s).replace(/(\.\d{3})\d+/, '$1')) : NaN);
// Times are shown in UTC so they line up with service logs and traces.
const hms = (t) => new Date(t).toISOString().slice(11, 23);
const dateTime = (t) => (Number.isFinite(t) ? new Date(t).toISOString().slice(0, 19).replace('T', ' ') + ' UTC' : '—');
const words = (s) => { const w = String(s).replace(/_/g, ' ').replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase(); return w[0].toUpperCase() + w.slice(1); };
const num = (n) => (Number.isFinite(n) ? n.toLocaleString() : '—');
const plural = (n, w) => `${n} ${w}${n === 1 ? '' : 's'}`;
const times = (n) => plural(n, 'time');
function age(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min` : s < 86400 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 86400)} d`;
}
const fmts = new Map();
function money(m) {
  if (!m || !Number.isFinite(m.amount_minor)) return '';
  try {
    if (!fmts.has(m.currency)) fmts.set(m.currency, new Intl.NumberFormat(undefined, { style: 'currency', currency: m.currency, minimumFractionDigits: 2, maximumFractionDigits: 2 }));
    return fmts.get(m.currency).format(m.amount_minor / 100);
  } catch { return `${(m.amount_minor / 100).toFixed(2)} ${m.currency}`; }
}
const pill = (s) => html`<span class="pill pill-${String(s).toLowerCase()}">${s}</span>`;
const sleep = (ms, sig) => new Promise((r) => { const t = setTimeout(r, ms); sig.addEventListener('abort', () => { clearTimeout(t); r(); }, { once: true }); });

// ---- API ----
const state = { token: null, me: null, view: null, config: null };
class ApiError extends Error { constructor(status, detail) { super(detail); this.status = status; } }

async function toError(res) {
  let detail = `${res.status} ${res.statusText}`.trim();
  try { const p = await res.json(); detail = p.detail || p.title || detail; } catch { /* not problem+json */ }
  // A 401 mid-session: the token expired or was revoked, so back to the login view.
  if (res.status === 401 && state.me) refused(detail);
  return new ApiError(res.status, detail);
}
async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = { Accept: 'application/json', Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, signal, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) throw await toError(res);
  return res.status === 204 ? null : res.json();
}
async function config() {
  try { state.config ??= await (await fetch('/console/config.json')).json(); } catch { state.config = {}; }
  return state.config;
}

// ---- session ----
function showLogin(message = '') {
  $('#app').hidden = true;
  $('#login-view').hidden = false;
  const m = $('#login-message');
  m.textContent = message;
  m.hidden = !message;
  document.title = 'Sign in · orderflow';
  $('#token-input').focus();
}
function endSession() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.me = state.token = null;
  state.view?.abort();
  main().replaceChildren();
}
function refused(detail) { endSession(); showLogin(`The token was refused: ${detail}`); }

async function signIn(token) {
  state.token = token;
  let me;
  try { me = await api('/v1/me'); } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    return showLogin(e.status === 401 ? `The token was refused: ${e.message}` : `Could not reach the gateway: ${e.message}`);
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  state.me = me;
  $('#user-subject').textContent = me.subject;
  $('#user-email').textContent = me.email || '';
  $('#user-avatar').textContent = (me.subject || '?')[0].toUpperCase();
  $('#user-role').textContent = me.operator ? 'operator' : 'customer';
  $('#user-role').classList.toggle('op', !!me.operator);
  for (const a of $$('.op-only')) a.hidden = !me.operator;
  $('#login-view').hidden = true;
  $('#app').hidden = false;
  route();
}

// ---- routing ----
function route() {
  if (!state.me) return;
  state.view?.abort();
  state.view = new AbortController();
  const sig = state.view.signal;
  const [top = 'orders', ...rest] = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch { return p; } });
  for (const a of $$('nav a')) if (a.dataset.nav === top) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  // Customers never trigger an operator call: the guard runs before any view code.
  if ((top === 'dead-letters' || top === 'stock') && !state.me.operator) return viewForbidden();
  if (top === 'orders' && !rest.length) return viewOrders(sig);
  if (top === 'orders' && rest.length === 1) return viewOrder(rest[0], sig);
  if (top === 'dead-letters' && !rest.length) return viewLetters(sig);
  // Only a well-formed id reaches the API (it is part of a request path).
  if (top === 'dead-letters' && rest.length === 3 && /^[a-z]+$/.test(rest[0]) && rest.slice(1).every((p) => /^\d+$/.test(p))) return viewLetter(rest.join('/'), sig);
  if (top === 'stock' && !rest.length) return viewStock(sig);
  viewError('Page not found', `There is nothing at ${location.hash}.`);
}
function setView(content, title) {
  document.title = `${title} · orderflow`;
  main().innerHTML = val(content);
}
const back = (href, label) => html`<a class="back" href="${href}"><span aria-hidden="true">←</span> ${label}</a>`;
const spinner = (label) => html`<div class="loading" role="status"><span class="spin" aria-hidden="true"></span>${label}</div>`;
const glyph = (cls, path) => html`<div class="glyph ${cls}" aria-hidden="true"><svg viewBox="0 0 24 24">${raw(path)}</svg></div>`;

function viewForbidden() {
  setView(html`<section id="forbidden" class="empty-state">${glyph('', '<rect x="5" y="11" width="14" height="9" rx="2"/><path d="M8 11V8a4 4 0 0 1 8 0v3"/>')}
    <h1>Operators only</h1>
    <p>This page needs an operator token. You are signed in as customer <strong>${state.me.subject}</strong>, who can see their own orders.</p>
    <a class="btn" href="#/orders">Go to your orders</a></section>`, 'Operators only');
}
function viewError(title, detail, href = '#/orders', label = 'Back to orders') {
  setView(html`<section id="error" class="empty-state">${glyph('warn', '<circle cx="12" cy="12" r="9"/><path d="M12 7.5v5.5M12 16.5v.01"/>')}
    <h1>${title}</h1><p>${detail}</p><a class="btn" href="${href}">${label}</a></section>`, title);
}

// ---- live orders ----
let ordersFilter = '';
// A newer list request (filter change) aborts the older one, and both die with the view.
const reqs = {};
function fresh(key, sig) {
  reqs[key]?.abort();
  const ctl = (reqs[key] = new AbortController());
  sig.addEventListener('abort', () => ctl.abort(), { once: true });
  return ctl.signal;
}

function viewOrders(sig) {
  setView(html`<div class="page-head">
    <div><h1>Orders</h1><p class="sub">Every order and status change, as it happens.</p></div>
    <div id="stream-state" class="stream" data-state="connecting" role="status" aria-live="polite"><span class="dot"></span><span class="label">connecting…</span></div>
  </div>
  <section id="counts" class="counts" aria-label="Orders by status">${STATUSES.map((s) => html`
    <div class="card stat" data-status="${s}"><div class="stat-main"><span class="stat-label"><span class="dot"></span>${words(s)}</span><span class="count">–</span></div>
    ${s === 'CANCELLED' && html`<ul class="reasons" aria-label="Cancelled by reason">${REASONS.map((r) => html`<li data-reason="${r}" class="zero"><span title="${r}">${words(r)}</span><b>0</b></li>`)}</ul>`}</div>`)}
  </section>
  <section class="card rate">
    <div class="rate-head"><div><h2>Orders placed per second</h2><p class="sub">Last 60 seconds</p></div>
      <p class="rate-now"><b id="rate-now">–</b> /s now<span class="sub" id="rate-more"></span></p></div>
    <svg id="rate-chart" role="img" aria-label="Orders placed per second over the last minute"></svg>
  </section>
  <section class="card table-card">
    <div class="card-head"><h2>Recent orders <span class="muted" id="orders-count"></span></h2>
      <div class="field-inline"><label for="status-filter">Status</label>
      <select id="status-filter"><option value="">All</option>${STATUSES.map((s) => html`<option>${s}</option>`)}</select></div></div>
    <div class="table-scroll"><table id="orders" class="data">
      <thead><tr><th>Order</th><th>Customer</th><th>Status</th><th>Reason</th><th class="num">Total</th><th class="num">Age</th></tr></thead>
      <tbody></tbody></table><p class="table-empty" id="orders-empty" hidden></p></div>
  </section>`, 'Orders');
  const filter = $('#status-filter');
  filter.value = ordersFilter;
  filter.addEventListener('change', () => { ordersFilter = filter.value; loadOrders(sig); });
  const tick = setInterval(() => {
    for (const td of $$('#orders td.age')) if (td.dataset.placed) td.textContent = age(Date.now() - td.dataset.placed);
  }, 1000);
  sig.addEventListener('abort', () => clearInterval(tick));
  pollSummary(sig);
  loadOrders(sig).then(() => stream(sig));
}

function orderRow(o, changedAt) {
  const tr = document.createElement('tr');
  const placed = parseTime(o.placed_at);
  Object.assign(tr.dataset, { orderId: o.order_id, status: o.status, changedAt });
  tr.innerHTML = val(html`<td><a class="mono id" href="#/orders/${enc(o.order_id)}" title="${o.order_id}">${o.order_id}</a></td>
    <td>${o.customer_id}</td><td class="status">${pill(o.status)}</td><td class="reason">${o.reason || ''}</td>
    <td class="num">${money(o.total) || DASH}</td>
    <td class="num age"${Number.isFinite(placed) && raw(` data-placed="${placed}"`)} title="Placed ${dateTime(placed)}, changed ${dateTime(changedAt)}">${Number.isFinite(placed) ? age(Date.now() - placed) : '—'}</td>`);
  return tr;
}
function syncOrdersMeta() {
  const n = $('#orders tbody').rows.length;
  $('#orders-empty').hidden = n > 0;
  $('#orders-count').textContent = n ? `· ${n}` : '';
}

async function loadOrders(sig) {
  const signal = fresh('orders', sig);
  const q = new URLSearchParams({ limit: '100' });
  if (ordersFilter) q.set('status', ordersFilter);
  const empty = $('#orders-empty');
  $('#orders').setAttribute('aria-busy', 'true');
  // Stream events that arrive while the list loads are applied on top of it.
  ordersPending = [];
  try {
    const { orders = [] } = await api(`/v1/orders?${q}`, { signal });
    $('#orders tbody').replaceChildren(...orders.slice(0, MAX_ROWS).map((o) => orderRow(o, parseTime(o.changed_at || o.placed_at))));
    const pending = ordersPending;
    ordersPending = null;
    pending.forEach(applyOrderEvent);
    empty.textContent = ordersFilter ? `No ${words(ordersFilter).toLowerCase()} orders right now.` : 'No orders yet. New orders appear here as soon as they are placed.';
  } catch (e) {
    ordersPending = null;
    if (signal.aborted) return;
    $('#orders tbody').replaceChildren(); // rows of another filter must not stay under its name
    empty.textContent = `Could not load orders: ${e.message}`;
  }
  $('#orders').removeAttribute('aria-busy');
  syncOrdersMeta();
}

// Idempotent upsert: a resumed stream may repeat events, so one older than the row is dropped.
let ordersPending = null;
function applyOrderEvent(o) {
  if (ordersPending) return void ordersPending.push(o);
  const t = parseTime(o.changed_at), tbody = $('#orders tbody');
  if (!o.order_id || !Number.isFinite(t) || !tbody) return;
  const tr = $(`tr[data-order-id="${CSS.escape(o.order_id)}"]`, tbody);
  if (tr && t < +tr.dataset.changedAt) return;
  if (ordersFilter && o.status !== ordersFilter) { tr?.remove(); return syncOrdersMeta(); }
  if (tr && t === +tr.dataset.changedAt && tr.dataset.status === o.status) return; // exact repeat
  const row = orderRow(o, t);
  if (tr) tr.replaceWith(row); else tbody.prepend(row);
  row.classList.add('flash');
  setTimeout(() => row.classList.remove('flash'), 1600);
  while (tbody.rows.length > MAX_ROWS) tbody.lastElementChild.remove();
  syncOrdersMeta();
}

function setStreamState(s) {
  const el = $('#stream-state');
  if (!el || el.dataset.state === s) return;
  el.dataset.state = s;
  $('.label', el).textContent = s === 'live' ? 'live' : 'reconnecting…';
}

// Server-Sent Events read through fetch(): EventSource cannot send an Authorization header.
async function stream(sig) {
  let lastId = null, first = true;
  while (!sig.aborted) {
    try {
      // Without a resume point, what changed while disconnected is read from the list.
      if (!first && lastId === null) await loadOrders(sig);
      first = false;
      const headers = { Authorization: `Bearer ${state.token}`, Accept: 'text/event-stream' };
      if (lastId !== null) headers['Last-Event-ID'] = lastId;
      const res = await fetch('/v1/orders/stream', { headers, signal: sig, cache: 'no-store' });
      if (!res.ok || !res.body) {
        await toError(res);
        if (res.status === 401) return;
        if (res.status < 500) lastId = null; // resume point refused: start afresh
        throw new Error();
      }
      setStreamState('live');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '', ev = { id: null, event: '', data: [] };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const lines = (buf += value).split('\n');
        buf = lines.pop(); // an incomplete line waits for the next chunk
        for (let line of lines) {
          if (line.endsWith('\r')) line = line.slice(0, -1);
          if (!line) { // a blank line dispatches the event
            if (ev.id !== null) lastId = ev.id;
            if (ev.data.length && (!ev.event || ev.event === 'order')) {
              try { applyOrderEvent(JSON.parse(ev.data.join('\n'))); } catch (err) { console.warn('bad stream event', err); }
            }
            ev = { id: null, event: '', data: [] };
          } else if (line[0] !== ':') { // lines starting with ':' are comments (keepalives)
            const i = line.indexOf(':');
            const field = i < 0 ? line : line.slice(0, i);
            const v = i < 0 ? '' : line.slice(line[i + 1] === ' ' ? i + 2 : i + 1);
            if (field === 'data') ev.data.push(v);
            else if (field === 'event') ev.event = v;
            else if (field === 'id') ev.id = v;
          }
        }
      }
    } catch { /* dropped or refused: reconnect below */ }
    if (sig.aborted) return;
    setStreamState('reconnecting');
    await sleep(1000, sig);
  }
}

async function pollSummary(sig) {
  while (!sig.aborted) {
    try { renderSummary(await api('/v1/orders/summary', { signal: sig })); } catch { /* next poll */ }
    await sleep(2000, sig);
  }
}
function renderSummary(s) {
  for (const st of STATUSES) $(`#counts [data-status="${st}"] .count`).textContent = num(s.counts?.[st] ?? 0);
  for (const r of REASONS) {
    const li = $(`#counts [data-reason="${r}"]`), n = s.cancelled?.[r] ?? 0;
    $('b', li).textContent = num(n);
    li.classList.toggle('zero', !n);
  }
  const series = s.placed_per_second || [], svg = $('#rate-chart');
  // Drawn in CSS pixels (viewBox = element size) so bars stay crisp and text undistorted.
  const w = Math.max(120, svg.clientWidth), h = 72, top = 18, n = series.length || 1;
  const max = Math.max(1, ...series), now = series.at(-1) ?? 0, peak = Math.max(0, ...series);
  const avg = series.reduce((a, b) => a + b, 0) / n;
  const step = w / n, bw = Math.max(1, step - Math.min(3, step * 0.3)), y = (v) => (h - (v / max) * (h - top)).toFixed(1);
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.innerHTML = series.map((v, i) => `<rect x="${(i * step).toFixed(1)}" y="${v ? y(v) : h - 1}" width="${bw.toFixed(1)}" height="${v ? (h - y(v)).toFixed(1) : 1}" rx="1.5"${i === n - 1 ? ' class="now"' : ''}/>`).join('')
    + `<line class="avg" x1="0" x2="${w}" y1="${y(avg)}" y2="${y(avg)}"/><text x="${w}" y="11" text-anchor="end">${now}/s now</text>`;
  svg.setAttribute('aria-label', `Orders placed per second over the last minute: ${now} now, average ${avg.toFixed(1)}, peak ${peak}`);
  $('#rate-now').textContent = now;
  $('#rate-more').textContent = `average ${avg.toFixed(1)} · peak ${peak}`;
}

// ---- one order ----
function timelineStep(e, i, list) {
  const t = parseTime(e.at), prev = i ? parseTime(list[i - 1].at) : t;
  const kind = COMPENSATIONS.has(e.type) ? 'compensation' : FAILURES.has(e.type) ? 'failure' : e.type === 'OrderCompleted' ? 'done' : '';
  // The history names the sender by its CloudEvents source, /orderflow/<service>.
  const service = String(e.source).replace(/^\/orderflow\//, '');
  return html`<li class="step ${kind}" data-type="${e.type}" data-source="${service}">
    <span class="node" aria-hidden="true">${{ compensation: '↩', failure: '✕', done: '✓' }[kind] || ''}</span>
    <div class="step-body"><span class="step-title">${words(e.type)}</span><span class="step-source svc-${service}">${service}</span>
      <time datetime="${e.at}">${Number.isFinite(t) ? hms(t) : e.at}</time><span class="delta">+${Math.round(t - prev) || 0} ms</span>
      ${kind === 'compensation' ? html`<span class="tag">↩ compensation</span>` : kind === 'failure' && html`<span class="tag">✕ failure</span>`}</div></li>`;
}
// Offset ∝ time since the first event plus a fixed gap per step, so labels never overlap:
// x_i = i·gap + f_i·(width − (n−1)·gap − label), f_i ∈ [0,1]; cqw is the list's width.
// Set through CSSOM because the gateway's CSP forbids style attributes.
function placeSteps(ol, hist) {
  const n = hist.length, ts = hist.map((e) => parseTime(e.at)), span = ts[n - 1] - ts[0];
  const f = ts.map((t) => (span > 0 ? (t - ts[0]) / span : 0).toFixed(4));
  const free = `(100cqw - ${n - 1} * var(--gap) - var(--label))`;
  ol.style.setProperty('--n', n);
  $$('.step', ol).forEach((li, i) => {
    li.style.setProperty('--x', `calc(${i} * var(--gap) + ${f[i]} * ${free})`);
    if (i) li.style.setProperty('--seg', `calc(var(--gap) + (${f[i]} - ${f[i - 1]}) * ${free})`);
  });
}

// ---- trace waterfall ----
// The order's trace (GET /v1/orders/{id}/trace, read from Jaeger by the gateway):
// a row per span — its service, its name indented under its parent, a bar from its
// start to its end on the trace's time axis. Without it the timeline tells the story.
const usText = (us) => (us >= 1000 ? `${(us / 1000).toFixed(us >= 100000 ? 0 : 1)} ms` : `${us} µs`);
function spanDepths(spans) {
  const byId = new Map(spans.map((sp) => [sp.span_id, sp]));
  const depth = (sp, seen = 0) => (sp.parent_span_id && byId.has(sp.parent_span_id) && seen < 64 ? 1 + depth(byId.get(sp.parent_span_id), seen + 1) : 0);
  return spans.map((sp) => depth(sp));
}
async function showTrace(id, sig) {
  let t;
  try { t = await api(`/v1/orders/${enc(id)}/trace`, { signal: sig }); } catch (e) {
    if (sig.aborted) return;
    $('#trace-status').textContent = e.status === 404 ? 'No trace recorded for this order (yet).' : `Trace unavailable: ${e.message}`;
    return;
  }
  if (sig.aborted) return;
  const spans = t.spans || [];
  const end = spans.reduce((m, sp) => Math.max(m, sp.start_us + sp.duration_us), 1);
  const depths = spanDepths(spans);
  const services = new Set(spans.map((sp) => sp.service));
  $('#trace-status').textContent = `${plural(spans.length, 'span')} · ${plural(services.size, 'service')} · ${usText(end)} end to end`;
  const ol = $('#trace');
  ol.innerHTML = val(spans.map((sp) => {
    const svc = sp.service.replace(/^orderflow-/, '');
    return html`<li class="span-row${sp.error ? ' error' : ''}" data-service="${sp.service}" data-kind="${sp.kind}">
      <span class="span-service svc-${svc}">${svc}</span>
      <span class="span-name" title="${sp.name} (${sp.kind})">${sp.name}</span>
      <span class="span-track"><span class="span-bar svc-${svc}"></span></span>
      <span class="span-dur tnum">${usText(sp.duration_us)}</span></li>`;
  }));
  // Through CSSOM: the gateway's CSP forbids style attributes.
  // A span too short to see is drawn 0.4 % wide, and kept inside the axis.
  $$('.span-row', ol).forEach((li, i) => {
    const width = Math.max((spans[i].duration_us / end) * 100, 0.4);
    const start = Math.min((spans[i].start_us / end) * 100, 100 - width);
    li.style.setProperty('--start', `${start.toFixed(3)}%`);
    li.style.setProperty('--width', `${width.toFixed(3)}%`);
    li.style.setProperty('--depth', Math.min(depths[i], 12));
  });
}

async function viewOrder(id, sig) {
  setView(html`${back('#/orders', 'Orders')}${spinner('Loading order…')}`, 'Order');
  let o;
  try { [o] = await Promise.all([api(`/v1/orders/${enc(id)}`, { signal: sig }), config()]); } catch (e) {
    if (sig.aborted) return;
    return e.status === 404
      ? viewError(`Order ${id} not found`, 'No order with this id is visible to you. Check the id, or sign in with a token that can see it.')
      : viewError('Could not load the order', e.message);
  }
  if (sig.aborted) return;
  const hist = [...(o.history || [])].sort((a, b) => parseTime(a.at) - parseTime(b.at));
  const t0 = parseTime(hist[0]?.at), span = hist.length ? parseTime(hist.at(-1).at) - t0 : 0;
  const jaeger = state.config?.jaeger_url;
  const trace = jaeger && o.trace_id && `${jaeger.replace(/\/+$/, '')}/trace/${o.trace_id}`;
  const compensated = hist.some((e) => COMPENSATIONS.has(e.type));
  setView(html`${back('#/orders', 'Orders')}
  <div class="page-head">
    <div><p class="eyebrow">Order</p><h1 class="mono">${o.order_id}</h1>
      <p class="head-meta">${pill(o.status)}${o.reason && html`<span class="reason-code">${o.reason}</span>`}</p></div>
    ${trace && html`<a id="trace-link" class="btn" href="${trace}" target="_blank" rel="noopener">View trace <span aria-hidden="true">↗</span></a>`}
  </div>
  <section class="card facts" aria-label="Order details"><dl>
    ${row('Customer', o.customer_id)}${row('Total', money(o.total) || '—', 'tnum')}
    ${row('Items', html`<ul class="items">${(o.items || []).map((it) => html`<li><span class="tnum">${it.quantity} ×</span> <span class="mono">${it.sku}</span></li>`)}</ul>`)}
    ${row('Tracking id', o.tracking_id || '—', 'mono')}${row('Placed', html`<time>${dateTime(t0)}</time>`)}
  </dl></section>
  <section class="card">
    <div class="card-head"><h2>Timeline</h2>
      <span class="sub">${plural(hist.length, 'event')} · ${Math.round(span) || 0} ms end to end · times in UTC${compensated && html` · <span class="warn-text">compensated</span>`}</span></div>
    <div class="timeline-scroll"><ol id="timeline" class="timeline">${hist.map(timelineStep)}</ol>${!hist.length && html`<p class="table-empty">No events recorded yet.</p>`}</div>
  </section>
  ${state.config?.traces && state.me?.operator && html`<section class="card" id="trace-card" aria-label="Trace">
    <div class="card-head"><h2>Trace</h2><span class="sub" id="trace-status" role="status">Loading the trace…</span></div>
    <ol id="trace" class="waterfall"></ol>
  </section>`}
  <section class="card table-card">
    <div class="card-head"><h2>Notifications</h2></div>
    <ul id="notifications" class="notes"></ul><p class="table-empty" id="notes-empty">Loading…</p>
  </section>`, `Order ${o.order_id.slice(0, 8)}`);
  if (hist.length) placeSteps($('#timeline'), hist);
  if (state.config?.traces && state.me?.operator) showTrace(o.order_id, sig);

  const empty = $('#notes-empty');
  try {
    const r = await api(`/v1/customers/${enc(o.customer_id)}/notifications`, { signal: sig });
    const list = (Array.isArray(r) ? r : r.notifications || []).filter((x) => x.order_id === o.order_id)
      .sort((a, b) => parseTime(a.sent_at) - parseTime(b.sent_at));
    $('#notifications').innerHTML = val(list.map((x) => html`<li><span class="note-kind">${words(x.kind || 'notification')}</span><span class="chip">${x.channel}</span>
      <span class="note-msg">${x.message}</span><time datetime="${x.sent_at}">${dateTime(parseTime(x.sent_at))}</time></li>`));
    empty.textContent = list.length ? '' : 'No notifications were sent for this order.';
  } catch (e) {
    if (!sig.aborted) empty.textContent = `Notifications unavailable: ${e.message}`;
  }
}

// ---- dead letters ----
const dlq = { service: '', event_type: '', order_id: '', since: 'any' }; // kept across visits

function viewLetters(sig) {
  const opts = (list, cur) => list.map(([v, l]) => html`<option value="${v}"${v === cur && raw(' selected')}>${l}</option>`);
  setView(html`<div class="page-head"><div><h1>Dead letters</h1><p class="sub">Events a service gave up on after retrying. Open one to inspect and replay it.</p></div></div>
  <form class="card filters" id="dlq-filters" role="search" aria-label="Filter dead letters">
    <div class="field"><label for="dlq-service">Service</label><select id="dlq-service">${opts([['', 'All services'], ...['order', 'inventory', 'payment', 'shipping', 'notification'].map((s) => [s, s])], dlq.service)}</select></div>
    <div class="field"><label for="dlq-event-type">Event type</label><input id="dlq-event-type" placeholder="e.g. OrderCreated" value="${dlq.event_type}" autocomplete="off"></div>
    <div class="field grow"><label for="dlq-order">Order id</label><input id="dlq-order" class="mono" placeholder="Any order" value="${dlq.order_id}" autocomplete="off"></div>
    <div class="field"><label for="dlq-since">Failed within</label><select id="dlq-since">${opts([['any', 'Any time'], ['15m', 'Last 15 minutes'], ['1h', 'Last hour'], ['24h', 'Last 24 hours'], ['7d', 'Last 7 days']], dlq.since)}</select></div>
    <button type="reset" class="btn ghost end">Clear filters</button>
  </form>
  <section class="card table-card" id="dlq-card">
    <div class="card-head"><h2>Letters</h2><span class="sub" id="dlq-status" role="status" aria-live="polite"></span></div>
    <div class="progress"></div>
    <div class="table-scroll"><table id="dead-letters" class="data clickable">
      <thead><tr><th>Id</th><th>Failed</th><th>Service</th><th>Event type</th><th>Order</th><th class="num">Attempts</th><th>Error</th><th class="num">Replayed</th></tr></thead>
      <tbody></tbody></table><div class="table-empty" id="dlq-empty"></div></div>
    <p class="foot sub" id="dlq-foot" hidden></p>
  </section>`, 'Dead letters');
  const form = $('#dlq-filters');
  let debounce;
  const read = () => {
    clearTimeout(debounce);
    Object.assign(dlq, { service: $('#dlq-service').value, event_type: $('#dlq-event-type').value.trim(), order_id: $('#dlq-order').value.trim(), since: $('#dlq-since').value });
    loadLetters(sig);
  };
  form.addEventListener('change', (e) => e.target.tagName === 'SELECT' && read());
  form.addEventListener('input', (e) => { if (e.target.tagName === 'INPUT') { clearTimeout(debounce); debounce = setTimeout(read, 400); } });
  form.addEventListener('submit', (e) => { e.preventDefault(); read(); });
  form.addEventListener('reset', () => setTimeout(read));
  // The whole row opens the letter; the id link keeps it reachable by keyboard.
  $('#dead-letters tbody').addEventListener('click', (e) => {
    const tr = e.target.closest('tr[data-id]');
    if (tr && !e.target.closest('a') && !getSelection().toString()) location.hash = `#/dead-letters/${tr.dataset.id}`;
  });
  loadLetters(sig);
}

async function loadLetters(sig) {
  const signal = fresh('letters', sig);
  const q = new URLSearchParams(Object.entries(dlq).filter(([k, v]) => v && !(k === 'since' && v === 'any')));
  q.set('limit', '100');
  const card = $('#dlq-card'), tbody = $('#dead-letters tbody'), empty = $('#dlq-empty'), status = $('#dlq-status'), foot = $('#dlq-foot');
  card.classList.add('busy');
  card.setAttribute('aria-busy', 'true');
  status.textContent = 'Loading…';
  if (!tbody.rows.length) empty.innerHTML = val(spinner('Loading dead letters…'));
  try {
    const r = await api(`/v1/dead-letters?${q}`, { signal });
    const letters = r.letters || [];
    tbody.innerHTML = val(letters.map((l) => {
      const t = parseTime(l.failed_at);
      return html`<tr data-id="${l.id}"><td><a class="mono id" href="#/dead-letters/${l.id}">${l.id}</a>${l.copies > 1 && html` <span class="chip" title="${l.copies} copies of one failure">×${l.copies}</span>`}</td>
        <td title="${dateTime(t)}">${Number.isFinite(t) ? `${age(Date.now() - t)} ago` : '—'}</td><td>${l.id.split('/')[0]}</td><td>${l.event_type || DASH}</td>
        <td>${l.order_id ? html`<span class="mono id" title="${l.order_id}">${l.order_id}</span>` : DASH}</td><td class="num">${l.attempts}</td>
        <td class="error-cell"><span title="${l.error}">${l.error}</span></td>
        <td class="num">${l.replayed_from && html`<span class="chip" title="A replay of ${l.replayed_from}">replay</span> `}${l.replay_count || 0}</td></tr>`;
    }));
    status.textContent = plural(letters.length, 'letter');
    empty.textContent = letters.length ? '' : 'No dead letters match these filters.';
    const hidden = r.reviewed_hidden || 0;
    const marks = (r.markers || []).map((m) => `${m.service}/${m.partition} below offset ${m.reviewed_up_to}`).join(', ');
    foot.hidden = !hidden;
    foot.textContent = `${hidden} already reviewed ${hidden === 1 ? 'letter is' : 'letters are'} hidden${marks && ` (${marks})`}.`;
  } catch (e) {
    if (signal.aborted) return;
    status.textContent = '';
    tbody.replaceChildren();
    empty.textContent = `Could not load dead letters: ${e.message}`;
  }
  card.classList.remove('busy');
  card.removeAttribute('aria-busy');
}

function decodedText(d) {
  if (d?.as === 'json') return JSON.stringify(d.value, null, 2);
  if (d?.as !== 'hex') return '(empty payload)';
  const bytes = String(d.hex).replace(/\s+/g, '').match(/../g) || [], out = [];
  for (let i = 0; i < bytes.length; i += 16) out.push(`${i.toString(16).padStart(4, '0')}  ${bytes.slice(i, i + 16).join(' ')}`);
  return out.join('\n');
}

async function viewLetter(id, sig) {
  setView(html`${back('#/dead-letters', 'Dead letters')}${spinner('Loading dead letter…')}`, 'Dead letter');
  let l;
  try { l = await api(`/v1/dead-letters/${id.split('/').map(encodeURIComponent).join('/')}`, { signal: sig }); } catch (e) {
    if (sig.aborted) return;
    return viewError(e.status === 404 ? `Dead letter ${id} not found` : 'Could not load the dead letter', e.message, '#/dead-letters', 'Back to dead letters');
  }
  if (sig.aborted) return;
  const [service, partition, offset] = id.split('/');
  const topic = l.source?.[0], d = l.decoded || { as: 'empty' }, payload = decodedText(d), label = topic ? `Replay to ${topic}` : 'Replay';
  let replays = l.replays || 0;
  setView(html`${back('#/dead-letters', 'Dead letters')}
  <div class="page-head">
    <div><p class="eyebrow">Dead letter</p><h1 class="mono">${l.id}</h1>
      <p class="head-meta"><span class="chip">${service}</span>${l.event_type && html`<span>${l.event_type}</span>`}<span class="sub">failed ${dateTime(parseTime(l.failed_at))}</span></p></div>
    <button type="button" id="replay" class="btn primary">Replay…</button>
  </div>
  <div id="replay-outcome" class="outcome" role="status" aria-live="polite"></div>
  <div class="split"><div>
    <section class="card"><div class="card-head"><h2>Error</h2><span class="sub">after ${plural(l.attempts, 'attempt')}</span></div>
      <pre class="error-text">${l.error}</pre></section>
    <section class="card"><div class="card-head"><h2>Payload</h2><span class="chip">${{ json: 'JSON', hex: 'binary' }[d.as] || 'empty'}</span></div>
      ${d.as === 'hex' && d.why && html`<p class="note">Shown as hex: ${d.why}</p>`}<pre id="decoded" class="code">${payload}</pre></section>
  </div><div>
    <section class="card"><div class="card-head"><h2>Details</h2></div><dl class="rows">
      ${row('Source', l.source ? l.source.join('/') : DASH, 'mono')}
      ${row('Order', l.order_id ? html`<a class="mono" href="#/orders/${enc(l.order_id)}">${l.order_id}</a>` : DASH)}
      ${row('Replayed', html`<span id="dl-replays">${times(replays)}</span>`)}
      ${row('Replay of', l.replayed_from || DASH, 'mono')}${row('Copies', l.copies ?? 1, 'tnum')}
    </dl></section>
    <section class="card"><div class="card-head"><h2>Headers</h2></div>
      ${l.headers?.length ? html`<table class="kv"><tbody>${l.headers.map(([k, v]) => html`<tr><th scope="row">${k}</th><td>${v}</td></tr>`)}</tbody></table>` : html`<p class="sub">No headers.</p>`}</section>
  </div></div>
  <dialog id="replay-confirm" aria-labelledby="replay-title"><form method="dialog">
    <h2 id="replay-title">Replay this dead letter?</h2>
    <p>The original event is published again to ${topic ? html`<strong class="mono">${topic}</strong>` : 'its source topic'}, and the consuming service handles it as if it were new.</p>
    <p class="alert warn" id="replay-again" hidden></p>
    <dl class="rows compact">
      ${row('Id', l.id, 'mono')}${row('Event type', l.event_type || DASH)}${row('Order', l.order_id || DASH, 'mono')}
      ${row('Target topic', topic || raw('<span class="muted">unknown (no source recorded)</span>'), 'mono')}
    </dl>
    <pre class="code small">${payload}</pre>
    <div class="dialog-actions"><button id="replay-cancel" class="btn" value="cancel">Cancel</button><button type="button" id="replay-confirm-yes" class="btn primary">${label}</button></div>
  </form></dialog>`, `Dead letter ${l.id}`);

  const dialog = $('#replay-confirm'), yes = $('#replay-confirm-yes'), outcome = $('#replay-outcome');
  sig.addEventListener('abort', () => dialog.open && dialog.close(), { once: true });
  $('#replay').addEventListener('click', () => {
    const again = $('#replay-again');
    again.hidden = !replays;
    again.textContent = `This letter was already replayed ${times(replays)}; replaying it again publishes another copy.`;
    yes.disabled = false;
    yes.textContent = label;
    dialog.showModal();
    $('#replay-cancel').focus(); // the safe choice has focus
  });
  yes.addEventListener('click', async () => {
    yes.disabled = true;
    yes.textContent = 'Replaying…';
    const show = (kind, text) => { outcome.className = `outcome alert ${kind}`; outcome.textContent = text; };
    try {
      const r = await api(`/v1/dead-letters/${service}/${partition}/${offset}/replay`, { method: 'POST', body: { again: replays > 0 }, signal: sig });
      if (r.outcome === 'replayed') {
        $('#dl-replays').textContent = times(++replays);
        show('ok', `Replayed to ${r.topic}/${r.partition}/${r.offset}`);
      } else if (r.outcome === 'skipped') show('warn', `Skipped: ${r.reason}`);
      else show('error', `Replay failed: ${r.reason || r.outcome}`);
    } catch (e) {
      if (sig.aborted) return;
      show('error', `Replay failed: ${e.message}`);
    }
    dialog.close();
  });
}

// ---- stock ----
const RULES = {
  available: (v) => (v === '' ? 'Required' : /^\d+$/.test(v) ? '' : 'A whole number, 0 or more'),
  amount_minor: (v) => (v === '' ? 'Required' : !/^-?\d+$/.test(v) ? 'A whole number of minor units' : +v < 1 || +v > 1e8 ? 'Between 1 and 100,000,000' : ''),
  currency: (v) => (/^[A-Z]{3}$/.test(v) ? '' : 'Three uppercase letters, e.g. EUR'),
};

function viewStock(sig) {
  setView(html`<div class="page-head"><div><h1>Stock</h1><p class="sub">Units available to reserve and unit prices per SKU. Saving applies immediately.</p></div></div>
  <section class="card table-card">
    <div class="card-head"><h2>Inventory</h2><span class="sub" id="stock-status"></span></div>
    <div class="table-scroll"><table id="stock" class="data form-table">
      <thead><tr><th>SKU</th><th class="num">Reserved</th><th>Available</th><th>Unit price <span class="muted">(minor units, currency)</span></th><th><span class="sr-only">Save</span></th></tr></thead>
      <tbody></tbody></table><div id="stock-empty">${spinner('Loading stock…')}</div></div>
  </section>`, 'Stock');
  loadStock(sig);
}

async function loadStock(sig) {
  let items;
  try { ({ items = [] } = await api('/v1/inventory', { signal: sig })); } catch (e) {
    if (!sig.aborted) $('#stock-empty').innerHTML = val(html`<p class="table-empty">Could not load stock: ${e.message}</p>`);
    return;
  }
  const tbody = $('#stock tbody');
  tbody.innerHTML = val(items.map(({ sku, reserved, available, unit_price: p = {} }) => html`<tr data-sku="${sku}">
    <th scope="row" class="mono">${sku}</th><td class="num reserved">${num(reserved)}</td>
    <td><div class="field"><input name="available" type="number" min="0" step="1" value="${available}" aria-label="Available units of ${sku}"></div></td>
    <td><div class="field"><input name="amount_minor" type="number" min="1" max="100000000" step="1" value="${p.amount_minor}" aria-label="Unit price of ${sku} in minor units">
      <input name="currency" maxlength="3" value="${p.currency}" autocomplete="off" spellcheck="false" aria-label="Currency of ${sku}"><output class="price-preview">${money(p)}</output></div></td>
    <td class="actions"><button type="button" class="btn save small">Save</button><span class="row-msg" role="status"></span></td></tr>`));
  $('#stock-empty').innerHTML = items.length ? '' : '<p class="table-empty">No SKUs yet.</p>';
  $('#stock-status').textContent = plural(items.length, 'SKU');
  for (const tr of tbody.rows) tr.saved = values(tr);
  tbody.addEventListener('input', (e) => { validate(e.target); syncRow(e.target.closest('tr')); });
  tbody.addEventListener('keydown', (e) => e.key === 'Enter' && e.target.matches('input') && $('.save', e.target.closest('tr')).click());
  tbody.addEventListener('click', (e) => { const b = e.target.closest('.save'); if (b && !b.disabled) saveStock(b.closest('tr'), sig); });
}

const values = (tr) => Object.fromEntries($$('input', tr).map((i) => [i.name, i.value.trim()]));
function validate(input) {
  // Unparseable text in a number input reads as "" but sets validity.badInput.
  const msg = input.validity.badInput ? 'Enter a number' : RULES[input.name](input.value.trim());
  let err = input.nextElementSibling?.classList.contains('field-error') ? input.nextElementSibling : null;
  if (msg) {
    if (!err) {
      err = Object.assign(document.createElement('span'), { className: 'field-error', id: `err-${input.name}-${input.closest('tr').rowIndex}` });
      input.after(err);
    }
    err.textContent = msg;
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', err.id);
  } else {
    err?.remove();
    input.removeAttribute('aria-invalid');
    input.removeAttribute('aria-describedby');
  }
  return !msg;
}
function syncRow(tr) {
  const v = values(tr);
  $('.save', tr).disabled = $$('input', tr).some((i) => i.getAttribute('aria-invalid'));
  tr.classList.toggle('dirty', JSON.stringify(v) !== JSON.stringify(tr.saved));
  $('.price-preview', tr).textContent = RULES.amount_minor(v.amount_minor) || RULES.currency(v.currency) ? '—' : money({ amount_minor: +v.amount_minor, currency: v.currency });
}

async function saveStock(tr, sig) {
  if (!$$('input', tr).map(validate).every(Boolean)) return syncRow(tr);
  const v = values(tr), btn = $('.save', tr), msg = $('.row-msg', tr);
  btn.disabled = true;
  btn.textContent = 'Saving…';
  msg.className = 'row-msg';
  msg.textContent = '';
  try {
    const s = await api(`/v1/inventory/${enc(tr.dataset.sku)}`, { method: 'PUT', signal: sig, body: { available: +v.available, unit_price: { amount_minor: +v.amount_minor, currency: v.currency } } });
    // The response is the server's view (a StockView): show exactly that.
    $('[name=available]', tr).value = s.available;
    $('[name=amount_minor]', tr).value = s.unit_price.amount_minor;
    $('[name=currency]', tr).value = s.unit_price.currency;
    $('.reserved', tr).textContent = num(s.reserved);
    tr.saved = values(tr);
    msg.className = 'row-msg saved';
    msg.textContent = 'Saved';
    setTimeout(() => { if (msg.classList.contains('saved')) { msg.className = 'row-msg'; msg.textContent = ''; } }, 2500);
  } catch (e) {
    if (sig.aborted) return;
    msg.className = 'row-msg row-error';
    msg.textContent = e.message;
  }
  btn.textContent = 'Save';
  syncRow(tr);
}

// ---- boot ----
function start() {
  // The dev banner's link carries the token in the fragment: keep it in this tab only and scrub the URL.
  const m = location.hash.match(/^#token=([^&]+)/);
  if (m) {
    let token = m[1];
    try { token = decodeURIComponent(token); } catch { /* not percent-encoded: as it is */ }
    sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, '', `${location.pathname}${location.search}#/orders`);
  }
  const tok = sessionStorage.getItem(TOKEN_KEY);
  if (tok) signIn(tok); else showLogin();
}
$('#login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const tok = $('#token-input').value.trim().replace(/^Bearer\s+/i, '');
  if (!tok) return showLogin('Paste a token first.');
  $('#token-input').value = '';
  signIn(tok);
});
$('#sign-out').addEventListener('click', () => {
  endSession();
  history.replaceState(null, '', `${location.pathname}${location.search}#/orders`);
  showLogin();
});
$('.skip').addEventListener('click', (e) => { e.preventDefault(); main().focus(); }); // not a route
addEventListener('hashchange', () => {
  if (location.hash.startsWith('#token=')) return start();
  route();
  main().focus({ preventScroll: true });
});
start();
