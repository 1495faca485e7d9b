"""Environments: Azure ML environment assets and how a job's ``environment`` becomes an interpreter.

Environment assets follow Azure's environment YAML
(https://learn.microsoft.com/azure/machine-learning/reference-yaml-environment): ``name``, ``version``,
``image``, ``conda_file``, ``build: {path, dockerfile_path}``, ``description``, ``tags``. Each version is an
immutable :class:`prefect_ml.blocks.Environment` document; ``NAME@latest`` (and ``NAME`` alone) is the most
recently created version. The conda file is stored inline and the build context is copied under
``$PREFECT_ML_HOME/envs/contexts/<hash>``, so later edits of the source files do not change a version.

How a job's environment is resolved on the process compute (local or a process work pool):

- no environment: the interpreter running prefect-ml;
- a reference (``azureml:NAME@latest``, ``NAME:VERSION``, curated ``AzureML-*`` names and
  ``azureml://registries/...``) first looks up an environment asset version of that name, then an
  interpreter mapping (``prefect-ml environment create --name N --python PATH``) of that name; so curated names
  map to whatever you configured under that name;
- an environment with ``python_executable``: that interpreter;
- an environment with a ``conda_file``, or a build context holding ``requirements.txt``: a virtual
  environment built from it with uv (or pip), cached by the hash of its specification
  (:mod:`prefect_ml.compute.venvs`);
- otherwise (``image`` only, unconfigured curated names): the current interpreter, with a one-line notice;
- any other reference: an error that says how to configure it.

Inside a container built for an environment (Docker compute, :mod:`prefect_ml.compute.images`) the
image's ``PREFECT_ML_ENV_PYTHON`` names the job's interpreter instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect_ml import settings
from prefect_ml.exceptions import ConfigurationError, NotFoundError


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


def resolve_environment(environment, *, base_path: str | None = None, log=None) -> ResolvedEnvironment:
    """Resolve a job's environment for the process compute (see the module docstring for the rules).

    Args:
        environment: A ``prefect_ml.specs.EnvironmentSpec`` or ``None``.
        base_path: Folder an inline ``conda_file``/``build.path`` is relative to (the job file's folder).
        log: Optional ``callable(str)`` for progress lines (virtual environment build or reuse).

    Returns:
        The interpreter and variables to use.

    Raises:
        ConfigurationError: A non-curated reference names no configured environment, a configured
            interpreter is missing, or its virtual environment cannot be built (a conda-only dependency,
            an unknown package, a missing Python version).
    """
    if environment is None:
        return current_interpreter()
    in_image = os.environ.get("PREFECT_ML_ENV_PYTHON")
    if in_image:  # a container built for this job's environment (prefect_ml.compute.images)
        return ResolvedEnvironment(python_executable=in_image, bin_dir=_bin_dir_for(in_image),
                                   description=f"image environment ({in_image})")
    label = environment.reference or (f"image {environment.image}" if environment.image else "inline environment")
    definition = environment_definition(environment, base_path=base_path)
    if definition is None:
        if environment.is_curated:
            return current_interpreter(
                notice=f"Environment {label} runs with the current interpreter ({sys.executable}) on the local "
                       "compute.",
                description=f"{label} -> current interpreter ({sys.executable})")
        name = environment.name
        raise ConfigurationError(
            f"environment: unknown environment {label!r}. Create it from Azure's environment YAML with "
            f"`prefect-ml environment create --file env.yml`, map it to an interpreter with "
            f"`prefect-ml environment create --name {name or 'NAME'} --python PATH`, use an Azure curated "
            "environment (AzureML-*), or omit `environment` to use the current interpreter.")
    variables = dict(definition.environment_variables or {})
    if definition.python_executable:
        exe = os.path.abspath(os.path.expanduser(definition.python_executable))
        if not os.path.exists(exe):
            raise ConfigurationError(
                f"Environment {label!r} points at python_executable {exe!r}, which does not exist. "
                f"Fix it with `prefect-ml environment create --name {environment.name or 'NAME'} --python PATH "
                "--overwrite`.")
        return ResolvedEnvironment(python_executable=exe, bin_dir=_bin_dir_for(exe),
                                   environment_variables=variables, description=f"environment {label!r} ({exe})")
    venv_spec = venv_spec_for(definition)
    if venv_spec is not None:
        from prefect_ml.compute.venvs import ensure_venv

        folder = ensure_venv(venv_spec, log=log)
        exe = str(folder / "bin" / "python")
        return ResolvedEnvironment(python_executable=exe, bin_dir=str(folder / "bin"),
                                   environment_variables=variables,
                                   description=f"environment {label!r} (virtual environment {folder})")
    resolved = current_interpreter(
        notice=f"Environment {label} has no conda file or requirements; it runs with the current interpreter "
               f"({sys.executable}) on the process compute (its image is used on Docker compute).",
        description=f"{label} -> current interpreter ({sys.executable})")
    resolved.environment_variables = variables
    return resolved


def check_environment(environment, *, base_path: str | None = None) -> None:
    """Check that a job's environment can be resolved, without building anything (for validation).

    Raises:
        ConfigurationError: As :func:`resolve_environment` would, for unknown references, missing
            interpreters or files, and conda-only dependencies.
    """
    if environment is None or os.environ.get("PREFECT_ML_ENV_PYTHON"):
        return
    definition = environment_definition(environment, base_path=base_path)
    if definition is None:
        if not environment.is_curated:
            resolve_environment(environment, base_path=base_path)  # raises the unknown-environment error
        return
    if definition.python_executable:
        resolve_environment(environment, base_path=base_path)
        return
    venv_spec = venv_spec_for(definition)
    if venv_spec is not None and venv_spec.conda_only:
        from prefect_ml.compute.venvs import _conda_only_error

        raise _conda_only_error(venv_spec, list(venv_spec.conda_only))


def environment_notice(environment, *, base_path: str | None = None, target_type: str = "local") -> str | None:
    """The one-line notice a job's run will log about its interpreter, computed without building anything.

    ``job create`` prints it at once (the run logs it again): an ``image``-only environment or an unconfigured
    curated name runs with the current interpreter on local, process and Dask compute (not in that image).
    Docker and Kubernetes compute run the image, so there is no notice for them.

    Returns:
        The notice, or ``None``.
    """
    if environment is None or target_type in ("docker", "kubernetes") or os.environ.get("PREFECT_ML_ENV_PYTHON"):
        return None
    label = environment.reference or (f"image {environment.image}" if environment.image else "inline environment")
    try:
        definition = environment_definition(environment, base_path=base_path)
    except (ConfigurationError, NotFoundError):
        return None  # check_environment reports it
    if definition is None:
        if environment.is_curated:
            return (f"Environment {label} runs with the current interpreter ({sys.executable}) on the {target_type} "
                    "compute.")
        return None
    if definition.python_executable or venv_spec_for(definition) is not None:
        return None
    return (f"Environment {label} has no conda file or requirements; it runs with the current interpreter "
            f"({sys.executable}) on the {target_type} compute (its image is used on Docker compute).")


def venv_spec_for(definition):
    """The :class:`~prefect_ml.compute.venvs.VenvSpec` of an environment, or ``None`` (nothing to install).

    ``conda_file`` wins; else a ``requirements.txt`` at the root of the build context.
    """
    from prefect_ml.compute.venvs import parse_conda_file, parse_requirements_file

    label = f"environment {definition.env_name or 'inline'}"
    if definition.conda_file is not None:
        return parse_conda_file(definition.conda_file, source=f"{label} conda_file")
    if definition.build_context:
        requirements = Path(definition.build_context) / "requirements.txt"
        if requirements.is_file():
            return parse_requirements_file(requirements)
    return None


def environment_definition(environment, *, base_path: str | None = None):
    """The :class:`prefect_ml.blocks.Environment` a job's environment stands for, or ``None``.

    References look up an environment asset version (exact version, or the latest for ``@latest`` / no
    version), then an interpreter mapping of the same name. Inline environments become an unsaved block
    (conda file read, build context resolved against ``base_path``).

    Raises:
        NotFoundError: ``NAME:VERSION`` names an existing environment but not that version.
        ConfigurationError: An inline environment's conda file or build context does not exist.
    """
    from prefect_ml.blocks import Environment

    if environment.reference is not None:
        name = environment.name
        if not name:
            return None
        versions = list_environments(name)
        if versions:
            if environment.version is not None:
                match = [v for v in versions if v.version == environment.version]
                if match:
                    return match[-1]
            elif environment.label in (None, "latest"):
                return versions[-1]
        block = _load_environment_block(name)
        if block is not None:
            return block
        if versions and environment.version is not None:
            raise NotFoundError(f"environment: {name!r} has no version {environment.version!r}. Its versions: "
                                f"{', '.join(v.version for v in versions)}; use one of them or '@latest'.")
        return None
    base = Path(base_path or os.getcwd())
    conda = None
    if environment.conda_file is not None:
        conda = _read_conda(environment.conda_file, base, "environment.conda_file")
    context = None
    if environment.build_path:
        context = (base / environment.build_path).resolve()
        if not context.is_dir():
            raise ConfigurationError(f"environment.build.path: folder {str(context)!r} does not exist.")
        context = str(context)
    return Environment(image=environment.image, conda_file=conda, build_context=context,
                       dockerfile_path=environment.dockerfile_path, description=environment.description)


def _read_conda(value, base: Path, field_name: str) -> dict:
    if isinstance(value, dict):
        return value
    import yaml

    path = (base / str(value)).expanduser()
    if not path.is_file():
        raise ConfigurationError(f"{field_name}: conda file {str(path)!r} does not exist; fix the path (relative "
                                 "to the YAML file's folder).")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ConfigurationError(f"{field_name}: {str(path)!r} is not a conda specification (a mapping with "
                                 "'dependencies').")
    return data


# ----------------------------------------------------------- environment assets
#: Keys allowed in an environment YAML file (https://learn.microsoft.com/azure/machine-learning/reference-yaml-environment).
_YAML_KEYS = {"$schema", "name", "version", "description", "tags", "image", "conda_file", "build", "os_type",
              "inference_config"}


def _version_key(version: str) -> tuple[int, int, str]:
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


def list_environments(name: str | None = None) -> list:
    """Every environment asset version (``Environment`` blocks with a version), or those of NAME.

    Returns:
        Blocks sorted by name, then creation time (oldest first).
    """
    from prefect_ml.blocks import Environment
    from prefect_ml.data._api import list_documents

    found = []
    for document in list_documents(Environment):
        data = document.data or {}
        if not data.get("env_name") or not data.get("version") or (name is not None and data["env_name"] != name):
            continue
        found.append(Environment(**{k: v for k, v in data.items() if k in Environment.model_fields}))
    return sorted(found, key=lambda b: (b.env_name, b.created_at or "", _version_key(b.version)))


def get_environment(name: str, version: str | None = None):
    """One version of environment NAME (``None`` or ``"latest"``: the most recent).

    Raises:
        NotFoundError: No such environment or version; the message lists what exists.
    """
    versions = list_environments(name)
    if not versions:
        known = sorted({b.env_name for b in list_environments()})
        raise NotFoundError(f"Environment {name!r} does not exist. Known environments: "
                            f"{', '.join(known) or 'none'}. Create it with `prefect-ml environment create "
                            "--file env.yml`.")
    if version is None or version == "latest":
        return versions[-1]
    for block in versions:
        if block.version == str(version):
            return block
    raise NotFoundError(f"Environment {name!r} has no version {version!r}. Its versions: "
                        f"{', '.join(b.version for b in versions)}.")


def _hash_folder(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\x00" + file.read_bytes() + b"\x00")
    return digest.hexdigest()[:32]


def _store_context(source: Path) -> str:
    """Copy a build context under ``envs/contexts/<content hash>`` (once) and return the copy's path."""
    target = settings.home() / "envs" / "contexts" / _hash_folder(source)
    if not target.exists():
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        shutil.copytree(source, staging, symlinks=False)
        try:
            os.rename(staging, target)
        except OSError:  # another process stored the same content
            shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def specification_hash(definition) -> str:
    """SHA-256 (16 hex digits) of what an environment builds from: image, conda file, build context."""
    payload = {"image": definition.image, "conda_file": definition.conda_file,
               "dockerfile_path": definition.dockerfile_path,
               "build_context": _hash_folder(Path(definition.build_context)) if definition.build_context else None}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def create_environment(name: str, *, version: str | int | None = None, image: str | None = None,
                       conda_file: str | dict | None = None, build_path: str | None = None,
                       dockerfile_path: str | None = None, description: str | None = None,
                       tags: dict | None = None, base_path: str | os.PathLike | None = None):
    """Create one immutable version of environment NAME (Azure's environment asset).

    Args:
        name: Letters, digits, ``-``, ``_`` and ``.``, starting with a letter or digit.
        version: The version; ``None`` takes the next integer (``"1"`` first).
        image: Docker image (used as is on Docker compute).
        conda_file: Path of a conda YAML (relative to BASE_PATH) or the parsed mapping; stored inline.
        build_path: Docker build context folder (relative to BASE_PATH); copied into prefect-ml's home.
        dockerfile_path: Dockerfile inside the context (default ``Dockerfile``).
        description: Free text.
        tags: Tags; values stored as strings.
        base_path: Folder relative paths are relative to (the YAML file's folder); default the current one.

    Returns:
        The saved :class:`prefect_ml.blocks.Environment`. Creating an existing version with the same
        content returns it unchanged.

    Raises:
        ValidationError: Bad name/version, none of image/conda_file/build, a missing conda file, build
            context or Dockerfile, or an existing version with different content (versions are immutable).
    """
    from prefect_ml.blocks import Environment, data_asset_document_name
    from prefect_ml.data._api import save_block
    from prefect_ml.exceptions import Problem, ValidationError

    title = f"Invalid environment {name!r}"
    problems = []
    if not isinstance(name, str) or not name or not (name[0].isalnum() and all(c.isalnum() or c in "-_." for c in name)):
        problems.append(Problem("name", "must hold letters, digits, '-', '_' or '.', starting with a letter or "
                                        "digit, e.g. 'sklearn-env'", name))
    if version is not None and (not str(version).strip() or str(version) == "latest" or "/" in str(version)):
        problems.append(Problem("version", "must be a non-empty version other than 'latest', e.g. '1', or omitted "
                                           "for the next integer", version))
    if image is None and conda_file is None and build_path is None:
        problems.append(Problem("image", "an environment needs 'image', 'conda_file' (with 'image') or "
                                         "'build: {path: ...}'"))
    if image is not None and build_path is not None:
        problems.append(Problem("build", "give either 'image' or 'build', not both (Azure's rule)", build_path))
    base = Path(base_path or os.getcwd())
    conda = context = None
    if conda_file is not None:
        try:
            conda = _read_conda(conda_file, base, "conda_file")
        except ConfigurationError as error:
            problems.append(Problem("conda_file", str(error).split(": ", 1)[-1], conda_file))
    if build_path is not None:
        folder = (base / str(build_path)).resolve()
        if not folder.is_dir():
            problems.append(Problem("build.path", f"folder {str(folder)!r} does not exist", build_path))
        elif not (folder / (dockerfile_path or "Dockerfile")).is_file():
            problems.append(Problem("build.dockerfile_path", f"no {dockerfile_path or 'Dockerfile'} in {folder}",
                                    dockerfile_path or "Dockerfile"))
        else:
            context = folder
    if problems:
        raise ValidationError(problems, title=title)
    stored_context = _store_context(context) if context is not None else None
    clean_tags = {str(k): "" if v is None else str(v) for k, v in (tags or {}).items()}
    auto = version is None
    numbers = [int(b.version) for b in list_environments(name) if b.version.isdigit()]
    attempt = str(max(numbers, default=0) + 1) if auto else str(version)
    for _ in range(20):
        block = Environment(env_name=name, version=attempt, image=image, conda_file=conda,
                            build_context=stored_context, dockerfile_path=dockerfile_path if context else None,
                            description=description, tags=clean_tags,
                            created_at=datetime.now(timezone.utc).isoformat())
        if save_block(block, data_asset_document_name(name, attempt), overwrite=False):
            return block
        if not auto:
            existing = get_environment(name, attempt)
            if (existing.image, existing.conda_file, existing.build_context, existing.dockerfile_path) == (
                    block.image, block.conda_file, block.build_context, block.dockerfile_path):
                return existing
            raise ValidationError([Problem("version", f"environment {name!r} version {attempt!r} already exists "
                                                      "with other content and versions are immutable; use another "
                                                      "version or omit it for the next one", attempt)],
                                  title=f"Environment {name}:{attempt} exists")
        attempt = str(int(attempt) + 1)
    raise ValidationError([Problem("version", "could not pick a free version; retry", None)], title=title)


def load_environment_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read an Azure environment YAML file into :func:`create_environment` keyword arguments.

    Raises:
        ValidationError: Unreadable YAML, unknown keys, or a missing ``name``.
    """
    import yaml

    from prefect_ml.exceptions import Problem, ValidationError

    file = Path(path)
    title = f"Invalid environment file {str(file)!r}"
    try:
        data = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValidationError([Problem("", f"cannot read YAML: {error}", str(file))], title=title) from None
    if not isinstance(data, dict):
        raise ValidationError([Problem("", "must be a mapping (Azure's environment YAML)", data)], title=title)
    unknown = sorted(set(data) - _YAML_KEYS)
    problems = [Problem(key, f"unknown field (allowed: {', '.join(sorted(_YAML_KEYS - {'$schema'}))})")
                for key in unknown]
    if not data.get("name"):
        problems.append(Problem("name", "required, e.g. 'sklearn-env'"))
    build = data.get("build")
    if build is not None and (not isinstance(build, dict) or "path" not in build):
        problems.append(Problem("build", "must be a mapping with 'path' (and optional 'dockerfile_path')", build))
    if problems:
        raise ValidationError(problems, title=title)
    return {"name": str(data["name"]), "version": data.get("version"), "image": data.get("image"),
            "conda_file": data.get("conda_file"), "build_path": (build or {}).get("path"),
            "dockerfile_path": (build or {}).get("dockerfile_path"), "description": data.get("description"),
            "tags": data.get("tags"), "base_path": str(file.resolve().parent)}


def create_environment_from_file(path: str | os.PathLike, **overrides: Any):
    """:func:`create_environment` from an Azure environment YAML file; OVERRIDES (non-``None``) win."""
    arguments = load_environment_file(path)
    arguments.update({k: v for k, v in overrides.items() if v is not None})
    return create_environment(**arguments)


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
