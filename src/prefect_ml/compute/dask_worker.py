"""The ``dask`` work pool type: a Prefect worker that runs each flow run on a Dask cluster.

``prefect worker start --pool NAME --type dask`` (the worker is registered through prefect-ml's
``prefect.collections`` entry point) polls the pool like a process worker, but each flow run becomes one Dask
task, ``run_flow_run_process``, submitted with the run's resource constraints (``resources`` job variable, e.g.
``{"GPU": 1}``, from the job's ``resources.instance_type``). Dask's scheduler starts a task only on a worker that
has those resources free, so jobs pack onto a cluster's GPUs: two jobs needing ``GPU=1`` on a cluster offering one
GPU run one after the other; on one offering two they overlap. The task starts ``python -m prefect.engine`` for
the flow run on the Dask worker's machine (in its own process group) and returns its exit code.

The cluster is ``scheduler_address`` when set (an existing cluster: ``dask-scheduler`` plus
``dask-worker --resources GPU=1`` per GPU), else one the worker starts on first use and closes on exit:
``distributed.LocalCluster`` (``cluster: local``) or ``dask_cuda.LocalCUDACluster`` (``cluster: cuda``, one worker
per GPU, each offering ``GPU=1``; needs the ``cuda`` extra). With ``max_instances`` above ``min_instances`` the
started cluster is adaptive: it grows with queued runs and shrinks to ``min_instances`` workers after
``idle_time_before_scale_down`` seconds without work (Dask's ``Adaptive``, ``wait_count`` = idle time / interval).

Dask docs: https://distributed.dask.org/en/stable/resources.html and
https://docs.dask.org/en/stable/deploying-python-advanced.html#adaptive-deployments.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Optional

import anyio
from pydantic import Field

from prefect.workers.base import BaseJobConfiguration, BaseVariables, BaseWorker, BaseWorkerResult

from prefect_ml.exceptions import ConfigurationError

#: Seconds between Adaptive's decisions.
ADAPT_INTERVAL_SECONDS = 1.0
#: Seconds to wait for a scheduler to answer.
CONNECT_TIMEOUT_SECONDS = 10.0
#: Variable telling a flow run which scheduler it runs on (``task_runner_for`` reuses that cluster).
SCHEDULER_ENV = "PREFECT_ML_DASK_SCHEDULER"


class DaskJobConfiguration(BaseJobConfiguration):
    """How the dask worker runs a flow run (rendered from the pool's base job template and job variables)."""

    scheduler_address: Optional[str] = Field(default=None)
    cluster: str = Field(default="local")
    worker_resources: dict[str, float] = Field(default_factory=dict)
    threads_per_worker: int = Field(default=1)
    min_instances: int = Field(default=0)
    max_instances: Optional[int] = Field(default=None)
    idle_time_before_scale_down: float = Field(default=120)
    resources: dict[str, float] = Field(default_factory=dict)


class DaskVariables(BaseVariables):
    """Job variables of a ``dask`` pool."""

    scheduler_address: Optional[str] = Field(
        default=None, description="Address of an existing Dask scheduler (tcp://host:8786). Default: the worker "
                                  "starts a cluster.")
    cluster: str = Field(default="local", description="Cluster the worker starts: local (distributed.LocalCluster) "
                                                      "or cuda (dask_cuda.LocalCUDACluster).")
    worker_resources: dict[str, float] = Field(
        default_factory=dict, description="Resources each worker of a started cluster offers, e.g. {\"GPU\": 1}.")
    threads_per_worker: int = Field(default=1, description="Threads per worker of a started cluster.")
    min_instances: int = Field(default=0, description="Workers kept when idle (adaptive clusters).")
    max_instances: Optional[int] = Field(default=None, description="Most workers of a started cluster.")
    idle_time_before_scale_down: float = Field(default=120, description="Seconds of idleness before scale-down.")
    resources: dict[str, float] = Field(
        default_factory=dict, description="Dask resources the flow run holds while it runs, e.g. {\"GPU\": 1}.")


class DaskWorkerResult(BaseWorkerResult):
    """The exit status of a flow run's process on the Dask cluster."""


def run_flow_run_process(env: dict[str, str], submitted_at: float) -> dict[str, float]:
    """Run ``python -m prefect.engine`` for a flow run on this Dask worker; return its exit code and timings.

    Runs in a Dask worker. The engine process gets a new session so that it and everything it starts can be
    killed together.

    Returns:
        ``{"status_code", "queued_seconds", "run_seconds"}``.
    """
    started = time.time()
    full_env = {**os.environ, **{k: v for k, v in env.items() if v is not None}}
    try:
        from distributed import get_worker

        full_env[SCHEDULER_ENV] = get_worker().scheduler.address
    except (ImportError, ValueError):
        pass
    process = subprocess.Popen([sys.executable, "-m", "prefect.engine"], env=full_env, start_new_session=True,
                               stdin=subprocess.DEVNULL)
    try:
        code = process.wait()
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    return {"status_code": code, "queued_seconds": started - submitted_at, "run_seconds": time.time() - started}


def _logged_adaptive_class():
    from distributed.deploy.adaptive import Adaptive

    class LoggedAdaptive(Adaptive):
        """Dask's ``Adaptive`` that reports each scale-down as a lifecycle step with its timing.

        ``scale_downs`` keeps ``{"at", "from_workers", "to_workers", "idle_seconds", "retire_seconds"}`` per
        scale-down; ``on_scale_down(message)`` (if set) receives the lifecycle line.
        """

        on_scale_down = None

        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.scale_downs: list[dict[str, float]] = []

        async def scale_down(self, workers):
            if not workers:
                return
            before = len(self.cluster.workers)
            started = time.monotonic()
            await super().scale_down(workers)
            event = {"at": time.time(), "from_workers": before, "to_workers": len(self.cluster.workers),
                     "idle_seconds": self.wait_count * self.interval,
                     "retire_seconds": round(time.monotonic() - started, 3)}
            self.scale_downs.append(event)
            if self.on_scale_down is not None:
                self.on_scale_down(
                    f"Lifecycle: scale-down {event['from_workers']} -> {event['to_workers']} Dask workers "
                    f"(minimum {self.minimum}) after {event['idle_seconds']:.1f}s idle, retired in "
                    f"{event['retire_seconds']:.2f}s")

    return LoggedAdaptive


def start_cluster(configuration: DaskJobConfiguration | Any, *, log=None):
    """Start the cluster a ``dask`` pool's settings describe (no ``scheduler_address``).

    With ``max_instances`` above ``min_instances`` the cluster is adaptive (Dask's ``Adaptive``): it shrinks to
    ``min_instances`` workers once they have been idle ``idle_time_before_scale_down`` seconds (Azure's
    meaning, https://learn.microsoft.com/azure/machine-learning/reference-yaml-compute-aml), checked every
    ``ADAPT_INTERVAL_SECONDS``; each scale-down is reported to ``log(message)`` as a ``Lifecycle:`` line and kept
    in ``cluster._adaptive.scale_downs``.

    Args:
        configuration: The pool's rendered job configuration (or any object with the same attributes).
        log: Optional ``callable(str)`` receiving scale-down lifecycle lines (the worker's logger).

    Raises:
        ConfigurationError: ``cluster: cuda`` without dask-cuda or without a GPU.
    """
    n_workers = max(configuration.min_instances, 1) if configuration.max_instances is None else \
        configuration.max_instances
    kwargs: dict[str, Any] = {"n_workers": n_workers, "threads_per_worker": configuration.threads_per_worker,
                              "processes": True, "dashboard_address": None}
    if configuration.cluster == "cuda":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError as exc:
            raise ConfigurationError(
                f"compute cluster 'cuda' needs dask-cuda, which is not installed ({exc}). Install prefect-ml's "
                "`cuda` extra (`pip install 'prefect-ml[cuda]'`) on a machine with NVIDIA GPUs, or use "
                "`cluster: local` with `worker_resources: {GPU: N}`.") from None
        try:
            cluster = LocalCUDACluster(threads_per_worker=configuration.threads_per_worker, dashboard_address=None,
                                       resources={"GPU": 1, **configuration.worker_resources})
        except Exception as exc:  # NVMLError_LibraryNotFound etc. on machines without a GPU
            raise ConfigurationError(f"compute cluster 'cuda' could not start a LocalCUDACluster: "
                                     f"{type(exc).__name__}: {exc}. Is there an NVIDIA GPU and driver here?") from None
    else:
        from distributed import LocalCluster

        if configuration.worker_resources:
            kwargs["resources"] = dict(configuration.worker_resources)
        if configuration.max_instances is not None and configuration.max_instances > configuration.min_instances:
            kwargs["n_workers"] = max(configuration.min_instances, 1)
        cluster = LocalCluster(**kwargs)
    if configuration.max_instances is not None and configuration.max_instances > configuration.min_instances:
        wait_count = max(1, math.ceil(configuration.idle_time_before_scale_down / ADAPT_INTERVAL_SECONDS))
        adaptive = cluster.adapt(Adaptive=_logged_adaptive_class(), minimum=configuration.min_instances,
                                 maximum=configuration.max_instances, interval=f"{ADAPT_INTERVAL_SECONDS}s",
                                 wait_count=wait_count)
        adaptive.on_scale_down = log
    return cluster


def connect(address: str, timeout_seconds: float = CONNECT_TIMEOUT_SECONDS):
    """A ``distributed.Client`` on ``address``.

    Raises:
        ConfigurationError: The scheduler does not answer within ``timeout_seconds``.
    """
    from distributed import Client

    try:
        return Client(address, timeout=timeout_seconds, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConfigurationError(f"Dask scheduler {address} is unreachable ({type(exc).__name__}: {exc}). Check "
                                 "the compute target's scheduler_address (`prefect-ml compute show`) and that "
                                 "`dask-scheduler` is running there.") from None


class DaskWorker(BaseWorker[DaskJobConfiguration, DaskVariables, DaskWorkerResult]):
    """Prefect worker of ``dask`` work pools (see the module docstring)."""

    type = "dask"
    job_configuration = DaskJobConfiguration
    job_configuration_variables = DaskVariables
    _description = "Run each flow run on a Dask cluster holding the run's declared resources (prefect-ml)."
    _display_name = "Dask (prefect-ml)"
    _documentation_url = "https://github.com/prefect-ml/prefect-ml/blob/main/docs/compute.md"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._clusters: dict[tuple, Any] = {}
        self._dask_clients: dict[tuple, Any] = {}
        # Runs are submitted concurrently (one thread each): only one may start the cluster.
        self._cluster_lock = threading.Lock()

    def _client_for(self, configuration: DaskJobConfiguration):
        key = (configuration.scheduler_address, configuration.cluster,
               tuple(sorted(configuration.worker_resources.items())), configuration.threads_per_worker,
               configuration.min_instances, configuration.max_instances, configuration.idle_time_before_scale_down)
        with self._cluster_lock:
            return self._client_for_locked(key, configuration)

    def _client_for_locked(self, key: tuple, configuration: DaskJobConfiguration):
        client = self._dask_clients.get(key)
        if client is None:
            if configuration.scheduler_address:
                client = connect(configuration.scheduler_address)
            else:
                cluster = start_cluster(configuration, log=self._logger.info)
                self._clusters[key] = cluster
                client = connect(cluster.scheduler_address)
            self._dask_clients[key] = client
        return client

    async def run(self, flow_run, configuration: DaskJobConfiguration, task_status=None) -> DaskWorkerResult:
        logger = self.get_flow_run_logger(flow_run)
        client = await anyio.to_thread.run_sync(self._client_for, configuration)
        env = {k: v for k, v in configuration.env.items() if v is not None}
        key = f"flow-run-{flow_run.id}"
        future = client.submit(run_flow_run_process, env, time.time(), key=key, pure=False,
                               resources=dict(configuration.resources) or None)
        logger.info("Flow run submitted to Dask scheduler %s holding resources %s", client.scheduler.address,
                    dict(configuration.resources) or "none")
        if task_status is not None:
            task_status.started(key)
        try:
            outcome = await anyio.to_thread.run_sync(future.result)
        except Exception as exc:
            logger.error("The flow run's Dask task failed: %s: %s", type(exc).__name__, exc)
            return DaskWorkerResult(status_code=1, identifier=key)
        logger.info("Lifecycle: queueing for resources %.2fs, run %.2fs (Dask task %s)",
                    outcome["queued_seconds"], outcome["run_seconds"], key)
        return DaskWorkerResult(status_code=int(outcome["status_code"]), identifier=key)

    async def teardown(self, *exc_info: Any) -> None:
        for client in self._dask_clients.values():
            client.close()
        for cluster in self._clusters.values():
            cluster.close()
        self._dask_clients.clear()
        self._clusters.clear()
        await super().teardown(*exc_info)


def dask_task_runner(target, *, max_workers: int | None = None):
    """A ``DaskTaskRunner`` for fan-out work on a ``dask`` target (see ``task_runner_for``).

    Uses, in order: the target's ``scheduler_address``; the cluster of the Dask worker running this flow run
    (``PREFECT_ML_DASK_SCHEDULER``); a new ``LocalCluster`` (or ``LocalCUDACluster``) with the target's settings.
    ``max_workers`` caps the workers of a new cluster.

    Raises:
        ConfigurationError: The scheduler is unreachable or the CUDA cluster cannot start.
    """
    from prefect_dask import DaskTaskRunner

    settings = target.settings
    address = settings.get("scheduler_address") or os.environ.get(SCHEDULER_ENV)
    if address:
        connect(address).close()  # a clear error now rather than deep inside the flow
        return DaskTaskRunner(address=address)
    if settings.get("cluster") == "cuda":
        try:
            import dask_cuda  # noqa: F401
        except ImportError as exc:
            raise ConfigurationError(f"compute {target.name!r} has cluster 'cuda' but dask-cuda is not installed "
                                     f"({exc}); install prefect-ml's `cuda` extra on a GPU machine.") from None
        return DaskTaskRunner(cluster_class="dask_cuda.LocalCUDACluster",
                              cluster_kwargs={"resources": {"GPU": 1}, "dashboard_address": None})
    n_workers = settings.get("max_instances") or max(settings.get("min_instances") or 0, 1)
    if max_workers:
        n_workers = min(n_workers, max_workers) if settings.get("max_instances") else max_workers
    kwargs: dict[str, Any] = {"n_workers": n_workers, "threads_per_worker": settings.get("threads_per_worker", 1),
                              "processes": True, "dashboard_address": None}
    if settings.get("worker_resources"):
        kwargs["resources"] = dict(settings["worker_resources"])
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=kwargs)
