"""Head/tail frame partition for HSD's hybrid step-wise distillation.

HSD (Sec. 3) splits the F_total integrated frames of a sample in time: the ANN teacher is
pre-trained on the first T_p frames (aggregated, "head") and the SNN student is distilled on the
following T_f frames ("tail"), so

    pre = frames[0 : T_p],   ft = frames[T_p : T_p + T_f],   T_p + T_f <= F_total.

T_p = 0 is valid: methods without pre-training use only the `ft` slice.
"""

from __future__ import annotations

import numbers


def _as_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    return int(value)


def ht_partition(total_frames: int, pre_frames: int, ft_frames: int) -> tuple[slice, slice]:
    """Return (slice(0, T_p), slice(T_p, T_p + T_f)) over the frame axis.

    Raises ValueError for non-int arguments, total_frames < 1, T_p < 0, T_f < 1, or
    T_p + T_f > total_frames (with the numbers and how to fix it in the message).
    """
    total = _as_int("total_frames", total_frames)
    t_p = _as_int("pre_frames (T_p)", pre_frames)
    t_f = _as_int("ft_frames (T_f)", ft_frames)
    if total < 1:
        raise ValueError(f"total_frames must be >= 1, got {total}")
    if t_p < 0:
        raise ValueError(f"pre_frames (T_p) must be >= 0, got {t_p}")
    if t_f < 1:
        raise ValueError(f"ft_frames (T_f) must be >= 1 (the SNN needs a time step), got {t_f}")
    if t_p + t_f > total:
        raise ValueError(
            f"T_p + T_f = {t_p} + {t_f} = {t_p + t_f} exceeds the {total} integrated frames; "
            "lower T_p or T_f, or integrate more frames (load_frames(..., frames=N))"
        )
    return slice(0, t_p), slice(t_p, t_p + t_f)
