"""The dataset registry: what each dataset is, where its files are and how to read them.

A `DatasetSpec` says what a dataset is (classes, sensor size, the paper's frame count and input
size, the architecture the paper uses on it) and delegates to a *layout* that finds the files
under a user's data root, lists the samples, picks the reader and gives the official split.

    spec = DATASETS["dvs-gesture"]
    samples = spec.samples("/data")          # sorted by relative path
    events = spec.read_events(samples[0])    # EVENT_DTYPE, t in microseconds
    split = spec.official_split("/data")     # (train_idx, test_idx) or None

Nothing downloads implicitly: `spec.download(root)` is the only code path that touches the
network (through tonic's own downloaders). The simulated sets (`n-digits`, `sim-gestures`) are
generated on first use by `hsd.data.simulated` and then read back through the same layouts as
the real sets they stand in for (N-Caltech101's `.bin` tree, DVS-Gesture's `.npy` tree).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..registry import Registry
from . import formats
from .events import DatasetError, sort_events, validate_events

__all__ = [
    "DATASETS",
    "DatasetError",
    "DatasetSpec",
    "Sample",
    "convert_dvs_gesture_original",
    "default_data_dir",
]


def default_data_dir() -> Path:
    """`$HSD_DATA_DIR`, else `~/.cache/hsd/data`."""
    env = os.environ.get("HSD_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hsd" / "data"


@dataclass(frozen=True)
class Sample:
    """One recording: its file, class index and group (the subject for gesture sets, else '')."""

    path: Path
    label: int
    group: str = ""


# ---------------------------------------------------------------------------------------------
# Layouts: find the files of a dataset under a root, list them, read them.
# ---------------------------------------------------------------------------------------------


def _rel(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


@dataclass(frozen=True)
class ClassFolders:
    """`<top>/<class>/*<suffix>` trees (N-Caltech101, CIFAR10-DVS): the label is the name of the
    folder holding the file. `tops` are tried in order (relative to the root, "." = the root
    itself); the first that holds files of one of `suffixes` (tried in order) is used.
    `test_prefix`, where set, marks a published test split: the files whose names start with
    it are the test set, the others the training set (the simulated n-digits)."""

    tops: tuple[str, ...]
    suffixes: tuple[str, ...]
    tree: str  # the expected layout, for error messages
    test_prefix: str = ""

    def find(self, spec: DatasetSpec, root: Path) -> Path:
        for top in self.tops:
            d = root / top
            if d.is_dir() and any(next(d.rglob(f"*{s}"), None) for s in self.suffixes):
                return d
        raise spec._layout_error(root, f"found no {' or '.join(self.suffixes)} files")

    def samples(self, spec: DatasetSpec, base: Path) -> list[Sample]:
        files: list[Path] = []
        for suffix in self.suffixes:  # one format only: never read a dataset twice
            files = sorted(base.rglob(f"*{suffix}"), key=lambda p: _rel(p, base))
            if files:
                break
        index = {c: i for i, c in enumerate(spec.classes)}
        unknown = sorted({p.parent.name for p in files} - set(index))
        if unknown:
            raise spec._layout_error(
                base, f"files in folders that are not {spec.name} classes: {unknown[:5]}"
            )
        present = {p.parent.name for p in files}
        missing = [c for c in spec.classes if c not in present]
        if missing:
            raise spec._layout_error(
                base,
                f"incomplete: {len(missing)} of {spec.num_classes} classes have no files "
                f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})",
            )
        return [Sample(p, index[p.parent.name]) for p in files]

    def read(self, path: Path) -> np.ndarray:
        if path.suffix == ".bin":
            return formats.read_atis_bin(path)
        if path.suffix == ".aedat4":
            return formats.read_aedat4(path)
        if path.suffix == ".aedat":
            return formats.read_aedat2(path)
        raise DatasetError(f"{path}: no reader for '{path.suffix}' files")

    def official_split(self, spec: DatasetSpec, base: Path, samples: list[Sample]):
        if not self.test_prefix:
            return None  # neither CIFAR10-DVS nor N-Caltech101 has one (see hsd/data/splits.py)
        is_test = np.array([s.path.name.startswith(self.test_prefix) for s in samples], bool)
        if is_test.all() or not is_test.any():
            raise spec._layout_error(
                base, f"incomplete: the split needs both {self.test_prefix}* files and others"
            )
        return np.flatnonzero(~is_test), np.flatnonzero(is_test)


_USER_DIR = re.compile(r"^user(\d+)_(.+)$")


@dataclass(frozen=True)
class GestureFolders:
    """tonic's DVS-Gesture tree: `<top>/{ibmGestureTrain,ibmGestureTest}/user<NN>_<lighting>/
    <label>.npy`; the official split is the train/test folder (by subject)."""

    tops: tuple[str, ...]
    tree: str
    parts: tuple[str, str] = ("ibmGestureTrain", "ibmGestureTest")

    def find(self, spec: DatasetSpec, root: Path) -> Path:
        for top in self.tops:
            d = root / top
            if all((d / part).is_dir() for part in self.parts):
                return d
        for d in (root, root / "DvsGesture"):
            if (d / "trials_to_train.txt").is_file():
                raise DatasetError(
                    f"{d} holds the original DVS-Gesture release (AEDAT 3.1 + labels CSV). "
                    "Cut it once into tonic's per-gesture .npy layout with "
                    f"hsd.data.datasets.convert_dvs_gesture_original({str(d)!r}, <new root>), "
                    "then point the harness at <new root>."
                )
        found = [p for p in self.parts if any((root / t / p).is_dir() for t in self.tops)]
        why = f"found only {found}" if found else f"found no {' / '.join(self.parts)} folders"
        raise spec._layout_error(root, why)

    def samples(self, spec: DatasetSpec, base: Path) -> list[Sample]:
        out = []
        for part in self.parts:
            for f in (base / part).glob("*/*.npy"):
                m = _USER_DIR.match(f.parent.name)
                if not m:
                    raise spec._layout_error(
                        base, f"{_rel(f.parent, base)}: folder is not named user<NN>_<lighting>"
                    )
                if not f.stem.isdigit() or int(f.stem) >= spec.num_classes:
                    raise spec._layout_error(
                        base, f"{_rel(f, base)}: file is not named <label 0..10>.npy"
                    )
                out.append(Sample(f, int(f.stem), f"user{int(m.group(1)):02d}"))
        if not out:
            raise spec._layout_error(base, "found no user<NN>_<lighting>/<label>.npy files")
        for part in self.parts:
            if not any(s.path.is_relative_to(base / part) for s in out):
                raise spec._layout_error(base, f"incomplete: {part}/ holds no recordings")
        return sorted(out, key=lambda s: _rel(s.path, base))

    def read(self, path: Path) -> np.ndarray:
        return formats.read_gesture_npy(path)

    def official_split(self, spec: DatasetSpec, base: Path, samples: list[Sample]):
        train, test = (base / p for p in self.parts)
        tr = np.array([i for i, s in enumerate(samples) if s.path.is_relative_to(train)])
        te = np.array([i for i, s in enumerate(samples) if s.path.is_relative_to(test)])
        return tr.astype(np.int64), te.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# The spec
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: what it is (paper setup) and how to find and read it.

    sensor_size is (W, H, 2) as tonic writes it; default_frames is F_total (frames per sample
    before the HT partition), default_size the square input size after resizing.
    """

    name: str
    classes: tuple[str, ...]
    sensor_size: tuple[int, int, int]
    default_frames: int
    default_size: int
    arch: str  # "vgg" or "snn5"
    simulated: bool
    layout: ClassFolders | GestureFolders = field(repr=False)
    source: str = ""  # where the official data lives (or how it is generated)
    # Per-class share of the training split held out for validation (model selection). The
    # simulated sets hold out more, so that validation has at least 300 recordings.
    val_fraction: float = 0.1
    download_with: tuple[str, ...] = ()  # tonic dataset class names used by download()
    notes: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    # -- where the files are ------------------------------------------------------------------

    def locate(self, root: str | Path | None = None) -> Path:
        """The folder the layout starts at. Simulated sets are generated here on first use
        (under `root`, else the default data dir), atomically, then found like real ones."""
        base = Path(root).expanduser() if root is not None else default_data_dir()
        if self.simulated:
            from . import simulated  # the generator imports this module's writers, not us

            base = simulated.ensure(self.name, base)
        elif not base.is_dir():
            raise DatasetError(f"{self.name}: data root {base} does not exist.\n{self._help()}")
        return self.layout.find(self, base)

    def samples(self, root: str | Path | None = None) -> list[Sample]:
        """All recordings, sorted by path relative to the located folder."""
        return self.layout.samples(self, self.locate(root))

    def read_events(self, sample: Sample) -> np.ndarray:
        """The recording's events (EVENT_DTYPE, t in us, time-ordered), checked to be
        non-empty and inside the sensor; a bad file raises DatasetError naming it."""
        ev = self.layout.read(Path(sample.path))
        validate_events(ev, self.sensor_size, source=sample.path)
        if np.any(np.diff(ev["t"]) < 0):  # frame integration by event number needs time order
            ev = sort_events(ev)
        return ev

    def official_split(self, root: str | Path | None = None):
        """(train_idx, test_idx) into `samples(root)` where the dataset defines one, else None."""
        base = self.locate(root)
        return self.layout.official_split(self, base, self.layout.samples(self, base))

    # -- getting the data ---------------------------------------------------------------------

    def download(self, root: str | Path | None = None) -> Path:
        """Download the official release with tonic's downloaders into `root` (simulated sets:
        generate). Offline, raises DatasetError saying where to get the data by hand."""
        base = Path(root).expanduser() if root is not None else default_data_dir()
        if self.simulated:
            return self.locate(base)
        import tonic.datasets
        from tonic.download_utils import extract_archive

        base.mkdir(parents=True, exist_ok=True)
        try:
            for spec in self.download_with:
                cls_name, _, arg = spec.partition(":")
                cls = getattr(tonic.datasets, cls_name)
                ds = cls(str(base), train=(arg == "train")) if arg else cls(str(base))
                inner = Path(ds.location_on_system) / "Caltech101.zip"
                if cls_name == "NCALTECH101" and inner.is_file():
                    # tonic 1.7 downloads the outer archive but leaves Caltech101.zip packed
                    if not (Path(ds.location_on_system) / "Caltech101").is_dir():
                        extract_archive(str(inner))
        except Exception as e:  # URLError, socket timeouts, HTTP errors, bad checksums ...
            raise DatasetError(
                f"{self.name}: download failed ({type(e).__name__}: {e}). Are you offline? "
                f"Download it by hand instead.\n{self._help(base, suggest_download=False)}"
            ) from e
        return self.locate(base)

    # -- errors -------------------------------------------------------------------------------

    def _help(self, root: Path | None = None, suggest_download: bool = True) -> str:
        where = f"under {root}" if root is not None else "under your data root"
        text = f"Expected layout {where}:\n{self.layout.tree}\nOfficial data: {self.source}"
        if suggest_download and not self.simulated:
            text += (
                f"\nOr download with tonic's downloaders: hsd.data.DATASETS[{self.name!r}]"
                ".download(root) (the data CLI's --download)"
            )
        return text

    def _layout_error(self, root: Path, why: str) -> DatasetError:
        return DatasetError(f"{self.name}: {why} (in {root}).\n{self._help(root)}")


DATASETS: Registry[DatasetSpec] = Registry("dataset", group="hsd.datasets")


def convert_dvs_gesture_original(src: str | Path, dst: str | Path) -> Path:
    """Cut the original DVS-Gesture release into tonic's layout, as tonic's release was made.

    src holds `user<NN>_<lighting>.aedat` (AEDAT 3.1), `user<NN>_<lighting>_labels.csv` (class
    1..11, start and end in us) and `trials_to_train.txt` / `trials_to_test.txt`. Each labelled
    segment becomes `dst/DVSGesture/ibmGesture{Train,Test}/<stem>/<class - 1>.npy` with times
    relative to the segment start (t in ms, like tonic's files). A class labelled twice in one
    recording keeps its first segment (tonic's naming allows one file per class). Returns dst.
    The sample unit of the harness is one file, so segments of one recording cannot be read in
    place; converting once keeps every later read cheap.
    """
    src, dst = Path(src), Path(dst)
    for part, listing in (("ibmGestureTrain", "trials_to_train.txt"),
                          ("ibmGestureTest", "trials_to_test.txt")):  # fmt: skip
        names = [n.strip() for n in (src / listing).read_text().splitlines() if n.strip()]
        for name in names:
            aedat = src / name
            events = formats.read_aedat31(aedat)
            out = dst / "DVSGesture" / part / aedat.stem
            out.mkdir(parents=True, exist_ok=True)
            done = set()
            for cls, start, end in formats.read_gesture_labels_csv(
                aedat.with_name(aedat.stem + "_labels.csv")
            ):
                if cls in done:
                    continue
                done.add(cls)
                seg = events[(events["t"] >= start) & (events["t"] < end)].copy()
                seg["t"] -= start
                formats.write_gesture_npy(out / f"{cls - 1}.npy", seg)
    return dst


# ---------------------------------------------------------------------------------------------
# The real datasets
# ---------------------------------------------------------------------------------------------

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

# N-Caltech101 (Orchard et al. 2015): Caltech101's folders minus "Faces" (removed by the
# authors as a near-duplicate of "Faces_easy"), i.e. 100 object classes + BACKGROUND_Google =
# 101 classes, 8709 recordings. We keep BACKGROUND_Google: it is a folder of the release, tonic
# and SpikingJelly both load it, and it makes the 101 classes the paper's setup reports.
# Sorted like tonic's os.walk (case-sensitive, upper case first).
NCALTECH101_CLASSES = tuple(
    sorted(
        """
BACKGROUND_Google Faces_easy Leopards Motorbikes accordion airplanes anchor ant barrel bass beaver
binocular bonsai brain brontosaurus buddha butterfly camera cannon car_side ceiling_fan cellphone
chair chandelier cougar_body cougar_face crab crayfish crocodile crocodile_head cup dalmatian
dollar_bill dolphin dragonfly electric_guitar elephant emu euphonium ewer ferry flamingo
flamingo_head garfield gerenuk gramophone grand_piano hawksbill headphone hedgehog helicopter ibis
inline_skate joshua_tree kangaroo ketch lamp laptop llama lobster lotus mandolin mayfly menorah
metronome minaret nautilus octopus okapi pagoda panda pigeon pizza platypus pyramid revolver rhino
rooster saxophone schooner scissors scorpion sea_horse snoopy soccer_ball stapler starfish
stegosaurus stop_sign strawberry sunflower tick trilobite umbrella watch water_lilly wheelchair
wild_cat windsor_chair wrench yin_yang
""".split()
    )
)
assert len(NCALTECH101_CLASSES) == 101

DVSGESTURE_CLASSES = (
    "hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_cw", "right_arm_ccw",
    "left_arm_cw", "left_arm_ccw", "arm_roll", "air_drums", "air_guitar", "other_gestures",
)  # fmt: skip

_CIFAR_TREE = """\
  CIFAR10DVS/<class>/*.aedat4          (tonic's release, AEDAT 4.0), or
  <class>/*.aedat                      (original release, AEDAT 2.0, as SpikingJelly extracts it;
                                        also found under extract/<class>/)
  classes: airplane automobile bird cat deer dog frog horse ship truck"""

_NCALTECH_TREE = """\
  NCALTECH101/Caltech101/<class>/*.bin (tonic's layout), or Caltech101/<class>/*.bin,
  or <class>/*.bin directly under the root
  101 classes: accordion ... yin_yang, Faces_easy, BACKGROUND_Google (no 'Faces')"""

_GESTURE_TREE = """\
  DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label 0..10>.npy   (tonic's release)
  DVSGesture/ibmGestureTest/user<NN>_<lighting>/<label 0..10>.npy
  (the DVSGesture/ level may be omitted; npy arrays are (N, 4): x, y, p, t in ms)
  The original release (user<NN>_<lighting>.aedat + _labels.csv) is converted once by
  hsd.data.datasets.convert_dvs_gesture_original(src, dst)."""

DATASETS.register(
    "cifar10-dvs",
    DatasetSpec(
        name="cifar10-dvs",
        classes=CIFAR10_CLASSES,
        sensor_size=(128, 128, 2),
        default_frames=10,
        default_size=48,
        arch="vgg",
        simulated=False,
        layout=ClassFolders(("CIFAR10DVS", "extract", "."), (".aedat4", ".aedat"), _CIFAR_TREE),
        source=(
            "Li et al. 2017; original .aedat: https://figshare.com/articles/dataset/"
            "CIFAR10-DVS_New/4724671 ; tonic's .aedat4 release: "
            "https://figshare.com/ndownloader/files/38023437"
        ),
        download_with=("CIFAR10DVS",),
        notes="no official split: 9:1 per class (hsd/data/splits.py); .aedat read with "
        "SpikingJelly's axis mapping",
    ),
)
DATASETS.register(
    "n-caltech101",
    DatasetSpec(
        name="n-caltech101",
        classes=NCALTECH101_CLASSES,
        sensor_size=(240, 180, 2),
        default_frames=10,
        default_size=48,
        arch="vgg",
        simulated=False,
        layout=ClassFolders(("NCALTECH101/Caltech101", "Caltech101", "."), (".bin",),
                            _NCALTECH_TREE),
        source="Orchard et al. 2015: https://www.garrickorchard.com/datasets/n-caltech101 "
        "(tonic downloads it from https://data.mendeley.com/datasets/cy6cvx3ryv)",
        download_with=("NCALTECH101",),
        notes="raw sensor coordinates (SpikingJelly's convention; tonic shifts each sample's "
        "minimum x, y to 0); includes BACKGROUND_Google",
    ),
)  # fmt: skip
DATASETS.register(
    "dvs-gesture",
    DatasetSpec(
        name="dvs-gesture",
        classes=DVSGESTURE_CLASSES,
        sensor_size=(128, 128, 2),
        default_frames=16,
        default_size=128,
        arch="snn5",
        simulated=False,
        layout=GestureFolders(("DVSGesture", "."), _GESTURE_TREE),
        source="Amir et al. 2017: https://research.ibm.com/interactive/dvsgesture/ ; tonic's "
        ".npy release: https://figshare.com/ndownloader/files/38022171 (train), "
        "https://figshare.com/ndownloader/files/38020584 (test)",
        download_with=("DVSGesture:train", "DVSGesture:test"),
        notes="official split by subject: users 1-23 train, 24-29 test",
    ),
)


def _register_simulated() -> None:
    from . import simulated

    for name, gen in simulated.GENERATORS.items():
        tree = f"  {name}/v<generator version>-seed<seed>/ (generated on first use)\n" + (
            _NCALTECH_TREE if gen.layout == "ncaltech101" else _GESTURE_TREE
        )
        layout: ClassFolders | GestureFolders = (
            ClassFolders(("NCALTECH101/Caltech101",), (".bin",), tree, simulated.TEST_PREFIX)
            if gen.layout == "ncaltech101"
            else GestureFolders(("DVSGesture",), tree)
        )
        DATASETS.register(
            name,
            DatasetSpec(
                name=name,
                classes=gen.classes,
                sensor_size=gen.sensor_size,
                default_frames=gen.default_frames,
                default_size=gen.default_size,
                arch=gen.arch,
                simulated=True,
                layout=layout,
                source=f"simulated by hsd.data.simulated ({gen.description})",
                val_fraction=gen.val_fraction,
                notes=gen.description,
            ),
        )


_register_simulated()
