// Messages next to forms (the `.form-msg` slots): success / error / info texts that follow a
// language switch, API errors turned into readable text, and fields marked invalid.

import { ApiError } from './api.js';
import { t, has } from './i18n.js';

const SUCCESS_VISIBLE_MS = 8000;

/**
 * Show a message in a form's message slot. `render` is kept so the text follows a language switch.
 * kind: 'error' | 'success' | 'info'
 */
export function showMsg(el, kind, render) {
  clearTimeout(el._timer);
  delete el.dataset.orderId;
  el._render = render;
  el.dataset.kind = kind;
  el.classList.remove('error', 'success', 'info');
  el.classList.add(kind);
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  paintMsg(el);
  // Confirmations fade away; errors stay until the next attempt.
  if (kind === 'success') el._timer = setTimeout(() => clearMsg(el), SUCCESS_VISIBLE_MS);
}

export function paintMsg(el) {
  el.replaceChildren();
  if (!el._render) return;
  const content = el._render();
  if (typeof content === 'string') el.textContent = content;
  else el.append(...content);
}

export function clearMsg(el) {
  clearTimeout(el._timer);
  el._render = null;
  delete el.dataset.kind;
  delete el.dataset.orderId;
  el.classList.remove('error', 'success', 'info');
  el.removeAttribute('role');
  el.replaceChildren();
}

function errorParts(err, overrides = {}) {
  if (!(err instanceof ApiError)) {
    return [strong(t('err.generic')), document.createTextNode(err && err.message ? ` ${err.message}` : '')];
  }
  let title;
  if (overrides[err.code]) title = t(overrides[err.code]);
  else if (err.code === 'HTTP') title = t('err.HTTP', { status: err.status });
  else if (has(`err.${err.code}`)) title = t(`err.${err.code}`);
  else title = `${t('err.generic')} (${err.code})`;
  const parts = [strong(title)];
  // The server's detail names the offending field for client errors; for outages our own text says it all.
  const generic = ['INTERNAL', 'BAD_GATEWAY', 'UNAVAILABLE', 'NETWORK', 'HTTP'].includes(err.code);
  if (!generic && err.detail && err.detail !== err.code) parts.push(document.createTextNode(` — ${err.detail}`));
  return parts;
}

function strong(text) {
  const b = document.createElement('strong');
  b.textContent = text;
  return b;
}

export function showError(el, err, { field, overrides } = {}) {
  showMsg(el, 'error', () => errorParts(err, overrides));
  if (field) field.setAttribute('aria-invalid', 'true');
}

export function showLocalError(el, key, field) {
  showMsg(el, 'error', () => t(key));
  if (field) {
    field.setAttribute('aria-invalid', 'true');
    field.focus();
  }
}

export function resetField(field, msgEl) {
  field.removeAttribute('aria-invalid');
  if (msgEl) clearMsg(msgEl);
}
