import { api, showError } from '../../utils/api.js';
import { dayLabel, timeLabel } from '../../shared/core.js';

// My messages: everything the association sent, whatever reached the phone. Tapping an
// unread one marks it read.
Page({
  data: { items: [], unread: 0, next: null },
  onShow() { this.load(); },
  async load(cursor) {
    try {
      const p = await api.inbox(cursor || undefined);
      const items = p.items.map((m) => ({ ...m, when: dayLabel(m.at) + ' ' + timeLabel(m.at) }));
      this.setData({ items: cursor ? this.data.items.concat(items) : items, unread: p.unread, next: p.next_cursor || null });
    } catch (e) { showError(e); }
  },
  more() { if (this.data.next) this.load(this.data.next); },
  async open(e) {
    const { id, index } = e.currentTarget.dataset;
    if (this.data.items[index].read) return;
    try {
      const r = await api.readMessage(id);
      this.setData({ ['items[' + index + '].read']: true, unread: r.unread });
    } catch (err) { showError(err); }
  },
  async readAll() {
    try { await api.readAllMessages(); this.load(); } catch (e) { showError(e); }
  },
});
