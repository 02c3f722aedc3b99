// The volunteer's pages: the feed, a visit and claiming it, doing it (check-in, check-out),
// the report, my visits, events to sign up for, my service hours, and when I can visit.
import { api } from '../api.js';
import { h, show, toast, alertBox, busy } from '../ui.js';
import {
  FEED_KINDS, SERVICES, MOODS, RISK_SIGNS, REPORT_FIELDS, SKILLS,
  kindLabel, statusLabel, windowLabel, distanceLabel, timeLabel, isoDate, claimRefusal,
  eventKindLabel, eventWhen, placesLeft, eventRefusal, fieldMessage,
  AVAILABILITY_FIELDS, WEEKDAY_NAMES,
} from '../shared/core.js';

// The feed's filters live as long as the page is open (not stored).
const filters = { kind: '', from: '', to: '', max_distance_km: '', here: false };

function position() {
  return new Promise((resolve, reject) => {
    if (!navigator.geolocation) return reject(new Error('此浏览器不能定位，请用家属的签到码'));
    navigator.geolocation.getCurrentPosition(
      (p) => resolve({ lat: p.coords.latitude, lng: p.coords.longitude }),
      () => reject(new Error('没能取得位置：请允许定位，或用家属的签到码')),
      { enableHighAccuracy: true, timeout: 15000 },
    );
  });
}

function visitCard(v) {
  return h('a', { class: 'card', href: '#/v/visit/' + v.id, 'data-visit': v.id },
    h('h3', {}, kindLabel(v.kind), ' · ', v.category_label),
    h('div', { class: 'row' },
      h('span', {}, v.village), h('span', { class: 'muted' }, distanceLabel(v.distance_km))),
    h('div', {}, windowLabel(v.window_start, v.window_end)),
    h('div', { class: 'row' },
      h('span', { class: 'tag' }, '需 ' + v.volunteers_needed + ' 人，已认领 ' + v.claims_count),
      v.gentle && h('span', { class: 'tag warn' }, '请温和体贴'),
      v.channel === 'phone_call' && h('span', { class: 'tag' }, '电话问候'),
      (v.required_skills || []).map((s) => h('span', { class: 'tag' }, SKILLS[s] || s))));
}

export async function feed() {
  const list = h('div', { id: 'feed-list' });
  const more = h('div');
  const message = h('div');

  const kind = h('select', { id: 'f-kind', onchange: () => { filters.kind = kind.value; load(); } },
    FEED_KINDS.map(([v, l]) => h('option', { value: v, selected: v === filters.kind }, l)));
  const distance = h('select', { id: 'f-distance', onchange: () => { filters.max_distance_km = distance.value; load(); } },
    [['', '不限距离'], ['1', '1 公里内'], ['3', '3 公里内'], ['5', '5 公里内'], ['10', '10 公里内']]
      .map(([v, l]) => h('option', { value: v, selected: v === filters.max_distance_km }, l)));
  const from = h('input', { id: 'f-from', type: 'date', value: filters.from, min: isoDate(0), onchange: () => { filters.from = from.value; load(); } });
  const to = h('input', { id: 'f-to', type: 'date', value: filters.to, min: isoDate(0), onchange: () => { filters.to = to.value; load(); } });
  const here = h('input', { id: 'f-here', type: 'checkbox', checked: filters.here, onchange: () => { filters.here = here.checked; load(); } });

  async function load(cursor) {
    message.replaceChildren();
    const params = { kind: filters.kind, from: filters.from, to: filters.to, max_distance_km: filters.max_distance_km, cursor };
    try {
      if (filters.here) Object.assign(params, await position());
      const page = await api.feed(params);
      if (!cursor) list.replaceChildren();
      list.append(...page.items.map(visitCard));
      if (!list.children.length) list.append(h('p', { class: 'muted center' }, '附近暂时没有可认领的走访。'));
      more.replaceChildren(page.next_cursor
        ? h('button', { class: 'big', onclick: () => load(page.next_cursor) }, '加载更多') : '');
    } catch (e) {
      message.replaceChildren(alertBox(e.message));
    }
  }

  show(
    h('h1', {}, '找走访'),
    h('p', { class: 'muted' }, '离您近、时间紧的排在前面。'),
    h('div', { class: 'filters' },
      h('div', {}, h('label', { for: 'f-kind' }, '类型'), kind),
      h('div', {}, h('label', { for: 'f-distance' }, '距离'), distance),
      h('div', {}, h('label', { for: 'f-from' }, '从'), from),
      h('div', {}, h('label', { for: 'f-to' }, '到'), to)),
    h('label', {}, here, '按我现在的位置算距离（默认按家庭住址）'),
    message, list, more,
  );
  await load();
}

/** A visit; `notice` (a lost claim) stays on top of the page as it is shown again. */
export async function detail(id, notice) {
  let v;
  try {
    v = await api.visit(id);
  } catch (e) {
    if (!notice) throw e;
    // Taken by others, the visit may no longer be shown to me at all.
    show(h('h1', {}, '走访'), alertBox(notice), h('a', { class: 'button big center', href: '#/v/feed' }, '看看别的走访'));
    return;
  }
  const f = v.family;
  const message = h('div', {}, notice && alertBox(notice));
  const claim = h('button', {
    id: 'claim', class: 'primary big',
    onclick: () => busy(claim, async () => {
      try {
        await api.claim(id);
        toast('认领成功，谢谢您！');
        await detail(id);
      } catch (e) {
        // Show the visit as it is now (full, or gone), with why the claim failed.
        await detail(id, claimRefusal(e));
      }
    }),
  }, '认领这次走访');
  const unclaim = h('button', {
    class: 'big',
    onclick: () => busy(unclaim, async () => {
      if (!confirm('确定放弃这次走访吗？')) return;
      try { await api.unclaim(id); toast('已放弃'); await detail(id); } catch (e) { message.replaceChildren(alertBox(e.message)); }
    }),
  }, '放弃认领');
  const canUnclaim = v.my_claim && new Date(v.my_claim.unclaim_until) > new Date() && v.status !== 'in_progress';

  show(
    h('h1', {}, kindLabel(v.kind), ' · ', statusLabel(v.status)),
    h('section', { class: 'card' },
      h('h3', {}, f.category_label, ' · ', f.village),
      // Name, address and phone come only for a visit I hold, around its window.
      f.name && h('div', { id: 'family-name' }, '户主：', f.name),
      f.address && h('div', {}, '地址：', f.address),
      f.phone && h('div', {}, '电话：', h('a', { href: 'tel:' + f.phone }, f.phone)),
      f.distance_km !== null && f.distance_km !== undefined && h('div', { class: 'muted' }, distanceLabel(f.distance_km)),
      f.visitor_notes && h('p', {}, '上门须知：', f.visitor_notes)),
    h('section', { class: 'card' },
      h('div', {}, '时间：', windowLabel(v.window_start, v.window_end), v.preferred_time ? '，' + v.preferred_time : ''),
      h('div', {}, '需要 ', v.volunteers_needed, ' 位志愿者，已认领 ', v.claims_count, ' 位'),
      v.required_skills.length > 0 && h('div', {}, '需要技能：', v.required_skills.map((s) => SKILLS[s] || s).join('、')),
      v.gentle && h('p', { class: 'tag warn' }, '这户家庭正经历伤痛，请温和体贴'),
      v.reasons && v.reasons.length > 0 && h('div', {}, '缘由：', v.reasons.join('；')),
      v.counsel_notes && h('p', {}, v.counsel_notes),
      v.holders && v.holders.length > 0 && h('div', {}, '同行：', v.holders.map((x) => x.name).join('、'))),
    message,
    !v.holding && v.status === 'open' && claim,
    v.holding && ['claimed', 'in_progress'].includes(v.status) &&
      h('a', { class: 'button primary big center', href: '#/v/do/' + id, id: 'go-do' }, '开始走访：签到'),
    v.holding && v.status === 'reported' && h('div', { class: 'done' }, '已上报，等待家属确认。'),
    v.holding && v.status === 'confirmed' && h('div', { class: 'done' }, '家属已确认，志愿时长已计入。'),
    canUnclaim && unclaim,
  );
}

export async function doVisit(id) {
  const v = await api.visit(id);
  const message = h('div');
  const result = h('div', { id: 'do-result' });
  const say = (e) => message.replaceChildren(alertBox(e.message));

  const byPosition = h('button', {
    id: 'checkin-position', class: 'primary big',
    onclick: () => busy(byPosition, async () => {
      message.replaceChildren();
      try {
        const r = await api.checkin(id, await position());
        result.replaceChildren(h('div', { class: 'done' }, '已签到 ', timeLabel(r.checkin_at),
          r.distance_m !== null && r.distance_m !== undefined ? '（距家 ' + Math.round(r.distance_m) + ' 米）' : ''));
      } catch (e) { say(e); }
    }),
  }, v.channel === 'phone_call' ? '开始电话问候' : '定位签到');
  const code = h('input', { id: 'checkin-code', inputmode: 'numeric', maxlength: 6, placeholder: '家属手机上的 6 位数字' });
  const byCode = h('button', {
    class: 'big',
    onclick: () => busy(byCode, async () => {
      message.replaceChildren();
      try {
        const r = await api.checkin(id, { code: code.value.trim() });
        result.replaceChildren(h('div', { class: 'done' }, '已签到 ', timeLabel(r.checkin_at)));
      } catch (e) { say(e); }
    }),
  }, '用签到码签到');
  const checkout = h('button', {
    id: 'checkout', class: 'big',
    onclick: () => busy(checkout, async () => {
      message.replaceChildren();
      try {
        const r = await api.checkout(id);
        result.replaceChildren(h('div', { class: 'done' }, '已签退 ', timeLabel(r.checkout_at), '，本次 ', r.duration_minutes, ' 分钟'));
      } catch (e) { say(e); }
    }),
  }, '签退');

  show(
    h('h1', {}, '走访：', kindLabel(v.kind)),
    h('p', {}, v.family.name ? v.family.name + ' · ' + (v.family.address || v.family.village) : v.family.village),
    h('h2', {}, '1. 到门口签到'),
    v.channel === 'phone_call' ? byPosition : [
      byPosition,
      h('label', { for: 'checkin-code' }, '没有定位？请家属在“暖心”里出示签到码'),
      code, byCode,
    ],
    h('h2', {}, '2. 离开时签退'), checkout,
    message, result,
    h('h2', {}, '3. 填写走访记录'),
    h('a', { class: 'button primary big center', href: '#/v/report/' + id, id: 'go-report' }, '填写走访记录'),
  );
}

export async function report(id) {
  const v = await api.visit(id);
  const message = h('div');
  const check = (name, [value, label]) => h('label', {}, h('input', { type: 'checkbox', name, value }), label);
  const radio = (name, [value, label]) => h('label', {}, h('input', { type: 'radio', name, value }), label);
  const fieldBox = (field, labelText, control) =>
    h('div', { 'data-field': field }, h('label', {}, labelText), control, h('div', { class: 'field-error' }));

  const form = h('form', { id: 'report-form', novalidate: true },
    fieldBox('services', '服务内容（至少一项）', h('div', { class: 'choices' }, SERVICES.map((s) => check('services', s)))),
    fieldBox('other_service', '其他服务是什么', h('input', { name: 'other_service', maxlength: 50 })),
    fieldBox('cash_yuan', '慰问金（元）', h('input', { name: 'cash_yuan', type: 'number', inputmode: 'decimal', min: 0, step: '0.01' })),
    fieldBox('goods', '送去的物品', h('input', { name: 'goods', placeholder: '例如：大米一袋、食用油一桶' })),
    h('div', { class: 'filters' },
      fieldBox('bp_systolic', '血压 高压', h('input', { name: 'bp_systolic', type: 'number', inputmode: 'numeric' })),
      fieldBox('bp_diastolic', '低压', h('input', { name: 'bp_diastolic', type: 'number', inputmode: 'numeric' }))),
    fieldBox('mood', '家属情绪', h('div', { class: 'choices' }, MOODS.map((m) => radio('mood', m)))),
    fieldBox('risk_signs', '发现的风险迹象', h('div', { class: 'choices' }, RISK_SIGNS.map((r) => check('risk_signs', r)))),
    fieldBox('needs', '发现的需求（每行一条，会进入心愿墙）', h('textarea', { name: 'needs', rows: 3 })),
    fieldBox('notes', '备注', h('textarea', { name: 'notes', rows: 3 })),
    message,
    h('button', { class: 'primary big', type: 'submit', id: 'submit-report' }, '提交走访记录'));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const button = form.querySelector('[type=submit]');
    await busy(button, async () => {
      clearErrors(form, message);
      const data = new FormData(form);
      const num = (k) => (data.get(k) === '' ? undefined : Number(data.get(k)));
      const text = (k) => (data.get(k) || '').trim() || undefined;
      const body = {
        services: data.getAll('services'),
        other_service: text('other_service'),
        cash_yuan: num('cash_yuan'),
        goods: text('goods'),
        bp_systolic: num('bp_systolic'),
        bp_diastolic: num('bp_diastolic'),
        mood: data.get('mood') || undefined,
        risk_signs: data.getAll('risk_signs'),
        needs: (data.get('needs') || '').split('\n').map((s) => s.trim()).filter(Boolean),
        notes: text('notes'),
      };
      try {
        await api.report(id, body);
        show(h('h1', {}, '已提交'), h('div', { class: 'done', id: 'report-done' }, '走访记录已提交，谢谢您！家属确认后计入志愿时长。'),
          h('a', { class: 'button big center', href: '#/v/mine' }, '回到我的走访'));
      } catch (e) { refused(form, message, e, REPORT_FIELDS); }
    });
  });

  show(h('h1', {}, '走访记录'), h('p', { class: 'muted' }, kindLabel(v.kind), ' · ', v.family.name || v.family.village), form);
}

export async function mine() {
  const list = h('div', { id: 'mine-list' });
  const tab = (when, label) => h('button', { 'aria-pressed': 'false', 'data-when': when, onclick: () => load(when) }, label);
  const bar = h('div', { class: 'row' }, tab('upcoming', '待走访'), tab('past', '已走访'));
  async function load(when) {
    for (const b of bar.children) b.setAttribute('aria-pressed', String(b.dataset.when === when));
    const page = await api.myVisits(when);
    list.replaceChildren(...page.items.map((v) =>
      h('a', { class: 'card', href: '#/v/visit/' + v.id, 'data-visit': v.id },
        h('h3', {}, kindLabel(v.kind), ' · ', v.category_label),
        h('div', {}, v.village, ' · ', windowLabel(v.window_start, v.window_end)),
        h('span', { class: 'tag' }, statusLabel(v.status)))));
    if (!page.items.length) list.append(h('p', { class: 'muted center' }, when === 'upcoming' ? '还没有认领的走访，去“找走访”看看吧。' : '还没有走访记录。'));
  }
  show(h('h1', {}, '我的走访'), bar, list);
  await load('upcoming');
}

/**
 * One event: when, where, places left, and signing up or withdrawing. `reload(notice)`
 * shows the list as it is now, with `notice` (why a tap failed) on this event's card.
 */
function eventCard(e, notice, reload) {
  const left = placesLeft(e);
  const act = (button, work, done) => busy(button, async () => {
    try {
      await work();
      toast(done);
      await reload();
    } catch (err) {
      // Whether someone was quicker or the event closed, show it as it is now.
      await reload(eventRefusal(err));
    }
  });
  const signUp = h('button', { class: 'primary big', onclick: () => act(signUp, () => api.signUp(e.id), '报名成功，谢谢您！') }, '报名参加');
  const withdraw = h('button', {
    class: 'big',
    onclick: () => { if (confirm('确定取消报名吗？')) act(withdraw, () => api.withdraw(e.id), '已取消报名'); },
  }, '取消报名');
  return h('section', { class: 'card', 'data-event': e.id },
    h('h3', {}, e.title),
    h('div', { class: 'row' }, h('span', { class: 'tag' }, eventKindLabel(e.kind)), h('span', { class: 'muted' }, e.region)),
    h('div', {}, '时间：', eventWhen(e.starts_at, e.ends_at)),
    h('div', {}, '地点：', e.location),
    e.description && h('p', { class: 'muted' }, e.description),
    h('div', { class: 'places' }, e.signed_up ? '您已报名。' : left > 0 ? '志愿者名额还剩 ' + left + ' 个' : '志愿者名额已满',
      h('span', { class: 'muted' }, '（共 ' + e.volunteer_slots + ' 个）')),
    notice && alertBox(notice),
    e.signed_up ? withdraw : left > 0 ? signUp : h('button', { class: 'big', disabled: true }, '名额已满'));
}

/** Events in my area that want volunteers: 集体庆生, festival gatherings, training. */
export async function events() {
  const list = h('div', { id: 'event-list' });
  const more = h('div');
  let shown = 1;
  async function load(upTo, notice) {
    // Reloads every page shown so far, so that a sign-up keeps the list where it was.
    const items = [];
    let last;
    for (let page = 1; page <= upTo; page++) {
      last = await api.volunteerEvents(page);
      items.push(...last.items);
    }
    shown = upTo;
    list.replaceChildren(...items.map((e) => eventCard(e, notice && notice.id === e.id && notice.text,
      (text) => load(shown, text && { id: e.id, text }))));
    // An event no longer listed (begun, cancelled) takes its notice to the top.
    if (notice && !items.some((e) => e.id === notice.id)) list.prepend(alertBox(notice.text));
    if (!items.length) list.append(h('p', { class: 'muted center' }, '附近暂时没有需要志愿者的活动。'));
    more.replaceChildren(last.page * last.per_page < last.total
      ? h('button', { class: 'big', onclick: () => load(shown + 1) }, '加载更多') : '');
  }
  show(h('h1', {}, '活动报名'),
    h('p', { class: 'muted' }, '集体庆生、节日联欢、培训：您所在地区需要志愿者的活动，近的在前。'),
    list, more);
  await load(1);
}

export async function hours() {
  const s = await api.hours();
  show(
    h('h1', {}, '志愿时长'),
    h('section', { class: 'card center' },
      h('div', { class: 'bigcode', id: 'total-hours' }, s.total_hours),
      h('div', {}, '小时 · 共 ', s.visits, ' 次走访')),
    h('p', { class: 'muted' }, '家属确认走访后计入。'),
    s.by_month.length > 0 && h('h2', {}, '按月'),
    s.by_month.map((m) => h('div', { class: 'card row' }, h('strong', {}, m.month), h('span', {}, m.hours + ' 小时 · ' + m.visits + ' 次'))),
    s.by_kind.length > 0 && h('h2', {}, '按类型'),
    s.by_kind.map((k) => h('div', { class: 'card row' }, h('strong', {}, k.label), h('span', {}, k.hours + ' 小时 · ' + k.visits + ' 次'))),
    h('p', {}, h('a', { class: 'button big center', id: 'my-time', href: '#/v/time' }, '我的时间与请假')),
    h('p', {}, h('button', { onclick: async () => { await api.logout(); location.hash = '#/login'; } }, '退出登录')),
  );
}

// A refused form: the API names the field ("needs[2]" → needs); the message goes beside
// it in the form's own words (`labels`), and is read out above the button.
function refused(form, message, e, labels) {
  const { field, text } = fieldMessage(e, labels);
  const box = field && form.querySelector('[data-field="' + field + '"] .field-error');
  if (box) box.textContent = text;
  message.replaceChildren(alertBox(text));
}

function clearErrors(form, message) {
  for (const box of form.querySelectorAll('.field-error')) box.textContent = '';
  message.replaceChildren();
}

export async function availability() {
  const now = await api.availability();
  const chosen = new Set(now.weekdays);
  const day = (n) => {
    const b = h('button', { type: 'button', class: 'day', 'data-day': n, 'aria-pressed': String(chosen.has(n)) }, WEEKDAY_NAMES[n - 1]);
    b.onclick = () => {
      if (chosen.has(n)) chosen.delete(n); else chosen.add(n);
      b.setAttribute('aria-pressed', String(chosen.has(n)));
    };
    return b;
  };
  const timeMessage = h('div', {});
  const time = h('form', { id: 'time-form' },
    h('div', { class: 'field', 'data-field': 'weekdays' },
      h('label', {}, '哪几天可以走访'),
      h('div', { class: 'row' }, [1, 2, 3, 4, 5, 6, 7].map(day)),
      h('div', { class: 'field-error' })),
    h('div', { class: 'field', 'data-field': 'weekly_capacity' },
      h('label', { for: 'capacity' }, '每周最多走访几次'),
      h('input', { id: 'capacity', name: 'weekly_capacity', type: 'number', inputmode: 'numeric', min: 0, max: 50, value: now.weekly_capacity }),
      h('div', { class: 'field-error' })),
    timeMessage,
    h('button', { type: 'submit', class: 'big' }, '保存'));
  time.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    await busy(time.querySelector('[type=submit]'), async () => {
      clearErrors(time, timeMessage);
      const cap = time.elements.weekly_capacity.value;
      try {
        await api.setAvailability({ weekdays: [...chosen].sort(), weekly_capacity: cap === '' ? undefined : Number(cap) });
        toast('已保存：以后只在这些日子给您安排走访');
      } catch (e) { refused(time, timeMessage, e, AVAILABILITY_FIELDS); }
    });
  });

  const leaveMessage = h('div', {});
  const leave = h('form', { id: 'leave-form' },
    h('div', { class: 'field', 'data-field': 'start_date' },
      h('label', { for: 'leave-from' }, '从哪天'),
      h('input', { id: 'leave-from', name: 'start_date', type: 'date', min: isoDate(0), required: true }),
      h('div', { class: 'field-error' })),
    h('div', { class: 'field', 'data-field': 'end_date' },
      h('label', { for: 'leave-to' }, '到哪天（含）'),
      h('input', { id: 'leave-to', name: 'end_date', type: 'date', min: isoDate(0), required: true }),
      h('div', { class: 'field-error' })),
    h('div', { class: 'field', 'data-field': 'reason' },
      h('label', { for: 'leave-reason' }, '事由（可不填）'),
      h('input', { id: 'leave-reason', name: 'reason', maxlength: 200 }),
      h('div', { class: 'field-error' })),
    leaveMessage,
    h('button', { type: 'submit', class: 'big' }, '请假'));
  leave.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    await busy(leave.querySelector('[type=submit]'), async () => {
      clearErrors(leave, leaveMessage);
      const f = leave.elements;
      try {
        const r = await api.declareLeave({ start_date: f.start_date.value, end_date: f.end_date.value, reason: f.reason.value.trim() || undefined });
        const given = r.released_visits.length;
        leaveMessage.replaceChildren(h('div', { class: 'done', id: 'leave-done' },
          '已请假。' + (given ? '这几天的 ' + given + ' 次走访已交回，会请别的志愿者去。' : '这几天不会给您安排走访。')));
        leave.reset();
      } catch (e) { refused(leave, leaveMessage, e, AVAILABILITY_FIELDS); }
    });
  });

  show(h('h1', {}, '我的时间'),
    h('p', { class: 'muted' }, '协调员给您安排走访时，只排在这些日子，每周不超过这个次数。已认领的走访不变。'),
    time,
    h('h2', {}, '请假'),
    h('p', { class: 'muted' }, '请假的日子不会给您安排走访；已认领的会交回，请别的志愿者去。'),
    leave);
}
