// Mock-witness tests of a saved lineup (witnesses.html): make a test and hand out its links,
// follow the answers (a bar chart per member, every fairness measure of models/fairness.py
// and its verdict), export them as CSV, import choices collected on paper, revoke links.
import { api, me } from './api.js';

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const state = { lineups: [], lineupId: null, testId: null, test: null, timer: null };

function say(id, text, isError = false) {
  $(id).textContent = text || '';
  $(id).className = isError ? 'error' : '';
}

function when(t) { return t ? new Date(t * 1000).toLocaleString() : '—'; }
function num(x, digits = 2) { return x === null || x === undefined ? '—' : Number(x).toFixed(digits); }
function pct(x) { return `${(100 * x).toFixed(1)} %`; }

async function start() {
  let who;
  try { who = await me(); } catch (e) { say('test-message', e.message, true); return; }
  if (!who.user) { location.replace('/login'); return; }
  $('user-name').textContent = who.user.name;
  wire();
  const { lineups } = await api('GET', '/web/lineups');
  state.lineups = lineups;
  const select = $('lineup-select');
  select.replaceChildren(...lineups.map((l) => Object.assign(document.createElement('option'), {
    value: l.id, textContent: `${l.name} · ${l.size} faces${l.complete ? '' : ' · draft'}` })));
  if (!lineups.length) {
    select.append(Object.assign(document.createElement('option'), { value: '', textContent: 'No saved lineups yet' }));
    $('new-test').hidden = true;
    return;
  }
  const wanted = new URLSearchParams(location.search).get('lineup');
  select.value = lineups.some((l) => l.id === wanted) ? wanted : lineups[0].id;
  await chooseLineup(select.value, new URLSearchParams(location.search).get('test'));
}

async function chooseLineup(id, testId = null) {
  state.lineupId = id;
  const params = new URLSearchParams({ lineup: id });
  history.replaceState(null, '', `/witnesses?${params}`);
  const lineup = state.lineups.find((l) => l.id === id);
  $('new-test').open = Boolean(lineup && lineup.complete);
  say('test-message', lineup && !lineup.complete ? 'This lineup is a draft: choose all its fillers and save it first.' : '');
  await listTests(testId);
}

async function listTests(selectId = null) {
  const list = $('test-list');
  let tests = [];
  try {
    ({ tests } = await api('GET', `/web/lineups/${state.lineupId}/witness-tests`));
  } catch (e) { list.replaceChildren(Object.assign(document.createElement('li'), { textContent: e.message })); return; }
  list.replaceChildren();
  if (!tests.length) list.append(Object.assign(document.createElement('li'), { textContent: 'No tests of this lineup yet.', className: 'muted' }));
  for (const t of tests) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.testId = t.id;
    const c = t.link_counts;
    b.textContent = `${when(t.created)} · ${c.answered} answered of ${t.links.length || Object.values(c).reduce((a, x) => a + x, 0)} links${t.revoked ? ' · revoked' : ''}`;
    b.addEventListener('click', () => showTest(t.id));
    li.append(b);
    list.append(li);
  }
  const pick = selectId || (state.testId && tests.some((t) => t.id === state.testId) ? state.testId : null);
  if (pick) await showTest(pick); else { $('test-view').hidden = true; stopPolling(); }
}

function markCurrent() {
  for (const b of document.querySelectorAll('#test-list button')) b.setAttribute('aria-current', String(b.dataset.testId === state.testId));
}

async function showTest(id, links = null) {
  if (id !== state.testId) $('new-links').hidden = true;
  state.testId = id;
  markCurrent();
  if (links) showLinks(links);
  await refresh();
  $('test-view').hidden = false;
  startPolling();
}

async function refresh() {
  if (!state.testId) return;
  let test;
  try { test = await api('GET', `/web/witness-tests/${state.testId}`); } catch (e) {
    say('link-message', e.message, true);
    return;
  }
  state.test = test;
  $('test-title').textContent = `Test of ${when(test.created)}`;
  const traits = Object.entries(test.traits || {}).map(([k, v]) => `${k.replace('_', ' ')}: ${v}`).join(', ');
  $('test-about').textContent = [`Lineup “${test.lineup_name}” as it was then: ${test.size} members, suspect at ${test.suspect_position}`,
    traits ? `traits: ${traits}` : '', test.title ? `heading shown: “${test.title}”` : 'no heading shown',
    test.revoked ? `revoked ${when(test.revoked)}` : ''].filter(Boolean).join(' · ');
  $('test-description').textContent = test.description;
  $('export-csv').href = `/web/witness-tests/${test.id}/choices.csv`;
  renderResults(test);
  renderLinks(test);
  markCurrent();
}

// -- results -----------------------------------------------------------------------------

function el(name, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

function renderChart(test) {
  const r = test.results;
  const k = test.size;
  const width = 720;
  const height = 240;
  const top = 24;
  const bottom = 28;
  const slot = width / k;
  const barWidth = Math.min(64, slot * 0.6);
  const max = Math.max(1, ...r.counts);
  const scale = (height - top - bottom) / max;
  const svg = $('chart');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const base = height - bottom;
  for (let i = 0; i < k; i++) {
    const x = i * slot + (slot - barWidth) / 2;
    const online = r.online_counts[i];
    const paper = r.paper_counts[i];
    const g = el('g', { 'data-position': i + 1, 'data-count': r.counts[i] });
    g.append(el('title', {}, `Member ${i + 1}${i + 1 === test.suspect_position ? ' (suspect)' : ''}: ${r.counts[i]} (${online} online, ${paper} on paper)`));
    g.append(el('rect', { class: 'bar-online', x, y: base - online * scale, width: barWidth, height: online * scale }));
    g.append(el('rect', { class: 'bar-paper', x, y: base - (online + paper) * scale, width: barWidth, height: paper * scale }));
    if (i + 1 === test.suspect_position) {
      g.append(el('rect', { class: 'bar-suspect', x: x - 2, y: base - r.counts[i] * scale - 2, width: barWidth + 4, height: r.counts[i] * scale + 4 }));
    }
    g.append(el('text', { x: x + barWidth / 2, y: base - r.counts[i] * scale - 6, 'text-anchor': 'middle' }, String(r.counts[i])));
    g.append(el('text', { x: x + barWidth / 2, y: height - 8, 'text-anchor': 'middle' }, `${i + 1}${i + 1 === test.suspect_position ? ' (S)' : ''}`));
    svg.append(g);
  }
  if (r.n) {  // the chance level: N / k choices per member
    const y = base - (r.n / k) * scale;
    svg.append(el('line', { class: 'chance', x1: 0, x2: width, y1: y, y2: y }));
    svg.append(el('text', { x: width - 4, y: y - 4, 'text-anchor': 'end' }, 'chance'));
  }
  svg.append(el('line', { x1: 0, x2: width, y1: base, y2: base, stroke: 'currentColor' }));
}

function renderThumbs(test) {
  const box = $('thumbs');
  if (box.dataset.testId === test.id) return;   // the images do not change
  box.dataset.testId = test.id;
  box.replaceChildren();
  for (let p = 1; p <= test.size; p++) {
    const fig = document.createElement('figure');
    if (p === test.suspect_position) fig.className = 'suspect';
    const img = Object.assign(document.createElement('img'), { src: `/web/witness-tests/${test.id}/member/${p}.png`, alt: `Member ${p}${p === test.suspect_position ? ' (suspect)' : ''}` });
    fig.append(img, Object.assign(document.createElement('figcaption'), { textContent: p === test.suspect_position ? `${p} · suspect` : String(p) }));
    box.append(fig);
  }
}

function renderResults(test) {
  const r = test.results;
  $('results-words').textContent = r.in_words;
  renderChart(test);
  renderThumbs(test);
  const f = r.fairness;
  $('verdict').textContent = f ? `Verdict: ${f.verdict}.` : r.note;
  $('verdict').dataset.bias = f ? f.bias : '';
  $('measures').hidden = !f;
  if (!f) return;
  const rows = [
    ['Mock witnesses (choices)', `${f.n}`],
    ['Functional size N/D (Wells et al. 1979)', f.functional_size === null ? f.functional_size_note : num(f.functional_size)],
    ['Effective size E (Malpass 1981)', `${num(f.effective_size_malpass)} of ${f.size}`],
    ['E adjusted for null foils (Malpass 1981)', `${num(f.effective_size_malpass_adjusted)} (null foils: ${f.null_foils.join(', ') || 'none'})`],
    ["Tredoux's E′ (1998)", num(f.tredoux_e)],
    ['E′ 95 % CI, normal theory', `${num(f.tredoux_e_ci[0])} to ${num(f.tredoux_e_ci[1])}`],
    [`E′ 95 % CI, bootstrap (${f.bootstrap_resamples} resamples)`, f.tredoux_e_ci_bootstrap ? `${num(f.tredoux_e_ci_bootstrap[0])} to ${num(f.tredoux_e_ci_bootstrap[1])}` : '—'],
    ['Suspect chosen', `${f.suspect_count} of ${f.n} = ${pct(f.suspect_proportion)} (chance ${pct(f.chance)})`],
    ['Its 95 % CI (Wilson)', `${pct(f.suspect_proportion_ci[0])} to ${pct(f.suspect_proportion_ci[1])}`],
    [`Exact binomial test against 1/${f.size}`, f.binomial_p < 0.001 ? 'p < 0.001' : `p = ${Number(f.binomial_p).toPrecision(2)}`],
  ];
  $('measure-rows').replaceChildren(...rows.map(([label, value]) => {
    const tr = document.createElement('tr');
    tr.append(Object.assign(document.createElement('th'), { scope: 'row', textContent: label }),
      Object.assign(document.createElement('td'), { textContent: value }));
    return tr;
  }));
}

// -- links -------------------------------------------------------------------------------

function showLinks(links) {
  const text = links.map((l) => l.url).join('\n') + '\n';
  $('links-text').value = text;
  const old = $('download-links').href;
  if (old && old.startsWith('blob:')) URL.revokeObjectURL(old);
  $('download-links').href = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
  $('new-links').hidden = false;
  say('copy-message', `${links.length} new link${links.length === 1 ? '' : 's'} (numbers ${links[0].number}–${links[links.length - 1].number}).`);
}

async function copyLinks() {
  const area = $('links-text');
  try {
    await navigator.clipboard.writeText(area.value);
  } catch {
    area.select();           // no clipboard API (plain http): select them for Ctrl+C
    if (!document.execCommand || !document.execCommand('copy')) { say('copy-message', 'Selected: press Ctrl+C (⌘C) to copy.'); return; }
  }
  say('copy-message', 'Copied.');
}

const STATE_WORDS = { open: 'not opened', opened: 'opened', answered: 'answered', revoked: 'revoked', expired: 'expired' };

function renderLinks(test) {
  const c = test.link_counts;
  $('link-counts').textContent = `${test.links.length} links: ${c.answered} answered, ${c.opened} opened, ${c.open} not opened, ${c.revoked} revoked, ${c.expired} expired.`;
  $('revoke-test').disabled = Boolean(test.revoked);
  $('add-links').disabled = Boolean(test.revoked);
  $('link-rows').replaceChildren(...test.links.map((l) => {
    const tr = document.createElement('tr');
    tr.dataset.state = l.state;
    const action = document.createElement('td');
    if (l.state === 'open' || l.state === 'opened') {
      const b = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Revoke', className: 'small' });
      b.setAttribute('aria-label', `Revoke link ${l.number}`);
      b.addEventListener('click', () => act(`Link ${l.number} revoked.`, () => api('POST', `/web/witness-tests/${test.id}/links/${l.number}/revoke`)));
      action.append(b);
    }
    tr.append(Object.assign(document.createElement('td'), { textContent: `#${l.number}` }),
      Object.assign(document.createElement('td'), { textContent: STATE_WORDS[l.state] || l.state, title: `expires ${when(l.expires)}` }),
      Object.assign(document.createElement('td'), { textContent: l.answered ? when(l.answered) : '' }), action);
    return tr;
  }));
}

async function act(done, call) {
  say('link-message', '');
  try { await call(); } catch (e) { say('link-message', e.message, true); return; }
  await listTests(state.testId);   // the list's counts and the test shown, then the outcome
  say('link-message', done);
}

// -- forms -------------------------------------------------------------------------------

async function createTest(ev) {
  ev.preventDefault();
  const traits = {};
  for (const s of document.querySelectorAll('[data-trait]')) if (s.value) traits[s.dataset.trait] = s.value;
  const body = { description: $('description').value, traits, title: $('title').value,
    links: Number($('link-count').value), confidence_scale: $('confidence-scale').value };
  if ($('expires-days').value.trim()) body.expires_days = Number($('expires-days').value);
  say('test-message', 'Making the test…');
  try {
    const made = await api('POST', `/web/lineups/${state.lineupId}/witness-tests`, body);
    say('test-message', 'The test is made: send each mock witness one of its links.');
    $('new-test').open = false;
    state.testId = made.test.id;
    await listTests(made.test.id);
    showLinks(made.links);
  } catch (e) { say('test-message', e.message, true); }
}

async function addLinks() {
  try {
    const { links } = await api('POST', `/web/witness-tests/${state.testId}/links`, { links: Number($('more-links').value) });
    showLinks(links);
    await refresh();
  } catch (e) { say('link-message', e.message, true); }
}

async function importChoices(ev) {
  ev.preventDefault();
  const file = $('import-file').files[0];
  if (!file) { say('import-message', 'Choose a CSV file first.', true); return; }
  const form = new FormData();
  form.append('file', file);
  try {
    const done = await api('POST', `/web/witness-tests/${state.testId}/imports`, form);
    $('import-file').value = '';
    await refresh();
    say('import-message', `${done.imported} choices imported from ${file.name}.`);
  } catch (e) { say('import-message', e.message, true); }
}

async function removeImports() {
  if (!confirm('Remove every choice imported from paper into this test?')) return;
  try {
    const done = await api('DELETE', `/web/witness-tests/${state.testId}/imports`);
    await refresh();
    say('import-message', `${done.deleted} imported choices removed.`);
  } catch (e) { say('import-message', e.message, true); }
}

function startPolling() {
  stopPolling();
  if ($('auto-refresh').checked) state.timer = setInterval(() => { if (!document.hidden) refresh(); }, 15000);
}
function stopPolling() { if (state.timer) clearInterval(state.timer); state.timer = null; }

function wire() {
  $('lineup-select').addEventListener('change', (ev) => { state.testId = null; chooseLineup(ev.target.value); });
  $('test-form').addEventListener('submit', createTest);
  $('refresh').addEventListener('click', refresh);
  $('auto-refresh').addEventListener('change', startPolling);
  $('copy-links').addEventListener('click', copyLinks);
  $('add-links').addEventListener('click', addLinks);
  $('import-form').addEventListener('submit', importChoices);
  $('remove-imports').addEventListener('click', removeImports);
  $('revoke-test').addEventListener('click', () => {
    if (confirm('Revoke every link of this test? Answers given so far are kept.')) act('The test is revoked: no link takes an answer any more.', () => api('POST', `/web/witness-tests/${state.testId}/revoke`));
  });
  $('delete-test').addEventListener('click', async () => {
    if (!confirm('Delete this test with all its answers? Its links stop working.')) return;
    try { await api('DELETE', `/web/witness-tests/${state.testId}`); } catch (e) { say('link-message', e.message, true); return; }
    state.testId = null;
    $('test-view').hidden = true;
    stopPolling();
    await listTests();
  });
}

start();
