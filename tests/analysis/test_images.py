"""Image streams: frame(n) with the attributes its message carried, checked against the
simulated areaDetector and pyMultiVideo."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from recorder.analysis import open_run
from recorder.analysis.images import ImageStream
from tests.analysis.runs import ADZMQ_COUNT, VIDEO_COUNT

pytestmark = pytest.mark.timeout(90)


def test_adzmq_frames_with_their_ndattributes(sent):
    camera = open_run(sent.path).streams["camera"]
    assert isinstance(camera, ImageStream)
    assert camera.n_frames == ADZMQ_COUNT and len(camera) == ADZMQ_COUNT + 1  # + STOP
    for i in range(ADZMQ_COUNT):
        frame = camera.frame(i)
        np.testing.assert_array_equal(frame.image, sent.camera.image(i))
        attrs = sent.camera.ndattr(i)
        assert frame.seq == i + 1 and frame.message == i
        assert frame.attrs["ndattr.Temperature"] == attrs["Temperature"]
        assert frame.attrs["ndattr.Counter"] == attrs["Counter"]
        assert np.float32(frame.attrs["ndattr.Exposure"]) == attrs["Exposure"]
        assert frame.attrs["timeStamp"] == sent.camera.timestamp(i)
        assert abs(frame.source_ns - sent.camera.timestamp(i) * 1e9) < 1e3
    np.testing.assert_array_equal(camera.frame(-1).image, sent.camera.image(ADZMQ_COUNT - 1))
    with pytest.raises(IndexError):
        camera.frame(ADZMQ_COUNT)


def test_pymultivideo_frames_and_lazy_images(sent):
    video = open_run(sent.path).streams["video"]
    frames = list(video.frames())
    assert len(frames) == VIDEO_COUNT
    for i, frame in enumerate(frames):
        np.testing.assert_array_equal(frame.image, sent.video.image(i))
        assert frame.seq is None  # pyMultiVideo has no frame counter
        assert frame.source_ns == sent.video.timestamp(i)
        assert frame.attrs == {"unique_id": "cam7"}
    images = video.images
    assert isinstance(images, da.Array) and images.shape == (VIDEO_COUNT, 16, 24)
    np.testing.assert_array_equal(images[2].compute(), sent.video.image(2))
    np.testing.assert_array_equal(images.mean(axis=0).compute(), np.mean(
        [sent.video.image(i) for i in range(VIDEO_COUNT)], axis=0
    ))  # fmt: skip
