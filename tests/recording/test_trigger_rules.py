"""Trigger rules: the text and JSON forms of every kind, the one-line reasons bad rules are
refused with, and rules firing on real simulator streams (received on loopback, decoded by the
codec) at the message they should and at no other."""

from __future__ import annotations

import json
import time

import pytest
import zmq

from recorder import protocols
from recorder.contracts import WriteItem
from recorder.errors import UsageError
from recorder.protocols.base import Decoded, decode_or_reject
from recorder.recording.plans import TriggerPlan
from recorder.recording.recording import Recording, SourceSpec
from recorder.recording.trigger_rules import (
    Rule,
    RuleSet,
    parse_rule,
    parse_rules,
    rule_from_json,
    rule_to_json,
)
from recorder.simulators import Simulator
from recorder.simulators.adzmq import AdzmqSimulator
from recorder.simulators.karabo import KaraboSimulator
from recorder.simulators.openephys import OpenEphysSimulator
from recorder.store.reader import RunReader
from tests.helpers import free_port, wait_for
from tests.recordhelp import running

# text as written -> (canonical text, JSON form)
EVERY_KIND = {
    "ttl 3 high": ("ttl 3 high", {"kind": "ttl", "line": 3, "state": "high"}),
    "oe: ttl 0 LOW": ("oe: ttl 0 low", {"kind": "ttl", "line": 0, "state": "low", "stream": "oe"}),
    'text ~ "seizure"': ('text ~ "seizure"', {"kind": "text", "op": "~", "value": "seizure"}),
    "text = 'x'".replace("'", '"'): ('text == "x"', {"kind": "text", "op": "==", "value": "x"}),
    "text ~ stim": ('text ~ "stim"', {"kind": "text", "op": "~", "value": "stim"}),
    "key SA1_XTD2_XGM/DOOCS/MAIN:output data.intensityTD > 1000": (
        "key SA1_XTD2_XGM/DOOCS/MAIN:output data.intensityTD > 1000",
        {
            "kind": "key",
            "source": "SA1_XTD2_XGM/DOOCS/MAIN:output",
            "key": "data.intensityTD",
            "op": ">",
            "value": 1000,
        },
    ),
    'kb:key "A B" x.y<=-1.5e3': (
        'kb: key "A B" x.y <= -1500',
        {"kind": "key", "source": "A B", "key": "x.y", "op": "<=", "value": -1500, "stream": "kb"},
    ),
    'key SRC state.value == "ON"': (
        'key SRC state.value == "ON"',
        {"kind": "key", "source": "SRC", "key": "state.value", "op": "==", "value": "ON"},
    ),
    "attr Temperature >= 21.75": (
        "attr Temperature >= 21.75",
        {"kind": "attr", "name": "Temperature", "op": ">=", "value": 21.75},
    ),
    'cam: attr Camera != "sim"': (
        'cam: attr Camera != "sim"',
        {"kind": "attr", "name": "Camera", "op": "!=", "value": "sim", "stream": "cam"},
    ),
    "attr Counter < 1e2": (
        "attr Counter < 100",
        {"kind": "attr", "name": "Counter", "op": "<", "value": 100},
    ),
    "count >= 1000": ("count >= 1000", {"kind": "count", "op": ">=", "value": 1000}),
    "count == 5": ("count == 5", {"kind": "count", "op": "==", "value": 5}),
    "rate > 500/s": ("rate > 500/s", {"kind": "rate", "op": ">", "value": 500}),
    "cam.1: rate<=0.5": (
        "cam.1: rate <= 0.5/s",
        {"kind": "rate", "op": "<=", "value": 0.5, "stream": "cam.1"},
    ),
}


@pytest.mark.parametrize("written", list(EVERY_KIND))
def test_text_and_json_round_trip(written: str) -> None:
    canonical, as_json = EVERY_KIND[written]
    rule = parse_rule(written)
    assert rule.text == canonical
    assert rule_to_json(rule) == as_json
    assert parse_rule(rule.text) == rule
    assert rule_from_json(as_json) == rule
    assert rule_from_json(canonical) == rule  # the API takes the text too
    assert rule_from_json(rule_to_json(rule)).text == canonical


def test_every_kind_is_covered() -> None:
    kinds = {parse_rule(t).kind for t in EVERY_KIND}
    assert kinds == {"ttl", "text", "key", "attr", "count", "rate"}
    assert parse_rules(["ttl 1 high", "count > 0"]) == (
        parse_rule("ttl 1 high"),
        Rule("count", op=">", value=0),
    )


BAD_TEXT = {
    "": "empty rule",
    "   ": "empty rule",
    "foo 1": "unknown kind 'foo'",
    "ttl x high": "bad TTL line 'x'",
    "ttl 256 high": "bad TTL line 256",
    "ttl 3 up": "TTL state 'up' is not high or low",
    "ttl 3": "expected 'ttl LINE high|low'",
    'text > "a"': "text matches with ~",
    'text ~ ""': "text to match must be",
    'text ~ "open': "cannot read",
    "key a b > 10x": "bad number '10x'",
    "key a > 3": "expected 'key SOURCE KEY OP VALUE'",
    "attr T >> 3": "bad operator '>>'",
    "attr T ! 3": "cannot read '! 3'",
    'attr T > "warm"': "> needs a number, not the text 'warm'",
    "attr T > nan": "bad number 'nan'",
    "count < 3": "count takes >=, >, ==, not '<'",
    "count >= 1.5": "bad count '1.5'",
    "count >= 0": "bad count '0'",
    "rate > -1/s": "bad rate '-1'",
    "rate != 3/s": "rate takes >, >=, <, <=, not '!='",
    "oe:": "no rule after the stream name",
    "ttl 3 high\ncount > 1": "one line please",
}


@pytest.mark.parametrize("text", list(BAD_TEXT))
def test_bad_rules_are_refused_with_a_one_line_reason(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_rule(text)
    message = str(info.value)
    assert BAD_TEXT[text] in message
    assert "\n" not in message and message.startswith("trigger rule")


BAD_JSON = [
    ({"kind": "ttl", "line": 3}, "missing state"),
    ({"kind": "nope"}, "unknown kind 'nope'"),
    ({"kind": "ttl", "line": 3, "state": "high", "op": ">"}, "unknown field(s) op"),
    ({"kind": "count", "op": ">=", "value": "many"}, "bad count 'many'"),
    ({"kind": "attr", "name": "T", "op": "=>", "value": 3}, "bad operator '=>'"),
    ({"kind": "key", "source": "", "key": "k", "op": ">", "value": 1}, "key needs a source"),
    ({"kind": "rate", "op": ">", "value": True}, "bad rate True"),
    ({"kind": "ttl", "line": 1, "state": "high", "stream": "a b"}, "bad stream name 'a b'"),
    (7, "an object or a text, not int"),
]


@pytest.mark.parametrize(("obj", "reason"), BAD_JSON)
def test_bad_json_rules_are_refused(obj: object, reason: str) -> None:
    with pytest.raises(UsageError, match="trigger rule") as info:
        rule_from_json(obj)  # type: ignore[arg-type]
    assert reason in str(info.value)


def test_rules_must_fit_the_recording_streams() -> None:
    streams = {"oe": "openephys", "kb": "karabo", "cam": None}
    RuleSet([parse_rule("oe: ttl 1 high"), parse_rule("kb: count >= 3")], streams)
    RuleSet([parse_rule("attr T > 3")], streams)  # cam may turn out to be ADZMQ
    RuleSet([parse_rule("cam: attr T > 3")], streams)
    with pytest.raises(UsageError, match="no stream 'eeg' in the recording \\(cam, kb, oe\\)"):
        RuleSet([parse_rule("eeg: ttl 1 high")], streams)
    with pytest.raises(UsageError, match="ttl rules read openephys messages; stream 'kb' is"):
        RuleSet([parse_rule("kb: ttl 1 high")], streams)
    with pytest.raises(UsageError, match="attr rules read adzmq messages; the recording has"):
        RuleSet([parse_rule("attr T > 3")], {"oe": "openephys", "kb": "karabo"})
    assert not RuleSet([], streams)
    assert len(RuleSet([parse_rule("count > 1")], streams)) == 1


# --------------------------------------------------------------------------- evaluation


def test_crossings_fire_on_the_edge_only() -> None:
    """Synthetic items (the codec's Decoded): a threshold fires when it is crossed, not while
    it stays beyond; the first value only sets the state; messages without the value and
    rejects change nothing."""
    rules = RuleSet([parse_rule("attr T > 10")], {"cam": "adzmq"})
    values = [12, 5, None, 11, 15, 9, 10, 10.5, "text"]
    fired = []
    for i, v in enumerate(values):
        decoded = Decoded("array", columns={} if v is None else {"ndattr.T": v})
        if rules.check("cam", "adzmq", (i, [b""], decoded, None)) is not None:
            fired.append(i)
    assert rules.check("cam", "adzmq", (99, [b""], None, "bad header")) is None
    assert fired == [3, 7]


def test_count_and_rate_on_receive_times() -> None:
    ms = 1_000_000
    count = RuleSet([parse_rule("count >= 5"), parse_rule("a: count > 2")], {"a": None, "b": None})
    hits = []
    for i in range(12):  # all streams count together unless scoped
        stream = "a" if i % 2 else "b"
        rule = count.check(stream, "raw", (i * ms, [b"x"], None, None))
        hits.append((i, rule.text if rule else None))
    assert [h for h in hits if h[1]] == [(4, "count >= 5"), (5, "a: count > 2")]
    # 1 message per 10 ms (100/s), then 1 per ms (1000/s) from 2 s on, then 100/s again
    times = [k * 10 * ms for k in range(200)] + [2000 * ms + k * ms for k in range(1, 2001)]
    times += [4000 * ms + k * 10 * ms for k in range(1, 200)]
    above = RuleSet([parse_rule("rate > 500/s")], {"s": None})
    below = RuleSet([parse_rule("rate < 200/s")], {"s": None})
    up = [t for t in times if above.check("s", "raw", (t, [b""], None, None))]
    down = [t for t in times if below.check("s", "raw", (t, [b""], None, None))]
    # at 2.446 s the last second holds 446 fast messages and the slow ones at 1.45 .. 1.99 s
    # (55): 501; a millisecond earlier it held exactly 500
    assert up == [2446 * ms]
    # < waits for a full window, then fires once: at 4.89 s the last second holds the fast
    # messages after 3.89 s (110) and 89 slow ones, 199 < 200; not while the window filled
    assert down == [4890 * ms]


# --------------------------------------------------------------------------- simulator streams


def received_items(sim: Simulator, protocol: str, n: int) -> list[WriteItem]:
    """The first `n` messages of a running simulator, received on loopback with a real zmq
    socket as the recorder does (SUB, or REQ asking `next` for a Karabo REP server) and
    decoded by the protocol's codec into writer items."""
    codec = protocols.codec_for(protocol)
    ctx = zmq.Context.instance()
    rep = getattr(sim, "socket_type", None) == "REP"
    sock = ctx.socket(zmq.REQ if rep else zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    if not rep:
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
    items: list[WriteItem] = []
    try:
        sock.connect(sim.bind())
        with running(sim):
            while len(items) < n:
                if rep:
                    sock.send(b"next")
                frames = [f.buffer for f in sock.recv_multipart(copy=False)]
                items.append(decode_or_reject(codec, time.time_ns(), frames))
    finally:
        sock.close()
    assert all(item[3] is None for item in items), [item[3] for item in items if item[3]]
    return items


def fired_at(text: str, protocol: str, items: list[WriteItem]) -> list[int]:
    """Indices of the messages on which the rule fired, fed in receive order."""
    rules = RuleSet([parse_rule(text)], {"main": protocol})
    return [i for i, item in enumerate(items) if rules.check("main", protocol, item)]


OE_OPTIONS = {"n_channels": 2, "n_samples": 16, "ttl_every": 2, "spike_every": 3}


@pytest.fixture(scope="module")
def zmq_interface() -> list[WriteItem]:
    """ZMQ Interface: per block 2 data messages; a TTL after every 2nd block (the n-th TTL on
    line n % 8, high for even n), a spike after every 3rd and a text event after every 5th."""
    options = {**OE_OPTIONS, "message_every": 5, "message_text": "Seizure {n} detected"}
    sim = OpenEphysSimulator(
        f"tcp://127.0.0.1:{free_port(2)}", rate=0, count=200, wait_for_subscriber=True, **options
    )
    items = received_items(sim, "openephys", 200)
    assert [item[1][1] for item in items] == [sim.message(i)[1] for i in range(200)]
    return items


@pytest.mark.timeout(60)
def test_ttl_rules_on_the_zmq_interface(zmq_interface: list[WriteItem]) -> None:
    sim = OpenEphysSimulator(**OE_OPTIONS, message_every=5)
    ttl = [i for i in range(200) if sim.plan(i)[0] == "ttl"]  # the n-th TTL is message ttl[n]
    assert len(ttl) == 33
    assert fired_at("ttl 3 low", "openephys", zmq_interface) == [ttl[3], ttl[11], ttl[19], ttl[27]]
    assert fired_at("ttl 2 high", "openephys", zmq_interface) == [ttl[2], ttl[10], ttl[18], ttl[26]]
    assert fired_at("ttl 0 high", "openephys", zmq_interface) == [
        ttl[n] for n in (0, 8, 16, 24, 32)
    ]
    # line 0 only ever goes high, line 3 only low, line 9 never changes
    for never in ("ttl 0 low", "ttl 3 high", "ttl 9 high"):
        assert fired_at(never, "openephys", zmq_interface) == []


@pytest.mark.timeout(60)
def test_text_rules_on_the_zmq_interface(zmq_interface: list[WriteItem]) -> None:
    sim = OpenEphysSimulator(**OE_OPTIONS, message_every=5)
    texts = [i for i in range(200) if sim.plan(i)[0] == "message"]
    assert len(texts) >= 4
    assert fired_at('text ~ "seizure"', "openephys", zmq_interface) == texts
    assert fired_at('text == "Seizure 2 detected"', "openephys", zmq_interface) == [texts[2]]
    assert fired_at('text == "seizure 2 detected"', "openephys", zmq_interface) == []
    assert fired_at('text ~ "spike"', "openephys", zmq_interface) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fmt", ["json", "binary"])
def test_ttl_and_text_rules_on_the_event_broadcaster(fmt: str) -> None:
    """Event Broadcaster: TTL events and spikes only (no data), as JSON or the GUI's binary
    serialized events; a text rule reads the string members of the JSON ones."""
    sim = OpenEphysSimulator(
        f"tcp://127.0.0.1:{free_port()}", rate=0, count=30, wait_for_subscriber=True,
        plugin="event-broadcaster", format=fmt, **OE_OPTIONS,
    )  # fmt: skip
    items = received_items(sim, "openephys", 30)
    ttl = [i for i in range(30) if sim.plan(i)[0] == "ttl"]
    spikes = [i for i in range(30) if sim.plan(i)[0] == "spike"]
    assert fired_at("ttl 3 low", "openephys", items) == [ttl[3], ttl[11]]
    assert fired_at("ttl 3 high", "openephys", items) == []
    tetrode = fired_at('text ~ "tetrode"', "openephys", items)
    assert tetrode == (spikes if fmt == "json" else [])
    assert fired_at('text == "TTL Input"', "openephys", items) == (ttl if fmt == "json" else [])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("version", ["2.2", "1.0"])
def test_key_rules_on_a_karabo_bridge(version: str) -> None:
    """A REP bridge answering `next`: train i has id 10000000000 + i in the XGM output's
    data.trainId (a scalar) and in every pulse of the detector's image.trainId (an array: a
    raw frame in 2.2, inside the msgpack map in 1.0)."""
    sim = KaraboSimulator(f"tcp://127.0.0.1:{free_port()}", rate=0, count=40, protocol=version)
    items = received_items(sim, "karabo", 40)
    xgm = "SA1_XTD2_XGM/DOOCS/MAIN:output"
    det = "SIM_DET_SMALL/CAL/APPEND_CORRECTED"
    assert fired_at(f"key {xgm} data.trainId > 10000000025", "karabo", items) == [26]
    assert fired_at(f"key {xgm} data.trainId >= 10000000025", "karabo", items) == [25]
    assert fired_at(f"key {xgm} data.trainId == 10000000030", "karabo", items) == [30]
    assert fired_at(f"key {det} image.trainId > 10000000012", "karabo", items) == [13]
    assert fired_at('key SA1_XTD2_XGM/DOOCS/MAIN state.value != "ON"', "karabo", items) == []
    # always beyond (the first value only sets the state), never beyond, and a missing key
    assert fired_at(f"key {xgm} data.trainId > 5", "karabo", items) == []
    assert fired_at(f"key {xgm} data.trainId < 5", "karabo", items) == []
    assert fired_at(f"key {xgm} data.nothing > 5", "karabo", items) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("variant", ["psi", "chunk"])
def test_attr_rules_on_an_adzmq_stream(variant: str) -> None:
    """NDAttributes of frame i (message i): Counter = i + 1 (uint32), Temperature = 21.5 +
    0.01 i, Exposure = 0.01 (1 + i % 5) (a saw tooth), Camera = "sim"."""
    sim = AdzmqSimulator(
        f"tcp://127.0.0.1:{free_port()} PUB", rate=0, count=30, wait_for_subscriber=True,
        variant=variant,
    )  # fmt: skip
    items = received_items(sim, "adzmq", 30)
    assert fired_at("attr Counter > 20", "adzmq", items) == [20]
    assert fired_at("attr Counter <= 20", "adzmq", items) == []  # true from the start
    assert fired_at("attr Temperature >= 21.75", "adzmq", items) == [25]
    assert fired_at("attr Exposure > 0.045", "adzmq", items) == [4, 9, 14, 19, 24, 29]
    assert fired_at("attr Exposure < 0.015", "adzmq", items) == [5, 10, 15, 20, 25]
    assert fired_at('attr Camera == "sim"', "adzmq", items) == []
    assert fired_at('attr Camera != "sim"', "adzmq", items) == []
    assert fired_at("attr Counter > 1000", "adzmq", items) == []
    assert fired_at("attr Missing > 1", "adzmq", items) == []
    assert fired_at("count >= 17", "adzmq", items) == [16]


@pytest.mark.timeout(60)
def test_a_rule_scoped_to_one_stream_ignores_the_others(zmq_interface: list[WriteItem]) -> None:
    """Two streams through one RuleSet, interleaved as their writer threads would: a scoped
    rule reads only its stream; an unscoped one each stream of its protocol, with state kept
    per stream."""
    rules = RuleSet([parse_rule("b: ttl 3 low")], {"a": "openephys", "b": "openephys"})
    only_a = [i for i, item in enumerate(zmq_interface) if rules.check("a", "openephys", item)]
    assert only_a == []
    rules = RuleSet([parse_rule("attr Counter > 3")], {"oe": "openephys", "cam": None})
    first = rules.check("oe", "openephys", zmq_interface[0])
    cam = [Decoded("array", columns={"ndattr.Counter": n}) for n in (1, 2, 3, 4)]
    fired = [rules.check("cam", "adzmq", (0, [b""], d, None)) for d in cam]
    assert first is None and [r is not None for r in fired] == [False, False, False, True]


def test_a_rule_that_auto_proves_wrong_is_reported_not_run() -> None:
    rules = RuleSet([parse_rule("cam: attr T > 1")], {"cam": None})
    item = (0, [b""], Decoded("event", columns={"ndattr.T": 5}), None)
    assert rules.check("cam", "openephys", item) is None
    assert rules.warnings == [
        "trigger rule 'cam: attr T > 1' never fires: attr rules read adzmq messages and "
        "stream 'cam' is openephys"
    ]


# --------------------------------------------------------------------------- armed recording


@pytest.mark.timeout(60)
def test_an_armed_recording_makes_a_run_around_the_message_a_rule_fired_on(tmp_path) -> None:
    """ADZMQ frames at 50/s, armed with `attr Counter > 40` (and a rule that never fires):
    one run, from 0.2 s before frame 41 (Counter 41, the crossing) to 0.3 s after it, whose
    trigger is that rule at that frame's receive time."""
    pre, post = 0.2, 0.3
    port = free_port()
    sim = AdzmqSimulator(
        f"tcp://127.0.0.1:{port} PUB", rate=50, count=100, wait_for_subscriber=True
    )
    plan = TriggerPlan(
        pre_s=pre,
        post_s=post,
        max_bytes=1 << 24,
        rules=("attr Counter > 100000", "attr Counter > 40"),
    )
    spec = SourceSpec(f"tcp://127.0.0.1:{port}", protocol="adzmq")
    sim.bind()
    rec = Recording(tmp_path / "runs", [spec], trigger=plan, flush_interval=0.1)
    rec.start()
    try:
        assert rec.state == "armed" and rec.runs == []
        with running(sim):
            wait_for(lambda: sim.sent >= 100, 30, "the simulator's 100 frames")
            wait_for(
                lambda: rec.streams[0].counters.received >= 100, 20, "the recorder to get them"
            )
            wait_for(lambda: rec.runs and rec.runs[0].status == "complete", 20, "the run to end")
    finally:
        assert rec.finish() == "complete"
    assert len(rec.runs) == 1
    with RunReader(rec.runs[0].path) as run:
        trigger = run.attrs["trigger"]
        held = [
            (json.loads(bytes(m.frames[0]))["frame"], m.recv_ns)
            for m in run.stream("main").messages()
        ]
    assert trigger["rule"] == "attr Counter > 40"
    frames = [f for f, _ in held]
    assert frames == list(range(frames[0], frames[-1] + 1))  # no hole
    at = dict(held)[41]
    assert trigger["at_ns"] == at  # the crossing's receive time is the trigger time
    assert all(at - pre * 1e9 <= t < at + post * 1e9 for _, t in held)
    # 50/s: about 10 frames before and 15 after (how many exactly depends on when they
    # arrived: the window is by receive time, checked above)
    assert frames[0] < 41 < frames[-1] and frames[-1] < 100, frames
