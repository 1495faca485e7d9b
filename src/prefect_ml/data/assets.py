"""Versioned data assets (``azureml:NAME:VERSION``), stored as :class:`prefect_ml.blocks.DataAsset` blocks.

Each version is one block document, so the catalogue shows in the Prefect UI's Blocks
page. Versions are immutable. As in Azure ML, creating a version from a LOCAL path
copies ("uploads") the data into the default datastore under
``LocalUpload/<content hash>/<basename>`` so that later edits of the source do not change
the version; remote URLs and datastore URIs are stored as given (datastore URIs resolved).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect_ml.exceptions import NotFoundError, Problem, ValidationError

#: Data asset types.
DATA_ASSET_TYPES: tuple[str, ...] = ("uri_file", "uri_folder", "mltable")

#: Keys allowed in a data asset YAML file.
_YAML_KEYS = {"$schema", "name", "version", "type", "path", "description", "tags"}


@dataclass(frozen=True)
class DataAssetVersion:
    """One version of a data asset.

    Attributes:
        name: The data asset's name.
        version: The version string (``"1"``, ``"2"``...).
        type: ``uri_file``, ``uri_folder`` or ``mltable``.
        path: Where the data is: absolute local path or fsspec URL.
        description: Free text, or ``None``.
        tags: String tags.
        created_at: Creation time (timezone-aware, UTC).
    """

    name: str
    version: str
    type: str
    path: str
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def uri(self) -> str:
        """The asset reference ``azureml:NAME:VERSION``."""
        return f"azureml:{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (``created_at`` as ISO 8601)."""
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data


def _from_data(data: dict[str, Any]) -> DataAssetVersion:
    created = datetime.fromisoformat(str(data["created_at"]))
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return DataAssetVersion(
        name=data["asset_name"], version=str(data["version"]), type=data.get("type") or "uri_folder",
        path=data["path"], description=data.get("description"), tags=dict(data.get("tags") or {}),
        created_at=created,
    )


def list_data_assets(name: str | None = None) -> list[DataAssetVersion]:
    """Every data asset version, or those of asset NAME.

    Args:
        name: Only versions of this asset (exact name); ``None`` for all.

    Returns:
        Versions sorted by name, then creation time (oldest first).
    """
    from prefect_ml.blocks import DataAsset

    from prefect_ml.data._api import list_documents

    versions = []
    for document in list_documents(DataAsset):
        data = document.data or {}
        if "asset_name" not in data or (name is not None and data["asset_name"] != name):
            continue
        versions.append(_from_data(data))
    return sorted(versions, key=lambda v: (v.name, v.created_at, _version_key(v.version)))


def _version_key(version: str) -> tuple[int, int, str]:
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


def _known(versions: list[DataAssetVersion]) -> str:
    names = sorted({v.name for v in versions})
    return ", ".join(names) if names else "none"


def get_data_asset(name: str, version: str | int | None = None) -> DataAssetVersion:
    """One version of data asset NAME.

    Args:
        name: The data asset's name.
        version: A version, or ``None`` / ``"latest"`` for the most recently created one.

    Returns:
        The version.

    Raises:
        NotFoundError: No such asset or version; the message lists the known assets or
            the asset's versions.
    """
    from prefect_ml.blocks import DataAsset, data_asset_document_name

    from prefect_ml.data._api import load_block

    if version is not None and str(version) != "latest":
        block = load_block(DataAsset, data_asset_document_name(name, str(version)))
        if block is not None:
            return _from_data(block.model_dump())
    versions = list_data_assets(name)
    if not versions:
        raise NotFoundError(
            f"Data asset {name!r} does not exist. Known data assets: {_known(list_data_assets())}. "
            f"Create it with `prefect-ml data create --name {name} --path PATH --type uri_file|uri_folder|mltable` "
            "(or --file data.yml), or prefect_ml.data.create_data_asset in Python."
        )
    if version is None or str(version) == "latest":
        return versions[-1]
    raise NotFoundError(
        f"Data asset {name!r} has no version {str(version)!r}. Its versions: "
        f"{', '.join(v.version for v in versions)}. Use one of them, or 'latest'."
    )


def _hash_path(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_file():
        digest.update(b"file\x00")
        files = [(path.name, path)]
    else:
        digest.update(b"folder\x00")
        files = sorted((p.relative_to(path).as_posix(), p) for p in path.rglob("*") if p.is_file())
    for relative, file in files:
        digest.update(relative.encode() + b"\x00")
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\x00")
    return digest.hexdigest()[:32]


def _upload_local(source: str) -> str:
    from prefect_ml.data.datastores import DEFAULT_DATASTORE, datastore_root
    from prefect_ml.data.transfer import upload_output
    from prefect_ml.data.uris import resolve_uri

    local = Path(source)
    basename = local.name or "data"
    relative = f"LocalUpload/{_hash_path(local)}/{basename}"
    root = datastore_root(DEFAULT_DATASTORE)
    if "://" not in root:
        target = Path(root) / relative
        if not target.exists():  # else the same content was uploaded before
            # Copy next to the target, then rename, so a crash never leaves a partial upload.
            staging = target.parent / f".{basename}.{uuid.uuid4().hex}.partial"
            upload_output(local, str(staging))
            try:
                os.rename(staging, target)
            except OSError:  # another process uploaded the same content meanwhile
                shutil.rmtree(staging, ignore_errors=True) if staging.is_dir() else staging.unlink(missing_ok=True)
        return str(target)
    return upload_output(local, resolve_uri(f"azureml://datastores/{DEFAULT_DATASTORE}/paths/{relative}"))


def _next_version(name: str) -> str:
    numbers = [int(v.version) for v in list_data_assets(name) if v.version.isdigit()]
    return str(max(numbers, default=0) + 1)


def create_data_asset(name: str, *, path: str, type: str = "uri_folder", version: str | int | None = None,
                      description: str | None = None, tags: dict | None = None,
                      base_path: str | os.PathLike | None = None) -> DataAssetVersion:
    """Register a new, immutable version of data asset NAME.

    Args:
        name: Asset name: letters, digits, ``-``, ``_`` and ``.``, starting with a letter or digit.
        path: Where the data is: local path (relative to BASE_PATH), ``file://``, fsspec URL
            or ``azureml://datastores/NAME/paths/PATH``. A local path must exist and is
            copied into the default datastore under ``LocalUpload/<content hash>/<basename>``.
        type: ``uri_file``, ``uri_folder`` or ``mltable``.
        version: The version; ``None`` takes the next integer after the highest integer
            version (``"1"`` first).
        description: Free text.
        tags: Tags; values are stored as strings.
        base_path: Folder relative local paths are relative to; default the current directory.

    Returns:
        The created version, whose ``path`` is the resolved location.

    Raises:
        ValidationError: Invalid name/type/version, or the version already exists
            (versions are immutable).
        NotFoundError: PATH is local and does not exist, or names an unknown datastore.
    """
    from prefect_ml.blocks import DataAsset, data_asset_document_name

    from prefect_ml.data._api import save_block
    from prefect_ml.data.uris import is_local, resolve_uri

    problems = []
    if not isinstance(name, str) or not name or not (name[0].isalnum() and all(c.isalnum() or c in "-_." for c in name)):
        problems.append(Problem("name", "must hold letters, digits, '-', '_' or '.', starting with a letter "
                                        "or digit, e.g. 'titanic-train'", name))
    if type not in DATA_ASSET_TYPES:
        problems.append(Problem("type", f"must be one of {', '.join(DATA_ASSET_TYPES)}", type))
    if version is not None and (not str(version).strip() or str(version) == "latest" or "/" in str(version)):
        problems.append(Problem("version", "must be a non-empty version other than 'latest', without '/', "
                                           "e.g. '1', or omitted for the next integer", version))
    if not isinstance(path, str) or not path.strip():
        problems.append(Problem("path", "must be a local path or URI of the data", path))
    if problems:
        raise ValidationError(problems, title=f"Invalid data asset {name!r}")

    if path.strip().startswith("azureml:") and not path.strip().startswith("azureml://"):
        raise ValidationError([Problem("path", "a data asset cannot point to another asset; give the "
                                               "data's path or azureml://datastores/NAME/paths/PATH", path)],
                              title=f"Invalid data asset {name!r}")
    resolved = resolve_uri(path, base_path=base_path)
    if is_local(resolved):
        if not os.path.exists(resolved):
            raise NotFoundError(f"Data asset {name!r}: path {path!r} does not exist (resolved to {resolved!r}). "
                                "Fix the path; relative paths are relative to the data asset file's folder "
                                "(or the current folder when no file is used).")
        if type == "uri_file" and os.path.isdir(resolved):
            raise ValidationError([Problem("path", "type uri_file needs a file, not a folder "
                                                   "(use type uri_folder)", path)], title=f"Invalid data asset {name!r}")
        if type in ("uri_folder", "mltable") and os.path.isfile(resolved):
            raise ValidationError([Problem("path", f"type {type} needs a folder, not a file (use type uri_file)",
                                           path)], title=f"Invalid data asset {name!r}")
        if not path.strip().startswith("azureml://"):  # datastore data is already "uploaded"
            resolved = _upload_local(resolved)

    clean_tags = {str(k): "" if v is None else str(v) for k, v in (tags or {}).items()}
    auto = version is None
    attempt_version = _next_version(name) if auto else str(version)
    for _ in range(20):
        created = DataAssetVersion(name=name, version=attempt_version, type=type, path=resolved,
                                   description=description, tags=clean_tags)
        block = DataAsset(asset_name=name, version=created.version, type=type, path=resolved,
                          description=description, tags=clean_tags, created_at=created.created_at.isoformat())
        if save_block(block, data_asset_document_name(name, created.version), overwrite=False):
            from prefect_ml.data.events import emit_version_created

            emit_version_created(created)  # prefect-ml.data-asset.version-created (triggers retraining)
            return created
        if not auto:
            raise ValidationError(
                [Problem("version", f"data asset {name!r} version {created.version!r} already exists and "
                                    "versions are immutable; use another version or omit it for the next one",
                         created.version)],
                title=f"Data asset {name}:{created.version} exists",
            )
        attempt_version = str(int(attempt_version) + 1)  # raced with another creator
    raise ValidationError([Problem("version", "could not pick a free version; retry", None)],
                          title=f"Data asset {name!r}")


def load_data_asset_file(path: str | os.PathLike) -> dict[str, Any]:
    """Parse an Azure ML data asset YAML file.

    Args:
        path: The YAML file (keys ``$schema``, ``name``, ``version``, ``type``, ``path``,
            ``description``, ``tags``).

    Returns:
        Keyword arguments for :func:`create_data_asset`: ``name``, ``path`` (a relative
        local path made absolute against the YAML file's folder), ``type`` (default
        ``uri_folder``), ``version`` (string or ``None``), ``description``, ``tags``.

    Raises:
        NotFoundError: The file does not exist.
        ValidationError: Not a mapping, unknown keys, or ``name``/``path`` missing.
    """
    import yaml

    file = Path(path)
    if not file.is_file():
        raise NotFoundError(f"Data asset file {str(path)!r} does not exist.")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        raise ValidationError([Problem("<root>", f"is not valid YAML: {error}")], file=str(file)) from None
    if not isinstance(data, dict):
        raise ValidationError([Problem("<root>", "must be a mapping with name, type and path", data)],
                              file=str(file), title=f"Invalid data asset file {file}")
    problems = [Problem(key, "unknown key; allowed: " + ", ".join(sorted(_YAML_KEYS)), data[key], str(file))
                for key in data if key not in _YAML_KEYS]
    for key in ("name", "path"):
        if not data.get(key):
            problems.append(Problem(key, "is required", None, str(file)))
    if data.get("tags") is not None and not isinstance(data["tags"], dict):
        problems.append(Problem("tags", "must be a mapping", data["tags"], str(file)))
    if problems:
        raise ValidationError(problems, file=str(file), title=f"Invalid data asset file {file}")
    from prefect_ml.data.uris import is_local

    asset_path = str(data["path"])
    if is_local(asset_path) and not os.path.isabs(os.path.expanduser(asset_path)):
        asset_path = os.path.abspath(file.resolve().parent / asset_path)
    return {
        "name": str(data["name"]),
        "path": asset_path,
        "type": data.get("type") or "uri_folder",
        "version": None if data.get("version") is None else str(data["version"]),
        "description": data.get("description"),
        "tags": dict(data.get("tags") or {}),
    }


def create_data_asset_from_file(path: str | os.PathLike, **overrides: Any) -> DataAssetVersion:
    """Create a data asset version from an Azure ML data asset YAML file.

    Args:
        path: The YAML file.
        **overrides: Values replacing the file's (``name``, ``version``, ``path``, ``type``,
            ``description``, ``tags``), as with ``az ml data create --file F --set``.

    Returns:
        The created version.

    Raises:
        NotFoundError, ValidationError: As :func:`load_data_asset_file` and :func:`create_data_asset`.
    """
    spec = load_data_asset_file(path)
    spec.update(overrides)
    name = spec.pop("name")
    return create_data_asset(name, base_path=Path(path).resolve().parent, **spec)


__all__ = [
    "DATA_ASSET_TYPES",
    "DataAssetVersion",
    "create_data_asset",
    "create_data_asset_from_file",
    "get_data_asset",
    "list_data_assets",
    "load_data_asset_file",
]
