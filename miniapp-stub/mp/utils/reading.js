// The family's reading settings (大字, 高对比): preferences kept on the phone, the same
// two switches as the H5 pages. A page spreads `readingData()` into its data and
// binds its switches to `toggleReading`.
export function readingData() {
  return { large: !!wx.getStorageSync('nx_large'), contrast: !!wx.getStorageSync('nx_contrast') };
}

export function toggleReading(page, which) {
  const on = !page.data[which];
  wx.setStorageSync('nx_' + which, on);
  page.setData({ [which]: on });
}
