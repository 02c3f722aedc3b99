// Logging in. In WeChat the mini-program logs in with wx.login(); in a browser during
// development the server asks the fake WeChat server for that code, so the H5 pages take
// the mini-program's own path (code → /api/auth/wechat → tokens, or a ticket for a new
// account, redeemed with the invite code a coordinator gave).
import { api, deviceOpenid } from '../api.js';
import { h, show, alertBox, busy } from '../ui.js';
import { home } from '../main.js';
import { SKILLS, REGISTRATION_FIELDS, fieldMessage } from '../shared/core.js';

/** Demo people of the demo data set (README), for the development picker. */
const DEMO = [
  ['13900000000', '志愿者 一'],
  ['13900000001', '志愿者 二'],
  ['13900000002', '志愿者 三'],
  ['13800000011', '东城县 协调员'],
  ['13800000001', '安和市 协调员'],
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
    h('section', {},
      h('h2', {}, '想成为志愿者？'),
      h('p', { class: 'muted' }, '报名后由您所在地的协调员审核，通过后就能认领走访。'),
      h('button', { id: 'to-register', onclick: () => show(registerForm(ticket, go)) }, '志愿者报名')),
  ];
}

/** Choosing where one lives: county, then township, then village, each from the last. */
function areaPicker() {
  const tiers = [['county', '县（区）'], ['township', '乡镇（街道）'], ['village', '村（社区）']];
  const selects = tiers.map(([level, label]) =>
    h('select', { id: 'area-' + level, 'aria-label': label, disabled: true },
      h('option', { value: '' }, '请选择' + label)));
  async function fill(i, parentId) {
    for (const s of selects.slice(i)) {
      s.replaceChildren(s.options[0]);
      s.disabled = true;
    }
    if (i >= selects.length) return;
    const { items } = await api.areas(parentId);
    selects[i].append(...items.map((a) => h('option', { value: a.id }, a.name)));
    selects[i].disabled = false;
  }
  selects.forEach((s, i) => s.addEventListener('change', () => {
    if (s.value) fill(i + 1, s.value); else fill(i + 1, null);
  }));
  // The top tier is the city: its counties come first.
  const ready = api.areas().then(({ items }) => items.length && fill(0, items[0].id));
  return {
    ready,
    nodes: tiers.flatMap(([, label], i) => [h('label', { for: selects[i].id }, label), selects[i]]),
    village: () => selects[2].value,
  };
}

/** A new WeChat account registers as a volunteer; a coordinator approves. */
function registerForm(ticket, go) {
  const name = h('input', { id: 'reg-name', autocomplete: 'name', maxlength: 32 });
  const phone = h('input', { id: 'reg-phone', type: 'tel', inputmode: 'numeric', autocomplete: 'tel', maxlength: 11 });
  const skills = Object.entries(SKILLS).map(([value, label]) =>
    h('label', {}, h('input', { type: 'checkbox', name: 'skill', value }), label));
  const area = areaPicker();
  const message = h('div');
  // Where a refused field's message shows: beside the field, read out (role=alert).
  const errors = {};
  const beside = (field) => (errors[field] = h('div', { class: 'field-error', 'data-field': field }));
  const button = h('button', {
    class: 'primary big',
    onclick: () => busy(button, async () => {
      message.replaceChildren();
      for (const box of Object.values(errors)) { box.textContent = ''; box.removeAttribute('role'); }
      try {
        if (!area.village()) throw Object.assign(new Error('请选择'), { field: 'region_id' });
        await api.registerVolunteer({
          ticket,
          name: name.value.trim(),
          phone: phone.value.trim(),
          skills: skills.map((l) => l.firstChild).filter((c) => c.checked).map((c) => c.value),
          region_id: area.village(),
        });
        await go();
      } catch (e) {
        const { field, text } = fieldMessage(e, REGISTRATION_FIELDS);
        const box = errors[field];
        if (box) {
          box.textContent = text;
          box.setAttribute('role', 'alert');
        } else message.replaceChildren(alertBox(text));
      }
    }),
  }, '提交报名');
  area.ready.catch((e) => message.replaceChildren(alertBox(e.message)));
  return [
    h('h1', {}, '志愿者报名'),
    h('label', { for: 'reg-name' }, '姓名'), name, beside('name'),
    h('label', { for: 'reg-phone' }, '手机号'), phone, beside('phone'),
    h('label', {}, '擅长（可多选）'), h('div', { class: 'choices' }, skills), beside('skills'),
    ...area.nodes, beside('region_id'),
    message, button,
  ];
}

export async function nothingHere() {
  const me = await api.me().catch(() => ({}));
  const waiting = me.volunteer_status === 'pending';
  show(
    h('h1', {}, '暖心'),
    waiting
      ? h('p', { id: 'waiting' }, '报名已提交，感谢您！协调员审核通过后，您就能在这里认领走访。')
      : h('p', {}, '您的账号暂时没有可用的页面：志愿者报名未通过或已停用，或协调员页面即将推出。'),
    h('button', { onclick: async () => { await api.logout(); location.hash = '#/login'; } }, '退出登录'),
  );
}
