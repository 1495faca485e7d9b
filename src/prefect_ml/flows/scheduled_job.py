"""The ``scheduled-job`` flow: one run of a schedule's ``create_job`` (any job kind), as ``az ml schedule`` does.

It is also the entrypoint of the job deployments in ``prefect.yaml`` (command, sweep, AutoML, pipeline): given
a job file, it validates and runs it as ``prefect-ml job create --file FILE --set OVERRIDES`` would.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Completed, Failed


def _binding_overrides(job_file: str, asset: str, version: str) -> list[str]:
    """``inputs.NAME=azureml:ASSET:VERSION`` for every input of the job file that names data asset ``asset``."""
    from prefect_ml.tasks.retrain import _job_mapping, bind_data_asset

    job = _job_mapping(job_file)
    bound = bind_data_asset(job, asset, version)
    return [f"inputs.{key}=azureml:{asset}:{version}" for key, value in (bound.get("inputs") or {}).items()
            if value != (job.get("inputs") or {}).get(key)]


@flow(name="scheduled-job", persist_result=False, validate_parameters=False)
def scheduled_job(job: dict[str, Any] | None = None, base_path: str | None = None, source_file: str | None = None,
                  schedule_name: str | None = None, data_asset: str | None = None, data_version: str | None = None,
                  job_file: str | None = None, overrides: list[str] | None = None):
    """Validate and run the schedule's job under a new job name (``SCHEDULE-YYYYMMDDHHMMSS-xxxx``).

    Give either ``job`` (a mapping) or ``job_file``.

    Args:
        job: The job mapping (the parsed job YAML, captured when the schedule was created).
        base_path: Folder its relative paths are relative to.
        source_file: The job file it came from (for messages).
        schedule_name: The schedule, used as the job name's prefix (default: the deployment's name).
        data_asset: With ``data_version``: bind every input naming this data asset to that version
            (a ``data_asset`` trigger passes the new version).
        data_version: The data asset version to bind.
        job_file: A job YAML file of any kind (command, sweep, AutoML, pipeline), read when the run starts;
            its relative paths are relative to its folder.
        overrides: ``KEY=VALUE`` settings applied to the job before validation, as ``prefect-ml job create
            --set`` (e.g. ``limits.max_total_trials=2``).

    Returns:
        Completed when the job completed, else Failed with the job's error (an invalid job fails the run
        with every problem in its message).
    """
    import datetime as dt
    import secrets

    from prefect.runtime import deployment

    from prefect_ml.client import MLClient
    from prefect_ml.exceptions import Problem, ValidationError
    from prefect_ml.specs import load_job, parse_job
    from prefect_ml.specs.loader import apply_overrides
    from prefect_ml.tasks.retrain import bind_data_asset

    if (job is None) == (job_file is None):
        raise ValidationError([Problem("job", "give exactly one of job (a mapping) and job_file", None)],
                              title="Invalid scheduled job")
    overrides = list(overrides or [])
    if job_file is not None:
        if data_asset and data_version:
            overrides += _binding_overrides(job_file, data_asset, data_version)
        spec = load_job(job_file, overrides=overrides)
    else:
        if data_asset and data_version:
            job = bind_data_asset(job, data_asset, data_version)
        if overrides:
            job, problems = apply_overrides(job, overrides, file=source_file)
            if problems:
                raise ValidationError(problems, file=source_file, title="Invalid overrides")
        spec = parse_job(job, base_path=base_path, source_file=source_file)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S")
    prefix = schedule_name or deployment.name or "scheduled"
    name = f"{prefix}-{stamp}-{secrets.token_hex(2)}"
    client = MLClient(autostart=False)
    result = client.jobs.run(client.jobs.validate(spec, name=name))
    if not result.succeeded:
        return Failed(message=f"Job {name} {result.status}: {result.error}")
    return Completed(message=f"Job {name} completed")
