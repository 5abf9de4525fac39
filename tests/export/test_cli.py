"""`recorder export` and `recorder import` as a user runs them: real runs in a real data folder,
the command (in this process, tests/helpers.run_cli; in a subprocess where the pipe and the
process matter), its file read back with the mcap library, and every kind of bad input ending in
one `error:` line and exit code 2, never a traceback."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from mcap.reader import make_reader

from recorder import config
from tests.helpers import CLI, run_cli, run_cli_process
from tests.replayhelp import make_run

pytestmark = pytest.mark.timeout(120)
TIMES_MS = [i * 100.0 for i in range(10)]  # message i received i * 0.1 s after the start


def recorder(*args, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=cwd)


def refused(proc: subprocess.CompletedProcess) -> str:
    """The one error line of a refused command (exit 2, no traceback), without `error: `."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0].removeprefix("error: ")


def mcap_messages(path: Path) -> int:
    with path.open("rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None and summary.statistics is not None
    return summary.statistics.message_count


@pytest.fixture
def two_streams(data) -> Path:
    """A raw run of 10 messages, alternating between streams a and b, 0.1 s apart."""
    return make_run(
        config.runs_dir(data), TIMES_MS,
        streams={"a": ("PULL", "connect"), "b": ("SUB", "connect")},
        owner=["a", "b"] * 5,
    )  # fmt: skip


def test_export_to_the_current_folder_by_run_id_prefix(tmp_path, data, two_streams):
    run_id = two_streams.name
    proc = recorder("export", run_id[:-2], "--to", "mcap", "--data", data, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / f"{run_id}.mcap"
    head, size = proc.stdout.strip().rsplit(", ", 1)
    assert head == f"{out}: mcap, 2 streams (a, b), 10 messages"
    assert re.fullmatch(r"[\d.]+ (B|kB|MB)", size), size
    assert mcap_messages(out) >= 10
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_window_and_stream_selection_with_json(tmp_path, data, two_streams):
    run_id = two_streams.name
    proc = recorder(
        "export", run_id, "--to", "mcap", "--start", "0.25", "--end", "0.65", "--json",
        "--data", data, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    out = tmp_path / f"{run_id}-0.25-0.65.mcap"  # messages at 0.3, 0.4, 0.5, 0.6 s
    assert result == {
        "out": str(out), "target": "mcap", "run_id": run_id, "streams": ["a", "b"],
        "messages": 4, "bytes": out.stat().st_size, "partial": False, "skipped": {},
    }  # fmt: skip
    proc = recorder(
        "export", run_id, "--to", "mcap", "--stream", "b", "--start", "0.25", "--json",
        "--out", tmp_path / "only-b.mcap", "--data", data, cwd=tmp_path,
    )  # fmt: skip
    result = json.loads(proc.stdout)
    assert result["streams"] == ["b"] and result["messages"] == 4  # b: 0.3, 0.5, 0.7, 0.9 s
    assert result["out"] == str(tmp_path / "only-b.mcap")


def test_a_run_still_recording_exports_what_was_committed(tmp_path, data):
    run = make_run(config.runs_dir(data), TIMES_MS[:6], close=False)  # flushed, not closed
    proc = recorder("export", run.name, "--to", "mcap", "--data", data, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert "6 messages" in line
    assert line.endswith("; run still recording: exported what was committed")
    out = json.loads(
        recorder("export", run.name, "--to", "mcap", "--out", "again.mcap", "--json",
                 "--data", data, cwd=tmp_path).stdout
    )  # fmt: skip
    assert out["partial"] is True and out["messages"] == 6


def test_progress_is_off_the_result_line(tmp_path, data, two_streams):
    """stdout holds only the result (scripts read it); progress would go to stderr."""
    proc = run_cli_process("export", two_streams.name, "--to", "mcap", "--data", data, cwd=tmp_path)
    assert len(proc.stdout.strip().splitlines()) == 1
    assert proc.stderr == ""  # a short export prints no progress on a pipe


# -- bad input ---------------------------------------------------------------------------------


def test_unknown_target(tmp_path, data, two_streams):
    msg = refused(recorder("export", two_streams.name, "--to", "csv", "--data", data, cwd=tmp_path))
    assert "'--to'" in msg and "'csv' is not one of 'nwb', 'exdf', 'hdf5', 'mcap'" in msg


def test_unknown_run_and_stream(tmp_path, data, two_streams):
    msg = refused(recorder("export", "nope", "--to", "mcap", "--data", data, cwd=tmp_path))
    assert "nope" in msg
    msg = refused(
        recorder("export", two_streams.name, "--to", "mcap", "--stream", "c", "--data", data,
                 cwd=tmp_path)
    )  # fmt: skip
    assert "no stream 'c'" in msg
    assert list(tmp_path.glob("*.mcap")) == []


def test_bad_window(tmp_path, data, two_streams):
    msg = refused(
        recorder("export", two_streams.name, "--to", "mcap", "--start", "2", "--end", "1",
                 "--data", data, cwd=tmp_path)
    )  # fmt: skip
    assert msg == "--end 1 is before --start 2"
    msg = refused(
        recorder("export", two_streams.name, "--to", "mcap", "--start", "-1", "--data", data,
                 cwd=tmp_path)
    )  # fmt: skip
    assert "--start" in msg and "must be 0 or more" in msg


@pytest.mark.parametrize("target", ["nwb", "exdf"])
def test_a_stream_the_target_cannot_hold(tmp_path, data, two_streams, target):
    msg = refused(
        recorder("export", two_streams.name, "--to", target, "--stream", "a", "--data", data,
                 cwd=tmp_path)
    )  # fmt: skip
    assert msg.startswith(f"{target} cannot hold stream 'a': "), msg
    proc = recorder("export", two_streams.name, "--to", target, "--data", data, cwd=tmp_path)
    msg = refused(proc)
    assert f"has no stream {target} can hold" in msg and "a: " in msg and "b: " in msg


def test_an_existing_out_is_never_overwritten(tmp_path, data, two_streams):
    out = tmp_path / "taken.mcap"
    out.write_bytes(b"mine")
    msg = refused(
        recorder("export", two_streams.name, "--to", "mcap", "--out", out, "--data", data,
                 cwd=tmp_path)
    )  # fmt: skip
    assert msg == f"{out} exists already; choose another --out or remove it"
    assert out.read_bytes() == b"mine"


def test_a_full_disk_removes_the_partial_file(tmp_path, data):
    """A real ENOSPC: the export goes to a 64 kB tmpfs mounted in a private mount namespace."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    rng = random.Random(0)
    run = make_run(
        config.runs_dir(data), TIMES_MS * 4, [[rng.randbytes(16 << 10)] for _ in range(40)]
    )  # 640 kB that do not compress
    small = tmp_path / "small"
    small.mkdir()
    cmd = " ".join([*CLI, "export", run.name, "--to", "mcap", "--data", str(data)])
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {small} || exit 77\n"
        f"{cmd} --out {small}/x.mcap; rc=$?\nls -A {small} >&2\nexit $rc\n"
    )
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    if proc.returncode == 77:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    msg = refused(proc)  # `ls -A` printed nothing: no partial file left
    assert msg == f"disk full while writing {small}/x.mcap; the partial file was removed"


def test_import_needs_a_file_it_knows(tmp_path, data):
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")
    msg = refused(recorder("import", odd, "--data", data, cwd=tmp_path))
    assert "expected an .mcap file or an EXDF run" in msg
    msg = refused(recorder("import", tmp_path / "missing.mcap", "--data", data, cwd=tmp_path))
    assert "missing.mcap" in msg and "does not exist" in msg


def test_export_then_import_gives_a_run_that_lists(tmp_path, data, two_streams):
    out = tmp_path / "run.mcap"
    assert recorder("export", two_streams.name, "--to", "mcap", "--out", out, "--data", data,
                    cwd=tmp_path).returncode == 0  # fmt: skip
    proc = recorder("import", out, "--name", "back", "--data", data, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    new_id = proc.stdout.strip()
    assert new_id != two_streams.name and (config.runs_dir(data) / new_id).is_dir()
    listed = json.loads(recorder("ls", "--json", "--data", data, cwd=tmp_path).stdout)
    row = next(r for r in listed if r["run_id"] == new_id)  # indexed in the catalog
    assert row["name"] == "back" and row["messages"] == 10


def test_an_exdf_folder_or_file_imports_as_a_run(tmp_path, data):
    """`recorder import` tells an EXDF run (a folder of .h5 files, or one of them) from MCAP."""
    from tests.web.webhelp import recorded_run

    run_id = recorded_run(data, "karabo", 5)
    folder = tmp_path / "exdf-run"
    assert recorder("export", run_id, "--to", "exdf", "--out", folder, "--data", data,
                    cwd=tmp_path).returncode == 0  # fmt: skip
    (h5,) = folder.glob("*.h5")
    ids = []
    for source in (folder, h5):
        proc = recorder("import", source, "--data", data, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        ids.append(proc.stdout.strip())
    listed = {r["run_id"]: r for r in json.loads(recorder("ls", "--json", "--data", data,
                                                          cwd=tmp_path).stdout)}  # fmt: skip
    for new_id in ids:
        assert listed[new_id]["messages"] == 5 and listed[new_id]["protocols"] == ["karabo"]


def test_streams_the_target_cannot_hold_are_skipped_and_named(tmp_path, data):
    """Without --stream, a stream the target cannot hold is left out, with why, on stderr."""
    from recorder.recording.recording import Recording, SourceSpec
    from recorder.simulators import make_simulator
    from tests.helpers import wait_for
    from tests.recordhelp import running

    cam = make_simulator("adzmq", "tcp://127.0.0.1:* PUB", rate=200)
    noise = make_simulator("raw", "tcp://127.0.0.1:*", rate=200)
    specs = [
        SourceSpec(endpoint=cam.bind(), protocol="adzmq", stream="cam"),
        SourceSpec(endpoint=noise.bind(), protocol="raw", stream="noise"),
    ]
    with running(cam), running(noise):
        rec = Recording(config.runs_dir(data), specs, flush_interval=0.05)
        rec.start()
        try:
            wait_for(lambda: all(s.counters.received >= 5 for s in rec.streams), 20, "messages")
        finally:
            assert rec.finish() == "complete"
    proc = recorder("export", rec.run_id, "--to", "hdf5", "--data", data, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ": hdf5, 1 stream (cam), " in proc.stdout
    (skipped,) = proc.stderr.strip().splitlines()
    assert skipped.startswith("skipped stream noise: ") and len(skipped) > 25, skipped
