// The county's wish wall (回音壁): wishes families agreed to show, without names, and the
// association's public answers.
import { api, showError } from '../../utils/api.js';
import { readingData } from '../../utils/reading.js';
import { WISH_STATUS } from '../../shared/core.js';

Page({
  data: { ...readingData(), items: [], page: 0, more: false },
  onShow() { this.setData(readingData()); if (!this.data.page) this.load(1); },
  async load(page) {
    try {
      const r = await api.wishWall(page);
      const items = r.items.map((w) => ({ ...w, statusLabel: WISH_STATUS[w.status] || '' }));
      this.setData({ items: page === 1 ? items : this.data.items.concat(items), page, more: r.page * r.per_page < r.total });
    } catch (e) { showError(e); }
  },
  next() { this.load(this.data.page + 1); },
});
