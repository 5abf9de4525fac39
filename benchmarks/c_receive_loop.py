"""What a receive loop in C would buy a typed Open Ephys recording: a prototype, measured.

Not the recorder's code path. The recorder is pure Python; this compiles a 40-line C loop with
the machine's `cc` at run time, links it to the libzmq pyzmq loaded, and swaps it in for the
Python loop of the receive process (`receive_apart._child`) for some rounds, to measure the
lever before anyone builds it properly (docs/recording.md, *Receiving*).

The prototype child receives whole messages with `zmq_msg_recv` in C, writes their frames
straight into a slot of the shared ring, stamps each message and fills the same receive times,
frame counts and lengths the Python child packs. Batches are gathered as `stream_loop` does them:
up to 512 messages, 2 MiB or 5 ms. The parent is unchanged: it reads the same `S` batches.
Unlike the real child, it has no control-plane companions, never falls back to the pipe and
stops at the count. So it is only for this benchmark's PUSH stream, with `heartbeat=False`.

Rounds alternate: the pyzmq baseline (record_throughput.baseline), the recorder as shipped,
and the recorder with the prototype child. Each round records the same pre-generated stream
(record_protocols.sender). The script prints rate, ratio to the baseline and CPU per message,
as record_protocols does: the recorder's own process, its receive process once reaped, and the
sender. It checks that every message is stored with no reject and the same bytes.

Measured here (2 cores; two runs of 6 alternated rounds each, medians per run):

| channels | shipped ratio | prototype ratio | receive process CPU, us/msg |
|---|---|---|---|
| 64 | 0.68, 0.63 | 0.73, 0.70 | 10.5 -> 6.6-6.7 |
| 384 | 0.63, 0.68 | 0.69, 0.69 | 10.6-10.7 -> 7.0 |

The receive process's CPU falls by a third, and the round gains 0.01-0.07 of the baseline. That
is as much as the CPU saved predicts (about 0.015-0.03 a microsecond a message), and not 0.8.

    python benchmarks/c_receive_loop.py [--channels 64] [--rounds 6] [--count 40000]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import glob
import heapq
import multiprocessing as mp
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path

import numpy as np
import psutil
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, prefault
from record_protocols import _baseline, _cpu, recording, sender
from record_throughput import Ack

import recorder.recording.receive_apart as receive_apart
from recorder.recording import receive

C_SOURCE = r"""
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

typedef struct zmq_msg_t { unsigned char _[64] __attribute__((aligned(8))); } zmq_msg_t;
int zmq_msg_init(zmq_msg_t *msg);
int zmq_msg_recv(zmq_msg_t *msg, void *s, int flags);
int zmq_msg_close(zmq_msg_t *msg);
void *zmq_msg_data(zmq_msg_t *msg);
size_t zmq_msg_size(const zmq_msg_t *msg);
int zmq_msg_more(const zmq_msg_t *msg);
#define ZMQ_DONTWAIT 1

/* Whole messages waiting on `sock`, up to `max_msgs` or `max_bytes`, frames copied into `buf`
   (`cap` bytes): receive time, frame count and frame lengths of each. Returns the messages
   taken, or -1 for a frame that does not fit (the prototype gives up: it is lost). */
long rx_batch(void *sock, long max_msgs, long max_bytes, char *buf, long cap, int64_t *ns,
              uint32_t *counts, uint64_t *lens, long max_frames, long *used_out,
              long *frames_out)
{
    zmq_msg_t msg;
    long m = 0, used = 0, nf = 0;
    struct timespec ts;
    while (m < max_msgs && used < max_bytes) {
        uint32_t k = 0;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&msg); break; }
        for (;;) {
            size_t n = zmq_msg_size(&msg);
            if (used + (long)n > cap || nf >= max_frames) { zmq_msg_close(&msg); return -1; }
            memcpy(buf + used, zmq_msg_data(&msg), n);
            lens[nf++] = n;
            used += n;
            k++;
            int more = zmq_msg_more(&msg);
            zmq_msg_close(&msg);
            if (!more) break;
            zmq_msg_init(&msg);
            zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT);  /* the rest came with the first frame */
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ns[m] = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        counts[m++] = k;
    }
    *used_out = used;
    *frames_out = nf;
    return m;
}
"""

# batches end where stream_loop ends them
_BATCH_MESSAGES, _BATCH_BYTES, _GATHER_S = receive._DRAIN, receive._DRAIN_BYTES, receive._GATHER_S
_LIBRARY: list[ctypes.CDLL] = []


def build(folder: Path) -> ctypes.CDLL:
    """The C loop compiled and linked to the libzmq this pyzmq uses (its bundled copy)."""
    libzmq = sorted(glob.glob(str(Path(zmq.__file__).parent.parent / "pyzmq.libs" / "libzmq*")))
    if not libzmq:
        raise SystemExit("pyzmq's bundled libzmq was not found: the prototype links to it")
    source, lib = folder / "rx.c", folder / "librx.so"
    source.write_text(C_SOURCE)
    rpath = f"-Wl,-rpath,{Path(libzmq[0]).parent}"
    cc = ["cc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(source), libzmq[0], rpath]
    try:
        subprocess.run(cc, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"cannot compile the prototype ({exc}): it needs a C compiler") from exc
    dll = ctypes.CDLL(str(lib))  # a CDLL call lets the GIL go
    dll.rx_batch.restype = ctypes.c_long
    ptr, long_, out = ctypes.c_void_p, ctypes.c_long, ctypes.POINTER(ctypes.c_long)
    dll.rx_batch.argtypes = [ptr, long_, long_, ptr, long_, ptr, ptr, ptr, long_, out, out]
    return dll


def prototype_child(address, parent, open_sockets, count, ring) -> None:
    """receive_apart._child with the C loop: same pipe messages, batches always in a slot."""
    dll = _LIBRARY[0]
    receive_apart._keep_freed_heap()  # as the shipped child
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    ctx = zmq.Context()
    pipe = ctx.socket(zmq.PAIR)
    pipe.sndhwm = pipe.rcvhwm = receive_apart._PIPE_HWM
    pipe.linger = receive_apart._END_LINGER_MS
    pipe.connect(address)
    sock, endpoint, _ = open_sockets(ctx)
    pipe.send_multipart([b"R", endpoint.encode()])
    base = ctypes.addressof(ctypes.c_char.from_buffer(ring._map))
    ns = np.empty(_BATCH_MESSAGES, np.int64)
    counts = np.empty(_BATCH_MESSAGES, np.uint32)
    lens = np.empty(64 * _BATCH_MESSAGES, np.uint64)
    used, frames = ctypes.c_long(), ctypes.c_long()
    control = receive_apart._Control(pipe, stop, parent, ring)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    control.register(poller)
    no_drops = bytes(8)

    def hand_over(slot: int, m: int, nf: int, nbytes: int) -> None:
        heads = [ns[:m].tobytes(), counts[:m].tobytes(), lens[:nf].tobytes()]
        pipe.send_multipart([b"S", no_drops, *heads, array("Q", [slot, 0, nbytes])])

    taken, slot, m, nf, nbytes, due = 0, -1, 0, 0, 0, 0.0
    while not stop.is_set() and (count is None or taken < count):
        if slot < 0:
            # before each wait: everything received so far has been sent (a full pipe: later)
            with contextlib.suppress(zmq.Again):
                now = time.time_ns().to_bytes(8, "little")
                pipe.send_multipart([b"T", no_drops, now], zmq.NOBLOCK)
            wait_ms = 100
        else:
            wait_ms = max(0, int((due - time.monotonic()) * 1000 + 0.999))
        events = dict(poller.poll(wait_ms))
        control.service(poller, events)
        limit = _BATCH_MESSAGES if count is None else min(_BATCH_MESSAGES, count - taken)
        if events.get(sock):
            if slot < 0:
                if not ring._free:
                    raise RuntimeError("no free slot (the prototype has no pipe fallback)")
                slot, due = heapq.heappop(ring._free), time.monotonic() + _GATHER_S
            got = dll.rx_batch(
                sock.underlying, limit - m, _BATCH_BYTES - nbytes,
                base + slot * ring.slot_bytes + nbytes, ring.slot_bytes - nbytes,
                ns.ctypes.data + 8 * m, counts.ctypes.data + 4 * m, lens.ctypes.data + 8 * nf,
                len(lens) - nf, ctypes.byref(used), ctypes.byref(frames),
            )  # fmt: skip
            if got < 0:
                raise RuntimeError("a frame larger than the slot (the prototype has no pipe)")
            m, nf, nbytes = m + got, nf + frames.value, nbytes + used.value
        if slot >= 0 and (m >= limit or nbytes >= _BATCH_BYTES or time.monotonic() >= due):
            if m:
                hand_over(slot, m, nf, nbytes)
                taken += m
            else:
                heapq.heappush(ring._free, slot)
            slot, m, nf, nbytes = -1, 0, 0, 0
    if m:  # stopped while gathering: what was received goes to the parent
        hand_over(slot, m, nf, nbytes)
    sock.close()
    pipe.send_multipart([b"E", no_drops, b""])
    pipe.close()
    ctx.term()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--count", type=int, default=40000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="c-receive-loop-"))
    shipped_child = receive_apart._child
    try:
        _LIBRARY.append(build(work))
        options = {"n_channels": args.channels, "n_samples": 1024}
        order = ["baseline", "shipped", "prototype"]
        ctx = zmq.Context()
        spawn = mp.get_context("spawn")
        q = spawn.Queue()
        proc = spawn.Process(
            target=sender,
            args=(q, "openephys", options, args.count, args.rounds * len(order)),
            daemon=True,
        )
        proc.start()
        endpoint, ack_endpoint = q.get(timeout=600), q.get(timeout=60)
        ack = Ack(ctx, ack_endpoint)
        receivers = {
            "baseline": _baseline,
            "shipped": recording("openephys"),
            "prototype": recording("openephys"),
        }
        me, sending = psutil.Process(), psutil.Process(proc.pid)
        rates: dict[str, list[float]] = {name: [] for name in order}
        cpu: dict[str, list[list[float]]] = {name: [] for name in order}
        stored_bytes: set[int] = set()
        for r in range(args.rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                out = Path(tempfile.mkdtemp(dir=work))
                prefault()
                receive_apart._child = prototype_child if name == "prototype" else shipped_child
                before = _cpu(me, sending)
                elapsed, got, nbytes, rejects = receivers[name](ctx, endpoint, ack, args.count, out)
                cpu[name].append([b - a for a, b in zip(before, _cpu(me, sending), strict=True)])
                if got != args.count or rejects:
                    raise SystemExit(f"{name}: {got} of {args.count} stored, {rejects} rejects")
                if name != "baseline":
                    stored_bytes.add(nbytes)
                rates[name].append(args.count / elapsed)
                shutil.rmtree(out)
        proc.join(60)
        ack.close()
        ctx.term()
    finally:
        receive_apart._child = shipped_child
        shutil.rmtree(work, ignore_errors=True)
    if len(stored_bytes) != 1:
        raise SystemExit(f"the two children stored different byte totals: {stored_bytes}")
    base = median(rates["baseline"])
    print(f"{args.count} Open Ephys messages of {args.channels} ch, {args.rounds} rounds, medians")
    print(
        f"{'receiver':<10} {'msg/s':>8} {'ratio':>6}  CPU us/msg: {'here':>5} {'rx':>5} {'send':>5}"
    )
    for name in order:
        here, rx, send = (median([c[i] / args.count * 1e6 for c in cpu[name]]) for i in range(3))
        rate = median(rates[name])
        print(
            f"{name:<10} {rate:>8.0f} {rate / base:>6.2f}              "
            f"{here:>5.1f} {rx:>5.1f} {send:>5.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
