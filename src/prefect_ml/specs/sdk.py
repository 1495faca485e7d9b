"""Python SDK to define command jobs, in the style of Azure ML's ``azure.ai.ml.command``.

Jobs built here follow https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command
and get the same validation as job files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel

from prefect_ml.specs.environment import EnvironmentSpec
from prefect_ml.specs.inputs import Input, Output
from prefect_ml.specs.job import CommandJob, Limits, Resources
from prefect_ml.specs.loader import parse_job


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel) and not isinstance(value, (Input, Output, EnvironmentSpec)):
        return value.model_dump(exclude_none=True)
    return value


def command(*, command: str, code: str | os.PathLike | None = None, inputs: Mapping[str, Any] | None = None,
            outputs: Mapping[str, Output | Mapping[str, Any] | None] | None = None,
            environment: str | Mapping[str, Any] | EnvironmentSpec | None = None, compute: str | None = None,
            name: str | None = None, display_name: str | None = None, experiment_name: str | None = None,
            description: str | None = None, tags: Mapping[str, Any] | None = None,
            environment_variables: Mapping[str, Any] | None = None,
            resources: Resources | Mapping[str, Any] | None = None, limits: Limits | Mapping[str, Any] | None = None,
            timeout: int | None = None, distribution: Any = None,
            identity: Mapping[str, Any] | None = None) -> CommandJob:
    """Define a command job in Python.

    Mirrors the keys of https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command;
    relative paths resolve against the current directory.

    Args:
        command: Shell command, with ``${{inputs.X}}``, ``${{outputs.Y}}``, ``${{name}}`` and ``$[[ ... ]]``.
        code: Folder with the code (relative to the current directory) or a remote location.
        inputs: Inputs by name: :class:`Input` objects, mappings or plain literals (``0.01``, ``"hello"``);
            a search-space distribution (``Uniform(0.001, 0.1)``, ``Choice([...])``) makes the input a
            sweep parameter for :meth:`CommandJob.sweep`.
        outputs: Outputs by name: :class:`Output` objects, mappings or None (default ``uri_folder``).
        environment: Environment reference string, inline mapping (``image``, ``conda_file``, ...) or spec.
        compute: Compute target name.
        name: Job name.
        display_name: Display name.
        experiment_name: Experiment name.
        description: Free text.
        tags: Tags (values coerced to strings).
        environment_variables: Environment variables (values coerced to strings).
        resources: :class:`Resources` or a mapping.
        limits: :class:`Limits` or a mapping.
        timeout: Shortcut for ``limits.timeout`` (seconds); wins over ``limits``.
        distribution: Distribution settings (mapping with ``type`` or a distribution object).
        identity: Accepted; has no effect (a warning is added).

    Returns:
        The validated job, with ``base_path`` set to the current directory.

    Raises:
        ValidationError: Every problem found, at once (``file`` is None).
    """
    from prefect_ml.specs.sweep import split_search_space

    inputs, search_space = split_search_space(inputs)
    data: dict[str, Any] = {"type": "command", "command": command}
    limits_data = _plain(limits)
    if timeout is not None:
        limits_data = {**(dict(limits_data) if isinstance(limits_data, Mapping) else {}), "timeout": timeout}
    for key, value in (("code", str(code) if code is not None else None),
                       ("inputs", dict(inputs) if inputs is not None else None),
                       ("outputs", dict(outputs) if outputs is not None else None),
                       ("environment", dict(environment) if isinstance(environment, Mapping) else environment),
                       ("compute", compute), ("name", name), ("display_name", display_name),
                       ("experiment_name", experiment_name), ("description", description),
                       ("tags", dict(tags) if tags is not None else None),
                       ("environment_variables", dict(environment_variables) if environment_variables else None),
                       ("resources", _plain(resources)), ("limits", limits_data),
                       ("distribution", _plain(distribution)),
                       ("identity", dict(identity) if identity is not None else None)):
        if value is not None:
            data[key] = value
    job = parse_job(data, base_path=Path.cwd())
    if search_space:
        job._search_space = search_space
    return job
