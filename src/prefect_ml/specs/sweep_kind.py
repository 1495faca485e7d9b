"""The ``sweep`` job kind (see :mod:`prefect_ml.job_kinds`)."""

from __future__ import annotations

from typing import Any

from prefect_ml.specs.sweep import parse  # noqa: F401  (the kind's parser)

TYPE = "sweep"
#: The sweep's own flow runs in the submitting process on these compute types; its trials go to the compute's
#: task runner (threads, or the Dask cluster of a dask target). See :mod:`prefect_ml.job_kinds`.
IN_PROCESS_COMPUTE = frozenset({"local", "dask"})


def preflight(spec):
    """Check what the trials need outside the file: compute, code folder, environment, inputs.

    Raises:
        ValidationError: The compute is a work pool other than dask (the trials run on the compute's task
            runner), or it does not exist.
        NotFoundError: An input or the code folder does not exist.
        ConfigurationError: The environment cannot be resolved.
    """
    from prefect_ml.compute.environments import resolve_environment
    from prefect_ml.job_kinds import check_in_process_compute
    from prefect_ml.tasks.inputs import check_inputs
    from prefect_ml.tasks.snapshot import check_code_folder

    check_in_process_compute("sweep", IN_PROCESS_COMPUTE, spec)
    if spec.is_function_trial:  # imported and checked against the search space when parsed
        return spec
    trial = spec.trial_job({n: d.representative() for n, d in spec.search_space.items()})
    if trial.code:
        check_code_folder(trial.code_path() or trial.code)
    resolve_environment(trial.environment)
    check_inputs(trial)
    return spec


def can_resume(spec, flow_run) -> bool:
    """Whether an existing job of the same name is an unfinished sweep that this run continues."""
    state = getattr(flow_run, "state", None)
    if state is not None and state.type.value == "COMPLETED":
        return False
    from prefect_ml.sweep.engine import has_state

    return has_state(spec.name)


def run(spec, *, stream: bool = False) -> Any:
    """Run the ``sweep-job`` flow for ``spec`` in this process; return its final state."""
    from prefect_ml.flows.sweep_job import sweep_job

    return sweep_job(job=spec.model_dump(mode="json", by_alias=True), job_name=spec.name, stream=stream,
                     return_state=True)


def describe(job, flow_run, run) -> None:
    """Fill ``job.details`` with ``best_trial`` and ``trials`` (status, parameters, metric, terminated_early)."""
    from prefect_ml.sweep.engine import describe_sweep

    describe_sweep(job, flow_run, run)
