// The live change feed: a WebSocket on /api/v1/events that reconnects after a cut and resumes
// from the last cursor it saw, so no change made while it was away is missed. No DOM.

/// Calls `onChanges(changes, { reset })` for each non-empty page (`reset`: changes before it
/// are unknown, reload everything) and `onState('live' | 'offline')` when
/// the connection comes or goes. `close()` stops it for good (sign-out).
export function follow({ onChanges, onState = () => {}, url = defaultUrl, WebSocketImpl = globalThis.WebSocket }) {
  let cursor = 'now';
  let ws = null;
  let stopped = false;
  let retry = null;
  let delay = 500;

  const open = () => {
    if (stopped) return;
    // From "now", what changed before the first page is unknown: the caller reloads (reset).
    let fresh = cursor === 'now';
    ws = new WebSocketImpl(url(cursor));
    ws.onopen = () => { delay = 500; onState('live'); };
    ws.onmessage = (ev) => {
      let page;
      try { page = JSON.parse(ev.data); } catch (_) { return; }
      if (page.error) {
        // An expired cursor: the server closes; the next connection starts from now and the
        // caller reloads what it shows.
        cursor = 'now';
        return;
      }
      cursor = page.cursor;
      // `shared`: something changed in a share mounted here (not in the feed): reload.
      if (fresh || page.changes.length || page.shared) onChanges(page.changes, { reset: fresh || !!page.shared });
      fresh = false;
    };
    ws.onclose = () => {
      ws = null;
      if (stopped) return;
      onState('offline');
      retry = setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  };
  open();
  return {
    close() {
      stopped = true;
      clearTimeout(retry);
      if (ws) ws.close();
    },
    get cursor() { return cursor; },
  };
}

function defaultUrl(cursor) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/api/v1/events?cursor=${encodeURIComponent(cursor)}`;
}
