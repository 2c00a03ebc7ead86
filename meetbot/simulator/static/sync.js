// Meeting simulator: the A/V sync clock (query option sync=<seconds>). Every <seconds> of the wall clock the
// square in the top-left corner turns white and a 1 kHz beep plays, both for 200 ms, at the same instant, so a
// recording's audio and video can be lined up (bench/bot_runtime.py --drift-minutes).
"use strict";

(() => {
  const cfg = JSON.parse(document.getElementById("sim-config").textContent);
  const period = Number(cfg.syncSeconds) * 1000;
  if (!(period > 0)) return;
  const FLASH_MS = 200;
  const box = document.createElement("div");
  box.id = "sim-sync";
  box.style.cssText = "position:fixed;left:0;top:0;width:96px;height:96px;background:#000;z-index:2147483647";
  document.body.appendChild(box);
  let audio = null;

  function tick() {
    box.style.background = "#fff";
    try {
      audio = audio || new AudioContext();
      const osc = audio.createOscillator();
      osc.frequency.value = 1000;
      osc.connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + FLASH_MS / 1000);
    } catch (err) {
      console.warn(err);
    }
    setTimeout(() => (box.style.background = "#000"), FLASH_MS);
    schedule();
  }

  function schedule() {
    setTimeout(tick, period - (Date.now() % period));
  }

  schedule();
})();
