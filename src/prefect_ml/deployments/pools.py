"""The ``local`` work pool of deployments, and how it differs from ``compute: local`` in a job file.

``prefect deploy`` (``prefect.yaml``) and ``prefect-ml schedule create`` put their deployments on a *process*
work pool named ``local``; ``prefect worker start --pool local`` runs their flow runs. A job's ``compute: local``
(or no ``compute``) is something else: the job runs in the process that runs it, never on that pool
(see :func:`prefect_ml.compute.targets.get_compute`). ``prefect-ml compute list/show`` print
:func:`local_pool_note` so that the two are not confused.
"""

from __future__ import annotations

#: The work pool prefect.yaml's deployments and ``prefect-ml schedule create`` use by default.
DEPLOYMENT_POOL = "local"

LOCAL_POOL_NOTE = (
    "Note: work pool 'local' ({type}) serves deployments: prefect.yaml and `prefect-ml schedule create` put "
    "their flow runs there, and `prefect worker start --pool local` runs them. It is not the compute of "
    "`compute: local` in a job file: such a job (or one without compute) runs in the process that runs the job "
    "(your shell for `prefect-ml job create`, the flow run's process when a deployment runs it)."
)

#: What ``prefect-ml compute show local`` adds (on stderr): ``local`` there is the in-process compute.
LOCAL_COMPUTE_NOTE = (
    "Note: `compute: local` runs a job in the process that runs the job (your shell for `prefect-ml job create`, "
    "the flow run's process when a deployment runs it). Deployments (prefect.yaml, `prefect-ml schedule create`) "
    "use the process work pool named 'local' instead, shown by `prefect-ml compute list`; "
    "`prefect worker start --pool local` runs them."
)


def local_pool_note(names_and_types) -> str | None:
    """The note to print when a work pool named ``local`` is listed, else ``None``.

    Args:
        names_and_types: ``(name, type)`` pairs of the listed compute targets / work pools.
    """
    for name, kind in names_and_types:
        if name == DEPLOYMENT_POOL:
            return LOCAL_POOL_NOTE.format(type=kind)
    return None


__all__ = ["DEPLOYMENT_POOL", "LOCAL_COMPUTE_NOTE", "LOCAL_POOL_NOTE", "local_pool_note"]
