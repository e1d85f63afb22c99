// Browser end-to-end tests of Cairn's web UI: Playwright (playwright-core) driving Debian's
// Chromium against a real cairnd. Run by tests/it/web.rs, which starts the daemon and passes:
//   CAIRN_URL, CAIRN_USER, CAIRN_PASSWORD, ARTIFACTS (a folder for screenshots and downloads).
// Each step saves a screenshot; any failed expectation exits non-zero.
import fs from 'node:fs';
import path from 'node:path';
import { artifacts, base, bytes, check, rowOf, sha256, withBrowser } from './lib.mjs';

const user = process.env.CAIRN_USER;
const password = process.env.CAIRN_PASSWORD;

// Drop files on the drop zone the way a desktop drag does: a DataTransfer with File objects.
// `folder` files carry their place in the dropped folder (webkitRelativePath), like Chromium's.
async function dropFiles(page, files) {
  const payload = files.map((f) => ({ rel: f.rel, name: path.basename(f.rel), b64: f.data.toString('base64') }));
  await page.evaluate((items) => {
    const dt = new DataTransfer();
    for (const it of items) {
      const bin = Uint8Array.from(atob(it.b64), (c) => c.charCodeAt(0));
      const file = new File([bin], it.name, { type: 'application/octet-stream', lastModified: 1700000000000 });
      if (it.rel.includes('/')) Object.defineProperty(file, 'webkitRelativePath', { value: it.rel });
      dt.items.add(file);
    }
    const zone = document.querySelector('#drop');
    for (const type of ['dragenter', 'dragover', 'drop']) {
      zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
    }
  }, payload);
}

async function uploadsDone(page, count) {
  await page.waitForFunction((n) => document.querySelectorAll('#up-list li[data-state="done"]').length >= n, count);
}

await withBrowser(async (page, { context, answers: pendingPrompt, shot }) => {
  const row = (name) => rowOf(page, name);
  // ---- sign in ----
  await page.goto(base);
  await page.locator('#signin-form input[name=user]').fill(user);
  await page.locator('#signin-form input[name=password]').fill('wrong password');
  await page.locator('#signin-form button').click();
  await page.locator('#signin-error', { hasText: 'Wrong' }).waitFor();
  await page.locator('#signin-form input[name=password]').fill(password);
  await page.locator('#signin-form button').click();
  await page.locator('#whoami', { hasText: user }).waitFor();
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'cairn_session');
  check(session && session.httpOnly && session.sameSite === 'Strict', 'session cookie is HttpOnly and SameSite=Strict');
  await shot('signed-in');

  // ---- drag and drop a folder of several files: progress bars, then the files ----
  const album = [
    { rel: 'album/one.txt', data: Buffer.from('first file\n') },
    { rel: 'album/two.bin', data: bytes(100000, 2) },
    { rel: 'album/big.bin', data: bytes(20 * 1024 * 1024 + 123, 3) },
    { rel: 'album/inner/three.txt', data: Buffer.from('third, one level down\n') },
  ];
  // Record every progress value the big file's bar shows.
  await page.evaluate(() => {
    window.__progress = [];
    new MutationObserver(() => {
      const bar = document.querySelector('#up-list li[data-path="/album/big.bin"] .bar');
      if (bar) window.__progress.push(Number(bar.getAttribute('aria-valuenow')));
    }).observe(document.querySelector('#up-list'), { subtree: true, attributes: true, childList: true });
  });
  await dropFiles(page, album);
  await page.locator('#uploads').waitFor();
  await uploadsDone(page, album.length);
  const seen = await page.evaluate(() => window.__progress);
  check(seen.some((v) => v > 0 && v < 100), `the big file's progress bar moved through intermediate values (${[...new Set(seen)].join(',')})`);
  const summary = await page.locator('#up-summary').textContent();
  check(/4\/4 done/.test(summary), `upload summary says all done: ${summary}`);
  await row('album').waitFor();
  await shot('folder-dropped');
  await row('album').dblclick();
  for (const name of ['one.txt', 'two.bin', 'big.bin', 'inner']) await row(name).waitFor();
  const sizeText = await row('two.bin').locator('td.num').textContent();
  check(sizeText.trim() === '97.7 KiB', `two.bin shows its size (${sizeText})`);
  const big = await page.evaluate(async () => {
    const r = await fetch('/api/v1/content?path=/album/big.bin');
    return Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', await r.arrayBuffer()))).map((b) => b.toString(16).padStart(2, '0')).join('');
  });
  check(big === sha256(album[2].data), 'the big file arrived byte-identical');
  await shot('album-contents');

  // ---- rename inline ----
  await row('one.txt').click();
  await page.keyboard.press('F2');
  const input = page.locator('input.rename-input');
  await input.fill('renamed.txt');
  await input.press('Enter');
  await row('renamed.txt').waitFor();
  check(await row('one.txt').count() === 0, 'the old name is gone');
  await shot('renamed');

  // ---- move by dragging onto a folder ----
  pendingPrompt.push('archive');
  await page.locator('#new-folder').click();
  await row('archive').waitFor();
  // The listing may be drawn again (the new folder's push) while the first drag is under way,
  // which drops it: drag again, as a user would, until the file has moved.
  for (let tries = 0; ; tries++) {
    await row('renamed.txt').dragTo(row('archive'));
    const moved = await page.waitForFunction(() => !document.querySelector('tr.row[data-path="/album/renamed.txt"]'), null, { timeout: 4000 })
      .then(() => true, () => false);
    if (moved) break;
    check(tries < 3, 'the drag onto the folder moved the file');
  }
  await row('archive').dblclick();
  await row('renamed.txt').waitFor();
  await shot('moved');

  // ---- delete to trash, restore ----
  await row('renamed.txt').click();
  await page.keyboard.press('Delete');
  await page.waitForFunction(() => !document.querySelector('tr.row[data-path="/album/archive/renamed.txt"]'));
  await page.locator('a[data-view=trash]').click();
  const trashed = page.locator('#trash-list tr.row[data-path="/album/archive/renamed.txt"]');
  await trashed.waitFor();
  await shot('trash');
  await trashed.locator('button', { hasText: 'Restore' }).click();
  await trashed.waitFor({ state: 'detached' });
  await page.goto(`${base}#/files/album/archive`);
  await row('renamed.txt').waitFor();
  await shot('restored');

  // ---- overwrite a file, restore the old version, download it byte-identical ----
  await page.goto(`${base}#/files/`);
  await page.locator('#crumbs a[data-path="/"]').waitFor();
  const v1 = bytes(300000, 11);
  const v2 = bytes(250000, 12);
  const doc = path.join(artifacts, 'report.bin');
  fs.writeFileSync(doc, v1);
  await page.locator('#file-input').setInputFiles(doc);
  await uploadsDone(page, album.length + 1);
  await row('report.bin').waitFor();
  fs.writeFileSync(doc, v2);
  await page.locator('#file-input').setInputFiles(doc);
  await uploadsDone(page, album.length + 2);
  await page.waitForFunction(() => [...document.querySelectorAll('tr.row[data-path="/report.bin"] td.num')].some((td) => td.textContent.trim() === '244.1 KiB'));
  await row('report.bin').click();
  await page.keyboard.press('v');
  const older = page.locator('#versions-list li[data-version]').first();
  await older.waitFor();
  check((await older.textContent()).includes(user), 'the version says who wrote it');
  await shot('versions');
  await older.locator('button', { hasText: 'Restore' }).click();
  await page.waitForFunction(() => [...document.querySelectorAll('tr.row[data-path="/report.bin"] td.num')].some((td) => td.textContent.trim() === '293 KiB'));
  // The content it replaced is now the version.
  await page.locator('#versions-list li[data-version]', { hasText: '244.1 KiB' }).waitFor();
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.locator('#versions-list li:not([data-version]) a', { hasText: 'Download' }).first().click(),
  ]);
  const got = fs.readFileSync(await download.path());
  check(sha256(got) === sha256(v1), 'the restored version downloads byte-identical to the first content');
  await shot('version-restored');
  await page.locator('#panel-close').click();

  // ---- a tus upload interrupted mid-way (the page reloads) and resumed ----
  const huge = bytes(48 * 1024 * 1024 + 7, 21);
  const hugeFile = path.join(artifacts, 'resume.bin');
  fs.writeFileSync(hugeFile, huge);
  // Slow the upload down so the reload lands mid-way.
  await page.route('**/api/v1/uploads/*', async (route) => {
    if (route.request().method() === 'PATCH') await new Promise((r) => setTimeout(r, 400));
    // The page may have gone (reloaded) while this request waited.
    await route.continue().catch(() => {});
  });
  await page.locator('#file-input').setInputFiles(hugeFile);
  await page.waitForFunction(() => {
    const bar = document.querySelector('#up-list li[data-path="/resume.bin"] .bar');
    return bar && Number(bar.getAttribute('aria-valuenow')) >= 30;
  });
  await shot('upload-mid-way');
  await page.unroute('**/api/v1/uploads/*', { behavior: 'ignoreErrors' });
  await page.reload();
  await page.locator('#whoami', { hasText: user }).waitFor();
  const offset = await page.evaluate(async () => {
    const key = Object.keys(localStorage).find((k) => k.startsWith('cairn.tus./resume.bin.'));
    if (!key) return -1;
    const r = await fetch(localStorage.getItem(key), { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
    return Number(r.headers.get('Upload-Offset'));
  });
  check(offset > 0 && offset < huge.length, `the server kept the bytes sent before the interruption (offset ${offset})`);
  let firstPatchOffset = null;
  page.on('request', (r) => {
    if (r.method() === 'PATCH' && r.url().includes('/api/v1/uploads/') && firstPatchOffset === null) firstPatchOffset = Number(r.headers()['upload-offset']);
  });
  await page.locator('#file-input').setInputFiles(hugeFile);
  await page.waitForFunction(() => document.querySelector('#up-list li[data-path="/resume.bin"][data-state="done"]'));
  check(firstPatchOffset >= offset, `the upload resumed from the server's offset (${firstPatchOffset} >= ${offset})`);
  const resumed = await page.evaluate(async () => {
    const r = await fetch('/api/v1/content?path=/resume.bin');
    return Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', await r.arrayBuffer()))).map((b) => b.toString(16).padStart(2, '0')).join('');
  });
  check(resumed === sha256(huge), 'the resumed upload is byte-identical');
  await row('resume.bin').waitFor();
  await shot('upload-resumed');

  // ---- phone-sized screen, dark theme, grid view ----
  await page.setViewportSize({ width: 390, height: 780 });
  await page.locator('#theme').click();
  await page.keyboard.press('g');
  await page.locator('#grid .tile').first().waitFor();
  await shot('phone-dark-grid');
  await page.setViewportSize({ width: 1280, height: 800 });

  // ---- sign out ----
  await page.locator('#signout').click();
  await page.locator('#signin-form').waitFor();
  const me = await page.evaluate(async () => (await fetch('/api/v1/me')).status);
  check(me === 401, `after signing out the API answers 401 (got ${me})`);
  await shot('signed-out');
  console.log('web e2e: all steps passed');
});
