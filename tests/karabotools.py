"""Starting the real karabo-bridge / extra-data command line tools as test peers."""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from pathlib import Path


def start_tool(args: list[str], timeout: float = 45) -> tuple[subprocess.Popen, int]:
    """Start a karabo-bridge/extra-data command line tool; return it and the TCP port it bound,
    read from the endpoint it prints (the tools bind port '*' for us: no port races)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            out += chunk
            m = re.search(rb"tcp://\S+:(\d+)\s", out)
            if m:
                return proc, int(m.group(1))
        elif proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{args[0]} did not report its endpoint: {out.decode(errors='replace')}")


def write_mock_run(folder: Path, ntrains: int = 4) -> Path:
    """A small extra_data mock run file (an XGM and a GEC camera), as karabo-bridge-serve-files
    serves it."""
    from extra_data.tests.mockdata import write_file
    from extra_data.tests.mockdata.gec_camera import GECCamera
    from extra_data.tests.mockdata.xgm import XGM

    path = folder / "RAW-R0001-DA01-S00000.h5"
    sources = [XGM("SA1_XTD2_XGM/DOOCS/MAIN"), GECCamera("FXE_XAD_GEC/CAM/CAMERA")]
    write_file(str(path), sources, ntrains=ntrains)
    return path
