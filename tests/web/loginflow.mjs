// A phone app signing in with Login Flow v2, as the Nextcloud apps do: the app starts a flow
// and polls; the person opens the flow's page, signs in, sees which app asks and grants it;
// the app's next poll gets an app password, which then works for WebDAV; the Devices view
// lists the app and revoking it signs the app out. A cancelled or unknown flow gives nothing.
import { base, check, withBrowser } from './lib.mjs';

const user = process.env.CAIRN_USER;
const password = process.env.CAIRN_PASSWORD;
const phone = 'Mozilla/5.0 (Android) Nextcloud-android/3.29.0';
const url = (p) => new URL(p, base).toString();

async function startFlow() {
  const res = await fetch(url('/index.php/login/v2'), { method: 'POST', headers: { 'User-Agent': phone } });
  check(res.status === 200, `login/v2 answers 200 (got ${res.status})`);
  const flow = await res.json();
  check(flow.poll && flow.poll.token && flow.poll.endpoint && flow.login, `a flow: ${JSON.stringify(flow)}`);
  check(flow.login.startsWith(base.replace(/\/$/, '') + '/index.php/login/v2/flow/'), `login URL on this server: ${flow.login}`);
  return flow;
}

async function poll(flow) {
  const res = await fetch(flow.poll.endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'User-Agent': phone },
    body: new URLSearchParams({ token: flow.poll.token }).toString(),
  });
  return { status: res.status, body: res.status === 200 ? await res.json() : null };
}

const propfind = (name, secret) => fetch(url(`/remote.php/dav/files/${name}/`), {
  method: 'PROPFIND',
  headers: { Authorization: 'Basic ' + Buffer.from(`${name}:${secret}`).toString('base64'), Depth: '0' },
});

await withBrowser(async (page, { answers, shot }) => {
  const flow = await startFlow();
  check((await poll(flow)).status === 404, 'a pending flow polls 404');

  // The person opens the page the app shows: sign in first, then the question.
  await page.goto(flow.login);
  await page.locator('#signin-hint').waitFor();
  await shot('login-flow-sign-in');
  await page.locator('#signin-form input[name=user]').fill(user);
  await page.locator('#signin-form input[name=password]').fill(password);
  await page.locator('#signin-form button').click();
  await page.locator('#grant-device', { hasText: 'Nextcloud Android 3.29.0' }).waitFor();
  check(await page.locator('#grant-user').textContent() === user, 'the page names the account');
  check(await page.locator('#app').isHidden(), 'the grant page shows only the question');
  await shot('login-flow-question');
  await page.locator('#grant-allow').click();
  await page.locator('#grant-result', { hasText: 'is connected' }).waitFor();
  await shot('login-flow-granted');

  // The app's next poll gets the account and an app password, once.
  const got = await poll(flow);
  check(got.status === 200, `the poll after the grant answers 200 (got ${got.status})`);
  check(got.body.loginName === user && got.body.server === base.replace(/\/$/, ''), `poll body ${JSON.stringify(got.body)}`);
  const secret = got.body.appPassword;
  check(typeof secret === 'string' && secret.length >= 20 && secret !== password, 'a new app password');
  check((await poll(flow)).status === 404, 'the flow ends with that poll');
  check((await propfind(user, secret)).status === 207, 'the app password opens WebDAV');

  // Answered already: the page says so rather than granting twice.
  await page.goto(flow.login);
  await page.locator('#grant-result', { hasText: 'expired or was already answered' }).waitFor();

  // Cancelled: the app is given nothing.
  const refused = await startFlow();
  await page.goto(refused.login);
  await page.locator('#grant-device', { hasText: 'Nextcloud Android' }).waitFor();
  await page.locator('#grant-deny').click();
  await page.locator('#grant-result', { hasText: 'was not given access' }).waitFor();
  check((await poll(refused)).status === 404, 'a cancelled flow never yields a password');

  // Devices: the app is listed by its name; revoking signs it out at once.
  await page.goto(url('/#/devices'));
  const row = page.locator('#devices-list tr.row', { hasText: 'Nextcloud Android 3.29.0' });
  await row.waitFor();
  check(await row.count() === 1, 'the app is listed once');
  check((await row.locator('td').nth(2).textContent()) !== 'never', 'its last use is shown');
  await shot('devices');
  answers.push('');
  await row.locator('button', { hasText: 'Revoke' }).click();
  await page.locator('#devices-list tr.row', { hasText: 'Nextcloud Android 3.29.0' }).waitFor({ state: 'detached' });
  check((await propfind(user, secret)).status === 401, 'a revoked app password is refused');

  // A new app password from the same view is shown once and works.
  await page.locator('#new-token input[name=label]').fill('backup script');
  await page.locator('#new-token button').click();
  const made = await page.locator('#new-token-result code.secret').textContent();
  check((await propfind(user, made)).status === 207, 'a password made in the view works');
  await shot('devices-new-password');
});
