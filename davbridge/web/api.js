// The REST API (/api/v1) as the page uses it: JSON in and out, the CSRF token on every change,
// a 401 sends the user back to the sign-in form.

export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

export const session = { csrf: null, onSignedOut: () => {} };

export async function api(method, url, { json, body, headers = {}, raw = false } = {}) {
  const h = { ...headers };
  if (json !== undefined) { h['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
  if (session.csrf && !['GET', 'HEAD'].includes(method)) h['X-CSRF-Token'] = session.csrf;
  const res = await fetch(url, { method, headers: h, body, credentials: 'same-origin' });
  if (raw) return res;
  if (res.status === 401 && !url.endsWith('/session')) {
    session.onSignedOut();
    throw new ApiError(401, 'unauthenticated', 'Please sign in again');
  }
  if (!res.ok) {
    let code = 'error', message = res.statusText;
    try { const e = (await res.json()).error; code = e.code; message = e.message; } catch (_) { /* not JSON */ }
    throw new ApiError(res.status, code, message);
  }
  if (res.status === 204) return null;
  return (res.headers.get('content-type') || '').includes('json') ? res.json() : res;
}

export const q = (params) => new URLSearchParams(params).toString();
export const contentUrl = (path, download) => `/api/v1/content?${q({ path, ...(download ? { download: 'true' } : {}) })}`;
export const versionUrl = (id, path, download) => `/api/v1/versions/${id}/content?${q({ path, download: download ? 'true' : 'false' })}`;
