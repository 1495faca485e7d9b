"""``prefect-ml component create|list|show``: the component registry (Azure's ``az ml component``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from prefect_ml.cli.app import _client, _print_json, _print_table, _table, handle_errors, out

component_app = typer.Typer(help="Versioned command components.", no_args_is_help=True)


def _component_json(component) -> dict[str, Any]:
    data = component.to_yaml_dict()
    data.pop("$schema", None)
    return {"name": component.name, "version": component.version, "reference": component.reference, **data}


@component_app.command("create")
@handle_errors
def component_create(
    file: Path = typer.Option(..., "--file", "-f", help="Component YAML file (commandComponent schema)."),
    version: Optional[str] = typer.Option(None, "--version", "-v", help="Version (default: the file's, else next)."),
    output: str = typer.Option("table", "--output", "-o", help="table or json."),
) -> None:
    """Register a new version of a component from a YAML file (its code is snapshotted)."""
    from prefect_ml.pipelines.registry import create_component
    from prefect_ml.specs.component import load_component

    component = load_component(file)
    _client()
    registered = create_component(component, version=version)
    if output == "json":
        _print_json(_component_json(registered))
    else:
        out.print(f"Component {registered.name} version {registered.version} registered "
                  f"(use it as {registered.reference} or azureml:{registered.name}@latest)", markup=False)


@component_app.command("list")
@handle_errors
def component_list(name: Optional[str] = typer.Option(None, "--name", "-n", help="Only versions of this component."),
                   output: str = typer.Option("table", "--output", "-o", help="table or json.")) -> None:
    """List registered component versions."""
    from prefect_ml.pipelines.registry import list_components

    _client()
    components = list_components(name)
    if output == "json":
        _print_json([_component_json(c) for c in components])
        return
    table = _table("name", "version", "display name", "inputs", "outputs")
    for c in components:
        table.add_row(c.name, str(c.version), c.display_name or "", ", ".join(c.inputs), ", ".join(c.outputs))
    _print_table(table)


@component_app.command("show")
@handle_errors
def component_show(name: str = typer.Argument(..., help="Component name (or azureml:NAME:VERSION / NAME@latest)."),
                   version: Optional[str] = typer.Option(None, "--version", "-v", help="Version (default: latest)."),
                   label: Optional[str] = typer.Option(None, "--label", "-l", help="Label: latest.")) -> None:
    """Show one component version."""
    from prefect_ml.pipelines.registry import get_component, parse_component_reference

    _client()
    if name.startswith("azureml:"):
        name, ref_version = parse_component_reference(name)
        version = version or ref_version
    elif "@" in name:
        name, _, label = name.partition("@")
    _print_json(_component_json(get_component(name, version or label)))
