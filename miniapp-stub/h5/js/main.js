// The router: "#/v/feed" → the volunteer's feed, and so on. Each page module exports
// functions that take the route's parameters and put the page on screen.
import { api } from './api.js';
import { show, alertBox, tabs } from './ui.js';
import * as login from './pages/login.js';
import * as volunteer from './pages/volunteer.js';
import * as family from './pages/family.js';
import * as inbox from './pages/inbox.js';
import * as coordinator from './pages/coordinator.js';

const COORDINATOR_TABS = [['#/c/workload', '工作量'], ['#/c/proposals', '分配'], ['#/c/coverage', '随访覆盖'], ['#/c/reports', '报表'], ['#/c/inbox', '消息']];
const VOLUNTEER_TABS = [['#/v/feed', '找走访'], ['#/v/mine', '我的走访'], ['#/v/events', '活动'], ['#/v/hours', '志愿时长'], ['#/v/inbox', '消息']];

const routes = [
  [/^#\/login$/, login.page, null],
  [/^#\/v\/feed$/, volunteer.feed, VOLUNTEER_TABS],
  [/^#\/v\/visit\/([\w-]+)$/, volunteer.detail, VOLUNTEER_TABS],
  [/^#\/v\/do\/([\w-]+)$/, volunteer.doVisit, VOLUNTEER_TABS],
  [/^#\/v\/report\/([\w-]+)$/, volunteer.report, VOLUNTEER_TABS],
  [/^#\/v\/mine$/, volunteer.mine, VOLUNTEER_TABS],
  [/^#\/v\/events$/, volunteer.events, VOLUNTEER_TABS],
  [/^#\/v\/hours$/, volunteer.hours, VOLUNTEER_TABS],
  [/^#\/v\/time$/, volunteer.availability, VOLUNTEER_TABS],
  [/^#\/v\/inbox$/, inbox.page, VOLUNTEER_TABS],
  [/^#\/c\/workload$/, coordinator.workload, COORDINATOR_TABS],
  [/^#\/c\/proposals$/, coordinator.proposals, COORDINATOR_TABS],
  [/^#\/c\/coverage$/, coordinator.coverage, COORDINATOR_TABS],
  [/^#\/c\/reports$/, coordinator.reports, COORDINATOR_TABS],
  [/^#\/c\/inbox$/, inbox.page, COORDINATOR_TABS],
  [/^#\/f$/, family.home, null],
  [/^#\/f\/inbox$/, inbox.page, null],
  [/^#\/f\/wall$/, family.wall, null],
  [/^#\/none$/, login.nothingHere, null],
];

/** Where a person starts, by who they are. */
export async function home() {
  const me = await api.me();
  if (me.roles.includes('family')) return '#/f';
  if (me.roles.includes('coordinator') || me.roles.includes('admin')) return '#/c/workload';
  if (me.volunteer_status === 'approved') return '#/v/feed';
  return '#/none';
}

async function route() {
  const hash = location.hash || '#/';
  if (!api.loggedIn() && hash !== '#/login') { location.hash = '#/login'; return; }
  if (hash === '#/' || hash === '#') {
    try { location.hash = await home(); } catch (e) { show(alertBox(e.message)); }
    return;
  }
  const found = routes.find(([re]) => re.test(hash));
  if (!found) { location.hash = '#/'; return; }
  const [re, page, tabItems] = found;
  tabs(tabItems, hash);
  try {
    await page(...hash.match(re).slice(1));
  } catch (e) {
    // A page that cannot load says why instead of staying blank.
    show(alertBox(e.message || '页面打开失败'), '');
  }
}

// The family's reading settings are preferences, not personal data.
for (const cls of ['large', 'contrast']) {
  if (localStorage.getItem('nx_' + cls) === '1') document.documentElement.classList.add(cls);
}

window.addEventListener('hashchange', route);
route();
