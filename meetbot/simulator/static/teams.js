// Microsoft Teams web look-alike: launcher, anonymous pre-join/lobby and call with Teams' data-tids and texts.
"use strict";

(() => {
  const { cfg, esc } = Sim;
  const SPEAKING = "vdi-frame-occlusion"; // class of the voice-level outline while the tile's person speaks

  const switchHtml = (kind, on) => {
    const tid = kind === "mic" ? "toggle-mute" : "toggle-video";
    const label = kind === "mic" ? "Microphone" : "Camera";
    return `<label class="tm-switch">${label}
      <input type="checkbox" role="switch" data-tid="${tid}" data-act="${kind}" aria-label="${label}"
        aria-checked="${on}"${on ? " checked" : ""}></label>`;
  };

  const message = (title, body, extra = "") => `
    <div class="tm-message">
      <h1 id="calling-retry-screen-title">${title}</h1>
      ${body ? `<p>${body}</p>` : ""}${extra}
    </div>`;

  const prejoin = (v, s, lobby) => `
    <div class="tm-prejoin">
      <h1>Microsoft Teams meeting</h1>
      <div class="tm-video${s.cam ? "" : " tm-video-off"}">${s.cam ? "" : "Your camera is turned off"}</div>
      ${lobby ? "" : `<input type="text" data-tid="prejoin-display-name-input" placeholder="Type your name"
        aria-label="Type your name" autocomplete="off" data-field="name" value="${esc(s.name)}">`}
      <div class="tm-switches">${switchHtml("cam", s.cam)}${switchHtml("mic", s.mic)}</div>
      <div class="tm-audio" role="radiogroup" aria-label="Audio settings">
        <div role="radio" tabindex="0" data-act="audio-choice" data-choice="computer"
          aria-checked="${s.computerAudio}">Computer audio</div>
        <div role="radio" tabindex="0" data-act="audio-choice" data-choice="none"
          aria-checked="${!s.computerAudio}">Don't use audio</div>
      </div>
      ${lobby ? '<div class="tm-lobby" role="status">Someone will let you in soon</div>' : ""}
      <div class="tm-actions">
        <button type="button" class="tm-primary" data-tid="prejoin-join-button" data-act="join"
          ${lobby || !s.name.trim() ? " disabled" : ""}>Join now</button>
        <button type="button" class="tm-secondary" data-tid="prejoin-cancel-button">Cancel</button>
      </div>
    </div>`;

  Sim.start({
    title: "Microsoft Teams",
    titles: {},
    screens: {
      launcher: () => `
        <div class="tm-launcher">
          <h1>How do you want to join your Teams meeting?</h1>
          <button type="button" class="tm-secondary">Join on the Teams app</button>
          <button type="button" class="tm-primary" data-tid="joinOnWeb" aria-label="Join on this browser"
            data-act="continue-browser">Continue on this browser</button>
        </div>`,
      prejoin: (v, s) => prejoin(v, s, false),
      waiting: (v, s) => prejoin(v, s, true),
      in_call: (v, s) => `
        <div class="tm-call">
          <div class="tm-stage"><div class="tm-tiles" data-slot="tiles"></div><div data-slot="roster"></div></div>
          <div class="tm-bar" role="toolbar" aria-label="Meeting controls">
            <button type="button" id="roster-button" aria-label="People" data-act="people">People
              <span data-count></span></button>
            <button type="button" id="microphone-button" data-act="mic"
              aria-label="${s.mic ? "Mute" : "Unmute"} (Ctrl+Shift+M)">${s.mic ? "Mic on" : "Mic off"}</button>
            <button type="button" id="video-button" data-act="cam"
              aria-label="Turn camera ${s.cam ? "off" : "on"} (Ctrl+Shift+O)">${s.cam ? "Cam on" : "Cam off"}</button>
            <button type="button" id="raisehands-button" aria-label="Raise (Ctrl+Shift+K)">Raise</button>
            <button type="button" id="hangup-button" data-tid="hangup-main-btn" data-inp="hangup-button"
              aria-label="Leave (Ctrl+Shift+H)" class="tm-hangup" data-act="leave">Leave</button>
          </div>
        </div>`,
      denied: () =>
        message(
          "Sorry, but you were denied access to the meeting.",
          "",
          '<button type="button" class="tm-secondary" data-tid="calling-retry-cancelbutton" data-act="home">Close</button>',
        ),
      removed: () => message("You've been removed from this meeting", "Someone removed you from the meeting."),
      ended: () => message("The meeting has ended", ""),
      left: () => message("You left the meeting", ""),
      notfound: () => message("Looks like the meeting URL is incorrect.", "Check the link and try again."),
      connect_failed: () => message("We couldn't connect you", "Please try again."),
      invalid: () => message("Looks like the meeting URL is incorrect.", ""),
      blocked: () => message("Verify you're a real person", ""),
      signin: () => `
        <div class="tm-message"><h1>Sign in</h1>
          <input type="email" name="loginfmt" placeholder="Email, phone, or Skype" aria-label="Enter your email"></div>`,
    },
    popup: () => `
      <div class="sim-overlay" data-popup><div role="dialog" aria-modal="true" class="tm-dialog">
        <p>Are you sure you don't want to use audio or video?</p>
        <button type="button" class="tm-primary" data-act="dismiss">Continue without audio or video</button>
      </div></div>`,
    toggle: (el, kind, on) => {
      if (el.type === "checkbox") {
        el.checked = on;
        el.setAttribute("aria-checked", String(on));
      } else if (kind === "mic") {
        el.setAttribute("aria-label", `${on ? "Mute" : "Unmute"} (Ctrl+Shift+M)`);
        el.textContent = on ? "Mic on" : "Mic off";
      } else {
        el.setAttribute("aria-label", `Turn camera ${on ? "off" : "on"} (Ctrl+Shift+O)`);
        el.textContent = on ? "Cam on" : "Cam off";
      }
      const video = document.querySelector(".tm-video");
      if (kind === "cam" && video) {
        video.classList.toggle("tm-video-off", !on);
        video.textContent = on ? "" : "Your camera is turned off";
      }
    },
    tile: (p) => `
      <div class="tm-tile" data-stream-type="Video" data-tid="${esc(p.name)}" data-sim-name="${esc(p.name)}">
        <div data-tid="voice-level-stream-outline" class="tm-outline"></div>
        <div class="tm-avatar">${esc(p.name.charAt(0).toUpperCase())}</div>
        <span class="tm-name">${esc(p.name)}${p.self ? " (You)" : ""}</span>
      </div>`,
    roster: (people) => `
      <div class="tm-panel"><h2>Participants</h2>
        <div role="tree" aria-label="Participants">
          <div role="treeitem" aria-label="In this meeting (${people.length})">In this meeting (${people.length})</div>
          ${people
            .map(
              (p) => `<div role="treeitem" data-tid="participantsInCall-${esc(p.name)}" class="tm-person">
                <span title="${esc(p.name)}">${esc(p.name)}</span>${p.self ? " <span>(You)</span>" : ""}</div>`,
            )
            .join("")}
        </div></div>`,
    speaker: (name) => {
      document.querySelectorAll(".tm-tile").forEach((tile) => {
        const outline = tile.querySelector('[data-tid="voice-level-stream-outline"]');
        outline.classList.toggle(SPEAKING, name !== null && tile.dataset.simName === name);
      });
    },
  });
})();
