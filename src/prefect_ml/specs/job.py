"""The command job model (Azure ML CLI v2 ``commandJob`` schema).

Implements https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, PrivateAttr, field_validator, model_validator

from prefect_ml.exceptions import Problem, ValidationError
from prefect_ml.specs._base import JobSpec, Spec, str_values
from prefect_ml.specs.environment import EnvironmentSpec
from prefect_ml.specs.inputs import Input, Output
from prefect_ml.specs.templating import find_references, reference_problems

#: Prefixes of ``code`` values that are not local folders.
REMOTE_CODE_PREFIXES = ("git+", "http://", "https://", "azureml:", "wasbs://", "abfss://", "s3://", "gs://")

IDENTITY_WARNING = "identity has no effect on prefect-ml compute; ignored"
SERVICES_WARNING = "services (interactive vs_code/jupyter_lab/tensor_board/ssh) have no effect on prefect-ml compute; ignored"


class Resources(Spec):
    """``resources``: how many machines of which type (Azure's "Job resources").

    See https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command.

    Attributes:
        instance_count: Number of nodes (>= 1).
        instance_type: Instance type of the compute (free text; meaning depends on the compute).
        shm_size: Size of the container's shared memory (``2g``).
        docker_args: Extra arguments for ``docker run``.
        properties: Free-form properties.
    """

    instance_count: int = Field(default=1, ge=1)
    instance_type: str | None = None
    shm_size: str | None = None
    docker_args: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("properties", {}) is None:
            data = {**data, "properties": {}}
        return data


class Limits(Spec):
    """``limits`` of a command job (Azure's "Job limits").

    See https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command.

    Attributes:
        timeout: Maximum run time in seconds (> 0); None for no limit.
    """

    timeout: int | None = Field(default=None, gt=0)


class Distribution(Spec):
    """Base of the ``distribution`` settings; the concrete class is chosen by ``type``.

    ``type`` is one of ``pytorch`` (:class:`PyTorchDistribution`), ``mpi`` (:class:`MpiDistribution`),
    ``tensorflow`` (:class:`TensorFlowDistribution`) and ``ray`` (:class:`RayDistribution`); see
    "Distribution configurations" at https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command.
    """

    type: str


class PyTorchDistribution(Distribution):
    """``distribution: {type: pytorch, process_count_per_instance: N}``."""

    type: Literal["pytorch"] = "pytorch"
    process_count_per_instance: int | None = Field(default=None, ge=1)


class MpiDistribution(Distribution):
    """``distribution: {type: mpi, process_count_per_instance: N}``."""

    type: Literal["mpi"] = "mpi"
    process_count_per_instance: int | None = Field(default=None, ge=1)


class TensorFlowDistribution(Distribution):
    """``distribution: {type: tensorflow, worker_count: N, parameter_server_count: M}``."""

    type: Literal["tensorflow"] = "tensorflow"
    worker_count: int | None = Field(default=None, ge=1)
    parameter_server_count: int | None = Field(default=None, ge=0)


class RayDistribution(Distribution):
    """``distribution: {type: ray, ...}``."""

    type: Literal["ray"] = "ray"
    port: int | None = None
    address: str | None = None
    include_dashboard: bool | None = None
    dashboard_port: int | None = None
    head_node_additional_args: str | None = None
    worker_node_additional_args: str | None = None


AnyDistribution = Annotated[
    Union[PyTorchDistribution, MpiDistribution, TensorFlowDistribution, RayDistribution],
    Field(discriminator="type"),
]
DISTRIBUTION_TYPES = ("pytorch", "mpi", "tensorflow", "ray")


def is_remote(code: str) -> bool:
    """Whether ``code`` names a remote location (git, URL, asset) rather than a local folder."""
    return code.startswith(REMOTE_CODE_PREFIXES)


class CommandJob(JobSpec):
    """A command job: run ``command`` in ``environment`` with ``code``, ``inputs`` and ``outputs``.

    Implements the ``commandJob`` schema of
    https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command.
    Build one with :func:`prefect_ml.specs.load_job`, :func:`prefect_ml.specs.parse_job` or
    :func:`prefect_ml.specs.command`, which also run the cross-field checks (command expressions,
    required inputs, code folder). The model round-trips through
    ``CommandJob.model_validate(job.model_dump(mode="json", by_alias=True))``.

    Attributes:
        schema_: ``$schema`` (accepted, ignored).
        type: Always ``command``.
        name: Job (run) name; None to generate one.
        display_name: Name shown in the UI.
        experiment_name: Experiment (MLflow experiment) to record the run under.
        description: Free text.
        tags: Tags (values coerced to strings).
        code: Local folder (relative to :attr:`base_path`) or remote location of the code.
        command: Shell command, with ``${{inputs.X}}``, ``${{outputs.Y}}``, ``${{name}}`` and ``$[[ ... ]]``.
        inputs: Inputs by name.
        outputs: Outputs by name.
        environment: Where the command runs.
        environment_variables: Environment variables (values coerced to strings).
        compute: Compute target name.
        resources: Number and type of nodes.
        limits: Time limit.
        distribution: Distributed training settings (validated only).
        identity: Accepted, has no effect (a warning is added).
        services: Accepted, has no effect (a warning is added).
        queue_settings: Accepted, unused.
        properties: Free-form properties.
        base_path: Absolute folder relative paths are resolved against (the job file's folder, or cwd).
        source_file: The job file, when loaded from one.
        warnings: Notices about accepted but ignored settings (not part of Azure's schema).
    """

    type: Literal["command"] = "command"
    code: str | None = None
    command: str = Field(min_length=1)
    inputs: dict[str, Input] = Field(default_factory=dict)
    outputs: dict[str, Output] = Field(default_factory=dict)
    environment: EnvironmentSpec | None = None
    environment_variables: dict[str, str] = Field(default_factory=dict)
    resources: Resources | None = None
    limits: Limits | None = None
    distribution: AnyDistribution | None = None
    identity: dict[str, Any] | None = None
    services: dict[str, Any] | None = None
    queue_settings: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None
    #: Inputs given as search-space distributions (``Uniform(...)``), for :meth:`sweep`.
    _search_space: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("environment_variables", mode="before")
    @classmethod
    def _coerce_str_values(cls, value: Any) -> Any:
        return str_values(value)

    @field_validator("inputs", "outputs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("code", mode="before")
    @classmethod
    def _scalar_to_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _collect_warnings(self) -> CommandJob:
        for present, text in ((self.identity, IDENTITY_WARNING), (self.services, SERVICES_WARNING)):
            if present is not None and text not in self.warnings:
                self.warnings.append(text)
        return self

    def __init__(self, **data: Any):
        from pydantic import ValidationError as PydanticValidationError

        from prefect_ml.specs._base import translate_errors

        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise ValidationError(translate_errors(exc, strip_tags={"distribution": set(DISTRIBUTION_TYPES)}),
                                  title="Invalid command job") from None

    # -- helpers -------------------------------------------------------------------------------

    def code_path(self) -> Path | None:
        """Absolute path of the local code folder, or None (no ``code`` or a remote one)."""
        if not self.code or is_remote(self.code):
            return None
        path = Path(self.code).expanduser()
        if not path.is_absolute():
            path = Path(self.base_path or Path.cwd()) / path
        return path.resolve()

    def referenced_inputs(self) -> list[str]:
        """Names of the inputs the command uses, in order of first use."""
        return list(dict.fromkeys(r.name for r in find_references(self.command) if r.kind == "inputs"))

    def referenced_outputs(self) -> list[str]:
        """Names of the outputs the command uses, in order of first use."""
        return list(dict.fromkeys(r.name for r in find_references(self.command) if r.kind == "outputs"))

    def to_yaml_dict(self) -> dict[str, Any]:
        """The job as an Azure-style mapping (aliases, no null/empty fields, no prefect-ml bookkeeping)."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True,
                               exclude={"base_path", "source_file", "warnings", "inputs", "outputs", "environment"})
        if self.inputs:
            data["inputs"] = {k: v.to_yaml() for k, v in self.inputs.items()}
        if self.outputs:
            data["outputs"] = {k: v.to_yaml() for k, v in self.outputs.items()}
        if self.environment is not None:
            data["environment"] = self.environment.to_yaml()
        if self.resources is not None and not self.resources.properties:
            data["resources"].pop("properties", None)
        ordered = ["$schema", "type", "name", "display_name", "experiment_name", "description", "tags", "code",
                   "command", "inputs", "outputs", "environment", "environment_variables", "compute",
                   "resources", "limits", "distribution", "identity", "services", "queue_settings", "properties"]
        return {k: data[k] for k in ordered if k in data and data[k] not in ({}, [], None)}

    def problems(self, *, file: str | None = None) -> list[Problem]:
        """Cross-field problems of this job (command expressions, required inputs, code folder)."""
        return job_problems(command=self.command, inputs=self.inputs, outputs=self.outputs, code=self.code,
                            base_path=self.base_path, file=file)

    def __call__(self, **inputs: Any) -> CommandJob:
        """Return a new job with the given input values (literals or :class:`Input` objects) replaced.

        Raises:
            ValidationError: An unknown input name, or an invalid value.
        """
        from prefect_ml.specs.sweep import SweepDistribution

        problems: list[Problem] = []
        new_inputs = dict(self.inputs)
        search_space = dict(self._search_space)
        for key, value in inputs.items():
            if isinstance(value, SweepDistribution) and key in self.inputs:
                search_space[key] = value
                new_inputs[key] = self.inputs[key].with_value(value.representative())
                continue
            if key not in self.inputs:
                problems.append(Problem(f"inputs.{key}", "unknown input (declared inputs: "
                                        f"{', '.join(self.inputs) or 'none'})", value))
                continue
            try:
                new_inputs[key] = value if isinstance(value, Input) else self.inputs[key].with_value(value)
            except ValidationError as exc:
                problems += [Problem(f"inputs.{key}.{p.field}".rstrip("."), p.message, p.value) for p in exc.problems]
        if problems:
            raise ValidationError(problems)
        job = self.model_copy(update={"inputs": new_inputs})
        job._search_space = search_space
        problems = job.problems()
        if problems:
            raise ValidationError(problems)
        return job

    def sweep(self, **kwargs: Any):
        """Turn this job into a sweep job over its distribution-valued inputs (Azure's ``CommandJob.sweep``).

        See :func:`prefect_ml.specs.sweep.sweep_from_command` for the arguments.
        """
        from prefect_ml.specs.sweep import sweep_from_command

        return sweep_from_command(self, **kwargs)


def job_problems(*, command: Any, inputs: dict[str, Input | None], outputs: Any, code: Any,
                 base_path: str | None, file: str | None = None) -> list[Problem]:
    """Cross-field checks of a command job.

    Args:
        command: The command (skipped unless a string).
        inputs: Inputs by name; None for an input that failed its own validation (declared, unchecked).
        outputs: Declared output names (a mapping or a collection).
        code: The ``code`` value (skipped unless a string).
        base_path: Folder a relative ``code`` is resolved against; None to skip the folder check.
        file: File recorded on each problem.

    Returns:
        The problems found.
    """
    problems: list[Problem] = []
    if isinstance(command, str):
        problems += reference_problems(command, inputs=inputs, outputs=outputs, file=file)
        for ref in find_references(command):
            inp = inputs.get(ref.name) if ref.kind == "inputs" else None
            if inp is not None and inp.optional and not ref.in_block:
                problems.append(Problem(
                    "command", f"optional input '{ref.name}' is used outside an optional block, so the command "
                    f"breaks when it is not given; wrap it: $[[--{ref.name} ${{{{inputs.{ref.name}}}}}]]",
                    ref.text, file))
    for key, inp in inputs.items():
        if inp is not None and not inp.optional and inp.value is None:
            fix = "path:" if inp.is_data else "default:"
            problems.append(Problem(f"inputs.{key}", f"required input has no value; give it a '{fix}', mark it "
                                    f"'optional: true', or pass it (override inputs.{key}=VALUE)", None, file))
    if isinstance(code, str) and code and not is_remote(code) and base_path is not None:
        path = Path(code).expanduser()
        path = path if path.is_absolute() else Path(base_path) / path
        if not path.is_dir():
            problems.append(Problem("code", f"code folder not found: {path.resolve()} ("
                                    + ("is not a folder" if path.exists() else "does not exist")
                                    + "); create it or fix 'code:' (relative to the job file's folder)", code, file))
    return problems
