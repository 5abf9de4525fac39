/* Recording controls on the dashboard: the start form's trigger, split and session fields, and
   each live recording's marker box (its Trigger / Pause / Resume / Split buttons are plain
   data-post buttons that recorder.js sends). Everything goes through /api/v1. */
"use strict";

(function () {
  const enc = encodeURIComponent;
  const num = (v) => (v === "" || v === null || v === undefined ? undefined : Number(v));

  /* Called by recorder.js's start-recording builder: adds trigger, split, session to `body`. */
  R.recordingOptions = function (f, body) {
    if (!f.elements.pre_s) return;
    const rules = (f.rules.value || "").split("\n").map((r) => r.trim()).filter(Boolean);
    const pre = num(f.pre_s.value), post = num(f.post_s.value);
    const maxBytes = f.max_bytes.value.trim();
    if (f.armed.checked || pre !== undefined || post !== undefined || rules.length || maxBytes) {
      const trigger = { pre_s: pre ?? 0, rules };
      if (post !== undefined) trigger.post_s = post;
      if (maxBytes) trigger.max_bytes = /^\d+$/.test(maxBytes) ? Number(maxBytes) : maxBytes;
      body.trigger = trigger;
    }
    const split = f.split.value.trim();
    if (split) body.split = split;
    if (f.session.value) body.session = f.session.value;
  };

  document.addEventListener("submit", (ev) => {
    const f = ev.target.closest("form[data-marker]");
    if (!f) return;
    ev.preventDefault();
    const input = f.elements.text;
    const text = input.value.trim();
    if (!text) return;
    const button = f.querySelector("[type=submit]");
    if (button) button.disabled = true;
    R.run(async () => {
      await R.api("POST", `/recordings/${enc(f.dataset.marker)}/markers`, { text });
      input.value = "";
      R.flash("Marker added.", "ok");
      R.refresh();
    }).finally(() => { if (button) button.disabled = false; });
  });
})();
