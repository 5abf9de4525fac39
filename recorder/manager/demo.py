"""`recorder serve --demo`: a simulator of every protocol, saved as sources, ready to record.

So a new user can record and replay within a minute of installing, without any instrument: each
simulator binds free loopback ports and runs in a thread of the serve process, and is saved as
source `demo-<protocol>`. The request/reply demo also gets a client that asks the (recorder's)
listening endpoint a question every 0.2 s, so recording it captures real exchanges.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import socket
import threading

import zmq

from recorder.db.control import Control
from recorder.manager.jobs import normalize_source
from recorder.simulators import make_simulator
from recorder.simulators.demo_stream import DemoPublisher

log = logging.getLogger("recorder.simulators.demo_stream")

PREFIX = "demo-"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _ReqClient(threading.Thread):
    """The request/reply tutorial's client, pointed at where the recorder listens."""

    def __init__(self, endpoint: str, sim):
        super().__init__(daemon=True, name="demo-reqrep-client")
        self.endpoint, self.sim = endpoint, sim
        self.stop = threading.Event()

    def run(self) -> None:
        ctx = zmq.Context.instance()
        i = 0
        while not self.stop.is_set():
            sock = ctx.socket(zmq.REQ)
            sock.linger = 0
            sock.connect(self.endpoint)
            try:
                while not self.stop.is_set():
                    sock.send(pickle.dumps(self.sim.array(i)))
                    if not sock.poll(1000):
                        break  # nobody listening (no recording): start over
                    sock.recv()
                    i += 1
                    self.stop.wait(0.2)
            finally:
                sock.close()


class DemoSources:
    def __init__(self, control: Control):
        self.control = control
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.names: list[str] = []
        self._closers: list = []

    def _run(self, name: str, sim) -> None:
        def target():
            try:
                sim.run(self.stop)
            except Exception as exc:  # a demo source failing must not take serve down
                log.warning("demo source %s stopped: %s", name, exc)

        t = threading.Thread(target=target, daemon=True, name=name)
        t.start()
        self.threads.append(t)

    def _save(self, protocol: str, config: dict) -> None:
        name = PREFIX + protocol
        config = {"protocol": protocol, "description": f"simulated {protocol} (serve --demo)",
                  **config}  # fmt: skip
        self.control.put_source(name, normalize_source(config))
        self.names.append(name)

    def start(self) -> list[str]:
        """Start every simulator and save its source; returns the source names."""
        oe = make_simulator("openephys", "tcp://127.0.0.1:0", rate=30)
        self._save("openephys", {"endpoint": oe.bind()})
        self._run("openephys", oe)

        ad = make_simulator("adzmq", "tcp://127.0.0.1:* PUB", rate=20)
        self._save("adzmq", {"endpoint": ad.bind()})
        self._run("adzmq", ad)

        pmv = make_simulator("pymultivideo", "tcp://127.0.0.1:*", rate=10)
        self._save("pymultivideo", {"endpoint": pmv.bind()})
        self._run("pymultivideo", pmv)

        kb = make_simulator("karabo", "tcp://127.0.0.1:*", socket="PUB", rate=10)
        self._save("karabo", {"endpoint": kb.bind(), "socket_type": "SUB"})
        self._run("karabo", kb)

        rr = make_simulator("reqrep", "tcp://127.0.0.1:*")
        listen = f"tcp://127.0.0.1:{free_port()}"
        self._save("reqrep", {"endpoint": listen, "upstream": rr.bind()})
        self._run("reqrep", rr)
        client = _ReqClient(listen, rr)
        client.start()
        self._closers.append(client.stop.set)

        raw = DemoPublisher(rate=20)
        self._save("raw", {"endpoint": raw.endpoint})
        raw.start()
        self._closers.append(raw.stop.set)
        self.threads.append(raw)
        return list(self.names)

    def close(self, timeout: float = 3.0) -> None:
        self.stop.set()
        for c in self._closers:
            c()
        for t in self.threads:
            with contextlib.suppress(RuntimeError):
                t.join(timeout)
