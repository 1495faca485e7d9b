"""The job's MLflow run: creating it, linking it to the flow run, and recording the result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_ml import tracking
from prefect_ml.jobs import flow_run_ui_url
from prefect_ml.specs import CommandJob


def default_experiment_name(spec: Any) -> str:
    """Azure's rule: the experiment defaults to the name of the folder the job was submitted from."""
    if spec.experiment_name:
        return spec.experiment_name
    folder = Path(spec.base_path).name if spec.base_path else Path.cwd().name
    return folder or "Default"


@task(name="start-tracking", cache_policy=NO_CACHE, persist_result=False)
def start_tracking(spec: CommandJob, job_name: str, job_type: str = "command") -> dict[str, str]:
    """Create the job's MLflow run and link it with the Prefect flow run both ways.

    The run carries tags ``prefect_ml.job_name``, ``prefect_ml.job_type``, ``prefect.flow_run_id``,
    ``prefect.flow_run_url``, the job's own tags, and its literal inputs as params. The flow run gets
    the tags ``prefect-ml``, ``prefect-ml:<job type>`` and ``mlflow_run_id:<id>`` and, when an MLflow UI URL is known, a link artifact.

    Returns:
        ``{"run_id", "experiment_id", "experiment_name", "tracking_uri"}``.
    """
    return open_job_run(spec, job_name, job_type, extra_tags={tracking.TAG_COMMAND: spec.command[:5000]},
                        params=spec.inputs)


def open_job_run(spec: Any, job_name: str, job_type: str, *, extra_tags: dict[str, str] | None = None,
                 params: dict[str, Any] | None = None) -> dict[str, str]:
    """Create a job's MLflow run from inside its flow run's task and link the two both ways.

    Shared by every job kind (command, pipeline, AutoML): the experiment follows Azure's default
    (:func:`default_experiment_name`); the run gets the job's own tags, ``prefect_ml.job_name``,
    ``prefect_ml.job_type``, ``prefect.flow_run_id``/``_url``, ``prefect_ml.compute``, the description as
    ``mlflow.note.content``, then ``extra_tags``; literal ``params`` (name -> Input) are logged as params.

    Returns:
        ``{"run_id", "experiment_id", "experiment_name", "tracking_uri"}``.
    """
    from mlflow.entities import Param
    from prefect.context import get_run_context

    flow_run_id = str(get_run_context().task_run.flow_run_id)
    client = tracking.get_client()
    experiment_name = default_experiment_name(spec)
    experiment_id = tracking.ensure_experiment(client, experiment_name)
    tags = {str(k): str(v) for k, v in (spec.tags or {}).items()}
    tags.update({
        tracking.TAG_JOB_NAME: job_name,
        tracking.TAG_JOB_TYPE: job_type,
        tracking.TAG_FLOW_RUN_ID: flow_run_id,
        tracking.TAG_DISPLAY_NAME: spec.display_name or job_name,
        "prefect_ml.compute": spec.compute or "local",
    })
    tags.update(extra_tags or {})
    if spec.description:
        tags["mlflow.note.content"] = spec.description
    url = flow_run_ui_url(flow_run_id)
    if url and url != flow_run_id:
        tags[tracking.TAG_FLOW_RUN_URL] = url
    run = client.create_run(experiment_id, tags=tags, run_name=spec.display_name or job_name)
    run_id = run.info.run_id
    literal = [Param(name, str(item.value)[:6000]) for name, item in (params or {}).items()
               if not item.is_data and item.value is not None]
    if literal:
        client.log_batch(run_id, params=literal)
    _link_flow_run(flow_run_id, run_id, experiment_id, job_type)
    return {"run_id": run_id, "experiment_id": experiment_id, "experiment_name": experiment_name,
            "tracking_uri": tracking.tracking_uri()}


#: Flow-run tag of a child job (a pipeline step, a sweep trial): its parent flow run is a prefect-ml job.
#: ``prefect-ml job list`` leaves these out unless ``--parent-job-name`` is given, as ``az ml job list`` does.
CHILD_JOB_TAG = "prefect-ml:child"


def _parent_is_job(client, flow_run) -> bool:
    """Whether ``flow_run`` is a subflow of a prefect-ml job's flow run (two reads, only for subflows).

    A job started by a schedule or a retraining flow is a subflow too, of a flow run that is not a job:
    it stays a top-level job.
    """
    if flow_run.parent_task_run_id is None:
        return False
    try:
        parent_task = client.read_task_run(flow_run.parent_task_run_id)
        parent = client.read_flow_run(parent_task.flow_run_id) if parent_task.flow_run_id else None
    except Exception:  # noqa: BLE001 - a parent that cannot be read is not a job we can list the run under
        return False
    return parent is not None and "prefect-ml" in (parent.tags or [])


def _link_flow_run(flow_run_id: str, run_id: str, experiment_id: str, job_type: str) -> None:
    from prefect.artifacts import create_link_artifact, create_markdown_artifact
    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        flow_run = client.read_flow_run(flow_run_id)
        new_tags = ["prefect-ml", f"prefect-ml:{job_type}", f"mlflow_run_id:{run_id}"]
        if _parent_is_job(client, flow_run):
            new_tags.append(CHILD_JOB_TAG)
        client.update_flow_run(flow_run_id, tags=sorted({*flow_run.tags, *new_tags}))
    link = tracking.run_ui_url(experiment_id, run_id)
    if link:
        create_link_artifact(link=link, link_text=f"MLflow run {run_id}", key="mlflow-run",
                             description="The job's MLflow run (metrics, artifacts, models).")
    else:
        create_markdown_artifact(
            key="mlflow-run",
            markdown=f"MLflow run `{run_id}` in experiment `{experiment_id}` at `{tracking.tracking_uri()}`",
            description="The job's MLflow run.")


@task(name="record-result", cache_policy=NO_CACHE, persist_result=False)
def record_result(run_id: str, *, status: str, outputs: dict[str, str], log_path: str | None,
                  workdir: str | None, timings: dict[str, float], error: str | None = None,
                  registered_models: dict[str, str] | None = None,
                  registered_data: dict[str, str] | None = None) -> dict[str, Any]:
    """Write the job's outcome into its MLflow run and end the run.

    Logs ``user_logs/std_log.txt`` and the working folder's ``outputs/`` and ``logs/`` (Azure's
    conventions) as artifacts, sets the ``prefect_ml.*`` tags (status, outputs, log path,
    timings, error) and terminates the run as FINISHED, FAILED or KILLED.

    Returns:
        The last value of each metric in the run.
    """
    client = tracking.get_client()
    if log_path and Path(log_path).exists():
        client.log_artifact(run_id, log_path, "user_logs")
    if workdir:
        for folder in ("outputs", "logs"):
            path = Path(workdir) / folder
            if path.is_dir() and any(path.iterdir()):
                client.log_artifacts(run_id, str(path), folder)
    from mlflow.entities import RunTag

    tags = [RunTag(tracking.TAG_STATUS, status), RunTag(tracking.TAG_TIMINGS, json.dumps(timings))]
    if log_path:
        tags.append(RunTag(tracking.TAG_LOG_PATH, log_path))
    for name, uri in outputs.items():
        tags.append(RunTag(tracking.TAG_OUTPUT_PREFIX + name, uri))
    for name, ref in (registered_models or {}).items():
        tags.append(RunTag(f"{tracking.TAG_REGISTERED_MODEL_PREFIX}{name}", ref))
    for name, ref in (registered_data or {}).items():
        tags.append(RunTag(f"{tracking.TAG_REGISTERED_DATA_PREFIX}{name}", ref))
    if error:
        tags.append(RunTag(tracking.TAG_ERROR, error[-4000:]))
    client.log_batch(run_id, tags=tags)
    mlflow_status = {"Completed": "FINISHED", "Canceled": "KILLED"}.get(status, "FAILED")
    client.set_terminated(run_id, status=mlflow_status)
    return dict(client.get_run(run_id).data.metrics)
