import { api } from '../../utils/api.js';
import { SERVICES, MOODS, RISK_SIGNS, REPORT_FIELDS, fieldMessage } from '../../shared/core.js';

Page({
  data: { id: '', services: SERVICES, moods: MOODS, risks: RISK_SIGNS, error: '', field: '', done: false },
  onLoad(query) { this.setData({ id: query.id }); },
  async submit(e) {
    const f = e.detail.value;
    const num = (v) => (v === '' || v === undefined ? undefined : Number(v));
    const body = {
      services: f.services || [],
      other_service: f.other_service || undefined,
      cash_yuan: num(f.cash_yuan),
      goods: f.goods || undefined,
      bp_systolic: num(f.bp_systolic),
      bp_diastolic: num(f.bp_diastolic),
      mood: f.mood || undefined,
      risk_signs: f.risk_signs || [],
      needs: (f.needs || '').split('\n').map((s) => s.trim()).filter(Boolean),
      notes: f.notes || undefined,
    };
    try {
      await api.report(this.data.id, body);
      this.setData({ done: true, error: '' });
    } catch (err) {
      // Beside the field the API refused, in the form's words (as the H5 page).
      const { field, text } = fieldMessage(err, REPORT_FIELDS);
      this.setData({ field: REPORT_FIELDS[field] ? field : '', error: text });
    }
  },
});
