"""Submitting jobs to work-pool compute targets (the remote-job path), and ``job create --dry-run``.

Public API (stable; other modules call these):

- :func:`submit_job` ``(spec, target=None, *, stream=False, printer=print) -> Job``: run a validated job on a
  work-pool target: take the code snapshot into shared storage, make sure the pool's deployment exists, create
  the flow run (named after the job, tagged ``prefect-ml``) with the job variables that give it its resources,
  and return the queued :class:`~prefect_ml.jobs.Job` at once (or, with ``stream``, follow its logs and return the
  finished job). ``MLClient.jobs.run`` calls it for every non-local target.
- :func:`ensure_deployment` ``(target, job_type="command") -> UUID``: the deployment of the job type's flow on the
  target's pool, created on first use (idempotent: Prefect upserts by flow and name).
- :func:`upload_snapshot` ``(code) -> dict``: the code snapshot in shared storage, ``{"hash", "uri", ...}``.
- :func:`flow_parameters` ``(spec, snapshot=None, submitted_at=None) -> dict``: the flow run's parameters.
- :func:`job_variables` ``(spec, target) -> dict``: the work pool job variables for the job's resources.
- :func:`dry_run` ``(spec, target=None) -> dict``: everything above resolved and rendered, nothing created.
- :func:`render_infrastructure` ``(target, job_variables, job_name) -> dict``: the docker container settings or the
  Kubernetes Job manifest, rendered by prefect-docker's / prefect-kubernetes' own job-configuration code.

Shared snapshot storage: ``PREFECT_ML_SNAPSHOT_STORE`` (an fsspec URL, a local folder or
``azureml://datastores/NAME/paths/PATH``); default ``$PREFECT_ML_HOME/snapshots``, which a worker on the same
machine (or a container with that folder mounted at the same path) reads directly.
"""

from __future__ import annotations

import os
import uuid
import sys
import time
from typing import Any, Callable
from uuid import UUID

from prefect_ml.compute.targets import ComputeTarget, get_compute, job_variables_for
from prefect_ml.exceptions import Problem, ValidationError

#: Environment variable naming the shared snapshot store.
SNAPSHOT_STORE_ENV = "PREFECT_ML_SNAPSHOT_STORE"
#: Tag on every job's flow run (``MLClient.jobs`` finds jobs by it).
JOB_TAG = "prefect-ml"

_deployments: dict[tuple[str, str, str], UUID] = {}


def _kind(job_type: str):
    from prefect_ml.job_kinds import kind_module

    kind = kind_module(job_type)
    if not getattr(kind, "ENTRYPOINT", None):
        raise ValidationError([Problem("compute", f"{job_type} jobs run on the local compute only in this version "
                                                  "(use `compute: local` or a target of type local)")])
    return kind


def ensure_deployment(target: ComputeTarget, job_type: str = "command") -> UUID:
    """The deployment that runs ``job_type`` jobs on ``target``'s work pool, created if missing.

    The deployment is named after the pool (``command-job/POOL``), loads the flow from the installed
    ``prefect_ml`` package (entrypoint ``prefect_ml.flows.command_job:command_job``, no pull steps) and carries
    the tag ``prefect-ml``. Creating it again changes nothing (Prefect upserts deployments by flow and name).

    Raises:
        ValidationError: The job type cannot run on work pools.
    """
    kind = _kind(job_type)
    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        url = str(client.api_url)
        key = (url, job_type, target.name)
        if key in _deployments:
            return _deployments[key]
        ensure_crash_detection()
        flow_id = client.create_flow_from_name(kind.FLOW_NAME)
        deployment_id = client.create_deployment(
            flow_id=flow_id, name=target.name, work_pool_name=target.name, entrypoint=kind.ENTRYPOINT,
            pull_steps=[], tags=[JOB_TAG], enforce_parameter_schema=False,
            description=f"prefect-ml {job_type} jobs on compute {target.name} (created on demand by prefect-ml)",
            parameter_openapi_schema={"type": "object", "properties": {}},
        )
    _deployments[key] = deployment_id
    return deployment_id


#: Name of the automation that marks job flow runs Crashed when their heartbeats stop.
CRASH_AUTOMATION = "prefect-ml-crash-detection"


def ensure_crash_detection() -> None:
    """Create (once) the automation that marks a job's flow run Crashed when its heartbeats stop.

    A flow run on a worker emits ``prefect.flow-run.heartbeat`` every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``
    seconds (Prefect's default: 180). When its machine or process dies nothing reports a final state; this
    proactive trigger (Prefect's documented recipe for "zombie" flow runs,
    https://docs.prefect.io/v3/advanced/detect-zombie-flows) changes a ``prefect-ml``-tagged flow run to Crashed
    when no heartbeat or final state follows a heartbeat within ``PREFECT_ML_CRASH_DETECTION_SECONDS``
    (default: three heartbeat periods). The job then shows ``Failed`` with the crash reason.
    """
    from datetime import timedelta

    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.settings import get_current_settings

    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        if client.read_automations_by_name(CRASH_AUTOMATION):
            return
    frequency = get_current_settings().flows.heartbeat_frequency or 180
    within = float(os.environ.get("PREFECT_ML_CRASH_DETECTION_SECONDS") or 3 * frequency)
    Automation(
        name=CRASH_AUTOMATION,
        description="prefect-ml: mark job flow runs Crashed when their heartbeats stop (worker or machine lost).",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            match_related={"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{JOB_TAG}"},
            for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
            within=timedelta(seconds=within)),
        actions=[ChangeFlowRunState(state=StateType.CRASHED,
                                    message=f"No heartbeat for {within:.0f} s: the flow run's process or machine "
                                            "was lost.")],
    ).create()


def _store_url() -> str | None:
    value = os.environ.get(SNAPSHOT_STORE_ENV)
    if not value:
        return None
    if value.startswith("azureml:"):
        from prefect_ml.data.uris import resolve_uri

        return resolve_uri(value)
    return value


def upload_snapshot(code: str) -> dict[str, Any]:
    """Snapshot a code folder into the shared store both the submitter and the workers reach.

    Returns:
        ``{"hash", "uri", "file_count", "size_bytes", "upload_seconds"}``; ``uri`` is the local snapshot
        folder (default store) or ``<store>/<hash>/`` (``PREFECT_ML_SNAPSHOT_STORE``).

    Raises:
        ValidationError: The code folder is missing or holds links that escape it.
    """
    from prefect_ml.tasks.snapshot import take_snapshot

    started = time.monotonic()
    snapshot = take_snapshot(code)
    uri = snapshot.path
    store = _store_url()
    if store:
        from prefect_ml.data.transfer import upload_output

        uri = upload_output(snapshot.path, store.rstrip("/") + f"/{snapshot.hash}/")
    return {"hash": snapshot.hash, "uri": uri, "file_count": snapshot.file_count, "size_bytes": snapshot.size_bytes,
            "upload_seconds": round(time.monotonic() - started, 3)}


def fetch_snapshot(snapshot: dict[str, Any]) -> str:
    """The local folder of a submitted snapshot, downloading it from the shared store when needed (worker side)."""
    from pathlib import Path

    from prefect_ml import settings

    uri = snapshot["uri"]
    if "://" not in uri and Path(uri).is_dir():
        return uri
    local = settings.snapshots_dir() / snapshot["hash"]
    if local.is_dir():
        return str(local)
    from prefect_ml.data.transfer import materialize_input

    staging = settings.snapshots_dir() / f".{snapshot['hash']}.{os.getpid()}.{uuid.uuid4().hex[:8]}.download"
    path = materialize_input(uri, type="uri_folder", mode="download", dest=staging)
    try:
        Path(path).rename(local)
    except OSError:  # another run fetched it first
        pass
    return str(local) if local.is_dir() else path


def flow_parameters(spec, snapshot: dict[str, Any] | None = None, submitted_at: float | None = None
                    ) -> dict[str, Any]:
    """Parameters of the job's flow run (the kind's ``flow_parameters`` when it defines one)."""
    kind = _kind(spec.type)
    custom = getattr(kind, "flow_parameters", None)
    if custom is not None:
        return custom(spec, snapshot=snapshot, submitted_at=submitted_at)
    params: dict[str, Any] = {"job": spec.model_dump(mode="json", by_alias=True), "job_name": spec.name}
    if snapshot is not None or submitted_at is not None:
        params["submission"] = {"snapshot": snapshot, "submitted_at": submitted_at}
    return params


def job_variables(spec, target: ComputeTarget, *, build: bool = True, log: Callable[[str], None] | None = None
                  ) -> dict[str, Any]:
    """Work pool job variables for ``spec`` on ``target``.

    Resources (``targets.job_variables_for``) plus, on docker targets, the environment's image
    (``compute.docker.environment_job_variables``: ``image`` as is, or the image built for a ``conda_file`` /
    ``build.path``).

    Args:
        spec: The validated job.
        target: Its compute target.
        build: Build a missing environment image (``False`` for ``--dry-run``: its tag only).
        log: Optional ``callable(str)`` for image build progress.

    Raises:
        ValidationError: Unknown instance type.
        ConfigurationError: The environment's image cannot be built.
    """
    variables = job_variables_for(target, getattr(spec, "resources", None))
    if target.type == "docker":
        from prefect_ml.compute.docker import environment_job_variables

        variables.update(environment_job_variables(spec, target, log=log, build=build))
    return variables


def submit_job(spec, target: ComputeTarget | None = None, *, stream: bool = False,
               printer: Callable[[str], None] = print, parent_task_run_id: UUID | str | None = None):
    """Submit a validated job to a work-pool compute target.

    Args:
        spec: The validated job (``MLClient.jobs.validate``), its ``name`` set.
        target: Its compute target (default: ``get_compute(spec.compute)``); must not be local.
        stream: Follow the job's logs until it ends (printing each with ``printer``).
        printer: Where streamed log lines go.
        parent_task_run_id: The task run the flow run is a child of (a pipeline step), shown nested under it.

    Returns:
        The :class:`~prefect_ml.jobs.Job`: ``Queued`` at once, or finished when ``stream``.

    Raises:
        ValidationError: The target is local, the job type cannot run on pools, or the instance type is unknown.
    """
    from prefect_ml._prefect import prefect_client
    from prefect_ml.client import JobOperations

    target = target or get_compute(spec.compute)
    if target.is_local:
        raise ValidationError([Problem("compute", "a local target runs in this process; use MLClient.jobs.run",
                                       value=spec.compute)])
    variables = job_variables(spec, target, log=lambda line: print(line, file=sys.stderr))
    deployment_id = ensure_deployment(target, spec.type)
    snapshot = upload_snapshot(spec.code_path() or spec.code) if getattr(spec, "code", None) else None
    submitted_at = time.time()
    parameters = flow_parameters(spec, snapshot=snapshot, submitted_at=submitted_at)
    with prefect_client() as client:
        flow_run = client.create_flow_run_from_deployment(
            deployment_id, parameters=parameters, name=spec.name, tags=[JOB_TAG, f"{JOB_TAG}:{spec.type}"],
            job_variables=variables or None, parent_task_run_id=parent_task_run_id)
    if snapshot is not None:
        print(f"Code snapshot {snapshot['hash'][:12]} uploaded in {snapshot['upload_seconds']:.2f}s to "
              f"{snapshot['uri']}", file=sys.stderr)
    jobs = JobOperations()
    if stream:
        return jobs.stream(spec.name, printer=printer)
    job = jobs._get_by_flow_run_id(flow_run.id, spec.name)
    job.compute = job.compute or spec.compute
    return job


# ------------------------------------------------------------------ dry run
def render_infrastructure(target: ComputeTarget, variables: dict[str, Any], job_name: str) -> dict[str, Any]:
    """What the pool's worker would create for a flow run, rendered offline by the worker package's own code.

    - docker: ``DockerWorkerJobConfiguration.from_template_and_values`` + ``prepare_for_flow_run``, then the
      worker's container settings (``image``, ``command``, ``environment``, ``mem_limit``, ``device_requests``...).
    - kubernetes: ``KubernetesWorkerJobConfiguration.from_template_and_values`` + ``prepare_for_flow_run``: the
      ``batch/v1`` Job manifest.
    - process/dask: the rendered job configuration (command, env keys, working dir / resources).

    The flow run is a placeholder (not created); secrets in ``env`` are masked.
    """
    from uuid import uuid4

    from prefect.client.schemas.objects import FlowRun

    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        pool = client.read_work_pool(target.name)
    flow_run = FlowRun(id=uuid4(), name=job_name, flow_id=uuid4(), tags=[JOB_TAG])
    template = pool.base_job_template
    if target.type == "kubernetes":
        from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration as Config
    elif target.type == "docker":
        from prefect_docker.worker import DockerWorkerJobConfiguration as Config
    elif target.type == "dask":
        from prefect_ml.compute.dask_worker import DaskJobConfiguration as Config
    else:
        from prefect.workers.process import ProcessJobConfiguration as Config
    import asyncio

    from prefect.client.orchestration import get_client

    async def build():
        async with get_client() as aclient:
            return await Config.from_template_and_values(template, variables, client=aclient)

    config = asyncio.run(build())
    config.prepare_for_flow_run(flow_run)
    if target.type == "kubernetes":
        manifest = config.job_manifest
        for container in manifest["spec"]["template"]["spec"]["containers"]:
            container["env"] = [_mask_env(item) for item in container.get("env", [])]
        return {"job_manifest": manifest, "namespace": config.namespace}
    if target.type == "docker":
        data = config.model_dump(mode="json", exclude={"registry_credentials"})
        data["env"] = {k: _mask(k, v) for k, v in (data.get("env") or {}).items()}
        kwargs = data.pop("container_create_kwargs", None) or {}
        settings = {"image": data.get("image"), "command": data.get("command"), "name": data.get("name"),
                    "environment": data["env"], "labels": data.get("labels"), "mem_limit": data.get("mem_limit"),
                    "network_mode": data.get("network_mode"), "volumes": data.get("volumes"),
                    "auto_remove": data.get("auto_remove"), **kwargs}
        return {"container": settings}
    data = config.model_dump(mode="json")
    data["env"] = {k: _mask(k, v) for k, v in (data.get("env") or {}).items() if k.startswith(("PREFECT_", "MLFLOW"))}
    return {"job_configuration": data}


_SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "AUTH")


def _mask(key: str, value: Any) -> Any:
    return "***" if any(word in key.upper() for word in _SECRET_WORDS) and value else value


def _mask_env(item: dict[str, Any]) -> dict[str, Any]:
    if "value" in item:
        return {**item, "value": _mask(item.get("name", ""), item["value"])}
    return item


def rendered_command(spec) -> str | None:
    """The command line the job would run, inputs and outputs shown as the URIs/paths they resolve to."""
    from prefect_ml import settings
    from prefect_ml.specs import render_command
    from prefect_ml.tasks.inputs import check_inputs

    if not getattr(spec, "command", None):
        return None
    uris = check_inputs(spec)
    values = {name: (uris.get(name) if item.is_data else item.default) for name, item in spec.inputs.items()}
    outputs = {name: str(settings.jobs_dir() / spec.name / "outputs" / name) for name in (spec.outputs or {})}
    return render_command(spec.command, inputs=values, outputs=outputs, name=spec.name)


def dry_run(spec, target: ComputeTarget | None = None) -> dict[str, Any]:
    """Resolve and render a validated job without creating anything (no flow run, deployment, MLflow run).

    Returns:
        ``{"job": <resolved spec>, "compute": {"name", "type", "settings"}, "command": <command line>,
        "job_variables": {...}}`` plus, for work-pool targets, ``"infrastructure"`` (see
        :func:`render_infrastructure`) and ``"deployment"``/``"work_pool"`` names; for docker targets
        ``"warnings"``: what the container would not reach, with the fix
        (:func:`prefect_ml.compute.docker.container_warnings`).

    Raises:
        ValidationError: Unknown instance type or a job type that cannot run on the target.
    """
    target = target or get_compute(getattr(spec, "compute", None))
    result: dict[str, Any] = {
        "job": spec.model_dump(mode="json", by_alias=True),
        "compute": {"name": target.name, "type": target.type, "settings": target.settings},
        "command": rendered_command(spec),
    }
    variables = job_variables(spec, target, build=False)
    result["job_variables"] = variables
    from prefect_ml.job_kinds import kind_module, runs_in_process

    if not runs_in_process(kind_module(spec.type), target):
        kind = _kind(spec.type)
        result["work_pool"] = target.name
        result["deployment"] = f"{kind.FLOW_NAME}/{target.name}"
        result["infrastructure"] = render_infrastructure(target, variables, spec.name)
    if target.type == "docker":
        from prefect_ml.compute.docker import container_warnings

        result["warnings"] = container_warnings(target.settings)
    return result
