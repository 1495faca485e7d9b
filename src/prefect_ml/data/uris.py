"""Turn Azure ML-style paths into concrete locations (local paths, fsspec URLs, MLflow URIs).

Supported forms (see :func:`resolve_uri`):

===============================================  =========================================
given                                            resolved to
===============================================  =========================================
``data/train.csv`` (relative)                    absolute local path (against ``base_path``)
``/abs/path``, ``file:///abs/path``              ``/abs/path``
``https://...``, ``s3://...``, ``memory://...``  unchanged (fsspec URL)
``azureml://datastores/NAME/paths/PATH``         datastore root + ``/`` + PATH
``azureml:NAME:VERSION``, ``azureml:NAME@latest``  the data asset's path, or ``models:/NAME/VERSION``
``runs:/...``, ``models:/...``                   unchanged (MLflow URIs)
===============================================  =========================================
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from prefect_ml.exceptions import MissingDependencyError, Problem, ValidationError

#: URI schemes handled by MLflow rather than fsspec.
MLFLOW_SCHEMES: tuple[str, ...] = ("runs:", "models:", "mlflow-artifacts:")

#: Azure storage schemes served by ``adlfs`` (``wasbs``/``abfss`` are not in fsspec's registry).
_ADLFS_SCHEMES = ("wasb", "wasbs", "abfs", "abfss", "az")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_DATASTORE_URI = re.compile(r"^azureml://(?:.*/)?datastores/(?P<name>[^/]+)/paths(?:/(?P<path>.*))?$")
_ASSET_URI = re.compile(r"^azureml://(?:.+/)?(?P<kind>data|models)/(?P<name>[^/]+)/versions/(?P<version>[^/]+)/?$")
_ASSET_REF = re.compile(r"^(?P<name>[^:@/]+)(?:(?::(?P<version>[^:@/]+))|(?:@(?P<label>[^:@/]+)))?$")


def scheme_of(uri: str) -> str | None:
    """The lowercase ``scheme`` of a ``scheme://...`` URI, or ``None`` for plain paths and ``scheme:`` forms."""
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else None


def is_mlflow_uri(uri: str) -> bool:
    """Whether URI is handled by MLflow (``runs:/``, ``models:/``, ``mlflow-artifacts:``)."""
    return uri.startswith(MLFLOW_SCHEMES)


def is_local(uri: str) -> bool:
    """Whether URI is a plain local path (no scheme, not an ``azureml:`` or MLflow reference)."""
    return scheme_of(uri) is None and not uri.startswith(("azureml:", "file:")) and not is_mlflow_uri(uri)


def file_url_to_path(url: str) -> str:
    """Convert a ``file:`` URL (``file:///a/b``, ``file://localhost/a/b``, ``file:/a/b``) to a local path.

    Raises:
        ValidationError: The URL names another host.
    """
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise ValidationError(
            [Problem("path", "file:// URLs must name a local path, e.g. file:///data/train.csv", url)],
            title="Invalid path",
        )
    return unquote(parsed.path)


def check_protocol(uri: str) -> None:
    """Check that fsspec can open URI's scheme in this environment.

    Args:
        uri: A ``scheme://...`` URL.

    Raises:
        MissingDependencyError: The scheme's fsspec implementation is not installed; the
            message names the package to install (e.g. ``adlfs`` for ``wasbs://``).
        ValidationError: fsspec does not know the scheme at all.
    """
    scheme = scheme_of(uri)
    if scheme is None:
        return
    import fsspec
    from fsspec.registry import known_implementations

    if scheme in _ADLFS_SCHEMES:
        try:
            import adlfs  # noqa: F401
        except ImportError:
            raise MissingDependencyError(
                f"Reading {uri!r} needs the Azure Storage fsspec implementation, which is not installed. "
                "Install it with `pip install adlfs` (and give credentials in the Datastore block's "
                "storage_options), or use a local datastore."
            ) from None
        return
    try:
        fsspec.get_filesystem_class(scheme)
    except ImportError as error:
        spec = known_implementations.get(scheme, {})
        package = spec.get("class", "").split(".")[0]
        hint = (f"`pip install {package}`" if package and package != "fsspec"
                else f"the package it needs ({spec.get('err') or error})")
        raise MissingDependencyError(
            f"Reading {uri!r} needs fsspec's {scheme}:// implementation, which is not installed. "
            f"Install {hint}."
        ) from None
    except ValueError:
        raise ValidationError(
            [Problem("path", f"unknown URI scheme {scheme!r}; use a local path, an fsspec URL "
                             "(https://, s3://, abfs://, memory://...), azureml://datastores/NAME/paths/PATH, "
                             "azureml:NAME:VERSION, runs:/ or models:/", uri)],
            title="Invalid path",
        ) from None


def _asset_ref(name: str, version: str | None, label: str | None, asset_kind: str, original: str) -> str:
    if label is not None and label != "latest":
        raise ValidationError(
            [Problem("path", f"unsupported label @{label}; only @latest is supported "
                             f"(use azureml:{name}:VERSION or azureml:{name}@latest)", original)],
            title="Invalid path",
        )
    if asset_kind == "model":
        return f"models:/{name}/{version or 'latest'}"
    from prefect_ml.data.assets import get_data_asset

    return get_data_asset(name, version).path


def _join(root: str, path: str) -> str:
    if not path:
        return root.rstrip("/") + "/" if not root.endswith("://") else root
    if root.endswith("://"):
        return root + path.lstrip("/")
    return root.rstrip("/") + "/" + path.lstrip("/")


def resolve_uri(path: str, *, base_path: str | os.PathLike | None = None,
                asset_kind: Literal["data", "model"] = "data") -> str:
    """Turn an Azure ML-style path into a concrete location.

    Args:
        path: A local path (relative or absolute), ``file://`` URL, fsspec URL,
            ``azureml://datastores/NAME/paths/PATH`` (also the long
            ``azureml://subscriptions/.../workspaces/W/datastores/NAME/paths/PATH`` form),
            ``azureml:NAME:VERSION`` / ``azureml:NAME@latest`` / ``azureml:NAME``
            (also ``azureml://.../data|models/NAME/versions/V``), ``runs:/...`` or ``models:/...``.
        base_path: Folder that relative local paths are relative to (e.g. the job file's
            folder); default the current directory.
        asset_kind: What ``azureml:NAME...`` names: ``"data"`` (a data asset, resolved to
            its path) or ``"model"`` (resolved to ``models:/NAME/VERSION``, ``@latest`` and
            no version to ``models:/NAME/latest``).

    Returns:
        An absolute local path without scheme (and without trailing slash), an fsspec URL,
        or an MLflow URI. Datastore URIs keep a trailing slash when PATH had one.

    Raises:
        NotFoundError: The datastore or data asset does not exist (the message lists those that do).
        MissingDependencyError: The URL's fsspec implementation is not installed (``adlfs``
            for ``wasbs://``/``abfss://``, ``s3fs`` for ``s3://``...).
        ValidationError: PATH is empty, has an unknown scheme or an unsupported ``azureml`` form.
    """
    if not isinstance(path, str) or not path.strip():
        raise ValidationError([Problem("path", "must be a non-empty path or URI", path)], title="Invalid path")
    if asset_kind not in ("data", "model"):
        raise ValidationError([Problem("asset_kind", "must be 'data' or 'model'", asset_kind)],
                              title="Invalid argument")
    path = path.strip()

    if path.startswith("azureml://"):
        match = _DATASTORE_URI.match(path)
        if match:
            from prefect_ml.data.datastores import datastore_root

            root = datastore_root(match.group("name"))
            resolved = _join(root, match.group("path") or "")
            if "://" in resolved:
                check_protocol(resolved)
            return resolved
        match = _ASSET_URI.match(path)
        if match:
            kind = "model" if match.group("kind") == "models" else "data"
            return _asset_ref(match.group("name"), match.group("version"), None, kind, path)
        raise ValidationError(
            [Problem("path", "unsupported azureml:// URI; supported forms are "
                             "azureml://datastores/NAME/paths/PATH and azureml://.../data/NAME/versions/V", path)],
            title="Invalid path",
        )
    if path.startswith("azureml:"):
        match = _ASSET_REF.match(path[len("azureml:"):])
        if not match:
            raise ValidationError(
                [Problem("path", "expected azureml:NAME:VERSION, azureml:NAME@latest or azureml:NAME", path)],
                title="Invalid path",
            )
        return _asset_ref(match.group("name"), match.group("version"), match.group("label"), asset_kind, path)
    if is_mlflow_uri(path):
        return path
    if path.startswith("file:"):
        path = file_url_to_path(path)
    elif scheme_of(path) is not None:
        check_protocol(path)
        return path

    local = Path(path).expanduser()
    if not local.is_absolute():
        local = Path(base_path).expanduser() / local if base_path is not None else Path.cwd() / local
    return os.path.abspath(local)


__all__ = [
    "MLFLOW_SCHEMES",
    "check_protocol",
    "file_url_to_path",
    "is_local",
    "is_mlflow_uri",
    "resolve_uri",
    "scheme_of",
]
