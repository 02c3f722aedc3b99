import { api, showError } from '../../utils/api.js';
import { timeLabel } from '../../shared/core.js';

Page({
  data: { id: '', code: '', done: '', privacy: false, contract: '' },
  onLoad(query) { this.setData({ id: query.id }); },
  // app.js calls this when WeChat wants the privacy agreement before wx.getLocation.
  askPrivacy(resolve) {
    this.privacyResolve = resolve;
    const name = (r) => this.setData({ privacy: true, contract: r.privacyContractName || '《用户隐私保护指引》' });
    if (wx.getPrivacySetting) wx.getPrivacySetting({ success: name, fail: () => name({}) });
    else name({});
  },
  openContract() { wx.openPrivacyContract({}); },
  agreed() {
    this.setData({ privacy: false });
    if (this.privacyResolve) this.privacyResolve({ buttonId: 'agree-privacy', event: 'agree' });
  },
  refused() {
    this.setData({ privacy: false });
    if (this.privacyResolve) this.privacyResolve({ event: 'disagree' });
  },
  byPosition() {
    wx.getLocation({
      type: 'wgs84',
      isHighAccuracy: true,
      success: async (p) => {
        try {
          const r = await api.checkin(this.data.id, { lat: p.latitude, lng: p.longitude });
          this.setData({ done: '已签到 ' + timeLabel(r.checkin_at) });
        } catch (e) { showError(e); }
      },
      fail: () => showError(new Error('没能取得位置：请允许定位，或用家属的签到码')),
    });
  },
  onCode(e) { this.setData({ code: e.detail.value }); },
  async byCode() {
    try {
      const r = await api.checkin(this.data.id, { code: this.data.code.trim() });
      this.setData({ done: '已签到 ' + timeLabel(r.checkin_at) });
    } catch (e) { showError(e); }
  },
  async checkout() {
    try {
      const r = await api.checkout(this.data.id);
      this.setData({ done: '已签退，本次 ' + r.duration_minutes + ' 分钟' });
    } catch (e) { showError(e); }
  },
  report() { wx.navigateTo({ url: '/pages/report/report?id=' + this.data.id }); },
});
