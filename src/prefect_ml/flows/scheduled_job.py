"""The ``scheduled-job`` flow: one run of a schedule's ``create_job`` (any job kind), as ``az ml schedule`` does."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Completed, Failed


@flow(name="scheduled-job", persist_result=False, validate_parameters=False)
def scheduled_job(job: dict[str, Any], base_path: str | None = None, source_file: str | None = None,
                  schedule_name: str | None = None, data_asset: str | None = None, data_version: str | None = None):
    """Validate and run the schedule's job under a new job name (``SCHEDULE-YYYYMMDDHHMMSS-xxxx``).

    Args:
        job: The job mapping (the parsed job YAML, captured when the schedule was created).
        base_path: Folder its relative paths are relative to.
        source_file: The job file it came from (for messages).
        schedule_name: The schedule, used as the job name's prefix.
        data_asset: With ``data_version``: bind every input naming this data asset to that version
            (a ``data_asset`` trigger passes the new version).
        data_version: The data asset version to bind.

    Returns:
        Completed when the job completed, else Failed with the job's error.
    """
    import datetime as dt
    import secrets

    from prefect_ml.client import MLClient
    from prefect_ml.specs import parse_job
    from prefect_ml.tasks.retrain import bind_data_asset

    if data_asset and data_version:
        job = bind_data_asset(job, data_asset, data_version)
    spec = parse_job(job, base_path=base_path, source_file=source_file)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S")
    name = f"{schedule_name or 'scheduled'}-{stamp}-{secrets.token_hex(2)}"
    client = MLClient(autostart=False)
    result = client.jobs.run(client.jobs.validate(spec, name=name))
    if not result.succeeded:
        return Failed(message=f"Job {name} {result.status}: {result.error}")
    return Completed(message=f"Job {name} completed")
