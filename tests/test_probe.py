"""The method-neutral data probe (harness.probe): its input, its network, its command line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness import data as D
from harness import probe as P


def test_probe_input_stacks_the_whole_stream_or_keeps_the_first_tenth():
    frames = np.zeros((1, P.FRAMES, 2, 2, 2), dtype=np.float16)
    frames[0, 0, 1, 0, 0] = 3.0  # first frame, second polarity
    frames[0, 9, 0, 1, 1] = 1.0  # last frame, first polarity
    whole = P.probe_input(frames, "whole")
    early = P.probe_input(frames, "first tenth")
    assert whole.shape == (1, 2 * P.FRAMES, 2, 2) and early.shape == (1, 2, 2, 2)
    assert whole[0, 1, 0, 0].item() == pytest.approx(math.log(4.0))  # log1p of a count of 3
    assert whole[0, 18, 1, 1].item() == pytest.approx(math.log(2.0))
    assert early.sum().item() == pytest.approx(math.log(4.0))  # the last frame is not in it


def test_probe_net_gives_one_logit_per_class_for_any_input_size():
    import torch

    net = P.probe_net(in_channels=20, classes=11)
    for size in (16, 32):
        assert net(torch.zeros(3, 20, size, size)).shape == (3, 11)


def test_probe_cli_refuses_bad_input(tmp_path, capsys):
    assert D.main(["probe", "--dataset", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    (tmp_path / "f").write_text("")
    assert D.main(["probe", "--dataset", "n-digits", "--out", str(tmp_path / "f" / "x.json")]) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.slow
def test_probe_runs_end_to_end_and_writes_its_json(data_env, tmp_path):
    out = tmp_path / "probe.json"
    argv = ["probe", "--dataset", "n-digits", "--epochs", "1", "--seeds", "2", "--out", str(out)]
    assert D.main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["command"] == "python -m harness.data " + " ".join(argv)
    assert [r["input"] for r in doc["runs"]] == ["whole"] * 2 + ["first tenth"] * 2
    assert all(0.0 <= r["test_acc"] <= 1.0 and r["epoch"] == 1 for r in doc["runs"])
    whole = [100 * r["test_acc"] for r in doc["runs"] if r["input"] == "whole"]
    assert doc["test_acc_pct"]["whole"]["mean"] == pytest.approx(np.mean(whole))
    assert doc["size"] == 16 and doc["cpu_isa"] and doc["git_commit"]  # smoke size; provenance
