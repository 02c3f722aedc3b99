import { api, showError } from '../../utils/api.js';
import { kindLabel, statusLabel, windowLabel, claimRefusal } from '../../shared/core.js';

Page({
  data: { v: null, title: '', when: '', error: '', templates: [] },
  onLoad(query) {
    this.id = query.id;
    // The templates to ask for at the claim tap are loaded now: asking must happen
    // inside the tap, before any await, or WeChat shows no dialog.
    api.subscriptions().then((s) => this.setData({ templates: s.templates.map((t) => t.template_id) }), () => {});
  },
  onShow() { this.load(); },
  async load() {
    try {
      const v = await api.visit(this.id);
      this.setData({ v, title: kindLabel(v.kind) + ' · ' + statusLabel(v.status), when: windowLabel(v.window_start, v.window_end) });
    } catch (e) { showError(e); }
  },
  claim() {
    const tmplIds = this.data.templates.slice(0, 3);
    const claimNow = async () => {
      try {
        await api.claim(this.id);
        wx.showToast({ title: '认领成功' });
        this.setData({ error: '' });
        this.load();
      } catch (e) {
        this.setData({ error: claimRefusal(e) });
      }
    };
    if (!tmplIds.length) return claimNow();
    // Ask for messages about this visit (cancelled, moved) at the tap, then claim
    // whatever the answer; report what was accepted so the server may send that many.
    wx.requestSubscribeMessage({
      tmplIds,
      success: (res) => {
        const accepted = tmplIds.filter((id) => res[id] === 'accept');
        if (accepted.length) api.reportAccepted(accepted).catch(() => {});
      },
      complete: claimNow,
    });
  },
  doVisit() { wx.navigateTo({ url: '/pages/checkin/checkin?id=' + this.id }); },
});
