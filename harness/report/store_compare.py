"""Two result stores compared: what moved between them, by how much, and whether it matters.

For store A against store B (e.g. a rerun against the committed run, a recipe change, another
machine), on prepared rows (`harness.report.aggregate.prepare_rows`):

- `cell_differences`: for every cell (sweep, dataset, variant, T; accuracy at t = T) both stores
  ran ok, the difference of means A − B with its 95 % interval. When both stores hold the same
  seeds with the same run ids, the runs are paired by seed (`stats.paired_difference`: the
  interval of the mean per-seed difference); otherwise the stores are independent samples
  (`stats.welch_difference`). Verdict: ``identical`` (paired and every seed equal), ``A higher`` /
  ``A lower`` (the interval excludes 0), else ``no clear difference``.
- `changed_claims`: the paper's claims (`harness.report.comparisons.claims_table`) whose verdict differs,
  among those both stores could test.
- `runs_in_one_store`: runs (by run id) that only one store holds, and runs whose status differs.
- `config_differences`: plain sentences for every way the stores' making differs: code commit,
  device, library versions, machine (``COMMAND.txt``), sweep arguments (``sweep.json``), and the
  recipe fields of the runs of shared cells (every config field and ``opt_*`` option).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from harness.common.store import ResultStore, StoreError
from harness.report import aggregate, stats, store_facts
from harness.report.comparisons import claims_table
from hsd.config import RunConfig

CELL = ["sweep", "dataset", "variant", "T"]
PAIRED, WELCH = "paired by seed", "Welch"
IDENTICAL, HIGHER, LOWER, UNCLEAR = "identical", "A higher", "A lower", "no clear difference"
#: RunConfig fields that name a cell rather than its recipe
_CELL_FIELDS = {"method", "dataset", "T", "seed", "options"}
RECIPE_FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name not in _CELL_FIELDS)


@dataclasses.dataclass
class Store:
    """One store read for a comparison: its folder and prepared rows."""

    path: Path
    rows: pd.DataFrame

    @classmethod
    def read(cls, out_dir: str | Path, role: str) -> Store:
        """Read a store whole; a missing folder or store, or one with no rows, is a StoreError
        that names its `role` ("A", "B") so the user knows which argument to fix."""
        try:
            rows = ResultStore.existing(out_dir).rows()
        except StoreError as err:
            raise StoreError(f"store {role} ({out_dir}): {err}") from None
        if rows.empty:
            raise StoreError(
                f"store {role} ({out_dir}) holds no complete rows; run a sweep into it first "
                "(python -m harness.run --sweep ... --out FOLDER)"
            )
        return cls(Path(out_dir), aggregate.prepare_rows(rows))

    def final(self) -> pd.DataFrame:
        """Rows at t = T of trained runs (parameter counts have no seed), one per run and cell."""
        df = self.rows[(self.rows["t"] == self.rows["T"]) & self.rows["seed"].notna()]
        return df.drop_duplicates([*CELL, "run_id"])


def _verdict(iv: stats.Interval, identical: bool) -> str:
    if identical:
        return IDENTICAL
    return {"above": HIGHER, "below": LOWER}.get(stats.interval_verdict(iv), UNCLEAR)


def ok_cell_pairs(a: Store, b: Store):
    """(cell key, A's ok runs, B's ok runs), each sorted by seed, for every cell both stores ran
    ok, in A's order."""
    fa, fb = (s.final() for s in (a, b))
    fa, fb = (f[(f["status"] == "ok") & f["acc_pct"].notna()] for f in (fa, fb))
    groups_b = dict(tuple(fb.groupby(CELL, sort=False)))
    for key, ga in fa.groupby(CELL, sort=False):
        gb = groups_b.get(key)
        if gb is not None:
            yield key, ga.sort_values("seed"), gb.sort_values("seed")


def cell_differences(a: Store, b: Store) -> pd.DataFrame:
    """One row per cell both stores ran ok: n, mean and interval of each store, A − B with its
    interval (`diff`, `ci_low`, `ci_high`), the test used, its p-value and the verdict."""
    cols = [*CELL, "n A", "mean A", "ci_low A", "ci_high A", "n B", "mean B", "ci_low B",
            "ci_high B", "diff", "ci_low", "ci_high", "test", "p", "verdict"]  # fmt: skip
    records = []
    for key, ga, gb in ok_cell_pairs(a, b):
        same_runs = (
            ga["seed"].is_unique
            and gb["seed"].is_unique
            and list(zip(ga["seed"], ga["run_id"], strict=True))
            == list(zip(gb["seed"], gb["run_id"], strict=True))
        )
        if same_runs:
            res = stats.paired_difference(ga["acc_pct"].to_numpy(), gb["acc_pct"].to_numpy())
            test, p = PAIRED, res.p_ttest
            identical = bool((ga["acc_pct"].to_numpy() == gb["acc_pct"].to_numpy()).all())
        else:
            res = stats.welch_difference(ga["acc_pct"], gb["acc_pct"])
            test, p, identical = WELCH, res.p_welch, False
        ia, ib = stats.mean_ci(ga["acc_pct"]), stats.mean_ci(gb["acc_pct"])
        iv = res.diff
        records.append(
            (*key, ia.n, ia.mean, ia.low, ia.high, ib.n, ib.mean, ib.low, ib.high,
             iv.mean, iv.low, iv.high, test, p, _verdict(iv, identical))
        )  # fmt: skip
    return sort_cells(pd.DataFrame(records, columns=cols))


def sort_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Cells in report order: sweep by sweep, then dataset, the sweep's variant order, T."""
    if df.empty:
        return df
    parts = [
        aggregate._sort(g, ["dataset", "variant", "T"], sweep) for sweep, g in df.groupby("sweep")
    ]
    return pd.concat(parts, ignore_index=True)


def cells_in_one_store(a: Store, b: Store) -> tuple[int, int]:
    """How many cells with an ok run only A holds, and only B."""
    keys = [
        set(map(tuple, s.final().query("status == 'ok'")[CELL].drop_duplicates().to_numpy()))
        for s in (a, b)
    ]
    return len(keys[0] - keys[1]), len(keys[1] - keys[0])


_NOT_TESTED = ("not run", "no paired ok runs")


def _kind(verdict: str) -> str:
    """A verdict without its seed count: "inconclusive at 3 seeds" -> "inconclusive"."""
    return str(verdict).split(" at ")[0]


def changed_claims(a: Store, b: Store) -> tuple[pd.DataFrame, int, int]:
    """(claims both stores tested whose verdict differs, with both effects; how many claim rows
    both stores tested; how many only one store could test)."""
    key = ["claim", "dataset", "T", "comparison"]
    ca, cb = claims_table(a.rows), claims_table(b.rows)
    both = ca.merge(cb, on=key, how="outer", suffixes=(" A", " B"))
    tested = [
        both[f"verdict {s}"].map(lambda v: isinstance(v, str) and v not in _NOT_TESTED)
        for s in ("A", "B")
    ]
    one_only = int((tested[0] ^ tested[1]).sum())
    both = both[tested[0] & tested[1]]
    changed = both[both["verdict A"].map(_kind) != both["verdict B"].map(_kind)]
    cols = [*key]
    for s in ("A", "B"):
        cols += [f"effect {s}", f"ci_low {s}", f"ci_high {s}", f"n {s}", f"verdict {s}"]
    return changed[cols].reset_index(drop=True), len(both), one_only


def _runs(store: Store) -> pd.DataFrame:
    """One line per run id: its dataset, trained T, seed, status and the cells it serves."""
    df = store.rows.assign(cell=store.rows["sweep"].astype(str) + "/" + store.rows["variant"])
    runs = df.groupby("run_id", sort=False).agg(
        dataset=("dataset", "first"),
        T=("T_trained", "first"),
        seed=("seed", "first"),
        status=("status", "first"),
        cells=("cell", lambda c: ", ".join(sorted(set(c)))),
    )
    return runs.reset_index().rename(columns={"run_id": "run id"})


def runs_in_one_store(a: Store, b: Store) -> pd.DataFrame:
    """Runs only one store holds (``where``: ``A only`` / ``B only``) and runs both hold whose
    status differs (``status differs``, status given as ``A / B``)."""
    ra, rb = _runs(a), _runs(b)
    only_a = ra[~ra["run id"].isin(rb["run id"])].assign(where="A only")
    only_b = rb[~rb["run id"].isin(ra["run id"])].assign(where="B only")
    both = ra.merge(rb[["run id", "status"]], on="run id", suffixes=("", " B"))
    moved = both[both["status"] != both["status B"]]
    moved = moved.assign(status=moved["status"] + " / " + moved["status B"], where="status differs")
    cols = ["where", "run id", "cells", "dataset", "T", "seed", "status"]
    parts = [p for p in (only_a, only_b, moved) if len(p)]
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)[cols]
    return out.sort_values(
        ["where", "dataset", "cells", "T", "seed"], kind="stable", ignore_index=True
    )


def _said(values: list[str]) -> str:
    return ", ".join(values) if values else "(not recorded)"


def config_differences(a: Store, b: Store) -> list[str]:
    """One plain sentence per way the two stores were made differently; [] when none is found.

    Row provenance (commit, device, versions, threads, backend) is read from the runs of the
    cells both stores hold (all rows when they share none); the machine and commit from each
    ``COMMAND.txt``; the sweep and its arguments from each ``sweep.json``; recipes per shared cell.
    """
    out = []
    # where and with what the runs of the cells both stores hold were made (a store's other
    # cells, e.g. methods only it ran, would name backends the other never needed)
    fa, fb = a.final(), b.final()
    shared = fa[CELL].drop_duplicates().merge(fb[CELL].drop_duplicates(), on=CELL)
    ra, rb = (f.merge(shared, on=CELL) if len(shared) else s.rows for f, s in ((fa, a), (fb, b)))
    for column, label in store_facts.PROVENANCE_FIELDS.items():
        va, vb = store_facts.values(ra, column), store_facts.values(rb, column)
        if va != vb:
            out.append(f"{label} differs: A {_said(va)}; B {_said(vb)}.")
    for key, label in store_facts.COMMAND_FACTS.items():
        va, vb = (
            sorted({blk[key] for blk in store_facts.command_blocks(s.path) if key in blk})
            for s in (a, b)
        )
        if va != vb:
            out.append(f"{label} differs: A {_said(va)}; B {_said(vb)}.")
    ma, mb = (store_facts.manifest(s.path) for s in (a, b))
    args_a, args_b = ma.get("args", {}) or {}, mb.get("args", {}) or {}
    if ma.get("sweep") != mb.get("sweep"):
        out.append(f"sweep differs: A {ma.get('sweep')}; B {mb.get('sweep')} (sweep.json).")
    for arg in sorted(set(args_a) | set(args_b)):
        if args_a.get(arg) != args_b.get(arg):
            out.append(f"sweep argument {arg} differs: A {args_a.get(arg)}; B {args_b.get(arg)}.")
    return out + _recipe_differences(a, b)


def _recipe_differences(a: Store, b: Store) -> list[str]:
    """Per recipe field, the cells both stores ran whose runs were made with other values."""
    fa, fb = a.final(), b.final()
    fields = [*RECIPE_FIELDS, *sorted(c for c in set(fa) | set(fb) if str(c).startswith("opt_"))]
    shared = fa[CELL].drop_duplicates().merge(fb[CELL].drop_duplicates(), on=CELL)
    ga, gb = dict(tuple(fa.groupby(CELL))), dict(tuple(fb.groupby(CELL)))
    found: dict[str, list] = {}
    for key in map(tuple, shared.to_numpy()):
        for field in fields:
            va, vb = (store_facts.values(g[key], field) for g in (ga, gb))
            if va != vb:
                found.setdefault(field, []).append((key, va, vb))
    out = []
    for field, hits in found.items():
        (sweep, dataset, variant, T), va, vb = hits[0]
        out.append(
            f"recipe field {field} differs in {len(hits)} of {len(shared)} shared cells, e.g. "
            f"{variant} on {dataset} at T = {T} ({sweep}): A {_said(va)}; B {_said(vb)}."
        )
    return out
