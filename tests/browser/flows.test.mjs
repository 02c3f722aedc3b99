// The H5 pages in a real browser, as people use them: a volunteer finds a visit in the
// feed, claims it, checks in at the family's door, checks out and reports; the family
// logs in with WeChat and an invite code, sees who is coming, confirms and rates the
// visit; both find their messages; a claim that loses a race says so; someone new
// registers as a volunteer. Screenshots of every page at phone size go
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
  return { home, now: ids[0], race: ids[1], invite: invite.code };
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
  // A short phone number is refused by name, and nothing is registered.
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

test('the mini-program shares the H5 pages\' API client', async () => {
  const { readFileSync } = await import('node:fs');
  const root = new URL('../../miniapp-stub/', import.meta.url);
  assert.equal(
    readFileSync(new URL('mp/shared/core.js', root), 'utf8'),
    readFileSync(new URL('h5/js/shared/core.js', root), 'utf8'),
    'mp/shared/core.js must be a copy of h5/js/shared/core.js',
  );
});
