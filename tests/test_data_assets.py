"""Data assets (DataAsset blocks on the real API), Azure data YAML files, MLflow model URIs."""

from __future__ import annotations

import shutil
import uuid
from datetime import timezone
from pathlib import Path

import pytest

from prefect_ml import settings
from prefect_ml.blocks import DataAsset, data_asset_document_name
from prefect_ml.data import (
    DataAssetVersion,
    create_data_asset,
    create_data_asset_from_file,
    create_datastore,
    get_data_asset,
    list_data_assets,
    load_data_asset_file,
    materialize_input,
    resolve_uri,
)
from prefect_ml.exceptions import NotFoundError, ValidationError


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def data_folder(azure_examples, tmp_path) -> Path:
    """A writable copy of ``assets/data`` (YAML files plus sample-data/, example-data/, local-mltable/)."""
    source = azure_examples / "assets" / "data"
    target = tmp_path / "data"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.md"))
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def test_local_folder_is_uploaded_to_the_default_datastore_and_versions_are_immutable(data_folder):
    name = _unique("titanic")
    source = data_folder / "sample-data"
    first = create_data_asset(name, path=str(source), description="titanic", tags={"stage": "raw", "n": 1})

    assert isinstance(first, DataAssetVersion)
    assert (first.name, first.version, first.type) == (name, "1", "uri_folder")
    assert first.tags == {"stage": "raw", "n": "1"}
    assert first.created_at.tzinfo == timezone.utc
    uploaded = Path(first.path)
    assert uploaded.parent.parent == settings.default_datastore_root() / "LocalUpload"
    assert uploaded.name == "sample-data"
    assert (uploaded / "titanic.csv").read_bytes() == (source / "titanic.csv").read_bytes()

    # Later edits of the source do not change version 1; a new version gets a new upload.
    (source / "titanic.csv").write_text("PassengerId\n1\n")
    assert (uploaded / "titanic.csv").read_text() != "PassengerId\n1\n"
    second = create_data_asset(name, path="sample-data", base_path=data_folder)
    assert second.version == "2"
    assert second.path != first.path
    assert Path(second.path, "titanic.csv").read_text() == "PassengerId\n1\n"

    with pytest.raises(ValidationError, match="immutable") as error:
        create_data_asset(name, path=str(source), version="1")
    assert f"{name!r} version '1' already exists" in str(error.value)
    assert get_data_asset(name, "1").path == first.path  # unchanged

    named = create_data_asset(name, path=str(source), version="2024.01")
    assert get_data_asset(name) == named  # latest = most recently created, not the highest number
    assert get_data_asset(name, "latest") == named
    assert get_data_asset(name, 1) == first
    assert [v.version for v in list_data_assets(name)] == ["1", "2", "2024.01"]
    assert create_data_asset(name, path=str(source)).version == "3"  # next integer after the highest


def test_same_content_reuses_the_same_upload(data_folder):
    a = create_data_asset(_unique("same"), path=str(data_folder / "sample-data"))
    b = create_data_asset(_unique("same"), path=str(data_folder / "sample-data"))
    assert a.path == b.path


def test_data_assets_are_blocks_visible_in_the_ui(data_folder):
    name = _unique("visible")
    created = create_data_asset(name, path=str(data_folder / "sample-data" / "titanic.csv"), type="uri_file")
    block = DataAsset.load(data_asset_document_name(name, "1"), _sync=True)
    assert (block.asset_name, block.version, block.type, block.path) == (name, "1", "uri_file", created.path)
    assert block.created_at == created.created_at.isoformat()


def test_asset_references_resolve_to_the_asset_path(data_folder):
    name = _unique("ref")
    v1 = create_data_asset(name, path=str(data_folder / "sample-data"))
    v2 = create_data_asset(name, path=str(data_folder / "example-data"))
    assert resolve_uri(f"azureml:{name}:1") == v1.path
    assert resolve_uri(f"azureml:{name}@latest") == v2.path
    assert resolve_uri(f"azureml:{name}") == v2.path
    assert resolve_uri(f"azureml://locations/x/workspaces/y/data/{name}/versions/1") == v1.path
    got = materialize_input(f"azureml:{name}:2", type="uri_folder", mode=None, dest=data_folder / "unused")
    assert got == v2.path


def test_unknown_assets_and_versions_list_what_exists(data_folder):
    name = _unique("known")
    create_data_asset(name, path=str(data_folder / "sample-data"))
    with pytest.raises(NotFoundError) as error:
        get_data_asset(_unique("nosuch"))
    assert name in str(error.value) and "create_data_asset" in str(error.value)
    with pytest.raises(NotFoundError, match=r"has no version '7'\. Its versions: 1\."):
        resolve_uri(f"azureml:{name}:7")


def test_remote_and_datastore_paths_are_stored_resolved(data_folder):
    import fsspec

    remote = f"memory://{_unique('assetdata')}/file.csv"
    fsspec.filesystem("memory").pipe(remote.removeprefix("memory://"), b"x\n1\n")
    asset = create_data_asset(_unique("remote"), path=remote, type="uri_file")
    assert asset.path == remote

    store = _unique("assetstore")
    create_datastore(store, str(data_folder))
    asset = create_data_asset(_unique("ds"), path=f"azureml://datastores/{store}/paths/example-data/",
                              type="uri_folder")
    assert asset.path == f"{data_folder}/example-data/"


def test_invalid_asset_input_reports_every_problem(data_folder):
    with pytest.raises(ValidationError) as error:
        create_data_asset("-bad name", path="", type="table", version="latest")
    fields = [p.field for p in error.value.problems]
    assert fields == ["name", "type", "version", "path"]
    with pytest.raises(NotFoundError, match="does not exist"):
        create_data_asset(_unique("missing"), path="nope/", base_path=data_folder)
    with pytest.raises(ValidationError, match="uri_file needs a file"):
        create_data_asset(_unique("dir"), path=str(data_folder / "sample-data"), type="uri_file")


def test_azure_yaml_files_create_assets(data_folder):
    spec = load_data_asset_file(data_folder / "local-file.yml")
    assert spec == {
        "name": "local-file-example-titanic",
        "path": str(data_folder / "sample-data" / "titanic.csv"),
        "type": "uri_file",
        "version": None,
        "description": "Data asset created from local file.",
        "tags": {},
    }

    folder_asset = create_data_asset_from_file(data_folder / "local-folder.yml", name=_unique("local-folder"))
    assert folder_asset.type == "uri_folder"
    assert folder_asset.description == "Dataset created from local folder."
    assert (Path(folder_asset.path) / "titanic.csv").is_file()

    file_asset = create_data_asset_from_file(data_folder / "local-file.yml", name=_unique("local-file"),
                                             version="5", tags={"from": "yaml"})
    assert (file_asset.version, file_asset.type, file_asset.tags) == ("5", "uri_file", {"from": "yaml"})
    assert Path(file_asset.path).name == "titanic.csv"

    mltable_asset = create_data_asset_from_file(data_folder / "local-mltable.yml", name=_unique("mlt"))
    assert mltable_asset.type == "mltable"
    assert (Path(mltable_asset.path) / "MLTable").is_file()
    assert Path(mltable_asset.path).name == "local-mltable"
    try:
        import mltable  # noqa: F401
    except ImportError:
        return
    from prefect_ml.data import load_mltable

    assert load_mltable(f"azureml:{mltable_asset.name}:1").shape == (891, 12)


def test_yaml_problems_are_reported_with_the_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\ntype: uri_file\npaht: a.csv\n")
    with pytest.raises(ValidationError) as error:
        load_data_asset_file(bad)
    assert {p.field for p in error.value.problems} == {"paht", "path"}
    assert str(bad) in str(error.value)
    with pytest.raises(NotFoundError, match="does not exist"):
        load_data_asset_file(tmp_path / "missing.yml")


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A real MLflow SQLite tracking/registry store in tmp_path, made current for the test."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.create_experiment(_unique("exp"), artifact_location=(tmp_path / "artifacts").as_uri())
    yield experiment_id
    mlflow.set_tracking_uri(previous)


def test_registered_models_are_materialized_from_the_registry(mlflow_store, tmp_path):
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    name = _unique("iris-model")
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]))
    with mlflow.start_run(experiment_id=mlflow_store) as run:
        mlflow.sklearn.log_model(model, name="model", pip_requirements=[], registered_model_name=name)

    uri = resolve_uri(f"azureml:{name}:1", asset_kind="model")
    assert uri == f"models:/{name}/1"
    local = materialize_input(uri, type="mlflow_model", mode="download", dest=tmp_path / "m1")
    assert Path(local, "MLmodel").is_file()
    assert Path(local).is_relative_to(tmp_path / "m1")

    latest = materialize_input(f"azureml:{name}@latest", type="mlflow_model", mode="ro_mount", dest=tmp_path / "m2")
    loaded = mlflow.sklearn.load_model(latest)
    assert loaded.predict(np.array([[3.0]])).tolist() == [1]

    runs_dir = materialize_input(f"runs:/{run.info.run_id}/model", type="custom_model", mode=None,
                                 dest=tmp_path / "m3")
    assert Path(runs_dir, "MLmodel").is_file()

    with pytest.raises(NotFoundError) as error:
        materialize_input(f"models:/{name}/9", type="mlflow_model", mode="download", dest=tmp_path / "m4")
    assert f"models:/{name}/9" in str(error.value)


def test_sync_api_works_inside_a_running_event_loop(data_folder):
    import asyncio

    name = _unique("inloop")

    async def main():
        created = create_data_asset(name, path=str(data_folder / "sample-data"))
        return created, get_data_asset(name), resolve_uri(f"azureml:{name}:1")

    created, fetched, resolved = asyncio.run(main())
    assert fetched == created
    assert resolved == created.path
