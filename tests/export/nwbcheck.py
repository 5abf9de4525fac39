"""What the NWB Inspector finds serious in a file we wrote: critical findings and violations of
best practice (the exports must have none), one line each for the assertion message."""

from __future__ import annotations

from pathlib import Path

from nwbinspector import Importance, inspect_nwbfile


def serious(path: Path) -> list[str]:
    return [
        f"{m.importance.name} {m.check_function_name} {m.object_name}: {m.message}"
        for m in inspect_nwbfile(nwbfile_path=str(path))
        if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION)
    ]
