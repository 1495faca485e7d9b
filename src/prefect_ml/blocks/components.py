"""The block holding one registered component version (``azureml:NAME:VERSION``)."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

from pydantic import Field
from prefect.blocks.core import Block


class ComponentVersion(Block):
    """One immutable version of a command component.

    The block document's name is :func:`prefect_ml.blocks.data_asset_document_name` of
    (``component_name``, ``version``). Create documents with
    :func:`prefect_ml.pipelines.registry.create_component`, which snapshots the code and enforces immutability.

    Attributes:
        component_name: The component's name.
        version: The version string.
        spec: The component's mapping (``commandComponent`` schema) with ``code`` pointing at its snapshot.
        content_hash: SHA-256 of the spec and code snapshot (re-registering identical content is a no-op).
        created_at: Creation time, ISO 8601 in UTC.
    """

    _block_type_name: ClassVar[str] = "Component (prefect-ml)"
    _block_type_slug: ClassVar[str] = "prefect-ml-component"
    _description: ClassVar[str] = "One immutable version of an Azure ML-style command component (azureml:NAME:VERSION)."
    _documentation_url: ClassVar[Optional[str]] = (
        "https://learn.microsoft.com/azure/machine-learning/reference-yaml-component-command")

    component_name: str = Field(..., description="Name of the component.")
    version: str = Field(..., description="Version of the component.")
    spec: dict[str, Any] = Field(..., description="The component definition (commandComponent schema).")
    content_hash: str = Field(..., description="SHA-256 of the definition and code snapshot.")
    created_at: str = Field(..., description="Creation time, ISO 8601 in UTC.")
