import { api, showError } from '../../utils/api.js';
import { kindLabel, statusLabel, windowLabel } from '../../shared/core.js';

Page({
  data: { when: 'upcoming', items: [] },
  onShow() { this.load(); },
  async load() {
    try {
      const page = await api.myVisits(this.data.when);
      this.setData({
        items: page.items.map((v) => ({
          ...v, title: kindLabel(v.kind) + ' · ' + v.category_label,
          when_label: windowLabel(v.window_start, v.window_end), status_label: statusLabel(v.status),
        })),
      });
    } catch (e) { showError(e); }
  },
  tab(e) { this.setData({ when: e.currentTarget.dataset.when }); this.load(); },
  open(e) { wx.navigateTo({ url: '/pages/visit/detail?id=' + e.currentTarget.dataset.id }); },
});
