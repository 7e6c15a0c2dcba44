"""An event-camera (DVS) simulator: intensity video in, events out.

Pixel model (Gallego et al. 2022, "Event-based Vision: A Survey", eq. 1-2; the ESIM/v2e scheme):
each pixel keeps a reference log intensity L_ref (its value at its last event) and fires an event
of polarity p = sign(dL) every time L(t) = log(I(t) + eps) moves a further C_p away from it:

    |L(t) - L_ref| >= C_p   ->   event (x, y, t, p),   L_ref <- L_ref + p * C_p.

* Thresholds: C_on and C_off are drawn once per pixel from N(C, sigma_C) (fixed-pattern
  mismatch of a real sensor), clipped at `min_contrast`; they belong to the sensor, so all
  recordings from one `EventSimulator` share them.
* Time: between two video frames L is interpolated linearly, so a crossing of level
  L_ref + k C gets the time where the interpolated line meets it (sub-frame timing).
* Refractory period: after an event a pixel ignores crossings for `refractory_us`; its
  reference still moves, so the skipped change is lost, as in a real pixel that was blind.
  Applied to all events, background noise included, greedily in time order per pixel.
* Background noise: Poisson shot noise with `noise_rate_hz` events per pixel per second,
  uniform in time, random polarity.

Timestamps are integer microseconds (floored). Everything is vectorized over pixels; loops run
only over video frames and over the rank of an event within its pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .events import EVENT_DTYPE


@dataclass(frozen=True)
class SensorParams:
    """Pixel parameters; contrasts are in natural-log units (0.2 ~ a 22% intensity change)."""

    contrast: float = 0.2
    contrast_sigma: float = 0.03
    min_contrast: float = 0.01
    refractory_us: int = 500
    noise_rate_hz: float = 0.0
    log_eps: float = 0.01

    def __post_init__(self):
        if self.contrast <= 0 or self.contrast_sigma < 0 or self.min_contrast <= 0:
            raise ValueError("contrast and min_contrast must be > 0, contrast_sigma >= 0")
        if self.refractory_us < 0 or self.noise_rate_hz < 0 or self.log_eps <= 0:
            raise ValueError("refractory_us, noise_rate_hz must be >= 0 and log_eps > 0")


class EventSimulator:
    """A W x H event sensor with fixed per-pixel thresholds drawn from `rng`."""

    def __init__(
        self,
        width: int,
        height: int,
        params: SensorParams | None = None,
        rng: np.random.Generator | int | None = 0,
    ):
        self.width, self.height = int(width), int(height)
        self.params = params or SensorParams()
        rng = np.random.default_rng(rng)
        p = self.params
        n = self.width * self.height
        self.c_on = np.maximum(p.min_contrast, rng.normal(p.contrast, p.contrast_sigma, n))
        self.c_off = np.maximum(p.min_contrast, rng.normal(p.contrast, p.contrast_sigma, n))

    def simulate(
        self,
        frames: np.ndarray,
        times_us: np.ndarray,
        rng: np.random.Generator | int | None = None,
        noise_rate_hz: float | None = None,
    ) -> np.ndarray:
        """Events for a video `frames` [K, H, W] (intensity >= 0) sampled at `times_us` [K]
        (strictly increasing). The first frame sets the reference: a static scene gives no
        events except noise. `rng` draws the noise; `noise_rate_hz` overrides the sensor's rate
        for this recording (e.g. other lighting). Returns EVENT_DTYPE sorted by time."""
        frames = np.asarray(frames)
        return self.simulate_batch(
            frames[None], np.asarray(times_us)[None], [rng], None if noise_rate_hz is None
            else [noise_rate_hz]
        )[0]  # fmt: skip

    def simulate_batch(
        self,
        frames: np.ndarray,
        times_us: np.ndarray,
        rngs: list | None = None,
        noise_rates_hz: list[float] | None = None,
    ) -> list[np.ndarray]:
        """`simulate` for B recordings at once (the same sensor, so the same thresholds):
        frames [B, K, H, W], times_us [B, K]; one noise rng and rate per recording. Batching
        only amortizes numpy's per-call overhead: each result equals a single `simulate`."""
        frames = np.asarray(frames, dtype=np.float64)
        times = np.asarray(times_us, dtype=np.float64)
        if frames.ndim != 4 or frames.shape[2:] != (self.height, self.width):
            raise ValueError(
                f"frames must be [B, K, {self.height}, {self.width}], got {frames.shape}"
            )
        b, k = frames.shape[:2]
        if times.shape != (b, k) or k < 1:
            raise ValueError(f"times_us must be [{b}, {k}] to match the frames")
        if np.any(np.diff(times, axis=1) <= 0) or times.min() < 0:
            raise ValueError("times_us must be strictly increasing and non-negative")
        if frames.min() < 0:
            raise ValueError("intensities must be >= 0")
        p = self.params
        n_pix = self.width * self.height
        rngs = list(rngs) if rngs is not None else [None] * b
        rates = [p.noise_rate_hz] * b if noise_rates_hz is None else list(noise_rates_hz)
        if len(rngs) != b or len(rates) != b:
            raise ValueError(f"need one rng and one noise rate per recording ({b})")
        # pixels of all recordings side by side: pixel q belongs to recording q // n_pix
        logs = np.log(frames.transpose(1, 0, 2, 3).reshape(k, b * n_pix) + p.log_eps)
        c_on, c_off = np.tile(self.c_on, b), np.tile(self.c_off, b)
        pix, t, pol = _level_crossings(logs, times, c_on, c_off, n_pix)
        parts = [(pix, t, pol)]
        for i in range(b):
            if rates[i] > 0 and k > 1:  # background noise: Poisson per pixel
                rng = np.random.default_rng(rngs[i])
                m = rng.poisson(rates[i] * n_pix * (times[i, -1] - times[i, 0]) * 1e-6)
                parts.append(
                    (
                        i * n_pix + rng.integers(0, n_pix, m),
                        rng.uniform(times[i, 0], times[i, -1], m),
                        rng.random(m) < 0.5,
                    )
                )
        pix = np.concatenate([q[0] for q in parts])
        t = np.floor(np.concatenate([q[1] for q in parts])).astype(np.int64)
        pol = np.concatenate([q[2] for q in parts])
        keep = refractory_filter(pix, t, p.refractory_us, b * n_pix)
        pix, t, pol = pix[keep], t[keep], pol[keep]
        order = _argsort_by(pix // n_pix, t, pix % n_pix)  # recording, then time, then pixel
        pix, t, pol = pix[order], t[order], pol[order]
        bounds = np.searchsorted(pix // n_pix, np.arange(b + 1))
        out = []
        for i in range(b):
            sl = slice(bounds[i], bounds[i + 1])
            q = pix[sl] - i * n_pix
            ev = np.empty(len(q), dtype=EVENT_DTYPE)
            ev["x"], ev["y"], ev["t"], ev["p"] = q % self.width, q // self.width, t[sl], pol[sl]
            out.append(ev)
        return out


def _level_crossings(logs, times, c_on, c_off, n_pix):
    """All threshold crossings of log-intensity videos logs [K, P] (P pixels of B recordings,
    recording = pixel // n_pix, frame times times [B, K]): (pixel, float time, polarity)."""
    k = logs.shape[0]
    ref = logs[0].copy()
    c_min = min(c_on.min(), c_off.min())
    pix_parts, t_parts, pol_parts = [np.empty(0, np.int64)], [np.empty(0)], [np.empty(0, bool)]
    for i in range(1, k):
        l0, l1 = logs[i - 1], logs[i]
        d = l1 - ref
        cand = np.flatnonzero(np.abs(d) >= c_min)  # only these can have crossed a level
        if len(cand) == 0:
            continue
        dc = d[cand]
        up = dc > 0
        c = np.where(up, c_on[cand], c_off[cand])
        n = np.floor(np.abs(dc) / c).astype(np.int64)  # levels crossed since the last event
        sel = np.flatnonzero(n > 0)
        if len(sel) == 0:
            continue
        pix, cnt, c, sign = cand[sel], n[sel], c[sel], np.where(up[sel], 1.0, -1.0)
        which = np.repeat(np.arange(len(pix)), cnt)
        j = np.arange(len(which)) - np.repeat(np.cumsum(cnt) - cnt, cnt) + 1  # 1..cnt
        rp = pix[which]
        level = ref[rp] + sign[which] * j * c[which]
        # linear interpolation between the two frames: where does l(t) reach `level`?
        u = np.clip((level - l0[rp]) / (l1[rp] - l0[rp]), 0.0, 1.0)
        rec = rp // n_pix
        t0, t1 = times[rec, i - 1], times[rec, i]
        pix_parts.append(rp)
        t_parts.append(t0 + u * (t1 - t0))
        pol_parts.append(up[sel][which])
        ref[pix] += sign * cnt * c
    return np.concatenate(pix_parts), np.concatenate(t_parts), np.concatenate(pol_parts)


def refractory_filter(pix: np.ndarray, t: np.ndarray, refractory: int, n_pix: int) -> np.ndarray:
    """Boolean mask of the events a pixel with dead time `refractory` would emit: per pixel, in
    time order, keep an event iff it comes >= `refractory` after the last kept one (greedy, so
    exactly what a pixel does). Vectorized over pixels; loops over the rank within a pixel."""
    n = len(pix)
    keep = np.zeros(n, dtype=bool)
    if refractory <= 0 or n == 0:
        keep[:] = True
        return keep
    order = _argsort_by(pix, t)
    ps, ts = pix[order], t[order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    counts = np.diff(np.r_[starts, n])
    last = np.full(n_pix, np.iinfo(np.int64).min // 2, dtype=np.int64)
    kept_sorted = np.zeros(n, dtype=bool)
    active, act_counts = starts, counts
    for r in range(int(counts.max())):
        sel = act_counts > r
        active, act_counts = active[sel], act_counts[sel]
        idx = active + r
        ok = ts[idx] >= last[ps[idx]] + refractory
        kept_sorted[idx[ok]] = True
        last[ps[idx[ok]]] = ts[idx[ok]]
    keep[order] = kept_sorted
    return keep


def _argsort_by(*keys: np.ndarray) -> np.ndarray:
    """Indices sorting by several non-negative integer keys (first key most significant): one
    argsort of a combined int64 key when it fits (much faster than np.lexsort), else lexsort."""
    combined = np.zeros(len(keys[0]), dtype=np.int64)
    bound = 1
    for key in keys:
        span = int(key.max()) + 1 if len(key) else 1
        if int(key.min(initial=0)) < 0 or bound * span >= 2**62:
            return np.lexsort(keys[::-1])
        combined = combined * span + key
        bound *= span
    return np.argsort(combined, kind="stable")
