"""Exceptions raised by prefect-ml.

Every error a user can fix is a :class:`PrefectMLError`; those caused by bad input
also subclass :class:`ValueError` so callers that catch the builtin keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable


class PrefectMLError(Exception):
    """Base class of all errors raised by prefect-ml."""


@dataclass(frozen=True)
class Problem:
    """One problem found while validating user input.

    Attributes:
        field: Dotted path of the offending field, e.g. ``inputs.lr.type``.
        message: What is wrong and what was expected, e.g. ``must be one of ...``.
        value: The offending value, as given (``None`` when the field is missing).
        file: The file the value came from, if any.
    """

    field: str
    message: str
    value: Any = None
    file: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{where}{self.field or '<root>'}: {self.message}{shown}"


class ValidationError(PrefectMLError, ValueError):
    """Invalid user input: a job file, a CLI option or an SDK argument.

    Holds every problem found so that all of them can be reported at once.

    Attributes:
        problems: The problems, in the order they were found.
        file: The file being validated, if any.
    """

    def __init__(self, problems: Iterable[Problem], file: str | None = None, title: str | None = None):
        self.problems = list(problems)
        self.file = file
        self.title = title or (f"Invalid job file {file}" if file else "Invalid input")
        lines = [f"{self.title}: {len(self.problems)} problem(s)"]
        lines += [f"  - {p.field or '<root>'}: {p.message}" + ("" if p.value is None else f" (got {p.value!r})")
                  for p in self.problems]
        super().__init__("\n".join(lines))


class NotFoundError(PrefectMLError, LookupError):
    """A named job, data asset, model, datastore or environment does not exist."""


class ConfigurationError(PrefectMLError, ValueError):
    """prefect-ml's own configuration (blocks, environment variables) is invalid or incomplete."""


class MissingDependencyError(PrefectMLError, ImportError):
    """An optional dependency is needed for this feature and is not installed."""
