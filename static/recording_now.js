/* The recording's panel on the page of a run being recorded (templates/_recording_now.html):
   the recording writing this run (GET /api/v1/recordings), its live counts every second while
   the page is visible, a countdown when it has a duration, and Stop (POST .../stop). */
"use strict";

(function () {
  const box = document.querySelector("[data-recording-now]");
  if (!box) return;
  const run = box.dataset.recordingNow;
  const enc = encodeURIComponent;
  const FINAL = ["finished", "stopped", "failed"];
  const $ = (sel) => box.querySelector(sel);
  const els = {
    state: $("[data-rn-state]"), stop: $("[data-rn-stop]"), messages: $("[data-rn-messages]"),
    bytes: $("[data-rn-bytes]"), rate: $("[data-rn-rate]"), gaps: $("[data-rn-gaps]"),
    elapsed: $("[data-rn-elapsed]"), countdownBox: $("[data-rn-countdown-box]"),
    countdown: $("[data-rn-countdown]"), status: $("[data-rn-status]"),
  };
  let job = null, timer = null, shown = null;

  function bytes(n) {
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return `${i ? n.toFixed(1) : n} ${units[i]}`;
  }
  function clock(s) {
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return (h ? `${h}:${String(m).padStart(2, "0")}` : `${m}`) + `:${String(sec).padStart(2, "0")}`;
  }

  function render(r) {
    shown = r;
    els.state.textContent = r.state;
    els.state.className = "state " + r.state;
    els.messages.textContent = Number(r.messages || 0).toLocaleString();
    els.bytes.textContent = bytes(r.bytes || 0);
    els.rate.textContent = `${(r.rate_messages_s || 0).toFixed(1)}/s · ${bytes(r.rate_bytes_s || 0)}/s`;
    els.gaps.textContent = `${r.gaps || 0} / ${r.drops || 0}`;
    tickClock();
    if (FINAL.includes(r.state)) {
      els.stop.hidden = true;
      els.countdownBox.hidden = true;
      els.status.textContent = `The recording has ${r.state === "failed" ? "failed" : "ended"}` +
        (r.error ? `: ${r.error}` : "") + ". Reload the page for the run's final figures.";
    }
  }

  // Elapsed and the countdown move every second between polls too.
  function tickClock() {
    const r = shown;
    if (!r) return;
    const start = r.started_ns || r.created_ns;
    const end = FINAL.includes(r.state) && r.ended_ns ? r.ended_ns : Date.now() * 1e6;
    const elapsed = start ? (end - start) / 1e9 : 0;
    els.elapsed.textContent = clock(elapsed);
    const total = r.params && Number(r.params.duration_s);
    if (total && !FINAL.includes(r.state)) {
      els.countdownBox.hidden = false;
      els.countdown.textContent = clock(total - elapsed);
    }
  }

  async function poll() {
    clearTimeout(timer);
    if (!job) return;
    if (document.visibilityState === "visible") {
      try {
        const r = await R.api("GET", `/recordings/${enc(job)}`);
        render(r);
        if (FINAL.includes(r.state)) return;
      } catch (e) {
        els.status.textContent = e.message;
      }
    }
    timer = setTimeout(poll, 1000);
  }

  els.stop.addEventListener("click", async () => {
    els.stop.disabled = true;
    const r = await R.run(() => R.api("POST", `/recordings/${enc(job)}/stop`));
    els.stop.disabled = false;
    if (r) { els.status.textContent = "Stopping…"; render(r); poll(); }
  });
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") poll(); });
  setInterval(tickClock, 1000);

  R.api("GET", "/recordings").then((out) => {
    const rec = out.recordings.find((r) => r.run_id === run && !FINAL.includes(r.state));
    if (!rec) return;
    job = rec.id;
    box.hidden = false;
    render(rec);
    poll();
  }).catch(() => {});
})();
