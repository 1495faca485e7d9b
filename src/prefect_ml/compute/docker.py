"""Container settings of jobs on Docker compute (the Docker worker's job variables).

A job's flow run (prefect-ml's ``command-job`` flow) runs inside a container started by a
``prefect worker start --type docker`` worker. It must reach the same Prefect API, MLflow store and
files as the submitting side:

- :func:`shared_home_settings`: target settings with ``network_mode: host`` (the engine may run without a
  bridge network; the API at ``127.0.0.1`` is then the host's), prefect-ml's home (``$PREFECT_ML_HOME``: the
  SQLite MLflow store, jobs, snapshots, the default datastore) mounted at the same path, and
  ``PREFECT_ML_HOME`` / ``MLFLOW_TRACKING_URI`` passed on;
- :func:`environment_job_variables`: per job, the image of its environment
  (:func:`prefect_ml.compute.images.image_for_environment`) and ``image_pull_policy: Never`` when the engine
  already has it (built here), so the worker never tries a registry for it.
"""

from __future__ import annotations

import os
from typing import Any

from prefect_ml import settings


def shared_home_settings(image: str | None = None) -> dict[str, Any]:
    """Docker compute target settings that give containers this machine's API, MLflow store and files.

    For ``prefect_ml.compute.targets.parse_spec({"name": ..., "type": "docker", **shared_home_settings(img)})``
    or the same keys in a compute YAML file.

    Args:
        image: The target's default image (must contain prefect-ml).

    Returns:
        ``{"image", "network_mode": "host", "volumes": ["HOME:HOME"], "env": {"PREFECT_ML_HOME": HOME, ...}}``
        with HOME prefect-ml's home folder (plus ``MLFLOW_TRACKING_URI`` when it is set here).
    """
    home = str(settings.home())
    env = {"PREFECT_ML_HOME": home, "PREFECT_ML_AUTOSTART_SERVER": "false"}
    if os.environ.get("MLFLOW_TRACKING_URI"):
        env["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_TRACKING_URI"]
    result: dict[str, Any] = {"network_mode": "host", "volumes": [f"{home}:{home}"], "env": env}
    if image:
        result["image"] = image
    return result


def environment_job_variables(spec, target, *, log=None, build: bool = True) -> dict[str, Any]:
    """Job variables that run ``spec`` in its environment's image on a docker ``target`` (building it if needed).

    Called by the submission path (``prefect_ml.compute.submit.job_variables``) for docker targets: ``image`` as
    is for an environment with only an ``image``; the image built for a ``conda_file`` / ``build.path``
    (:func:`prefect_ml.compute.images.image_for_environment`, cached by specification hash). Returns ``{}``
    when the environment does not change the target's image.

    Args:
        spec: The validated job.
        target: Its docker ``ComputeTarget`` (its ``settings["image"]`` is the default image).
        log: Optional ``callable(str)`` for build progress.
        build: Build a missing image (``False`` for ``--dry-run``: the tag it would get, nothing built).

    Returns:
        ``{"image": ..., "image_pull_policy": "Never"}`` for images that exist only on the local engine (built
        here, or found there), ``{"image": ...}`` for others, or ``{}``.

    Raises:
        ConfigurationError: The environment is unknown or its image cannot be built.
    """
    from prefect_ml.compute.images import image_exists, image_for_environment, is_built_image

    default = (getattr(target, "settings", None) or {}).get("image")
    environment = getattr(spec, "environment", None)
    if environment is None:
        return {}
    image = image_for_environment(environment, base_path=getattr(spec, "base_path", None), base_image=default,
                                  log=log, build=build)
    if image == default:
        return {}
    variables: dict[str, Any] = {"image": image}
    if is_built_image(image):
        variables["image_pull_policy"] = "Never"
    elif build:
        try:
            if image_exists(image):
                variables["image_pull_policy"] = "Never"
        except Exception:  # engine unreachable from the submitting side: let the worker pull
            pass
    return variables
