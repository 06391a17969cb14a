// The Research area: random faces, transitions, style mixing, faces by id, attribute filter
// and editing, and a searchable, paginated gallery of the user's faces.
//
// Task requests go through the frontend server (/web/research/tasks checks that every face is
// the user's own); backend state, progress and results arrive as server-sent events from the
// master daemon (the stream whose URL /web/session answers), with polling as a safety net.
import { LOGOUT_QUESTION, api, draftUnsaved, logout, me } from './api.js';
import { BackendSession, showSessionState } from './session.js';

const $ = (id) => document.getElementById(id);
const ENDED = ['done', 'failed', 'cancelled'];

const state = {
  user: null,
  session: null,
  job: null,            // {kind, tasks: Map(task_id → {task, meta}), done, total}
  gallery: { page: 1, pages: 1, q: '', operation: '', where: '' },
  galleryLoads: 0,      // number of the newest gallery request (older answers are dropped)
  faces: new Map(),     // id → gallery item seen on screen (for labels)
  selected: null,       // the face shown in the details panel
  pick: { a: null, b: null, target: null, sources: [], edit: null },
  attributes: null,     // true | false | null (not known yet)
  attributesReason: '',
};

// -- start ---------------------------------------------------------------------------------

async function start() {
  let who;
  try { who = await me(); } catch (e) { showError(e.message); return; }
  if (!who.user) { location.replace('/login'); return; }
  state.user = who.user;
  $('user-name').textContent = who.user.name;
  wire();
  renderPicks();
  await Promise.all([loadGallery(), loadCapabilities()]);
  await backend.start();
}

const backend = new BackendSession({
  session: setSession,
  progress: (data) => {
    const entry = state.job && state.job.tasks.get(data.task_id);
    if (!entry) return;
    entry.progress = data.progress;
    entry.message = data.message;
    showJobProgress();
    // Random faces are on disk chunk by chunk: show them as they come (at most every 3 s).
    if (state.job.kind === 'random' && Date.now() - (state.job.shownAt || 0) > 3000) {
      state.job.shownAt = Date.now();
      loadGallery();
    }
  },
  task: (task) => {
    const entry = state.job && state.job.tasks.get(task.task_id);
    if (entry && task.state === 'queued' && !entry.progress) {
      entry.message = 'waiting for the backend';
      showJobProgress();
    }
  },
  result: taskEnded,
});

function setSession(session) {
  state.session = session;
  const s = showSessionState(session);
  if (s === 'ready' && state.attributes === null) loadCapabilities();
  renderButtons();
}

async function loadCapabilities() {
  try {
    const caps = await api('GET', '/web/research/capabilities');
    state.attributes = caps.attributes;
    state.attributesReason = caps.reason || '';
  } catch { /* keep what we knew */ }
  for (const note of document.querySelectorAll('.attr-note')) {
    note.textContent = state.attributes === true ? '' : state.attributesReason;
    note.classList.toggle('warning', state.attributes === false);
  }
  renderButtons();
}

// -- tasks ---------------------------------------------------------------------------------

// A job is one or more tasks started by one button (a style-mix grid is several tasks).
async function runJob(kind, requests, onDone) {
  showError('');
  if (state.job) { showError('Wait for the running task to end, or cancel it.'); return; }
  const job = { kind, tasks: new Map(), total: requests.length, done: 0, results: [], onDone };
  state.job = job;
  showJobProgress();
  renderButtons();
  for (const req of requests) {
    try {
      const task = await api('POST', '/web/research/tasks', { type: req.type, params: req.params });
      job.tasks.set(task.task_id, { task, meta: req.meta || {}, progress: 0, message: 'queued' });
      if (ENDED.includes(task.state)) taskEnded(task);
      else poll(task.task_id);
    } catch (e) {
      showError(e.message);
      job.total = job.tasks.size;
      break;
    }
  }
  if (job.total === 0) { state.job = null; showProgress(0, ''); renderButtons(); return; }
  maybeFinish();
}

async function poll(taskId) {
  // A safety net beside the event stream (e.g. when a proxy buffers events).
  while (state.job && state.job.tasks.has(taskId)) {
    await new Promise((r) => setTimeout(r, 3000));
    const entry = state.job && state.job.tasks.get(taskId);
    if (!entry || entry.ended) return;
    try {
      const task = await api('GET', `/web/tasks/${taskId}`);
      if (ENDED.includes(task.state)) { taskEnded(task); return; }
    } catch { /* the event stream may still deliver */ }
  }
}

function taskEnded(task) {
  const job = state.job;
  const entry = job && job.tasks.get(task.task_id);
  if (!entry || entry.ended) return;
  entry.ended = true;
  entry.task = task;
  entry.progress = 100;
  job.done += 1;
  if (task.state === 'failed') showError(task.error || 'The task failed.');
  job.results.push(entry);
  showJobProgress();
  maybeFinish();
}

function maybeFinish() {
  const job = state.job;
  if (!job || job.done < job.total || job.tasks.size < job.total) return;
  state.job = null;
  renderButtons();
  const states = job.results.map((e) => e.task.state);
  const word = states.every((s) => s === 'done') ? 'done'
    : states.includes('cancelled') ? 'cancelled' : 'failed';
  showProgress(word === 'done' ? 100 : 0, word);
  if (job.onDone) job.onDone(job.results.filter((e) => e.task.state === 'done'), job);
  loadGallery();
}

async function cancelJob() {
  const job = state.job;
  if (!job) return;
  for (const [id, entry] of job.tasks) {
    if (entry.ended) continue;
    try {
      const task = await api('DELETE', `/web/tasks/${id}`);
      if (ENDED.includes(task.state)) taskEnded(task);
    } catch (e) {
      if (e.status !== 409) showError(e.message);   // 409: it had just ended
    }
  }
}

function showJobProgress() {
  const job = state.job;
  if (!job) return;
  const entries = [...job.tasks.values()];
  const sum = entries.reduce((acc, e) => acc + (Number(e.progress) || 0), 0);
  const pct = job.total ? sum / job.total : 0;
  const running = entries.find((e) => !e.ended);
  let message = running ? running.message || 'running' : 'finishing';
  if (job.total > 1) message = `${job.done} of ${job.total} tasks · ${message}`;
  showProgress(pct, message);
}

function showProgress(value, message) {
  $('progress').value = Math.max(0, Math.min(100, Number(value) || 0));
  $('progress-text').textContent = message ? `${Math.round(value || 0)}% · ${message}` : '';
}

function showError(message) { $('error').textContent = message || ''; }

const ready = () => state.session && ['ready', 'queued', 'starting'].includes(state.session.state);

function renderButtons() {
  const busy = Boolean(state.job);
  $('cancel').disabled = !busy;
  for (const b of document.querySelectorAll('button.run')) b.disabled = busy || !ready();
  $('run-transition').disabled ||= !state.pick.a;
  $('run-mix').disabled ||= !state.pick.target || state.pick.sources.length === 0;
  const noAttributes = state.attributes === false;
  for (const b of document.querySelectorAll('.attr-run')) b.disabled ||= noAttributes;
  document.querySelector('#attr-edit-form .attr-run').disabled ||= !state.pick.edit;
  for (const input of document.querySelectorAll('#attr-filter-form input, #attr-edit-form input, #attr-edit-form select')) {
    input.disabled = noAttributes;
  }
}

// -- the forms -----------------------------------------------------------------------------

function numberOf(id, fallback) {
  const raw = $(id).value.trim();
  if (raw === '') return fallback;
  const n = Number(raw);
  return Number.isFinite(n) ? n : fallback;
}

function submitRandom(ev) {
  ev.preventDefault();
  const amount = numberOf('random-amount', 0);
  if (!Number.isInteger(amount) || amount < 1 || amount > 30000) {
    showError('Make from 1 to 30 000 random faces.'); return;
  }
  const params = { amount, truncation_psi: numberOf('random-psi', 1) };
  const seed = numberOf('random-seed', null);
  if (seed !== null) params.seed = seed;
  runJob('random', [{ type: 'random', params }], (done, job) => {
    // A cancelled or failed task keeps the faces it made before it stopped: count them too.
    const ended = job.results.filter((e) => e.task.result);
    const faces = ended.flatMap((e) => e.task.result.faces || []);
    const total = ended.reduce((acc, e) => acc + (e.task.result.faces_total || 0), 0);
    const seedUsed = ended[0] ? ended[0].task.result.seed : undefined;
    const made = done.length ? 'made' : 'made before the task stopped';
    showResult(`${total || faces.length} random faces ${made}${seedUsed !== undefined ? ` (seed ${seedUsed})` : ''}. They are first in the gallery.`,
      stripOf(faces.slice(0, 12)));
    state.gallery.page = 1;     // the gallery is loaded again when the job ends
    loadCapabilities();
  });
}

function submitTransition(ev) {
  ev.preventDefault();
  if (!state.pick.a) { showError('Pick face A in the gallery first.'); return; }
  const params = { start_face_id: state.pick.a.id, distance: numberOf('transition-distance', 1),
                   amount: numberOf('transition-amount', 8) };
  if (state.pick.b) params.end_face_id = state.pick.b.id;
  runJob('transition', [{ type: 'transition', params }], (done) => {
    if (!done.length) return;
    const faces = done[0].task.result.faces || [];
    const frames = faces.filter((f) => f.operation === 'transition');
    const end = state.pick.b || faces.find((f) => f.operation !== 'transition') || null;
    const strip = document.createElement('div');
    strip.className = 'strip';
    strip.append(labelled(state.pick.a, 'A'));
    frames.forEach((f, i) => strip.append(labelled(f, `${i + 1}`)));
    if (end) strip.append(labelled(end, 'B'));
    showResult(`Transition: ${frames.length} faces at distance ${params.distance} toward B. Every frame is in the gallery and can start another transition.`, strip);
  });
}

function submitMix(ev) {
  ev.preventDefault();
  const target = state.pick.target;
  const sources = state.pick.sources;
  if (!target || !sources.length) { showError('Pick a target and at least one source first.'); return; }
  const range = $('mix-range').value.trim();
  let columns;
  if (range) {
    if (!/^\d+(\s*-\s*\d+)?$/.test(range)) { showError('A layer range looks like 4-7.'); return; }
    columns = [range.replace(/\s/g, '')];
  } else {
    columns = [...document.querySelectorAll('input[name="styles"]:checked')].map((c) => c.value);
  }
  if (!columns.length) { showError('Choose coarse, middle or fine, or type a layer range.'); return; }
  const requests = [];
  sources.forEach((src, row) => columns.forEach((styles, col) => requests.push({
    type: 'style_mix',
    params: { target_face_id: target.id, source_face_id: src.id, styles },
    meta: { row, col },
  })));
  runJob('style_mix', requests, (done) => {
    showResult(`Style mixing: ${done.length} of ${requests.length} mixes. Rows: sources; columns: the styles taken from them.`,
      mixGrid(target, sources, columns, done));
  });
}

function submitFace(ev) {
  ev.preventDefault();
  const id = $('face-id').value.trim().toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(id)) { showError('A face id has 32 characters 0-9 and a-f.'); return; }
  const psi = numberOf('face-psi', 1);
  runJob('face', [{ type: 'face', params: { face_id: id, truncation_psi: psi } }], (done) => {
    const faces = done.flatMap((e) => e.task.result.faces || []);
    showResult(`Face ${id.slice(0, 8)}… at ψ ${psi}.`, stripOf(faces));
  });
}

function submitAttrFilter(ev) {
  ev.preventDefault();
  const filter = $('attr-filter').value.trim();
  if (!filter) { showError('Say which faces you want, e.g. "women, 20-29, no glasses".'); return; }
  const amount = numberOf('attr-amount', 8);
  runJob('attribute_filter', [{ type: 'attribute_filter', params: { filter, amount } }], (done) => {
    if (!done.length) return;
    const r = done[0].task.result;
    showResult(`${r.accepted ?? (r.faces || []).length} faces match “${filter}” (${r.candidates} candidates tried).`,
      stripOf(r.faces || []));
  });
}

function submitAttrEdit(ev) {
  ev.preventDefault();
  const face = state.pick.edit;
  if (!face) { showError('Pick a face to edit in the gallery first.'); return; }
  const max = Math.abs(numberOf('edit-max', 3));
  const steps = Math.max(2, Math.min(21, Math.round(numberOf('edit-steps', 5))));
  const strengths = Array.from({ length: steps },
    (_, i) => Math.round((-max + (2 * max * i) / (steps - 1)) * 100) / 100);
  const params = { face_id: face.id, attribute: $('edit-attribute').value.trim(), strengths,
                   styles: $('edit-styles').value };
  runJob('attribute_edit', [{ type: 'attribute_edit', params }], (done) => {
    if (!done.length) return;
    const faces = done[0].task.result.faces || [];
    const strip = document.createElement('div');
    strip.className = 'strip';
    faces.forEach((f, i) => strip.append(labelled(f, `${strengths[i] > 0 ? '+' : ''}${strengths[i] ?? ''}`)));
    showResult(`“${params.attribute}” from ${-max} to +${max} (${params.styles} layers).`, strip);
  });
}

// -- results -------------------------------------------------------------------------------

function imageUrl(face) {
  if (!face || !face.image) return '';
  return face.image.startsWith('/web/files/') ? face.image : `/web/files/${face.image}`;
}

function faceButton(face, label) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'face';
  button.dataset.faceId = face.id;
  const img = document.createElement('img');
  img.src = imageUrl(face);
  img.alt = `Face ${face.id.slice(0, 8)}${label ? ` (${label})` : ''}, ${face.operation || 'face'}`;
  img.loading = 'lazy';
  button.append(img);
  if (label) {
    const tag = document.createElement('span');
    tag.className = 'tag';
    tag.textContent = label;
    button.append(tag);
  }
  button.addEventListener('click', () => selectFace(face.id));
  return button;
}

function labelled(face, label) {
  const fig = document.createElement('figure');
  fig.append(faceButton(face, label));
  return fig;
}

function stripOf(faces) {
  const strip = document.createElement('div');
  strip.className = 'strip';
  faces.forEach((f) => strip.append(labelled(f, '')));
  return strip;
}

function mixGrid(target, sources, columns, done) {
  const table = document.createElement('table');
  table.className = 'mix-grid';
  const caption = document.createElement('caption');
  caption.textContent = 'Target with styles from each source';
  table.append(caption);
  const head = table.insertRow();
  const corner = document.createElement('th');
  corner.scope = 'col';
  corner.append(faceButton(target, 'target'));
  head.append(corner);
  for (const c of columns) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = c;
    head.append(th);
  }
  sources.forEach((src, row) => {
    const tr = table.insertRow();
    const th = document.createElement('th');
    th.scope = 'row';
    th.append(faceButton(src, 'source'));
    tr.append(th);
    columns.forEach((_, col) => {
      const td = tr.insertCell();
      const entry = done.find((e) => e.meta.row === row && e.meta.col === col);
      const face = entry && (entry.task.result.faces || []).find((f) => f.operation === 'style_mix');
      if (face) td.append(faceButton(face, '')); else td.textContent = '—';
    });
  });
  return table;
}

function showResult(note, body) {
  $('result').hidden = false;
  $('result-note').textContent = note;
  $('result-body').replaceChildren(body);
}

// -- the gallery ---------------------------------------------------------------------------

// Loads overlap (chunks of random faces arrive while the user pages): only the newest
// request's answer is shown, so a slow older answer never replaces the page asked for last.
// aria-busy on the list says a load is on its way (screen readers, and the browser tests).
async function loadGallery() {
  const g = state.gallery;
  const query = new URLSearchParams({ page: String(g.page), per_page: '24' });
  if (g.q) query.set('q', g.q);
  if (g.operation) query.set('operation', g.operation);
  if (g.where) query.set('where', g.where);
  const load = ++state.galleryLoads;
  const list = $('gallery-faces');
  list.setAttribute('aria-busy', 'true');
  let body, failure;
  try {
    body = await api('GET', `/web/research/faces?${query}`);
  } catch (e) {
    failure = e;
  }
  if (load !== state.galleryLoads) return;
  list.setAttribute('aria-busy', 'false');
  if (failure) {
    $('gallery-note').textContent = failure.message;
    $('gallery-note').classList.add('error');
    return;
  }
  $('gallery-note').classList.remove('error');
  g.pages = body.pages;
  list.replaceChildren();
  for (const face of body.faces) {
    state.faces.set(face.id, face);
    const li = document.createElement('li');
    const button = faceButton(face, '');
    if (state.selected && state.selected.id === face.id) button.classList.add('chosen');
    li.append(button);
    const caption = document.createElement('span');
    caption.className = 'caption';
    caption.textContent = `${face.id.slice(0, 8)} · ${face.operation || ''}`;
    li.append(caption);
    list.append(li);
  }
  const filtered = g.q || g.operation || g.where;
  $('gallery-note').textContent = body.total === 0
    ? (filtered ? 'No face matches this search.' + (g.where && state.attributes === false ? ' ' + state.attributesReason : '')
      : 'No faces yet: make some random faces.')
    : `${body.total} face${body.total === 1 ? '' : 's'}${filtered ? ` match (of ${body.all_faces})` : ''}, newest first.`;
  $('page-label').textContent = `Page ${body.page} of ${body.pages}`;
  $('prev-page').disabled = body.page <= 1;
  $('next-page').disabled = body.page >= body.pages;
}

async function selectFace(id) {
  let body;
  try { body = await api('GET', `/web/research/faces/${id}`); } catch (e) { showError(e.message); return; }
  const face = body.face || { id, image: body.record.image, operation: body.record.operation };
  state.selected = face;
  state.faces.set(id, face);
  for (const b of document.querySelectorAll('#gallery-faces .face')) {
    b.classList.toggle('chosen', b.dataset.faceId === id);
  }
  $('details-empty').hidden = true;
  $('details').hidden = false;
  $('details-image').src = imageUrl(face);
  $('details-image').alt = `Face ${id}`;
  const dl = $('details-list');
  dl.replaceChildren();
  const rec = body.record;
  const add = (term, value) => {
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    if (value instanceof Node) dd.append(value); else dd.textContent = value;
    dl.append(dt, dd);
  };
  add('Id', rec.id);
  add('Made by', rec.operation);
  add('Created', rec.created || '—');
  add('Truncation ψ', String(rec.truncation_psi ?? '—'));
  if (rec.parameters && rec.parameters.styles) add('Styles', rec.parameters.styles);
  add('Parents', linksTo(body.parents, rec.parents || []));
  add('Children', body.children_total ? linksTo(body.children, [], body.children_total) : 'none');
  const attrs = rec.parameters && rec.parameters.attributes;
  add('Attributes', attrs ? describeAttributes(attrs)
    : (state.attributes === false ? 'none (this model has no attribute model)' : 'none recorded'));
}

function linksTo(faces, ids, total) {
  if (!faces.length && !ids.length) return 'none';
  const span = document.createElement('span');
  const known = new Set(faces.map((f) => f.id));
  for (const f of faces) {
    const a = document.createElement('a');
    a.href = `#face-${f.id}`;
    a.textContent = `${f.id.slice(0, 8)} (${f.operation})`;
    a.addEventListener('click', (ev) => { ev.preventDefault(); selectFace(f.id); });
    span.append(a, ' ');
  }
  for (const id of ids) if (!known.has(id)) span.append(`${id.slice(0, 8)} (not in your gallery) `);
  if (total && total > faces.length) span.append(`… ${total} in all`);
  return span;
}

function describeAttributes(attrs) {
  const words = [];
  for (const [trait, v] of Object.entries(attrs)) {
    const label = v && typeof v === 'object' ? v.label : v;
    if (typeof label === 'boolean') words.push(label ? trait.replace('_', ' ') : `no ${trait.replace('_', ' ')}`);
    else words.push(`${trait.replace('_', ' ')}: ${label}`);
  }
  return words.join(', ');
}

// -- picking faces for the forms -----------------------------------------------------------

function use(kind) {
  const face = state.selected;
  if (!face) return;
  if (kind === 'a') { state.pick.a = face; $('transition-box').open = true; }
  if (kind === 'b') { state.pick.b = face; $('transition-box').open = true; }
  if (kind === 'target') { state.pick.target = face; $('mix-box').open = true; }
  if (kind === 'source' && !state.pick.sources.some((s) => s.id === face.id)) {
    state.pick.sources.push(face);
    $('mix-box').open = true;
  }
  if (kind === 'edit') { state.pick.edit = face; $('attr-edit-box').open = true; }
  if (kind === 'id') { $('face-id').value = face.id; $('face-id').closest('details').open = true; $('face-psi').focus(); }
  renderPicks();
}

function refText(face) { return face ? `${face.id.slice(0, 8)} (${face.operation || 'face'})` : null; }

function renderPicks() {
  $('pick-a-label').textContent = refText(state.pick.a) || 'none';
  $('pick-b-label').textContent = refText(state.pick.b) || 'none (a random face)';
  $('pick-target-label').textContent = refText(state.pick.target) || 'none';
  $('pick-sources-label').textContent = state.pick.sources.map(refText).join(', ') || 'none';
  $('pick-edit-label').textContent = refText(state.pick.edit) || 'none';
  renderButtons();
}

// -- wiring --------------------------------------------------------------------------------

function wire() {
  $('random-form').addEventListener('submit', submitRandom);
  $('transition-form').addEventListener('submit', submitTransition);
  $('mix-form').addEventListener('submit', submitMix);
  $('face-form').addEventListener('submit', submitFace);
  $('attr-filter-form').addEventListener('submit', submitAttrFilter);
  $('attr-edit-form').addEventListener('submit', submitAttrEdit);
  $('cancel').addEventListener('click', cancelJob);
  $('restart').addEventListener('click', () => backend.start());
  $('transition-distance').addEventListener('input', () => {
    $('distance-value').textContent = $('transition-distance').value;
  });
  $('clear-b').addEventListener('click', () => { state.pick.b = null; renderPicks(); });
  $('clear-sources').addEventListener('click', () => { state.pick.sources = []; renderPicks(); });
  for (const b of document.querySelectorAll('[data-use]')) {
    b.addEventListener('click', () => use(b.dataset.use));
  }
  $('search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    Object.assign(state.gallery, { page: 1, q: $('search-q').value.trim().toLowerCase(),
      operation: $('search-operation').value, where: $('search-where').value.trim() });
    loadGallery();
  });
  $('search-reset').addEventListener('click', () => {
    $('search-q').value = ''; $('search-operation').value = ''; $('search-where').value = '';
    Object.assign(state.gallery, { page: 1, q: '', operation: '', where: '' });
    loadGallery();
  });
  $('prev-page').addEventListener('click', () => {
    if (state.gallery.page > 1) { state.gallery.page -= 1; loadGallery(); }
  });
  $('next-page').addEventListener('click', () => {
    if (state.gallery.page < state.gallery.pages) { state.gallery.page += 1; loadGallery(); }
  });
  $('logout').addEventListener('click', () => {
    if (draftUnsaved(state.user) && !window.confirm(LOGOUT_QUESTION)) return;
    logout();
  });
}

start();
