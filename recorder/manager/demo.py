"""`recorder serve --demo`: a simulator of every protocol, saved as sources, ready to record.

So a new user can record and replay within a minute of installing, without any instrument: each
simulator binds free loopback ports and runs in a thread of the serve process, and is saved as
source `demo-<protocol>`. The request/reply demo also gets a client that asks the (recorder's)
listening endpoint a question every 0.2 s, so recording it captures real exchanges.
"""

from __future__ import annotations

import socket
import threading

import zmq

from recorder import protocols
from recorder.db.control import Control
from recorder.manager.planning import normalize_source
from recorder.simulators import Simulator, make_simulator

PREFIX = "demo-"
_LOOPBACK = "tcp://127.0.0.1:*"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _ReqClient(threading.Thread):
    """A client of the simulated service (what it asks is the simulator's `request(i)`),
    pointed at where the recorder listens."""

    def __init__(self, endpoint: str, sim):
        super().__init__(daemon=True, name="demo-client")
        self.endpoint, self.sim = endpoint, sim
        self.stop = threading.Event()

    def run(self) -> None:
        ctx: zmq.Context = zmq.Context.instance()
        i = 0
        while not self.stop.is_set():
            sock = ctx.socket(zmq.REQ)
            sock.linger = 0
            sock.connect(self.endpoint)
            try:
                while not self.stop.is_set():
                    sock.send(self.sim.request(i))
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
        self.names: list[str] = []
        self.simulators: list[Simulator] = []
        self.clients: list[_ReqClient] = []

    def _save(self, protocol: str, config: dict) -> None:
        name = PREFIX + protocol
        config = {"protocol": protocol, "description": f"simulated {protocol} (serve --demo)",
                  **config}  # fmt: skip
        self.control.put_source(name, normalize_source(config))
        self.names.append(name)

    def start(self) -> list[str]:
        """Start every protocol's demo simulator and save its source; returns the names."""
        for d in protocols.descriptors():
            if d.demo is None or d.simulator is None:
                continue
            sim = make_simulator(d.name, _LOOPBACK, **d.demo.options)
            bound = sim.start()
            self.simulators.append(sim)
            if d.proxy:  # the recorder listens for clients and asks the simulated service
                listen = f"tcp://127.0.0.1:{free_port()}"
                self._save(d.name, {"endpoint": listen, "upstream": bound, **d.demo.source})
                client = _ReqClient(listen, sim)
                client.start()
                self.clients.append(client)
            else:
                self._save(d.name, {"endpoint": bound, **d.demo.source})
        return list(self.names)

    def close(self, timeout: float = 3.0) -> None:
        for c in self.clients:
            c.stop.set()
        for sim in self.simulators:
            sim.stop(timeout)
        for c in self.clients:
            c.join(timeout)
