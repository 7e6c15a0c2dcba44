"""The data CLI, the cache on the real registry, and learnability of the simulated sets."""

import json
import subprocess
import sys

import numpy as np
import pytest

from harness.data import main
from hsd.data import simulated
from hsd.data.cache import load_frames

REVERSED_PAIRS = simulated.REVERSED_PAIRS


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """Small generated sets (the real generators with fewer samples) and a cache folder."""
    base = tmp_path_factory.mktemp("sim")
    return {
        "n-digits": simulated.ensure("n-digits", base, n_train_per_class=30, n_test_per_class=30),
        "sim-gestures": simulated.ensure(
            "sim-gestures", base, train_subjects=6, test_subjects=2, lightings=1
        ),
        "cache": base / "cache",
    }


# ---------------------------------------------------------------- CLI


def test_prepare_prints_cache_folder_and_reuses_it(roots, capsys):
    args = ["prepare", "--dataset", "n-digits", "--root", str(roots["n-digits"]), "--size", "12",
            "--cache-dir", str(roots["cache"]), "--quiet"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "train 200, val 100, test 300" in out[0]  # a third of training held out
    folder = out[-1]
    assert (roots["cache"] / "n-digits").as_posix() in folder
    assert json.loads(open(f"{folder}/manifest.json").read())["params"]["size"] == 12
    assert main(args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == folder


def test_info_reports_classes_splits_events_and_caches(roots, capsys):
    assert main(["prepare", "sim-gestures", "--root", str(roots["sim-gestures"]), "--size", "8",
                 "--cache-dir", str(roots["cache"]), "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["info", "--dataset", "sim-gestures", "--root", str(roots["sim-gestures"]),
                 "--cache-dir", str(roots["cache"])]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "split: official test split, val 50% of train per class" in out  # simulated: 1/2
    row = next(line for line in out.splitlines() if line.startswith("circle_cw"))
    assert row.split()[1:] == ["3", "3", "2"]  # 6 train recordings -> 3 + 3 val, 2 test subjects
    assert "events per sample (88 of 88 samples): min" in out
    assert "F=16 S=8 split_by=number" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "--dataset", "mnist-dvs"], "unknown dataset 'mnist-dvs'; valid: cifar10-dvs"),
        (["prepare", "--frames", "10"], "missing dataset"),
        (["prepare", "cifar10-dvs", "--root", "/nonexistent/data"], "does not exist"),
        (["info", "n-digits", "--dataset", "sim-gestures"], "dataset given twice"),
        (["bench", "--samples", "8", "--batch", "16"], "exceeds --samples"),
    ],
)
def test_bad_input_exit_code_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_dataset_error_from_layout_exit_code_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["info", "--dataset", "dvs-gesture", "--root", str(tmp_path / "empty")]) == 2
    assert "dvs-gesture" in capsys.readouterr().err


def test_argparse_errors_and_real_exit_code(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "n-digits", "--frames", "0"])
    assert exc.value.code == 2
    proc = subprocess.run(
        [sys.executable, "-m", "harness.data", "info", "--dataset", "nope"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "unknown dataset 'nope'" in proc.stderr and not proc.stdout


def test_bench_old_name_runs_the_data_benchmark(tmp_path, capsys):
    """`harness.data bench` is `harness.bench data` under its older name (tested there in full)."""
    out = tmp_path / "bench.json"
    argv = ["bench", "--events", "2000", "--frames", "10", "--repeats", "2", "--samples", "32",
            "--batch", "8", "--size", "16", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    rows = {r["what"].split(":")[1].strip().split()[0]: r for r in doc["rows"]}
    assert rows["ours"]["identical"] is True and rows["ours"]["rate"] > 0
    assert doc["rows"][-1]["unit"] == "frames/s"
    assert doc["command"] == "python -m harness.data " + " ".join(argv)
    assert "integrate: ours" in capsys.readouterr().out


# ---------------------------------------------------------------- the real registry


def test_real_registry_cache_and_official_split(roots):
    fs = load_frames("sim-gestures", size=8, root=roots["sim-gestures"], cache_dir=roots["cache"])
    assert fs.spec.name == "sim-gestures" and fs.frames == 16
    assert (len(fs.train), len(fs.val), len(fs.test)) == (33, 33, 22)  # half of train is val
    doc = json.loads((fs.path / "split.json").read_text())
    assert all("ibmGestureTest" in n for n in doc["test"])
    assert not any("ibmGestureTest" in n for n in doc["train"] + doc["val"])
    assert fs.train.frames.shape == (33, 16, 2, 8, 8)


# ---------------------------------------------------------------- learnability


def _ridge_accuracy(fs, n_frames):
    """Test accuracy of a linear classifier on the first `n_frames` frames summed (12 x 12)."""
    from sklearn.linear_model import RidgeClassifier

    def features(split):
        head = split.frames[:, :n_frames].astype(np.float32)
        return head.sum(axis=(1, 2)).reshape(len(split), -1)

    x = np.concatenate([features(fs.train), features(fs.val)])
    y = np.concatenate([fs.train.labels, fs.val.labels])
    clf = RidgeClassifier(alpha=10.0).fit(x / x.std(), y)
    return clf.score(features(fs.test) / x.std(), fs.test.labels)


def test_n_digits_learnable_and_information_accumulates_over_the_stream(roots):
    """The whole saccade summed is a blurred digit a linear model reads well above chance; the
    first tenth of the events is not (low contrast and background noise: each early slice shows
    a sparse, noisy part of the edges). Measured at these sizes, seeds 0-2: first frame
    0.41-0.48, first five 0.69-0.76, all ten 0.66-0.75 (chance 0.10)."""
    fs = load_frames("n-digits", size=12, root=roots["n-digits"], cache_dir=roots["cache"])
    whole, first, five = (_ridge_accuracy(fs, n) for n in (10, 1, 5))
    assert whole >= 0.5, f"n-digits test accuracy {whole:.2f} (chance 0.10)"
    assert five - first >= 0.15, f"first frame {first:.2f}, first five {five:.2f}"


def test_sim_gestures_time_reversal_confuses_reversed_pairs(roots):
    """A temporal linear model (per-frame features concatenated in time order) separates the
    pairs that differ only in temporal order; on time-reversed test samples (frames reversed
    and polarity swapped, i.e. the recording played backwards) it predicts the partner."""
    from sklearn.linear_model import RidgeClassifier

    fs = load_frames("sim-gestures", size=8, root=roots["sim-gestures"], cache_dir=roots["cache"])

    def features(frames):
        return frames.astype(np.float32).reshape(len(frames), -1)

    x = features(np.concatenate([fs.train.frames, fs.val.frames]))
    y = np.concatenate([fs.train.labels, fs.val.labels])
    clf = RidgeClassifier(alpha=10.0).fit(x / x.std(), y)
    partner = {a: b for a, b in REVERSED_PAIRS} | {b: a for a, b in REVERSED_PAIRS}
    mask = np.isin(fs.test.labels, list(partner))
    frames, labels = fs.test.frames[mask], fs.test.labels[mask]
    forward = clf.predict(features(frames) / x.std())
    backward = clf.predict(features(frames[:, ::-1, ::-1]) / x.std())
    assert (forward == labels).mean() >= 0.8
    assert (backward == labels).mean() <= 0.2
    assert (backward == np.array([partner[int(v)] for v in labels])).mean() >= 0.6
