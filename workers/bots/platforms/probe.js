// The page probe of workers/bots/platforms/webclient.py: one WebDriver round trip reads a page's state.
// Arguments: the table payload, the bot's name, mode "state" | "join" | "find", and for "find" the locators.
const T = arguments[0], me = (arguments[1] || '').toLowerCase(), mode = arguments[2];
// Texts compare case-insensitively with apostrophes and "…" normalised: docs/platforms.md#text-matching.
const norm = (s) => String(s || '').replace(/[\u2018\u2019\u02bc]/g, "'").replace(/\u2026/g, '...')
  .replace(/\s+/g, ' ').trim();
const low = (s) => norm(s).toLowerCase();
let bodyText = null;
const textOf = (el) => {
  if (el === document.body) return bodyText === null ? (bodyText = low(el.innerText)) : bodyText;
  return low(el.innerText || el.textContent);
};
const find = (locs) => {
  for (const L of locs || []) {
    let els;
    try { els = document.querySelectorAll(L.css); } catch (e) { continue; }
    for (const el of els) {
      if (L.shown && el.getClientRects().length === 0) continue;
      if (L.text && !textOf(el).includes(low(L.text))) continue;
      return [el, L];
    }
  }
  return null;
};
const first = (locs) => { const hit = find(locs); return hit ? hit[0] : null; };
if (mode === 'find') return document.body ? first(arguments[3]) : null;
const out = {phase: 'unknown', detail: '', participants: [], activeSpeaker: null, prompted: null};
if (!document.body) return out;
// While the call's controls are visible, a sentence anywhere on the page (a chat toast, a caption) is not
// an end screen: only the screens' own elements (a modal title, an aria-label) count then.
const controls = !!find(T.call_controls.map((L) => Object.assign({}, L, {shown: true})));
for (const [phase, locs, screen] of T.phases) {
  const hit = find(screen && controls ? locs.filter((L) => !(L.css === 'body' && L.text)) : locs);
  if (hit) { out.phase = phase; out.detail = hit[1].text || hit[1].css; break; }
}
const selfNames = new Set([me, ...T.self_names.map(low)]);
// Role labels after names ("(You)", "(Host)"...) are removed: docs/platforms.md#name-suffixes.
const suffix = /\s*\((?:you|me|host|co-host|guest|unverified|external|organi[sz]er|presenter)(?:,[^)]*)?\)$/i;
const readName = (root, src) => {
  const el = src.name ? root.querySelector(src.name) : root;
  if (!el) return '';
  let name = src.attr ? el.getAttribute(src.attr) : (el.innerText || el.textContent);
  name = norm(String(name || '').split('\n')[0]);
  for (let prev = ''; prev !== name;) { prev = name; name = name.replace(suffix, '').trim(); }
  return selfNames.has(name.toLowerCase()) ? '' : name;
};
if (out.phase === 'in_call') {
  // Open the participants panel when it is closed: at most 3 tries per page, 5 s apart.
  const tries = window.__meetbotPeople || (window.__meetbotPeople = {n: 0, at: 0});
  if (T.people_button.length && tries.n < 3 && Date.now() - tries.at > 5000 && !find(T.people_panel)) {
    const button = first(T.people_button);
    if (button) { tries.n += 1; tries.at = Date.now(); button.click(); }
  }
  // Prompts the call raises (join computer audio...): clicked when seen, at most 10 times, 1 s apart.
  const asked = window.__meetbotPrompts || (window.__meetbotPrompts = {n: 0, at: 0});
  if (T.call_prompts.length && asked.n < 10 && Date.now() - asked.at > 1000) {
    const hit = find(T.call_prompts);
    if (hit) { asked.n += 1; asked.at = Date.now(); out.prompted = hit[1].text || hit[1].css; hit[0].click(); }
  }
  const seen = new Set();
  for (const src of T.participants) {
    let items;
    try { items = document.querySelectorAll(src.css); } catch (e) { continue; }
    for (const item of items) {
      const name = readName(item, src);
      if (name && !seen.has(name)) { seen.add(name); out.participants.push(name); }
    }
  }
  search: for (const src of T.speaking) {
    let els;
    try { els = document.querySelectorAll(src.css); } catch (e) { continue; }
    for (const el of els) {
      const tile = src.tile ? el.closest(src.tile) : el;
      const name = tile ? readName(tile, src) : '';
      if (name) { out.activeSpeaker = name; break search; }
    }
  }
}
if (out.phase === 'unknown') {
  // What a person would need to recognise the screen: docs/platforms.md#unknown-screens.
  const seen = new Set();
  for (const el of document.querySelectorAll('button, [role="button"], a[href], input[type="submit"], input[type="button"]')) {
    if (el.getClientRects().length === 0) continue;
    const text = norm(el.innerText || el.value || el.getAttribute('aria-label')).slice(0, 60);
    if (text && !seen.has(text) && seen.size < 20) seen.add(text);
  }
  out.page = {title: norm(document.title).slice(0, 120), url: location.href, buttons: [...seen]};
}
if (mode === 'join') {
  const join = first(T.join_button), name = first(T.name_input), passcode = first(T.passcode_input);
  const launcher = first(T.launcher);
  out.els = {launcher, launch: launcher ? null : first(T.launch_app), popup: first(T.popups), name, passcode, join,
    mic: first(T.mic_on), camera: first(T.camera_on), audio: first(T.audio_choice)};
  out.launcherHref = launcher && /^https?:/.test(launcher.href || '') ? launcher.href : null;
  const transient = find(T.transient);
  out.transient = transient ? (transient[1].text || transient[1].css) : null;
  out.joinEnabled = !!join && !join.disabled && join.getAttribute('aria-disabled') !== 'true';
  out.nameValue = name ? name.value : '';
  out.passcodeValue = passcode ? passcode.value : '';
}
return out;
