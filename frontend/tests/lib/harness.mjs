// Shared helpers for the browser tests: launching Debian's Chromium through playwright-core,
// collecting console errors, and polling for conditions with a deadline.
//
// Authentication: the stack may run with AUTH=off or AUTH=jwt. `authMode()` asks the API the way
// the page does (an anonymous list request for the nil user answers 401 with a Bearer challenge
// only with authentication on), and the helpers below act accordingly: with it on, creating an
// account through the UI first signs in through the dev sign-in, choosing a user id is signing in
// as it, and `apiFetch` sends a token (from the stack's devauth behind /auth/) for the user the
// request is about.

import { chromium } from 'playwright-core';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const BASE_URL = (process.env.FRONTEND_URL || 'http://127.0.0.1:8083').replace(/\/+$/, '');
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** How long an order may stay NEW before a test gives up (the payment goes through the broker). */
export const SETTLE_TIMEOUT_MS = Number(process.env.E2E_SETTLE_TIMEOUT_MS || 30_000);
/** Default wait for ordinary UI changes. */
export const UI_TIMEOUT_MS = 10_000;

/** frontend/tests/lib -> repository root */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const SCREENSHOT_DIR = path.join(REPO_ROOT, 'docs', 'screenshots');

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const NIL_UUID = '00000000-0000-0000-0000-000000000000';
/** The scope the tests' tokens carry: operators may top up and open with a balance. */
export const OPERATOR_SCOPE = 'payments:topup';
/** The page's (and this harness's) probe of the API: 401 + Bearer challenge means auth is on. */
export const AUTH_PROBE_URL = `${BASE_URL}/api/orders?user_id=${NIL_UUID}`;

let authModePromise = null;

/** 'on' when the stack's API wants bearer tokens (AUTH=jwt), 'off' otherwise; asked once. */
export function authMode() {
  if (!authModePromise) {
    authModePromise = (async () => {
      try {
        const res = await fetch(AUTH_PROBE_URL, { headers: { Accept: 'application/json' } });
        await res.text();
        return res.status === 401 && /^\s*bearer\b/i.test(res.headers.get('www-authenticate') || '') ? 'on' : 'off';
      } catch {
        return 'off';
      }
    })();
  }
  return authModePromise;
}

export async function authOn() {
  return (await authMode()) === 'on';
}

const tokens = new Map();

/** A token for `sub` (operator scope) from the stack's dev sign-in, cached per subject. */
export async function tokenFor(sub) {
  if (!tokens.has(sub)) {
    const res = await fetch(`${BASE_URL}/auth/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ sub, scope: OPERATOR_SCOPE }),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`POST /auth/token for ${sub} answered ${res.status}: ${text}`);
    tokens.set(sub, JSON.parse(text).data.access_token);
  }
  return tokens.get(sub);
}

/** A user nobody else uses, for API requests that are about no user in particular. */
const ANONYMOUS_USER = '00000000-0000-4000-8000-0000000a11ce';

export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A page in a fresh context (own localStorage) whose console errors and uncaught exceptions are
 * recorded in `problems`.
 *
 * Chromium itself logs "Failed to load resource: the server responded with a status of 4xx" for
 * every fetch that gets a 4xx answer. The tests provoke such answers on purpose (an invalid amount
 * -> 400 from the API, an id without an account -> 404, a malformed id at the dev sign-in -> 400):
 * those lines, for /api/ and /auth/ URLs with status 400 or 404, and the 401 of the page's
 * authentication probe, are not counted as problems. Anything else the page logs as an error is.
 */
export async function openPage(browser, { locale = 'en-US', viewport = { width: 1280, height: 900 } } = {}) {
  const context = await browser.newContext({ locale, viewport, colorScheme: 'light' });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const url = msg.location()?.url || '';
    const expected =
      (/^Failed to load resource: the server responded with a status of (400|404)\b/.test(msg.text()) &&
        (url.startsWith(`${BASE_URL}/api/`) || url.startsWith(`${BASE_URL}/auth/`))) ||
      (/^Failed to load resource: the server responded with a status of 401\b/.test(msg.text()) &&
        url === AUTH_PROBE_URL);
    if (!expected) problems.push(`console.error: ${msg.text()} ${url ? `(${url})` : ''}`.trim());
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err && err.stack ? err.stack : err}`));
  page.on('requestfailed', (req) => {
    // Aborted polls (user switch) are fine; a failed static asset is not.
    if (!req.url().startsWith(`${BASE_URL}/api/`)) problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`);
  });
  page.setDefaultTimeout(UI_TIMEOUT_MS);
  return { context, page, problems };
}

/** Load the app and wait until its module has initialised. */
export async function gotoApp(page) {
  const res = await page.goto(`${BASE_URL}/`, { waitUntil: 'domcontentloaded' });
  if (!res || !res.ok()) throw new Error(`GET ${BASE_URL}/ answered ${res ? res.status() : 'nothing'}`);
  await page.locator('body[data-ready="true"]').waitFor({ state: 'attached' });
}

/** Poll `fn` (may be async) until it returns a truthy value; fail with `what` after `timeout` ms. */
export async function waitUntil(fn, { timeout = UI_TIMEOUT_MS, interval = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Wait until the element's attribute equals `value`. */
export async function waitForAttr(page, selector, attr, value, timeout = UI_TIMEOUT_MS) {
  await page.waitForFunction(
    ([sel, a, v]) => {
      const el = document.querySelector(sel);
      return el !== null && el.getAttribute(a) === v;
    },
    [selector, attr, value],
    { timeout },
  );
}

export async function balanceOf(page) {
  return page.locator('#balance').getAttribute('data-balance');
}

/**
 * Sign in through the page's dev sign-in (authentication on): `userId` typed (empty: the page
 * makes a new one), operator ticked unless `operator: false`. Returns the signed-in user id.
 */
export async function signInViaUi(page, { userId = '', operator = true } = {}) {
  await page.locator('#signin').waitFor({ state: 'visible' });
  await page.locator('#signin-id').fill(userId);
  await page.locator('#signin-operator').setChecked(operator);
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${BASE_URL}/auth/token` && r.request().method() === 'POST'),
    page.locator('#signin-btn').click(),
  ]);
  if (res.status() !== 200) throw new Error(`POST /auth/token answered ${res.status()}: ${await res.text()}`);
  await page.locator('body[data-signed-in="true"]').waitFor({ state: 'attached' });
  await page.locator('#session').waitFor({ state: 'visible' });
  return (await page.locator('#user-id').textContent()).trim();
}

/**
 * Create an account through the UI and return the new user id: the "Create account" button
 * (a generated id) with authentication off; with it on, the dev sign-in as a new operator first,
 * then "Create account for this id".
 */
export async function createAccountViaUi(page) {
  let button = '#create-btn';
  if (await authOn()) {
    if ((await page.locator('body').getAttribute('data-signed-in')) !== 'true') await signInViaUi(page);
    await page.locator('#no-account').waitFor({ state: 'visible' });
    button = '#create-for-id-btn';
  }
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${BASE_URL}/api/accounts` && r.request().method() === 'POST'),
    page.locator(button).click(),
  ]);
  if (res.status() !== 201) throw new Error(`POST /api/accounts answered ${res.status()}: ${await res.text()}`);
  await page.locator('#session').waitFor({ state: 'visible' });
  const userId = (await page.locator('#user-id').textContent()).trim();
  return userId;
}

/** Where a user id is typed: the "use an existing id" form (auth off) or the sign-in (auth on). */
export async function userIdForm() {
  return (await authOn())
    ? { input: '#signin-id', msg: '#signin-msg', submit: '#signin-btn' }
    : { input: '#use-id', msg: '#use-msg', submit: null };
}

/** Make `id` the current user: "use an existing id" with authentication off, signing in as it with it on. */
export async function useUserId(page, id) {
  if (await authOn()) {
    if ((await page.locator('body').getAttribute('data-signed-in')) === 'true') await switchUser(page);
    await signInViaUi(page, { userId: id });
    return;
  }
  await page.locator('#use-id').fill(id);
  await page.locator('#use-id').press('Enter');
}

/** Open the way to another user: "Switch user" (auth off) or "Sign out" (auth on). */
export async function switchUser(page) {
  if (await authOn()) {
    await page.locator('#signout-btn').click();
    await page.locator('#signin').waitFor({ state: 'visible' });
  } else {
    await page.locator('#switch-btn').click();
  }
}

/** Fill the top-up form, submit it with Enter and wait for the API's answer. */
export async function topUp(page, amountText) {
  await page.locator('#topup-amount').fill(amountText);
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${BASE_URL}/api/accounts/topup`),
    page.locator('#topup-amount').press('Enter'),
  ]);
  return res;
}

/** Fill the order form, submit it with Enter, and return the POST /api/orders response. */
export async function placeOrder(page, amountText, description) {
  await page.locator('#order-amount').fill(amountText);
  await page.locator('#order-description').fill(description);
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${BASE_URL}/api/orders` && r.request().method() === 'POST'),
    page.locator('#order-description').press('Enter'),
  ]);
  return res;
}

export async function screenshot(page, name) {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** The user a request is about: `user_id` of its JSON body, else the first UUID of its path. */
function subjectOf(pathname, body) {
  try {
    const id = JSON.parse(body || 'null')?.user_id;
    if (typeof id === 'string' && UUID_RE.test(id)) return id.toLowerCase();
  } catch {
    /* not JSON */
  }
  const m = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i.exec(pathname);
  return m ? m[0].toLowerCase() : ANONYMOUS_USER;
}

/**
 * JSON request straight to the proxy (not through the page). With authentication on it carries
 * an operator token for `as` (default: the user the request is about, see subjectOf).
 */
export async function apiFetch(pathname, init = {}, { as } = {}) {
  const auth = (await authOn()) ? { Authorization: `Bearer ${await tokenFor(as || subjectOf(pathname, init.body))}` } : {};
  const res = await fetch(`${BASE_URL}/api${pathname}`, {
    ...init,
    headers: {
      Accept: 'application/json',
      ...(init.body ? { 'Content-Type': 'application/json' } : {}),
      ...auth,
      ...init.headers,
    },
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, text, json };
}
