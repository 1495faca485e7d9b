"""Resolving a job's inputs to the values its command receives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_ml.specs import MODEL_TYPES, CommandJob


def input_uri(spec: CommandJob, name: str) -> str | None:
    """The concrete URI of data/model input ``name`` (no data is moved), or ``None`` if not given.

    Raises:
        NotFoundError: A referenced data asset, model or datastore does not exist.
    """
    from prefect_ml.data import resolve_uri

    item = spec.inputs[name]
    if item.path is None:
        return None
    kind = "model" if item.type in MODEL_TYPES else "data"
    return resolve_uri(str(item.path), base_path=spec.base_path, asset_kind=kind)


def check_inputs(spec: CommandJob) -> dict[str, str | None]:
    """Resolve every data input's URI and check local sources exist, moving no data.

    Used before a job is created so that a bad input creates nothing.

    Returns:
        Input name -> concrete URI (``None`` for optional inputs not given).

    Raises:
        NotFoundError: A local input path, data asset, model or datastore does not exist.
    """
    from prefect_ml.exceptions import NotFoundError

    uris: dict[str, str | None] = {}
    for name, item in spec.inputs.items():
        if not item.is_data:
            continue
        uri = input_uri(spec, name)
        uris[name] = uri
        if uri is not None and uri.startswith(("runs:/", "models:/")):
            _check_mlflow_uri(name, uri)
        elif uri is not None and "://" not in uri and not Path(uri).exists():
            raise NotFoundError(f"inputs.{name}.path: {item.path!r} resolves to {uri}, which does not exist. "
                                "Fix the path (relative paths are relative to the job file's folder).")
    return uris


def _check_mlflow_uri(name: str, uri: str) -> None:
    """Raise NotFoundError when a ``models:/NAME/VERSION|latest`` or ``runs:/ID/...`` input does not exist."""
    from mlflow.exceptions import MlflowException

    from prefect_ml import tracking
    from prefect_ml.exceptions import NotFoundError

    client = tracking.get_client()
    parts = uri.split(":/", 1)[1].strip("/").split("/")
    try:
        if uri.startswith("runs:/"):
            client.get_run(parts[0])
            return
        model, ref = parts[0], (parts[1] if len(parts) > 1 else "latest")
        if ref == "latest":
            if not client.search_model_versions(f"name = '{model}'", max_results=1):
                raise MlflowException(f"Registered model {model!r} has no versions")
        elif ref.isdigit():
            client.get_model_version(model, ref)
        else:
            client.get_model_version_by_alias(model, ref)
    except MlflowException as exc:
        raise NotFoundError(f"inputs.{name}.path: {uri} does not exist in the MLflow store "
                            f"{tracking.tracking_uri()} ({exc.message if hasattr(exc, 'message') else exc}). "
                            "List registered models with `prefect-ml model list`.") from None


def resolve_input_values(spec: CommandJob, inputs_dir: Path) -> dict[str, Any]:
    """Return the value each input takes in the command.

    Literal inputs keep their value; data and model inputs become local paths (downloaded into
    ``inputs_dir`` when remote, or when ``mode: download``) or stay URIs with ``mode: direct``.
    Optional inputs that were not given are ``None``.
    """
    from prefect_ml.data import materialize_input

    values: dict[str, Any] = {}
    for name, item in spec.inputs.items():
        if not item.is_data:
            values[name] = item.value
            continue
        uri = input_uri(spec, name)
        if uri is None:
            values[name] = None
            continue
        values[name] = materialize_input(uri, type=item.type, mode=item.mode, dest=inputs_dir / name)
    return values


@task(name="resolve-inputs", cache_policy=NO_CACHE, persist_result=False)
def resolve_inputs(spec: CommandJob, inputs_dir: str) -> dict[str, Any]:
    """Prefect task around :func:`resolve_input_values`; logs where each input comes from."""
    from prefect import get_run_logger

    logger = get_run_logger()
    values = resolve_input_values(spec, Path(inputs_dir))
    for name, value in values.items():
        item = spec.inputs[name]
        if item.is_data:
            logger.info("Input %s (%s, %s): %s -> %s", name, item.type, item.mode or "ro_mount", item.path, value)
    return values
