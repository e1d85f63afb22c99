// Small DOM helpers and the page's shared widgets (icons, the toast, the alert banner).

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

/// An element with attributes (`class`, `text`, `onclick`…, booleans) and children.
export function el(tag, attrs = {}, ...kids) {
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
}

// Small inline icons (no icon font or emoji font needed): a folder, or a page with a label.
const SVG = 'http://www.w3.org/2000/svg';
export function icon(e) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  const add = (tag, attrs) => {
    const n = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    svg.append(n);
    return n;
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
    const text = add('text', { x: '12.5', y: '18', 'font-size': '6', 'text-anchor': 'middle', fill: '#fff', 'font-family': 'sans-serif', 'font-weight': '700' });
    text.textContent = label;
  }
  return svg;
}

let toastTimer;
/// A short note that goes by itself.
export function toast(msg) {
  const t = $('#toast');
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 3500);
}

/// A message that stays until dismissed (errors a user must not miss, such as a full quota).
export function alertBox(msg) {
  const box = $('#alert');
  $('#alert-text').textContent = msg;
  box.hidden = false;
}
export function dismissAlert() { $('#alert').hidden = true; }

export const fail = (e) => { console.error(e); toast(e.message || String(e)); };
