/* Session page: its runs on one timeline (SVG drawn from the JSON the page carries: a bar per
   run placed by time, its streams under it, markers, notes and pauses with their text as
   titles), and the whole-session replay and export, sent to /api/v1 like every other action
   (R.api in recorder.js). No inline handlers or styles: the CSP forbids them. */
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const root = document.getElementById("session");
  if (!root) return;
  const session = root.dataset.session;
  const enc = encodeURIComponent;
  const COLORS = ["#2458b3", "#c0392b", "#27864a", "#8e44ad", "#d35400", "#16808a", "#7f8c8d", "#b7950b"];

  function el(name, attrs, parent, title) {
    const e = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (title) {
      const t = document.createElementNS(SVG, "title");
      t.textContent = title;
      e.appendChild(t);
    }
    if (parent) parent.appendChild(e);
    return e;
  }

  function seconds(s) {
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  /* Runs on lanes: a run goes on the first lane whose last message came before its first,
     so consecutive (split) runs share a lane (a split run may close just after the next one
     opened) and runs recorded side by side get a lane each. */
  function dataSpan(r) {
    const held = r.streams.filter((s) => s.start_s !== null);
    if (!held.length) return [r.start_s, r.start_s];
    return [Math.min(...held.map((s) => s.start_s)), Math.max(...held.map((s) => s.end_s))];
  }
  function lanes(runs) {
    const out = [];
    for (const r of runs) {
      const [first, last] = dataSpan(r);
      let lane = out.find((l) => l.end <= first);
      if (!lane) { lane = { end: -Infinity, runs: [], streams: [] }; out.push(lane); }
      lane.runs.push(r);
      lane.end = last;
      for (const s of r.streams) if (!lane.streams.includes(s.name)) lane.streams.push(s.name);
    }
    return out;
  }

  function draw() {
    const data = JSON.parse(document.getElementById("session-timeline-data").textContent);
    const box = document.getElementById("session-timeline");
    box.textContent = "";
    if (!data.runs.length) { box.textContent = "No runs in this session yet."; return; }
    const W = Math.max(320, box.clientWidth || 800);
    const left = 8, right = 8, axis = 22, bar = 16, line = 7;
    const span = Math.max(data.span_s, 1e-3);
    const x = (t) => left + (Math.max(0, t) / span) * (W - left - right);
    const ls = lanes(data.runs);
    const heights = ls.map((l) => 14 + bar + 4 + line * l.streams.length + 8);
    const H = axis + heights.reduce((a, b) => a + b, 0);
    const svg = el("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "session-svg",
      role: "group", "aria-label": `${data.runs.length} runs on one timeline` }, box);
    for (let k = 0; k <= 4; k++) {  // the clock: seconds from the first run's start
      const t = (span * k) / 4, px = x(t);
      el("line", { x1: px, x2: px, y1: axis - 4, y2: H, stroke: "#d9dee7" }, svg);
      const label = el("text", { x: Math.min(px, W - 40), y: 12, "font-size": 11, fill: "#5b6678" }, svg);
      label.textContent = "+" + seconds(t);
    }
    let y = axis;
    ls.forEach((lane, li) => {
      const top = y + 14;
      for (const r of lane.runs) {
        const g = el("g", { class: "run", "data-run": r.run_id }, svg);
        const a = el("a", { href: "/runs/" + enc(r.run_id) }, g);
        const x0 = x(r.start_s), w = Math.max(3, x(r.end_s) - x0);
        el("rect", { x: x0, y: top, width: w, height: bar, rx: 3, fill: "#e6ecf8", stroke: "#2458b3",
          class: "run-bar" }, a, `${r.name || r.run_id} (${r.run_id}): +${seconds(r.start_s)}, ` +
          `${seconds(r.duration_s)}, ${r.messages} messages, ${r.status}`);
        if (w > 60) {
          const t = el("text", { x: x0 + 4, y: top + 12, "font-size": 11, fill: "#1d2430" }, a);
          t.textContent = (r.name || r.run_id).slice(0, Math.floor(w / 7));
        }
        for (const p of r.pauses) {
          el("rect", { x: x(p.start_s), y: top, width: Math.max(2, x(p.end_s) - x(p.start_s)),
            height: bar, fill: "#a15c00", "fill-opacity": 0.35, class: "pause" }, g,
            `paused +${seconds(p.start_s)} to +${seconds(p.end_s)}`);
        }
        for (const s of r.streams) {
          if (s.start_s === null) continue;
          const i = lane.streams.indexOf(s.name);
          el("rect", { x: x(s.start_s), y: top + bar + 4 + line * i,
            width: Math.max(2, x(s.end_s) - x(s.start_s)), height: line - 2,
            fill: COLORS[i % COLORS.length], class: "stream", "data-stream": s.name }, g,
            `${s.name} (${s.protocol}): ${s.messages} messages in run ${r.run_id}`);
        }
        for (const m of r.markers) {
          const px = x(m.t_s);
          el("path", { d: `M${px - 5},${top - 10} L${px + 5},${top - 10} L${px},${top - 1} Z`,
            fill: "#c0392b", class: "marker" }, g,
            `marker +${seconds(m.t_s)}: ${m.text}${m.author ? " (" + m.author + ")" : ""}`);
        }
        for (const n of r.notes) {
          el("circle", { cx: x(n.t_s), cy: top - 6, r: 4, fill: "#27864a", class: "note" }, g,
            `note: ${n.text}`);
        }
      }
      lane.streams.forEach((name, i) => {  // a lane's stream names at its right end
        const t = el("text", { x: W - right, y: top + bar + 4 + line * i + line - 2,
          "font-size": 9, fill: "#5b6678", "text-anchor": "end" }, svg);
        t.textContent = name;
      });
      y += heights[li];
    });
  }

  // -- replay and export ------------------------------------------------------------------
  const num = (v) => (v === "" || v === null || v === undefined ? undefined : Number(v));
  const actions = {
    replay: async (f) => {
      const body = { session, skip_gaps: f.skip_gaps.checked, max_speed: f.max_speed.checked,
        endpoint: f.recorded_ports.checked ? "recorded" : "auto" };
      if (!body.max_speed && num(f.speed.value) && num(f.speed.value) !== 1) body.speed = num(f.speed.value);
      const out = await R.api("POST", "/replays", body);
      location.href = "/replays/" + enc(out.id);
    },
    export: async (f) => {
      const out = await R.api("POST", `/sessions/${enc(session)}/exports`, { target: f.target.value });
      R.flash("Export started: " + out.id, "ok");
      poll();
    },
  };
  document.addEventListener("submit", (ev) => {
    const f = ev.target.closest("form[data-session-action]");
    if (!f) return;
    ev.preventDefault();
    const button = f.querySelector("[type=submit]");
    if (button) button.disabled = true;
    R.run(() => actions[f.dataset.sessionAction](f)).finally(() => { if (button) button.disabled = false; });
  });

  const FINAL = ["finished", "failed", "stopped"];
  function row(e) {
    const tr = document.createElement("tr");
    tr.dataset.export = e.id;
    const cell = (text, cls) => {
      const td = document.createElement("td");
      if (cls) td.className = cls;
      if (text !== undefined) td.textContent = text;
      tr.appendChild(td);
      return td;
    };
    cell(e.id, "mono");
    cell(e.target);
    const st = cell();
    const chip = document.createElement("span");
    chip.className = "state " + e.state;
    chip.textContent = e.state;
    st.appendChild(chip);
    if (e.error) { const er = document.createElement("span"); er.className = "error"; er.textContent = " " + e.error; st.appendChild(er); }
    cell(Math.round(e.progress * 100) + " %", "num");
    const dl = cell();
    if (e.download) { const a = document.createElement("a"); a.href = e.download; a.textContent = "download"; dl.appendChild(a); }
    return tr;
  }
  let polling = false;
  async function poll() {
    if (polling) return;
    polling = true;
    try {
      for (;;) {
        const out = await R.api("GET", `/sessions/${enc(session)}/exports`);
        const body = document.querySelector("#session-exports tbody");
        body.replaceChildren(...out.exports.map(row));
        if (out.exports.every((e) => FINAL.includes(e.state))) break;
        await new Promise((res) => setTimeout(res, 1000));
      }
    } catch (e) {
      R.flash(e.message);
    } finally {
      polling = false;
    }
  }

  draw();
  let resized;
  window.addEventListener("resize", () => { clearTimeout(resized); resized = setTimeout(draw, 200); });
  if ([...document.querySelectorAll("#session-exports .state")].some((s) => !FINAL.includes(s.textContent))) poll();
})();
