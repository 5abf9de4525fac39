/* Run page previews: message-rate timeline, Open Ephys waveforms (min/max per bucket from the
   series API, already decimated on the server), image thumbnails with a scrubber, and the
   Karabo sources of the first message. All reads go through /api/v1. */
"use strict";

(function () {
  const run = document.getElementById("run").dataset.run;
  const enc = encodeURIComponent;
  const base = `/api/v1/runs/${enc(run)}/streams/`;
  const COLORS = ["#2458b3", "#c0392b", "#27864a", "#8e44ad", "#d35400", "#16808a", "#7f8c8d", "#b7950b"];

  function width(el) { return Math.max(280, el.clientWidth || el.parentElement.clientWidth - 24); }

  function plot(el, labels, data, yLabel, colorOf, legend = true) {
    el.textContent = "";
    const color = colorOf || ((i) => COLORS[i % COLORS.length]);
    const series = [{ label: "t (s)" }].concat(labels.map((l, i) => ({
      label: l, stroke: color(i), width: 1, spanGaps: false,
    })));
    return new uPlot({
      width: width(el), height: 220, series, legend: { show: legend, live: false },
      axes: [{ label: "seconds from start" }, { label: yLabel, size: 60 }],
      scales: { x: { time: false } },
    }, data, el);
  }

  // -- timeline ---------------------------------------------------------------------------
  const tl = JSON.parse(document.getElementById("timeline-data").textContent);
  const tlEl = document.getElementById("timeline");
  const names = Object.keys(tl.series);
  if (tl.t_s.length) {
    plot(tlEl, names.map((n) => n + " msg/s"), [tl.t_s, ...names.map((n) => tl.series[n])], "messages/s");
  } else {
    tlEl.textContent = "No messages yet.";
  }

  // -- thumbnails with a scrubber ---------------------------------------------------------
  function show(img, i) {
    const arr = img.dataset.array ? `&array=${enc(img.dataset.array)}` : "";
    img.src = `${base}${enc(img.dataset.thumb)}/frames/${i}.png?size=480${arr}`;
  }
  document.querySelectorAll("img[data-thumb]").forEach((img) => {
    img.addEventListener("error", () => {
      img.hidden = true;
      let msg = img.parentElement.querySelector(".error");
      if (!msg) { msg = document.createElement("p"); msg.className = "error small"; img.after(msg); }
      msg.textContent = "This message has no image.";
    });
    img.addEventListener("load", () => {
      img.hidden = false;
      const msg = img.parentElement.querySelector(".error");
      if (msg) msg.remove();
    });
    show(img, 0);
  });
  document.querySelectorAll("input[data-scrub]").forEach((range) => {
    const img = document.querySelector(`img[data-thumb="${CSS.escape(range.dataset.scrub)}"]`);
    const out = range.parentElement.querySelector("output");
    let timer = null;
    range.addEventListener("input", () => {
      out.textContent = range.value;
      clearTimeout(timer);
      timer = setTimeout(() => show(img, range.value), 80);
    });
  });

  // -- Karabo: sources and array paths of the first message -------------------------------
  document.querySelectorAll("[data-karabo]").forEach(async (el) => {
    try {
      const page = await R.api("GET", `/runs/${enc(run)}/streams/${enc(el.dataset.karabo)}/messages?limit=1`);
      const msg = page.messages[0];
      // Karabo bridge: per source a metadata frame, its data (keys), then per array a header
      // (path, dtype, shape) and the array itself. Group them as sources -> keys and arrays.
      const sources = [];
      let cur = null;
      for (const f of msg ? msg.frames : []) {
        const v = f.value;
        if (f.kind !== "msgpack" || !v || typeof v !== "object") continue;
        if (v.source && v.content === "msgpack") {
          cur = { name: v.source, keys: [], arrays: [] };
          sources.push(cur);
        } else if (v.source && v.content === "array") {
          if (!cur || cur.name !== v.source) { cur = { name: v.source, keys: [], arrays: [] }; sources.push(cur); }
          cur.arrays.push(`${v.path} ${v.dtype} [${(v.shape || []).join("×")}]`);
        } else if (cur && !v.source) {
          cur.keys.push(...Object.keys(v));
        }
      }
      const list = document.createElement("ul");
      list.className = "tree";
      for (const src of sources) {
        const li = document.createElement("li");
        const b = document.createElement("strong");
        b.textContent = src.name;
        li.append(b);
        if (src.keys.length) {
          const d = document.createElement("div");
          d.className = "muted";
          d.textContent = src.keys.join(", ");
          li.append(d);
        }
        for (const a of src.arrays) {
          const d = document.createElement("div");
          d.textContent = "array " + a;
          li.append(d);
        }
        list.append(li);
      }
      if (!sources.length) list.textContent = "No Karabo sources in the first message.";
      el.textContent = "";
      el.append(list);
    } catch (e) {
      el.textContent = e.message;
      el.classList.add("error");
    }
  });
})();
