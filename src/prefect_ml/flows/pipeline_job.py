"""The ``pipeline-job`` flow: an Azure ML pipeline job as a Prefect flow whose steps are child runs."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.states import Completed, Failed

from prefect_ml.specs.pipeline import PipelineJob
from prefect_ml.tasks.pipeline import (record_steps, request_cancel, run_step, start_pipeline_tracking,
                                       step_registered_models)
from prefect_ml.tasks.tracking import record_result


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    from prefect_ml.jobs import generate_job_name

    return flow_run.parameters.get("job_name") or generate_job_name()


@flow(name="pipeline-job", flow_run_name=_flow_run_name, persist_result=False, validate_parameters=False)
def pipeline_job(job: dict[str, Any], job_name: str | None = None, stream: bool = False):
    """Run a pipeline job: every step a child run, independent steps at once, in dependency order.

    Steps run as ``pipeline-step`` tasks on the local compute's task runner (threads,
    :func:`prefect_ml.compute.targets.task_runner_for`); each command step is a ``command-job`` subflow on the
    local compute, or a flow run of the ``command-job/POOL`` deployment when its compute is a work pool.
    Data moves between steps as storage URIs (outputs written to the datastore, inputs read from there).
    When a step fails, steps depending on it are canceled; without ``settings.continue_on_step_failure``
    no new step starts and running steps are canceled. See
    https://learn.microsoft.com/azure/machine-learning/reference-yaml-job-pipeline.

    Args:
        job: The pipeline, ``PipelineJob.model_dump(mode="json", by_alias=True)``.
        job_name: The pipeline job's unique name (also this flow run's name).
        stream: Echo the steps' command output on stdout.

    Returns:
        A Completed state, or a Failed state naming the failed and canceled steps.
    """
    from prefect import get_run_logger
    from prefect.futures import as_completed
    from prefect.runtime import flow_run

    from prefect_ml.compute.targets import task_runner_for
    from prefect_ml.specs.pipeline_kind import compute_target

    logger = get_run_logger()
    spec = PipelineJob.model_validate(job)
    job_name = job_name or flow_run.name
    started = time.monotonic()
    info = start_pipeline_tracking(spec, job_name)
    order = spec.order()
    records: dict[str, dict[str, Any]] = {}
    failed_any = False
    target = compute_target(None)  # steps are dispatched from threads; each runs on its own compute
    try:
        with task_runner_for(target, max_workers=max(1, len(order))) as runner:
            running: dict[Any, str] = {}
            to_cancel: set[str] = set()
            while True:
                stop_new = failed_any and not spec.settings.continue_on_step_failure
                for name in order:
                    if name in records or name in running.values() or stop_new:
                        continue
                    deps = spec.jobs[name].depends_on
                    if any(records.get(d, {}).get("status") in ("Failed", "Canceled") for d in deps):
                        reason = ", ".join(d for d in deps if records.get(d, {}).get("status") in ("Failed",
                                                                                                   "Canceled"))
                        records[name] = _not_run(spec, name, f"canceled: step {reason} did not complete")
                        logger.warning("Step %s canceled (depends on %s)", name, reason)
                        continue
                    if all(records.get(d, {}).get("status") == "Completed" for d in deps):
                        upstream = {d: records[d]["outputs"] for d in deps}
                        future = runner.submit(run_step, parameters={
                            "spec_data": job, "step_name": name, "upstream": upstream, "pipeline_name": job_name,
                            "parent_run_id": info["run_id"], "experiment_name": info["experiment_name"],
                            "force_rerun": spec.settings.force_rerun, "stream": stream})
                        running[future] = name
                if not running:
                    break
                try:
                    done = next(iter(as_completed(list(running), timeout=2.0 if to_cancel else None)))
                except TimeoutError:  # some step to cancel had no child run yet: try again
                    to_cancel -= _cancel_steps(job_name, sorted(to_cancel & set(running.values())), logger)
                    continue
                name = running.pop(done)
                record = done.result(raise_on_failure=False)
                if not isinstance(record, dict):
                    record = _not_run(spec, name, f"step task ended without a record: {record!r}", "Failed")
                records[name] = record
                if record["status"] != "Completed":
                    if not failed_any and not spec.settings.continue_on_step_failure and running:
                        to_cancel = set(running.values())
                        request_cancel([f"{job_name}_{n}" for n in to_cancel])
                        to_cancel -= _cancel_steps(job_name, sorted(to_cancel), logger)
                    failed_any = True
        for name in order:
            if name not in records:
                records[name] = _not_run(spec, name, "canceled: an earlier step failed and "
                                         "settings.continue_on_step_failure is false")
    except BaseException as exc:
        steps = [records.get(n) or _not_run(spec, n, "canceled: the pipeline stopped") for n in order]
        record_steps(info["run_id"], steps)
        record_result.fn(info["run_id"], status="Failed", outputs={}, log_path=None, workdir=None,
                         timings={"total": round(time.monotonic() - started, 3)}, error=f"{type(exc).__name__}: {exc}")
        raise
    steps = [records[n] for n in order]
    registered = step_registered_models(spec, steps)
    record_steps(info["run_id"], steps)
    outputs = {}
    for name, step in spec.jobs.items():
        for step_output, parent_output in step.output_bindings.items():
            uri = records[name]["outputs"].get(step_output)
            if uri:
                outputs[parent_output] = uri
    bad = [s for s in steps if s["status"] != "Completed"]
    status = "Failed" if bad else "Completed"
    message = None
    if bad:
        message = "Pipeline failed: " + "; ".join(
            f"step {s['name']} {s['status'].lower()}" + (f": {s['error'].splitlines()[0]}" if s.get("error") else "")
            for s in bad)
    reused = [s["name"] for s in steps if s.get("reused")]
    timings = {s["name"]: s["duration_seconds"] or 0.0 for s in steps}
    timings["total"] = round(time.monotonic() - started, 3)
    record_result(info["run_id"], status=status, outputs=outputs, log_path=None, workdir=None, timings=timings,
                  error=message, registered_models=registered)
    if reused:
        logger.info("Reused steps: %s", ", ".join(reused))
    return Failed(message=message) if bad else Completed(message=f"Pipeline {job_name} completed")


def _cancel_steps(job_name: str, steps: list[str], logger) -> set[str]:
    """Set the child runs of running ``steps`` to Cancelling (their process groups are then killed).

    Returns:
        The steps whose child run was found (steps that have not created theirs yet are not).
    """
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.states import Cancelling

    from prefect_ml._prefect import prefect_client

    if not steps:
        return set()
    names = {f"{job_name}_{step}": step for step in steps}
    found: set[str] = set()
    try:
        with prefect_client() as client:
            for flow_run in client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=list(names)))):
                found.add(names[flow_run.name])
                if flow_run.state is not None and not flow_run.state.is_final():
                    client.set_flow_run_state(flow_run.id, Cancelling(message="another pipeline step failed"),
                                              force=True)
        if found:
            logger.warning("Canceling running steps %s: a step failed and settings.continue_on_step_failure is "
                           "false", ", ".join(sorted(found)))
    except Exception as exc:  # noqa: BLE001 - cancellation is best effort; the steps then simply finish
        logger.warning("Could not cancel running steps %s: %s", ", ".join(steps), exc)
    return found


def _not_run(spec: PipelineJob, name: str, reason: str, status: str = "Canceled") -> dict[str, Any]:
    step = spec.jobs[name]
    return {"name": name, "type": step.type, "status": status, "reused": False, "reused_from": None,
            "job_name": None, "prefect_flow_run_id": None, "mlflow_run_id": None, "outputs": {}, "started_at": None,
            "duration_seconds": None, "error": reason, "component": step.component,
            "compute": spec.step_compute(name), "reuse_key": None}
