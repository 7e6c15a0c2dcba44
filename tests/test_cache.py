"""Splits and the frame cache, against a tiny fake DatasetSpec (and the real registry if present)."""

import json
import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from hsd.data import cache as cache_mod
from hsd.data.cache import CacheError, load_frames, verify_cache
from hsd.data.frames import integrate_frames, resize_frames
from hsd.data.splits import make_splits, read_split_file, write_split_file

EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])


@dataclass(frozen=True)
class FakeSample:
    path: Path
    label: int
    group: str = ""


@dataclass(frozen=True)
class FakeSpec:
    """Just the DatasetSpec surface the cache uses; events are a function of the file name."""

    name: str = "fake"
    classes: tuple = ("a", "b", "c")
    sensor_size: tuple = (12, 12, 2)
    default_frames: int = 4
    default_size: int = 6
    per_class: int = 10
    official: bool = False
    val_fraction: float = 0.1

    @property
    def num_classes(self):
        return len(self.classes)

    def locate(self, root):
        return Path(root)

    def samples(self, root):
        out = [
            FakeSample(Path(root) / c / f"{i:03d}.bin", k, group=f"user{i % 5}")
            for k, c in enumerate(self.classes)
            for i in range(self.per_class)
        ]
        return sorted(out, key=lambda s: s.path)

    def read_events(self, sample):
        seed = int(sample.path.stem) + 100 * sample.label
        rng = np.random.default_rng(seed)
        n = 40 + seed % 7
        ev = np.zeros(n, EVENT_DTYPE)
        ev["x"] = rng.integers(0, 12, n)
        ev["y"] = rng.integers(0, 12, n)
        ev["t"] = np.sort(rng.integers(0, 1000, n))
        ev["p"] = rng.integers(0, 2, n)
        return ev

    def official_split(self, root):
        if not self.official:
            return None
        samples = self.samples(root)
        train = [i for i, s in enumerate(samples) if s.group != "user4"]
        test = [i for i, s in enumerate(samples) if s.group == "user4"]
        return train, test


# ---------------------------------------------------------------- splits


def names_labels(per_class=(30, 20, 7)):
    names, labels = [], []
    for k, n in enumerate(per_class):
        names += [f"class{k}/s{i:04d}.bin" for i in range(n)]
        labels += [k] * n
    return names, labels


def as_names(names, splits):
    return {s: {names[i] for i in idx} for s, idx in splits.items()}


def test_splits_per_class_disjoint_cover_and_deterministic():
    names, labels = names_labels()
    sp = make_splits(names, labels)
    assert sp == make_splits(names, labels)
    sets = [set(sp[s]) for s in ("train", "val", "test")]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert set().union(*sets) == set(range(len(names)))
    # 9:1 per class: round(0.1 * n) test, then round(0.1 * n_train) val per class
    test_counts = np.bincount(np.asarray(labels)[sp["test"]], minlength=3)
    np.testing.assert_array_equal(test_counts, [3, 2, 1])
    val_counts = np.bincount(np.asarray(labels)[sp["val"]], minlength=3)
    np.testing.assert_array_equal(val_counts, [3, 2, 1])
    assert sp != make_splits(names, labels, seed=1)


def test_splits_stable_under_file_order():
    names, labels = names_labels()
    ref = as_names(names, make_splits(names, labels))
    order = list(range(len(names)))
    random.Random(0).shuffle(order)
    shuffled = [names[i] for i in order]
    got = as_names(shuffled, make_splits(shuffled, [labels[i] for i in order]))
    assert got == ref


def test_official_split_kept_and_val_from_train():
    names, labels = names_labels((10, 10, 10))
    official = ([i for i in range(30) if i % 5], [i for i in range(30) if i % 5 == 0])
    sp = make_splits(names, labels, official=official)
    assert sp["test"] == official[1]
    assert set(sp["train"]) | set(sp["val"]) == set(official[0])
    assert len(sp["val"]) == 3 and not set(sp["train"]) & set(sp["val"])


def test_split_file_round_trip(tmp_path):
    names, labels = names_labels()
    sp = make_splits(names, labels)
    path = write_split_file(tmp_path / "split.json", names, sp, dataset="x", seed=0)
    doc = json.loads(path.read_text())
    assert doc["test"] == sorted(doc["test"]) and doc["dataset"] == "x"
    reordered = names[::-1]
    back = read_split_file(path, reordered)
    assert as_names(reordered, back) == as_names(names, sp)
    with pytest.raises(ValueError, match="not in the dataset"):
        read_split_file(path, names[1:])


def test_split_errors():
    with pytest.raises(ValueError, match="unique"):
        make_splits(["a", "a"], [0, 0])
    with pytest.raises(ValueError, match="test_fraction"):
        make_splits(["a", "b"], [0, 0], test_fraction=1.5)


# ---------------------------------------------------------------- cache


def test_load_frames_contents(tmp_path):
    spec = FakeSpec()
    fs = load_frames(spec, root=tmp_path / "data", cache_dir=tmp_path / "cache")
    assert (fs.frames, fs.size, fs.split_by) == (4, 6, "number")
    assert len(fs.train) + len(fs.val) + len(fs.test) == 30
    assert (len(fs.test), len(fs.val)) == (3, 3)
    assert fs.train.frames.dtype == np.float16 and fs.train.frames.shape[1:] == (4, 2, 6, 6)
    assert isinstance(fs.train.frames, np.memmap) and fs.train.labels.dtype == np.int64
    # the test split file names samples; the arrays follow it in order
    names = [p.relative_to(tmp_path / "data").as_posix() for p in _paths(spec, tmp_path)]
    idx = read_split_file(fs.path / "split.json", names)
    samples = spec.samples(tmp_path / "data")
    for j, i in enumerate(idx["test"]):
        ev = spec.read_events(samples[i])
        want = resize_frames(integrate_frames(ev, 4, (12, 12, 2)), 6).astype(np.float16)
        np.testing.assert_array_equal(fs.test.frames[j], want)
        assert fs.test.labels[j] == samples[i].label
    # area resize 12 -> 6 keeps mass / 4: the frames of a sample sum to its events / 4
    ev = spec.read_events(samples[idx["test"][0]])
    np.testing.assert_allclose(float(fs.test.frames[0].astype(np.float32).sum()), len(ev) / 4)


def _paths(spec, tmp_path):
    return [s.path for s in spec.samples(tmp_path / "data")]


def test_second_load_reuses_cache(tmp_path, monkeypatch):
    spec = FakeSpec()
    a = load_frames(spec, root=tmp_path, cache_dir=tmp_path / "c")
    monkeypatch.setattr(cache_mod, "_write", lambda *a, **k: pytest.fail("rebuilt the cache"))
    b = load_frames(spec, root=tmp_path, cache_dir=tmp_path / "c")
    assert a.path == b.path
    np.testing.assert_array_equal(a.val.frames, b.val.frames)


@pytest.mark.parametrize(
    "change",
    [
        {"frames": 5},
        {"size": 4},
        {"split_by": "time"},
        {"spec": FakeSpec(per_class=9)},
        {"spec": FakeSpec(name="fake2")},
        {"version": 2},
        {"normalization": "max-bilinear"},
    ],
)
def test_any_changed_parameter_gives_new_folder(tmp_path, monkeypatch, change):
    base = load_frames(FakeSpec(), root=tmp_path, cache_dir=tmp_path / "c")
    kw = {k: v for k, v in change.items() if k in ("frames", "size", "split_by")}
    if "version" in change:
        monkeypatch.setattr(cache_mod, "CACHE_VERSION", change["version"])
    if "normalization" in change:
        monkeypatch.setattr(cache_mod, "NORMALIZATION", change["normalization"])
    other = load_frames(
        change.get("spec", FakeSpec()), root=tmp_path, cache_dir=tmp_path / "c", **kw
    )
    assert other.path != base.path and other.path.is_dir()


def test_killed_prepare_leaves_nothing_readable(tmp_path, monkeypatch):
    spec = FakeSpec()
    calls = {"n": 0}
    real = spec.read_events

    def dying(sample):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt  # a kill mid-write
        return real(sample)

    monkeypatch.setattr(FakeSpec, "read_events", lambda self, s: dying(s))
    with pytest.raises(KeyboardInterrupt):
        load_frames(spec, root=tmp_path, cache_dir=tmp_path / "c")
    assert list((tmp_path / "c" / "fake").iterdir()) == []  # temp folder removed
    monkeypatch.undo()
    fs = load_frames(spec, root=tmp_path, cache_dir=tmp_path / "c")
    assert len(fs.train) == 24


def test_leftover_temp_folder_is_ignored(tmp_path):
    spec = FakeSpec()
    # what a SIGKILLed writer leaves: a half-written temp folder without a manifest
    junk = tmp_path / "c" / "fake" / ".tmp-fake-F4-number-S6-deadbeef-123-abc"
    junk.mkdir(parents=True)
    np.save(junk / "train_frames.npy", np.zeros(3, np.float16))
    fs = load_frames(spec, root=tmp_path, cache_dir=tmp_path / "c")
    assert fs.path.name.startswith("fake-F4-number-S6-") and fs.path != junk


def test_incomplete_folder_is_never_read(tmp_path):
    fs = load_frames(FakeSpec(), root=tmp_path, cache_dir=tmp_path / "c")
    (fs.path / "manifest.json").unlink()
    with pytest.raises(CacheError, match="incomplete"):
        load_frames(FakeSpec(), root=tmp_path, cache_dir=tmp_path / "c")


def test_corrupted_array_fails_checksum(tmp_path):
    fs = load_frames(FakeSpec(), root=tmp_path, cache_dir=tmp_path / "c")
    path = fs.path / "train_frames.npy"
    del fs
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CacheError, match="checksum mismatch"):
        load_frames(FakeSpec(), root=tmp_path, cache_dir=tmp_path / "c")


def test_truncated_array_detected(tmp_path):
    fs = load_frames(FakeSpec(), root=tmp_path, cache_dir=tmp_path / "c")
    path = fs.path / "val_frames.npy"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CacheError, match="wrong size"):
        verify_cache(fs.path)


def test_official_split_in_cache(tmp_path):
    spec = FakeSpec(official=True)
    fs = load_frames(spec, root=tmp_path, cache_dir=tmp_path / "c")
    assert len(fs.test) == 6  # user4 = samples 4 and 9 of each class
    doc = json.loads((fs.path / "split.json").read_text())
    assert all(n.endswith(("004.bin", "009.bin")) for n in doc["test"])


def test_regenerated_simulated_set_never_reads_a_stale_cache(tmp_path, monkeypatch):
    """A new generator version may write the same file names (so the same sample digest): the
    generator's identity is part of the key. Real datasets' keys do not carry one."""
    from hsd.data import simulated

    tiny = replace(
        simulated.GENERATORS["n-digits"], defaults={"n_train_per_class": 2, "n_test_per_class": 1}
    )
    monkeypatch.setitem(simulated.GENERATORS, "n-digits", tiny)
    kw = dict(size=4, root=tmp_path / "data", cache_dir=tmp_path / "cache")
    old = load_frames("n-digits", **kw)
    assert (len(old.train), len(old.val), len(old.test)) == (10, 10, 10)
    monkeypatch.setitem(simulated.GENERATORS, "n-digits", replace(tiny, version=99))
    new = load_frames("n-digits", **kw)
    names = [json.loads((fs.path / "split.json").read_text())["test"] for fs in (old, new)]
    assert names[0] == names[1]  # same names, yet a new cache folder
    assert new.path != old.path
    assert json.loads((new.path / "manifest.json").read_text())["params"]["generation"] == {
        "generator_version": 99, "seed": 0, "sizes": tiny.defaults}  # fmt: skip
    real = load_frames(FakeSpec(), root=tmp_path, cache_dir=tmp_path / "c")
    assert "generation" not in json.loads((real.path / "manifest.json").read_text())["params"]


def test_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="split_by"):
        load_frames(FakeSpec(), split_by="x", root=tmp_path, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="frames"):
        load_frames(FakeSpec(), frames=0, root=tmp_path, cache_dir=tmp_path)
