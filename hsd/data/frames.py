"""Event -> frame integration and the one frame resize every method shares.

Integration (the representation of every paper in the HSD lineage, after SpikingJelly's
`integrate_events_by_fixed_frames_number`): a recording of N events is cut into F segments and
each segment is accumulated into a 2-channel count image,

    frame[j, c, y, x] = #{ i in segment j : pol(p_i) = c, y_i = y, x_i = x },  pol(p) = [p > 0].

split_by="number" (SpikingJelly): segment j holds events [j*floor(N/F), (j+1)*floor(N/F)), and
the last segment runs to N, so the N mod F leftover events land in the last frame (tonic's
`ToFrame(n_event_bins=F)` drops them instead; both agree when F divides N).

split_by="time" (SpikingJelly's split_by='time'): with dt = floor((t_max - t_0) / F) for integer
timestamps, segment j holds the events with t_0 + j*dt <= t < t_0 + (j+1)*dt and the last segment
runs to t_max, i.e. equal-duration bins up to integer rounding. Unlike SpikingJelly an empty bin
gives an empty frame rather than an IndexError.

Implementation: the segment bounds are computed first (arithmetic for "number", one
np.searchsorted over the sorted timestamps for "time"), then each segment's flat index
(polarity, y, x) is counted with np.bincount straight into one preallocated float32 output.
We first wrote ONE bincount over the whole (frame, polarity, y, x) index and measured it 3-6x
slower than SpikingJelly on these VMs: its N-long int64 temporaries and the F*2*H*W-long int64
histogram are fresh mmap'd allocations whose page faults dominate, while per-segment temporaries
stay on the heap and in cache (with a large glibc MALLOC_MMAP_THRESHOLD_ both take ~0.6 ms per
100k events). Measured with `python -m harness.data bench` (2-core VM, min of 60): 100k events,
F=10, 128x128: 0.64 ms vs SpikingJelly 0.68-0.72 ms vs tonic ToFrame 6-11 ms; 1M events, F=16:
on par with SpikingJelly (~5 ms each). Counts are identical to SpikingJelly's (float64) frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

SPLIT_BY = ("number", "time")

#: Name of the single resize/normalization applied to every method's frames (part of cache keys).
NORMALIZATION = "area-counts-fp16"


def _field(events, name: str) -> np.ndarray:
    try:
        return np.asarray(events[name])
    except (KeyError, ValueError, IndexError) as err:
        raise ValueError(
            f"events have no field {name!r}: expected a structured array (or dict) with fields "
            "x, y, t, p"
        ) from err


def _segment_bounds(t: np.ndarray, n_events: int, n_frames: int, split_by: str) -> np.ndarray:
    """Start indices of the F segments plus N at the end (int64 [F + 1])."""
    if split_by == "number":
        bounds = np.arange(n_frames + 1, dtype=np.int64) * (n_events // n_frames)
        bounds[-1] = n_events  # the N mod F leftovers join the last frame (SpikingJelly)
        return bounds
    if not np.all(t[1:] >= t[:-1]):
        raise ValueError("split_by='time' needs events sorted by t: sort them first")
    t0, t1 = t[0], t[-1]
    if np.issubdtype(t.dtype, np.integer):
        dt = (int(t1) - int(t0)) // n_frames
        if dt < 1:
            raise ValueError(
                f"recording lasts {int(t1) - int(t0)} time units, fewer than n_frames={n_frames}: "
                "equal-duration bins would be empty; use split_by='number' or fewer frames"
            )
        edges = int(t0) + dt * np.arange(1, n_frames, dtype=np.int64)
    else:
        dt = (t1 - t0) / n_frames
        if not dt > 0:
            raise ValueError("recording has zero duration: use split_by='number'")
        edges = t0 + dt * np.arange(1, n_frames)
    # segment j starts at the first event with t >= t0 + j * dt (SpikingJelly's j_l)
    inner = np.searchsorted(t, edges, side="left")
    return np.concatenate(([0], inner, [n_events])).astype(np.int64)


def _coordinate(name: str, v: np.ndarray, limit: int, sensor: str) -> np.ndarray:
    """v as int64, rejecting coordinates outside [0, limit) with a message naming the sensor."""
    if not np.issubdtype(v.dtype, np.integer) and not np.all(np.mod(v, 1) == 0):
        raise ValueError(f"event {name} coordinates must be integers, got {v.dtype}")
    v = v.astype(np.int64)
    lo, hi = int(v.min()), int(v.max())
    if lo < 0 or hi >= limit:
        raise ValueError(
            f"events outside the sensor: {name} in [{lo}, {hi}] but the sensor {sensor} has "
            f"{name} in [0, {limit - 1}]; pass the dataset's sensor_size"
        )
    return v


def integrate_frames(
    events, n_frames: int, sensor_size: Sequence[int], split_by: str = "number"
) -> np.ndarray:
    """Integrate events into `n_frames` 2-channel count frames.

    Args:
        events: structured array (or dict of arrays) with fields x, y, t, p, in recording order
            (sorted by t; split_by="number" follows array order exactly like SpikingJelly).
        n_frames: F, the number of frames.
        sensor_size: (W, H, ...) in tonic's convention, e.g. (128, 128, 2).
        split_by: "number" (equal event counts, leftovers to the last frame) or "time"
            (equal-duration bins). See the module docstring for the exact segment bounds.

    Returns:
        float32 array [F, 2, H, W] of event counts; it sums to the number of events.

    Raises:
        ValueError: empty recording, fewer events than frames, events outside the sensor,
            unknown split_by, or (time) a recording shorter than F time units.
    """
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by must be one of {SPLIT_BY}, got {split_by!r}")
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise ValueError(f"n_frames must be a positive int, got {n_frames!r}")
    if len(sensor_size) < 2:
        raise ValueError(f"sensor_size must be (W, H[, 2]), got {sensor_size!r}")
    width, height = int(sensor_size[0]), int(sensor_size[1])
    x, y, t, p = (_field(events, k) for k in ("x", "y", "t", "p"))
    n = x.shape[0]
    if n == 0:
        raise ValueError("empty recording: no events to integrate")
    if n < n_frames:
        raise ValueError(
            f"more frames than events: n_frames={n_frames} but the recording has {n} events"
        )
    sensor = f"(W, H) = ({width}, {height})"
    bounds = _segment_bounds(t, n, n_frames, split_by)
    plane = height * width
    out = np.empty((n_frames, 2 * plane), dtype=np.float32)
    for j in range(n_frames):
        lo, hi = bounds[j], bounds[j + 1]
        if hi == lo:  # an empty time bin
            out[j] = 0
            continue
        # flat index polarity * H * W + y * W + x of this segment's events
        flat = _coordinate("y", y[lo:hi], height, sensor)
        flat *= width
        flat += _coordinate("x", x[lo:hi], width, sensor)
        flat += (p[lo:hi] > 0) * plane
        out[j] = np.bincount(flat, minlength=2 * plane)
    return out.reshape(n_frames, 2, height, width)


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize count frames [..., H, W] to [..., size, size] by area interpolation (float32).

    The one normalization of this harness, applied to every method alike: area interpolation
    (`adaptive_avg_pool2d`, i.e. `F.interpolate(mode="area")`) of the RAW event counts, no
    per-sample or per-frame scaling; the cache stores the result as float16 (counts of a
    CIFAR10-DVS frame stay far below float16's 65504, relative error <= 2^-11).

    Why: area averaging keeps every event's mass (a downscaled frame is the mean count per
    output pixel, so the total is scaled by exactly (size/H)*(size/W) for integer ratios), it
    does not alias the way nearest does on sparse event images, and it is a function of the
    sample alone. The references differ: TET divides each frame by its max and resizes
    bilinearly; HSD's code resizes raw counts with nearest. Rather than giving each method its own
    preprocessing we apply this single choice to every method, so differences in results come
    from the methods. Non-square sensors (N-Caltech101 240x180) are stretched to size x size,
    as the reference code does.

    Per-sample calls on tiny frames are fastest with one torch intra-op thread (on a busy 2-core
    machine the default pool made them 10-50x slower); `cache.prepare` runs under
    `torch.set_num_threads(1)` for that reason.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    frames = np.asarray(frames)
    if frames.ndim < 2:
        raise ValueError(f"frames must be [..., H, W], got shape {frames.shape}")
    h, w = frames.shape[-2:]
    if (h, w) == (size, size):
        return frames.astype(np.float32, copy=False)
    lead = frames.shape[:-2]
    x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).reshape(1, -1, h, w)
    out = F.adaptive_avg_pool2d(x, (size, size))
    return out.reshape(*lead, size, size).numpy()
