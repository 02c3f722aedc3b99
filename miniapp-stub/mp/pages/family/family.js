// The family's page, as the H5 one: a help button at the top, who is coming, event
// invitations, messages, wishes; a "大字" and a "高对比" switch; big buttons, plain words.
import { api, showError } from '../../utils/api.js';
import { readingData, toggleReading } from '../../utils/reading.js';
import {
  windowLabel, isoDate, HELP_KINDS, WISH_KINDS, WISH_FIELDS, WISH_STATUS,
  eventKindLabel, eventWhen, eventRefusal, fieldMessage, REPLY_LABELS,
} from '../../shared/core.js';

const FIRST = 3; // the next few visits only: a long list is hard to read

Page({
  data: {
    ...readingData(), items: [], more: 0, code: '', rating: {}, today: isoDate(1), unread: 0,
    help: false, helpKinds: HELP_KINDS, helpKind: '', helpDone: '', helpError: '',
    invitations: [], inviteNotice: {},
    wishes: [], wishKinds: WISH_KINDS, wishKind: 0, wishText: '', wishPublic: false, wishError: '', wishDone: '',
  },
  onShow() {
    this.setData(readingData());
    this.load();
    this.loadInvitations();
    this.loadWishes();
    api.inbox().then((p) => this.setData({ unread: p.unread }), () => {});
  },
  toggleLarge() { toggleReading(this, 'large'); },
  toggleContrast() { toggleReading(this, 'contrast'); },

  async load() {
    try {
      const page = await api.familyVisits();
      const items = page.items.map((v) => ({
        ...v,
        when: windowLabel(v.window_start, v.window_end),
        who: v.visitors.length
          ? v.visitors.map((p) => p.name + (p.role === 'cadre' ? '（联系干部）' : '') + (p.team ? ' · ' + p.team : '')).join('，')
          : '正在安排志愿者',
        open: ['open', 'claimed', 'in_progress'].includes(v.status),
      }));
      this.all = items;
      this.setData({ items: items.slice(0, FIRST), more: Math.max(0, items.length - FIRST) });
    } catch (e) { showError(e); }
  },
  showAll() { this.setData({ items: this.all, more: 0 }); },

  // Help: one tap tells the association's people; the emergency numbers stay on screen.
  help() { this.setData({ help: true, helpDone: '', helpError: '' }); },
  pickHelp(e) { this.setData({ helpKind: e.currentTarget.dataset.kind }); },
  async sendHelp() {
    try {
      const r = await api.pressHelp(this.data.helpKind || undefined);
      this.setData({ helpDone: r.message, helpError: '' });
    } catch (e) { this.setData({ helpError: e.message + '。请直接拨打下面的电话。' }); }
  },
  call(e) { wx.makePhoneCall({ phoneNumber: e.currentTarget.dataset.no }); },

  star(e) {
    const { id, n } = e.currentTarget.dataset;
    this.setData({ ['rating.' + id]: Number(n) });
  },
  async confirm(e) {
    const id = e.currentTarget.dataset.id;
    try {
      await api.confirm(id, this.data.rating[id]);
      wx.showToast({ title: '谢谢您' });
      this.load();
    } catch (err) { showError(err); }
  },
  async showCode(e) {
    try { this.setData({ code: (await api.familyCode(e.currentTarget.dataset.id)).code }); } catch (err) { showError(err); }
  },
  async move(e) {
    try {
      await api.move(e.currentTarget.dataset.id, '家属希望换个日子', [e.detail.value]);
      wx.showToast({ title: '已告诉工作人员' });
      this.load();
    } catch (err) { showError(err); }
  },
  decline(e) {
    const id = e.currentTarget.dataset.id;
    const reasons = ['身体不舒服', '那几天不在家', '不想被打扰'];
    wx.showActionSheet({
      itemList: reasons,
      success: async (r) => {
        try { await api.decline(id, reasons[r.tapIndex]); wx.showToast({ title: '已告诉工作人员' }); this.load(); } catch (err) { showError(err); }
      },
    });
  },

  // Invitations to events still ahead: one tap to say yes or no.
  async loadInvitations() {
    try {
      const { items } = await api.familyEvents();
      const now = new Date();
      const invitations = items.filter((i) => new Date(i.ends_at) > now)
        .sort((a, b) => new Date(a.starts_at) - new Date(b.starts_at))
        .map((i) => ({
          ...i,
          kindLabel: eventKindLabel(i.kind),
          when: eventWhen(i.starts_at, i.ends_at),
          replyLabel: REPLY_LABELS[i.reply] || '',
          cancelled: i.event_status === 'cancelled',
          open: i.event_status !== 'cancelled' && new Date(i.starts_at) > now,
        }));
      this.setData({ invitations });
    } catch (e) { showError(e); }
  },
  async reply(e) {
    const { id, accept } = e.currentTarget.dataset;
    let notice = '';
    try { await api.replyEvent(id, accept === 'yes'); } catch (err) { notice = eventRefusal(err, true); }
    this.setData({ inviteNotice: { [id]: notice } });
    this.loadInvitations();
  },

  // Wishes: mine with the answers, and a short form; the wall is a page of its own.
  async loadWishes() {
    try {
      const { items } = await api.myWishes();
      this.setData({ wishes: items.map((w) => ({ ...w, statusLabel: WISH_STATUS[w.status] || '' })) });
    } catch (e) { showError(e); }
  },
  onWishText(e) { this.setData({ wishText: e.detail.value }); },
  onWishKind(e) { this.setData({ wishKind: Number(e.detail.value) }); },
  onWishPublic(e) { this.setData({ wishPublic: e.detail.value }); },
  async sendWish() {
    const { wishText, wishKinds, wishKind, wishPublic } = this.data;
    this.setData({ wishError: '', wishDone: '' });
    try {
      await api.postWish(wishText.trim(), wishKinds[wishKind][0], wishPublic);
      this.setData({ wishText: '', wishDone: '收到了，协会工作人员会尽快回复您。' });
      this.loadWishes();
    } catch (e) {
      this.setData({ wishError: fieldMessage(e, WISH_FIELDS).text });
    }
  },
});
