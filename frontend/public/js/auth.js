// The dev sign-in. Whether the API wants a token is asked once at start (api.probeAuth); with
// authentication off nothing here shows and nothing changes. With it on, the "Sign in (dev)"
// form takes a user id (empty: a new one) and whether to act as an operator (who may top up),
// gets a token from the dev identity provider (POST /auth/token), keeps it in sessionStorage
// (this tab only, gone with it) and hands it to api.js, which sends it on every /api request.
// The signed-in user is the page's current user. A 401 from the API (token expired or no
// longer accepted) signs out and asks to sign in again.

import { api, probeAuth, setBearer, onUnauthorized, randomUuid } from './api.js';
import { t } from './i18n.js';
import { $, busy } from './dom.js';
import { showMsg, clearMsg, showError, resetField } from './messages.js';
import { UUID_RE, loadStoredUser } from './state.js';

const SESSION_KEY = 'op.auth';
/** The operator scope: top-ups and opening balances. */
export const OPERATOR_SCOPE = 'payments:topup';
/** A token this close to its expiry is not used any more, in seconds. */
const EXPIRY_MARGIN_S = 30;

export const auth = {
  /** 'on' when the API wants a bearer token, 'off' otherwise. */
  mode: 'off',
  token: null,
  /** The token's subject: the signed-in user's id. */
  sub: null,
  operator: false,
  /** Unix seconds. */
  exp: 0,
};

let listener = () => {};

/** Called with the user id after a sign-in, with null after a sign-out. */
export function onAuthChange(fn) {
  listener = fn;
}

export function authOn() {
  return auth.mode === 'on';
}

export function signedIn() {
  return authOn() && auth.token !== null;
}

/** The claims of a JWT, unverified (the gateway verifies; the page only reads `sub` and `exp`). */
function claimsOf(token) {
  try {
    const part = String(token).split('.')[1] || '';
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    const claims = JSON.parse(json);
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

function nowS() {
  return Math.floor(Date.now() / 1000);
}

function adopt(token, operator) {
  const claims = claimsOf(token);
  if (!claims || typeof claims.sub !== 'string' || !UUID_RE.test(claims.sub)) return false;
  const exp = Number(claims.exp) || 0;
  if (exp && exp - EXPIRY_MARGIN_S <= nowS()) return false;
  auth.token = token;
  auth.sub = claims.sub.toLowerCase();
  auth.operator = Boolean(operator);
  auth.exp = exp;
  setBearer(token);
  return true;
}

function saveSession() {
  try {
    if (auth.token) {
      sessionStorage.setItem(SESSION_KEY, JSON.stringify({ token: auth.token, operator: auth.operator }));
    } else {
      sessionStorage.removeItem(SESSION_KEY);
    }
  } catch {
    /* storage unavailable: the sign-in lasts for this page only */
  }
}

function restoreSession() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    if (saved && typeof saved.token === 'string' && adopt(saved.token, saved.operator)) return true;
    sessionStorage.removeItem(SESSION_KEY);
  } catch {
    /* unreadable: signed out */
  }
  return false;
}

/**
 * Learns whether authentication is on and, if so, takes up this tab's sign-in when it is still
 * valid. Resolves to the signed-in user id, or null.
 */
export async function initAuth() {
  onUnauthorized(() => {
    // Also when the probe said off: the API knows better.
    auth.mode = 'on';
    signOut({ expired: true });
  });
  auth.mode = (await probeAuth()) ? 'on' : 'off';
  document.body.dataset.auth = auth.mode;
  if (!authOn()) return null;
  const restored = restoreSession();
  $('signin-id').value = restored ? '' : loadStoredUser() || '';
  renderAuth();
  return restored ? auth.sub : null;
}

/** Forget the token; `expired`: the API refused it, say so and offer the same user id again. */
export function signOut({ expired = false } = {}) {
  const wasIn = auth.token !== null;
  const lastSub = auth.sub;
  auth.token = null;
  auth.sub = null;
  auth.operator = false;
  auth.exp = 0;
  setBearer(null);
  saveSession();
  document.body.dataset.auth = auth.mode;
  renderAuth();
  // The page lets go of the user first (that clears every form message), then the form asks.
  if (wasIn || expired) listener(null);
  const input = $('signin-id');
  input.value = expired && lastSub ? lastSub : '';
  resetField(input, $('signin-msg'));
  if (expired) showMsg($('signin-msg'), 'info', () => t('auth.expired'));
  else input.focus();
}

export function onSignIn(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  const input = $('signin-id');
  const msg = $('signin-msg');
  resetField(input, msg);
  const typed = input.value.trim();
  const sub = typed || randomUuid();
  const operator = $('signin-operator').checked;
  busy(form, async () => {
    try {
      const data = await api.signIn(sub, operator ? OPERATOR_SCOPE : '');
      if (!data || typeof data.access_token !== 'string' || !adopt(data.access_token, operator)) {
        throw new Error(t('auth.badToken'));
      }
      saveSession();
      input.value = '';
      renderAuth();
      listener(auth.sub);
    } catch (err) {
      showError(msg, err, { field: typed ? input : undefined });
    }
  });
}

export function onSignOut() {
  signOut();
}

/** The sign-in card and the "signed in as" line, for the current state and language. */
export function renderAuth() {
  const on = authOn();
  const inside = signedIn();
  document.body.dataset.signedIn = String(inside);
  $('signin').hidden = !on || inside;
  $('auth-status').hidden = !inside;
  if (!inside) return;
  const who = $('auth-who');
  who.textContent = t('auth.signedInAs', { who: auth.sub });
  $('auth-role').hidden = !auth.operator;
}

/** Clears the sign-in message (a switch of user, a successful sign-in). */
export function clearSignInMsg() {
  clearMsg($('signin-msg'));
}
