// What the browser tests share: Chromium through Playwright, screenshots per step, checks,
// deterministic bytes, and signing in. Each script gets CAIRN_URL and ARTIFACTS from
// tests/it/web.rs.
import { chromium } from 'playwright-core';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const base = process.env.CAIRN_URL;
export const artifacts = process.env.ARTIFACTS;
fs.mkdirSync(artifacts, { recursive: true });

export function check(cond, msg) {
  if (!cond) throw new Error(`expectation failed: ${msg}`);
}
export const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

/// Deterministic bytes, different per seed.
export function bytes(n, seed) {
  const out = Buffer.alloc(n);
  let x = (seed * 2654435761) >>> 0;
  for (let i = 0; i < n; i++) { x = (x * 1664525 + 1013904223) >>> 0; out[i] = x >>> 24; }
  return out;
}

/// Chromium with one page; `answers` feeds prompt() dialogs in order ('' when empty).
/// `run(page, tools)` is the test; any throw fails the script after a 'failure' screenshot.
export async function withBrowser(run) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  const answers = [];
  page.on('dialog', (d) => d.accept(answers.shift() ?? ''));
  const pageErrors = [];
  page.on('pageerror', (e) => { console.error('page error:', e); pageErrors.push(e); });
  let step = 0;
  const shot = async (name) => {
    step++;
    const file = path.join(artifacts, `${String(step).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    console.log(`screenshot ${file}`);
  };
  try {
    await run(page, { context, answers, shot });
    check(pageErrors.length === 0, `no script errors (${pageErrors.map(String).join('; ')})`);
  } catch (e) {
    await shot('failure').catch(() => {});
    console.error(e);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

/// Sign in through the form and wait for the file view.
export async function signIn(page, user, password) {
  await page.goto(base);
  await page.locator('#signin-form input[name=user]').fill(user);
  await page.locator('#signin-form input[name=password]').fill(password);
  await page.locator('#signin-form button').click();
  await page.locator('#whoami', { hasText: user }).waitFor();
}

/// The listing's row of `name` (in whatever folder is open).
export const rowOf = (page, name) => page.locator(`tr.row[data-path$="/${name}"]`);

const origin = () => base.replace(/\/$/, '');
const basicAuth = (user) => 'Basic ' + Buffer.from(`${user}:${process.env.CAIRN_PASSWORD}`).toString('base64');

/// Another device: a plain WebDAV request with Basic auth, which must succeed.
export async function dav(method, user, p, body) {
  const res = await fetch(`${origin()}/dav${p}`, { method, headers: { Authorization: basicAuth(user) }, body });
  check(res.status < 300, `${method} ${p} over WebDAV: ${res.status}`);
}

/// A REST call with Basic auth, which must succeed; its JSON answer, if any.
export async function rest(method, user, p, json) {
  const res = await fetch(`${origin()}/api/v1${p}`, {
    method, headers: { Authorization: basicAuth(user), ...(json ? { 'Content-Type': 'application/json' } : {}) },
    body: json ? JSON.stringify(json) : undefined,
  });
  check(res.status < 300, `${method} ${p}: ${res.status} ${await res.clone().text()}`);
  return res.headers.get('content-type')?.includes('json') ? res.json() : null;
}
