/* The live preview panel (templates/_preview.html): a recording's or a source preview's latest
   message per stream, from GET /api/v1/recordings/{id}/live..., redrawn about twice a second
   while the panel and the page are visible (the server renders at most 4 times a second per
   stream whoever asks, and stops a preview nobody has read for 30 s). Once the recording has
   ended (the list's or the stream's `state`: the stream answers `live: false` then) it says so
   and stops polling. No inline script: the CSP forbids it. */
"use strict";

(function () {
  const panel = document.querySelector("[data-live-panel]");
  if (!panel) return;
  const $ = (sel) => panel.querySelector(sel);
  const els = {
    title: $("#live-preview-title"), state: $("[data-live-state]"), select: $("[data-live-stream]"),
    status: $("[data-live-status]"), image: $("[data-live-image]"), plot: $("[data-live-plot]"),
    summary: $("[data-live-summary]"), close: $("[data-live-close]"),
  };
  const enc = encodeURIComponent;
  const PERIOD_MS = 500;
  const FINAL = ["finished", "stopped", "failed"];
  const COLORS = ["#2458b3", "#c0392b", "#27864a", "#8e44ad", "#d35400", "#16808a", "#7f8c8d", "#b7950b"];
  let job = null, source = null, timer = null, busy = false, stopped = false, shownImage = "", chart = null, chartKey = "", stackedAt = [];

  function api(method, path) { return window.R.api(method, path); }

  function uplotReady() {
    if (window.uPlot) return Promise.resolve();
    if (!document.querySelector("link[data-uplot]")) {
      const css = document.createElement("link");
      css.rel = "stylesheet"; css.href = panel.dataset.uplotCss; css.dataset.uplot = "";
      document.head.appendChild(css);
    }
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = panel.dataset.uplotJs;
      s.onload = resolve; s.onerror = () => reject(new Error("uPlot did not load"));
      document.head.appendChild(s);
    });
  }

  function open(jobId, title, previewSource) {
    job = jobId; source = previewSource || null; shownImage = ""; chartKey = ""; stopped = false;
    els.title.textContent = title;
    els.select.textContent = "";
    els.image.hidden = true; els.plot.hidden = true; els.summary.hidden = true;
    els.status.textContent = "waiting for the first message…";
    panel.hidden = false;
    panel.scrollIntoView({ block: "nearest" });
    schedule(0);
  }

  async function close() {
    clearTimeout(timer);
    panel.hidden = true;
    const name = source;
    job = null; source = null;
    if (name) await window.R.run(() => api("DELETE", `/sources/${enc(name)}/preview`));
  }

  function schedule(ms) { clearTimeout(timer); if (!stopped) timer = setTimeout(tick, ms); }

  function streams(list) {
    const current = els.select.value;
    const names = list.streams.map((s) => s.stream);
    if ([...els.select.options].map((o) => o.value).join("\n") !== names.join("\n")) {
      els.select.textContent = "";
      for (const n of names) els.select.add(new Option(n, n));
      if (names.includes(current)) els.select.value = current;
    }
    return list.streams.find((s) => s.stream === els.select.value);
  }

  // The channels of a one-channel-a-message stream (Open Ephys: every channel's latest block,
  // up to 64) stacked one above the other, each at its own offset, the y axis naming them;
  // other sample blocks (legacy blocks, spikes, arrays) overlaid, at most 8, with a legend.
  function drawWave(w) {
    const stacked = Boolean(w.channels_total) && w.channels.length > 1;
    const labels = stacked ? w.channels : w.channels.slice(0, 8);
    let values = w.values.slice(0, labels.length);
    const offsets = [];  // stacked: each channel's place, kept for the axis (step changes)
    if (stacked) {
      let step = 0;
      for (const v of values) {
        let lo = Infinity, hi = -Infinity;
        for (const y of v) if (y !== null) { if (y < lo) lo = y; if (y > hi) hi = y; }
        if (hi > lo) step = Math.max(step, hi - lo);
      }
      step = step || 1;
      labels.forEach((_, i) => offsets.push((labels.length - 1 - i) * step));
      values = values.map((v, i) => {
        let sum = 0, n = 0;
        for (const y of v) if (y !== null) { sum += y; n++; }
        const shift = offsets[i] - (n ? sum / n : 0);
        return v.map((y) => (y === null ? null : y + shift));
      });
    }
    const data = [w.x, ...values];
    const key = (stacked ? "stacked\n" : "") + labels.join("\n");
    els.plot.hidden = false;
    stackedAt = offsets;
    if (chart && chartKey === key) { chart.setData(data); return; }
    if (chart) chart.destroy();
    els.plot.textContent = "";
    chartKey = key;
    const y = stacked
      ? { size: 70, splits: () => stackedAt, values: () => labels }
      : { size: 60 };
    chart = new uPlot({
      width: Math.max(280, els.plot.clientWidth || panel.clientWidth - 40),
      height: stacked ? Math.min(900, 40 + 14 * labels.length) : 220,
      series: [{ label: "sample" }, ...labels.map((l, i) => ({ label: l, stroke: COLORS[i % COLORS.length], width: 1 }))],
      scales: { x: { time: false } }, axes: [{ label: "sample in block" }, y],
      legend: { show: !stacked, live: false },
    }, data, els.plot);
  }

  function describe(d) {
    const out = { kind: d.kind, seq: d.seq, size: d.size };
    if (d.train) out.train = { train_id: d.train.train_id, sources: d.train.sources, keys: d.train.keys.slice(0, 40) };
    if (Object.keys(d.columns).length) out.columns = d.columns;
    if (d.arrays.length) out.arrays = d.arrays.map((a) => `${a.name} ${a.dtype}[${a.shape.join("×")}]`);
    out.frames = d.frames.map((f) => {
      const o = { size: f.size, kind: f.kind };
      if (f.value !== undefined) o.value = f.value;
      if (f.text !== undefined) o.text = f.text;
      if (!f.kind || f.kind === "bytes") o.hex = f.hex;
      return o;
    });
    if (d.reject_reason) out.not_decoded = d.reject_reason;
    return JSON.stringify(out, null, 1).slice(0, 6000);
  }

  async function tick() {
    if (!job || busy) return;
    if (panel.hidden || document.visibilityState !== "visible") { schedule(PERIOD_MS); return; }
    busy = true;
    const mine = job;
    try {
      const list = await api("GET", `/recordings/${enc(mine)}/live`);
      if (job !== mine) return;
      els.state.textContent = list.state;
      els.state.className = "state " + list.state;
      const s = streams(list);
      if (FINAL.includes(list.state)) { ended(list.state, list.preview); return; }
      if (!s || !s.recv_ns) { els.status.textContent = "waiting for the first message…"; return; }
      const sum = s.summary || {};
      els.status.textContent = `${sum.kind || s.protocol || ""} ${sum.seq ?? sum.train_id ?? ""} · ${s.age_s.toFixed(1)} s ago · ${s.size} bytes`;
      if (sum.image) {
        const url = `${sum.image}?size=512&v=${s.recv_ns}`;
        if (url !== shownImage) { els.image.src = url; shownImage = url; }
        els.image.hidden = false;
      } else {
        els.image.hidden = true;
      }
      const d = await api("GET", `/recordings/${enc(mine)}/live/${enc(s.stream)}?points=1000`);
      if (job !== mine) return;
      if (!d.live) {  // the recording ended since the list above (or the stream went quiet)
        if (FINAL.includes(d.state)) ended(d.state, list.preview);
        else els.status.textContent = "waiting for the first message…";
        return;
      }
      if (d.waveform && !sum.image) {
        await uplotReady();
        drawWave(d.waveform);
        const total = d.waveform.channels_total;
        if (total) els.status.textContent += ` · ${d.waveform.channels.length < total ? `${d.waveform.channels.length} of ${total}` : total} channels`;
      } else {
        els.plot.hidden = true;
      }
      els.summary.textContent = describe(d);
      els.summary.hidden = false;
    } catch (e) {
      els.status.textContent = e.message;
    } finally {
      busy = false;
      if (job === mine && !stopped) schedule(PERIOD_MS);
    }
  }

  // An ended recording has nothing more to show: say so and stop asking.
  function ended(state, preview) {
    stopped = true;
    clearTimeout(timer);
    els.state.textContent = state;
    els.state.className = "state " + state;
    els.status.textContent = `the ${preview ? "preview" : "recording"} has ended`;
  }

  els.close.addEventListener("click", close);
  els.select.addEventListener("change", () => { shownImage = ""; chartKey = ""; schedule(0); });
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") schedule(0); });

  document.addEventListener("click", async (ev) => {
    const src = ev.target.closest("[data-preview-source]");
    if (src) {
      const name = src.dataset.previewSource;
      const p = await window.R.run(() => api("POST", `/sources/${enc(name)}/preview`));
      if (p) open(p.id, `Preview of ${name}`, name);
      return;
    }
    const rec = ev.target.closest("[data-live-job]");
    if (rec) open(rec.dataset.liveJob, rec.dataset.liveTitle || "Live view", null);
  });

  // The run page: the recording writing this run, if one is.
  const run = panel.dataset.liveRun;
  if (run) {
    api("GET", "/recordings").then((out) => {
      const rec = out.recordings.find((r) => r.run_id === run && !FINAL.includes(r.state));
      if (rec) open(rec.id, "Live view of this recording", null);
    }).catch(() => {});
  }
})();
