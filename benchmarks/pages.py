"""Server time of every page and list endpoint with 300 and with 10,000 runs in the catalog.

The web app reads the catalog for lists and one run's store for a run's own page, so a page's
time should not grow with the number of runs (issue 15: "flat in catalog size"). The catalog
rows are made directly (runs with a stream, a tag on every third, a note on every tenth, 300
finished jobs); one real run is on disk for the pages that open a run. Each URL is asked through
the Flask test client (no network, no gunicorn: the app's own time), one warm-up and then
ROUNDS times; the table gives medians in ms and the ratio 10,000 / 300.

    python benchmarks/pages.py [--rounds 7] [--sizes 300,10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import median  # noqa: E402
from recorder import config  # noqa: E402
from recorder.db.jobs import DESIRED_STOPPED, KIND_RECORD  # noqa: E402
from recorder.db.tables import jobs, notes, runs, streams, tags  # noqa: E402
from recorder.store.run_writer import RunWriter  # noqa: E402
from recorder.web import create_app  # noqa: E402

API = "/api/v1"


def fill(app, data: Path, n: int) -> str:
    """`n` runs in the catalog (one of them real, on disk); returns the real run's id."""
    st = app.extensions["recorder"]
    with RunWriter(config.runs_dir(data), name="the real one") as w:
        s = w.add_stream("main", protocol="raw", endpoint="tcp://127.0.0.1:5999",
                         socket_type="PULL", role="connect")  # fmt: skip
        for i in range(100):
            s.append(w.started_ns + i * 1000, [b"x" * 100])
    st.catalog.index_path(w.path)
    t0 = time.time_ns() - n * 60 * 10**9
    run_rows, stream_rows, tag_rows, note_rows = [], [], [], []
    for i in range(n - 1):
        rid = f"20250101-000000-{i:08x}"
        start = t0 + i * 60 * 10**9
        run_rows.append({"run_id": rid, "name": f"run {i}", "path": str(data / "runs" / rid),
                         "status": "complete", "error": None, "format_version": 2,
                         "host": "bench", "pid": 1, "started_ns": start,
                         "ended_ns": start + 30 * 10**9, "messages": 1000 + i,
                         "bytes": 10**6 + i, "gaps": 0, "drops": 0, "rejects": 0,
                         "protocols": "openephys"})  # fmt: skip
        stream_rows.append({"run_id": rid, "name": "main", "protocol": "openephys",
                            "endpoint": "tcp://127.0.0.1:5556", "socket_type": "SUB",
                            "role": "connect", "messages": 1000 + i, "bytes": 10**6 + i,
                            "gaps": 0, "drops": 0, "rejects": 0})  # fmt: skip
        if i % 3 == 0:
            tag_rows.append({"run_id": rid, "tag": f"tag-{i % 30}"})
        if i % 10 == 0:
            note_rows.append({"run_id": rid, "created_ns": start, "text": f"note {i}"})
    job_rows = [{"id": f"rec-{i:012x}", "kind": KIND_RECORD, "host": None, "params": {
                 "name": f"job {i}", "sources": []}, "desired": DESIRED_STOPPED,
                 "state": "finished", "run_id": None, "created_ns": t0 + i,
                 "started_ns": t0 + i, "ended_ns": t0 + i + 1, "updated_ns": t0 + i + 1}
                for i in range(300)]  # fmt: skip
    with st.catalog.engine.begin() as conn:
        for table, rows in ((runs, run_rows), (streams, stream_rows), (tags, tag_rows),
                            (notes, note_rows)):  # fmt: skip
            for k in range(0, len(rows), 2000):
                conn.execute(sa.insert(table), rows[k : k + 2000])
    with st.control.engine.begin() as conn:
        conn.execute(sa.insert(jobs), job_rows)
    return w.run_id


def urls(run_id: str) -> dict[str, str]:
    return {
        "page /": "/",
        "page /ui/live": "/ui/live",
        "page /runs": "/runs",
        "page /runs (last page)": "/runs?page=9999&size=50",
        "page /runs?q=": "/runs?q=note+42",
        "page /runs?tag=": "/runs?tag=tag-3",
        "page /runs?since=": "/runs?since=2000-01-01T00:00&tz=60",
        "page /runs/RUN": f"/runs/{run_id}",
        "page /sessions": "/sessions",
        "page /sources": "/sources",
        "page /tokens": "/tokens",
        "page /api/docs": "/api/docs",
        "GET /runs": f"{API}/runs",
        "GET /runs?q=": f"{API}/runs?q=note+42",
        "GET /runs?sort=-bytes": f"{API}/runs?sort=-bytes",
        "GET /runs/PREFIX": f"{API}/runs/{run_id[:-2]}",
        "GET /recordings": f"{API}/recordings",
        "GET /replays": f"{API}/replays",
        "GET /sessions": f"{API}/sessions",
        "GET /status": f"{API}/status",
        "GET /events (one look)": f"{API}/events?timeout=0",
    }


def measure(n: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        data = Path(tmp)
        app = create_app(data)
        secret, _ = app.extensions["recorder"].control.create_token("bench")
        run_id = fill(app, data, n)
        c = app.test_client()
        c.post("/login", data={"token": secret})
        out = {}
        for name, url in urls(run_id).items():
            r = c.get(url)
            assert r.status_code == 200, (url, r.status_code, r.data[:300])
            times = []
            for _ in range(rounds):
                t = time.perf_counter()
                c.get(url).close()
                times.append((time.perf_counter() - t) * 1000)
            out[name] = median(times)
        app.extensions["recorder"].catalog.close()
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--sizes", default="300,10000")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {n: measure(n, args.rounds) for n in sizes}
    head = "".join(f"{n:>10,d}" for n in sizes)
    print(f"{'ms (median of ' + str(args.rounds) + ')':32s}{head}   ratio")
    for name in results[sizes[0]]:
        cells = "".join(f"{results[n][name]:10.1f}" for n in sizes)
        ratio = results[sizes[-1]][name] / results[sizes[0]][name]
        print(f"{name:32s}{cells}   {ratio:5.2f}")


if __name__ == "__main__":
    main()
