// Logging in. In WeChat the mini-program logs in with wx.login(); in a browser during
// development the server asks the fake WeChat server for that code, so the H5 pages take
// the mini-program's own path (code → /api/auth/wechat → tokens, or a ticket for a new
// account, redeemed with the invite code a coordinator gave).
import { api, deviceOpenid } from '../api.js';
import { h, show, alertBox, busy } from '../ui.js';
import { home } from '../main.js';

/** Demo people of the demo data set (README), for the development picker. */
const DEMO = [
  ['13900000000', '志愿者 一'],
  ['13900000001', '志愿者 二'],
  ['13900000002', '志愿者 三'],
];

export async function page() {
  const options = await api.devOptions().catch(() => ({ dev_login: false, wx_code: false }));
  const message = h('div');
  const say = (text) => message.replaceChildren(alertBox(text));
  const go = async () => { location.hash = await home(); };

  const wxButton = h('button', {
    class: 'primary big',
    onclick: () => busy(wxButton, async () => {
      try {
        const { code } = await api.devWxCode(deviceOpenid());
        const r = await api.wechatLogin(code);
        if (r.bound) return go();
        show(bindForm(r.ticket, go));
      } catch (e) { say(e.message); }
    }),
  }, '微信登录');

  const picker = h('select', { id: 'demo-user', 'aria-label': '演示账号' },
    DEMO.map(([phone, who]) => h('option', { value: phone }, who + '（' + phone + '）')));
  const demoButton = h('button', {
    onclick: () => busy(demoButton, async () => {
      try { await api.devLogin(picker.value); await go(); } catch (e) { say(e.message); }
    }),
  }, '以演示身份登录');

  show(
    h('h1', { class: 'center' }, '暖心'),
    h('p', { class: 'center muted' }, '关爱计生特殊家庭'),
    options.wx_code
      ? wxButton
      : h('p', { class: 'center' }, '请在微信中打开“暖心”小程序登录。'),
    message,
    options.dev_login && h('section', {},
      h('h2', {}, '开发演示'),
      h('p', { class: 'muted' }, '仅在开发环境出现：直接以演示数据中的志愿者登录。'),
      picker, h('p', {}, demoButton)),
  );
}

/** A new WeChat account: a family member enters the invite code the association gave. */
function bindForm(ticket, go) {
  const input = h('input', { id: 'invite-code', inputmode: 'text', autocomplete: 'off', maxlength: 16, placeholder: '例如 AB12CD34' });
  const message = h('div');
  const button = h('button', {
    class: 'primary big',
    onclick: () => busy(button, async () => {
      try { await api.bind(ticket, input.value.trim()); await go(); } catch (e) { message.replaceChildren(alertBox(e.message)); }
    }),
  }, '绑定');
  return [
    h('h1', {}, '第一次使用'),
    h('p', {}, '请输入协会工作人员给您的邀请码。'),
    h('label', { for: 'invite-code' }, '邀请码'), input, message, button,
    h('p', { class: 'muted' }, '想成为志愿者？请在微信“暖心”小程序中报名。'),
  ];
}

export async function nothingHere() {
  show(
    h('h1', {}, '暖心'),
    h('p', {}, '您的账号暂时没有可用的页面：志愿者报名正在审核中，或协调员页面即将推出。'),
    h('button', { onclick: async () => { await api.logout(); location.hash = '#/login'; } }, '退出登录'),
  );
}
