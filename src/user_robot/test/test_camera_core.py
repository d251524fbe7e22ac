"""Image fields ↔ numpy (rgb8, bgr8, mono8, padded rows), crop, antialiased resize, freshness."""

from __future__ import annotations

import math

import numpy as np
import pytest

from user_robot.camera_core import ImageFields, crop, from_array, is_stale, observation, resize, to_array, to_rgb

rng = np.random.default_rng(0)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
def test_round_trip(encoding: str) -> None:
    channels = 1 if encoding == "mono8" else 3
    pixels = rng.integers(0, 256, (5, 7, channels), dtype=np.uint8)
    fields = from_array(pixels, encoding)
    assert (fields.height, fields.width, fields.step) == (5, 7, 7 * channels)
    np.testing.assert_array_equal(to_array(fields), pixels)


def test_padded_rows_and_short_data() -> None:
    pixels = rng.integers(0, 256, (4, 3, 3), dtype=np.uint8)
    padded = np.zeros((4, 16), dtype=np.uint8)
    padded[:, :9] = pixels.reshape(4, 9)
    np.testing.assert_array_equal(to_array(ImageFields(4, 3, "rgb8", 16, padded.tobytes())), pixels)
    with pytest.raises(ValueError, match="too short"):
        to_array(ImageFields(4, 3, "rgb8", 9, bytes(20)))
    with pytest.raises(ValueError, match="16UC1"):
        to_array(ImageFields(4, 3, "16UC1", 6, bytes(24)))


def test_to_rgb() -> None:
    bgr = np.array([[[1, 2, 3]]], dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb(bgr, "bgr8"), [[[3, 2, 1]]])
    mono = np.array([[[9]]], dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb(mono, "mono8"), [[[9, 9, 9]]])


def test_crop_clips_to_image() -> None:
    img = np.arange(6 * 8).reshape(6, 8, 1)
    np.testing.assert_array_equal(crop(img, (2, 1, 3, 2)), img[1:3, 2:5])
    assert crop(img, (6, 4, 10, 10)).shape == (2, 2, 1)
    assert crop(img, None) is img
    with pytest.raises(ValueError, match="outside"):
        crop(img, (8, 0, 2, 2))


def test_resize_preserves_constants_and_averages_when_shrinking() -> None:
    flat = np.full((480, 480, 3), 77, dtype=np.uint8)
    assert np.all(resize(flat, (128, 128)) == 77)
    checker = (np.indices((480, 640)).sum(axis=0) % 2 * 255).astype(np.uint8)[..., None]
    small = resize(checker, (120, 160))  # 4x down: antialiased to mid-grey, not aliased to 0 or 255
    assert np.all(np.abs(small.astype(int) - 128) <= 2)
    ramp = np.tile(np.arange(64, dtype=np.uint8)[None, :, None], (4, 1, 1))
    up = resize(ramp, (8, 128))[0, :, 0].astype(int)
    assert np.all(np.diff(up) >= 0) and up[0] == 0 and up[-1] == 63


def test_observation_shape() -> None:
    frame = rng.integers(0, 256, (480, 640, 1), dtype=np.uint8)
    out = observation(frame, "mono8", (80, 0, 480, 480), (128, 128))
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8 and out.flags.c_contiguous


def test_staleness() -> None:
    assert is_stale(None, 10.0, 0.25)
    assert not is_stale(9.8, 10.0, 0.25)
    assert is_stale(9.7, 10.0, 0.25)
    assert not is_stale(10.5, 10.0, 0.25)  # a stamp slightly ahead (clock skew) is fresh
    assert is_stale(math.nan, 10.0, 0.25)


@pytest.mark.parametrize("rate_hz", [10.0, 30.0, 15.0, 7.0, 20.0])
def test_the_frame_of_a_tick_is_the_newest_sent_at_or_before_it(rate_hz: float) -> None:
    from user_robot.camera_core import holds_frame_of

    # the sim cell's schedule: 10 ms state steps, frame k sent at the first step at or after k periods
    step_ns, period_ns, due, sent = 10_000_000, round(1e9 / rate_hz), 0, []
    for sim_ns in range(step_ns, 3 * 10**9, step_ns):
        if sim_ns >= due:
            sent.append(sim_ns)
            due += period_ns
    for tick_ns in range(200_000_000, 2 * 10**9, 100_000_000):  # 10 Hz control ticks
        newest = max(s for s in sent if s <= tick_ns)
        before = max(s for s in sent if s < newest)
        assert holds_frame_of(newest * 1e-9, rate_hz, tick_ns), (tick_ns, newest)
        assert not holds_frame_of(before * 1e-9, rate_hz, tick_ns), (tick_ns, before)
    assert not holds_frame_of(None, rate_hz, 0)
