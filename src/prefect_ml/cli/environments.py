"""``prefect-ml environment create|list|show``: Azure environment assets (see docs/environments.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from prefect_ml.cli.app import _client, _print_table, _table, environment_app, handle_errors, out


def _as_dict(block) -> dict:
    keys = ("env_name", "version", "image", "conda_file", "build_context", "dockerfile_path", "python_executable",
            "description", "tags", "created_at", "environment_variables")
    data = {k: getattr(block, k) for k in keys if getattr(block, k) not in (None, {}, "")}
    if "env_name" in data:
        data["name"] = data.pop("env_name")
    return data


def create(*, file: Optional[Path], name: Optional[str], version: Optional[str], python: Optional[str],
           overwrite: bool) -> None:
    """Body of ``environment create`` (registered in :mod:`prefect_ml.cli.app`)."""
    from prefect_ml.compute.environments import create_environment_from_file, save_environment
    from prefect_ml.exceptions import Problem, ValidationError

    if (file is None) == (python is None):
        raise ValidationError([Problem("--file/--python", "give exactly one of --file env.yml or --python PATH")],
                              title="Invalid environment")
    _client()
    if python is not None:
        if not name:
            raise ValidationError([Problem("--name", "required with --python")], title="Invalid environment")
        save_environment(name, python, overwrite=overwrite)
        out.print(f"Environment {name} -> {python}")
        return
    block = create_environment_from_file(file, name=name, version=version)
    kind = ("image " + block.image if block.image else "") + (" + conda file" if block.conda_file else "") + (
        "build context " + block.build_context if block.build_context else "")
    out.print(f"Environment azureml:{block.env_name}:{block.version} created ({kind.strip()}).")


@environment_app.command("list")
@handle_errors
def environment_list(name: Optional[str] = typer.Option(None, "--name", "-n", help="Only versions of this name."),
                     output: str = typer.Option("table", "--output", "-o", help="table or json.")) -> None:
    """List environment versions (oldest first)."""
    from prefect_ml.compute.environments import list_environments

    _client()
    versions = list_environments(name)
    if output == "json":
        out.print(json.dumps([_as_dict(b) for b in versions], indent=2), markup=False)
        return
    table = _table("name", "version", "image", "conda_file", "build", "created_at")
    for block in versions:
        table.add_row(block.env_name, block.version, block.image or "", "yes" if block.conda_file else "",
                      block.build_context or "", block.created_at or "")
    _print_table(table)


@environment_app.command("show")
@handle_errors
def environment_show(reference: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@latest (azureml: optional)."),
                     output: str = typer.Option("json", "--output", "-o", help="json or yaml.")) -> None:
    """Show one environment version (``@latest`` or no version: the most recent)."""
    from prefect_ml.compute.environments import get_environment
    from prefect_ml.specs.environment import parse_reference

    _client()
    parts = parse_reference(reference)
    block = get_environment(parts["name"], parts["version"])
    data = _as_dict(block)
    if output == "yaml":
        import yaml

        out.print(yaml.safe_dump(data, sort_keys=False), markup=False)
    else:
        out.print(json.dumps(data, indent=2), markup=False)
