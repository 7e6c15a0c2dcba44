"""Frame integration, the shared resize, and the head/tail partition."""

import numpy as np
import pytest
import torch

from hsd.data.frames import integrate_frames, resize_frames
from hsd.data.partition import ht_partition

EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i1")])


def make_events(n, w=16, h=12, seed=0, t_max=10_000):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["x"] = rng.integers(0, w, n)
    ev["y"] = rng.integers(0, h, n)
    ev["t"] = np.sort(rng.integers(0, t_max, n))
    ev["p"] = rng.integers(0, 2, n)
    return ev


def reference_number(ev, n_frames, w, h):
    """SpikingJelly's documented split_by='number', written independently with a Python loop:
    j_l = floor(N/F) * j, j_r = j_l + floor(N/F), the last frame runs to N."""
    n = len(ev)
    per = n // n_frames
    out = np.zeros((n_frames, 2, h, w))
    for j in range(n_frames):
        lo, hi = per * j, (per * (j + 1) if j < n_frames - 1 else n)
        for e in ev[lo:hi]:
            out[j, int(e["p"] != 0), e["y"], e["x"]] += 1
    return out


@pytest.mark.parametrize("n", [60, 67, 1003])
@pytest.mark.parametrize("n_frames", [1, 3, 10])
def test_number_matches_reference_and_sums_to_count(n, n_frames):
    ev = make_events(n, seed=n + n_frames)
    frames = integrate_frames(ev, n_frames, (16, 12, 2))
    assert frames.shape == (n_frames, 2, 12, 16) and frames.dtype == np.float32
    assert frames.sum() == n
    np.testing.assert_array_equal(frames, reference_number(ev, n_frames, 16, 12))


def test_leftover_events_go_to_last_frame():
    ev = make_events(7)
    frames = integrate_frames(ev, 3, (16, 12, 2))
    np.testing.assert_array_equal(frames.sum(axis=(1, 2, 3)), [2, 2, 3])


@pytest.mark.parametrize("split_by", ["number", "time"])
def test_equals_spikingjelly(split_by):
    sj = pytest.importorskip("spikingjelly.datasets")
    ev = make_events(5003, w=34, h=20, seed=3)
    ours = integrate_frames(ev, 7, (34, 20, 2), split_by=split_by)
    events = {k: ev[k] for k in "txyp"}
    theirs = sj.integrate_events_by_fixed_frames_number(events, split_by, 7, 20, 34)
    np.testing.assert_array_equal(ours, theirs)


def test_equals_tonic_when_divisible():
    tonic_transforms = pytest.importorskip("tonic.transforms")
    ev = make_events(600, seed=4).astype(
        np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
    )
    theirs = tonic_transforms.ToFrame(sensor_size=(16, 12, 2), n_event_bins=6)(ev)
    np.testing.assert_array_equal(integrate_frames(ev, 6, (16, 12, 2)), theirs)


def test_split_by_time_equal_duration_bins():
    # t = 0..99 with dt = floor(99 / 4) = 24: bins [0,24) [24,48) [48,72) [72,99]
    ev = np.zeros(100, EVENT_DTYPE)
    ev["t"] = np.arange(100)
    frames = integrate_frames(ev, 4, (2, 2, 2), split_by="time")
    np.testing.assert_array_equal(frames.sum(axis=(1, 2, 3)), [24, 24, 24, 28])
    # a burst: number-split frames hold equal counts, time-split frames do not
    ev["t"] = np.r_[np.zeros(90, int), np.arange(10) + 1000]
    by_time = integrate_frames(ev, 2, (2, 2, 2), split_by="time").sum(axis=(1, 2, 3))
    by_number = integrate_frames(ev, 2, (2, 2, 2)).sum(axis=(1, 2, 3))
    np.testing.assert_array_equal(by_time, [90, 10])
    np.testing.assert_array_equal(by_number, [50, 50])


def test_split_by_time_empty_bin_gives_empty_frame():
    ev = np.zeros(4, EVENT_DTYPE)
    ev["t"] = [0, 1, 98, 99]
    frames = integrate_frames(ev, 3, (2, 2, 2), split_by="time")
    np.testing.assert_array_equal(frames.sum(axis=(1, 2, 3)), [2, 0, 2])


def test_polarity_channels():
    ev = np.zeros(3, EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"] = [1, 1, 0], [0, 0, 1], [1, 1, 0]
    frames = integrate_frames(ev, 1, (2, 2, 2))
    assert frames[0, 1, 0, 1] == 2 and frames[0, 0, 1, 0] == 1 and frames.sum() == 3


@pytest.mark.parametrize(
    ("n", "n_frames", "sensor", "split_by", "match"),
    [
        (0, 2, (16, 12, 2), "number", "empty recording"),
        (5, 10, (16, 12, 2), "number", "more frames than events"),
        (50, 2, (8, 12, 2), "number", "outside the sensor: x"),
        (50, 2, (16, 6, 2), "number", "outside the sensor: y"),
        (50, 2, (16, 12, 2), "bins", "split_by"),
        (50, 0, (16, 12, 2), "number", "n_frames"),
    ],
)
def test_errors(n, n_frames, sensor, split_by, match):
    with pytest.raises(ValueError, match=match):
        integrate_frames(make_events(n), n_frames, sensor, split_by=split_by)


def test_negative_coordinates_rejected():
    ev = make_events(20)
    ev["x"][3] = -1
    with pytest.raises(ValueError, match="outside the sensor"):
        integrate_frames(ev, 2, (16, 12, 2))


def test_time_split_too_short_recording():
    ev = make_events(20, t_max=3)
    with pytest.raises(ValueError, match="time units"):
        integrate_frames(ev, 10, (16, 12, 2), split_by="time")


def test_resize_area_keeps_mass_and_is_identity_at_same_size():
    frames = integrate_frames(make_events(500, w=16, h=16), 2, (16, 16, 2))
    small = resize_frames(frames, 8)
    assert small.shape == (2, 2, 8, 8) and small.dtype == np.float32
    # area averaging of 2x2 blocks: total mass scales by (8/16)^2 exactly
    np.testing.assert_allclose(small.sum(), frames.sum() / 4, rtol=1e-6)
    np.testing.assert_allclose(small[0, 0, 0, 0], frames[0, 0, :2, :2].mean())
    np.testing.assert_array_equal(resize_frames(frames, 16), frames)
    ref = torch.nn.functional.interpolate(torch.from_numpy(frames), size=(8, 8), mode="area")
    np.testing.assert_allclose(small, ref.numpy(), rtol=1e-6)


def test_resize_non_integer_ratio_and_errors():
    frames = np.ones((3, 2, 18, 24), np.float32)
    np.testing.assert_allclose(resize_frames(frames, 7), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="size"):
        resize_frames(frames, 0)


def test_ht_partition():
    assert ht_partition(10, 4, 6) == (slice(0, 4), slice(4, 10))
    assert ht_partition(10, 0, 3) == (slice(0, 0), slice(0, 3))
    x = np.arange(10)
    pre, ft = ht_partition(10, 2, 5)
    np.testing.assert_array_equal(x[pre], [0, 1])
    np.testing.assert_array_equal(x[ft], [2, 3, 4, 5, 6])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((10, 5, 6), "exceeds"),
        ((10, -1, 3), "T_p"),
        ((10, 2, 0), "T_f"),
        ((10, 2.0, 3), "must be an int"),
        ((10, True, 3), "must be an int"),
        ((0, 0, 1), "total_frames"),
    ],
)
def test_ht_partition_errors(args, match):
    with pytest.raises(ValueError, match=match):
        ht_partition(*args)


def test_split_by_time_needs_sorted_timestamps():
    ev = make_events(50)
    ev["t"] = ev["t"][::-1]
    with pytest.raises(ValueError, match="sorted"):
        integrate_frames(ev, 2, (16, 12, 2), split_by="time")
