"""Mapping a job's ``environment`` to a Python interpreter on the local compute.

Rules (local process compute):

- no environment: the interpreter running prefect-ml;
- a name with an ``Environment`` block (``prefect-ml`` saves one per environment name): that block's
  ``python_executable`` and ``environment_variables``;
- Azure's curated environments (``AzureML-*`` names, ``azureml://registries/azureml/...``) and inline
  ``image`` environments: the current interpreter, with a one-line notice, so that Azure's job files
  run unchanged;
- any other reference: an error that says how to configure it.

Building environments from conda files or Dockerfiles is not done here.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from prefect_ml import settings
from prefect_ml.exceptions import ConfigurationError


@dataclass
class ResolvedEnvironment:
    """An interpreter and variables to run a command with.

    Attributes:
        python_executable: Absolute path of the interpreter that ``python`` means in the command.
        bin_dir: Folder to put first on ``PATH`` so that ``python`` and ``python3`` resolve to it.
        environment_variables: Extra variables from the environment's configuration.
        description: Short human-readable description, e.g. ``current interpreter (/usr/bin/python3)``.
        notice: A one-line notice for the logs, or ``None``.
    """

    python_executable: str
    bin_dir: str
    environment_variables: dict[str, str] = field(default_factory=dict)
    description: str = ""
    notice: str | None = None


def _bin_dir_for(python_executable: str) -> str:
    """A folder whose ``python``/``python3`` run ``python_executable``.

    Virtual environments already have one (their ``bin``); for other interpreters a small
    shim folder is written under the prefect-ml home (symlinks would lose a venv's identity).
    """
    exe = Path(python_executable)
    folder = exe.parent
    if (folder / "python").exists() and (folder / "python").resolve() == exe.resolve():
        return str(folder)
    import hashlib

    shim = settings.home() / "envs" / "shims" / hashlib.sha256(str(exe).encode()).hexdigest()[:16]
    shim.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3"):
        target = shim / name
        script = f'#!/bin/sh\nexec "{exe}" "$@"\n'
        if not target.exists() or target.read_text() != script:
            target.write_text(script)
            target.chmod(0o755)
    return str(shim)


def current_interpreter(notice: str | None = None, description: str | None = None) -> ResolvedEnvironment:
    """The interpreter running prefect-ml."""
    return ResolvedEnvironment(
        python_executable=sys.executable,
        bin_dir=_bin_dir_for(sys.executable),
        description=description or f"current interpreter ({sys.executable})",
        notice=notice,
    )


def resolve_environment(environment) -> ResolvedEnvironment:
    """Resolve a job's environment for the local process compute.

    Args:
        environment: A ``prefect_ml.specs.EnvironmentSpec`` or ``None``.

    Returns:
        The interpreter and variables to use.

    Raises:
        ConfigurationError: A non-curated environment reference has no ``Environment`` block.
    """
    if environment is None:
        return current_interpreter()
    name = getattr(environment, "name", None)
    if name:
        block = _load_environment_block(name)
        if block is not None:
            exe = os.path.abspath(os.path.expanduser(block.python_executable))
            if not os.path.exists(exe):
                raise ConfigurationError(
                    f"Environment {name!r} points at python_executable {exe!r}, which does not exist. "
                    f"Fix it with `prefect-ml environment create --name {name} --python PATH`.")
            return ResolvedEnvironment(
                python_executable=exe, bin_dir=_bin_dir_for(exe),
                environment_variables=dict(block.environment_variables or {}),
                description=f"environment {name!r} ({exe})",
            )
    label = environment.reference or (f"image {environment.image}" if environment.image else "inline environment")
    if environment.is_curated or getattr(environment, "is_inline", False):
        return current_interpreter(
            notice=f"Environment {label} runs with the current interpreter ({sys.executable}) on the local compute.",
            description=f"{label} -> current interpreter ({sys.executable})",
        )
    raise ConfigurationError(
        f"environment: unknown environment {label!r}. On the local compute an environment maps to a Python "
        f"interpreter: create one with `prefect-ml environment create --name {name or 'NAME'} --python PATH`, "
        "use an Azure curated environment (AzureML-*), or omit `environment` to use the current interpreter.")


def _load_environment_block(name: str):
    """The saved ``Environment`` block for environment ``name``, or ``None``."""
    from prefect_ml.blocks import Environment, block_document_name
    from prefect_ml.data._api import load_block

    return load_block(Environment, block_document_name(name, field="environment"))


def save_environment(name: str, python_executable: str, *, environment_variables: dict[str, str] | None = None,
                     description: str | None = None, overwrite: bool = False):
    """Save an ``Environment`` block mapping environment ``name`` to a local interpreter.

    Args:
        name: The environment name jobs use (``azureml:NAME@latest``, ``NAME:VERSION`` or ``NAME``).
        python_executable: Path of the interpreter; must exist.
        environment_variables: Extra variables for jobs using this environment.
        description: Free text.
        overwrite: Replace an existing block of that name.

    Raises:
        ValidationError: The interpreter does not exist, or the environment exists and ``overwrite`` is false.
    """
    from prefect_ml.blocks import Environment, block_document_name
    from prefect_ml.exceptions import Problem, ValidationError

    exe = os.path.abspath(os.path.expanduser(python_executable))
    if not os.path.isfile(exe):
        raise ValidationError([Problem("python", f"interpreter not found: {exe}", value=python_executable)],
                              title="Invalid environment")
    document = block_document_name(name, field="environment")
    if not overwrite and _load_environment_block(name) is not None:
        raise ValidationError([Problem("name", "environment already exists; pass --overwrite to replace it",
                                       value=name)], title="Invalid environment")
    block = Environment(python_executable=exe, environment_variables=environment_variables or {},
                        description=description)
    block.save(document, overwrite=True)
    return block
