// The page: account (create / use / top up / balance), new order, orders table with live statuses.

import { api, ApiError, parseAmount, newUserId } from './api.js';
import { t, has, lang, setLang, onLangChange, translateDom, formatMoney, formatDate, formatDateParts } from './i18n.js';

const USER_KEY = 'op.userId';
const POLL_MS = 1000;
const POLL_RETRY_MS = 3000;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const $ = (id) => document.getElementById(id);

const state = {
  userId: null,
  /** undefined: not loaded yet; null: no account for this user id; number: balance */
  balance: undefined,
  orders: [],
  ordersKey: '',
  /** order ids whose leaving NEW should trigger a balance refresh */
  pending: new Set(),
  pollTimer: 0,
  ordersAbort: null,
  switching: false,
};

// ---------------------------------------------------------------- messages next to forms

/**
 * Show a message in a form's message slot. `render` is kept so the text follows a language switch.
 * kind: 'error' | 'success' | 'info'
 */
const SUCCESS_VISIBLE_MS = 8000;

function showMsg(el, kind, render) {
  clearTimeout(el._timer);
  delete el.dataset.orderId;
  el._render = render;
  el.dataset.kind = kind;
  el.classList.remove('error', 'success', 'info');
  el.classList.add(kind);
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  paintMsg(el);
  // Confirmations fade away; errors stay until the next attempt.
  if (kind === 'success') el._timer = setTimeout(() => clearMsg(el), SUCCESS_VISIBLE_MS);
}

function paintMsg(el) {
  el.replaceChildren();
  if (!el._render) return;
  const content = el._render();
  if (typeof content === 'string') el.textContent = content;
  else el.append(...content);
}

function clearMsg(el) {
  clearTimeout(el._timer);
  el._render = null;
  delete el.dataset.kind;
  delete el.dataset.orderId;
  el.classList.remove('error', 'success', 'info');
  el.removeAttribute('role');
  el.replaceChildren();
}

function errorParts(err, overrides = {}) {
  if (!(err instanceof ApiError)) {
    return [strong(t('err.generic')), document.createTextNode(err && err.message ? ` ${err.message}` : '')];
  }
  let title;
  if (overrides[err.code]) title = t(overrides[err.code]);
  else if (err.code === 'HTTP') title = t('err.HTTP', { status: err.status });
  else if (has(`err.${err.code}`)) title = t(`err.${err.code}`);
  else title = `${t('err.generic')} (${err.code})`;
  const parts = [strong(title)];
  // The server's detail names the offending field for client errors; for outages our own text says it all.
  const generic = ['INTERNAL', 'BAD_GATEWAY', 'UNAVAILABLE', 'NETWORK', 'HTTP'].includes(err.code);
  if (!generic && err.detail && err.detail !== err.code) parts.push(document.createTextNode(` — ${err.detail}`));
  return parts;
}

function strong(text) {
  const b = document.createElement('strong');
  b.textContent = text;
  return b;
}

function showError(el, err, { field, overrides } = {}) {
  showMsg(el, 'error', () => errorParts(err, overrides));
  if (field) field.setAttribute('aria-invalid', 'true');
}

function showLocalError(el, key, field) {
  showMsg(el, 'error', () => t(key));
  if (field) {
    field.setAttribute('aria-invalid', 'true');
    field.focus();
  }
}

function resetField(field, msgEl) {
  field.removeAttribute('aria-invalid');
  if (msgEl) clearMsg(msgEl);
}

/** Run an async action with the form's submit button disabled (prevents double submits). */
async function busy(form, fn) {
  if (form.dataset.busy) return;
  form.dataset.busy = '1';
  form.setAttribute('aria-busy', 'true');
  const buttons = form.querySelectorAll('button[type="submit"]');
  for (const b of buttons) b.disabled = true;
  try {
    await fn();
  } finally {
    delete form.dataset.busy;
    form.removeAttribute('aria-busy');
    for (const b of buttons) b.disabled = false;
  }
}

// ---------------------------------------------------------------- current user

function loadStoredUser() {
  try {
    const v = localStorage.getItem(USER_KEY);
    return v && UUID_RE.test(v) ? v : null;
  } catch {
    return null;
  }
}

function storeUser(id) {
  try {
    if (id) localStorage.setItem(USER_KEY, id);
    else localStorage.removeItem(USER_KEY);
  } catch {
    /* ignore: storage unavailable */
  }
}

function setUser(id, { balance } = {}) {
  stopPolling();
  state.userId = id;
  state.balance = balance;
  state.orders = [];
  state.ordersKey = '';
  state.pending.clear();
  state.switching = false;
  storeUser(id);
  for (const el of document.querySelectorAll('.form-msg')) clearMsg(el);
  renderAll();
  if (!id) return;
  if (balance === undefined) refreshBalance();
  loadOrders();
}

// ---------------------------------------------------------------- rendering

function renderAccount() {
  const hasUser = Boolean(state.userId);
  $('session').hidden = !hasUser;
  $('start').hidden = hasUser && !state.switching;
  $('cancel-switch-btn').hidden = !(hasUser && state.switching);
  $('switch-btn').setAttribute('aria-expanded', String(state.switching));
  $('switch-btn').hidden = state.switching;

  $('user-id').textContent = state.userId || '';

  const bal = $('balance');
  const missing = hasUser && state.balance === null;
  $('no-account').hidden = !missing;
  $('topup-form').hidden = missing;
  if (typeof state.balance === 'number') {
    bal.textContent = formatMoney(state.balance);
    bal.dataset.balance = String(state.balance);
  } else {
    bal.textContent = '—';
    bal.dataset.balance = '';
  }
  bal.hidden = missing;

  $('order-fieldset').disabled = !hasUser;
  $('order-need-user').hidden = hasUser;
  $('refresh-btn').disabled = !hasUser;
}

function renderOrders() {
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

function renderLang() {
  translateDom();
  document.title = t('app.title');
  for (const b of document.querySelectorAll('.lang-btn')) {
    b.setAttribute('aria-pressed', String(b.dataset.lang === lang()));
  }
  for (const el of document.querySelectorAll('.form-msg')) paintMsg(el);
}

function renderAll() {
  renderAccount();
  renderOrders();
}

// ---------------------------------------------------------------- data loading

async function refreshBalance() {
  const uid = state.userId;
  if (!uid) return;
  try {
    const acc = await api.getAccount(uid);
    if (uid !== state.userId) return;
    state.balance = Number(acc.balance);
    clearMsg($('balance-msg'));
  } catch (err) {
    if (uid !== state.userId) return;
    if (err instanceof ApiError && err.code === 'NOT_FOUND') {
      state.balance = null;
      clearMsg($('balance-msg'));
    } else {
      showError($('balance-msg'), err);
    }
  }
  renderAccount();
}

function stopPolling() {
  clearTimeout(state.pollTimer);
  state.pollTimer = 0;
  if (state.ordersAbort) state.ordersAbort.abort();
  state.ordersAbort = null;
}

function schedulePoll(ms) {
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(() => loadOrders(), ms);
}

async function loadOrders() {
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
  if (settled) {
    refreshBalance();
    // "Order placed, being processed" is out of date once that order has settled.
    const msg = $('order-msg');
    if (msg.dataset.kind === 'success' && msg.dataset.orderId && !state.pending.has(msg.dataset.orderId)) {
      clearMsg(msg);
    }
  }

  if (orders.some((o) => o.status === 'NEW')) schedulePoll(POLL_MS);
}

// ---------------------------------------------------------------- actions

async function createAccount(userId, msgEl) {
  try {
    const acc = await api.createAccount(userId);
    setUser(acc.user_id || userId, { balance: Number(acc.balance) });
    showMsg($('balance-msg'), 'success', () => t('account.created'));
  } catch (err) {
    showError(msgEl, err, { overrides: { CONFLICT: 'err.accountExists' } });
  }
}

function onCreate(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  clearMsg($('create-msg'));
  busy(form, () => createAccount(newUserId(), $('create-msg')));
}

function onCreateForId() {
  const btn = $('create-for-id-btn');
  if (!state.userId || btn.disabled) return;
  btn.disabled = true;
  clearMsg($('balance-msg'));
  createAccount(state.userId, $('balance-msg')).finally(() => {
    btn.disabled = false;
  });
}

function onUse(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const input = $('use-id');
  const msg = $('use-msg');
  resetField(input, msg);
  const id = input.value.trim();
  if (!id) {
    showLocalError(msg, 'err.userIdRequired', input);
    return;
  }
  busy(form, async () => {
    try {
      const acc = await api.getAccount(id);
      input.value = '';
      setUser(acc.user_id || id, { balance: Number(acc.balance) });
    } catch (err) {
      if (err instanceof ApiError && err.code === 'NOT_FOUND') {
        // A valid id without an account: orders may still exist; offer to create the account.
        input.value = '';
        setUser(id, { balance: null });
      } else {
        showError(msg, err, { field: input });
      }
    }
  });
}

function onTopUp(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const input = $('topup-amount');
  const msg = $('topup-msg');
  resetField(input, msg);
  if (!input.value.trim()) return showLocalError(msg, 'err.amountRequired', input);
  const amount = parseAmount(input.value);
  if (amount === null) return showLocalError(msg, 'err.amountNotNumber', input);
  const uid = state.userId;
  busy(form, async () => {
    try {
      const acc = await api.topUp(uid, amount);
      if (uid !== state.userId) return;
      state.balance = Number(acc.balance);
      input.value = '';
      renderAccount();
      showMsg(msg, 'success', () => t('topup.done', { amount: formatMoney(amount) }));
    } catch (err) {
      showError(msg, err, { field: input });
      if (err instanceof ApiError && err.code === 'NOT_FOUND') refreshBalance();
    }
  });
}

function onOrder(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const amountInput = $('order-amount');
  const descInput = $('order-description');
  const msg = $('order-msg');
  resetField(amountInput, msg);
  resetField(descInput);
  if (!amountInput.value.trim()) return showLocalError(msg, 'err.amountRequired', amountInput);
  const amount = parseAmount(amountInput.value);
  if (amount === null) return showLocalError(msg, 'err.amountNotNumber', amountInput);
  const uid = state.userId;
  busy(form, async () => {
    try {
      const created = await api.createOrder(uid, amount, descInput.value);
      if (uid !== state.userId) return;
      if (created && created.order_id) state.pending.add(created.order_id);
      amountInput.value = '';
      descInput.value = '';
      showMsg(msg, 'success', () => t('order.placed'));
      if (created && created.order_id) msg.dataset.orderId = created.order_id;
      loadOrders();
    } catch (err) {
      const field = err instanceof ApiError && /description/i.test(err.detail) ? descInput : amountInput;
      showError(msg, err, { field });
    }
  });
}

async function onCopy() {
  const btn = $('copy-btn');
  const text = state.userId || '';
  let ok = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      ok = true;
    }
  } catch {
    ok = false;
  }
  if (!ok) ok = legacyCopy(text);
  if (!ok) selectText($('user-id'));
  btn.textContent = t(ok ? 'account.copied' : 'account.copyFailed');
  btn.classList.toggle('copied', ok);
  clearTimeout(btn._timer);
  btn._timer = setTimeout(() => {
    btn.textContent = t('account.copy');
    btn.classList.remove('copied');
  }, 1600);
}

function legacyCopy(text) {
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.setAttribute('readonly', '');
  ta.className = 'offscreen';
  document.body.append(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

function selectText(el) {
  const range = document.createRange();
  range.selectNodeContents(el);
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
}

function onSwitch() {
  state.switching = true;
  renderAccount();
  $('create-btn').focus();
}

function onCancelSwitch() {
  state.switching = false;
  clearMsg($('use-msg'));
  clearMsg($('create-msg'));
  renderAccount();
  $('switch-btn').focus();
}

// ---------------------------------------------------------------- start

function swaggerUrl() {
  const meta = document.querySelector('meta[name="op:swagger-url"]');
  const tpl = (meta && meta.content) || '/swagger/index.html';
  return tpl.split('{hostname}').join(location.hostname);
}

function init() {
  $('swagger-link').href = swaggerUrl();

  for (const b of document.querySelectorAll('.lang-btn')) {
    b.addEventListener('click', () => setLang(b.dataset.lang));
  }
  onLangChange(() => {
    renderLang();
    renderAll();
  });

  $('create-form').addEventListener('submit', onCreate);
  $('use-form').addEventListener('submit', onUse);
  $('topup-form').addEventListener('submit', onTopUp);
  $('order-form').addEventListener('submit', onOrder);
  $('copy-btn').addEventListener('click', onCopy);
  $('create-for-id-btn').addEventListener('click', onCreateForId);
  $('switch-btn').addEventListener('click', onSwitch);
  $('cancel-switch-btn').addEventListener('click', onCancelSwitch);
  $('refresh-btn').addEventListener('click', () => {
    refreshBalance();
    loadOrders();
  });

  // Another tab switched the user: follow it.
  window.addEventListener('storage', (e) => {
    if (e.key === USER_KEY && e.newValue !== state.userId) {
      setUser(e.newValue && UUID_RE.test(e.newValue) ? e.newValue : null);
    }
  });

  renderLang();
  setUser(loadStoredUser());
  document.body.dataset.ready = 'true';
}

init();
