"""Sweep jobs: sampling (Optuna), early termination and the trial loop.

- :mod:`prefect_ml.sweep.policies`: pure early-termination rules (Azure's bandit, median stopping,
  truncation selection, and asynchronous successive halving).
- :mod:`prefect_ml.sweep.sampling`: Optuna samplers and a persistent study per sweep.
- :mod:`prefect_ml.sweep.engine`: runs trials as child command jobs, applies the policy, records results.
"""
