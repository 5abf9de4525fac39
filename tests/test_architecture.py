"""The house's rooms import one way (ARCHITECTURE.md): a change that reaches upwards or sideways
fails here, before it makes the layering a suggestion."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "recorder"

#: room -> rooms it may import (besides itself and the bottom modules of BOTTOM).
ALLOWED = {
    "protocols": set(),
    "store": {"protocols"},
    "db": {"store"},
    "simulators": {"protocols"},
    "recording": {"protocols", "store"},
    "replay": {"protocols", "store"},
    "manager": {"protocols", "store", "db", "recording", "replay", "simulators", "export"},
    "web": {"store", "db", "manager", "recording", "export"},
    "cli": {
        *("protocols", "store", "db", "recording", "replay", "manager", "simulators", "web"),
        "export",
    },
    "analysis": {"protocols", "store"},
    "export": {"protocols", "store", "analysis"},
}
BOTTOM = {
    *("errors", "endpoints", "limits", "config", "contracts", "endpoint_policy", "__init__"),
    "shared_setting",
}
"""Modules at the top of the package that everyone may use (they import only each other and
BOTTOM_MAY_USE)."""
BOTTOM_MAY_USE = ("recorder.store.layout", "recorder.store.location", "recorder.protocols.base")
#: third-party modules a room must never load: the web app never opens stream sockets and the
#: core never serves HTTP.
FORBIDDEN = {
    "protocols": {"flask", "sqlalchemy", "zarr"},
    "store": {"flask", "sqlalchemy", "zmq"},
    "db": {"flask", "zmq"},
    "recording": {"flask", "sqlalchemy"},
    "replay": {"flask", "sqlalchemy"},
    "simulators": {"flask", "sqlalchemy", "zarr"},
    "web": {"zmq"},
    "analysis": {"flask", "sqlalchemy", "zmq"},
    "export": {"flask", "sqlalchemy", "zmq"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def _room_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "recorder" or len(parts) == 1:
        return None
    return parts[1] if (PACKAGE / parts[1]).is_dir() else None


def test_rooms_import_one_way():
    wrong = []
    for room, allowed in ALLOWED.items():
        for path in (PACKAGE / room).rglob("*.py"):
            for module in _imports(path):
                target = _room_of(module)
                if target and target != room and target not in allowed:
                    wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_bottom_modules_import_only_the_bottom():
    for path in PACKAGE.glob("*.py"):
        if path.stem == "__main__":
            continue
        for module in _imports(path):
            target = _room_of(module)
            if target is None or module in ("recorder.store", "recorder.protocols"):
                continue  # `from recorder.store import layout` names the module it takes
            if path.stem == "__init__" and module.startswith("recorder.analysis"):
                continue  # `recorder.open_run`: imported on first use, never at start
            # the run layout's names and the decoded-message types are contracts themselves
            assert module.startswith(BOTTOM_MAY_USE), f"{path.name} imports {module}"


def test_rooms_never_load_what_they_must_not():
    wrong = []
    for room, banned in FORBIDDEN.items():
        for path in (PACKAGE / room).rglob("*.py"):
            for module in _imports(path):
                if module.split(".")[0] in banned:
                    wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not wrong, "\n".join(sorted(wrong))


def test_every_room_is_in_the_table():
    rooms = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert rooms == set(ALLOWED)
    tops = {p.stem for p in PACKAGE.glob("*.py")} - {"__main__"}
    assert tops <= BOTTOM, f"place new top-level modules in ARCHITECTURE.md: {tops - BOTTOM}"
