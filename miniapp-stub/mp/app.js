App({
  onLaunch() {
    // WeChat's privacy contract (base library ≥ 2.32.3): the first privacy API call
    // (wx.getLocation at check-in) waits until the person agrees on the page that shows
    // the agree button; pages register themselves as `privacyPage` to show it.
    if (wx.onNeedPrivacyAuthorization) {
      wx.onNeedPrivacyAuthorization((resolve) => {
        const page = getCurrentPages().slice(-1)[0];
        if (page && page.askPrivacy) page.askPrivacy(resolve);
        else resolve({ event: 'disagree' });
      });
    }
  },
});
