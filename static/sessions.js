/* Sessions in the browser: the New session form, the dashboard's current-session picker and a
   run's Move to session select. Each calls /api/v1/sessions through R.api (recorder.js), as
   automation does. */
"use strict";

(function () {
  if (window.RSessions) return; // included by more than one partial
  window.RSessions = true;
  const enc = encodeURIComponent;
  const PICKED = "recorder.session"; // this browser's pick of the current session
  const split = (text) => text.split(",").map((t) => t.trim()).filter(Boolean);

  function subjectRow(key) {
    const rows = document.getElementById("subject-rows");
    const row = rows.querySelector(".subject-row").cloneNode(true);
    row.querySelectorAll("input").forEach((i) => { i.value = ""; });
    row.querySelector("[name=subject-key]").value = key || "";
    rows.appendChild(row);
    return row;
  }

  async function createSession(f) {
    const body = { name: f.elements.name.value.trim() };
    if (f.description.value.trim()) body.description = f.description.value.trim();
    const people = split(f.experimenters.value);
    if (people.length) body.experimenters = people;
    const tags = split(f.tags.value);
    if (tags.length) body.tags = tags;
    if (f.template.value) body.template = f.template.value;
    const subject = {};
    for (const row of f.querySelectorAll(".subject-row")) {
      const key = row.querySelector("[name=subject-key]").value.trim();
      const value = row.querySelector("[name=subject-value]").value.trim();
      if (key) subject[key] = value;
      else if (value) throw new Error("A subject value needs its field name.");
    }
    if (Object.keys(subject).length) body.subject = subject;
    const out = await R.api("POST", "/sessions", body);
    localStorage.setItem(PICKED, out.id); // a new session becomes the dashboard's current one
    location.href = "/sessions?created=" + enc(out.id);
  }

  document.addEventListener("submit", (ev) => {
    const f = ev.target.closest("form[data-action=create-session]");
    if (!f) return;
    ev.preventDefault();
    const button = f.querySelector("[type=submit]");
    button.disabled = true;
    R.run(() => createSession(f)).finally(() => { button.disabled = false; });
  });

  document.addEventListener("click", (ev) => {
    if (ev.target.closest("[data-add-subject]")) subjectRow("").querySelector("input").focus();
  });

  document.addEventListener("change", (ev) => {
    const el = ev.target;
    if (el.name === "template" && el.closest("#session-form")) {
      // the template's required fields as empty rows to fill in
      const opt = el.selectedOptions[0];
      const have = [...document.querySelectorAll("#subject-rows [name=subject-key]")].map((i) => i.value.trim());
      for (const key of (opt?.dataset.fields || "").split(",").filter(Boolean)) {
        if (have.includes(key)) continue;
        const empty = [...document.querySelectorAll("#subject-rows .subject-row")].find(
          (r) => !r.querySelector("[name=subject-key]").value.trim());
        (empty || subjectRow("")).querySelector("[name=subject-key]").value = key;
      }
    } else if (el.id === "current-session") {
      localStorage.setItem(PICKED, el.value || "none");
      showCurrent(el);
    } else if (el.name === "session" && el.closest("form[data-action=start-recording]")) {
      const current = document.getElementById("current-session");
      if (current && [...current.options].some((o) => o.value === el.value)) {
        current.value = el.value;
        localStorage.setItem(PICKED, el.value || "none");
        showCurrent(current);
      }
    } else if (el.dataset.moveRun) {
      R.run(async () => {
        const session = el.value || null;
        await R.api("PUT", `/runs/${enc(el.dataset.moveRun)}/session`, { session });
        R.flash(session ? "Moved to the session." : "Taken out of its session.", "ok");
        location.reload();
      });
    }
  });

  function showCurrent(select) {
    // the start form records into the current session unless changed there
    const start = document.querySelector("form[data-action=start-recording] select[name=session]");
    if (start && [...start.options].some((o) => o.value === select.value)) start.value = select.value;
    const link = document.getElementById("current-session-link");
    if (!link) return;
    link.style.display = select.value ? "" : "none"; // .button's display beats [hidden]
    if (select.value) link.href = "/sessions/" + enc(select.value);
  }

  // the dashboard: this browser's pick, if that session is still open
  const current = document.getElementById("current-session");
  if (current) {
    const picked = localStorage.getItem(PICKED);
    const value = picked === "none" ? "" : picked;
    if (picked && [...current.options].some((o) => o.value === value)) current.value = value;
    showCurrent(current);
  }
})();
