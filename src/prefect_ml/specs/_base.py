"""Shared plumbing of the job specification models: strict base model, problem translation."""

from __future__ import annotations

import difflib
import re
from typing import Any, ClassVar, Iterable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from prefect_ml.exceptions import Problem

#: Reference page of the schema implemented in this package.
AZURE_COMMAND_JOB_REFERENCE = "https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command"


class SpecProblems(ValueError):
    """Raised inside validators to report problems with field paths relative to the model."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.field or '<root>'}: {p.message}" for p in self.problems))


class _Unknown:
    """Marks the value of an unknown key, so that the error can carry a suggestion."""

    def __init__(self, value: Any, known: list[str]):
        self.value = value
        self.known = known

    def __repr__(self) -> str:  # what pydantic shows if it ever prints one
        return repr(self.value)


def suggest(word: str, candidates: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


class Spec(BaseModel):
    """Base of all specification models: unknown fields are errors with a suggestion."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    #: Field names not offered as suggestions for unknown keys.
    _hidden_fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def _normalise(cls, data: Any) -> Any:
        """Turn the accepted shorthand forms of ``data`` into a mapping (override in subclasses)."""
        return data

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, data: Any) -> Any:
        data = cls._normalise(data)
        if isinstance(data, dict):
            accepted: set[str] = set()
            shown: list[str] = []
            for fname, field in cls.model_fields.items():
                accepted.add(fname)
                if field.alias:
                    accepted.add(field.alias)
                if fname not in cls._hidden_fields:
                    shown.append(field.alias or fname)
            unknown = [k for k in data if k not in accepted]
            if unknown:
                data = dict(data)
                for key in unknown:
                    data[key] = _Unknown(data[key], shown)
        return data


def _loc_path(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int) and parts:
            parts[-1] += f"[{item}]"
        else:
            parts.append(str(item))
    return ".".join(parts)


_QUOTED = re.compile(r"'([^']*)'")


def _shown(value: Any) -> Any:
    return value.value if isinstance(value, _Unknown) else value


def translate_errors(error: PydanticValidationError, *, prefix: str = "", file: str | None = None,
                     strip_tags: dict[str, set[str]] | None = None) -> list[Problem]:
    """Translate a pydantic validation error into :class:`Problem` objects.

    Args:
        error: The pydantic error.
        prefix: Dotted path prepended to every field path.
        file: File recorded on each problem.
        strip_tags: ``{field: tags}``: discriminated-union fields whose tag pydantic adds to the location.

    Returns:
        One problem per pydantic error, with a readable message and the offending value.
    """
    problems: list[Problem] = []
    for err in error.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        if strip_tags and len(loc) > 1 and loc[0] in strip_tags and loc[1] in strip_tags[loc[0]]:
            loc = (loc[0],) + loc[2:]
        kind = err.get("type", "")
        ctx = err.get("ctx") or {}
        value = _shown(err.get("input"))
        path = _loc_path(loc)
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        if kind == "value_error" and isinstance(getattr(ctx.get("error"), "problems", None), list):
            # SpecProblems from a validator, or our ValidationError from a nested model's __init__
            for p in ctx["error"].problems:
                field = ".".join(x for x in (path, p.field) if x)
                problems.append(Problem(field=field, message=p.message, value=p.value, file=file))
            continue
        if kind == "extra_forbidden":
            raw = err.get("input")
            known = raw.known if isinstance(raw, _Unknown) else []
            key = str(loc[-1]) if loc else ""
            msg = f"unknown field '{key}'{suggest(key, known)}"
            if known:
                msg += f" (allowed: {', '.join(known)})"
            problems.append(Problem(field=path, message=msg, value=value, file=file))
            continue
        if kind == "literal_error":
            allowed = _QUOTED.findall(str(ctx.get("expected", "")))
            msg = f"must be one of {', '.join(repr(a) for a in allowed)}{suggest(str(value), allowed)}"
        elif kind == "missing":
            msg = "is required"
            value = None
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            allowed = _QUOTED.findall(str(ctx.get("expected_tags", "")))
            tag = ctx.get("tag")
            path = f"{path}.{ctx.get('discriminator', 'type').strip(chr(39))}"
            msg = (f"must be one of {', '.join(repr(a) for a in allowed)}{suggest(str(tag), allowed)}"
                   if kind == "union_tag_invalid" else f"is required (one of {', '.join(repr(a) for a in allowed)})")
            value = tag
        elif kind.startswith("int_"):
            msg = "must be an integer"
        elif kind.startswith("float_"):
            msg = "must be a number"
        elif kind.startswith("bool_"):
            msg = "must be true or false"
        elif kind.startswith("string_"):
            msg = "must be a string"
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            msg = "must be a mapping"
        elif kind == "list_type":
            msg = "must be a list"
        elif kind == "greater_than":
            msg = f"must be greater than {ctx.get('gt')}"
        elif kind == "greater_than_equal":
            msg = f"must be at least {ctx.get('ge')}"
        elif kind == "less_than_equal":
            msg = f"must be at most {ctx.get('le')}"
        elif kind == "value_error":
            msg = str(ctx.get("error", err.get("msg", "")))
        else:
            msg = err.get("msg", "is invalid")
        problems.append(Problem(field=path, message=msg, value=value, file=file))
    return problems


def str_values(value: Any) -> Any:
    """Coerce a mapping's values to strings as Azure does for ``tags`` / ``environment_variables``.

    ``None`` becomes ``{}``, booleans ``"true"``/``"false"``, a ``None`` value ``""``; non-mappings pass through
    (pydantic then reports them).
    """
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): ("" if v is None else ("true" if v is True else "false" if v is False else str(v)))
                for k, v in value.items()}
    return value


class SourcedSpec(Spec):
    """Fields of every specification read from a YAML file (jobs of each type and components).

    Attributes:
        schema_: ``$schema`` (accepted, ignored).
        description: Free text.
        tags: Tags (values coerced to strings).
        base_path: Absolute folder relative paths are resolved against (the file's folder, or cwd).
        source_file: The file, when loaded from one.
        warnings: Notices about accepted but ignored settings (not part of Azure's schema).
    """

    _hidden_fields: ClassVar[frozenset[str]] = frozenset({"base_path", "source_file", "warnings"})

    schema_: str | None = Field(default=None, alias="$schema")
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    base_path: str | None = None
    source_file: str | None = None
    warnings: list[str] = Field(default_factory=list)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_as_strings(cls, value: Any) -> Any:
        return str_values(value)


class JobSpec(SourcedSpec):
    """Identity fields shared by every job type (command, sweep, pipeline, AutoML), as in Azure's job schemas.

    Attributes:
        type: The job type (each subclass narrows it to one literal).
        name: Job (run) name; None to generate one.
        display_name: Name shown in the UI.
        experiment_name: Experiment (MLflow experiment) to record the run under.
        compute: Compute target name (``NAME`` or ``azureml:NAME``).
    """

    type: str
    name: str | None = None
    display_name: str | None = None
    experiment_name: str | None = None
    compute: str | None = None

    @field_validator("name", "display_name", "experiment_name", "compute", mode="before")
    @classmethod
    def _identity_scalars_as_strings(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
