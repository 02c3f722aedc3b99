// Who carries how much this week: a bar per volunteer against capacity, the teams, and
// the villages whose visits nobody took. As the H5 page.
import { api, showError } from '../../utils/api.js';
import { loadBar, weekSummary, TEAM_HEADERS, teamRow, VILLAGE_HEADERS, villageRow, pageCount } from '../../shared/core.js';

Page({
  data: { summary: '', volunteers: [], page: 1, pages: 1, teamHeaders: TEAM_HEADERS, teams: [], villageHeaders: VILLAGE_HEADERS, villages: [] },
  onShow() {
    this.load(this.data.page);
    api.teamWorkload({ per_page: 50 }).then((t) => this.setData({ teams: t.teams.items.map(teamRow) }), showError);
    api.unclaimedVillages({ per_page: 20 }).then((u) => this.setData({ villages: u.items.map(villageRow) }), showError);
  },
  async load(page) {
    try {
      const w = await api.workload({ page, per_page: 30 });
      this.setData({
        summary: weekSummary(w),
        page: w.volunteers.page,
        pages: pageCount(w.volunteers),
        volunteers: w.volunteers.items.map((v) => ({ ...v, bar: loadBar(v.week.total, v.weekly_capacity) })),
      });
    } catch (e) { showError(e); }
  },
  prev() { this.load(this.data.page - 1); },
  next() { this.load(this.data.page + 1); },
});
