"""Loading and validating command job files (Azure ML CLI v2 ``commandJob`` YAML).

Implements loading of https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command
files, with every problem of a file reported at once.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from pydantic import ValidationError as PydanticValidationError

from prefect_ml.exceptions import Problem, ValidationError
from prefect_ml.specs._base import suggest, translate_errors
from prefect_ml.specs.inputs import Input
from prefect_ml.specs.job import DISTRIBUTION_TYPES, CommandJob, job_problems

#: Job types of Azure's CLI v2 that are not command jobs.
OTHER_JOB_TYPES = ("sweep", "pipeline", "automl", "parallel", "spark", "import", "data_transfer")
_KEY = re.compile(r"^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$")


def _translate(exc: PydanticValidationError, file: str | None) -> list[Problem]:
    return translate_errors(exc, file=file, strip_tags={"distribution": set(DISTRIBUTION_TYPES)})


def _salvage_inputs(raw: Any) -> dict[str, Input | None]:
    if not isinstance(raw, Mapping):
        return {}
    salvaged: dict[str, Input | None] = {}
    for key, value in raw.items():
        try:
            salvaged[str(key)] = Input.model_validate(value)
        except (PydanticValidationError, ValueError):
            salvaged[str(key)] = None
    return salvaged


def parse_job(data: Mapping[str, Any], *, base_path: str | os.PathLike | None = None,
              source_file: str | os.PathLike | None = None) -> CommandJob:
    """Validate a command job given as a mapping (the parsed YAML of a job file).

    Args:
        data: The job, in the shape of https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command.
        base_path: Folder relative paths are resolved against; None keeps ``data['base_path']`` (if any)
            and skips the code-folder check.
        source_file: The file the mapping came from (recorded on the job and on each problem).

    Returns:
        The validated job.

    Raises:
        ValidationError: Every problem found, at once.
    """
    file = str(source_file) if source_file is not None else None
    return _validate(data, base_path=base_path, source_file=source_file, file=file, problems=[])


def _validate(data: Any, *, base_path: Any, source_file: Any, file: str | None,
              problems: list[Problem]) -> CommandJob:
    if not isinstance(data, Mapping):
        problems.append(Problem("", "a job file must be a mapping (key: value pairs) describing a command job",
                                data if not isinstance(data, str) or len(data) < 80 else data[:80] + "...", file))
        raise ValidationError(problems, file=file)
    data = dict(data)
    job_type = data.get("type", "command")
    if job_type != "command":
        from prefect_ml.job_kinds import KINDS, kind_module

        kind = str(job_type)
        if kind in KINDS:
            return kind_module(kind).parse(data, base_path=base_path, source_file=source_file, file=file,
                                           problems=problems)
        if kind in OTHER_JOB_TYPES:
            message = (f"'{kind}' jobs are not supported by this version of prefect-ml; supported types: "
                       + ", ".join(sorted(KINDS)))
        else:
            message = f"unknown job type{suggest(kind, sorted(KINDS))}; supported types: " + ", ".join(sorted(KINDS))
        raise ValidationError(problems + [Problem("type", message, job_type, file)], file=file)
    return parse_command(data, base_path=base_path, source_file=source_file, file=file, problems=problems)


def parse_command(data: dict[str, Any], *, base_path: Any, source_file: Any, file: str | None,
                  problems: list[Problem]) -> CommandJob:
    """Validate the mapping of a command job (``type: command``); see :mod:`prefect_ml.job_kinds`."""
    if base_path is not None:
        data["base_path"] = str(Path(base_path).expanduser().resolve())
    if source_file is not None:
        data["source_file"] = str(Path(source_file).expanduser().resolve())
    job: CommandJob | None = None
    try:
        job = CommandJob.model_validate(data)
    except PydanticValidationError as exc:
        problems += _translate(exc, file)
    if job is not None:
        problems += job.problems(file=file)
    else:
        outputs = data.get("outputs")
        base = data.get("base_path")
        problems += job_problems(command=data.get("command"), inputs=_salvage_inputs(data.get("inputs")),
                                 outputs=outputs if isinstance(outputs, Mapping) else {}, code=data.get("code"),
                                 base_path=base if isinstance(base, str) else None, file=file)
    if problems:
        raise ValidationError(problems, file=file)
    assert job is not None
    return job


def _set_override(data: dict[str, Any], key: str, value: Any) -> str | None:
    """Set the dotted ``key`` of ``data`` to ``value``; return an error message or None."""
    parts = key.split(".")
    if parts[0] in ("inputs", "outputs") and len(parts) == 2:
        section = data.get(parts[0])
        if section is None:
            section = data[parts[0]] = {}
        if not isinstance(section, dict):
            return f"'{parts[0]}' is not a mapping"
        if parts[1] not in section:
            import difflib

            declared = sorted(section)
            close = difflib.get_close_matches(parts[1], declared, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            return (f"the job declares no {parts[0][:-1]} '{parts[1]}'{hint} "
                    f"(declared: {', '.join(declared) or 'none'})")
        current = section.get(parts[1])
        if parts[0] == "inputs" and isinstance(current, (bool, int, float, str)) and not isinstance(value, dict):
            # A literal keeps its type: `--set inputs.lr=fast` on `lr: 0.1` is an error, not a new string.
            kind = ("boolean" if isinstance(current, bool) else "integer" if isinstance(current, int)
                    else "number" if isinstance(current, float) else "string")
            if kind == "integer" and isinstance(value, float) and not value.is_integer():
                kind = "number"
            section[parts[1]] = {"type": kind, "default": value}
            return None
        if isinstance(current, dict) and not isinstance(value, dict):
            is_data = parts[0] == "outputs" or "path" in current or current.get("type") in (
                "uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model") or (
                "type" not in current and "default" not in current)
            current = dict(current)
            current["path" if is_data else "default"] = (
                str(value) if is_data and value is not None else value)
            section[parts[1]] = current
        else:
            section[parts[1]] = value
        return None
    target = data
    for i, part in enumerate(parts[:-1]):
        nxt = target.get(part)
        if nxt is None:
            nxt = target[part] = {}
        if not isinstance(nxt, dict):
            return f"cannot set '{key}': '{'.'.join(parts[:i + 1])}' is not a mapping (it is {nxt!r})"
        target = nxt
    target[parts[-1]] = value
    return None


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str], *, file: str | None = None
                    ) -> tuple[dict[str, Any], list[Problem]]:
    """Apply ``KEY=VALUE`` overrides (dotted keys, YAML scalar values) to a copy of ``data``.

    ``inputs.NAME=VALUE`` sets the value of an existing input (its ``path`` for data inputs, its
    ``default`` otherwise) or adds a literal input.

    Returns:
        The new mapping and the problems with malformed overrides.
    """
    result = copy.deepcopy(dict(data))
    problems = []
    for override in overrides:
        key, sep, text = str(override).partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            problems.append(Problem("overrides", "malformed override; expected KEY=VALUE with a dotted KEY, "
                                    "e.g. inputs.lr=0.1 or limits.timeout=30", override, file))
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        if text.strip() and value is None and text.strip() not in ("null", "~", "Null", "NULL"):
            value = text
        error = _set_override(result, key, value)
        if error:
            problems.append(Problem("overrides", error, override, file))
    return result, problems


def load_job(path: str | os.PathLike, *, overrides: Sequence[str] = (), name: str | None = None) -> Any:
    """Load, override and validate a job file of any supported ``type`` (see :mod:`prefect_ml.job_kinds`).

    A command job follows https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-command.
    Relative paths in it (``code``, local input paths, ``conda_file``) are resolved against its folder.

    Args:
        path: The YAML file.
        overrides: ``KEY=VALUE`` settings applied before validation: ``inputs.lr=0.1``, ``compute=local``,
            ``limits.timeout=30``, ``environment_variables.FOO=bar``; VALUE is parsed as YAML.
        name: Job name to set (overrides ``name:`` in the file).

    Returns:
        The validated job (a ``CommandJob`` for ``type: command``), with ``base_path`` and ``source_file`` set.

    Raises:
        ValidationError: The file is missing, is not valid YAML or has problems (all reported at once).
    """
    file = str(path)
    source = Path(path).expanduser()
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError([Problem("", f"job file not found: {source.resolve()}", None, file)], file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError([Problem("", f"cannot read job file: {exc}", None, file)], file=file) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"YAML syntax error{where}: {reason}" + (f" ({context})" if context else "")
        raise ValidationError([Problem("", message, None, file)], file=file) from None
    if data is None:
        data = {}
    problems: list[Problem] = []
    if isinstance(data, Mapping):
        data, problems = apply_overrides(data, overrides, file=file)
        if name is not None:
            data["name"] = name
    try:
        return _validate(data, base_path=source.resolve().parent, source_file=source, file=file, problems=problems)
    except ValidationError as exc:
        if not overrides:
            raise
        # Say which problems come from --set rather than from the file.
        keys = {str(o).partition("=")[0].strip(): str(o) for o in overrides}
        marked = []
        for problem in exc.problems:
            origin = next((o for k, o in keys.items() if problem.field == k or problem.field.startswith(k + ".")), None)
            marked.append(Problem(problem.field, problem.message + (f" (from --set {origin})" if origin else ""),
                                  problem.value, problem.file) if origin else problem)
        raise ValidationError(marked, file=exc.file, title=exc.title) from None
