"""MLflow access for prefect-ml: the tracking store, runs and the model registry.

Everything goes through an explicit :class:`mlflow.tracking.MlflowClient` and run ids;
the fluent API (``mlflow.start_run``) is thread-local and Prefect runs tasks on threads.

The store is chosen in this order: ``MLFLOW_TRACKING_URI``, the ``MLflowTracking`` block
named ``default``, the embedded SQLite store under ``$PREFECT_ML_HOME``.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefect_ml import settings

#: Tag names written on every job's MLflow run.
TAG_JOB_NAME = "prefect_ml.job_name"
TAG_JOB_TYPE = "prefect_ml.job_type"
TAG_FLOW_RUN_ID = "prefect.flow_run_id"
TAG_FLOW_RUN_URL = "prefect.flow_run_url"
TAG_OUTPUT_PREFIX = "prefect_ml.outputs."
TAG_LOG_PATH = "prefect_ml.log_path"
TAG_REGISTERED_MODEL_PREFIX = "prefect_ml.registered_model."
TAG_REGISTERED_DATA_PREFIX = "prefect_ml.registered_data."
TAG_STATUS = "prefect_ml.status"
TAG_ERROR = "prefect_ml.error"
TAG_TIMINGS = "prefect_ml.timings"
TAG_SNAPSHOT = "prefect_ml.snapshot_hash"
TAG_COMMAND = "prefect_ml.command"
TAG_DISPLAY_NAME = "mlflow.runName"

#: Where ``mlflow ui`` serves by default: the link target for runs in the embedded store.
DEFAULT_UI_URL = "http://127.0.0.1:5000"


def _quiet_mlflow_logging() -> None:
    for name in ("alembic", "alembic.runtime.migration", "mlflow.store.db.utils", "mlflow.tracking.fluent",
                 "mlflow.store.sqlalchemy_store"):
        logger = logging.getLogger(name)
        if logger.level != logging.WARNING:  # setLevel clears every logger's cache: ~2 ms per call
            logger.setLevel(logging.WARNING)


def _block_config() -> dict[str, Any] | None:
    from prefect_ml.blocks import MLflowTracking
    from prefect_ml.data._api import load_block

    block = load_block(MLflowTracking, "default")
    if block is None:
        return None
    return {"tracking_uri": block.tracking_uri, "registry_uri": block.registry_uri,
            "ui_url": getattr(block, "ui_url", None)}


@lru_cache(maxsize=8)
def _resolve(env_uri: str | None, home: str) -> tuple[str, str | None, str | None]:
    if env_uri:
        return env_uri, os.environ.get("MLFLOW_REGISTRY_URI"), os.environ.get("PREFECT_ML_MLFLOW_UI_URL")
    config = _block_config()
    if config:
        return config["tracking_uri"], config["registry_uri"], config["ui_url"]
    # `mlflow ui --backend-store-uri sqlite:///$PREFECT_ML_HOME/mlflow.db` serves the embedded store here.
    return settings.default_tracking_uri(), None, os.environ.get("PREFECT_ML_MLFLOW_UI_URL", DEFAULT_UI_URL)


def tracking_config() -> tuple[str, str | None, str | None]:
    """Return ``(tracking_uri, registry_uri, ui_url)`` in use."""
    return _resolve(os.environ.get("MLFLOW_TRACKING_URI"), str(settings.home()))


def tracking_uri() -> str:
    """The MLflow tracking URI in use."""
    return tracking_config()[0]


def get_client():
    """An :class:`mlflow.tracking.MlflowClient` for the store in use."""
    _quiet_mlflow_logging()
    from mlflow.tracking import MlflowClient

    uri, registry, _ = tracking_config()
    return MlflowClient(tracking_uri=uri, registry_uri=registry or uri)


def _uses_default_store(uri: str) -> bool:
    return uri == settings.default_tracking_uri()


def ensure_experiment(client, name: str) -> str:
    """Return the id of experiment ``name``, creating it if needed.

    With the embedded store, artifacts go under ``$PREFECT_ML_HOME/mlartifacts`` (MLflow would
    otherwise use ``./mlruns`` relative to whatever folder the process runs in).
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    kwargs = {}
    if _uses_default_store(tracking_uri()):
        import uuid

        kwargs["artifact_location"] = f"{settings.default_artifact_root()}/{uuid.uuid4().hex}"
    try:
        return client.create_experiment(name, **kwargs)
    except Exception:
        experiment = client.get_experiment_by_name(name)  # created concurrently
        if experiment is None:
            raise
        return experiment.experiment_id


def _search_runs(client, filter_string: str, max_results: int):
    """Runs matching ``filter_string`` in every experiment, newest first."""
    experiments = client.search_experiments()
    if not experiments:
        return []
    return client.search_runs([e.experiment_id for e in experiments], filter_string=filter_string,
                              order_by=["attributes.start_time DESC"], max_results=max_results)


def find_job_run(client, job_name: str):
    """The MLflow run of job ``job_name`` (the newest if several), or ``None``."""
    runs = _search_runs(client, f"tags.`{TAG_JOB_NAME}` = '{_escape(job_name)}'", max_results=1)
    return runs[0] if runs else None


def list_job_runs(client, max_results: int = 100):
    """MLflow runs of prefect-ml jobs, newest first."""
    return _search_runs(client, f"tags.`{TAG_JOB_TYPE}` != ''", max_results=max_results)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def run_ui_url(experiment_id: str, run_id: str) -> str | None:
    """URL of the run in an MLflow UI, when one is configured or the store is an HTTP server."""
    uri, _, ui = tracking_config()
    base = ui or (uri if uri.startswith(("http://", "https://")) else None)
    if not base:
        return None
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def register_model_version(client, *, name: str, run_id: str, source: str, tags: dict[str, str] | None = None,
                           description: str | None = None):
    """Register ``source`` (an artifact URI of ``run_id``) as a new version of model ``name``.

    Returns:
        The new :class:`mlflow.entities.model_registry.ModelVersion`.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
            raise
    return client.create_model_version(name=name, source=source, run_id=run_id, tags=tags or {},
                                       description=description)


def log_folder(client, run_id: str, folder: Path, artifact_path: str) -> str:
    """Log a folder's files as artifacts of ``run_id`` under ``artifact_path``; return their URI."""
    client.log_artifacts(run_id, str(folder), artifact_path)
    run = client.get_run(run_id)
    return f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"
