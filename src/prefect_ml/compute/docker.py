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


_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def container_warnings(settings_: dict[str, Any]) -> list[str]:
    """What a job's container on a docker target with these settings would not reach, each with its fix.

    Shown by ``compute create``/``update``/``show`` and ``job create --dry-run`` for docker targets; nothing is
    checked against a Docker engine.

    - The Prefect API (any address with ``network_mode: none``): the container gets the target's ``env``
      ``PREFECT_API_URL``, else the worker's (taken to be this process's). An address on this machine
      (``127.0.0.1``/``localhost``) reaches it only with host networking. The network mode is decided by
      prefect-docker's own rule (``DockerWorkerJobConfiguration.get_network_mode``: unset on Linux with a local
      API means ``host``); on a bridge network prefect-docker rewrites the address to ``host.docker.internal``,
      which reaches a server only if it listens on more than ``127.0.0.1``.
    - prefect-ml's home (``$PREFECT_ML_HOME``: the SQLite MLflow store, job folders, code snapshots): without a
      writable volume holding it the job's container has none of them, unless the target's ``env`` sets a
      tracking server (``MLFLOW_TRACKING_URI=http(s)://...``) and a shared snapshot store
      (``PREFECT_ML_SNAPSHOT_STORE``) is set.

    Args:
        settings_: The docker target's settings (``ComputeTarget.settings``: ``network_mode``, ``volumes``,
            ``env``...).

    Returns:
        Warning texts (empty when nothing is wrong).
    """
    from urllib.parse import urlparse

    from prefect.settings import PREFECT_API_URL

    warnings: list[str] = []
    env = dict(settings_.get("env") or {})
    api_url = env.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    network_mode = settings_.get("network_mode")
    try:
        from prefect_docker.worker import DockerWorkerJobConfiguration

        network_mode = DockerWorkerJobConfiguration(
            network_mode=network_mode, networks=list(settings_.get("networks") or []),
            env={"PREFECT_API_URL": api_url} if api_url else {}).get_network_mode()
    except ImportError:  # compute create names the docker extra; decide from the settings alone
        pass
    host = (urlparse(api_url).hostname or "") if api_url else ""
    if api_url and (network_mode == "none" or (host in _LOCAL_HOSTS and network_mode != "host")):
        where = ("no network at all" if network_mode == "none" else
                 f"network {network_mode or 'of its own'} (prefect-docker rewrites the address to "
                 "host.docker.internal, which reaches the server only if it listens on all interfaces)")
        warnings.append(
            f"the job's container gets PREFECT_API_URL={api_url}"
            + (", an address on this machine," if host in _LOCAL_HOSTS else "") + " but runs with "
            f"{where}: its flow run cannot reach the Prefect API. Fix: use host networking (`--network-mode host`, "
            "`network_mode: host` in the compute file), or set PREFECT_API_URL in the target's env to an address "
            "the container can reach (`--env PREFECT_API_URL=http://HOST-IP:4200/api`, with a server that "
            "listens on all interfaces: `prefect server start --host 0.0.0.0`, and PREFECT_API_URL set to it "
            "for prefect-ml too).")
    home = settings.home()
    mounted = read_only = False
    for volume in settings_.get("volumes") or []:
        parts = str(volume).split(":")
        if parts[0].startswith(("/", "~")):
            try:
                home.relative_to(os.path.realpath(os.path.expanduser(parts[0])))
            except ValueError:
                continue
            if len(parts) > 2 and "ro" in parts[2].split(","):
                read_only = True
            else:
                mounted = True
    tracking = env.get("MLFLOW_TRACKING_URI", "")
    shared_elsewhere = tracking.startswith(("http://", "https://")) and bool(
        env.get("PREFECT_ML_SNAPSHOT_STORE") or os.environ.get("PREFECT_ML_SNAPSHOT_STORE"))
    if not mounted and not shared_elsewhere:
        warnings.append(
            f"no {'writable ' if read_only else ''}volume holds prefect-ml's home {home} (the MLflow store, job "
            "folders, code snapshots): the job's container will not see them. Fix: mount it at the same path "
            f"and pass it on (`--volume {home}:{home} --env PREFECT_ML_HOME={home}`; "
            "prefect_ml.compute.docker.shared_home_settings gives these settings), or set MLFLOW_TRACKING_URI to "
            "a tracking server in the target's env and PREFECT_ML_SNAPSHOT_STORE to a store both sides reach.")
    elif mounted and "PREFECT_ML_HOME" not in env:
        warnings.append(
            f"a volume holds prefect-ml's home {home} but the target's env does not set PREFECT_ML_HOME: the job's "
            f"container uses its own default home. Fix: `--env PREFECT_ML_HOME={home}` (mounted at the same path).")
    return warnings
