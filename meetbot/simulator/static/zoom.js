// Zoom web client look-alike: preview page, waiting room, meeting app with Zoom's ids, classes and texts.
"use strict";

(() => {
  const { cfg, esc } = Sim;
  const FOOTER_BTN = "footer-button-base__button ax-outline footer-button__button";

  const previewLabel = (kind, on) => (kind === "mic" ? (on ? "Mute" : "Unmute") : on ? "Stop Video" : "Start Video");

  const modal = (title, body) => `
    <div class="meeting-app zm-dim">
      <div class="zm-modal" role="dialog" aria-label="${esc(title)}">
        <div class="zm-modal-body-title">${title}</div>
        ${body ? `<div class="zm-modal-body">${body}</div>` : ""}
        <button type="button" class="zm-btn zm-btn-legacy zm-btn--primary zm-btn__outline--blue" data-act="home">OK</button>
      </div>
    </div>`;

  // Zoom's audio dialog: the guest hears nothing until it joins computer audio.
  const audioDialog = () => `
    <div class="zm-modal join-dialog" role="dialog" aria-label="Join Audio" data-audio-prompt>
      <div class="zm-modal-body-title">Join Audio</div>
      <button type="button" class="zm-btn join-audio-by-voip__join-btn zm-btn--primary" data-act="join-audio">
        Join Audio by Computer</button>
    </div>`;

  const page = (title, body) => `<div class="zm-page"><h1>${title}</h1>${body ? `<p>${body}</p>` : ""}</div>`;

  // The launcher page of personal, vanity and event links: "Launch Meeting" tries the desktop app through
  // its zoommtg:// protocol (the browser may ask "Open xdg-open?"); only then the browser link shows.
  // The older page showed "Join from Your Browser" at once. docs/platforms.md#zoom-launcher
  const webClientUrl = () => cfg.prejoinUrl + (cfg.query ? `?${cfg.query}` : "");
  const browserLink = () =>
    cfg.oldWording
      ? `Having issues with Zoom Client? <a href="${esc(webClientUrl())}">Join from Your Browser</a>`
      : `Having issues with Zoom Workplace app? <a href="${esc(webClientUrl())}">Join from your browser</a>`;
  const launchApp = () => {
    const frame = document.getElementById("zm-launch-frame");
    if (frame) frame.src = `zoommtg://zoom.us/join?action=join&confno=${encodeURIComponent(cfg.meetingId)}`;
    const link = document.querySelector("[data-browser-link]");
    if (link) link.hidden = false;
  };

  Sim.start({
    title: "Zoom",
    titles: { notfound: "Error - Zoom", invalid: "Error - Zoom", launcher: "Launch Meeting - Zoom" },
    launchApp,
    screens: {
      launcher: () => `
        <div class="zm-page zm-launcher">
          <h1>Click <strong>Open Zoom Workplace</strong> on the dialog shown by your browser</h1>
          <p>If you don't see a dialog, click <strong>Launch Meeting</strong> below</p>
          <p class="zm-terms">By clicking "Launch Meeting", you agree to our Terms of Service and Privacy Statement</p>
          <div role="button" tabindex="0" class="zm-btn zm-btn--primary launch-meeting-btn" data-act="launch-app">
            Launch Meeting</div>
          <p>Don't have Zoom Workplace app? <a href="#download">Download Now</a></p>
          <p data-browser-link${cfg.oldWording ? "" : " hidden"}>${browserLink()}</p>
          <iframe id="zm-launch-frame" title="launch" hidden></iframe>
        </div>`,
      prejoin: (v, s) => `
        <div class="zm-preview-page">
          <div class="zm-preview">
            <div class="zm-video${s.cam ? "" : " zm-video-off"}">${s.cam ? "" : "Video is off"}</div>
            <div class="zm-preview-controls">
              <button type="button" id="preview-audio-control-button" data-act="mic"
                aria-label="${previewLabel("mic", s.mic)}">${previewLabel("mic", s.mic)}</button>
              <button type="button" id="preview-video-control-button" data-act="cam"
                aria-label="${previewLabel("cam", s.cam)}">${previewLabel("cam", s.cam)}</button>
            </div>
          </div>
          <div class="zm-form">
            <h1>Enter Meeting Info</h1>
            ${
              v.needsPasscode
                ? `<input type="password" id="input-for-pwd" placeholder="Meeting Passcode" aria-label="Meeting Passcode"
                    data-field="passcode" value="${esc(s.passcode)}">`
                : ""
            }
            <input type="text" id="input-for-name" placeholder="Your Name" aria-label="Your Name" autocomplete="off"
              data-field="name" value="${esc(s.name)}">
            ${s.error ? `<div class="zm-error" role="alert">${esc(s.error)}</div>` : ""}
            <button type="button" class="zm-btn preview-join-button zm-btn--default zm-btn__outline--white"
              data-act="join"${s.name.trim() ? "" : " disabled"}>Join</button>
          </div>
        </div>`,
      waiting: () => `
        <div class="meeting-app">
          <div class="zm-waiting">
            <h1>Please wait, the meeting host will let you in soon.</h1>
            <p>${esc(cfg.meetingId)}'s Zoom Meeting</p>
          </div>
        </div>`,
      in_call: (v, s) => `
        <div class="meeting-app">
          <div class="zm-main">
            <div class="speaker-active-container" data-slot="active"></div>
            <div class="speaker-bar-container" data-slot="tiles"></div>
            <div data-slot="roster"></div>
          </div>
          <div data-slot="leave-menu" class="zm-leave-slot"></div>
          <div data-slot="audio-dialog">${s.audio ? "" : audioDialog()}</div>
          <div id="wc-footer" class="footer">
            ${
              s.audio
                ? ""
                : `<button type="button" class="${FOOTER_BTN} join-audio-container__btn" data-audio-prompt
                    data-act="audio-dialog" aria-label="Join Audio">Join Audio</button>`
            }
            <button type="button" class="${FOOTER_BTN}" data-act="mic" aria-label="${s.mic ? "Mute" : "Unmute"}">
              ${s.mic ? "Mute" : "Unmute"}</button>
            <button type="button" class="${FOOTER_BTN}" data-act="cam"
              aria-label="${s.cam ? "Stop Video" : "Start Video"}">${s.cam ? "Stop Video" : "Start Video"}</button>
            <button type="button" class="${FOOTER_BTN}" data-act="people"
              aria-label="open the participants list pane"><span class="footer-button__number-counter"
              data-count></span> Participants</button>
            <button type="button" class="${FOOTER_BTN} zm-leave" aria-label="Leave" data-act="leave-menu">Leave</button>
          </div>
        </div>`,
      // Zoom has no "deny": the host removes a guest from the waiting room.
      denied: () => modal("You have been removed", "The host removed you from the waiting room."),
      removed: () => modal("You have been removed", "The host removed you from this meeting."),
      ended: () => `<div aria-label="Meeting is end now">${modal("This meeting has been ended by host", "")}</div>`,
      left: () => page("You left the meeting", ""),
      notfound: () => page("This meeting link is invalid (3,001)", "Meeting does not exist"),
      invalid: () => page("This meeting link is invalid (3,001)", ""),
      blocked: () =>
        page(
          "We detected you may be a bot",
          "Automated bots aren't allowed to join this meeting or webinar and must use Zoom RTMS." +
            ' <button type="button" class="zm-btn">Sign in to join</button>',
        ),
      signin: () =>
        page("Only authenticated users can join this meeting", '<button type="button" class="zm-btn">Sign in to join</button>'),
    },
    popup: () => `
      <div class="sim-overlay" data-popup><div id="onetrust-banner-sdk" role="dialog" class="zm-cookies">
        <p>We use cookies to improve your experience.</p>
        <button type="button" id="onetrust-accept-btn-handler" data-act="dismiss">Accept Cookies</button>
      </div></div>`,
    audioDialog,
    leaveMenu: () => `
      <div class="leave-meeting-options">
        <button type="button" class="zm-btn leave-meeting-options__btn leave-meeting-options__btn--danger" aria-label=""
          data-act="leave">Leave Meeting</button>
      </div>`,
    toggle: (el, kind, on) => {
      const label = previewLabel(kind, on);
      el.setAttribute("aria-label", label);
      el.textContent = label;
      const video = document.querySelector(".zm-video");
      if (kind === "cam" && video) {
        video.classList.toggle("zm-video-off", !on);
        video.textContent = on ? "" : "Video is off";
      }
    },
    tile: (p) => `
      <div class="speaker-bar-container__video-frame" data-sim-name="${esc(p.name)}">
        <div class="video-avatar__avatar"><div class="zm-initial">${esc(p.name.charAt(0).toUpperCase())}</div>
          <div class="video-avatar__avatar-footer"><span>${esc(p.name)}</span></div></div>
      </div>`,
    roster: (people) => `
      <div class="participants-section-container"><div class="participants-header">Participants (${people.length})</div>
        <ul class="participants-list">
          ${people
            .map(
              (p) => `<li class="participants-item">
                <span class="participants-item__display-name">${esc(p.name)}</span>
                ${p.self ? '<span class="participants-item__name-label">(Me)</span>' : ""}</li>`,
            )
            .join("")}
        </ul></div>`,
    speaker: (name) => {
      document.querySelectorAll(".speaker-bar-container__video-frame").forEach((frame) => {
        frame.classList.toggle("speaker-bar-container__video-frame--active", name !== null && frame.dataset.simName === name);
      });
      const active = document.querySelector('[data-slot="active"]');
      if (!active) return;
      active.innerHTML =
        name === null
          ? ""
          : `<div class="speaker-active-container__video-frame"><div class="video-avatar__avatar">
              <div class="zm-initial zm-big">${esc(name.charAt(0).toUpperCase())}</div>
              <div class="video-avatar__avatar-footer"><span>${esc(name)}</span></div></div></div>`;
    },
  });
})();
