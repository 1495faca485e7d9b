"""Command components (Azure ML CLI v2 ``commandComponent`` YAML) and :func:`load_component`.

Implements https://learn.microsoft.com/azure/machine-learning/reference-yaml-component-command: a reusable,
versioned command with typed inputs and outputs. A component becomes a pipeline step (a command job) once
its inputs are bound; see :mod:`prefect_ml.specs.pipeline`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import Field, PrivateAttr, field_validator
from pydantic import ValidationError as PydanticValidationError

from prefect_ml.exceptions import Problem, ValidationError
from prefect_ml.specs._base import SourcedSpec, str_values, translate_errors
from prefect_ml.specs.environment import EnvironmentSpec
from prefect_ml.specs.inputs import Input, Output
from prefect_ml.specs.job import (DISTRIBUTION_TYPES, AnyDistribution, CommandJob, Resources, is_remote,
                                  job_problems)

AZURE_COMPONENT_REFERENCE = "https://learn.microsoft.com/azure/machine-learning/reference-yaml-component-command"
_REQUIRED_MESSAGE = "required input has no value"


class CommandComponent(SourcedSpec):
    """A command component: a versioned command with typed inputs and outputs.

    Implements the ``commandComponent`` schema of
    https://learn.microsoft.com/azure/machine-learning/reference-yaml-component-command.
    Load one with :func:`load_component`; call it with input values inside a
    :func:`prefect_ml.pipeline` function to add a step.

    Attributes:
        name: Component name (letters, digits, ``_``, ``-``).
        version: Version string; None until registered (then the next integer).
        display_name: Name shown in the UI.
        type: Always ``command``.
        description: Free text.
        tags: Tags (values coerced to strings).
        code: Local folder (relative to :attr:`base_path`) with the component's code.
        command: The command, with ``${{inputs.X}}``, ``${{outputs.Y}}`` and ``$[[ ... ]]`` for optional inputs.
        environment: Environment the command runs in.
        environment_variables: Environment variables for the command.
        inputs: Typed inputs (``type``, ``default``, ``optional``, ``min``, ``max``, ``enum``, ``description``).
        outputs: Typed outputs.
        is_deterministic: Whether identical code, command, environment and inputs give identical outputs
            (so a pipeline may reuse an earlier run's outputs); default true, as in Azure.
        additional_includes: Files or folders (relative to the component file) copied into the code snapshot.
        resources: Default resources of steps using this component.
        distribution: Distribution settings (validated only).
        base_path: Folder relative paths resolve against (the component file's folder).
        source_file: The component file, when loaded from one.
        warnings: Notices about accepted but ignored settings.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    version: str | None = None
    display_name: str | None = None
    type: Literal["command"] = "command"
    code: str | None = None
    command: str = Field(min_length=1)
    environment: EnvironmentSpec | None = None
    environment_variables: dict[str, str] = Field(default_factory=dict)
    inputs: dict[str, Input] = Field(default_factory=dict)
    outputs: dict[str, Output] = Field(default_factory=dict)
    is_deterministic: bool = True
    additional_includes: list[str] = Field(default_factory=list)
    resources: Resources | None = None
    distribution: AnyDistribution | None = None
    #: The Python function of a :func:`prefect_ml.command_component` (None for YAML components).
    _python_function: Any = PrivateAttr(default=None)

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _coerce(cls, value: Any) -> Any:
        return str_values(value)

    @field_validator("inputs", "outputs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("version", "name", mode="before")
    @classmethod
    def _version_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    def __init__(self, **data: Any):
        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise ValidationError(translate_errors(exc, strip_tags={"distribution": set(DISTRIBUTION_TYPES)}),
                                  title="Invalid command component") from None

    # ----------------------------------------------------------------------------- helpers
    @property
    def reference(self) -> str:
        """``azureml:NAME:VERSION`` (or ``azureml:NAME`` before registration)."""
        return f"azureml:{self.name}:{self.version}" if self.version else f"azureml:{self.name}"

    def code_path(self) -> Path | None:
        """Absolute path of the local code folder, or None."""
        if not self.code or is_remote(self.code):
            return None
        path = Path(self.code).expanduser()
        if not path.is_absolute():
            path = Path(self.base_path or Path.cwd()) / path
        return path.resolve()

    def problems(self, *, file: str | None = None) -> list[Problem]:
        """Cross-field problems: command expressions, optional inputs used outside ``$[[ ]]``, code folder.

        An input without a value is fine in a component (it is a parameter); the rules of Azure's
        optional inputs apply: an optional input may only be used inside ``$[[ ... ]]``.
        """
        found = job_problems(command=self.command, inputs=dict(self.inputs), outputs=self.outputs, code=self.code,
                             base_path=self.base_path, file=file)
        found = [p for p in found if _REQUIRED_MESSAGE not in p.message]
        base = Path(self.base_path) if self.base_path else None
        for i, include in enumerate(self.additional_includes):
            if base is not None and not (base / include).exists():
                found.append(Problem(f"additional_includes[{i}]", f"not found: {(base / include).resolve()}; "
                                     "paths are relative to the component file's folder", include, file))
        return found

    def materialized_code(self) -> str | None:
        """The code folder a step runs from: :attr:`code` plus :attr:`additional_includes`.

        Without ``additional_includes`` this is :meth:`code_path`. Otherwise the code folder and every
        include (placed at the top level under its own name, as Azure does) are copied into a
        content-addressed folder under ``$PREFECT_ML_HOME/component-code``.
        """
        code = self.code_path()
        if not self.additional_includes:
            return str(code) if code else (self.code or None)
        from prefect_ml import settings

        base = Path(self.base_path or Path.cwd())
        includes = [(base / inc).resolve() for inc in self.additional_includes]
        digest = hashlib.sha256()
        for root in ([code] if code else []) + includes:
            for file in sorted([root] if root.is_file() else root.rglob("*")):
                if file.is_file():
                    digest.update(str(file.relative_to(root.parent)).encode() + b"\0")
                    digest.update(file.read_bytes() + b"\0")
        target = settings.home() / "component-code" / digest.hexdigest()[:24]
        if not target.exists():
            staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            shutil.rmtree(staging, ignore_errors=True)
            if code:
                shutil.copytree(code, staging, ignore=shutil.ignore_patterns("__pycache__", ".git"))
            staging.mkdir(parents=True, exist_ok=True)
            for inc in includes:
                dest = staging / inc.name
                shutil.copytree(inc, dest, dirs_exist_ok=True) if inc.is_dir() else shutil.copy2(inc, dest)
            try:
                staging.rename(target)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
        return str(target)

    def to_yaml_dict(self) -> dict[str, Any]:
        """The component as an Azure-style mapping (no null/empty fields, no prefect-ml bookkeeping)."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True,
                               exclude={"base_path", "source_file", "warnings", "inputs", "outputs", "environment"})
        if self.inputs:
            data["inputs"] = {k: v.model_dump(mode="json", exclude_none=True) for k, v in self.inputs.items()}
        if self.outputs:
            data["outputs"] = {k: v.to_yaml() for k, v in self.outputs.items()}
        if self.environment is not None:
            data["environment"] = self.environment.to_yaml()
        return {k: v for k, v in data.items() if v not in ({}, [], None)}

    def to_job(self, *, inputs: Mapping[str, Input] | None = None, outputs: Mapping[str, Output] | None = None,
               **fields: Any) -> CommandJob:
        """A command job running this component (not validated for required inputs).

        Args:
            inputs: Input definitions with values, by name (default: the component's own, i.e. defaults).
            outputs: Output definitions, by name (default: the component's own).
            **fields: Other command-job fields (``name``, ``compute``, ``environment_variables``, ``tags``...).
        """
        data: dict[str, Any] = {
            "type": "command", "command": self.command, "code": self.materialized_code(),
            "inputs": dict(inputs if inputs is not None else self.inputs),
            "outputs": dict(outputs if outputs is not None else self.outputs),
            "environment": self.environment, "environment_variables": dict(self.environment_variables),
            "resources": self.resources, "distribution": self.distribution,
            "display_name": self.display_name, "description": self.description, "tags": dict(self.tags),
            "base_path": self.base_path,
        }
        data.update({k: v for k, v in fields.items() if v is not None})
        if isinstance(data.get("environment_variables"), dict) and "environment_variables" in fields:
            data["environment_variables"] = {**self.environment_variables, **fields["environment_variables"]}
        return CommandJob.model_validate({k: v for k, v in data.items() if v is not None})

    def __call__(self, *args: Any, **inputs: Any):
        """Add a step running this component to the :func:`prefect_ml.pipeline` being built.

        Returns:
            The :class:`prefect_ml.pipelines.dsl.StepNode` (its ``outputs.NAME`` bind later steps).

        Raises:
            ValidationError: Positional arguments, or an unknown input name.
        """
        from prefect_ml.pipelines.dsl import add_step

        if args:
            raise ValidationError([Problem("", f"component {self.name} takes its inputs as keyword arguments "
                                           f"({', '.join(self.inputs) or 'none'})")])
        return add_step(self, inputs)


def parse_component(data: Any, *, base_path: str | os.PathLike | None = None,
                    source_file: str | os.PathLike | None = None, field_prefix: str = "") -> CommandComponent:
    """Validate a command component given as a mapping.

    Args:
        data: The component, in the shape of
            https://learn.microsoft.com/azure/machine-learning/reference-yaml-component-command.
        base_path: Folder relative paths (``code``, ``additional_includes``) resolve against.
        source_file: The component file, if any (recorded on each problem).
        field_prefix: Prefix of every problem's field (e.g. ``jobs.train.component``).

    Returns:
        The validated component.

    Raises:
        ValidationError: Every problem found, at once.
    """
    file = str(source_file) if source_file is not None else None
    if not isinstance(data, Mapping):
        raise ValidationError([Problem(field_prefix, "a component must be a mapping (name, command, inputs, ...)",
                                       data, file)], file=file)
    data = dict(data)
    if data.get("type", "command") != "command":
        raise ValidationError([Problem(_join(field_prefix, "type"), "only command components are supported",
                                       data.get("type"), file)], file=file)
    if base_path is not None:
        data["base_path"] = str(Path(base_path).expanduser().resolve())
    if source_file is not None:
        data["source_file"] = str(Path(source_file).expanduser().resolve())
    try:
        component = CommandComponent.model_validate(data)
    except PydanticValidationError as exc:
        problems = translate_errors(exc, file=file, prefix=field_prefix,
                                    strip_tags={"distribution": set(DISTRIBUTION_TYPES)})
        raise ValidationError(problems, file=file, title=f"Invalid component {file or ''}".strip()) from None
    problems = [Problem(_join(field_prefix, p.field), p.message, p.value, p.file)
                for p in component.problems(file=file)]
    if problems:
        raise ValidationError(problems, file=file, title=f"Invalid component {file or ''}".strip())
    return component


def _join(prefix: str, field: str) -> str:
    return ".".join(x for x in (prefix, field) if x)


def load_component(path: str | os.PathLike | None = None, *, source: str | os.PathLike | None = None
                   ) -> CommandComponent:
    """Load a command component from a YAML file (Azure's ``load_component``).

    Args:
        path: The component YAML file (``commandComponent`` schema).
        source: Alias of ``path`` (Azure's keyword).

    Returns:
        The validated :class:`CommandComponent` (callable inside a :func:`prefect_ml.pipeline`).

    Raises:
        ValidationError: The file is missing, not YAML, or invalid (every problem at once).
    """
    path = path if path is not None else source
    if path is None:
        raise ValidationError([Problem("path", "give the component file")])
    file = str(path)
    source_path = Path(path).expanduser()
    try:
        data = yaml.safe_load(source_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError([Problem("", f"component file not found: {source_path.resolve()}", None, file)],
                              file=file) from None
    except yaml.YAMLError as exc:
        raise ValidationError([Problem("", f"YAML syntax error: {exc}", None, file)], file=file) from None
    return parse_component(data, base_path=source_path.resolve().parent, source_file=source_path)
