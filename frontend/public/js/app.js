// Entry point: wires the page's modules to the DOM and starts with the remembered user.
//   account.js     account card: current user, balance, top-up, switch / copy user
//   order-form.js  new-order card
//   orders.js      orders table, live over the order stream (polling while it is down)
//   page.js        "API docs" link and re-translation after a language switch
//   messages.js    form message slots;  dom.js, clipboard.js, state.js: shared helpers and state

import { setLang, onLangChange } from './i18n.js';
import { $ } from './dom.js';
import { state, USER_KEY, UUID_RE, loadStoredUser } from './state.js';
import { swaggerUrl, renderLang } from './page.js';
import {
  setUser, renderAccount, refreshBalance,
  onCreate, onCreateForId, onUse, onTopUp, onCopy, onSwitch, onCancelSwitch,
} from './account.js';
import { renderOrders, loadOrders, onOrdersSettled } from './orders.js';
import { onOrder, clearSettledOrderMsg } from './order-form.js';

function init() {
  $('swagger-link').href = swaggerUrl();

  for (const b of document.querySelectorAll('.lang-btn')) {
    b.addEventListener('click', () => setLang(b.dataset.lang));
  }
  onLangChange(() => {
    renderLang();
    renderAccount();
    renderOrders();
  });

  // An order the page was waiting for has left NEW: reload the balance, drop the stale "being processed".
  onOrdersSettled(() => {
    refreshBalance();
    clearSettledOrderMsg();
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
