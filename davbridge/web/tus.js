// A tus 1.0 upload (core + creation + termination) against /api/v1/uploads/. No DOM: the page
// gives it a way to send a chunk with progress (XMLHttpRequest) and a place to remember
// upload URLs (localStorage); under node (tests/web/unit.test.mjs) fetch and a Map do.

/// An error from the server: its HTTP status, the API's error code and message.
export class UploadError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function errorOf(res) {
  try {
    const e = (await res.json()).error;
    return new UploadError(res.status, e.code, e.message);
  } catch (_) {
    return new UploadError(res.status, 'error', `upload refused (${res.status})`);
  }
}

const b64 = (s) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));

/// Send a chunk with fetch (no progress events): the default where XMLHttpRequest is absent.
export async function fetchSend(url, headers, blob, _onProgress, signal) {
  const res = await fetch(url, { method: 'PATCH', headers, body: blob, signal });
  return { status: res.status, header: (h) => res.headers.get(h), text: () => res.text() };
}

/// States: queued → running → done, or paused / failed / cancelled on the way.
/// `paused` and `failed` may resume; `done` and `cancelled` are final.
export class TusUpload {
  /// `file`: a Blob with `size` (and `lastModified`, ms); `path`: where it goes.
  /// Options: `base` (origin, '' in a page), `headers()` (auth, CSRF), `storage` (get, set,
  /// remove), `send` (see fetchSend), `chunk` (bytes per PATCH), `onChange(upload)`.
  constructor(file, path, opts = {}) {
    this.file = file;
    this.path = path;
    this.base = opts.base || '';
    this.extraHeaders = opts.headers || (() => ({}));
    this.storage = opts.storage || null;
    this.send = opts.send || fetchSend;
    this.chunk = opts.chunk || 8 * 1024 * 1024;
    this.onChange = opts.onChange || (() => {});
    this.offset = 0;
    this.sent = 0;
    this.state = 'queued';
    this.error = null;
    this.url = null;
    this.abort = null;
    this.key = `cairn.tus.${path}.${file.size}.${file.lastModified || 0}`;
  }

  headers(extra = {}) { return { 'Tus-Resumable': '1.0.0', ...this.extraHeaders(), ...extra }; }

  set(state, error = null) {
    this.state = state;
    this.error = error;
    this.onChange(this);
  }

  progress(sent) { this.sent = sent; this.onChange(this); }

  /// Upload until done, paused, cancelled or failed. Resumes from the server's offset when an
  /// upload of the same file to the same path was started before (this page or an earlier one).
  async run() {
    if (this.state !== 'queued') return;
    this.set('running');
    try {
      this.url = this.url || (this.storage && this.storage.get(this.key));
      if (this.url) {
        const res = await fetch(this.base + this.url, { method: 'HEAD', headers: this.headers() });
        if (res.ok) this.offset = Number(res.headers.get('Upload-Offset'));
        else this.forget();
      }
      if (!this.url) {
        const mtime = String(Math.floor((this.file.lastModified || Date.now()) / 1000));
        const res = await fetch(`${this.base}/api/v1/uploads/`, {
          method: 'POST',
          headers: this.headers({ 'Upload-Length': String(this.file.size), 'Upload-Metadata': `path ${b64(this.path)},mtime ${b64(mtime)}` }),
        });
        if (!res.ok) throw await errorOf(res);
        this.url = res.headers.get('Location');
        this.offset = Number(res.headers.get('Upload-Offset') || 0);
        if (this.storage) this.storage.set(this.key, this.url);
      }
      this.progress(this.offset);
      while (this.offset < this.file.size) {
        if (this.state !== 'running') return;
        this.offset = await this.patch(this.file.slice(this.offset, this.offset + this.chunk));
        this.progress(this.offset);
      }
      if (this.state !== 'running') return;
      if (this.storage) this.storage.remove(this.key);
      this.progress(this.file.size);
      this.set('done');
    } catch (e) {
      if (this.state === 'paused' || this.state === 'cancelled') return;
      this.set('failed', e instanceof UploadError ? e : new UploadError(0, 'network', e.message || 'network error'));
    }
  }

  async patch(blob) {
    const ctl = new AbortController();
    this.abort = () => ctl.abort();
    const base = this.offset;
    try {
      const res = await this.send(this.base + this.url,
        this.headers({ 'Upload-Offset': String(base), 'Content-Type': 'application/offset+octet-stream' }),
        blob, (loaded) => this.progress(base + loaded), ctl.signal);
      if (res.status === 204) return Number(res.header('Upload-Offset'));
      let code = 'error', message = `upload failed (${res.status})`;
      try { const e = JSON.parse(await res.text()).error; code = e.code; message = e.message; } catch (_) { /* keep */ }
      throw new UploadError(res.status, code, message);
    } finally {
      this.abort = null;
    }
  }

  forget() {
    this.url = null;
    if (this.storage) this.storage.remove(this.key);
  }

  /// Stop sending; the server keeps what it has, and `resume` goes on from there.
  pause() {
    if (this.state !== 'running' && this.state !== 'queued') return;
    this.set('paused');
    if (this.abort) this.abort();
  }

  /// Queue a paused or failed upload again (the caller starts it with `run`).
  resume() {
    if (this.state !== 'paused' && this.state !== 'failed') return;
    this.set('queued');
  }

  /// Stop for good: the server drops the bytes it has and their quota reservation.
  async cancel() {
    if (this.state === 'done' || this.state === 'cancelled') return;
    this.set('cancelled');
    if (this.abort) this.abort();
    const url = this.url;
    this.forget();
    if (url) {
      try { await fetch(this.base + url, { method: 'DELETE', headers: this.headers() }); } catch (_) { /* expires anyway */ }
    }
  }
}
