"""`migrate_run` rewrites a golden run of every format in the current one without losing a byte,
keeps what the run was (identity, times, annotations, stream settings, drops), and leaves the
run untouched when anything fails or when it must not be migrated."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr

from recorder.errors import Conflict, StoreError, UsageError
from recorder.store import annotate, layout
from recorder.store.migrate import WORK_DIR, backup_path, is_current, migrate_run
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter
from tests.golden.goldens import FOLDERS, copy_into, digests, golden_run, tree_digest

pytestmark = pytest.mark.timeout(120)

IDENTITY = ("run_id", "name", "status", "error", "started_ns", "ended_ns", "host", "pid", "meta")
STREAM_SETTINGS = ("protocol", "endpoint", "socket_type", "role", "options")


def migrate(path: Path, **kwargs) -> Path:
    """migrate_run, forced when the golden run is in the current format already (format 1
    until format 2 lands): the rewrite and its checks are the same."""
    with RunReader(path) as run:
        force = is_current(run.attrs)
    return migrate_run(path, force=force, **kwargs)


@pytest.fixture(params=FOLDERS)
def golden(request) -> str:
    return request.param


def _columns(reader: RunReader) -> dict[str, dict[str, np.ndarray]]:
    return {name: {c: s.column(c) for c in s.column_names()} for name, s in reader.streams.items()}


def test_migrated_run_has_every_message_byte_for_byte_and_what_the_run_was(golden, tmp_path):
    path = copy_into(golden, tmp_path / "data")
    _, want = golden_run(golden)
    with RunReader(path) as old:
        before = old.summary()
        old_streams = {n: dict(s.attrs) for n, s in old.streams.items()}
        old_rejects = {n: s.rejects() for n, s in old.streams.items()}
        old_columns = _columns(old)
    assert migrate(path) == path
    with RunReader(path) as new:
        assert new.attrs["format_version"] == layout.FORMAT_VERSION
        assert digests(new.messages()) == want["messages"]  # replayed through the reader
        after = new.summary()
        for key in (*IDENTITY, "tags", "notes", "gaps", "drops", "rejects", "messages", "bytes"):
            assert after[key] == before[key], key
        assert (
            new.annotations() == RunReader(backup_path(path, want["format_version"])).annotations()
        )
        assert sorted(new.streams) == sorted(old_streams)
        for name, s in new.streams.items():
            for key in STREAM_SETTINGS:
                assert s.attrs.get(key) == old_streams[name].get(key), (name, key)
            for key in ("drops", "gaps", "messages", "frames", "bytes", "rejects"):
                assert s.stats.get(key) == old_streams[name]["stats"].get(key), (name, key)
            assert s.rejects() == old_rejects[name]  # rejected with the same reason
            for column, values in old_columns[name].items():  # no column lost
                assert column in s.column_names(), (name, column)
                if column in layout.MESSAGE_COLUMNS and column not in ("seq", "source_ns"):
                    assert np.array_equal(s.column(column), values), (name, column)
    if "reqrep" in want["streams"]:  # recorded beside the messages, not decoded from them
        with RunReader(path) as new:
            s = new.stream("reqrep")
            for column in ("request_ns", "latency_ns"):
                assert np.array_equal(s.column(column), old_columns["reqrep"][column])


def test_the_old_run_is_kept_as_a_backup_unless_asked_not_to(golden, tmp_path):
    path = copy_into(golden, tmp_path / "data")
    _, want = golden_run(golden)
    before = tree_digest(path)
    migrate(path)
    kept = backup_path(path, want["format_version"])
    assert kept.parent == path.parent / WORK_DIR
    assert tree_digest(kept) == before  # the old run, untouched
    assert sorted(p.name for p in kept.parent.iterdir()) == [kept.name]  # nothing else left
    assert [p.name for p in path.parent.iterdir() if (p / "zarr.json").is_file()] == [path.name]

    other = copy_into(golden, tmp_path / "other")
    migrate(other, backup=False)
    assert not backup_path(other, want["format_version"]).exists()
    with RunReader(other) as run:
        assert digests(run.messages()) == want["messages"]


def test_a_run_of_the_current_format_is_refused_unless_forced(tmp_path):
    with RunWriter(tmp_path / "runs", name="now") as w:
        w.add_stream("main", protocol="raw", endpoint="tcp://127.0.0.1:5", socket_type="SUB",
                     role="connect").append(1, [b"x"])  # fmt: skip
    before = tree_digest(w.path)
    with pytest.raises(UsageError, match="nothing to migrate"):
        migrate_run(w.path)
    assert tree_digest(w.path) == before
    migrate_run(w.path, force=True)
    with RunReader(w.path) as run:
        assert [bytes(f) for m in run.messages() for f in m.frames] == [b"x"]


def test_a_run_being_recorded_or_left_recording_is_refused(tmp_path):
    w = RunWriter(tmp_path / "runs", name="live")
    w.add_stream("main", protocol="raw", endpoint="tcp://127.0.0.1:5", socket_type="SUB",
                 role="connect").append(1, [b"x"])  # fmt: skip
    w.flush()
    try:
        with pytest.raises(Conflict, match="being recorded by pid"):
            migrate_run(w.path, force=True)
    finally:
        w.close()
    root = zarr.open_group(w.path, mode="r+", zarr_format=3)
    root.attrs.update({"status": layout.STATUS_RECORDING, "pid": 2**22 + 17})  # no such pid
    with pytest.raises(UsageError, match="recorder recover"):
        migrate_run(w.path, force=True)
    assert not (w.path.parent / WORK_DIR).exists()


def test_an_existing_backup_is_never_overwritten(tmp_path):
    path = copy_into("format1", tmp_path / "data")
    kept = backup_path(path, 1)
    kept.mkdir(parents=True)
    (kept / "precious").write_text("x")
    before = tree_digest(path)
    with pytest.raises(UsageError, match="exists already"):
        migrate(path)
    assert tree_digest(path) == before and (kept / "precious").read_text() == "x"


def _assert_left_as_it_was(path: Path, before: dict) -> None:
    assert tree_digest(path) == before
    work = path.parent / WORK_DIR
    assert not work.exists() or not any(work.iterdir()), list(work.iterdir())


def test_a_corrupt_chunk_half_way_fails_and_leaves_the_run_as_it_was(tmp_path):
    path = copy_into("format1", tmp_path / "data")
    chunk = path / "streams" / "reqrep" / "heap" / "c" / "0"  # the last stream copied
    assert chunk.is_file()
    with open(chunk, "r+b") as f:
        f.truncate(100)
    before = tree_digest(path)
    with pytest.raises(StoreError, match=r"cannot migrate run .*left as it was"):
        migrate(path)
    _assert_left_as_it_was(path, before)


def test_gaps_that_do_not_come_out_the_same_fail_the_migration(tmp_path):
    path = copy_into("format1", tmp_path / "data")
    group = zarr.open_group(path / "streams" / "adzmq", mode="r+", zarr_format=3)
    attrs = dict(group.attrs)
    attrs["stats"] = {**attrs["stats"], "gaps": 7}
    group.attrs.put(attrs)
    before = tree_digest(path)
    with pytest.raises(StoreError, match="adzmq: 7 gaps in the old run, 1 in the new"):
        migrate(path)
    _assert_left_as_it_was(path, before)


def test_an_unwritable_work_folder_fails_before_anything_changes(tmp_path):
    path = copy_into("format1", tmp_path / "data")
    (path.parent / WORK_DIR).write_text("in the way")  # a file where the folder goes
    before = tree_digest(path)
    with pytest.raises(StoreError, match="cannot migrate run"):
        migrate(path)
    assert tree_digest(path) == before


def test_a_run_folder_that_is_a_symlink_is_migrated_where_it_lives(tmp_path):
    real = copy_into("format1", tmp_path / "elsewhere")
    runs = tmp_path / "data" / "runs"
    runs.mkdir(parents=True)
    link = runs / real.name
    os.symlink(real, link)
    migrate(link)
    assert link.is_symlink() and link.resolve() == real
    assert backup_path(link, 1) == real.parent / WORK_DIR / f"{real.name}.format1-backup"
    assert backup_path(link, 1).is_dir()
    with RunReader(link) as run:
        assert digests(run.messages()) == golden_run("format1")[1]["messages"]
    shutil.rmtree(tmp_path / "elsewhere")


def test_tags_added_while_the_run_is_migrated_are_all_kept(tmp_path):
    """Users may tag the run from the web app meanwhile: the swap carries what changed over,
    under the annotations' lock, and edits after it land on the new run."""
    path = copy_into("format1", tmp_path / "data")
    added: list[str] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def tagger():
        try:
            while not done.is_set() or len(added) < 3:
                tag = f"t{len(added)}"
                annotate.change_tags(path, add=[tag])
                added.append(tag)
                done.wait(0.005)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=tagger, daemon=True)
    thread.start()
    try:
        migrate(path)
    finally:
        done.set()
        thread.join(30)
    assert not errors and not thread.is_alive()
    with RunReader(path) as run:
        assert set(added) <= set(run.annotations()["tags"])
        assert run.attrs["format_version"] == layout.FORMAT_VERSION
