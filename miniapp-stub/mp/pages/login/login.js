import { api, wxLogin, homePage, showError } from '../../utils/api.js';

Page({
  data: { ticket: null, code: '', error: '' },
  async onLoad() {
    if (api.loggedIn()) this.go();
  },
  async login() {
    try {
      const r = await api.wechatLogin(await wxLogin());
      if (r.bound) return this.go();
      this.setData({ ticket: r.ticket }); // a new account: ask for the invite code
    } catch (e) { this.setData({ error: e.message }); }
  },
  register() {
    wx.navigateTo({ url: '/pages/register/register?ticket=' + encodeURIComponent(this.data.ticket) });
  },
  onCode(e) { this.setData({ code: e.detail.value }); },
  async bind() {
    try {
      await api.bind(this.data.ticket, this.data.code.trim());
      this.go();
    } catch (e) { this.setData({ error: e.message }); }
  },
  async go() {
    try {
      const url = await homePage();
      if (url) wx.reLaunch({ url });
      else this.setData({ error: '您的账号暂时没有可用的页面：志愿者报名正在审核中。' });
    } catch (e) { showError(e); }
  },
});
