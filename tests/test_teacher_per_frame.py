"""tools/teacher_per_frame.py: the per-frame accuracy of a 2-D network and the table it prints."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsd.config import RunConfig

CLASSES = 3


@pytest.fixture
def tool(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "tools"))
    import teacher_per_frame

    return teacher_per_frame


class PixelReader(torch.nn.Module):
    """Predicts the class written in the first pixel of the first channel."""

    def forward(self, x):
        return F.one_hot(x[:, 0, 0, 0].long(), CLASSES).float()


def test_each_frame_is_read_on_its_own(tool, monkeypatch):
    """Frame 0 carries every label, frame 1 says 0 (right for one sample in four), frame 2 the
    next class (never right): 100, 25 and 0 %, whatever the batch size."""
    labels = np.array([0, 1, 2, 1])
    frames = np.zeros((4, 3, 2, 2, 2), dtype=np.float32)
    frames[:, 0, 0, 0, 0] = labels
    frames[:, 2, 0, 0, 0] = (labels + 1) % CLASSES
    split = SimpleNamespace(frames=frames, labels=labels)
    for batch in (1, 3, 64):
        monkeypatch.setattr(tool, "EVAL_BATCH", batch)
        assert tool.per_frame_accuracy(PixelReader(), split, 3, "cpu") == [100.0, 25.0, 0.0]


def test_the_table_marks_the_windows_and_gives_intervals(tool):
    cfg = RunConfig("hsd", "n-digits", 1, frames=3, pre_frames=2)
    runs = [(cfg, 90.0, [80.0, 60.0, 10.0]), (cfg, 92.0, [90.0, 70.0, 20.0])]
    lines = tool.table({1: runs}).splitlines()
    assert lines[0] == "| T | T_p | seeds | ANN val on [0, T_p) | frame 0 | frame 1 | frame 2 |"
    row = [c.strip() for c in lines[2].strip("|").split("|")]
    assert row[:3] == ["1", "2", "2"]
    assert row[3].startswith("91.0 [") and row[4].startswith("85.0 [")
    assert [c.split("(")[-1] for c in row[4:]] == ["pre)", "pre)", "infer)"]
    one_seed = tool.table({1: runs[:1]}).splitlines()[2]
    assert "| 80.0 (pre) |" in one_seed  # one seed: its value, no interval
