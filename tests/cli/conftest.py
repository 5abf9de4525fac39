"""Fixtures of the CLI tests: a small real file system to fill up or make read-only."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs (the suite runs as root in its container); skipped where mounting is
    not permitted."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder) -> None:
    """Use up every byte of the file system holding `folder`."""
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    # the last partial block: byte by byte until nothing more fits
    with open(folder / "filler2", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass


def remount_read_only(mnt) -> None:
    res = subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True, check=False)
    if res.returncode != 0:
        pytest.skip(f"cannot remount read-only: {res.stderr.decode().strip()}")
