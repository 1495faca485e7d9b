"""``prefect-ml schedule create|list|show|disable|enable|delete``: Azure ML schedules as Prefect deployments."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from prefect_ml.cli.app import _client, _print_json, _print_table, _table, err, handle_errors, out

schedule_app = typer.Typer(help="Schedules (Azure's schedule YAML) as Prefect deployments with schedules or "
                                "event triggers.", no_args_is_help=True)

OUTPUT = typer.Option("table", "--output", "-o", help="table or json.")


def _show(info, output: str) -> None:
    if output == "json":
        _print_json(info.to_dict())
        return
    state = "[green]enabled[/green]" if info.enabled else "[yellow]disabled[/yellow]"
    out.print(f"[bold]Schedule[/bold] {info.name}  {state}  (flow {info.flow}, pool {info.work_pool}, "
              f"deployment {info.deployment_id})")
    for line in info.schedules:
        out.print(f"  schedule  {line}", markup=False)
    for line in info.triggers:
        out.print(f"  trigger   {line}", markup=False)
    for line in info.next_runs:
        out.print(f"  next run  {line}", markup=False)


@schedule_app.command("create")
@handle_errors
def schedule_create(
    file: Path = typer.Option(..., "--file", "-f", help="Schedule YAML (Azure's schedule schema)."),
    pool: str = typer.Option("local", "--pool", "-p", help="Process work pool that runs it (created if missing)."),
    output: str = OUTPUT,
) -> None:
    """Create (or update) a schedule: a deployment with a cron/recurrence schedule or a data asset trigger."""
    from prefect_ml.deployments.schedules import create_schedule
    from prefect_ml.specs.schedule import load_schedule

    spec = load_schedule(file)  # all problems reported before anything is created
    _client()
    _ensure_pool(pool)
    _show(create_schedule(spec, work_pool=pool), output)
    hint = worker_hint(pool)
    if hint:
        err.print(hint, markup=False)


def worker_hint(pool: str) -> str | None:
    """What to do for the schedule's runs to start on ``pool``, or None when a worker polls it.

    Reads the pool's status (one API call): Prefect marks a pool ``READY`` while at least one worker sends it
    heartbeats, ``NOT_READY`` when none does, ``PAUSED`` when paused.
    """
    from prefect.client.schemas.objects import WorkPoolStatus

    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        status = client.read_work_pool(pool).status
    if status == WorkPoolStatus.READY:
        return None
    worker = worker_command(pool)
    if status == WorkPoolStatus.PAUSED:
        return (f"Note: work pool {pool!r} is paused: scheduled runs wait until it is resumed "
                f"(`prefect work-pool resume {pool}`) and a worker polls it (`{worker}`).")
    return (f"Note: no worker is polling work pool {pool!r}: scheduled runs stay Scheduled/Late until one does. "
            f"Start one (and keep it running): `{worker}`.")


def api_url_assignment() -> str | None:
    """``PREFECT_API_URL=<url>`` (shell-quoted) for the API this CLI used, or None when none is set.

    prefect-ml starts a local API and sets ``PREFECT_API_URL`` in its own process only; a ``prefect`` CLI or a
    Dask worker in the user's shell would otherwise run against a throw-away server of its own.
    """
    import os
    import shlex

    url = os.environ.get("PREFECT_API_URL")
    return f"PREFECT_API_URL={shlex.quote(url)}" if url else None


def worker_command(pool: str, worker_type: str | None = None) -> str:
    """``prefect worker start --pool POOL [--type TYPE]``, prefixed with :func:`api_url_assignment`."""
    import shlex

    assignment = api_url_assignment()
    prefix = f"{assignment} " if assignment else ""
    return (f"{prefix}prefect worker start --pool {shlex.quote(pool)}"
            + (f" --type {worker_type}" if worker_type else ""))


def _ensure_pool(name: str) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            try:
                client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            except ObjectAlreadyExists:
                pass


@schedule_app.command("list")
@handle_errors
def schedule_list(output: str = OUTPUT) -> None:
    """List schedules."""
    from prefect_ml.deployments.schedules import list_schedules

    _client()
    schedules = list_schedules()
    if output == "json":
        _print_json([s.to_dict() for s in schedules])
        return
    table = _table("name", "enabled", "flow", "trigger", "next run")
    for s in schedules:
        table.add_row(s.name, "yes" if s.enabled else "no", s.flow, "; ".join(s.schedules + s.triggers),
                      s.next_runs[0] if s.next_runs else "")
    _print_table(table)


@schedule_app.command("show")
@handle_errors
def schedule_show(name: str = typer.Argument(..., help="Schedule name."), output: str = OUTPUT) -> None:
    """Show a schedule, its triggers and next runs."""
    from prefect_ml.deployments.schedules import get_schedule

    _client()
    _show(get_schedule(name), output)


@schedule_app.command("disable")
@handle_errors
def schedule_disable(name: str = typer.Argument(..., help="Schedule name."), output: str = OUTPUT) -> None:
    """Disable a schedule (its future scheduled runs are removed; triggers paused)."""
    from prefect_ml.deployments.schedules import set_schedule_enabled

    _client()
    _show(set_schedule_enabled(name, False), output)


@schedule_app.command("enable")
@handle_errors
def schedule_enable(name: str = typer.Argument(..., help="Schedule name."), output: str = OUTPUT) -> None:
    """Enable a disabled schedule."""
    from prefect_ml.deployments.schedules import set_schedule_enabled

    _client()
    _show(set_schedule_enabled(name, True), output)


@schedule_app.command("delete")
@handle_errors
def schedule_delete(name: str = typer.Argument(..., help="Schedule name."),
                    _output: Optional[str] = typer.Option(None, "--output", "-o", hidden=True)) -> None:
    """Delete a schedule: its deployment, triggers and scheduled runs."""
    from prefect_ml.deployments.schedules import delete_schedule

    _client()
    delete_schedule(name)
    out.print(f"Deleted schedule {name}")
