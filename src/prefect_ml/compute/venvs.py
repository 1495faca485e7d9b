"""Virtual environments built from an environment's conda file or pip requirements (process compute).

Azure builds a conda environment from ``conda_file`` inside the job's image
(https://learn.microsoft.com/azure/machine-learning/concept-environments). On the process compute prefect-ml
builds a *virtual environment* instead:

- the conda file's ``python=X.Y`` pin picks the interpreter (one installed on this machine; nothing is
  downloaded: ``UV_PYTHON_DOWNLOADS=never`` unless you set it);
- its ``pip:`` list, and its other conda dependencies translated to pip requirements
  (``numpy=1.22`` -> ``numpy==1.22.*``), are installed from PyPI (or your configured index);
  ``pip``/``setuptools``/``wheel`` are provided by the virtual environment itself;
- a conda dependency that does not exist on PyPI (``cudatoolkit``, ``libgcc-ng``...) is a
  :class:`~prefect_ml.exceptions.ConfigurationError` naming it.

The environment is built with ``uv`` when it is installed (``uv venv`` + ``uv pip install``), else with
``python -m venv`` + ``pip``. It lives under ``$PREFECT_ML_HOME/envs/venvs/<hash>``, where ``<hash>`` is
the SHA-256 of its specification (interpreter version + requirements), and is reused by every job
whose environment has the same specification. A file lock makes concurrent jobs build it once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect_ml import settings
from prefect_ml.exceptions import ConfigurationError

#: Conda dependencies provided by every virtual environment (ignored).
_PROVIDED = frozenset({"pip", "setuptools", "wheel"})
#: Conda packages known to have no PyPI equivalent (checked before resolving, for a quick, clear error).
CONDA_ONLY = frozenset({"cudatoolkit", "cudnn", "nccl", "openmpi", "mpich", "libgcc-ng", "libstdcxx-ng",
                        "_libgcc_mutex", "_openmp_mutex", "libgomp", "blas", "libblas", "cudatoolkit-dev",
                        "cuda-toolkit", "gxx_linux-64", "gcc_linux-64", "r-base", "conda"})
_CONDA_SPEC = re.compile(r"^(?:(?P<channel>[^:\s]+)::)?(?P<name>[A-Za-z0-9_.\-]+)\s*(?P<rest>.*)$")
_MARKER = ".prefect-ml-env.json"


@dataclass(frozen=True)
class VenvSpec:
    """What a virtual environment holds.

    Attributes:
        python: Requested interpreter version (``"3.11"``), or ``None`` for the current interpreter's.
        requirements: pip requirement strings, in the file's order.
        source: Where the specification came from (for messages), e.g. ``conda.yml``.
        conda_only: Conda dependencies with no PyPI equivalent found so far (as written).
    """

    python: str | None
    requirements: tuple[str, ...]
    source: str = "environment"
    conda_only: tuple[str, ...] = field(default=())

    @property
    def hash(self) -> str:
        """SHA-256 (hex, 16 characters) of the interpreter version and requirements."""
        payload = json.dumps({"python": self.python or "{}.{}".format(*sys.version_info[:2]),
                              "requirements": sorted(self.requirements)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _conda_to_pip(spec: str) -> tuple[str, str]:
    """``numpy=1.22`` -> (``numpy``, ``numpy==1.22.*``); ``conda-forge::lightgbm>=3`` -> (``lightgbm``, ``lightgbm>=3``)."""
    match = _CONDA_SPEC.match(spec.strip())
    if not match:
        raise ValueError(spec)
    name, rest = match["name"], match["rest"].strip().replace(" ", "")
    if not rest:
        return name, name
    if rest[0] == "=" and not rest.startswith("=="):  # conda's fuzzy match: =1.22 means 1.22.*
        version = rest[1:].split("=")[0]  # drop a build string (=1.22=py38_0)
        return name, f"{name}=={version}" + ("" if version.endswith("*") else ".*")
    if rest[0].isdigit():  # "numpy 1.22"
        return name, f"{name}=={rest}.*"
    return name, name + rest


def parse_conda_file(data: Any, *, source: str = "conda_file") -> VenvSpec:
    """Read a conda environment specification into a :class:`VenvSpec`.

    Args:
        data: The parsed YAML mapping (``name``, ``channels``, ``dependencies``).
        source: Its file name, for messages.

    Returns:
        The interpreter version and pip requirements.

    Raises:
        ConfigurationError: The file is not a conda specification.
    """
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}: a conda file must be a mapping with 'dependencies', got {data!r}")
    dependencies = data.get("dependencies") or []
    if not isinstance(dependencies, list):
        raise ConfigurationError(f"{source}: 'dependencies' must be a list, got {dependencies!r}")
    python: str | None = None
    requirements: list[str] = []
    conda_only: list[str] = []
    for item in dependencies:
        if isinstance(item, dict):
            pip = item.get("pip")
            if pip is None or set(item) != {"pip"}:
                raise ConfigurationError(f"{source}: unexpected dependency mapping {item!r}; expected {{pip: [...]}}")
            requirements.extend(str(r).strip() for r in pip if str(r).strip() and not str(r).startswith("#"))
            continue
        try:
            name, requirement = _conda_to_pip(str(item))
        except ValueError:
            raise ConfigurationError(f"{source}: cannot read conda dependency {item!r}") from None
        if name.lower() == "python":
            version = requirement[len(name):].lstrip("=<>!~").rstrip(".*")
            python = ".".join(version.split(".")[:2]) or None
        elif name.lower() in _PROVIDED:
            continue
        elif name.lower() in CONDA_ONLY:
            conda_only.append(str(item))
        else:
            requirements.append(requirement)
    return VenvSpec(python=python, requirements=tuple(requirements), source=source, conda_only=tuple(conda_only))


def parse_requirements_file(path: Path) -> VenvSpec:
    """A ``requirements.txt`` (comments and blank lines skipped) as a :class:`VenvSpec`."""
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return VenvSpec(python=None, requirements=tuple(line for line in lines if line), source=str(path))


def _uv() -> str | None:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except Exception:  # uv not installed as a package: look on PATH
        return shutil.which("uv")


def _find_python(version: str | None) -> str:
    """The interpreter for ``version`` (``X.Y``): this one when it matches, else ``pythonX.Y`` on PATH."""
    if version is None or version == "{}.{}".format(*sys.version_info[:2]):
        return sys.executable
    found = shutil.which(f"python{version}")
    if found:
        return found
    uv = _uv()
    if uv:
        result = subprocess.run([uv, "python", "find", version], capture_output=True, text=True,
                                env={**os.environ, "UV_PYTHON_DOWNLOADS": os.environ.get("UV_PYTHON_DOWNLOADS", "never")})
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    raise ConfigurationError(
        f"environment: the conda file asks for python={version}, but no Python {version} interpreter is installed "
        f"here (this one is {sys.version.split()[0]}). Install it (e.g. `uv python install {version}`) or change "
        "the pin in the conda file.")


def _conda_only_error(spec: VenvSpec, names: list[str]) -> ConfigurationError:
    return ConfigurationError(
        f"environment: {spec.source}: conda-only dependenc{'y' if len(names) == 1 else 'ies'} "
        f"{', '.join(repr(n) for n in names)} cannot be installed from PyPI into a virtual environment on the "
        "process compute. Remove it, replace it by a PyPI package under 'pip:', or run the job on a Docker "
        "compute with an image that provides it.")


def _run(args: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, args, result.stdout, result.stderr)
    return result


def ensure_venv(spec: VenvSpec, *, log=None) -> Path:
    """Return the folder of the virtual environment for ``spec``, building it on first use.

    Args:
        spec: The interpreter version and requirements.
        log: Optional ``callable(str)`` receiving progress lines (build start, timing, reuse).

    Returns:
        The venv folder (``bin/python`` inside it).

    Raises:
        ConfigurationError: A conda-only dependency, an unknown package (named), a missing interpreter,
            or another installer failure (with the installer's last output lines).
    """
    log = log or (lambda _msg: None)
    if spec.conda_only:
        raise _conda_only_error(spec, list(spec.conda_only))
    root = settings.home() / "envs" / "venvs"
    root.mkdir(parents=True, exist_ok=True)
    folder = root / spec.hash
    if (folder / _MARKER).exists():
        log(f"Reusing virtual environment {folder} (specification hash {spec.hash}).")
        return folder
    import fcntl

    with open(root / f"{spec.hash}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / _MARKER).exists():  # built by another job while we waited
            log(f"Reusing virtual environment {folder} (specification hash {spec.hash}).")
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        python = _find_python(spec.python)
        started = time.monotonic()
        uv = _uv()
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": os.environ.get("UV_PYTHON_DOWNLOADS", "never")}
        env.pop("VIRTUAL_ENV", None)
        tool = "uv" if uv else "pip"
        log(f"Building virtual environment {folder} with {tool} from {spec.source} "
            f"({len(spec.requirements)} requirement(s), Python {spec.python or 'current'}).")
        try:
            if uv:
                _run([uv, "venv", "--quiet", "--python", python, str(folder)], env, "venv")
                if spec.requirements:
                    _run([uv, "pip", "install", "--quiet", "--python", str(folder / "bin" / "python"),
                          *spec.requirements], env, "install")
            else:
                _run([python, "-m", "venv", str(folder)], env, "venv")
                if spec.requirements:
                    _run([str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", *spec.requirements],
                         env, "install")
        except subprocess.CalledProcessError as error:
            shutil.rmtree(folder, ignore_errors=True)
            output = (error.stderr or "") + (error.stdout or "")
            missing = re.findall(r"Because ([A-Za-z0-9_.\-]+) was not found in the package registry", output)
            missing += re.findall(r"No matching distribution found for ([A-Za-z0-9_.\-]+)", output)
            if missing:
                raise ConfigurationError(
                    f"environment: {spec.source}: {', '.join(repr(m) for m in missing)} not found on the package "
                    "index (PyPI). If it is a conda-only package, remove it or use a Docker compute with an image "
                    "that provides it; otherwise fix its name.") from None
            tail = "\n".join(output.strip().splitlines()[-10:])
            raise ConfigurationError(f"environment: building the virtual environment from {spec.source} with "
                                     f"{tool} failed:\n{tail}") from None
        (folder / _MARKER).write_text(json.dumps({"python": spec.python, "requirements": list(spec.requirements),
                                                  "source": spec.source, "built_with": tool}, indent=1))
        log(f"Built virtual environment {folder} in {time.monotonic() - started:.1f} s.")
        return folder
