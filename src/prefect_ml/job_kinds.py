"""Job kinds: the one place that maps a job file's ``type`` to the code that parses, checks and runs it.

Each kind is a module (imported on first use) that defines:

- ``parse(data, *, base_path, source_file, file, problems) -> spec``: validate the mapping of a job file
  (``problems`` holds problems already found, e.g. from ``--set``); raise
  :class:`~prefect_ml.exceptions.ValidationError` with every problem at once.
- ``preflight(spec) -> spec``: the checks that need the outside world (code folders, inputs, environments,
  compute targets) and cost nothing to undo; called by ``MLClient.jobs.validate`` after the name is set.
- ``run(spec, *, stream) -> prefect.State``: run the job's flow and return its final state (local compute).
- ``describe(job, flow_run, run) -> None`` (optional): add kind-specific fields to ``job.details``
  (``best_trial``, ``trials``, ``steps``, ``leaderboard``...), shown by ``job show``.

- ``FLOW_NAME`` and ``ENTRYPOINT`` (optional): the kind's flow name and ``module:function`` path; with them,
  jobs of the kind run on work-pool compute targets (see :mod:`prefect_ml.compute.submit`), else on local
  targets only. ``flow_parameters(spec, *, snapshot, submitted_at) -> dict`` (optional) builds the flow run's
  parameters (default: ``job``, ``job_name`` and ``submission``).
- ``IN_PROCESS_COMPUTE`` (optional): compute types on which the job's own flow runs in the submitting process
  and only its trials go to the compute's task runner (sweep and AutoML: ``{"local", "dask"}``); the kind's
  ``preflight`` refuses the other types.

A spec object names its kind with a ``type`` attribute (``"command"``, ``"sweep"``...).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: type -> module implementing it. Azure job types missing here are reported as not supported.
KINDS: dict[str, str] = {
    "command": "prefect_ml.specs.command_kind",
    "pipeline": "prefect_ml.specs.pipeline_kind",
    "automl": "prefect_ml.automl.kind",
    "sweep": "prefect_ml.specs.sweep_kind",
}


def runs_in_process(kind: ModuleType, target) -> bool:
    """Whether a job of ``kind`` on compute ``target`` runs its flow in this process (see ``IN_PROCESS_COMPUTE``)."""
    return target.is_local or target.type in getattr(kind, "IN_PROCESS_COMPUTE", ())


def check_in_process_compute(kind_name: str, allowed: frozenset[str], spec):
    """Resolve a fan-out job's compute (sweep, AutoML) and refuse a work pool whose type is not in ``allowed``
    (the kind's ``IN_PROCESS_COMPUTE``).

    Returns:
        The :class:`~prefect_ml.compute.targets.ComputeTarget`.

    Raises:
        ValidationError: No such target, or it is a work pool that cannot take the job's trials (field
            ``compute``, the value and the fix).
    """
    from prefect_ml.client import check_compute
    from prefect_ml.exceptions import Problem, ValidationError

    target = check_compute(spec)
    if target.is_local or target.type in allowed:
        return target
    raise ValidationError([Problem(
        "compute", f"{kind_name} jobs run their trials on the compute's task runner: threads on a local target, "
        f"the cluster of a dask target; {target.name} is a {target.type} work pool. Use `compute: local` or a "
        f"dask target (`prefect-ml compute create --type dask ...`)", spec.compute, spec.source_file)],
        file=spec.source_file)


def kind_module(job_type: str) -> ModuleType:
    """Return the module implementing ``job_type``.

    Raises:
        KeyError: ``job_type`` is not a supported kind.
    """
    return importlib.import_module(KINDS[job_type])


def supported_types() -> list[str]:
    """Job types this version can run."""
    return sorted(KINDS)
