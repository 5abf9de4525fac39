"""Can a recording keep up with Open Ephys at a fixed, real rate? Drops, loss and rate.

Unlike record_protocols.py (a sender as fast as it can, PUSH -> PULL: nothing is lost, only the
time counts), this is how a rig runs: a sender process stands in for the Open Ephys GUI's ZMQ
Interface with several Neuropixels probes in one signal chain (one PUB socket, one
`message_num` sequence; block by block, probe by probe, channel by channel: 384 channels x 30
kHz in 1024-sample blocks is ~11.25k messages/s per probe) and publishes paced at that rate for
`--seconds`. The recorder subscribes like the plugin's own client (SUB, typed Open Ephys or raw
bytes) and must store everything while the rate lasts. Headers are exactly the GUI's (made
from encode_data); samples repeat per channel (their values cost nothing to the recorder).

Receivers: `openephys` typed, received in a process of its own (the default); `oe-thread`
typed, received on a thread (`--receiver thread`); `raw` the same bytes verbatim. Printed per
receiver, medians over rounds (the order alternates):

* sent / stored: messages the sender published and the run holds; loss = sent - stored (any
  cause: the SUB socket's high-water mark, the recorder's queue, never received);
* drops: batches the recorder's queue refused (counted in the run), gaps: message_num gaps;
* rate: stored messages per second of sending; recv behind: how long after the last message
  was sent it was received (its stamp); write behind: how long after it was sent the writer
  had handed every message to the store (a writer that keeps up is behind by a batch, not
  seconds); write msg/s: messages written per second from the first send to that moment, the
  rate the writer sustains (below `asked`: it does not keep up, the queue grows);
* queue peak: the most bytes waiting between the receive and writer threads (sampled);
* cores: CPU each part used per second of the stream (writer: the recording's own process,
  with its close; recv: its receive process, `raw` and `oe-thread` have none; send: the
  sender), and the writer process's CPU per stored message (of it in the kernel: sys). On 2
  cores the three must fit in 2.0 together: a writer short of a core is starved, not slow.

On the 2-core CI machine keep `--seconds` short (the default 10): three probes are 150 MB/s,
and after 20-25 s its disk (113 MB/s) and its host's slow first touch of memory past ~4 GB
bound every receiver (docs/recording.md, *Receiving*).

    python benchmarks/oe_sustained.py [--probes 3] [--seconds 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import queue
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, prefault

from recorder.recording.recording import Recording, SourceSpec
from recorder.store.reader import RunReader

SAMPLES = 1024
RATE_HZ = 30000.0
_SEQ, _SAMPLE, _STAMP = 9876543210001, 9876543210002, 9876543210003  # header placeholders


def _messages(probes: int, channels: int, blocks: int) -> list[list[bytes]]:
    """Block-major, probe by probe, channel by channel, as the ZMQ Interface sends them."""
    from recorder.protocols import openephys as oe

    payloads = [np.full(SAMPLES, c, dtype="<f4").tobytes() for c in range(channels)]
    templates = [
        [
            oe.encode_data(
                np.zeros(SAMPLES, dtype="<f4"),
                message_num=_SEQ,
                stream=f"probe{p}",
                channel_num=c,
                channel_name=f"CH{c + 1}",
                sample_num=_SAMPLE,
                sample_rate=RATE_HZ,
                timestamp_ms=_STAMP,
            )[1]
            .replace(str(_SEQ).encode(), b"%(seq)d")
            .replace(str(_SAMPLE).encode(), b"%(sample)d")
            .replace(str(_STAMP).encode(), b"%(stamp)d")
            for c in range(channels)
        ]
        for p in range(probes)
    ]
    start_ms = int(time.time() * 1000)
    out, seq = [], 0
    for b in range(blocks):
        sample = b * SAMPLES
        stamp = start_ms + int(sample * 1000 / RATE_HZ)
        for p in range(probes):
            for c in range(channels):
                seq += 1
                header = templates[p][c] % {b"seq": seq, b"sample": sample, b"stamp": stamp}
                out.append([oe.DATA_ENVELOPE, header, payloads[c]])
    return out


def sender(q: mp.Queue, ctl: mp.Queue, probes: int, channels: int, seconds: float) -> None:
    """Publishes the same paced stream to each subscriber in turn (told by `ctl`)."""
    rate = probes * channels * RATE_HZ / SAMPLES
    blocks = int(seconds * RATE_HZ / SAMPLES) + 1
    messages = _messages(probes, channels, blocks)
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)  # tells when a subscriber has joined: nothing sent before that
    pub.sndhwm = 0  # the sender never drops: any loss is the receiver's
    # every subscription, also one for a topic the last receiver (not gone yet) still holds
    pub.setsockopt(zmq.XPUB_VERBOSE, 1)
    pub.bind("tcp://127.0.0.1:*")
    q.put(pub.getsockopt_string(zmq.LAST_ENDPOINT))
    q.put(len(messages))
    while ctl.get() == "go":
        while pub.recv()[:1] != b"\x01":  # an unsubscription of the last receiver
            pass
        send = pub.send_multipart
        t0, cpu0 = time.perf_counter(), time.process_time()
        i, n = 0, len(messages)
        while i < n:
            due = min(n, int((time.perf_counter() - t0) * rate) + 1)
            if due <= i:
                time.sleep(0.0005)
                continue
            for frames in messages[i:due]:
                send(frames)
            i = due
        q.put((n, time.perf_counter() - t0, time.time_ns(), time.process_time() - cpu0))
    pub.close(linger=-1)
    ctx.term()


RECEIVERS = {  # label -> (protocol, receiver)
    "openephys": ("openephys", "auto"),  # received in a process of its own
    "oe-thread": ("openephys", "thread"),  # received on a thread, as before
    "raw": ("raw", "auto"),
}


def receive(label: str, endpoint: str, q: mp.Queue, ctl: mp.Queue, out: Path) -> dict:
    protocol, receiver = RECEIVERS[label]
    spec = SourceSpec(
        endpoint, socket_type="SUB", protocol=protocol, heartbeat=False, receiver=receiver
    )
    rec = Recording(out, [spec])
    own0, kids0 = resource.getrusage(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    rec.start()
    ctl.put("go")
    peak = 0
    done = None
    while done is None:
        with contextlib.suppress(queue.Empty):  # still sending
            done = q.get(timeout=0.2)
        peak = max(peak, rec.stats()["queue_bytes"])
    sent, seconds, last_sent_ns, sender_cpu = done
    stream = rec.streams[0]
    idle_since, last = time.monotonic(), -1
    written_ns = None
    while time.monotonic() - idle_since < 2.0:  # what was sent has arrived, or never will
        written = stream.counters.written
        if written >= sent:
            written_ns = time.time_ns()
            break
        if written != last:
            idle_since, last = time.monotonic(), written
        peak = max(peak, stream.queue.depth_bytes)
        time.sleep(0.005)
    if written_ns is None:  # something never arrived: the writer is done when it idles
        written_ns = time.time_ns()
    rec.finish()
    busy = seconds + max(0.0, (written_ns - last_sent_ns) / 1e9)
    own1, kids = resource.getrusage(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN) - kids0
    own_sys = own1.ru_stime - own0.ru_stime
    own = own1.ru_utime - own0.ru_utime + own_sys
    with RunReader(rec.run.path) as run:
        s = run.summary()
        st = s["streams"][0]
    stored = s["messages"] - s["drops"]
    return {
        "sent": sent,
        "stored": stored,
        "loss": sent - stored,
        "drops": s["drops"],
        "gaps": s["gaps"],
        "rejects": s["rejects"],
        "rate": stored / seconds,
        "asked": sent / seconds,
        "behind_s": max(0.0, (st["last_recv_ns"] - last_sent_ns) / 1e9),
        "write_behind_s": max(0.0, (written_ns - last_sent_ns) / 1e9),
        "write_rate": stored / (seconds + max(0.0, (written_ns - last_sent_ns) / 1e9)),
        "peak_mb": peak / 1e6,
        # cores each part kept busy while the stream lasted (the writer's process includes
        # its close; the receive process is a child, counted once it has been reaped)
        "writer_cores": own / busy,
        "receiver_cores": kids / busy,
        "sender_cores": sender_cpu / seconds,
        "writer_us": own / stored * 1e6 if stored else 0.0,
        "writer_sys_us": own_sys / stored * 1e6 if stored else 0.0,
    }


def _cpu(who: int) -> float:
    use = resource.getrusage(who)
    return use.ru_utime + use.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=3)
    ap.add_argument("--channels", type=int, default=384)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="oe-sustained-"))
    workdir.mkdir(parents=True, exist_ok=True)
    spawn = mp.get_context("spawn")
    q, ctl = spawn.Queue(), spawn.Queue()
    proc = spawn.Process(
        target=sender, args=(q, ctl, args.probes, args.channels, args.seconds), daemon=True
    )
    proc.start()
    endpoint, count = q.get(timeout=600), q.get(timeout=600)
    rate = args.probes * args.channels * RATE_HZ / SAMPLES
    print(
        f"{args.probes} probes x {args.channels} ch x {RATE_HZ:.0f} Hz in {SAMPLES}-sample "
        f"blocks: {rate:.0f} msg/s ({rate * (4 * SAMPLES + 350) / 1e6:.0f} MB/s) for "
        f"{args.seconds:.0f} s, {count} messages; {args.rounds} rounds, medians\n"
    )
    results: dict[str, list[dict]] = {label: [] for label in RECEIVERS}
    order = list(results)
    try:
        for r in range(args.rounds):
            for label in order if r % 2 == 0 else order[::-1]:
                out = Path(tempfile.mkdtemp(dir=workdir))
                prefault(1.0)
                results[label].append(receive(label, endpoint, q, ctl, out))
                shutil.rmtree(out, ignore_errors=True)
        ctl.put("stop")
        proc.join(60)
    finally:
        if proc.is_alive():
            proc.kill()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"{'receiver':<10} {'sent':>8} {'stored':>8} {'loss':>7} {'drops':>6} {'gaps':>6} "
        f"{'msg/s':>8} {'asked':>8} {'recv behind s':>13} {'write behind s':>14} "
        f"{'write msg/s':>11} {'queue MB':>8} {'cores: writer':>13} {'recv':>5} {'send':>5} "
        f"{'writer us/msg':>13} {'of it sys':>9}"
    )
    clean = True
    for protocol, runs in results.items():
        m = {k: median([x[k] for x in runs]) for k in runs[0]}
        worst = max(x["loss"] for x in runs)
        clean &= worst == 0 and all(x["rejects"] == 0 for x in runs)
        print(
            f"{protocol:<10} {m['sent']:>8.0f} {m['stored']:>8.0f} {worst:>7} "
            f"{max(x['drops'] for x in runs):>6} {max(x['gaps'] for x in runs):>6} "
            f"{m['rate']:>8.0f} {m['asked']:>8.0f} {m['behind_s']:>13.2f} "
            f"{m['write_behind_s']:>14.2f} {m['write_rate']:>11.0f} {m['peak_mb']:>8.1f} "
            f"{m['writer_cores']:>13.2f} {m['receiver_cores']:>5.2f} {m['sender_cores']:>5.2f} "
            f"{m['writer_us']:>13.1f} {m['writer_sys_us']:>9.1f}"
        )
    print("\nevery message stored by every receiver:", "yes" if clean else "NO")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
