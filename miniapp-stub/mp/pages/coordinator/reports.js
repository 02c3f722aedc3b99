// The report the association files, as figures and as a file: WeChat opens the
// downloaded Excel, from where it is forwarded or saved. As the H5 page.
import { api, openExport, showError } from '../../utils/api.js';
import { isoDate, monthStart, filingRows } from '../../shared/core.js';

Page({
  data: { from: monthStart(), to: isoDate(0), title: '', headers: ['指标', '数值'], rows: [] },
  onShow() { this.load(); },
  onFrom(e) { this.setData({ from: e.detail.value }); this.load(); },
  onTo(e) { this.setData({ to: e.detail.value }); this.load(); },
  async load() {
    try {
      const f = await api.filing({ from: this.data.from, to: this.data.to });
      this.setData({ title: f.region_name + '，' + f.period.from + ' 至 ' + f.period.to, rows: filingRows(f) });
    } catch (e) { showError(e); }
  },
  async download() {
    wx.showLoading({ title: '正在下载' });
    try {
      await openExport('/filings/xlsx?from=' + this.data.from + '&to=' + this.data.to, 'xlsx');
    } catch (e) { showError(e); } finally { wx.hideLoading(); }
  },
});
