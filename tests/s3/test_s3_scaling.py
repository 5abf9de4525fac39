"""docs/scaling.md's example, run against moto: the mean image of each run in an object
store, computed by a dask.distributed cluster that reads only the image chunks of each run."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pytest

from recorder import config
from recorder.protocols import codec_for
from recorder.protocols.base import decode_or_reject
from recorder.simulators import make_simulator
from recorder.store.run_writer import RunWriter

RUNS, IMAGES = 12, 4  # docs/scaling.md uses 50: the same code, kept short here


def _make_run(runs_dir, r: int) -> tuple[str, np.ndarray]:
    """A small ADZMQ run (written through the spool, so uploaded as a recording is) and the
    mean image it must give."""
    codec = codec_for("adzmq")
    sim = make_simulator("adzmq", height=8, width=12, seed=r)
    with RunWriter(runs_dir, name=f"scan {r}") as run:
        s = run.add_stream(
            "cam", protocol="adzmq", endpoint="tcp://h:1", socket_type="SUB", role="connect"
        )
        now = time.time_ns()
        s.append_batch(
            [decode_or_reject(codec, now + i, sim.message(i), None) for i in range(IMAGES)]
        )
    return run.run_id, np.mean([sim.image(i) for i in range(IMAGES)], axis=0)


def _docs_example(data_url: str) -> dict[str, np.ndarray]:
    # --- docs/scaling.md: the example, as printed there ---
    from dask.distributed import Client, LocalCluster

    from recorder import open_run
    from recorder.analysis.run import run_urls

    def mean_image(url: str) -> np.ndarray:
        with open_run(url) as run:  # reads metadata, then only the image chunks
            return run["cam"].images.mean(axis=0).compute(scheduler="sync")

    cluster = LocalCluster(processes=False, n_workers=2, threads_per_worker=2)
    with cluster, Client(cluster) as client:
        urls = run_urls(data_url)
        means = client.gather(client.map(mean_image, urls))
    return {url.rsplit("/", 1)[-1]: m for url, m in zip(urls, means, strict=True)}
    # --- end of the example ---


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_mean_image_per_run_with_dask_distributed(s3, state):
    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        expect = dict(pool.map(partial(_make_run, config.runs_dir(state)), range(RUNS)))
    t1 = time.monotonic()
    got = _docs_example(s3.data_url)
    print(f"made {RUNS} runs in {t1 - t0:.1f} s, their means in {time.monotonic() - t1:.1f} s")
    assert got.keys() == expect.keys()
    for run_id, mean in got.items():
        np.testing.assert_allclose(mean, expect[run_id], err_msg=run_id)


def test_docs_scaling_md_prints_the_example_this_test_runs():
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "scaling.md").read_text()
    source = Path(__file__).read_text()
    start = source.index("    def mean_image")
    end = source.index("    # --- end of the example ---")
    for line in source[start:end].splitlines():
        line = line.strip()
        if line and "data_url" not in line and "return {" not in line and "urls = " not in line:
            assert line in doc, line
