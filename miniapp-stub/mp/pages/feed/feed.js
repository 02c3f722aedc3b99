import { api, showError } from '../../utils/api.js';
import { FEED_KINDS, kindLabel, windowLabel, distanceLabel, isoDate } from '../../shared/core.js';

Page({
  data: { kinds: FEED_KINDS, kindIndex: 0, from: '', to: '', today: isoDate(0), items: [], next: null },
  onShow() { this.load(); },
  async load(cursor) {
    const { kinds, kindIndex, from, to } = this.data;
    try {
      const page = await api.feed({ kind: kinds[kindIndex][0], from, to, cursor });
      const items = page.items.map((v) => ({
        ...v,
        title: kindLabel(v.kind) + ' · ' + v.category_label,
        when: windowLabel(v.window_start, v.window_end),
        distance: distanceLabel(v.distance_km),
      }));
      this.setData({ items: cursor ? this.data.items.concat(items) : items, next: page.next_cursor });
    } catch (e) { showError(e); }
  },
  onKind(e) { this.setData({ kindIndex: Number(e.detail.value) }); this.load(); },
  onFrom(e) { this.setData({ from: e.detail.value }); this.load(); },
  onTo(e) { this.setData({ to: e.detail.value }); this.load(); },
  more() { this.load(this.data.next); },
  open(e) { wx.navigateTo({ url: '/pages/visit/detail?id=' + e.currentTarget.dataset.id }); },
});
