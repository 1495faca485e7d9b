"""Prefect blocks holding prefect-ml's configuration and its data-asset catalogue.

Every block type's slug starts with ``prefect-ml-`` so that the Prefect UI groups them:

- :class:`Datastore`: where an Azure ML datastore (``azureml://datastores/NAME/...``) lives;
- :class:`Environment`: the local interpreter that stands for an Azure ML environment;
- :class:`MLflowTracking`: the MLflow tracking/registry server to log to;
- :class:`DataAsset`: one version of a data asset (``azureml:NAME:VERSION``).

Azure names (``workspaceblobstore``, ``my_env``, ``AzureML-sklearn-1.5``) are not always
valid block document names (lowercase letters, digits and dashes only), so
:func:`block_document_name` maps them deterministically; :func:`data_asset_document_name`
maps a (name, version) pair to a collision-free document name.

``Block.save`` registers the block type and schema on the API by itself; call
:func:`register_block_types` to make the types appear in the UI before any document is saved.
"""

from __future__ import annotations

import hashlib
import re
from typing import ClassVar, Literal, Optional

from pydantic import Field, field_validator

from prefect.blocks.core import Block

from prefect_ml.exceptions import Problem, ValidationError

__all__ = [
    "DataAsset",
    "Datastore",
    "Environment",
    "MLflowTracking",
    "BLOCK_TYPES",
    "block_document_name",
    "data_asset_document_name",
    "register_block_types",
]

_INVALID_CHARS = re.compile(r"[^a-z0-9-]")
_DOCS = "https://learn.microsoft.com/azure/machine-learning/"


def block_document_name(name: str, *, field: str = "name") -> str:
    """Map an Azure ML name to a valid Prefect block document name.

    Block document names may hold lowercase letters, digits and dashes only. The mapping
    lowercases NAME and replaces every other character with ``-``; names that are
    already valid are returned unchanged (``workspaceblobstore`` -> ``workspaceblobstore``,
    ``My_Env.1`` -> ``my-env-1``). Names differing only in case or in those characters
    map to the same document, as Azure treats datastore names case-insensitively.

    Args:
        name: The Azure ML name (datastore, environment...).
        field: Field name used in the error, e.g. ``datastore``.

    Returns:
        The block document name.

    Raises:
        ValidationError: NAME is empty or not a string.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValidationError([Problem(field, "must be a non-empty name, e.g. 'workspaceblobstore'", name)],
                              title="Invalid name")
    return _INVALID_CHARS.sub("-", name.strip().lower())


def data_asset_document_name(name: str, version: str) -> str:
    """The block document name of version VERSION of data asset NAME.

    The result is ``<name>--<version>--<hash>``: both parts mapped with
    :func:`block_document_name` for readability, plus the first 12 hex digits of the
    SHA-256 of the exact ``name`` and ``version`` so that pairs which map to the same
    readable parts (``Iris``/``iris``, ``a_b``/``a-b``, ``a--b``+``c``/``a``+``b--c``)
    still get different documents.

    Args:
        name: The data asset's name, as given by the user.
        version: The version, as a string.

    Returns:
        The block document name.

    Raises:
        ValidationError: NAME or VERSION is empty.
    """
    readable_name = block_document_name(name, field="name")
    readable_version = block_document_name(str(version), field="version")
    digest = hashlib.sha256(f"{name}\x00{version}".encode()).hexdigest()[:12]
    return f"{readable_name}--{readable_version}--{digest}"


class Datastore(Block):
    """Where an Azure ML datastore's files live, for ``azureml://datastores/NAME/paths/PATH`` URIs.

    The block document's name is the datastore name mapped with :func:`block_document_name`.
    ``azureml://datastores/NAME/paths/PATH`` resolves to ``root_url`` joined with ``PATH``.

    Attributes:
        root_url: An fsspec URL (``s3://bucket/prefix``, ``abfs://container``, ``memory://x``)
            or an absolute local folder.
        storage_options: Keyword arguments for the fsspec filesystem (credentials, endpoint...).
    """

    _block_type_name: ClassVar[str] = "Datastore (prefect-ml)"
    _block_type_slug: ClassVar[str] = "prefect-ml-datastore"
    _description: ClassVar[str] = (
        "An Azure ML-style datastore: the fsspec URL or local folder that "
        "azureml://datastores/NAME/paths/PATH URIs resolve to. The document name is the datastore name."
    )
    _documentation_url: ClassVar[Optional[str]] = _DOCS + "concept-data"

    root_url: str = Field(
        ...,
        description="fsspec URL (s3://bucket/prefix, abfs://container, memory://root) or absolute local folder.",
    )
    storage_options: dict = Field(
        default_factory=dict,
        description="Keyword arguments passed to the fsspec filesystem (credentials, endpoint URL...).",
    )

    @field_validator("root_url")
    @classmethod
    def _absolute_root(cls, value: str) -> str:
        if "://" not in value and not value.startswith("/"):
            raise ValueError(f"root_url must be an fsspec URL or an absolute local folder, got {value!r}")
        return value


class Environment(Block):
    """An Azure ML environment: a local interpreter, or one version of an environment asset.

    Two kinds of documents:

    - an interpreter mapping (``prefect-ml environment create --name N --python PATH``): document name
      :func:`block_document_name` of the name, only ``python_executable`` (and variables) set; it serves
      every version of that name;
    - one version of an environment asset (``prefect-ml environment create --file env.yml``): document name
      :func:`data_asset_document_name` of (name, version), with ``image``, ``conda_file`` and/or
      ``build_context`` (see :mod:`prefect_ml.compute.environments`).

    Attributes:
        python_executable: Path of the ``python`` that runs jobs using this environment, or ``None``.
        environment_variables: Variables set for those jobs.
        description: Free text.
        env_name: The environment's name (asset versions only).
        version: The version (asset versions only).
        image: Docker image (``image:``), used as is on Docker compute.
        conda_file: The conda specification (``conda_file:``), inline.
        build_context: Stored copy of the ``build.path`` Docker context (absolute folder).
        dockerfile_path: ``build.dockerfile_path`` relative to the context (default ``Dockerfile``).
        tags: String tags.
        created_at: Creation time, ISO 8601 in UTC.
    """

    _block_type_name: ClassVar[str] = "Environment (prefect-ml)"
    _block_type_slug: ClassVar[str] = "prefect-ml-environment"
    _description: ClassVar[str] = (
        "Maps an Azure ML environment name to a local Python interpreter and environment variables."
    )
    _documentation_url: ClassVar[Optional[str]] = _DOCS + "concept-environments"

    python_executable: Optional[str] = Field(
        default=None, description="Path of the Python interpreter that runs the job's command.")
    environment_variables: dict[str, str] = Field(
        default_factory=dict, description="Environment variables set for jobs using this environment."
    )
    description: Optional[str] = Field(default=None, description="Free-text description of the environment.")
    env_name: Optional[str] = Field(default=None, description="Environment name (environment asset versions).")
    version: Optional[str] = Field(default=None, description="Version (environment asset versions).")
    image: Optional[str] = Field(default=None, description="Docker image, used as is on Docker compute.")
    conda_file: Optional[dict] = Field(default=None, description="Conda specification (inline).")
    build_context: Optional[str] = Field(default=None, description="Stored copy of the Docker build context.")
    dockerfile_path: Optional[str] = Field(default=None, description="Dockerfile path inside the build context.")
    tags: dict[str, str] = Field(default_factory=dict, description="String tags.")
    created_at: Optional[str] = Field(default=None, description="Creation time, ISO 8601 in UTC.")


class MLflowTracking(Block):
    """The MLflow server that jobs log runs and register models to.

    Attributes:
        tracking_uri: MLflow tracking URI (``http://host:5000``, ``sqlite:////path/mlflow.db``...).
        registry_uri: Model registry URI; ``None`` uses the tracking URI.
        ui_url: Base URL of an MLflow UI, used to print links to runs and models.
    """

    _block_type_name: ClassVar[str] = "MLflow Tracking (prefect-ml)"
    _block_type_slug: ClassVar[str] = "prefect-ml-mlflow-tracking"
    _description: ClassVar[str] = "The MLflow tracking and model registry server that prefect-ml jobs use."
    _documentation_url: ClassVar[Optional[str]] = "https://mlflow.org/docs/latest/tracking.html"

    tracking_uri: str = Field(..., description="MLflow tracking URI, e.g. http://127.0.0.1:5000.")
    registry_uri: Optional[str] = Field(
        default=None, description="MLflow model registry URI; empty means the tracking URI."
    )
    ui_url: Optional[str] = Field(default=None, description="Base URL of an MLflow UI used for links.")


class DataAsset(Block):
    """One immutable version of a data asset (``azureml:NAME:VERSION``).

    The block document's name is :func:`data_asset_document_name` of (``asset_name``, ``version``).
    Create documents with :func:`prefect_ml.data.create_data_asset`, which enforces immutability.

    Attributes:
        asset_name: The data asset's name.
        version: The version, a string (``"1"``, ``"2024-01"``).
        type: ``uri_file``, ``uri_folder`` or ``mltable``.
        path: The resolved URI of the data: a local absolute path or an fsspec URL.
        description: Free text.
        tags: String tags.
        created_at: Creation time, ISO 8601 in UTC.
    """

    _block_type_name: ClassVar[str] = "Data Asset (prefect-ml)"
    _block_type_slug: ClassVar[str] = "prefect-ml-data-asset"
    _description: ClassVar[str] = (
        "One immutable version of an Azure ML-style data asset (azureml:NAME:VERSION) and where its data is."
    )
    _documentation_url: ClassVar[Optional[str]] = _DOCS + "how-to-create-data-assets"

    asset_name: str = Field(..., description="Name of the data asset.")
    version: str = Field(..., description="Version of the data asset.")
    type: Literal["uri_file", "uri_folder", "mltable"] = Field(
        default="uri_folder", description="Kind of data: uri_file, uri_folder or mltable."
    )
    path: str = Field(..., description="Resolved URI of the data: absolute local path or fsspec URL.")
    description: Optional[str] = Field(default=None, description="Free-text description.")
    tags: dict[str, str] = Field(default_factory=dict, description="String tags.")
    created_at: str = Field(..., description="Creation time, ISO 8601 in UTC.")


#: Every block type defined by prefect-ml.
BLOCK_TYPES: tuple[type[Block], ...] = (Datastore, Environment, MLflowTracking, DataAsset)


def register_block_types() -> list[str]:
    """Register every prefect-ml block type and schema with the Prefect API.

    Idempotent: registering again updates nothing that is unchanged. Uses the API that
    :func:`prefect_ml.compute.server.ensure_api` selects.

    Returns:
        The registered block type slugs, e.g. ``["prefect-ml-datastore", ...]``.
    """
    from prefect_ml.compute.server import ensure_api

    ensure_api()
    for block_type in BLOCK_TYPES:
        block_type.register_type_and_schema(_sync=True)
    return [block_type.get_block_type_slug() for block_type in BLOCK_TYPES]


# The ``prefect.collections`` entry point loads this module. Where Prefect's workers are loaded (``prefect worker
# start`` imports them before it loads collections and looks up ``--type``), importing the dask worker registers
# the ``dask`` work pool type; elsewhere it is skipped, sparing every other command the import of Prefect's
# worker machinery (~1 s).
import sys as _sys  # noqa: E402

if "prefect.workers.base" in _sys.modules:
    from prefect_ml.compute import dask_worker as _dask_worker  # noqa: E402,F401
