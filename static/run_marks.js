/* The run page's markers and pauses: each mark placed on the bar by its time within the run
   (the bar spans the run's first to last message, stretched to hold every mark). */
"use strict";

(function () {
  const bar = document.getElementById("markbar");
  if (!bar) return;
  const ns = (v) => (v ? Number(v) : NaN);
  const times = [ns(bar.dataset.start), ns(bar.dataset.end)];
  bar.querySelectorAll("[data-at]").forEach((el) => times.push(ns(el.dataset.at)));
  bar.querySelectorAll("[data-from]").forEach((el) => times.push(ns(el.dataset.from), ns(el.dataset.to)));
  const known = times.filter((t) => !Number.isNaN(t));
  const t0 = Math.min(...known), t1 = Math.max(...known);
  const span = Math.max(t1 - t0, 1e6);
  const pct = (t) => (100 * (t - t0)) / span + "%";
  bar.querySelectorAll("[data-at]").forEach((el) => { el.style.left = pct(ns(el.dataset.at)); });
  bar.querySelectorAll("[data-from]").forEach((el) => {
    const from = ns(el.dataset.from), to = Number.isNaN(ns(el.dataset.to)) ? t1 : ns(el.dataset.to);
    el.style.left = pct(from);
    el.style.width = (100 * (to - from)) / span + "%";
  });
  const label = document.getElementById("markbar-span");
  if (label) label.textContent = (span / 1e9).toFixed(3) + " s";
})();
