"""`recorder migrate`: the golden format-1 run rewritten in the current format through the real
command, the catalog brought up to date, refusals said on one line, and a failure (a full or
read-only disk) that exits 1 and leaves the run exactly as it was."""

from __future__ import annotations

import json
import os

import pytest

from recorder.store import layout
from recorder.store.migrate import WORK_DIR, backup_path
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter
from tests.cli.conftest import remount_read_only
from tests.golden.goldens import copy_into, digests, golden_run, tree_digest
from tests.helpers import cli_json, run_cli

pytestmark = pytest.mark.timeout(120)

#: Forced while the golden run is in the current format already (format 1 until format 2).
FORCE = ["--force"] if layout.FORMAT_VERSION == 1 else []


def test_migrate_rewrites_the_run_and_updates_the_catalog(tmp_path):
    data = tmp_path / "data"
    path = copy_into("format1", data)  # in the folder, not yet in the catalog
    _, want = golden_run("format1")
    out = run_cli("migrate", path.name[:15], "--data", data, *FORCE)
    assert out.returncode == 0, out.stderr
    kept = backup_path(path, 1)
    assert out.stdout.strip() == (
        f"{path.name}: format 1 -> {layout.FORMAT_VERSION}, every message verified; "
        f"the old run is kept at {kept}"
    )
    [row] = cli_json("ls", "--data", data)  # the catalog has it now
    assert row["run_id"] == path.name and row["messages"] == len(want["messages"])
    assert row["name"] == want["name"] and row["tags"] == want["tags"]
    info = cli_json("info", path.name, "--data", data)
    assert info["format_version"] == layout.FORMAT_VERSION
    with RunReader(path) as run:
        assert digests(run.messages()) == want["messages"]
    with RunReader(kept) as run:
        assert digests(run.messages()) == want["messages"]


def test_migrate_without_backup_deletes_the_old_run(tmp_path):
    data = tmp_path / "data"
    path = copy_into("format1", data)
    out = run_cli("migrate", path.name, "--data", data, "--no-backup", *FORCE)
    assert out.returncode == 0, out.stderr
    assert "kept" not in out.stdout and not backup_path(path, 1).exists()


def test_migrate_leaves_a_run_in_the_current_format_alone(tmp_path):
    data = tmp_path / "data"
    with RunWriter(data / "runs", name="now") as w:
        w.add_stream("main", protocol="raw", endpoint="tcp://127.0.0.1:5", socket_type="SUB",
                     role="connect").append(1, [b"x"])  # fmt: skip
    before = tree_digest(w.path)
    out = run_cli("migrate", w.run_id, "--data", data)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        f"{w.run_id}: format {layout.FORMAT_VERSION} is the current format already: nothing to do"
    )
    assert tree_digest(w.path) == before


def test_migrate_refuses_a_run_being_recorded(tmp_path):
    data = tmp_path / "data"
    w = RunWriter(data / "runs", name="live")  # this process records it
    try:
        out = run_cli("migrate", w.run_id, "--data", data, "--force")
        assert out.returncode == 2
        assert out.stderr.strip() == (
            f"error: run {w.run_id} is being recorded by pid {w._attrs['pid']}: migrate it "
            "once it is finished"
        )
        assert not (data / "runs" / WORK_DIR).exists()
    finally:
        w.close()
    assert run_cli("migrate", "no-such-run", "--data", data).returncode == 2


@pytest.mark.reliability
def test_migrate_on_a_full_disk_fails_half_way_and_leaves_the_run(small_disk):
    """The disk is left with room for about half of the new run: it fills up half way."""
    data = small_disk / "data"
    path = copy_into("format1", data)
    before = tree_digest(path)
    st = os.statvfs(small_disk)
    room = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) // 2
    with open(small_disk / "filler", "wb") as f:
        f.write(bytes(max(0, st.f_bavail * st.f_frsize - room)))
    out = run_cli("migrate", path.name, "--data", data, *FORCE)
    assert out.returncode == 1, (out.stdout, out.stderr)
    [line] = out.stderr.splitlines()
    assert line.startswith(f"error: cannot migrate run {path.name}: ")
    assert "No space left on device" in line and line.endswith("the run is left as it was")
    assert tree_digest(path) == before
    assert sorted(p.name for p in (data / "runs").iterdir()) == [WORK_DIR, path.name]
    assert list((data / "runs" / WORK_DIR).iterdir()) == []
    with RunReader(path) as run:
        assert digests(run.messages()) == golden_run("format1")[1]["messages"]


@pytest.mark.reliability
def test_migrate_on_a_read_only_disk_fails_and_says_why(small_disk):
    data = small_disk / "data"
    path = copy_into("format1", data)
    before = tree_digest(path)
    remount_read_only(small_disk)
    out = run_cli("migrate", path.name, "--data", data, *FORCE)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stderr.strip() == (
        f"error: cannot migrate run {path.name}: Read-only file system: "
        f"{data / 'runs' / WORK_DIR}; the run is left as it was"
    ), out.stderr
    assert tree_digest(path) == before
    assert json.loads(run_cli("info", path.name, "--data", data, "--json").stdout)["run_id"]
