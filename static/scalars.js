/* The run page's scalar plots (templates/_scalars.html): a stream's numeric per-message columns
   (GET .../columns) plotted against seconds from the run start on the whole run's axis (GET
   .../series?column=, min and max per bucket, drawn in one colour: the band is the value). */
"use strict";

(function () {
  const box = document.querySelector("[data-run-scalars]");
  if (!box) return;
  const run = document.getElementById("run").dataset.run;
  const enc = encodeURIComponent;
  const els = {
    stream: box.querySelector("[data-sc-stream]"), column: box.querySelector("[data-sc-column]"),
    status: box.querySelector("[data-sc-status]"), plot: box.querySelector("[data-sc-plot]"),
  };
  const duration = Number(box.dataset.durationS) || 0;
  // Columns every stream has: offered last, the interesting ones (attributes, scalars) first.
  const PLAIN = ["recv_ns", "seq", "source_ns"];
  let chart = null, asked = 0;

  function width() { return Math.max(280, els.plot.clientWidth || box.clientWidth - 40); }

  async function columns() {
    const mine = ++asked;
    els.column.textContent = "";
    els.status.textContent = "loading…";
    try {
      const out = await R.api("GET", `/runs/${enc(run)}/streams/${enc(els.stream.value)}/columns`);
      if (mine !== asked) return;
      const numeric = out.columns.filter((c) => c.numeric && c.name !== "recv_ns").map((c) => c.name);
      numeric.sort((a, b) => PLAIN.includes(a) - PLAIN.includes(b));
      for (const n of numeric) els.column.add(new Option(n, n));
      if (!numeric.length) { els.status.textContent = "no numeric columns"; return; }
      await draw();
    } catch (e) {
      if (mine === asked) els.status.textContent = e.message;
    }
  }

  async function draw() {
    const mine = ++asked;
    const col = els.column.value;
    const points = Math.min(2000, Math.max(200, Math.floor(width() / 2)));
    els.status.textContent = "loading…";
    try {
      const s = await R.api("GET",
        `/runs/${enc(run)}/streams/${enc(els.stream.value)}/series?column=${enc(col)}&points=${points}`);
      if (mine !== asked) return;
      if (chart) chart.destroy();
      els.plot.textContent = "";
      delete els.plot.dataset.column;
      const data = [s.t_s, s.max[0], s.min[0]];
      chart = new uPlot({
        width: width(), height: 220,
        series: [{ label: "t (s)" },
          { label: `${col} max`, stroke: "#2458b3", width: 1, spanGaps: true },
          { label: `${col} min`, stroke: "#2458b3", width: 1, spanGaps: true }],
        legend: { show: false },
        axes: [{ label: "seconds from start" }, { label: col, size: 70 }],
        // the run's whole time axis (a message may arrive just before the run's start)
        scales: { x: { time: false, range: () => [Math.min(0, s.start_s), Math.max(duration, s.end_s)] } },
      }, data, els.plot);
      els.plot.dataset.column = col;
      els.status.textContent = `${s.samples} values in ${s.t_s.length} buckets (min and max of each)`;
    } catch (e) {
      if (mine === asked) { els.status.textContent = e.message; els.plot.textContent = ""; }
    }
  }

  els.stream.addEventListener("change", columns);
  els.column.addEventListener("change", draw);
  columns();
})();
