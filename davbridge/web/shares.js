// Sharing: the dialog that shares one of your folders or files with accounts and groups (and
// changes or ends those shares), and the "Shared" view: what others share with you and what you
// share. Who may do what is decided by the server; this page only asks.

import { $, el, toast, fail } from './dom.js';
import { api } from './api.js';
import { when } from './format.js';

const roleName = { viewer: 'Viewer (read)', editor: 'Editor (read and change)' };

function roleSelect(value, label) {
  const s = el('select', { 'aria-label': label });
  for (const r of ['viewer', 'editor']) s.append(el('option', { value: r, text: roleName[r] }));
  s.value = value;
  return s;
}

/// Fill `body` (the side panel) with the sharing of your entry `e`; `changed()` after each change.
export async function showSharing(e, body, changed = () => {}) {
  const mine = (await api('GET', '/api/v1/shares')).filter((s) => s.file_id === e.id);
  const list = el('ul', { id: 'shares-list' });
  for (const s of mine) {
    const who = s.user ? s.user : `group ${s.group}`;
    const role = roleSelect(s.role, `Role of ${who}`);
    role.addEventListener('change', async () => {
      try {
        await api('POST', '/api/v1/shares', { json: { path: e.path, ...(s.user ? { user: s.user } : { group: s.group }), role: role.value } });
        toast(`${who} is now ${role.value === 'editor' ? 'an editor' : 'a viewer'} of ${e.name}`);
        changed();
      } catch (err) { fail(err); }
    });
    const stop = el('button', { text: 'Stop sharing', 'data-share': s.id });
    stop.addEventListener('click', async () => {
      try {
        await api('DELETE', `/api/v1/shares/${s.id}`);
        toast(`${e.name} is no longer shared with ${who}`);
        await showSharing(e, body, changed);
        changed();
      } catch (err) { fail(err); }
    });
    list.append(el('li', { 'data-with': who }, el('strong', { text: who }), ' ',
      el('span', { class: 'muted', text: `since ${when(s.created_at)}` }), el('div', { class: 'actions' }, role, stop)));
  }
  if (!mine.length) list.append(el('li', { class: 'muted', text: `${e.name} is not shared.` }));

  const form = el('form', { id: 'share-form', class: 'new-user' });
  const who = el('input', { name: 'with', required: 'true', autocomplete: 'off', placeholder: 'account or group name' });
  const kind = el('select', { name: 'kind', 'aria-label': 'Account or group' },
    el('option', { value: 'user', text: 'Account' }), el('option', { value: 'group', text: 'Group' }));
  const role = roleSelect('viewer', 'Role');
  form.append(el('label', {}, 'Share with ', who), kind, role, el('button', { class: 'primary', text: 'Share' }));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = who.value.trim();
    try {
      await api('POST', '/api/v1/shares', { json: { path: e.path, [kind.value]: name, role: role.value } });
      toast(`Shared ${e.name} with ${kind.value === 'group' ? 'group ' : ''}${name} as ${role.value}`);
      await showSharing(e, body, changed);
      changed();
    } catch (err) { fail(err); }
  });
  body.replaceChildren(
    el('p', { class: 'muted', text: 'Viewers can open and download; editors can also add, change, rename, delete and restore versions. What they add counts against your quota.' }),
    list, form, await linksSection(e, body, changed));
}

/// Public links to `e`: those made (with Turn off), and a form for a new one whose address is
/// shown once (only its hash is kept).
async function linksSection(e, body, changed, made = null) {
  const links = (await api('GET', '/api/v1/links')).filter((l) => l.file_id === e.id);
  const list = el('ul', { id: 'links-list' });
  for (const l of links) {
    const what = [l.upload_only ? 'upload only' : 'view and download', l.has_password ? 'password' : 'no password',
      l.expires_at ? `until ${when(l.expires_at)}` : null, l.downloads_left != null ? `${l.downloads_left} downloads left` : null]
      .filter(Boolean).join(' · ');
    const off = el('button', { text: 'Turn off', 'data-link': l.id });
    off.addEventListener('click', async () => {
      try {
        await api('DELETE', `/api/v1/links/${l.id}`);
        toast(`The link to ${e.name} no longer works`);
        body.querySelector('#links-section').replaceWith(await linksSection(e, body, changed));
      } catch (err) { fail(err); }
    });
    list.append(el('li', { 'data-link': l.id }, el('span', { text: `Link made ${when(l.created_at)}` }),
      el('span', { class: 'muted', text: what }), el('div', { class: 'actions' }, off)));
  }
  if (!links.length) list.append(el('li', { class: 'muted', text: 'No public link.' }));
  const form = el('form', { id: 'link-form', class: 'new-user' });
  const password = el('input', { name: 'password', type: 'password', autocomplete: 'new-password', placeholder: 'optional, 8+ characters' });
  const expires = el('input', { name: 'expires', type: 'date' });
  const downloads = el('input', { name: 'downloads', type: 'number', min: '1', placeholder: 'no limit' });
  const uploadOnly = el('input', { name: 'upload_only', type: 'checkbox' });
  form.append(el('label', {}, 'Password ', password), el('label', {}, 'Expires ', expires),
    el('label', {}, 'Downloads ', downloads));
  if (e.is_dir) form.append(el('label', {}, uploadOnly, ' Upload only: visitors can only send files'));
  form.append(el('button', { class: 'primary', text: 'Make a link' }));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const json = { path: e.path, upload_only: uploadOnly.checked };
    if (password.value) json.password = password.value;
    if (expires.value) json.expires_at = Math.floor(new Date(expires.value + 'T23:59:59').getTime() / 1000);
    if (downloads.value) json.max_downloads = Number(downloads.value);
    try {
      const got = await api('POST', '/api/v1/links', { json });
      toast(`Made a link to ${e.name}`);
      body.querySelector('#links-section').replaceWith(await linksSection(e, body, changed, location.origin + got.page));
      changed();
    } catch (err) { fail(err); }
  });
  const section = el('section', { id: 'links-section' }, el('h3', { text: 'Public links' }));
  if (made) {
    const copy = el('button', { text: 'Copy' });
    copy.addEventListener('click', () => navigator.clipboard?.writeText(made).then(() => toast('Copied')));
    section.append(el('p', {}, 'Send this address (shown only now): ', el('span', { id: 'link-made', class: 'secret', text: made }), ' ', copy));
  }
  section.append(list, form);
  return section;
}

/// The "Shared" view: with me, and by me (with revocation). `open(path)` opens a folder.
export async function loadShared(open) {
  const [incoming, outgoing] = await Promise.all([api('GET', '/api/v1/shares/incoming'), api('GET', '/api/v1/shares')]);
  const inBody = $('#shared-with-me tbody');
  inBody.replaceChildren();
  for (const s of incoming) {
    const place = s.path
      ? el('a', { href: '#', text: s.path, onclick: (ev) => { ev.preventDefault(); open(s.path, s.is_dir); } })
      : el('span', { class: 'muted', text: 'hidden by you' });
    inBody.append(el('tr', { 'data-name': s.name, 'data-owner': s.owner },
      el('td', {}, place), el('td', { text: s.owner }), el('td', { text: s.role }),
      el('td', { class: 'muted', text: s.via_groups.length ? `group ${s.via_groups.join(', ')}` : 'you' })));
  }
  $('#shared-with-me-empty').hidden = incoming.length > 0;
  const outBody = $('#shared-by-me tbody');
  outBody.replaceChildren();
  for (const s of outgoing) {
    const who = s.user ? s.user : `group ${s.group}`;
    const stop = el('button', { text: 'Stop sharing' });
    stop.addEventListener('click', async () => {
      try {
        await api('DELETE', `/api/v1/shares/${s.id}`);
        toast(`No longer shared with ${who}`);
        await loadShared(open);
      } catch (err) { fail(err); }
    });
    outBody.append(el('tr', { 'data-share': s.id },
      el('td', { text: s.path || '(in the trash)' }), el('td', { text: who }), el('td', { text: s.role }), el('td', {}, stop)));
  }
  $('#shared-by-me-empty').hidden = outgoing.length > 0;
}
