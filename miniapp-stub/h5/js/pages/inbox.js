// My messages: everything the association sent me, whatever reached my phone. Opening a
// message marks it read; a message about a visit opens that visit.
import { api } from '../api.js';
import { h, show, alertBox, busy, toast } from '../ui.js';
import { dayLabel, timeLabel } from '../shared/core.js';

/** Where a message about a visit leads, by who is reading. */
async function reader() {
  const me = await api.me();
  return {
    family: me.roles.includes('family'),
    visitLink: me.volunteer_status === 'approved' ? (id) => '#/v/visit/' + id : null,
  };
}

export async function page() {
  const list = h('div', { id: 'inbox-list' });
  const more = h('div');
  const counter = h('p', { id: 'unread', class: 'muted' });
  const who = await reader();
  const link = who.visitLink;
  const setUnread = (n) => { counter.textContent = n ? n + ' 条未读' : '没有未读消息'; };

  function item(m) {
    const card = h('div', { class: 'card' + (m.read ? '' : ' unread'), 'data-message': m.id },
      h('h3', {}, m.title),
      h('p', {}, m.body),
      h('div', { class: 'row muted' },
        h('span', {}, dayLabel(m.at) + ' ' + timeLabel(m.at)),
        !m.read && h('span', { class: 'tag warn' }, '未读'),
        m.visit_id && link && h('a', { href: link(m.visit_id) }, '查看走访')));
    if (!m.read) {
      card.addEventListener('click', async () => {
        if (!card.classList.contains('unread')) return;
        try {
          const r = await api.readMessage(m.id);
          card.classList.remove('unread');
          card.querySelector('.tag.warn')?.remove();
          setUnread(r.unread);
        } catch (e) { toast(e.message); }
      });
    }
    return card;
  }

  async function load(cursor) {
    const page = await api.inbox(cursor);
    setUnread(page.unread);
    if (!cursor && page.items.length === 0) list.replaceChildren(h('p', { class: 'muted' }, '还没有消息。'));
    list.append(...page.items.map(item));
    more.replaceChildren(page.next_cursor
      ? h('button', { class: 'big', onclick: () => load(page.next_cursor) }, '更早的消息')
      : '');
  }

  const allRead = h('button', {
    id: 'read-all',
    onclick: () => busy(allRead, async () => {
      try {
        await api.readAllMessages();
        list.replaceChildren();
        await load();
      } catch (e) { toast(e.message); }
    }),
  }, '全部标为已读');
  // Families have no tab bar: a plain way back.
  const back = who.family && h('a', { class: 'button big', href: '#/f' }, '返回首页');
  show(h('h1', {}, '消息'), h('div', { class: 'row' }, counter, allRead), list, more, back);
  try { await load(); } catch (e) { list.replaceChildren(alertBox(e.message)); }
}
