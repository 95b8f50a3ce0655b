// Texts in English and Russian, the chosen language, and locale-aware formatting.

const STORAGE_KEY = 'op.lang';
export const LANGS = ['en', 'ru'];

const MESSAGES = {
  en: {
    'app.title': 'Orders & Payments',
    'app.tagline': 'Top up an account, place orders, watch them get paid.',
    'nav.swagger': 'API docs (Swagger)',
    'lang.label': 'Language',
    'nav.skip': 'Skip to content',

    'account.title': 'Account',
    'account.intro': 'Create an account to get a user id, or continue with a user id you already have.',
    'account.create': 'Create account',
    'account.creating': 'Creating…',
    'account.or': 'or',
    'account.useLabel': 'Existing user id',
    'account.usePlaceholder': 'e.g. 3f2b8c1e-…',
    'account.use': 'Use',
    'account.userId': 'Your user id',
    'account.copy': 'Copy',
    'account.copied': 'Copied',
    'account.copyFailed': 'Copy it manually',
    'account.balance': 'Balance',
    'history.title': 'Recent movements',
    'history.opening': 'Opening balance',
    'history.topUp': 'Top-up',
    'history.debit': 'Order paid',
    'history.after': 'balance {balance}',
    'account.noAccount': 'No account for this user id yet.',
    'account.createForId': 'Create account for this id',
    'account.switch': 'Switch user',
    'account.cancelSwitch': 'Cancel',
    'account.created': 'Account created.',

    'auth.title': 'Sign in (dev)',
    'auth.intro': 'Authentication is on. This development sign-in gives a token for any user id; leave it empty to become a new user.',
    'auth.userId': 'User id',
    'auth.userIdPlaceholder': 'empty: a new user id',
    'auth.operator': 'Operator (may top up)',
    'auth.submit': 'Sign in',
    'auth.signedInAs': 'Signed in as {who}',
    'auth.operatorBadge': 'operator',
    'auth.signOut': 'Sign out',
    'auth.expired': 'Your sign-in has expired or is no longer accepted. Please sign in again.',
    'auth.needSignIn': 'Sign in first.',
    'auth.badToken': 'The sign-in answered without a usable token.',

    'topup.label': 'Top-up amount',
    'topup.placeholder': '100.00',
    'topup.submit': 'Top up',
    'topup.done': 'Balance topped up by {amount}.',

    'order.title': 'New order',
    'order.amount': 'Amount',
    'order.amountPlaceholder': '12.50',
    'order.description': 'Description',
    'order.descriptionPlaceholder': 'What is this order for?',
    'order.submit': 'Place order',
    'order.placed': 'Order placed. Payment is being processed…',
    'order.needUser': 'Create or choose an account first.',

    'orders.title': 'Orders',
    'orders.refresh': 'Refresh',
    'orders.empty': 'No orders yet.',
    'orders.updating': 'Waiting for payments…',
    'orders.caption': 'Orders of the current user, newest first',
    'orders.col.created': 'Created',
    'orders.col.description': 'Description',
    'orders.col.amount': 'Amount',
    'orders.col.status': 'Status',
    'orders.col.reason': 'Details',
    'orders.id': 'Order id',
    'orders.updated': 'Updated',

    'status.NEW': 'Processing',
    'status.FINISHED': 'Paid',
    'status.FAILED': 'Failed',

    'reason.INSUFFICIENT_FUNDS': 'Insufficient funds',
    'reason.ACCOUNT_NOT_FOUND': 'No account for this user',
    'reason.unknown': 'Payment failed ({code})',

    'err.BAD_REQUEST': 'Invalid input',
    'err.UNAUTHORIZED': 'Not signed in',
    'err.FORBIDDEN': 'Not allowed',
    'err.TOO_MANY_REQUESTS': 'Too many requests, please wait a moment and try again',
    'err.NOT_FOUND': 'Not found',
    'err.METHOD_NOT_ALLOWED': 'Operation not allowed',
    'err.CONFLICT': 'Conflict',
    'err.PAYLOAD_TOO_LARGE': 'Request is too large',
    'err.UNSUPPORTED_MEDIA_TYPE': 'Unsupported request format',
    'err.INTERNAL': 'Server error, please try again',
    'err.BAD_GATEWAY': 'The service is not reachable right now, please try again',
    'err.UNAVAILABLE': 'The service is temporarily unavailable, please try again',
    'err.NETWORK': 'No connection to the server, please check your network and try again',
    'err.HTTP': 'Unexpected server response (HTTP {status})',
    'err.generic': 'Something went wrong',
    'err.amountRequired': 'Enter an amount, for example 12.50.',
    'err.amountNotNumber': 'The amount must be a number, for example 12.50 or 12,50.',
    'err.userIdRequired': 'Paste a user id.',
    'err.accountExists': 'This user id already has an account.',
  },
  ru: {
    'app.title': 'Заказы и платежи',
    'app.tagline': 'Пополните счёт, оформите заказ и следите за его оплатой.',
    'nav.swagger': 'Документация API (Swagger)',
    'lang.label': 'Язык',
    'nav.skip': 'Перейти к содержимому',

    'account.title': 'Счёт',
    'account.intro': 'Создайте счёт, чтобы получить идентификатор пользователя, или продолжите с уже имеющимся.',
    'account.create': 'Создать счёт',
    'account.creating': 'Создаём…',
    'account.or': 'или',
    'account.useLabel': 'Существующий идентификатор',
    'account.usePlaceholder': 'например, 3f2b8c1e-…',
    'account.use': 'Выбрать',
    'account.userId': 'Ваш идентификатор',
    'account.copy': 'Копировать',
    'account.copied': 'Скопировано',
    'account.copyFailed': 'Скопируйте вручную',
    'account.balance': 'Баланс',
    'history.title': 'Последние операции',
    'history.opening': 'Начальный баланс',
    'history.topUp': 'Пополнение',
    'history.debit': 'Оплата заказа',
    'history.after': 'баланс {balance}',
    'account.noAccount': 'Для этого идентификатора ещё нет счёта.',
    'account.createForId': 'Создать счёт для этого идентификатора',
    'account.switch': 'Сменить пользователя',
    'account.cancelSwitch': 'Отмена',
    'account.created': 'Счёт создан.',

    'auth.title': 'Вход (для разработки)',
    'auth.intro': 'Включена аутентификация. Этот вход для разработки выдаёт токен для любого идентификатора; оставьте поле пустым, чтобы стать новым пользователем.',
    'auth.userId': 'Идентификатор пользователя',
    'auth.userIdPlaceholder': 'пусто: новый идентификатор',
    'auth.operator': 'Оператор (может пополнять счёт)',
    'auth.submit': 'Войти',
    'auth.signedInAs': 'Вы вошли как {who}',
    'auth.operatorBadge': 'оператор',
    'auth.signOut': 'Выйти',
    'auth.expired': 'Срок действия входа истёк или он больше не принимается. Войдите снова.',
    'auth.needSignIn': 'Сначала войдите.',
    'auth.badToken': 'Вход не вернул пригодный токен.',

    'topup.label': 'Сумма пополнения',
    'topup.placeholder': '100,00',
    'topup.submit': 'Пополнить',
    'topup.done': 'Баланс пополнен на {amount}.',

    'order.title': 'Новый заказ',
    'order.amount': 'Сумма',
    'order.amountPlaceholder': '12,50',
    'order.description': 'Описание',
    'order.descriptionPlaceholder': 'Что это за заказ?',
    'order.submit': 'Оформить заказ',
    'order.placed': 'Заказ оформлен. Идёт оплата…',
    'order.needUser': 'Сначала создайте или выберите счёт.',

    'orders.title': 'Заказы',
    'orders.refresh': 'Обновить',
    'orders.empty': 'Заказов пока нет.',
    'orders.updating': 'Ожидаем оплату…',
    'orders.caption': 'Заказы текущего пользователя, новые сверху',
    'orders.col.created': 'Создан',
    'orders.col.description': 'Описание',
    'orders.col.amount': 'Сумма',
    'orders.col.status': 'Статус',
    'orders.col.reason': 'Причина',
    'orders.id': 'Номер заказа',
    'orders.updated': 'Обновлён',

    'status.NEW': 'В обработке',
    'status.FINISHED': 'Оплачен',
    'status.FAILED': 'Ошибка',

    'reason.INSUFFICIENT_FUNDS': 'Недостаточно средств',
    'reason.ACCOUNT_NOT_FOUND': 'У пользователя нет счёта',
    'reason.unknown': 'Оплата не прошла ({code})',

    'err.BAD_REQUEST': 'Некорректные данные',
    'err.UNAUTHORIZED': 'Требуется вход',
    'err.FORBIDDEN': 'Недостаточно прав',
    'err.TOO_MANY_REQUESTS': 'Слишком много запросов, подождите немного и попробуйте ещё раз',
    'err.NOT_FOUND': 'Не найдено',
    'err.METHOD_NOT_ALLOWED': 'Операция не разрешена',
    'err.CONFLICT': 'Конфликт',
    'err.PAYLOAD_TOO_LARGE': 'Слишком большой запрос',
    'err.UNSUPPORTED_MEDIA_TYPE': 'Неподдерживаемый формат запроса',
    'err.INTERNAL': 'Ошибка сервера, попробуйте ещё раз',
    'err.BAD_GATEWAY': 'Сервис сейчас недоступен, попробуйте ещё раз',
    'err.UNAVAILABLE': 'Сервис временно недоступен, попробуйте ещё раз',
    'err.NETWORK': 'Нет связи с сервером, проверьте подключение и попробуйте ещё раз',
    'err.HTTP': 'Неожиданный ответ сервера (HTTP {status})',
    'err.generic': 'Что-то пошло не так',
    'err.amountRequired': 'Введите сумму, например 12,50.',
    'err.amountNotNumber': 'Сумма должна быть числом, например 12,50 или 12.50.',
    'err.userIdRequired': 'Вставьте идентификатор пользователя.',
    'err.accountExists': 'Для этого идентификатора счёт уже есть.',
  },
};

const LOCALES = { en: 'en-US', ru: 'ru-RU' };

function readStored() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

function detect() {
  const stored = readStored();
  if (LANGS.includes(stored)) return stored;
  const prefs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
  for (const tag of prefs) {
    const base = String(tag || '').toLowerCase().split('-')[0];
    if (LANGS.includes(base)) return base;
  }
  return 'en';
}

let current = detect();
let moneyFmt = null;
let dateFmt = null;
let dateFmtLong = null;
let dayFmt = null;
let timeFmt = null;
const listeners = new Set();

function rebuildFormatters() {
  const locale = LOCALES[current];
  moneyFmt = new Intl.NumberFormat(locale, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  dateFmt = new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' });
  dateFmtLong = new Intl.DateTimeFormat(locale, { dateStyle: 'long', timeStyle: 'medium' });
  dayFmt = new Intl.DateTimeFormat(locale, { dateStyle: 'medium' });
  timeFmt = new Intl.DateTimeFormat(locale, { timeStyle: 'short' });
}
rebuildFormatters();

export function lang() {
  return current;
}

export function setLang(next) {
  if (!LANGS.includes(next) || next === current) return;
  current = next;
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    /* storage may be unavailable (private mode); the choice then lasts for this page only */
  }
  rebuildFormatters();
  for (const fn of listeners) fn(current);
}

export function onLangChange(fn) {
  listeners.add(fn);
}

/** Translate a key; `{name}` placeholders are replaced from params. */
export function t(key, params = {}) {
  const table = MESSAGES[current];
  let text = table[key] ?? MESSAGES.en[key] ?? key;
  for (const [name, value] of Object.entries(params)) {
    text = text.split(`{${name}}`).join(String(value));
  }
  return text;
}

export function has(key) {
  return Object.prototype.hasOwnProperty.call(MESSAGES[current], key);
}

export function formatMoney(value) {
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) ? moneyFmt.format(n) : String(value ?? '');
}

/** [date, time] of a timestamp, formatted separately (for two-line display). */
export function formatDateParts(value) {
  const d = new Date(value);
  if (!value || Number.isNaN(d.getTime())) return [String(value ?? ''), ''];
  return [dayFmt.format(d), timeFmt.format(d)];
}

export function formatDate(value, long = false) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : (long ? dateFmtLong : dateFmt).format(d);
}

/** Apply translations to every element marked with data-i18n / data-i18n-* attributes. */
export function translateDom(root = document) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) {
    el.setAttribute('placeholder', t(el.dataset.i18nPlaceholder));
  }
  for (const el of root.querySelectorAll('[data-i18n-aria-label]')) {
    el.setAttribute('aria-label', t(el.dataset.i18nAriaLabel));
  }
  for (const el of root.querySelectorAll('[data-i18n-title]')) {
    el.setAttribute('title', t(el.dataset.i18nTitle));
  }
}
