"""A whole session exported: one file per run in one folder, each carrying the session (NWB:
subject, experimenters, session id, checked with the NWB inspector; HDF5, MCAP, EXDF: the
session's attributes), and the runs' markers and pauses in every target that can hold them,
read back with pynwb, h5py and the mcap reader. Runs are written through the real codecs and
writer from the simulators' own messages."""

from __future__ import annotations

import json
import time
from pathlib import Path

import h5py
import pytest
from mcap.reader import make_reader
from pynwb import NWBHDF5IO

from recorder import config
from recorder.contracts import SessionAttrs
from recorder.db.catalog import Catalog
from recorder.errors import ExportError
from recorder.export.base import ExportRequest, export_run
from recorder.export.nwb import UNKNOWN_SPECIES
from recorder.export.nwb_session import subject
from recorder.export.session import export_session, run_file_name
from recorder.export.targets import import_file
from recorder.protocols import codec_for
from recorder.simulators import AdzmqSimulator, OpenEphysSimulator
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter
from recorder.store.sessions import SessionFiles
from tests.export.nwbcheck import serious
from tests.helpers import cli_json, run_cli

pytestmark = pytest.mark.timeout(120)
SUBJECT = {
    "subject_id": "m12",
    "species": "Mus musculus",
    "sex": "female",
    "age": "P90D",
    "strain": "C57BL/6J",
    "cage": "B4",
}
OE = {"n_channels": 2, "n_samples": 16, "ttl_every": 2, "spike_every": 0}


def new_session(data: Path, **fields) -> SessionAttrs:
    return SessionFiles(data).create(
        {
            "name": "mouse 12, day 3",
            "description": "open field, two trials",
            "experimenters": ["Lovelace, Ada", "Hopper, Grace"],
            "subject": SUBJECT,
            "tags": ["open-field"],
            "meta": {"location": "VISp", "rig": 2},
            **fields,
        }
    )


def write_run(
    runs: Path,
    session: SessionAttrs | None,
    protocol: str,
    n: int,
    *,
    name: str,
    t0: int,
    markers: tuple[str, ...] = (),
    pause: bool = False,
) -> Path:
    """A run of `n` simulator messages 10 ms apart (stream `ephys` or `cam`), with markers at
    the 2nd, 4th ... message and a pause between messages 3 and 5 when asked."""
    if protocol == "openephys":
        sim, stream = OpenEphysSimulator("tcp://127.0.0.1:* PUB", **OE), "ephys"
    else:
        sim, stream = AdzmqSimulator("tcp://127.0.0.1:* PUB", height=8, width=8), "cam"
    codec = codec_for(protocol)
    w = RunWriter(runs, name=name, started_ns=t0, session=session)
    s = w.add_stream(
        stream, protocol=protocol, endpoint="tcp://127.0.0.1:5556", socket_type="SUB",
        role="connect",
    )  # fmt: skip
    for i in range(n):
        frames = sim.message(i)
        s.append(t0 + (i + 1) * 10_000_000, frames, codec.decode(frames))
    for k, text in enumerate(markers):
        w.add_marker(text, recv_ns=t0 + (2 * k + 2) * 10_000_000 + 5_000_000, author="ada")
    if pause:
        w.set_pauses([{"start_ns": t0 + 35_000_000, "end_ns": t0 + 48_000_000, "messages": 2}])
    w.close()
    return w.path


@pytest.fixture
def session_runs(data):
    """A session with two Open Ephys runs (markers, a pause) and one camera run; a run of
    another session."""
    session = new_session(data)
    runs = config.runs_dir(data)
    # recorded in the past: NWB Inspector calls a session_start_time after its own clock a
    # critical error, and the last run starts 2 s after t0
    t0 = time.time_ns() - 60_000_000_000
    paths = [
        write_run(runs, session, "openephys", 12, name="trial 1", t0=t0,
                  markers=("lights off", "mouse in"), pause=True),
        write_run(runs, session, "adzmq", 4, name="top cam", t0=t0 + 500_000_000),
        write_run(runs, session, "openephys", 8, name="trial 2", t0=t0 + 2_000_000_000,
                  markers=("done",)),
    ]  # fmt: skip
    write_run(runs, new_session(data, name="other"), "openephys", 3, name="x", t0=t0)
    cat = Catalog(config.catalog_url(None, data))
    try:
        for p in runs.iterdir():
            cat.index_path(p)
    finally:
        cat.close()
    return session, paths


def test_nwb_files_carry_the_session_subject_markers_and_pauses(session_runs, tmp_path):
    session, paths = session_runs
    said: list[float] = []
    out = tmp_path / "export"
    result = export_session(session, paths, "nwb", out, said.append).as_dict()
    trial1, cam, trial2 = (RunReader(p) for p in paths)
    names = [run_file_name(r.run_id, r.name, ".nwb") for r in (trial1, trial2)]
    assert names[0] == f"{trial1.run_id}_trial_1.nwb"
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert result["files"] == names and list(result["skipped_runs"]) == [cam.run_id]
    assert "NWB holds Open Ephys streams only" in result["skipped_runs"][cam.run_id]
    assert said == sorted(said) and said[-1] == 1.0
    with NWBHDF5IO(str(out / names[0]), "r") as io:
        f = io.read()
        assert f.identifier == trial1.run_id and f.session_id == session["id"]
        assert f.session_description == "open field, two trials (run trial 1)"
        assert list(f.experimenter) == ["Lovelace, Ada", "Hopper, Grace"]
        assert list(f.keywords[:]) == ["open-field"]
        s = f.subject
        assert (s.subject_id, s.species, s.sex, s.age, s.strain) == (
            "m12",
            "Mus musculus",
            "F",
            "P90D",
            "C57BL/6J",
        )
        assert "cage: B4" in s.description
        markers = f.events["markers"].to_dataframe()
        assert list(markers["annotation"]) == ["lights off", "mouse in"]
        assert list(markers["timestamp"]) == pytest.approx([0.025, 0.045])
        assert list(markers["author"]) == ["ada", "ada"]
        assert set(f.electrodes.to_dataframe()["location"]) == {"VISp"}
        pauses = f.invalid_times.to_dataframe()
        assert list(pauses["start_time"]) == pytest.approx([0.035])
        assert list(pauses["stop_time"]) == pytest.approx([0.048])
        assert list(pauses["messages"]) == [2] and list(pauses["tags"]) == [["pause"]]
    with NWBHDF5IO(str(out / names[1]), "r") as io:
        f = io.read()
        assert f.session_id == session["id"] and f.subject.subject_id == "m12"
        assert list(f.events["markers"].to_dataframe()["annotation"]) == ["done"]
        assert f.invalid_times is None
    for name in names:
        assert serious(out / name) == []


def test_a_subject_without_id_gets_the_placeholder(data):
    assert subject(None).subject_id == "unknown"
    no_id = new_session(data, subject={"species": "Mus musculus"})
    placeholder = subject(no_id)
    assert placeholder.subject_id == "unknown" and placeholder.species == UNKNOWN_SPECIES
    bare = subject(new_session(data, subject={"subject_id": "r1"}))
    assert (bare.subject_id, bare.sex, bare.age, bare.species) == (
        "r1",
        "U",
        "P0D/",
        UNKNOWN_SPECIES,
    )


def test_a_window_keeps_the_markers_and_pauses_inside_it(session_runs, tmp_path):
    _, paths = session_runs
    out = tmp_path / "w.nwb"
    export_run(ExportRequest(paths[0], "nwb", out, start=0.04, end=0.2))
    with NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        assert list(f.events["markers"].to_dataframe()["annotation"]) == ["mouse in"]
        assert list(f.invalid_times.to_dataframe()["start_time"]) == pytest.approx([0.04])
    assert serious(out) == []


def test_mcap_has_a_markers_channel_and_the_session(session_runs, tmp_path):
    session, paths = session_runs
    out = tmp_path / "export"
    result = export_session(session, paths, "mcap", out).as_dict()
    assert result["skipped_runs"] == {} and len(result["files"]) == 3
    trial1 = RunReader(paths[0])
    file = out / run_file_name(trial1.run_id, "trial 1", ".mcap")
    with open(file, "rb") as f:
        reader = make_reader(f)
        meta = {m.name: m.metadata for m in reader.iter_metadata()}
        got = [
            (ch.topic, msg.log_time, json.loads(msg.data))
            for _, ch, msg in reader.iter_messages(topics=["/markers"], log_time_order=True)
        ]
    assert meta["zmq_recorder.session"]["id"] == session["id"]
    assert json.loads(meta["zmq_recorder.session"]["subject"]) == SUBJECT
    assert meta["zmq_recorder.run"]["session_id"] == session["id"]
    assert json.loads(meta["zmq_recorder.pauses"]["pauses"]) == trial1.pauses()
    want = trial1.markers()
    assert [(t, m) for _, t, m in got] == [
        (mk["recv_ns"], {"text": mk["text"], "author": "ada", "recv_ns": mk["recv_ns"]})
        for mk in want
    ]
    # the import rebuilds the streams, not a `markers` stream
    back = import_file(file, tmp_path / "imported")
    assert list(RunReader(back).streams) == ["ephys"]


def test_hdf5_has_the_session_markers_and_pauses(session_runs, tmp_path):
    session, paths = session_runs
    out = tmp_path / "cam.h5"
    export_run(ExportRequest(paths[1], "hdf5", out))
    with h5py.File(out, "r") as f:
        assert f.attrs["session_id"] == session["id"]
        assert json.loads(f.attrs["subject"]) == SUBJECT
        assert json.loads(f.attrs["session"])["experimenters"] == session["experimenters"]
        assert "markers" not in f and "pauses" not in f  # the camera run has none
    # markers and pauses of a run that has them (hdf5 holds image streams: a camera run)
    w = RunWriter(tmp_path / "runs", name="cam2", session=session)
    sim = AdzmqSimulator("tcp://127.0.0.1:* PUB", height=8, width=8)
    s = w.add_stream("cam", protocol="adzmq", endpoint="tcp://127.0.0.1:1", socket_type="SUB",
                     role="connect")  # fmt: skip
    for i in range(3):
        s.append(
            w.started_ns + i * 1_000_000, sim.message(i), codec_for("adzmq").decode(sim.message(i))
        )
    mark = w.add_marker("focus", recv_ns=w.started_ns + 1_500_000)
    w.set_pauses([{"start_ns": w.started_ns + 10, "end_ns": None, "messages": 0}])
    w.close()
    out = tmp_path / "cam2.h5"
    export_run(ExportRequest(w.path, "hdf5", out))
    with h5py.File(out, "r") as f:
        assert list(f["markers/recv_ns"][:]) == [mark["recv_ns"]]
        assert [t.decode() for t in f["markers/text"][:]] == ["focus"]
        assert list(f["markers/time_s"][:]) == pytest.approx([0.0015])
        assert list(f["pauses/start_ns"][:]) == [w.started_ns + 10]
        ended = RunReader(w.path).summary()["ended_ns"]
        assert list(f["pauses/end_ns"][:]) == [ended]  # still paused when the run ended


def test_exdf_carries_the_session(data, tmp_path):
    from recorder.simulators import KaraboSimulator

    session = new_session(data)
    sim = KaraboSimulator("tcp://127.0.0.1:* REP")
    w = RunWriter(tmp_path / "runs", name="beam", session=session)
    s = w.add_stream("karabo", protocol="karabo", endpoint="tcp://127.0.0.1:1",
                     socket_type="REQ", role="connect")  # fmt: skip
    for i in range(3):
        frames = sim.message(i)
        s.append(w.started_ns + i * 100_000_000, frames, codec_for("karabo").decode(frames))
    w.close()
    out = tmp_path / "exported"
    result = export_session(session, [w.path], "exdf", out).as_dict()
    folder = out / result["files"][0]
    files = list(folder.glob("*.h5"))
    assert files
    with h5py.File(files[0], "r") as f:
        assert f.attrs["session_id"] == session["id"]
        assert json.loads(f.attrs["session"])["subject"] == SUBJECT


def test_a_session_with_no_run_the_target_holds_is_refused(data, tmp_path):
    session = new_session(data)
    cam = write_run(config.runs_dir(data), session, "adzmq", 2, name="c", t0=time.time_ns())
    with pytest.raises(ExportError, match="no run nwb can hold"):
        export_session(session, [cam], "nwb", tmp_path / "x")
    assert not (tmp_path / "x").exists() and list(tmp_path.glob(".x*")) == []
    (tmp_path / "y").mkdir()
    with pytest.raises(ExportError, match="exists already"):
        export_session(session, [cam], "mcap", tmp_path / "y")


def test_cli_exports_a_session(session_runs, data, tmp_path):
    session, paths = session_runs
    out = tmp_path / "by-cli"
    result = cli_json("export", "--session", session["id"], "--to", "nwb", "--out", out,
                      "--data", data)  # fmt: skip
    assert result["session_id"] == session["id"] and len(result["files"]) == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(result["files"])
    proc = run_cli("export", "--session", session["id"], "--to", "mcap", "--data", data,
                   "--out", tmp_path / "m")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"session {session['id']}, 3 runs" in proc.stdout
    proc = run_cli("export", paths[0].name, "--session", session["id"], "--to", "nwb",
                   "--data", data)  # fmt: skip
    assert proc.returncode == 2 and "not both" in proc.stderr
    proc = run_cli("export", "--session", "ses-20990101-000000-abcdef", "--to", "nwb",
                   "--data", data)  # fmt: skip
    assert proc.returncode != 0 and "no session" in proc.stderr
    proc = run_cli("export", "--to", "nwb", "--data", data)
    assert proc.returncode == 2 and "--session" in proc.stderr
