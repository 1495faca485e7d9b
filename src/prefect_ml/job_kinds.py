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


def kind_module(job_type: str) -> ModuleType:
    """Return the module implementing ``job_type``.

    Raises:
        KeyError: ``job_type`` is not a supported kind.
    """
    return importlib.import_module(KINDS[job_type])


def supported_types() -> list[str]:
    """Job types this version can run."""
    return sorted(KINDS)
