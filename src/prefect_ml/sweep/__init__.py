"""Sweep jobs: sampling (Optuna), early termination and the trial loop.

- :mod:`prefect_ml.sweep.policies`: pure early-termination rules (Azure's bandit, median stopping,
  truncation selection, and asynchronous successive halving).
- :mod:`prefect_ml.sweep.sampling`: Optuna samplers and a persistent study per sweep.
- :mod:`prefect_ml.sweep.engine`: runs trials as child command jobs, applies the policy, records results.
- :mod:`prefect_ml.sweep.function_trials`: trials that are Python functions, run as Prefect tasks.
- :mod:`prefect_ml.sweep.trial_slots`: function trials on a Dask cluster, in long-lived trial slots.

``from prefect_ml.sweep import sweep``: ``sweep(trial=fn, search_space=..., primary_metric=..., goal=...)``
builds a sweep of a Python function (see :func:`prefect_ml.specs.sweep.sweep_from_function`).
"""


def sweep(trial, **kwargs):
    """A sweep job of a Python function trial; see :func:`prefect_ml.specs.sweep.sweep_from_function`."""
    from prefect_ml.specs.sweep import sweep_from_function

    return sweep_from_function(trial, **kwargs)
