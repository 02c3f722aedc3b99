// The coordinator's pages, for a desk as much as a phone: who carries how much this week
// (a bar per volunteer against capacity), which families the rules have reached, and the
// report the association files, as figures and as a file to download.
import { api, download } from '../api.js';
import { h, show, alertBox, busy, toast } from '../ui.js';
import { percent, isoDate, monthStart, kindLabel, windowLabel } from '../shared/core.js';

/** A bar of `value` against `capacity`, red past it. */
function bar(value, capacity) {
  const max = Math.max(capacity, value, 1);
  const over = value > capacity;
  return h('div', { class: 'bar', role: 'img', 'aria-label': value + ' / ' + capacity },
    h('span', { class: 'fill' + (over ? ' over' : ''), style: 'width:' + Math.round((100 * value) / max) + '%' }),
    capacity > 0 && h('span', { class: 'cap', style: 'left:' + Math.round((100 * capacity) / max) + '%' }));
}

function table(headers, rows) {
  return h('table', {},
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', {}, t)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c))))));
}

/** Pages of a list: "上一页 / 下一页" around `render(page)`. */
function pager(page, load) {
  const pages = Math.max(1, Math.ceil(page.total / page.per_page));
  if (pages === 1) return '';
  return h('div', { class: 'row' },
    h('button', { disabled: page.page <= 1, onclick: () => load(page.page - 1) }, '上一页'),
    h('span', { class: 'muted' }, '第 ' + page.page + ' / ' + pages + ' 页'),
    h('button', { disabled: page.page >= pages, onclick: () => load(page.page + 1) }, '下一页'));
}

export async function workload() {
  const board = h('div', { id: 'workload' });
  const teams = h('div');
  const villages = h('div');
  show(h('h1', {}, '志愿者工作量'), board, h('h2', {}, '服务队'), teams, h('h2', {}, '走访无人认领的村'), villages);

  async function load(page) {
    const w = await api.workload({ page, per_page: 30 });
    const s = w.week_spread;
    board.replaceChildren(
      h('p', { class: 'muted' }, '本周 ' + w.week.from + ' 至 ' + w.week.to + '：' + s.volunteers + ' 名志愿者，人均 ' +
        s.mean.toFixed(1) + ' 次，最多 ' + s.max + ' 次' +
        (s.max_over_mean ? '（人均的 ' + s.max_over_mean.toFixed(1) + ' 倍）' : '') + '，基尼系数 ' + s.gini.toFixed(2)),
      h('div', { class: 'loads' }, w.volunteers.items.map((v) => h('div', { class: 'load', 'data-volunteer': v.volunteer_id },
        h('div', { class: 'row' },
          h('strong', {}, v.name), h('span', { class: 'muted' }, v.team || '未加入服务队'),
          h('span', { class: 'load-figure' }, v.week.total + ' / ' + v.weekly_capacity)),
        bar(v.week.total, v.weekly_capacity)))),
      pager(w.volunteers, load));
  }

  try {
    await load(1);
    const t = await api.teamWorkload({ per_page: 50 });
    teams.replaceChildren(table(['服务队', '人数', '本周', '本月', '本月错过'],
      t.teams.items.map((x) => [x.name, x.volunteers, x.week.total, x.month.total, x.month.missed])));
    const u = await api.unclaimedVillages({ per_page: 20 });
    villages.replaceChildren(u.items.length
      ? table(['村（社区）', '待认领走访', '缺的人数'], u.items.map((x) => [x.name, x.visits, x.places]))
      : h('p', { class: 'muted' }, '近两周的走访都有人认领。'));
  } catch (e) {
    board.replaceChildren(alertBox(e.message));
  }
}

/** The period a coordinator looks at: from and to dates, this month by default. */
function periodForm(onChange) {
  const from = h('input', { type: 'date', id: 'p-from', value: monthStart() });
  const to = h('input', { type: 'date', id: 'p-to', value: isoDate(0) });
  const go = h('button', { onclick: () => onChange() }, '查看');
  return {
    node: h('div', { class: 'filters' },
      h('div', {}, h('label', { for: 'p-from' }, '从'), from),
      h('div', {}, h('label', { for: 'p-to' }, '到'), to),
      go),
    value: () => ({ from: from.value, to: to.value }),
  };
}

export async function coverage() {
  const rows = h('div', { id: 'coverage' });
  const quiet = h('div', { id: 'not-visited' });
  const period = periodForm(() => load());
  show(h('h1', {}, '随访覆盖'), period.node, rows, h('h2', {}, '30 天以上没有走访的家庭'), quiet);

  async function load() {
    try {
      const c = await api.coverage({ ...period.value(), per_page: 50 });
      const line = (name, n) => [name, n.families, percent(n.met_rate), n.visited + '（' + percent(n.visited_rate) + '）',
        n.missed_visits, n.unconfirmed_visits];
      rows.replaceChildren(
        h('p', { class: 'muted' }, c.region_name + '，' + c.period.from + ' 至 ' + c.period.to),
        table(['地区', '家庭', '按规定走访', '走访过的家庭', '错过', '待确认'],
          [...c.rows.items.map((r) => line(r.name, r)), line('合计', c.total)]),
        h('h2', {}, '按家庭类别'),
        table(['类别', '家庭', '按规定走访', '走访过'],
          c.total.by_category.map((k) => [k.label, k.families, percent(k.met_rate), percent(k.visited_rate)])));
    } catch (e) {
      rows.replaceChildren(alertBox(e.message));
    }
  }
  await load();
  try {
    const q = await api.notVisited({ days: 30, per_page: 20 });
    quiet.replaceChildren(q.items.length
      ? table(['家庭', '村（社区）', '上次走访'], q.items.map((f) => [f.head_name, f.village,
        f.days_since === null || f.days_since === undefined ? '从未' : f.days_since + ' 天前']))
      : h('p', { class: 'muted' }, '每个家庭 30 天内都有人去过。'));
  } catch (e) {
    quiet.replaceChildren(alertBox(e.message));
  }
}

export async function reports() {
  const figures = h('div', { id: 'filing' });
  const period = periodForm(() => load());
  const file = (format) => {
    const button = h('button', {
      class: format === 'xlsx' ? 'primary' : '', id: 'download-' + format,
      onclick: () => busy(button, async () => {
        try {
          const p = period.value();
          const name = await download('/filings/' + format + '?from=' + p.from + '&to=' + p.to, '工作报表.' + format);
          toast('已下载 ' + name);
        } catch (e) { toast(e.message); }
      }),
    }, format === 'xlsx' ? '下载 Excel' : '下载 CSV');
    return button;
  };
  show(h('h1', {}, '工作报表'), period.node, h('div', { class: 'row' }, file('xlsx'), file('csv')), figures);

  async function load() {
    try {
      const f = await api.filing(period.value());
      figures.replaceChildren(
        h('p', { class: 'muted' }, f.region_name + '，' + f.period.from + ' 至 ' + f.period.to),
        table(['指标', '数值'], [
          ['走访家庭（户）', f.families],
          ['走访（户次）', f.household_visits],
          ...f.by_kind.map((k) => [k.label + '（户次 / 人次）', k.visits + ' / ' + k.person_visits]),
          ['慰问金（元）', f.cash_yuan],
          ['送物品（次）', f.goods_visits],
          ['志愿者（人 / 人次）', f.volunteers + ' / ' + f.volunteer_visits],
          ['志愿服务时长（小时）', f.service_hours],
          ['活动（场）', f.events_held],
          ['心愿（收到 / 已回应）', f.wishes_received + ' / ' + f.wishes_answered],
        ]));
    } catch (e) {
      figures.replaceChildren(alertBox(e.message));
    }
  }
  await load();
}

/**
 * Visits nobody took: the proposed holders with the reason for each, applied one by one or
 * together; and the visits that were missed, to follow up.
 */
export async function proposals() {
  const list = h('div', { id: 'proposals' });
  const missed = h('div', { id: 'missed' });
  const message = h('div');
  const chosen = new Set();

  const run = h('button', {
    id: 'run-assignment',
    onclick: () => busy(run, async () => {
      try {
        const r = await api.runAssignment();
        message.replaceChildren(h('div', { class: 'done' }, '新的建议 ' + r.proposed + ' 条' +
          (r.unfilled ? '；' + r.unfilled + ' 个名额没有合适的志愿者，需要您安排' : '') + '。'));
        await load(1);
      } catch (e) { message.replaceChildren(alertBox(e.message)); }
    }),
  }, '现在生成分配建议');
  const applyChosen = h('button', {
    class: 'primary', id: 'apply-chosen',
    onclick: () => busy(applyChosen, async () => {
      if (!chosen.size) return toast('请先勾选建议');
      try {
        await api.applyProposals([...chosen]);
        toast('已采纳 ' + chosen.size + ' 条，志愿者会收到通知');
        chosen.clear();
        await load(1);
      } catch (e) { message.replaceChildren(alertBox(e.message)); }
    }),
  }, '采纳所选');

  function card(p) {
    const box = h('input', { type: 'checkbox', 'aria-label': '选择',
      onchange: () => (box.checked ? chosen.add(p.id) : chosen.delete(p.id)) });
    const apply = h('button', {
      class: 'primary',
      onclick: () => busy(apply, async () => {
        try {
          await api.applyProposal(p.id);
          chosen.delete(p.id);
          apply.replaceWith(h('span', { class: 'tag' }, '已采纳，等志愿者确认'));
          box.disabled = true;
        } catch (e) { toast(e.message); }
      }),
    }, '采纳');
    return h('div', { class: 'card', 'data-proposal': p.id, 'data-visit': p.visit_id },
      h('div', { class: 'row' }, box, h('strong', {}, kindLabel(p.kind)), h('span', {}, p.village),
        h('span', { class: 'muted' }, windowLabel(p.window_start, p.window_end))),
      h('div', {}, '建议：', h('strong', {}, p.volunteer_name), '（', p.reason, '）'),
      h('div', { class: 'row' }, apply));
  }

  async function load(page) {
    const r = await api.proposals({ page, per_page: 20 });
    list.replaceChildren(...(r.items.length ? r.items.map(card) : [h('p', { class: 'muted' }, '没有待采纳的建议。')]),
      pager(r, load));
  }

  show(h('h1', {}, '分配建议'),
    h('p', { class: 'muted' }, '志愿者认领期过后仍无人认领的走访，系统按“熟悉的人优先、负担均衡、路近”给出建议。'),
    h('div', { class: 'row' }, run, applyChosen), message, list,
    h('h2', {}, '本月错过的走访'), missed);
  try { await load(1); } catch (e) { list.replaceChildren(alertBox(e.message)); }
  try {
    const m = await api.lapses({ kind: 'missed', per_page: 20 });
    missed.replaceChildren(m.items.length
      ? table(['家庭', '村（社区）', '类型', '时间'], m.items.map((v) => [v.head_name, v.village, v.kind_label, windowLabel(v.window_start, v.window_end)]))
      : h('p', { class: 'muted' }, '本月没有错过的走访。'));
  } catch (e) { missed.replaceChildren(alertBox(e.message)); }
}
