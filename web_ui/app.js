// The lineup builder: photos in, fillers out, a lineup saved and exported.
//
// State lives in `state`; every change calls the matching render function. Backend state,
// progress and results arrive as server-sent events from the master daemon; task requests go
// through the frontend server (/web/...), which checks the user and forwards them. The work in
// progress is kept as a draft in this tab's session storage (see "the draft" below).
import { LOGOUT_QUESTION, api, draftKey, forgetDrafts, logout, me } from './api.js';
import { renderSlot, uploadInto } from './photos.js';
import { BackendSession, showSessionState } from './session.js';

const $ = (id) => document.getElementById(id);

const state = {
  user: null,
  mode: 'basic',                 // 'basic' | 'interpolate'
  slots: { suspect: null, b: null },   // {upload, faceIndex} or {face}
  session: null,                 // the daemon's session object
  task: null,                    // the running task {task_id, type, params}
  page: 0,
  pageSource: null,              // how to ask for another page: {type, params}
  pages: {},                     // pages already shown for this source: {n: {faces, note}}
  faces: [],                     // faces shown
  distanceTo: null,              // what the fillers' distances measure against (the photo)
  reconstruction: null,          // the suspect's reconstruction of the last fillers task
  lineup: { id: null, name: '', size: 6, position: null, suspect: null, fillers: [], presentation: {} },
  savedAs: null,                 // lineupKey() as last saved or opened (to tell unsaved picks)
  draftOn: false,                // the draft is written (not before it was read, nor at logout)
  menuFace: null,
};

// -- start ---------------------------------------------------------------------------------

async function start() {
  let who;
  try { who = await me(); } catch (e) { showError(e.message); return; }
  if (!who.user) { location.replace('/login'); return; }
  state.user = who.user;
  $('user-name').textContent = who.user.name;
  $('admin-link').hidden = !who.user.is_admin;
  forgetDrafts(draftKey(who.user));   // another user's, left in this tab without logging out
  wireControls();
  renderPositions();
  renderLineup();
  showNotice();
  await backend.attach();
  await restoreDraft();
  await resumeTask();
  document.body.dataset.started = 'true';   // (browser tests wait for it)
}

// -- the draft -----------------------------------------------------------------------------
// The photos, the pages of results, the lineup and the settings, written to this tab's session
// storage (under the user's id) after every change and read at start: a reload or a visit to
// Research loses nothing. "New lineup", opening a saved lineup and logging out ask before they
// discard picks that were not saved; saving marks the draft as saved.

const settingIds = () => ['per-page', 'steps', 'interp-count', 'refine-seconds',
                          ...[...document.querySelectorAll('#traits select')].map((el) => el.id)];

function lineupKey() {
  const l = state.lineup;
  return JSON.stringify([l.id, l.suspect, l.fillers.map((f) => f.face_id), l.size, l.name,
                         $('suspect-position').value, l.presentation || {}]);
}

function unsaved() {
  const l = state.lineup;
  return Boolean(l.suspect || l.fillers.length) && lineupKey() !== state.savedAs;
}

function markSaved() {
  state.savedAs = lineupKey();
  saveDraft();
}

function slimFace(face) {
  // What the page shows of a face; its latent (large for w+) stays on the server.
  const { id, image, operation, parents, distance } = face;
  const { t, traits } = face.parameters || {};
  return { id, image, operation, parents, distance, parameters: { t, traits } };
}

function saveDraft() {
  if (!state.draftOn) return;
  const pages = Object.fromEntries(Object.entries(state.pages).map(
    ([n, seen]) => [n, { faces: seen.faces.map(slimFace), note: seen.note }]));
  const draft = {
    mode: state.mode, slots: slotsForSaving(), lineup: state.lineup,
    position: $('suspect-position').value, savedAs: state.savedAs, unsaved: unsaved(),
    faces: state.faces.map(slimFace), page: state.page, pageSource: state.pageSource, pages,
    distanceTo: state.distanceTo,
    reconstruction: state.reconstruction && { id: state.reconstruction.id },
    note: $('results-note').textContent, saveMessage: $('save-message').textContent,
    downloads: !$('downloads').hidden,
    settings: Object.fromEntries(settingIds().map((id) => [id, $(id).value])),
  };
  try {
    sessionStorage.setItem(draftKey(state.user), JSON.stringify(draft));
  } catch { /* storage full or disabled: no draft is kept */ }
}

async function restoreDraft() {
  let draft = null;
  try { draft = JSON.parse(sessionStorage.getItem(draftKey(state.user)) || 'null'); } catch { draft = null; }
  try {
    if (draft) await applyDraft(draft);
  } catch { /* a draft this version cannot read: start afresh */ }
  state.draftOn = true;
}

async function applyDraft(draft) {
  for (const [id, value] of Object.entries(draft.settings || {})) {
    if ($(id) && typeof value === 'string') $(id).value = value;
  }
  $('refine-value').textContent = $('refine-seconds').value;
  setMode(draft.mode === 'interpolate' ? 'interpolate' : 'basic');
  await restoreSlots(draft.slots || {});
  if (draft.lineup && Array.isArray(draft.lineup.fillers)) state.lineup = draft.lineup;
  renderPositions();
  $('suspect-position').value = draft.position || '';
  Object.assign(state, {
    faces: draft.faces || [], page: draft.page || 0, pageSource: draft.pageSource || null,
    pages: draft.pages || {}, distanceTo: draft.distanceTo || null,
    reconstruction: draft.reconstruction || null, savedAs: draft.savedAs || null,
  });
  if (draft.note) $('results-note').textContent = draft.note;
  $('save-message').textContent = draft.saveMessage || '';
  showDownloads(state.lineup.id, Boolean(draft.downloads));
  renderLineup();
  renderFaces();
  renderButtons();
}

async function restoreSlots(slots) {
  // The photo slots of a saved lineup or a draft (uploads are looked up again).
  for (const [name, slot] of Object.entries(slots)) {
    if (slot.upload_id) {
      try {
        const upload = await api('GET', `/web/uploads/${slot.upload_id}`);
        setSlot(name, { upload, faceIndex: slot.faceIndex || 0 });
      } catch { /* the photo is gone: leave the slot empty */ }
    } else if (slot.face) setSlot(name, { face: slot.face });
  }
}

async function resumeTask() {
  // After a reload, follow the task still running for this user (e.g. a long refine).
  try {
    const { tasks } = await api('GET', '/web/tasks');
    const running = (tasks || []).find((t) => ['queued', 'running'].includes(t.state)
      && ['fillers', 'interpolate', 'refine'].includes(t.type));
    if (!running || state.task) return;
    state.task = running;
    state.pendingPage = (running.params && running.params.page) || 0;
    if (running.type === 'fillers') setPageSource({ type: 'fillers', params: running.params });
    showProgress(running.progress || 0, running.message || running.state);
    renderButtons();
    pollTask(running.task_id);
  } catch { /* nothing to resume */ }
}

const backend = new BackendSession({
  session: setSession,
  progress: (data) => {
    if (state.task && data.task_id === state.task.task_id) showProgress(data.progress, data.message);
  },
  task: (task) => {
    if (state.task && task.task_id === state.task.task_id && task.state === 'queued') {
      showProgress(0, 'waiting for the backend');
    }
  },
  result: (task) => {
    if (state.task && task.task_id === state.task.task_id) finishTask(task);
  },
});

// -- backend session -----------------------------------------------------------------------

function setSession(session) {
  state.session = session;
  showSessionState(session);
  renderButtons();
}

const ready = () => state.session && state.session.state === 'ready';

// -- modes and inputs ----------------------------------------------------------------------

function setMode(mode) {
  state.mode = mode;
  $('mode-basic').setAttribute('aria-selected', String(mode === 'basic'));
  $('mode-interpolate').setAttribute('aria-selected', String(mode === 'interpolate'));
  const slotB = document.querySelector('[data-slot="b"]');
  slotB.hidden = mode !== 'interpolate';
  document.querySelector('[data-slot="suspect"] .slot-title').textContent =
    mode === 'interpolate' ? 'Photo #1 (the suspect)' : 'Suspect photo';
  renderButtons();
  saveDraft();
}

function slotElement(name) { return document.querySelector(`[data-slot="${name}"]`); }

function setSlot(name, value) {
  state.slots[name] = value;
  renderSlot(slotElement(name), value, (index) => {
    state.slots[name].faceIndex = index;
    if (name === 'suspect') setSuspect();
  });
  if (name === 'suspect') setSuspect();
  if (value) backend.ensure();
  renderButtons();
  saveDraft();
}

function setSuspect() {
  const slot = state.slots.suspect;
  if (slot && slot.upload) {
    state.lineup.suspect = { upload_id: slot.upload.upload_id, face_index: slot.faceIndex || 0,
                             photo: slot.upload.photo };
  } else if (slot && slot.face) {
    state.lineup.suspect = { face_id: slot.face.id, image: slot.face.image };
  }
  renderLineup();
}

function photoParams(slot, prefix) {
  // Task parameters naming an uploaded photo or a face of the session.
  if (slot.face) return { [`${prefix}face_id`]: slot.face.id };
  const params = { [`${prefix}photo`]: slot.upload.photo };
  if (slot.upload.faces.length > 1) params.face_index = slot.faceIndex || 0;
  return params;
}

function inversionParams(params) {
  const steps = $('steps').value.trim();
  if (steps !== '' && Object.keys(params).some((k) => k.endsWith('photo'))) params.steps = Number(steps);
  return params;
}

function traitParams(params) {
  // The fillers' trait request: only what differs from "as the photo" (the server's default).
  const traits = {};
  for (const el of document.querySelectorAll('#traits select')) {
    if (el.value !== 'auto') traits[el.dataset.trait] = el.value;
  }
  if (Object.keys(traits).length) params.traits = traits;
  return params;
}

const TRAIT_WORDS = { beard: ['beard', 'no beard'], glasses: ['glasses', 'no glasses'] };

function traitWords(traits) {
  // {trait: {accepted, source}} → "female · White · 20–39 · no beard", as the result says.
  return Object.entries(traits || {}).map(([trait, t]) => {
    if (TRAIT_WORDS[trait]) return TRAIT_WORDS[trait][t.accepted ? 0 : 1];
    const values = t.accepted;
    if (trait === 'hair') return `${values.filter((v) => v !== 'unsure').join('/')} hair`;
    return trait === 'age_group' && values.length > 1
      ? `${values[0].split('-')[0]}–${values[values.length - 1].split('-').pop()}`
      : values.join('/');
  }).join(' · ');
}

function perPage() {
  const n = Number($('per-page').value);
  return Number.isInteger(n) && n >= 1 && n <= 60 ? n : 12;
}

// -- tasks ---------------------------------------------------------------------------------

async function runTask(type, params, page = 0) {
  showError('');
  try {
    const task = await api('POST', '/web/tasks', { type, params });
    state.task = task;
    state.pendingPage = page;
    showProgress(0, task.state === 'queued' ? 'queued' : 'running');
    renderButtons();
    if (['done', 'failed', 'cancelled'].includes(task.state)) finishTask(task);
    else pollTask(task.task_id);
  } catch (e) {
    showError(e.message);
  }
}

async function pollTask(taskId) {
  // A safety net beside the event stream (e.g. when a proxy buffers events).
  while (state.task && state.task.task_id === taskId) {
    await new Promise((r) => setTimeout(r, 3000));
    if (!state.task || state.task.task_id !== taskId) return;
    try {
      const task = await api('GET', `/web/tasks/${taskId}`);
      if (['done', 'failed', 'cancelled'].includes(task.state)) { finishTask(task); return; }
    } catch { /* the event stream may still deliver */ }
  }
}

function finishTask(task) {
  if (!state.task || state.task.task_id !== task.task_id) return;
  state.task = null;
  renderButtons();
  if (task.state === 'cancelled') { showProgress(0, 'cancelled'); return; }
  if (task.state === 'failed') { showProgress(0, 'failed'); showError(task.error || 'The task failed.'); return; }
  showProgress(100, 'done');
  showResult(task);
}

function generate() {
  if (state.mode === 'interpolate') {
    const params = inversionParams({ ...photoParams(state.slots.suspect, 'a_'),
                                     ...photoParams(state.slots.b, 'b_') });
    if (params.face_index !== undefined) delete params.face_index; // applies to both photos
    params.count = Number($('interp-count').value) || 8;
    setPageSource(null);
    runTask('interpolate', params);
    return;
  }
  const params = traitParams(inversionParams({ ...photoParams(state.slots.suspect, 'suspect_'), per_page: perPage(), page: 0 }));
  setPageSource({ type: 'fillers', params });
  runTask('fillers', params, 0);
}

function refine() {
  const slot = state.slots.suspect;
  if (!slot || !slot.upload) { showError('Refining needs an uploaded photo of the suspect.'); return; }
  const params = traitParams({ photo: slot.upload.photo, seconds: Number($('refine-seconds').value), per_page: perPage() });
  if (slot.upload.faces.length > 1) params.face_index = slot.faceIndex || 0;
  setPageSource(null);
  runTask('refine', params, 0);
}

function setPageSource(source) {
  // A new suspect or search: the pages seen so far belong to the old one.
  state.pageSource = source;
  state.pages = {};
}

function morePage(delta) {
  if (!state.pageSource) return;
  const page = state.page + delta;
  if (page < 0 || page > 99) return;
  const seen = state.pages[page];
  if (seen) {
    // A page already seen is shown again as it was (the same faces), not made anew.
    state.page = page;
    state.faces = seen.faces;
    $('results-note').textContent = seen.note;
    $('details').hidden = true;
    renderFaces();
    return;
  }
  let params = { ...state.pageSource.params, page };
  // Once the photo was inverted, later pages start from its reconstruction (no new inversion).
  if (state.reconstruction && params.suspect_photo) {
    params = { suspect_face_id: state.reconstruction.id, per_page: params.per_page, page,
               ...(params.traits ? { traits: params.traits } : {}) };
  }
  runTask('fillers', params, page);
}

function similarTo(face) {
  const params = traitParams({ suspect_face_id: face.id, per_page: perPage(), page: 0 });
  setPageSource({ type: 'fillers', params });
  state.reconstruction = null;
  runTask('fillers', params, 0);
}

async function cancel() {
  if (!state.task) return;
  try { await api('DELETE', `/web/tasks/${state.task.task_id}`); } catch (e) { showError(e.message); }
}

const RECONSTRUCTIONS = ['invert', 'refine', 'project', 'encode'];

// -- results -------------------------------------------------------------------------------

function showResult(task) {
  const result = task.result || {};
  const faces = result.faces || [];
  // Photos given as input come back as their reconstruction (the parent of what was made).
  const recon = faces.filter((f) => RECONSTRUCTIONS.includes(f.operation));
  const shown = faces.filter((f) => !recon.includes(f));
  if (task.type === 'fillers' || task.type === 'refine') {
    if (recon.length) state.reconstruction = recon[0];
    const distances = result.identity_distances || [];
    state.distanceTo = result.identity_reference === 'photo' ? 'the photo' : 'the suspect';
    shown.forEach((f, i) => { if (distances[i] !== undefined) f.distance = distances[i]; });
    state.page = result.page || state.pendingPage || 0;
  } else {
    state.page = 0;
  }
  state.faces = shown;
  const what = { fillers: 'Fillers', refine: 'Fillers from the refined model', interpolate: 'Interpolation' }[task.type] || 'Faces';
  const matched = result.traits ? ` All share the suspect's ${traitWords(result.traits)}.` : '';
  const warned = (result.warnings || []).length ? ` ${result.warnings.join(' ')}` : '';
  $('results-note').textContent = task.type === 'interpolate'
    ? `${what}: ${shown.length} faces from photo #1 to photo #2.`
    : `${what}, page ${state.page + 1}: most similar first; later pages are less similar.${matched}${warned}`;
  if (state.pageSource) state.pages[state.page] = { faces: shown, note: $('results-note').textContent };
  $('details').hidden = true;   // the details of a face of the previous result
  renderFaces();
}

function renderFaces() {
  const list = $('faces');
  list.replaceChildren(...state.faces.map((face, i) => {
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'face';
    button.dataset.faceId = face.id;
    const chosen = state.lineup.fillers.some((f) => f.face_id === face.id);
    button.classList.toggle('chosen', chosen);
    const label = `Face ${i + 1}${face.distance !== undefined ? `, distance to ${state.distanceTo || 'the suspect'} ${face.distance.toFixed(2)}` : ''}${chosen ? ', selected' : ''}`;
    button.setAttribute('aria-label', label);
    button.setAttribute('aria-haspopup', 'menu');
    button.title = describe(face);
    const img = document.createElement('img');
    img.src = `/web/files/${face.image}`;
    img.alt = '';
    img.loading = 'lazy';
    button.append(img);
    if (face.distance !== undefined) {
      const d = document.createElement('span');
      d.className = 'distance';
      d.textContent = face.distance.toFixed(2);
      button.append(d);
    }
    button.addEventListener('click', (ev) => openMenu(face, ev.currentTarget));
    button.addEventListener('focus', () => showDetails(face));
    button.addEventListener('mouseenter', () => showDetails(face));
    li.append(button);
    return li;
  }));
  const paged = Boolean(state.pageSource);
  $('page-label').textContent = paged ? `Page ${state.page + 1}` : '—';
  $('prev-page').disabled = !paged || state.page === 0 || Boolean(state.task);
  $('next-page').disabled = !paged || state.page >= 99 || Boolean(state.task);
  saveDraft();
}

function describe(face) {
  const parts = [`operation: ${face.operation}`];
  if (face.parents && face.parents.length) parts.push(`parents: ${face.parents.map((p) => p.slice(0, 8)).join(', ')}`);
  if (face.distance !== undefined) parts.push(`distance to suspect: ${face.distance.toFixed(3)}`);
  return parts.join('\n');
}

function showDetails(face) {
  const dl = $('details-list');
  const rows = [['Operation', face.operation], ['Face id', face.id.slice(0, 12)],
                ['Parents', (face.parents || []).map((p) => p.slice(0, 12)).join(', ') || '—']];
  if (face.distance !== undefined) rows.push(['Distance to suspect', face.distance.toFixed(3)]);
  if (face.parameters && face.parameters.t !== undefined) rows.push(['Position (t)', String(face.parameters.t)]);
  const traits = face.parameters && face.parameters.traits;
  if (traits) {
    rows.push(['Traits read', Object.entries(traits).map(([trait, t]) => {
      const read = TRAIT_WORDS[trait] ? TRAIT_WORDS[trait][t.read ? 0 : 1]
        : trait === 'hair' ? `hair ${t.read}` : t.read;
      return `${read} (${Math.round(100 * t.p)} %)`;
    }).join(', ')]);
  }
  dl.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = v;
    return [dt, dd];
  }));
  $('details').hidden = false;
}

// -- the face menu -------------------------------------------------------------------------

function openMenu(face, anchor) {
  state.menuFace = face;
  state.menuAnchor = anchor;
  const menu = $('face-menu');
  const chosen = state.lineup.fillers.some((f) => f.face_id === face.id);
  menu.querySelector('[data-action="select"]').textContent = chosen ? 'Remove from the lineup' : 'Select as filler';
  const rect = anchor.getBoundingClientRect();
  menu.style.left = `${Math.min(rect.left + window.scrollX, window.scrollX + document.documentElement.clientWidth - 260)}px`;
  menu.style.top = `${rect.bottom + window.scrollY + 4}px`;
  menu.hidden = false;
  menu.querySelector('button').focus();
  showDetails(face);
}

function closeMenu() {
  $('face-menu').hidden = true;
  if (state.menuAnchor) state.menuAnchor.focus();
  state.menuFace = null;
  state.menuAnchor = null;
}

function menuAction(action) {
  const face = state.menuFace;
  closeMenu();
  if (!face) return;
  if (action === 'select') toggleFiller(face);
  if (action === 'similar') similarTo(face);
  if (action === 'input1' || action === 'input2') {
    setMode('interpolate');
    setSlot(action === 'input1' ? 'suspect' : 'b', { face });
  }
}

// -- the lineup ----------------------------------------------------------------------------

function toggleFiller(face) {
  const fillers = state.lineup.fillers;
  const at = fillers.findIndex((f) => f.face_id === face.id);
  if (at >= 0) fillers.splice(at, 1);
  else if (fillers.length >= state.lineup.size - 1) {
    showError(`A lineup of ${state.lineup.size} has room for ${state.lineup.size - 1} fillers; remove one first or choose a larger size.`);
    return;
  } else fillers.push({ face_id: face.id, image: face.image, distance: face.distance, operation: face.operation });
  renderLineup();
  renderFaces();
}

function renderLineup() {
  const l = state.lineup;
  $('lineup-name').value = l.name || '';
  $('lineup-size').value = String(l.size);
  $('lineup-count').textContent = `${l.fillers.length} of ${l.size - 1} fillers selected`;
  const items = [];
  if (l.suspect) {
    const src = l.suspect.upload_id ? `/web/uploads/${l.suspect.upload_id}/photo.png` : `/web/files/${l.suspect.image}`;
    const item = selectedItem(src, 'Suspect', () => { l.suspect = null; renderLineup(); }, 'suspect');
    const slot = state.slots.suspect;
    if (slot && slot.upload && slot.upload.upload_id === l.suspect.upload_id) {
      cropToFace(item.querySelector('img'), slot.upload, l.suspect.face_index || 0);
    }
    items.push(item);
  }
  l.fillers.forEach((f, i) => {
    items.push(selectedItem(`/web/files/${f.image}`, `Filler ${i + 1}${f.distance != null ? ` (distance ${Number(f.distance).toFixed(2)})` : ''}`,
      () => { l.fillers.splice(i, 1); renderLineup(); renderFaces(); }, 'filler'));
  });
  $('selected').replaceChildren(...items);
  $('save').disabled = !l.suspect;
  $('present-normalise').checked = Boolean((l.presentation || {}).normalise);
  $('present-grayscale').checked = Boolean((l.presentation || {}).grayscale);
  scheduleFairness();
  saveDraft();
}

const THUMB = 56;   // px: the lineup panel's thumbnails (style.css .selected-item)

function cropToFace(img, upload, index) {
  // Show the chosen face of the photo, not its centre: scale the photo so that the face's box
  // (with a margin) fills the thumbnail, and shift it into view.
  const face = (upload.faces || [])[index];
  if (!face) return;
  const [l, t, r, b] = face.box;
  const side = Math.max(r - l, b - t) * 1.5;
  const cx = (l + r) / 2;
  const cy = (t + b) / 2;
  const scale = THUMB / side;
  img.classList.add('cropped');
  img.dataset.faceIndex = String(index);
  img.style.width = `${upload.width * scale}px`;
  img.style.height = `${upload.height * scale}px`;
  img.style.left = `${THUMB / 2 - cx * scale}px`;
  img.style.top = `${THUMB / 2 - cy * scale}px`;
}

function selectedItem(src, label, remove, kind) {
  const li = document.createElement('li');
  li.className = `selected-item ${kind}`;
  const img = document.createElement('img');
  img.src = src;
  img.alt = '';
  const frame = document.createElement('span');
  frame.className = 'thumb';
  frame.append(img);
  const span = document.createElement('span');
  span.textContent = label;
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'remove';
  button.textContent = 'Remove';
  button.setAttribute('aria-label', `Remove ${label.toLowerCase()}`);
  button.addEventListener('click', remove);
  li.append(frame, span, button);
  return li;
}

function renderPositions() {
  const select = $('suspect-position');
  const current = select.value;
  const options = [new Option('Random', '')];
  for (let i = 1; i <= state.lineup.size; i += 1) options.push(new Option(String(i), String(i)));
  select.replaceChildren(...options);
  select.value = Number(current) <= state.lineup.size ? current : '';
}

async function saveLineup() {
  const l = state.lineup;
  $('save-message').textContent = '';
  const body = {
    name: $('lineup-name').value.trim() || undefined,
    size: l.size,
    suspect_position: $('suspect-position').value ? Number($('suspect-position').value) : l.position,
    suspect: l.suspect,
    fillers: l.fillers.map((f) => ({ face_id: f.face_id, distance: f.distance ?? null })),
    presentation: presentationOptions(),
    ui: { mode: state.mode, slots: slotsForSaving() },
  };
  if (!$('suspect-position').value) body.suspect_position = l.id ? l.position : null;
  try {
    const saved = l.id ? await api('PUT', `/web/lineups/${l.id}`, body) : await api('POST', '/web/lineups', body);
    showError('');   // e.g. "room for 5 fillers" no longer applies once saved
    l.id = saved.id;
    l.position = saved.suspect_position;
    l.name = saved.name;
    $('lineup-name').value = saved.name;
    const missing = saved.size - 1 - saved.fillers.length;
    $('save-message').textContent = `Saved “${saved.name}”: the suspect is number ${saved.suspect_position}.` +
      (missing ? ` Select ${missing} more filler${missing > 1 ? 's' : ''} to export it.` : '');
    showDownloads(saved.id, saved.complete);
    showParity(saved.id, saved.complete);
    markSaved();
  } catch (e) {
    $('save-message').textContent = e.message;
  }
}

// -- fairness before anyone is asked --------------------------------------------------------
// The research-only notice of the model, the presentation options, the simulated witnesses
// while fillers are picked (POST /web/lineups/simulation, debounced) and, for a saved complete
// lineup, the presentation-parity warnings (GET /web/lineups/<id>/parity).

function presentationOptions() {
  return { normalise: $('present-normalise').checked, grayscale: $('present-grayscale').checked };
}

async function showNotice() {
  try {
    const { notice } = await api('GET', '/web/lineups/notice');
    $('research-notice').textContent = notice || '';
    $('research-notice').hidden = !notice;
  } catch (e) { /* the page works without it; the exports still carry the notice */ }
}

function warningItems(messages) {
  return messages.map((text) => { const li = document.createElement('li'); li.textContent = text; return li; });
}

async function showParity(id, complete) {
  const list = $('parity-warnings');
  list.hidden = true;
  if (!id || !complete) return;
  try {
    const { parity } = await api('GET', `/web/lineups/${id}/parity`);
    const items = parity.warnings.length ? warningItems(parity.warnings.map((w) => w.message))
      : warningItems(['No member stands out by sharpness, tone, colour or background.']);
    list.replaceChildren(...items);
    list.classList.toggle('ok', parity.fair);
    list.hidden = false;
  } catch (e) {
    list.replaceChildren(...warningItems([`The presentation check failed: ${e.message}`]));
    list.hidden = false;
  }
}

let fairnessTimer = null;
let fairnessAsked = 0;

function scheduleFairness() {
  clearTimeout(fairnessTimer);
  const l = state.lineup;
  if (!l.suspect || !l.fillers.length) { $('fairness-panel').hidden = true; return; }
  fairnessTimer = setTimeout(updateFairness, 150);
}

function describeWitness(name, w) {
  if (!w) return '';
  const share = Math.round(100 * w.suspect_proportion);
  return `${name}: effective size E′ ${w.tredoux_e.toFixed(1)} of ${w.size}, the suspect chosen by ${share} % (chance ${Math.round(100 * w.chance)} %).`;
}

async function updateFairness() {
  const l = state.lineup;
  const asked = ++fairnessAsked;
  try {
    const sim = await api('POST', '/web/lineups/simulation', {
      suspect: l.suspect, fillers: l.fillers.map((f) => f.face_id) });
    if (asked !== fairnessAsked) return;   // a newer selection is on its way
    const lines = [describeWitness('Description witnesses', sim.description_witness),
                   describeWitness('Resemblance witnesses', sim.resemblance_witness)].filter(Boolean);
    $('fairness-summary').textContent = lines.length ? lines.join(' ')
      : 'The simulated witnesses need the fillers’ trait readings or identity distances.';
    const byPosition = (p) => (p === 1 ? 'The suspect' : `Filler ${p - 1}`);
    $('fairness-flags').replaceChildren(...warningItems(sim.stand_out.map(
      (f) => f.message.replace(`Member ${f.position} (the suspect)`, 'The suspect').replace(`Member ${f.position}`, byPosition(f.position)))));
    $('fairness-label').textContent = sim.simulation;
    $('fairness-panel').hidden = false;
  } catch (e) {
    if (asked !== fairnessAsked) return;
    $('fairness-summary').textContent = `The fairness check is not available: ${e.message}`;
    $('fairness-flags').replaceChildren();
    $('fairness-panel').hidden = false;
  }
}

function showDownloads(id, complete) {
  $('downloads').hidden = !(id && complete);
  $('download-png').href = `/web/lineups/${id}/composite.png`;
  $('download-zip').href = `/web/lineups/${id}/export.zip`;
  $('download-report').href = `/web/lineups/${id}/report.pdf`;
}

function slotsForSaving() {
  const out = {};
  for (const [name, slot] of Object.entries(state.slots)) {
    if (slot && slot.upload) out[name] = { upload_id: slot.upload.upload_id, faceIndex: slot.faceIndex || 0 };
    else if (slot && slot.face) out[name] = { face: { id: slot.face.id, image: slot.face.image, operation: slot.face.operation } };
  }
  return out;
}

async function showLineups() {
  const dialog = $('lineups-dialog');
  const list = $('lineup-list');
  list.replaceChildren();
  try {
    const { lineups } = await api('GET', '/web/lineups');
    if (!lineups.length) list.append(Object.assign(document.createElement('li'), { textContent: 'No saved lineups yet.' }));
    for (const item of lineups) {
      const li = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = `${item.name} · ${item.size} faces${item.complete ? '' : ' · incomplete'} · ${new Date(item.updated * 1000).toLocaleString()}`;
      button.addEventListener('click', () => { dialog.close(); openLineup(item.id); });
      const witnesses = Object.assign(document.createElement('a'), {
        className: 'button', href: `/witnesses?lineup=${encodeURIComponent(item.id)}`, textContent: 'Mock witnesses' });
      witnesses.setAttribute('aria-label', `Mock witnesses: ${item.name}`);
      li.className = 'lineup-item';
      li.append(button, witnesses);
      list.append(li);
    }
  } catch (e) {
    list.append(Object.assign(document.createElement('li'), { textContent: e.message }));
  }
  dialog.showModal();
}

async function openLineup(id) {
  if (unsaved() && !window.confirm('Open this lineup and discard the picks you have not saved?')) return;
  try {
    const saved = await api('GET', `/web/lineups/${id}`);
    state.lineup = { id: saved.id, name: saved.name, size: saved.size, position: saved.suspect_position,
                     suspect: saved.suspect, fillers: saved.fillers, presentation: saved.presentation || {} };
    renderPositions();
    $('suspect-position').value = String(saved.suspect_position);
    const ui = saved.ui || {};
    setMode(ui.mode === 'interpolate' ? 'interpolate' : 'basic');
    await restoreSlots(ui.slots || {});
    state.lineup.suspect = saved.suspect;
    renderLineup();
    $('save-message').textContent = `Opened “${saved.name}”.`;
    showDownloads(saved.id, saved.complete);
    showParity(saved.id, saved.complete);
    markSaved();
  } catch (e) {
    showError(e.message);
  }
}

function newLineup() {
  if (unsaved() && !window.confirm('Start a new lineup and discard the one you have not saved?')) return;
  state.lineup = { id: null, name: '', size: 6, position: null, suspect: null, fillers: [], presentation: {} };
  state.faces = [];
  setPageSource(null);
  state.reconstruction = null;
  setSlot('suspect', null);
  setSlot('b', null);
  $('lineup-name').value = '';
  $('lineup-size').value = '6';
  $('suspect-position').value = '';   // random again, not the old lineup's position
  showError('');
  renderPositions();
  renderLineup();
  renderFaces();
  $('downloads').hidden = true;
  $('parity-warnings').hidden = true;
  $('save-message').textContent = '';
  $('results-note').textContent = 'Upload a photo of the suspect and press “Generate results”. Later pages are less similar to the suspect.';
  $('details').hidden = true;
  state.savedAs = null;
  saveDraft();
}

// -- controls ------------------------------------------------------------------------------

function renderButtons() {
  const busy = Boolean(state.task);
  const haveInputs = state.mode === 'interpolate'
    ? Boolean(state.slots.suspect && state.slots.b)
    : Boolean(state.slots.suspect);
  $('generate').disabled = !ready() || busy || !haveInputs;
  $('generate').title = ready() ? '' : 'Waiting for the backend to be ready';
  $('refine').disabled = !ready() || busy || !(state.slots.suspect && state.slots.suspect.upload);
  $('cancel').disabled = !busy;
  $('prev-page').disabled = !state.pageSource || state.page === 0 || busy;
  $('next-page').disabled = !state.pageSource || busy;
}

function showProgress(value, message) {
  $('progress').value = Math.max(0, Math.min(100, Number(value) || 0));
  $('progress-text').textContent = message ? `${Math.round(value || 0)}% · ${message}` : '';
}

function showError(message) { $('error').textContent = message || ''; }

function wireControls() {
  $('mode-basic').addEventListener('click', () => setMode('basic'));
  $('mode-interpolate').addEventListener('click', () => setMode('interpolate'));
  document.querySelector('.tabs').addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowRight' || ev.key === 'ArrowLeft') {
      const next = state.mode === 'basic' ? 'interpolate' : 'basic';
      setMode(next);
      $(next === 'basic' ? 'mode-basic' : 'mode-interpolate').focus();
    }
  });
  for (const name of ['suspect', 'b']) {
    const el = slotElement(name);
    const accept = async (file) => {
      showError('');
      const value = await uploadInto(el, file);
      if (value) setSlot(name, value);
    };
    el.querySelector('.file-input').addEventListener('change', (ev) => {
      if (ev.target.files[0]) accept(ev.target.files[0]);
      ev.target.value = '';
    });
    const zone = el.querySelector('.dropzone');
    zone.addEventListener('dragover', (ev) => { ev.preventDefault(); zone.classList.add('over'); });
    zone.addEventListener('dragleave', () => zone.classList.remove('over'));
    zone.addEventListener('drop', (ev) => {
      ev.preventDefault();
      zone.classList.remove('over');
      if (ev.dataTransfer.files[0]) accept(ev.dataTransfer.files[0]);
    });
  }
  $('generate').addEventListener('click', generate);
  $('restart').addEventListener('click', () => backend.start());
  $('cancel').addEventListener('click', cancel);
  $('refine').addEventListener('click', refine);
  $('refine-seconds').addEventListener('input', (ev) => { $('refine-value').textContent = ev.target.value; });
  $('prev-page').addEventListener('click', () => morePage(-1));
  $('next-page').addEventListener('click', () => morePage(1));
  $('lineup-size').addEventListener('change', (ev) => {
    state.lineup.size = Number(ev.target.value);
    state.lineup.fillers = state.lineup.fillers.slice(0, state.lineup.size - 1);
    renderPositions();
    renderLineup();
    renderFaces();
  });
  $('lineup-name').addEventListener('input', (ev) => { state.lineup.name = ev.target.value; saveDraft(); });
  $('suspect-position').addEventListener('change', saveDraft);
  for (const id of ['present-normalise', 'present-grayscale']) {
    $(id).addEventListener('change', () => { state.lineup.presentation = presentationOptions(); saveDraft(); });
  }
  for (const id of settingIds()) $(id).addEventListener('change', saveDraft);
  window.addEventListener('pagehide', saveDraft);   // e.g. a setting typed but not yet changed
  $('save').addEventListener('click', saveLineup);
  $('open-lineups').addEventListener('click', showLineups);
  $('new-lineup').addEventListener('click', newLineup);
  $('logout').addEventListener('click', () => {
    if (unsaved() && !window.confirm(LOGOUT_QUESTION)) return;
    state.draftOn = false;   // nothing is written again on the way out
    logout();
  });
  const menu = $('face-menu');
  menu.addEventListener('click', (ev) => {
    const action = ev.target.closest('button')?.dataset.action;
    if (action) menuAction(action);
  });
  menu.addEventListener('keydown', (ev) => {
    const items = [...menu.querySelectorAll('button')];
    const at = items.indexOf(document.activeElement);
    if (ev.key === 'Escape') { ev.preventDefault(); closeMenu(); }
    if (ev.key === 'ArrowDown') { ev.preventDefault(); items[(at + 1) % items.length].focus(); }
    if (ev.key === 'ArrowUp') { ev.preventDefault(); items[(at - 1 + items.length) % items.length].focus(); }
    if (ev.key === 'Tab') closeMenu();
  });
  document.addEventListener('click', (ev) => {
    if (!menu.hidden && !menu.contains(ev.target) && !ev.target.closest('.face')) closeMenu();
  });
}

start();
