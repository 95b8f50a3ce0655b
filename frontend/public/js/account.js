// The account card: who the current user is (create an account, continue with an existing id,
// switch user, copy the id), the balance and top-ups. Changing the user resets everything that
// belonged to the previous one, orders and polling included, and remembers the new id. With
// authentication on (auth.js) the current user is the signed-in one: choosing another user is
// signing in as it, so "create with a new id", "use an existing id" and "switch" give way to the
// sign-in form and the sign-out.

import { api, ApiError, parseAmount, randomUuid } from './api.js';
import { t, formatMoney, formatDate } from './i18n.js';
import { $, busy } from './dom.js';
import { showMsg, clearMsg, showError, showLocalError, resetField } from './messages.js';
import { renderOrders, loadOrders, stopPolling, startStream, stopStream } from './orders.js';
import { state, storeUser } from './state.js';
import { copyText } from './clipboard.js';
import { auth, authOn, signedIn } from './auth.js';

// ---------------------------------------------------------------- current user

export function setUser(id, { balance } = {}) {
  stopPolling();
  stopStream();
  state.userId = id;
  state.balance = balance;
  state.history = [];
  state.orders = [];
  state.ordersKey = '';
  state.pending.clear();
  state.switching = false;
  storeUser(id);
  for (const el of document.querySelectorAll('.form-msg')) clearMsg(el);
  renderAccount();
  renderOrders();
  if (!id) return;
  refreshBalance(balance === undefined);
  loadOrders();
  startStream();
}

// ---------------------------------------------------------------- rendering

export function renderAccount() {
  const hasUser = Boolean(state.userId);
  const authMode = authOn();
  $('session').hidden = !hasUser;
  $('start').hidden = authMode || (hasUser && !state.switching);
  $('cancel-switch-btn').hidden = authMode || !(hasUser && state.switching);
  $('switch-btn').setAttribute('aria-expanded', String(state.switching));
  $('switch-btn').hidden = authMode || state.switching;

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
  renderHistory();

  $('order-fieldset').disabled = !hasUser;
  const need = $('order-need-user');
  need.hidden = hasUser;
  need.dataset.i18n = authMode && !signedIn() ? 'auth.needSignIn' : 'order.needUser';
  need.textContent = t(need.dataset.i18n);
  $('refresh-btn').disabled = !hasUser;
}

const HISTORY_KINDS = { OPENING: 'history.opening', TOP_UP: 'history.topUp', DEBIT: 'history.debit' };

// The movements under the balance: what moved, how much (signed), the balance it left, when.
function renderHistory() {
  const list = $('history');
  list.replaceChildren(
    ...state.history.map((m) => {
      const li = document.createElement('li');
      li.dataset.kind = m.kind;
      const sign = m.kind === 'DEBIT' ? '−' : '+';
      const what = document.createElement('span');
      what.className = 'history-kind';
      what.textContent = t(HISTORY_KINDS[m.kind] || 'history.opening');
      const amount = document.createElement('span');
      amount.className = 'history-amount';
      amount.textContent = `${sign}${formatMoney(Number(m.amount))}`;
      const after = document.createElement('span');
      after.className = 'history-after';
      after.textContent = t('history.after', { balance: formatMoney(Number(m.balance_after)) });
      const when = document.createElement('time');
      when.dateTime = m.created_at;
      when.textContent = formatDate(m.created_at);
      li.append(what, amount, after, when);
      return li;
    }),
  );
  $('history-block').hidden = state.history.length === 0;
}

// ---------------------------------------------------------------- data loading

/** Reloads the account's history and, when `withBalance` (the default), its balance too. */
export async function refreshBalance(withBalance = true) {
  const uid = state.userId;
  if (!uid) return;
  try {
    const [acc, history] = await Promise.all([
      withBalance ? api.getAccount(uid) : null,
      api.getHistory(uid),
    ]);
    if (uid !== state.userId) return;
    if (acc) state.balance = Number(acc.balance);
    state.history = Array.isArray(history) ? history : [];
    clearMsg($('balance-msg'));
  } catch (err) {
    if (uid !== state.userId) return;
    if (err instanceof ApiError && err.code === 'NOT_FOUND') {
      state.balance = null;
      state.history = [];
      clearMsg($('balance-msg'));
    } else {
      showError($('balance-msg'), err);
    }
  }
  renderAccount();
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

export function onCreate(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  clearMsg($('create-msg'));
  // Signed in, the account can only be the signed-in user's own.
  const id = signedIn() ? auth.sub : randomUuid();
  busy(form, () => createAccount(id, $('create-msg')));
}

export function onCreateForId() {
  const btn = $('create-for-id-btn');
  if (!state.userId || btn.disabled) return;
  btn.disabled = true;
  clearMsg($('balance-msg'));
  createAccount(state.userId, $('balance-msg')).finally(() => {
    btn.disabled = false;
  });
}

export function onUse(ev) {
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

export function onTopUp(ev) {
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
      refreshBalance(false); // the new top-up in the history
    } catch (err) {
      showError(msg, err, { field: input });
      if (err instanceof ApiError && err.code === 'NOT_FOUND') refreshBalance();
    }
  });
}

export async function onCopy() {
  const btn = $('copy-btn');
  const text = state.userId || '';
  const ok = await copyText(text, $('user-id'));
  btn.textContent = t(ok ? 'account.copied' : 'account.copyFailed');
  btn.classList.toggle('copied', ok);
  clearTimeout(btn._timer);
  btn._timer = setTimeout(() => {
    btn.textContent = t('account.copy');
    btn.classList.remove('copied');
  }, 1600);
}

export function onSwitch() {
  state.switching = true;
  renderAccount();
  $('create-btn').focus();
}

export function onCancelSwitch() {
  state.switching = false;
  clearMsg($('use-msg'));
  clearMsg($('create-msg'));
  renderAccount();
  $('switch-btn').focus();
}
