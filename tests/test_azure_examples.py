"""Azure's own example job files (../shared/azureml-examples/cli/jobs/basics) run unchanged.

Files whose ``code: src`` folder is not shipped are copied to a temporary folder next to a small
script of ours with the name the job expects; everything else runs straight from the shared folder.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from helpers import write

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ml_client():
    from prefect_ml import MLClient

    return MLClient()


def _run(ml_client, path: Path, **overrides):
    from prefect_ml import load_job

    job = ml_client.jobs.create_or_update(load_job(path, **overrides), name=f"azure_{uuid.uuid4().hex[:10]}")
    assert job.status == "Completed", job.error
    return job, Path(job.log_path).read_text()


@pytest.mark.parametrize("file,expected", [
    ("hello-world.yml", "hello world"),
    ("hello-world-input.yml", "hello world\n42"),
    ("hello-world-env-var.yml", "hello world"),
    ("hello-world-org.yml", "hello world"),
])
def test_hello_world_jobs_run_unchanged(ml_client, azure_examples, file, expected):
    job, log = _run(ml_client, azure_examples / "jobs" / "basics" / file)
    assert expected in log


def test_hello_world_org_keeps_experiment_and_tags(ml_client, azure_examples):
    from prefect_ml import tracking

    job, _ = _run(ml_client, azure_examples / "jobs/basics/hello-world-org.yml")
    assert job.experiment_name == "hello-world-example" and job.display_name == "hello-world-example"
    run = tracking.get_client().get_run(job.mlflow_run_id)
    assert run.data.tags["hello"] == "world"
    assert "hello world" in run.data.tags["mlflow.note.content"]


def test_outputs_folder_becomes_run_artifacts(ml_client, azure_examples, tmp_path):
    from prefect_ml import tracking

    job, _ = _run(ml_client, azure_examples / "jobs/basics/hello-world-output.yml")
    client = tracking.get_client()
    local = client.download_artifacts(job.mlflow_run_id, "outputs/helloworld.txt", str(tmp_path))
    assert Path(local).read_text() == "hello world\n"


def test_default_output_goes_to_the_workspace_datastore(ml_client, azure_examples):
    job, _ = _run(ml_client, azure_examples / "jobs/basics/hello-world-output-data.yml")
    out = Path(job.outputs["hello_output"])
    assert (out / "helloworld.txt").read_text() == "hello world\n"
    assert f"workspaceblobstore/azureml/{job.name}/hello_output" in str(out)


def test_model_as_input_runs_unchanged(ml_client, azure_examples):
    job, log = _run(ml_client, azure_examples / "jobs/basics/hello-model-as-input.yml")
    assert "MLmodel" in log and "model.pkl" in log


IRIS_SCRIPT = """
import argparse, csv
p = argparse.ArgumentParser(); p.add_argument("--iris-csv"); a = p.parse_args()
rows = list(csv.reader(open(a.iris_csv)))
print(f"iris rows: {len(rows)} x {len(rows[0])}")
"""


@pytest.fixture
def iris_in_workspace_datastore(azure_examples):
    """Copies Azure's example-data folder into the default (local) workspaceblobstore datastore."""
    from prefect_ml.data import datastore_root

    root = Path(datastore_root("workspaceblobstore"))
    shutil.copytree(azure_examples / "assets/data/example-data", root / "example-data", dirs_exist_ok=True)
    return root / "example-data"


@pytest.mark.parametrize("file", ["hello-iris-datastore-file.yml", "hello-iris-datastore-folder.yml"])
def test_iris_from_a_local_datastore(ml_client, azure_examples, iris_in_workspace_datastore, tmp_path, file):
    shutil.copy(azure_examples / "jobs/basics" / file, tmp_path / file)
    write(tmp_path / "src" / "hello-iris.py", IRIS_SCRIPT)
    job, log = _run(ml_client, tmp_path / file)
    assert "iris rows: 75 x 44" in log


def test_hello_mlflow_logs_into_the_jobs_run(ml_client, azure_examples, tmp_path):
    shutil.copy(azure_examples / "jobs/basics/hello-mlflow.yml", tmp_path / "hello-mlflow.yml")
    write(tmp_path / "src" / "hello-mlflow.py", """
import mlflow
with mlflow.start_run():
    mlflow.log_param("hello_param", "world")
    mlflow.log_metric("hello_metric", 0.42)
""")
    job, _ = _run(ml_client, tmp_path / "hello-mlflow.yml")
    assert job.metrics == {"hello_metric": 0.42}


def test_model_as_output_is_registered(ml_client, azure_examples, tmp_path):
    basics = tmp_path / "cli" / "jobs" / "basics"
    basics.mkdir(parents=True)
    shutil.copy(azure_examples / "jobs/basics/hello-model-as-output.yml", basics)
    shutil.copytree(azure_examples / "assets/model", tmp_path / "cli/assets/model")
    write(basics / "src" / "hello-model-as-output.py", """
import argparse, shutil
p = argparse.ArgumentParser(); p.add_argument("--input_model"); p.add_argument("--custom_model_output")
a = p.parse_args()
shutil.copytree(a.input_model, a.custom_model_output, dirs_exist_ok=True)
print("copied model")
""")
    job, log = _run(ml_client, basics / "hello-model-as-output.yml")
    assert "copied model" in log
    model_ref = job.registered_models["output_folder"]
    name, version = model_ref.rsplit(":", 1)
    shown = ml_client.models.get(name, version)
    assert shown["run_id"] == job.mlflow_run_id and shown["tags"]["prefect_ml.output"] == "output_folder"


@pytest.mark.parametrize("file,asset", [("hello-data-uri-folder.yml", "local-folder-example"),
                                        ("hello-dataset.yml", "sampledata")])
def test_data_asset_inputs(ml_client, azure_examples, tmp_path, file, asset):
    from prefect_ml.data import create_data_asset

    shutil.copy(azure_examples / "jobs/basics" / file, tmp_path / file)
    (tmp_path / "src").mkdir()
    create_data_asset(asset, path=str(azure_examples / "assets/data/sample-data"), type="uri_folder")
    job, log = _run(ml_client, tmp_path / file)
    assert "titanic.csv" in log
