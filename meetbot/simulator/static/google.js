// Google Meet look-alike: the signed-out guest flow with Meet's labels, texts and tile classes.
"use strict";

(() => {
  const { cfg, esc } = Sim;
  const SPEAKING = "OgVli"; // Meet's speaking-ring class; gjg47c when silent
  const SILENT = "gjg47c";

  const micLabel = (on) => (on ? "Turn off microphone" : "Turn on microphone");
  const camLabel = (on) => (on ? "Turn off camera" : "Turn on camera");
  const toggleHtml = (kind, on, tag) => {
    const label = kind === "mic" ? micLabel(on) : camLabel(on);
    const icon = kind === "mic" ? "Mic" : "Cam";
    const attrs = `data-act="${kind}" aria-label="${label}" data-is-muted="${!on}" class="gm-round${on ? "" : " gm-off"}"`;
    return tag === "div"
      ? `<div role="button" tabindex="0" ${attrs}>${icon}</div>`
      : `<button type="button" ${attrs}>${icon}</button>`;
  };

  const preview = (s) => `
    <div class="gm-preview">
      <div class="gm-video${s.cam ? "" : " gm-video-off"}">${s.cam ? "" : "Camera is off"}</div>
      <div class="gm-preview-controls">${toggleHtml("mic", s.mic, "div")}${toggleHtml("cam", s.cam, "div")}</div>
    </div>`;

  const endScreen = (title, detail) => `
    <div class="gm-end">
      <h1 class="roSPhc">${title}</h1>
      ${detail ? `<p>${detail}</p>` : ""}
      <button type="button" class="gm-text-btn" data-act="home"><span>Return to home screen</span></button>
    </div>`;

  Sim.start({
    title: `Meet - ${cfg.meetingId}`,
    titles: {},
    screens: {
      prejoin: (v, s) => `
        <div class="gm-prejoin">
          ${preview(s)}
          <div class="gm-side">
            <h1>What's your name?</h1>
            <input type="text" jsname="YPqjbf" aria-label="Your name" placeholder="Your name" autocomplete="off"
              data-field="name" value="${esc(s.name)}">
            <button type="button" class="gm-join" data-act="join"${s.name.trim() ? "" : " disabled"}>
              <span>${cfg.waitingRoom ? "Ask to join" : "Join now"}</span></button>
          </div>
        </div>`,
      waiting: (v, s) => `
        <div class="gm-prejoin">
          ${preview(s)}
          <div class="gm-side">
            <h1>Asking to be let in...</h1>
            <p>You’ll join the call when someone lets you in</p>
          </div>
        </div>`,
      in_call: (v, s) => `
        <div class="gm-call">
          <div class="gm-stage"><div class="gm-tiles" data-slot="tiles"></div><div data-slot="roster"></div></div>
          <div role="region" aria-label="Call controls" class="gm-controls">
            <span class="gm-code">${esc(cfg.meetingId)}</span>
            ${toggleHtml("mic", s.mic, "button")}${toggleHtml("cam", s.cam, "button")}
            <button type="button" class="gm-round" aria-label="Turn on captions">CC</button>
            <button type="button" class="gm-round" aria-label="People" data-act="people">Ppl <span data-count></span></button>
            <button type="button" class="gm-leave" aria-label="Leave call" jsname="CQylAd" data-act="leave">Leave</button>
          </div>
        </div>`,
      denied: () => endScreen("You can't join this call", "Someone in the call denied your request to join"),
      removed: () => endScreen("You've been removed from the meeting", ""),
      ended: () => endScreen("Your host ended the meeting for everyone", ""),
      left: () => endScreen("You left the meeting", ""),
      notfound: () => endScreen("Check your meeting code", "Make sure you entered the correct meeting code in the URL"),
      invalid: () => endScreen("Invalid video call name.", ""),
      blocked: () => endScreen("You can't join this video call", ""),
      signin: () => `
        <div class="gm-end"><h1>Sign in</h1><p>to continue to Google Meet</p>
          <input type="email" aria-label="Email or phone" placeholder="Email or phone"></div>`,
    },
    popup: () => `
      <div class="sim-overlay" data-popup><div role="dialog" aria-modal="true" class="gm-dialog">
        <p>Others may see your video differently</p>
        <button type="button" class="gm-text-btn" data-act="dismiss"><span>Got it</span></button>
      </div></div>`,
    toggle: (el, kind, on) => {
      el.setAttribute("aria-label", kind === "mic" ? micLabel(on) : camLabel(on));
      el.setAttribute("data-is-muted", String(!on));
      el.classList.toggle("gm-off", !on);
      const video = document.querySelector(".gm-video");
      if (kind === "cam" && video) {
        video.classList.toggle("gm-video-off", !on);
        video.textContent = on ? "" : "Camera is off";
      }
    },
    tile: (p, i) => `
      <div class="gm-tile" data-participant-id="spaces/${esc(cfg.meetingId)}/devices/${i + 1}"
        data-sim-name="${esc(p.name)}"${p.self ? ` data-self-name="${esc(p.name)}"` : ""}>
        <div class="gm-ring ${SILENT}"></div>
        <div class="gm-avatar">${esc(p.name.charAt(0).toUpperCase())}</div>
        <span class="notranslate">${p.self ? "You" : esc(p.name)}</span>
      </div>`,
    roster: (people) => `
      <div class="gm-panel"><h2>People</h2><div class="gm-contrib">Contributors ${people.length}</div>
        <div role="list" aria-label="Participants">
          ${people
            .map(
              (p) => `<div role="listitem" aria-label="${esc(p.name)}" class="gm-person">
                <span class="notranslate">${esc(p.name)}</span>${p.self ? " <span>(You)</span>" : ""}</div>`,
            )
            .join("")}
        </div></div>`,
    speaker: (name) => {
      document.querySelectorAll(".gm-tile").forEach((tile) => {
        const speaking = name !== null && tile.dataset.simName === name && !tile.dataset.selfName;
        const ring = tile.querySelector(".gm-ring");
        ring.classList.toggle(SPEAKING, speaking);
        ring.classList.toggle(SILENT, !speaking);
      });
    },
  });
})();
