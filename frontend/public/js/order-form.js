// The new-order card: checks the amount locally, places the order, and hands it to the orders
// table to be tracked until it settles; its "being processed" note goes once that happens.

import { api, ApiError, parseAmount } from './api.js';
import { t } from './i18n.js';
import { $, busy } from './dom.js';
import { showMsg, clearMsg, showError, showLocalError, resetField } from './messages.js';
import { loadOrders } from './orders.js';
import { state } from './state.js';

export function onOrder(ev) {
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
      // The stream brings the new order; without it, the list is fetched (and polled).
      if (!state.streamLive) loadOrders();
    } catch (err) {
      const field = err instanceof ApiError && /description/i.test(err.detail) ? descInput : amountInput;
      showError(msg, err, { field });
    }
  });
}

/** "Order placed, being processed" is out of date once that order has settled. */
export function clearSettledOrderMsg() {
  const msg = $('order-msg');
  if (msg.dataset.kind === 'success' && msg.dataset.orderId && !state.pending.has(msg.dataset.orderId)) {
    clearMsg(msg);
  }
}
