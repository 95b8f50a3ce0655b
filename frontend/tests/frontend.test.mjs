// Browser end-to-end tests of the UI served by nginx on FRONTEND_URL (default http://127.0.0.1:8083),
// against the real stack (nginx -> gateway -> orders / payments, broker, databases).
//
// Run: cd frontend && npm ci && npm test          (Chromium: /usr/bin/chromium, no browser download)
//
// They pass with the stack's authentication on (AUTH=jwt: the harness signs in through the
// page's dev sign-in and sends tokens on its own requests) and off; the dev sign-in's own test
// is skipped with authentication off.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  BASE_URL,
  SETTLE_TIMEOUT_MS,
  UUID_RE,
  launchBrowser,
  openPage,
  gotoApp,
  waitForAttr,
  waitUntil,
  balanceOf,
  createAccountViaUi,
  topUp,
  placeOrder,
  screenshot,
  apiFetch,
  authMode,
  signInViaUi,
  userIdForm,
  useUserId,
  switchUser,
} from './lib/harness.mjs';

const TEST_TIMEOUT = 180_000;

let browser;

before(async () => {
  // Fail fast, with a clear message, when the stack is not up.
  let res;
  try {
    res = await fetch(`${BASE_URL}/`);
  } catch (err) {
    throw new Error(`the frontend is not reachable at ${BASE_URL} (start the stack first): ${err.cause?.code || err.message}`);
  }
  if (!res.ok) throw new Error(`GET ${BASE_URL}/ answered ${res.status}`);
  console.log(`authentication: ${await authMode()} (the stack's AUTH=${(await authMode()) === 'on' ? 'jwt' : 'off'})`);
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
});

describe('nginx proxy', () => {
  test('GET /api/health is proxied to the gateway (prefix stripped)', async () => {
    const res = await apiFetch('/health');
    assert.equal(res.status, 200, `body: ${res.text}`);
    assert.match(res.headers.get('content-type') || '', /application\/json/);
    assert.deepEqual(res.json, { data: { status: 'ok' } });
  });

  test('API errors keep the JSON envelope through the proxy', async () => {
    const res = await apiFetch('/orders', {
      method: 'POST',
      body: JSON.stringify({ user_id: 'not-a-uuid', amount: 1, description: 'x' }),
    });
    assert.equal(res.status, 400, `body: ${res.text}`);
    assert.equal(res.json?.error?.code, 'BAD_REQUEST', `body: ${res.text}`);
    assert.equal(typeof res.json.error.message, 'string');
  });

  test('Swagger UI of the gateway is reachable through /swagger/index.html', async () => {
    const res = await fetch(`${BASE_URL}/swagger/index.html`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') || '', /text\/html/);
    await res.body?.cancel();
  });
});

describe('UI', () => {
  test('account, top-up, paid and failed orders, validation errors, without reloading', { timeout: TEST_TIMEOUT }, async () => {
    const { context, page, problems } = await openPage(browser, { locale: 'en-US' });
    try {
      await gotoApp(page);
      // Marker that would vanish on a full page reload.
      await page.evaluate(() => {
        window.__e2eNoReload = 'still-here';
      });

      // Texts are English for an English browser; the Swagger link points at the proxy.
      assert.equal(await page.locator('html').getAttribute('lang'), 'en');
      const swaggerHref = await page.locator('#swagger-link').getAttribute('href');
      assert.ok(swaggerHref && swaggerHref.endsWith('/swagger/index.html'), `swagger link: ${swaggerHref}`);

      // --- create an account: a generated user id, shown, remembered, balance 0
      const userId = await createAccountViaUi(page);
      assert.match(userId, UUID_RE);
      assert.equal(await page.evaluate(() => localStorage.getItem('op.userId')), userId);
      await waitForAttr(page, '#balance', 'data-balance', '0');
      assert.equal((await page.locator('#balance').textContent()).trim(), '0.00');

      // --- top up (Enter submits)
      const topRes = await topUp(page, '100');
      assert.equal(topRes.status(), 200, await topRes.text());
      await waitForAttr(page, '#balance', 'data-balance', '100');
      assert.equal((await page.locator('#balance').textContent()).trim(), '100.00');

      // --- an order that fits; "12,50" (comma) is sent as the JSON number 12.5
      const okRes = await placeOrder(page, '12,50', 'Coffee beans');
      assert.equal(okRes.status(), 201, await okRes.text());
      assert.deepEqual(okRes.request().postDataJSON(), { user_id: userId, amount: 12.5, description: 'Coffee beans' });
      const okId = (await okRes.json()).data.order_id;
      assert.match(okId, UUID_RE);
      const okRow = `#orders-body tr[data-order-id="${okId}"]`;
      await page.locator(okRow).waitFor({ state: 'visible' });
      await waitForAttr(page, okRow, 'data-status', 'FINISHED', SETTLE_TIMEOUT_MS);
      assert.equal((await page.locator(`${okRow} .badge`).textContent()).trim(), 'Paid');
      assert.equal((await page.locator(`${okRow} .col-amount`).textContent()).trim(), '12.50');
      assert.equal((await page.locator(`${okRow} .desc-text`).textContent()).trim(), 'Coffee beans');
      // The balance follows without a reload.
      await waitForAttr(page, '#balance', 'data-balance', '87.5');
      assert.equal((await page.locator('#balance').textContent()).trim(), '87.50');
      // Under it, the history (GET /accounts/{id}/transactions): debit, top-up, opening.
      await page.waitForFunction(() => document.querySelectorAll('#history li').length === 3);
      assert.deepEqual(
        await page.locator('#history li').evaluateAll((els) => els.map((e) => e.dataset.kind)),
        ['DEBIT', 'TOP_UP', 'OPENING'],
      );
      assert.equal((await page.locator('#history li .history-amount').first().textContent()).trim(), '−12.50');
      assert.equal((await page.locator('#history li .history-after').first().textContent()).trim(), 'balance 87.50');

      // --- an order that does not fit -> FAILED, reason shown
      const bigRes = await placeOrder(page, '1000', 'Too expensive');
      assert.equal(bigRes.status(), 201, await bigRes.text());
      const bigId = (await bigRes.json()).data.order_id;
      const bigRow = `#orders-body tr[data-order-id="${bigId}"]`;
      await page.locator(bigRow).waitFor({ state: 'visible' });
      await waitForAttr(page, bigRow, 'data-status', 'FAILED', SETTLE_TIMEOUT_MS);
      assert.equal((await page.locator(`${bigRow} .badge`).textContent()).trim(), 'Failed');
      assert.equal(await page.locator(`${bigRow} .col-reason`).getAttribute('data-reason'), 'INSUFFICIENT_FUNDS');
      assert.equal((await page.locator(`${bigRow} .col-reason`).textContent()).trim(), 'Insufficient funds');
      // Newest first.
      assert.equal(await page.locator('#orders-body tr').first().getAttribute('data-order-id'), bigId);
      // A failed order is not debited (the page refreshes the balance when the order settles).
      const acc = await apiFetch(`/accounts/${userId}`);
      assert.equal(acc.json?.data?.balance, 87.5, acc.text);
      await waitForAttr(page, '#balance', 'data-balance', '87.5');

      // --- screenshots after the paid + failed orders, desktop and phone width
      await page.locator('#orders-live').waitFor({ state: 'hidden' });
      await page.evaluate(() => document.activeElement && document.activeElement.blur());
      await screenshot(page, 'frontend-desktop.png');
      await page.setViewportSize({ width: 375, height: 812 });
      // The layout must fit: no horizontal scrolling at 375 px.
      await waitUntil(() => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), {
        what: 'no horizontal overflow at 375 px',
      });
      await screenshot(page, 'frontend-mobile.png');
      await page.setViewportSize({ width: 1280, height: 900 });

      // --- invalid amounts: the API's error is shown next to the order form, no order row appears
      for (const bad of ['1.234', '-5']) {
        const rowsBefore = await page.locator('#orders-body tr').count();
        const badRes = await placeOrder(page, bad, `Invalid amount ${bad}`);
        assert.equal(badRes.status(), 400, `amount ${bad}: ${await badRes.text()}`);
        const msg = page.locator('#order-msg.error');
        await msg.waitFor({ state: 'visible' });
        const text = (await msg.textContent()).trim();
        assert.match(text, /^Invalid input/, `message for ${bad}: ${text}`);
        assert.match(text, /amount/i, `the API's message names the field: ${text}`);
        assert.equal(await page.locator('#order-amount').getAttribute('aria-invalid'), 'true');
        // The message sits inside the order form.
        assert.equal(await page.locator('#order-form #order-msg').count(), 1);
        // Nothing was created: the list, asked again, still has the same rows.
        await page.locator('#refresh-btn').click();
        const list = await apiFetch(`/orders?user_id=${userId}`);
        assert.equal(list.json?.data?.length, rowsBefore, list.text);
        assert.equal(await page.locator('#orders-body tr').count(), rowsBefore);
      }
      // Text that is not a number at all is refused before anything is sent (never NaN).
      let sentNaN = false;
      const watch = (req) => {
        if (req.url() === `${BASE_URL}/api/orders` && req.method() === 'POST') sentNaN = true;
      };
      page.on('request', watch);
      await page.locator('#order-amount').fill('twelve');
      await page.locator('#order-description').fill('Not a number');
      await page.locator('#order-description').press('Enter');
      await page.locator('#order-msg.error').waitFor({ state: 'visible' });
      assert.match((await page.locator('#order-msg').textContent()).trim(), /^The amount must be a number/);
      page.off('request', watch);
      assert.equal(sentNaN, false, 'a non-numeric amount must not be sent');

      // --- the whole flow happened in one page load
      assert.equal(await page.evaluate(() => window.__e2eNoReload), 'still-here');


      assert.deepEqual(problems, [], `console errors:\n${problems.join('\n')}`);
    } finally {
      await context.close();
    }
  });

  test('an existing user id can be pasted; an id without an account gets ACCOUNT_NOT_FOUND', { timeout: TEST_TIMEOUT }, async () => {
    // An account made directly through the API.
    const existing = randomUUID();
    const created = await apiFetch('/accounts', { method: 'POST', body: JSON.stringify({ user_id: existing, balance: 25 }) });
    assert.equal(created.status, 201, created.text);

    const { context, page, problems } = await openPage(browser, { locale: 'en-US' });
    try {
      await gotoApp(page);
      await useUserId(page, existing);
      await waitForAttr(page, '#balance', 'data-balance', '25');
      assert.equal((await page.locator('#user-id').textContent()).trim(), existing);
      assert.equal(await page.evaluate(() => localStorage.getItem('op.userId')), existing);

      // Remembered across a reload.
      await gotoApp(page);
      await waitForAttr(page, '#balance', 'data-balance', '25');

      // A malformed id: the 400 (of the API, or of the dev sign-in) shows next to the form.
      const form = await userIdForm();
      await switchUser(page);
      await page.locator(form.input).fill('definitely-not-a-uuid');
      await page.locator(form.input).press('Enter');
      await page.locator(`${form.msg}.error`).waitFor({ state: 'visible' });
      assert.match((await page.locator(form.msg).textContent()).trim(), /^Invalid input/);

      // A well-formed id without an account: the page says so and orders still work (and fail).
      const stranger = randomUUID();
      await page.locator(form.input).fill(stranger);
      await page.locator(form.input).press('Enter');
      await page.locator('#no-account').waitFor({ state: 'visible' });
      assert.equal((await page.locator('#user-id').textContent()).trim(), stranger);
      const res = await placeOrder(page, '5', 'No account');
      assert.equal(res.status(), 201, await res.text());
      const id = (await res.json()).data.order_id;
      const row = `#orders-body tr[data-order-id="${id}"]`;
      await waitForAttr(page, row, 'data-status', 'FAILED', SETTLE_TIMEOUT_MS);
      assert.equal(await page.locator(`${row} .col-reason`).getAttribute('data-reason'), 'ACCOUNT_NOT_FOUND');
      assert.equal((await page.locator(`${row} .col-reason`).textContent()).trim(), 'No account for this user');

      assert.deepEqual(problems, [], `console errors:\n${problems.join('\n')}`);
    } finally {
      await context.close();
    }
  });

  test('a POST whose answer is lost is retried with its Idempotency-Key: one top-up, one order', { timeout: TEST_TIMEOUT }, async () => {
    const { context, page, problems } = await openPage(browser, { locale: 'en-US' });
    try {
      await gotoApp(page);
      const keys = [];
      page.on('request', (req) => {
        if (req.method() === 'POST' && req.url().startsWith(`${BASE_URL}/api/`)) {
          keys.push([new URL(req.url()).pathname, req.headers()['idempotency-key']]);
        }
      });
      const userId = await createAccountViaUi(page);
      // The first attempt of each POST below reaches the server, which does the work, but its
      // answer is lost on the way back (the page sees a 502, as from a gateway timeout).
      let lost = 0;
      const attempts = {};
      await page.route(/\/api\/(orders|accounts\/topup)$/, async (route) => {
        if (route.request().method() !== 'POST') return route.continue();
        const path = new URL(route.request().url()).pathname;
        attempts[path] = (attempts[path] || 0) + 1;
        if (attempts[path] === 1) {
          lost += 1;
          await route.fetch();
          return route.fulfill({
            status: 502,
            contentType: 'application/json',
            body: JSON.stringify({ error: { code: 'BAD_GATEWAY', message: 'answer lost' } }),
          });
        }
        return route.continue();
      });

      const topRes = await topUp(page, '30');
      assert.equal(topRes.status(), 502);
      await waitForAttr(page, '#balance', 'data-balance', '30');
      const [orderRes] = await Promise.all([
        page.waitForResponse(
          (r) => r.url() === `${BASE_URL}/api/orders` && r.request().method() === 'POST' && r.status() === 201,
        ),
        (async () => {
          await page.locator('#order-amount').fill('12');
          await page.locator('#order-description').fill('Retried');
          await page.locator('#order-description').press('Enter');
        })(),
      ]);
      assert.equal(await orderRes.headerValue('idempotent-replayed'), 'true', 'the retry was answered from the key');
      const orderId = (await orderRes.json()).data.order_id;
      await waitForAttr(page, `#orders-body tr[data-order-id="${orderId}"]`, 'data-status', 'FINISHED', SETTLE_TIMEOUT_MS);
      await waitForAttr(page, '#balance', 'data-balance', '18');
      assert.equal(lost, 2);

      // Each action had its own key, and its retry the same one.
      const [open, topFirst, topRetry, orderFirst, orderRetry] = keys;
      assert.deepEqual(keys.map(([p]) => p), ['/api/accounts', '/api/accounts/topup', '/api/accounts/topup', '/api/orders', '/api/orders']);
      for (const [, key] of keys) assert.match(key || '', UUID_RE);
      assert.equal(topRetry[1], topFirst[1]);
      assert.equal(orderRetry[1], orderFirst[1]);
      assert.equal(new Set([open[1], topFirst[1], orderFirst[1]]).size, 3);

      // The server has one top-up and one order.
      const orders = await apiFetch(`/orders?user_id=${userId}`);
      assert.equal(orders.json?.data?.length, 1, orders.text);
      const history = await apiFetch(`/accounts/${userId}/transactions`);
      assert.deepEqual(history.json?.data?.map((e) => e.kind), ['DEBIT', 'TOP_UP', 'OPENING'], history.text);
      assert.deepEqual(problems.filter((p) => !/502/.test(p)), [], `console errors:\n${problems.join('\n')}`);
    } finally {
      await context.close();
    }
  });

  test('the orders table follows the order stream without polling, and polls while the stream is refused', { timeout: TEST_TIMEOUT }, async () => {
    const { context, page, problems } = await openPage(browser, { locale: 'en-US' });
    try {
      await gotoApp(page);
      await createAccountViaUi(page);
      assert.equal((await topUp(page, '50')).status(), 200);
      await waitForAttr(page, 'body', 'data-stream', 'live');
      const lists = [];
      page.on('request', (req) => {
        if (req.method() === 'GET' && req.url().startsWith(`${BASE_URL}/api/orders?`)) lists.push(req.url());
      });

      const res = await placeOrder(page, '7', 'Streamed');
      assert.equal(res.status(), 201, await res.text());
      const id = (await res.json()).data.order_id;
      const row = `#orders-body tr[data-order-id="${id}"]`;
      await waitForAttr(page, row, 'data-status', 'FINISHED', SETTLE_TIMEOUT_MS);
      assert.equal((await page.locator(`${row} .desc-text`).textContent()).trim(), 'Streamed');
      await waitForAttr(page, '#balance', 'data-balance', '43');
      assert.deepEqual(lists, [], 'no list request while the stream was up');
      assert.equal(await page.locator('body').getAttribute('data-stream'), 'live');

      // The server refuses the stream (503, as past its bound): the table is polled instead.
      const stream = /\/api\/orders\/stream/;
      await page.route(stream, (route) =>
        route.fulfill({
          status: 503,
          contentType: 'application/json',
          body: JSON.stringify({ error: { code: 'UNAVAILABLE', message: 'too many open order streams, retry later' } }),
        }),
      );
      await gotoApp(page);
      await waitForAttr(page, 'body', 'data-stream', 'polling');
      lists.length = 0;
      const polled = await placeOrder(page, '8', 'Polled');
      assert.equal(polled.status(), 201, await polled.text());
      const polledId = (await polled.json()).data.order_id;
      await waitForAttr(page, `#orders-body tr[data-order-id="${polledId}"]`, 'data-status', 'FINISHED', SETTLE_TIMEOUT_MS);
      assert.ok(lists.length >= 1, 'the list was fetched while the stream was refused');

      // The stream comes back by itself.
      await page.unroute(stream);
      await waitForAttr(page, 'body', 'data-stream', 'live', 15_000);
      assert.deepEqual(problems.filter((p) => !/503|EventSource/.test(p)), [], `console errors:\n${problems.join('\n')}`);
    } finally {
      await context.close();
    }
  });

  test('language: default from the browser, switchable, remembered, locale number format', { timeout: TEST_TIMEOUT }, async () => {
    // A Russian browser gets Russian texts.
    {
      const { context, page, problems } = await openPage(browser, { locale: 'ru-RU' });
      try {
        await gotoApp(page);
        assert.equal(await page.locator('html').getAttribute('lang'), 'ru');
        assert.equal((await page.locator('#account-title').textContent()).trim(), 'Счёт');
        assert.deepEqual(problems, []);
      } finally {
        await context.close();
      }
    }

    const { context, page, problems } = await openPage(browser, { locale: 'en-US' });
    try {
      await gotoApp(page);
      assert.equal((await page.locator('#account-title').textContent()).trim(), 'Account');
      assert.equal((await page.locator('#create-btn').textContent()).trim(), 'Create account');
      await createAccountViaUi(page);
      const res = await topUp(page, '1234,5');
      assert.equal(res.status(), 200, await res.text());
      await waitForAttr(page, '#balance', 'data-balance', '1234.5');
      assert.equal((await page.locator('#balance').textContent()).trim(), '1,234.50');

      // Switch to Russian with the visible switch (keyboard: focus + Enter).
      await page.locator('.lang-btn[data-lang="ru"]').focus();
      await page.keyboard.press('Enter');
      await waitForAttr(page, 'html', 'lang', 'ru');
      assert.equal(await page.locator('.lang-btn[data-lang="ru"]').getAttribute('aria-pressed'), 'true');
      assert.equal((await page.locator('#account-title').textContent()).trim(), 'Счёт');
      assert.equal((await page.locator('#orders-title').textContent()).trim(), 'Заказы');
      assert.equal((await page.locator('#order-submit').textContent()).trim(), 'Оформить заказ');
      assert.match((await page.locator('#balance').textContent()).trim(), /^1\s234,50$/u);
      assert.equal(await page.title(), 'Заказы и платежи');

      // Russian status and date in the table.
      const orderRes = await placeOrder(page, '0,5', 'Чай');
      assert.equal(orderRes.status(), 201, await orderRes.text());
      const id = (await orderRes.json()).data.order_id;
      const row = `#orders-body tr[data-order-id="${id}"]`;
      await waitForAttr(page, row, 'data-status', 'FINISHED', SETTLE_TIMEOUT_MS);
      assert.equal((await page.locator(`${row} .badge`).textContent()).trim(), 'Оплачен');
      assert.equal((await page.locator(`${row} .col-amount`).textContent()).trim(), '0,50');
      const when = (await page.locator(`${row} time`).textContent()).trim();
      assert.match(when, /\d{4}/, `date: ${when}`);
      await waitForAttr(page, '#balance', 'data-balance', '1234');

      // The choice survives a reload.
      await gotoApp(page);
      assert.equal(await page.locator('html').getAttribute('lang'), 'ru');
      assert.equal((await page.locator('#account-title').textContent()).trim(), 'Счёт');

      // And back.
      await page.locator('.lang-btn[data-lang="en"]').click();
      await waitForAttr(page, 'html', 'lang', 'en');
      assert.equal((await page.locator('#account-title').textContent()).trim(), 'Account');
      assert.equal((await page.locator(`${row} .badge`).textContent()).trim(), 'Paid');

      assert.deepEqual(problems, [], `console errors:\n${problems.join('\n')}`);
    } finally {
      await context.close();
    }
  });
});

describe('dev sign-in (AUTH=jwt)', () => {
  test('sign in, create account, top up, order paid; without the operator scope a top-up is refused; a refused token asks to sign in again', { timeout: TEST_TIMEOUT }, async (t) => {
    if ((await authMode()) !== 'on') {
      t.skip('authentication is off (the stack runs with AUTH=off): the page shows no sign-in; run it with AUTH=jwt to test this');
      return;
    }
    const { context, page, problems } = await openPage(browser, { locale: 'en-US' });
    try {
      await gotoApp(page);
      assert.equal(await page.locator('body').getAttribute('data-auth'), 'on');

      // --- signed out: only the sign-in shows; the operator box is ticked by default
      await page.locator('#signin').waitFor({ state: 'visible' });
      assert.equal((await page.locator('#signin .signin-title').textContent()).trim(), 'Sign in (dev)');
      assert.equal(await page.locator('#start').isVisible(), false, 'no "create with a new id" while signed out');
      assert.equal(await page.locator('#session').isVisible(), false);
      assert.equal(await page.locator('#auth-status').isVisible(), false);
      assert.equal(await page.locator('#signin-operator').isChecked(), true);
      assert.equal((await page.locator('#order-need-user').textContent()).trim(), 'Sign in first.');

      // Every API request from here on carries the token.
      const anonymous = [];
      const checked = [];
      const watchAuthorization = (req) => {
        if (!req.url().startsWith(`${BASE_URL}/api/`)) return;
        checked.push(
          req
            .allHeaders()
            .then((headers) => {
              if (!/^Bearer \S+$/.test(headers.authorization || '')) anonymous.push(`${req.method()} ${req.url()}`);
            })
            .catch(() => {}),
        );
      };
      page.on('request', watchAuthorization);

      // --- sign in as a new user (empty id: the page makes one), operator
      const [tokenRes] = await Promise.all([
        page.waitForResponse((r) => r.url() === `${BASE_URL}/auth/token` && r.request().method() === 'POST'),
        page.locator('#signin-btn').click(),
      ]);
      assert.equal(tokenRes.status(), 200, await tokenRes.text());
      const asked = tokenRes.request().postDataJSON();
      assert.match(asked.sub, UUID_RE);
      assert.equal(asked.scope, 'payments:topup');
      const userId = asked.sub;
      const body = await tokenRes.json();
      assert.equal(body.data.token_type, 'Bearer');
      assert.equal(body.data.expires_in, 3600);

      await page.locator('#auth-status').waitFor({ state: 'visible' });
      assert.equal(await page.locator('#signin').isVisible(), false);
      assert.equal((await page.locator('#auth-who').textContent()).trim(), `Signed in as ${userId}`);
      assert.equal(await page.locator('#auth-role').isVisible(), true, 'the operator badge');
      assert.equal((await page.locator('#user-id').textContent()).trim(), userId);
      assert.equal(
        await page.evaluate(() => JSON.parse(sessionStorage.getItem('op.auth') || '{}').token),
        body.data.access_token,
        'the token is kept in sessionStorage',
      );

      // --- create account -> top up -> order -> FINISHED
      await page.locator('#no-account').waitFor({ state: 'visible' });
      const [created] = await Promise.all([
        page.waitForResponse((r) => r.url() === `${BASE_URL}/api/accounts` && r.request().method() === 'POST'),
        page.locator('#create-for-id-btn').click(),
      ]);
      assert.equal(created.status(), 201, await created.text());
      assert.deepEqual(created.request().postDataJSON(), { user_id: userId });
      await waitForAttr(page, '#balance', 'data-balance', '0');

      const top = await topUp(page, '40');
      assert.equal(top.status(), 200, await top.text());
      await waitForAttr(page, '#balance', 'data-balance', '40');

      const placed = await placeOrder(page, '15', 'Signed in');
      assert.equal(placed.status(), 201, await placed.text());
      const orderId = (await placed.json()).data.order_id;
      const row = `#orders-body tr[data-order-id="${orderId}"]`;
      await waitForAttr(page, row, 'data-status', 'FINISHED', SETTLE_TIMEOUT_MS);
      await waitForAttr(page, '#balance', 'data-balance', '25');
      // The order stream runs with the token too (fetch instead of EventSource).
      await waitForAttr(page, 'body', 'data-stream', 'live');
      page.off('request', watchAuthorization);
      await Promise.all(checked);
      assert.deepEqual(anonymous, [], 'API requests without the bearer token');

      // --- signed in again without the operator scope: the top-up is refused (403), nothing moves
      await page.locator('#signout-btn').click();
      await page.locator('#signin').waitFor({ state: 'visible' });
      assert.equal(await page.locator('#session').isVisible(), false);
      assert.equal(await page.evaluate(() => sessionStorage.getItem('op.auth')), null);
      await signInViaUi(page, { userId, operator: false });
      await waitForAttr(page, '#balance', 'data-balance', '25');
      assert.equal(await page.locator('#auth-role').isVisible(), false);
      const refused = await topUp(page, '5');
      assert.equal(refused.status(), 403, await refused.text());
      await page.locator('#topup-msg.error').waitFor({ state: 'visible' });
      assert.match((await page.locator('#topup-msg').textContent()).trim(), /^Not allowed/);
      const acc = await apiFetch(`/accounts/${userId}`);
      assert.equal(acc.json?.data?.balance, 25, acc.text);

      // --- a token the gateway refuses (its signature broken): the page asks to sign in again
      await page.evaluate(() => {
        const saved = JSON.parse(sessionStorage.getItem('op.auth'));
        const [h, p, sig] = saved.token.split('.');
        saved.token = `${h}.${p}.${sig.startsWith('A') ? 'B' : 'A'}${sig.slice(1)}`;
        sessionStorage.setItem('op.auth', JSON.stringify(saved));
      });
      await gotoApp(page);
      await page.locator('#signin').waitFor({ state: 'visible' });
      await page.locator('#signin-msg.info').waitFor({ state: 'visible' });
      assert.match((await page.locator('#signin-msg').textContent()).trim(), /sign in again/i);
      assert.equal(await page.locator('#signin-id').inputValue(), userId, 'the same user id is offered');
      assert.equal(await page.locator('#session').isVisible(), false);
      await signInViaUi(page, { userId });
      await waitForAttr(page, '#balance', 'data-balance', '25');

      assert.deepEqual(
        problems.filter((p) => !/status of (401|403)\b/.test(p)),
        [],
        `console errors:\n${problems.join('\n')}`,
      );
    } finally {
      await context.close();
    }
  });
});
