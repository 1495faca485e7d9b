"""Container settings of a job on Docker compute (the Docker worker's job variables).

A job's flow run (prefect-ml's ``command-job`` flow) runs inside a container started by a
``prefect worker start --type docker`` worker. It must reach the same Prefect API, MLflow store and
files as the submitting side, so the container gets:

- ``image``: from the job's environment (:func:`prefect_ml.compute.images.image_for_environment`);
- ``image_pull_policy: Never`` when the engine already has the image (built here), so the worker never
  tries a registry for it;
- ``network_mode: host`` (the engine may run without a bridge network; the API at ``127.0.0.1`` is then
  the host's);
- ``volumes``: prefect-ml's home (``$PREFECT_ML_HOME``: the SQLite MLflow store, jobs, snapshots, the
  default datastore) and the job's local code folder, each mounted at the same path;
- ``env``: ``PREFECT_ML_HOME`` and ``MLFLOW_TRACKING_URI`` (when set) of the submitting side.
"""

from __future__ import annotations

import os
from typing import Any

from prefect_ml import settings


def container_job_variables(spec, *, image: str, extra_volumes: list[str] | None = None) -> dict[str, Any]:
    """The Docker worker job variables for running ``spec``'s flow run in ``image``.

    Args:
        spec: The validated job (``CommandJob``).
        image: The image (must contain prefect-ml).
        extra_volumes: More ``HOST:CONTAINER[:MODE]`` volume strings.

    Returns:
        A dict for ``job_variables`` of a flow run on a ``docker`` work pool (keys of prefect-docker's
        base job template: ``image``, ``image_pull_policy``, ``network_mode``, ``volumes``, ``env``,
        ``auto_remove``, ``stream_output``).
    """
    home = str(settings.home())
    volumes = [f"{home}:{home}"]
    code = spec.code_path() if getattr(spec, "code", None) else None
    if code is not None and not str(code).startswith(home + os.sep):
        volumes.append(f"{code}:{code}:ro")
    volumes += list(extra_volumes or [])
    env = {"PREFECT_ML_HOME": home, "PREFECT_ML_AUTOSTART_SERVER": "false"}
    if os.environ.get("MLFLOW_TRACKING_URI"):
        env["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_TRACKING_URI"]
    variables: dict[str, Any] = {"image": image, "network_mode": "host", "volumes": volumes, "env": env,
                                 "auto_remove": True, "stream_output": True}
    try:
        from prefect_ml.compute.images import image_exists

        present = image_exists(image)
    except Exception:  # engine unreachable from here: let the worker decide
        present = False
    if present:
        variables["image_pull_policy"] = "Never"
    return variables
