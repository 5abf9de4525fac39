/* The Sources page: the add/edit form and the connection test. A new source is a POST (an
   existing name is refused, never overwritten); an edit sends a PATCH of only the fields the
   user changed, so what the form does not show or someone else changed meanwhile is kept. The
   name is the source's key: read-only while editing. */
"use strict";

(function () {
  const enc = encodeURIComponent;
  const form = () => document.getElementById("source-form");

  /* The form as a source configuration (every field the API takes). */
  function values(f) {
    const text = (el) => el.value.trim();
    return {
      protocol: f.protocol.value,
      endpoint: text(f.endpoint),
      socket_type: f.socket_type.value || null,
      bind: f.bind.checked,
      heartbeat: f.heartbeat.checked,
      subscribe: f.subscribe.value.split("\n").map((l) => l.replace(/\r$/, "")).filter((l) => l !== ""),
      request: f.request.value,
      upstream: text(f.upstream) || null,
      stream: text(f.stream) || null,
      compression: f.compression.value || null,
      description: text(f.description),
      host: f.host ? text(f.host) || null : null,
    };
  }

  function fill(f, s) {
    f.elements.name.value = s.name;
    f.protocol.value = s.protocol;
    f.endpoint.value = s.endpoint;
    f.socket_type.value = s.socket_type || "";
    f.bind.checked = !!s.bind;
    f.heartbeat.checked = s.heartbeat !== false;
    f.subscribe.value = (s.subscribe || []).join("\n");
    f.request.value = s.request ?? "next";
    f.upstream.value = s.upstream || "";
    f.stream.value = s.stream || "";
    f.compression.value = s.compression || "";
    f.description.value = s.description || "";
    if (f.host) f.host.value = s.host || "";
  }

  function editing(f, s) {
    const title = document.getElementById("source-form-title");
    if (s) {
      f.dataset.editing = JSON.stringify(s);
      f.elements.name.readOnly = true;
      f.elements.name.title = "A source keeps its name: save a copy under a new name from Add a source";
      title.textContent = "Edit " + s.name;
    } else {
      delete f.dataset.editing;
      f.elements.name.readOnly = false;
      f.elements.name.title = "letters, digits, _ . - (up to 64)";
      title.textContent = "Add a source";
    }
  }

  document.addEventListener("submit", (ev) => {
    const f = ev.target.closest("form[data-source-form]");
    if (!f) return;
    ev.preventDefault();
    const button = f.querySelector("[type=submit]");
    if (button) button.disabled = true;
    R.run(async () => {
      const now = values(f);
      if (f.dataset.editing) {
        const old = JSON.parse(f.dataset.editing);
        const changed = {};
        for (const [k, v] of Object.entries(now)) {
          const was = old[k] === undefined ? null : old[k];
          if (JSON.stringify(was) !== JSON.stringify(v)) changed[k] = v;
        }
        if (!Object.keys(changed).length) { R.flash("Nothing changed.", "ok"); return; }
        await R.api("PATCH", `/sources/${enc(old.name)}`, changed);
      } else {
        const body = { name: f.elements.name.value.trim() };
        for (const [k, v] of Object.entries(now)) if (v !== null && v !== "") body[k] = v;
        await R.api("POST", "/sources", body);
      }
      location.reload();
    }).finally(() => { if (button) button.disabled = false; });
  });

  document.addEventListener("reset", (ev) => {
    if (ev.target.matches("form[data-source-form]")) editing(ev.target, null);
  });

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button");
    if (!b) return;
    if (b.dataset.editSource) {
      const s = JSON.parse(b.dataset.editSource);
      const f = form();
      f.reset();
      fill(f, s);
      editing(f, s);
      f.scrollIntoView({ behavior: "smooth" });
    } else if (b.dataset.testSource) {
      testSource(b);
    }
  });

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  /* "Did any message arrive in 2 s?": the source's preview (a job that never writes a run), its
     message count read before and after 2 s of receiving, then stopped if this test started it. */
  async function testSource(b) {
    const out = b.parentElement.querySelector(".test-result");
    const name = b.dataset.testSource;
    b.disabled = true;
    out.className = "test-result small";
    out.textContent = "connecting…";
    let started = false;
    try {
      // 201: this test started the preview (and stops it); 200: one runs already, left running
      const resp = await fetch(`/api/v1/sources/${enc(name)}/preview`, {
        method: "POST", credentials: "same-origin", headers: { Accept: "application/json" },
      });
      const preview = await resp.json().catch(() => null);
      if (!resp.ok) throw new Error(preview?.error?.message || "The server answered " + resp.status + ".");
      started = resp.status === 201;
      let job = await R.api("GET", "/recordings/" + enc(preview.id));
      const until = Date.now() + 15000;
      while (!["running", "finished", "stopped", "failed"].includes(job.state) && Date.now() < until) {
        await sleep(200);
        job = await R.api("GET", "/recordings/" + enc(preview.id));
      }
      if (job.state === "running") {
        out.textContent = "listening for 2 s…";
        const first = job.messages;
        await sleep(2000);
        job = await R.api("GET", "/recordings/" + enc(preview.id));
        job.arrived = job.messages - first;
      }
      if (job.state === "failed") {
        out.textContent = "failed: " + (job.error || job.last_error || "unknown error");
        out.classList.add("error");
      } else if (job.arrived > 0) {
        out.textContent = `OK: ${job.arrived} messages in 2 s`;
        out.classList.add("ok");
      } else if (job.state !== "running") {
        out.textContent = "the test did not start in 15 s (is the manager running?)";
        out.classList.add("warn");
      } else {
        out.textContent = "no message arrived in 2 s";
        out.classList.add("warn");
      }
    } catch (e) {
      out.textContent = e.message;
      out.classList.add("error");
    } finally {
      if (started) await R.api("DELETE", `/sources/${enc(name)}/preview`).catch(() => {});
      b.disabled = false;
    }
  }
})();
