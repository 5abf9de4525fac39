"""A source whose sockets cannot all be opened fails at once and leaves nothing open: a socket
left behind would keep the zmq context (and so the recorder process) from ever ending."""

from __future__ import annotations

import pytest

from recorder.errors import UsageError
from recorder.recording.recording import Recording
from recorder.recording.source_spec import SourceSpec


@pytest.mark.timeout(30)
def test_proxy_whose_upstream_cannot_be_reached_fails_and_ends(tmp_path):
    too_long = "ipc:///tmp/" + "x" * 200  # longer than a unix socket path may be
    spec = SourceSpec(endpoint="tcp://127.0.0.1:*", protocol="reqrep", upstream=too_long)
    rec = Recording(tmp_path / "runs", [spec])
    with pytest.raises(UsageError, match="cannot connect"):
        rec.start()  # start() finishes the run on failure: ctx.term() must not hang
    assert rec.run.status == "failed"
