/* The runs page: the date range in the browser's time zone, and one action on several runs
   (POST /api/v1/runs/bulk, the same call a script makes). */
"use strict";

(function () {
  const filters = document.getElementById("run-filters");
  if (filters) {
    filters.addEventListener("submit", () => {
      // minutes east of UTC at the chosen start (or now): the server adds the zone to the times
      const typed = filters.since.value || filters.until.value;
      const at = typed ? new Date(typed) : new Date();
      filters.querySelector("[data-tz]").value = String(-at.getTimezoneOffset());
    });
  }

  const bulk = document.getElementById("bulk");
  if (!bulk) return;
  const boxes = () => [...document.querySelectorAll("#runs input[name=select]")];
  const chosen = () => boxes().filter((b) => b.checked).map((b) => b.value);
  const count = bulk.querySelector("[data-selected]");
  const all = document.querySelector("[data-select-all]");
  const show = () => {
    const n = chosen().length;
    count.textContent = n ? `${n} selected` : "none selected";
    all.checked = n > 0 && n === boxes().length;
    all.indeterminate = n > 0 && n < boxes().length;
  };
  document.getElementById("runs").addEventListener("change", (ev) => {
    if (ev.target === all) for (const b of boxes()) b.checked = all.checked;
    show();
  });
  bulk.addEventListener("submit", (ev) => ev.preventDefault());
  bulk.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-bulk-action]");
    if (!b) return;
    const action = b.dataset.bulkAction;
    const run_ids = chosen();
    R.run(async () => {
      if (!run_ids.length) throw new Error("Select one run or more first.");
      const body = { action, run_ids };
      if (action === "delete") {
        if (!confirm(`Delete ${run_ids.length} run(s) for good?`)) return;
        body.confirm = run_ids.length;
      } else {
        body.tags = bulk.tags.value.split(",").map((t) => t.trim()).filter(Boolean);
        if (!body.tags.length) throw new Error("Type the tags to " + (action === "tag" ? "add." : "remove."));
      }
      b.disabled = true;
      try {
        const out = await R.api("POST", "/runs/bulk", body);
        if (out.failed.length) {
          R.flash(`${out.done.length} done; not done: ` + out.failed.map((f) => `${f.run_id} (${f.message})`).join("; "));
          setTimeout(() => location.reload(), 4000);
        } else {
          location.reload();
        }
      } finally {
        b.disabled = false;
      }
    });
  });
  show();
})();
