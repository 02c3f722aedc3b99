// The family's page: large text option, big buttons, plain words (适老化).
import { api, showError } from '../../utils/api.js';
import { windowLabel, isoDate } from '../../shared/core.js';

Page({
  data: { items: [], large: false, code: '', help: false, rating: {}, today: isoDate(1) },
  onShow() {
    this.setData({ large: !!wx.getStorageSync('nx_large') });
    this.load();
  },
  async load() {
    try {
      const page = await api.familyVisits();
      this.setData({
        items: page.items.map((v) => ({
          ...v,
          when: windowLabel(v.window_start, v.window_end),
          who: v.visitors.length
            ? v.visitors.map((p) => p.name + (p.team ? ' · ' + p.team : '')).join('，')
            : '正在安排志愿者',
          open: ['open', 'claimed', 'in_progress'].includes(v.status),
        })),
      });
    } catch (e) { showError(e); }
  },
  toggleLarge() {
    const large = !this.data.large;
    wx.setStorageSync('nx_large', large);
    this.setData({ large });
  },
  help() { this.setData({ help: true }); },
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
});
