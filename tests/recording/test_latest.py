"""`StreamRecorder.latest`: the last message received, for a live view that looks at a stream
without reading the run."""

from __future__ import annotations

import pytest

from recorder.recording.recording import Recording, SourceSpec
from tests.helpers import wait_for


@pytest.mark.timeout(60)
def test_latest_is_the_last_message_received(tmp_path, sender):
    messages = [[b"head", str(i).encode()] for i in range(50)]
    src = sender("PUSH", messages)
    rec = Recording(tmp_path, [SourceSpec(src.endpoint, socket_type="PULL", protocol="raw")])
    stream = rec.streams[0]
    assert stream.latest is None
    rec.start()
    try:
        wait_for(lambda: stream.counters.received == 50, 20, "every message")
    finally:
        rec.finish()
    latest = stream.latest
    assert latest is not None
    recv_ns, frames, extra = latest
    assert [bytes(f) for f in frames] == [b"head", b"49"]
    assert extra is None
    assert recv_ns == int(rec.run.streams["main"].stats()["last_recv_ns"] or 0)
