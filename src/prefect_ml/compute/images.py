"""Docker images for environments (Docker compute).

Rules (https://learn.microsoft.com/azure/machine-learning/concept-environments, adapted):

- ``image`` only: used as is;
- ``build.path``: the context's Dockerfile is built through prefect-docker's build step
  (:func:`prefect_docker.deployments.steps.build_docker_image`), tagged
  ``prefect-ml-env/<name>:<specification hash>``;
- ``conda_file`` (with or without ``image``): a generated Dockerfile ``FROM`` the environment's ``image`` (or
  the compute's default image) creates a virtual environment ``/opt/env`` holding the conda file's pip
  requirements, installed from wheels built on this machine (``pip wheel``: your pip index and certificates
  apply; nothing is downloaded inside the build), and sets ``PREFECT_ML_ENV_PYTHON=/opt/env/bin/python`` so
  that the job's ``python`` is that environment's;
- no environment, or an interpreter mapping: the compute's default image.

Built images are cached by the environment's specification hash: an image with that tag is reused.
Every image a Docker compute runs must contain prefect-ml (the flow run inside the container is
prefect-ml's ``command-job`` flow): build your base images ``FROM`` one that has it (docs/environments.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prefect_ml.exceptions import ConfigurationError

#: Repository of images built for environments.
IMAGE_REPOSITORY = "prefect-ml-env"
#: Variable naming the image's default image when a compute gives none.
DEFAULT_IMAGE_VARIABLE = "PREFECT_ML_DOCKER_IMAGE"


def default_image() -> str:
    """The image for jobs without their own: ``$PREFECT_ML_DOCKER_IMAGE`` or ``prefect-ml:latest``."""
    return os.environ.get(DEFAULT_IMAGE_VARIABLE) or "prefect-ml:latest"


def _docker_client():
    """A docker-py client for ``DOCKER_HOST`` (docker-py comes with prefect-docker: ``prefect-ml[docker]``)."""
    import docker

    return docker.from_env()


def image_exists(image: str) -> bool:
    """Whether the engine (``DOCKER_HOST``) has ``image`` locally."""
    import docker

    client = _docker_client()
    try:
        client.images.get(image)
        return True
    except docker.errors.ImageNotFound:
        return False
    finally:
        client.close()


def _slug(name: str | None) -> str:
    return re.sub(r"[^a-z0-9_.-]", "-", (name or "inline").lower()).strip("-.") or "inline"


def image_for_environment(environment, *, base_path: str | None = None, base_image: str | None = None,
                          log=None, build: bool = True) -> str:
    """The image a job's environment runs in on Docker compute, building it when needed.

    Args:
        environment: The job's ``EnvironmentSpec`` or ``None``.
        base_path: Folder an inline ``conda_file``/``build.path`` is relative to.
        base_image: The compute's default image (default :func:`default_image`).
        log: Optional ``callable(str)`` for progress lines.
        build: Build the image when missing. ``False`` (``job create --dry-run``) returns the tag an
            environment with a ``conda_file``/``build.path`` would get, touching no engine.

    Returns:
        An image reference (``name:tag``).

    Raises:
        ConfigurationError: The environment is unknown, has no image to start from, or its build failed
            (with the last lines of the build output).
    """
    from prefect_ml.compute.environments import environment_definition

    log = log or (lambda _msg: None)
    base_image = base_image or default_image()
    if environment is None:
        return base_image
    definition = environment_definition(environment, base_path=base_path)
    if definition is None:
        if environment.is_curated:
            log(f"Environment {environment.reference} is not configured here; using the image {base_image}.")
            return base_image
        raise ConfigurationError(f"environment: unknown environment {environment.reference!r}. Create it with "
                                 "`prefect-ml environment create --file env.yml`.")
    if definition.build_context is None and definition.conda_file is None:
        return definition.image or base_image
    tag = built_image_tag(definition, environment)
    if not build:
        return tag
    if image_exists(tag):
        log(f"Reusing image {tag} (same environment specification).")
        return tag
    started = time.monotonic()
    if definition.build_context is not None:
        _build(Path(definition.build_context), definition.dockerfile_path or "Dockerfile", tag, log)
    else:
        with tempfile.TemporaryDirectory(prefix="prefect-ml-env-") as folder:
            _conda_context(definition, Path(folder), definition.image or base_image, tag)
            _build(Path(folder), "Dockerfile", tag, log)
    log(f"Built image {tag} in {time.monotonic() - started:.1f} s.")
    return tag


def built_image_tag(definition, environment=None) -> str:
    """``prefect-ml-env/<name>:<specification hash>``: the tag of the image built for an environment definition."""
    from prefect_ml.compute.environments import specification_hash

    name = definition.env_name or (environment.name if environment is not None else None)
    return f"{IMAGE_REPOSITORY}/{_slug(name)}:{specification_hash(definition)}"


def is_built_image(image: str) -> bool:
    """Whether ``image`` is one prefect-ml builds for environments (it exists only on the local engine)."""
    return image.startswith(IMAGE_REPOSITORY + "/")


def _conda_context(definition, folder: Path, from_image: str, tag: str) -> None:
    """Write a build context installing the conda file's pip requirements into ``/opt/env``."""
    from prefect_ml.compute.environments import venv_spec_for
    from prefect_ml.compute.venvs import _conda_only_error

    spec = venv_spec_for(definition)
    if spec.conda_only:
        raise _conda_only_error(spec, list(spec.conda_only))
    (folder / "requirements.txt").write_text("\n".join(spec.requirements) + "\n")
    wheels = folder / "wheels"
    wheels.mkdir()
    if spec.requirements:
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels),
                                 "-r", str(folder / "requirements.txt")], capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join((result.stderr + result.stdout).strip().splitlines()[-10:])
            raise ConfigurationError(f"environment {definition.env_name or 'inline'}: downloading its pip "
                                     f"requirements failed:\n{tail}")
    install = "--no-index --find-links /tmp/env/wheels -r /tmp/env/requirements.txt"
    (folder / "Dockerfile").write_text(f"""FROM {from_image}
COPY requirements.txt /tmp/env/requirements.txt
COPY wheels /tmp/env/wheels
RUN if command -v uv >/dev/null; then uv venv -q /opt/env --python python3 \\
      && uv pip install -q --python /opt/env/bin/python {install}; \\
    else python3 -m venv /opt/env && /opt/env/bin/python -m pip install -q {install}; fi \\
 && rm -rf /tmp/env
ENV PREFECT_ML_ENV_PYTHON=/opt/env/bin/python
LABEL prefect-ml.environment-image={tag}
""")


def _build(context: Path, dockerfile: str, tag: str, log) -> None:
    """Build ``context`` through prefect-docker's build step, with host networking (no bridge here)."""
    from prefect_docker.deployments.steps import build_docker_image

    repository, _, version = tag.rpartition(":")
    log(f"Building image {tag} from {context} ({dockerfile}).")
    previous = os.getcwd()
    try:
        os.chdir(context)  # the step resolves the Dockerfile relative to the working directory
        build_docker_image(image_name=repository, tag=version, dockerfile=dockerfile, path=str(context),
                           network_mode="host", pull=False, ignore_cache=True)
    except ConfigurationError:
        raise
    except Exception as error:  # BuildError, APIError, DockerException: say which environment and why
        raise ConfigurationError(f"environment: building image {tag} from {context} failed: {error}") from None
    finally:
        os.chdir(previous)


def remove_image(image: str) -> None:
    """Remove ``image`` from the engine (used by tests and ``prefect-ml environment`` cleanup)."""
    client = _docker_client()
    try:
        client.images.remove(image, force=True)
    finally:
        client.close()


__all__ = ["default_image", "image_exists", "image_for_environment", "remove_image", "IMAGE_REPOSITORY",
           "DEFAULT_IMAGE_VARIABLE"]
