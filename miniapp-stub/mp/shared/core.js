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
    // The WeChat templates the server sends with (load them before the tap that asks),
    // and the ones the person accepted in wx.requestSubscribeMessage (one message each).
    subscriptions: () => call('GET', '/me/subscriptions'),
    reportAccepted: (accepted) => post('/me/subscriptions', { accepted }),

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

/** The labels of the registration form's fields, to name the one the API refused. */
export const REGISTRATION_FIELDS = {
  name: '姓名',
  phone: '手机号',
  skills: '擅长',
  region_id: '居住的村（社区）',
};

/** The labels of the report form's fields, to name the one the API refused. */
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
