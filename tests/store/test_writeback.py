"""start_writeback hands a written file to the kernel's writeback, and is harmless where it
cannot (the data is in the page cache either way)."""

from __future__ import annotations

import os
import sys

import pytest

from recorder.store.writeback import start_writeback


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
    assert path.read_bytes() == data


@pytest.mark.timeout(30)
def test_a_bad_descriptor_is_refused_not_raised():
    assert start_writeback(-1) is False
