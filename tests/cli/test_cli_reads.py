"""Commands that only read (ls, info, token list) make nothing, need nothing written, and say
what is wrong in one line: a missing folder, a full disk, a read-only folder, a driver error."""

from __future__ import annotations

import os

import pytest

from tests.cli.conftest import fill, remount_read_only
from tests.helpers import cli_json, run_cli

pytestmark = pytest.mark.reliability  # issue 10's reliability suite: pytest -m reliability


@pytest.mark.parametrize("args", [["ls"], ["info", "20260101-000000-abcdef"], ["token", "list"]])
def test_a_missing_data_folder_is_one_error_line_and_stays_missing(tmp_path, args):
    missing = tmp_path / "no" / "such" / "dir"
    out = run_cli(*args, "--data", missing)
    assert out.returncode == 2
    assert out.stderr == f"error: no data folder {missing}\n"
    assert not (tmp_path / "no").exists()


def test_listing_a_fresh_folder_writes_nothing(data_dir):
    out = run_cli("ls", "--data", data_dir)
    assert out.returncode == 0 and "no runs" in out.stderr
    assert run_cli("token", "list", "--data", data_dir).returncode == 0
    assert os.listdir(data_dir) == []


def test_a_driver_error_is_one_line(data_dir):
    (data_dir / "catalog.sqlite").write_bytes(b"not a database " * 1000)
    out = run_cli("token", "list", "--data", data_dir)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "file is not a database" in out.stderr, out.stderr


@pytest.mark.timeout(120)
def test_ls_and_info_work_on_a_full_disk_and_a_read_only_folder(small_disk):
    out = run_cli("demo", "--seconds", "0.3", "--data", small_disk)
    assert out.returncode == 0, out.stderr
    [run_id] = os.listdir(small_disk / "runs")

    def reads_work(why: str) -> None:
        [row] = cli_json("ls", "--data", small_disk)
        assert row["run_id"] == run_id and row["status"] == "complete", why
        assert row["tags"] == ["demo"] and row["messages"] > 0, why
        assert cli_json("info", run_id, "--data", small_disk)["messages"] == row["messages"]
        plain = run_cli("ls", "--data", small_disk)
        assert plain.returncode == 0 and run_id in plain.stdout, (why, plain.stderr)

    fill(small_disk)
    assert os.statvfs(small_disk).f_bavail == 0
    reads_work("full disk")
    remount_read_only(small_disk)
    reads_work("read-only folder")
