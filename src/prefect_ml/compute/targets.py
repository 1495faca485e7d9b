"""Compute targets: what a job's ``compute:`` names.

A compute target is a Prefect **work pool** of the same name. ``prefect-ml compute create`` creates the pool
with a base job template: Prefect's default template for the pool's worker type (process, prefect-docker's
``docker``, prefect-kubernetes' ``kubernetes``, prefect-ml's ``dask``) extended with prefect-ml's variables
(GPU count, node selector, tolerations, Dask resources) and with the target's own settings stored as the default
of one extra variable, ``prefect_ml_compute`` (so a target lives entirely in Prefect and ``compute show`` reads
it back). ``max_instances`` is the pool's concurrency limit.

Types:

- ``local``: no worker; jobs run in the submitting process (lets Azure job files naming
  ``azureml:cpu-cluster`` run unchanged on a laptop). The pool exists only to record the target.
- ``process``, ``docker``, ``kubernetes``: jobs become flow runs of the command-job deployment for the pool,
  picked up by ``prefect worker start --pool NAME``.
- ``dask``: like ``process`` but the pool's worker (``prefect worker start --pool NAME --type dask``) runs each
  flow run on a Dask cluster holding the run's resources (see :mod:`prefect_ml.compute.dask_worker`).

Fan-out flows (sweep and AutoML trials) get their task runner from :func:`task_runner_for`.
Resource mappings: see ``docs/compute.md``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError as PydanticValidationError, field_validator

from prefect_ml.exceptions import NotFoundError, Problem, ValidationError

#: Compute names that mean "run in this process".
LOCAL_NAMES = frozenset({"", "local", "azureml:local"})
#: Target types and the Prefect worker type of their pool.
TYPES = ("local", "process", "docker", "kubernetes", "dask")
#: Name of the base-job-template variable whose default holds the target's settings.
SETTINGS_VARIABLE = "prefect_ml_compute"
#: Azure compute YAML types accepted by ``--file`` and the prefect-ml type they become.
AZURE_TYPES = {"amlcompute": "process", "computeinstance": "process", "kubernetes": "kubernetes"}


class InstanceType(BaseModel):
    """A named machine size (``resources.instance_type``), e.g. ``{cpu: 4, memory: 16Gi, gpus: 1}``.

    Attributes:
        cpu: CPU cores (may be fractional).
        memory: Memory as a Kubernetes quantity (``16Gi``, ``512Mi``) or Docker size (``16g``).
        gpus: Number of GPUs.
    """

    model_config = ConfigDict(extra="forbid")
    cpu: float | None = Field(default=None, gt=0)
    memory: str | None = None
    gpus: int = Field(default=0, ge=0)


class Toleration(BaseModel):
    """A Kubernetes toleration (``key``, ``operator``, ``value``, ``effect``)."""

    model_config = ConfigDict(extra="forbid")
    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class ComputeSpec(BaseModel):
    """A compute target's definition (``prefect-ml compute create`` options or ``--file compute.yml``).

    Follows Azure's compute YAML where it has a word for it (``name``, ``type``, ``size``, ``min_instances``,
    ``max_instances``, ``idle_time_before_scale_down``, ``description``); the rest is prefect-ml's.

    Attributes:
        name: Target (= work pool) name.
        type: One of :data:`TYPES`.
        description: Free text.
        size: Default instance type for jobs that give none.
        max_instances: Most jobs running at once (the pool's concurrency limit); for Dask also the most workers.
        min_instances: Dask: workers kept when idle (adaptive scale-down floor).
        idle_time_before_scale_down: Dask: seconds a worker may idle before the cluster shrinks.
        instance_types: Named sizes jobs may ask for with ``resources.instance_type``.
        image: Docker/Kubernetes: the image (must contain prefect-ml).
        namespace: Kubernetes namespace.
        node_selector: Kubernetes node selector applied to every job.
        tolerations: Kubernetes tolerations applied to every job.
        gpu_node_selector: Kubernetes node selector added to jobs that request GPUs.
        scheduler_address: Dask: an existing scheduler (``tcp://host:8786``); default: a cluster started by the worker.
        cluster: Dask: ``local`` (``distributed.LocalCluster``) or ``cuda`` (``dask_cuda.LocalCUDACluster``).
        worker_resources: Dask: resources each worker of a started cluster offers, e.g. ``{"GPU": 1}``.
        threads_per_worker: Dask: threads per worker of a started cluster.
        env: Environment variables for every job on this target.
        network_mode: Docker network mode (``host`` or ``none`` on machines without bridge networks).
        volumes: Docker volumes (``host:container[:mode]``).
    """

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    type: Literal["local", "process", "docker", "kubernetes", "dask"]
    description: str | None = None
    size: str | None = None
    max_instances: int | None = Field(default=None, ge=1)
    min_instances: int = Field(default=0, ge=0)
    idle_time_before_scale_down: float = Field(default=120, gt=0)
    instance_types: dict[str, InstanceType] = Field(default_factory=dict)
    image: str | None = None
    namespace: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    gpu_node_selector: dict[str, str] = Field(default_factory=dict)
    scheduler_address: str | None = None
    cluster: Literal["local", "cuda"] = "local"
    worker_resources: dict[str, float] = Field(default_factory=dict)
    threads_per_worker: int = Field(default=1, ge=1)
    env: dict[str, str] = Field(default_factory=dict)
    network_mode: str | None = None
    volumes: list[str] = Field(default_factory=list)

    @field_validator("name", mode="before")
    @classmethod
    def _strip_prefix(cls, value):
        return value.removeprefix("azureml:") if isinstance(value, str) else value

    def check(self) -> list[Problem]:
        """Cross-field problems (empty when the spec is consistent)."""
        problems = []
        if self.size and self.size not in self.instance_types:
            problems.append(Problem("size", f"not one of instance_types ({', '.join(self.instance_types) or 'none'})",
                                    value=self.size))
        if self.max_instances is not None and self.min_instances > self.max_instances:
            problems.append(Problem("min_instances", f"larger than max_instances ({self.max_instances})",
                                    value=self.min_instances))
        if self.type not in ("docker", "kubernetes") and self.image:
            problems.append(Problem("image", f"only docker and kubernetes targets run images, not {self.type}",
                                    value=self.image))
        if self.type != "dask" and (self.scheduler_address or self.worker_resources):
            problems.append(Problem("scheduler_address" if self.scheduler_address else "worker_resources",
                                    "only dask targets have a scheduler and worker resources"))
        if self.type != "kubernetes" and (self.node_selector or self.tolerations or self.namespace):
            problems.append(Problem("node_selector", "node selectors, tolerations and namespaces are kubernetes "
                                                     "settings"))
        return problems


@dataclass(frozen=True)
class ComputeTarget:
    """A resolved compute target.

    Attributes:
        name: The target's name (``local`` for the built-in local compute).
        type: ``local``, ``process``, ``docker``, ``kubernetes`` or ``dask``.
        settings: The target's :class:`ComputeSpec` as a dict (empty for pools not made by prefect-ml).
    """

    name: str
    type: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        """True when jobs run in the submitting process (no worker)."""
        return self.type == "local"

    @property
    def pool_name(self) -> str | None:
        """The work pool jobs are submitted to (``None`` for local targets)."""
        return None if self.is_local else self.name

    @property
    def spec(self) -> ComputeSpec:
        """The settings as a :class:`ComputeSpec`."""
        return ComputeSpec.model_validate({"name": self.name, "type": self.type, **self.settings})


# ----------------------------------------------------------------- templates
def _worker_template(worker_type: str) -> dict[str, Any]:
    """The base job template of ``worker_type``'s Prefect worker.

    Raises:
        MissingDependencyError: The worker's package (an extra of prefect-ml) is not installed.
    """
    try:
        if worker_type == "docker":
            from prefect_docker.worker import DockerWorker

            return DockerWorker.get_default_base_job_template()
        if worker_type == "kubernetes":
            from prefect_kubernetes.worker import KubernetesWorker

            return KubernetesWorker.get_default_base_job_template()
        if worker_type == "dask":
            from prefect_ml.compute.dask_worker import DaskWorker

            return DaskWorker.get_default_base_job_template()
    except ImportError as exc:
        from prefect_ml.exceptions import MissingDependencyError

        raise MissingDependencyError(
            f"compute type '{worker_type}' needs the {exc.name or 'worker'} package, which is not installed: "
            f"pip install 'prefect-ml[{worker_type}]'") from exc
    from prefect.workers.process import ProcessWorker

    return ProcessWorker.get_default_base_job_template()


def _optional(properties: dict, name: str, schema: dict) -> None:
    properties[name] = schema


def base_job_template(spec: ComputeSpec) -> dict[str, Any]:
    """The pool's base job template: the worker type's default template plus prefect-ml's variables.

    Added variables (no default, so an unset one vanishes from the rendered configuration):

    - kubernetes: ``gpu_count`` -> ``resources.limits["nvidia.com/gpu"]`` of the job's container,
      ``node_selector`` -> ``spec.template.spec.nodeSelector``, ``tolerations`` -> ``...tolerations``
      (defaults: the target's own).
    - docker: ``container_create_kwargs`` defaults to the target's ``volumes``/``network_mode``; GPUs come
      per job as ``device_requests`` in it.
    - every type: ``env`` defaults to the target's ``env``; ``prefect_ml_compute`` holds the settings.
    """
    worker_type = "process" if spec.type == "local" else spec.type
    template = copy.deepcopy(_worker_template(worker_type))
    props = template["variables"].setdefault("properties", {})
    settings = spec.model_dump(mode="json", exclude={"name", "type"}, exclude_defaults=True)
    props[SETTINGS_VARIABLE] = {"title": "prefect-ml compute target", "type": "object",
                                "description": "prefect-ml's settings of this compute target (read by prefect-ml; "
                                               "not used by the worker).",
                                "default": {"type": spec.type, **settings}}
    if spec.env and "env" in props:
        props["env"]["default"] = dict(spec.env)
    if spec.type == "docker":
        if spec.image:
            props["image"]["default"] = spec.image
        if spec.network_mode:
            props["network_mode"]["default"] = spec.network_mode
        if spec.volumes:
            props["volumes"]["default"] = list(spec.volumes)
    elif spec.type == "kubernetes":
        if spec.image:
            props["image"]["default"] = spec.image
        if spec.namespace:
            props["namespace"]["default"] = spec.namespace
        props["gpu_count"] = {"title": "GPUs", "type": "integer", "minimum": 0,
                              "description": "nvidia.com/gpu limit of the job's container (set from "
                                             "resources.instance_type by prefect-ml)."}
        props["node_selector"] = {"title": "Node selector", "type": "object",
                                  "additionalProperties": {"type": "string"}}
        props["tolerations"] = {"title": "Tolerations", "type": "array", "items": {"type": "object"}}
        if spec.node_selector:
            props["node_selector"]["default"] = dict(spec.node_selector)
        if spec.tolerations:
            props["tolerations"]["default"] = [t.model_dump(exclude_none=True) for t in spec.tolerations]
        pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
        pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = "{{ gpu_count }}"
        pod["nodeSelector"] = "{{ node_selector }}"
        pod["tolerations"] = "{{ tolerations }}"
        # prefect-kubernetes' default puts these Job fields in the pod spec, where the schema rejects them.
        job_spec = template["job_configuration"]["job_manifest"]["spec"]
        job_spec["completions"] = pod.pop("completions", 1)
        job_spec["parallelism"] = pod.pop("parallelism", 1)
    elif spec.type == "dask":
        for key in ("scheduler_address", "cluster", "worker_resources", "threads_per_worker", "min_instances",
                    "max_instances", "idle_time_before_scale_down"):
            value = getattr(spec, key)
            if value is not None and key in props:
                props[key]["default"] = value
    return template


# ------------------------------------------------------------------ CRUD
def _pool_to_target(pool) -> ComputeTarget:
    props = (pool.base_job_template or {}).get("variables", {}).get("properties", {})
    stored = dict(props.get(SETTINGS_VARIABLE, {}).get("default") or {})
    kind = stored.pop("type", None) or pool.type
    if pool.concurrency_limit is not None:
        stored["max_instances"] = pool.concurrency_limit
    return ComputeTarget(name=pool.name, type=kind, settings=stored)


def _pools():
    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        return client.read_work_pools()


def list_computes() -> list[ComputeTarget]:
    """All compute targets (every work pool), sorted by name."""
    return sorted((_pool_to_target(p) for p in _pools()), key=lambda t: t.name)


def _read_pool(name: str):
    from prefect.exceptions import ObjectNotFound

    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        try:
            return client.read_work_pool(name)
        except ObjectNotFound:
            return None


def normalize_name(name: str) -> str:
    """``azureml:NAME`` -> ``NAME``."""
    return name.strip().removeprefix("azureml:")


def get_compute(name: str | None) -> ComputeTarget:
    """Resolve a job's ``compute`` value (``NAME`` or ``azureml:NAME``).

    ``None``, ``""``, ``local`` and ``azureml:local`` mean the submitting process unless a target named
    ``local`` exists.

    Raises:
        NotFoundError: No such target; the message lists those that exist.
    """
    if name is None or name in LOCAL_NAMES:
        return ComputeTarget(name="local", type="local")
    short = normalize_name(name)
    pool = _read_pool(short)
    if pool is None:
        existing = ", ".join(t.name for t in list_computes()) or "none"
        raise NotFoundError(f"compute target {name!r} not found. Existing compute targets: {existing}. Create it "
                            f"with `prefect-ml compute create --name {short} --type local|process|docker|kubernetes|"
                            "dask`, or use `compute: local`.")
    return _pool_to_target(pool)


def spec_from_file(path: str | Path, **overrides: Any) -> ComputeSpec:
    """Read a compute YAML file (Azure's ``amlCompute`` schema or prefect-ml's fields).

    Azure's ``type: amlcompute`` and ``computeinstance`` become ``process``; ``$schema``,
    ``location``, ``tier`` and ``identity`` are ignored.

    Raises:
        ValidationError: The file is missing, not YAML or has invalid fields.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationError([Problem("file", str(exc), value=str(path))], file=str(path),
                              title="Invalid compute file") from None
    if not isinstance(data, dict):
        raise ValidationError([Problem("file", "expected a mapping", value=str(path))], file=str(path),
                              title="Invalid compute file")
    for ignored in ("$schema", "location", "tier", "identity", "ssh_public_access_enabled", "admin_username"):
        data.pop(ignored, None)
    if isinstance(data.get("type"), str):
        data["type"] = AZURE_TYPES.get(data["type"].lower(), data["type"].lower())
    data.update({k: v for k, v in overrides.items() if v is not None})
    return parse_spec(data, file=str(path))


def parse_spec(data: dict[str, Any], *, file: str | None = None) -> ComputeSpec:
    """Validate a compute definition; raise ``ValidationError`` with every problem."""
    try:
        spec = ComputeSpec.model_validate(data)
    except PydanticValidationError as exc:
        problems = [Problem(".".join(str(p) for p in e["loc"]) or "compute", e["msg"], value=e.get("input"))
                    for e in exc.errors()]
        raise ValidationError(problems, file=file, title="Invalid compute target") from None
    problems = spec.check()
    if problems:
        raise ValidationError(problems, file=file, title="Invalid compute target")
    return spec


def create_compute(spec: ComputeSpec, *, overwrite: bool = False) -> ComputeTarget:
    """Create (or with ``overwrite`` replace) the work pool of a compute target.

    Raises:
        ValidationError: The target exists and ``overwrite`` is false, or the spec is inconsistent.
    """
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate

    from prefect_ml._prefect import prefect_client

    problems = spec.check()
    if problems:
        raise ValidationError(problems, title="Invalid compute target")
    template = base_job_template(spec)
    existing = _read_pool(spec.name)
    with prefect_client() as client:
        if existing is not None:
            if not overwrite:
                raise ValidationError([Problem("name", "a compute target (work pool) with this name exists; use "
                                                       "`prefect-ml compute update` or pass --overwrite",
                                               value=spec.name)], title="Invalid compute target")
            client.update_work_pool(spec.name, WorkPoolUpdate(
                base_job_template=template, concurrency_limit=spec.max_instances, description=spec.description))
        else:
            client.create_work_pool(WorkPoolCreate(
                name=spec.name, type=_pool_type(spec.type), base_job_template=template,
                concurrency_limit=spec.max_instances, description=spec.description))
    return get_compute(spec.name)


def _pool_type(kind: str) -> str:
    return "prefect-ml-local" if kind == "local" else kind


def update_compute(name: str, **changes: Any) -> ComputeTarget:
    """Change settings of an existing target (``None`` values are left unchanged).

    Raises:
        NotFoundError: No such target.
        ValidationError: The result is invalid, or ``type`` would change.
    """
    current = get_compute(name)
    if current.is_local and normalize_name(name) in ("", "local") and _read_pool("local") is None:
        raise NotFoundError("the built-in local compute has no settings to update")
    data = {"name": current.name, "type": current.type, **current.settings}
    if changes.get("type") not in (None, current.type):
        raise ValidationError([Problem("type", f"a target's type cannot change (it is {current.type}); delete and "
                                               "create it again", value=changes["type"])],
                              title="Invalid compute target")
    for key, value in changes.items():
        if value is None or key == "type":
            continue
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return create_compute(parse_spec(data), overwrite=True)


def delete_compute(name: str) -> None:
    """Delete a target's work pool (its deployments' runs stay in Prefect's history).

    Raises:
        NotFoundError: No such target.
    """
    from prefect.exceptions import ObjectNotFound

    from prefect_ml._prefect import prefect_client

    target = get_compute(name)
    with prefect_client() as client:
        try:
            client.delete_work_pool(target.name)
        except ObjectNotFound:
            raise NotFoundError(f"compute target {name!r} not found") from None


# --------------------------------------------------------------- resources
def resolve_instance(target: ComputeTarget, resources) -> tuple[str | None, InstanceType]:
    """The instance type a job gets on ``target``: ``resources.instance_type``, else the target's ``size``.

    Args:
        target: The compute target.
        resources: The job's ``resources`` (``Resources`` or ``None``).

    Returns:
        ``(name, InstanceType)``; an empty ``InstanceType`` when neither names one.

    Raises:
        ValidationError: The instance type is not one of the target's (field ``resources.instance_type``).
    """
    requested = getattr(resources, "instance_type", None) if resources is not None else None
    types = {k: InstanceType.model_validate(v) for k, v in (target.settings.get("instance_types") or {}).items()}
    name = requested or target.settings.get("size")
    if name is None:
        return None, InstanceType()
    if name not in types:
        if target.is_local and requested:  # Azure files name cloud sizes; the local compute has only one
            return name, InstanceType()
        raise ValidationError([Problem("resources.instance_type",
                                       f"compute {target.name!r} has no instance type {name!r}; it has: "
                                       f"{', '.join(sorted(types)) or 'none'} (add one with `prefect-ml compute "
                                       f"update --name {target.name} --instance-type {name}=cpu=4,memory=16Gi,gpus=1`)",
                                       value=name)], title="Invalid job")
    return name, types[name]


def _memory_for_docker(memory: str) -> str:
    """``16Gi`` -> ``16g``, ``512Mi`` -> ``512m``; Docker sizes pass through."""
    units = {"Ki": "k", "Mi": "m", "Gi": "g", "Ti": "t", "K": "k", "M": "m", "G": "g", "T": "t"}
    for suffix, unit in units.items():
        if memory.endswith(suffix):
            return memory[: -len(suffix)] + unit
    return memory


def job_variables_for(target: ComputeTarget, resources) -> dict[str, Any]:
    """The work pool job variables that give a job its resources on ``target`` (see docs/compute.md).

    - docker: ``mem_limit`` from memory; ``container_create_kwargs.nano_cpus`` from cpu;
      ``container_create_kwargs.device_requests`` ``[{"driver": "nvidia", "count": N, "capabilities": [["gpu"]]}]``.
    - kubernetes: ``cpu_request``/``cpu_limit``, ``memory_request``/``memory_limit``, ``gpu_count`` (the
      ``nvidia.com/gpu`` limit) and, with GPUs, the target's ``gpu_node_selector`` merged into ``node_selector``.
    - dask: ``resources`` ``{"GPU": gpus, "CPU": cpu, "MEMORY": bytes}`` (only those declared), the Dask
      resource constraints of the run.
    - process/local: none (one process on the worker's machine).

    Raises:
        ValidationError: Unknown instance type.
    """
    _, size = resolve_instance(target, resources)
    variables: dict[str, Any] = {}
    spec_settings = target.settings
    if target.type == "docker":
        kwargs: dict[str, Any] = {}
        if size.memory:
            variables["mem_limit"] = _memory_for_docker(size.memory)
        if size.cpu:
            kwargs["nano_cpus"] = int(size.cpu * 1e9)
        if size.gpus:
            kwargs["device_requests"] = [{"driver": "nvidia", "count": size.gpus, "capabilities": [["gpu"]]}]
        if kwargs:
            variables["container_create_kwargs"] = kwargs
    elif target.type == "kubernetes":
        if size.cpu:
            variables["cpu_request"] = variables["cpu_limit"] = str(size.cpu)
        if size.memory:
            variables["memory_request"] = variables["memory_limit"] = size.memory
        if size.gpus:
            variables["gpu_count"] = size.gpus
            if spec_settings.get("gpu_node_selector"):
                variables["node_selector"] = {**(spec_settings.get("node_selector") or {}),
                                              **spec_settings["gpu_node_selector"]}
    elif target.type == "dask":
        dask_resources: dict[str, float] = {}
        if size.gpus:
            dask_resources["GPU"] = size.gpus
        if size.cpu:
            dask_resources["CPU"] = size.cpu
        if size.memory:
            dask_resources["MEMORY"] = parse_memory_bytes(size.memory)
        if dask_resources:
            variables["resources"] = dask_resources
    return variables


def parse_memory_bytes(memory: str) -> int:
    """``16Gi`` / ``16G`` / ``16g`` / ``1024`` -> bytes (binary units for ``Ki``/``Mi``/``Gi``, decimal otherwise)."""
    text = memory.strip()
    factors = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "K": 10**3, "m": 10**6,
               "M": 10**6, "g": 10**9, "G": 10**9, "t": 10**12, "T": 10**12}
    for suffix in sorted(factors, key=len, reverse=True):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factors[suffix])
    return int(float(text))


# ------------------------------------------------------------ task runners
def task_runner_for(target: ComputeTarget, *, max_workers: int | None = None):
    """The Prefect task runner for fan-out work (trials) on ``target``.

    Args:
        target: The resolved compute target.
        max_workers: Most tasks running at once (e.g. ``limits.max_concurrent_trials``).

    Returns:
        A ``prefect_dask.DaskTaskRunner`` on the target's cluster for ``dask`` targets (its
        ``scheduler_address``, else the cluster of the Dask worker running this flow run, else a new
        ``LocalCluster`` with the target's ``worker_resources``); a ``ThreadPoolTaskRunner`` otherwise.

    Raises:
        ConfigurationError: The Dask scheduler cannot be reached, or the CUDA cluster cannot start.
    """
    if target.type == "dask":
        from prefect_ml.compute.dask_worker import dask_task_runner

        return dask_task_runner(target, max_workers=max_workers)
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=max_workers)
