// Unit tests of the web UI's DOM-free modules under node (node --test), run by tests/it/web.rs:
// format.js against the same size table as store::format_size, and the tus client (tus.js)
// against the real cairnd that test starts (CAIRN_URL; users alice without a quota and bob
// with 1 MiB, both with CAIRN_PASSWORD).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { bytes } from './lib.mjs';

// The page's modules are plain .js with no package.json beside them (every file in web/ is
// served), which node before 20.19 would read as CommonJS: load them as ES modules by source.
// The two tested here import nothing.
const load = (name) => import('data:text/javascript,' + encodeURIComponent(
  fs.readFileSync(new URL(`../../davbridge/web/${name}`, import.meta.url), 'utf8')));
const { size, when, placeName, fitMessage } = await load('format.js');
const { TusUpload } = await load('tus.js');

// The same table as SIZE_VECTORS in store/src/types.rs (its test checks each line is here).
const SIZES = [
  [0, '0 B'],
  [12, '12 B'],
  [1023, '1023 B'],
  [1024, '1 KiB'],
  [100000, '97.7 KiB'],
  [1048550, '1 MiB'],
  [1048524, '1023.9 KiB'],
  [1572864, '1.5 MiB'],
  [12582912, '12 MiB'],
  [50000000, '47.7 MiB'],
  [52428800, '50 MiB'],
  [1610612736, '1.5 GiB'],
  [5497558138880, '5 TiB'],
];

test('sizes read as cairnctl prints them', () => {
  for (const [bytes, text] of SIZES) assert.equal(size(bytes), text, `${bytes}`);
});

test('versions a second apart are told apart', () => {
  const a = when('2026-12-07T10:15:03Z', { seconds: true });
  const b = when('2026-12-07T10:15:41Z', { seconds: true });
  assert.notEqual(a, b);
  assert.equal(when('2026-12-07T10:15:03Z'), when('2026-12-07T10:15:41Z'));
});

test('places are named as the breadcrumbs name them', () => {
  assert.equal(placeName('/'), 'Home');
  assert.equal(placeName('/album/2024'), 'Home / album / 2024');
});

test('an upload that cannot fit is described with its sizes', () => {
  const usage = { quota: 52428800, available: 3 << 20 };
  assert.equal(fitMessage(2 << 20, usage), null);
  assert.equal(fitMessage(12 << 20, usage), 'This upload needs 12 MiB, but only 3 MiB of your 50 MiB quota is free.');
  assert.equal(fitMessage(12 << 20, usage, 4), 'These 4 files need 12 MiB, but only 3 MiB of your 50 MiB quota is free.');
  assert.equal(fitMessage(1 << 40, { quota: null, available: null }), null);
});

// ---- the tus client against cairnd ----

const base = process.env.CAIRN_URL && process.env.CAIRN_URL.replace(/\/$/, '');
const auth = (user) => ({ Authorization: 'Basic ' + Buffer.from(`${user}:${process.env.CAIRN_PASSWORD}`).toString('base64') });

function blob(buf, lastModified = 1700000000000) {
  const b = new Blob([buf]);
  b.lastModified = lastModified;
  return b;
}
function memory() {
  const m = new Map();
  return { map: m, get: (k) => m.get(k) ?? null, set: (k, v) => m.set(k, v), remove: (k) => m.delete(k) };
}
// A transport that records the offset of every PATCH it sends.
function recording() {
  const offsets = [];
  const send = async (url, headers, body, _progress, signal) => {
    offsets.push(Number(headers['Upload-Offset']));
    const res = await fetch(url, { method: 'PATCH', headers, body, signal });
    return { status: res.status, header: (h) => res.headers.get(h), text: () => res.text() };
  };
  return { offsets, send };
}
async function content(user, path) {
  const res = await fetch(`${base}/api/v1/content?path=${encodeURIComponent(path)}`, { headers: auth(user) });
  assert.equal(res.status, 200, `GET ${path}`);
  return Buffer.from(await res.arrayBuffer());
}

test('tus: an upload in chunks lands byte-identical and forgets its URL', async () => {
  assert.ok(base, 'CAIRN_URL is not set: tests/it/web.rs starts cairnd and sets it');
  const data = bytes(300000, 1);
  const storage = memory();
  const rec = recording();
  const seen = [];
  const u = new TusUpload(blob(data), '/unit/chunks.bin', {
    base, headers: () => auth('alice'), storage, send: rec.send, chunk: 65536,
    onChange: (x) => seen.push([x.state, x.sent]),
  });
  await u.run();
  assert.equal(u.state, 'done', u.error && u.error.message);
  assert.deepEqual(rec.offsets, [0, 65536, 131072, 196608, 262144]);
  assert.ok(seen.some(([, sent]) => sent > 0 && sent < data.length), 'progress between the ends');
  assert.equal(storage.map.size, 0, 'the upload URL is forgotten once done');
  assert.ok((await content('alice', '/unit/chunks.bin')).equals(data));
});

test('tus: a paused upload resumes in a new client from the offset the server kept', async () => {
  const data = bytes(400000, 2);
  const storage = memory();
  const first = new TusUpload(blob(data), '/unit/resumed.bin', {
    base, headers: () => auth('alice'), storage, chunk: 65536,
    onChange: (x) => { if (x.state === 'running' && x.sent >= 131072) x.pause(); },
  });
  await first.run();
  assert.equal(first.state, 'paused');
  assert.equal(storage.map.size, 1, 'the upload URL is remembered while unfinished');
  // A new page (a reload): a new client with the same storage.
  const rec = recording();
  const second = new TusUpload(blob(data), '/unit/resumed.bin', { base, headers: () => auth('alice'), storage, send: rec.send, chunk: 65536 });
  await second.run();
  assert.equal(second.state, 'done', second.error && second.error.message);
  assert.ok(rec.offsets[0] >= 131072, `resumed at ${rec.offsets[0]}, not from the start`);
  assert.ok((await content('alice', '/unit/resumed.bin')).equals(data));
});

test('tus: cancelling drops what the server holds', async () => {
  const storage = memory();
  const u = new TusUpload(blob(bytes(300000, 3)), '/unit/cancelled.bin', {
    base, headers: () => auth('alice'), storage, chunk: 65536,
    onChange: (x) => { if (x.state === 'running' && x.sent >= 65536) x.pause(); },
  });
  await u.run();
  const url = u.url;
  assert.ok(url);
  await u.cancel();
  assert.equal(u.state, 'cancelled');
  const head = await fetch(base + url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0', ...auth('alice') } });
  assert.equal(head.status, 404);
  assert.equal(storage.map.size, 0);
});

test('tus: an upload the quota cannot hold fails at once, naming the sizes', async () => {
  const rec = recording();
  const u = new TusUpload(blob(bytes(2 << 20, 4)), '/too-big.bin', { base, headers: () => auth('bob'), send: rec.send });
  await u.run();
  assert.equal(u.state, 'failed');
  assert.equal(u.error.status, 413);
  assert.equal(u.error.code, 'quota_exceeded');
  assert.match(u.error.message, /2 MiB needed, 1 MiB free/);
  assert.equal(rec.offsets.length, 0, 'no byte was sent');
  const res = await fetch(`${base}/api/v1/stat?path=/too-big.bin`, { headers: auth('bob') });
  assert.equal(res.status, 404, 'nothing was created');
});
