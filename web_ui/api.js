// Calls to the frontend server's JSON API: the session cookie plus the CSRF token in a header
// on every state-changing request. Errors become ApiError with the server's readable message.

let csrfToken = null;

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body || {};
  }
}

export function setCsrf(token) { if (token) csrfToken = token; }

async function answer(resp) {
  let body = null;
  try { body = await resp.json(); } catch { body = null; }
  if (!resp.ok) {
    const message = (body && body.error) || `The server answered ${resp.status}.`;
    throw new ApiError(resp.status, message, body);
  }
  return body;
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin' };
  if (method !== 'GET' && method !== 'HEAD') {
    // The token comes with /web/me; a click before that answer arrives fetches it first.
    if (!csrfToken) await api('GET', '/web/me');
    headers['X-CSRFToken'] = csrfToken || '';
  }
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'The server cannot be reached. Check the connection and try again.');
  }
  const data = await answer(resp);
  if (data && data.csrf_token) setCsrf(data.csrf_token);
  return data;
}

export async function me() {
  return api('GET', '/web/me');
}

// The backend session's state in words, the same on every page (see docs/master_daemon.md).
export function sessionWords(session) {
  const s = session ? session.state : 'not started';
  const precision = session && session.backend && session.backend.precision;
  const words = {
    queued: `Backend: queued${session && session.queue_position ? ` (position ${session.queue_position})` : ''}`,
    starting: `Backend: starting${session && session.reason ? ` (${session.reason})` : ''}…`,
    ready: `Backend: ready${precision ? ` (${precision})` : ''}`,
    failed: `Backend: failed — ${(session && session.reason) || 'unknown reason'}`,
    stopped: 'Backend: stopped after a while without work',
  };
  if (!session) return 'Backend: not started yet (it starts with your first photo)';
  return words[s] || `Backend: ${s}`;
}

// -- the lineup page's draft: its unsaved work, in this tab's session storage, one per user
// (app.js writes it). Logging out drops it; another user logging in in this tab never sees it.

const DRAFT = 'ligan-draft-';

export const LOGOUT_QUESTION = 'Log out and discard the lineup you have not saved?';

export const draftKey = (user) => `${DRAFT}${user.id}`;

export function forgetDrafts(keep = null) {
  // Every draft of this tab but `keep`.
  try {
    for (const key of Object.keys(sessionStorage)) {
      if (key.startsWith(DRAFT) && key !== keep) sessionStorage.removeItem(key);
    }
  } catch { /* storage disabled: there are none */ }
}

export function draftUnsaved(user) {
  // Whether the user's draft holds lineup picks that were not saved.
  try { return Boolean(JSON.parse(sessionStorage.getItem(draftKey(user)) || 'null')?.unsaved); } catch { return false; }
}

export async function logout() {
  forgetDrafts();
  try { await api('POST', '/web/logout'); } finally { location.replace('/login'); }
}
