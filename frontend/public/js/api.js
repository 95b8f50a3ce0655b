// Thin client for the HTTP API (SPEC §2), reached through nginx under /api, and for the dev
// sign-in under /auth (devauth). Success bodies are {"data": ...}; errors are
// {"error": {"code", "message"}}. Every request of the page goes through this module: with
// authentication on it carries the bearer token (setBearer), and a 401 from the API is reported
// once to whoever listens (onUnauthorized) so the page can ask to sign in again.

export const API_BASE = '/api';
export const AUTH_BASE = '/auth';

/** The user id no account has: the probe that tells whether the API wants a token. */
const NIL_UUID = '00000000-0000-0000-0000-000000000000';

let bearer = null;
let unauthorizedListener = () => {};

/** The token every /api request carries from now on (null: none, authentication off). */
export function setBearer(token) {
  bearer = token || null;
}

export function hasBearer() {
  return bearer !== null;
}

/** What happens when the API answers 401 to a request of the page (the token is no longer good). */
export function onUnauthorized(fn) {
  unauthorizedListener = fn;
}

export class ApiError extends Error {
  /**
   * @param {string} code    API error code (BAD_REQUEST, ...), or NETWORK / HTTP for transport problems
   * @param {string} message detail from the server (may be empty)
   * @param {number} status  HTTP status, 0 for network errors
   */
  constructor(code, message, status) {
    super(message || code);
    this.name = 'ApiError';
    this.code = code;
    this.detail = message || '';
    this.status = status;
  }
}

const STATUS_CODES = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'TOO_MANY_REQUESTS',
  500: 'INTERNAL',
  502: 'BAD_GATEWAY',
  503: 'UNAVAILABLE',
  504: 'BAD_GATEWAY',
};

/**
 * One JSON request. `base` is API_BASE unless given; `anonymous` requests (the sign-in) carry no
 * token and do not report a 401.
 */
async function request(method, path, body, { signal, key, base = API_BASE, anonymous = false } = {}) {
  const init = { method, headers: { Accept: 'application/json' }, signal, cache: 'no-store' };
  if (key !== undefined) init.headers['Idempotency-Key'] = key;
  const token = anonymous ? null : bearer;
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }

  let res;
  try {
    res = await fetch(base + path, init);
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError('NETWORK', '', 0);
  }
  // The token this request carried is refused (expired, key rotated away, ...); a newer one
  // set meanwhile is not the one that failed.
  if (res.status === 401 && !anonymous && (token === null || token === bearer)) unauthorizedListener();

  let payload = null;
  const text = await res.text().catch(() => '');
  if (text) {
    try {
      payload = JSON.parse(text);
    } catch {
      payload = null; // e.g. an HTML error page from a proxy
    }
  }

  if (res.ok) {
    if (payload && typeof payload === 'object' && 'data' in payload) return payload.data;
    throw new ApiError('HTTP', '', res.status);
  }

  const e = payload && typeof payload === 'object' ? payload.error : null;
  if (e && typeof e === 'object' && typeof e.code === 'string') {
    throw new ApiError(e.code, typeof e.message === 'string' ? e.message : '', res.status);
  }
  throw new ApiError(STATUS_CODES[res.status] || 'HTTP', '', res.status);
}

// A POST whose answer never arrived (network error, or the gateway gave up: 502/503/504) may
// still have been done. It is retried with the same Idempotency-Key, so the server answers the
// first result again instead of doing it twice; every user action gets a fresh key.
const RETRIED_STATUSES = new Set([0, 502, 503, 504]);
const RETRY_DELAYS_MS = [250, 1000, 2500];

async function post(path, body) {
  const key = randomUuid();
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await request('POST', path, body, { key });
    } catch (err) {
      const transient = err instanceof ApiError && RETRIED_STATUSES.has(err.status);
      if (!transient || attempt >= RETRY_DELAYS_MS.length) throw err;
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS_MS[attempt]));
    }
  }
}

export const api = {
  /** The dev sign-in (devauth): a token for user `sub` with `scope` (space-separated, may be ''). */
  signIn: (sub, scope) =>
    request('POST', '/token', scope ? { sub, scope } : { sub }, { base: AUTH_BASE, anonymous: true }),
  createAccount: (userId, balance) =>
    post('/accounts', balance === undefined ? { user_id: userId } : { user_id: userId, balance }),
  topUp: (userId, amount) => post('/accounts/topup', { user_id: userId, amount }),
  getAccount: (userId) => request('GET', `/accounts/${encodeURIComponent(userId)}`),
  getHistory: (userId, limit = 20) =>
    request('GET', `/accounts/${encodeURIComponent(userId)}/transactions?limit=${limit}`),
  createOrder: (userId, amount, description) => post('/orders', { user_id: userId, amount, description }),
  listOrders: (userId, opts) => request('GET', `/orders?user_id=${encodeURIComponent(userId)}`, undefined, opts),
};

/**
 * Whether the API wants a bearer token: an anonymous list request for the nil user answers 401
 * with a Bearer challenge only when authentication is on (with it off it is an empty list).
 * Anything else — no answer, a 5xx, a rate limit — counts as off; the first 401 of a real
 * request turns the sign-in on anyway.
 */
export async function probeAuth() {
  try {
    const res = await fetch(`${API_BASE}/orders?user_id=${NIL_UUID}`, {
      headers: { Accept: 'application/json' },
      cache: 'no-store',
    });
    await res.text().catch(() => '');
    return res.status === 401 && /^\s*bearer\b/i.test(res.headers.get('WWW-Authenticate') || '');
  } catch {
    return false;
  }
}

/**
 * A Server-Sent Events stream read with fetch, for when requests need the Authorization header
 * (EventSource cannot send one). Follows EventSource's rules: `event:` / `data:` / `id:` fields,
 * comments ignored, the last event id sent back as Last-Event-ID when reconnecting after a lost
 * connection (after `retry:` ms, 3 s by default). An answer that is not a 200 event stream ends
 * it for good, like EventSource's CLOSED. Handlers: onOpen(), onEvent(type, data),
 * onError(closed) — closed: true when it will not reconnect by itself. Returns { close() }.
 */
export function openEventStream(path, { onOpen, onEvent, onError }) {
  const ctrl = new AbortController();
  let closed = false;
  let lastId = '';
  let retryMs = 3000;
  let timer = 0;

  const close = () => {
    closed = true;
    clearTimeout(timer);
    ctrl.abort();
  };

  const dispatch = (lines) => {
    let type = '';
    const data = [];
    for (const line of lines) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && !value.includes('\0')) lastId = value;
      else if (field === 'retry' && /^\d+$/.test(value)) retryMs = Number(value);
    }
    if (data.length && !closed) onEvent(type || 'message', data.join('\n'));
  };

  const connect = async () => {
    const token = bearer;
    const headers = { Accept: 'text/event-stream' };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (lastId) headers['Last-Event-ID'] = lastId;
    let res;
    try {
      res = await fetch(API_BASE + path, { headers, signal: ctrl.signal, cache: 'no-store' });
    } catch {
      if (closed) return;
      onError(false);
      timer = setTimeout(connect, retryMs);
      return;
    }
    if (res.status !== 200 || !res.body || !/^text\/event-stream/i.test(res.headers.get('Content-Type') || '')) {
      if (res.status === 401 && (token === null || token === bearer)) unauthorizedListener();
      res.body?.cancel().catch(() => {});
      if (!closed) {
        closed = true;
        onError(true);
      }
      return;
    }
    if (closed) return;
    onOpen();
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let lines = [];
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let nl;
        while ((nl = buffer.indexOf('\n')) !== -1) {
          const line = buffer.slice(0, nl).replace(/\r$/, '');
          buffer = buffer.slice(nl + 1);
          if (line === '') {
            dispatch(lines);
            lines = [];
          } else {
            lines.push(line);
          }
        }
      }
    } catch {
      /* aborted (closed) or the connection broke: handled below */
    }
    if (closed) return;
    // The server ended the stream or the connection broke: reconnect, resuming after lastId.
    onError(false);
    timer = setTimeout(connect, retryMs);
  };

  connect();
  return { close };
}

/**
 * Parse a money amount typed by a person. Accepts "12.50", "12,50", "1 234,50", "1,234.50".
 * Returns a finite number or null (never NaN). Range and decimal-place rules are left to the API.
 */
export function parseAmount(input) {
  let s = String(input ?? '')
    .trim()
    .replace(/[\s\u00a0\u202f']/g, '');
  if (!s) return null;
  const lastDot = s.lastIndexOf('.');
  const lastComma = s.lastIndexOf(',');
  if (lastDot !== -1 && lastComma !== -1) {
    // Both present: the last one is the decimal separator, the other groups thousands.
    s = lastComma > lastDot ? s.replace(/\./g, '').replace(',', '.') : s.replace(/,/g, '');
  } else if (lastComma !== -1) {
    if (s.indexOf(',') !== lastComma) return null; // "1,2,3"
    s = s.replace(',', '.');
  }
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(s)) return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
}

/** A random v4 UUID (new user ids, Idempotency-Keys); falls back to getRandomValues where randomUUID is unavailable (plain http). */
export function randomUuid() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
