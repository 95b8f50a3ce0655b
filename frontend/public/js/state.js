// The page's shared state (current user, balance, orders being tracked, polling handles) and
// the remembered user id in localStorage. Only valid UUIDs are ever read back from storage.

export const USER_KEY = 'op.userId';
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const state = {
  userId: null,
  /** undefined: not loaded yet; null: no account for this user id; number: balance */
  balance: undefined,
  /** the account's latest money movements, newest first (GET /accounts/{id}/transactions) */
  history: [],
  orders: [],
  ordersKey: '',
  /** order ids whose leaving NEW should trigger a balance refresh */
  pending: new Set(),
  pollTimer: 0,
  ordersAbort: null,
  /** the order stream (EventSource) of the current user, its state and its retry timer */
  stream: null,
  streamLive: false,
  streamRetry: 0,
  switching: false,
};

export function loadStoredUser() {
  try {
    const v = localStorage.getItem(USER_KEY);
    return v && UUID_RE.test(v) ? v : null;
  } catch {
    return null;
  }
}

export function storeUser(id) {
  try {
    if (id) localStorage.setItem(USER_KEY, id);
    else localStorage.removeItem(USER_KEY);
  } catch {
    /* ignore: storage unavailable */
  }
}
