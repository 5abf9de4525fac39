"""The run views' API: frames by contrast and colour map at any size, a frame's details, the
message inspector's paging (hex, columns, Karabo trains, sources and keys) and the list of
plottable columns; bad parameters answer with the error envelope, never a traceback."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from recorder import config
from recorder.web import create_app
from tests.web.webhelp import API, recorded_run

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def views(tmp_path_factory):
    """One data folder with an ADZMQ, a Karabo and a raw run, and a client with a token."""
    data = tmp_path_factory.mktemp("views") / "data"
    config.data_dir(data)
    runs = {p: recorded_run(data, p, 6) for p in ("adzmq", "karabo", "raw")}
    app = create_app(data)
    secret, _ = app.extensions["recorder"].control.create_token("tests")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return SimpleNamespace(client=client, runs=runs)


def _url(views, protocol: str, tail: str) -> str:
    return f"{API}/runs/{views.runs[protocol]}/streams/main/{tail}"


def _png(views, protocol: str, query: str) -> Image.Image:
    r = views.client.get(_url(views, protocol, f"frames/2.png?{query}"))
    assert r.status_code == 200, r.get_json()
    assert r.mimetype == "image/png"
    return Image.open(io.BytesIO(r.data))


def _refused(r, status: int = 422) -> dict:
    assert r.status_code == status, (r.status_code, r.data[:300])
    err = r.get_json()["error"]
    assert err["code"] and err["message"]
    return err


def test_a_frame_at_full_resolution_or_scaled_down(views):
    assert _png(views, "adzmq", "size=16").size == (16, 12)
    assert _png(views, "adzmq", "size=16&full=true").size == (64, 48)  # full wins over size


def test_colour_maps_colour_a_one_channel_frame(views):
    assert _png(views, "adzmq", "").mode == "L"
    viridis = np.asarray(_png(views, "adzmq", "cmap=viridis&contrast=minmax"))
    assert viridis.shape == (48, 64, 3)
    darkest = viridis.reshape(-1, 3)[np.argmin(viridis.reshape(-1, 3).sum(axis=1))]
    assert tuple(darkest) == (0x44, 0x01, 0x54)  # viridis starts dark purple, not black


def test_contrast_limits_decide_black_and_white(views):
    low = np.asarray(_png(views, "adzmq", "contrast=manual&lo=0&hi=1"))
    assert (low == 255).all()  # every uint16 pixel of the simulator is above 1
    minmax = np.asarray(_png(views, "adzmq", "contrast=minmax"))
    assert minmax.min() == 0 and minmax.max() == 255
    tight = np.asarray(_png(views, "adzmq", "contrast=percentile&plo=40&phi=60"))
    # a narrow window saturates more pixels than the full range does
    assert (tight == 255).sum() + (tight == 0).sum() > (minmax == 255).sum() + (minmax == 0).sum()


@pytest.mark.parametrize(
    "query",
    [
        "cmap=rainbow",
        "contrast=bright",
        "contrast=manual&lo=5",
        "contrast=manual&lo=5&hi=5",
        "plo=90&phi=10",
        "phi=101",
        "lo=abc&hi=3",
        "size=5",
        "full=maybe",
    ],
)
def test_bad_image_parameters_are_refused_with_the_envelope(views, query):
    _refused(views.client.get(_url(views, "adzmq", f"frames/0.png?{query}")))


def test_a_frame_past_the_end_is_404(views):
    _refused(views.client.get(_url(views, "adzmq", "frames/99.png")), 404)
    _refused(views.client.get(_url(views, "adzmq", "frames/99")), 404)
    _refused(views.client.get(_url(views, "raw", "frames/0.png")), 404)  # no image at all
    bare = views.client.get(_url(views, "raw", "frames/0")).get_json()
    assert bare["images"] == [] and bare["stats"] is None  # its details all the same


def test_frame_details_give_number_time_id_attributes_and_values(views):
    d = views.client.get(_url(views, "adzmq", "frames/3")).get_json()
    assert d["index"] == 3 and d["total"] == 6
    started = views.client.get(f"{API}/runs/{views.runs['adzmq']}").get_json()["started_ns"]
    assert d["t_s"] == pytest.approx((d["recv_ns"] - started) / 1e9)  # may be just below 0
    assert d["unique_id"] == d["attributes"]["seq"]
    assert {"ndattr.Temperature", "ndattr.Exposure", "timeStamp"} <= set(d["attributes"])
    assert "first_frame" not in d["attributes"]  # storage bookkeeping is not an attribute
    assert d["images"] == [{"array": "image", "dtype": "uint16", "shape": [48, 64]}]
    st = d["stats"]
    assert st["min"] <= st["p0_5"] <= st["mean"] <= st["p99_5"] <= st["max"]


def test_inspector_pages_with_hex_and_columns(views):
    page = views.client.get(_url(views, "raw", "messages?start=2&limit=2&hex_bytes=300")).get_json()
    assert page["start"] == 2 and page["total"] == 6
    assert [m["index"] for m in page["messages"]] == [2, 3]
    frames = page["messages"][0]["frames"]
    assert [f["index"] for f in frames] == [0, 1] and all(f["size"] > 0 for f in frames)
    payload = frames[1]
    assert payload["kind"] == "bytes" and len(payload["hex"]) == 600  # 300 bytes as hex
    assert page["messages"][0]["columns"]["seq"] == page["messages"][0]["seq"]
    assert page["sources"] == [] and page["keys"] == {}


def test_inspector_starts_at_a_time(views):
    first = views.client.get(_url(views, "raw", "messages?start=4&limit=1")).get_json()
    t = first["messages"][0]["t_s"]
    page = views.client.get(_url(views, "raw", f"messages?t_s={max(t, 0)}&limit=1")).get_json()
    assert page["messages"][0]["t_s"] >= max(t, 0) - 1e-9
    assert page["start"] <= 4


def test_inspector_finds_a_karabo_train_and_narrows_to_a_source_and_key(views):
    c = views.client
    tids = [
        m["columns"]["train_id"]
        for m in c.get(_url(views, "karabo", "messages")).get_json()["messages"]
    ]
    page = c.get(_url(views, "karabo", f"messages?train_id={tids[3]}&limit=1")).get_json()
    assert page["start"] == 3 and page["messages"][0]["columns"]["train_id"] == tids[3]
    assert "SA1_XTD2_XGM/DOOCS/MAIN" in page["sources"]
    assert "pulseEnergy.photonFlux.value" in page["keys"]["SA1_XTD2_XGM/DOOCS/MAIN"]

    src = "SA1_XTD2_XGM/DOOCS/MAIN"
    one = c.get(_url(views, "karabo", f"messages?train_id={tids[3]}&limit=1&source={src}"))
    frames = one.get_json()["messages"][0]["frames"]
    assert frames and {f["source"] for f in frames} == {src}
    key = "pulseEnergy.photonFlux.value"
    narrowed = c.get(
        _url(views, "karabo", f"messages?train_id={tids[3]}&limit=1&source={src}&key={key}")
    ).get_json()["messages"][0]["frames"]
    values = [
        f["value"] for f in narrowed if f["kind"] == "msgpack" and "content" not in f["value"]
    ]
    assert values and list(values[0]) == [key]

    _refused(c.get(_url(views, "karabo", "messages?train_id=1")), 404)  # no such train
    _refused(c.get(_url(views, "karabo", "messages?source=NOPE")), 404)
    _refused(c.get(_url(views, "raw", "messages?train_id=1")), 400)  # raw has no trains


@pytest.mark.parametrize(
    "query",
    ["limit=500&hex_bytes=4096", "hex_bytes=5000", "key=x", "train_id=-1", "t_s=-1", "limit=0"],
)
def test_bad_inspector_parameters_are_refused_with_the_envelope(views, query):
    _refused(views.client.get(_url(views, "karabo", f"messages?{query}")))


def test_columns_list_what_can_be_plotted(views):
    cols = views.client.get(_url(views, "adzmq", "columns")).get_json()
    by_name = {c["name"]: c for c in cols["columns"]}
    assert by_name["ndattr.Temperature"]["numeric"] is True
    assert "flags" not in by_name
    karabo = views.client.get(_url(views, "karabo", "columns")).get_json()["columns"]
    numeric = {c["name"] for c in karabo if c["numeric"]}
    assert {"train_id", "SA1_XTD2_XGM/DOOCS/MAIN:pulseEnergy.photonFlux.value"} <= numeric
    assert "SA1_XTD2_XGM/DOOCS/MAIN:state.value" not in numeric
    _refused(views.client.get(f"{API}/runs/{views.runs['raw']}/streams/nope/columns"), 404)
