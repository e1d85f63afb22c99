// The page of a public link (`/s/TOKEN`): asks the link's password if it has one, then shows
// the folder as a photo grid (previews of pictures, any file downloadable, the whole folder as
// a zip) or, for an upload-only link, a place to send files. Everything goes through the link's
// public endpoints (`/api/v1/public/TOKEN/...`); after a right password the server keeps the
// visitor in with a cookie scoped to those endpoints, so pictures and downloads need nothing more.

import { $, el, icon } from './dom.js';
import { size } from './format.js';

const token = location.pathname.split('/')[2] || '';
const base = `/api/v1/public/${encodeURIComponent(token)}`;
const IMAGE = /\.(jpe?g|png|gif|webp)$/i;
let password = null;

const q = (path, extra = {}) => '?' + new URLSearchParams({ path, ...extra });
/// The folder the address names below the link (`#/sub/folder`).
const here = () => decodeURIComponent(location.hash.slice(1)) || '/';

function show(id) {
  for (const s of ['#link-password', '#link-gone', '#link-app']) $(s).hidden = s !== id;
}

async function call(url, init = {}) {
  const headers = new Headers(init.headers || {});
  if (password != null) headers.set('X-Link-Password', password);
  return fetch(url, { ...init, headers, credentials: 'same-origin' });
}

async function load() {
  const res = await call(base + q(here()));
  if (res.status === 401) {
    show('#link-password');
    if (password != null) $('#link-password-error').textContent = 'That password is not right.';
    password = null;
    return;
  }
  if (res.status === 429) {
    show('#link-password');
    $('#link-password-error').textContent = 'Too many wrong passwords. Try again later.';
    password = null;
    return;
  }
  if (!res.ok) {
    show('#link-gone');
    return;
  }
  // The cookie keeps the visitor in from here on.
  password = null;
  const listing = await res.json();
  show('#link-app');
  document.title = `${listing.name} · Cairn`;
  $('#link-title').textContent = listing.name;
  if (listing.upload_only) return drop(listing);
  if (!listing.folder.is_dir) return single(listing.folder);
  folder(listing);
}

function crumbs(path) {
  const nav = $('#link-crumbs');
  nav.replaceChildren();
  const parts = path.split('/').filter(Boolean);
  nav.append(el('a', { href: '#/', text: $('#link-title').textContent }));
  let at = '';
  for (const p of parts) {
    at += '/' + p;
    nav.append(el('span', { text: ' / ' }), el('a', { href: '#' + encodeURI(at), text: p }));
  }
}

function folder(listing) {
  const path = listing.folder.path;
  crumbs(path);
  const zip = $('#link-zip');
  zip.hidden = false;
  zip.href = `${base}/zip${q(path)}`;
  zip.textContent = path === '/' ? 'Download all (zip)' : 'Download folder (zip)';
  const grid = $('#link-files');
  grid.replaceChildren();
  const entries = [...listing.entries].sort((a, b) => (b.is_dir - a.is_dir) || a.name.localeCompare(b.name));
  $('#link-empty').hidden = entries.length > 0;
  for (const e of entries) {
    const pic = !e.is_dir && IMAGE.test(e.name);
    const face = pic
      ? el('img', { src: `${base}/preview${q(e.path, { size: 320 })}`, alt: e.name, loading: 'lazy' })
      : el('div', { class: 'big' }, icon(e));
    const tile = el('div', { class: 'tile', 'data-name': e.name, title: e.name, role: 'button', tabindex: '0' },
      face, el('span', { text: e.name }), el('span', { class: 'muted', text: e.is_dir ? '' : size(e.size) }));
    const open = () => e.is_dir ? (location.hash = encodeURI(e.path)) : view(e, pic);
    tile.addEventListener('click', open);
    tile.addEventListener('keydown', ev => { if (ev.key === 'Enter') open(); });
    grid.append(tile);
  }
}

function single(file) {
  $('#link-crumbs').replaceChildren(el('span', { text: size(file.size) }));
  const pic = IMAGE.test(file.name);
  const grid = $('#link-files');
  grid.replaceChildren(el('div', { class: 'tile' },
    pic ? el('img', { src: `${base}/preview${q('/', { size: 640 })}`, alt: file.name }) : el('div', { class: 'big' }, icon(file)),
    el('span', { text: file.name }),
    el('a', { class: 'button primary', href: `${base}/content${q('/')}`, text: 'Download' })));
}

function view(e, pic) {
  $('#link-view-name').textContent = e.name;
  $('#link-view-download').href = `${base}/content${q(e.path)}`;
  const body = $('#link-view-body');
  body.replaceChildren(pic
    ? el('img', { src: `${base}/preview${q(e.path, { size: 1600 })}`, alt: e.name })
    : el('p', { class: 'muted', text: `${e.name} · ${size(e.size)}` }));
  $('#link-view').showModal();
}

function drop(listing) {
  $('#link-files').hidden = true;
  $('#link-crumbs').replaceChildren();
  $('#link-drop').hidden = false;
  $('#link-drop-name').textContent = listing.name;
  const zone = $('#link-drop');
  $('#link-drop-input').addEventListener('change', ev => send([...ev.target.files]));
  zone.addEventListener('dragover', ev => { ev.preventDefault(); zone.classList.add('dragging'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', ev => {
    ev.preventDefault();
    zone.classList.remove('dragging');
    send([...ev.dataTransfer.files]);
  });
}

async function send(files) {
  for (const f of files) {
    const li = el('li', { text: `${f.name} — sending…` });
    $('#link-sent').append(li);
    try {
      const res = await call(`${base}/upload?` + new URLSearchParams({ name: f.name }), { method: 'POST', body: f });
      if (!res.ok) {
        const err = await res.json().catch(() => ({}));
        throw new Error(err.error?.message || res.statusText);
      }
      const got = await res.json();
      li.textContent = `${got.name} — sent (${size(got.size)})`;
      li.className = 'done';
    } catch (err) {
      li.textContent = `${f.name} — not sent: ${err.message}`;
      li.className = 'failed';
    }
  }
}

$('#link-password-form').addEventListener('submit', ev => {
  ev.preventDefault();
  $('#link-password-error').textContent = '';
  password = new FormData(ev.target).get('password');
  load();
});
$('#link-view-close').addEventListener('click', () => $('#link-view').close());
addEventListener('hashchange', load);
load();
