// The mini-program's side of the shared API client (shared/core.js, a copy of the H5
// pages' module): wx.request, and the tokens in wx storage (nothing else is stored).
import { createApi } from '../shared/core.js';

const { apiBase } = require('../config.js');
const KEY = 'nx_tokens';

function transport({ method, path, headers, body }) {
  return new Promise((resolve) => {
    wx.request({
      url: apiBase + path,
      method,
      header: headers,
      data: body,
      // success fires for every HTTP status; fail only without an answer.
      success: (res) => resolve({ status: res.statusCode, body: res.data }),
      fail: () => resolve({ status: 0, body: null }),
    });
  });
}

const tokens = {
  get: () => wx.getStorageSync(KEY) || null,
  set: (pair) => wx.setStorageSync(KEY, { access_token: pair.access_token, refresh_token: pair.refresh_token }),
  clear: () => wx.removeStorageSync(KEY),
};

export const api = createApi({
  transport,
  tokens,
  onLoggedOut: () => wx.reLaunch({ url: '/pages/login/login' }),
});

/** wx.login as a promise: the one-time code for POST /api/auth/wechat. */
export function wxLogin() {
  return new Promise((resolve, reject) => {
    wx.login({ success: (r) => resolve(r.code), fail: reject });
  });
}

/** Where a person starts, by who they are (the same rule as the H5 pages). */
export async function homePage() {
  const me = await api.me();
  if (me.roles.includes('family')) return '/pages/family/family';
  if (me.roles.includes('coordinator') || me.roles.includes('admin')) return '/pages/coordinator/workload';
  if (me.volunteer_status === 'approved') return '/pages/feed/feed';
  return null;
}

/**
 * Downloads an export (GET /api/filings/xlsx…) and opens it in WeChat's viewer, from
 * which the coordinator forwards or saves it. wx.downloadFile sends no JSON: the token
 * goes in the header as for every call.
 */
export function openExport(path, fileType) {
  const held = tokens.get();
  return new Promise((resolve, reject) => {
    wx.downloadFile({
      url: apiBase + '/api' + path,
      header: held ? { authorization: 'Bearer ' + held.access_token } : {},
      success: (res) => {
        if (res.statusCode !== 200) return reject(new Error('下载失败（' + res.statusCode + '）'));
        wx.openDocument({ filePath: res.tempFilePath, fileType, showMenu: true, success: resolve, fail: reject });
      },
      fail: () => reject(new Error('网络不通，请检查网络后重试')),
    });
  });
}

export function showError(err) {
  wx.showModal({ title: '没有成功', content: err.message || '请稍后再试', showCancel: false });
}
