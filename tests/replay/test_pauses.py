"""Replay knows a recording's deliberate pauses: by default the timing is as recorded, pauses
included; with --skip-pauses each pause is cut out of the replay clock, so the first message
after it follows the last one before it as the gaps around the pause say. Runs are written by
RunWriter with their pauses (set_pauses) and replayed on loopback; timings are checked on the
pacer's schedule and the timeline's clock, never on the wall clock."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import zmq

from recorder.contracts import Pause
from recorder.errors import UsageError
from recorder.manager.planning import plan_replay
from recorder.replay import Replayer
from recorder.replay.pacer import Pacer
from recorder.replay.timeline import Timeline
from recorder.store.run_writer import RunWriter
from tests.helpers import free_port, local, run_cli
from tests.replayhelp import client, receive, replaying

MS = 1_000_000
TIMES_MS = [0, 100, 200, 300, 2400, 2500]  # paused from 350 ms to 2350 ms: 2 s
PAUSE = (350, 2350)


def paused_run(
    runs: Path, times_ms: list[int], pauses: list[tuple[int, int | None]], port: int = 5999
) -> Path:
    """A run of one stream `main` (recorded by a connecting PULL, replayed by a binding PUSH)
    whose message i says b"<i>" and was received times_ms[i] after the start, with these
    pauses (ms after the start; None: still paused when the run ended)."""
    w = RunWriter(runs, name="paused")
    s = w.add_stream(
        "main", protocol="raw", endpoint=local(port), socket_type="PULL", role="connect"
    )
    for i, t in enumerate(times_ms):
        s.append(w.started_ns + t * MS, [b"%d" % i])
    w.set_pauses(
        [
            Pause(
                start_ns=w.started_ns + a * MS,
                end_ns=None if b is None else w.started_ns + b * MS,
                messages=7,
            )
            for a, b in pauses
        ]
    )
    w.close()
    return w.path


def observed(pacer: Pacer) -> list[float]:
    """The due times a replay's pacer hands out, in the order it is asked."""
    schedule: list[float] = []
    due = pacer.due

    def noted(recorded_ns: int) -> float:
        schedule.append(due(recorded_ns))
        return schedule[-1]

    pacer.due = noted  # type: ignore[method-assign]
    return schedule


def test_the_clock_with_and_without_skipping(tmp_path: Path) -> None:
    path = paused_run(tmp_path, TIMES_MS, [PAUSE])
    kept, cut = Timeline([path]), Timeline([path], skip_pauses=True)
    try:
        for timeline in (kept, cut):
            assert timeline.pauses == 1
        as_recorded = [(m.recv_ns - kept.started_ns) // MS for m in kept.messages(["main"])]
        skipped = [(m.recv_ns - cut.started_ns) // MS for m in cut.messages(["main"])]
        assert as_recorded == TIMES_MS
        assert skipped == [0, 100, 200, 300, 400, 500]  # 50 ms before the pause, 50 after
        assert kept.duration_s(["main"]) == pytest.approx(2.5)
        assert cut.duration_s(["main"]) == pytest.approx(0.5)
        # --start / seek are on the shortened clock: 0.35 s is where the pause was cut
        assert [m.index for m in cut.messages(["main"], start=0.35)] == [4, 5]
        assert [m.index for m in cut.messages(["main"], start=0.31)] == [4, 5]
        assert [m.index for m in cut.messages(["main"], start=0.45)] == [5]
        assert [m.index for m in cut.messages(["main"], stop=0.45)] == [0, 1, 2, 3, 4]
        assert [m.index for m in kept.messages(["main"], start=0.45)] == [4, 5]
    finally:
        kept.close()
        cut.close()


def test_the_pacer_schedule_differs_by_the_pause(tmp_path: Path) -> None:
    """The due times the pacer gives the messages: the last one is due 2 s (the pause) later
    without --skip-pauses than with it; at --speed 2, 1 s later."""
    path = paused_run(tmp_path, TIMES_MS, [PAUSE])
    for speed, difference in ((1.0, 2.0), (2.0, 1.0)):
        spans = {}
        for skip in (False, True):
            timeline = Timeline([path], skip_pauses=skip)
            pacer = Pacer(speed=speed)
            due = [pacer.due(m.recv_ns) for m in timeline.messages(["main"])]
            timeline.close()
            spans[skip] = due[-1] - due[0]
            gaps = [b - a for a, b in itertools.pairwise(due)]
            assert gaps[3] == pytest.approx((2.1 if not skip else 0.1) / speed, abs=1e-6)
        assert spans[False] - spans[True] == pytest.approx(difference, abs=1e-6)


@pytest.mark.timeout(60)
def test_a_replay_on_loopback_sends_everything_on_the_shorter_clock(tmp_path: Path, ctx) -> None:
    path = paused_run(tmp_path, TIMES_MS, [PAUSE])
    for skip in (False, True):
        endpoint = local(free_port())
        with replaying(path, endpoints={"main": endpoint}, paused=True, skip_pauses=skip) as rp:
            schedule = observed(rp.pacer)
            pull = client(ctx, zmq.PULL, endpoint)
            status = rp.status()
            assert (status["pauses"], status["skip_pauses"]) == (1, skip)
            assert status["duration_s"] == pytest.approx(0.5 if skip else 2.5)
            rp.set_speed(20.0)
            rp.resume()
            got = receive(pull, len(TIMES_MS))
            assert got == [[b"%d" % i] for i in range(len(TIMES_MS))]
            assert rp.wait(10)
            assert rp.status()["position_s"] == pytest.approx(0.5 if skip else 2.5)
        # due times asked for while waiting repeat a message's; the last is the last message's
        assert schedule[-1] - schedule[0] == pytest.approx((0.5 if skip else 2.5) / 20, abs=1e-6)


def test_pauses_that_are_not_cut(tmp_path: Path) -> None:
    """A pause still open when the run ended cuts nothing (nothing follows it); a pause in
    which a message was stored (another stream, another run recording on) is kept."""
    path = paused_run(tmp_path, [0, 100, 200, 1200, 1300], [(150, None)])
    cut = Timeline([path], skip_pauses=True)
    assert cut.pauses == 1
    assert [(m.recv_ns - cut.started_ns) // MS for m in cut.messages(["main"])] == [
        0, 100, 200, 1200, 1300,
    ]  # fmt: skip
    cut.close()
    path = paused_run(tmp_path, [0, 100, 600, 1200, 1300], [(150, 1150), (1250, 1290)])
    cut = Timeline([path], skip_pauses=True)
    assert cut.pauses == 2
    times = [(m.recv_ns - cut.started_ns) // MS for m in cut.messages(["main"])]
    assert times == [0, 100, 600, 1200, 1260]  # the first pause kept, the second cut
    cut.close()


@pytest.mark.timeout(120)
def test_skip_pauses_is_a_request_field_and_an_option(tmp_path: Path) -> None:
    data = tmp_path / "data"
    runs = data / "runs"
    runs.mkdir(parents=True)
    path = paused_run(runs, TIMES_MS, [PAUSE], port=free_port())
    params = plan_replay(runs, run_id=path.name, skip_pauses=True)
    assert params["skip_pauses"] is True
    assert "skip_pauses" not in plan_replay(runs, run_id=path.name)  # older jobs lack it too
    with pytest.raises(UsageError, match="skip_pauses replays finished runs"):
        plan_replay(runs, run_id=path.name, skip_pauses=True, follow=True)
    with pytest.raises(UsageError, match="--skip-pauses replays finished runs"):
        Replayer(path, skip_pauses=True, follow=True)
    proc = run_cli(
        "replay", path.name, "--data", data, "-q", "--max-speed", "--skip-pauses",
        "--endpoint", local(free_port()), "--socket", "PUB",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "1 recorded pause(s): skipped" in proc.stderr
    proc = run_cli(
        "replay", path.name, "--data", data, "-q", "--max-speed",
        "--endpoint", local(free_port()), "--socket", "PUB",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "1 recorded pause(s): kept as recorded" in proc.stderr
