// The account card: who the current user is (create an account, continue with an existing id,
// switch user, copy the id), the balance and top-ups. Changing the user resets everything that
// belonged to the previous one, orders and polling included, and remembers the new id.

import { api, ApiError, parseAmount, newUserId } from './api.js';
import { t, formatMoney } from './i18n.js';
import { $, busy } from './dom.js';
import { showMsg, clearMsg, showError, showLocalError, resetField } from './messages.js';
import { renderOrders, loadOrders, stopPolling } from './orders.js';
import { state, storeUser } from './state.js';
import { copyText } from './clipboard.js';

// ---------------------------------------------------------------- current user

export function setUser(id, { balance } = {}) {
  stopPolling();
  state.userId = id;
  state.balance = balance;
  state.orders = [];
  state.ordersKey = '';
  state.pending.clear();
  state.switching = false;
  storeUser(id);
  for (const el of document.querySelectorAll('.form-msg')) clearMsg(el);
  renderAccount();
  renderOrders();
  if (!id) return;
  if (balance === undefined) refreshBalance();
  loadOrders();
}

// ---------------------------------------------------------------- rendering

export function renderAccount() {
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

// ---------------------------------------------------------------- data loading

export async function refreshBalance() {
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
  busy(form, () => createAccount(newUserId(), $('create-msg')));
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
