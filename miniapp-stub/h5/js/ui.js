// Tiny DOM helpers: h() builds elements, show() puts a page on screen.

/** h('button', {class: 'primary', onclick: f}, '认领') */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function show(...nodes) {
  const app = document.getElementById('app');
  // Conditional parts (`cond && h(...)`) leave false or undefined behind: skip them.
  app.replaceChildren(...nodes.flat().filter((n) => n !== undefined && n !== null && n !== false && n !== ''));
  window.scrollTo(0, 0);
}

let toastTimer;
export function toast(text) {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 2500);
}

/** A red box that reads the error out (role=alert). */
export function alertBox(text) {
  return h('div', { class: 'alert', role: 'alert' }, text);
}

/** Runs `work` with the button disabled, so a double tap sends once. */
export async function busy(button, work) {
  button.disabled = true;
  try { return await work(); } finally { button.disabled = false; }
}

/** The bottom tab bar of a role; `current` is the active route. */
export function tabs(items, current) {
  const nav = document.getElementById('tabs');
  if (!items) { nav.hidden = true; return; }
  nav.hidden = false;
  nav.replaceChildren(...items.map(([href, label]) =>
    h('a', { href, class: current.startsWith(href) ? 'on' : '' }, label)));
}
