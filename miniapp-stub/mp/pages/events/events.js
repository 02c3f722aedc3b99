// Events in my area that want volunteers (集体庆生, festival gatherings, training): sign
// up while there are places, withdraw before the day. As the H5 page.
import { api, showError } from '../../utils/api.js';
import { eventKindLabel, eventWhen, placesLeft, eventRefusal } from '../../shared/core.js';

Page({
  data: { items: [], page: 0, more: false, notice: {} },
  onShow() { this.load(Math.max(1, this.data.page)); },
  // Reloads every page shown so far, so that a sign-up keeps the list where it was.
  async load(upTo) {
    try {
      let items = [];
      let last;
      for (let page = 1; page <= upTo; page++) {
        last = await api.volunteerEvents(page);
        items = items.concat(last.items);
      }
      this.setData({
        page: upTo,
        more: last.page * last.per_page < last.total,
        items: items.map((e) => ({
          ...e,
          kindLabel: eventKindLabel(e.kind),
          when: eventWhen(e.starts_at, e.ends_at),
          left: placesLeft(e),
        })),
      });
    } catch (e) { showError(e); }
  },
  next() { this.load(this.data.page + 1); },
  async act(id, work, done) {
    let notice = '';
    try {
      await work();
      wx.showToast({ title: done });
    } catch (err) { notice = eventRefusal(err); }
    // Whether it worked or someone was quicker, show the places as they are now.
    this.setData({ notice: { [id]: notice } });
    this.load(this.data.page);
  },
  signUp(e) {
    const id = e.currentTarget.dataset.id;
    this.act(id, () => api.signUp(id), '报名成功');
  },
  withdraw(e) {
    const id = e.currentTarget.dataset.id;
    wx.showModal({
      title: '取消报名',
      content: '确定取消报名吗？',
      success: (r) => { if (r.confirm) this.act(id, () => api.withdraw(id), '已取消报名'); },
    });
  },
});
