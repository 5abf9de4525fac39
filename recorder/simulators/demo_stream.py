"""A built-in stream to record, so a new user sees a recording within a minute of installing."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import zmq


class DemoPublisher(threading.Thread):
    """Publishes a JSON header and a 64x64 uint16 frame at `rate` Hz on a random loopback port."""

    def __init__(self, rate: float = 100.0):
        super().__init__(daemon=True, name="demo-publisher")
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.PUB)
        self.sock.linger = 0
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.rate = rate
        self.stop = threading.Event()

    def run(self) -> None:
        y, x = np.mgrid[0:64, 0:64]
        i = 0
        while not self.stop.is_set():
            frame = ((x + y + i) % 64 * 1000).astype(np.uint16)
            header = json.dumps({"frame": i, "shape": [64, 64], "type": "uint16"}).encode()
            self.sock.send_multipart([header, frame.tobytes()])
            i += 1
            time.sleep(1 / self.rate)
        self.sock.close()
