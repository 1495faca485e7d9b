"""Command job specification: Azure ML CLI v2 ``commandJob`` YAML and a Python SDK.

Implements https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command for prefect-ml:
models (:class:`CommandJob`, :class:`Input`, :class:`Output`, ...), loading with every problem reported
at once (:func:`load_job`, :func:`parse_job`), command rendering (:func:`render_command`) and
:func:`command` to define jobs in Python.
"""

from prefect_ml.specs.environment import EnvironmentSpec
from prefect_ml.specs.inputs import DATA_INPUT_TYPES, MODEL_TYPES, Input, Output
from prefect_ml.specs.job import CommandJob, Distribution, Limits, Resources
from prefect_ml.specs.loader import load_job, parse_job
from prefect_ml.specs.sdk import command
from prefect_ml.specs.templating import render_command

__all__ = [
    "CommandJob", "Input", "Output", "Resources", "Limits", "Distribution", "EnvironmentSpec",
    "load_job", "parse_job", "render_command", "command", "DATA_INPUT_TYPES", "MODEL_TYPES",
]
