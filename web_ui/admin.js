// Account administration: list accounts and create new ones (administrators only).
import { api, me } from './api.js';

const list = document.getElementById('user-list');
const form = document.getElementById('user-form');
const message = document.getElementById('user-message');

async function refresh() {
  const { users } = await api('GET', '/web/users');
  list.replaceChildren(...users.map((u) => {
    const li = document.createElement('li');
    li.textContent = u.name + (u.is_admin ? ' (administrator)' : '');
    return li;
  }));
}

async function start() {
  const state = await me();
  if (!state.user) { location.replace('/login'); return; }
  try { await refresh(); } catch (e) { message.textContent = e.message; form.hidden = true; }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  message.textContent = '';
  message.className = '';
  try {
    const { user } = await api('POST', '/web/users', {
      name: form.name.value, password: form.password.value, is_admin: form.is_admin.checked,
    });
    message.textContent = `Created ${user.name}.`;
    form.reset();
    await refresh();
  } catch (e) {
    message.textContent = e.message;
    message.className = 'error';
  }
});

start();
