"""Pipeline steps: building each step's job from upstream outputs, step reuse, running a step as a child run.

Step reuse follows Azure's rule for deterministic components
(https://learn.microsoft.com/azure/machine-learning/concept-component#reuse): a step whose code snapshot
hash, command, environment and resolved inputs (content hashes of their data) match an earlier successful
step is not run again; its outputs are reused. The key is stored on the step's MLflow run (tag
``prefect_ml.reuse_key``), so reuse works wherever the MLflow store is shared.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_ml import tracking

TAG_REUSE_KEY = "prefect_ml.reuse_key"
TAG_PIPELINE = "prefect_ml.pipeline"
TAG_PIPELINE_STEP = "prefect_ml.pipeline_step"
TAG_STEPS = "prefect_ml.pipeline_steps"
TAG_PARENT_RUN = "mlflow.parentRunId"


#: Child job names whose pipeline asked them not to start (a step failed; continue_on_step_failure is false).
_CANCEL_REQUESTED: set[str] = set()


def request_cancel(job_names: list[str]) -> None:
    """Ask steps of this process that have not started their child run yet not to start it."""
    _CANCEL_REQUESTED.update(job_names)


def content_hash(uri: str) -> str:
    """SHA-256 of a local file's or folder's content (relative names and bytes); the URI itself when remote.

    Uses the same per-file digest as code snapshots (:mod:`prefect_ml.tasks.snapshot`).
    """
    from prefect_ml.tasks.snapshot import _file_digest

    path = Path(uri)
    if "://" in uri or not path.exists():
        return "uri:" + uri
    digest = hashlib.sha256()
    files = [(path.name, path)] if path.is_file() else sorted(
        (p.relative_to(path).as_posix(), p) for p in path.rglob("*") if p.is_file())
    for rel, file in files:
        digest.update(f"{rel}\0{_file_digest(file)}\n".encode())
    return digest.hexdigest()


def reuse_key(job, *, step_type: str = "command") -> str:
    """The reuse key of a resolved command-step job (a ``CommandJob`` whose inputs are final URIs/values).

    Covers: the code snapshot hash, the command, the environment and its variables, each input's type, mode
    and value (data inputs by content hash), and each output's type and mode.
    """
    from prefect_ml.data import resolve_uri
    from prefect_ml.tasks.snapshot import take_snapshot

    code = job.code_path()
    code_hash = take_snapshot(code).hash if code is not None and code.is_dir() else (job.code or "")
    inputs: dict[str, Any] = {}
    for name, item in sorted(job.inputs.items()):
        if item.is_data and item.path is not None:
            try:
                uri = resolve_uri(str(item.path), base_path=job.base_path,
                                  asset_kind="model" if item.type in ("mlflow_model", "custom_model",
                                                                      "triton_model") else "data")
            except Exception:  # noqa: BLE001 - an unresolvable input simply never matches
                uri = str(item.path)
            inputs[name] = [item.type, item.mode, content_hash(uri)]
        else:
            inputs[name] = [item.type, item.value]
    payload = {
        "type": step_type, "code": code_hash, "command": job.command,
        "environment": job.environment.model_dump(mode="json") if job.environment is not None else None,
        "environment_variables": dict(sorted(job.environment_variables.items())), "inputs": inputs,
        "outputs": {k: [v.type, v.mode] for k, v in sorted(job.outputs.items())},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _outputs_exist(outputs: dict[str, str]) -> bool:
    return all("://" in uri or Path(uri).exists() for uri in outputs.values())


def find_reusable(key: str) -> dict[str, Any] | None:
    """The newest Completed step run with reuse key ``key`` whose outputs still exist, as a record, or None."""
    client = tracking.get_client()
    runs = tracking._search_runs(client, f"tags.`{TAG_REUSE_KEY}` = '{key}' and tags.`{tracking.TAG_STATUS}` = "
                                 "'Completed'", max_results=5)
    for run in runs:
        tags = run.data.tags
        outputs = {k[len(tracking.TAG_OUTPUT_PREFIX):]: v for k, v in tags.items()
                   if k.startswith(tracking.TAG_OUTPUT_PREFIX)}
        if _outputs_exist(outputs):
            return {"job_name": tags.get(tracking.TAG_JOB_NAME), "mlflow_run_id": run.info.run_id,
                    "prefect_flow_run_id": tags.get(tracking.TAG_FLOW_RUN_ID), "outputs": outputs}
    return None


def find_finished_step(pipeline_name: str, step_name: str) -> dict[str, Any] | None:
    """The Completed child run of step ``step_name`` of this same pipeline job (a retried flow run), or None."""
    client = tracking.get_client()
    runs = tracking._search_runs(client, f"tags.`{TAG_PIPELINE}` = '{tracking._escape(pipeline_name)}' and "
                                 f"tags.`{TAG_PIPELINE_STEP}` = '{step_name}' and tags.`{tracking.TAG_STATUS}` = "
                                 "'Completed'", max_results=1)
    if not runs:
        return None
    tags = runs[0].data.tags
    outputs = {k[len(tracking.TAG_OUTPUT_PREFIX):]: v for k, v in tags.items() if k.startswith(tracking.TAG_OUTPUT_PREFIX)}
    return {"job_name": tags.get(tracking.TAG_JOB_NAME), "mlflow_run_id": runs[0].info.run_id,
            "prefect_flow_run_id": tags.get(tracking.TAG_FLOW_RUN_ID), "outputs": outputs}


def _resolved_step_job(spec, step_name: str, upstream: dict[str, dict[str, str]], pipeline_name: str,
                       parent_run_id: str, experiment_name: str):
    """The command job of step ``step_name`` with upstream outputs, parent outputs and tags filled in."""
    from prefect_ml.specs import CommandJob
    from prefect_ml.tasks.outputs import DEFAULT_OUTPUT_PATH

    step = spec.jobs[step_name]
    data = json.loads(json.dumps(step.job))
    for input_name, (source, output) in step.input_bindings.items():
        data["inputs"][input_name]["path"] = upstream[source][output]
    for output_name, parent_output in step.output_bindings.items():
        target = spec.outputs[parent_output]
        path = target.path or DEFAULT_OUTPUT_PATH.format(name=pipeline_name, output=parent_output).replace(
            "workspaceblobstore", spec.settings.datastore_name)
        merged = {**data["outputs"].get(output_name, {}), **target.model_dump(exclude_none=True)}
        merged["path"] = path.replace("${{name}}", pipeline_name)
        data["outputs"][output_name] = merged
    datastore = spec.settings.datastore_name
    for output_name, output in data.get("outputs", {}).items():
        if not output.get("path") and datastore != "workspaceblobstore":
            output["path"] = DEFAULT_OUTPUT_PATH.replace("workspaceblobstore", datastore).format(
                name="${{name}}", output=output_name)
    data["tags"] = {**data.get("tags", {}), TAG_PARENT_RUN: parent_run_id, TAG_PIPELINE: pipeline_name,
                    TAG_PIPELINE_STEP: step_name}
    data["experiment_name"] = data.get("experiment_name") or experiment_name
    data["compute"] = spec.step_compute(step_name)
    data["name"] = f"{pipeline_name}_{step_name}"
    data.setdefault("display_name", step_name)
    return CommandJob.model_validate(data)


def _child_outputs(flow_run_id) -> tuple[dict[str, str], str | None]:
    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        flow_run = client.read_flow_run(flow_run_id)
    run_ids = [t.split(":", 1)[1] for t in flow_run.tags if t.startswith("mlflow_run_id:")]
    if not run_ids:
        return {}, None
    run = tracking.get_client().get_run(run_ids[0])
    outputs = {k[len(tracking.TAG_OUTPUT_PREFIX):]: v for k, v in run.data.tags.items()
               if k.startswith(tracking.TAG_OUTPUT_PREFIX)}
    return outputs, run_ids[0]


def _best_trial_outputs(sweep_run_id: str | None) -> tuple[str | None, dict[str, str]]:
    """A sweep step's outputs: its best trial's (Azure: a sweep step outputs what its best trial wrote).

    Returns:
        ``(best trial job name, output name -> URI)``; ``(None, {})`` when the sweep recorded no best trial.
    """
    from prefect_ml.sweep.engine import TAG_BEST

    if not sweep_run_id:
        return None, {}
    client = tracking.get_client()
    best = client.get_run(sweep_run_id).data.tags.get(TAG_BEST)
    run = tracking.find_job_run(client, best) if best else None
    if run is None:
        return best, {}
    return best, {k[len(tracking.TAG_OUTPUT_PREFIX):]: v for k, v in run.data.tags.items()
                  if k.startswith(tracking.TAG_OUTPUT_PREFIX)}


def _step_run_name() -> str:
    from prefect.runtime import task_run

    return f"step-{task_run.parameters.get('step_name', 'step')}"


@task(name="pipeline-step", task_run_name=_step_run_name, cache_policy=NO_CACHE, persist_result=False)
def run_step(spec_data: dict[str, Any], step_name: str, upstream: dict[str, dict[str, str]], pipeline_name: str,
             parent_run_id: str, experiment_name: str, force_rerun: bool = False, stream: bool = False
             ) -> dict[str, Any]:
    """Run (or reuse) one pipeline step as a child run; never raises.

    A command step runs the ``command-job`` flow as a subflow (a child flow run of the pipeline); sweep and
    AutoML steps run their own kind's flow. A deterministic step whose :func:`reuse_key` matches an earlier
    Completed step is not run: its outputs are reused.

    Args:
        spec_data: The pipeline, ``PipelineJob.model_dump(mode="json", by_alias=True)``.
        step_name: The step to run.
        upstream: Step name -> output name -> URI, for the steps it consumes.
        pipeline_name: The pipeline job's name (child jobs are ``PIPELINE_STEP``).
        parent_run_id: The pipeline's MLflow run (each child run is nested under it).
        experiment_name: The MLflow experiment of the pipeline.
        force_rerun: Never reuse (``settings.force_rerun``).
        stream: Echo command output on stdout.

    Returns:
        The step record: ``name``, ``type``, ``status`` (Completed, Failed, Canceled), ``reused``,
        ``reused_from``, ``job_name``, ``prefect_flow_run_id``, ``mlflow_run_id``, ``outputs`` (name -> URI),
        ``started_at``, ``duration_seconds``, ``error``, ``component``, ``compute``, ``reuse_key``.
    """
    from prefect import get_run_logger

    from prefect_ml.specs.pipeline import PipelineJob

    logger = get_run_logger()
    spec = PipelineJob.model_validate(spec_data)
    step = spec.jobs[step_name]
    started = time.monotonic()
    record: dict[str, Any] = {"name": step_name, "type": step.type, "status": "Failed", "reused": False,
                              "reused_from": None, "job_name": f"{pipeline_name}_{step_name}",
                              "prefect_flow_run_id": None, "mlflow_run_id": None, "outputs": {},
                              "started_at": datetime.now(timezone.utc).isoformat(), "duration_seconds": None,
                              "error": None, "component": step.component, "compute": spec.step_compute(step_name),
                              "reuse_key": None}
    try:
        if not (force_rerun or step.force_rerun):
            finished = find_finished_step(pipeline_name, step_name)
            if finished is not None:  # this pipeline run is being retried: keep what already finished
                record.update(status="Completed", reused=True, reused_from=finished["job_name"],
                              job_name=finished["job_name"], prefect_flow_run_id=finished["prefect_flow_run_id"],
                              mlflow_run_id=finished["mlflow_run_id"], outputs=finished["outputs"])
                logger.info("Step %s already finished in this pipeline run (retry): reused", step_name)
                return record
        if step.type == "command":
            job = _resolved_step_job(spec, step_name, upstream, pipeline_name, parent_run_id, experiment_name)
            if step.is_deterministic and not (force_rerun or step.force_rerun):
                key = reuse_key(job)
                record["reuse_key"] = key
                earlier = find_reusable(key)
                if earlier is not None:
                    record.update(status="Completed", reused=True, reused_from=earlier["job_name"],
                                  job_name=earlier["job_name"], prefect_flow_run_id=earlier["prefect_flow_run_id"],
                                  mlflow_run_id=earlier["mlflow_run_id"], outputs=earlier["outputs"])
                    logger.info("Step %s reused: outputs of job %s (same code, command, environment and inputs)",
                                step_name, earlier["job_name"])
                    return record
                job = job.model_copy(update={"tags": {**job.tags, TAG_REUSE_KEY: key}})
            from prefect_ml.flows.command_job import command_job

            if job.name in _CANCEL_REQUESTED:
                record.update(status="Canceled", error="canceled: another step failed and "
                              "settings.continue_on_step_failure is false")
                return record
            from prefect_ml.specs.pipeline_kind import compute_target

            target = compute_target(spec.step_compute(step_name))
            if target.is_local:
                logger.info("Step %s: running command job %s", step_name, job.name)
                state = command_job(job=job.model_dump(mode="json", by_alias=True), job_name=job.name,
                                    stream=stream, return_state=True)
            else:
                logger.info("Step %s: submitting command job %s to work pool %s (%s)", step_name, job.name,
                            target.name, target.type)
                state = run_on_work_pool(job, target, timeout_seconds=step_wait_seconds(job))
        else:
            state, job = _run_other_kind(spec, step_name, upstream, pipeline_name, parent_run_id, experiment_name,
                                         stream)
        flow_run_id = state.state_details.flow_run_id
        record["prefect_flow_run_id"] = str(flow_run_id) if flow_run_id else None
        if flow_run_id:
            record["outputs"], record["mlflow_run_id"] = _child_outputs(flow_run_id)
        record["job_name"] = job.name
        if state.is_completed() and step.type == "command":
            _fill_default_artifacts(job, record["outputs"])
        if state.is_completed() and step.type == "sweep":
            record["best_trial"], best_outputs = _best_trial_outputs(record["mlflow_run_id"])
            record["outputs"] = {**best_outputs, **record["outputs"]}
        if state.is_completed():
            record["status"] = "Completed"
        else:
            record["status"] = "Canceled" if state.is_cancelled() else "Failed"
            record["error"] = state.message
            logger.error("Step %s %s: %s", step_name, record["status"].lower(), state.message)
    except Exception as exc:  # noqa: BLE001 - a broken step fails the step, not the scheduler
        record["status"] = "Failed"
        record["error"] = f"{type(exc).__name__}: {exc}"
        logger.error("Step %s failed: %s", step_name, record["error"])
    finally:
        record["duration_seconds"] = round(time.monotonic() - started, 3)
    return record


#: Environment variable: most seconds a pipeline waits for a step on a work pool when the step sets no
#: ``limits.timeout`` (default: one day).
STEP_WAIT_ENV = "PREFECT_ML_PIPELINE_STEP_WAIT_SECONDS"
#: Seconds a step on a work pool may wait for a worker before its ``limits.timeout`` starts counting.
QUEUE_ALLOWANCE_SECONDS = 3600.0


def step_wait_seconds(job) -> float:
    """How long a pipeline waits for a step submitted to a work pool, seconds.

    ``limits.timeout`` of the step plus :data:`QUEUE_ALLOWANCE_SECONDS` when the step sets one; otherwise
    ``$PREFECT_ML_PIPELINE_STEP_WAIT_SECONDS`` (default 86400).
    """
    import os

    limits = getattr(job, "limits", None)
    timeout = getattr(limits, "timeout", None) if limits is not None else None
    if timeout:
        return float(timeout) + QUEUE_ALLOWANCE_SECONDS
    return float(os.environ.get(STEP_WAIT_ENV) or 86400)


def run_on_work_pool(job, target, *, timeout_seconds: float, poll_seconds: float = 0.5):
    """Run a resolved command step on a work-pool target and wait for its flow run's final state.

    The step is submitted like any remote command job (:func:`prefect_ml.compute.submit.submit_job`: code
    snapshot in shared storage, a flow run of the pool's ``command-job/POOL`` deployment, named after the
    step's job), as a child of the current ``pipeline-step`` task run so the Prefect UI nests it under the
    pipeline. Its outputs are written by the worker to their datastore URIs and read back from its MLflow run.

    Args:
        job: The step's resolved ``CommandJob`` (upstream outputs bound, ``name`` set).
        target: The step's compute target (a work pool: process, docker, kubernetes or dask).
        timeout_seconds: Most seconds to wait for a final state; past it the flow run is cancelled.
        poll_seconds: Interval between reads of the flow run's state, seconds.

    Returns:
        The child flow run's final Prefect state (Cancelled with a message when the wait timed out).
    """
    from prefect.runtime import task_run
    from prefect.states import Cancelled, Cancelling

    from prefect_ml._prefect import prefect_client
    from prefect_ml.compute.submit import submit_job

    from uuid import UUID

    parent = UUID(str(task_run.id)) if task_run.id else None
    submitted = submit_job(job, target, parent_task_run_id=parent)
    flow_run_id = submitted.prefect_flow_run_id
    deadline = time.monotonic() + timeout_seconds
    with prefect_client() as client:
        while True:
            flow_run = client.read_flow_run(flow_run_id)
            state = flow_run.state
            if state is not None and state.is_final():
                state.state_details.flow_run_id = flow_run.id
                return state
            if time.monotonic() > deadline:
                client.set_flow_run_state(flow_run.id, Cancelling(message="the pipeline stopped waiting"),
                                          force=True)
                timed_out = Cancelled(message=f"step {job.name} did not end within {timeout_seconds:.0f} s on "
                                              f"work pool {target.name}; its flow run was cancelled")
                timed_out.state_details.flow_run_id = flow_run.id
                return timed_out
            time.sleep(poll_seconds)


def _fill_default_artifacts(job, outputs: dict[str, str]) -> None:
    """Azure's default ``artifacts`` output: the run's ``outputs/`` and ``logs/`` folders.

    A step output named ``artifacts`` that its command never writes (no ``${{outputs.artifacts}}``) receives
    a copy of the working folder's ``outputs/`` and ``logs/``, as in Azure's ``hello-pipeline-default-artifacts``.
    """
    import shutil

    from prefect_ml import settings

    uri = outputs.get("artifacts")
    if not uri or "://" in uri or "artifacts" in job.referenced_outputs():
        return
    workdir = settings.jobs_dir() / job.name / "wd"
    for folder in ("outputs", "logs"):
        if (workdir / folder).is_dir():
            shutil.copytree(workdir / folder, Path(uri) / folder, dirs_exist_ok=True)


def _run_other_kind(spec, step_name, upstream, pipeline_name, parent_run_id, experiment_name, stream):
    """Run a sweep/AutoML step through its job kind (``kind_module(type).parse/run``)."""
    from prefect_ml.job_kinds import kind_module
    from prefect_ml.specs.pipeline import binding_of

    step = spec.jobs[step_name]
    data = json.loads(json.dumps(step.job))
    for input_name, (source, output) in step.input_bindings.items():
        value = data.get("inputs", {}).get(input_name)
        uri = upstream[source][output]
        if isinstance(value, dict):
            value["path"] = uri
        elif binding_of(value):
            data["inputs"][input_name] = {"type": step.output_types.get(output, "uri_folder"), "path": uri}
    data["name"] = f"{pipeline_name}_{step_name}"
    data["experiment_name"] = data.get("experiment_name") or experiment_name
    data["tags"] = {**(data.get("tags") or {}), TAG_PARENT_RUN: parent_run_id, TAG_PIPELINE: pipeline_name,
                    TAG_PIPELINE_STEP: step_name}
    if spec.step_compute(step_name):
        data["compute"] = spec.step_compute(step_name)
    kind = kind_module(step.type)
    job = kind.parse(data, base_path=spec.base_path, source_file=None, file=spec.source_file, problems=[])
    job = kind.preflight(job.model_copy(update={"name": data["name"]}))
    return kind.run(job, stream=stream), job


@task(name="start-pipeline-tracking", cache_policy=NO_CACHE, persist_result=False)
def start_pipeline_tracking(spec, job_name: str) -> dict[str, str]:
    """Create the pipeline's MLflow run (the parent of its steps' runs) and link it with the flow run.

    When this flow run already has an MLflow run (Prefect is retrying the flow run), that run is continued
    instead: the retry's step records and outcome replace the failed attempt's.

    Returns:
        ``{"run_id", "experiment_id", "experiment_name", "tracking_uri"}``.
    """
    from prefect.context import get_run_context

    from prefect_ml._prefect import prefect_client
    from prefect_ml.tasks.tracking import open_job_run

    with prefect_client() as prefect:
        flow_run = prefect.read_flow_run(get_run_context().task_run.flow_run_id)
    linked = sorted(t.split(":", 1)[1] for t in flow_run.tags if t.startswith("mlflow_run_id:"))
    if linked:  # a retry of this flow run
        client = tracking.get_client()
        run = client.get_run(linked[0])
        client.update_run(run.info.run_id, status="RUNNING")
        if tracking.TAG_STATUS in run.data.tags:
            client.delete_tag(run.info.run_id, tracking.TAG_STATUS)
        experiment = client.get_experiment(run.info.experiment_id)
        return {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
                "experiment_name": experiment.name, "tracking_uri": tracking.tracking_uri()}
    return open_job_run(spec, job_name, "pipeline", params=spec.inputs, extra_tags={
        "prefect_ml.compute": spec.settings.default_compute or spec.compute or "local"})


def record_steps(run_id: str, steps: list[dict[str, Any]]) -> None:
    """Store the step records on the pipeline's MLflow run (tag, and a ``pipeline/steps.json`` artifact)."""
    client = tracking.get_client()
    text = json.dumps(steps, default=str)
    client.log_dict(run_id, steps, "pipeline/steps.json")
    client.set_tag(run_id, TAG_STEPS, text if len(text) <= 7900 else "artifact:pipeline/steps.json")


def step_registered_models(spec, steps: list[dict[str, Any]]) -> dict[str, str]:
    """The model versions the pipeline's steps registered (their outputs with a model ``name``).

    Adds ``registered_models`` (step output -> ``NAME:VERSION``, read from the step's MLflow run) to each
    step record, reused steps included (their outputs are this pipeline's outputs too).

    Returns:
        Pipeline-level ``{key: "NAME:VERSION"}``: the key is the pipeline output a step output is bound to
        (``${{parent.outputs.X}}``), else ``STEP.OUTPUT``.
    """
    client = tracking.get_client()
    registered: dict[str, str] = {}
    for step in steps:
        step["registered_models"] = {}
        if step.get("status") != "Completed" or not step.get("mlflow_run_id"):
            continue
        try:
            tags = client.get_run(step["mlflow_run_id"]).data.tags
        except Exception:  # noqa: BLE001 - a deleted step run registers nothing
            continue
        prefix = tracking.TAG_REGISTERED_MODEL_PREFIX
        step["registered_models"] = {k[len(prefix):]: v for k, v in tags.items() if k.startswith(prefix)}
        bindings = spec.jobs[step["name"]].output_bindings
        for output, ref in step["registered_models"].items():
            registered[bindings.get(output) or f"{step['name']}.{output}"] = ref
    return registered


def read_steps(run) -> list[dict[str, Any]]:
    """The step records stored by :func:`record_steps` on the pipeline's MLflow run (empty if none yet)."""
    text = run.data.tags.get(TAG_STEPS)
    if not text:
        return []
    if text.startswith("artifact:"):
        import mlflow.artifacts

        return mlflow.artifacts.load_dict(f"{run.info.artifact_uri.rstrip('/')}/pipeline/steps.json")
    return json.loads(text)
