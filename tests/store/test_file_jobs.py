"""file_jobs: a flush's per-array work side by side, every job run, the first
failure raised, and jobs that hand out jobs never waiting for the pool they run in."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from recorder.protocols.base import BulkFrame, Decoded
from recorder.store import file_jobs
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter


def test_jobs_run_side_by_side():
    # every job waits until all of them have started: only concurrent jobs get past it
    parties = file_jobs.WORKERS
    barrier = threading.Barrier(parties, timeout=10)
    names: list[str] = []

    def job() -> None:
        barrier.wait()
        names.append(threading.current_thread().name)

    file_jobs.run_all([job] * parties)
    assert len(names) == parties
    assert len(set(names)) == parties
    assert all(n.startswith("file-jobs") for n in names)


def test_every_job_runs_and_the_first_failure_is_raised():
    done: list[int] = []

    def ok(i: int):
        return lambda: done.append(i)

    def fail(message: str):
        def job() -> None:
            raise OSError(message)

        return job

    jobs = [ok(0), fail("first"), ok(2), fail("second"), ok(4)]
    with pytest.raises(OSError, match="first"):
        file_jobs.run_all(jobs)
    assert sorted(done) == [0, 2, 4]


def test_a_single_job_fails_as_it_would_alone():
    done: list[int] = []
    with pytest.raises(ZeroDivisionError):
        file_jobs.run_all([lambda: done.append(1 // 0)])
    assert done == []


def test_jobs_that_hand_out_jobs_do_not_wait_for_the_pool():
    # more outer jobs than workers, each running jobs of its own: a pool waiting for itself
    # would hang here (the suite's timeout would end it)
    ran: list[tuple[int, int]] = []
    lock = threading.Lock()

    def inner(i: int, j: int):
        def job() -> None:
            with lock:
                ran.append((i, j))

        return job

    def outer(i: int):
        return lambda: file_jobs.run_all([inner(i, j) for j in range(3)])

    file_jobs.run_all([outer(i) for i in range(2 * file_jobs.WORKERS)])
    assert sorted(ran) == [(i, j) for i in range(2 * file_jobs.WORKERS) for j in range(3)]


def test_a_stream_flushed_side_by_side_reads_back_whole(tmp_path: Path):
    """Many arrays (decoded columns of three kinds, a typed family, the heap, the frame table)
    flushed a few times through the pool: every frame and value reads back."""
    sent, images = [], []
    with RunWriter(tmp_path, name="many arrays") as run:
        s = run.add_stream(
            "s", protocol="test", endpoint="tcp://h:1", socket_type="SUB", role="connect"
        )
        for i in range(300):
            img = np.full((4, 4), i, dtype=np.uint16)
            frames = [b"head %d" % i, img.tobytes()]
            view = np.frombuffer(frames[1], np.uint16).reshape(4, 4)
            columns = {f"k{i % 5}": i, "name": f"n{i}", "x": i / 3}
            s.append(
                10 + i, frames, Decoded(seq=i, columns=columns, bulk=[BulkFrame(1, "image", view)])
            )
            sent.append(frames)
            images.append(img)
            if i % 100 == 99:
                s.flush()
    with RunReader(run.path) as r:
        st = r.stream("s")
        assert st.n_messages == 300
        assert [[bytes(f) for f in m.frames] for m in st.messages()] == sent
        assert list(st.column("seq")) == list(range(300))
        assert list(st.column("name")) == [f"n{i}" for i in range(300)]
        np.testing.assert_allclose(st.column("x"), [i / 3 for i in range(300)])
        assert [int(v) for v in st.column("k0")[::5]] == list(range(0, 300, 5))
        (seg,) = st.array_segments()
        assert seg.rows == 300
        np.testing.assert_array_equal(st.read_segment(0, 0, 300), np.stack(images))
