"""``prefect-ml compute create|list|show|update|delete``: compute targets (Prefect work pools)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from prefect_ml.cli.app import _client, _print_json, _print_table, _table, err, handle_errors, out
from prefect_ml.exceptions import Problem, ValidationError

compute_app = typer.Typer(help="Compute targets: Prefect work pools (local, process, docker, kubernetes, dask).",
                          no_args_is_help=True)


def _pairs(values: Optional[List[str]], option: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValidationError([Problem(option, "expected KEY=VALUE", value=item)], title="Invalid compute target")
        result[key.strip()] = value.strip()
    return result


def _instance_types(values: Optional[List[str]]) -> dict[str, dict[str, Any]]:
    """``NAME=cpu=4,memory=16Gi,gpus=1`` -> ``{NAME: {cpu: 4, memory: 16Gi, gpus: 1}}``."""
    result: dict[str, dict[str, Any]] = {}
    for item in values or []:
        name, sep, rest = item.partition("=")
        if not sep or not name:
            raise ValidationError([Problem("instance-type", "expected NAME=cpu=N,memory=SIZE,gpus=N", value=item)],
                                  title="Invalid compute target")
        fields = _pairs([p for p in rest.split(",") if p], "instance-type")
        result[name] = fields
    return result


def _tolerations(values: Optional[List[str]]) -> list[dict[str, str]]:
    """``key=gpu,operator=Exists,effect=NoSchedule`` -> a toleration mapping."""
    return [_pairs([p for p in item.split(",") if p], "toleration") for item in values or []]


def _changes(**options: Any) -> dict[str, Any]:
    changes = {
        "description": options["description"], "size": options["size"], "max_instances": options["max_instances"],
        "min_instances": options["min_instances"],
        "idle_time_before_scale_down": options["idle_time_before_scale_down"], "image": options["image"],
        "namespace": options["namespace"], "scheduler_address": options["scheduler_address"],
        "cluster": options["cluster"], "threads_per_worker": options["threads_per_worker"],
        "network_mode": options["network_mode"],
        "instance_types": _instance_types(options["instance_type"]) or None,
        "node_selector": _pairs(options["node_selector"], "node-selector") or None,
        "gpu_node_selector": _pairs(options["gpu_node_selector"], "gpu-node-selector") or None,
        "tolerations": _tolerations(options["toleration"]) or None,
        "worker_resources": {k: float(v) for k, v in _pairs(options["worker_resource"], "worker-resource").items()}
        or None,
        "env": _pairs(options["env"], "env") or None,
        "volumes": list(options["volume"] or []) or None,
    }
    return {k: v for k, v in changes.items() if v is not None}


def _target_json(target) -> dict[str, Any]:
    return {"name": target.name, "type": target.type, **target.settings}


# Options shared by create and update (typer needs them spelled out per command).
_DESCRIPTION = typer.Option(None, "--description", "-d", help="Free text.")
_SIZE = typer.Option(None, "--size", help="Default instance type (one of --instance-type).")
_MAX = typer.Option(None, "--max-instances", help="Most jobs at once (the pool's concurrency limit); Dask: workers.")
_MIN = typer.Option(None, "--min-instances", help="Dask: workers kept when idle.")
_IDLE = typer.Option(None, "--idle-time-before-scale-down", help="Dask: idle seconds before scale-down.")
_ITYPE = typer.Option(None, "--instance-type", help="Named size NAME=cpu=N,memory=SIZE,gpus=N (repeatable).")
_IMAGE = typer.Option(None, "--image", help="Docker/Kubernetes image (must contain prefect-ml).")
_NS = typer.Option(None, "--namespace", help="Kubernetes namespace.")
_NODESEL = typer.Option(None, "--node-selector", help="Kubernetes node selector KEY=VALUE (repeatable).")
_GPUSEL = typer.Option(None, "--gpu-node-selector", help="Kubernetes node selector for GPU jobs KEY=VALUE.")
_TOL = typer.Option(None, "--toleration", help="Kubernetes toleration key=K,operator=Exists,effect=NoSchedule.")
_SCHED = typer.Option(None, "--scheduler-address", help="Dask: existing scheduler tcp://HOST:PORT.")
_CLUSTER = typer.Option(None, "--cluster", help="Dask: cluster to start, local or cuda.")
_WRES = typer.Option(None, "--worker-resource", help="Dask: resource per worker, e.g. GPU=1 (repeatable).")
_THREADS = typer.Option(None, "--threads-per-worker", help="Dask: threads per worker.")
_ENV = typer.Option(None, "--env", help="Environment variable KEY=VALUE for every job (repeatable).")
_NET = typer.Option(None, "--network-mode", help="Docker network mode (host or none here).")
_VOL = typer.Option(None, "--volume", help="Docker volume HOST:CONTAINER[:MODE] (repeatable).")


@compute_app.command("create")
@handle_errors
def compute_create(
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Target (work pool) name."),
    type_: Optional[str] = typer.Option(None, "--type", "-t", help="local, process, docker, kubernetes or dask."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="Compute YAML (Azure's amlCompute schema or "
                                                                   "prefect-ml's fields; see docs/compute.md)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing target."),
    description: Optional[str] = _DESCRIPTION, size: Optional[str] = _SIZE, max_instances: Optional[int] = _MAX,
    min_instances: Optional[int] = _MIN, idle_time_before_scale_down: Optional[float] = _IDLE,
    instance_type: Optional[List[str]] = _ITYPE, image: Optional[str] = _IMAGE, namespace: Optional[str] = _NS,
    node_selector: Optional[List[str]] = _NODESEL, gpu_node_selector: Optional[List[str]] = _GPUSEL,
    toleration: Optional[List[str]] = _TOL, scheduler_address: Optional[str] = _SCHED,
    cluster: Optional[str] = _CLUSTER, worker_resource: Optional[List[str]] = _WRES,
    threads_per_worker: Optional[int] = _THREADS, env: Optional[List[str]] = _ENV,
    network_mode: Optional[str] = _NET, volume: Optional[List[str]] = _VOL,
) -> None:
    """Create a compute target: a Prefect work pool of the same name with prefect-ml's job template."""
    from prefect_ml.compute.targets import create_compute, parse_spec, spec_from_file

    changes = _changes(**{k: v for k, v in locals().items() if k not in ("name", "type_", "file", "overwrite")})
    if file is not None:
        spec = spec_from_file(file, name=name, type=type_, **changes)
    else:
        missing = [Problem(flag, f"--{flag} is required without --file") for flag, value in
                   (("name", name), ("type", type_)) if not value]
        if missing:
            raise ValidationError(missing, title="Invalid compute target")
        spec = parse_spec({"name": name, "type": type_, **changes})
    _client()
    target = create_compute(spec, overwrite=overwrite)
    out.print(f"Compute {target.name} ({target.type}) created as work pool {target.name}.", markup=False)
    from prefect_ml.cli.schedule import api_url_assignment, worker_command

    if target.type in ("process", "docker", "kubernetes", "dask"):
        out.print(f"Command jobs run on it through a worker: {worker_command(target.name, target.type)}",
                  markup=False)
    if target.type == "dask":
        api = api_url_assignment() or "PREFECT_API_URL"
        out.print("Sweep and AutoML jobs need no worker: they send their trials to the Dask cluster directly; "
                  f"start its Dask workers with {api} (and the same PREFECT_ML_HOME or MLFLOW_TRACKING_URI as here) "
                  "in their environment.",
                  markup=False)
    _docker_warnings(target)


def _docker_warnings(target) -> None:
    """Print what a docker target's containers would not reach (API, prefect-ml's home), with the fix."""
    if target.type == "docker":
        from prefect_ml.compute.docker import container_warnings

        for warning in container_warnings(target.settings):
            err.print(f"Warning: {warning}", markup=False)


@compute_app.command("update")
@handle_errors
def compute_update(
    name: str = typer.Option(..., "--name", "-n", help="Target name."),
    description: Optional[str] = _DESCRIPTION, size: Optional[str] = _SIZE, max_instances: Optional[int] = _MAX,
    min_instances: Optional[int] = _MIN, idle_time_before_scale_down: Optional[float] = _IDLE,
    instance_type: Optional[List[str]] = _ITYPE, image: Optional[str] = _IMAGE, namespace: Optional[str] = _NS,
    node_selector: Optional[List[str]] = _NODESEL, gpu_node_selector: Optional[List[str]] = _GPUSEL,
    toleration: Optional[List[str]] = _TOL, scheduler_address: Optional[str] = _SCHED,
    cluster: Optional[str] = _CLUSTER, worker_resource: Optional[List[str]] = _WRES,
    threads_per_worker: Optional[int] = _THREADS, env: Optional[List[str]] = _ENV,
    network_mode: Optional[str] = _NET, volume: Optional[List[str]] = _VOL,
) -> None:
    """Change a target's settings (given options only; mappings are merged)."""
    from prefect_ml.compute.targets import update_compute

    changes = _changes(**{k: v for k, v in locals().items() if k != "name"})
    _client()
    target = update_compute(name, **changes)
    _print_json(_target_json(target))
    _docker_warnings(target)


@compute_app.command("list")
@handle_errors
def compute_list(output: str = typer.Option("table", "--output", "-o", help="table or json.")) -> None:
    """List compute targets (all work pools)."""
    from prefect_ml.compute.targets import list_computes

    _client()
    targets = list_computes()
    if output == "json":
        _print_json([_target_json(t) for t in targets])
        _local_pool_note(targets, err)
        return
    table = _table("name", "type", "max_instances", "instance types")
    for t in targets:
        table.add_row(t.name, t.type, str(t.settings.get("max_instances") or ""),
                      ", ".join(sorted(t.settings.get("instance_types") or {})))
    _print_table(table)
    _local_pool_note(targets, out)


def _local_pool_note(targets, console) -> None:
    """Say that work pool ``local`` (deployments) is not ``compute: local`` (in-process); see deployments.pools."""
    from prefect_ml.deployments.pools import local_pool_note

    note = local_pool_note((t.name, t.type) for t in targets)
    if note:
        console.print(note, markup=False)


@compute_app.command("show")
@handle_errors
def compute_show(name: str = typer.Argument(..., help="Target name (NAME or azureml:NAME).")) -> None:
    """Show a target's settings as JSON."""
    from prefect_ml.compute.targets import get_compute

    _client()
    target = get_compute(name)
    _print_json(_target_json(target))
    _docker_warnings(target)
    if target.name == "local":  # in-process; not the deployments' work pool of the same name
        from prefect_ml.deployments.pools import LOCAL_COMPUTE_NOTE

        err.print(LOCAL_COMPUTE_NOTE, markup=False)


@compute_app.command("delete")
@handle_errors
def compute_delete(name: str = typer.Argument(..., help="Target name.")) -> None:
    """Delete a target's work pool."""
    from prefect_ml.compute.targets import delete_compute

    _client()
    delete_compute(name)
    out.print(f"Compute {name} deleted.", markup=False)
