"""The ``pipeline`` job kind (see :mod:`prefect_ml.job_kinds`)."""

from __future__ import annotations

from typing import Any

from prefect_ml.exceptions import NotFoundError, Problem, ValidationError
from prefect_ml.specs.pipeline import parse_pipeline

TYPE = "pipeline"
#: Azure's serverless compute: compute managed for you, which here is the local compute.
SERVERLESS = frozenset({"serverless", "azureml:serverless"})
#: Compute types on which sweep and AutoML steps can run (in the pipeline's process, trials on the
#: compute's task runner: threads, or the Dask cluster).
IN_PROCESS_TYPES = frozenset({"local", "dask"})


def parse(data, *, base_path, source_file, file, problems):
    """Validate the mapping of a pipeline job (``type: pipeline``); see :func:`parse_pipeline`."""
    return parse_pipeline(data, base_path=base_path, source_file=source_file, file=file, problems=problems)


def compute_target(name: str | None):
    """Resolve a step's compute (``serverless`` is the local compute); see :func:`prefect_ml.compute.targets.get_compute`."""
    from prefect_ml.compute.targets import get_compute

    return get_compute(None if name in SERVERLESS else name)


def preflight(spec):
    """Check every step's compute, code folder, environment and unbound inputs; change nothing.

    Raises:
        ValidationError: A compute target is unknown, or a sweep/AutoML step's compute is a work pool other
            than dask (field ``jobs.STEP.compute``). Command steps run on any target: work pools get them
            as flow runs of their ``command-job/POOL`` deployment.
        NotFoundError: An input, data asset, model, datastore or code folder does not exist.
        ConfigurationError: An environment cannot be resolved.
    """
    from prefect_ml.compute.environments import resolve_environment
    from prefect_ml.job_kinds import kind_module
    from prefect_ml.specs import CommandJob
    from prefect_ml.specs.pipeline import binding_of
    from prefect_ml.tasks.inputs import check_inputs
    from prefect_ml.tasks.snapshot import check_code_folder

    problems: list[Problem] = []
    for name, step in spec.jobs.items():
        compute = spec.step_compute(name)
        try:
            target = compute_target(compute)
            if step.type != "command" and target.type not in IN_PROCESS_TYPES:
                field = f"jobs.{name}.compute" if step.compute else "settings.default_compute"
                problems.append(Problem(field, f"step {name} is a {step.type} step: it runs in the pipeline's "
                                        f"process with its trials on the compute's task runner, so its compute "
                                        f"must be local or a dask target; {target.name} is a {target.type} work "
                                        f"pool (run command steps there, or set jobs.{name}.compute=local)",
                                        compute, spec.source_file))
        except NotFoundError as exc:
            field = f"jobs.{name}.compute" if step.compute else "settings.default_compute"
            problems.append(Problem(field, f"{exc}; set it to local or serverless (e.g. --set "
                                    "settings.default_compute=local)", compute, spec.source_file))
        if step.type != "command":
            continue
        job = CommandJob.model_validate(step.job)
        if job.code:
            check_code_folder(job.code_path() or job.code)
        resolve_environment(job.environment)
        unbound = {k: v for k, v in job.inputs.items() if not binding_of(v.path)}
        check_inputs(job.model_copy(update={"inputs": unbound}))
    seen = set()
    for name, step in spec.jobs.items():
        if step.type != "command" and step.type not in seen:
            seen.add(step.type)
            kind_module(step.type)  # importable
    if problems:
        raise ValidationError(problems, file=spec.source_file)
    return spec


def can_resume(spec, flow_run) -> bool:
    """Whether submitting ``spec`` under the name of an existing pipeline job retries that job.

    A pipeline job that ended Failed, Crashed or Cancelled can be submitted again under its name
    (``prefect-ml job create --file F --name NAME``): its steps that finished are reused, the others run.
    A job that completed or is still running keeps its name.
    """
    state = getattr(flow_run, "state", None)
    return (state is not None and state.is_final() and not state.is_completed()
            and "prefect-ml:pipeline" in (flow_run.tags or []))


def run(spec, *, stream: bool = False) -> Any:
    """Run the ``pipeline-job`` flow for ``spec`` in this process; return its final Prefect state."""
    from prefect_ml.flows.pipeline_job import pipeline_job

    return pipeline_job(job=spec.model_dump(mode="json", by_alias=True), job_name=spec.name, stream=stream,
                        return_state=True)


def describe(job, flow_run, run) -> None:
    """Add ``steps`` (status, reused, duration, child job and run ids per step) to ``job.details``."""
    from prefect_ml.jobs import flow_run_ui_url
    from prefect_ml.tasks.pipeline import read_steps

    if run is None:
        return
    steps = read_steps(run)
    for step in steps:
        step["prefect_flow_run_url"] = flow_run_ui_url(step.get("prefect_flow_run_id"))
    job.details["steps"] = steps
