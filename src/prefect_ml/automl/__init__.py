"""AutoML jobs (Azure ML's ``type: automl``) as Prefect flows, tracked in MLflow.

Build a job in Python as with Azure's SDK::

    from prefect_ml import Input, MLClient, automl

    job = automl.classification(training_data=Input(type="mltable", path="./train"), target_column_name="y",
                                primary_metric="accuracy")
    job.set_limits(timeout_minutes=5, max_concurrent_trials=2)
    returned = MLClient().jobs.create_or_update(job)

Importing this package is cheap; the engine (scikit-learn, FLAML, pandas) is imported when a job runs.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "AutoMLJob": "prefect_ml.automl.spec",
    "classification": "prefect_ml.automl.spec",
    "regression": "prefect_ml.automl.spec",
    "forecasting": "prefect_ml.automl.spec",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'prefect_ml.automl' has no attribute {name!r}")
