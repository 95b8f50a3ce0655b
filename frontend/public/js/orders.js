// The orders card: the table of the current user's orders, kept live by the order stream
// (GET /api/orders/stream, Server-Sent Events): each event is one order's new state. While the
// stream is down (refused, broken, reconnecting) the list is polled instead: fetched again every
// second while any order is NEW (every 3 s after a failed fetch), and the stream is tried again
// every 5 s. Only the newest list request counts; answers for a user who is no longer current
// are dropped. With a bearer token (authentication on) the stream is read with fetch, which can
// send the Authorization header EventSource cannot; it behaves the same.

import { api, API_BASE, hasBearer, openEventStream } from './api.js';
import { t, has, formatMoney, formatDate, formatDateParts } from './i18n.js';
import { $ } from './dom.js';
import { showError, clearMsg } from './messages.js';
import { state } from './state.js';
import { authOn } from './auth.js';

const POLL_MS = 1000;
const POLL_RETRY_MS = 3000;
const STREAM_RETRY_MS = 5000;

/** Called when an order tracked in `state.pending` has left NEW (set with `onOrdersSettled`). */
let settledListener = () => {};

/** Register what happens once tracked orders settle (the balance and messages are not ours). */
export function onOrdersSettled(fn) {
  settledListener = fn;
}

// ---------------------------------------------------------------- rendering

export function renderOrders() {
  const body = $('orders-body');
  const empty = $('orders-empty');
  const wrap = $('orders-wrap');

  if (!state.userId) {
    empty.dataset.i18n = authOn() ? 'auth.needSignIn' : 'order.needUser';
    empty.textContent = t(empty.dataset.i18n);
    empty.hidden = false;
    wrap.hidden = true;
    body.replaceChildren();
    $('orders-live').hidden = true;
    return;
  }

  empty.dataset.i18n = 'orders.empty';
  empty.textContent = t('orders.empty');
  empty.hidden = state.orders.length > 0;
  wrap.hidden = state.orders.length === 0;
  $('orders-live').hidden = !state.orders.some((o) => o.status === 'NEW');

  const rows = state.orders.map(renderOrderRow);
  body.replaceChildren(...rows);
}

function cell(label, className) {
  const td = document.createElement('td');
  td.dataset.label = label;
  if (className) td.className = className;
  return td;
}

function renderOrderRow(o) {
  const tr = document.createElement('tr');
  tr.dataset.orderId = o.order_id;
  tr.dataset.status = o.status;

  const created = cell(t('orders.col.created'), 'col-created');
  const time = document.createElement('time');
  time.dateTime = o.created_at || '';
  const [day, clock] = formatDateParts(o.created_at);
  const daySpan = document.createElement('span');
  daySpan.className = 'day';
  daySpan.textContent = day;
  const clockSpan = document.createElement('span');
  clockSpan.className = 'clock';
  clockSpan.textContent = clock;
  time.append(daySpan, ' ', clockSpan);
  time.title = formatDate(o.created_at, true);
  if (o.updated_at && o.updated_at !== o.created_at) {
    time.title += `\n${t('orders.updated')}: ${formatDate(o.updated_at, true)}`;
  }
  created.append(time);

  const desc = cell(t('orders.col.description'), 'col-desc');
  const text = document.createElement('div');
  text.className = 'desc-text';
  text.textContent = o.description ?? '';
  const id = document.createElement('div');
  id.className = 'order-id mono';
  id.title = `${t('orders.id')}: ${o.order_id}`;
  id.textContent = String(o.order_id || '').slice(0, 8);
  desc.append(text, id);

  const amount = cell(t('orders.col.amount'), 'num col-amount');
  amount.textContent = formatMoney(o.amount);
  amount.dataset.amount = String(o.amount);

  const status = cell(t('orders.col.status'), 'col-status');
  const badge = document.createElement('span');
  const known = ['NEW', 'FINISHED', 'FAILED'].includes(o.status);
  badge.className = `badge badge-${known ? o.status.toLowerCase() : 'other'}`;
  badge.dataset.status = o.status;
  badge.textContent = known ? t(`status.${o.status}`) : String(o.status);
  status.append(badge);

  const reason = cell(t('orders.col.reason'), 'col-reason');
  if (o.status === 'FAILED') {
    reason.classList.add('reason');
    reason.dataset.reason = o.failure_reason || '';
    const key = `reason.${o.failure_reason}`;
    reason.textContent = o.failure_reason && has(key) ? t(key) : t('reason.unknown', { code: o.failure_reason || '?' });
  } else {
    reason.classList.add('muted');
    reason.textContent = '—';
  }

  tr.append(created, desc, amount, status, reason);
  return tr;
}

// ---------------------------------------------------------------- the order stream

/** Follow the current user's orders over the stream; falls back to polling while it is down. */
export function startStream() {
  stopStream();
  const uid = state.userId;
  if (!uid) return;
  if (hasBearer()) {
    startAuthorizedStream(uid);
    return;
  }
  if (typeof EventSource !== 'function') return;
  const es = new EventSource(`${API_BASE}/orders/stream?user_id=${encodeURIComponent(uid)}`);
  state.stream = es;
  es.addEventListener('open', () => {
    if (state.stream !== es) return;
    setLive(true);
    // Changes made before the stream was up are in the list, not in the stream.
    loadOrders();
  });
  es.addEventListener('order', (ev) => {
    if (state.stream !== es) return;
    let order;
    try {
      order = JSON.parse(ev.data);
    } catch {
      return;
    }
    applyOrder(order);
  });
  es.addEventListener('error', () => {
    if (state.stream !== es) return;
    setLive(false);
    if (state.pending.size || state.orders.some((o) => o.status === 'NEW')) schedulePoll(POLL_MS);
    // CONNECTING: the browser reconnects by itself (with Last-Event-ID). CLOSED: refused (e.g.
    // 503 past the server's stream bound): try again later, polling meanwhile.
    if (es.readyState === EventSource.CLOSED) {
      es.close();
      state.streamRetry = setTimeout(startStream, STREAM_RETRY_MS);
    }
  });
}

/** The same stream over fetch, with the bearer token (see api.openEventStream). */
function startAuthorizedStream(uid) {
  const stream = openEventStream(`/orders/stream?user_id=${encodeURIComponent(uid)}`, {
    onOpen: () => {
      if (state.stream !== stream) return;
      setLive(true);
      loadOrders();
    },
    onEvent: (type, data) => {
      if (state.stream !== stream || type !== 'order') return;
      let order;
      try {
        order = JSON.parse(data);
      } catch {
        return;
      }
      applyOrder(order);
    },
    onError: (closed) => {
      if (state.stream !== stream) return;
      setLive(false);
      if (state.pending.size || state.orders.some((o) => o.status === 'NEW')) schedulePoll(POLL_MS);
      // Not closed: it reconnects by itself. Closed (refused): try again later, polling meanwhile.
      if (closed) state.streamRetry = setTimeout(startStream, STREAM_RETRY_MS);
    },
  });
  state.stream = stream;
}

export function stopStream() {
  clearTimeout(state.streamRetry);
  state.streamRetry = 0;
  if (state.stream) state.stream.close();
  state.stream = null;
  setLive(false);
}

function setLive(live) {
  state.streamLive = live;
  document.body.dataset.stream = live ? 'live' : 'polling';
  if (live) clearTimeout(state.pollTimer);
}

/** One order's new state from the stream: update its row or add it; a status never goes back. */
function applyOrder(o) {
  if (!o || o.user_id !== state.userId || typeof o.order_id !== 'string') return;
  const i = state.orders.findIndex((x) => x.order_id === o.order_id);
  if (i >= 0) {
    if (state.orders[i].status !== 'NEW' && o.status === 'NEW') return;
    state.orders[i] = o;
  } else {
    state.orders.unshift(o);
    state.orders.sort(newestFirst);
  }
  let settled = false;
  if (o.status === 'NEW') state.pending.add(o.order_id);
  else settled = state.pending.delete(o.order_id);
  state.ordersKey = JSON.stringify(state.orders);
  renderOrders();
  if (settled) settledListener();
}

/**
 * The fetched list with what the stream said meanwhile: a list answer may be older than an
 * event that already arrived, so an order the stream settled stays settled, and one it added
 * stays listed.
 */
function merged(fetched) {
  const known = new Map(state.orders.map((o) => [o.order_id, o]));
  const out = fetched.map((o) => {
    const k = known.get(o.order_id);
    return k && k.status !== 'NEW' && o.status === 'NEW' ? k : o;
  });
  const listed = new Set(out.map((o) => o.order_id));
  for (const o of state.orders) if (!listed.has(o.order_id)) out.push(o);
  return out.sort(newestFirst);
}

/** The API's order: created_at descending, then order_id descending (ids are time-ordered). */
function newestFirst(a, b) {
  const byTime = (Date.parse(b.created_at) || 0) - (Date.parse(a.created_at) || 0);
  if (byTime) return byTime;
  if (a.order_id === b.order_id) return 0;
  return b.order_id < a.order_id ? -1 : 1;
}

// ---------------------------------------------------------------- loading and polling

export function stopPolling() {
  clearTimeout(state.pollTimer);
  state.pollTimer = 0;
  if (state.ordersAbort) state.ordersAbort.abort();
  state.ordersAbort = null;
}

function schedulePoll(ms) {
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(() => loadOrders(), ms);
}

export async function loadOrders() {
  const uid = state.userId;
  if (!uid) return;
  clearTimeout(state.pollTimer);
  if (state.ordersAbort) state.ordersAbort.abort();
  const ctrl = new AbortController();
  state.ordersAbort = ctrl;

  let orders;
  try {
    orders = await api.listOrders(uid, { signal: ctrl.signal });
  } catch (err) {
    if (ctrl.signal.aborted || uid !== state.userId) return;
    state.ordersAbort = null;
    showError($('orders-msg'), err);
    // Keep trying while something is still being processed (the stream, when up, does).
    if (!state.streamLive && (state.pending.size || state.orders.some((o) => o.status === 'NEW'))) {
      schedulePoll(POLL_RETRY_MS);
    }
    return;
  }
  if (ctrl.signal.aborted || uid !== state.userId) return;
  state.ordersAbort = null;
  clearMsg($('orders-msg'));

  if (!Array.isArray(orders)) orders = [];
  if (state.streamLive) orders = merged(orders);
  let settled = false;
  for (const o of orders) {
    if (o.status === 'NEW') state.pending.add(o.order_id);
    else if (state.pending.delete(o.order_id)) settled = true;
  }

  state.orders = orders;
  const key = JSON.stringify(orders);
  if (key !== state.ordersKey) {
    state.ordersKey = key;
    renderOrders();
  }
  if (settled) settledListener();

  if (!state.streamLive && orders.some((o) => o.status === 'NEW')) schedulePoll(POLL_MS);
}
