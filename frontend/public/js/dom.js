// Small DOM helpers every card uses: element lookup by id, and the busy guard that keeps a
// form from being submitted twice while its request is in flight.

export const $ = (id) => document.getElementById(id);

/** Run an async action with the form's submit button disabled (prevents double submits). */
export async function busy(form, fn) {
  if (form.dataset.busy) return;
  form.dataset.busy = '1';
  form.setAttribute('aria-busy', 'true');
  const buttons = form.querySelectorAll('button[type="submit"]');
  for (const b of buttons) b.disabled = true;
  try {
    await fn();
  } finally {
    delete form.dataset.busy;
    form.removeAttribute('aria-busy');
    for (const b of buttons) b.disabled = false;
  }
}
