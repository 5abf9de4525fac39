/* The replay page's controls follow the replay (templates/_replay_live.html's #replay-state,
   redrawn every second): off once it has stopped, finished or failed; the seek box kept within
   its duration (the API refuses a seek past the end too). Step sends one message. */
"use strict";

(function () {
  const enc = encodeURIComponent;

  function follow() {
    const s = document.getElementById("replay-state");
    if (!s) return;
    const over = s.dataset.over === "true";
    for (const el of document.querySelectorAll("[data-replay-control]")) el.disabled = over;
    const seek = document.querySelector("form[data-action=seek] input[name=t_s]");
    const duration = Number(s.dataset.duration);
    if (seek && duration > 0 && s.dataset.follow !== "true") seek.max = String(duration);
  }

  document.addEventListener("htmx:afterSwap", (ev) => {
    if (ev.target.id === "replay-live") follow();
  });
  document.addEventListener("DOMContentLoaded", follow);

  document.addEventListener("change", (ev) => {
    const el = ev.target;
    if (!el.matches("form[data-action=seek] input[name=t_s]") || !el.max || el.value === "") return;
    if (Number(el.value) > Number(el.max)) el.value = el.max; // clamped to the end
  });

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-replay-step]");
    if (!b) return;
    b.disabled = true;
    R.run(async () => {
      await R.api("POST", `/replays/${enc(b.dataset.replayStep)}/step`, { n: 1 });
      R.refresh();
    }).finally(() => follow());
  });
})();
