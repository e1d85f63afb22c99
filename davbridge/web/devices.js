// Apps and devices: granting a Nextcloud or ownCloud app that signs in with Login Flow v2 (it
// opens /index.php/login/v2/flow/TOKEN in the browser, and this page asks the person), and
// the list of app passwords with their revocation.

import { $, el, toast, fail } from './dom.js';
import { api } from './api.js';
import { when, ago } from './format.js';

/// The login token when this page was opened by an app signing in, else null.
export const flowToken = (() => {
  const m = location.pathname.match(/^\/index\.php\/login\/v2\/flow\/([0-9A-Za-z]+)$/);
  return m ? m[1] : null;
})();

/// Show the grant page for `flowToken` to the signed-in `me`.
export async function showGrant(me) {
  $('#app').hidden = true;
  const view = $('#grant-view');
  view.hidden = false;
  const result = $('#grant-result');
  $('#grant-user').textContent = me.name;
  let device;
  try {
    device = (await api('GET', `/api/v1/login-flows/${flowToken}`)).device;
  } catch (e) {
    if (e.status !== 404) return fail(e);
    $('#grant-ask').hidden = true;
    result.textContent = 'This sign-in request has expired or was already answered. Start the sign-in again in the app.';
    return;
  }
  $('#grant-device').textContent = device;
  const finish = (text) => {
    $('#grant-ask').hidden = true;
    result.textContent = text;
    $('#grant-home').hidden = false;
  };
  $('#grant-allow').onclick = async () => {
    try {
      await api('POST', `/api/v1/login-flows/${flowToken}`);
      finish(`${device} is connected. You can close this window and go back to the app.`);
    } catch (e) {
      if (e.status === 404) finish('This sign-in request has expired. Start the sign-in again in the app.');
      else fail(e);
    }
  };
  $('#grant-deny').onclick = () => finish(`${device} was not given access.`);
  $('#grant-allow').focus();
}

/// The Devices view: every app password, newest use first, each revocable.
export async function loadDevices() {
  const tokens = await api('GET', '/api/v1/tokens');
  tokens.sort((a, b) => (b.last_used_at || b.created_at).localeCompare(a.last_used_at || a.created_at));
  const body = $('#devices-list tbody');
  body.replaceChildren();
  $('#devices-empty').hidden = tokens.length > 0;
  for (const t of tokens) {
    const revoke = el('button', { text: 'Revoke', title: `Sign ${t.label} out` });
    revoke.addEventListener('click', async () => {
      if (!confirm(`Revoke access for ${t.label}? It is signed out at once.`)) return;
      try { await api('DELETE', `/api/v1/tokens/${t.id}`); toast(`${t.label} is signed out`); await loadDevices(); } catch (e) { fail(e); }
    });
    body.append(el('tr', { class: 'row', 'data-token': t.id },
      el('td', { class: 'label', text: t.label }),
      el('td', { class: 'date', text: when(t.created_at) }),
      el('td', { class: 'date', text: t.last_used_at ? ago(t.last_used_at) : 'never' }),
      el('td', {}, revoke)));
  }
}

$('#new-token').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const out = $('#new-token-result');
  out.replaceChildren();
  out.className = 'form-result';
  try {
    const t = await api('POST', '/api/v1/tokens', { json: { label: f.get('label') } });
    ev.target.reset();
    out.append(`App password for ${t.label} (shown this once): `, el('code', { class: 'secret', text: t.token }));
    await loadDevices();
  } catch (e) {
    out.textContent = e.message;
    out.className = 'form-result error';
  }
});
