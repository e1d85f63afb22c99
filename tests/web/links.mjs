// Browser test of the family flow (Playwright + Chromium against a real cairnd; run by
// tests/it/web.rs): alice shares "Family Photos" with bob as editor from the Share… panel; bob
// opens it and adds a photo from his browser; alice, looking at the folder, sees it appear
// without reloading; alice makes a password link in the same panel; grandma opens it in a fresh
// browser (no account, no cookies), gives the password, sees the photo grid with its previews
// and downloads the whole folder as a zip; an upload-only link takes a photo from a stranger
// who sees nothing of the folder.
// Env: CAIRN_URL, CAIRN_PASSWORD (everyone's), ARTIFACTS. Prints FIGURE lines.
import fs from 'node:fs';
import path from 'node:path';
import { artifacts, base, check, dav, rest, rowOf, signIn, withBrowser } from './lib.mjs';

const password = process.env.CAIRN_PASSWORD;
const linkPassword = 'grandma likes tea';

await withBrowser(async (alice, { context, shot }) => {
  await dav('MKCOL', 'alice', '/Family%20Photos');
  await dav('PUT', 'alice', '/Family%20Photos/readme.txt', 'our photos\n');
  const browser = context.browser();

  // ---- 1. alice shares the folder with bob, as editor ----
  await signIn(alice, 'alice', password);
  await rowOf(alice, 'Family Photos').click();
  await alice.locator('#share-btn').click();
  const form = alice.locator('#share-form');
  await form.getByLabel('Share with').fill('bob');
  await form.getByLabel('Role').selectOption('editor');
  await form.getByRole('button', { name: 'Share' }).click();
  await alice.locator('#shares-list li[data-with="bob"]').waitFor();
  await alice.locator('#panel-close').click();
  await rowOf(alice, 'Family Photos').dblclick();
  await rowOf(alice, 'readme.txt').waitFor();

  // ---- 2. bob adds a photo; alice sees it appear while she looks ----
  const bobContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const bob = await bobContext.newPage();
  bob.setDefaultTimeout(20000);
  await signIn(bob, 'bob', password);
  await rowOf(bob, 'Family Photos').dblclick();
  await rowOf(bob, 'readme.txt').waitFor();
  // A real picture: a screenshot of bob's page, as a PNG.
  const photo = path.join(artifacts, 'beach.png');
  fs.writeFileSync(photo, await bob.screenshot());
  const t0 = Date.now();
  await bob.locator('#file-input').setInputFiles(photo);
  await rowOf(bob, 'beach.png').waitFor();
  await rowOf(alice, 'beach.png').waitFor({ timeout: 5000 });
  console.log(`FIGURE web UI: a photo bob adds to alice's shared folder appears in her open listing ${Date.now() - t0} ms after he chose it (upload included; goal < 2000 after the upload)`);
  await shot('alice-sees-bobs-photo');
  await bobContext.close();

  // ---- 3. alice makes a password link from the Share… panel ----
  await alice.locator('#crumbs a[data-path="/"]').click();
  await rowOf(alice, 'Family Photos').click();
  await alice.locator('#share-btn').click();
  const linkForm = alice.locator('#link-form');
  await linkForm.getByLabel('Password').fill(linkPassword);
  await linkForm.getByRole('button', { name: 'Make a link' }).click();
  const url = (await alice.locator('#link-made').textContent()).trim();
  check(/\/s\/[0-9a-f]{32}$/.test(url), `a link page address: ${url}`);
  await alice.locator('#links-list li[data-link]').waitFor();
  await shot('link-made');

  // ---- 4. grandma, in a fresh browser: password, photo grid, the folder as a zip ----
  const grandmaContext = await browser.newContext({ acceptDownloads: true, viewport: { width: 1024, height: 768 } });
  const grandma = await grandmaContext.newPage();
  grandma.setDefaultTimeout(20000);
  await grandma.goto(url);
  await grandma.locator('#link-password-form input[name=password]').fill('not the password');
  await grandma.locator('#link-password-form button').click();
  await grandma.locator('#link-password-error', { hasText: 'not right' }).waitFor();
  await grandma.locator('#link-password-form input[name=password]').fill(linkPassword);
  await grandma.locator('#link-password-form button').click();
  const tile = grandma.locator('#link-files .tile[data-name="beach.png"] img');
  await tile.waitFor();
  await grandma.waitForFunction(() => {
    const img = document.querySelector('#link-files .tile[data-name="beach.png"] img');
    return img && img.complete && img.naturalWidth > 0;
  });
  check(await grandma.locator('#link-files .tile[data-name="readme.txt"]').count() === 1, 'the text file is listed too');
  await grandma.screenshot({ path: path.join(artifacts, 'grandma-photo-grid.png') });
  const [download] = await Promise.all([grandma.waitForEvent('download'), grandma.locator('#link-zip').click()]);
  check(download.suggestedFilename() === 'Family Photos.zip', `zip name: ${download.suggestedFilename()}`);
  const zipFile = path.join(artifacts, 'family-photos.zip');
  await download.saveAs(zipFile);
  const zip = fs.readFileSync(zipFile);
  check(zip.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1')), 'a zip archive');
  for (const name of ['Family Photos/beach.png', 'Family Photos/readme.txt']) {
    check(zip.includes(Buffer.from(name)), `the zip holds ${name}`);
  }
  check(zip.includes(fs.readFileSync(photo)), 'the photo is in the zip byte for byte');
  // Grandma's cookie is for this link only: the owner's files stay closed.
  const other = await grandma.evaluate(async () => (await fetch('/api/v1/files?path=/')).status);
  check(other === 401, `the link's visitor is nobody to the API: ${other}`);
  await grandmaContext.close();

  // ---- 5. an upload-only link takes a photo and shows nothing ----
  const made = await rest('POST', 'alice', '/links', { path: '/Family Photos', upload_only: true });
  const strangerContext = await browser.newContext({ viewport: { width: 1024, height: 768 } });
  const stranger = await strangerContext.newPage();
  stranger.setDefaultTimeout(20000);
  await stranger.goto(base.replace(/\/$/, '') + made.page);
  await stranger.locator('#link-drop').waitFor();
  check(await stranger.locator('#link-files .tile').count() === 0, 'nothing of the folder is shown');
  await stranger.locator('#link-drop-input').setInputFiles(photo);
  await stranger.locator('#link-sent li.done', { hasText: 'beach (2).png' }).waitFor();
  await stranger.screenshot({ path: path.join(artifacts, 'drop-link.png') });
  await strangerContext.close();
  const listing = await rest('GET', 'alice', '/files?path=/Family%20Photos');
  const names = (listing.entries || listing).map((e) => e.name);
  check(names.includes('beach (2).png'), `the dropped photo is in the folder: ${names}`);
  console.log('links: all steps passed');
});
