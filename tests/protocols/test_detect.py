"""Protocol detection on hand-built samples of every protocol (shapes from PROTOCOLS.md)."""

from __future__ import annotations

import json
import random

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from karabo_bridge.serializer import serialize

from recorder.protocols.detect import detect_protocol
from recorder.simulators.karabo import KaraboSimulator

NAMES = {"openephys", "adzmq", "pymultivideo", "karabo", "raw"}


def _juce_json(obj: dict, indent: int = 0) -> bytes:
    """JUCE JSON::toString style: multi-line, CRLF, 2-space indent, floats like 30000.0."""
    pad = "  " * (indent + 1)
    items = []
    for key, value in obj.items():
        text = (
            _juce_json(value, indent + 1).decode() if isinstance(value, dict) else json.dumps(value)
        )
        items.append(f'{pad}"{key}": {text}')
    return ("{\r\n" + ",\r\n".join(items) + "\r\n" + "  " * indent + "}").encode()


def openephys_messages() -> list[list[bytes]]:
    msgs = []
    for n in range(1, 4):
        header = {
            "message_num": n,
            "type": "data",
            "content": {
                "stream": "example_data",
                "channel_num": 0,
                "num_samples": 4,
                "sample_num": 1024 * n,
                "sample_rate": 30000.0,
            },
            "data_size": 16,
            "timestamp": 1700000000000 + n,
        }
        msgs.append([b"DATA\x00", _juce_json(header), np.zeros(4, np.float32).tobytes()])
    ttl = {
        "message_num": 4,
        "type": "event",
        "content": {"stream": "example_data", "source_node": 100, "type": 3, "sample_num": 5},
        "data_size": 10,
        "timestamp": 1700000000005,
    }
    msgs.append([b"EVENT\x00", _juce_json(ttl), bytes([1, 1]) + (2).to_bytes(8, "little")])
    spike = {
        "message_num": 5,
        "type": "spike",
        "spike": {
            "stream": "s",
            "source_node": 101,
            "electrode": "SE0",
            "sample_num": 9,
            "num_channels": 1,
            "num_samples": 2,
            "sorted_id": 0,
            "threshold": [-50.0],
        },
        "timestamp": 1700000000006,
    }
    msgs.append([b"EVENT\x00", _juce_json(spike), np.zeros(2, np.float32).tobytes()])
    return msgs


def openephys_legacy_messages() -> list[list[bytes]]:
    header = {
        "message_no": 1,
        "type": "data",
        "content": {
            "n_channels": 2,
            "n_samples": 3,
            "n_real_samples": 3,
            "timestamp": 0,
            "sample_rate": 30000,
        },
        "data_size": 24,
    }
    return [[b"DATA\x00", _juce_json(header), bytes(24)]] * 3


def event_broadcaster_messages() -> list[list[bytes]]:
    ttl = json.dumps({"event_type": "ttl", "line": 1, "state": True}).encode()
    return [[b"\x00\x00", ttl], [b"\x01\x00", bytes(40)], [b"\x00\x00", ttl]]


def adzmq_messages(htype: str = '"array-1.0"') -> list[list[bytes]]:
    msgs = []
    for frame in range(3):
        header = (
            f'{{"htype":{htype}, "type":"uint16", "shape":[3,4], "frame":{frame}, '
            f'"timeStamp":{1000.5 + frame:.17g}, "encoding":"", '
            f'"ndattr":{{"Temp":21.5, "Name":"det", "Bad":"Undefined"}}}}'
        )
        msgs.append([header.encode(), np.arange(12, dtype=np.uint16).tobytes()])
    return msgs


def pymultivideo_messages() -> list[list[bytes]]:
    return [
        [
            b"image",
            msgpack.packb(
                {"unique_id": "cam-0", "timestamp": n * 100_000_000, "height": 4, "width": 6}
            ),
            bytes(24),
        ]
        for n in range(3)
    ]


def karabo_messages(protocol: str) -> list[list[bytes]]:
    sim = KaraboSimulator(protocol=protocol, n_sources=2)
    return [sim.message(i) for i in range(3)]


def karabo_bridge_messages(protocol: str) -> list[list[bytes]]:
    data = {"A/B/C": {"x": 1, "img": np.ones((2, 2), np.uint8)}}
    meta = {"A/B/C": {"source": "A/B/C", "timestamp.tid": 5}}
    return [[bytes(f) for f in serialize(data, meta, protocol_version=protocol)]] * 2


SAMPLES = {
    "openephys": openephys_messages,
    "openephys legacy": openephys_legacy_messages,
    "openephys event-broadcaster": event_broadcaster_messages,
    "adzmq": adzmq_messages,
    "adzmq pre-1.4": lambda: adzmq_messages('["array-1.0"]'),
    "adzmq diamond": lambda: adzmq_messages('["chunk-1.0"]'),
    "adzmq with STOP": lambda: [[b"STOP"], *adzmq_messages(), [b"STOP"]],
    "pymultivideo": pymultivideo_messages,
    "karabo 2.2": lambda: karabo_messages("2.2"),
    "karabo 1.0": lambda: karabo_messages("1.0"),
    "karabo_bridge 2.2": lambda: karabo_bridge_messages("2.2"),
    "karabo_bridge 1.0": lambda: karabo_bridge_messages("1.0"),
}


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_detects_each_protocol(sample):
    expected = sample.split()[0].split("_")[0]
    messages = SAMPLES[sample]()
    assert detect_protocol(messages) == expected
    assert detect_protocol(iter(messages)) == expected  # a generator works too
    assert detect_protocol([[memoryview(f) for f in m] for m in messages]) == expected


def test_random_bytes_are_raw():
    rnd = random.Random(1)
    for n_frames in (1, 2, 3, 4):
        messages = [[rnd.randbytes(rnd.randint(0, 200)) for _ in range(n_frames)] for _ in range(5)]
        assert detect_protocol(messages) == "raw"


def test_unclear_streams_are_raw():
    one_karabo = [*karabo_messages("2.2")[:1], [b"hello"], [b"world"], [b"!"]]
    assert detect_protocol(one_karabo) == "raw"
    assert detect_protocol([]) == "raw"
    assert detect_protocol([[b"STOP"]] * 3) == "raw"
    assert detect_protocol([[b"DATA\x00", b"not json", b""]]) == "raw"
    assert detect_protocol([[b"image", b"\x80", b""]]) == "raw"
    assert detect_protocol([[b'{"htype":"other-1.0"}', b""]]) == "raw"


@pytest.mark.parametrize("garbage", [None, 5, [None], [[None, 3]], [[]], [[b""]], [[""]], "text"])
def test_never_raises(garbage):
    assert detect_protocol(garbage) == "raw"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.binary(max_size=40), max_size=5), max_size=12))
def test_fuzz_never_raises(messages):
    assert detect_protocol(messages) in NAMES
