"""One run with a stream of every analysed protocol, recorded from the real simulators.

The simulators are pure functions of the message index, so tests compare what the analysis
API gives with what was sent (`Sent`)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import zmq

from recorder.recording.recording import Recording, SourceSpec
from recorder.simulators import (
    AdzmqSimulator,
    KaraboSimulator,
    OpenEphysSimulator,
    PyMultiVideoSimulator,
)
from tests.recordhelp import running

RUN_ID = "20261201-120000-a1b2c3"
OE_COUNT, ADZMQ_COUNT, VIDEO_COUNT, KARABO_COUNT = 30, 6, 5, 5
OE_SIZE = {
    "n_channels": 2,
    "n_samples": 32,
    "ttl_every": 2,
    "spike_every": 3,
    "spike_channels": 2,
    "spike_samples": 20,
}


@dataclass
class Sent:
    """The run's folder and the simulators that fed it (their `message(i)`, `image(i)` ...)."""

    path: Path
    ephys: OpenEphysSimulator
    camera: AdzmqSimulator
    video: PyMultiVideoSimulator
    bridge: KaraboSimulator


def record_demo_run(runs_dir: Path, ctx: zmq.Context, timeout: float = 30.0) -> Sent:
    """Record the four streams at once until each has all its messages; the run is complete."""
    ephys = OpenEphysSimulator(
        "tcp://127.0.0.1:*", rate=0, count=OE_COUNT, ctx=ctx, wait_for_subscriber=True, **OE_SIZE
    )
    camera = AdzmqSimulator(
        "tcp://127.0.0.1:* PUB", rate=0, count=ADZMQ_COUNT, ctx=ctx, wait_for_subscriber=True,
        send_stop=True, height=12, width=20,
    )  # fmt: skip
    video = PyMultiVideoSimulator(
        "tcp://127.0.0.1:*", rate=0, count=VIDEO_COUNT, ctx=ctx, wait_for_subscriber=True,
        height=16, width=24, unique_id="cam7",
    )  # fmt: skip
    bridge = KaraboSimulator("tcp://127.0.0.1:*", rate=None, count=KARABO_COUNT, ctx=ctx)
    specs = [
        SourceSpec(ephys.bind(), protocol="openephys", stream="ephys"),
        SourceSpec(camera.bind(), protocol="adzmq", subscribe=[b"{", b"STOP"], stream="camera"),
        SourceSpec(video.bind(), protocol="pymultivideo", subscribe=[b"image"], stream="video"),
        SourceSpec(bridge.bind(), socket_type="REQ", protocol="karabo", stream="bridge"),
    ]
    want = [OE_COUNT, ADZMQ_COUNT + 1, VIDEO_COUNT, KARABO_COUNT]
    rec = Recording(runs_dir, specs, run_id=RUN_ID, name="demo", flush_interval=0.05)
    with contextlib.ExitStack() as stack:
        for sim in (ephys, camera, video, bridge):
            stack.enter_context(running(sim))
        rec.start()
        deadline = time.monotonic() + timeout
        try:
            while [s.counters.received for s in rec.streams] < want or any(
                s.counters.received < n for s, n in zip(rec.streams, want, strict=True)
            ):
                assert rec.error is None, rec.error
                assert time.monotonic() < deadline, [s.counters.received for s in rec.streams]
                time.sleep(0.005)
        finally:
            status = rec.finish()
    assert status == "complete", (status, rec.error)
    return Sent(rec.run.path, ephys, camera, video, bridge)
