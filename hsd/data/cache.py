"""The frame cache: events are integrated once per parameter set into memory-mapped arrays.

Layout (one folder per parameter set, nanoGPT-style "prepare once, read by memmap"):

    <cache_dir>/<dataset>/<dataset>-F<frames>-<split_by>-S<size>-<key>/
        manifest.json            parameters, sample digest, per-file sha256/bytes/shape
        split.json               the published split: relative sample names per split
        {train,val,test}_frames.npy   float16 [N, F, 2, S, S]
        {train,val,test}_labels.npy   int64 [N]
        .verified                stat fingerprint of the last full checksum pass

`key` is a sha256 over every input that changes the arrays: dataset name, F, split_by, S, the
normalization name (`frames.NORMALIZATION`), CACHE_VERSION (bump it when integration or resize
code changes), the sensor size, the split parameters, a digest of the sample list (relative
names + labels) and, for a simulated set, its generator's version, seed and sizes. Any change
gives a new folder, so a stale cache cannot be read by mistake.

Atomicity: a cache is written into `.tmp-...` next to its final name and `os.rename`d into place
only after every array and the manifest are complete, so a process killed mid-write leaves only
a temp folder that is never opened (a folder without a manifest is reported, never read).

Checksums: the manifest stores each file's sha256. The first open hashes every file (about 1 s
per GB) and, when all match, writes `.verified` with each file's (size, mtime_ns); later opens
compare those stats only and re-hash fully if any changed (so a rewritten or truncated array is
caught; a bit flip that keeps mtime would not be, which we accept for speed). A mismatch raises
CacheError telling the user to delete the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hsd.data.frames import NORMALIZATION, SPLIT_BY, integrate_frames, resize_frames
from hsd.data.splits import SPLITS, make_splits, read_split_file, write_split_file

#: Bump whenever integrate_frames / resize_frames / the cache layout change their output.
CACHE_VERSION = 1
SPLIT_SEED = 0
TEST_FRACTION = 0.1
_VERIFIED = ".verified"


class CacheError(ValueError):
    """A cache folder is incomplete or fails its checksum; the message says which and what to do."""


@dataclass
class FrameSplit:
    """One split: `frames` float16 [N, F, 2, S, S] (memory-mapped), `labels` int64 [N]."""

    name: str
    frames: np.ndarray
    labels: np.ndarray
    _device_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to_tensor(self, frames: slice, device: Any = "cpu"):
        """The selected frames of every sample as one float16 tensor [N, T, 2, S, S] on `device`.

        Memoized (one entry) so every epoch of a run reuses the same device copy.
        """
        import torch

        key = (frames.start, frames.stop, frames.step, str(torch.device(device)))
        if key not in self._device_cache:
            self._device_cache.clear()
            with warnings.catch_warnings():
                # All frames of a contiguous cache are the read-only memory map itself: shared,
                # not copied, and never written (augmentation and models build new tensors).
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                host = torch.from_numpy(np.ascontiguousarray(self.frames[:, frames]))
            self._device_cache[key] = host.to(device)
        return self._device_cache[key]


@dataclass
class FrameSet:
    """A prepared dataset: `spec`, F_total `frames`, `size`, `split_by`, the cache `path`, and
    the `train` / `val` / `test` FrameSplits."""

    spec: Any
    frames: int
    size: int
    split_by: str
    path: Path
    train: FrameSplit
    val: FrameSplit
    test: FrameSplit

    def split(self, name: str) -> FrameSplit:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
        return getattr(self, name)


def default_cache_dir() -> Path:
    """`$HSD_CACHE_DIR`, else ~/.cache/hsd/frames."""
    env = os.environ.get("HSD_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hsd" / "frames"


def _relative_names(spec, root, samples) -> list[str]:
    try:
        base = Path(spec.locate(root)).resolve()
    except Exception:  # noqa: BLE001 - fall back to absolute paths if a spec cannot locate
        base = None
    names = []
    for s in samples:
        p = Path(s.path).resolve()
        try:
            names.append(p.relative_to(base).as_posix() if base else p.as_posix())
        except ValueError:
            names.append(p.as_posix())
    return names


def generation_identity(spec, root) -> dict | None:
    """For a simulated set, what its files were generated by (generator version, seed, sizes);
    None for real data. A changed generator can write the same file names, which the sample
    digest alone would take for the same data."""
    if not getattr(spec, "simulated", False):
        return None
    from hsd.data import simulated
    from hsd.data.datasets import default_data_dir

    folder = simulated.ensure(spec.name, default_data_dir() if root is None else root)
    manifest = simulated.read_manifest(folder) or {}
    return {k: manifest.get(k) for k in ("generator_version", "seed", "sizes")}


def cache_params(
    spec, frames: int, size: int, split_by: str, names, labels, generation: dict | None = None
) -> dict:
    """Every input that changes the cached arrays (hashed into the folder name); `generation`
    (a simulated set's `generation_identity`) is added only when given, so the keys of real
    datasets stay as they were."""
    digest = hashlib.sha256()
    for n, y in zip(names, labels, strict=True):
        digest.update(f"{n}\t{int(y)}\n".encode())
    params = {
        "dataset": spec.name,
        "frames": int(frames),
        "split_by": split_by,
        "size": int(size),
        "normalization": NORMALIZATION,
        "cache_version": CACHE_VERSION,
        "sensor_size": [int(v) for v in spec.sensor_size],
        "split": {
            "seed": SPLIT_SEED,
            "test_fraction": TEST_FRACTION,
            "val_fraction": spec.val_fraction,
        },
        "samples": {"count": len(names), "sha256": digest.hexdigest()},
    }
    if generation is not None:
        params["generation"] = generation
    return params


def cache_folder_name(params: dict) -> str:
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    p = params
    return f"{p['dataset']}-F{p['frames']}-{p['split_by']}-S{p['size']}-{key}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _fingerprint(folder: Path, files: dict) -> dict:
    return {n: [(folder / n).stat().st_size, (folder / n).stat().st_mtime_ns] for n in files}


def verify_cache(folder: str | Path, full: bool = False) -> dict:
    """Check a cache folder against its manifest; return the manifest.

    Hashes every file unless the `.verified` stat fingerprint still matches (`full=True`
    forces the hash). Raises CacheError for a missing manifest/file or a checksum mismatch.
    """
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise CacheError(f"{folder} has no manifest.json (incomplete cache): delete the folder")
    manifest = json.loads(manifest_path.read_text())
    files = manifest["files"]
    for name, meta in files.items():
        p = folder / name
        if not p.is_file() or p.stat().st_size != meta["bytes"]:
            raise CacheError(
                f"cache file {p} is missing or has the wrong size: delete {folder} and prepare "
                "again (python -m harness.data prepare ...)"
            )
    marker = folder / _VERIFIED
    fingerprint = _fingerprint(folder, files)
    if not full and marker.is_file():
        try:
            if json.loads(marker.read_text()) == fingerprint:
                return manifest
        except ValueError:
            pass
    for name, meta in files.items():
        if _sha256(folder / name) != meta["sha256"]:
            raise CacheError(
                f"checksum mismatch in {folder / name}: the cache is corrupted; delete {folder} "
                "and prepare again (python -m harness.data prepare ...)"
            )
    try:
        tmp = folder / f"{_VERIFIED}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps(fingerprint))
        os.replace(tmp, marker)
    except OSError:  # a read-only shared cache is fine: we just hash again next time
        pass
    return manifest


def _open(folder: Path, spec, manifest: dict) -> FrameSet:
    splits = {}
    for s in SPLITS:
        frames = np.load(folder / f"{s}_frames.npy", mmap_mode="r")
        labels = np.load(folder / f"{s}_labels.npy")
        splits[s] = FrameSplit(s, frames, labels)
    p = manifest["params"]
    return FrameSet(spec, p["frames"], p["size"], p["split_by"], folder, **splits)


@contextlib.contextmanager
def _one_torch_thread():
    """Per-sample resizes of tiny frames: thread sync costs more than the work (measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _write(tmp: Path, spec, root, samples, names, split_idx, params, progress: bool) -> None:
    with _one_torch_thread():
        _write_arrays(tmp, spec, samples, names, split_idx, params, progress)
    _write_manifest(tmp, spec, names, split_idx, params)


def _write_arrays(tmp: Path, spec, samples, names, split_idx, params, progress: bool) -> None:
    from tqdm.auto import tqdm

    f, size = params["frames"], params["size"]
    bar = tqdm(total=len(samples), desc=f"prepare {spec.name}", unit="sample", disable=not progress)
    try:
        for s in SPLITS:
            idx = split_idx[s]
            path = tmp / f"{s}_frames.npy"
            arr = np.lib.format.open_memmap(
                path, mode="w+", dtype=np.float16, shape=(len(idx), f, 2, size, size)
            )
            labels = np.empty(len(idx), np.int64)
            for j, i in enumerate(idx):
                sample = samples[i]
                try:
                    frames = integrate_frames(
                        spec.read_events(sample), f, spec.sensor_size, params["split_by"]
                    )
                except ValueError as err:
                    raise ValueError(f"{names[i]}: {err}") from err
                arr[j] = resize_frames(frames, size)
                labels[j] = sample.label
                bar.update(1)
            arr.flush()
            del arr
            np.save(tmp / f"{s}_labels.npy", labels)
    finally:
        bar.close()


def _write_manifest(tmp: Path, spec, names, split_idx, params) -> None:
    files = {}
    for name in sorted(p.name for p in tmp.iterdir() if p.suffix == ".npy"):
        a = np.load(tmp / name, mmap_mode="r")
        files[name] = {
            "sha256": _sha256(tmp / name),
            "bytes": (tmp / name).stat().st_size,
            "shape": list(a.shape),
            "dtype": str(a.dtype),
        }
        del a
    write_split_file(tmp / "split.json", names, split_idx, dataset=spec.name, **params["split"])
    files["split.json"] = {
        "sha256": _sha256(tmp / "split.json"),
        "bytes": (tmp / "split.json").stat().st_size,
    }
    counts = {s: len(split_idx[s]) for s in SPLITS}
    manifest = {"params": params, "files": files, "counts": counts}
    # The manifest is the last file written: a folder is complete iff it has one.
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def list_samples(spec, root) -> tuple[list, list[str], list[int]]:
    """(samples, relative names, labels) of a dataset, in the spec's sorted order."""
    samples = list(spec.samples(root))
    if not samples:
        raise ValueError(f"dataset {spec.name!r} has no samples under {root!r}")
    return samples, _relative_names(spec, root, samples), [int(s.label) for s in samples]


def dataset_splits(spec, root, names, labels) -> dict[str, list[int]]:
    """The published split of a dataset (official test split if it has one, else 9:1 per class;
    val carved per class from train), as indices into `names`."""
    return make_splits(
        names,
        labels,
        official=spec.official_split(root),
        test_fraction=TEST_FRACTION,
        val_fraction=spec.val_fraction,
        seed=SPLIT_SEED,
    )


def find_caches(spec, cache_dir=None) -> list[tuple[Path, dict]]:
    """Complete cache folders of `spec` under `cache_dir` with their manifests (not verified)."""
    parent = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / spec.name
    out = []
    for folder in sorted(parent.glob(f"{spec.name}-*")) if parent.is_dir() else []:
        try:
            out.append((folder, json.loads((folder / "manifest.json").read_text())))
        except (OSError, ValueError):
            continue
    return out


def prepare(
    spec,
    frames: int | None = None,
    size: int | None = None,
    split_by: str = "number",
    root=None,
    cache_dir=None,
    progress: bool = False,
) -> FrameSet:
    """Open the cache of (spec, frames, size, split_by), building it first if it is missing."""
    frames = spec.default_frames if frames is None else frames
    size = spec.default_size if size is None else size
    for what, v in (("frames", frames), ("size", size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{what} must be a positive int, got {v!r}")
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by must be one of {SPLIT_BY}, got {split_by!r}")
    samples, names, labels = list_samples(spec, root)
    generation = generation_identity(spec, root)
    params = cache_params(spec, frames, size, split_by, names, labels, generation)
    parent = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    folder = parent / spec.name / cache_folder_name(params)
    if not folder.is_dir():
        split_idx = dataset_splits(spec, root, names, labels)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            _write(tmp, spec, root, samples, names, split_idx, params, progress)
            try:
                os.rename(tmp, folder)
            except OSError:
                if not (folder / "manifest.json").is_file():  # not a finished concurrent writer
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    manifest = verify_cache(folder)
    if manifest["params"] != params:
        raise CacheError(f"{folder}: manifest parameters differ from the folder key; delete it")
    fs = _open(folder, spec, manifest)
    # The published index file must describe the samples we just listed.
    read_split_file(folder / "split.json", names)
    return fs


def load_frames(
    dataset,
    frames: int | None = None,
    size: int | None = None,
    split_by: str = "number",
    root=None,
    cache_dir=None,
    progress: bool = False,
) -> FrameSet:
    """Frames of `dataset` (a registered name, or a DatasetSpec) as a FrameSet.

    Defaults: frames = spec.default_frames (F_total), size = spec.default_size,
    cache_dir = $HSD_CACHE_DIR or ~/.cache/hsd/frames. Prepares the cache when missing.
    """
    if isinstance(dataset, str):
        from hsd.data.datasets import DATASETS

        spec = DATASETS[dataset]
    else:
        spec = dataset
    return prepare(spec, frames, size, split_by, root, cache_dir, progress)
