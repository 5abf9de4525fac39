/* The run page's message inspector (templates/_inspector.html): pages of GET
   /api/v1/runs/{run}/streams/{s}/messages, each message with its columns and frames (size, kind,
   decoded value or hex). Karabo streams also go to a train id and narrow to a source and key
   (the page's `sources` and `keys` fill the pickers). The timeline (run:seek) starts the page
   at a time. Everything is shown as text, never as markup. */
"use strict";

(function () {
  const box = document.querySelector("[data-run-inspector]");
  if (!box) return;
  const run = document.getElementById("run").dataset.run;
  const enc = encodeURIComponent;
  const $ = (sel) => box.querySelector(sel);
  const els = {
    stream: $("[data-insp-stream]"), start: $("[data-insp-start]"), limit: $("[data-insp-limit]"),
    hex: $("[data-insp-hex]"), status: $("[data-insp-status]"), list: $("[data-insp-list]"),
    karabo: $("[data-insp-karabo]"), trainForm: $("[data-insp-train-form]"), train: $("[data-insp-train]"),
    source: $("[data-insp-source]"), key: $("[data-insp-key]"),
  };
  let asked = 0, lastKeys = {};

  const option = () => els.stream.selectedOptions[0];
  const total = () => Number(option().dataset.count);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function frameText(f) {
    if (f.kind === "array") {
      const shape = f.shape ? `[${f.shape.join("×")}] per message` : f.placed ? `placed at row ${f.placed.row}, column ${f.placed.column}` : "";
      return `${f.array} ${f.dtype} ${shape}`;
    }
    if (f.value !== undefined) return JSON.stringify(f.value, null, 1);
    if (f.text !== undefined) return f.text;
    if (f.hex !== undefined) return f.hex.replace(/(..)/g, "$1 ").replace(/((?:.. ){16})/g, "$1\n").trim();
    return "";
  }

  function renderMessage(m, open) {
    const li = el("li", "message");
    li.dataset.index = m.index;
    const det = el("details");
    det.open = open;
    const bytes = m.frames.reduce((a, f) => a + f.size, 0);
    const tid = m.columns && m.columns.train_id !== undefined ? ` · train ${m.columns.train_id}` : "";
    const sum = el("summary", "mono small",
      `#${m.index} · ${m.t_s >= 0 ? "+" : ""}${m.t_s.toFixed(6)} s · seq ${m.seq}${tid} · ${m.frames.length} frames · ${bytes} bytes` +
      (m.rejected ? " · not decoded" : ""));
    det.append(sum);
    if (m.reject_reason) det.append(el("p", "error small", m.reject_reason));
    const cols = Object.entries(m.columns || {});
    if (cols.length) {
      const t = el("table", "compact attrs small");
      const body = el("tbody");
      for (const [k, v] of cols) {
        const tr = el("tr");
        const th = el("th", "", k); th.scope = "row";
        tr.append(th, el("td", "mono", String(v)));
        body.append(tr);
      }
      t.append(body);
      const d = el("details"); d.append(el("summary", "small", `Columns (${cols.length})`), t);
      det.append(d);
    }
    const ft = el("table", "compact frames small");
    const head = el("thead"); const hr = el("tr");
    for (const h of ["Frame", "Size", "Kind", "Source", "Content"]) { const th = el("th", "", h); th.scope = "col"; hr.append(th); }
    head.append(hr);
    const fb = el("tbody");
    for (const f of m.frames) {
      const tr = el("tr");
      tr.append(el("td", "num", String(f.index)), el("td", "num", String(f.size)), el("td", "", f.kind),
        el("td", "mono", f.source || ""));
      const pre = el("pre", "mono frame-content", frameText(f));
      pre.tabIndex = 0; // it scrolls: reachable from the keyboard
      const td = el("td"); td.append(pre);
      tr.append(td);
      fb.append(tr);
    }
    ft.append(head, fb);
    const wrap = el("div", "scroll"); wrap.append(ft);
    det.append(wrap);
    li.append(det);
    return li;
  }

  function fill(select, values, keep) {
    const first = select.options[0];
    const names = [...select.options].slice(1).map((o) => o.value);
    if (names.join("\n") === values.join("\n")) return;
    select.textContent = "";
    select.append(first);
    for (const v of values) select.add(new Option(v, v));
    if (values.includes(keep)) select.value = keep;
  }

  async function load(query) {
    const mine = ++asked;
    const q = new URLSearchParams({ limit: els.limit.value, hex_bytes: els.hex.value, ...query });
    if (!("train_id" in query) && !("t_s" in query)) q.set("start", String(Math.max(0, Number(els.start.value) || 0)));
    if (els.source.value) q.set("source", els.source.value);
    if (els.source.value && els.key.value) q.set("key", els.key.value);
    els.status.textContent = "loading…";
    try {
      const page = await R.api("GET", `/runs/${enc(run)}/streams/${enc(els.stream.value)}/messages?${q}`);
      if (mine !== asked) return;
      els.start.value = page.start;
      els.list.textContent = "";
      page.messages.forEach((m, k) => els.list.append(renderMessage(m, k === 0)));
      const last = page.start + page.messages.length - 1;
      els.status.textContent = page.messages.length
        ? `messages ${page.start}–${last} of ${page.total}` : `no messages from ${page.start} (${page.total} in all)`;
      if (page.sources.length) {
        for (const [s, ks] of Object.entries(page.keys)) lastKeys[s] = ks;
        fill(els.source, page.sources, els.source.value);
        fill(els.key, els.source.value ? lastKeys[els.source.value] || [] : [], els.key.value);
      }
      const first = page.messages[0];
      if (first) document.dispatchEvent(new CustomEvent("run:position", { detail: { t_s: first.t_s, source: "inspector" } }));
    } catch (e) {
      if (mine === asked) els.status.textContent = e.message;
    }
  }

  function streamChanged() {
    els.karabo.hidden = !option().dataset.trains;
    els.source.value = ""; els.key.value = ""; lastKeys = {};
    fill(els.source, [], ""); fill(els.key, [], "");
    els.start.value = 0;
    load({});
  }

  box.querySelectorAll("[data-insp-page]").forEach((b) => b.addEventListener("click", () => {
    const step = Number(b.dataset.inspPage) * Number(els.limit.value);
    els.start.value = Math.max(0, Math.min(total() - 1, (Number(els.start.value) || 0) + step));
    load({});
  }));
  els.start.addEventListener("change", () => load({}));
  els.limit.addEventListener("change", () => load({}));
  els.hex.addEventListener("change", () => load({}));
  els.stream.addEventListener("change", streamChanged);
  els.source.addEventListener("change", () => {
    els.key.value = "";
    fill(els.key, lastKeys[els.source.value] || [], "");
    load({});
  });
  els.key.addEventListener("change", () => load({}));
  els.trainForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (els.train.value !== "") load({ train_id: els.train.value });
  });
  document.addEventListener("run:seek", (ev) => load({ t_s: String(Math.max(0, ev.detail.t_s)) }));

  streamChanged();
})();
