"""Compute targets: what a job's ``compute:`` names.

This version knows only the local compute (the submitting process). Work-pool targets (process,
Docker, Kubernetes, Dask) extend :func:`get_compute`; flows that fan out (sweep and AutoML trials)
get their task runner from :func:`task_runner_for` so that the same code runs on threads locally and
on a Dask cluster when the compute is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect_ml.exceptions import NotFoundError

#: Compute names that mean "run in this process".
LOCAL_NAMES = frozenset({"", "local", "azureml:local"})


@dataclass(frozen=True)
class ComputeTarget:
    """A resolved compute target.

    Attributes:
        name: The target's name (``local`` for the local compute).
        type: ``local``, ``process``, ``docker``, ``kubernetes`` or ``dask``.
        settings: Type-specific settings (e.g. ``scheduler_address`` for ``dask``).
    """

    name: str
    type: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        """True when jobs run in the submitting process (no worker)."""
        return self.type == "local"


def get_compute(name: str | None) -> ComputeTarget:
    """Resolve a job's ``compute`` value (``NAME`` or ``azureml:NAME``).

    Raises:
        NotFoundError: No such target.
    """
    if name is None or name in LOCAL_NAMES:
        return ComputeTarget(name="local", type="local")
    raise NotFoundError(f"compute target {name!r} not found; this version runs jobs on the local compute only "
                        "(`compute: local` or no compute)")


def task_runner_for(target: ComputeTarget, *, max_workers: int | None = None):
    """The Prefect task runner for fan-out work (trials) on ``target``.

    Args:
        target: The resolved compute target.
        max_workers: Most tasks running at once (e.g. ``limits.max_concurrent_trials``).

    Returns:
        A ``ThreadPoolTaskRunner`` for the local compute.
    """
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=max_workers)
