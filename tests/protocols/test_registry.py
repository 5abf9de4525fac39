"""The protocol registry: every protocol is one complete descriptor, and protocols/ stays at the
bottom of the house (it imports nothing from the rooms that use it)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from recorder import protocols
from recorder.errors import UsageError
from recorder.protocols.descriptor import NEUTRAL, Responder
from recorder.protocols.detect import detect_protocol
from recorder.recording.receive import COMPANIONS
from recorder.recording.source_spec import SOCKET_TYPES
from recorder.replay.control_planes import CONTROL_PLANES
from recorder.simulators import Simulator, make_simulator, simulator_names
from recorder.simulators.adzmq import AdzmqSimulator
from recorder.simulators.karabo import KaraboSimulator
from recorder.simulators.openephys import OpenEphysSimulator

DESCRIPTORS = protocols.descriptors()
IDS = [d.name for d in DESCRIPTORS]
PROTOCOLS_DIR = Path(protocols.__file__).parent
ROOMS_ABOVE = ("recording", "replay", "store", "db", "web", "cli", "manager", "simulators")


def test_names_are_unique_and_sorted():
    assert protocols.names() == sorted(IDS) and len(set(IDS)) == len(IDS)
    assert {"openephys", "adzmq", "pymultivideo", "karabo", "reqrep", "raw"} <= set(IDS)


def test_unknown_names():
    with pytest.raises(UsageError, match="unknown protocol 'nope'"):
        protocols.get("nope")
    with pytest.raises(UsageError, match="unknown protocol"):
        protocols.codec_for("auto")
    assert protocols.lookup("nope") is protocols.get(protocols.RAW)  # read from an old run


@pytest.mark.parametrize("d", DESCRIPTORS, ids=IDS)
def test_descriptor_is_complete(d):
    codec = d.codec()
    assert codec.name == d.name and callable(codec.decode)
    assert d.codec() is not codec  # fresh per stream: codecs may keep state
    assert d.default_socket in (*SOCKET_TYPES, "REP")
    assert d.default_socket == "REP" if d.proxy else d.default_socket in SOCKET_TYPES
    assert d.responder is Responder.PAIRS if d.proxy else d.responder is Responder.SEQUENTIAL
    assert d.refuse_request is None or d.responder is Responder.SEQUENTIAL
    sim = d.simulator_class()
    assert isinstance(sim, type) and issubclass(sim, Simulator)
    assert d.name in simulator_names()
    assert d.demo is not None


@pytest.mark.parametrize("d", DESCRIPTORS, ids=IDS)
def test_control_planes_are_served(d):
    """Every control plane a descriptor names has a class behind it in recording/ or replay/."""
    for kind in d.companions:
        assert kind in COMPANIONS
    for kind in d.replay_controls:
        assert kind in CONTROL_PLANES
    if d.controlled_by is not None:
        assert d.controlled_by in CONTROL_PLANES


def _sim_messages(name: str, n: int = 6) -> list[list[bytes]]:
    sim = make_simulator(name)
    return [sim.message(i) for i in range(n)]


@pytest.mark.parametrize("d", DESCRIPTORS, ids=IDS)
def test_sniff_labels_its_own_simulator(d):
    messages = _sim_messages(d.name)
    if d.sniff is None:  # never detected: auto records such a stream as raw
        assert detect_protocol(messages) == protocols.RAW
        return
    assert all(d.sniff(m) == d.name for m in messages)
    assert detect_protocol(messages) == d.name
    for other in DESCRIPTORS:  # the marks do not overlap: no other protocol claims them
        if other is not d and other.sniff is not None:
            assert all(other.sniff(m) in (None, NEUTRAL) for m in messages), other.name


@pytest.mark.parametrize(
    "sim, name",
    [
        (OpenEphysSimulator(legacy=True, n_channels=2, n_samples=4), "openephys"),
        (AdzmqSimulator(variant="pre14", height=2, width=3), "adzmq"),
        (AdzmqSimulator(variant="chunk", height=2, width=3), "adzmq"),
        (KaraboSimulator(protocol="1.0"), "karabo"),
    ],
    ids=["openephys-legacy", "adzmq-pre14", "adzmq-chunk", "karabo-1.0"],
)
def test_sniff_labels_simulator_variants(sim, name):
    messages = [sim.message(i) for i in range(3)]
    assert all(protocols.get(name).sniff(m) == name for m in messages)
    assert detect_protocol(messages) == name


@pytest.mark.parametrize("d", [d for d in DESCRIPTORS if d.sniff is not None], ids=lambda d: d.name)
@pytest.mark.parametrize("garbage", [[], [None], [b""], [object(), b""], "text", None, [b"\x93"]])
def test_sniff_never_raises(d, garbage):
    assert d.sniff(garbage) in (None, d.name, NEUTRAL)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


@pytest.mark.parametrize("path", sorted(PROTOCOLS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_protocols_import_nothing_from_the_rooms_above(path):
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "recorder" and len(parts) > 1:
            assert parts[1] in ("errors", "endpoints", "protocols"), f"{path.name} imports {name}"


@pytest.mark.timeout(60)
def test_importing_protocols_loads_no_room_above():
    code = (
        "import json, sys\n"
        "import recorder.protocols, recorder.protocols.detect\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('recorder.'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=50
    ).stdout
    loaded = json.loads(out)
    assert "recorder.protocols.detect" in loaded
    for room in ROOMS_ABOVE:
        assert not [m for m in loaded if m.split(".")[1] == room], (room, loaded)
