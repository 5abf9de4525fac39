/* The run page's image viewer (templates/_images.html): one frame of a stream at a time from
   GET /api/v1/runs/{run}/streams/{s}/frames/{i}.png (contrast, colour map, full resolution are
   that API's parameters) and its details from .../frames/{i} (number, time, unique id,
   attributes, pixel values). Steps, jumps and the slider move through the frames; the timeline
   (run:seek) jumps to the frame at a time, and the shown frame's time goes back to it
   (run:position). Clicking a thumbnail in Previews opens that frame here. */
"use strict";

(function () {
  const box = document.querySelector("[data-run-images]");
  if (!box) return;
  const run = document.getElementById("run").dataset.run;
  const enc = encodeURIComponent;
  const $ = (sel) => box.querySelector(sel);
  const els = {
    stream: $("[data-img-stream]"), index: $("[data-img-index]"), count: $("[data-img-count]"),
    slider: $("[data-img-slider]"), contrast: $("[data-img-contrast]"), cmap: $("[data-img-cmap]"),
    plo: $("[data-img-plo]"), phi: $("[data-img-phi]"), lo: $("[data-img-lo]"), hi: $("[data-img-hi]"),
    full: $("[data-img-full]"), img: $("[data-img]"), imgBox: $("[data-img-box]"),
    error: $("[data-img-error]"), facts: $("[data-img-facts]"), attrs: $("[data-img-attrs]"),
  };
  let current = -1, stats = null, timer = null, asked = 0;

  const option = () => els.stream.selectedOptions[0];
  const total = () => Number(option().dataset.count);
  const base = () => `/api/v1/runs/${enc(run)}/streams/${enc(els.stream.value)}`;

  function look() {
    const q = new URLSearchParams();
    const arr = option().dataset.array;
    if (arr) q.set("array", arr);
    const c = els.contrast.value;
    if (c !== "auto") q.set("contrast", c);
    if (c === "percentile") { q.set("plo", els.plo.value || "0"); q.set("phi", els.phi.value || "100"); }
    if (c === "manual") { q.set("lo", els.lo.value); q.set("hi", els.hi.value); }
    if (els.cmap.value !== "gray") q.set("cmap", els.cmap.value);
    if (els.full.checked) q.set("full", "true"); else q.set("size", "1024");
    return q;
  }

  function fact(name, value) {
    const d = document.createElement("div");
    const dt = document.createElement("dt"); dt.textContent = name;
    const dd = document.createElement("dd"); dd.textContent = value;
    d.append(dt, dd);
    return d;
  }

  function showDetails(d) {
    stats = d.stats;
    els.facts.textContent = "";
    els.facts.append(
      fact("Frame", `${d.index} of ${d.total}`),
      fact("Time", `${d.t_s >= 0 ? "+" : ""}${d.t_s.toFixed(3)} s`),
      fact("Unique id", d.unique_id === null || d.unique_id === undefined ? "–" : String(d.unique_id)),
    );
    const img = d.images.find((i) => i.array === d.array);
    if (img) els.facts.append(fact("Image", `${img.array} ${img.dtype} [${img.shape.join("×")}]`));
    if (d.stats && d.stats.min !== null) {
      const f = (v) => (Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : +v.toFixed(3));
      els.facts.append(fact("Values", `min ${f(d.stats.min)} · mean ${f(d.stats.mean)} · max ${f(d.stats.max)}`));
    }
    els.attrs.textContent = "";
    for (const [k, v] of Object.entries(d.attributes)) {
      const tr = document.createElement("tr");
      const th = document.createElement("th"); th.scope = "row"; th.textContent = k;
      const td = document.createElement("td"); td.className = "mono"; td.textContent = String(v);
      tr.append(th, td);
      els.attrs.append(tr);
    }
    document.dispatchEvent(new CustomEvent("run:position", { detail: { t_s: d.t_s, source: "images" } }));
  }

  async function show(i, force) {
    const n = total();
    i = Math.max(0, Math.min(n - 1, Math.round(Number(i) || 0)));
    els.index.value = i; els.index.max = n - 1;
    els.slider.max = n - 1; els.slider.value = i;
    els.count.textContent = `of ${n} (0 – ${n - 1})`;
    if (i === current && !force) return;
    current = i;
    const mine = ++asked;
    const q = look();
    const arr = option().dataset.array ? `?array=${enc(option().dataset.array)}` : "";
    els.img.src = `${base()}/frames/${i}.png?${q}`;
    try {
      const d = await R.api("GET", `/runs/${enc(run)}/streams/${enc(els.stream.value)}/frames/${i}${arr}`);
      if (mine === asked) showDetails(d);
    } catch (e) {
      if (mine === asked) { els.error.textContent = e.message; els.error.hidden = false; }
    }
  }

  function later(i) { clearTimeout(timer); timer = setTimeout(() => show(i), 80); }

  els.img.addEventListener("load", () => { els.error.hidden = true; els.img.hidden = false; });
  els.img.addEventListener("error", () => {
    els.img.hidden = true;
    els.error.textContent = `Message ${current} has no image (or these contrast settings do not apply).`;
    els.error.hidden = false;
  });
  els.img.addEventListener("click", () => { els.full.checked = !els.full.checked; applyFull(); show(current, true); });
  function applyFull() { els.imgBox.classList.toggle("full", els.full.checked); }

  box.querySelectorAll("[data-img-step]").forEach((b) =>
    b.addEventListener("click", () => show(current + Number(b.dataset.imgStep))));
  els.index.addEventListener("change", () => show(els.index.value));
  els.slider.addEventListener("input", () => { els.index.value = els.slider.value; later(els.slider.value); });
  els.stream.addEventListener("change", () => { current = -1; show(0); });
  els.contrast.addEventListener("change", () => {
    const c = els.contrast.value;
    box.querySelectorAll("[data-img-for]").forEach((l) => { l.hidden = l.dataset.imgFor !== c; });
    if (c === "manual" && stats && els.lo.value === "" && els.hi.value === "") {
      els.lo.value = stats.p0_5; els.hi.value = stats.p99_5;
    }
    show(current, true);
  });
  for (const el of [els.cmap, els.plo, els.phi, els.lo, els.hi]) el.addEventListener("change", () => show(current, true));
  els.full.addEventListener("change", () => { applyFull(); show(current, true); });
  box.addEventListener("keydown", (ev) => {
    if (ev.target.matches("input:not([type=range]), select, textarea")) return;
    if (ev.key === "ArrowRight" || ev.key === "ArrowLeft") {
      ev.preventDefault();
      show(current + (ev.key === "ArrowRight" ? 1 : -1) * (ev.shiftKey ? 10 : 1));
    }
  });

  // The timeline asks for the frame at a time: the first frame received at or after it.
  document.addEventListener("run:seek", async (ev) => {
    const page = await R.run(() => R.api("GET",
      `/runs/${enc(run)}/streams/${enc(els.stream.value)}/messages?t_s=${Math.max(0, ev.detail.t_s)}&limit=1&hex_bytes=0`));
    if (page) show(Math.min(page.start, total() - 1));
  });

  // A thumbnail in Previews opens its frame here.
  document.addEventListener("click", (ev) => {
    const thumb = ev.target.closest("img[data-thumb]");
    if (!thumb) return;
    const name = thumb.dataset.thumb;
    if (![...els.stream.options].some((o) => o.value === name)) return;
    const scrub = document.querySelector(`input[data-scrub="${CSS.escape(name)}"]`);
    els.stream.value = name;
    current = -1;
    show(scrub ? scrub.value : 0);
    box.scrollIntoView({ block: "start" });
  });

  show(0);
})();
