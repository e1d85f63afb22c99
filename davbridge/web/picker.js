// The folder picker of "Move to…" and "Copy to…": a dialog that walks folders (mouse or
// keyboard: arrows to choose, Enter to open, Backspace to go up, Enter on the button to pick).

import { $, el, icon } from './dom.js';
import { api, q } from './api.js';
import { joinPath, parentOf, baseName } from './format.js';

/// Ask for a destination folder, starting at `start`. `verb` is "Move" or "Copy"; `moving`
/// are the paths being moved (they and their insides cannot be chosen). Resolves to the
/// folder's path, or null when the user cancels.
export function pickFolder({ verb, count, start, moving = [] }) {
  const dlg = $('#picker');
  const list = $('#picker-list');
  const ok = $('#picker-ok');
  let here = start;
  const blocked = (p) => moving.some((m) => p === m || p.startsWith(m + '/'));

  async function show(folder) {
    here = folder;
    const crumbs = $('#picker-crumbs');
    crumbs.replaceChildren();
    const parts = folder.split('/').filter(Boolean);
    let acc = '';
    const crumb = (label, path) => el('button', { type: 'button', class: 'link', text: label, onclick: () => show(path) });
    crumbs.append(crumb('Home', '/'));
    for (const p of parts) { acc += '/' + p; crumbs.append(el('span', { text: ' / ' }), crumb(p, acc)); }
    ok.textContent = `${verb} here`;
    ok.disabled = blocked(folder);
    list.replaceChildren(el('li', { class: 'muted', text: 'Loading…' }));
    let entries = [];
    try {
      entries = (await api('GET', `/api/v1/files?${q({ path: folder, sort: 'name', order: 'asc', limit: 5000 })}`)).entries;
    } catch (e) {
      list.replaceChildren(el('li', { class: 'error', text: e.message }));
      return;
    }
    if (here !== folder) return;
    const dirs = entries.filter((e) => e.is_dir && !blocked(e.path));
    list.replaceChildren(...dirs.map((d) => el('li', {},
      el('button', { type: 'button', class: 'folder', 'data-path': d.path, onclick: () => show(d.path) }, icon(d), el('span', { text: d.name })))));
    if (folder !== '/') list.prepend(el('li', {}, el('button', { type: 'button', class: 'folder up', 'data-path': parentOf(folder), onclick: () => show(parentOf(folder)) }, el('span', { text: '↰ Up' }))));
    if (!dirs.length) list.append(el('li', { class: 'muted', text: 'No folders here.' }));
    // The first folder inside, or (none inside) the button that picks this one.
    const first = list.querySelector('button.folder:not(.up)');
    (first || ok).focus();
  }

  return new Promise((resolve) => {
    $('#picker-title').textContent = `${verb} ${count === 1 ? `“${baseName(moving[0] || '')}”` : `${count} items`} to…`;
    const done = (value) => {
      dlg.removeEventListener('keydown', keys);
      ok.onclick = null;
      $('#picker-cancel').onclick = null;
      $('#picker-new').onclick = null;
      dlg.close();
      resolve(value);
    };
    const keys = (ev) => {
      const buttons = [...list.querySelectorAll('button')];
      const i = buttons.indexOf(document.activeElement);
      if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
        ev.preventDefault();
        const next = buttons[Math.max(0, Math.min(buttons.length - 1, i + (ev.key === 'ArrowDown' ? 1 : -1)))];
        if (next) next.focus();
      } else if (ev.key === 'Backspace' && here !== '/') {
        ev.preventDefault();
        show(parentOf(here));
      } else if (ev.key === 'Escape') {
        ev.preventDefault();
        done(null);
      }
    };
    dlg.addEventListener('keydown', keys);
    ok.onclick = () => done(here);
    $('#picker-cancel').onclick = () => done(null);
    $('#picker-new').onclick = async () => {
      const name = prompt('Name of the new folder');
      if (!name) return;
      try {
        await api('POST', '/api/v1/folders', { json: { path: joinPath(here, name) } });
        show(joinPath(here, name));
      } catch (e) { $('#picker-list').prepend(el('li', { class: 'error', text: e.message })); }
    };
    dlg.showModal();
    show(start);
  });
}
