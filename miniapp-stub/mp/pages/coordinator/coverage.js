// Which families the rules have reached, by region and by category, for a period (this
// month by default); and the families nobody visited for 30 days. As the H5 page.
import { api, showError } from '../../utils/api.js';
import {
  isoDate, monthStart, COVERAGE_HEADERS, coverageRow, CATEGORY_HEADERS, categoryRow,
  NOT_VISITED_HEADERS, notVisitedRow,
} from '../../shared/core.js';

Page({
  data: {
    from: monthStart(), to: isoDate(0), title: '',
    headers: COVERAGE_HEADERS, rows: [], categoryHeaders: CATEGORY_HEADERS, categories: [],
    quietHeaders: NOT_VISITED_HEADERS, quiet: [],
  },
  onShow() {
    this.load();
    api.notVisited({ days: 30, per_page: 20 }).then((q) => this.setData({ quiet: q.items.map(notVisitedRow) }), showError);
  },
  onFrom(e) { this.setData({ from: e.detail.value }); this.load(); },
  onTo(e) { this.setData({ to: e.detail.value }); this.load(); },
  async load() {
    try {
      const c = await api.coverage({ from: this.data.from, to: this.data.to, per_page: 50 });
      this.setData({
        title: c.region_name + '，' + c.period.from + ' 至 ' + c.period.to,
        rows: [...c.rows.items.map((r) => coverageRow(r.name, r)), coverageRow('合计', c.total)],
        categories: c.total.by_category.map(categoryRow),
      });
    } catch (e) { showError(e); }
  },
});
