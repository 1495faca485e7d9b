"""The component registry: immutable component versions stored as Prefect blocks.

Mirrors :mod:`prefect_ml.data.assets` (one block document per version, named with
:func:`prefect_ml.blocks.data_asset_document_name`). Registering snapshots the code folder (with
``additional_includes``) into the content-addressed snapshot store, so a version keeps running the code it
was registered with. See https://learn.microsoft.com/azure/machine-learning/how-to-create-component-pipelines-cli.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Any

from prefect_ml.exceptions import NotFoundError, Problem, ValidationError
from prefect_ml.specs.component import CommandComponent, load_component, parse_component

_REF = re.compile(r"^azureml:(?P<name>[A-Za-z0-9_][A-Za-z0-9_.-]*?)(?:(?::(?P<version>[^:@/]+))|(?:@(?P<label>\w+)))?$")


def parse_component_reference(ref: str) -> tuple[str, str | None]:
    """Split ``azureml:NAME:VERSION`` / ``azureml:NAME@latest`` / ``azureml:NAME`` into (name, version or None).

    Raises:
        ValidationError: Not such a reference, or a label other than ``latest``.
    """
    match = _REF.match(ref.strip())
    if not match:
        raise ValidationError([Problem("component", "not a component reference; use azureml:NAME:VERSION or "
                                       "azureml:NAME@latest", ref)])
    if match.group("label") and match.group("label") != "latest":
        raise ValidationError([Problem("component", "only the 'latest' label is supported", ref)])
    return match.group("name"), match.group("version")


def _document_name(name: str, version: str) -> str:
    from prefect_ml.blocks import data_asset_document_name

    return data_asset_document_name(name, version)


def _version_key(version: str) -> tuple[int, int, str]:
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


def _from_block(data: dict[str, Any]) -> CommandComponent:
    spec = dict(data["spec"])
    return CommandComponent.model_validate(spec)


def list_components(name: str | None = None) -> list[CommandComponent]:
    """Every registered component version, or those of NAME, sorted by name then creation time."""
    from prefect_ml.blocks.components import ComponentVersion
    from prefect_ml.data._api import list_documents

    rows = []
    for document in list_documents(ComponentVersion):
        data = document.data or {}
        if "component_name" not in data or (name is not None and data["component_name"] != name):
            continue
        rows.append((data["component_name"], data.get("created_at", ""), _version_key(str(data["version"])),
                     _from_block(data)))
    return [row[-1] for row in sorted(rows, key=lambda r: r[:3])]


def get_component(name: str, version: str | int | None = None) -> CommandComponent:
    """One registered version of component NAME (``None`` or ``"latest"``: the newest).

    Raises:
        NotFoundError: No such component or version (the message lists what exists).
    """
    from prefect_ml.blocks.components import ComponentVersion
    from prefect_ml.data._api import load_block

    if version is not None and str(version) != "latest":
        block = load_block(ComponentVersion, _document_name(name, str(version)))
        if block is not None:
            return _from_block(block.model_dump())
    versions = list_components(name)
    if not versions:
        known = sorted({c.name for c in list_components()})
        raise NotFoundError(f"Component {name!r} does not exist. Registered components: "
                            f"{', '.join(known) or 'none'}. Register it with "
                            "`prefect-ml component create --file COMPONENT.yml`.")
    if version is None or str(version) == "latest":
        return versions[-1]
    raise NotFoundError(f"Component {name!r} has no version {str(version)!r}. Its versions: "
                        f"{', '.join(str(c.version) for c in versions)}. Use one of them, or @latest.")


def resolve_reference(ref: str) -> CommandComponent:
    """The registered component named by ``azureml:NAME:VERSION`` or ``azureml:NAME@latest``.

    Raises:
        ValidationError: Malformed reference.
        NotFoundError: No such component or version.
    """
    name, version = parse_component_reference(ref)
    return get_component(name, version)


def _snapshot_code(component: CommandComponent) -> tuple[str | None, str]:
    from prefect_ml.tasks.snapshot import take_snapshot

    code = component.materialized_code()
    if code is None or not __import__("os").path.isdir(code):
        return code, ""
    snapshot = take_snapshot(code)
    return snapshot.path, snapshot.hash


def create_component(component: CommandComponent | str, *, version: str | None = None) -> CommandComponent:
    """Register a new, immutable version of a component.

    Args:
        component: A :class:`CommandComponent` or the path of a component YAML file.
        version: The version (overrides the component's); None keeps the component's, else the next integer.

    Returns:
        The registered component (``code`` pointing at its snapshot).

    Raises:
        ValidationError: The component is invalid, or the version exists with different content.
    """
    from prefect_ml.blocks.components import ComponentVersion
    from prefect_ml.data._api import save_block

    if not isinstance(component, CommandComponent):
        component = load_component(component)
    version = str(version) if version is not None else component.version
    if version is not None and (not version.strip() or version == "latest" or "/" in version or ":" in version):
        raise ValidationError([Problem("version", "must be a version other than 'latest', without '/' or ':'",
                                       version)], title=f"Invalid component {component.name!r}")
    code, code_hash = _snapshot_code(component)
    spec = component.to_yaml_dict()
    spec.pop("additional_includes", None)
    if code is not None:
        spec["code"] = code
    spec["base_path"] = component.base_path
    content_hash = hashlib.sha256(json.dumps({k: v for k, v in spec.items() if k not in ("version", "base_path",
                                                                                         "code")},
                                             sort_keys=True, default=str).encode() + code_hash.encode()).hexdigest()
    auto = version is None
    if auto:
        existing = list_components(component.name)
        same = [c for c in existing if _stored_hash(c) == content_hash]
        if same:
            return same[-1]
        numbers = [int(c.version) for c in existing if str(c.version).isdigit()]
        version = str(max(numbers, default=0) + 1)
    for _ in range(20):
        spec["version"] = version
        registered = parse_component(spec, base_path=component.base_path)
        block = ComponentVersion(component_name=component.name, version=version, spec=registered.model_dump(
            mode="json", by_alias=True, exclude_none=True), content_hash=content_hash,
            created_at=datetime.now(timezone.utc).isoformat())
        if save_block(block, _document_name(component.name, version), overwrite=False):
            _HASHES[(component.name, version)] = content_hash
            return registered
        current = get_component(component.name, version)
        if _stored_hash(current) == content_hash:
            return current
        if not auto:
            raise ValidationError([Problem("version", f"component {component.name!r} version {version!r} already "
                                           "exists with different content and versions are immutable; bump the "
                                           "version or omit it for the next one", version)],
                                  title=f"Component {component.name}:{version} exists")
        version = str(int(version) + 1)
    raise ValidationError([Problem("version", "could not pick a free version; retry")])


_HASHES: dict[tuple[str, str], str] = {}


def _stored_hash(component: CommandComponent) -> str | None:
    from prefect_ml.blocks.components import ComponentVersion
    from prefect_ml.data._api import load_block

    key = (component.name, str(component.version))
    if key not in _HASHES:
        block = load_block(ComponentVersion, _document_name(*key))
        if block is None:
            return None
        _HASHES[key] = block.content_hash
    return _HASHES[key]


__all__ = ["create_component", "get_component", "list_components", "parse_component_reference",
           "resolve_reference"]
