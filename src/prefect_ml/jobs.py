"""The record of a job as users see it (``job show``, ``--output json``, the SDK)."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

#: Azure ML's job statuses, in lifecycle order.
STATUSES = ("NotStarted", "Queued", "Preparing", "Running", "Finalizing", "CancelRequested", "Completed",
            "Failed", "Canceled")
TERMINAL_STATUSES = ("Completed", "Failed", "Canceled")

#: Prefect state type -> Azure ML job status.
_STATE_TO_STATUS = {
    "SCHEDULED": "Queued",
    "PENDING": "Preparing",
    "RUNNING": "Running",
    "COMPLETED": "Completed",
    "FAILED": "Failed",
    "CRASHED": "Failed",
    "CANCELLING": "CancelRequested",
    "CANCELLED": "Canceled",
    "PAUSED": "Queued",
}


def status_from_state(state_type: str | None) -> str:
    """Map a Prefect state type (``"COMPLETED"``, ``StateType.RUNNING``...) to Azure's job status word.

    Scheduled -> Queued, Pending -> Preparing, Running -> Running, Completed -> Completed,
    Failed and Crashed -> Failed, Cancelling -> CancelRequested, Cancelled -> Canceled;
    no state -> NotStarted.
    """
    if state_type is None:
        return "NotStarted"
    key = getattr(state_type, "value", state_type)
    return _STATE_TO_STATUS.get(str(key).upper(), "NotStarted")


def flow_run_ui_url(flow_run_id: str | None) -> str | None:
    """The Prefect UI page of a flow run (its id alone when no UI URL is configured)."""
    if not flow_run_id:
        return None
    from prefect.settings import get_current_settings

    ui = get_current_settings().ui_url
    return f"{str(ui).rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else flow_run_id


def generate_job_name() -> str:
    """A fresh job name in Azure's style, e.g. ``brave_otter_k3x9q2m7lp``."""
    from prefect.utilities.names import generate_slug

    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return generate_slug(2).replace("-", "_") + "_" + "".join(secrets.choice(alphabet) for _ in range(10))


@dataclass
class Job:
    """A submitted job.

    Attributes:
        name: The job's unique name (also the Prefect flow run's name).
        type: The job's kind: ``command``, ``sweep``, ... (see :mod:`prefect_ml.job_kinds`).
        status: Azure's status word (see :data:`STATUSES`).
        display_name: Display name, if any.
        experiment_name: MLflow experiment holding the job's run.
        mlflow_run_id: The job's MLflow run.
        prefect_flow_run_id: The job's Prefect flow run.
        metrics: Last value of each metric logged in the run.
        outputs: Output name -> URI (a local path for local datastores).
        log_path: The job's combined stdout/stderr log file.
        error: Why the job failed or was canceled, with the tail of its output.
        timings: Lifecycle step -> seconds.
        registered_models: Output name -> ``NAME:VERSION`` of the model version registered from it.
        registered_data: Output name -> ``NAME:VERSION`` of the data asset version registered from it.
        compute: The compute target the job ran on.
        created_at: ISO-8601 time the job started.
        details: Kind-specific fields (a sweep's ``best_trial`` and ``trials``, a pipeline's ``steps``...).
    """

    name: str
    type: str = "command"
    status: str = "NotStarted"
    display_name: str | None = None
    experiment_name: str | None = None
    mlflow_run_id: str | None = None
    prefect_flow_run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    log_path: str | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    registered_models: dict[str, str] = field(default_factory=dict)
    registered_data: dict[str, str] = field(default_factory=dict)
    compute: str | None = None
    created_at: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == "Completed"

    @property
    def exit_code(self) -> int:
        """The CLI's exit code for this job: 0 Completed, 1 otherwise."""
        return 0 if self.succeeded else 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str)
