// Entry point: wires the page's modules to the DOM and starts with the remembered user.
//   account.js     account card: current user, balance, top-up, switch / copy user
//   order-form.js  new-order card
//   orders.js      orders table, live over the order stream (polling while it is down)
//   page.js        "API docs" link and re-translation after a language switch
//   auth.js        the dev sign-in, when the API wants a bearer token (otherwise nothing shows)
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
import { initAuth, authOn, renderAuth, onAuthChange, onSignIn, onSignOut, clearSignInMsg } from './auth.js';

async function init() {
  $('swagger-link').href = swaggerUrl();

  for (const b of document.querySelectorAll('.lang-btn')) {
    b.addEventListener('click', () => setLang(b.dataset.lang));
  }
  onLangChange(() => {
    renderLang();
    renderAuth();
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
  $('signin-form').addEventListener('submit', onSignIn);
  $('signout-btn').addEventListener('click', onSignOut);

  // Another tab switched the user: follow it (not when signed in: the token is this tab's).
  window.addEventListener('storage', (e) => {
    if (!authOn() && e.key === USER_KEY && e.newValue !== state.userId) {
      setUser(e.newValue && UUID_RE.test(e.newValue) ? e.newValue : null);
    }
  });

  // Signed in: that user is the current one; signed out: nobody is.
  onAuthChange((userId) => {
    setUser(userId);
    if (userId) clearSignInMsg();
  });

  renderLang();
  // Ask the API whether it wants a token before the first request of the page.
  const signedInUser = await initAuth();
  if (!authOn()) {
    setUser(loadStoredUser());
  } else if (signedInUser) {
    setUser(signedInUser);
  } else {
    // Nobody signed in: no requests; the remembered id stays, prefilled in the sign-in form.
    renderAccount();
    renderOrders();
  }
  document.body.dataset.ready = 'true';
}

init();
