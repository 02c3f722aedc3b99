import { api, homePage, showError } from '../../utils/api.js';
import { SKILLS, REGISTRATION_FIELDS, fieldMessage } from '../../shared/core.js';

// A new WeChat account registers as a volunteer (the ticket comes from the login page);
// a coordinator of the home village approves.
Page({
  data: {
    ticket: '', name: '', phone: '', skills: Object.entries(SKILLS).map(([value, label]) => ({ value, label })),
    chosen: [], tiers: [[], [], []], picked: [-1, -1, -1], field: '', error: '', waiting: false,
  },
  async onLoad(query) {
    this.setData({ ticket: decodeURIComponent(query.ticket || '') });
    try {
      const { items } = await api.areas();
      if (items.length) await this.fill(0, items[0].id);
    } catch (e) { showError(e); }
  },
  async fill(tier, parentId) {
    const { items } = await api.areas(parentId);
    const tiers = this.data.tiers.map((t, i) => (i < tier ? t : i === tier ? items : []));
    const picked = this.data.picked.map((p, i) => (i < tier ? p : -1));
    this.setData({ tiers, picked });
  },
  onName(e) { this.setData({ name: e.detail.value }); },
  onPhone(e) { this.setData({ phone: e.detail.value }); },
  onSkills(e) { this.setData({ chosen: e.detail.value }); },
  async onPick(e) {
    const tier = Number(e.currentTarget.dataset.tier);
    const index = Number(e.detail.value);
    this.setData({ ['picked[' + tier + ']']: index });
    if (tier < 2) await this.fill(tier + 1, this.data.tiers[tier][index].id);
  },
  async submit() {
    const village = this.data.tiers[2][this.data.picked[2]];
    if (!village) return this.setData({ field: 'region_id', error: REGISTRATION_FIELDS.region_id + '：请选择' });
    try {
      await api.registerVolunteer({
        ticket: this.data.ticket, name: this.data.name.trim(), phone: this.data.phone.trim(),
        skills: this.data.chosen, region_id: village.id,
      });
      const url = await homePage();
      if (url) wx.reLaunch({ url });
      else this.setData({ waiting: true, error: '' });
    } catch (e) {
      // Beside the field the API refused, in the form's words (as the H5 page).
      const { field, text } = fieldMessage(e, REGISTRATION_FIELDS);
      this.setData({ field: REGISTRATION_FIELDS[field] ? field : '', error: text });
    }
  },
});
