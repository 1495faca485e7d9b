"""Moving job inputs and outputs between their locations and the job's local folder.

Inputs: :func:`materialize_input` gives the command what Azure ML would mount or download.
There is no real mount: ``ro_mount`` of a local path passes the path itself, and of a
remote URL downloads it. Outputs: :func:`upload_output` copies what the job wrote to its
destination.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from prefect_ml.exceptions import NotFoundError, Problem, ValidationError

#: Input modes accepted by :func:`materialize_input` (Azure ML's, plus ``rw_mount``).
INPUT_MODES: tuple[str, ...] = ("ro_mount", "rw_mount", "download", "direct", "eval_mount", "eval_download")

#: Input types whose data is a single file; every other type is a folder.
FILE_TYPES: tuple[str, ...] = ("uri_file",)

#: Input types that ``azureml:NAME:VERSION`` resolves as registered models.
MODEL_TYPES: tuple[str, ...] = ("mlflow_model", "custom_model", "triton_model")


def open_filesystem(uri: str, storage_options: dict | None = None) -> tuple[Any, str]:
    """The fsspec filesystem and in-filesystem path of URL URI.

    Args:
        uri: An fsspec URL (``memory://a/b``, ``https://host/x.csv``, ``abfs://c/p``...).
        storage_options: Filesystem keyword arguments; default those of the saved
            datastore whose root contains URI (see :func:`~prefect_ml.data.datastores.storage_options_for`).

    Returns:
        ``(filesystem, path)``.

    Raises:
        MissingDependencyError: The scheme's implementation is not installed.
    """
    import fsspec

    from prefect_ml.data.datastores import storage_options_for
    from prefect_ml.data.uris import check_protocol, scheme_of

    check_protocol(uri)
    options = storage_options_for(uri) if storage_options is None else dict(storage_options)
    scheme = scheme_of(uri)
    if scheme in ("wasb", "wasbs", "abfss"):
        # Not in fsspec's registry: open adlfs directly; "container@account.<host>/path".
        from urllib.parse import urlparse

        import adlfs

        parsed = urlparse(uri)
        container, _, host = parsed.netloc.partition("@")
        if host:
            options.setdefault("account_name", host.split(".")[0])
        return adlfs.AzureBlobFileSystem(**options), f"{container}{parsed.path}"
    return fsspec.core.url_to_fs(uri, **options)


def _basename(uri: str) -> str:
    from urllib.parse import urlparse

    path = urlparse(uri).path if "://" in uri else uri
    return os.path.basename(path.rstrip("/")) or "data"


def _fresh(target: Path) -> Path:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _download_mlflow(uri: str, dest: Path) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    from prefect_ml import tracking

    tracking_uri, registry_uri, _ = tracking.tracking_config()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if uri.startswith("models:/"):
            # MLflow resolves models:/ URIs with the *global* registry URI whatever is passed in, so
            # the version's location is looked up here with an explicit client.
            uri = _model_version_location(tracking.get_client(), uri)
        return mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest), tracking_uri=tracking_uri,
                                                   registry_uri=registry_uri or tracking_uri)
    except MlflowException as error:
        if getattr(error, "error_code", "") == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(error).lower():
            raise NotFoundError(
                f"MLflow artifact {uri!r} does not exist in the tracking store "
                f"{tracking_uri!r}: {error.message}. Check the run id / model name and version "
                "(mlflow.search_registered_models() lists registered models)."
            ) from None
        raise


def _model_version_location(client, uri: str) -> str:
    """Turn ``models:/NAME/VERSION``, ``models:/NAME/latest`` or ``models:/NAME@ALIAS`` (+ optional
    sub-path) into the artifact URI the version's files live at."""
    from mlflow.exceptions import MlflowException

    rest = uri[len("models:/"):].strip("/")
    head, _, sub = rest.partition("/")
    if "@" in head:
        name, alias = head.split("@", 1)
        version = client.get_model_version_by_alias(name, alias).version
    else:
        name = head
        ref, _, sub = sub.partition("/")
        if ref in ("", "latest"):
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise MlflowException(f"Registered Model with name={name} not found",
                                      error_code="RESOURCE_DOES_NOT_EXIST")
            version = str(max(int(v.version) for v in versions))
        else:
            version = ref
    location = client.get_model_version_download_uri(name, version)
    return f"{location.rstrip('/')}/{sub}" if sub else location


def _download_fsspec(uri: str, type: str, dest: Path) -> str:
    fs, path = open_filesystem(uri)
    if not fs.exists(path):
        raise NotFoundError(f"Input {uri!r} does not exist. Check the path, or the datastore's root_url.")
    target = _fresh(dest / _basename(uri))
    # Folder types may still name a single file (an MLTable file, a model file): download it as is.
    # (isdir, not isfile: over HTTP every page that answers counts as a file.)
    if type in FILE_TYPES or not fs.isdir(path):
        fs.get_file(path, str(target))
        return str(target)
    root = path.rstrip("/")
    target.mkdir(parents=True)
    for remote in sorted(fs.find(root, withdirs=False)):
        if not remote.startswith(root + "/"):
            continue
        relative = remote[len(root) + 1:]
        local = target / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(remote, str(local))
    return str(target)


def materialize_input(uri: str, *, type: str, mode: str | None, dest: Path) -> str:
    """What a job's command receives for one input.

    Args:
        uri: The input's resolved location: a local path, an fsspec URL or an MLflow URI
            (``azureml:`` forms are resolved first with :func:`~prefect_ml.data.uris.resolve_uri`).
        type: The input type: ``uri_file`` (a file), ``uri_folder``, ``mltable``,
            ``mlflow_model``, ``custom_model`` or ``triton_model`` (folders).
        mode: ``ro_mount`` (default when ``None``), ``rw_mount``, ``download``, ``direct``,
            ``eval_mount`` or ``eval_download``.
        dest: Folder that downloads go under (created when needed); the data lands in
            ``dest/<basename of uri>``, replacing what was there.

    Returns:
        ``direct``: URI unchanged. Local path with a mount mode: the absolute path itself
        (no copy). Local path with a download mode: the copy under DEST. Remote fsspec URL
        (any other mode): the downloaded file or folder under DEST. MLflow URI: the folder
        or file ``mlflow.artifacts.download_artifacts`` wrote under DEST, using the current
        MLflow tracking URI.

    Raises:
        NotFoundError: The source does not exist (the message names URI).
        ValidationError: MODE is not an input mode.
        MissingDependencyError: The URL's fsspec implementation is not installed.
    """
    mode = mode or "ro_mount"
    if mode not in INPUT_MODES:
        raise ValidationError([Problem("mode", f"must be one of {', '.join(INPUT_MODES)}", mode)],
                              title=f"Invalid input mode for {uri}")
    if mode == "direct":
        return uri
    from prefect_ml.data.uris import file_url_to_path, is_mlflow_uri, resolve_uri, scheme_of

    dest = Path(dest)
    if uri.startswith("azureml:"):
        uri = resolve_uri(uri, asset_kind="model" if type in MODEL_TYPES else "data")
    if is_mlflow_uri(uri):
        return _download_mlflow(uri, dest)
    if uri.startswith("file:"):
        uri = file_url_to_path(uri)
    if scheme_of(uri) is not None:
        return _download_fsspec(uri, type, dest)

    source = Path(uri).expanduser().absolute()
    if not source.exists():
        raise NotFoundError(f"Input {uri!r} does not exist on this machine. Check the path "
                            "(relative paths are relative to the job file's folder).")
    if mode not in ("download", "eval_download"):
        return str(source)
    target = _fresh(dest / (source.name or "data"))
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)
    return str(target)


def upload_output(local_path: Path, dest_uri: str) -> str:
    """Copy a job's output file or folder to its destination.

    Args:
        local_path: What the job wrote: a file or a folder.
        dest_uri: The destination: a local path, ``file://`` URL, fsspec URL or
            ``azureml://datastores/...`` URI. A folder's contents are copied INTO DEST_URI
            (merged with what is there); a file becomes DEST_URI, or
            ``DEST_URI/<file name>`` when DEST_URI ends with ``/``.

    Returns:
        The destination URI (a local path for local destinations); nothing is copied when
        LOCAL_PATH already is the destination.

    Raises:
        NotFoundError: LOCAL_PATH does not exist.
        MissingDependencyError: The URL's fsspec implementation is not installed.
    """
    from prefect_ml.data.uris import file_url_to_path, resolve_uri, scheme_of

    source = Path(local_path).expanduser().absolute()
    if not source.exists():
        raise NotFoundError(f"Output {str(local_path)!r} does not exist: the job did not write it.")
    if dest_uri.startswith("azureml:"):
        dest_uri = resolve_uri(dest_uri)
    if dest_uri.startswith("file:"):
        dest_uri = file_url_to_path(dest_uri) + ("/" if dest_uri.endswith("/") else "")
    into_folder = dest_uri.endswith("/") and source.is_file()

    if scheme_of(dest_uri) is None:
        target = Path(dest_uri).expanduser().absolute()
        if into_folder:
            target = target / source.name
        if os.path.realpath(target) == os.path.realpath(source):
            return str(target)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        return str(target)

    fs, path = open_filesystem(dest_uri)
    if source.is_file():
        remote = path.rstrip("/") + "/" + source.name if into_folder else path
        parent = remote.rsplit("/", 1)[0]
        if parent:
            fs.makedirs(parent, exist_ok=True)
        fs.put_file(str(source), remote)
        return dest_uri + source.name if into_folder else dest_uri
    root = path.rstrip("/")
    fs.makedirs(root, exist_ok=True)
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        remote = root + "/" + file.relative_to(source).as_posix()
        fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(file), remote)
    return dest_uri


__all__ = ["FILE_TYPES", "INPUT_MODES", "MODEL_TYPES", "materialize_input", "open_filesystem", "upload_output"]
