"""What an NWB file says about the experiment rather than the streams: the session the run was
recorded in (description, experimenters, session id, keywords), its subject, and the user's
markers and deliberate pauses (docs/export/nwb.md).

A run outside any session, or in one whose subject has no `subject_id`, gets the placeholder
subject: every field "unknown" in NWB's terms, so the NWB Inspector passes and nobody mistakes
it for a real animal.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from pynwb.file import Subject  # type: ignore[import-untyped, unused-ignore]

from recorder.contracts import SessionAttrs
from recorder.export.base import ExportContext

UNKNOWN_SPECIES = "http://purl.obolibrary.org/obo/NCBITaxon_1"
"""The root of the NCBI taxonomy ("any organism"): the streams say nothing about the subject."""
UNKNOWN_AGE = "P0D/"  # any age (an ISO 8601 interval open at its end)
#: Subject keys that are pynwb.file.Subject fields of text (the rest go into its description).
SUBJECT_TEXT = ("subject_id", "species", "sex", "age", "genotype", "strain", "weight")
_SEX = {"m": "M", "male": "M", "f": "F", "female": "F", "u": "U", "unknown": "U", "o": "O",
        "other": "O"}  # fmt: skip


def session_fields(ctx: ExportContext, default_description: str) -> dict[str, Any]:
    """NWBFile arguments from the run's session (none without one)."""
    s = ctx.session
    if s is None:
        return {"session_description": default_description, "session_id": ctx.run.run_id}
    description = s["description"] or s["name"]
    run_name = ctx.run.annotations().get("name") or ctx.run.name
    if run_name and run_name != s["name"]:
        description += f" (run {run_name})"
    out: dict[str, Any] = {
        "session_description": description,
        "session_id": s["id"],
        "experiment_description": f"session {s['name']!r} ({s['id']})",
    }
    if s["experimenters"]:
        out["experimenter"] = list(s["experimenters"])
    if s["tags"]:
        out["keywords"] = list(s["tags"])
    return out


def subject(session: SessionAttrs | None) -> Any:
    """The session's subject as pynwb's Subject; the placeholder without a subject_id."""
    fields: dict[str, str] = dict(session["subject"] or {}) if session else {}
    if not (fields.get("subject_id") or "").strip():
        return placeholder_subject()
    kwargs: dict[str, Any] = {k: fields.pop(k) for k in SUBJECT_TEXT if fields.get(k)}
    kwargs["sex"] = _SEX.get(kwargs.get("sex", "U").strip().lower(), kwargs.get("sex", "U"))
    kwargs.setdefault("species", UNKNOWN_SPECIES)
    born = fields.pop("date_of_birth", None)
    if born:
        try:
            day = _dt.datetime.fromisoformat(born)
            kwargs["date_of_birth"] = day if day.tzinfo else day.replace(tzinfo=_dt.UTC)
        except ValueError:
            fields["date_of_birth"] = born  # kept as text in the description
    if "age" not in kwargs and "date_of_birth" not in kwargs:
        kwargs["age"] = UNKNOWN_AGE
    if fields.get("age__reference") in ("birth", "gestational"):
        kwargs["age__reference"] = fields.pop("age__reference")
    described = fields.pop("description", "")
    rest = "; ".join(f"{k}: {v}" for k, v in sorted(fields.items()))
    text = "; ".join(t for t in (described, rest) if t)
    kwargs["description"] = text or f"subject of session {session['id']}"  # type: ignore[index]
    return Subject(**kwargs)


def placeholder_subject() -> Any:
    return Subject(
        subject_id="unknown",
        sex="U",
        age=UNKNOWN_AGE,
        species=UNKNOWN_SPECIES,
        description=(
            "unknown: the recorded ZeroMQ streams carry no subject metadata and the run is in "
            "no session with a subject_id, so every field here says 'unknown' in NWB's terms "
            "(sex U, age 'P0D/' = any age, species the NCBI taxonomy root); fill them in "
            "before sharing the file"
        ),
    )


def electrode_location(session: SessionAttrs | None) -> str:
    """Where the electrodes were: the session's `location` metadata (for a mouse the NWB
    Inspector wants an Allen CCF term such as VISp), else "unknown"."""
    value = (session["meta"] or {}).get("location") if session else None
    return value.strip() if isinstance(value, str) and value.strip() else "unknown"


def add_markers_and_pauses(nwb: Any, ctx: ExportContext) -> None:
    """Markers as the events table `markers` (timestamp: receive time in seconds from the
    session start, annotation: the text, author); pauses as `invalid_times` rows tagged
    `pause`, with how many messages were received and not stored while paused."""
    t0 = ctx.run.started_ns
    markers = ctx.markers()
    if markers:
        table = nwb.create_events_table(
            name="markers",
            description="markers users set during the recording (times are host receive times)",
        )
        table.add_column(name="author", description="who set the marker (token or user name)")
        for m in markers:
            table.add_row(
                timestamp=(m["recv_ns"] - t0) / 1e9,
                annotation=m["text"],
                author=m.get("author") or "",
            )
    pauses = ctx.pauses()
    if pauses:
        nwb.add_invalid_times_column(
            name="messages", description="messages received while paused (not stored)"
        )
        for p in pauses:
            nwb.add_invalid_time_interval(
                start_time=(p["start_ns"] - t0) / 1e9,
                stop_time=(p["end_ns"] - t0) / 1e9,  # type: ignore[operator]
                tags=["pause"],
                messages=p["messages"],
            )
