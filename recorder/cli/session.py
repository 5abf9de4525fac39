"""`recorder session ...`: experimental sessions from the shell (docs/sessions.md).

The same edits as the API, through the same service (db/session_service.py): the session file
first, then the copies in its runs, then the catalog. RUN arguments take unique id prefixes like
every other command; so do session ids (`ses-20261202-03`).
"""

from __future__ import annotations

import json
from typing import Any

import click

from recorder import config
from recorder.cli.options import data_options, open_data
from recorder.cli.text import human_bytes, human_duration, human_time, table
from recorder.errors import UsageError


def _service(data, catalog):
    from recorder.db.session_service import SessionService

    folder, cat = open_data(data, catalog)
    return SessionService(folder, cat)


def _resolve(svc, session: str) -> str:
    """A session id, or a unique start of one (at least `ses-`)."""
    from recorder.store.sessions import SessionNotFound, check_id

    try:
        return check_id(session)
    except SessionNotFound:
        pass
    if not session.startswith("ses-") or not all(c.isalnum() or c == "-" for c in session):
        raise SessionNotFound(f"no session {session!r} (ids look like ses-20261202-031500-3fa2c1)")
    ids = {p.stem for p in svc.files.dir.glob("ses-*.json")} | set(svc.catalog.session_ids())
    matches = sorted(i for i in ids if i.startswith(session))
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"session {session!r} is ambiguous: {', '.join(matches[:5])}")
    raise SessionNotFound(f"no session {session!r}")


def _key_values(values, what: str) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{v!r} is not KEY=VALUE", param_hint=what)
        out[key.strip()] = value
    return out


def _meta_value(text: str) -> Any:
    """JSON when it parses (numbers, true, lists), else the text as it is."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _fields(description, experimenters, subject, template, tags, meta, notes) -> dict:
    """The options given, as session fields (those not given are left out: an edit keeps
    them as they are)."""
    fields: dict[str, Any] = {}
    if description is not None:
        fields["description"] = description
    if experimenters:
        fields["experimenters"] = list(experimenters)
    if subject:
        fields["subject"] = _key_values(subject, "--subject")
    if template is not None:
        fields["template"] = template or None
    if tags:
        fields["tags"] = list(tags)
    if meta:
        fields["meta"] = {k: _meta_value(v) for k, v in _key_values(meta, "--meta").items()}
    if notes:
        fields["notes"] = [{"text": n} for n in notes]
    return fields


def field_options(f):
    """The options `new` and `edit` share."""
    for option in reversed([
        click.option("--description", help="What the session is for."),
        click.option("--experimenter", "experimenters", multiple=True, metavar="NAME",
                     help="Who ran it (repeatable)."),
        click.option("--subject", multiple=True, metavar="KEY=VALUE",
                     help="A subject field: subject_id=m12, species=..., sex=F, age=P90D "
                          "(repeatable)."),
        click.option("--template", metavar="NAME",
                     help="A lab template whose required subject fields must all be given."),
        click.option("--tag", "tags", multiple=True, help="Tag the session (repeatable)."),
        click.option("--meta", multiple=True, metavar="KEY=VALUE",
                     help="Any other key/value; the value as JSON if it parses (repeatable)."),
        click.option("--note", "notes", multiple=True, metavar="TEXT", help="A note (repeatable)."),
    ]):  # fmt: skip
        f = option(f)
    return f


@click.group()
def session():
    """Experimental sessions: a subject on the rig, a shift, a series (docs/sessions.md)."""


@session.command("new")
@click.argument("name")
@field_options
@data_options
def session_new(name, description, experimenters, subject, template, tags, meta, notes, data,
                catalog):  # fmt: skip
    """Start a session called NAME; prints its id."""
    svc = _service(data, catalog)
    fields = {"name": name, **_fields(description, experimenters, subject, template, tags, meta,
                                      notes)}  # fmt: skip
    click.echo(svc.create(fields)["id"])
    return 0


@session.command("edit")
@click.argument("session_id", metavar="SESSION")
@click.option("--name", help="A new name.")
@field_options
@data_options
def session_edit(session_id, name, description, experimenters, subject, template, tags, meta,
                 notes, data, catalog):  # fmt: skip
    """Change the given fields of SESSION (a list option replaces the whole list)."""
    svc = _service(data, catalog)
    fields = _fields(description, experimenters, subject, template, tags, meta, notes)
    if name is not None:
        fields["name"] = name
    if not fields:
        raise click.UsageError("nothing to change: give at least one option")
    s = svc.update(_resolve(svc, session_id), fields)
    click.echo(f"{s['id']}: updated")
    return 0


@session.command("close")
@click.argument("session_id", metavar="SESSION")
@data_options
def session_close(session_id, data, catalog):
    """End SESSION now (closing it again changes nothing)."""
    svc = _service(data, catalog)
    s = svc.close(_resolve(svc, session_id))
    click.echo(f"{s['id']}: closed {human_time(s['ended_ns'])}")
    return 0


@session.command("ls")
@click.option("--open", "open_only", is_flag=True, help="Only sessions not closed yet.")
@click.option("--search", "q", metavar="TEXT", help="Text in name, description, people, subject "
              "or tags.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="A JSON list of sessions (docs/cli.md).")
@data_options
def session_ls(open_only, q, as_json, data, catalog):
    """List sessions, newest first."""
    svc = _service(data, catalog)
    rows, _ = svc.list(q=q, open_only=open_only, limit=100_000)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    if not rows:
        click.echo("no sessions", err=True)
        return 0
    click.echo(table(
        ["ID", "NAME", "STARTED", "STATE", "RUNS", "SIZE", "SUBJECT"],
        [[r["id"], r["name"], human_time(r["started_ns"]),
          "open" if r["ended_ns"] is None else "closed", str(r["runs"]), human_bytes(r["bytes"]),
          r["subject"].get("subject_id", "") or ", ".join(f"{k}={v}" for k, v in
                                                          r["subject"].items())]
         for r in rows],
    ))  # fmt: skip
    return 0


@session.command("show")
@click.argument("session_id", metavar="SESSION")
@click.option("--json", "as_json", is_flag=True, help="The session with its runs as JSON.")
@data_options
def session_show(session_id, as_json, data, catalog):
    """Show SESSION: its fields, runs and totals."""
    svc = _service(data, catalog)
    s = svc.detail(_resolve(svc, session_id))
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return 0
    t = s["totals"]
    state = "open" if s["ended_ns"] is None else "closed " + human_time(s["ended_ns"])
    lines = [
        f"session      {s['id']}  ({s['name']})",
        f"state        {state}",
        f"started      {human_time(s['started_ns'])}",
        f"people       {', '.join(s['experimenters']) or '-'}",
        f"subject      {', '.join(f'{k}={v}' for k, v in s['subject'].items()) or '-'}"
        + (f"  (template {s['template']})" if s["template"] else ""),
        f"tags         {', '.join(s['tags']) or '-'}",
        f"runs         {t['runs']}   {human_duration(t['duration_s'])}   "
        f"{human_bytes(t['bytes'])}   messages {t['messages']}   gaps {t['gaps']}   "
        f"drops {t['drops']}",
    ]
    if s["description"]:
        lines.insert(2, f"description  {s['description']}")
    for k, v in s["meta"].items():
        lines.append(f"meta         {k}={json.dumps(v)}")
    for n in s["notes"]:
        lines.append(f"note         {human_time(n['created_ns'])}: {n['text']}")
    click.echo("\n".join(lines))
    if s["runs"]:
        click.echo("")
        click.echo(table(
            ["RUN", "NAME", "STARTED", "STATUS", "DURATION", "SIZE"],
            [[r["run_id"], r["name"] or "", human_time(r["started_ns"]), r["status"] or "",
              human_duration(r["duration_s"]), human_bytes(r["bytes"])] for r in s["runs"]],
        ))  # fmt: skip
    return 0


@session.command("add-run")
@click.argument("session_id", metavar="SESSION")
@click.argument("runs", metavar="RUN...", nargs=-1, required=True)
@data_options
def session_add_run(session_id, runs, data, catalog):
    """Put RUNs in SESSION (moving them out of the session they were in)."""
    from recorder.store.find import resolve_run

    svc = _service(data, catalog)
    sid = _resolve(svc, session_id)
    paths = [resolve_run(config.runs_dir(svc.data), r) for r in runs]  # all found, or none moved
    for p in paths:
        svc.move_run(p, sid)
        click.echo(f"{p.name}: in session {sid}")
    return 0


@session.command("remove-run")
@click.argument("runs", metavar="RUN...", nargs=-1, required=True)
@data_options
def session_remove_run(runs, data, catalog):
    """Take RUNs out of their session (they stay in the data folder)."""
    from recorder.store.find import resolve_run

    svc = _service(data, catalog)
    paths = [resolve_run(config.runs_dir(svc.data), r) for r in runs]
    for p in paths:
        svc.move_run(p, None)
        click.echo(f"{p.name}: in no session")
    return 0


COMMANDS = [session]
