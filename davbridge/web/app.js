// Cairn's file explorer. Plain JavaScript, no build step: the server embeds this file as is.
// Every action goes through the public REST API (/api/v1) and tus (/api/v1/uploads/).
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
const el = (tag, attrs = {}, ...kids) => {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') n.className = v;
    else if (k === 'text') n.textContent = v;
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else if (v === true) n.setAttribute(k, '');
    else if (v !== false && v != null) n.setAttribute(k, v);
  }
  for (const kid of kids) if (kid != null) n.append(kid);
  return n;
};

const state = {
  me: null,
  csrf: null,
  path: '/',
  entries: [],
  selected: new Set(),
  anchor: null,
  sort: localStorage.getItem('cairn.sort') || 'name',
  order: localStorage.getItem('cairn.order') || 'asc',
  layout: localStorage.getItem('cairn.layout') || 'list',
  view: 'files',
  search: null,
};

// ---------- API ----------

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, url, { json, body, headers = {}, raw = false } = {}) {
  const h = { ...headers };
  if (json !== undefined) { h['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
  if (state.csrf && !['GET', 'HEAD'].includes(method)) h['X-CSRF-Token'] = state.csrf;
  const res = await fetch(url, { method, headers: h, body, credentials: 'same-origin' });
  if (raw) return res;
  if (res.status === 401 && !url.endsWith('/session')) { showSignIn(); throw new ApiError(401, 'unauthenticated', 'Please sign in again'); }
  if (!res.ok) {
    let code = 'error', message = res.statusText;
    try { const e = (await res.json()).error; code = e.code; message = e.message; } catch (_) { /* not JSON */ }
    throw new ApiError(res.status, code, message);
  }
  if (res.status === 204) return null;
  return (res.headers.get('content-type') || '').includes('json') ? res.json() : res;
}

const q = (params) => new URLSearchParams(params).toString();
const contentUrl = (path, download) => `/api/v1/content?${q({ path, ...(download ? { download: 'true' } : {}) })}`;

// ---------- formatting ----------

function size(n) {
  if (n == null) return '';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${i ? n.toFixed(n < 10 ? 1 : 0) : n} ${u[i]}`;
}
function when(iso) {
  const d = new Date(iso);
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}
function duration(s) {
  if (!isFinite(s)) return '…';
  if (s < 60) return `${Math.ceil(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.ceil(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
const joinPath = (dir, name) => (dir === '/' ? '' : dir) + '/' + name;
const parentOf = (p) => p.replace(/\/[^/]*$/, '') || '/';
const baseName = (p) => p.split('/').pop();
const isImage = (e) => (e.content_type || '').startsWith('image/');
const isText = (e) => /^text\/|json|xml|javascript|x-sh|toml|yaml/.test(e.content_type || '');
// Small inline icons (no icon font or emoji font needed): a folder, or a page with a label.
const SVG = 'http://www.w3.org/2000/svg';
function icon(e) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  const add = (tag, attrs) => {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    svg.append(n);
  };
  if (e.is_dir) {
    add('path', { d: 'M2 6a2 2 0 0 1 2-2h5l2 2h9a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2z', fill: '#d9a441' });
    return svg;
  }
  const t = e.content_type || '';
  const [color, label] = t.startsWith('image/') ? ['#3c8dbc', 'IMG'] : t.startsWith('video/') ? ['#8e44ad', 'VID']
    : t.startsWith('audio/') ? ['#16a085', 'AUD'] : t === 'application/pdf' ? ['#c0392b', 'PDF']
    : t.startsWith('text/') ? ['#7f8c8d', 'TXT'] : /zip|tar|gzip|7z|rar/.test(t) ? ['#a0522d', 'ZIP'] : ['#95a5a6', ''];
  add('path', { d: 'M5 2h10l5 5v15H5z', fill: color });
  add('path', { d: 'M15 2v5h5', fill: 'rgba(255,255,255,.45)' });
  if (label) {
    const text = document.createElementNS(SVG, 'text');
    for (const [k, v] of Object.entries({ x: '12.5', y: '18', 'font-size': '6', 'text-anchor': 'middle', fill: '#fff', 'font-family': 'sans-serif', 'font-weight': '700' })) text.setAttribute(k, v);
    text.textContent = label;
    svg.append(text);
  }
  return svg;
}

let toastTimer;
function toast(msg) {
  const t = $('#toast');
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 3500);
}
const fail = (e) => { console.error(e); toast(e.message || String(e)); };

// ---------- theme ----------

function applyTheme(t) {
  document.documentElement.dataset.theme = t;
  localStorage.setItem('cairn.theme', t);
}
applyTheme(localStorage.getItem('cairn.theme') || (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'));

// ---------- sign in / out ----------

function showSignIn() {
  state.me = null; state.csrf = null;
  $('#app').hidden = true;
  $('#signin').hidden = false;
  $('#signin-form input[name=user]').focus();
}

async function start() {
  try {
    const me = await api('GET', '/api/v1/me');
    signedIn(me);
  } catch (e) {
    if (e.status !== 401) fail(e);
    showSignIn();
  }
}

function signedIn(me) {
  state.me = me;
  state.csrf = me.csrf;
  $('#signin').hidden = true;
  $('#app').hidden = false;
  $('#whoami').textContent = me.name;
  $('#admin-link').hidden = !me.is_admin;
  showQuota(me.usage);
  route();
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

function showQuota(u) {
  const bar = $('#quota-bar');
  const pct = u.quota ? Math.min(100, (100 * u.used) / u.quota) : 0;
  bar.firstElementChild.style.width = `${u.quota ? pct : 0}%`;
  bar.classList.toggle('full', pct > 90);
  $('#quota-text').textContent = u.quota ? `${size(u.used)} of ${size(u.quota)} used` : `${size(u.used)} used`;
}
async function refreshQuota() {
  try { showQuota(await api('GET', '/api/v1/quota')); } catch (_) { /* shown next time */ }
}

// ---------- routing ----------

function route() {
  if (!state.me) return;
  const h = decodeURIComponent(location.hash.slice(1) || '/files/');
  closePanel();
  if (h.startsWith('/trash')) return showView('trash');
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
  $('#admin-view').hidden = v !== 'admin';
  $$('.views a').forEach((a) => a.classList.toggle('active', a.dataset.view === v));
  if (v === 'files') loadFolder().catch(fail);
  if (v === 'trash') loadTrash().catch(fail);
  if (v === 'admin') loadUsers().catch(fail);
}

// ---------- folder view ----------

async function loadFolder() {
  let entries;
  if (state.search) {
    entries = await api('GET', `/api/v1/search?${q({ q: state.search })}`);
    $('#search').value = state.search;
  } else {
    const l = await api('GET', `/api/v1/files?${q({ path: state.path, sort: state.sort, order: state.order, limit: 5000 })}`);
    entries = l.entries;
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
    el('span', { class: 'label', text: state.search ? e.path : e.name })));
  tr.append(el('td', { class: 'sel' }, check), nameCell,
    el('td', { class: 'num', text: e.is_dir ? '' : size(e.size) }),
    el('td', { class: 'date', text: when(e.mtime) }));
  wireItem(tr, e);
  return tr;
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
    else { state.selected = new Set([e.path]); state.anchor = e.path; updateSelection(); }
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
    moveInto(JSON.parse(raw), folder).catch(fail);
  });
}

async function moveInto(paths, folder) {
  let moved = 0;
  for (const p of paths) {
    if (p === folder || parentOf(p) === folder || folder.startsWith(p + '/')) continue;
    await api('POST', '/api/v1/move', { json: { from: p, to: joinPath(folder, baseName(p)) } });
    moved++;
  }
  if (moved) toast(`Moved ${moved} item${moved > 1 ? 's' : ''} to ${folder === '/' ? 'Home' : baseName(folder)}`);
  await loadFolder();
}

function toggle(path) {
  if (state.selected.has(path)) state.selected.delete(path); else state.selected.add(path);
  state.anchor = path;
  updateSelection();
}
function rangeSelect(path) {
  const paths = state.entries.map((e) => e.path);
  const [a, b] = [paths.indexOf(state.anchor), paths.indexOf(path)].sort((x, y) => x - y);
  state.selected = new Set(paths.slice(a, b + 1));
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
  $('#versions-btn').disabled = !one || one.is_dir;
  $('#select-all').checked = n > 0 && n === state.entries.length;
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
    toast(`Moved ${items.length} item${items.length > 1 ? 's' : ''} to the trash`);
    state.selected.clear();
    await loadFolder();
    refreshQuota();
  } catch (e) { fail(e); }
}

$('#sort').addEventListener('change', (ev) => { state.sort = ev.target.value; localStorage.setItem('cairn.sort', state.sort); loadFolder().catch(fail); });
$('#order').addEventListener('click', () => { state.order = state.order === 'asc' ? 'desc' : 'asc'; localStorage.setItem('cairn.order', state.order); loadFolder().catch(fail); });
$('#layout').addEventListener('click', toggleLayout);
function toggleLayout() { state.layout = state.layout === 'list' ? 'grid' : 'list'; localStorage.setItem('cairn.layout', state.layout); render(); }
$('#select-all').addEventListener('change', (ev) => { state.selected = ev.target.checked ? new Set(state.entries.map((e) => e.path)) : new Set(); updateSelection(); });
$('#theme').addEventListener('click', () => applyTheme(document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark'));
$('#search').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter') { const v = ev.target.value.trim(); location.hash = v ? '#/search/' + encodeURIComponent(v) : '#/files/'; }
  if (ev.key === 'Escape') { ev.target.value = ''; ev.target.blur(); if (state.search) location.hash = '#/files/'; }
});

// ---------- preview ----------

async function preview(e) {
  const dlg = $('#preview');
  const body = $('#preview-body');
  $('#preview-title').textContent = e.name;
  $('#preview-download').href = contentUrl(e.path, true);
  body.replaceChildren();
  const t = e.content_type || '';
  if (t.startsWith('image/')) body.append(el('img', { src: contentUrl(e.path), alt: e.name }));
  else if (t === 'application/pdf') body.append(el('iframe', { src: contentUrl(e.path), title: e.name }));
  else if (t.startsWith('video/')) body.append(el('video', { src: contentUrl(e.path), controls: true }));
  else if (t.startsWith('audio/')) body.append(el('audio', { src: contentUrl(e.path), controls: true }));
  else if (isText(e) || e.size < 256 * 1024) {
    try {
      const res = await api('GET', contentUrl(e.path), { raw: true, headers: { Range: 'bytes=0-1048575' } });
      const text = await res.text();
      body.append(el('pre', { text: text + (e.size > 1048576 ? '\n…' : '') }));
    } catch (err) { fail(err); }
  } else body.append(el('p', { class: 'muted', text: 'No preview for this kind of file.' }));
  dlg.showModal();
}
$('#preview-close').addEventListener('click', () => $('#preview').close());

// ---------- versions panel ----------

$('#versions-btn').addEventListener('click', () => { const [e] = selectedEntries(); if (e && !e.is_dir) showVersions(e); });
function closePanel() { $('#panel').hidden = true; }
$('#panel-close').addEventListener('click', closePanel);

async function showVersions(e) {
  const panel = $('#panel');
  $('#panel-title').textContent = `Versions of ${e.name}`;
  const body = $('#panel-body');
  body.replaceChildren(el('p', { class: 'muted', text: 'Loading…' }));
  panel.hidden = false;
  try {
    const [cur, versions] = await Promise.all([
      api('GET', `/api/v1/stat?${q({ path: e.path })}`),
      api('GET', `/api/v1/versions?${q({ path: e.path })}`),
    ]);
    const list = el('ul', { id: 'versions-list' });
    list.append(el('li', {}, el('strong', { text: 'Current' }), el('span', { class: 'muted', text: `${when(cur.mtime)} · ${size(cur.size)}` }),
      el('div', { class: 'actions' }, el('a', { class: 'button', href: contentUrl(e.path, true), text: 'Download' }))));
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
      list.append(el('li', { 'data-version': v.id },
        el('span', { text: `${v.author ? v.author : 'unknown'} · ${when(v.mtime)}` }),
        el('span', { class: 'muted', text: `${size(v.size)} · replaced ${when(v.replaced_at)}` }),
        el('div', { class: 'actions' },
          el('a', { class: 'button', href: `/api/v1/versions/${v.id}/content?${q({ path: e.path, download: 'true' })}`, text: 'Download', download: e.name }),
          restore)));
    }
    if (!versions.length) list.append(el('li', { class: 'muted', text: 'No earlier versions.' }));
    body.replaceChildren(list);
  } catch (err) { fail(err); }
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
        toast(`Restored ${t.name}`);
        await loadTrash();
      } catch (e) { fail(e); }
    });
    const purge = el('button', { text: 'Delete forever' });
    purge.addEventListener('click', async () => {
      if (!confirm(`Delete ${t.name} for good?`)) return;
      try { await api('DELETE', `/api/v1/trash/${t.id}`); await loadTrash(); refreshQuota(); } catch (e) { fail(e); }
    });
    body.append(el('tr', { class: 'row', 'data-trash': t.id, 'data-path': t.path },
      el('td', {}, el('div', { class: 'name' }, icon({ is_dir: t.is_dir, content_type: '' }), el('span', { text: t.name }))),
      el('td', { class: 'muted', text: parentOf(t.path) }),
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

function parseSize(s) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$/i.exec(s);
  if (!m) return null;
  return Math.round(parseFloat(m[1]) * { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 }[m[2].toLowerCase()]);
}

async function loadUsers() {
  const users = await api('GET', '/api/v1/admin/users');
  const body = $('#users-list tbody');
  body.replaceChildren();
  for (const u of users) {
    const quota = el('button', { text: u.quota == null ? 'none' : size(u.quota), title: 'Change quota' });
    quota.addEventListener('click', async () => {
      const v = prompt(`Quota for ${u.name} (e.g. 10G; empty for none)`, u.quota == null ? '' : size(u.quota));
      if (v === null) return;
      const bytes = v.trim() ? parseSize(v) : null;
      if (v.trim() && bytes == null) return toast('Not a size');
      try {
        await api('PATCH', `/api/v1/admin/users/${encodeURIComponent(u.name)}`, { json: bytes == null ? { unlimited: true } : { quota: bytes } });
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
    body.append(el('tr', { class: 'row', 'data-user': u.name },
      el('td', { text: u.name }), el('td', { text: u.is_admin ? 'admin' : 'user' }),
      el('td', { class: 'num', text: size(u.used) }), el('td', {}, quota),
      el('td', { text: u.disabled ? 'disabled' : 'active' }),
      el('td', {}, u.name === state.me.name ? null : able, ' ', u.name === state.me.name ? null : del)));
  }
}
$('#new-user').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const quota = (f.get('quota') || '').trim();
  const bytes = quota ? parseSize(quota) : null;
  if (quota && bytes == null) return toast('Quota is not a size');
  try {
    await api('POST', '/api/v1/admin/users', { json: { name: f.get('name'), password: f.get('password'), is_admin: !!f.get('is_admin'), quota: bytes } });
    ev.target.reset();
    await loadUsers();
  } catch (e) { fail(e); }
});

// ---------- uploads (tus 1.0) ----------

const CHUNK = 8 * 1024 * 1024;
const PARALLEL = 3;
const uploads = [];
let uploadsPaused = false;

class Upload {
  constructor(file, path) {
    this.file = file;
    this.path = path;
    this.offset = 0;
    this.state = 'queued'; // queued | running | paused | done | failed | cancelled
    this.url = null;
    this.xhr = null;
    this.key = `cairn.tus.${path}.${file.size}.${file.lastModified}`;
    this.li = el('li', { 'data-path': path, 'data-state': 'queued' },
      el('span', { class: 'fname', text: path }),
      el('span', { class: 'ctl' },
        el('button', { text: '❚❚', title: 'Pause', onclick: () => this.pause() }),
        el('button', { text: '▶', title: 'Resume', onclick: () => this.resume() }),
        el('button', { text: '✕', title: 'Cancel', onclick: () => this.cancel() })),
      el('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0' }, el('span')),
      el('span', { class: 'state', text: 'waiting' }));
  }

  set(stateName, text) {
    this.state = stateName;
    this.li.dataset.state = stateName;
    this.li.className = stateName;
    if (text !== undefined) this.li.querySelector('.state').textContent = text;
    summary();
  }

  progress(sent) {
    const pct = this.file.size ? Math.floor((100 * sent) / this.file.size) : 100;
    const bar = this.li.querySelector('.bar');
    bar.firstElementChild.style.width = `${pct}%`;
    bar.setAttribute('aria-valuenow', String(pct));
    this.sent = sent;
    summary();
  }

  headers(extra = {}) {
    const h = { 'Tus-Resumable': '1.0.0', ...extra };
    if (state.csrf) h['X-CSRF-Token'] = state.csrf;
    return h;
  }

  async run() {
    this.set('running', 'starting');
    try {
      this.url = this.url || localStorage.getItem(this.key);
      if (this.url) {
        const res = await fetch(this.url, { method: 'HEAD', headers: this.headers() });
        if (res.ok) this.offset = Number(res.headers.get('Upload-Offset'));
        else { this.url = null; localStorage.removeItem(this.key); }
      }
      if (!this.url) {
        const b64 = (s) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));
        const meta = `path ${b64(this.path)},mtime ${b64(String(Math.floor(this.file.lastModified / 1000)))}`;
        const res = await fetch('/api/v1/uploads/', { method: 'POST', headers: this.headers({ 'Upload-Length': String(this.file.size), 'Upload-Metadata': meta }) });
        if (!res.ok) throw await tusError(res);
        this.url = res.headers.get('Location');
        this.offset = Number(res.headers.get('Upload-Offset') || 0);
        localStorage.setItem(this.key, this.url);
      }
      this.progress(this.offset);
      while (this.offset < this.file.size) {
        if (this.state !== 'running') return;
        this.set('running', 'uploading');
        this.offset = await this.patch(this.file.slice(this.offset, this.offset + CHUNK));
        this.progress(this.offset);
      }
      localStorage.removeItem(this.key);
      this.set('done', `done · ${size(this.file.size)}`);
      this.progress(this.file.size);
      scheduleRefresh();
    } catch (e) {
      if (this.state === 'paused' || this.state === 'cancelled') return;
      this.set('failed', e.message || 'failed');
    } finally {
      pump();
    }
  }

  patch(blob) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open('PATCH', this.url);
      for (const [k, v] of Object.entries(this.headers({ 'Upload-Offset': String(this.offset), 'Content-Type': 'application/offset+octet-stream' }))) xhr.setRequestHeader(k, v);
      const base = this.offset;
      xhr.upload.onprogress = (ev) => this.progress(base + ev.loaded);
      xhr.onload = () => {
        this.xhr = null;
        if (xhr.status === 204) resolve(Number(xhr.getResponseHeader('Upload-Offset')));
        else {
          let msg = `upload failed (${xhr.status})`;
          try { msg = JSON.parse(xhr.responseText).error.message; } catch (_) { /* keep */ }
          reject(new Error(msg));
        }
      };
      xhr.onerror = () => { this.xhr = null; reject(new Error('network error')); };
      xhr.onabort = () => { this.xhr = null; reject(new Error('paused')); };
      xhr.send(blob);
    });
  }

  pause() {
    if (this.state !== 'running' && this.state !== 'queued') return;
    this.set('paused', `paused at ${size(this.sent || this.offset)}`);
    if (this.xhr) this.xhr.abort();
    pump();
  }

  resume() {
    if (this.state !== 'paused' && this.state !== 'failed') return;
    this.set('queued', 'waiting');
    pump();
  }

  async cancel() {
    if (this.state === 'done') return;
    const was = this.state;
    this.set('cancelled', 'cancelled');
    if (this.xhr) this.xhr.abort();
    localStorage.removeItem(this.key);
    if (this.url && was !== 'done') {
      try { await fetch(this.url, { method: 'DELETE', headers: this.headers() }); } catch (_) { /* expires anyway */ }
    }
    pump();
  }
}

async function tusError(res) {
  try { return new Error((await res.json()).error.message); } catch (_) { return new Error(`upload refused (${res.status})`); }
}

let refreshTimer;
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => { if (state.view === 'files') loadFolder().catch(fail); refreshQuota(); }, 150);
}

function pump() {
  if (uploadsPaused) return;
  const running = uploads.filter((u) => u.state === 'running').length;
  for (const u of uploads.filter((x) => x.state === 'queued').slice(0, Math.max(0, PARALLEL - running))) u.run();
}

let speedSamples = [];
function summary() {
  const active = uploads.filter((u) => !['cancelled'].includes(u.state));
  const total = active.reduce((s, u) => s + u.file.size, 0);
  const sent = active.reduce((s, u) => s + (u.state === 'done' ? u.file.size : (u.sent || 0)), 0);
  const now = performance.now();
  speedSamples.push([now, sent]);
  speedSamples = speedSamples.filter(([t]) => now - t < 5000);
  const [t0, s0] = speedSamples[0];
  const speed = now > t0 ? ((sent - s0) * 1000) / (now - t0) : 0;
  const left = speed > 0 ? (total - sent) / speed : Infinity;
  const done = uploads.filter((u) => u.state === 'done').length;
  const busy = uploads.some((u) => u.state === 'running' || u.state === 'queued');
  $('#up-summary').textContent = busy
    ? `${done}/${uploads.length} · ${size(sent)} of ${size(total)} · ${size(speed)}/s · ${duration(left)} left`
    : `${done}/${uploads.length} done`;
  $('#uploads').dataset.busy = busy ? '1' : '0';
}

function enqueue(file, path) {
  const u = new Upload(file, path);
  uploads.push(u);
  $('#up-list').append(u.li);
  $('#uploads').hidden = false;
  summary();
  pump();
}

$('#up-pause').addEventListener('click', (ev) => {
  uploadsPaused = !uploadsPaused;
  ev.target.textContent = uploadsPaused ? 'Resume all' : 'Pause all';
  if (uploadsPaused) uploads.filter((u) => u.state === 'running' || u.state === 'queued').forEach((u) => u.pause());
  else { uploads.filter((u) => u.state === 'paused').forEach((u) => u.set('queued', 'waiting')); pump(); }
});
$('#up-clear').addEventListener('click', () => {
  for (let i = uploads.length - 1; i >= 0; i--) {
    if (['done', 'cancelled'].includes(uploads[i].state)) { uploads[i].li.remove(); uploads.splice(i, 1); }
  }
  if (!uploads.length) $('#uploads').hidden = true;
  summary();
});

$('#file-input').addEventListener('change', (ev) => {
  for (const f of ev.target.files) enqueue(f, joinPath(state.path, f.name));
  ev.target.value = '';
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
    for (const f of folders) {
      try { await api('POST', '/api/v1/folders', { json: { path: f } }); } catch (e) { if (e.code !== 'already_exists') throw e; }
    }
    if (folders.length) await loadFolder();
    for (const [f, p] of files) enqueue(f, p);
  } catch (e) { fail(e); }
});
document.addEventListener('dragover', (ev) => { if (fromDesktop(ev)) ev.preventDefault(); });
document.addEventListener('drop', (ev) => { if (fromDesktop(ev)) ev.preventDefault(); });

// ---------- keyboard ----------

document.addEventListener('keydown', (ev) => {
  if (!state.me || ev.target.matches('input, textarea, select') || $('#preview').open) return;
  if (state.view !== 'files') return;
  const k = ev.key;
  const focusIndex = () => state.entries.findIndex((e) => e.path === state.anchor);
  const moveFocus = (d) => {
    if (!state.entries.length) return;
    const i = Math.max(0, Math.min(state.entries.length - 1, focusIndex() + d));
    const p = state.entries[i].path;
    state.anchor = p;
    state.selected = new Set([p]);
    updateSelection();
    const n = $(`[data-path="${CSS.escape(p)}"]`);
    if (n) n.scrollIntoView({ block: 'nearest' });
  };
  if (k === '/') { ev.preventDefault(); $('#search').focus(); }
  else if (k === 'n') newFolder();
  else if (k === 'u') $('#file-input').click();
  else if (k === 'g') toggleLayout();
  else if (k === 'Delete') deleteSelected();
  else if (k === 'F2') { const [e] = selectedEntries(); if (e) { ev.preventDefault(); rename(e); } }
  else if (k === 'v') { const [e] = selectedEntries(); if (e && !e.is_dir) showVersions(e); }
  else if (k === 'Enter') { const [e] = selectedEntries(); if (e) open(e); }
  else if (k === 'Backspace' && state.path !== '/') go(parentOf(state.path));
  else if (k === 'ArrowDown' || k === 'j') { ev.preventDefault(); moveFocus(1); }
  else if (k === 'ArrowUp' || k === 'k') { ev.preventDefault(); moveFocus(-1); }
  else if (k === 'a' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); state.selected = new Set(state.entries.map((e) => e.path)); updateSelection(); }
  else if (k === 'Escape') { state.selected.clear(); updateSelection(); closePanel(); }
});

start();
