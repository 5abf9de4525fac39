/* The replay page's seek bar, step buttons and keys (templates/_replay_keys.html): space pauses
   or resumes, ←/→ seek 5 s (Shift: 30 s), → while paused sends the next message. Each is one
   call to the replay's API (pause, resume, seek {t_s}, step {n}); the slider follows the
   replay's position (GET /replays/{id}, every second) unless it is being dragged. Seeks stay
   within the run; a replay that has ended takes no more commands. */
"use strict";

(function () {
  const box = document.querySelector("[data-replay-keys]");
  if (!box) return;
  const id = box.dataset.replayKeys;
  const enc = encodeURIComponent;
  const FINAL = ["finished", "stopped", "failed"];
  const $ = (sel) => box.querySelector(sel);
  const els = {
    slider: $("[data-rk-slider]"), position: $("[data-rk-position]"), duration: $("[data-rk-duration]"),
    status: $("[data-rk-status]"), toggle: $("[data-rk-toggle]"),
  };
  let r = { state: "", desired: "", position_s: Number(els.slider.value), duration_s: Number(box.dataset.durationS) };
  let dragging = false;

  const paused = () => r.state === "paused" || r.desired === "paused";
  const ended = () => FINAL.includes(r.state) || r.desired === "stopped";

  function show(next) {
    r = next;
    const d = Number(r.duration_s) || 0;
    els.slider.max = d;
    els.duration.textContent = `${d.toFixed(1)} s`;
    if (!dragging) {
      els.slider.value = r.position_s || 0;
      els.position.textContent = `${(r.position_s || 0).toFixed(1)} s`;
    }
    const off = ended();
    box.querySelectorAll("button").forEach((b) => { b.disabled = off; });
    els.slider.disabled = off;
    els.toggle.setAttribute("aria-pressed", paused() ? "true" : "false"); // pressed: held
  }

  async function send(path, body, what) {
    if (ended()) { els.status.textContent = `The replay has ${r.state || "ended"}.`; return; }
    try {
      const out = await R.api("POST", `/replays/${enc(id)}/${path}`, body);
      if (out) show(out);
      els.status.textContent = what;
      if (window.htmx && document.getElementById("replay-live")) htmx.trigger("#replay-live", "refresh");
    } catch (e) {
      els.status.textContent = e.message;
    }
  }

  function seekTo(t) {
    const d = Number(r.duration_s) || 0;
    t = Math.max(0, d ? Math.min(d, t) : t);
    els.slider.value = t;
    els.position.textContent = `${t.toFixed(1)} s`;
    return send("seek", { t_s: Math.round(t * 1000) / 1000 }, `seek to ${t.toFixed(1)} s`);
  }
  function seekBy(dt) { return seekTo((Number(r.position_s) || 0) + dt); }
  function toggle() { return paused() ? send("resume", undefined, "resumed") : send("pause", undefined, "paused"); }
  function step(n) {
    if (!paused()) { els.status.textContent = "Pause first: steps send messages one at a time while paused."; return; }
    return send("step", { n }, `sent ${n} message${n > 1 ? "s" : ""}`);
  }

  box.querySelectorAll("[data-rk-seek]").forEach((b) => b.addEventListener("click", () => seekBy(Number(b.dataset.rkSeek))));
  box.querySelectorAll("[data-rk-step]").forEach((b) => b.addEventListener("click", () => step(Number(b.dataset.rkStep))));
  els.toggle.addEventListener("click", toggle);
  els.slider.addEventListener("input", () => { dragging = true; els.position.textContent = `${Number(els.slider.value).toFixed(1)} s`; });
  els.slider.addEventListener("change", async () => { await seekTo(Number(els.slider.value)); dragging = false; });

  document.addEventListener("keydown", (ev) => {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const t = ev.target;
    if (t && t.closest && t.closest("input:not([type=range]), textarea, select, [contenteditable]")) return;
    if (ev.key === " " || ev.key === "Spacebar") {
      if (t && t.closest && t.closest("button, a")) return; // space presses a focused button itself
      ev.preventDefault(); toggle();
    } else if (ev.key === "ArrowRight") {
      ev.preventDefault();
      if (paused() && !ev.shiftKey) step(1); else seekBy(ev.shiftKey ? 30 : 5);
    } else if (ev.key === "ArrowLeft") {
      ev.preventDefault(); seekBy(ev.shiftKey ? -30 : -5);
    }
  });

  async function poll() {
    if (document.visibilityState === "visible") {
      try { show(await R.api("GET", `/replays/${enc(id)}`)); } catch (e) { /* the live part shows errors */ }
    }
    if (!FINAL.includes(r.state)) setTimeout(poll, 1000);
  }
  poll();
})();
