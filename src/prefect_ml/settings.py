"""Locations and embedded defaults.

Everything prefect-ml stores on the local machine lives under one home folder,
``$PREFECT_ML_HOME`` (default ``~/.prefect-ml``):

- ``mlflow.db``: the MLflow tracking and registry store (SQLite) unless
  ``MLFLOW_TRACKING_URI`` or an ``MLflowTracking`` block says otherwise;
- ``mlartifacts/``: MLflow's artifact root for that store;
- ``snapshots/``: content-addressed code snapshots;
- ``jobs/NAME/``: each job's working folder, downloaded inputs and ``user_logs/std_log.txt``;
- ``datastores/workspaceblobstore/``: the default datastore's root;
- ``server/``: the local Prefect API started on first use (see ``prefect-ml server``).

Prefect keeps its own state (the API's SQLite database) under ``PREFECT_HOME`` as usual.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variables that keep Prefect and MLflow quiet and offline.
QUIET_DEFAULTS: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


def apply_quiet_defaults() -> None:
    """Set :data:`QUIET_DEFAULTS` in ``os.environ`` where the user has not set them."""
    for key, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)


def home() -> Path:
    """Return prefect-ml's home folder, creating it if needed.

    Returns:
        ``$PREFECT_ML_HOME`` or ``~/.prefect-ml``, as an absolute path.
    """
    path = Path(os.environ.get("PREFECT_ML_HOME") or Path.home() / ".prefect-ml").expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_tracking_uri() -> str:
    """The embedded MLflow store: SQLite in the home folder."""
    return f"sqlite:///{home() / 'mlflow.db'}"


def default_artifact_root() -> str:
    """The artifact root used with the embedded MLflow store."""
    path = home() / "mlartifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def jobs_dir() -> Path:
    """Folder holding one sub-folder per job."""
    path = home() / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def snapshots_dir() -> Path:
    """Content-addressed store of code snapshots."""
    path = home() / "snapshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_datastore_root() -> Path:
    """Root folder of the ``workspaceblobstore`` datastore when no ``Datastore`` block overrides it."""
    path = home() / "datastores" / "workspaceblobstore"
    path.mkdir(parents=True, exist_ok=True)
    return path
