"""Ray Tune's `OptunaSearch`, with a failed point told to Optuna as FAIL.

A point with a seed that did not finish has no objective: the Ray trial reports NaN (as the local
ask/tell loop tells Optuna, which records NaN as FAIL). Ray's `OptunaSearch.on_trial_complete`
instead tells it as COMPLETE with that value; Optuna refuses ("The value nan is not acceptable"),
Ray logs the refusal as a warning and goes on, and the trial stays RUNNING in the study for good:
not counted as finished, and taken at the next start for a killed driver's trial. Here such a
result is passed on as an errored trial without a value, which Ray tells as FAIL.

Imports Ray at module level: import it only where Ray is installed (`harness.tune_ray`).
"""

from __future__ import annotations

import math

from ray.tune.search.optuna import OptunaSearch


def _has_nan(result: dict | None, metric) -> bool:
    metrics = metric if isinstance(metric, list) else [metric]
    values = [result.get(m) for m in metrics] if result else []
    return any(isinstance(v, float) and math.isnan(v) for v in values)


class FailingOptunaSearch(OptunaSearch):
    """`OptunaSearch` that records a NaN objective as a failed trial."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if _has_nan(result, self.metric):
            result, error = None, True  # no value and an error: Ray tells Optuna FAIL
        super().on_trial_complete(trial_id, result=result, error=error)
