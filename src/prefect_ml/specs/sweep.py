"""The sweep job model (Azure ML CLI v2 ``sweepJob`` schema) and Azure's SDK sweep classes.

Implements https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-sweep: ``trial`` (a
command job or a command component file), ``inputs``, ``search_space`` with every distribution type,
``sampling_algorithm``, ``objective``, ``early_termination``, ``limits`` and ``compute``.

The distribution and policy classes double as Azure's Python SDK classes (``azure.ai.ml.sweep``):
``Choice``, ``RandInt``, ``Uniform``, ``LogUniform``, ``QUniform``, ``QLogUniform``, ``Normal``,
``LogNormal``, ``QNormal``, ``QLogNormal``, ``BanditPolicy``, ``MedianStoppingPolicy``,
``TruncationSelectionPolicy`` and prefect-ml's own ``AsyncSuccessiveHalvingPolicy`` (``type: asha``).
SweepDistribution semantics: https://learn.microsoft.com/azure/machine-learning/how-to-tune-hyperparameters#define-the-search-space
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Union

import yaml
from pydantic import Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from prefect_ml.exceptions import Problem, ValidationError
from prefect_ml.specs._base import JobSpec, Spec, suggest, translate_errors
from prefect_ml.specs.inputs import Input, Output

#: Largest exponent whose ``exp`` is a finite float (``math.exp(709.78)`` ~ 1.8e308).
MAX_EXPONENT = math.log(1.7976931348623157e308)

_SEARCH_SPACE_REF = re.compile(r"\$\{\{\s*search_space\.(\w+)\s*\}\}")


# ----------------------------------------------------------------------------- distributions


class SweepDistribution(Spec):
    """Base of the search-space distributions; the concrete class is chosen by ``type``."""

    type: str

    def problems(self) -> list[str]:
        """What is wrong with the bounds (empty when valid)."""
        return []

    def representative(self) -> Any:
        """A value inside the space (used to validate the trial before anything runs)."""
        raise NotImplementedError

    def to_yaml(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class Choice(SweepDistribution):
    """``{type: choice, values: [...]}``: one of ``values``, uniformly (grid: each in turn).

    Example: ``Choice(values=[16, 32, 64])`` or ``Choice([16, 32, 64])``.
    """

    type: Literal["choice"] = "choice"
    values: list[Any]

    def __init__(self, values: list[Any] | None = None, **data: Any):
        super().__init__(**({"values": values} if values is not None else {}), **data)

    def problems(self) -> list[str]:
        if not self.values:
            return ["'values' is empty; give at least one value"]
        bad = [v for v in self.values if not isinstance(v, (str, int, float, bool)) and v is not None]
        if bad:
            return [f"'values' must be strings, numbers, booleans or null (nested search spaces are not supported); "
                    f"got {bad[0]!r}"]
        return []

    def representative(self) -> Any:
        return self.values[0]


class RandInt(SweepDistribution):
    """``{type: randint, upper: U}``: an integer in ``[0, U)``."""

    type: Literal["randint"] = "randint"
    upper: int

    def __init__(self, upper: int | None = None, **data: Any):
        super().__init__(**({"upper": upper} if upper is not None else {}), **data)

    def problems(self) -> list[str]:
        return [] if self.upper >= 1 else [f"'upper' must be >= 1 (values are drawn from [0, upper)); got {self.upper}"]

    def representative(self) -> Any:
        return 0


class _Bounded(SweepDistribution):
    min_value: float
    max_value: float

    def __init__(self, min_value: float | None = None, max_value: float | None = None, **data: Any):
        given = {k: v for k, v in (("min_value", min_value), ("max_value", max_value)) if v is not None}
        super().__init__(**given, **data)

    def problems(self) -> list[str]:
        out = []
        if not (math.isfinite(self.min_value) and math.isfinite(self.max_value)):
            out.append("'min_value' and 'max_value' must be finite")
        elif self.min_value >= self.max_value:
            out.append(f"'min_value' ({self.min_value}) must be < 'max_value' ({self.max_value})")
        return out

    def representative(self) -> Any:
        return self.transform_uniform((self.min_value + self.max_value) / 2)

    def transform_uniform(self, x: float) -> Any:
        return x


class Uniform(_Bounded):
    """``{type: uniform, min_value, max_value}``: uniform in ``[min_value, max_value]``."""

    type: Literal["uniform"] = "uniform"


class LogUniform(_Bounded):
    """``{type: loguniform, min_value, max_value}``: ``exp(uniform(min_value, max_value))``.

    As Azure defines it, the bounds are *exponents*: ``LogUniform(-6, -1)`` draws in ``[e^-6, e^-1]``.
    Bounds above ~709.78 would overflow a float and are rejected.
    """

    type: Literal["loguniform"] = "loguniform"

    def problems(self) -> list[str]:
        out = super().problems()
        if not out and self.max_value > MAX_EXPONENT:
            out.append(f"'max_value' is an exponent (values are exp(uniform(min_value, max_value))); "
                       f"exp({self.max_value}) overflows a float: use at most {MAX_EXPONENT:.2f}")
        return out

    def transform_uniform(self, x: float) -> Any:
        return math.exp(x)


class _Quantized:
    q: float

    def _q_problems(self) -> list[str]:
        return [] if self.q > 0 and math.isfinite(self.q) else [f"'q' must be > 0; got {self.q}"]

    def quantize(self, x: float) -> Any:
        value = round(x / self.q) * self.q
        return int(round(value)) if float(self.q).is_integer() else value


class QUniform(_Quantized, _Bounded):
    """``{type: quniform, min_value, max_value, q}``: ``round(uniform(min_value, max_value) / q) * q``.

    An integer ``q`` gives integer values.
    """

    type: Literal["quniform"] = "quniform"
    q: float

    def __init__(self, min_value: float | None = None, max_value: float | None = None, q: float | None = None,
                 **data: Any):
        super().__init__(min_value, max_value, **({"q": q} if q is not None else {}), **data)

    def problems(self) -> list[str]:
        return super().problems() + self._q_problems()

    def transform_uniform(self, x: float) -> Any:
        return self.quantize(x)


class QLogUniform(_Quantized, _Bounded):
    """``{type: qloguniform, min_value, max_value, q}``: ``round(exp(uniform(min_value, max_value)) / q) * q``."""

    type: Literal["qloguniform"] = "qloguniform"
    q: float

    def __init__(self, min_value: float | None = None, max_value: float | None = None, q: float | None = None,
                 **data: Any):
        super().__init__(min_value, max_value, **({"q": q} if q is not None else {}), **data)

    def problems(self) -> list[str]:
        out = super().problems()
        if not out and self.max_value > MAX_EXPONENT:
            out.append(f"'max_value' is an exponent; exp({self.max_value}) overflows a float: use at most "
                       f"{MAX_EXPONENT:.2f}")
        return out + self._q_problems()

    def transform_uniform(self, x: float) -> Any:
        return self.quantize(math.exp(x))


class _Gaussian(SweepDistribution):
    mu: float
    sigma: float

    def __init__(self, mu: float | None = None, sigma: float | None = None, **data: Any):
        given = {k: v for k, v in (("mu", mu), ("sigma", sigma)) if v is not None}
        super().__init__(**given, **data)

    def problems(self) -> list[str]:
        out = []
        if not math.isfinite(self.mu):
            out.append("'mu' must be finite")
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            out.append(f"'sigma' must be > 0; got {self.sigma}")
        return out

    def normal_value(self, u: float) -> float:
        """The normal(mu, sigma) value at cumulative probability ``u`` (0 < u < 1)."""
        from statistics import NormalDist

        u = min(max(u, 1e-12), 1 - 1e-12)
        return NormalDist(self.mu, self.sigma).inv_cdf(u)

    def transform_quantile(self, u: float) -> Any:
        return self.normal_value(u)

    def representative(self) -> Any:
        return self.transform_quantile(0.5)


class Normal(_Gaussian):
    """``{type: normal, mu, sigma}``: normally distributed with mean ``mu`` and standard deviation ``sigma``."""

    type: Literal["normal"] = "normal"


class LogNormal(_Gaussian):
    """``{type: lognormal, mu, sigma}``: ``exp(normal(mu, sigma))``."""

    type: Literal["lognormal"] = "lognormal"

    def problems(self) -> list[str]:
        out = super().problems()
        if not out and self.mu > MAX_EXPONENT:
            out.append(f"'mu' is an exponent; exp({self.mu}) overflows a float")
        return out

    def transform_quantile(self, u: float) -> Any:
        return math.exp(min(self.normal_value(u), MAX_EXPONENT))


class QNormal(_Quantized, _Gaussian):
    """``{type: qnormal, mu, sigma, q}``: ``round(normal(mu, sigma) / q) * q``."""

    type: Literal["qnormal"] = "qnormal"
    q: float

    def __init__(self, mu: float | None = None, sigma: float | None = None, q: float | None = None, **data: Any):
        super().__init__(mu, sigma, **({"q": q} if q is not None else {}), **data)

    def problems(self) -> list[str]:
        return super().problems() + self._q_problems()

    def transform_quantile(self, u: float) -> Any:
        return self.quantize(self.normal_value(u))


class QLogNormal(_Quantized, _Gaussian):
    """``{type: qlognormal, mu, sigma, q}``: ``round(exp(normal(mu, sigma)) / q) * q``."""

    type: Literal["qlognormal"] = "qlognormal"
    q: float

    def __init__(self, mu: float | None = None, sigma: float | None = None, q: float | None = None, **data: Any):
        super().__init__(mu, sigma, **({"q": q} if q is not None else {}), **data)

    def problems(self) -> list[str]:
        out = super().problems()
        if not out and self.mu > MAX_EXPONENT:
            out.append(f"'mu' is an exponent; exp({self.mu}) overflows a float")
        return out + self._q_problems()

    def transform_quantile(self, u: float) -> Any:
        return self.quantize(math.exp(min(self.normal_value(u), MAX_EXPONENT)))


DISTRIBUTIONS: dict[str, type[SweepDistribution]] = {
    cls.model_fields["type"].default: cls
    for cls in (Choice, RandInt, Uniform, LogUniform, QUniform, QLogUniform, Normal, LogNormal, QNormal, QLogNormal)
}
AnyDistribution = Annotated[
    Union[Choice, RandInt, Uniform, LogUniform, QUniform, QLogUniform, Normal, LogNormal, QNormal, QLogNormal],
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- sampling, objective


class SamplingAlgorithm(Spec):
    """``sampling_algorithm``: ``random`` (``seed``, ``rule: random|sobol``), ``grid`` or ``bayesian``.

    A plain string (``sampling_algorithm: random``) is the same as ``{type: random}``. Optuna samplers
    implement them: ``RandomSampler``, ``QMCSampler(qmc_type="sobol")``, ``GridSampler``, ``TPESampler``.
    """

    type: Literal["random", "grid", "bayesian"]
    seed: int | None = None
    rule: Literal["random", "sobol"] = "random"
    logbase: Any = None  # Azure's random sampling accepts it; not used

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"type": data}
        if isinstance(data, dict):
            data = dict(data)
            if isinstance(data.get("type"), str):
                data["type"] = data["type"].lower()
            if isinstance(data.get("rule"), str):
                data["rule"] = data["rule"].lower()
        return data


class Objective(Spec):
    """``objective: {goal: maximize|minimize, primary_metric: NAME}`` (goal is case-insensitive)."""

    goal: Literal["maximize", "minimize"]
    primary_metric: str = Field(min_length=1)

    @field_validator("goal", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


# ------------------------------------------------------------------------- early termination


class EarlyTerminationPolicy(Spec):
    """Base of the early-termination policies (``early_termination: {type: ...}``).

    Attributes:
        evaluation_interval: Apply the policy every this many reports of the primary metric (0 means 1).
        delay_evaluation: Do not apply it before this many reports.

    See https://learn.microsoft.com/azure/machine-learning/how-to-tune-hyperparameters#early-termination
    and :mod:`prefect_ml.sweep.policies` for the exact rules.
    """

    type: str
    evaluation_interval: int = Field(default=0, ge=0)
    delay_evaluation: int = Field(default=0, ge=0)

    def __init__(self, **data: Any):
        super().__init__(**data)


class BanditPolicy(EarlyTerminationPolicy):
    """``{type: bandit, slack_factor | slack_amount, evaluation_interval, delay_evaluation}``."""

    type: Literal["bandit"] = "bandit"
    slack_factor: float | None = Field(default=None, ge=0)
    slack_amount: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_slack(self) -> BanditPolicy:
        if bool(self.slack_factor) == bool(self.slack_amount):
            raise ValueError("give exactly one of slack_factor or slack_amount (> 0)")
        return self


class MedianStoppingPolicy(EarlyTerminationPolicy):
    """``{type: median_stopping, evaluation_interval, delay_evaluation}``."""

    type: Literal["median_stopping"] = "median_stopping"


class TruncationSelectionPolicy(EarlyTerminationPolicy):
    """``{type: truncation_selection, truncation_percentage, evaluation_interval, delay_evaluation,
    exclude_finished_jobs}``."""

    type: Literal["truncation_selection"] = "truncation_selection"
    truncation_percentage: int = Field(default=0, ge=1, le=99)
    exclude_finished_jobs: bool = False


class AsyncSuccessiveHalvingPolicy(EarlyTerminationPolicy):
    """``{type: asha, min_resource, reduction_factor}``: asynchronous successive halving (not in Azure).

    Rungs sit at ``min_resource * reduction_factor**k`` reports (k = 0, 1, ...); a trial reaching a rung
    continues only if its value there is in the top ``1/reduction_factor`` of the values recorded at that
    rung so far (Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020).
    """

    type: Literal["asha"] = "asha"
    min_resource: int = Field(default=1, ge=1)
    reduction_factor: int = Field(default=3, ge=2)


ASHAPolicy = AsyncSuccessiveHalvingPolicy
AnyPolicy = Annotated[
    Union[BanditPolicy, MedianStoppingPolicy, TruncationSelectionPolicy, AsyncSuccessiveHalvingPolicy],
    Field(discriminator="type"),
]
POLICY_TYPES = ("bandit", "median_stopping", "truncation_selection", "asha")


class SweepLimits(Spec):
    """``limits`` of a sweep job.

    Attributes:
        max_total_trials: Trials to run at most (default 1000, Azure's default); grid: at most the grid size.
        max_concurrent_trials: Trials running at once (default: ``max_total_trials``, as Azure).
        timeout: Seconds the whole sweep may run; running trials are cancelled at the limit.
        trial_timeout: Seconds one trial may run; its process group is killed at the limit.
    """

    max_total_trials: int = Field(default=1000, ge=1)
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    timeout: int | None = Field(default=None, gt=0)
    trial_timeout: int | None = Field(default=None, gt=0)

    def concurrency(self) -> int:
        return min(self.max_concurrent_trials or self.max_total_trials, self.max_total_trials)


# ---------------------------------------------------------------------------------- the job


class SweepJob(JobSpec):
    """A sweep job: run ``trial`` with configurations drawn from ``search_space``.

    Implements the ``sweepJob`` schema of https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-sweep.
    Build one with :func:`prefect_ml.specs.load_job` or ``command(...).sweep(...)``.

    Attributes:
        trial: The trial as a command-job mapping (``command``, ``code``, ``environment``, ``inputs``...);
            its command refers to sampled values as ``${{search_space.NAME}}`` (or ``${{inputs.NAME}}``).
        inputs: Fixed inputs of every trial.
        search_space: Parameter name -> distribution.
        base_path: Folder the trial's relative paths resolve against.
    """

    type: Literal["sweep"] = "sweep"
    trial: dict[str, Any]
    inputs: dict[str, Input] = Field(default_factory=dict)
    outputs: dict[str, Output] = Field(default_factory=dict)
    search_space: dict[str, AnyDistribution]
    sampling_algorithm: SamplingAlgorithm = Field(default_factory=lambda: SamplingAlgorithm(type="random"))
    objective: Objective
    early_termination: AnyPolicy | None = None
    limits: SweepLimits = Field(default_factory=SweepLimits)
    identity: dict[str, Any] | None = None
    queue_settings: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None

    @field_validator("inputs", "outputs", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("limits", mode="before")
    @classmethod
    def _none_limits(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("name", "display_name", "experiment_name", "compute", mode="before")
    @classmethod
    def _scalar_to_str(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @field_validator("search_space", mode="before")
    @classmethod
    def _lower_types(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({**v, "type": v["type"].lower()} if isinstance(v, dict) and isinstance(v.get("type"), str)
                        else v) for k, v in value.items()}
        return value

    def __init__(self, **data: Any):
        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise ValidationError(translate_errors(exc, strip_tags=_STRIP_TAGS), title="Invalid sweep job") from None

    # -- helpers -------------------------------------------------------------------------------

    @property
    def goal(self) -> str:
        return self.objective.goal

    @property
    def primary_metric(self) -> str:
        return self.objective.primary_metric

    @property
    def is_function_trial(self) -> bool:
        """Whether the trial is a Python function (``trial: {function: MODULE:NAME}``), run as a Prefect task."""
        return isinstance(self.trial.get("function"), str)

    def trial_arguments(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments of a function trial: fixed literal ``inputs`` then the sampled ``values``."""
        out: dict[str, Any] = {}
        for key, inp in self.inputs.items():
            value = getattr(inp, "default", None) if getattr(inp, "path", None) is None else inp.path
            out[key] = value
        out.update(values)
        return out

    def trial_job(self, values: Mapping[str, Any], *, name: str | None = None, tags: Mapping[str, str] | None = None,
                  timeout: int | None = None):
        """The command job of one trial: ``values`` (parameter -> sampled value) become literal inputs.

        ``${{search_space.NAME}}`` in the trial's command is rewritten to ``${{inputs.NAME}}``.

        Raises:
            ValidationError: The trial is not a valid command job (problems prefixed with ``trial.``).
        """
        from prefect_ml.specs.loader import parse_command

        data = dict(self.trial)
        data.pop("type", None)
        data.pop("$schema", None)
        for key in ("name", "display_name", "is_deterministic", "version", "outputs_"):
            data.pop(key, None)
        if isinstance(data.get("command"), str):
            data["command"] = _SEARCH_SPACE_REF.sub(lambda m: "${{inputs.%s}}" % m.group(1), data["command"])
        inputs = {}
        for key, inp in (data.get("inputs") or {}).items():  # a component's input declarations
            inputs[key] = inp
        for key, inp in self.inputs.items():
            inputs[key] = inp.to_yaml()
        for key, value in values.items():
            inputs[key] = value
        data["inputs"] = inputs
        if self.outputs:
            data["outputs"] = {**(data.get("outputs") or {}), **{k: v.to_yaml() for k, v in self.outputs.items()}}
        data["type"] = "command"
        data["compute"] = None
        data["experiment_name"] = self.experiment_name or data.get("experiment_name")
        data["tags"] = {**(data.get("tags") or {}), **dict(tags or {})}
        if timeout:
            data["limits"] = {**(data.get("limits") or {}), "timeout": timeout}
        if name:
            data["name"] = name
        data = {k: v for k, v in data.items() if v is not None}
        try:
            return parse_command(data, base_path=self.base_path, source_file=None, file=self.source_file, problems=[])
        except ValidationError as exc:
            raise ValidationError([Problem(f"trial.{p.field}".rstrip("."), p.message, p.value, p.file)
                                   for p in exc.problems], file=self.source_file, title="Invalid sweep trial") from None

    def to_yaml_dict(self) -> dict[str, Any]:
        """The job as an Azure-style mapping (no prefect-ml bookkeeping)."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True,
                               exclude={"base_path", "source_file", "warnings", "inputs", "outputs"})
        if self.inputs:
            data["inputs"] = {k: v.to_yaml() for k, v in self.inputs.items()}
        return {k: v for k, v in data.items() if v not in ({}, [], None)}


_STRIP_TAGS = {"early_termination": set(POLICY_TYPES)}


# ------------------------------------------------------------------------------- validation


def _load_trial(trial: Any, base_path: str | None, file: str | None, problems: list[Problem]) -> Any:
    """``trial: file:component.yml`` (or a path) -> the component mapping; inline mappings unchanged."""
    if not isinstance(trial, str):
        return trial
    ref = trial[5:] if trial.startswith("file:") else trial
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_path:
        path = Path(base_path) / path
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        problems.append(Problem("trial", f"cannot read the trial component file {path}: {exc}", trial, file))
        return None
    if not isinstance(data, dict):
        problems.append(Problem("trial", f"the trial component file {path} is not a mapping", trial, file))
        return None
    if data.get("code") and not Path(str(data["code"])).is_absolute() and ":" not in str(data["code"])[:6]:
        data["code"] = str((path.parent / str(data["code"])).resolve())
    return data


def _space_problems(raw: Any, file: str | None) -> tuple[dict[str, Any], list[Problem]]:
    """Validate each search-space entry on its own so every problem names its parameter."""
    problems: list[Problem] = []
    valid: dict[str, Any] = {}
    if not isinstance(raw, Mapping) or not raw:
        problems.append(Problem("search_space", "must be a non-empty mapping of parameter name -> distribution "
                                "({type: choice|randint|uniform|loguniform|quniform|qloguniform|normal|lognormal|"
                                "qnormal|qlognormal, ...})", raw, file))
        return valid, problems
    for name, spec in raw.items():
        field = f"search_space.{name}"
        if not isinstance(spec, Mapping) or not isinstance(spec.get("type"), str):
            problems.append(Problem(field, "must be a mapping with a 'type' (one of " + ", ".join(DISTRIBUTIONS)
                                    + ")", spec, file))
            continue
        kind = spec["type"].lower()
        cls = DISTRIBUTIONS.get(kind)
        if cls is None:
            problems.append(Problem(f"{field}.type", f"unknown distribution{suggest(kind, list(DISTRIBUTIONS))}; "
                                    "one of " + ", ".join(DISTRIBUTIONS), spec["type"], file))
            continue
        try:
            dist = cls.model_validate({**spec, "type": kind})
        except PydanticValidationError as exc:
            for p in translate_errors(exc, file=file):
                problems.append(Problem(f"{field}.{p.field}".rstrip("."), p.message, p.value, file))
            continue
        except ValidationError as exc:
            problems += [Problem(f"{field}.{p.field}".rstrip("."), p.message, p.value, file) for p in exc.problems]
            continue
        issues = dist.problems()
        problems += [Problem(field, message, spec, file) for message in issues]
        if not issues:
            valid[str(name)] = dist
    return valid, problems


def sweep_problems(job: SweepJob, *, file: str | None = None) -> list[Problem]:
    """Cross-field problems: grid/bayesian rules, ``${{search_space.X}}`` references, the trial itself."""
    problems: list[Problem] = []
    algorithm = job.sampling_algorithm.type
    if algorithm == "grid":
        bad = [n for n, d in job.search_space.items() if not isinstance(d, Choice)]
        if bad:
            problems.append(Problem("sampling_algorithm", "grid sampling needs a search space of choice parameters "
                                    f"only; not choice: {', '.join(bad)}. Use random or bayesian sampling", "grid",
                                    file))
    if algorithm == "bayesian" and job.early_termination is not None:
        problems.append(Problem("early_termination", "bayesian sampling does not support early termination (as in "
                                "Azure ML); remove early_termination or use random sampling",
                                job.early_termination.type, file))
    if job.sampling_algorithm.rule == "sobol" and algorithm != "random":
        problems.append(Problem("sampling_algorithm.rule", "'sobol' is a rule of random sampling only", "sobol", file))
    if job.is_function_trial:
        return problems + _function_problems(job, file)
    command = job.trial.get("command")
    if not isinstance(command, str) or not command.strip():
        problems.append(Problem("trial.command", "the trial needs a command", command, file))
        return problems
    for ref in _SEARCH_SPACE_REF.findall(command):
        if ref not in job.search_space:
            problems.append(Problem("trial.command", f"refers to search_space.{ref}, which the search space does not "
                                    f"define (parameters: {', '.join(job.search_space)})", ref, file))
    unused = [n for n in job.search_space if f"search_space.{n}" not in command.replace(" ", "")
              and f"inputs.{n}" not in command.replace(" ", "")]
    if unused:
        job.warnings.append("search-space parameters not used by the trial's command: " + ", ".join(unused))
    if problems:
        return problems
    try:
        job.trial_job({n: d.representative() for n, d in job.search_space.items()})
    except ValidationError as exc:
        problems += [Problem(p.field, p.message, p.value, file) for p in exc.problems]
    return problems


def _function_problems(job: SweepJob, file: str | None) -> list[Problem]:
    """A function trial (``trial: {function: MODULE:NAME, code: FOLDER}``) must import and accept the parameters."""
    import inspect

    from prefect_ml.sweep.function_trials import load_function

    reference = job.trial["function"]
    extra = sorted(set(job.trial) - {"function", "code", "type"})
    if extra:
        return [Problem("trial", "a function trial takes only 'function' and 'code'; unexpected: " + ", ".join(extra),
                        extra, file)]
    if ":" not in reference:
        return [Problem("trial.function", "give the function as MODULE:NAME (e.g. train:train_model)", reference,
                        file)]
    code = job.trial.get("code")
    if code and not Path(str(code)).is_absolute() and job.base_path:
        code = str((Path(job.base_path) / str(code)).resolve())
        job.trial["code"] = code
    try:
        fn = load_function(reference, code)
    except (ImportError, AttributeError) as exc:
        return [Problem("trial.function", f"cannot import it ({type(exc).__name__}: {exc}); check the name and "
                        "trial.code (the folder it is imported from)", reference, file)]
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    takes_any = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    unknown = [n for n in (*job.search_space, *job.inputs) if n not in signature.parameters and not takes_any]
    if unknown:
        return [Problem("trial.function", f"{reference} has no parameter named {', '.join(unknown)} (parameters: "
                        f"{', '.join(signature.parameters) or 'none'})", reference, file)]
    return []


def parse(data: dict[str, Any], *, base_path: Any, source_file: Any, file: str | None,
          problems: list[Problem]) -> SweepJob:
    """Validate the mapping of a sweep job (``type: sweep``); see :mod:`prefect_ml.job_kinds`.

    Raises:
        ValidationError: Every problem at once; bad search-space entries name their parameter
            (``search_space.lr: 'min_value' (0.1) must be < 'max_value' (0.01)``).
    """
    data = dict(data)
    if base_path is not None:
        data["base_path"] = str(Path(base_path).expanduser().resolve())
    if source_file is not None:
        data["source_file"] = str(Path(source_file).expanduser().resolve())
    if "trial" not in data:
        problems.append(Problem("trial", "a sweep job needs a 'trial' (a command job mapping or file:component.yml)",
                                None, file))
    else:
        data["trial"] = _load_trial(data["trial"], data.get("base_path"), file, problems)
    space, space_problems = _space_problems(data.get("search_space"), file)
    problems += space_problems
    rest = {k: v for k, v in data.items() if k != "search_space"}
    job = None
    try:
        job = SweepJob.model_validate({**rest, "search_space": space or {"_": {"type": "choice", "values": [0]}}})
    except PydanticValidationError as exc:
        problems += translate_errors(exc, file=file, strip_tags=_STRIP_TAGS)
    except ValidationError as exc:
        problems += [Problem(p.field, p.message, p.value, file) for p in exc.problems]
    if job is not None and not space_problems and space:
        problems += sweep_problems(job, file=file)
    if problems:
        raise ValidationError(problems, file=file, title=f"Invalid sweep job {file}" if file else "Invalid sweep job")
    assert job is not None
    return job


# ------------------------------------------------------------------------------------- SDK


def split_search_space(inputs: Mapping[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, SweepDistribution]]:
    """Split ``command(inputs=...)`` into plain inputs and distributions.

    A distribution-valued input keeps a placeholder literal (a value inside its space) so that the
    command job validates; :meth:`CommandJob.sweep` replaces it by the sampled values.
    """
    if inputs is None:
        return None, {}
    plain: dict[str, Any] = {}
    space: dict[str, SweepDistribution] = {}
    for key, value in inputs.items():
        if isinstance(value, SweepDistribution):
            issues = value.problems()
            if issues:
                raise ValidationError([Problem(f"inputs.{key}", m, value.to_yaml()) for m in issues])
            space[key] = value
            plain[key] = value.representative()
        else:
            plain[key] = value
    return plain, space


def sweep_from_command(job, *, primary_metric: str, goal: str, sampling_algorithm: Any = "random",
                       compute: str | None = None, search_space: Mapping[str, SweepDistribution] | None = None,
                       max_total_trials: int | None = None, max_concurrent_trials: int | None = None,
                       timeout: int | None = None, trial_timeout: int | None = None,
                       early_termination_policy: EarlyTerminationPolicy | None = None,
                       name: str | None = None, display_name: str | None = None,
                       experiment_name: str | None = None, description: str | None = None,
                       tags: Mapping[str, Any] | None = None) -> SweepJob:
    """A sweep job over ``job``'s distribution-valued inputs (Azure's ``CommandJob.sweep``).

    Args:
        job: A :class:`~prefect_ml.specs.CommandJob` whose inputs include distributions
            (``command(..., inputs={"lr": Uniform(0.001, 0.1)})`` or ``job(lr=Uniform(...))``).
        primary_metric: Metric name the trials log with ``mlflow.log_metric``.
        goal: ``Maximize`` or ``Minimize`` (case-insensitive).
        sampling_algorithm: ``random``, ``grid``, ``bayesian`` or a mapping / :class:`SamplingAlgorithm`.
        compute: Compute target of the trials (default: the job's).
        search_space: More parameters (added to those taken from the inputs).
        max_total_trials, max_concurrent_trials, timeout, trial_timeout: See :class:`SweepLimits` (seconds).
        early_termination_policy: A policy object (``BanditPolicy(...)``...).

    Returns:
        The validated :class:`SweepJob`.

    Raises:
        ValidationError: No search space, or any problem of the resulting sweep.
    """
    space = {**dict(getattr(job, "_search_space", {}) or {}), **dict(search_space or {})}
    if not space:
        raise ValidationError([Problem("search_space", "the job has no input given as a distribution (e.g. "
                                       "inputs={'lr': Uniform(0.001, 0.1)}) and no search_space was passed")])
    trial = job.to_yaml_dict()
    for key in ("type", "$schema", "name", "display_name", "experiment_name", "description", "tags", "compute",
                "inputs", "outputs"):
        trial.pop(key, None)
    fixed = {k: v.to_yaml() for k, v in job.inputs.items() if k not in space}
    limits = {k: v for k, v in (("max_total_trials", max_total_trials), ("max_concurrent_trials", max_concurrent_trials),
                                ("timeout", timeout), ("trial_timeout", trial_timeout)) if v is not None}
    data: dict[str, Any] = {
        "type": "sweep", "trial": trial, "inputs": fixed,
        "outputs": {k: v.to_yaml() for k, v in job.outputs.items()},
        "search_space": {k: v.to_yaml() for k, v in space.items()},
        "sampling_algorithm": (sampling_algorithm.model_dump(exclude_none=True)
                               if isinstance(sampling_algorithm, SamplingAlgorithm) else sampling_algorithm),
        "objective": {"goal": goal, "primary_metric": primary_metric},
        "limits": limits, "compute": compute if compute is not None else job.compute,
        "name": name or job.name, "display_name": display_name or job.display_name,
        "experiment_name": experiment_name or job.experiment_name,
        "description": description or job.description, "tags": dict(tags or job.tags or {}),
    }
    if early_termination_policy is not None:
        data["early_termination"] = early_termination_policy.model_dump(exclude_none=True)
    data = {k: v for k, v in data.items() if v is not None}
    return parse(data, base_path=job.base_path, source_file=None, file=None, problems=[])


def sweep_from_function(trial: Any, *, search_space: Mapping[str, Any], primary_metric: str, goal: str,
                        inputs: Mapping[str, Any] | None = None, sampling_algorithm: Any = "random",
                        compute: str | None = None, max_total_trials: int | None = None,
                        max_concurrent_trials: int | None = None, timeout: int | None = None,
                        trial_timeout: int | None = None,
                        early_termination_policy: EarlyTerminationPolicy | None = None, name: str | None = None,
                        display_name: str | None = None, experiment_name: str | None = None,
                        description: str | None = None, tags: Mapping[str, Any] | None = None) -> SweepJob:
    """A sweep whose trial is a Python function (a *function trial*, see :mod:`prefect_ml.sweep.function_trials`).

    Each trial calls ``trial(**inputs, **sampled)`` in a Prefect task on the compute's task runner, with the
    trial's MLflow child run active in its thread: ``mlflow.log_metric(primary_metric, value, step=...)``
    inside the function feeds the early-termination policy; a numeric return value is logged as the
    primary metric when the function did not log it. A stopped trial ends at its next log call.

    Args:
        trial: A module-level function or a :func:`prefect_ml.command_component` (its function is called).
        search_space: Parameter name -> distribution (``Uniform(0, 1)``...) or its YAML mapping.
        primary_metric: Metric name the function logs (or returns).
        goal: ``Maximize`` or ``Minimize``.
        inputs: Fixed keyword arguments (literals).
        sampling_algorithm, compute, max_total_trials, max_concurrent_trials, timeout, trial_timeout,
            early_termination_policy, name, display_name, experiment_name, description, tags:
            as for :func:`sweep_from_command` (seconds for the limits).

    Returns:
        The validated :class:`SweepJob` (``trial: {function: MODULE:NAME, code: FOLDER}``).

    Raises:
        ValidationError: The function cannot be imported, does not take the parameters, or any problem
            of the sweep.
    """
    from prefect_ml.sweep.function_trials import function_reference

    try:
        reference, code = function_reference(trial)
    except (TypeError, ValueError) as exc:
        raise ValidationError([Problem("trial", str(exc), repr(trial))], title="Invalid sweep trial") from None
    limits = {k: v for k, v in (("max_total_trials", max_total_trials), ("max_concurrent_trials", max_concurrent_trials),
                                ("timeout", timeout), ("trial_timeout", trial_timeout)) if v is not None}
    data: dict[str, Any] = {
        "type": "sweep", "trial": {"function": reference, "code": code}, "inputs": dict(inputs or {}),
        "search_space": {k: v.to_yaml() if isinstance(v, SweepDistribution) else v for k, v in search_space.items()},
        "sampling_algorithm": (sampling_algorithm.model_dump(exclude_none=True)
                               if isinstance(sampling_algorithm, SamplingAlgorithm) else sampling_algorithm),
        "objective": {"goal": goal, "primary_metric": primary_metric}, "limits": limits, "compute": compute,
        "name": name, "display_name": display_name, "experiment_name": experiment_name,
        "description": description, "tags": dict(tags or {}),
    }
    if early_termination_policy is not None:
        data["early_termination"] = early_termination_policy.model_dump(exclude_none=True)
    data = {k: v for k, v in data.items() if v is not None}
    return parse(data, base_path=code, source_file=None, file=None, problems=[])


def _set_limits(self: SweepJob, *, max_total_trials: int | None = None, max_concurrent_trials: int | None = None,
                timeout: int | None = None, trial_timeout: int | None = None) -> None:
    """Set ``limits`` (Azure's ``SweepJob.set_limits``); None leaves a limit unchanged.

    Raises:
        ValidationError: A limit is not a positive integer.
    """
    current = self.limits.model_dump()
    current.update({k: v for k, v in (("max_total_trials", max_total_trials),
                                      ("max_concurrent_trials", max_concurrent_trials),
                                      ("timeout", timeout), ("trial_timeout", trial_timeout)) if v is not None})
    try:
        self.limits = SweepLimits.model_validate(current)
    except PydanticValidationError as exc:
        raise ValidationError(translate_errors(exc, prefix="limits")) from None


def _set_objective(self: SweepJob, *, goal: str | None = None, primary_metric: str | None = None) -> None:
    """Set the objective (Azure's ``SweepJob.set_objective``)."""
    data = self.objective.model_dump()
    data.update({k: v for k, v in (("goal", goal), ("primary_metric", primary_metric)) if v is not None})
    try:
        self.objective = Objective.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(translate_errors(exc, prefix="objective")) from None


SweepJob.set_limits = _set_limits  # type: ignore[attr-defined]
SweepJob.set_objective = _set_objective  # type: ignore[attr-defined]
