"""Partial edits of a saved source: `PATCH /api/v1/sources/{name}` changes the fields it is sent
and leaves every other one as it was.

PUT replaces the whole configuration (a field it is not sent falls back to its default), which is
right for a script that owns the source but lost a page's unseen fields (a `subscribe` filter,
say) when the page sent only what it showed. The edit form sends a PATCH of the fields the user
changed. A source is not renamed by an edit: its name is its key (recordings and scripts name
it); a new name is a new source (POST) and the old one is deleted explicitly.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from recorder.manager.planning import normalize_source
from recorder.web import models as m
from recorder.web.api import _checked, _source_out, api, state


class SourcePatch(m.SourceConfig):
    """The fields to change; those not sent keep their value (null resets one that may be
    null: socket_type, upstream, stream, compression)."""

    protocol: m.Protocol | None = None  # type: ignore[assignment]
    endpoint: m.Endpoint | None = Field(None, examples=["tcp://127.0.0.1:5556"])  # type: ignore[assignment]


def merged(old: dict[str, Any], patch: SourcePatch) -> dict[str, Any]:
    """The old configuration with the sent fields replaced, validated as a whole source."""
    changes = patch.model_dump(exclude_unset=True)
    return m.SourceConfig.model_validate({**old, **changes}).model_dump()


@api.op("PATCH", "/sources/<name>", tag="sources", body=SourcePatch, response=m.SourceOut)
def patch_source(name: str, body: SourcePatch):
    """Change some fields of a saved source; the fields not sent keep their values."""
    st = state()
    row = st.control.update_source(
        _checked("source", name), lambda old: normalize_source(merged(old, body), st.policy)
    )
    return _source_out(row)
