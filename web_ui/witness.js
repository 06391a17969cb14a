// The mock witness's page: the description and the lineup's members in the order the server
// drew for this link, one answer, then done. No account and no cookie: every request is made
// with credentials 'omit', and the token in the page's address is the only key.
const $ = (id) => document.getElementById(id);
const token = decodeURIComponent(location.pathname.split('/')[2] || '');
const TRAITS = { gender: 'Gender', ethnicity: 'Ethnicity', age_group: 'Age', hair: 'Hair', beard: 'Beard', glasses: 'Glasses' };
let scale = 'none';

function say(text, isError = false) {
  const el = $('witness-message');
  el.textContent = text;
  el.className = isError ? 'error' : '';
}

async function call(method, path, body) {
  const init = { method, credentials: 'omit', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try { resp = await fetch(path, init); } catch {
    return { ok: false, error: 'The server cannot be reached. Check the connection and try again.' };
  }
  let data = {};
  try { data = await resp.json(); } catch { data = {}; }
  return { ok: resp.ok, status: resp.status, data, error: data.error || `The server answered ${resp.status}.` };
}

function member(item) {
  const label = document.createElement('label');
  label.className = 'member';
  const input = Object.assign(document.createElement('input'), { type: 'radio', name: 'choice', value: String(item.index) });
  const img = Object.assign(document.createElement('img'), { src: item.image, alt: `Person ${item.index}`, loading: 'lazy' });
  img.width = 256;
  img.height = 256;
  const span = Object.assign(document.createElement('span'), { textContent: `Person ${item.index}` });
  label.append(input, img, span);
  return label;
}

async function start() {
  const answer = await call('GET', `/w/${encodeURIComponent(token)}/lineup`);
  if (!answer.ok) { say(answer.error, answer.status !== 410); return; }
  const task = answer.data;
  if (task.title) $('witness-title').textContent = task.title;
  $('description').textContent = task.description;
  const traits = Object.entries(task.traits || {});
  $('traits').hidden = traits.length === 0;
  for (const [trait, value] of traits) {
    const li = document.createElement('li');
    li.textContent = `${TRAITS[trait] || trait}: ${value}`;
    $('traits').append(li);
  }
  $('members').replaceChildren(...task.members.map(member));
  scale = task.confidence_scale;
  $('confidence-percent').hidden = scale !== 'percent';
  $('confidence-five').hidden = scale !== 'five';
  say('');
  $('witness-form').hidden = false;
}

function confidence() {
  if (scale === 'percent') {
    const raw = $('confidence-number').value.trim();
    if (!raw) return null;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0 || value > 100) throw new Error('How sure you are is a number from 0 to 100 (or leave it empty).');
    return value;
  }
  if (scale === 'five') return $('confidence-select').value ? Number($('confidence-select').value) : null;
  return null;
}

async function submit(ev) {
  ev.preventDefault();
  $('form-error').textContent = '';
  const picked = document.querySelector('input[name="choice"]:checked');
  if (!picked) { $('form-error').textContent = 'Choose a person, or say that the person is not among them.'; return; }
  let body;
  try {
    body = picked.value === 'none' ? { choice: null, not_present: true } : { choice: Number(picked.value), not_present: false };
    const c = confidence();
    if (c !== null) body.confidence = c;
  } catch (e) { $('form-error').textContent = e.message; return; }
  $('submit').disabled = true;
  const answer = await call('POST', `/w/${encodeURIComponent(token)}`, body);
  $('submit').disabled = false;
  if (answer.ok) {
    $('witness-form').hidden = true;
    say(answer.data.message || 'Thank you: your answer was recorded.');
  } else if (answer.status === 410 || answer.status === 404) {
    $('witness-form').hidden = true;
    say(answer.error, answer.status === 404);
  } else {
    $('form-error').textContent = answer.error;
  }
}

$('witness-form').addEventListener('submit', submit);
start();
