"""A paused replay waits for its clients by counting them from the socket's monitor events. A
client that was already connecting (it retries every 100 ms) arrives the moment the socket
binds; were the monitor attached after the bind, a thread descheduled between the two would
miss it and the replay would wait for it forever (seen in CI under load)."""

from __future__ import annotations

import pytest
import zmq

from recorder.replay.control_planes import PeerCounter, monitor_event, open_socket
from tests.helpers import free_port, local, wait_for
from tests.replayhelp import client


def _connected(monitor: zmq.Socket) -> bool:
    while monitor.poll(0):
        if monitor_event(monitor.recv_multipart()) == zmq.EVENT_CONNECTED:
            return True
    return False


@pytest.mark.timeout(30)
def test_a_client_that_connected_first_is_counted_however_late_the_opener_looks(ctx):
    endpoint = local(free_port())
    early = client(ctx, zmq.PULL, endpoint)
    early_monitor = early.get_monitor_socket(zmq.EVENT_CONNECTED)
    counters: list[PeerCounter] = []
    served = open_socket(
        ctx, zmq.PUSH, endpoint, bind=True, prepare=lambda s: counters.append(PeerCounter(s))
    )
    try:
        # the client is in before the opener looks at its counter for the first time
        wait_for(lambda: _connected(early_monitor), 10, "the early client's connection")
        (counter,) = counters

        def counted() -> int:
            counter.handle()
            return counter.peers

        assert wait_for(counted, 10, "the early client counted") == 1
    finally:
        for c in counters:
            c.close()
        early_monitor.close(linger=0)
        served.close(linger=0)


@pytest.mark.timeout(30)
def test_a_failed_bind_closes_what_was_prepared(ctx):
    endpoint = local(free_port())
    holder = client(ctx, zmq.PULL, endpoint, bind=True)
    prepared: list[zmq.Socket] = []
    with pytest.raises(Exception, match="already in use"):
        open_socket(ctx, zmq.PUSH, endpoint, bind=True, prepare=prepared.append)
    assert prepared and prepared[0].closed
    holder.close(linger=0)
