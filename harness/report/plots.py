"""Plots of the aggregated results (matplotlib Agg + seaborn styling), each saved as PNG and SVG.

Inputs are the frames from `harness.report.aggregate` (accuracy already in percent; mean, 95 %
confidence interval ci_low/ci_high and n per point). Every interval drawn is that 95 % interval
over seeds (`harness.report.stats.mean_ci`); a point from one seed has none.

- `plot_figure2`: accuracy at t = T versus T, one panel per dataset, a line per method (HSD, STS,
  DTS, TET, ...) with a shaded interval band; the paper's T = 1 values as hollow markers on the
  real datasets only.
- `plot_any_t`: for the model trained at the largest T, accuracy at every inference step t (bands).
- `plot_energy`: accuracy versus estimated energy per sample (log x), error bars.
- `plot_stream`: accuracy versus the fraction of the event stream consumed before deciding.
- `plot_paired`: HSD − baseline accuracy versus T, paired by seed, error bars, a zero line.
- `plot_early_exit`: early exit (stop at the first step whose confidence reaches a threshold):
  accuracy versus mean exit step and versus mean stream fraction at exit, a curve over thresholds
  per method (its model trained at the largest T), 95 % CI over seeds, and the Pareto frontier
  over every method, T and threshold.
- `plot_curves`: learning curves per dataset (`harness.common.curves`), a row per configuration, seeds
  overlaid, the chosen epoch marked.

Panels of simulated datasets say so in their titles. Every plot is saved as PNG, SVG and PDF.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from harness.report import paper  # noqa: E402
from harness.report.aggregate import DATASET_ORDER, LATENCY_ORDER  # noqa: E402

FORMATS = ("png", "svg", "pdf")
# No creation date in the vector files and fixed SVG element ids: a report rebuilt from the same
# store writes the same bytes, so a diff of a committed store shows only what changed.
# (Set per save, not at import: importing this module leaves a caller's matplotlib settings alone.)
NO_DATE = {"png": None, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
FIXED_SVG_IDS = {"svg.hashsalt": "hsd-harness"}


def panel_title(dataset: str) -> str:
    """Dataset name for a panel; simulated sets say they are simulated and what they stand in for."""
    if dataset in paper.SIMULATED_DATASETS:
        real = ", ".join(
            paper.PAPER_DATASETS.get(d, d) for d in paper.STANDS_IN_FOR.get(dataset, ())
        )
        return f"{dataset} (SIMULATED data)" + (f"\nstands in for {real}" if real else "")
    return paper.PAPER_DATASETS.get(dataset, dataset)


def _datasets(df: pd.DataFrame) -> list[str]:
    present = set(df["dataset"])
    return [d for d in DATASET_ORDER if d in present] + sorted(present - set(DATASET_ORDER))


def _variants(df: pd.DataFrame) -> list[str]:
    present = set(df["variant"])
    return [v for v in LATENCY_ORDER if v in present] + sorted(present - set(LATENCY_ORDER))


def _palette(variants: list[str]) -> dict[str, tuple]:
    colors = sns.color_palette("tab10", n_colors=max(len(variants), 1))
    return dict(zip(variants, colors, strict=False))


def _panels(n: int, title: str):
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.8), squeeze=False)
    fig.suptitle(title)
    return fig, list(axes[0])


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    fig.tight_layout()
    with matplotlib.rc_context(FIXED_SVG_IDS):
        for ext in FORMATS:
            path = out_dir / f"{stem}.{ext}"
            fig.savefig(path, dpi=120, metadata=NO_DATE[ext])
            paths.append(path)
    plt.close(fig)
    return paths


CI_LABEL = "95 % CI over seeds"


def _ci_yerr(mean, low, high) -> np.ndarray:
    """Asymmetric error-bar lengths (2 × n) from interval bounds; one seed (NaN bounds): none."""
    mean = np.asarray(mean, dtype=float)
    below = mean - np.asarray(low, dtype=float)
    above = np.asarray(high, dtype=float) - mean
    return np.nan_to_num(np.vstack([below, above]))


def _errorbar(ax, x, frame: pd.DataFrame, color, label, marker="o"):
    """Points of `frame` at `x` with their interval (columns ci_low / ci_high) as error bars."""
    ax.errorbar(
        x,
        frame["mean"],
        yerr=_ci_yerr(frame["mean"], frame["ci_low"], frame["ci_high"]),
        color=color,
        marker=marker,
        capsize=3,
        label=label,
    )


def _band(ax, x, frame: pd.DataFrame, color, label, marker="o"):
    """A line through the means with its interval shaded (gaps where a point has one seed)."""
    ax.plot(x, frame["mean"], color=color, marker=marker, label=label)
    low = frame["ci_low"].astype(float).to_numpy()
    high = frame["ci_high"].astype(float).to_numpy()
    ax.fill_between(np.asarray(x, dtype=float), low, high, color=color, alpha=0.15, lw=0)


def plot_figure2(fig2: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Figure 2: accuracy (%) at t = T versus T per method, one panel per dataset."""
    data = fig2[fig2["n"] > 0]
    if data.empty:
        return []
    variants = _variants(data)
    colors = _palette(variants)
    datasets = _datasets(data)
    fig, axes = _panels(
        len(datasets), f"Figure 2: accuracy at t = T vs inference time steps T (shaded: {CI_LABEL})"
    )
    paper_pts = paper.paper_long("figure2")
    for ax, d in zip(axes, datasets, strict=True):
        sub = data[data["dataset"] == d]
        for v in variants:
            line = sub[sub["variant"] == v].sort_values("T")
            if len(line):
                _band(ax, line["T"], line, colors[v], v)
        # The paper's numbers only on the real dataset they were measured on, hollow and labelled.
        for _, p in paper_pts[paper_pts["dataset"] == d].iterrows():
            ax.plot(
                p["T"],
                p["paper_acc"],
                marker="D",
                mfc="none",
                color=colors.get(p["variant"], "black"),
                ls="none",
                label=f"paper: {p['variant']} (T={p['T']})",
            )
        ax.set(title=panel_title(d), xlabel="inference time steps T", ylabel="top-1 accuracy (%)")
        ax.set_xticks(sorted(sub["T"].unique()))
        ax.legend(fontsize=7)
    return _save(fig, Path(out_dir), "figure2")


def plot_any_t(any_t: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Accuracy (%) at each inference step t of the model trained at the largest T."""
    data = any_t[any_t["n"] > 0]
    if data.empty:
        return []
    variants = _variants(data)
    colors = _palette(variants)
    datasets = _datasets(data)
    fig, axes = _panels(
        len(datasets),
        f"Accuracy at any step t of a model trained at the largest T (shaded: {CI_LABEL})",
    )
    for ax, d in zip(axes, datasets, strict=True):
        sub = data[data["dataset"] == d]
        for v in variants:
            line = sub[sub["variant"] == v].sort_values("t")
            if len(line):
                T = int(line["T"].iloc[0])
                _band(ax, line["t"], line, colors[v], f"{v} (T={T})")
        ax.set(title=panel_title(d), xlabel="inference step t", ylabel="top-1 accuracy (%)")
        ax.legend(fontsize=7)
    return _save(fig, Path(out_dir), "figure2_any_t")


def _scatter(frame: pd.DataFrame, x: str, xlabel: str, title: str, stem: str, out_dir, logx: bool):
    data = frame[(frame["n"] > 0) & frame[x].notna()]
    if logx:
        data = data[data[x] > 0]
    if data.empty:
        return []
    variants = _variants(data)
    colors = _palette(variants)
    datasets = _datasets(data)
    fig, axes = _panels(len(datasets), title)
    for ax, d in zip(axes, datasets, strict=True):
        sub = data[data["dataset"] == d]
        for v in variants:
            pts = sub[sub["variant"] == v].sort_values(x)
            if len(pts):
                _errorbar(ax, pts[x], pts, colors[v], v)
                for _, p in pts.iterrows():
                    ax.annotate(
                        f"T={int(p['T'])}",
                        (p[x], p["mean"]),
                        fontsize=6,
                        alpha=0.7,
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
        if logx:
            ax.set_xscale("log")
        ax.set(title=panel_title(d), xlabel=xlabel, ylabel="top-1 accuracy (%)")
        ax.legend(fontsize=7)
    return _save(fig, Path(out_dir), stem)


def plot_energy(energy: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Accuracy (%) versus estimated inference energy per sample (J, log scale), one point per T."""
    return _scatter(
        energy,
        "energy_j",
        "estimated energy per sample (J, log scale)",
        f"Accuracy vs energy (MAC/AC energy model, 45 nm; bars: {CI_LABEL})",
        "accuracy_vs_energy",
        out_dir,
        True,
    )


def plot_stream(stream: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Accuracy (%) versus the fraction of each sample's event stream seen before the decision."""
    return _scatter(
        stream,
        "stream_fraction",
        "fraction of the event stream consumed",
        f"Accuracy vs stream fraction (sensor-time latency; bars: {CI_LABEL})",
        "accuracy_vs_stream_fraction",
        out_dir,
        False,
    )


def plot_paired(paired: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """HSD − baseline accuracy (points) versus T per baseline, paired by seed, with the 95 %
    interval of the mean difference as error bars and a zero line (above it: HSD ahead)."""
    data = paired[paired["n"] > 0] if len(paired) else paired
    if data.empty:
        return []
    data = data.rename(columns={"diff_mean": "mean"})
    baselines = [v for v in LATENCY_ORDER if v in set(data["baseline"])]
    baselines += sorted(set(data["baseline"]) - set(baselines))
    colors = _palette(["hsd", *baselines])  # each method keeps its Figure 2 colour
    datasets = _datasets(data)
    fig, axes = _panels(
        len(datasets), f"HSD − baseline accuracy, paired by seed (bars: {CI_LABEL})"
    )
    # Nudge the baselines apart on the T axis so that their bars do not hide each other.
    nudge = {b: 0.08 * (i - (len(baselines) - 1) / 2) for i, b in enumerate(baselines)}
    for ax, d in zip(axes, datasets, strict=True):
        sub = data[data["dataset"] == d]
        ax.axhline(0.0, color="black", lw=0.8)
        for b in baselines:
            line = sub[sub["baseline"] == b].sort_values("T")
            if len(line):
                x = line["T"].astype(float) + nudge[b]
                _errorbar(ax, x, line, colors[b], f"hsd − {b}")
        ax.set(
            title=panel_title(d),
            xlabel="inference time steps T",
            ylabel="accuracy difference (points)",
        )
        ax.set_xticks(sorted(sub["T"].unique()))
        ax.legend(fontsize=7)
    return _save(fig, Path(out_dir), "paired_differences")


def _early_exit_panel(ax, sub: pd.DataFrame, x: str, colors: dict) -> None:
    from harness.report.early_exit import pareto_mask

    # One curve per method: its model trained at the largest T (the most room to exit early).
    # The 95 % CI of the accuracy is a band (clipped to [0, 100]); with few seeds it is wide and
    # error bars would hide the curves. The CI of the x value is in the early_exit table.
    for v, line in sub.groupby("variant", sort=False):
        line = line[line["T"] == line["T"].max()].sort_values(["threshold"])
        T = int(line["T"].iloc[0])
        acc = line["acc (%)"].to_numpy(dtype=float)
        ci = np.nan_to_num(line["acc (%) ci95"].to_numpy(dtype=float))  # one seed: no band
        ax.plot(line[x], acc, color=colors[v], marker="o", markersize=3, label=f"{v} (T={T})")
        ax.fill_between(
            line[x],
            np.clip(acc - ci, 0, 100),
            np.clip(acc + ci, 0, 100),
            color=colors[v],
            alpha=0.15,
            lw=0,
        )
    front = sub[pareto_mask(sub[x], sub["acc (%)"])].sort_values(x)
    ax.step(
        front[x],
        front["acc (%)"],
        where="post",
        color="black",
        ls="--",
        lw=1,
        marker="s",
        mfc="none",
        markersize=7,
        label="Pareto frontier (all methods, T, thresholds)",
    )


def plot_early_exit(ee: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Early-exit accuracy (%) versus mean exit step and versus mean stream fraction at exit."""
    data = ee[ee["n"] > 0] if len(ee) else ee
    if data.empty:
        return []
    variants = _variants(data)
    colors = _palette(variants)
    datasets = _datasets(data)
    paths: list[Path] = []
    for x, xlabel, stem in (
        ("mean exit step", "mean exit step (time steps)", "early_exit_steps"),
        ("stream fraction", "mean fraction of the event stream consumed", "early_exit_stream"),
    ):
        fig, axes = _panels(
            len(datasets),
            "Early exit at a confidence threshold\n(bands: 95 % CI over seeds)",
        )
        for ax, d in zip(axes, datasets, strict=True):
            _early_exit_panel(ax, data[data["dataset"] == d], x, colors)
            ax.set(title=panel_title(d), xlabel=xlabel, ylabel="top-1 accuracy (%)")
            ax.legend(fontsize=7)
        paths += _save(fig, Path(out_dir), stem)
    return paths


def _curve_label(curve: dict) -> tuple[tuple, str]:
    """(sort key, label) of a curve's configuration: the variants it serves and its T."""
    cfg = curve["config"]
    variants = list(dict.fromkeys(c[1] for c in curve.get("cells") or [])) or [cfg.get("method")]
    rank = min(LATENCY_ORDER.index(v) if v in LATENCY_ORDER else 99 for v in variants)
    label = f"{' = '.join(map(str, variants))}, T={cfg.get('T')}"
    return (rank, str(variants[0]), cfg.get("T") or 0), label


def _curve_groups(curves: list[dict]) -> list[tuple[str, list[dict]]]:
    """(label, curves) per configuration (every config field but the seed), seeds sorted."""
    groups: dict[str, list[dict]] = {}
    for c in curves:
        config = {k: v for k, v in c["config"].items() if k != "seed"}
        groups.setdefault(json.dumps(config, sort_keys=True, default=str), []).append(c)
    out = []
    for members in groups.values():
        members.sort(key=lambda c: c["config"].get("seed") or 0)
        out.append((*_curve_label(members[0]), members))
    return [(label, members) for _, label, members in sorted(out, key=lambda g: g[0])]


SERIES = ("x", "train_loss", "train_acc", "val_acc", "rate", "lowest")


def _curve_series(curve: dict):
    """The records of every stage on one epoch axis (a stage starts after the epochs planned for
    the ones before it, lines break between stages): {series: array} over `SERIES` (rates: all
    spiking layers, and the lowest layer), the stages as [(x where it starts, name)], and the x
    of the chosen epoch."""
    cols: dict[str, list] = {k: [] for k in SERIES}
    stages, offset, chosen = [], 0, None
    for stage in curve["stages"]:
        if stages:  # a gap: stages train different models on different losses
            for key in SERIES:
                cols[key].append(np.nan)
        stages.append((offset + 0.5, stage["name"]))
        for r in stage["records"]:
            rates = [v for v in (r["firing_rates"] or {}).values() if v is not None]
            values = (
                offset + r["epoch"],
                r["train_loss"],
                r["train_acc"],
                r["val_acc"],
                r["firing_rate"],
                min(rates) if rates else None,
            )
            for key, value in zip(SERIES, values, strict=True):
                cols[key].append(np.nan if value is None else float(value))
        if (curve.get("chosen") or {}).get("stage") == stage["name"]:
            chosen = offset + curve["chosen"]["epoch"]
        offset += stage["epochs"] or len(stage["records"])
    return {k: np.asarray(v, dtype=float) for k, v in cols.items()}, stages, chosen


def _curve_row(row, label: str, members: list[dict], colors: dict) -> None:
    """One configuration: loss, accuracy and firing-rate panels, a line per seed."""
    from harness.common.curves import SILENT_RATE

    stages, spikes = [], False
    for c in members:
        seed = c["config"].get("seed") or 0
        color = colors[seed]
        v, stages, chosen = _curve_series(c)
        row[0].plot(v["x"], v["train_loss"], color=color, marker=".", label=f"seed {seed}")
        row[1].plot(v["x"], 100 * v["val_acc"], color=color, marker=".")
        row[1].plot(v["x"], 100 * v["train_acc"], color=color, ls="--", alpha=0.6)
        row[2].plot(v["x"], 100 * v["rate"], color=color, marker=".")
        row[2].plot(v["x"], 100 * v["lowest"], color=color, ls=":")
        spikes |= bool((np.nan_to_num(v["rate"]) > 0).any())
        if chosen is not None:
            at = v["x"] == chosen
            row[1].plot(v["x"][at], 100 * v["val_acc"][at], "*", color=color, ms=12)
            for ax in row:
                ax.axvline(chosen, color=color, ls=":", lw=0.8)
    for ax in row:
        for i, (x, name) in enumerate(stages):
            if i:
                ax.axvline(x, color="grey", lw=0.8)
            ax.annotate(
                f" {name}", (x + 0.5, 1), xycoords=("data", "axes fraction"), fontsize=6, va="top"
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    row[0].set_title(f"{label}: training loss", fontsize=8)
    row[1].set_title("accuracy (%): validation solid, training dashed", fontsize=8)
    row[2].set_title("spikes / neuron / step (%, validation): all, lowest layer", fontsize=8)
    if spikes:
        row[2].axhline(100 * SILENT_RATE, color="grey", ls="--", lw=0.8)  # silent below it
        row[2].set_yscale("log")
    row[0].legend(fontsize=6)


def plot_curves(curves: dict[str, dict], out_dir: str | Path) -> list[Path]:
    """Learning curves per dataset (`harness.common.curves`): a row per configuration, seeds overlaid;
    training loss, accuracy (validation solid, training dashed) and spikes per neuron and step
    on the validation pass (all spiking layers solid, the lowest layer dotted, the silent-layer
    threshold dashed grey), stages one after another on the epoch axis, the chosen epoch starred
    and dotted. Writes ``curves-<dataset>.{png,svg,pdf}``; nothing without curves."""
    by_dataset: dict[str, list[dict]] = {}
    for c in curves.values():
        by_dataset.setdefault(str(c["config"].get("dataset")), []).append(c)
    paths: list[Path] = []
    for dataset in _datasets(pd.DataFrame({"dataset": list(by_dataset)})):
        groups = _curve_groups(by_dataset[dataset])
        seeds = sorted({c["config"].get("seed") or 0 for c in by_dataset[dataset]})
        colors = dict(zip(seeds, sns.color_palette("tab10", n_colors=len(seeds)), strict=False))
        fig, axes = plt.subplots(
            len(groups), 3, figsize=(13, 2.6 * len(groups) + 1), squeeze=False, sharex="row"
        )
        fig.suptitle(f"Learning curves: {panel_title(dataset)}\n(seeds overlaid; ★ chosen epoch)")
        for row, (label, members) in zip(axes, groups, strict=True):
            _curve_row(row, label, members, colors)
        paths += _save(fig, Path(out_dir), f"curves-{dataset}")
    return paths


def write_plots(
    tables: dict[str, pd.DataFrame], out_dir: str | Path, curves: dict[str, dict] | None = None
) -> list[Path]:
    """Every plot whose data is present in `tables` (from `harness.report.tables.build_tables`), and
    the learning curves when `curves` (run id -> `harness.common.curves` curve) holds any."""
    sns.set_theme(style="whitegrid", context="paper")
    paths: list[Path] = []
    paths += plot_figure2(tables["figure2_data"], out_dir)
    paths += plot_any_t(tables["figure2_any_t"], out_dir)
    paths += plot_energy(tables["energy"], out_dir)
    paths += plot_stream(tables["stream_fraction"], out_dir)
    if "paired" in tables:
        paths += plot_paired(tables["paired"], out_dir)
    if "early_exit" in tables:
        paths += plot_early_exit(tables["early_exit"], out_dir)
    if curves:
        paths += plot_curves(curves, out_dir)
    return paths
