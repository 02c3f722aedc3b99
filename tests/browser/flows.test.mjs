// The H5 pages in a real browser, as people use them: a volunteer finds a visit in the
// feed, claims it, checks in at the family's door, checks out and reports; the family
// logs in with WeChat and an invite code, sees who is coming, confirms and rates the
// visit; both find their messages; a claim that loses a race says so; a volunteer signs up
// for an event and a family replies to its invitation; someone new registers as a volunteer. Screenshots of every page at phone size go
// to artifacts/ (git-ignored).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { start, api, devToken, sql, stored, blob, browserPath, BROWSER_ARGS } from './harness.mjs';

const SHOTS = new URL('./artifacts/', import.meta.url).pathname;
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'zh-CN' };
const VOLUNTEER = '13900000000';
const COORDINATOR = '13800000011'; // 东城县, where the volunteer lives
const CITY = '13800000001';

let sys, browser, fx;

async function shot(page, name) {
  await page.screenshot({ path: SHOTS + name + '.png', fullPage: true });
}

/**
 * A family in 杨柳村 registered through the API (which plans its visits), and two of its
 * visits made volunteer visits for one person without special skills: `now` has its
 * window open since an hour (no planned visit opens today, and no API moves one yet),
 * `race` opens tomorrow.
 */
async function fixture(base, db) {
  const coordinator = await devToken(base, COORDINATOR);
  const village = (await api(base, 'GET', '/api/regions?q=' + encodeURIComponent('杨柳村'), coordinator)).items[0];
  const home = { lat: village.lat + 0.002, lng: village.lng + 0.002 };
  const family = await api(base, 'POST', '/api/families', coordinator, {
    region_id: village.id, register_no: 'H5-TEST-1', category: 'empty_nest',
    head_name: '孙长海', address: '杨柳村5组8号', phone: '13712345678', ...home,
    members: [
      { name: '孙长海', relation: 'father', birth_year: 1950, birth_month: 3, birth_day: 2 },
      { name: '周桂兰', relation: 'mother', birth_year: 1952, birth_month: 5, birth_day: 8 },
    ],
  });
  const ids = sql(db, `SELECT lower(hex(id)) FROM visit_task WHERE family_id = ${blob(family.id)} ORDER BY window_start LIMIT 2`)
    .split('\n').map((hex) => hex.replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5'));
  assert.equal(ids.length, 2, 'the new family has visits planned');
  const hour = 3600e3;
  const open = (id, from, to) => sql(db, `UPDATE visit_task SET assign_to_cadre = 0, assigned_cadre_id = NULL,
    channel = 'home_visit', kind = 'checkin', kinds = '["checkin"]', volunteers_needed = 1, required_skills = '[]',
    gentle = 0, status = 'open', window_start = '${stored(from)}', window_end = '${stored(to)}' WHERE id = ${blob(id)}`);
  open(ids[0], new Date(Date.now() - hour), new Date(Date.now() + 23 * hour));
  open(ids[1], new Date(Date.now() + 30 * hour), new Date(Date.now() + 54 * hour));
  const mother = family.members.find((m) => m.relation === 'mother');
  const invite = await api(base, 'POST', `/api/families/${family.id}/invites`, coordinator, { member_id: mother.id });
  const father = family.members.find((m) => m.relation === 'father');
  return { home, now: ids[0], race: ids[1], invite: invite.code, family: family.id, father: father.id };
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  sys = await start();
  fx = await fixture(sys.base, sys.db);
  browser = await chromium.launch({ executablePath: browserPath(), args: BROWSER_ARGS });
});

after(async () => {
  await browser?.close();
  sys?.stop();
});

async function volunteerPage() {
  const context = await browser.newContext({
    ...PHONE,
    permissions: ['geolocation'],
    geolocation: { latitude: fx.home.lat, longitude: fx.home.lng }, // at the family's door
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => assert.fail('script error on the page: ' + e.message));
  return page;
}

/** Reloads until `locator` shows: the dispatcher puts messages in the inbox every 2 s. */
async function untilShown(page, locator) {
  for (let i = 0; i < 8; i++) {
    try {
      return await locator.waitFor({ timeout: 1500 });
    } catch {
      await page.reload();
    }
  }
  assert.fail('not shown after 12 s: ' + locator + '\n' + (await page.locator('#app').innerText()));
}

async function loginAsDemo(page, phone, name) {
  await page.goto(sys.base + '/app/');
  await page.getByRole('button', { name: '以演示身份登录' }).waitFor();
  await shot(page, name);
  await page.selectOption('#demo-user', phone);
  await page.getByRole('button', { name: '以演示身份登录' }).click();
  await page.getByRole('heading', { name: '找走访' }).waitFor();
}

test('a claim that loses the race says so plainly', async () => {
  const page = await volunteerPage();
  await loginAsDemo(page, VOLUNTEER, '01-login');
  await page.goto(sys.base + '/app/#/v/visit/' + fx.race);
  await page.locator('#claim').waitFor();

  // Meanwhile another volunteer takes the only place.
  let taken = false;
  for (let n = 1; n <= 20 && !taken; n++) {
    const other = await devToken(sys.base, '139' + String(n).padStart(8, '0')).catch(() => null);
    if (other) taken = await api(sys.base, 'POST', `/api/visits/${fx.race}/claims`, other).then(() => true, () => false);
  }
  assert.ok(taken, 'another demo volunteer could take the visit');

  await page.locator('#claim').click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.innerText(), /来晚了一步/);
  await shot(page, '02-claim-lost');
  await page.context().close();
});

/** The city's coordinator, at a desk. */
async function coordinatorPage() {
  const page = await (await browser.newContext({ viewport: { width: 1024, height: 900 }, locale: 'zh-CN' })).newPage();
  page.on('pageerror', (e) => assert.fail('script error on the coordinator page: ' + e.message));
  await page.goto(sys.base + '/app/');
  await page.selectOption('#demo-user', CITY);
  await page.getByRole('button', { name: '以演示身份登录' }).click();
  await page.getByRole('heading', { name: '志愿者工作量' }).waitFor();
  return page;
}

/** The volunteer's visits this week on the workload board ("3 / 4"), paging to them. */
async function loadOnBoard(page, volunteerId) {
  await page.goto(sys.base + '/app/#/c/workload');
  await page.locator('#workload .load').first().waitFor();
  const row = page.locator(`[data-volunteer="${volunteerId}"]`);
  for (let i = 0; i < 10 && !(await row.count()); i++) {
    await page.getByRole('button', { name: '下一页' }).click();
    await page.waitForTimeout(300);
  }
  return Number((await row.locator('.load-figure').innerText()).split('/')[0].trim());
}

/** Families of the city visited this month, from the coverage page's total line. */
async function visitedThisMonth(page) {
  await page.goto(sys.base + '/app/#/c/coverage');
  const total = page.locator('#coverage tr', { hasText: '合计' });
  await total.waitFor();
  return Number((await total.locator('td').nth(3).innerText()).split('（')[0]);
}

test('a volunteer finds a visit, claims it, checks in, checks out and reports; the family confirms and rates it', async () => {
  const desk = await coordinatorPage();
  const volunteer = (await api(sys.base, 'GET', '/api/volunteers?q=' + encodeURIComponent(
    (await api(sys.base, 'GET', '/api/auth/me', await devToken(sys.base, VOLUNTEER))).name), await devToken(sys.base, CITY))).items[0];
  const loadBefore = await loadOnBoard(desk, volunteer.id);
  const visitedBefore = await visitedThisMonth(desk);

  const page = await volunteerPage();
  await loginAsDemo(page, VOLUNTEER, '01-login');

  // The feed, narrowed to today: the visit open now.
  await page.locator('#feed-list .card').first().waitFor();
  await page.fill('#f-from', new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10));
  await page.locator('#f-from').dispatchEvent('change');
  const card = page.locator(`#feed-list [data-visit="${fx.now}"]`);
  await card.waitFor();
  await shot(page, '03-feed');
  await card.click();

  // Before the claim the family is masked: village and category only.
  await page.locator('#claim').waitFor();
  assert.equal(await page.locator('#family-name').count(), 0);
  await shot(page, '04-visit');
  await page.locator('#claim').click();
  await page.locator('#family-name').waitFor();
  assert.match(await page.locator('#family-name').innerText(), /孙长海/);
  await shot(page, '05-claimed');

  // The family logs in the mini-program's way: WeChat code, then the invite code.
  const family = await (await browser.newContext(PHONE)).newPage();
  family.on('pageerror', (e) => assert.fail('script error on the family page: ' + e.message));
  await family.goto(sys.base + '/app/');
  await family.getByRole('button', { name: '微信登录' }).click();
  await family.fill('#invite-code', fx.invite);
  await shot(family, '06-family-bind');
  await family.getByRole('button', { name: '绑定' }).click();
  const visit = family.locator(`[data-visit="${fx.now}"]`);
  await visit.waitFor();
  const me = await api(sys.base, 'GET', '/api/auth/me', await devToken(sys.base, VOLUNTEER));
  assert.match(await visit.locator('.visitors').innerText(), new RegExp(me.name[0] + '\\*'));
  assert.doesNotMatch(await visit.innerText(), new RegExp(me.name));
  await shot(family, '07-family-who-is-coming');
  // A fall: one tap tells the association's people; the page says who was told.
  await family.getByRole('button', { name: '我需要帮助' }).click();
  await family.locator('#help-info [data-kind=fall]').click();
  await family.locator('#help-send').click();
  await family.locator('#help-done').waitFor();
  const alerts = await api(sys.base, 'GET', '/api/help', await devToken(sys.base, COORDINATOR));
  assert.equal(alerts.total, 1, 'the county coordinator sees the help request');
  await family.getByRole('button', { name: '大字' }).click();
  await shot(family, '08-family-help-large-text');

  // A wish, answered by the association.
  await family.fill('#wish-text', '想请人帮忙修水管');
  await family.locator('#wish-send').click();
  const wish = family.locator('#my-wishes .card', { hasText: '修水管' });
  await wish.waitFor();
  const coordinator = await devToken(sys.base, COORDINATOR);
  const [posted] = (await api(sys.base, 'GET', '/api/wishes', coordinator)).items;
  await api(sys.base, 'POST', `/api/wishes/${posted.id}/answers`, coordinator, { content: '已联系村里的水电师傅，明天上门', public: false });
  await family.reload();
  await family.locator('#my-wishes .answer', { hasText: '水电师傅' }).waitFor();
  await shot(family, '08b-family-wish-answered');
  // A wish shown on the wall, without names, with the association's public answer.
  await family.fill('#wish-text', '希望村里组织一次老人体检');
  await family.locator('#wish-public').check();
  await family.locator('#wish-send').click();
  await family.locator('#my-wishes .card', { hasText: '老人体检' }).waitFor();
  const shownWish = (await api(sys.base, 'GET', '/api/wishes', coordinator)).items.find((w) => w.content.includes('体检'));
  await api(sys.base, 'POST', `/api/wishes/${shownWish.id}/answers`, coordinator, { content: '下月初卫生院上门体检', public: true });
  await family.locator('#to-wall').click();
  const onWall = family.locator('#wall .card', { hasText: '老人体检' });
  await onWall.waitFor();
  assert.match(await onWall.innerText(), /卫生院上门体检/);
  assert.doesNotMatch(await family.locator('#wall').innerText(), /修水管/, 'a private wish stays off the wall');
  await shot(family, '08c-family-wish-wall');
  await family.getByRole('link', { name: '返回首页' }).click();

  // At the door: check in by position, check out.
  await page.locator('#go-do').click();
  await page.locator('#checkin-position').click();
  await page.getByText('已签到').waitFor();
  await page.locator('#checkout').click();
  await page.getByText('已签退').waitFor();
  await shot(page, '09-checked-in-and-out');

  // The report: a blood pressure out of range is refused with the API's words, by field.
  await page.locator('#go-report').click();
  await page.locator('input[name=services][value=condolence]').check();
  await page.locator('input[name=services][value=health_check]').check();
  await page.fill('input[name=cash_yuan]', '500');
  await page.fill('input[name=goods]', '大米一袋、食用油一桶');
  await page.fill('input[name=bp_systolic]', '300');
  await page.fill('input[name=bp_diastolic]', '85');
  await page.locator('input[name=mood][value=stable]').check();
  await page.fill('textarea[name=needs]', '想请人帮忙修水管');
  await page.locator('#submit-report').click();
  const fieldError = page.locator('[data-field=bp_systolic] .field-error');
  await fieldError.filter({ hasText: /./ }).waitFor();
  assert.match(await page.getByRole('alert').innerText(), /收缩压/);
  assert.doesNotMatch(await fieldError.innerText(), /bp_systolic/, 'the field is named as the form names it');
  await shot(page, '10-report-invalid');
  await page.fill('input[name=bp_systolic]', '135');
  await page.locator('#submit-report').click();
  await page.locator('#report-done').waitFor();
  await shot(page, '11-report-done');

  // The family is asked to confirm, in its messages; opening the message marks it read.
  const ask = family.locator('#family-inbox', { hasText: '条新消息' });
  await untilShown(family, ask);
  await ask.click();
  // Other news came first (help, answers): the dispatcher brings this one within seconds.
  const message = family.locator('#inbox-list .card.unread', { hasText: '请确认这次走访' }).first();
  await untilShown(family, message);
  await shot(family, '12-family-inbox');
  await family.getByRole('button', { name: '全部标为已读' }).click();
  await family.getByText('没有未读消息').waitFor();
  await family.getByRole('link', { name: '返回首页' }).click();

  // The family confirms that the visit happened, with five stars.
  await family.locator(`#confirm-${fx.now}`).waitFor();
  await family.locator(`[data-visit="${fx.now}"] [data-star="5"]`).click();
  await shot(family, '13-family-confirm');
  await family.locator(`#confirm-${fx.now}`).click();
  await family.getByText('已确认这次走访').waitFor();
  await shot(family, '14-family-confirmed');

  // The coordinator sees the volunteer's load grow by the visit, and the family counted
  // among those visited this month.
  assert.equal(await loadOnBoard(desk, volunteer.id), loadBefore + 1);
  await shot(desk, '20-coordinator-workload');
  assert.equal(await visitedThisMonth(desk), visitedBefore + 1);
  await shot(desk, '21-coordinator-coverage');
  await desk.goto(sys.base + '/app/#/c/reports');
  await desk.locator('#filing table').waitFor();
  const [file] = await Promise.all([desk.waitForEvent('download'), desk.locator('#download-xlsx').click()]);
  assert.match(file.suggestedFilename(), /\.xlsx$/);
  await shot(desk, '22-coordinator-reports');

  // The volunteer sees the visit done and the hours page.
  await page.goto(sys.base + '/app/#/v/mine');
  await page.locator('[data-when=past]').click();
  await page.locator(`#mine-list [data-visit="${fx.now}"]`).waitFor();
  await shot(page, '15-my-visits');
  await page.goto(sys.base + '/app/#/v/hours');
  await page.locator('#total-hours').waitFor();
  await shot(page, '16-hours');
  const report = await api(sys.base, 'GET', `/api/visits/${fx.now}`, await devToken(sys.base, VOLUNTEER));
  assert.equal(report.status, 'confirmed');

  // The claim's confirmation is in the volunteer's messages (the dispatcher puts every
  // message there); opening it marks it read.
  await page.goto(sys.base + '/app/#/v/inbox');
  const confirmed = page.locator('#inbox-list .card.unread', { hasText: '认领成功' }).first();
  await untilShown(page, confirmed);
  await shot(page, '17-volunteer-inbox');
  const before = await page.locator('#unread').innerText();
  const id = await confirmed.getAttribute('data-message');
  await confirmed.click();
  await page.locator(`[data-message="${id}"]:not(.unread)`).waitFor();
  assert.notEqual(await page.locator('#unread').innerText(), before, 'the unread count went down');
});

test('a visit nobody took gets a proposed holder with the reason, and the coordinator applies it', async () => {
  // A third visit of the fixture's family: open for claiming four days already, two days
  // from now, and still nobody's.
  const [third] = sql(sys.db, `SELECT lower(hex(id)) FROM visit_task WHERE family_id =
    (SELECT family_id FROM visit_task WHERE id = ${blob(fx.now)}) ORDER BY window_start LIMIT 1 OFFSET 2`)
    .split('\n').map((hex) => hex.replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5'));
  const day = 24 * 3600e3;
  sql(sys.db, `UPDATE visit_task SET assign_to_cadre = 0, assigned_cadre_id = NULL, channel = 'home_visit',
    kind = 'checkin', kinds = '["checkin"]', volunteers_needed = 1, claims_count = 0, required_skills = '[]',
    gentle = 0, status = 'open', window_start = '${stored(new Date(Date.now() + 2 * day))}',
    window_end = '${stored(new Date(Date.now() + 3 * day))}', created_at = '${stored(new Date(Date.now() - 4 * day))}'
    WHERE id = ${blob(third)}`);

  const desk = await coordinatorPage();
  await desk.goto(sys.base + '/app/#/c/proposals');
  await desk.locator('#run-assignment').click();
  const card = desk.locator(`#proposals [data-visit="${third}"]`);
  await card.waitFor();
  assert.match(await card.innerText(), /公里/, 'the proposal says why');
  await shot(desk, '23-coordinator-proposals');
  await card.getByRole('button', { name: '采纳' }).click();
  await card.getByText('已采纳').waitFor();
  const applied = await api(sys.base, 'GET', '/api/assignments/proposals?status=applied', await devToken(sys.base, CITY));
  assert.ok(applied.items.some((p) => p.visit_id === third), 'the proposal is applied');
  await desk.context().close();
});

test('a volunteer signs up for an event, a full one says so, and the family replies to its invitation', async () => {
  const coordinator = await devToken(sys.base, COORDINATOR);
  const county = (await api(sys.base, 'GET', '/api/regions?q=' + encodeURIComponent('东城县'), coordinator)).items[0];
  const day = 24 * 3600e3;
  const at = (days, hours) => new Date(Date.now() + days * day + hours * 3600e3).toISOString();
  const event = (body) => api(sys.base, 'POST', '/api/events', coordinator, { region_id: county.id, ...body });
  const gathering = await event({
    kind: 'festival', title: '冬至包饺子联欢会', location: '东城县文化活动中心二楼', description: '一起包饺子，有车接送',
    starts_at: at(3, 0), ends_at: at(3, 3), capacity: 30, volunteer_slots: 3,
  });
  const training = await event({
    kind: 'training', title: '陪伴技巧培训', location: '东城县计生协会议室',
    starts_at: at(4, 0), ends_at: at(4, 2), capacity: 1, volunteer_slots: 1,
  });
  await api(sys.base, 'POST', `/api/events/${gathering.id}/invitations`, coordinator, { family_ids: [fx.family] });

  // The volunteer signs up for the gathering.
  const page = await volunteerPage();
  await loginAsDemo(page, VOLUNTEER, '01-login');
  await page.getByRole('link', { name: '活动' }).click();
  const card = page.locator(`#event-list [data-event="${gathering.id}"]`);
  await card.waitFor();
  assert.match(await card.innerText(), /还剩 3 个/);
  assert.match(await card.innerText(), /东城县文化活动中心二楼/);
  await card.getByRole('button', { name: '报名参加' }).click();
  await card.getByText('您已报名').waitFor();
  const listed = await api(sys.base, 'GET', '/api/volunteer/events', await devToken(sys.base, VOLUNTEER));
  assert.equal(listed.items.find((e) => e.id === gathering.id).volunteers, 1);
  // Withdrawing (after a "sure?") frees the place; signing up again takes it back.
  page.once('dialog', (d) => d.accept());
  await card.getByRole('button', { name: '取消报名' }).click();
  await card.getByText('还剩 3 个').waitFor();
  await card.getByRole('button', { name: '报名参加' }).click();
  await card.getByText('您已报名').waitFor();

  // The training's one place goes to someone else while the page is open.
  const full = page.locator(`#event-list [data-event="${training.id}"]`);
  assert.match(await full.innerText(), /还剩 1 个/);
  let taken = false;
  for (let n = 1; n <= 20 && !taken; n++) {
    const other = await devToken(sys.base, '139' + String(n).padStart(8, '0')).catch(() => null);
    if (other) taken = await api(sys.base, 'POST', `/api/events/${training.id}/signup`, other).then(() => true, () => false);
  }
  assert.ok(taken, 'another demo volunteer could take the place');
  await full.getByRole('button', { name: '报名参加' }).click();
  await full.getByRole('alert').waitFor();
  assert.match(await full.getByRole('alert').innerText(), /名额已满/);
  assert.ok(await full.getByRole('button', { name: '名额已满' }).isDisabled(), 'a full event offers no sign-up');
  await shot(page, '24-volunteer-events');
  await page.context().close();

  // The family (the father, on his own phone) accepts the invitation with one tap.
  const { code } = await api(sys.base, 'POST', `/api/families/${fx.family}/invites`, coordinator, { member_id: fx.father });
  const family = await (await browser.newContext(PHONE)).newPage();
  family.on('pageerror', (e) => assert.fail('script error on the family page: ' + e.message));
  await family.goto(sys.base + '/app/');
  await family.getByRole('button', { name: '微信登录' }).click();
  await family.fill('#invite-code', code);
  await family.getByRole('button', { name: '绑定' }).click();
  const invitation = family.locator(`#family-events [data-event="${gathering.id}"]`);
  await invitation.waitFor();
  assert.match(await invitation.innerText(), /有车接送/);
  await invitation.getByRole('button', { name: '我去参加' }).click();
  await invitation.getByText('您已答应参加').waitFor();
  const replies = await api(sys.base, 'GET', `/api/events/${gathering.id}/invitations`, coordinator);
  assert.equal(replies.items[0].status, 'accepted');
  await shot(family, '25-family-invitation');

  // An empty wish is refused beside its box, in the form's words, not the API's field name.
  await family.locator('#wish-send').click();
  const refused = family.locator('[data-field=content] .field-error');
  await refused.filter({ hasText: /./ }).waitFor();
  assert.match(await refused.innerText(), /心愿内容/);
  assert.doesNotMatch(await refused.innerText(), /content/);
  await shot(family, '26-family-wish-empty');
  await family.context().close();
});

/**
 * What an older eye or finger would struggle with on the page: text whose contrast with
 * what is behind it is under 4.5:1 (WCAG AA), and buttons lower than 44 px.
 */
async function hardToRead(page) {
  return page.evaluate(() => {
    const rgb = (c) => {
      const [r, g, b, a = 1] = c.match(/[\d.]+/g).map(Number);
      return { r, g, b, a };
    };
    const lum = ({ r, g, b }) => {
      const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const behind = (el) => {
      for (; el; el = el.parentElement) {
        const c = rgb(getComputedStyle(el).backgroundColor);
        if (c.a > 0) return c;
      }
      return { r: 255, g: 255, b: 255 };
    };
    const out = [];
    for (const el of document.querySelectorAll('#app *')) {
      if (el.closest('[disabled]') || !el.getClientRects().length) continue;
      const what = `${el.tagName} "${el.textContent.trim().slice(0, 12)}"`;
      if ([...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) {
        const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(behind(el))];
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        if (ratio < 4.5) out.push(`${what} ${ratio.toFixed(1)}:1`);
      }
      const high = el.getBoundingClientRect().height;
      if (el.matches('button, a.button') && high < 44) out.push(`${what} ${Math.round(high)} px high`);
    }
    return out;
  });
}

test('the family page reads well: large text, high contrast, buttons a finger can hit', async () => {
  const coordinator = await devToken(sys.base, COORDINATOR);
  const village = (await api(sys.base, 'GET', '/api/regions?q=' + encodeURIComponent('杨柳村'), coordinator)).items[0];
  const created = await api(sys.base, 'POST', '/api/families', coordinator, {
    region_id: village.id, register_no: 'H5-TEST-2', category: 'empty_nest', head_name: '钱玉芬',
    address: '杨柳村2组3号', phone: '13712345679', lat: village.lat + 0.001, lng: village.lng + 0.001,
    members: [{ name: '钱玉芬', relation: 'mother', birth_year: 1948, birth_month: 6, birth_day: 9 }],
  });
  const { code } = await api(sys.base, 'POST', `/api/families/${created.id}/invites`, coordinator,
    { member_id: created.members[0].id });
  const page = await (await browser.newContext(PHONE)).newPage();
  page.on('pageerror', (e) => assert.fail('script error on the family page: ' + e.message));
  await page.goto(sys.base + '/app/');
  await page.getByRole('button', { name: '微信登录' }).click();
  await page.fill('#invite-code', code);
  await page.getByRole('button', { name: '绑定' }).click();
  await page.locator('#family-visits .card').first().waitFor();
  await page.getByRole('button', { name: '我需要帮助' }).click();
  assert.deepEqual(await hardToRead(page), [], 'as it opens');

  // 大字 makes the words larger at once, and keeps the help panel open.
  const size = () => page.locator('#family-visits h3').first().evaluate((el) => parseFloat(getComputedStyle(el).fontSize));
  const before = await size();
  await page.getByRole('button', { name: '大字' }).click();
  assert.ok(await size() >= before * 1.25, `large text: ${before} px → ${await size()} px`);
  await page.locator('#help-send').waitFor();
  // 高对比: light words on black, and every word still clear.
  await page.getByRole('button', { name: '高对比' }).click();
  const ground = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(ground, 'rgb(0, 0, 0)');
  assert.deepEqual(await hardToRead(page), [], 'in large text and high contrast');
  await shot(page, '27-family-large-high-contrast');

  // The settings stay for the next time, on the wish wall too.
  await page.reload();
  await page.locator('#family-visits .card').first().waitFor();
  assert.equal(await page.locator('[data-setting=large]').getAttribute('aria-pressed'), 'true');
  await page.locator('#to-wall').click();
  await page.getByRole('heading', { name: '心愿墙' }).waitFor();
  assert.equal(await page.locator('[data-setting=contrast]').getAttribute('aria-pressed'), 'true');
  assert.deepEqual(await hardToRead(page), [], 'the wish wall');
  await page.context().close();
});

/** The villages' route through the tiers: {county, township, village} ids of `name`. */
async function areaOf(name) {
  const below = async (id) => (await api(sys.base, 'GET', '/api/volunteers/areas' + (id ? '?parent_id=' + id : ''))).items;
  const [city] = await below();
  for (const county of await below(city.id)) {
    for (const township of await below(county.id)) {
      const village = (await below(township.id)).find((v) => v.name === name);
      if (village) return { county: county.id, township: township.id, village: village.id };
    }
  }
  throw new Error('no village ' + name);
}

test('someone new registers as a volunteer on the phone and waits for approval', async () => {
  const page = await (await browser.newContext(PHONE)).newPage();
  page.on('pageerror', (e) => assert.fail('script error on the page: ' + e.message));
  await page.goto(sys.base + '/app/');
  await page.getByRole('button', { name: '微信登录' }).click();
  await page.locator('#to-register').click();
  await page.getByRole('heading', { name: '志愿者报名' }).waitFor();

  const area = await areaOf('杨柳村');
  await page.fill('#reg-name', '郑晓燕');
  await page.fill('#reg-phone', '1390000');
  await page.locator('input[name=skill][value=health]').check();
  await page.locator('#area-county:not([disabled])').waitFor();
  await page.selectOption('#area-county', area.county);
  await page.locator('#area-township:not([disabled])').waitFor();
  await page.selectOption('#area-township', area.township);
  await page.locator('#area-village:not([disabled])').waitFor();
  await page.selectOption('#area-village', area.village);
  await page.getByRole('button', { name: '提交报名' }).click();
  // A short phone number is refused beside the field, by its name, and nothing is registered.
  const beside = page.locator('[data-field=phone]');
  await beside.filter({ hasText: /./ }).waitFor();
  assert.match(await beside.innerText(), /手机号/);
  assert.match(await page.getByRole('alert').innerText(), /手机号/);
  await shot(page, '18-register-invalid');

  await page.fill('#reg-phone', '13912340099');
  await page.getByRole('button', { name: '提交报名' }).click();
  await page.locator('#waiting').waitFor();
  await shot(page, '19-register-waiting');

  const city = await devToken(sys.base, '13800000001');
  const pending = await api(sys.base, 'GET', '/api/volunteers?status=pending&q=' + encodeURIComponent('郑晓燕'), city);
  assert.equal(pending.total, 1);
  assert.deepEqual(pending.items[0].skills, ['health']);
  await page.context().close();
});

test('a volunteer says which days they can visit and asks for leave', async () => {
  const phone = '13900000002'; // not the volunteer of the other tests: their proposals stay as they were
  const page = await volunteerPage();
  await loginAsDemo(page, phone, '40-login-for-time');
  await page.goto(sys.base + '/app/#/v/hours');
  await page.locator('#my-time').click();
  await page.getByRole('heading', { name: '我的时间' }).waitFor();
  await page.locator('[data-day="7"]').click();
  await page.locator('[data-day="6"]').click();
  await page.fill('#capacity', '2');
  await page.getByRole('button', { name: '保存' }).click();
  await page.getByText('已保存').waitFor();
  const token = await devToken(sys.base, phone);
  const saved = await api(sys.base, 'GET', '/api/me/availability', token);
  assert.deepEqual(saved.weekdays, [1, 2, 3, 4, 5]);
  assert.equal(saved.weekly_capacity, 2);

  // Leave that ends before it starts is refused beside the field, in the form's words.
  const day = 24 * 3600e3;
  const local = (n) => new Date(Date.now() + 8 * 3600e3 + n * day).toISOString().slice(0, 10);
  await page.fill('#leave-from', local(5));
  await page.fill('#leave-to', local(3));
  await page.getByRole('button', { name: '请假' }).click();
  const beside = page.locator('[data-field=end_date] .field-error');
  await beside.filter({ hasText: /./ }).waitFor();
  assert.match(await beside.innerText(), /结束日期/);
  await shot(page, '41-leave-invalid');
  await page.fill('#leave-to', local(6));
  await page.getByRole('button', { name: '请假' }).click();
  await page.locator('#leave-done').waitFor();
  await shot(page, '42-leave-done');
  await page.context().close();
});

test('the mini-program shares the H5 pages\' API client', async () => {
  const { readFileSync } = await import('node:fs');
  const root = new URL('../../miniapp-stub/', import.meta.url);
  assert.equal(
    readFileSync(new URL('mp/shared/core.js', root), 'utf8'),
    readFileSync(new URL('h5/js/shared/core.js', root), 'utf8'),
    'mp/shared/core.js must be a copy of h5/js/shared/core.js',
  );
});

test('every mini-program page in app.json is there, and its taps reach a handler', async () => {
  const { readFileSync, existsSync } = await import('node:fs');
  const mp = new URL('../../miniapp-stub/mp/', import.meta.url);
  const app = JSON.parse(readFileSync(new URL('app.json', mp), 'utf8'));
  for (const tab of app.tabBar.list) assert.ok(app.pages.includes(tab.pagePath), `tab ${tab.pagePath} is a page`);
  for (const page of app.pages) {
    for (const ext of ['js', 'wxml', 'json']) assert.ok(existsSync(new URL(`${page}.${ext}`, mp)), `${page}.${ext} exists`);
    const js = readFileSync(new URL(`${page}.js`, mp), 'utf8');
    const wxml = readFileSync(new URL(`${page}.wxml`, mp), 'utf8');
    for (const [, handler] of wxml.matchAll(/\bbind\w+="(\w+)"/g)) {
      assert.match(js, new RegExp(`\\b${handler}\\s*\\(`), `${page}.wxml binds ${handler}, which ${page}.js defines`);
    }
  }
});
