"""prefect_ml.blocks against the session's real Prefect API."""

from __future__ import annotations

import uuid
from typing import ClassVar

import pytest

from prefect_ml.blocks import (
    BLOCK_TYPES,
    DataAsset,
    Datastore,
    Environment,
    MLflowTracking,
    block_document_name,
    data_asset_document_name,
    register_block_types,
)
from prefect_ml.data._api import list_documents, load_block
from prefect_ml.exceptions import ValidationError


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_block_type_slugs_are_prefixed_and_fields_documented():
    for block_type in BLOCK_TYPES:
        assert block_type.get_block_type_slug().startswith("prefect-ml-")
        assert block_type._description
        for name, info in block_type.model_fields.items():
            assert info.description and info.description.endswith("."), (block_type.__name__, name)


def test_register_block_types_is_idempotent_and_visible_in_the_api():
    from prefect.client.orchestration import get_client

    first = register_block_types()
    second = register_block_types()
    assert first == second == [
        "prefect-ml-datastore", "prefect-ml-environment", "prefect-ml-mlflow-tracking", "prefect-ml-data-asset"
    ]
    with get_client(sync_client=True) as client:
        for slug in first:
            block_type = client.read_block_type_by_slug(slug)
            assert block_type.slug == slug
            assert block_type.description


@pytest.mark.parametrize("block_type", BLOCK_TYPES, ids=lambda t: t.__name__)
def test_save_registers_a_never_registered_type_then_load_round_trips(block_type):
    # A subclass with a fresh slug is a block type this API has never seen: exactly the
    # state of a fresh API. save() must register it; before that, load/list find nothing.
    slug = _unique("prefect-ml-test")
    fresh = type(f"Fresh{block_type.__name__}", (block_type,), {"__annotations__": {}})
    fresh._block_type_slug = slug  # type: ignore[attr-defined]
    fresh._block_type_name = f"Fresh {block_type.__name__} {slug}"  # type: ignore[attr-defined]
    values: dict = {
        Datastore: {"root_url": "memory://fresh", "storage_options": {"anon": True}},
        Environment: {"python_executable": "/usr/bin/python3", "environment_variables": {"A": "1"}},
        MLflowTracking: {"tracking_uri": "http://127.0.0.1:5000", "ui_url": "http://127.0.0.1:5000"},
        DataAsset: {"asset_name": "x", "version": "1", "type": "uri_file", "path": "/tmp/x.csv",
                    "created_at": "2024-01-01T00:00:00+00:00"},
    }[block_type]
    assert load_block(fresh, "doc") is None
    assert list_documents(fresh) == []

    fresh(**values).save("doc", _sync=True)

    loaded = load_block(fresh, "doc")
    assert loaded is not None
    assert loaded.model_dump(include=set(values)) == values
    assert [d.name for d in list_documents(fresh)] == ["doc"]


def test_environment_and_mlflow_blocks_round_trip_by_mapped_name():
    env_name = f"AzureML-sklearn_{uuid.uuid4().hex[:6]}.1"
    document = block_document_name(env_name)
    Environment(python_executable="/usr/bin/python3", environment_variables={"OMP_NUM_THREADS": "1"},
                description="local sklearn").save(document, _sync=True)
    loaded = Environment.load(document, _sync=True)
    assert loaded.python_executable == "/usr/bin/python3"
    assert loaded.environment_variables == {"OMP_NUM_THREADS": "1"}

    tracking_doc = _unique("tracking")
    MLflowTracking(tracking_uri="sqlite:////tmp/m.db").save(tracking_doc, _sync=True)
    tracking = MLflowTracking.load(tracking_doc, _sync=True)
    assert (tracking.tracking_uri, tracking.registry_uri, tracking.ui_url) == ("sqlite:////tmp/m.db", None, None)


def test_block_document_name_mapping():
    assert block_document_name("workspaceblobstore") == "workspaceblobstore"
    assert block_document_name("My_Env.1") == "my-env-1"
    assert block_document_name("AzureML-sklearn-1.5") == "azureml-sklearn-1-5"
    with pytest.raises(ValidationError, match="non-empty name"):
        block_document_name("  ")


def test_data_asset_document_names_are_valid_deterministic_and_collision_free():
    import re

    pairs = [("iris", "1"), ("Iris", "1"), ("iris_x", "1"), ("iris-x", "1"), ("a--b", "c"), ("a", "b--c"),
             ("iris", "1.0"), ("iris", "1-0")]
    names = [data_asset_document_name(n, v) for n, v in pairs]
    assert len(set(names)) == len(pairs)
    assert all(re.fullmatch(r"[a-z0-9-]+", n) for n in names)
    assert data_asset_document_name("iris", "1") == names[0]
    assert names[0].startswith("iris--1--")


def test_datastore_block_rejects_relative_root():
    with pytest.raises(ValueError, match="absolute local folder"):
        Datastore(root_url="relative/folder")
