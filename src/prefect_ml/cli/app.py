"""Typer application: ``prefect-ml job|data|model|datastore|environment|server ...``.

Exit codes: 0 success (job Completed), 1 job Failed or Canceled, 2 invalid input (nothing created).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from prefect_ml.exceptions import ConfigurationError, NotFoundError, PrefectMLError, ValidationError

app = typer.Typer(help="Azure ML-style training jobs on Prefect, tracked in MLflow.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
job_app = typer.Typer(help="Create, inspect, follow, cancel and download jobs.", no_args_is_help=True)
data_app = typer.Typer(help="Versioned data assets.", no_args_is_help=True)
model_app = typer.Typer(help="Registered models (MLflow model registry).", no_args_is_help=True)
datastore_app = typer.Typer(help="Datastores: names mapped to fsspec root URLs.", no_args_is_help=True)
environment_app = typer.Typer(help="Environments: versioned Azure environment assets and interpreter mappings.",
                              no_args_is_help=True)
server_app = typer.Typer(help="The local Prefect API prefect-ml starts on first use.", no_args_is_help=True)
app.add_typer(job_app, name="job")
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(datastore_app, name="datastore")
app.add_typer(environment_app, name="environment")
app.add_typer(server_app, name="server")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def handle_errors(fn: Callable) -> Callable:
    """Turn user errors into a clear message and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValidationError, NotFoundError, ConfigurationError) as exc:
            err.print(f"[red]Error:[/red] {escape(str(exc))}", markup=True, highlight=False)
            raise typer.Exit(2) from None
        except PrefectMLError as exc:
            err.print(f"[red]Error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def _client():
    from prefect_ml.client import MLClient

    return MLClient()


def _table(first: str, *others: str) -> Table:
    """A table whose first column (a name users copy into other commands) is never wrapped or cut."""
    return Table(Column(first, no_wrap=True), *others)


def _print_table(table: Table) -> None:
    """Print a table at its natural width when the terminal is narrower, so that no cell is cut."""
    from rich.measure import Measurement

    needed = Measurement.get(out, out.options.update_width(10_000), table).maximum
    wide = Console(highlight=False, width=max(out.width, needed)) if needed > out.width else out
    wide.print(table)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


JOB_JSON_FIELDS = ("name", "status", "experiment_name", "mlflow_run_id", "prefect_flow_run_id", "metrics", "outputs",
                   "log_path")


def _job_json(job) -> dict[str, Any]:
    data = job.to_dict()
    details = data.pop("details", None) or {}
    ordered = {key: data[key] for key in JOB_JSON_FIELDS}
    ordered.update({k: v for k, v in data.items() if k not in ordered})
    ordered.update({k: v for k, v in details.items() if k not in ordered})  # a kind's own fields, top level
    return ordered


def _fmt_metric(value: float) -> str:
    return f"{value:.6g}"


def _print_summary(job) -> None:
    from prefect_ml.jobs import flow_run_ui_url

    colour = {"Completed": "green", "Failed": "red", "Canceled": "yellow"}.get(job.status, "cyan")
    out.print(f"\n[bold]Job[/bold] {job.name}  [{colour}]{job.status}[/{colour}]")
    rows: list[tuple[str, str]] = [("experiment", job.experiment_name or ""), ("mlflow run", job.mlflow_run_id or ""),
                                   ("prefect flow run", flow_run_ui_url(job.prefect_flow_run_id) or ""),
                                   ("log", job.log_path or "")]
    if job.timings:
        rows.append(("lifecycle", "  ".join(f"{k} {v:.2f}s" for k, v in job.timings.items())))
    if job.metrics:
        rows.append(("metrics", "  ".join(f"{k}={_fmt_metric(v)}" for k, v in sorted(job.metrics.items()))))
    rows += [(f"output {name}", uri) for name, uri in job.outputs.items()]
    rows += [("registered model", f"{ref} (from output {name})") for name, ref in job.registered_models.items()]
    rows += [("registered data", f"{ref} (from output {name})") for name, ref in job.registered_data.items()]
    rows += [(f"step {step['name']}", _step_summary(step)) for step in job.details.get("steps") or ()]
    rows = [(k, v) for k, v in rows if v]
    width = max((len(k) for k, _ in rows), default=0) + 2
    for key, value in rows:
        out.print(f"  {key:<{width}}{value}", markup=False)
    if job.error:
        err.print(job.error, style="red", markup=False)


def _step_summary(step: dict[str, Any]) -> str:
    """A pipeline step's line in the summary: its status and child job, or the earlier job it reused."""
    if step.get("reused"):
        return f"{step['status']} (reused from {step.get('reused_from')})"
    text = f"{step.get('status')}  job {step.get('job_name')}"
    return f"{text}  error: {step['error'].splitlines()[0]}" if step.get("error") else text


# --------------------------------------------------------------------- job
@job_app.command("create")
@handle_errors
def job_create(
    file: Path = typer.Option(..., "--file", "-f", help="Job YAML file (Azure ML CLI v2 commandJob schema)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a field: KEY=VALUE, e.g. inputs.lr=0.1."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Job name (default: generated)."),
    stream: bool = typer.Option(False, "--stream", "-s", help="Show the job's output as it runs."),
    output: str = typer.Option("table", "--output", "-o", help="Output format: table or json."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the resolved job, command line and "
                                                          "container settings / Job manifest; create nothing."),
) -> None:
    """Create a job from a YAML file and run it (local compute: in the foreground; work pools: queued)."""
    from prefect_ml.specs import load_job

    spec = load_job(file, overrides=set_ or [], name=name)
    client = _client()
    spec = client.jobs.validate(spec)
    if dry_run:
        from prefect_ml.compute.submit import dry_run as render_dry_run

        rendered = render_dry_run(spec)
        _print_json(rendered)
        for warning in rendered.get("warnings", ()):
            err.print(f"Warning: {warning}", markup=False)
        return
    if stream:
        out.print(f"[bold]Job[/bold] {spec.name} starting ({file})")
    elif output != "json":
        err.print(f"Job {spec.name} running (follow it with `prefect-ml job stream {spec.name}` or "
                  "in the Prefect UI)...", markup=False)
    job = client.jobs.run(spec, stream=stream)
    if output == "json":
        _print_json(_job_json(job))
    else:
        _print_summary(job)
    if job.status not in ("Completed", "Failed", "Canceled"):  # queued on a work pool
        if output != "json":
            err.print(f"Job {job.name} submitted to compute {spec.compute}; follow it with "
                      f"`prefect-ml job stream {job.name}`.", markup=False)
        raise typer.Exit(0)
    raise typer.Exit(job.exit_code)


@job_app.command("show")
@handle_errors
def job_show(name: str = typer.Argument(..., help="Job name."),
             output: str = typer.Option("json", "--output", "-o", help="Output format: json or table.")) -> None:
    """Show a job's status, metrics, outputs and log location."""
    job = _client().jobs.get(name)
    if output == "json":
        _print_json(_job_json(job))
    else:
        _print_summary(job)


@job_app.command("list")
@handle_errors
def job_list(max_results: int = typer.Option(50, "--max-results", "-r", help="Number of jobs to list."),
             parent_job_name: Optional[str] = typer.Option(
                 None, "--parent-job-name", "-p", help="List the child jobs of this pipeline or sweep job."),
             output: str = typer.Option("table", "--output", "-o", help="Output format: table or json.")) -> None:
    """List top-level jobs, newest first (pipeline steps and sweep trials: with --parent-job-name)."""
    jobs = _client().jobs.list(max_results=max_results, parent_job_name=parent_job_name)
    if output == "json":
        _print_json([_job_json(j) for j in jobs])
        return
    table = _table("name", "status", "experiment", "created", "metrics")
    for job in jobs:
        metrics = ", ".join(f"{k}={_fmt_metric(v)}" for k, v in sorted(job.metrics.items())[:3])
        table.add_row(job.name, job.status, job.experiment_name or "", (job.created_at or "")[:19], metrics)
    _print_table(table)


@job_app.command("stream")
@handle_errors
def job_stream(name: str = typer.Argument(..., help="Job name.")) -> None:
    """Follow a job's logs until it ends; exit 0 if it Completed, 1 otherwise."""
    job = _client().jobs.stream(name, printer=lambda message: out.print(message, markup=False))
    _print_summary(job)
    raise typer.Exit(job.exit_code)


@job_app.command("cancel")
@handle_errors
def job_cancel(name: str = typer.Argument(..., help="Job name.")) -> None:
    """Cancel a job: its process group is killed and it ends Canceled."""
    job = _client().jobs.cancel(name)
    out.print(f"Cancel requested for job {name} (status {job.status}).")


@job_app.command("download")
@handle_errors
def job_download(
    name: str = typer.Argument(..., help="Job name."),
    output_name: Optional[str] = typer.Option(None, "--output-name", help="Download only this output."),
    download_path: Path = typer.Option(Path("."), "--download-path", "-p", help="Folder to download into."),
    all_: bool = typer.Option(False, "--all", help="Also download the logs when --output-name is given."),
) -> None:
    """Download a job's outputs (named-outputs/NAME) and logs (artifacts/user_logs)."""
    target = _client().jobs.download(name, output_name=output_name, download_path=download_path, all=all_)
    out.print(f"Downloaded job {name} to {target}")


# -------------------------------------------------------------------- data
@data_app.command("create")
@handle_errors
def data_create(
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="Data asset YAML (Azure's data schema)."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Asset name."),
    version: Optional[str] = typer.Option(None, "--version", "-v", help="Version (default: next number)."),
    path: Optional[str] = typer.Option(None, "--path", "-p", help="Local path, fsspec URL or datastore URI."),
    type_: Optional[str] = typer.Option(None, "--type", "-t",
                                        help="uri_file, uri_folder or mltable (default: from the local path: "
                                             "a file is uri_file, a folder uri_folder, a folder with an MLTable "
                                             "file mltable; uri_folder for URLs)."),
    description: Optional[str] = typer.Option(None, "--description", "-d", help="Description."),
) -> None:
    """Create a new (immutable) version of a data asset."""
    from prefect_ml.data import create_data_asset, create_data_asset_from_file

    _client()
    if file is not None:
        overrides = {k: v for k, v in {"name": name, "version": version, "path": path,
                                       "description": description}.items() if v is not None}
        asset = create_data_asset_from_file(file, **overrides)
    else:
        problems = [f"--{flag} is required without --file" for flag, v in (("name", name), ("path", path)) if not v]
        if problems:
            from prefect_ml.exceptions import Problem

            raise ValidationError([Problem(p.split()[0].lstrip("-"), p) for p in problems], title="Invalid data asset")
        asset = create_data_asset(name, path=path, type=type_ or _infer_data_type(path), version=version,
                                  description=description)
    _print_json(_asset_json(asset))


def _infer_data_type(path: str) -> str:
    local = Path(path).expanduser()
    if "://" in path or not local.exists():
        return "uri_folder"
    if local.is_file():
        return "uri_file"
    return "mltable" if (local / "MLTable").is_file() else "uri_folder"


def _asset_json(asset) -> dict[str, Any]:
    return asset.to_dict()


@data_app.command("list")
@handle_errors
def data_list(name: Optional[str] = typer.Option(None, "--name", "-n", help="Only versions of this asset."),
              output: str = typer.Option("table", "--output", "-o", help="table or json.")) -> None:
    """List data asset versions."""
    from prefect_ml.data import list_data_assets

    _client()
    assets = list_data_assets(name)
    if output == "json":
        _print_json([_asset_json(a) for a in assets])
        return
    table = _table("name", "version", "type", "path")
    for a in assets:
        table.add_row(a.name, a.version, a.type, a.path)
    _print_table(table)


@data_app.command("show")
@handle_errors
def data_show(name: str = typer.Argument(..., help="Asset name."),
              version: Optional[str] = typer.Option(None, "--version", "-v", help="Version (default: latest)."),
              label: Optional[str] = typer.Option(None, "--label", "-l", help="Label: latest.")) -> None:
    """Show one data asset version."""
    from prefect_ml.data import get_data_asset

    _client()
    _print_json(_asset_json(get_data_asset(name, version or label)))


# ------------------------------------------------------------------- model
@model_app.command("list")
@handle_errors
def model_list(name: Optional[str] = typer.Option(None, "--name", "-n", help="List the versions of this model."),
               output: str = typer.Option("table", "--output", "-o", help="table or json.")) -> None:
    """List registered models (or one model's versions)."""
    models = _client().models.list(name)
    if output == "json":
        _print_json(models)
        return
    if name:
        table = _table("name", "version", "run_id", "source")
        for m in models:
            table.add_row(m["name"], m["version"], m["run_id"] or "", m["source"])
    else:
        table = _table("name", "latest_version", "description")
        for m in models:
            table.add_row(m["name"], m["latest_version"] or "", m["description"] or "")
    _print_table(table)


@model_app.command("show")
@handle_errors
def model_show(name: str = typer.Argument(..., help="Model name."),
               version: Optional[str] = typer.Option(None, "--version", "-v", help="Version (default: latest).")
               ) -> None:
    """Show one model version."""
    _print_json(_client().models.get(name, version))


# --------------------------------------------------------------- datastore
@datastore_app.command("create")
@handle_errors
def datastore_create(name: str = typer.Option(..., "--name", "-n", help="Datastore name."),
                     url: str = typer.Option(..., "--url", "-u", help="fsspec root URL or local folder."),
                     overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing datastore.")
                     ) -> None:
    """Map a datastore name (azureml://datastores/NAME/paths/...) to an fsspec root URL."""
    from prefect_ml.data import create_datastore

    _client()
    create_datastore(name, url, overwrite=overwrite)
    out.print(f"Datastore {name} -> {url}")


@datastore_app.command("list")
@handle_errors
def datastore_list() -> None:
    """List datastores."""
    from prefect_ml.data import list_datastores

    _client()
    table = _table("name", "root_url")
    for name, root in list_datastores():
        table.add_row(name, root)
    _print_table(table)


# ------------------------------------------------------------- environment
@environment_app.command("create")
@handle_errors
def environment_create(
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="Azure environment YAML (image, conda_file, build)."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Environment name (overrides the file's)."),
    version: Optional[str] = typer.Option(None, "--version", "-v", help="Version (default: the file's, or next)."),
    python: Optional[str] = typer.Option(None, "--python", help="Map the name to this local Python interpreter."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing interpreter mapping."),
) -> None:
    """Create an environment version from Azure's YAML (--file), or map a name to an interpreter (--python)."""
    from prefect_ml.cli.environments import create

    create(file=file, name=name, version=version, python=python, overwrite=overwrite)


import prefect_ml.cli.environments  # noqa: E402,F401  (environment list/show)


# ------------------------------------------------------------------ server
@server_app.command("start")
@handle_errors
def server_start(port: Optional[int] = typer.Option(None, "--port", help="Port (default 4200 or a free one).")) -> None:
    """Start the local Prefect API (and UI) in the background."""
    from prefect_ml.compute import server

    info = server.start(port)
    out.print(f"Prefect API: {info.url}\nPrefect UI:  {info.ui_url}\nLog: {info.log_path}")


@server_app.command("stop")
@handle_errors
def server_stop() -> None:
    """Stop the local Prefect API."""
    from prefect_ml.compute import server

    out.print("Stopped the local Prefect API." if server.stop() else "No local Prefect API was running.")


@server_app.command("status")
@handle_errors
def server_status() -> None:
    """Show whether the local Prefect API is running; exit 1 if not."""
    from prefect_ml.compute import server

    info = server.status()
    if info is None:
        out.print("The local Prefect API is not running (it starts on first use).")
        raise typer.Exit(1)
    out.print(f"Running: pid {info.pid}, API {info.url}, UI {info.ui_url}")


from prefect_ml.cli.compute import compute_app  # noqa: E402  (uses the helpers above)

app.add_typer(compute_app, name="compute")
from prefect_ml.cli.schedule import schedule_app  # noqa: E402  (uses the helpers above)

app.add_typer(schedule_app, name="schedule")
from prefect_ml.cli.component import component_app  # noqa: E402  (registers `prefect-ml component`)

app.add_typer(component_app, name="component")
