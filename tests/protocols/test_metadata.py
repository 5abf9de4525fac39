"""Complete metadata as data: every decoded header field comes back as a typed column (or a
typed array, or JSON text when it is neither), and each protocol says what seq, source_ns and
its columns mean. Messages are the ones the simulators (faithful to the real sources) send."""

from __future__ import annotations

import json

import msgpack
import numpy as np
import pytest

from recorder.protocols import adzmq, karabo, registry
from recorder.protocols import openephys as oe
from recorder.protocols import pymultivideo as pmv
from recorder.protocols.base import BulkFrame
from recorder.protocols.descriptor import StreamMeaning
from recorder.simulators.adzmq import AdzmqSimulator
from recorder.simulators.karabo import KaraboSimulator
from recorder.simulators.openephys import OpenEphysSimulator
from recorder.simulators.pymultivideo import PyMultiVideoSimulator
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- meanings


@pytest.mark.parametrize("name", registry.names())
def test_every_protocol_says_what_its_numbers_mean(name):
    meaning = registry.get(name).meaning
    assert isinstance(meaning, StreamMeaning)
    attrs = meaning.as_attrs()
    json.dumps(attrs)  # stored as zarr attributes: must be plain JSON
    if name in ("openephys", "adzmq", "karabo"):
        assert meaning.seq and meaning.source_time
    if name in ("reqrep", "raw", "pymultivideo"):
        assert meaning.seq == ""  # these send no sequence number: seq is always -1


def derived_map(d) -> dict:
    """name -> array of a decoded message's typed copies (tuples or ragged BulkFrames)."""
    return {
        (b.name if isinstance(b, BulkFrame) else b[0]): (
            b.array if isinstance(b, BulkFrame) else b[1]
        )
        for b in d.derived
    }


def test_source_epochs():
    epochs = {d.name: d.meaning.source_epoch for d in registry.descriptors()}
    assert epochs["adzmq"] == "1990-01-01"  # NDArray timeStamp: EPICS epoch
    assert epochs["karabo"] == "1970-01-01"
    assert epochs["openephys"] == "1970-01-01"  # header timestamp: ms since the Unix epoch
    assert epochs["pymultivideo"] is None  # the camera's own clock


def test_event_type_codes_are_explained():
    text = oe.DESCRIPTOR.meaning.columns["event_type"]
    for code, name in oe.EVENT_TYPES.items():
        assert f"{code} {name}" in text


# --------------------------------------------------------------------------- ADZMQ


def _adzmq(ndattr: str, frame: int = 1, shape: str = "[2,3]") -> list[bytes]:
    header = (
        f'{{"htype":"array-1.0", "type":"uint8", "shape":{shape}, "frame":{frame}, '
        f'"timeStamp":1.5, "encoding":"", "ndattr":{ndattr}}}'
    )
    n = int(np.prod(json.loads(shape)))
    return [header.encode(), bytes(n)]


@pytest.mark.parametrize("variant", adzmq.VARIANTS)
def test_adzmq_ndattr_types_as_the_header_says(variant):
    sim = AdzmqSimulator(variant=variant, height=4, width=5)
    codec = adzmq.AdzmqCodec()
    d = codec.decode(sim.message(2))
    cols = d.columns
    assert type(cols["ndattr.ColorMode"]) is int and cols["ndattr.ColorMode"] == 0
    assert type(cols["ndattr.Counter"]) is int and cols["ndattr.Counter"] == 3
    assert type(cols["ndattr.Exposure"]) is float
    assert np.float32(cols["ndattr.Exposure"]) == sim.ndattr(2)["Exposure"]
    assert cols["ndattr.Camera"] == "sim"
    if variant != "chunk":
        assert cols["ndattr.Temperature"] == sim.ndattr(2)["Temperature"]


def test_adzmq_chunk_float_printed_as_integer_is_float():
    header = (
        b'{"htype":["chunk-1.0"], "type":"uint8", "shape":[1], "frame":1, '
        b'"ndattr":{"Gain":{ "value":2,"dataType":"float64"},'
        b'"Count":{ "value":2,"dataType":"uint32"},"Name":{ "value":"x","dataType":"string"}}}'
    )
    cols = adzmq.AdzmqCodec().decode([header, b"\0"]).columns
    assert type(cols["ndattr.Gain"]) is float and cols["ndattr.Gain"] == 2.0
    assert type(cols["ndattr.Count"]) is int and cols["ndattr.Name"] == "x"


def test_adzmq_float_attribute_first_integral_widens_to_its_own_column():
    """%.17g prints a float64 attribute of 1.0 as `1`: the column is int64 until a fraction
    shows up; from then on the values go to ndattr.<name>.float64, none stored as missing."""
    codec = adzmq.AdzmqCodec()
    first = codec.decode(_adzmq('{"AcquireTime":1,"Id":7}')).columns
    assert first["ndattr.AcquireTime"] == 1 and type(first["ndattr.AcquireTime"]) is int
    later = codec.decode(_adzmq('{"AcquireTime":0.5,"Id":8}', frame=2)).columns
    assert "ndattr.AcquireTime" not in later and later["ndattr.AcquireTime.float64"] == 0.5
    again = codec.decode(_adzmq('{"AcquireTime":2,"Id":9}', frame=3)).columns
    assert again["ndattr.AcquireTime.float64"] == 2.0
    assert type(again["ndattr.AcquireTime.float64"]) is float
    assert again["ndattr.Id"] == 9 and type(again["ndattr.Id"]) is int


def test_adzmq_undefined_for_a_number_is_left_out():
    codec = adzmq.AdzmqCodec()
    codec.decode(_adzmq('{"T":3}'))
    assert "ndattr.T" not in codec.decode(_adzmq('{"T":"Undefined"}', frame=2)).columns


@pytest.mark.parametrize(
    ("shape", "ndattr", "dims"),
    [
        ("[7]", "{}", ("x",)),
        ("[2,3]", "{}", ("y", "x")),
        ("[2,3,3]", '{"ColorMode":2}', ("y", "x", "color")),
        ("[2,3,3]", '{"ColorMode":3}', ("y", "color", "x")),
        ("[3,2,3]", '{"ColorMode":4}', ("color", "y", "x")),
        ("[2,3,4]", "{}", None),
    ],
)
def test_adzmq_image_dims(shape, ndattr, dims):
    (bulk,) = adzmq.AdzmqCodec().decode(_adzmq(ndattr, shape=shape)).bulk
    assert bulk.dims == dims and bulk.ragged is False


def test_adzmq_pre14_shape_is_reversed_to_y_x():
    sim = AdzmqSimulator(variant="pre14", height=4, width=5)
    (bulk,) = adzmq.AdzmqCodec().decode(sim.message(0)).bulk
    assert bulk.array.shape == (4, 5) and bulk.dims == ("y", "x")


def test_adzmq_compressed_array_keeps_type_and_shape_as_columns():
    header = (
        b'{"htype":"array-1.0", "type":"uint16", "shape":[600,800], "frame":3, '
        b'"timeStamp":1, "encoding":"blosc", "ndattr":{}}'
    )
    d = adzmq.AdzmqCodec().decode([header, b"compressed"])
    assert d.bulk == []
    assert (d.columns["encoding"], d.columns["type"], d.columns["shape"]) == (
        "blosc",
        "uint16",
        "600,800",
    )


def test_adzmq_typed_columns_read_back_from_a_run(tmp_path):
    """Through the store: an int NDAttribute reads back as int64, a string one as str."""
    sim = AdzmqSimulator(height=3, width=4)
    codec = adzmq.AdzmqCodec()
    run = RunWriter(tmp_path, name="attrs")
    stream = run.add_stream(
        "cam", protocol="adzmq", endpoint="tcp://h:1", socket_type="SUB", role="connect"
    )
    for i in range(5):
        frames = sim.message(i)
        stream.append(1_000 + i, frames, codec.decode(frames))
    run.close()
    with RunReader(run.path) as r:
        s = r.stream("cam")
        counter = s.column("ndattr.Counter")
        assert counter.dtype == np.int64 and counter.tolist() == [1, 2, 3, 4, 5]
        assert s.column("ndattr.ColorMode").dtype == np.int64
        camera = s.column("ndattr.Camera")
        assert [str(v) for v in camera] == ["sim"] * 5 and isinstance(camera[0], str)
        assert s.column("ndattr.Exposure").dtype == np.float64


# --------------------------------------------------------------------------- Karabo


def _decode_train(protocol: str, i: int = 0, **opts):
    sim = KaraboSimulator(protocol=protocol, **opts)
    return sim, karabo.KaraboCodec().decode(sim.message(i))


@pytest.mark.parametrize("protocol", ["2.2", "1.0"])
def test_karabo_per_source_timestamps(protocol):
    sim, d = _decode_train(protocol, 3)
    _, metadata = sim.train(3)
    for src, meta in metadata.items():
        ns = int(meta["timestamp.sec"]) * 10**9 + int(meta["timestamp.frac"][:9])
        assert d.columns[f"{src}:metadata.timestamp_ns"] == ns
        assert d.columns[f"{src}:metadata.timestamp.tid"] == meta["timestamp.tid"]
    assert not any(k.endswith(":metadata.source") for k in d.columns)


def test_karabo_sources_with_different_timestamps_keep_each():
    data = {"A": {"x": 1}, "B": {"x": 2}}
    meta = {
        "A": {"source": "A", "timestamp.tid": 10, "timestamp.sec": "5", "timestamp.frac": "1"},
        "B": {"source": "B", "timestamp.tid": 11, "timestamp.sec": "6", "timestamp.frac": "2"},
    }
    d = karabo.KaraboCodec().decode(karabo.encode_train(data, meta))
    assert d.columns["A:metadata.timestamp_ns"] == 5_100_000_000
    assert d.columns["B:metadata.timestamp_ns"] == 6_200_000_000
    assert (d.columns["A:metadata.timestamp.tid"], d.columns["B:metadata.timestamp.tid"]) == (
        10,
        11,
    )
    assert d.seq == 10 and d.columns["tid_mismatch"] is True


@pytest.mark.parametrize("protocol", ["2.2", "1.0"])
def test_karabo_list_and_string_values(protocol):
    sim, d = _decode_train(protocol, 0)
    data, _ = sim.train(0)
    src = sim.detector.source  # a detector of 2 modules: lists of module sources and flags
    passport = data[src]["image.passport"]
    assert json.loads(d.columns[f"{src}:image.passport"]) == passport  # list of str: JSON
    assert json.loads(d.columns[f"{src}:sources"]) == data[src]["sources"]
    derived = derived_map(d)
    present = derived[f"{src}:modulesPresent"]  # list of bools: a typed array
    assert present.dtype == np.bool_ and present.tolist() == data[src]["modulesPresent"]


def test_karabo_value_types():
    data = {
        "S": {
            "i": 3,
            "f": 0.5,
            "b": True,
            "t": "text",
            "ints": [1, 2, 3],
            "floats": [1, 2.5],
            "grid": [[1, 2], [3, 4]],
            "mixed": [1, "a"],
            "wide": [-(2**63), 2**64 - 1],  # no one integer type holds both: JSON, not rounded
            "empty": [],
            "node": {"deep": {"v": 7}},
        }
    }
    meta = {"S": {"source": "S", "timestamp.tid": 1, "ignored_keys": ["a", "b"]}}
    d = karabo.KaraboCodec().decode(karabo.encode_train(data, meta))
    c = d.columns
    assert (type(c["S:i"]), type(c["S:f"]), type(c["S:b"]), c["S:t"]) == (int, float, bool, "text")
    assert c["S:node.deep.v"] == 7
    assert json.loads(c["S:mixed"]) == [1, "a"] and c["S:empty"] == "[]"
    assert json.loads(c["S:wide"]) == [-(2**63), 2**64 - 1]
    assert json.loads(c["S:metadata.ignored_keys"]) == ["a", "b"]
    derived = derived_map(d)
    assert derived["S:ints"].dtype == np.int64 and derived["S:ints"].tolist() == [1, 2, 3]
    assert derived["S:floats"].dtype == np.float64
    assert derived["S:grid"].shape == (2, 2)


def test_karabo_v1_numpy_scalars_are_typed_columns():
    data = {"S": {"n": np.int32(-4), "x": np.float32(0.25), "arr": np.arange(3, dtype="<u2")}}
    meta = {"S": {"source": "S", "timestamp.tid": 9}}
    d = karabo.KaraboCodec().decode(karabo.encode_train(data, meta, protocol="1.0"))
    assert d.columns["S:n"] == -4 and type(d.columns["S:n"]) is int
    assert d.columns["S:x"] == 0.25 and type(d.columns["S:x"]) is float
    (name, arr), *_ = derived_map(d).items()
    assert name == "S:arr" and arr.tolist() == [0, 1, 2]


@pytest.mark.parametrize("protocol", ["2.2", "1.0"])
def test_karabo_arrays_are_ragged_along_the_first_axis(protocol):
    data = {"S": {"pulses": np.arange(5.0), "scalar": np.array(3, dtype="<i4")}}
    meta = {"S": {"source": "S", "timestamp.tid": 1}}
    d = karabo.KaraboCodec().decode(karabo.encode_train(data, meta, protocol=protocol))
    if protocol == "2.2":
        ragged = {b.name: b.ragged for b in d.bulk}
        assert ragged == {"S:pulses": True, "S:scalar": False}
    else:  # 1.0: typed copies of the arrays inside the one msgpack frame
        assert {name: arr.ndim for name, arr in derived_map(d).items()} == {
            "S:pulses": 1,
            "S:scalar": 0,
        }


def test_karabo_simulator_bulk_is_ragged():
    _, d = _decode_train("2.2", 0)
    assert d.bulk and all(b.ragged == (b.array.ndim >= 1) for b in d.bulk)


def test_karabo_repeated_list_reuses_its_json_text():
    codec = karabo.KaraboCodec()
    data = {"S": {"names": ["a", "b"]}}
    meta = {"S": {"source": "S", "timestamp.tid": 1}}
    first = codec.decode(karabo.encode_train(data, meta)).columns["S:names"]
    second = codec.decode(karabo.encode_train(data, meta)).columns["S:names"]
    assert first == second == '["a", "b"]' and first is second
    data["S"]["names"] = ["a", "c"]
    assert codec.decode(karabo.encode_train(data, meta)).columns["S:names"] == '["a", "c"]'


# --------------------------------------------------------------------------- Open Ephys


def test_openephys_ttl_state_is_bool():
    frames = oe.encode_ttl(message_num=1, stream="s", source_node=1, sample_num=0, line=2, state=1)
    cols = oe.OpenEphysCodec().decode(frames).columns
    assert cols["state"] is True and cols["line"] == 2 and cols["event_type"] == oe.TTL


def test_openephys_spike_threshold_and_dims():
    frames = oe.encode_spike(
        np.zeros((2, 4), "<f4"),
        message_num=1,
        stream="s",
        source_node=1,
        electrode="e",
        sample_num=0,
        threshold=[-50.0, -42.5],
    )
    d = oe.OpenEphysCodec().decode(frames)
    assert d.bulk[0].dims == ("channel", "sample")
    ((name, threshold),) = derived_map(d).items()
    assert name == "spike_threshold/s/e" and threshold.dtype == np.float32
    assert threshold.tolist() == [-50.0, -42.5]


def test_openephys_data_from_the_simulator_claims_no_units():
    """The ZMQ Interface sends neither bit_volts nor units: none are made up."""
    d = oe.OpenEphysCodec().decode(OpenEphysSimulator().message(0))
    (bulk,) = d.bulk
    assert bulk.units is None and bulk.scale is None
    assert "bit_volts" not in d.columns


def test_openephys_bit_volts_and_units_when_sent():
    frames = oe.encode_data(
        np.zeros(4, "<f4"),
        message_num=1,
        stream="s",
        channel_num=0,
        sample_num=0,
        sample_rate=30000.0,
        timestamp_ms=5,
    )
    header = json.loads(frames[1])
    header["content"].update(bit_volts=0.195, units="uV", gain=[1, 2])
    d = oe.OpenEphysCodec().decode([frames[0], json.dumps(header).encode(), frames[2]])
    assert d.columns["bit_volts"] == 0.195 and d.columns["units"] == "uV"
    assert d.columns["gain"] == "[1,2]"
    (bulk,) = d.bulk
    # the samples are the GUI's float buffers, already in uV: bit_volts is not their scale
    assert bulk.units == "uV" and bulk.scale is None


def test_openephys_legacy_block_dims():
    d = oe.OpenEphysCodec().decode(OpenEphysSimulator(legacy=True, n_channels=2).message(0))
    assert d.bulk[0].dims == ("channel", "sample")


# --------------------------------------------------------------------------- pyMultiVideo


def test_pymultivideo_dims_and_extra_meta():
    sim = PyMultiVideoSimulator()
    d = pmv.PyMultiVideoCodec().decode(sim.message(1))
    assert d.bulk[0].dims == ("y", "x") and d.columns == {"unique_id": sim.unique_id}
    frames = sim.message(1)
    meta = msgpack.unpackb(frames[1])
    meta.update(fps=10.0, roi=[1, 2])
    d = pmv.PyMultiVideoCodec().decode([frames[0], msgpack.packb(meta), frames[2]])
    assert d.columns["fps"] == 10.0 and d.columns["roi"] == "[1,2]"


def test_karabo_per_source_columns_read_back_from_a_run(tmp_path):
    sim = KaraboSimulator()
    codec = karabo.KaraboCodec()
    run = RunWriter(tmp_path, name="trains")
    stream = run.add_stream(
        "bridge", protocol="karabo", endpoint="tcp://h:1", socket_type="REQ", role="connect"
    )
    for i in range(3):
        frames = sim.message(i)
        stream.append(1_000 + i, frames, codec.decode(frames))
    run.close()
    src = sim.detector.source
    with RunReader(run.path) as r:
        s = r.stream("bridge")
        ns = s.column(f"{src}:metadata.timestamp_ns")
        tid = s.column(f"{src}:metadata.timestamp.tid")
        assert ns.dtype == np.int64 and tid.dtype == np.int64
        for i in range(3):
            meta = sim.train(i)[1][src]
            want = int(meta["timestamp.sec"]) * 10**9 + int(meta["timestamp.frac"][:9])
            assert (int(ns[i]), int(tid[i])) == (want, meta["timestamp.tid"])
        passports = s.column(f"{src}:image.passport")
        assert [json.loads(str(p)) for p in passports] == [
            sim.train(i)[0][src]["image.passport"] for i in range(3)
        ]
