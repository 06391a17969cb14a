// Accounts: administrators list, create, disable/enable and delete accounts and reset their
// passwords; every logged-in user may change their own password here.
import { api, me } from './api.js';

const $ = (id) => document.getElementById(id);
const rows = $('user-rows');
const form = $('user-form');
const message = $('user-message');
const listMessage = $('list-message');
const resetDialog = $('reset-dialog');
const resetForm = $('reset-form');
let currentUser = null;   // the logged-in user
let resetting = null;     // the account whose password the dialog resets

function say(element, text, isError = false) {
  element.textContent = text;
  element.className = isError ? 'error' : '';
}

function button(label, name, action) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.setAttribute('aria-label', `${label}: ${name}`);
  b.addEventListener('click', action);
  return b;
}

// Run an account action, show its outcome under the list and read the list again (or go to
// the login page when the action logged this administrator out).
async function act(u, done, call) {
  say(listMessage, '');
  try {
    await call();
  } catch (e) {
    say(listMessage, e.message, true);
    return;
  }
  if (u.id === currentUser.id) { location.replace('/login'); return; }
  say(listMessage, done);
  await refresh();
}

function row(u) {
  const tr = document.createElement('tr');
  const name = document.createElement('th');
  name.scope = 'row';
  name.textContent = u.name;
  const status = document.createElement('td');
  status.className = 'muted';
  status.textContent = [u.is_admin ? 'administrator' : 'officer', u.disabled ? 'disabled' : '',
    u.id === currentUser.id ? 'you' : ''].filter(Boolean).join(' · ');
  const actions = document.createElement('td');
  const path = `/web/users/${u.id}`;
  if (u.id !== currentUser.id) {  // the server refuses these for one's own account
    actions.append(u.disabled
      ? button('Enable', u.name, () => act(u, `${u.name} may log in again.`,
        () => api('POST', `${path}/enable`)))
      : button('Disable', u.name, () => act(u, `${u.name} is disabled and logged out.`,
        () => api('POST', `${path}/disable`))));
  }
  actions.append(button('Reset password', u.name, () => openReset(u)));
  actions.append(button('Log out everywhere', u.name, () => act(u,
    `${u.name} is logged out everywhere.`, () => api('DELETE', `${path}/sessions`))));
  if (u.id !== currentUser.id) {
    actions.append(button('Delete', u.name, () => {
      const question = `Delete the account ${u.name} and its saved lineups? This cannot be undone.`;
      if (window.confirm(question)) act(u, `Deleted ${u.name}.`, () => api('DELETE', path));
    }));
  }
  tr.append(name, status, actions);
  return tr;
}

async function refresh() {
  const { users } = await api('GET', '/web/users');
  rows.replaceChildren(...users.map(row));
}

function openReset(u) {
  resetting = u;
  $('reset-title').textContent = `Reset the password of ${u.name}`;
  resetForm.reset();
  say($('reset-message'), '');
  resetDialog.showModal();
}

resetForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const u = resetting;
  try {
    await api('POST', `/web/users/${u.id}/password`, { password: resetForm.password.value });
  } catch (e) {
    say($('reset-message'), e.message, true);
    return;
  }
  resetDialog.close();
  if (u.id === currentUser.id) { location.replace('/login'); return; }  // logged out as well
  say(listMessage, `The password of ${u.name} was reset; it is logged out everywhere.`);
  await refresh();
});
$('reset-cancel').addEventListener('click', () => resetDialog.close());

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  say(message, '');
  try {
    const { user } = await api('POST', '/web/users', {
      name: form.name.value, password: form.password.value, is_admin: form.is_admin.checked,
    });
    say(message, `Created ${user.name}.`);
    form.reset();
    await refresh();
  } catch (e) {
    say(message, e.message, true);
  }
});

$('password-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const own = event.target;
  const shown = $('password-message');
  say(shown, '');
  try {
    await api('POST', '/web/me/password', {
      old_password: own.old_password.value, new_password: own.new_password.value,
    });
    own.reset();
    say(shown, 'Your password was changed; your other logins were ended.');
  } catch (e) {
    say(shown, e.message, true);
  }
});

async function start() {
  const state = await me();
  if (!state.user) { location.replace('/login'); return; }
  currentUser = state.user;
  $('own-password').hidden = false;
  if (!currentUser.is_admin) { $('admin-only').hidden = false; return; }
  $('admin-area').hidden = false;
  try { await refresh(); } catch (e) { say(listMessage, e.message, true); }
}

start();
