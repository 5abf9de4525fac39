/* zmq-recorder UI actions. Every button and form here calls the public JSON API (/api/v1) with
   the login cookie, exactly as automation does with a bearer token; errors from the API's
   envelope are shown as one readable line in #flash. No inline handlers (the CSP forbids them). */
"use strict";

const R = (window.R = {});

R.flash = function (text, kind) {
  const el = document.getElementById("flash");
  el.textContent = text;
  el.className = kind || "error";
  el.hidden = false;
  clearTimeout(R._flashTimer);
  R._flashTimer = setTimeout(() => { el.hidden = true; }, kind === "ok" ? 3000 : 12000);
};

R.api = async function (method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch("/api/v1" + path, init);
  } catch (e) {
    throw new Error("The server cannot be reached (" + e.message + ").");
  }
  if (resp.status === 204) return null;
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    const err = data && data.error;
    let msg = err ? err.message : "The server answered " + resp.status + ".";
    if (err && Array.isArray(err.details) && err.details.length) {
      msg += ": " + err.details.map((d) => (d.loc || []).join(".") + " " + d.msg).join("; ");
    }
    if (resp.status === 401) { R.toLogin(); msg += " Sign in again."; }
    throw new Error(msg);
  }
  return data;
};

R.refresh = function () {
  const mine = document.querySelector("[data-live]");
  if (mine) return R.update(mine);
  const live = document.querySelector("[hx-get]");
  if (live && window.htmx) htmx.trigger(live, "refresh");
  else location.reload();
};

/* -- parts of a page that update in place ---------------------------------------------------
   An element with data-live="/ui/..." is fetched again every data-every seconds (and at once
   by R.refresh) and the answer is merged into the page node by node: only what changed is
   touched, so keyboard focus, typed text, open <details> and scroll positions survive. A 401
   (signed out, session ended) goes to the sign-in page instead of polling on. */
R.toLogin = function () {
  location.href = "/login?next=" + enc(location.pathname + location.search).replace(/%2F/g, "/");
};

const keyOf = (n) => (n.nodeType === 1 ? n.id || n.dataset.job || n.dataset.key || null : null);

function syncAttributes(from, to) {
  for (const a of [...from.attributes]) {
    if (!to.hasAttribute(a.name) && !(a.name === "open" && from.tagName === "DETAILS")) from.removeAttribute(a.name);
  }
  for (const a of to.attributes) {
    if (a.name === "open" && from.tagName === "DETAILS") continue; // the user's choice
    if (from.getAttribute(a.name) !== a.value) from.setAttribute(a.name, a.value);
  }
}

R.morph = function (from, to) {
  if (from.nodeType !== to.nodeType || from.nodeName !== to.nodeName || keyOf(from) !== keyOf(to)) {
    from.replaceWith(to);
    return;
  }
  if (from.nodeType !== 1) {
    if (from.nodeValue !== to.nodeValue) from.nodeValue = to.nodeValue;
    return;
  }
  if (from.hasAttribute("hx-preserve") || from.hasAttribute("data-preserve")) return;
  syncAttributes(from, to);
  if (from.tagName === "PROGRESS" || from.tagName === "INPUT") {
    if (from.tagName === "PROGRESS") from.value = to.value;
    return; // an input's children are none, its typed value is the user's
  }
  R.morphChildren(from, to);
};

R.morphChildren = function (from, to) {
  const keyed = new Map([...from.childNodes].filter(keyOf).map((n) => [keyOf(n), n]));
  const nexts = [...to.childNodes];
  const wanted = new Set(nexts.map(keyOf).filter(Boolean));
  let i = 0;
  for (const next of nexts) {
    const key = keyOf(next);
    const cur = from.childNodes[i];
    if (key && keyed.has(key)) {
      const same = keyed.get(key);
      if (same !== cur) from.insertBefore(same, cur || null); // a row that moved keeps its element
      R.morph(same, next);
    } else if (!cur) {
      from.appendChild(next);
    } else if (keyOf(cur) && wanted.has(keyOf(cur))) {
      from.insertBefore(next, cur); // a new row before one that stays
    } else {
      R.morph(cur, next);
    }
    i++;
  }
  while (from.childNodes.length > i) from.lastChild.remove();
};

R.update = async function (el) {
  if (el._busy) return;
  el._busy = true;
  try {
    const resp = await fetch(el.dataset.live, { credentials: "same-origin", headers: { "HX-Request": "true" } });
    if (resp.status === 401) return R.toLogin();
    if (!resp.ok) throw new Error("Refreshing failed (" + resp.status + ").");
    const next = document.createElement(el.tagName);
    next.innerHTML = await resp.text();
    R.morphChildren(el, next);
    el.dispatchEvent(new CustomEvent("live:updated", { bubbles: true }));
  } catch (e) {
    R.flash(e.message.startsWith("Refreshing") ? e.message : "The server cannot be reached.");
  } finally {
    el._busy = false;
  }
};

function startLive() {
  for (const el of document.querySelectorAll("[data-live]")) {
    const every = 1000 * (Number(el.dataset.every) || 1);
    setInterval(() => { if (!document.hidden) R.update(el); }, every);
  }
}
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startLive);
else startLive();

R.run = async function (fn) {
  try { return await fn(); } catch (e) { R.flash(e.message); return undefined; }
};

const num = (v) => (v === "" || v === null || v === undefined ? undefined : Number(v));
const runId = () => document.getElementById("run")?.dataset.run;
const enc = encodeURIComponent;

/* -- forms: data-action names a builder that turns the form into one API call ------------- */
const forms = {
  "start-recording": async (f) => {
    const sources = [...f.querySelectorAll("input[name=source]:checked")].map((i) => i.value);
    if (!sources.length) throw new Error("Choose at least one source to record.");
    const body = { sources };
    if (f.name.value.trim()) body.name = f.name.value.trim();
    const tags = f.tags.value.split(",").map((t) => t.trim()).filter(Boolean);
    if (tags.length) body.tags = tags;
    if (num(f.duration_s.value)) body.duration_s = num(f.duration_s.value);
    if (f.count && num(f.count.value)) body.count = num(f.count.value);
    if (f.flush_interval_s && num(f.flush_interval_s.value)) body.flush_interval_s = num(f.flush_interval_s.value);
    if (f.compression.value !== "none") body.compression = f.compression.value;
    if (f.host?.value.trim()) body.host = f.host.value.trim();
    if (R.recordingOptions) R.recordingOptions(f, body); // trigger, split, session
    const out = await R.api("POST", "/recordings", body);
    R.flash(out.run_id ? "Recording started: run " + out.run_id : "Recording armed.", "ok");
    f.reset();
    R.refresh();
  },
  "add-tag": async (f) => {
    await R.api("POST", `/runs/${enc(runId())}/tags`, { tag: f.tag.value.trim() });
    location.reload();
  },
  replay: async (f) => {
    const body = { run_id: runId(), loop: num(f.loop.value) ?? 1 };
    if (f.max_speed.checked) body.max_speed = true;
    else if (num(f.speed.value)) body.speed = num(f.speed.value);
    if (num(f.start_s.value) !== undefined) body.start_s = num(f.start_s.value);
    if (num(f.end_s.value) !== undefined) body.end_s = num(f.end_s.value);
    const streams = [...f.querySelectorAll("input[name=stream]")];
    const chosen = streams.filter((i) => i.checked).map((i) => i.value);
    if (!chosen.length) throw new Error("Choose at least one stream to replay.");
    // several runs on one clock: this run's streams are named RUN/NAME (names may clash)
    const others = (f.with_runs?.value || "").split(/[\s,]+/).filter(Boolean);
    const key = (s) => (others.length ? `${runId()}/${s}` : s);
    if (others.length) {
      body.with_runs = others;
      if (chosen.length < streams.length)
        throw new Error("With other runs every stream is replayed: keep all streams checked.");
    } else if (chosen.length < streams.length) body.streams = chosen;
    const offsets = {};
    for (const pair of (f.offsets?.value || "").split(/[\s,]+/).filter(Boolean)) {
      const [run, seconds] = pair.split("=");
      const shift = num(seconds);
      if (shift === undefined || Number.isNaN(shift)) throw new Error(`Offset ${pair} is not RUN=SECONDS.`);
      offsets[run] = shift;
    }
    if (Object.keys(offsets).length) body.offsets = offsets;
    if (f.follow?.checked) body.follow = true;
    if (f.skip_pauses?.checked) body.skip_pauses = true;
    const endpoints = {};
    for (const s of chosen) {
      const v = f.elements["endpoint:" + s].value.trim();
      if (v) endpoints[key(s)] = v;
    }
    if (Object.keys(endpoints).length) body.endpoints = endpoints;
    // The rest on free loopback ports unless asked for the recorded ones (a port in use
    // would fail the replay); the replay page shows where each stream is served.
    if (!f.recorded_ports.checked) body.endpoint = "auto";
    const out = await R.api("POST", "/replays", body);
    location.href = "/replays/" + enc(out.id);
  },
  export: async (f) => {
    const body = { target: f.target.value };
    if (num(f.start.value) !== undefined) body.start = num(f.start.value);
    if (num(f.end.value) !== undefined) body.end = num(f.end.value);
    const chosen = [...f.querySelectorAll("input[name=export-stream]:checked")].map((i) => i.value);
    if (chosen.length) body.streams = chosen;
    await R.api("POST", `/runs/${enc(runId())}/exports`, body);
    R.flash("Export started.", "ok");
    htmx.trigger(document.getElementById("exports"), "refresh");
  },
  seek: async (f) => {
    const id = document.getElementById("replay").dataset.replay;
    await R.api("POST", `/replays/${enc(id)}/seek`, { t_s: num(f.t_s.value) });
    R.refresh();
  },
  speed: async (f) => {
    const id = document.getElementById("replay").dataset.replay;
    await R.api("POST", `/replays/${enc(id)}/speed`, { speed: num(f.speed.value) });
    R.flash("Speed set.", "ok");
    R.refresh();
  },
  "create-token": async (f) => {
    const body = { name: f.elements.name.value.trim() };
    if (num(f.expires_s.value)) body.expires_s = num(f.expires_s.value);
    const out = await R.api("POST", "/tokens", body);
    document.getElementById("new-token-value").textContent = out.token;
    document.getElementById("new-token").hidden = false;
    R.flash("Token " + out.id + " created.", "ok");
    f.reset();
  },
};

document.addEventListener("submit", (ev) => {
  const f = ev.target.closest("form[data-action]");
  if (!f || !forms[f.dataset.action]) return;
  ev.preventDefault();
  const button = f.querySelector("[type=submit]");
  if (button) button.disabled = true;
  R.run(() => forms[f.dataset.action](f)).finally(() => { if (button) button.disabled = false; });
});

/* -- buttons ------------------------------------------------------------------------------- */
document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button");
  if (!b) return;
  if (b.dataset.post) {
    b.disabled = true;
    R.run(async () => { await R.api("POST", b.dataset.post); R.refresh(); })
      .finally(() => { b.disabled = false; });
  } else if (b.dataset.removeTag) {
    R.run(async () => {
      await R.api("DELETE", `/runs/${enc(runId())}/tags/${enc(b.dataset.removeTag)}`);
      location.reload();
    });
  } else if (b.dataset.deleteExport) {
    R.run(async () => {
      await R.api("DELETE", "/exports/" + enc(b.dataset.deleteExport));
      htmx.trigger(document.getElementById("exports"), "refresh");
    });
  } else if (b.dataset.deleteSource) {
    if (!confirm("Delete the source " + b.dataset.deleteSource + "? Runs keep their copy.")) return;
    R.run(async () => { await R.api("DELETE", "/sources/" + enc(b.dataset.deleteSource)); location.reload(); });
  } else if (b.dataset.revokeToken) {
    const what = b.dataset.revokeToken + (b.dataset.tokenName ? " (" + b.dataset.tokenName + ")" : "");
    if (!confirm("Revoke the token " + what + "? Browsers signed in with it are signed out.")) return;
    R.run(async () => { await R.api("DELETE", "/tokens/" + enc(b.dataset.revokeToken)); location.reload(); });
  }
});

/* -- the run name, editable in place ------------------------------------------------------- */
document.addEventListener("change", (ev) => {
  const el = ev.target;
  if (el.dataset.action === "rename") {
    R.run(async () => {
      await R.api("PATCH", `/runs/${enc(runId())}`, { name: el.value });
      R.flash("Renamed.", "ok");
    });
  }
});

/* htmx errors (a poll that failed) read as one line too. */
document.addEventListener("htmx:responseError", (ev) => {
  const x = ev.detail.xhr;
  if (x.status === 401) return R.toLogin(); // signed out: no more polling with 401s
  R.flash("Refreshing failed (" + x.status + ").");
});
document.addEventListener("htmx:sendError", () => R.flash("The server cannot be reached."));

/* Times as the reader's clock shows them: <time datetime="UTC ISO" data-local> gets the local
   time, and [data-zone] names the zone (the server renders UTC, the fallback without script). */
R.localTimes = function (root) {
  const fmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZoneName: "short" });
  for (const t of (root || document).querySelectorAll("time[data-local]")) {
    const d = new Date(t.getAttribute("datetime"));
    if (!Number.isNaN(d.getTime())) { t.textContent = fmt.format(d); t.title = t.getAttribute("datetime"); }
  }
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  const off = -new Date().getTimezoneOffset();
  const utc = "UTC" + (off < 0 ? "−" : "+") + String(Math.floor(Math.abs(off) / 60)).padStart(2, "0") + ":" + String(Math.abs(off) % 60).padStart(2, "0");
  for (const z of document.querySelectorAll("[data-zone]")) z.textContent = `${zone} (${utc})`;
};
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => R.localTimes());
else R.localTimes();
