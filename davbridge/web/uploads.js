// The uploads box: a row per file with a progress bar and the controls its state allows,
// a summary with speed and time left, and the check that a batch fits the quota before any
// byte is sent. The protocol is in tus.js.

import { $, el, alertBox } from './dom.js';
import { api, session } from './api.js';
import { size, duration, fitMessage } from './format.js';
import { TusUpload } from './tus.js';

const PARALLEL = 3;
const uploads = [];
let paused = false;
let onFinished = () => {};

/// Controls per state: what a person may do with an upload in that state.
const CONTROLS = {
  queued: ['pause', 'cancel'],
  running: ['pause', 'cancel'],
  paused: ['resume', 'cancel'],
  failed: ['retry', 'remove'],
  done: [],
  cancelled: [],
};
const LABELS = {
  pause: ['❚❚', 'Pause'], resume: ['▶', 'Resume'], cancel: ['✕', 'Cancel'],
  retry: ['↻', 'Retry'], remove: ['✕', 'Remove from the list'],
};

// Chunks go by XMLHttpRequest, which reports upload progress (fetch does not).
function xhrSend(url, headers, blob, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PATCH', url);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (ev) => onProgress(ev.loaded);
    xhr.onload = () => resolve({ status: xhr.status, header: (h) => xhr.getResponseHeader(h), text: async () => xhr.responseText });
    xhr.onerror = () => reject(new Error('network error'));
    xhr.onabort = () => reject(new Error('paused'));
    signal.addEventListener('abort', () => xhr.abort());
    xhr.send(blob);
  });
}

const storage = {
  get: (k) => localStorage.getItem(k),
  set: (k, v) => localStorage.setItem(k, v),
  remove: (k) => localStorage.removeItem(k),
};

function stateText(u) {
  switch (u.state) {
    case 'queued': return 'waiting';
    case 'running': return u.sent ? 'uploading' : 'starting';
    case 'paused': return `paused at ${size(u.sent || u.offset)}`;
    case 'failed': return u.error ? u.error.message : 'failed';
    case 'done': return `done · ${size(u.file.size)}`;
    default: return 'cancelled';
  }
}

function draw(u) {
  const li = u.li;
  li.dataset.state = u.state;
  li.className = u.state;
  li.querySelector('.state').textContent = stateText(u);
  const ctl = li.querySelector('.ctl');
  ctl.replaceChildren(...CONTROLS[u.state].map((action) => {
    const [text, title] = LABELS[action];
    return el('button', { text, title, 'aria-label': `${title} ${u.path}`, 'data-action': action, onclick: () => act(u, action) });
  }));
  const pct = u.state === 'done' ? 100 : u.file.size ? Math.floor((100 * (u.sent || 0)) / u.file.size) : 0;
  const bar = li.querySelector('.bar');
  bar.firstElementChild.style.width = `${pct}%`;
  bar.setAttribute('aria-valuenow', String(pct));
}

function act(u, action) {
  if (action === 'pause') { u.pause(); pump(); }
  if (action === 'resume' || action === 'retry') { u.resume(); pump(); }
  if (action === 'cancel') u.cancel().then(pump);
  if (action === 'remove') { u.cancel(); forget(u); }
}

function forget(u) {
  u.li.remove();
  uploads.splice(uploads.indexOf(u), 1);
  if (!uploads.length) $('#uploads').hidden = true;
  summary();
}

function changed(u) {
  draw(u);
  summary();
  if (u.state === 'done') onFinished();
  if (u.state === 'failed' && u.error && u.error.code === 'quota_exceeded') {
    alertBox(`${u.path} was not uploaded: ${u.error.message}. Delete files or empty the trash to make room.`);
  }
  if (u.state !== 'running' && u.state !== 'queued') pump();
}

function pump() {
  if (paused) return;
  const running = uploads.filter((u) => u.state === 'running').length;
  for (const u of uploads.filter((x) => x.state === 'queued').slice(0, Math.max(0, PARALLEL - running))) u.run();
}

let samples = [];
function summary() {
  const active = uploads.filter((u) => u.state !== 'cancelled');
  const total = active.reduce((s, u) => s + u.file.size, 0);
  const sent = active.reduce((s, u) => s + (u.state === 'done' ? u.file.size : (u.sent || 0)), 0);
  const now = performance.now();
  samples.push([now, sent]);
  samples = samples.filter(([t]) => now - t < 5000);
  const [t0, s0] = samples[0];
  const speed = now > t0 ? ((sent - s0) * 1000) / (now - t0) : 0;
  const left = speed > 0 ? (total - sent) / speed : Infinity;
  const done = uploads.filter((u) => u.state === 'done').length;
  const failed = uploads.filter((u) => u.state === 'failed').length;
  const busy = uploads.some((u) => u.state === 'running' || u.state === 'queued');
  $('#up-summary').textContent = busy
    ? `${done}/${uploads.length} · ${size(sent)} of ${size(total)} · ${size(speed)}/s · ${duration(left)} left`
    : `${done}/${uploads.length} done${failed ? ` · ${failed} failed` : ''}`;
  $('#uploads').dataset.busy = busy ? '1' : '0';
  $('#up-pause').hidden = !busy && !paused;
  $('#up-clear').disabled = !uploads.some((u) => u.state === 'done' || u.state === 'cancelled');
  $('#uploads-open').hidden = !$('#uploads').hidden || !uploads.length;
  $('#uploads-open').textContent = busy ? `Uploads (${uploads.length - done})` : 'Uploads';
}

function add(file, path) {
  const u = new TusUpload(file, path, {
    storage,
    send: xhrSend,
    headers: () => (session.csrf ? { 'X-CSRF-Token': session.csrf } : {}),
    onChange: changed,
  });
  u.li = el('li', { 'data-path': path, 'data-state': 'queued' },
    el('span', { class: 'fname', text: path }),
    el('span', { class: 'ctl' }),
    el('div', { class: 'bar', role: 'progressbar', 'aria-label': `Upload of ${path}`, 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0' }, el('span')),
    el('span', { class: 'state' }));
  uploads.push(u);
  $('#up-list').append(u.li);
  draw(u);
}

/// Whether `files` fit the quota now; if not, the user is told how much they need and how
/// much is free, and nothing is sent.
async function fits(files, replaced) {
  const usage = await api('GET', '/api/v1/quota');
  const need = files.reduce((s, [f, p]) => s + Math.max(0, f.size - replaced(p)), 0);
  const msg = fitMessage(need, usage, files.length);
  if (msg) alertBox(msg);
  return !msg;
}

/// Upload `files` ([File, path] pairs). `replaced(path)` gives the size of a file the upload
/// would replace (its bytes are freed). Nothing is sent, and `prepare` (e.g. creating a dropped
/// folder's folders) does not run, when the batch cannot fit: the user is told how much it
/// needs and how much is free.
export async function enqueue(files, replaced = () => 0, prepare = async () => {}) {
  if (files.length && !(await fits(files, replaced))) return false;
  await prepare();
  if (!files.length) return true;
  for (const [f, p] of files) add(f, p);
  $('#uploads').hidden = false;
  summary();
  pump();
  return true;
}

/// Wire the box's buttons; `finished` runs after each completed upload.
export function initUploads(finished) {
  onFinished = finished;
  $('#up-pause').addEventListener('click', (ev) => {
    paused = !paused;
    ev.target.textContent = paused ? 'Resume all' : 'Pause all';
    if (paused) uploads.filter((u) => u.state === 'running' || u.state === 'queued').forEach((u) => u.pause());
    else { uploads.filter((u) => u.state === 'paused').forEach((u) => u.resume()); pump(); }
    summary();
  });
  $('#up-clear').addEventListener('click', () => {
    for (const u of [...uploads]) if (u.state === 'done' || u.state === 'cancelled') forget(u);
    if (!uploads.length) $('#uploads').hidden = true;
    summary();
  });
  // Closing hides the box; uploads still running go on, and the footer's button brings it back.
  $('#up-close').addEventListener('click', () => {
    for (const u of [...uploads]) if (u.state === 'done' || u.state === 'cancelled') forget(u);
    $('#uploads').hidden = true;
    summary();
  });
  $('#uploads-open').addEventListener('click', () => { $('#uploads').hidden = false; summary(); });
}
