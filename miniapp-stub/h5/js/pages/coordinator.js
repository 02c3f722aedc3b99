// The coordinator's pages, for a desk as much as a phone: who carries how much this week
// (a bar per volunteer against capacity), which families the rules have reached, and the
// report the association files, as figures and as a file to download.
import { api, download } from '../api.js';
import { h, show, alertBox, busy, toast } from '../ui.js';
import {
  isoDate, monthStart, kindLabel, windowLabel, loadBar, weekSummary, TEAM_HEADERS, teamRow,
  VILLAGE_HEADERS, villageRow, COVERAGE_HEADERS, coverageRow, CATEGORY_HEADERS, categoryRow,
  NOT_VISITED_HEADERS, notVisitedRow, LAPSE_HEADERS, lapseRow, filingRows, assignmentRunMessage, pageCount,
} from '../shared/core.js';

/** A bar of `value` against `capacity`, red past it. */
function bar(value, capacity) {
  const b = loadBar(value, capacity);
  return h('div', { class: 'bar', role: 'img', 'aria-label': value + ' / ' + capacity },
    h('span', { class: 'fill' + (b.over ? ' over' : ''), style: 'width:' + b.fill + '%' }),
    b.cap !== null && h('span', { class: 'cap', style: 'left:' + b.cap + '%' }));
}

function table(headers, rows) {
  return h('table', {},
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', {}, t)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c))))));
}

/** Pages of a list: "上一页 / 下一页" around `render(page)`. */
function pager(page, load) {
  const pages = pageCount(page);
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
    board.replaceChildren(
      h('p', { class: 'muted' }, weekSummary(w)),
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
    teams.replaceChildren(table(TEAM_HEADERS, t.teams.items.map(teamRow)));
    const u = await api.unclaimedVillages({ per_page: 20 });
    villages.replaceChildren(u.items.length
      ? table(VILLAGE_HEADERS, u.items.map(villageRow))
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
      rows.replaceChildren(
        h('p', { class: 'muted' }, c.region_name + '，' + c.period.from + ' 至 ' + c.period.to),
        table(COVERAGE_HEADERS, [...c.rows.items.map((r) => coverageRow(r.name, r)), coverageRow('合计', c.total)]),
        h('h2', {}, '按家庭类别'),
        table(CATEGORY_HEADERS, c.total.by_category.map(categoryRow)));
    } catch (e) {
      rows.replaceChildren(alertBox(e.message));
    }
  }
  await load();
  try {
    const q = await api.notVisited({ days: 30, per_page: 20 });
    quiet.replaceChildren(q.items.length
      ? table(NOT_VISITED_HEADERS, q.items.map(notVisitedRow))
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
        table(['指标', '数值'], filingRows(f)));
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
        message.replaceChildren(h('div', { class: 'done' }, assignmentRunMessage(r)));
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
      ? table(LAPSE_HEADERS, m.items.map(lapseRow))
      : h('p', { class: 'muted' }, '本月没有错过的走访。'));
  } catch (e) { missed.replaceChildren(alertBox(e.message)); }
}
