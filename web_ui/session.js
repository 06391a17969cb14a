// The user's backend session, shared by the lineup and Research pages: GET /web/session to
// follow a backend a tab already started, POST /web/session to start one, and the master
// daemon's event stream (session, task, progress and result events) with a new stream URL
// when the old one has expired. A page passes its handlers; this module holds no page state.

import { api, sessionWords } from './api.js';

export class BackendSession {
  // handlers: { session(session), task(task), progress(data), result(task) }; each optional.
  constructor(handlers) {
    this.handlers = handlers;
    this.source = null;
    this.current = null;
  }

  get state() { return this.current ? this.current.state : null; }

  // Follow the backend the user already has, starting none (a visit to read lineups or
  // manage accounts holds no GPU job).
  async attach() {
    try {
      const { session, events_url: url } = await api('GET', '/web/session');
      this.setSession(session);
      if (session && url) this.listen(url);
    } catch (e) {
      this.setSession({ state: 'failed', reason: e.message });
    }
  }

  // Start (or join) the user's backend and follow it.
  async start() {
    try {
      const { session, events_url: url } = await api('POST', '/web/session');
      this.setSession(session);
      this.listen(url);
    } catch (e) {
      this.setSession({ state: 'failed', reason: e.message });
    }
  }

  // Start a backend only when there is none, or the last one stopped.
  ensure() {
    if (!this.state || this.state === 'stopped') this.start();
  }

  setSession(session) {
    this.current = session;
    if (this.handlers.session) this.handlers.session(session);
  }

  listen(url) {
    if (this.source) this.source.close();
    const source = new EventSource(url);
    this.source = source;
    source.addEventListener('session', (ev) => this.setSession(JSON.parse(ev.data)));
    for (const kind of ['task', 'progress', 'result']) {
      source.addEventListener(kind, (ev) => {
        if (this.handlers[kind]) this.handlers[kind](JSON.parse(ev.data));
      });
    }
    source.onerror = () => {
      // The browser reconnects by itself (with Last-Event-ID); an expired token needs a new URL.
      if (source.readyState === EventSource.CLOSED) setTimeout(() => this.start(), 3000);
    };
  }
}

// Show a session's state in the page's #backend-state line, and its Restart button when the
// backend failed or stopped; the state name for the caller's own checks.
export function showSessionState(session) {
  const el = document.getElementById('backend-state');
  const state = session ? session.state : 'not started';
  el.textContent = sessionWords(session);
  el.dataset.state = state;
  document.getElementById('restart').hidden = !['failed', 'stopped'].includes(state);
  return state;
}
