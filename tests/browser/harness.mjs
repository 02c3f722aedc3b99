// Starts the real system for the browser tests: the `nuanxin` binary on a fresh SQLite
// database with the demo data, and the `wechat-fake` binary, each on a free port; and
// finds the browser. Everything is stopped and removed by `stop()`.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    }).on('error', fail);
  });
}

/** The binaries, built if needed (a no-op when `cargo test` built them already). */
function binaries() {
  execFileSync('cargo', ['build', '-p', 'server', '--bin', 'nuanxin', '-p', 'miniapp-stub', '--bin', 'wechat-fake'],
    { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  const meta = JSON.parse(execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps'],
    { cwd: ROOT, maxBuffer: 64 << 20 }));
  const dir = join(meta.target_directory, 'debug');
  return { nuanxin: join(dir, 'nuanxin'), fake: join(dir, 'wechat-fake') };
}

/** Debian's chromium, or CHROMIUM_PATH. */
export function browserPath() {
  const path = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  if (!existsSync(path)) {
    throw new Error(`no browser at ${path}: install it (apt-get install -y chromium) or set CHROMIUM_PATH`);
  }
  return path;
}

export const BROWSER_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];

async function waitReady(url, child, seconds) {
  for (let i = 0; i < seconds * 4; i++) {
    if (child.exitCode !== null) throw new Error(`${url}: the process exited (${child.exitCode}); see its log`);
    try {
      if ((await fetch(url)).ok) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} did not answer within ${seconds} s`);
}

/**
 * The jobs catch up at start (a fresh database has no nightly plan yet): wait for that
 * plan run, so that it does not re-plan a test's family under its feet.
 */
async function jobsSettled(db, child, seconds) {
  for (let i = 0; i < seconds * 4; i++) {
    if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode}); see its log`);
    const [done, running] = sql(db, "SELECT (SELECT count(*) FROM job_run WHERE job = 'plan' AND status = 'done'), " +
      "(SELECT count(*) FROM job_run WHERE status = 'running')").split('|').map(Number);
    if (done > 0 && running === 0) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the jobs' start-up runs did not finish within ${seconds} s`);
}

export async function start() {
  const bin = binaries();
  const dir = mkdtempSync(join(tmpdir(), 'nuanxin-browser-'));
  const [port, fakePort] = [await freePort(), await freePort()];
  const log = (name) => openSync(join(dir, name), 'w');
  const children = [];

  const fake = spawn(bin.fake, [], {
    env: { ...process.env, WECHAT_FAKE_ADDR: `127.0.0.1:${fakePort}` },
    stdio: ['ignore', log('fake.log'), log('fake.log')],
  });
  children.push(fake);

  const env = { ...process.env };
  delete env.REDIS_URL; // the embedded default: SQLite and in-process caches
  Object.assign(env, {
    NUANXIN_CONFIG: join(dir, 'none.toml'),
    DATABASE_URL: `sqlite://${join(dir, 'nuanxin.db')}?mode=rwc`,
    NUANXIN_ADDR: `127.0.0.1:${port}`,
    NUANXIN_DEMO_DATA: 'true',
    NUANXIN_DEV_LOGIN: 'true',
    // The jobs send the outbox: messages reach the inbox.
    NUANXIN_JOBS: 'true',
    NUANXIN_WECHAT_API_BASE: `http://127.0.0.1:${fakePort}`,
    NUANXIN_WECHAT_APPID: 'wxdemo0000000000',
    NUANXIN_WECHAT_SECRET: 'demo-secret',
    RUST_LOG: 'warn',
  });
  const server = spawn(bin.nuanxin, ['serve'], { cwd: dir, env, stdio: ['ignore', log('server.log'), log('server.log')] });
  children.push(server);

  const base = `http://127.0.0.1:${port}`;
  const stop = () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    if (!process.env.KEEP_TEMP) rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(`http://127.0.0.1:${fakePort}/__fake/stats`, fake, 20);
    await waitReady(`${base}/readyz`, server, 120);
    await jobsSettled(join(dir, 'nuanxin.db'), server, 120);
  } catch (e) {
    process.env.KEEP_TEMP = '1';
    stop();
    throw new Error(`${e.message} (logs in ${dir})`);
  }
  return { base, dir, db: join(dir, 'nuanxin.db'), stop };
}

/** A JSON call to the API; throws with the API's message on failure. */
export async function api(base, method, path, token, body) {
  const res = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: 'Bearer ' + token } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    err.status = res.status;
    err.body = json;
    throw err;
  }
  return json;
}

export async function devToken(base, phone) {
  return (await api(base, 'POST', '/api/auth/dev', null, { phone })).access_token;
}

/** A statement on the test's database (the sqlite3 command), for what no API does yet. */
export function sql(db, statement) {
  try {
    // The server's jobs write too: wait for their transactions instead of failing.
    return execFileSync('sqlite3', ['-cmd', '.timeout 10000', db, statement], { encoding: 'utf8' }).trim();
  } catch (e) {
    if (e.code === 'ENOENT') throw new Error('the browser tests need the sqlite3 command: apt-get install -y sqlite3');
    throw e;
  }
}

/** A time as the server stores it in SQLite (RFC 3339, UTC, "+00:00"). */
export function stored(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, '+00:00');
}

/** A UUID as SQLite holds it: a blob literal. */
export const blob = (uuid) => `X'${uuid.replaceAll('-', '')}'`;
