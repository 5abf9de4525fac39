"""Resolving RUN to a run folder: by unique prefix for the shell, by exact id for remote callers."""

from __future__ import annotations

import pytest

from recorder.errors import RunNotFound, UsageError
from recorder.store.find import resolve_run
from recorder.store.run_writer import RunWriter

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def runs_dir(tmp_path):
    d = tmp_path / "runs"
    for run_id in ("20260101-aaa", "20260101-abc", "20260202-xyz"):
        RunWriter(d, run_id=run_id).close()
    (d / "20260303-notarun").mkdir()  # a folder without zarr.json is no run
    return d


@pytest.mark.parametrize("prefix", [True, False])
def test_an_exact_id_is_found_either_way(runs_dir, prefix):
    assert resolve_run(runs_dir, "20260101-abc", prefix=prefix) == runs_dir / "20260101-abc"


def test_a_unique_prefix_is_enough_only_with_prefix(runs_dir):
    assert resolve_run(runs_dir, "20260202") == runs_dir / "20260202-xyz"
    assert resolve_run(runs_dir, "20260101-ab") == runs_dir / "20260101-abc"
    with pytest.raises(RunNotFound, match="no run '20260202'"):
        resolve_run(runs_dir, "20260202", prefix=False)


def test_an_ambiguous_prefix_names_the_candidates(runs_dir):
    with pytest.raises(UsageError, match="ambiguous: 20260101-aaa, 20260101-abc"):
        resolve_run(runs_dir, "20260101")
    with pytest.raises(RunNotFound):
        resolve_run(runs_dir, "20260101", prefix=False)


@pytest.mark.parametrize("prefix", [True, False])
@pytest.mark.parametrize("run", ["nope", "20260303-notarun", "..", "../runs", "a/b", "", "-x"])
def test_missing_runs_and_bad_names_are_not_found(runs_dir, run, prefix):
    with pytest.raises(RunNotFound, match="no run"):
        resolve_run(runs_dir, run, prefix=prefix)


def test_a_symlinked_run_is_followed_only_with_prefix(runs_dir, tmp_path):
    RunWriter(tmp_path / "elsewhere", run_id="20260404-far").close()
    (runs_dir / "20260404-link").symlink_to(tmp_path / "elsewhere" / "20260404-far")
    assert resolve_run(runs_dir, "20260404-link") == runs_dir / "20260404-link"
    assert resolve_run(runs_dir, "20260404") == runs_dir / "20260404-link"
    with pytest.raises(RunNotFound):
        resolve_run(runs_dir, "20260404-link", prefix=False)
