import { api, showError } from '../../utils/api.js';
import { AVAILABILITY_FIELDS, WEEKDAY_NAMES, fieldMessage } from '../../shared/core.js';

function today(plusDays) {
  const d = new Date(Date.now() + 8 * 3600e3 + plusDays * 86400e3); // Beijing's date
  return d.toISOString().slice(0, 10);
}

// 我的时间: the weekdays a volunteer can visit on and how many a week, and leave (as the
// H5 page). Proposals keep to them; visits already held stay.
Page({
  data: {
    days: WEEKDAY_NAMES.map((name, i) => ({ n: i + 1, name, on: true })),
    capacity: '', from: '', to: '', reason: '', min: today(0),
    field: '', error: '', done: '',
  },
  async onShow() {
    try {
      const a = await api.availability();
      this.setData({
        days: this.data.days.map((d) => ({ ...d, on: a.weekdays.includes(d.n) })),
        capacity: String(a.weekly_capacity),
      });
    } catch (e) { showError(e); }
  },
  toggle(e) {
    const i = Number(e.currentTarget.dataset.index);
    this.setData({ ['days[' + i + '].on']: !this.data.days[i].on });
  },
  onCapacity(e) { this.setData({ capacity: e.detail.value }); },
  onFrom(e) { this.setData({ from: e.detail.value }); },
  onTo(e) { this.setData({ to: e.detail.value }); },
  onReason(e) { this.setData({ reason: e.detail.value }); },
  refused(e) {
    const { field, text } = fieldMessage(e, AVAILABILITY_FIELDS);
    this.setData({ field: AVAILABILITY_FIELDS[field] ? field : '', error: text, done: '' });
  },
  async save() {
    this.setData({ field: '', error: '' });
    try {
      await api.setAvailability({
        weekdays: this.data.days.filter((d) => d.on).map((d) => d.n),
        weekly_capacity: this.data.capacity === '' ? undefined : Number(this.data.capacity),
      });
      wx.showToast({ title: '已保存', icon: 'success' });
    } catch (e) { this.refused(e); }
  },
  async leave() {
    this.setData({ field: '', error: '' });
    try {
      const r = await api.declareLeave({
        start_date: this.data.from, end_date: this.data.to, reason: this.data.reason.trim() || undefined,
      });
      const given = r.released_visits.length;
      this.setData({
        from: '', to: '', reason: '',
        done: '已请假。' + (given ? '这几天的 ' + given + ' 次走访已交回，会请别的志愿者去。' : '这几天不会给您安排走访。'),
      });
    } catch (e) { this.refused(e); }
  },
});
