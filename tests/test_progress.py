"""The sweep's progress bar: weighted by trial cost, never past its total."""

import warnings
from types import SimpleNamespace

from harness.executors import Progress
from hsd.config import RunConfig


def _trial(run_id, pre_epochs, epochs):
    # HSD with HT: cost = pre_epochs·2 + epochs·1 epoch-frames over pre_epochs + epochs epochs
    cfg = RunConfig(
        "hsd",
        "n-digits",
        1,
        frames=3,
        pre_frames=2,
        epochs=epochs,
        pre_epochs=pre_epochs,
        options={"ht": True},
    )
    return SimpleNamespace(run_id=run_id, cfg=cfg)


def test_progress_reaches_its_total_exactly_and_never_passes_it():
    # costs split into thirds, sevenths, ...: float increments whose sum is not the total
    trials = [_trial(f"r{i}", pre, ep) for i, (pre, ep) in enumerate([(1, 2), (3, 4), (5, 1)] * 20)]
    p = Progress(trials, enabled=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm warns when n passes total
        for t in trials:
            for _ in range(t.cfg.pre_epochs + t.cfg.epochs + 1):  # one too many: capped
                p.epoch(t.run_id, t.run_id)
                assert p.bar.n <= p.bar.total
        for t in trials:
            p.finish(t.run_id)
    assert p.bar.n == p.bar.total == 20 * (4 + 10 + 11)
    assert p.finished == 60


def test_runs_seen_only_when_finished_fill_the_planned_total():
    # Ray tuning: the bar knows the plan (4 runs of cost 5) before any run is seen
    p = Progress([], enabled=False, expected=20, planned=4)
    assert p.bar.total == 20
    for i in range(4):
        p.arrived(f"r{i}", 5)
        p.finish(f"r{i}")
    assert p.bar.n == p.bar.total == 20
    assert p.bar.postfix.startswith("trials 4/4")


def test_each_epoch_advances_by_its_own_stages_frames():
    # 2 pre-training epochs on 2 frames, then 3 SNN epochs on 1 frame: the bar stands at 4 after
    # pre-training (not at 2·7/5, the average), and an unknown stage name falls back to the average
    p = Progress([_trial("r", 2, 3)], enabled=False)
    p.epoch("r", "r", "pretrain")
    p.epoch("r", "r", "pretrain")
    assert p.bar.n == 4
    p.epoch("r", "r", "finetune")
    assert p.bar.n == 5
    p.epoch("r", "r", "another")
    assert p.bar.n == 5 + 7 / 5
