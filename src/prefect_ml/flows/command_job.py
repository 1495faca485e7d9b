"""The ``command-job`` flow: one Azure ML command job as one Prefect flow run."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.states import Cancelled, Completed, Failed

from prefect_ml import settings
from prefect_ml.specs import CommandJob
from prefect_ml.tasks.execution import describe_failure, execute_command, prepare_command
from prefect_ml.tasks.inputs import resolve_inputs
from prefect_ml.tasks.outputs import upload_outputs
from prefect_ml.tasks.snapshot import snapshot_code
from prefect_ml.tasks.tracking import record_result, start_tracking


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    from prefect_ml.jobs import generate_job_name

    return flow_run.parameters.get("job_name") or generate_job_name()


@flow(name="command-job", flow_run_name=_flow_run_name, persist_result=False, validate_parameters=False)
def command_job(job: dict[str, Any], job_name: str | None = None, stream: bool = False,
                submission: dict[str, Any] | None = None):
    """Run a command job through Azure's training lifecycle.

    Steps (each a Prefect task): start the MLflow run, snapshot the code, resolve inputs,
    prepare outputs and render the command, run it as a process group, upload and register
    outputs, record the result.

    Args:
        job: The job specification, ``CommandJob.model_dump(mode="json", by_alias=True)``.
        job_name: The job's unique name (also this flow run's name); default: a generated name.
        stream: Echo the command's output on this process's stdout as it runs.
        submission: Set for jobs submitted to a work pool (``prefect_ml.compute.submit``):
            ``{"snapshot": {"hash", "uri", "upload_seconds", ...} | None, "submitted_at": epoch seconds}``;
            the code comes from that snapshot in the shared store instead of ``job["code"]``.

    Returns:
        A Completed state, or a Failed / Cancelled state whose message says why (with the
        tail of the command's output).
    """
    from prefect import get_run_logger
    from prefect.runtime import flow_run

    spec = CommandJob.model_validate(job)
    job_name = job_name or flow_run.name
    timings: dict[str, float] = {}
    job_dir = settings.jobs_dir() / job_name

    def timed(step: str, fn, *args, **kwargs):
        started = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            timings[step] = round(time.monotonic() - started, 3)

    submitted = (submission or {}).get("snapshot")
    if submission and submission.get("submitted_at"):
        if submitted:
            timings["snapshot_upload"] = submitted.get("upload_seconds", 0.0)
        timings["queued"] = round(max(time.time() - float(submission["submitted_at"]), 0.0), 3)
        get_run_logger().info("Lifecycle: snapshot upload %.2fs, queueing %.2fs",
                              timings.get("snapshot_upload", 0.0), timings["queued"])
    info = timed("start_tracking", start_tracking, spec, job_name)
    prepared = None
    try:
        if submitted:
            from prefect_ml.compute.submit import fetch_snapshot

            snapshot = {"path": timed("snapshot", fetch_snapshot, submitted)}
        else:
            snapshot = timed("snapshot", snapshot_code, spec.code_path()) if spec.code else None
        values = timed("resolve_inputs", resolve_inputs, spec, str(job_dir / "inputs"))
        prepared = timed("prepare", prepare_command, spec, job_name, str(job_dir),
                         snapshot["path"] if snapshot else None, values, info)
        timeout = spec.limits.timeout if spec.limits else None
        outcome = timed("run", execute_command, prepared.command, prepared.workdir, prepared.env,
                        prepared.log_path, timeout, stream, process_envs=prepared.process_envs)
        if not outcome.succeeded:
            status = "Canceled" if outcome.cancelled else "Failed"
            message = describe_failure(outcome, timeout)
            timed("record", record_result, info["run_id"], status=status, outputs={}, log_path=prepared.log_path,
                  workdir=prepared.workdir, timings=timings, error=message)
            return Cancelled(message=message) if outcome.cancelled else Failed(message=message)
        uploaded = timed("outputs", upload_outputs, spec, job_name, prepared.outputs, info["run_id"],
                         info["experiment_name"])
        timed("record", record_result, info["run_id"], status="Completed", outputs=uploaded["outputs"],
              log_path=prepared.log_path, workdir=prepared.workdir, timings=timings,
              registered_models=uploaded["registered_models"], registered_data=uploaded["registered_data"])
        get_run_logger().info("Lifecycle: %s", "  ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
        return Completed(message=f"Job {job_name} completed")
    except BaseException as exc:
        record_result.fn(info["run_id"], status="Failed", outputs={},
                         log_path=prepared.log_path if prepared else None,
                         workdir=prepared.workdir if prepared else None, timings=timings,
                         error=f"{type(exc).__name__}: {exc}")
        raise
