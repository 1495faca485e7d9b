"""``resources.instance_count`` and ``distribution``: how many processes a command job runs, and their variables.

Azure runs a command job's command on ``resources.instance_count`` instances (nodes); with
``distribution: {type: pytorch, process_count_per_instance: P}`` it starts P processes per instance and gives each
``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``, ``NODE_RANK`` (per node) and ``RANK``, ``LOCAL_RANK`` (per
process), so ``torch.distributed.init_process_group(init_method="env://")`` works unchanged
(https://learn.microsoft.com/azure/machine-learning/how-to-train-distributed-gpu, "PyTorch").

prefect-ml runs the N x P processes on the machine that runs the job's flow run:

- local, process and Dask compute: every "instance" is a group of processes on that machine (``MASTER_ADDR``
  ``127.0.0.1``, a free ``MASTER_PORT``); ``WORLD_SIZE`` = N x P, ``RANK`` = ``NODE_RANK`` x P + ``LOCAL_RANK``.
  Without ``distribution`` the command runs N times, each with ``NODE_RANK`` and ``PREFECT_ML_INSTANCE_COUNT``.
- Docker and Kubernetes compute run the flow run in ONE container/pod (prefect-docker / prefect-kubernetes start
  the flow-run process there), so ``instance_count > 1`` is an error there; ``process_count_per_instance``
  processes run inside that container/pod.
- ``mpi``, ``tensorflow`` and ``ray`` distributions need their launchers (``mpirun``, ``TF_CONFIG``, a Ray
  cluster): more than one process with them is an error naming the field.
"""

from __future__ import annotations

from typing import Any

from prefect_ml.exceptions import Problem

#: Target types whose flow run can start several "instances" as local process groups.
MULTI_INSTANCE_TYPES = ("local", "process", "dask")


def process_layout(spec) -> tuple[int, int]:
    """``(instance_count, processes per instance)`` of a job (``(1, 1)`` for a plain job)."""
    resources = getattr(spec, "resources", None)
    instances = getattr(resources, "instance_count", None) or 1
    distribution = getattr(spec, "distribution", None)
    per_instance = getattr(distribution, "process_count_per_instance", None) or 1
    return instances, per_instance


def distribution_problems(spec, target_type: str) -> list[Problem]:
    """Why ``spec``'s instance count / distribution cannot run on a ``target_type`` compute (empty when it can)."""
    instances, per_instance = process_layout(spec)
    distribution = getattr(spec, "distribution", None)
    kind = getattr(distribution, "type", None)
    problems = []
    if kind not in (None, "pytorch") and (instances > 1 or per_instance > 1):
        problems.append(Problem("distribution.type", f"prefect-ml starts several processes only for `pytorch` "
                                f"distributions (mpi needs mpirun, tensorflow TF_CONFIG, ray a Ray cluster); use "
                                f"`type: pytorch`, or instance_count 1 and launch {kind} yourself", value=kind))
    if instances > 1 and target_type not in MULTI_INSTANCE_TYPES:
        problems.append(Problem("resources.instance_count", f"a {target_type} compute runs a job's flow run in one "
                                "container/pod, so it has one instance; use instance_count 1 with "
                                "distribution.process_count_per_instance, or a local/process/dask compute (where "
                                "instances are process groups on one machine)", value=instances))
    return problems


def process_environments(spec, env: dict[str, str], *, master_port: int | None = None) -> list[dict[str, str]]:
    """The environment of each process the job's command runs as (one entry for a plain job).

    Args:
        spec: The job (``resources.instance_count``, ``distribution``).
        env: The command's environment (copied into each entry).
        master_port: ``MASTER_PORT`` for pytorch jobs (default: a free port on this machine).

    Returns:
        ``[env]`` for one process; otherwise one dict per process, ordered by global rank.
    """
    instances, per_instance = process_layout(spec)
    distribution = getattr(spec, "distribution", None)
    pytorch = getattr(distribution, "type", None) == "pytorch"
    if instances * per_instance == 1 and not pytorch:
        return [env]
    if pytorch and master_port is None:
        from prefect_ml.compute.server import free_port

        master_port = free_port()
    result: list[dict[str, Any]] = []
    for node in range(instances):
        for local in range(per_instance):
            item = {**env, "NODE_RANK": str(node), "PREFECT_ML_INSTANCE_COUNT": str(instances)}
            if pytorch:
                item.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(master_port),
                            WORLD_SIZE=str(instances * per_instance), RANK=str(node * per_instance + local),
                            LOCAL_RANK=str(local))
            result.append(item)
    return result
