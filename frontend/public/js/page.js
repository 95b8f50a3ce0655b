// Page-wide bits outside the cards: where the "API docs" link points, and re-translating the
// page (static texts, title, language buttons, open form messages) after a language switch.

import { t, lang, translateDom } from './i18n.js';
import { paintMsg } from './messages.js';

export function swaggerUrl() {
  const meta = document.querySelector('meta[name="op:swagger-url"]');
  const tpl = (meta && meta.content) || '/swagger/index.html';
  return tpl.split('{hostname}').join(location.hostname);
}

export function renderLang() {
  translateDom();
  document.title = t('app.title');
  for (const b of document.querySelectorAll('.lang-btn')) {
    b.setAttribute('aria-pressed', String(b.dataset.lang === lang()));
  }
  for (const el of document.querySelectorAll('.form-msg')) paintMsg(el);
}
