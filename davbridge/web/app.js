// Cairn's file explorer: native ES modules, no build step (the server embeds these files as
// they are). Every action goes through the public REST API (/api/v1), tus (/api/v1/uploads/)
// and the change feed (/api/v1/events). This module holds the views; the others are
// dom.js, api.js, format.js, tus.js, uploads.js, push.js, picker.js and devices.js.

import { $, $$, el, icon, toast, fail, dismissAlert } from './dom.js';
import { api, session, q, contentUrl, versionUrl } from './api.js';
import { size, when, ago, joinPath, parentOf, baseName, placeName } from './format.js';
import { enqueue, initUploads } from './uploads.js';
import { follow } from './push.js';
import { pickFolder } from './picker.js';
import { flowToken, showGrant, loadDevices } from './devices.js';
import { showSharing, loadShared } from './shares.js';

const state = {
  me: null,
  path: '/',
  entries: [],
  selected: new Set(),
  // Whether the selection was made as "everything" (select-all, Ctrl+A) rather than by
  // pointing at items: a folder with one item, clicked, is not "all selected".
  allChosen: false,
  anchor: null,
  sort: localStorage.getItem('cairn.sort') || 'name',
  order: localStorage.getItem('cairn.order') || 'asc',
  layout: localStorage.getItem('cairn.layout') || 'list',
  view: 'files',
  search: null,
  feed: null,
  versionsOf: null,
};

const isImage = (e) => (e.content_type || '').startsWith('image/');
const isText = (e) => /^text\/|json|xml|javascript|x-sh|toml|yaml/.test(e.content_type || '');
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

// ---------- theme ----------

function applyTheme(t) {
  document.documentElement.dataset.theme = t;
  localStorage.setItem('cairn.theme', t);
}
applyTheme(localStorage.getItem('cairn.theme') || (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'));

// ---------- sign in / out ----------

function showSignIn() {
  state.me = null;
  session.csrf = null;
  if (state.feed) { state.feed.close(); state.feed = null; }
  $('#app').hidden = true;
  $('#signin').hidden = false;
  $('#signin-hint').hidden = !flowToken;
  $('#signin-form input[name=user]').focus();
}
session.onSignedOut = showSignIn;

async function start() {
  try {
    signedIn(await api('GET', '/api/v1/me'));
  } catch (e) {
    if (e.status !== 401) fail(e);
    showSignIn();
  }
}

function signedIn(me) {
  state.me = me;
  session.csrf = me.csrf;
  $('#signin').hidden = true;
  // Opened by an app signing in (Login Flow v2): only the question, not the explorer.
  if (flowToken) return showGrant(me);
  $('#app').hidden = false;
  $('#whoami').textContent = me.name;
  $('#whoami').title = `Signed in as ${me.name}`;
  $('#admin-link').hidden = !me.is_admin;
  showQuota(me.usage);
  route();
  if (state.feed) state.feed.close();
  state.feed = follow({ onChanges: (_changes, { reset }) => scheduleRefresh(reset), onState: showLive });
}

$('#signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  $('#signin-error').textContent = '';
  try {
    const me = await api('POST', '/api/v1/session', { json: { user: f.get('user'), password: f.get('password') } });
    ev.target.reset();
    signedIn(me);
  } catch (e) {
    $('#signin-error').textContent = e.status === 401 ? 'Wrong user name or password.' : e.message;
  }
});

$('#signout').addEventListener('click', async () => {
  try { await api('DELETE', '/api/v1/session'); } catch (_) { /* signed out anyway */ }
  location.hash = '';
  showSignIn();
});

// ---------- quota and the live feed ----------

function showQuota(u) {
  const bar = $('#quota-bar');
  const pct = u.quota ? Math.min(100, (100 * u.used) / u.quota) : 0;
  bar.firstElementChild.style.width = `${pct}%`;
  bar.classList.toggle('full', pct > 90);
  bar.setAttribute('aria-valuenow', String(Math.round(pct)));
  $('#quota-text').textContent = u.quota
    ? `${size(u.used)} of ${size(u.quota)} used · ${size(u.available)} free`
    : `${size(u.used)} used`;
}
async function refreshQuota() {
  try { showQuota(await api('GET', '/api/v1/quota')); } catch (_) { /* shown next time */ }
}

function showLive(s) {
  const n = $('#live');
  n.dataset.state = s;
  n.textContent = s === 'live' ? '● live' : '○ reconnecting…';
  n.title = s === 'live' ? 'Changes from other devices appear as they happen' : 'Connection lost; trying again';
}

// Changes arrive in bursts (a folder upload): one refresh per burst.
let refreshTimer;
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshView, 150);
}
function refreshView() {
  if (!state.me) return;
  refreshQuota();
  if (state.view === 'files' && !$('.rename-input')) loadFolder({ quiet: true }).catch(fail);
  if (state.view === 'trash') loadTrash().catch(fail);
  if (state.view === 'shared') loadShared((p, isDir) => go(isDir ? p : parentOf(p))).catch(fail);
  if (state.versionsOf && !$('#panel').hidden) showVersions(state.versionsOf, { quiet: true });
}

// ---------- routing ----------

function route() {
  if (!state.me) return;
  const h = decodeURIComponent(location.hash.slice(1) || '/files/');
  closePanel();
  if (h.startsWith('/trash')) return showView('trash');
  if (h.startsWith('/shared')) return showView('shared');
  if (h.startsWith('/devices')) return showView('devices');
  if (h.startsWith('/admin') && state.me.is_admin) return showView('admin');
  if (h.startsWith('/search/')) { state.search = h.slice(8); return showView('files'); }
  state.search = null;
  state.path = h.startsWith('/files') ? (h.slice(6) || '/') : '/';
  if (state.path.length > 1 && state.path.endsWith('/')) state.path = state.path.slice(0, -1);
  showView('files');
}
window.addEventListener('hashchange', route);
const go = (path) => { location.hash = '#/files' + encodeURI(path === '/' ? '/' : path); };

function showView(v) {
  state.view = v;
  $('#files-view').hidden = v !== 'files';
  $('#trash-view').hidden = v !== 'trash';
  $('#shared-view').hidden = v !== 'shared';
  $('#devices-view').hidden = v !== 'devices';
  $('#admin-view').hidden = v !== 'admin';
  $$('.views a').forEach((a) => a.classList.toggle('active', a.dataset.view === v));
  if (v === 'files') loadFolder().catch(fail);
  if (v === 'trash') loadTrash().catch(fail);
  if (v === 'shared') loadShared((p, isDir) => go(isDir ? p : parentOf(p))).catch(fail);
  if (v === 'devices') loadDevices().catch(fail);
  if (v === 'admin') loadUsers().catch(fail);
}

// ---------- folder view ----------

async function loadFolder({ quiet = false } = {}) {
  let entries;
  const path = state.path;
  if (state.search) {
    entries = await api('GET', `/api/v1/search?${q({ q: state.search })}`);
    $('#search').value = state.search;
  } else {
    try {
      entries = (await api('GET', `/api/v1/files?${q({ path, sort: state.sort, order: state.order, limit: 5000 })}`)).entries;
    } catch (e) {
      // The folder went away (moved or deleted elsewhere): show where it was.
      if (quiet && e.status === 404 && path !== '/') { go(parentOf(path)); return; }
      throw e;
    }
    if (path !== state.path) return;
  }
  state.entries = entries;
  const known = new Set(entries.map((e) => e.path));
  state.selected = new Set([...state.selected].filter((p) => known.has(p)));
  render();
}

function crumbs() {
  const nav = $('#crumbs');
  nav.replaceChildren();
  if (state.search) { nav.append(el('span', { text: `Search results for “${state.search}”` })); return; }
  const parts = state.path.split('/').filter(Boolean);
  const add = (label, path) => {
    const a = el('a', { href: '#/files' + encodeURI(path), 'data-path': path, text: label });
    dropTarget(a, path);
    nav.append(a);
  };
  add('Home', '/');
  let acc = '';
  for (const p of parts) { acc += '/' + p; nav.append(el('span', { text: ' / ' })); add(p, acc); }
}

function render() {
  crumbs();
  $('#sort').value = state.sort;
  $('#order').textContent = state.order === 'asc' ? '↑' : '↓';
  $('#layout').textContent = state.layout === 'list' ? 'Grid' : 'List';
  const body = $('#list tbody');
  body.replaceChildren();
  const grid = $('#grid');
  grid.replaceChildren();
  $('#list').hidden = state.layout !== 'list';
  grid.hidden = state.layout !== 'grid';
  $('#empty').hidden = state.entries.length > 0;
  for (const e of state.entries) {
    if (state.layout === 'list') body.append(row(e)); else grid.append(tile(e));
  }
  updateSelection();
}

function row(e) {
  const tr = el('tr', { class: 'row', 'data-path': e.path, 'data-dir': e.is_dir ? '1' : '0', draggable: 'true', tabindex: '-1' });
  const check = el('input', { type: 'checkbox', 'aria-label': `Select ${e.name}` });
  check.addEventListener('click', (ev) => { ev.stopPropagation(); toggle(e.path); });
  const nameCell = el('td', {}, el('div', { class: 'name' },
    isImage(e) ? el('img', { class: 'thumb', loading: 'lazy', alt: '', src: contentUrl(e.path) }) : icon(e),
    el('span', { class: 'label', text: state.search ? e.path : e.name }), shareChip(e)));
  tr.append(el('td', { class: 'sel' }, check), nameCell,
    el('td', { class: 'num', text: e.is_dir ? '' : size(e.size) }),
    el('td', { class: 'date', text: when(e.mtime) }));
  wireItem(tr, e);
  return tr;
}

// Shared with you (at the share's own folder or file: by whom, and as what).
function shareChip(e) {
  if (!e.shared || !e.shared.mount_point) return '';
  return el('span', { class: 'chip shared-chip', title: `Shared with you by ${e.shared.owner}`, text: `${e.shared.owner} · ${e.shared.role}` });
}

function tile(e) {
  const t = el('div', { class: 'tile', 'data-path': e.path, 'data-dir': e.is_dir ? '1' : '0', draggable: 'true', tabindex: '-1' },
    isImage(e) ? el('img', { loading: 'lazy', alt: '', src: contentUrl(e.path) }) : el('div', { class: 'big' }, icon(e)),
    el('div', { class: 'label', text: e.name }),
    el('div', { class: 'muted', text: e.is_dir ? '' : size(e.size) }));
  wireItem(t, e);
  return t;
}

function wireItem(node, e) {
  node.addEventListener('click', (ev) => {
    if (ev.shiftKey && state.anchor) rangeSelect(e.path);
    else if (ev.ctrlKey || ev.metaKey) toggle(e.path);
    else { state.selected = new Set([e.path]); state.allChosen = false; state.anchor = e.path; updateSelection(); }
  });
  node.addEventListener('dblclick', () => open(e));
  node.addEventListener('dragstart', (ev) => {
    if (!state.selected.has(e.path)) { state.selected = new Set([e.path]); updateSelection(); }
    ev.dataTransfer.setData('application/x-cairn-paths', JSON.stringify([...state.selected]));
    ev.dataTransfer.effectAllowed = 'move';
  });
  if (e.is_dir) dropTarget(node, e.path);
}

// A folder (row, tile or breadcrumb) that accepts entries dragged from this page.
function dropTarget(node, folder) {
  node.addEventListener('dragover', (ev) => {
    if (ev.dataTransfer.types.includes('application/x-cairn-paths')) { ev.preventDefault(); ev.stopPropagation(); node.classList.add('drop-target'); }
  });
  node.addEventListener('dragleave', () => node.classList.remove('drop-target'));
  node.addEventListener('drop', (ev) => {
    const raw = ev.dataTransfer.getData('application/x-cairn-paths');
    if (!raw) return;
    ev.preventDefault(); ev.stopPropagation();
    node.classList.remove('drop-target');
    transfer('move', JSON.parse(raw), folder).catch(fail);
  });
}

/// Move or copy `paths` into `folder`, keeping their names; says what it did.
async function transfer(verb, paths, folder) {
  let n = 0;
  for (const p of paths) {
    if (p === folder || folder.startsWith(p + '/')) continue;
    if (verb === 'move' && parentOf(p) === folder) continue;
    let to = joinPath(folder, baseName(p));
    // A copy into its own folder gets a new name rather than an error.
    if (verb === 'copy' && parentOf(p) === folder) to = joinPath(folder, copyName(baseName(p)));
    await api('POST', `/api/v1/${verb}`, { json: { from: p, to } });
    n++;
  }
  if (n) toast(`${verb === 'move' ? 'Moved' : 'Copied'} ${plural(n, 'item')} to ${placeName(folder)}`);
  state.selected.clear();
  await loadFolder();
  if (verb === 'copy') refreshQuota();
}
function copyName(name) {
  const dot = name.lastIndexOf('.');
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ''];
  const taken = new Set(state.entries.map((e) => e.name));
  for (let i = 1; ; i++) {
    const candidate = `${stem} (copy${i > 1 ? ` ${i}` : ''})${ext}`;
    if (!taken.has(candidate)) return candidate;
  }
}

async function moveOrCopy(verb) {
  const paths = [...state.selected];
  if (!paths.length) return;
  const folder = await pickFolder({
    verb: verb === 'move' ? 'Move' : 'Copy',
    count: paths.length,
    start: state.search ? '/' : state.path,
    moving: verb === 'move' ? paths : [],
  });
  if (folder != null) await transfer(verb, paths, folder).catch(fail);
}
$('#move-btn').addEventListener('click', () => moveOrCopy('move'));
$('#copy-btn').addEventListener('click', () => moveOrCopy('copy'));

function toggle(path) {
  if (state.selected.has(path)) state.selected.delete(path); else state.selected.add(path);
  state.anchor = path;
  state.allChosen = false;
  updateSelection();
}
function rangeSelect(path) {
  const paths = state.entries.map((e) => e.path);
  const [a, b] = [paths.indexOf(state.anchor), paths.indexOf(path)].sort((x, y) => x - y);
  state.selected = new Set(paths.slice(a, b + 1));
  state.allChosen = false;
  updateSelection();
}
function selectAll(on) {
  state.selected = on ? new Set(state.entries.map((e) => e.path)) : new Set();
  state.allChosen = on;
  updateSelection();
}
function updateSelection() {
  $$('[data-path].row, [data-path].tile').forEach((n) => {
    const on = state.selected.has(n.dataset.path);
    n.classList.toggle('selected', on);
    const c = n.querySelector('input[type=checkbox]');
    if (c) c.checked = on;
  });
  const n = state.selected.size;
  const one = n === 1 ? state.entries.find((e) => state.selected.has(e.path)) : null;
  $('#rename-btn').disabled = n !== 1;
  $('#delete-btn').disabled = n === 0;
  $('#move-btn').disabled = n === 0;
  $('#copy-btn').disabled = n === 0;
  $('#versions-btn').disabled = !one || one.is_dir;
  // Only the owner shares: not something shared with you, nor anything inside it.
  $('#share-btn').disabled = !one || !!one.shared;
  // What a viewer may not do is not offered (the server refuses it anyway).
  const viewing = selectedEntries().some((e) => e.shared && e.shared.role === 'viewer' && !e.shared.mount_point);
  if (viewing) { $('#rename-btn').disabled = true; $('#delete-btn').disabled = true; $('#move-btn').disabled = true; }
  // Checked only for "everything": all of several items, or what select-all chose.
  const all = n > 0 && n === state.entries.length && (n > 1 || state.allChosen);
  const box = $('#select-all');
  box.checked = all;
  box.indeterminate = n > 0 && n < state.entries.length;
}
const selectedEntries = () => state.entries.filter((e) => state.selected.has(e.path));

function open(e) {
  if (e.is_dir) { state.selected.clear(); go(e.path); } else preview(e);
}

// ---------- actions ----------

$('#new-folder').addEventListener('click', newFolder);
async function newFolder() {
  const name = prompt('Name of the new folder');
  if (!name) return;
  try {
    await api('POST', '/api/v1/folders', { json: { path: joinPath(state.path, name) } });
    await loadFolder();
  } catch (e) { fail(e); }
}

$('#rename-btn').addEventListener('click', () => { const [e] = selectedEntries(); if (e) rename(e); });
function rename(e) {
  const node = $(`[data-path="${CSS.escape(e.path)}"] .label`);
  if (!node) return;
  const input = el('input', { class: 'rename-input', value: e.name, 'aria-label': 'New name' });
  node.replaceWith(input);
  input.focus();
  input.setSelectionRange(0, e.is_dir ? e.name.length : Math.max(0, e.name.lastIndexOf('.')) || e.name.length);
  let done = false;
  const finish = async (commit) => {
    if (done) return;
    done = true;
    const name = input.value.trim();
    if (commit && name && name !== e.name) {
      try {
        await api('POST', '/api/v1/move', { json: { from: e.path, to: joinPath(parentOf(e.path), name) } });
        state.selected = new Set([joinPath(parentOf(e.path), name)]);
      } catch (err) { fail(err); }
    }
    input.remove();
    await loadFolder();
  };
  input.addEventListener('keydown', (ev) => {
    ev.stopPropagation();
    if (ev.key === 'Enter') finish(true);
    if (ev.key === 'Escape') finish(false);
  });
  input.addEventListener('blur', () => finish(true));
  input.addEventListener('click', (ev) => ev.stopPropagation());
  input.addEventListener('dblclick', (ev) => ev.stopPropagation());
}

$('#delete-btn').addEventListener('click', deleteSelected);
async function deleteSelected() {
  const items = selectedEntries();
  if (!items.length) return;
  try {
    for (const e of items) await api('DELETE', `/api/v1/files?${q({ path: e.path })}`);
    toast(`Moved ${plural(items.length, 'item')} to the trash`);
    state.selected.clear();
    await loadFolder();
    refreshQuota();
  } catch (e) { fail(e); }
}

$('#sort').addEventListener('change', (ev) => { state.sort = ev.target.value; localStorage.setItem('cairn.sort', state.sort); loadFolder().catch(fail); });
$('#order').addEventListener('click', () => { state.order = state.order === 'asc' ? 'desc' : 'asc'; localStorage.setItem('cairn.order', state.order); loadFolder().catch(fail); });
$('#layout').addEventListener('click', toggleLayout);
function toggleLayout() { state.layout = state.layout === 'list' ? 'grid' : 'list'; localStorage.setItem('cairn.layout', state.layout); render(); }
$('#select-all').addEventListener('change', (ev) => selectAll(ev.target.checked));
$('#theme').addEventListener('click', () => applyTheme(document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark'));
$('#search').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter') { const v = ev.target.value.trim(); location.hash = v ? '#/search/' + encodeURIComponent(v) : '#/files/'; }
  if (ev.key === 'Escape') { ev.target.value = ''; ev.target.blur(); if (state.search) location.hash = '#/files/'; }
});
$('#alert-close').addEventListener('click', dismissAlert);

// ---------- preview ----------

/// Show a file (or, with `url`, an earlier version of it) without downloading it.
async function preview(e, { url = contentUrl(e.path), download = contentUrl(e.path, true), title = e.name } = {}) {
  const dlg = $('#preview');
  const body = $('#preview-body');
  $('#preview-title').textContent = title;
  $('#preview-download').href = download;
  body.replaceChildren();
  const t = e.content_type || '';
  if (t.startsWith('image/')) body.append(el('img', { src: url, alt: title }));
  else if (t === 'application/pdf') body.append(el('iframe', { src: url, title }));
  else if (t.startsWith('video/')) body.append(el('video', { src: url, controls: true }));
  else if (t.startsWith('audio/')) body.append(el('audio', { src: url, controls: true }));
  else if (isText(e) || e.size < 256 * 1024) {
    try {
      const res = await api('GET', url, { raw: true, headers: { Range: 'bytes=0-1048575' } });
      const text = await res.text();
      body.append(el('pre', { text: text + (e.size > 1048576 ? '\n…' : '') }));
    } catch (err) { fail(err); }
  } else body.append(el('p', { class: 'muted', text: 'No preview for this kind of file.' }));
  if (!dlg.open) dlg.showModal();
}
$('#preview-close').addEventListener('click', () => $('#preview').close());

// ---------- versions panel ----------

$('#versions-btn').addEventListener('click', () => { const [e] = selectedEntries(); if (e && !e.is_dir) showVersions(e); });

async function openSharing(e) {
  state.versionsOf = null;
  $('#panel-title').textContent = `Share ${e.name}`;
  // Not the last panel's forms while this one loads: what is typed there would be lost.
  $('#panel-body').replaceChildren(el('p', { class: 'muted', text: 'Loading…' }));
  $('#panel').hidden = false;
  try { await showSharing(e, $('#panel-body')); } catch (err) { fail(err); }
}
$('#share-btn').addEventListener('click', () => { const [e] = selectedEntries(); if (e && !e.shared) openSharing(e); });
function closePanel() { $('#panel').hidden = true; state.versionsOf = null; }
$('#panel-close').addEventListener('click', closePanel);

async function showVersions(e, { quiet = false } = {}) {
  state.versionsOf = e;
  const panel = $('#panel');
  $('#panel-title').textContent = `Versions of ${e.name}`;
  const body = $('#panel-body');
  if (!quiet) body.replaceChildren(el('p', { class: 'muted', text: 'Loading…' }));
  panel.hidden = false;
  try {
    const [cur, versions] = await Promise.all([
      api('GET', `/api/v1/stat?${q({ path: e.path })}`),
      api('GET', `/api/v1/versions?${q({ path: e.path })}`),
    ]);
    const list = el('ul', { id: 'versions-list' });
    const line = (label, v) => el('div', {},
      el('strong', { text: label }), ' ',
      el('time', { datetime: v.mtime, text: when(v.mtime, { seconds: true }) }),
      el('span', { class: 'muted', text: ` · ${ago(v.mtime)}` }));
    list.append(el('li', { class: 'current' }, line('Current', cur),
      el('span', { class: 'muted', text: size(cur.size) }),
      el('div', { class: 'actions' },
        el('button', { text: 'Preview', onclick: () => preview(cur) }),
        el('a', { class: 'button', href: contentUrl(e.path, true), text: 'Download' }))));
    for (const v of versions) {
      const restore = el('button', { text: 'Restore', 'data-version': v.id });
      restore.addEventListener('click', async () => {
        try {
          await api('POST', `/api/v1/versions/${v.id}/restore?${q({ path: e.path })}`);
          toast('Version restored; the previous content is kept as a version');
          await loadFolder();
          showVersions({ ...e });
          refreshQuota();
        } catch (err) { fail(err); }
      });
      const label = `Saved ${when(v.mtime, { seconds: true })}`;
      list.append(el('li', { 'data-version': v.id },
        line('Saved', v),
        el('span', { class: 'muted', text: `${size(v.size)} · by ${v.author || 'unknown'} · content ${v.hash.slice(0, 8)} · replaced ${when(v.replaced_at, { seconds: true })}` }),
        el('div', { class: 'actions' },
          el('button', { text: 'Preview', onclick: () => preview({ ...cur, size: v.size }, { url: versionUrl(v.id, e.path, false), download: versionUrl(v.id, e.path, true), title: `${e.name} · ${label}` }) }),
          el('a', { class: 'button', href: versionUrl(v.id, e.path, true), text: 'Download', download: e.name }),
          restore)));
    }
    if (!versions.length) list.append(el('li', { class: 'muted', text: 'No earlier versions.' }));
    body.replaceChildren(list);
  } catch (err) {
    if (quiet && err.status === 404) closePanel(); else fail(err);
  }
}

// ---------- trash ----------

async function loadTrash() {
  const items = await api('GET', '/api/v1/trash');
  const body = $('#trash-list tbody');
  body.replaceChildren();
  $('#trash-empty').hidden = items.length > 0;
  for (const t of items) {
    const restore = el('button', { text: 'Restore', class: 'primary' });
    restore.addEventListener('click', async () => {
      try {
        await api('POST', `/api/v1/trash/${t.id}/restore`);
        toast(`Restored ${t.name} to ${placeName(parentOf(t.path))}`);
        await loadTrash();
        refreshQuota();
      } catch (e) { fail(e); }
    });
    const purge = el('button', { text: 'Delete forever' });
    purge.addEventListener('click', async () => {
      if (!confirm(`Delete ${t.name} for good?`)) return;
      try { await api('DELETE', `/api/v1/trash/${t.id}`); await loadTrash(); refreshQuota(); } catch (e) { fail(e); }
    });
    body.append(el('tr', { class: 'row', 'data-trash': t.id, 'data-path': t.path },
      el('td', {}, el('div', { class: 'name' }, icon({ is_dir: t.is_dir, content_type: '' }), el('span', { text: t.name }))),
      el('td', { class: 'muted was-in', text: placeName(parentOf(t.path)) }),
      el('td', { class: 'num', text: size(t.size) }),
      el('td', { class: 'date', text: when(t.deleted_at) }),
      el('td', {}, restore, ' ', purge)));
  }
}
$('#empty-trash').addEventListener('click', async () => {
  if (!confirm('Delete everything in the trash for good?')) return;
  try { await api('DELETE', '/api/v1/trash'); await loadTrash(); refreshQuota(); } catch (e) { fail(e); }
});

// ---------- admin ----------

// Sizes go to the server as typed ("50 MiB", "50 MB", "10G"): it has the one parser, the same
// as cairnctl's, and answers with the exact bytes or a clear error.
async function loadUsers() {
  const users = await api('GET', '/api/v1/admin/users');
  const body = $('#users-list tbody');
  body.replaceChildren();
  for (const u of users) {
    const quota = el('button', { class: 'quota', text: u.quota == null ? 'none' : size(u.quota), title: 'Change quota' });
    quota.addEventListener('click', async () => {
      const v = prompt(`Quota for ${u.name}, e.g. 50 MiB, 10 GB or 10G (empty for none)`, u.quota == null ? '' : size(u.quota));
      if (v === null) return;
      try {
        const after = await api('PATCH', `/api/v1/admin/users/${encodeURIComponent(u.name)}`, { json: v.trim() ? { quota: v.trim() } : { unlimited: true } });
        toast(after.quota == null ? `${u.name} has no quota now` : `Quota of ${u.name}: ${size(after.quota)}`);
        await loadUsers();
      } catch (e) { fail(e); }
    });
    const able = el('button', { text: u.disabled ? 'Enable' : 'Disable' });
    able.addEventListener('click', async () => {
      try { await api('PATCH', `/api/v1/admin/users/${encodeURIComponent(u.name)}`, { json: { disabled: !u.disabled } }); await loadUsers(); } catch (e) { fail(e); }
    });
    const del = el('button', { text: 'Delete' });
    del.addEventListener('click', async () => {
      if (!confirm(`Delete ${u.name} and all their files?`)) return;
      try { await api('DELETE', `/api/v1/admin/users/${encodeURIComponent(u.name)}`); await loadUsers(); } catch (e) { fail(e); }
    });
    const self = u.name === state.me.name;
    body.append(el('tr', { class: 'row', 'data-user': u.name },
      el('td', { text: u.name }), el('td', { text: u.is_admin ? 'admin' : 'user' }),
      el('td', { class: 'num used', text: size(u.used) }), el('td', {}, quota),
      el('td', { text: u.disabled ? 'disabled' : 'active' }),
      el('td', {}, self ? null : able, ' ', self ? null : del)));
  }
  await loadGroups(users.map((u) => u.name));
}

// Groups: members shown as chips (✕ takes one out), a picker adds any other account.
async function loadGroups(accounts) {
  const groups = await api('GET', '/api/v1/admin/groups');
  const body = $('#groups-list tbody');
  body.replaceChildren();
  const member = (g, u, add) => api(add ? 'PUT' : 'DELETE',
    `/api/v1/admin/groups/${encodeURIComponent(g.name)}/members/${encodeURIComponent(u)}`);
  for (const g of groups) {
    const chips = g.members.map((u) => {
      const out = el('button', { class: 'chip-x', text: '✕', title: `Take ${u} out of ${g.name}`, 'aria-label': `Take ${u} out of ${g.name}` });
      out.addEventListener('click', async () => {
        try { await member(g, u, false); toast(`${u} left ${g.name}`); await loadGroups(accounts); } catch (e) { fail(e); }
      });
      return el('span', { class: 'chip', 'data-member': u }, u, ' ', out);
    });
    const others = accounts.filter((a) => !g.members.includes(a));
    const pick = el('select', { 'aria-label': `Add a member to ${g.name}` },
      el('option', { value: '', text: others.length ? 'Add…' : 'everyone is in' }),
      ...others.map((a) => el('option', { value: a, text: a })));
    pick.addEventListener('change', async () => {
      if (!pick.value) return;
      try { await member(g, pick.value, true); toast(`${pick.value} joined ${g.name}`); await loadGroups(accounts); } catch (e) { fail(e); }
    });
    const del = el('button', { text: 'Delete' });
    del.addEventListener('click', async () => {
      if (!confirm(`Delete the group ${g.name}? Its members keep their accounts and files.`)) return;
      try { await api('DELETE', `/api/v1/admin/groups/${encodeURIComponent(g.name)}`); await loadGroups(accounts); } catch (e) { fail(e); }
    });
    body.append(el('tr', { class: 'row', 'data-group': g.name },
      el('td', { text: g.name }),
      el('td', { class: 'members' }, ...(chips.length ? chips : [el('span', { class: 'muted', text: 'no members' })])),
      el('td', {}, pick), el('td', {}, del)));
  }
}
$('#new-group').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const done = $('#new-group-result');
  done.textContent = '';
  done.className = 'form-result';
  try {
    const g = await api('POST', '/api/v1/admin/groups', { json: { name: (f.get('name') || '').trim() } });
    ev.target.reset();
    done.textContent = `Created the group ${g.name}; add its members in the table.`;
    await loadUsers();
  } catch (e) {
    done.textContent = e.message;
    done.className = 'form-result error';
  }
});
$('#new-user').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const quota = (f.get('quota') || '').trim();
  const done = $('#new-user-result');
  done.textContent = '';
  done.className = 'form-result';
  try {
    const u = await api('POST', '/api/v1/admin/users', { json: { name: f.get('name'), password: f.get('password'), is_admin: !!f.get('is_admin'), ...(quota ? { quota } : {}) } });
    ev.target.reset();
    done.textContent = `Created ${u.name}${u.is_admin ? ' (admin)' : ''} with ${u.quota == null ? 'no quota' : `a quota of ${size(u.quota)}`}.`;
    await loadUsers();
  } catch (e) {
    done.textContent = e.message;
    done.className = 'form-result error';
  }
});

// ---------- uploads ----------

// Bytes an upload to `path` frees by replacing a file of this folder.
const replacedSize = (path) => { const e = state.entries.find((x) => x.path === path && !x.is_dir); return e ? e.size : 0; };

initUploads(scheduleRefresh);

$('#file-input').addEventListener('change', (ev) => {
  const files = [...ev.target.files].map((f) => [f, joinPath(state.path, f.name)]);
  ev.target.value = '';
  enqueue(files, replacedSize).catch(fail);
});

// Walk a dropped folder (webkitGetAsEntry), creating empty folders too.
async function walk(entry, dir, files, folders) {
  if (entry.isFile) {
    const file = await new Promise((res, rej) => entry.file(res, rej));
    files.push([file, joinPath(dir, entry.name)]);
  } else if (entry.isDirectory) {
    const path = joinPath(dir, entry.name);
    folders.push(path);
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
      if (!batch.length) break;
      for (const e of batch) await walk(e, path, files, folders);
    }
  }
}

const drop = $('#drop');
let dragDepth = 0;
const fromDesktop = (ev) => ev.dataTransfer && ev.dataTransfer.types.includes('Files');
drop.addEventListener('dragenter', (ev) => { if (fromDesktop(ev)) { dragDepth++; drop.classList.add('dragging'); } });
drop.addEventListener('dragleave', (ev) => { if (fromDesktop(ev) && --dragDepth <= 0) { dragDepth = 0; drop.classList.remove('dragging'); } });
drop.addEventListener('dragover', (ev) => { if (fromDesktop(ev)) { ev.preventDefault(); ev.dataTransfer.dropEffect = 'copy'; } });
drop.addEventListener('drop', async (ev) => {
  if (!fromDesktop(ev)) return;
  ev.preventDefault();
  dragDepth = 0;
  drop.classList.remove('dragging');
  if (state.search) return toast('Open a folder to upload into it');
  const base = state.path;
  const files = [], folders = [];
  const items = [...(ev.dataTransfer.items || [])].filter((i) => i.kind === 'file');
  const entries = items.map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
  try {
    if (entries.some((e) => e && e.isDirectory)) {
      // A folder from the desktop: walk it (this also finds its empty folders).
      for (const e of entries) if (e) await walk(e, base, files, folders);
    } else {
      // Plain files, or files that know their place in a dropped folder.
      for (const f of ev.dataTransfer.files) {
        const rel = f.webkitRelativePath || f.name;
        const parts = rel.split('/').slice(0, -1);
        for (let i = 1; i <= parts.length; i++) {
          const dir = joinPath(base, parts.slice(0, i).join('/'));
          if (!folders.includes(dir)) folders.push(dir);
        }
        files.push([f, joinPath(base, rel)]);
      }
    }
    // The folders are made only once the batch is known to fit: one that cannot leaves no trace.
    await enqueue(files, replacedSize, async () => {
      for (const f of folders) {
        try { await api('POST', '/api/v1/folders', { json: { path: f } }); } catch (e) { if (e.code !== 'already_exists') throw e; }
      }
      if (folders.length) await loadFolder();
    });
  } catch (e) { fail(e); }
});
document.addEventListener('dragover', (ev) => { if (fromDesktop(ev)) ev.preventDefault(); });
document.addEventListener('drop', (ev) => { if (fromDesktop(ev)) ev.preventDefault(); });

// ---------- keyboard ----------

document.addEventListener('keydown', (ev) => {
  if (!state.me || ev.target.matches('input, textarea, select') || $('#preview').open || $('#picker').open) return;
  if (state.view !== 'files') return;
  const k = ev.key;
  const focusIndex = () => state.entries.findIndex((e) => e.path === state.anchor);
  const moveFocus = (d) => {
    if (!state.entries.length) return;
    const i = Math.max(0, Math.min(state.entries.length - 1, focusIndex() + d));
    const p = state.entries[i].path;
    state.anchor = p;
    state.selected = new Set([p]);
    state.allChosen = false;
    updateSelection();
    const n = $(`[data-path="${CSS.escape(p)}"]`);
    if (n) n.scrollIntoView({ block: 'nearest' });
  };
  if (ev.ctrlKey || ev.metaKey || ev.altKey) {
    if (k === 'a' && !ev.altKey) { ev.preventDefault(); selectAll(true); }
    return;
  }
  if (k === '/') { ev.preventDefault(); $('#search').focus(); }
  else if (k === 'n') newFolder();
  else if (k === 'u') $('#file-input').click();
  else if (k === 'g') toggleLayout();
  else if (k === 'm' && state.selected.size) { ev.preventDefault(); moveOrCopy('move'); }
  else if (k === 'c' && state.selected.size) { ev.preventDefault(); moveOrCopy('copy'); }
  else if (k === 'Delete') deleteSelected();
  else if (k === 'F2') { const [e] = selectedEntries(); if (e) { ev.preventDefault(); rename(e); } }
  else if (k === 'v') { const [e] = selectedEntries(); if (e && !e.is_dir) showVersions(e); }
  else if (k === 's') { const [e] = selectedEntries(); if (e && !e.shared && state.selected.size === 1) { ev.preventDefault(); openSharing(e); } }
  else if (k === 'Enter') { const [e] = selectedEntries(); if (e) open(e); }
  else if (k === 'Backspace' && state.path !== '/') go(parentOf(state.path));
  else if (k === 'ArrowDown' || k === 'j') { ev.preventDefault(); moveFocus(1); }
  else if (k === 'ArrowUp' || k === 'k') { ev.preventDefault(); moveFocus(-1); }
  else if (k === 'Escape') { state.selected.clear(); updateSelection(); closePanel(); }
});

start();
