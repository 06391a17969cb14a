// The login page: fetch a CSRF token, post the credentials, go to the app.
import { api, me } from './api.js';

const form = document.getElementById('login-form');
const error = document.getElementById('login-error');

me().then((state) => { if (state.user) location.replace('/'); })
  .catch((e) => { error.textContent = e.message; });

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  error.textContent = '';
  const button = form.querySelector('button');
  button.disabled = true;
  try {
    await api('POST', '/web/login', { name: form.name.value, password: form.password.value });
    location.replace('/');
  } catch (e) {
    error.textContent = e.message;
    form.password.select();
  } finally {
    button.disabled = false;
  }
});
