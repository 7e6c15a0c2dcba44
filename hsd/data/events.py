"""Event arrays: one structured dtype for every reader, writer and the simulator.

An event camera pixel emits an event e = (x, y, t, p) when its log intensity has changed by a
contrast threshold since its last event; p = 1 (True) is ON (brightening), p = 0 is OFF.
We use tonic's field layout (`tonic.io.events_struct`): x, y int16 pixel coordinates (x is the
column, y the row), t int64 microseconds, p bool, so our arrays go straight into tonic transforms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: x, y int16 (column, row), t int64 in microseconds, p bool (True = ON / brightening).
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])


class DatasetError(ValueError):
    """A dataset root, layout or event file is missing or broken. The message says what is wrong
    (naming the file or folder) and how to fix it (expected layout, where the data lives)."""


def make_events(x, y, t, p) -> np.ndarray:
    """Build an EVENT_DTYPE array from four equally long sequences (p: any truthy/0-1 values)."""
    x, y, t, p = (np.asarray(a) for a in (x, y, t, p))
    n = len(x)
    if not (len(y) == len(t) == len(p) == n):
        raise ValueError(f"x, y, t, p differ in length: {len(x)}, {len(y)}, {len(t)}, {len(p)}")
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t, np.asarray(p) != 0
    return ev


def as_events(arr: np.ndarray) -> np.ndarray:
    """Convert any structured array with fields x, y, t and p (or on) to EVENT_DTYPE."""
    names = arr.dtype.names or ()
    pname = "p" if "p" in names else "on" if "on" in names else None
    if not {"x", "y", "t"} <= set(names) or pname is None:
        raise ValueError(f"expected a structured array with fields x, y, t, p; got {names}")
    return make_events(arr["x"], arr["y"], arr["t"], arr[pname])


def validate_events(
    events: np.ndarray,
    sensor_size: tuple[int, int, int] | None = None,
    *,
    source: str | Path = "events",
    allow_empty: bool = False,
) -> np.ndarray:
    """Check dtype, non-emptiness, coordinates inside `sensor_size` = (W, H, 2), and t >= 0.

    Raises DatasetError naming `source` (a file path) so a bad recording is easy to find.
    Returns the array unchanged.
    """
    if events.dtype != EVENT_DTYPE:
        raise DatasetError(f"{source}: events have dtype {events.dtype}, expected {EVENT_DTYPE}")
    if len(events) == 0:
        if allow_empty:
            return events
        raise DatasetError(
            f"{source}: empty recording (0 events); remove the file or re-download the dataset"
        )
    if events["t"].min() < 0:
        raise DatasetError(f"{source}: negative timestamps (min {events['t'].min()} us)")
    if sensor_size is not None:
        w, h = int(sensor_size[0]), int(sensor_size[1])
        xs, ys = events["x"], events["y"]
        if xs.min() < 0 or ys.min() < 0 or xs.max() >= w or ys.max() >= h:
            raise DatasetError(
                f"{source}: event coordinates x in [{xs.min()}, {xs.max()}], "
                f"y in [{ys.min()}, {ys.max()}] fall outside the sensor {w}x{h} (W x H); "
                "is this file from another dataset?"
            )
    return events


def sort_events(events: np.ndarray) -> np.ndarray:
    """Events in time order (stable, so simultaneous events keep their order)."""
    return events[np.argsort(events["t"], kind="stable")]
