// Thin client for the HTTP API (SPEC §2), reached through nginx under /api.
// Success bodies are {"data": ...}; errors are {"error": {"code", "message"}}.

export const API_BASE = '/api';

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
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  500: 'INTERNAL',
  502: 'BAD_GATEWAY',
  503: 'UNAVAILABLE',
  504: 'BAD_GATEWAY',
};

async function request(method, path, body, { signal, key } = {}) {
  const init = { method, headers: { Accept: 'application/json' }, signal, cache: 'no-store' };
  if (key !== undefined) init.headers['Idempotency-Key'] = key;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }

  let res;
  try {
    res = await fetch(API_BASE + path, init);
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError('NETWORK', '', 0);
  }

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
