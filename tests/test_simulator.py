"""Event-camera simulator invariants, and the time-reversal property of sim-gestures."""

import numpy as np
import pytest

from hsd.data import simulated
from hsd.data.simulator import EventSimulator, SensorParams, refractory_filter

EPS = 0.01  # SensorParams.log_eps default


def video_from_logs(logs):
    """Intensities whose simulator log, log(I + eps), equals `logs`."""
    return np.exp(np.asarray(logs, dtype=np.float64)) - EPS


def exact(contrast=0.25, refractory_us=0, noise=0.0):
    return SensorParams(contrast, contrast_sigma=0.0, refractory_us=refractory_us,
                        noise_rate_hz=noise)  # fmt: skip


def test_static_scene_without_noise_gives_no_events():
    sim = EventSimulator(8, 6, SensorParams(noise_rate_hz=0.0), rng=0)
    frames = np.random.default_rng(1).uniform(0, 1, (1, 6, 8)).repeat(20, axis=0)
    assert len(sim.simulate(frames, np.arange(20) * 1000)) == 0


def test_noise_is_poisson_rate_per_pixel():
    sim = EventSimulator(16, 16, exact(noise=50.0), rng=0)
    frames = np.full((2, 16, 16), 0.5)
    ev = sim.simulate(frames, [0, 2_000_000], rng=3)  # 256 px * 50 Hz * 2 s = 25600 expected
    assert abs(len(ev) - 25600) < 4 * np.sqrt(25600)
    assert np.all(np.diff(ev["t"]) >= 0) and ev["x"].max() < 16 and ev["y"].max() < 16
    assert 0.45 < ev["p"].mean() < 0.55


def test_polarity_follows_brightening_and_darkening():
    sim = EventSimulator(2, 1, exact(), rng=0)
    # pixel 0 brightens by 1.1 log units, pixel 1 darkens by 1.1: 4 events each (C = 0.25)
    logs = np.array([[[0.0, 0.0]], [[1.1, -1.1]]])
    ev = sim.simulate(video_from_logs(logs), [0, 1100])
    on, off = ev[ev["x"] == 0], ev[ev["x"] == 1]
    assert len(on) == 4 and on["p"].all()
    assert len(off) == 4 and not off["p"].any()
    # linear interpolation of the crossing times: level j*C is reached at u = j*C / 1.1
    assert np.abs(on["t"] - np.arange(1, 5) * 0.25 / 1.1 * 1100).max() <= 1


def test_refractory_period_is_respected():
    rng = np.random.default_rng(0)
    frames = rng.uniform(0.05, 1.0, (200, 4, 4))  # flicker: many crossings per frame
    times = np.arange(200) * 300
    free = EventSimulator(4, 4, exact(0.1, refractory_us=0), rng=0).simulate(frames, times)
    dead = EventSimulator(4, 4, exact(0.1, refractory_us=1000), rng=0).simulate(frames, times)
    assert len(dead) < len(free)
    for q in range(16):
        t = dead["t"][dead["y"] * 4 + dead["x"] == q]
        assert np.all(np.diff(t) >= 1000)


def test_refractory_filter_is_greedy_in_time_order():
    # pixel 0 at 0, 500 (dead), 1000 (kept: 1000 after 0), 1599 (dead), 1600; pixel 1 apart
    pix = np.array([0, 0, 0, 1, 0, 0])
    t = np.array([0, 500, 1000, 10, 1599, 1600])
    keep = refractory_filter(pix, t, 600, 2)
    assert keep.tolist() == [True, False, True, True, False, True]


def test_event_count_scales_inversely_with_contrast_threshold():
    yy, xx = np.mgrid[0:16, 0:16]
    frames = np.stack([0.2 + 0.7 * (np.sin((xx - 0.3 * k) / 2.0) > 0) for k in range(40)])
    counts = [
        len(EventSimulator(16, 16, exact(c), rng=0).simulate(frames, np.arange(40) * 1000))
        for c in (0.1, 0.2, 0.4)
    ]
    assert counts[0] > counts[1] > counts[2] > 0
    assert 1.6 < counts[0] / counts[1] < 2.4 and 1.6 < counts[1] / counts[2] < 2.6


def test_threshold_mismatch_is_seeded_and_batch_equals_single():
    p = SensorParams(contrast=0.2, contrast_sigma=0.05, noise_rate_hz=5.0)
    a, b = EventSimulator(8, 8, p, rng=7), EventSimulator(8, 8, p, rng=7)
    assert np.array_equal(a.c_on, b.c_on) and a.c_on.std() > 0
    frames = np.random.default_rng(0).uniform(0.1, 1, (3, 10, 8, 8))
    times = np.cumsum(np.random.default_rng(1).integers(100, 1000, (3, 10)), axis=1)
    batch = a.simulate_batch(frames, times, [1, 2, 3], [5.0, 0.0, 9.0])
    for i in range(3):
        single = b.simulate(frames[i], times[i], i + 1, noise_rate_hz=[5.0, 0.0, 9.0][i])
        assert np.array_equal(batch[i], single)


def test_bad_input_is_rejected():
    sim = EventSimulator(4, 4, rng=0)
    with pytest.raises(ValueError, match="frames must be"):
        sim.simulate(np.zeros((3, 5, 4)), [0, 1, 2])
    with pytest.raises(ValueError, match="increasing"):
        sim.simulate(np.zeros((3, 4, 4)), [0, 2, 2])
    with pytest.raises(ValueError, match="contrast"):
        SensorParams(contrast=0)


def _count_image(ev, t_max=None):
    if t_max is not None:
        ev = ev[ev["t"] < t_max]
    return np.bincount(ev["y"].astype(int) * 64 + ev["x"], minlength=64 * 64).astype(float)


def _rel_diff(a, b):
    return np.abs(a - b).sum() / (a + b).sum()


@pytest.mark.parametrize("pair", simulated.REVERSED_PAIRS)
def test_sim_gestures_reversed_pairs_differ_only_in_time(pair):
    """Gesture b is gesture a played backwards: the same total event-count image (polarities
    summed), but a different temporal order (the first halves differ)."""
    sim = EventSimulator(64, 64, SensorParams(contrast=0.35, refractory_us=1000), rng=0)
    subject = simulated._subjects(1, np.random.default_rng(0), simulated.GESTURE_SCENE)[0]
    a, b = (simulated.render_gesture(g, subject, fg=0.75, bg=0.2) for g in pair)
    ea, eb = (sim.simulate(f, t, rng=0, noise_rate_hz=0.0) for f, t in (a, b))
    assert min(len(ea), len(eb)) > 300
    assert _rel_diff(_count_image(ea), _count_image(eb)) < 0.12
    half = a[1][-1] // 2
    assert _rel_diff(_count_image(ea, half), _count_image(eb, half)) > 0.4
