"""The example jobs in examples/jobs train real models on real data (scikit-learn's bundled sets)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from helpers import REPO, cli_json

pytestmark = pytest.mark.slow

JOBS = REPO / "examples" / "jobs"


@pytest.fixture(scope="module")
def ml_client():
    from prefect_ml import MLClient

    return MLClient()


def _run(ml_client, path: Path, overrides=()):
    from prefect_ml import load_job

    job = ml_client.jobs.create_or_update(load_job(path, overrides=list(overrides)),
                                          name=f"example_{uuid.uuid4().hex[:10]}")
    assert job.status == "Completed", job.error
    return job


def test_breast_cancer_trains_tracks_registers_then_scores_the_registered_model(ml_client):
    """The README's main job through the CLI, then the scoring job on the model it registered."""
    name = f"bc_{uuid.uuid4().hex[:8]}"
    result, job = cli_json("job", "create", "--file", str(JOBS / "breast-cancer/job.yml"), "--name", name,
                           "--set", "inputs.max_depth=3")
    assert result.returncode == 0, result.stderr
    assert job["name"] == name and job["status"] == "Completed"
    assert set(job) >= {"name", "status", "experiment_name", "mlflow_run_id", "prefect_flow_run_id", "metrics",
                        "outputs", "log_path"}
    assert job["metrics"]["accuracy"] > 0.9 and job["metrics"]["roc_auc"] > 0.95
    # MLflow: the run holds the script's metrics and parameters and is linked to the flow run.
    from prefect_ml import tracking

    run = tracking.get_client().get_run(job["mlflow_run_id"])
    assert run.data.params["max_depth"] == "3"  # the --set override reached the optional $[[--max-depth ...]]
    assert run.info.status == "FINISHED"
    assert run.data.tags["prefect.flow_run_id"] == job["prefect_flow_run_id"]
    assert run.data.metrics["accuracy"] == job["metrics"]["accuracy"]
    # Prefect: one Completed flow run named after the job, tagged with the MLflow run id.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        (flow_run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
    assert flow_run.state.is_completed()
    assert f"mlflow_run_id:{job['mlflow_run_id']}" in flow_run.tags
    # The model output is registered in the MLflow registry and loads.
    (version,) = tracking.get_client().search_model_versions(f"run_id = '{job['mlflow_run_id']}'")
    assert version.name == "breast-cancer-classifier"
    assert job["registered_models"]["model"] == f"breast-cancer-classifier:{version.version}"
    import mlflow.pyfunc

    assert mlflow.pyfunc.load_model(version.source).metadata is not None

    scored = _run(ml_client, JOBS / "breast-cancer-score/job.yml")
    # azureml:breast-cancer-classifier@latest resolved through the MLflow registry to the version just trained
    assert scored.metrics["accuracy"] > 0.9
    predictions = Path(scored.outputs["predictions"]).read_text().splitlines()
    assert predictions[0] == "target,predicted" and len(predictions) == 570


def test_diabetes_regression_from_parquet(ml_client):
    job = _run(ml_client, JOBS / "diabetes-regression/job.yml")
    assert 0.2 < job.metrics["r2_score"] < 1.0
    assert job.registered_models["model"].startswith("diabetes-regressor:")


def test_diabetes_regression_from_mltable(ml_client):
    job = _run(ml_client, JOBS / "diabetes-regression/job-mltable.yml")
    assert 0.2 < job.metrics["r2_score"] < 1.0


def test_export_datasets_step_writes_the_data_assets(ml_client):
    job = _run(ml_client, JOBS / "export-datasets/job.yml")
    assert set(job.outputs) == {"breast_cancer", "diabetes", "diabetes_mltable"}
    assert (Path(job.outputs["breast_cancer"]) / "breast_cancer.csv").read_bytes() == \
        (REPO / "examples/data/breast-cancer/breast_cancer.csv").read_bytes()
    assert (Path(job.outputs["diabetes_mltable"]) / "MLTable").exists()


def test_digits_torch_trains_on_the_cpu(ml_client):
    pytest.importorskip("torch")
    job = _run(ml_client, JOBS / "digits-torch/job.yml", ["inputs.epochs=4"])
    assert job.metrics["val_accuracy"] > 0.8
    assert {"train_loss", "val_loss", "val_accuracy"} <= set(job.metrics)
    from prefect_ml import tracking

    history = tracking.get_client().get_metric_history(job.mlflow_run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2, 3, 4] or [m.step for m in history] == [0, 1, 2, 3]
    assert job.registered_models["model"].startswith("digits-mlp:")
