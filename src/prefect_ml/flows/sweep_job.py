"""The ``sweep-job`` flow: one Azure ML sweep job as one Prefect flow run, each trial a child command job."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Cancelled, Completed, Failed

from prefect_ml.specs.sweep import SweepJob


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    from prefect_ml.jobs import generate_job_name

    return flow_run.parameters.get("job_name") or generate_job_name()


@flow(name="sweep-job", flow_run_name=_flow_run_name, persist_result=False, validate_parameters=False)
def sweep_job(job: dict[str, Any], job_name: str | None = None, stream: bool = False):
    """Run a sweep job: sample configurations, run trials as child command jobs, terminate early, record.

    Re-running with the same ``job_name`` (or retrying this flow run) continues an interrupted sweep;
    see :mod:`prefect_ml.sweep.engine`.

    Args:
        job: The sweep, ``SweepJob.model_dump(mode="json", by_alias=True)``.
        job_name: The sweep's unique name (this flow run's name, the folder of its state).
        stream: Echo the trials' output on this process's stdout.

    Returns:
        Completed (at least one trial completed; the best trial is recorded), Cancelled (canceled
        or limits.timeout), or Failed (no trial completed, or the primary metric is never logged).
    """
    from prefect import get_run_logger
    from prefect.runtime import flow_run

    from prefect_ml.sweep.engine import SweepError, SweepRunner, open_trials, record_sweep, start_sweep_tracking

    spec = SweepJob.model_validate(job)
    job_name = job_name or flow_run.name
    logger = get_run_logger()
    with open_trials(spec, job_name, stream=stream) as trials:  # first: Dask trial slots start meanwhile
        info = start_sweep_tracking(spec, job_name)
        try:
            outcome = SweepRunner(spec, job_name, info, flow_run_id=str(flow_run.id), stream=stream,
                                  logger=logger).run(trials)
        except SweepError as exc:
            outcome = exc
        except BaseException as exc:
            record_sweep.fn(spec, job_name, info["run_id"], "Failed", error=f"{type(exc).__name__}: {exc}")
            raise
    if isinstance(outcome, SweepError):
        record_sweep(spec, job_name, info["run_id"], "Failed", error=str(outcome))
        return Failed(message=str(outcome))
    if outcome["stop_reason"] == "the sweep was canceled":
        record_sweep(spec, job_name, info["run_id"], "Canceled", error=outcome["stop_reason"])
        return Cancelled(message="Sweep canceled; running trials were cancelled")
    result = record_sweep(spec, job_name, info["run_id"], "Completed")
    best = result["best_trial"]
    if best is None:
        message = "No trial completed" + (f" ({outcome['stop_reason']})" if outcome["stop_reason"] else "")
        failed = [t for t in result["trials"] if t["status"] == "Failed"]
        if failed and failed[0].get("message"):
            message += f"; first failure ({failed[0]['name']}): {failed[0]['message']}"
        return Failed(message=message)
    note = f" ({outcome['stop_reason']})" if outcome["stop_reason"] else ""
    return Completed(message=f"Sweep {job_name} completed{note}: best trial {best['name']} "
                             f"{spec.primary_metric}={best['metric']:.6g} with {best['parameters']}")
