"""Trial functions of the function-trial sweep tests (imported by the sweeps from this folder)."""

from __future__ import annotations

import time

import mlflow


def _mark(marker: str, kind: str, x: float) -> None:
    if marker:
        with open(marker, "a") as fh:
            fh.write(f"{kind} {mlflow.active_run().info.run_name} {x}\n")


def steps(x: float, steps: int = 3, pause: float = 0.0, marker: str = "", metric: str = "accuracy") -> None:
    """Log ``metric`` = x for ``steps`` steps; trials with x < 0.5 pause ``pause`` s after each."""
    _mark(marker, "start", x)
    for step in range(steps):
        mlflow.log_metric(metric, x, step=step)
        time.sleep(pause if x < 0.5 else 0)
    _mark(marker, "end", x)


def returns(x: float) -> float:
    """Logs nothing: its return value becomes the primary metric."""
    return x * 2


def leaves_a_nested_run_open(x: float) -> None:
    """Logs x, then starts a nested MLflow run and does not end it."""
    mlflow.log_metric("accuracy", x, step=0)
    mlflow.start_run(nested=True, run_name="left-open")
