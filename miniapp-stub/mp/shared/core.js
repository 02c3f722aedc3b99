// The API client and the words of the app, shared by the H5 pages and the mini-program
// (mp/shared/core.js is a copy; the browser tests fail when the two differ).
// Nothing here touches a platform: each side passes a `transport` (fetch or wx.request)
// and a `tokens` store (localStorage or wx storage). Only the tokens are ever stored;
// family names, addresses and phones live in the page while it is open.

/** An API failure, with the API's `{code, message, field, state}` and the HTTP status. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || messageForStatus(status));
    this.status = status;
    this.code = (body && body.code) || (status === 0 ? 'network' : 'unknown');
    this.field = body && body.field;
    this.state = body && body.state;
  }
}

function messageForStatus(status) {
  if (status === 0) return '网络不通，请检查网络后重试';
  if (status >= 500) return '服务暂不可用，请稍后再试';
  return '请求失败（' + status + '）';
}

/** What a person reads when a claim is refused: the API's words, or kinder ones. */
export function claimRefusal(err) {
  if (err.code === 'visit_full') return '来晚了一步：这次走访已被其他志愿者认领满了。请看看别的走访。';
  if (err.code === 'visit_not_open') return '这次走访已不能认领（' + statusLabel(err.state) + '）。';
  return err.message;
}

/** What a person reads when an event sign-up or an invitation reply is refused. */
export function eventRefusal(err, forFamily) {
  if (err.code === 'full') {
    return forFamily
      ? '这个活动的名额已经满了，这次去不了。下次活动我们再请您。'
      : '名额已满：这个活动的志愿者名额刚刚被报满了。看看别的活动吧。';
  }
  if (err.code === 'already_signed_up') return '您已经报名了这个活动。';
  if (err.code === 'closed') return '这个活动已开始或已取消，不能再报名或回复。';
  return err.message;
}

/**
 * A refused form's message in the words of the form: the API names its fields in
 * English ("content 不能为空", "phone"), a person reads the form's own labels.
 * `labels` maps the API's field names to them; returns { field, text } where `field` is
 * the form's field ("needs[2]" → "needs") and `text` the message to show beside it.
 */
export function fieldMessage(err, labels) {
  const field = (err.field || '').replace(/[.[].*$/, '');
  const label = labels[field];
  let text = err.message || '';
  if (err.code === 'validation_failed' && /^字段无效/.test(text)) {
    // A wrong type or value, reported in the parser's English: say it plainly.
    text = label ? label + '填写有误' : '填写有误，请检查';
  } else if (label) {
    // "content 不能为空" → "心愿内容不能为空"; a message without the name gets it in front.
    const named = new RegExp('\\b' + field.replace(/\W/g, '') + '(?:\\[(\\d+)\\])?(?!\\w)\\s*', 'g');
    const replaced = text.replace(named, (_, i) => label + (i ? '第 ' + (Number(i) + 1) + ' 条' : ''));
    if (replaced !== text) text = replaced;
    else if (!text.includes(label)) text = label + '：' + text;
  }
  return { field, text };
}

/**
 * createApi({ transport, tokens, onLoggedOut })
 *  transport({ method, path, headers, body }) → Promise<{ status, body }> (status 0: no network)
 *  tokens: { get() → {access_token, refresh_token} | null, set(pair), clear() }
 */
export function createApi({ transport, tokens, onLoggedOut }) {
  let refreshing = null;

  async function send(method, path, body, token) {
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = 'Bearer ' + token;
    const res = await transport({ method, path: '/api' + path, headers, body });
    if (res.status >= 200 && res.status < 300) return { ok: true, body: res.body };
    return { ok: false, status: res.status, body: res.body };
  }

  // One refresh at a time: refresh tokens work once, so two pages refreshing together
  // would end the login everywhere.
  function refresh() {
    if (!refreshing) {
      refreshing = (async () => {
        const held = tokens.get();
        if (!held) return false;
        const r = await send('POST', '/auth/refresh', { refresh_token: held.refresh_token });
        if (r.ok) tokens.set(r.body);
        else if (r.status !== 0) tokens.clear();
        return r.ok;
      })().finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  async function call(method, path, body) {
    const held = tokens.get();
    let r = await send(method, path, body, held && held.access_token);
    if (!r.ok && r.status === 401 && held) {
      if (await refresh()) r = await send(method, path, body, tokens.get().access_token);
      if (!r.ok && r.status === 401) {
        tokens.clear();
        if (onLoggedOut) onLoggedOut();
      }
    }
    if (!r.ok) throw new ApiError(r.status, r.body);
    return r.body;
  }

  const q = (params) => {
    const parts = Object.keys(params || {})
      .filter((k) => params[k] !== undefined && params[k] !== null && params[k] !== '')
      .map((k) => encodeURIComponent(k) + '=' + encodeURIComponent(params[k]));
    return parts.length ? '?' + parts.join('&') : '';
  };
  const post = (path, body) => call('POST', path, body === undefined ? {} : body);

  return {
    call,
    loggedIn: () => !!tokens.get(),

    // Logging in: a wx.login code first; an unknown account gets a ticket.
    async wechatLogin(code) {
      const r = await post('/auth/wechat', { code });
      if (r.bound) tokens.set(r.tokens);
      return r;
    },
    async bind(ticket, code) {
      const pair = await post('/auth/bind', { ticket, code });
      tokens.set(pair);
      return pair;
    },
    async devLogin(phone) {
      const pair = await post('/auth/dev', { phone });
      tokens.set(pair);
      return pair;
    },
    // A new WeChat account registering as a volunteer: where they live, tier by tier.
    areas: (parentId) => call('GET', '/volunteers/areas' + q({ parent_id: parentId })),
    async registerVolunteer(form) {
      const pair = await post('/volunteers/register', form);
      tokens.set(pair);
      return pair;
    },
    devOptions: () => call('GET', '/auth/dev'),
    devWxCode: (openid) => post('/auth/dev/wx-code', { openid }),
    me: () => call('GET', '/auth/me'),
    async logout() {
      const held = tokens.get();
      tokens.clear();
      if (held) await post('/auth/logout', { refresh_token: held.refresh_token }).catch(() => {});
    },

    // Volunteers
    feed: (params) => call('GET', '/visits/feed' + q(params)),
    visit: (id) => call('GET', '/visits/' + id),
    claim: (id) => post('/visits/' + id + '/claims'),
    unclaim: (id) => call('DELETE', '/visits/' + id + '/claims/mine'),
    myVisits: (when, cursor) => call('GET', '/me/visits' + q({ when, cursor })),
    checkin: (id, how) => post('/visits/' + id + '/checkin', how),
    checkout: (id) => post('/visits/' + id + '/checkout'),
    report: (id, body) => post('/visits/' + id + '/report', body),
    hours: () => call('GET', '/me/hours'),
    // When I can visit (weekdays 1–7, visits a week) and leave: proposals keep to them.
    availability: () => call('GET', '/me/availability'),
    setAvailability: (body) => call('PUT', '/me/availability', body),
    declareLeave: (body) => post('/me/leave', body),
    // The WeChat templates the server sends with (load them before the tap that asks),
    // and the ones the person accepted in wx.requestSubscribeMessage (one message each).
    subscriptions: () => call('GET', '/me/subscriptions'),
    reportAccepted: (accepted) => post('/me/subscriptions', { accepted }),

    // Events (活动): a volunteer signs up; a family replies to its invitation.
    volunteerEvents: (page) => call('GET', '/volunteer/events' + q({ page, per_page: 10 })),
    signUp: (id) => post('/events/' + id + '/signup'),
    withdraw: (id) => call('DELETE', '/events/' + id + '/signup'),
    familyEvents: () => call('GET', '/family/events' + q({ per_page: 20 })),
    replyEvent: (id, accept) => post('/family/events/' + id + '/reply', { accept }),

    // Everyone's messages
    inbox: (cursor) => call('GET', '/me/inbox' + q({ cursor })),
    readMessage: (id) => post('/me/inbox/' + id + '/read'),
    readAllMessages: () => post('/me/inbox/read-all'),

    // Coordinators
    workload: (params) => call('GET', '/workload' + q(params)),
    teamWorkload: (params) => call('GET', '/workload/teams' + q(params)),
    unclaimedVillages: (params) => call('GET', '/workload/unclaimed-villages' + q(params)),
    coverage: (params) => call('GET', '/coverage' + q(params)),
    notVisited: (params) => call('GET', '/coverage/not-visited' + q(params)),
    filing: (params) => call('GET', '/filings' + q(params)),
    lapses: (params) => call('GET', '/coverage/lapses' + q(params)),
    runAssignment: () => post('/assignments/run', {}),
    proposals: (params) => call('GET', '/assignments/proposals' + q(params)),
    applyProposal: (id) => post('/assignments/proposals/' + id + '/apply'),
    applyProposals: (ids) => post('/assignments/proposals/apply', { ids }),

    // Families
    pressHelp: (kind) => post('/family/help', { kind }),
    myWishes: () => call('GET', '/family/wishes'),
    postWish: (content, kind, isPublic) => post('/family/wishes', { content, kind, public: isPublic }),
    wishWall: (page) => call('GET', '/wishes/wall' + q({ page, per_page: 10 })),
    familyVisits: () => call('GET', '/family/visits'),
    familyCode: (id) => call('GET', '/family/visits/' + id + '/code'),
    confirm: (id, rating, comment) => post('/family/visits/' + id + '/confirm', { rating, comment }),
    decline: (id, reason) => post('/family/visits/' + id + '/decline', { reason }),
    move: (id, reason, preferredDates) =>
      post('/family/visits/' + id + '/move', { reason, preferred_dates: preferredDates }),
  };
}

// ---------------------------------------------------------------------------------------
// Words

export const KINDS = {
  checkin: '定期走访',
  birthday: '生日慰问',
  festival: '节日慰问',
  child_birthday: '关怀走访',
  death_anniversary: '关怀走访',
  qingming: '关怀走访',
  followup: '心理回访',
};
export const kindLabel = (k) => KINDS[k] || '走访';

/** The kinds a volunteer may filter the feed by. */
export const FEED_KINDS = [
  ['', '全部'],
  ['checkin', '定期走访'],
  ['birthday', '生日慰问'],
  ['festival', '节日慰问'],
  ['followup', '心理回访'],
];

const STATUS = {
  open: '待认领',
  claimed: '已认满',
  in_progress: '走访中',
  reported: '已上报',
  confirmed: '已确认',
  missed: '已错过',
  cancelled: '已取消',
};
export const statusLabel = (s) => STATUS[s] || '未知状态';

export const SKILLS = {
  counselling: '心理咨询',
  health: '健康监测',
  legal: '法律援助',
  companionship: '陪同聊天',
  care: '生活照料',
};

export const SERVICES = [
  ['condolence', '慰问'],
  ['counselling', '心理疏导'],
  ['companionship', '陪同聊天'],
  ['health_check', '健康监测'],
  ['daily_care', '生活照料'],
  ['policy', '政策宣传'],
  ['other', '其他'],
];
export const MOODS = [
  ['good', '良好'],
  ['stable', '平稳'],
  ['low', '低落'],
  ['anxious', '焦虑'],
];
export const RISK_SIGNS = [
  ['low_mood_weeks', '情绪低落数周'],
  ['alone_unattended', '独居无人照看'],
  ['health_declining', '身体明显变差'],
  ['suicidal_thoughts', '有轻生念头'],
];

/** What a family member can say when pressing help (all optional). */
export const HELP_KINDS = [
  ['fall', '摔倒了'],
  ['illness', '身体不舒服'],
  ['safety', '家里不安全'],
  ['emotional', '心里难受'],
  ['other', '别的事'],
];

/** What a wish is about. */
export const WISH_KINDS = [
  ['daily_life', '生活帮扶'],
  ['health', '医疗健康'],
  ['emotional', '精神慰藉'],
  ['legal', '法律咨询'],
  ['other', '其他'],
];

/** What a wish's form is made of, to name the field the API refused. */
export const WISH_FIELDS = {
  content: '心愿内容',
  kind: '心愿类别',
  public: '放到心愿墙上',
};

export const WISH_STATUS = { open: '等待回复', in_progress: '正在办', done: '已办好' };

const EVENT_KINDS = { birthday: '集体庆生', festival: '节日联欢', training: '培训', other: '活动' };
export const eventKindLabel = (k) => EVENT_KINDS[k] || '活动';

/** An event's time as a person says it: "12月5日（周六）14:00–16:00". */
export function eventWhen(start, end) {
  const same = dayLabel(start) === dayLabel(end);
  return dayLabel(start) + ' ' + timeLabel(start) + '–' + (same ? '' : dayLabel(end) + ' ') + timeLabel(end);
}

/** Volunteer places still free on an event (0 when full). */
export const placesLeft = (e) => Math.max(0, e.volunteer_slots - e.volunteers);

/** A family's reply to an invitation, in plain words. */
export const REPLY_LABELS = { invited: '还没回复', accepted: '您已答应参加', declined: '您已说这次不去' };

/** The labels of the registration form's fields, to name the one the API refused. */
export const REGISTRATION_FIELDS = {
  name: '姓名',
  phone: '手机号',
  skills: '擅长',
  region_id: '居住的村（社区）',
};

/** The labels of the report form's fields, to name the one the API refused. */
export const AVAILABILITY_FIELDS = {
  weekdays: '可走访的日子',
  weekly_capacity: '每周最多走访',
  start_date: '开始日期',
  end_date: '结束日期',
  reason: '事由',
};

export const WEEKDAY_NAMES = ['周一', '周二', '周三', '周四', '周五', '周六', '周日'];

export const REPORT_FIELDS = {
  services: '服务内容',
  other_service: '其他服务',
  cash_yuan: '慰问金',
  goods: '物品',
  bp_systolic: '收缩压（高压）',
  bp_diastolic: '舒张压（低压）',
  mood: '情绪',
  risk_signs: '风险迹象',
  needs: '发现的需求',
  notes: '备注',
};

// ---------------------------------------------------------------------------------------
// Dates: the association works in China's time, whatever the phone's zone.

const TZ_MS = 8 * 3600 * 1000;
const WEEKDAYS = '日一二三四五六';

function beijing(iso) {
  const d = new Date(new Date(iso).getTime() + TZ_MS);
  return {
    y: d.getUTCFullYear(), m: d.getUTCMonth() + 1, d: d.getUTCDate(),
    w: d.getUTCDay(), hh: d.getUTCHours(), mm: d.getUTCMinutes(),
  };
}
const pad = (n) => (n < 10 ? '0' + n : '' + n);

/** "11月24日（周一）" */
export function dayLabel(iso) {
  const t = beijing(iso);
  return t.m + '月' + t.d + '日（周' + WEEKDAYS[t.w] + '）';
}

/** "14:05" */
export function timeLabel(iso) {
  const t = beijing(iso);
  return pad(t.hh) + ':' + pad(t.mm);
}

/** A visit's window as a person says it: "11月24日（周一）" or "11月24日 至 11月26日". */
export function windowLabel(start, end) {
  const a = beijing(start);
  // The window ends at midnight after its last day.
  const last = beijing(new Date(new Date(end).getTime() - 1).toISOString());
  if (a.y === last.y && a.m === last.m && a.d === last.d) return dayLabel(start);
  return a.m + '月' + a.d + '日 至 ' + last.m + '月' + last.d + '日';
}

/** "83%" of a rate the API gives in percent, or "—" when there is nothing to count. */
export function percent(rate) {
  return rate === null || rate === undefined ? '—' : Math.round(rate) + '%';
}

/** The first day of this month in China as YYYY-MM-DD. */
export function monthStart() {
  return isoDate(0).slice(0, 8) + '01';
}

/** Today in China as YYYY-MM-DD, plus `days`. */
export function isoDate(days) {
  const d = new Date(Date.now() + TZ_MS + (days || 0) * 86400000);
  return d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate());
}

export function distanceLabel(km) {
  if (km === null || km === undefined) return '';
  return km < 1 ? '1 公里内' : '约 ' + km + ' 公里';
}

// ---------------------------------------------------------------------------------------
// The coordinator's figures, as the pages of both sides lay them out.

/** A volunteer's load bar: the fill and the capacity mark in percent of the bar. */
export function loadBar(value, capacity) {
  const max = Math.max(capacity, value, 1);
  return {
    fill: Math.round((100 * value) / max),
    cap: capacity > 0 ? Math.round((100 * capacity) / max) : null,
    over: value > capacity,
  };
}

/** The workload board's summary line of the week. */
export function weekSummary(w) {
  const s = w.week_spread;
  return '本周 ' + w.week.from + ' 至 ' + w.week.to + '：' + s.volunteers + ' 名志愿者，人均 ' +
    s.mean.toFixed(1) + ' 次，最多 ' + s.max + ' 次' +
    (s.max_over_mean ? '（人均的 ' + s.max_over_mean.toFixed(1) + ' 倍）' : '') + '，基尼系数 ' + s.gini.toFixed(2);
}

export const TEAM_HEADERS = ['服务队', '人数', '本周', '本月', '本月错过'];
export const teamRow = (x) => [x.name, x.volunteers, x.week.total, x.month.total, x.month.missed];
export const VILLAGE_HEADERS = ['村（社区）', '待认领走访', '缺的人数'];
export const villageRow = (x) => [x.name, x.visits, x.places];

export const COVERAGE_HEADERS = ['地区', '家庭', '按规定走访', '走访过的家庭', '错过', '待确认'];
/** A region's (or the total's) coverage line. */
export const coverageRow = (name, n) => [name, n.families, percent(n.met_rate),
  n.visited + '（' + percent(n.visited_rate) + '）', n.missed_visits, n.unconfirmed_visits];
export const CATEGORY_HEADERS = ['类别', '家庭', '按规定走访', '走访过'];
export const categoryRow = (k) => [k.label, k.families, percent(k.met_rate), percent(k.visited_rate)];
export const NOT_VISITED_HEADERS = ['家庭', '村（社区）', '上次走访'];
export const notVisitedRow = (f) => [f.head_name, f.village,
  f.days_since === null || f.days_since === undefined ? '从未' : f.days_since + ' 天前'];
export const LAPSE_HEADERS = ['家庭', '村（社区）', '类型', '时间'];
export const lapseRow = (v) => [v.head_name, v.village, v.kind_label, windowLabel(v.window_start, v.window_end)];

/** The filed report's figures as [指标, 数值] rows. */
export function filingRows(f) {
  return [
    ['走访家庭（户）', f.families],
    ['走访（户次）', f.household_visits],
    ...f.by_kind.map((k) => [k.label + '（户次 / 人次）', k.visits + ' / ' + k.person_visits]),
    ['慰问金（元）', f.cash_yuan],
    ['送物品（次）', f.goods_visits],
    ['志愿者（人 / 人次）', f.volunteers + ' / ' + f.volunteer_visits],
    ['志愿服务时长（小时）', f.service_hours],
    ['活动（场）', f.events_held],
    ['心愿（收到 / 已回应）', f.wishes_received + ' / ' + f.wishes_answered],
  ];
}

/** What a run of the assignment says. */
export function assignmentRunMessage(r) {
  return '新的建议 ' + r.proposed + ' 条' +
    (r.unfilled ? '；' + r.unfilled + ' 个名额没有合适的志愿者，需要您安排' : '') + '。';
}

/** Pages of a `{page, per_page, total}` list: how many there are. */
export const pageCount = (p) => Math.max(1, Math.ceil(p.total / p.per_page));
