// The family's page, for parents who may be over 70: one screen, large buttons, plain
// words, a "大字" and a "高对比" switch, and a help button at the top.
import { api } from '../api.js';
import { h, show, alertBox, busy } from '../ui.js';
import {
  windowLabel, isoDate, HELP_KINDS, WISH_KINDS, WISH_FIELDS, WISH_STATUS,
  eventKindLabel, eventWhen, eventRefusal, fieldMessage, REPLY_LABELS,
} from '../shared/core.js';

/** A reading switch: it changes the page at once and keeps what was typed or opened. */
function setting(cls, label) {
  const on = document.documentElement.classList.contains(cls);
  return h('button', {
    'aria-pressed': String(on), 'data-setting': cls,
    onclick: (e) => {
      const now = document.documentElement.classList.toggle(cls);
      localStorage.setItem('nx_' + cls, now ? '1' : '0');
      e.currentTarget.setAttribute('aria-pressed', String(now));
    },
  }, label);
}

/** Reading settings on every family page: the wall too. */
const settings = () => h('div', { class: 'row' }, setting('large', '大字'), setting('contrast', '高对比'));

/** Help: one tap tells the association's people at once; the emergency numbers too. */
function helpPanel() {
  const done = h('div');
  let kind;
  const kinds = h('div', { class: 'choices', role: 'group', 'aria-label': '什么事（可不选）' },
    HELP_KINDS.map(([value, label]) => h('button', {
      'aria-pressed': 'false', 'data-kind': value,
      onclick: (e) => {
        kind = value;
        for (const b of kinds.children) b.setAttribute('aria-pressed', String(b === e.currentTarget));
      },
    }, label)));
  const send = h('button', {
    class: 'help big', id: 'help-send',
    onclick: () => busy(send, async () => {
      try {
        const r = await api.pressHelp(kind);
        done.replaceChildren(h('div', { class: 'done', role: 'status', id: 'help-done' }, r.message));
      } catch (e) {
        done.replaceChildren(alertBox(e.message + '。请直接拨打下面的电话。'));
      }
    }),
  }, '通知协会工作人员');
  return h('div', { class: 'alert', id: 'help-info' },
    h('p', {}, '什么事？（可以不选）'), kinds, send, done,
    h('p', {}, '情况紧急，请直接拨打：'),
    h('p', {}, h('a', { class: 'button big', href: 'tel:120' }, '急救 120'), ' ', h('a', { class: 'button big', href: 'tel:110' }, '报警 110')));
}

/** The county's wall (回音壁): wishes families agreed to show, without names, and the
 * association's public answers. */
export async function wall() {
  const list = h('div', { id: 'wall' });
  const more = h('div');
  async function load(page) {
    const r = await api.wishWall(page);
    if (page === 1 && !r.items.length) list.append(h('p', { class: 'muted' }, '心愿墙上还没有心愿。'));
    list.append(...r.items.map((w) => h('div', { class: 'card', 'data-wish': w.id },
      h('div', { class: 'row' }, h('span', { class: 'tag' }, w.kind_label), h('span', { class: 'muted' }, w.village),
        h('span', { class: 'muted' }, WISH_STATUS[w.status] || '')),
      h('p', {}, w.content),
      w.answers.map((a) => h('p', { class: 'answer' }, '协会回复：', a.content)))));
    more.replaceChildren(r.page * r.per_page < r.total
      ? h('button', { class: 'big', onclick: () => load(page + 1) }, '再看一些') : '');
  }
  show(settings(), h('h1', {}, '心愿墙'), h('p', { class: 'muted' }, '大家的心愿和协会的回复，不写名字。'), list, more,
    h('a', { class: 'button big', href: '#/f' }, '返回首页'));
  try { await load(1); } catch (e) { list.replaceChildren(alertBox(e.message)); }
}

/** My wishes and their answers, and a short form for a new one. */
async function wishes() {
  const list = h('div', { id: 'my-wishes' });
  const message = h('div');
  const text = h('textarea', { id: 'wish-text', rows: 3, maxlength: 500, placeholder: '例如：想请人帮忙修水管' });
  const textError = h('div', { class: 'field-error', id: 'wish-text-error' });
  const kind = h('select', { id: 'wish-kind' },
    WISH_KINDS.map(([value, label]) => h('option', { value }, label)));
  const shown = h('input', { type: 'checkbox', id: 'wish-public' });
  const send = h('button', {
    class: 'primary big', id: 'wish-send',
    onclick: () => busy(send, async () => {
      textError.textContent = '';
      message.replaceChildren();
      try {
        await api.postWish(text.value.trim(), kind.value, shown.checked);
        text.value = '';
        message.replaceChildren(h('div', { class: 'done' }, '收到了，协会工作人员会尽快回复您。'));
        await load();
      } catch (e) {
        const { field, text: said } = fieldMessage(e, WISH_FIELDS);
        // The words go beside the box they are about; anything else above the button.
        if (field === 'content') {
          textError.textContent = said;
          text.focus();
        } else message.replaceChildren(alertBox(said));
      }
    }),
  }, '告诉协会');
  async function load() {
    const { items } = await api.myWishes();
    list.replaceChildren(...items.map((w) => h('div', { class: 'card', 'data-wish': w.id },
      h('div', { class: 'row' }, h('span', { class: 'tag' }, w.kind_label), h('span', { class: 'muted' }, WISH_STATUS[w.status] || '')),
      h('p', {}, w.content),
      w.answers.map((a) => h('p', { class: 'answer' }, '协会回复：', a.content)))));
  }
  load().catch((e) => list.replaceChildren(alertBox(e.message)));
  return h('section', {},
    h('h2', {}, '我的心愿'),
    list,
    h('div', { 'data-field': 'content' }, h('label', { for: 'wish-text' }, '有什么需要，或者想说的话'), text, textError),
    h('label', { for: 'wish-kind' }, '是哪方面的事'), kind,
    h('label', {}, shown, '可以不写名字，放到心愿墙上'),
    message, send,
    h('a', { class: 'button big', href: '#/f/wall', id: 'to-wall' }, '看看心愿墙'));
}

/** An invitation to an event: when, where, and one tap to say yes or no. */
function invitationCard(inv, notice) {
  const open = inv.event_status !== 'cancelled' && new Date(inv.starts_at) > new Date();
  const reply = (button, accept) => busy(button, async () => {
    let said;
    try { await api.replyEvent(inv.event_id, accept); } catch (e) { said = eventRefusal(e, true); }
    await invitations(said && { id: inv.event_id, text: said });
  });
  const yes = h('button', { class: 'primary big', onclick: () => reply(yes, true) }, '我去参加');
  const no = h('button', { class: 'big', onclick: () => reply(no, false) }, '这次不去');
  return h('section', { class: 'card', 'data-event': inv.event_id },
    h('h3', {}, inv.title),
    h('div', {}, eventKindLabel(inv.kind)),
    h('div', {}, '时间：', eventWhen(inv.starts_at, inv.ends_at)),
    h('div', {}, '地点：', inv.location),
    inv.description && h('p', {}, inv.description),
    inv.event_status === 'cancelled'
      ? h('div', { class: 'tag' }, '活动取消了')
      : h('div', { class: inv.reply === 'invited' ? 'reply' : 'reply done' }, REPLY_LABELS[inv.reply] || ''),
    notice && alertBox(notice),
    open && inv.reply !== 'accepted' && yes,
    open && inv.reply !== 'declined' && no);
}

const invitationsBox = () => document.getElementById('family-events');

/** The family's invitations still ahead; `notice` goes on the one a reply failed for. */
async function invitations(notice) {
  const box = invitationsBox();
  if (!box) return;
  try {
    const { items } = await api.familyEvents();
    const ahead = items.filter((i) => new Date(i.ends_at) > new Date())
      .sort((a, b) => new Date(a.starts_at) - new Date(b.starts_at));
    box.replaceChildren(...(ahead.length ? [h('h2', {}, '活动邀请'),
      ...ahead.map((i) => invitationCard(i, notice && notice.id === i.event_id && notice.text))] : []));
  } catch (e) {
    box.replaceChildren(alertBox(e.message));
  }
}

function who(v) {
  if (!v.visitors.length) return '正在安排志愿者';
  return v.visitors.map((p) =>
    p.name + (p.role === 'cadre' ? '（联系干部）' : '') + (p.team ? ' · ' + p.team : '')).join('，');
}

function visitCard(v) {
  const box = h('div');
  const message = h('div');
  const fail = (e) => message.replaceChildren(alertBox(e.message));
  const card = h('section', { class: 'card', 'data-visit': v.id },
    h('h3', {}, windowLabel(v.window_start, v.window_end)),
    h('div', {}, v.kind_label, v.channel === 'phone_call' ? '（电话问候）' : '（上门看望）'),
    h('div', { class: 'visitors' }, '来看您的是：', who(v)),
    v.requests.includes('decline') && h('div', { class: 'tag' }, '您已说过这次不用来'),
    v.requests.includes('move') && h('div', { class: 'tag' }, '您已请求换个日子'),
    message, box);

  if (v.can_confirm) {
    let rating = 0;
    const stars = h('div', { class: 'stars row', role: 'group', 'aria-label': '打分' },
      [1, 2, 3, 4, 5].map((n) => h('button', {
        'aria-pressed': 'false', 'aria-label': n + ' 星', 'data-star': n,
        onclick: () => {
          rating = n;
          for (const b of stars.children) b.setAttribute('aria-pressed', String(Number(b.dataset.star) <= n));
        },
      }, '★')));
    const confirm = h('button', {
      class: 'primary big', id: 'confirm-' + v.id,
      onclick: () => busy(confirm, async () => {
        try {
          await api.confirm(v.id, rating || undefined);
          box.replaceChildren(h('div', { class: 'done' }, '谢谢您！已确认这次走访。'));
        } catch (e) { fail(e); }
      }),
    }, '是的，他们来过了');
    box.append(h('p', {}, '志愿者已经来过了吗？给这次走访打个分：'), stars, confirm);
    return card;
  }

  if (['open', 'claimed', 'in_progress'].includes(v.status)) {
    const showCode = h('button', {
      class: 'big',
      onclick: () => busy(showCode, async () => {
        try {
          const c = await api.familyCode(v.id);
          box.replaceChildren(h('p', {}, '请把这 6 个数字告诉上门的志愿者：'), h('div', { class: 'bigcode' }, c.code));
        } catch (e) { fail(e); }
      }),
    }, '出示签到码');
    const move = h('button', { class: 'big', onclick: () => box.replaceChildren(moveForm(v, fail)) }, '换个日子');
    const decline = h('button', { class: 'big', onclick: () => box.replaceChildren(declineForm(v, fail)) }, '这次不用来了');
    box.append(v.visitors.length ? showCode : '', move, decline);
  }
  return card;
}

function declineForm(v, fail) {
  const reasons = ['身体不舒服', '那几天不在家', '不想被打扰'];
  const done = h('div');
  return h('div', {},
    h('p', {}, '为什么这次不用来？点一下就好：'),
    reasons.map((r) => {
      const b = h('button', {
        class: 'big',
        onclick: () => busy(b, async () => {
          try { await api.decline(v.id, r); done.replaceChildren(h('div', { class: 'done' }, '好的，我们已告诉工作人员。')); } catch (e) { fail(e); }
        }),
      }, r);
      return b;
    }), done);
}

function moveForm(v, fail) {
  const date = h('input', { type: 'date', min: isoDate(1), value: isoDate(7), 'aria-label': '希望的日子' });
  const done = h('div');
  const send = h('button', {
    class: 'primary big',
    onclick: () => busy(send, async () => {
      try {
        await api.move(v.id, '家属希望换个日子', [date.value]);
        done.replaceChildren(h('div', { class: 'done' }, '好的，工作人员会和您商量新的日子。'));
      } catch (e) { fail(e); }
    }),
  }, '就这天');
  return h('div', {}, h('p', {}, '哪天方便？'), date, send, done);
}

export async function home() {
  const help = h('div');
  const helpButton = h('button', { class: 'help big', id: 'help', onclick: () => help.replaceChildren(helpPanel()) }, '我需要帮助');
  const list = h('div', { id: 'family-visits' });
  const messages = h('a', { class: 'button big', href: '#/f/inbox', id: 'family-inbox' }, '我的消息');
  api.inbox().then((p) => { if (p.unread) messages.textContent = '我的消息（' + p.unread + ' 条新消息）'; }).catch(() => {});
  show(
    h('div', { class: 'row' }, settings(),
      h('button', {
        class: 'quiet',
        onclick: async () => {
          // A stray tap must not log a parent out: they would need help to come back.
          if (!confirm('确定退出吗？')) return;
          await api.logout();
          location.hash = '#/login';
        },
      }, '退出')),
    helpButton, help,
    h('h1', {}, '谁来看您'),
    list,
    h('div', { id: 'family-events' }),
    messages,
    await wishes(),
  );
  invitations();
  try {
    const { items: visits } = await api.familyVisits();
    // The next few only: a long list is hard to read; the rest is one tap away.
    const FIRST = 3;
    list.replaceChildren(...visits.slice(0, FIRST).map(visitCard));
    if (visits.length > FIRST) {
      const rest = h('button', {
        class: 'big',
        onclick: () => rest.replaceWith(...visits.slice(FIRST).map(visitCard)),
      }, '看后面的安排（' + (visits.length - FIRST) + ' 次）');
      list.append(rest);
    }
    if (!visits.length) list.append(h('p', {}, '最近没有安排走访。'));
  } catch (e) {
    list.replaceChildren(alertBox(e.message));
  }
}
