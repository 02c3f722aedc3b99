// Visits nobody took: the proposed holders with the reason for each, applied one by one
// or together; and the month's missed visits. As the H5 page.
import { api, showError } from '../../utils/api.js';
import { kindLabel, windowLabel, assignmentRunMessage, LAPSE_HEADERS, lapseRow, pageCount } from '../../shared/core.js';

Page({
  data: { items: [], chosen: [], page: 1, pages: 1, message: '', lapseHeaders: LAPSE_HEADERS, missed: [], applied: {} },
  onShow() {
    this.load(1);
    api.lapses({ kind: 'missed', per_page: 20 }).then((m) => this.setData({ missed: m.items.map(lapseRow) }), showError);
  },
  async load(page) {
    try {
      const r = await api.proposals({ page, per_page: 20 });
      this.setData({
        page: r.page, pages: pageCount(r), chosen: [], applied: {},
        items: r.items.map((p) => ({ ...p, kindLabel: kindLabel(p.kind), when: windowLabel(p.window_start, p.window_end) })),
      });
    } catch (e) { showError(e); }
  },
  prev() { this.load(this.data.page - 1); },
  next() { this.load(this.data.page + 1); },
  async run() {
    try {
      this.setData({ message: assignmentRunMessage(await api.runAssignment()) });
      this.load(1);
    } catch (e) { showError(e); }
  },
  onChoose(e) { this.setData({ chosen: e.detail.value }); },
  async apply(e) {
    const id = e.currentTarget.dataset.id;
    try {
      await api.applyProposal(id);
      this.setData({ ['applied.' + id]: true });
    } catch (err) { showError(err); }
  },
  async applyChosen() {
    const ids = this.data.chosen;
    if (!ids.length) return wx.showToast({ title: '请先勾选建议', icon: 'none' });
    try {
      await api.applyProposals(ids);
      wx.showToast({ title: '已采纳 ' + ids.length + ' 条' });
      this.load(1);
    } catch (e) { showError(e); }
  },
});
