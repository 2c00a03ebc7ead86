// Meeting simulator page core: registers the guest, polls the server, renders screens, plays speech.
"use strict";

window.Sim = (() => {
  const cfg = JSON.parse(document.getElementById("sim-config").textContent);
  const base = `/client/${cfg.platform}/${encodeURIComponent(cfg.meetingId)}`;
  const local = {
    name: "",
    passcode: "",
    mic: true,
    cam: true,
    panel: false,
    popup: !!cfg.popup,
    error: "",
    audio: false,
    computerAudio: !cfg.noAudio, // the pre-join's audio choice (Teams' radios); false: the guest hears nothing
  };
  // A screen no adapter knows, for the unknown-state log; not a copy of any platform's page.
  const sharedScreens = {
    unrecognised: () => `
      <div class="sim-unrecognised"><h1>Something new is here</h1>
        <button type="button">Try the new experience</button> <button type="button">Not now</button></div>`,
  };
  const sharedTitles = { unrecognised: "New experience" };
  const speech = { el: null, id: null, name: null, started: new Set(), failures: new Map() };
  const PLAY_TRIES = 3; // a clip that fails to load or play is tried again from the next view, then given up
  let ui = null;
  let view = null;
  let viewSeq = 0; // the newest server view applied: a poll and an event answer may arrive out of order
  let shownKey = "";
  let peopleKey = "";
  let joining = false;

  const esc = (s) =>
    String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const $app = () => document.getElementById("app");
  const slot = (name) => document.querySelector(`[data-slot="${name}"]`);

  async function call(method, url, body) {
    const init = { method, cache: "no-store" };
    if (body !== undefined) {
      init.headers = { "Content-Type": "application/json" };
      init.body = JSON.stringify(body);
    }
    const res = await fetch(url, init);
    if (!res.ok) {
      const err = new Error(`${method} ${url}: ${res.status}`);
      err.status = res.status;
      throw err;
    }
    return res.json();
  }

  async function send(event) {
    if (!view) return;
    try {
      apply(await call("POST", `${base}/${view.clientId}`, event));
    } catch (err) {
      console.warn(err);
    }
  }

  function screenKey(v) {
    return `${v.screen}|${local.error}`;
  }

  function render(screen, v) {
    const fn = ui.screens[screen] || sharedScreens[screen] || (() => "");
    $app().innerHTML = fn(v || {}, local) + (screen === "prejoin" && local.popup && ui.popup ? ui.popup() : "");
    document.title = (ui.titles && ui.titles[screen]) || sharedTitles[screen] || ui.title;
    peopleKey = "";
  }

  function apply(v) {
    if (v.seq !== undefined) {
      if (v.seq <= viewSeq) return; // older than what is shown: applying it would stop the speech it predates
      viewSeq = v.seq;
    }
    view = v;
    if (v.error !== undefined) local.error = v.error;
    if (v.screen !== "prejoin") joining = false;
    if (v.screen === "prejoin" && v.error && joining) {
      joining = false; // the join was refused (e.g. wrong passcode): let the guest try again
      document.querySelectorAll('[data-act="join"]').forEach((el) => (el.disabled = !local.name.trim()));
    }
    const key = screenKey(v);
    if (key !== shownKey) {
      shownKey = key;
      render(v.screen, v);
    }
    if (v.screen === "in_call") {
      // this platform hears the call without asking, unless the guest chose no audio before joining
      if (!local.audio && !ui.audioDialog && local.computerAudio) joinAudio();
      updatePeople(v.participants);
    }
    syncSpeech(v);
  }

  function updatePeople(people) {
    const key = JSON.stringify([people, local.panel]);
    if (key === peopleKey) return;
    peopleKey = key;
    const tiles = slot("tiles");
    if (tiles) tiles.innerHTML = people.map((p, i) => ui.tile(p, i)).join("");
    const roster = slot("roster");
    if (roster) roster.innerHTML = local.panel ? ui.roster(people) : "";
    document.querySelectorAll("[data-count]").forEach((el) => (el.textContent = String(people.length)));
    ui.speaker(speech.name);
  }

  // -- speech: play the server's current utterance once, report playing / done --------------------

  function mediaUrl(path) {
    return "/media/" + path.split("/").map(encodeURIComponent).join("/");
  }

  // Computer audio: a guest hears the call only once joined to it (Zoom asks first, in a dialog).
  function joinAudio() {
    if (local.audio) return;
    local.audio = true;
    document.querySelectorAll("[data-audio-prompt]").forEach((el) => el.remove());
    send({ type: "audio" });
  }

  function syncSpeech(v) {
    const want = v.screen === "in_call" && local.audio ? v.speech : null;
    if (speech.id !== null && (!want || want.id !== speech.id)) stopSpeech(false);
    if (!want || speech.started.has(want.id)) return;
    speech.started.add(want.id);
    const el = document.createElement("audio");
    el.id = "sim-speech";
    el.preload = "auto";
    el.src = mediaUrl(want.audio);
    document.body.appendChild(el);
    Object.assign(speech, { el, id: want.id, name: want.name });
    let reported = false;
    el.addEventListener("loadedmetadata", () => {
      if (want.offset > 0.3 && want.offset < el.duration) el.currentTime = want.offset;
    });
    el.addEventListener("playing", () => {
      if (speech.id !== want.id) return;
      ui.speaker(want.name);
      if (!reported) {
        reported = true;
        send({ type: "speech", id: want.id, state: "playing" });
      }
    });
    el.addEventListener("ended", () => finishSpeech(want.id));
    el.addEventListener("error", () => failSpeech(want.id));
    el.play().catch(() => failSpeech(want.id));
  }

  // A load or play failure (a busy machine can drop the clip's request): the next view starts it again, at the
  // server's offset; after PLAY_TRIES the page reports it finished, so the meeting's speech goes on.
  function failSpeech(id) {
    if (speech.id !== id) return; // stopped on purpose: its play() was interrupted
    const failures = (speech.failures.get(id) || 0) + 1;
    speech.failures.set(id, failures);
    console.warn(`speech ${id} failed to play (${failures}/${PLAY_TRIES})`);
    if (failures >= PLAY_TRIES) {
      finishSpeech(id);
      return;
    }
    stopSpeech(false);
    speech.started.delete(id);
  }

  function stopSpeech(report) {
    const { el, id } = speech;
    Object.assign(speech, { el: null, id: null, name: null });
    if (el) {
      el.pause();
      el.remove();
    }
    if (ui) ui.speaker(null);
    if (report && id !== null) send({ type: "speech", id, state: "done" });
  }

  function finishSpeech(id) {
    if (speech.id === id) stopSpeech(true);
  }

  function sendJoin() {
    send({ type: "join", name: local.name, micOn: local.mic, cameraOn: local.cam, passcode: local.passcode });
  }

  // -- user actions (event delegation on data-act / data-field) ----------------------------------

  function toggle(kind) {
    local[kind] = !local[kind];
    document.querySelectorAll(`[data-act="${kind}"]`).forEach((el) => ui.toggle(el, kind, local[kind]));
    if (view && view.screen === "in_call") send({ type: "devices", micOn: local.mic, cameraOn: local.cam });
  }

  const actions = {
    mic: () => toggle("mic"),
    cam: () => toggle("cam"),
    join: () => {
      if (joining || !local.name.trim()) return;
      joining = true;
      document.querySelectorAll('[data-act="join"]').forEach((el) => (el.disabled = true));
      if (view) sendJoin(); // else: sent once the page has registered
    },
    leave: () => send({ type: "leave" }),
    "join-audio": () => joinAudio(),
    "launch-app": () => ui.launchApp && ui.launchApp(),
    "audio-choice": (target) => {
      local.computerAudio = target.dataset.choice === "computer";
      document.querySelectorAll('[data-act="audio-choice"]').forEach((el) => {
        el.setAttribute("aria-checked", String((el.dataset.choice === "computer") === local.computerAudio));
      });
    },
    "audio-dialog": () => {
      const dialog = slot("audio-dialog");
      if (dialog && !local.audio && ui.audioDialog) dialog.innerHTML = ui.audioDialog();
    },
    "leave-menu": () => {
      const menu = slot("leave-menu");
      if (menu) menu.innerHTML = menu.innerHTML ? "" : ui.leaveMenu();
    },
    people: () => {
      local.panel = !local.panel;
      if (view) updatePeople(view.participants);
    },
    dismiss: () => {
      local.popup = false;
      document.querySelectorAll("[data-popup]").forEach((el) => el.remove());
    },
    home: () => (window.location.href = "/"),
    "continue-browser": () => {
      window.location.href = cfg.prejoinUrl + (cfg.query ? `?${cfg.query}` : "");
    },
  };

  document.addEventListener("click", (event) => {
    const target = event.target.closest("[data-act]");
    if (!target || target.disabled) return;
    const act = actions[target.dataset.act];
    if (act) act(target);
  });

  document.addEventListener("input", (event) => {
    const field = event.target.dataset && event.target.dataset.field;
    if (!field) return;
    local[field] = event.target.value;
    if (field === "name") {
      const empty = !local.name.trim();
      document.querySelectorAll('[data-act="join"]').forEach((el) => (el.disabled = empty || joining));
    }
  });

  // -- start ------------------------------------------------------------------------------------

  async function poll() {
    try {
      apply(await call("GET", `${base}/${view.clientId}`));
    } catch (err) {
      if (err.status === 404) {
        stopSpeech(false);
        view = Object.assign({}, view, { screen: "ended", participants: [], speech: null });
        if (shownKey !== "gone") {
          shownKey = "gone";
          render("ended", view);
        }
      }
    }
    setTimeout(poll, cfg.pollMs);
  }

  async function start(platformUi) {
    ui = platformUi;
    if (cfg.screen) {
      render(cfg.screen, {});
      return;
    }
    // Show the join form at once; the registration below does not change it (same screen key).
    const provisional = { screen: "prejoin", needsPasscode: !!cfg.passcode, participants: [], speech: null };
    shownKey = screenKey(provisional);
    render("prejoin", provisional);
    for (;;) {
      try {
        const v = await call("POST", base, {
          waitingRoom: cfg.waitingRoom,
          audio: cfg.audio,
          speaker: cfg.speaker,
          passcode: cfg.passcode,
        });
        const wasJoining = joining;
        apply(v);
        if (wasJoining) sendJoin();
        break;
      } catch (err) {
        console.warn(err);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
    setTimeout(poll, cfg.pollMs);
  }

  return { cfg, esc, local, start };
})();
