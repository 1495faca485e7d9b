"""The ``command`` job kind (see :mod:`prefect_ml.job_kinds`)."""

from __future__ import annotations

from typing import Any

from prefect_ml.specs.loader import parse_command as parse  # noqa: F401  (the kind's parser)

TYPE = "command"
#: The flow that runs command jobs, and where a worker imports it from (see ``prefect_ml.compute.submit``).
FLOW_NAME = "command-job"
ENTRYPOINT = "prefect_ml.flows.command_job:command_job"


def preflight(spec):
    """Check what a command job needs outside its file: compute, code folder, environment, inputs.

    Raises:
        ValidationError: The compute target does not exist (the message lists those that do) or the
            instance type is not one of the target's.
        NotFoundError: An input, data asset, model, datastore or code folder does not exist.
        ConfigurationError: The environment cannot be resolved.
    """
    from prefect_ml.client import check_compute
    from prefect_ml.compute.environments import check_environment, environment_notice
    from prefect_ml.tasks.inputs import check_inputs
    from prefect_ml.tasks.snapshot import check_code_folder

    target = check_compute(spec)
    from prefect_ml.compute.distributed import distribution_problems
    from prefect_ml.exceptions import ValidationError

    problems = distribution_problems(spec, target.type)
    if problems:
        raise ValidationError(problems, file=spec.source_file)
    if spec.code:
        check_code_folder(spec.code_path() or spec.code)
    check_environment(spec.environment, base_path=spec.base_path)
    check_inputs(spec)
    # Shown by `job create` (with the other warnings) before the job runs, not only in its logs.
    notice = environment_notice(spec.environment, base_path=spec.base_path, target_type=target.type)
    if notice and notice not in spec.warnings:
        spec = spec.model_copy(update={"warnings": [*spec.warnings, notice]})
    return spec


def run(spec, *, stream: bool = False) -> Any:
    """Run the ``command-job`` flow for ``spec`` in this process; return its final Prefect state."""
    from prefect_ml.flows.command_job import command_job

    return command_job(job=spec.model_dump(mode="json", by_alias=True), job_name=spec.name, stream=stream,
                       return_state=True)
