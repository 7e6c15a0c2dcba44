"""Dataset registry: layouts detected from tiny fake trees, clear errors, simulated sets."""

import dataclasses
import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from hsd.data import DATASETS, EVENT_DTYPE, DatasetError, DatasetSpec, Sample, formats, simulated
from hsd.data.events import make_events
from hsd.registry import UnknownNameError


def tiny_events(seed, n=20, w=128, h=128):
    rng = np.random.default_rng(seed)
    return make_events(rng.integers(0, w, n), rng.integers(0, h, n),
                       np.sort(rng.integers(0, 10**6, n)), rng.integers(0, 2, n))  # fmt: skip


def make_cifar_tonic(root, per_class=2):
    for c in DATASETS["cifar10-dvs"].classes:
        d = root / "CIFAR10DVS" / c
        d.mkdir(parents=True)
        for i in range(per_class):
            formats.write_aedat4(d / f"cifar10_{c}_{i}.aedat4", tiny_events(i))
    return root


def make_gesture_tonic(root, train_users=(1, 2), test_users=(24,)):
    for part, users in (("ibmGestureTrain", train_users), ("ibmGestureTest", test_users)):
        for u in users:
            d = root / "DVSGesture" / part / f"user{u:02d}_led"
            d.mkdir(parents=True)
            for label in range(11):
                formats.write_gesture_npy(d / f"{label}.npy", tiny_events(u * 11 + label))
    return root


def test_registry_names_and_paper_defaults():
    assert DATASETS.names() == ["cifar10-dvs", "dvs-gesture", "n-caltech101", "n-digits",
                                "sim-gestures"]  # fmt: skip
    want = {  # (classes, sensor W, H, F_total, size, arch, simulated)
        "cifar10-dvs": (10, 128, 128, 10, 48, "vgg", False),
        "n-caltech101": (101, 240, 180, 10, 48, "vgg", False),
        "dvs-gesture": (11, 128, 128, 16, 128, "snn5", False),
        "n-digits": (10, 34, 34, 10, 48, "vgg", True),
        "sim-gestures": (11, 64, 64, 16, 32, "snn5", True),
    }
    for name, w in want.items():
        s = DATASETS[name]
        got = (s.num_classes, *s.sensor_size[:2], s.default_frames, s.default_size, s.arch,
               s.simulated)  # fmt: skip
        assert got == w and s.sensor_size[2] == 2, name
    assert "BACKGROUND_Google" in DATASETS["n-caltech101"].classes
    assert "Faces" not in DATASETS["n-caltech101"].classes
    with pytest.raises(UnknownNameError, match="valid: cifar10-dvs"):
        DATASETS["cifar10"]
    assert dataclasses.is_dataclass(DatasetSpec) and dataclasses.is_dataclass(Sample)


def test_cifar10dvs_tonic_layout(tmp_path):
    spec = DATASETS["cifar10-dvs"]
    make_cifar_tonic(tmp_path)
    assert spec.locate(tmp_path) == tmp_path / "CIFAR10DVS"
    samples = spec.samples(tmp_path)
    assert len(samples) == 20 and samples[0].path.name == "cifar10_airplane_0.aedat4"
    assert [s.label for s in samples] == list(np.repeat(np.arange(10), 2))
    rels = [s.path.relative_to(tmp_path).as_posix() for s in samples]
    assert rels == sorted(rels)
    ev = spec.read_events(samples[3])
    assert ev.dtype == EVENT_DTYPE and np.array_equal(ev, tiny_events(1))
    assert spec.official_split(tmp_path) is None


@pytest.mark.parametrize("top", [".", "extract"])
def test_cifar10dvs_original_aedat_layout(tmp_path, top):
    spec = DATASETS["cifar10-dvs"]
    for c in spec.classes:
        (tmp_path / top / c).mkdir(parents=True)
        formats.write_aedat2(tmp_path / top / c / f"cifar10_{c}_0.aedat", tiny_events(5))
    samples = spec.samples(tmp_path)
    assert len(samples) == 10 and samples[9].label == 9
    assert np.array_equal(spec.read_events(samples[9]), tiny_events(5))


@pytest.mark.parametrize("tonic_layout", [True, False])
def test_ncaltech101_layout(tmp_path, tonic_layout):
    spec = DATASETS["n-caltech101"]
    base = tmp_path / "NCALTECH101" / "Caltech101" if tonic_layout else tmp_path
    for c in spec.classes:
        (base / c).mkdir(parents=True)
        formats.write_atis_bin(base / c / "image_0001.bin", tiny_events(1, w=240, h=180))
    assert spec.locate(tmp_path) == base
    samples = spec.samples(tmp_path)
    assert len(samples) == 101
    assert [s.label for s in samples] == list(range(101))
    assert samples[0].path.parent.name == "BACKGROUND_Google"
    assert np.array_equal(spec.read_events(samples[50]), tiny_events(1, w=240, h=180))


def test_dvs_gesture_layout_and_official_split(tmp_path):
    spec = DATASETS["dvs-gesture"]
    make_gesture_tonic(tmp_path)
    samples = spec.samples(tmp_path)
    assert len(samples) == 33
    train, test = spec.official_split(tmp_path)
    assert sorted({samples[i].group for i in train}) == ["user01", "user02"]
    assert {samples[i].group for i in test} == {"user24"}
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(33))
    s = samples[int(test[4])]
    assert s.label == int(s.path.stem)
    expected = tiny_events(24 * 11 + s.label)
    expected["t"] = expected["t"] // 1000 * 1000
    assert np.array_equal(spec.read_events(s), expected)


def test_dvs_gesture_original_release_is_detected_and_converted(tmp_path):
    from hsd.data.datasets import convert_dvs_gesture_original

    src = tmp_path / "DvsGesture"
    src.mkdir()
    for user, listing in ((1, "trials_to_train.txt"), (24, "trials_to_test.txt")):
        stem = f"user{user:02d}_led"
        ev = tiny_events(user, n=300)  # t in [0, 1 s)
        formats.write_aedat31(src / f"{stem}.aedat", ev)
        formats.write_gesture_labels_csv(src / f"{stem}_labels.csv",
                                         [(1, 0, 300_000), (11, 500_000, 900_000)])  # fmt: skip
        (src / listing).write_text(f"{stem}.aedat\n")
    spec = DATASETS["dvs-gesture"]
    with pytest.raises(DatasetError, match="original DVS-Gesture release.*convert"):
        spec.samples(tmp_path)
    dst = convert_dvs_gesture_original(src, tmp_path / "tonic")
    samples = spec.samples(dst)
    assert [(s.group, s.label) for s in samples] == [
        ("user24", 0), ("user24", 10), ("user01", 0), ("user01", 10)]  # fmt: skip
    ev = tiny_events(1, n=300)
    want = ev[(ev["t"] >= 500_000) & (ev["t"] < 900_000)].copy()
    want["t"] = (want["t"] - 500_000) // 1000 * 1000
    assert np.array_equal(spec.read_events(samples[3]), want)


def test_missing_root_shows_expected_layout_and_source(tmp_path):
    with pytest.raises(DatasetError) as e:
        DATASETS["dvs-gesture"].samples(tmp_path / "nowhere")
    msg = str(e.value)
    assert "does not exist" in msg and "ibmGestureTrain/user<NN>_<lighting>" in msg
    assert "research.ibm.com" in msg


def test_wrong_layout_is_named(tmp_path):
    make_gesture_tonic(tmp_path)
    with pytest.raises(DatasetError, match="found no .aedat4 or .aedat files"):
        DATASETS["cifar10-dvs"].samples(tmp_path)
    with pytest.raises(DatasetError, match="CIFAR10DVS/<class>/\\*.aedat4"):
        DATASETS["cifar10-dvs"].samples(tmp_path)
    cifar = make_cifar_tonic(tmp_path / "c")
    with pytest.raises(DatasetError, match="no ibmGestureTrain / ibmGestureTest"):
        DATASETS["dvs-gesture"].samples(cifar)


def test_incomplete_and_foreign_folders(tmp_path):
    spec = DATASETS["cifar10-dvs"]
    make_cifar_tonic(tmp_path)
    for f in (tmp_path / "CIFAR10DVS" / "truck").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="incomplete: 1 of 10 classes.*truck"):
        spec.samples(tmp_path)
    (tmp_path / "CIFAR10DVS" / "truck" / "x.aedat4").write_bytes(b"")
    (tmp_path / "CIFAR10DVS" / "tractor").mkdir()
    formats.write_aedat4(tmp_path / "CIFAR10DVS" / "tractor" / "0.aedat4", tiny_events(0))
    with pytest.raises(DatasetError, match="not cifar10-dvs classes.*tractor"):
        spec.samples(tmp_path)
    gesture = make_gesture_tonic(tmp_path / "g")
    for f in (gesture / "DVSGesture" / "ibmGestureTest").rglob("*.npy"):
        f.unlink()
    with pytest.raises(DatasetError, match="incomplete: ibmGestureTest"):
        DATASETS["dvs-gesture"].samples(gesture)


def test_truncated_and_empty_recordings_name_the_file(tmp_path):
    spec = DATASETS["dvs-gesture"]
    make_gesture_tonic(tmp_path)
    samples = spec.samples(tmp_path)
    f = samples[0].path
    f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(DatasetError, match=f"{f.parent.name}/{f.name}.*truncated"):
        spec.read_events(samples[0])
    formats.write_gesture_npy(samples[1].path, tiny_events(0)[:0])
    with pytest.raises(DatasetError, match=f"{samples[1].path.name}: empty recording"):
        spec.read_events(samples[1])
    formats.write_gesture_npy(samples[2].path, tiny_events(0, w=200))
    with pytest.raises(DatasetError, match="outside the sensor 128x128"):
        spec.read_events(samples[2])


def test_download_offline_gives_a_clear_error(tmp_path, monkeypatch):
    import tonic.datasets

    def offline(self):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    for cls in ("CIFAR10DVS", "DVSGesture", "NCALTECH101"):
        monkeypatch.setattr(getattr(tonic.datasets, cls), "download", offline)
    with pytest.raises(DatasetError) as e:
        DATASETS["cifar10-dvs"].download(tmp_path)
    msg = str(e.value)
    assert "download failed (URLError" in msg and "offline" in msg
    assert "figshare.com" in msg and "CIFAR10DVS/<class>/*.aedat4" in msg
    assert ".download(root)" not in msg  # no advice to do what just failed
    with pytest.raises(DatasetError, match="(?s)download failed.*research.ibm.com"):
        DATASETS["dvs-gesture"].download(tmp_path)


# --- simulated sets ---------------------------------------------------------------------------


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and p.name != simulated.MANIFEST}  # fmt: skip


def test_n_digits_generated_and_read_through_the_ncaltech_path(tmp_path):
    sizes = {"n_train_per_class": 3, "n_test_per_class": 2}
    folder = simulated.ensure("n-digits", tmp_path, seed=3, **sizes)
    assert folder == tmp_path / "n-digits" / "v2-seed3-n_test_per_class2-n_train_per_class3"
    man = simulated.read_manifest(folder)
    assert (man["dataset"], man["seed"], man["generator_version"], man["samples"]) == (
        "n-digits", 3, 2, 50)  # fmt: skip
    assert (man["train"], man["test"]) == (30, 20)
    scene = dataclasses.asdict(simulated.DIGIT_SCENE)
    assert man["scene"] == json.loads(json.dumps(scene))  # the physical setup, recorded
    spec = DATASETS["n-digits"]
    samples = spec.samples(folder)  # a generated folder is itself a valid root
    assert len(samples) == 50 and [s.label for s in samples] == list(np.repeat(range(10), 5))
    assert samples[0].path.suffix == ".bin" and "NCALTECH101/Caltech101/0" in str(samples[0].path)
    # the published split: test_*.bin files are the test set, 2 per class
    train, test = spec.official_split(folder)
    assert all(samples[i].path.name.startswith("test_") for i in test)
    assert len(test) == 20 and np.bincount([samples[i].label for i in test]).tolist() == [2] * 10
    assert sorted([*train, *test]) == list(range(50))
    ev = spec.read_events(samples[0])
    assert len(ev) > 300 and ev["x"].max() < 34 and ev["p"].any() and not ev["p"].all()
    # same seed -> byte-identical files; another seed -> different recordings
    again = simulated.ensure("n-digits", tmp_path / "again", seed=3, **sizes)
    assert _files(again) == _files(folder)
    other = simulated.ensure("n-digits", tmp_path, seed=4, **sizes)
    assert _files(other) != _files(folder)
    assert simulated.ensure("n-digits", tmp_path, seed=3, **sizes) == folder  # cached
    for p in again.rglob("test_*.bin"):  # a copy that lost its test files says so
        p.unlink()
    with pytest.raises(DatasetError, match=r"needs both test_\* files"):
        spec.official_split(again)


def test_n_digits_test_images_are_never_recorded_for_training():
    imgs, test, train = simulated._digit_pools(100, np.random.default_rng(0))
    assert imgs.shape == (1797, 28, 28) and 0 <= imgs.min() and imgs.max() <= 1
    for c in range(10):
        assert len(test[c]) == 100 and len(train[c]) >= 74  # digit 8 has the fewest: 174
        assert not set(test[c]) & set(train[c])
    with pytest.raises(ValueError, match="digit 8 has only 174 images"):
        simulated._digit_pools(174, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_test_per_class >= 1"):
        simulated.generate_n_digits(Path("unused"), 0, n_test_per_class=0)


def test_sim_gestures_generated_with_a_by_subject_split(tmp_path):
    sizes = {"train_subjects": 3, "test_subjects": 1, "lightings": 2}
    folder = simulated.ensure("sim-gestures", tmp_path, seed=0, **sizes)
    spec = DATASETS["sim-gestures"]
    samples = spec.samples(folder)
    assert len(samples) == 4 * 2 * 11
    man = simulated.read_manifest(folder)
    assert (man["generator_version"], man["train"], man["test"]) == (3, 66, 22)
    train, test = spec.official_split(folder)
    assert {samples[i].group for i in test} == {"user04"}  # the subjects after the training ones
    assert {samples[i].group for i in train} == {"user01", "user02", "user03"}
    ev = spec.read_events(samples[0])
    assert ev["t"].max() > 500_000 and ev["x"].max() < 64 and ev["y"].max() < 64
    again = simulated.ensure("sim-gestures", tmp_path / "b", seed=0, **sizes)
    assert _files(again) == _files(folder)
    # more test subjects leave the training recordings byte-identical
    more = simulated.ensure("sim-gestures", tmp_path / "c", seed=0, **{**sizes, "test_subjects": 2})
    train_files = {k: v for k, v in _files(folder).items() if "ibmGestureTrain" in k}
    assert {k: v for k, v in _files(more).items() if "ibmGestureTrain" in k} == train_files
    with pytest.raises(ValueError, match="lightings"):
        simulated.generate_sim_gestures(tmp_path / "d", 0, lightings=4)


def test_locate_generates_on_first_use_under_root(tmp_path, monkeypatch):
    small = dataclasses.replace(
        simulated.GENERATORS["n-digits"], defaults={"n_train_per_class": 1, "n_test_per_class": 1}
    )
    monkeypatch.setitem(simulated.GENERATORS, "n-digits", small)
    spec = DATASETS["n-digits"]
    base = spec.locate(tmp_path)
    assert base == tmp_path / "n-digits" / "v2-seed0" / "NCALTECH101" / "Caltech101"
    assert len(spec.samples(tmp_path)) == 20 and len(spec.official_split(tmp_path)[1]) == 10
    monkeypatch.setenv("HSD_DATA_DIR", str(tmp_path / "env"))
    assert spec.locate(None).is_relative_to(tmp_path / "env" / "n-digits")
    v3 = dataclasses.replace(small, version=3)  # a changed generator: a new folder
    monkeypatch.setitem(simulated.GENERATORS, "n-digits", v3)
    assert simulated.dataset_dir("n-digits", tmp_path).name == "v3-seed0"


def test_killed_generation_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def dies(out, seed, **kw):
        (out / "NCALTECH101").mkdir()
        raise KeyboardInterrupt  # as if killed halfway

    broken = dataclasses.replace(simulated.GENERATORS["n-digits"], generate=dies)
    monkeypatch.setitem(simulated.GENERATORS, "n-digits", broken)
    with pytest.raises(KeyboardInterrupt):
        simulated.ensure("n-digits", tmp_path)
    assert list((tmp_path / "n-digits").iterdir()) == []  # no final folder, no temp left
    (tmp_path / "n-digits" / "v2-seed0").mkdir()  # e.g. a hand-made folder without manifest
    with pytest.raises(DatasetError, match="no manifest.json"):
        simulated.ensure("n-digits", tmp_path)
