/* A run's notes one at a time (templates/_run_notes.html): POST adds one, PATCH edits one,
   DELETE removes one, by id, so notes added elsewhere since the page loaded stay. After each
   change the list is drawn again from GET /runs/{id}/notes, in the shape the template gives. */
"use strict";

(function () {
  const enc = encodeURIComponent;
  const section = () => document.getElementById("notes");
  const base = () => `/runs/${enc(section().dataset.notesRun)}/notes`;

  const when = (ns) => (ns ? new Date(ns / 1e6).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "–");

  function el(tag, props, ...children) {
    const e = Object.assign(document.createElement(tag), props || {});
    for (const c of children) e.append(c);
    return e;
  }

  function item(n) {
    const meta = `${n.author || "unknown"} · ${when(n.created_ns)}` + (n.updated_ns ? ` · edited ${when(n.updated_ns)}` : "");
    const li = el("li", {},
      el("p", { className: "note-text", textContent: n.text }),
      el("div", { className: "small muted note-meta", textContent: meta }),
      el("div", { className: "note-actions" },
        el("button", { type: "button", textContent: "Edit" }), " ",
        el("button", { type: "button", className: "danger", textContent: "Delete" })));
    li.dataset.note = n.id;
    const [edit, del] = li.querySelectorAll("button");
    edit.dataset.noteEdit = "";
    del.dataset.noteDelete = "";
    return li;
  }

  async function redraw() {
    const out = await R.api("GET", base());
    document.getElementById("notes-list").replaceChildren(...out.notes.map(item));
    document.getElementById("notes-empty").hidden = out.notes.length > 0;
  }

  function editor(li) {
    const text = li.querySelector(".note-text").textContent;
    const id = "note-edit-" + li.dataset.note;
    const f = el("form", { className: "note-editor" },
      el("textarea", { id, name: "text", rows: 3, maxLength: 10000, required: true, value: text }),
      el("button", { type: "submit", textContent: "Save" }), " ",
      el("button", { type: "button", textContent: "Cancel" }));
    f.dataset.noteSave = li.dataset.note;
    f.elements.text.setAttribute("aria-label", "Edit note");
    f.querySelector("button[type=button]").dataset.noteCancel = "";
    li.querySelector(".note-actions").hidden = true;
    li.querySelector(".note-text").hidden = true;
    li.append(f);
    f.elements.text.focus();
  }

  document.addEventListener("submit", (ev) => {
    const f = ev.target;
    if (!f.matches("form[data-note-add], form[data-note-save]")) return;
    ev.preventDefault();
    const text = f.elements.text.value;
    if (!text.trim()) return;
    const button = f.querySelector("[type=submit]");
    button.disabled = true;
    R.run(async () => {
      if (f.dataset.noteSave) {
        await R.api("PATCH", `${base()}/${enc(f.dataset.noteSave)}`, { text });
        R.flash("Note saved.", "ok");
      } else {
        await R.api("POST", base(), { text });
        f.reset();
        R.flash("Note added.", "ok");
      }
      await redraw();
    }).finally(() => { button.disabled = false; });
  });

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button");
    const li = b && b.closest("#notes li[data-note]");
    if (!li) return;
    if (b.matches("[data-note-edit]")) {
      editor(li);
    } else if (b.matches("[data-note-cancel]")) {
      li.querySelector("form").remove();
      li.querySelector(".note-actions").hidden = false;
      li.querySelector(".note-text").hidden = false;
    } else if (b.matches("[data-note-delete]")) {
      if (!confirm("Delete this note?")) return;
      R.run(async () => {
        await R.api("DELETE", `${base()}/${enc(li.dataset.note)}`);
        await redraw();
      });
    }
  });
})();
