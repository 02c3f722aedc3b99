import { api, showError } from '../../utils/api.js';

Page({
  data: { s: null },
  async onShow() {
    try { this.setData({ s: await api.hours() }); } catch (e) { showError(e); }
  },
});
