"""Job inputs and outputs (``inputs:`` / ``outputs:`` of Azure's command job).

Implements the input/output part of the schema documented at
https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command
(see "Job inputs" and "Job outputs").
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import model_validator

from prefect_ml.exceptions import Problem, ValidationError
from prefect_ml.specs._base import Spec, SpecProblems, translate_errors

#: Input types whose value is a path (a file, a folder, a table or a model).
DATA_INPUT_TYPES: frozenset[str] = frozenset(
    {"uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model"})
#: Model asset types (usable as inputs and outputs).
MODEL_TYPES: frozenset[str] = frozenset({"mlflow_model", "custom_model", "triton_model"})
#: Input types whose value is a literal.
LITERAL_INPUT_TYPES: frozenset[str] = frozenset({"integer", "number", "string", "boolean"})

InputType = Literal["uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model",
                    "integer", "number", "string", "boolean"]
InputMode = Literal["ro_mount", "download", "direct", "rw_mount", "eval_mount", "eval_download"]
OutputType = Literal["uri_folder", "uri_file", "mlflow_model", "custom_model", "triton_model", "mltable"]
OutputMode = Literal["rw_mount", "upload", "direct"]

_MODES_BY_TYPE: dict[str, frozenset[str]] = {
    "uri_file": frozenset({"ro_mount", "rw_mount", "download", "direct"}),
    "uri_folder": frozenset({"ro_mount", "rw_mount", "download", "direct"}),
    "mltable": frozenset({"ro_mount", "download", "direct", "eval_mount", "eval_download"}),
    "mlflow_model": frozenset({"ro_mount", "download", "direct"}),
    "custom_model": frozenset({"ro_mount", "download", "direct"}),
    "triton_model": frozenset({"ro_mount", "download", "direct"}),
}


def literal_type(value: Any) -> str | None:
    """Return the input type of a literal YAML/Python value (``bool`` before ``int``), or None."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def coerce_value(type_: str, value: Any) -> Any:
    """Coerce ``value`` to the Python type of a literal input type.

    Args:
        type_: ``integer``, ``number``, ``string`` or ``boolean`` (other types return ``value`` unchanged).
        value: The value given (YAML scalar, Python literal or string from the command line).

    Returns:
        The coerced value.

    Raises:
        ValueError: The value cannot represent that type (``"abc"`` for an integer, ``3`` for a boolean).
    """
    if value is None or type_ not in LITERAL_INPUT_TYPES:
        return value
    if type_ == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float, str)):
            return str(value)
        raise ValueError("must be a string")
    if type_ == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError("must be true or false")
    if isinstance(value, bool):
        raise ValueError(f"must be {'an integer' if type_ == 'integer' else 'a number'}, not a boolean")
    if type_ == "integer":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError("must be an integer")
    # number
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
    raise ValueError("must be a number")


class Input(Spec):
    """One job input: a data path (file, folder, table, model) or a literal value.

    Implements the "Job inputs" schema of
    https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command.
    A literal YAML value is normalised: ``lr: 0.01`` is ``Input(type="number", default=0.01)``,
    an ``int`` an ``integer``, a ``bool`` a ``boolean`` and a ``str`` a ``string`` (so
    ``iris_csv: https://...`` is a string literal, as in Azure's ``hello-iris-literal.yml``).
    A mapping without ``type`` is a ``uri_folder`` when it has a ``path``.

    Attributes:
        type: Input type, one of :data:`DATA_INPUT_TYPES` or ``integer``, ``number``, ``string``, ``boolean``.
        path: Location of a data input: local path (relative to the job file), URL, ``azureml:`` reference.
        mode: How a data input is delivered (``ro_mount``, ``download``, ...); None for the default.
        default: Value of a literal input.
        optional: Whether the job can run without a value (use it inside ``$[[ ... ]]`` in the command).
        min: Smallest allowed value of an ``integer``/``number`` input.
        max: Largest allowed value of an ``integer``/``number`` input.
        enum: Allowed values of a literal input.
        description: Free text.

    Raises:
        ValidationError: On direct construction with invalid fields (all problems at once).
    """

    type: InputType
    path: str | None = None
    mode: InputMode | None = None
    default: Any = None
    optional: bool = False
    min: float | int | None = None
    max: float | int | None = None
    enum: list[Any] | None = None
    description: str | None = None

    def __init__(self, **data: Any):
        from pydantic import ValidationError as PydanticValidationError

        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise ValidationError(translate_errors(exc), title="Invalid input") from None

    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, Input) or data is None:
            return data
        if not isinstance(data, dict):
            kind = literal_type(data)
            if kind is None:
                raise SpecProblems([Problem(
                    "", "must be a literal (number, string, boolean) or a mapping with 'type' and 'path'/'default'",
                    data)])
            return {"type": kind, "default": data}
        if "type" not in data:
            if data.get("path") is not None:
                data = {**data, "type": "uri_folder"}
            elif literal_type(data.get("default")) is not None:
                data = {**data, "type": literal_type(data["default"])}
        return data

    @model_validator(mode="after")
    def _check(self) -> Input:
        problems: list[Problem] = []
        if self.type in DATA_INPUT_TYPES:
            if self.mode is not None and self.mode not in _MODES_BY_TYPE[self.type]:
                problems.append(Problem("mode", f"is not valid for an input of type {self.type}; use one of "
                                        + ", ".join(sorted(_MODES_BY_TYPE[self.type])), self.mode))
            for name in ("min", "max", "enum"):
                if getattr(self, name) is not None:
                    problems.append(Problem(name, f"only applies to literal inputs, not {self.type}",
                                            getattr(self, name)))
            if self.path is None and self.default is not None and isinstance(self.default, str):
                self.path = self.default  # data inputs keep their value in path
                self.default = None
        else:
            if self.mode is not None:
                problems.append(Problem("mode", f"only applies to data inputs, not {self.type}", self.mode))
            if self.path is not None:
                problems.append(Problem("path", f"only applies to data inputs; a {self.type} input takes "
                                        "'default:'", self.path))
            if self.type not in ("integer", "number") and (self.min is not None or self.max is not None):
                problems.append(Problem("min" if self.min is not None else "max",
                                        f"only applies to integer and number inputs, not {self.type}"))
            if self.enum is not None:
                try:
                    self.enum = [coerce_value(self.type, v) for v in self.enum]
                except ValueError as exc:
                    problems.append(Problem("enum", f"every value {exc} for an input of type {self.type}", self.enum))
            problems += self.value_problems(self.default, field="default")
            if not problems:
                self.default = coerce_value(self.type, self.default)
        if self.min is not None and self.max is not None and self.min > self.max:
            problems.append(Problem("min", f"is greater than max ({self.max})", self.min))
        if problems:
            raise SpecProblems(problems)
        return self

    def value_problems(self, value: Any, *, field: str = "default") -> list[Problem]:
        """Check a value for this literal input: type, ``min``, ``max`` and ``enum``.

        Args:
            value: The candidate value (None is always accepted here).
            field: Field name used in the returned problems.

        Returns:
            The problems found (empty when the value is acceptable).
        """
        if value is None or self.type not in LITERAL_INPUT_TYPES:
            return []
        try:
            coerced = coerce_value(self.type, value)
        except ValueError as exc:
            return [Problem(field, f"{exc} for an input of type {self.type}", value)]
        problems = []
        if self.min is not None and coerced < self.min:
            problems.append(Problem(field, f"is below min ({self.min})", value))
        if self.max is not None and coerced > self.max:
            problems.append(Problem(field, f"is above max ({self.max})", value))
        if self.enum is not None and coerced not in self.enum:
            problems.append(Problem(field, f"must be one of {', '.join(repr(v) for v in self.enum)}", value))
        return problems

    @property
    def is_data(self) -> bool:
        """Whether this is a data input (its value is :attr:`path`)."""
        return self.type in DATA_INPUT_TYPES

    @property
    def value(self) -> Any:
        """The input's value: :attr:`path` for data inputs, else :attr:`default`."""
        return self.path if self.is_data else self.default

    def with_value(self, value: Any) -> Input:
        """Return a copy with :attr:`value` replaced (``path`` for data inputs, else ``default``).

        Raises:
            ValidationError: The value is invalid for this input.
        """
        data = self.model_dump()
        if isinstance(value, Input):
            return value
        data["path" if self.is_data else "default"] = None if value is None else (
            str(value) if self.is_data else value)
        return Input(**data)

    def to_yaml(self) -> Any:
        """Azure-style YAML value: a bare literal when that is all there is, else a mapping."""
        data = self.model_dump(mode="json", exclude_none=True)
        if not self.optional:
            data.pop("optional", None)
        if set(data) == {"type", "default"} and literal_type(self.default) == self.type:
            return data["default"]
        return data


class Output(Spec):
    """One job output: where the job writes data or a model.

    Implements the "Job outputs" schema of
    https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command.
    A null output (``outputs: {hello_output: }``) is a default ``uri_folder`` output.

    Attributes:
        type: ``uri_folder`` (default), ``uri_file``, ``mltable`` or a model type.
        path: Where to write; None for the default location of the run.
        mode: ``rw_mount``, ``upload`` or ``direct``; None for the default.
        name: Name under which to register the output as an asset.
        version: Version of that asset.
        description: Free text.
    """

    type: OutputType = "uri_folder"
    path: str | None = None
    mode: OutputMode | None = None
    name: str | None = None
    version: str | None = None
    description: str | None = None

    def __init__(self, **data: Any):
        from pydantic import ValidationError as PydanticValidationError

        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise ValidationError(translate_errors(exc), title="Invalid output") from None

    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if data is None:
            return {}
        if isinstance(data, (Output, dict)):
            if isinstance(data, dict) and "version" in data and data["version"] is not None:
                data = {**data, "version": str(data["version"])}
            return data
        raise SpecProblems([Problem("", "must be a mapping (type, path, mode, ...) or empty", data)])

    def to_yaml(self) -> Any:
        """Azure-style YAML value of this output (a mapping without null fields)."""
        return self.model_dump(mode="json", exclude_none=True)
