"""The live view over HTTP, from a real manager and worker recording real simulators: the
latest message of every stream (ADZMQ images, Open Ephys blocks, Karabo trains, raw bytes)
advances, renders and stays within its rate bound; previews of saved sources make no run and
stop by themselves when nobody reads them."""

from __future__ import annotations

import contextlib
import io
import os
import time

import numpy as np
import pytest
from PIL import Image

from recorder.recording import live
from recorder.simulators import make_simulator
from tests.helpers import wait_for
from tests.recordhelp import running
from tests.web.webhelp import API, wait_json


@contextlib.contextmanager
def simulators():
    sims = {
        "cam": ("adzmq", make_simulator("adzmq", "tcp://127.0.0.1:* PUB", rate=50)),
        "ephys": ("openephys", make_simulator("openephys", "tcp://127.0.0.1:0", rate=30)),
        "train": ("karabo", make_simulator("karabo", "tcp://127.0.0.1:*", rate=20)),
        "noise": ("raw", make_simulator("raw", "tcp://127.0.0.1:*", rate=50)),
    }
    sources = [
        {"protocol": proto, "endpoint": sim.bind(), "stream": name}
        for name, (proto, sim) in sims.items()
    ]
    with contextlib.ExitStack() as stack:
        for _, sim in sims.values():
            stack.enter_context(running(sim))
        yield sources


def _live(client, job_id: str, stream: str = "") -> str:
    return f"{API}/recordings/{job_id}/live" + (f"/{stream}" if stream else "")


def _inodes(path, seconds: float) -> int:
    """File replacements seen while polling much faster than the publisher may write."""
    changes, last = 0, None
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(path)
            now = (st.st_ino, st.st_mtime_ns)
            changes += last is not None and now != last
            last = now
        time.sleep(0.005)
    return changes


@pytest.mark.timeout(180)
def test_live_view_of_a_running_recording(client, manager, data):
    with simulators() as sources:
        r = client.post(f"{API}/recordings", json={"sources": sources, "flush_interval_s": 0.2})
        assert r.status_code == 201, r.get_json()
        job_id = r.get_json()["id"]
        listing = wait_json(
            client,
            _live(client, job_id),
            lambda j: all(s["recv_ns"] for s in j["streams"]),
            timeout=60,
            what="a message on every stream",
        )
        assert [s["stream"] for s in listing["streams"]] == ["cam", "ephys", "train", "noise"]
        assert listing["preview"] is False and listing["id"] == job_id
        by_name = {s["stream"]: s for s in listing["streams"]}
        assert by_name["cam"]["protocol"] == "adzmq" and by_name["cam"]["size"] > 48 * 64 * 2
        assert by_name["cam"]["summary"]["image"].endswith("/live/cam/image.png")
        assert by_name["train"]["summary"]["train_id"] is not None
        assert all(0 <= s["age_s"] < 30 for s in listing["streams"])

        # ADZMQ: the frame number advances; the image renders at the frame's shape.
        cam = client.get(_live(client, job_id, "cam")).get_json()
        assert cam["kind"] == "array" and cam["arrays"][0]["shape"] == [48, 64]
        assert cam["frames"][0]["kind"] == "json"  # the header, decoded for display
        wait_json(client, _live(client, job_id, "cam"), lambda j: j["seq"] > cam["seq"])
        png = client.get(cam["image"])
        assert png.status_code == 200 and png.mimetype == "image/png"
        assert Image.open(io.BytesIO(png.data)).size == (64, 48)
        small = client.get(cam["image"] + "?size=32")
        assert Image.open(io.BytesIO(small.data)).size == (32, 24)

        # Open Ephys: the block as a decimated waveform (the latest message may be a TTL event
        # or a spike between blocks: wait for a data block to be the latest one)
        def latest_block():
            out = client.get(_live(client, job_id, "ephys") + "?points=10").get_json()
            return out if out["waveform"] is not None else None

        ephys = wait_for(latest_block, 20, "an Open Ephys data block as the latest message", 0.1)
        wave = ephys["waveform"]
        assert wave is not None and wave["channels"] and len(wave["x"]) <= 10
        assert len(wave["values"][0]) == len(wave["x"])

        # Karabo: the train id advances, with its sources and keys.
        train = client.get(_live(client, job_id, "train")).get_json()["train"]
        assert train["sources"] and train["keys"]
        assert any(k.get("shape") for k in train["keys"])
        wait_json(
            client,
            _live(client, job_id, "train"),
            lambda j: j["train"]["train_id"] > train["train_id"],
        )

        # Raw: sizes and the first bytes in hex; no image to render.
        noise = client.get(_live(client, job_id, "noise")).get_json()
        assert noise["frames"] and all("hex" in f and f["size"] >= 0 for f in noise["frames"])
        assert client.get(f"{_live(client, job_id, 'noise')}/image.png").status_code == 404

        # Unknown names: 404 with the envelope.
        r = client.get(_live(client, job_id, "nope"))
        assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
        assert client.get(_live(client, "rec-000000000000")).status_code == 404
        assert client.get(_live(client, "../runs")).status_code == 404

        # At most 4 files a second per stream, though ADZMQ sends 50 messages a second.
        folder = live.job_folder(data, job_id)
        replaced = _inodes(folder / "cam", 2.0)
        assert 2 <= replaced <= 2 * live.RATE_HZ + 2, replaced

        assert client.post(f"{API}/recordings/{job_id}/stop").status_code == 200
        wait_json(client, f"{API}/recordings/{job_id}", lambda j: j["state"] == "stopped")
    wait_for(lambda: not folder.exists(), 10, "the live folder removed with the job")
    # An ended recording is no error: its state, so a page polling it knows it ended.
    r = client.get(_live(client, job_id, "cam"))
    assert r.status_code == 200, r.get_json()
    ended = r.get_json()
    assert ended["state"] == "stopped" and ended["live"] is False and "ended" in ended["reason"]
    assert ended["recv_ns"] is None and ended["waveform"] is None and ended["frames"] == []
    assert client.get(_live(client, job_id, "cam") + "/image.png").status_code == 409
    assert client.get(_live(client, job_id, "nope")).status_code == 404, "unknown stays 404"
    # A worker killed outright leaves its folder behind: a read of the ended job removes it.
    folder.mkdir(parents=True)
    live.write_message(folder, "cam", "raw", 1, [b"stale"])
    stale = client.get(_live(client, job_id, "cam"))
    assert stale.status_code == 200 and stale.get_json()["live"] is False
    assert not folder.exists()


def test_a_live_stream_shows_its_message_with_the_recordings_state(client, control, data):
    job_id = _job_with_live_files(control, data, {"noise": ("raw", [b"abc"])})
    out = client.get(_live(client, job_id, "noise")).get_json()
    assert out["state"] == "running" and out["live"] is True and out["reason"] is None
    assert out["frames"][0]["hex"] == b"abc".hex()


@pytest.mark.timeout(90)
def test_no_message_yet_is_not_live(client, manager):
    silent = {"protocol": "raw", "endpoint": "tcp://127.0.0.1:*", "socket_type": "PULL",
              "bind": True}  # fmt: skip
    job_id = client.post(f"{API}/recordings", json={"sources": [silent]}).get_json()["id"]
    wait_json(client, f"{API}/recordings/{job_id}", lambda j: j["state"] == "running")
    listing = client.get(_live(client, job_id)).get_json()
    assert listing["streams"] == [
        {"stream": "main", "protocol": None, "recv_ns": None, "age_s": None, "size": None,
         "summary": None}
    ]  # fmt: skip
    r = client.get(_live(client, job_id, "main"))
    assert r.status_code == 200, r.get_json()
    out = r.get_json()
    assert out["state"] == "running" and out["live"] is False
    assert "no message yet" in out["reason"] and out["recv_ns"] is None
    assert client.get(_live(client, job_id, "main") + "/image.png").status_code == 409
    client.post(f"{API}/recordings/{job_id}/stop")
    wait_json(client, f"{API}/recordings/{job_id}", lambda j: j["state"] == "stopped")


@pytest.mark.timeout(180)
def test_open_ephys_live_window_shows_every_channel(client, manager):
    """An Open Ephys message holds one channel's block: the live waveform shows the latest
    block of every channel (each exactly its samples), at most 64 channels, the rest counted."""
    small = make_simulator("openephys", "tcp://127.0.0.1:0", rate=10, n_channels=16)
    big = make_simulator("openephys", "tcp://127.0.0.1:0", rate=5, n_channels=80)
    sources = [
        {"protocol": "openephys", "endpoint": small.bind(), "stream": "small"},
        {"protocol": "openephys", "endpoint": big.bind(), "stream": "big"},
    ]
    with running(small), running(big):
        job_id = client.post(f"{API}/recordings", json={"sources": sources}).get_json()["id"]

        def window(stream: str, shown: int):
            """The waveform once it shows channels 1..shown (the worker's first looks at a
            stream may catch part of a block: the lowest channels fill in as it looks again)."""
            out = client.get(_live(client, job_id, stream) + "?points=1000").get_json()
            wave = out.get("waveform")
            labels = [f"CH{c + 1}" for c in range(shown)]
            return wave if wave and wave["channels"] == labels else None

        wave = wait_for(lambda: window("small", 16), 60, "all 16 channels", 0.2)
        assert wave["channels_total"] == 16 and len(wave["first_samples"]) == 16
        for c, values in enumerate(wave["values"]):
            block, rest = divmod(wave["first_samples"][c], small.n_samples)
            assert rest == 0
            expected = small.samples(block, c)  # not decimated: 256 samples, 1000 points
            np.testing.assert_array_equal(np.array(values, dtype=np.float32), expected)

        def big():
            wave = window("big", 64)
            return wave if wave and wave["channels_total"] == 80 else None

        wait_for(big, 60, "the first 64 channels shown, all 80 counted", 0.2)
        listing = client.get(_live(client, job_id)).get_json()
        assert all(s["summary"]["waveform"] for s in listing["streams"])
        client.post(f"{API}/recordings/{job_id}/stop")
        wait_json(client, f"{API}/recordings/{job_id}", lambda j: j["state"] == "stopped")


def _run_folders(data) -> list[str]:
    runs = data / "runs"
    return sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.exists() else []


@pytest.mark.timeout(180)
def test_preview_of_a_saved_source(app, client, manager, data, adzmq_sim):
    app.config["RECORDER_PREVIEW_IDLE_S"] = 3.0
    cam = {"name": "cam", "protocol": "adzmq", "endpoint": adzmq_sim}
    assert client.post(f"{API}/sources", json=cam).status_code == 201
    r = client.post(f"{API}/sources/cam/preview")
    assert r.status_code == 201, r.get_json()
    preview = r.get_json()
    job_id = preview["id"]
    assert preview["idle_s"] == 3.0 and preview["live"] == _live(client, job_id)
    again = client.post(f"{API}/sources/cam/preview")
    assert again.status_code == 200 and again.get_json()["id"] == job_id, "one preview a source"

    first = wait_json(client, _live(client, job_id, "cam"), lambda j: j["seq"] is not None, 60)
    wait_json(client, _live(client, job_id, "cam"), lambda j: j["seq"] > first["seq"])
    png = client.get(first["image"])
    assert Image.open(io.BytesIO(png.data)).size == (64, 48)
    listing = client.get(_live(client, job_id)).get_json()
    assert listing["preview"] is True and listing["state"] == "running"
    job = client.get(f"{API}/recordings/{job_id}").get_json()
    assert job["run_id"] is None and job["params"]["preview"] is True
    assert _run_folders(data) == [], "a preview writes no run"

    # Nobody reads it any more: it stops by itself after the idle time (3 s here).
    t0 = time.monotonic()
    wait_json(client, f"{API}/recordings/{job_id}", lambda j: j["state"] == "stopped", 30)
    assert time.monotonic() - t0 >= 2.0
    assert not live.job_folder(data, job_id).exists()
    assert _run_folders(data) == []
    assert client.get(f"{API}/runs").get_json()["total"] == 0

    # DELETE stops one at once; a new POST starts a new one.
    r = client.post(f"{API}/sources/cam/preview")
    assert r.status_code == 201 and r.get_json()["id"] != job_id
    second = r.get_json()["id"]
    wait_json(client, f"{API}/recordings/{second}", lambda j: j["state"] == "running")
    assert client.delete(f"{API}/sources/cam/preview").status_code == 204
    wait_json(client, f"{API}/recordings/{second}", lambda j: j["state"] == "stopped", 30)
    assert client.delete(f"{API}/sources/cam/preview").status_code == 204, "harmless twice"
    assert client.post(f"{API}/sources/nope/preview").status_code == 404
    assert client.delete(f"{API}/sources/nope/preview").status_code == 404
    assert _run_folders(data) == []


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_live_panel_in_a_browser(tmp_path):
    """The dashboard's Live button shows a running recording's latest image, and its Open
    Ephys stream as a waveform, refreshed while the panel is open; no script errors (the CSP
    forbids inline script, so a violation would show here)."""
    from tests.clihelp import serve_demo
    from tests.e2e.conftest import ARGS, CHROMIUM

    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    with serve_demo(tmp_path) as (link, _), sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(link)
        page.get_by_role("heading", name="Start a recording").wait_for()
        page.evaluate(
            "R.api('POST', '/recordings', {sources: ['demo-pymultivideo', 'demo-openephys']})"
        )
        page.locator("#recordings button[data-live-job]").first.click()
        panel = page.locator("#live-preview")
        panel.wait_for()
        image = panel.locator("img[data-live-image]")
        image.wait_for()
        page.wait_for_function("() => document.querySelector('[data-live-image]').naturalWidth > 0")
        first = image.get_attribute("src")
        page.wait_for_function(
            f"() => document.querySelector('[data-live-image]').getAttribute('src') !== {first!r}"
        )  # a newer frame, without reloading the page
        panel.locator("select[data-live-stream]").select_option("demo-openephys")
        panel.locator("[data-live-plot] .uplot").wait_for()
        assert "kind" in panel.locator("[data-live-summary]").inner_text()
        panel.get_by_role("button", name="Close").click()
        panel.wait_for(state="hidden")

        # A saved source's Preview: its image without recording, stopped by Close.
        page.get_by_role("link", name="Sources", exact=True).click()
        page.locator("tr[data-source=demo-pymultivideo] button[data-preview-source]").click()
        panel.wait_for()
        page.wait_for_function("() => document.querySelector('[data-live-image]').naturalWidth > 0")
        assert "Preview of demo-pymultivideo" in panel.locator("h2").inner_text()
        panel.get_by_role("button", name="Close").click()
        page.wait_for_function(
            "async () => (await R.api('GET', '/recordings')).recordings"
            ".filter((r) => r.params.preview && r.state === 'running').length === 0"
        )
        browser.close()
        assert not errors, errors


def _job_with_live_files(control, data, streams: dict[str, tuple[str, list[bytes]]]) -> str:
    """A running record job whose worker is stood in for by files published as it would."""
    sources = [{"stream": name, "protocol": proto} for name, (proto, _) in streams.items()]
    job_id = control.create_job("record", {"sources": sources})["id"]
    control.update_job(job_id, state="running")
    folder = live.job_folder(data, job_id)
    folder.mkdir(parents=True)
    for name, (proto, frames) in streams.items():
        live.write_message(folder, name, proto, time.time_ns(), frames)
    return job_id


def test_waveform_window_per_channel_decimated(client, control, data):
    legacy = make_simulator("openephys", legacy=True, n_channels=4, n_samples=5000)
    job_id = _job_with_live_files(control, data, {"ephys": ("openephys", legacy.message(0))})
    out = client.get(_live(client, job_id, "ephys") + "?points=100").get_json()
    wave = out["waveform"]
    assert len(wave["channels"]) == 4 and len(wave["x"]) <= 100
    for c, values in enumerate(wave["values"]):
        assert len(values) == len(wave["x"])
        block = legacy.samples(0, c)  # the extremes survive the decimation
        assert max(values) == pytest.approx(float(block.max()), rel=1e-6)
        assert min(values) == pytest.approx(float(block.min()), rel=1e-6)


def test_renders_are_bounded_per_stream(client, control, data):
    from recorder.web.live import RENDER_S, RENDERS

    cam = make_simulator("adzmq")
    job_id = _job_with_live_files(control, data, {"cam": ("adzmq", cam.message(0))})
    url = _live(client, job_id, "cam") + "/image.png"
    before = RENDERS.renders
    t0 = time.monotonic()
    for _ in range(20):
        assert client.get(url).status_code == 200
    assert RENDERS.renders - before <= 1 + (time.monotonic() - t0) / RENDER_S
    # a new message is rendered once the last render is RENDER_S old
    live.write_message(
        live.job_folder(data, job_id), "cam", "adzmq", time.time_ns(), cam.message(1)
    )
    time.sleep(RENDER_S)
    before = RENDERS.renders
    assert client.get(url).status_code == 200 and RENDERS.renders == before + 1
