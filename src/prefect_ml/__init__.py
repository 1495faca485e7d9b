"""prefect-ml: Azure ML-style training jobs on Prefect 3, tracked in MLflow.

Public API (imported lazily so that ``import prefect_ml`` stays cheap)::

    from prefect_ml import command, Input, Output, MLClient, load_job
    from prefect_ml import pipeline, command_component, load_component
    from prefect_ml import Uniform, Choice, BanditPolicy, ...  # sweep jobs (Azure's azure.ai.ml.sweep classes)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "command": "prefect_ml.specs",
    "Input": "prefect_ml.specs",
    "Output": "prefect_ml.specs",
    "CommandJob": "prefect_ml.specs",
    "load_job": "prefect_ml.specs",
    "MLClient": "prefect_ml.client",
    "load_component": "prefect_ml.specs.component",
    "CommandComponent": "prefect_ml.specs.component",
    "PipelineJob": "prefect_ml.specs.pipeline",
    "pipeline": "prefect_ml.pipelines.dsl",
    "command_component": "prefect_ml.pipelines.dsl",
    **{name: "prefect_ml.specs.sweep" for name in (
        "SweepJob", "Choice", "RandInt", "Uniform", "LogUniform", "QUniform", "QLogUniform", "Normal", "LogNormal",
        "QNormal", "QLogNormal", "BanditPolicy", "MedianStoppingPolicy", "TruncationSelectionPolicy",
        "AsyncSuccessiveHalvingPolicy", "ASHAPolicy")},
}

__all__ = sorted(_LAZY) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from prefect_ml.client import MLClient
    from prefect_ml.pipelines.dsl import command_component, pipeline
    from prefect_ml.specs import CommandJob, Input, Output, command, load_job
    from prefect_ml.specs.component import CommandComponent, load_component
    from prefect_ml.specs.pipeline import PipelineJob


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'prefect_ml' has no attribute {name!r}")
