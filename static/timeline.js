/* The run page's timeline bar (templates/_timeline.html). Marks sit at their second of the run;
   a drag chooses [start, end] and writes it into the replay form (start_s, end_s) and the export
   form (start, end); a click sends run:seek {t_s} to the viewers, and the cursor follows what
   they show (run:position). */
"use strict";

(function () {
  const box = document.querySelector("[data-run-timeline]");
  if (!box) return;
  const bar = box.querySelector("[data-tl-bar]");
  const range = box.querySelector("[data-tl-range]");
  const cursor = box.querySelector("[data-tl-cursor]");
  const hover = box.querySelector("[data-tl-hover]");
  const text = box.querySelector("[data-tl-selection]");
  const clear = box.querySelector("[data-tl-clear]");
  const duration = Math.max(Number(box.dataset.durationS) || 0, 1e-3);
  const pct = (t) => `${(100 * Math.max(0, Math.min(duration, t))) / duration}%`;
  const round = (t) => Math.round(t * 1000) / 1000;

  bar.querySelectorAll("[data-at-s]").forEach((el) => { el.style.left = pct(Number(el.dataset.atS)); });
  bar.querySelectorAll("[data-from-s]").forEach((el) => {
    const from = Number(el.dataset.fromS);
    const to = el.dataset.toS === "" ? duration : Number(el.dataset.toS);
    el.style.left = pct(from);
    el.style.width = `${(100 * (Math.min(duration, to) - Math.max(0, from))) / duration}%`;
  });

  function at(ev) {
    const r = bar.getBoundingClientRect();
    return round((Math.max(0, Math.min(r.width, ev.clientX - r.left)) / Math.max(1, r.width)) * duration);
  }

  function setField(form, name, value) {
    const input = form && form.querySelector(`[name="${name}"]`);
    if (!input) return;
    input.value = value === null ? "" : String(value);
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function choose(a, b) {
    const replay = document.getElementById("replay-form"), exp = document.getElementById("export-form");
    if (a === null) {
      range.hidden = true; clear.hidden = true;
      for (const [f, s, e] of [[replay, "start_s", "end_s"], [exp, "start", "end"]]) { setField(f, s, null); setField(f, e, null); }
      text.textContent = "The whole run: replay and export start and end cleared.";
      return;
    }
    const [lo, hi] = a <= b ? [a, b] : [b, a];
    range.style.left = pct(lo);
    range.style.width = `${(100 * (hi - lo)) / duration}%`;
    range.hidden = false; clear.hidden = false;
    setField(replay, "start_s", lo); setField(replay, "end_s", hi);
    setField(exp, "start", lo); setField(exp, "end", hi);
    text.textContent = `Range ${lo.toFixed(3)} – ${hi.toFixed(3)} s (${(hi - lo).toFixed(3)} s): filled into Replay and Export.`;
  }

  let from = null, dragging = false, downX = 0;
  bar.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0) return;
    from = at(ev); downX = ev.clientX; dragging = false;
    bar.setPointerCapture(ev.pointerId);
    ev.preventDefault();
  });
  bar.addEventListener("pointermove", (ev) => {
    hover.textContent = `${at(ev).toFixed(3)} s`;
    if (from === null) return;
    if (!dragging && Math.abs(ev.clientX - downX) < 4) return;
    dragging = true;
    choose(from, at(ev));
  });
  bar.addEventListener("pointerleave", () => { if (from === null) hover.textContent = ""; });
  bar.addEventListener("pointerup", (ev) => {
    if (from === null) return;
    const t = at(ev);
    if (dragging) choose(from, t);
    else document.dispatchEvent(new CustomEvent("run:seek", { detail: { t_s: t } }));
    from = null; dragging = false;
  });
  clear.addEventListener("click", () => choose(null));

  document.addEventListener("run:position", (ev) => {
    cursor.style.left = pct(ev.detail.t_s);
    cursor.hidden = false;
    cursor.title = `${ev.detail.source}: +${ev.detail.t_s.toFixed(3)} s`;
  });
})();
