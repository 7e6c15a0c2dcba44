"""What both halves of the harness share: the results store and its lock, the row schema, the
per-sample and learning-curve file formats, and the sweep registry (which runs each table holds).
The running half (`harness.run`, executors, tuning) writes through it; the reading half
(`harness.report`) reads through it. Nothing here imports either half, Ray or Optuna.
"""
