/* The run page's signal viewer (templates/_signals.html): continuous data of a window from
   GET /api/v1/runs/{run}/streams/{stream}/signal, which answers from the run's overview levels
   (min/max per point) or raw samples when zoomed in. Zooming (drag a range, scroll, + and -)
   and panning (arrows) ask for the new window; a request still running for an older window is
   aborted here and superseded on the server (view id + rising gen: it stops reading).
   Channels are picked with checkboxes and drawn stacked or overlaid, in the announced units;
   TTL events and spikes are drawn on the same time axis. */
"use strict";

(function () {
  const runEl = document.getElementById("run");
  if (!runEl || typeof uPlot === "undefined") return;
  const run = runEl.dataset.run;
  const enc = encodeURIComponent;
  const COLORS = ["#2458b3", "#c0392b", "#27864a", "#8e44ad", "#d35400", "#16808a", "#7f8c8d", "#b7950b"];
  const MAX_CHANNELS = 64;

  function fill(hex) {
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},0.35)`;
  }

  function viewer(root) {
    const stream = root.dataset.signal;
    const plotEl = root.querySelector("[data-signal-plot]");
    const status = root.querySelector("[data-signal-status]");
    const picker = root.querySelector("[data-signal-picker]");
    const chosenEl = root.querySelector("[data-signal-chosen]");
    const arraySel = root.querySelector("[data-signal-array]");
    const stacked = root.querySelector("[data-signal-stacked]");
    const st = {
      view: "v" + Math.random().toString(36).slice(2, 10), gen: 0, t0: null, t1: null,
      extent: null, channels: null, array: null, controller: null, plot: null, last: null,
      loads: 0, timer: null,
    };

    function points() {
      return Math.max(200, Math.min(4000, Math.floor(plotEl.clientWidth || 800)));
    }

    async function load() {
      if (st.controller) st.controller.abort(); // the browser drops it; the server sees gen rise
      const controller = (st.controller = new AbortController());
      st.gen += 1;
      const q = new URLSearchParams({ points: String(points()), view: st.view, gen: String(st.gen) });
      if (st.t0 !== null) { q.set("start", st.t0.toFixed(9)); q.set("end", st.t1.toFixed(9)); }
      if (st.channels) q.set("channels", st.channels.join(","));
      if (st.array) q.set("array", st.array);
      status.textContent = "loading…";
      let resp;
      try {
        resp = await fetch(`/api/v1/runs/${enc(run)}/streams/${enc(stream)}/signal?${q}`,
          { credentials: "same-origin", headers: { Accept: "application/json" }, signal: controller.signal });
      } catch (e) {
        if (e.name === "AbortError") return;
        status.textContent = "The server cannot be reached (" + e.message + ").";
        return;
      }
      if (resp.status === 409) return; // superseded by a newer request of this viewer
      let body = null;
      try { body = await resp.json(); } catch (e) { body = null; }
      if (controller !== st.controller) return;
      if (!resp.ok) {
        status.textContent = (body && body.error && body.error.message) || `The server answered ${resp.status}.`;
        status.classList.add("error");
        return;
      }
      status.classList.remove("error");
      render(body);
    }

    function later(fn) { // bursts of wheel events make one request
      clearTimeout(st.timer);
      st.timer = setTimeout(fn, 120);
    }

    function setWindow(t0, t1) {
      const [lo, hi] = st.extent || [t0, t1];
      const span = Math.max(t1 - t0, 1e-4);
      if (span >= hi - lo) { st.t0 = st.t1 = null; return; }
      if (t0 < lo) { t0 = lo; t1 = lo + span; }
      if (t1 > hi) { t1 = hi; t0 = hi - span; }
      st.t0 = t0; st.t1 = t1;
    }

    function current() {
      if (st.t0 !== null) return [st.t0, st.t1];
      return st.extent || [0, 1];
    }

    function zoom(factor, center) {
      const [t0, t1] = current();
      const c = center === undefined ? (t0 + t1) / 2 : center;
      setWindow(c - (c - t0) * factor, c + (t1 - c) * factor);
      load();
    }

    function pan(dir) {
      const [t0, t1] = current();
      const d = (t1 - t0) * 0.5 * dir;
      setWindow(t0 + d, t1 + d);
      load();
    }

    function buildPicker(body) {
      if (arraySel.options.length !== body.arrays.length) {
        arraySel.textContent = "";
        body.arrays.forEach((a) => arraySel.add(new Option(a, a, false, a === body.array)));
      }
      if (picker.dataset.array === body.array) return;
      picker.dataset.array = body.array;
      picker.textContent = "";
      body.channel_names.forEach((name, c) => {
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox";
        box.value = String(c);
        box.checked = body.channels.includes(c);
        box.dataset.signalChannel = String(c);
        label.append(box, " " + (name || String(c)));
        picker.append(label);
      });
    }

    function render(body) {
      st.last = body;
      st.extent = body.extent_s;
      st.loads += 1;
      buildPicker(body);
      chosenEl.textContent = `(${body.channels.length} of ${body.channel_names.length})`;
      const raw = body.bucket === 1;
      const n = body.channels.length;
      const lines = raw ? body.values : null;
      // stacked: each channel around its own middle, one above the other
      let spacing = 0;
      const middle = [];
      for (let k = 0; k < n; k++) {
        const vs = (raw ? lines[k] : body.min[k].concat(body.max[k])).filter((v) => v !== null);
        const lo = vs.length ? Math.min(...vs) : 0, hi = vs.length ? Math.max(...vs) : 0;
        middle.push((lo + hi) / 2);
        spacing = Math.max(spacing, hi - lo);
      }
      spacing = spacing * 1.1 || 1;
      const shift = (k) => (stacked.checked ? (n - 1 - k) * spacing - middle[k] : 0);
      const move = (arr, k) => arr.map((v) => (v === null ? null : v + shift(k)));
      const series = [{ label: "t (s)" }];
      const data = [body.t_s];
      const bands = [];
      for (let k = 0; k < n; k++) {
        const color = COLORS[k % COLORS.length];
        if (raw) {
          series.push({ label: body.labels[k], stroke: color, width: 1, spanGaps: false });
          data.push(move(lines[k], k));
        } else {
          series.push({ label: body.labels[k], stroke: color, width: 1, spanGaps: false });
          series.push({ label: body.labels[k] + " min", stroke: color, width: 1, spanGaps: false });
          data.push(move(body.max[k], k), move(body.min[k], k));
          bands.push({ series: [series.length - 2, series.length - 1], fill: fill(color) });
        }
      }
      const units = body.units || "value";
      const opts = {
        width: Math.max(280, plotEl.clientWidth || 800), height: Math.max(260, Math.min(640, 60 + 40 * n)),
        series, bands, legend: { show: n <= 16, live: false },
        axes: [{ label: "seconds from start" },
          { label: stacked.checked ? `${units} (stacked, ${spacing.toPrecision(3)} apart)` : units, size: 70 }],
        scales: { x: { time: false, range: () => [body.start_s, body.end_s] } },
        cursor: { drag: { x: true, y: false, setScale: false } },
        hooks: {
          setSelect: [(u) => {
            if (u.select.width < 3) return;
            const t0 = u.posToVal(u.select.left, "x"), t1 = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            setWindow(t0, t1);
            load();
          }],
          draw: [(u) => marks(u, body)],
        },
      };
      if (st.plot) st.plot.destroy();
      plotEl.textContent = "";
      st.plot = new uPlot(opts, data, plotEl);
      st.plot.over.addEventListener("wheel", (e) => {
        e.preventDefault();
        const t = st.plot.posToVal(e.offsetX, "x");
        const factor = e.deltaY > 0 ? 1.5 : 1 / 1.5;
        const [t0, t1] = current();
        setWindow(t - (t - t0) * factor, t + (t1 - t) * factor);
        later(load);
      }, { passive: false });
      root.dataset.bucket = String(body.bucket);
      root.dataset.level = String(body.level);
      root.dataset.start = String(body.start_s);
      root.dataset.end = String(body.end_s);
      root.dataset.loads = String(st.loads);
      const what = raw ? "raw samples" : `min/max of ${body.bucket} samples per point`;
      const sec = (x) => (Math.abs(x) < 5e-4 ? 0 : x).toFixed(3);
      let text = `${body.array}: ${sec(body.start_s)}–${sec(body.end_s)} s, ${what}` +
        `${body.units ? ", " + body.units : ""}; ${body.events.length} TTL events, ${body.spikes.length} spikes`;
      if (!body.events_shown) text += " (zoom in to see events and spikes)";
      status.textContent = text;
      status.title = body.about || "";
    }

    function marks(u, body) {
      const ctx = u.ctx, { left, top, width, height } = u.bbox;
      ctx.save();
      ctx.lineWidth = Math.max(1, devicePixelRatio);
      for (const ev of body.events) {
        const x = u.valToPos(ev.t_s, "x", true);
        if (x < left || x > left + width) continue;
        ctx.strokeStyle = ev.state === false ? "rgba(120,120,120,0.7)" : "rgba(39,134,74,0.85)";
        ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
      }
      ctx.strokeStyle = "rgba(211,84,0,0.9)";
      for (const sp of body.spikes) {
        const x = u.valToPos(sp.t_s, "x", true);
        if (x < left || x > left + width) continue;
        ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + 10 * devicePixelRatio); ctx.stroke();
      }
      ctx.restore();
    }

    root.addEventListener("click", (e) => {
      const b = e.target.closest("button");
      if (!b) return;
      if (b.dataset.signalZoom) zoom(Number(b.dataset.signalZoom));
      else if (b.dataset.signalPan) pan(Number(b.dataset.signalPan));
      else if (b.hasAttribute("data-signal-reset")) { st.t0 = st.t1 = null; load(); }
    });
    root.addEventListener("keydown", (e) => {
      if (e.target.closest("input, select")) return;
      const keys = { ArrowLeft: () => pan(-1), ArrowRight: () => pan(1), "+": () => zoom(0.25), "-": () => zoom(4) };
      if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
    });
    picker.addEventListener("change", () => {
      let boxes = [...picker.querySelectorAll("input:checked")].map((b) => Number(b.value));
      if (boxes.length > MAX_CHANNELS) boxes = boxes.slice(0, MAX_CHANNELS);
      if (!boxes.length) return;
      st.channels = boxes;
      later(load);
    });
    arraySel.addEventListener("change", () => {
      st.array = arraySel.value; st.channels = null; st.t0 = st.t1 = null; load();
    });
    stacked.addEventListener("change", () => { if (st.last) render(st.last); });
    root.tabIndex = 0;
    load();
  }

  document.querySelectorAll("[data-signal]").forEach(viewer);
})();
