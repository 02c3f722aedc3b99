// The browser's side of the shared API client: fetch, and the tokens in localStorage
// (the only thing the pages keep; everything else is fetched when a page opens).
import { createApi } from './shared/core.js';

const KEY = 'nx_tokens';

const tokens = {
  get() {
    try { return JSON.parse(localStorage.getItem(KEY)); } catch { return null; }
  },
  set(pair) {
    localStorage.setItem(KEY, JSON.stringify({
      access_token: pair.access_token, refresh_token: pair.refresh_token,
    }));
  },
  clear() { localStorage.removeItem(KEY); },
};

async function transport({ method, path, headers, body }) {
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    return { status: 0, body: null };
  }
  let json = null;
  try { json = await res.json(); } catch { /* not JSON: the status says enough */ }
  return { status: res.status, body: json };
}

export const api = createApi({
  transport,
  tokens,
  onLoggedOut: () => { location.hash = '#/login'; },
});

/** The simulated phone's WeChat account (development): one per browser, like one phone. */
export function deviceOpenid() {
  let id = localStorage.getItem('nx_device_openid');
  if (!id) {
    id = 'o-h5-' + Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
    localStorage.setItem('nx_device_openid', id);
  }
  return id;
}

/** Downloads an export (an XLSX or CSV the API makes) under the name the server gives. */
export async function download(path, fallbackName) {
  const held = tokens.get();
  const res = await fetch('/api' + path, { headers: held ? { authorization: 'Bearer ' + held.access_token } : {} });
  if (!res.ok) {
    const body = await res.json().catch(() => null);
    throw new Error((body && body.message) || '下载失败（' + res.status + '）');
  }
  const disposition = res.headers.get('content-disposition') || '';
  const match = /filename\*=UTF-8''([^;]+)/i.exec(disposition) || /filename="?([^";]+)"?/i.exec(disposition);
  const name = match ? decodeURIComponent(match[1]) : fallbackName;
  const url = URL.createObjectURL(await res.blob());
  const a = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return name;
}
