// The orders card: the table of the current user's orders and its polling. While any order is
// NEW the list is fetched again every second (every 3 s after a failed fetch); only the newest
// request counts, and answers for a user who is no longer current are dropped.

import { api } from './api.js';
import { t, has, formatMoney, formatDate, formatDateParts } from './i18n.js';
import { $ } from './dom.js';
import { showError, clearMsg } from './messages.js';
import { state } from './state.js';

const POLL_MS = 1000;
const POLL_RETRY_MS = 3000;

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
    empty.dataset.i18n = 'order.needUser';
    empty.textContent = t('order.needUser');
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
    // Keep trying while something is still being processed.
    if (state.pending.size || state.orders.some((o) => o.status === 'NEW')) schedulePoll(POLL_RETRY_MS);
    return;
  }
  if (ctrl.signal.aborted || uid !== state.userId) return;
  state.ordersAbort = null;
  clearMsg($('orders-msg'));

  if (!Array.isArray(orders)) orders = [];
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

  if (orders.some((o) => o.status === 'NEW')) schedulePoll(POLL_MS);
}
