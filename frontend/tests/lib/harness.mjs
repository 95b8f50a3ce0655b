// Shared helpers for the browser tests: launching Debian's Chromium through playwright-core,
// collecting console errors, and polling for conditions with a deadline.

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
 * -> 400 from the API, an id without an account -> 404): those lines, and only for /api/ URLs with
 * status 400 or 404, are not counted as problems. Anything else the page logs as an error is.
 */
export async function openPage(browser, { locale = 'en-US', viewport = { width: 1280, height: 900 } } = {}) {
  const context = await browser.newContext({ locale, viewport, colorScheme: 'light' });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const url = msg.location()?.url || '';
    const expected =
      /^Failed to load resource: the server responded with a status of (400|404)\b/.test(msg.text()) &&
      url.startsWith(`${BASE_URL}/api/`);
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

/** Create an account through the UI (the "Create account" button) and return the new user id. */
export async function createAccountViaUi(page) {
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${BASE_URL}/api/accounts` && r.request().method() === 'POST'),
    page.locator('#create-btn').click(),
  ]);
  if (res.status() !== 201) throw new Error(`POST /api/accounts answered ${res.status()}: ${await res.text()}`);
  await page.locator('#session').waitFor({ state: 'visible' });
  const userId = (await page.locator('#user-id').textContent()).trim();
  return userId;
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

/** JSON request straight to the proxy (not through the page). */
export async function apiFetch(pathname, init = {}) {
  const res = await fetch(`${BASE_URL}/api${pathname}`, {
    ...init,
    headers: { Accept: 'application/json', ...(init.body ? { 'Content-Type': 'application/json' } : {}), ...init.headers },
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
