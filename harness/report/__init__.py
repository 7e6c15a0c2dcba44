"""The reading half of the harness: from a results store to tables, plots, `report.html`, and the
comparison of two stores.

    python -m harness.report OUTDIR                   # tables/, plots/, report.html (`build`)
    python -m harness.report OUTDIR --compare OTHER   # what moved between two stores

It imports the shared layer (`harness.common`: the store, the row schema, the per-sample and
learning-curve files, the sweep registry) and `hsd`, never the running half (`harness.run`,
executors, tuning, Ray or Optuna): reading a store needs none of them.
"""
