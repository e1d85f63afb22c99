// Browser tests of the explorer as a new family member meets it (Playwright + Chromium against
// a real cairnd; run by tests/it/web.rs): sizes typed on the admin page, a listing that follows
// changes made elsewhere (also across a cut push connection), move and copy through the folder
// picker, the quota told before an upload and when one fails, upload rows whose controls follow
// their state, versions told apart and previewed, labelled forms, the trash's "Was in", the
// select-all box, and the phone layout.
// Env: CAIRN_URL, CAIRN_ADMIN (an admin's name), CAIRN_PASSWORD (everyone's), ARTIFACTS.
// Writes ARTIFACTS/quota-shown.json (what the page shows per user) and prints FIGURE lines.
import fs from 'node:fs';
import path from 'node:path';
import { artifacts, base, bytes, check, dav, rest, rowOf, signIn, withBrowser } from './lib.mjs';

const admin = process.env.CAIRN_ADMIN;
const password = process.env.CAIRN_PASSWORD;

await withBrowser(async (page, { answers, shot }) => {
  const row = (name) => rowOf(page, name);

  // The push connection goes through a route the test can cut: while `refusing`, new
  // connections are closed at once, so the page must retry until let through.
  let live = null;
  let refusing = false;
  let connections = 0;
  await page.routeWebSocket(/\/api\/v1\/events/, (ws) => {
    connections++;
    if (refusing) { ws.close(); return; }
    ws.connectToServer();
    live = ws;
  });

  // ---- 1. sizes typed on the admin page are stored exactly ----
  await signIn(page, admin, password);
  await page.locator('a[data-view=admin]').click();
  const form = page.locator('#new-user');
  const create = async (name, quota) => {
    await form.getByLabel('User name').fill(name);
    await form.getByLabel('Password').fill(password);
    await form.getByLabel('Quota').fill(quota);
    await form.getByRole('button', { name: 'Create user' }).click();
    await page.locator('#new-user-result', { hasText: `Created ${name}` }).waitFor();
    await page.locator(`tr[data-user=${name}]`).waitFor();
  };
  await create('carol', '50 MiB');
  check((await page.locator('#new-user-result').textContent()).includes('a quota of 50 MiB'), 'the confirmation names the quota');
  await shot('user-created');
  await create('dave', '50 MB');
  const shown = {};
  for (const u of ['carol', 'dave']) shown[u] = (await page.locator(`tr[data-user=${u}] button.quota`).textContent()).trim();
  fs.writeFileSync(path.join(artifacts, 'quota-shown.json'), JSON.stringify(shown));
  check(shown.carol === '50 MiB' && shown.dave === '47.7 MiB', `quotas as shown: ${JSON.stringify(shown)}`);
  await shot('quotas');

  // A group for the family: made, two members added from the picker, one taken out again.
  const groupForm = page.locator('#new-group');
  await groupForm.getByLabel('Group name').fill('Family');
  await groupForm.getByRole('button', { name: 'Create group' }).click();
  await page.locator('#new-group-result.error', { hasText: 'invalid group name' }).waitFor();
  await groupForm.getByLabel('Group name').fill('family');
  await groupForm.getByRole('button', { name: 'Create group' }).click();
  await page.locator('#new-group-result', { hasText: 'Created the group family' }).waitFor();
  const family = page.locator('tr[data-group=family]');
  for (const who of ['carol', 'dave']) {
    await family.getByLabel('Add a member to family').selectOption(who);
    await family.locator(`.chip[data-member=${who}]`).waitFor();
  }
  await shot('group-made');
  await family.getByRole('button', { name: 'Take dave out of family' }).click();
  await family.locator('.chip[data-member=dave]').waitFor({ state: 'detached' });
  check((await family.locator('.chip').count()) === 1, 'one member left in the group');
  await page.locator('#signout').click();
  await page.locator('#signin-form').waitFor();

  // ---- 2. the listing follows changes made elsewhere ----
  await signIn(page, 'carol', password);
  await page.locator('#live[data-state=live]').waitFor();
  check(/of 50 MiB used · 50 MiB free/.test(await page.locator('#quota-text').textContent()), 'the footer says how much is free');
  let t0 = Date.now();
  await dav('PUT', 'carol', '/from-phone.txt', 'sent from another device\n');
  const put = Date.now() - t0;
  t0 = Date.now();
  await row('from-phone.txt').waitFor({ timeout: 2000 });
  const appeared = Date.now() - t0;
  console.log(`FIGURE web UI live listing: a file PUT over WebDAV appears in the open listing ${appeared} ms after the PUT's answer (PUT ${put} ms)`);
  await page.waitForFunction(() => !/^0 B/.test(document.querySelector('#quota-text').textContent));
  await shot('live-listing');

  // Cut the push connection; a file arrives while the page is away; it appears once the
  // connection is back (resumed from the last cursor, no reload).
  refusing = true;
  const before = connections;
  live.close();
  await page.locator('#live[data-state=offline]').waitFor();
  await dav('PUT', 'carol', '/while-away.txt', 'written while the page was cut off\n');
  await new Promise((r) => setTimeout(r, 1200));
  check(connections > before, 'the page tried to reconnect');
  check(await row('while-away.txt').count() === 0, 'nothing reloaded while cut off');
  refusing = false;
  t0 = Date.now();
  await row('while-away.txt').waitFor({ timeout: 15000 });
  await page.locator('#live[data-state=live]').waitFor();
  console.log(`FIGURE web UI live listing after a cut: the change made while away appeared ${Date.now() - t0} ms after connections were let through again`);
  await shot('reconnected');

  // ---- 3. move and copy through the folder picker ----
  await dav('MKCOL', 'carol', '/docs');
  await dav('MKCOL', 'carol', '/photos');
  await row('photos').waitFor();
  await row('from-phone.txt').click();
  await page.locator('#move-btn').click();
  const picker = page.locator('#picker');
  await picker.locator('#picker-title', { hasText: 'Move “from-phone.txt” to…' }).waitFor();
  await picker.locator('button.folder[data-path="/docs"]').click();
  await picker.locator('#picker-crumbs', { hasText: 'docs' }).waitFor();
  await shot('picker');
  await picker.locator('#picker-ok', { hasText: 'Move here' }).click();
  await row('from-phone.txt').waitFor({ state: 'detached' });
  await rest('GET', 'carol', '/stat?path=/docs/from-phone.txt');
  // Copy with the keyboard only: c, arrows, Enter to open, Enter on "Copy here".
  await row('while-away.txt').click();
  await page.keyboard.press('c');
  await picker.locator('#picker-title', { hasText: 'Copy' }).waitFor();
  await picker.locator('button.folder[data-path="/docs"]:focus').waitFor();
  await page.keyboard.press('ArrowDown');
  await picker.locator('button.folder[data-path="/photos"]:focus').waitFor();
  await page.keyboard.press('Enter');
  await picker.locator('#picker-ok:focus').waitFor();
  await page.keyboard.press('Enter');
  await picker.waitFor({ state: 'hidden' });
  await page.locator('#toast', { hasText: 'Copied 1 item to Home / photos' }).waitFor();
  await rest('GET', 'carol', '/stat?path=/photos/while-away.txt');
  await rest('GET', 'carol', '/stat?path=/while-away.txt');
  await shot('copied');

  // ---- 4. the quota, told before an upload starts ----
  let uploadRequests = 0;
  page.on('request', (r) => { if (r.url().includes('/api/v1/uploads/')) uploadRequests++; });
  const big = path.join(artifacts, 'sixty.bin');
  fs.writeFileSync(big, bytes(60 << 20, 1));
  await page.locator('#file-input').setInputFiles(big);
  const alert = page.locator('#alert');
  await alert.waitFor();
  const said = await page.locator('#alert-text').textContent();
  check(/This upload needs 60 MiB, but only [\d.]+ MiB of your 50 MiB quota is free\./.test(said), `the message names the sizes: ${said}`);
  check(uploadRequests === 0 && await page.locator('#up-list li').count() === 0, 'nothing was sent');
  await shot('quota-before-upload');
  await alert.getByRole('button', { name: 'Dismiss' }).click();
  await alert.waitFor({ state: 'hidden' });

  // ---- 5. upload rows' controls follow their state; the box closes ----
  const small = path.join(artifacts, 'small.txt');
  fs.writeFileSync(small, 'a small file\n');
  await page.locator('#file-input').setInputFiles(small);
  const done = page.locator('#up-list li[data-path="/small.txt"][data-state=done]');
  await done.waitFor();
  check(await done.locator('.ctl button').count() === 0, 'a finished upload offers no pause, resume or cancel');
  await shot('upload-finished');
  await page.locator('#up-close').click();
  await page.locator('#uploads').waitFor({ state: 'hidden' });

  // An upload that fails at the server (the admin lowers the quota while it runs): a visible
  // error with the sizes, and only Retry and Remove offered.
  const mid = path.join(artifacts, 'twenty.bin');
  fs.writeFileSync(mid, bytes(20 << 20, 2));
  await page.route('**/api/v1/uploads/*', async (route) => {
    if (route.request().method() === 'PATCH') await new Promise((r) => setTimeout(r, 300));
    await route.continue().catch(() => {});
  });
  await page.locator('#file-input').setInputFiles(mid);
  await page.locator('#up-list li[data-path="/twenty.bin"][data-state=running]').waitFor();
  const running = await page.locator('#up-list li[data-path="/twenty.bin"] .ctl button').evaluateAll((bs) => bs.map((b) => b.dataset.action));
  check(running.join() === 'pause,cancel', `a running upload offers pause and cancel (${running})`);
  await rest('PATCH', admin, '/admin/users/carol', { quota: '1 MiB' });
  const failed = page.locator('#up-list li[data-path="/twenty.bin"][data-state=failed]');
  await failed.waitFor({ timeout: 60000 });
  await page.unroute('**/api/v1/uploads/*');
  const offered = await failed.locator('.ctl button').evaluateAll((bs) => bs.map((b) => b.dataset.action));
  check(offered.join() === 'retry,remove', `a failed upload offers retry and remove (${offered})`);
  await alert.waitFor();
  const why = await page.locator('#alert-text').textContent();
  check(/twenty\.bin was not uploaded: quota exceeded: .*MiB/.test(why), `the failure is told with sizes: ${why}`);
  await shot('upload-failed');
  await alert.getByRole('button', { name: 'Dismiss' }).click();
  await failed.locator('button[data-action=remove]').click();
  await failed.waitFor({ state: 'detached' });
  await page.locator('#uploads').waitFor({ state: 'hidden' });
  await rest('PATCH', admin, '/admin/users/carol', { quota: '50 MiB' });

  // ---- 6. versions saved within one minute are told apart and previewed ----
  await dav('PUT', 'carol', '/notes.txt', 'first draft\n');
  await dav('PUT', 'carol', '/notes.txt', 'second draft, longer\n');
  await new Promise((r) => setTimeout(r, 1100));
  await dav('PUT', 'carol', '/notes.txt', 'third\n');
  await row('notes.txt').waitFor();
  await row('notes.txt').click();
  await page.keyboard.press('v');
  const versions = page.locator('#versions-list li[data-version]');
  await page.waitForFunction(() => document.querySelectorAll('#versions-list li[data-version]').length >= 2);
  const texts = await versions.allTextContents();
  check(texts.every((t) => /\d\d:\d\d:\d\d/.test(t) && t.includes('by carol')), `each version shows seconds and its author: ${texts}`);
  check(new Set(texts).size === texts.length, `versions are told apart: ${texts}`);
  await shot('versions');
  const oldest = versions.last();
  await oldest.getByRole('button', { name: 'Preview' }).click();
  await page.locator('#preview-body pre', { hasText: 'first draft' }).waitFor();
  check((await page.locator('#preview-title').textContent()).includes('Saved'), 'the preview says which version it shows');
  await shot('version-preview');
  await page.locator('#preview-close').click();
  await page.locator('#panel-close').click();

  // ---- 7. small things ----
  // The trash names places as the breadcrumbs do.
  await rest('DELETE', 'carol', '/files?path=/notes.txt');
  await rest('DELETE', 'carol', '/files?path=/docs/from-phone.txt');
  await page.locator('a[data-view=trash]').click();
  const wasIn = async (p) => (await page.locator(`#trash-list tr[data-path="${p}"] .was-in`).textContent()).trim();
  await page.locator('#trash-list tr[data-path="/docs/from-phone.txt"]').waitFor();
  check(await wasIn('/notes.txt') === 'Home', 'a file from the top level was in Home');
  check(await wasIn('/docs/from-phone.txt') === 'Home / docs', 'a file from docs was in Home / docs');
  // The open trash follows deletions made elsewhere.
  await dav('DELETE', 'carol', '/while-away.txt');
  await page.locator('#trash-list tr[data-path="/while-away.txt"]').waitFor({ timeout: 2000 });
  await shot('trash');
  // One item in a folder, clicked: the select-all box is not checked; select-all checks it.
  await page.locator('a[data-view=files]').click();
  await dav('MKCOL', 'carol', '/solo');
  await dav('PUT', 'carol', '/solo/only.txt', 'alone\n');
  await page.goto(`${base}#/files/solo`);
  await row('only.txt').click();
  check(!(await page.locator('#select-all').isChecked()), 'one clicked item is not "all selected"');
  await page.locator('#select-all').check();
  check(await page.locator('#select-all').isChecked(), 'select-all checks the box');
  // A phone in the dark theme: the name shows, the header and the toolbar are one row each.
  await page.setViewportSize({ width: 390, height: 780 });
  await page.locator('#theme').click();
  await page.goto(`${base}#/files/`);
  await row('photos').waitFor();
  check(await page.locator('#whoami').isVisible(), 'the signed-in name shows on a phone');
  const rowHeight = (await page.locator('#new-folder').boundingBox()).height;
  for (const sel of ['header.top', '#files-view .toolbar']) {
    const h = (await page.locator(sel).boundingBox()).height;
    check(h < 2 * rowHeight + 4, `${sel} is one row on a phone (${h} px, a button is ${rowHeight} px)`);
  }
  await shot('phone-dark');
  console.log('explorer: all steps passed');
});
