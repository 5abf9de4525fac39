"""start_writeback hands a written file to the kernel's writeback (on a thread of its own, so
the caller may close and rename its file at once), and is harmless where it cannot (the data
is in the page cache either way)."""

from __future__ import annotations

import os
import sys

import pytest

from recorder.store import writeback
from recorder.store.writeback import start_writeback


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.timeout(30)
def test_a_written_file_is_handed_to_writeback_and_reads_back(tmp_path):
    path = tmp_path / "chunk"
    data = os.urandom(1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, data)
        assert start_writeback(fd) is sys.platform.startswith("linux")
    finally:
        os.close(fd)
    writeback.drain()
    assert path.read_bytes() == data


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/fd")
@pytest.mark.timeout(30)
def test_files_closed_and_renamed_at_once_are_written_back_and_leave_no_descriptor(tmp_path):
    writeback.drain()
    before = _open_fds()
    for i in range(50):
        tmp, final = tmp_path / f"{i}.partial", tmp_path / f"{i}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT)
        os.write(fd, bytes([i]) * 65536)
        assert start_writeback(fd)
        os.close(fd)
        os.replace(tmp, final)
    writeback.drain()
    assert _open_fds() == before  # the thread closed every duplicate it was given
    assert all((tmp_path / f"{i}").read_bytes() == bytes([i]) * 65536 for i in range(50))


@pytest.mark.timeout(30)
def test_a_bad_descriptor_is_refused_not_raised():
    assert start_writeback(-1) is False


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
@pytest.mark.timeout(30)
def test_a_forked_child_hands_files_over_with_a_thread_of_its_own(tmp_path):
    fd = os.open(tmp_path / "parent", os.O_WRONLY | os.O_CREAT)
    os.write(fd, b"p" * 4096)
    start_writeback(fd)  # the parent's thread runs
    os.close(fd)
    pid = os.fork()
    if pid == 0:  # the child: must not wait on the parent's queue or thread
        ok = False
        try:
            child = os.open(tmp_path / "child", os.O_WRONLY | os.O_CREAT)
            os.write(child, b"c" * 4096)
            ok = start_writeback(child) is sys.platform.startswith("linux")
            os.close(child)
            writeback.drain()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (tmp_path / "child").read_bytes() == b"c" * 4096
