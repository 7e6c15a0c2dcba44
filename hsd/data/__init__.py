"""The event data layer: formats, datasets, simulator, frames, splits, cache, batches.

Public names (other packages and users rely on them):
`DATASETS`, `DatasetSpec`, `Sample`, `DatasetError`, `EVENT_DTYPE`, `integrate_frames`,
`load_frames`, `FrameSet`, `FrameSplit`, `ht_partition`, `iterate_batches`.
"""

from hsd.data.cache import CacheError, FrameSet, FrameSplit, load_frames, prepare
from hsd.data.datasets import DATASETS, DatasetSpec, Sample
from hsd.data.events import EVENT_DTYPE, DatasetError, make_events
from hsd.data.frames import integrate_frames, resize_frames
from hsd.data.loader import iterate_batches
from hsd.data.partition import ht_partition

__all__ = [
    "DATASETS",
    "EVENT_DTYPE",
    "CacheError",
    "DatasetError",
    "DatasetSpec",
    "FrameSet",
    "FrameSplit",
    "Sample",
    "ht_partition",
    "integrate_frames",
    "iterate_batches",
    "load_frames",
    "make_events",
    "prepare",
    "resize_frames",
]
