"""The automl job specification: Azure's example, validation messages, the Python builders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prefect_ml.exceptions import ValidationError
from prefect_ml.specs import load_job


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yml"
    path.write_text(text)
    return path


BASE = """
type: automl
task: classification
target_column_name: y
training_data:
  type: mltable
  path: ./train
"""


def test_azure_hello_automl_example_loads(azure_examples):
    folder = azure_examples / "jobs" / "basics" / "hello-automl"
    job = load_job(folder / "hello-automl-job-basic.yml", overrides=["limits.timeout_minutes=1"])
    assert job.type == "automl" and job.task == "classification"
    assert job.primary_metric == "accuracy" and job.target_column_name == "y"
    assert job.limits.timeout_minutes == 1 and job.limits.max_trials == 40 and job.limits.enable_early_termination
    assert job.training_data.type == "mltable"
    assert job.resolve_path(job.training_data) == str((folder / "training-mltable-folder").resolve())
    assert job.featurization.mode == "auto"
    assert job.experiment_name == "dpv2-cli-automl-classifier-experiment"


def test_automl_is_a_registered_job_kind():
    from prefect_ml.job_kinds import kind_module, supported_types

    assert "automl" in supported_types()
    module = kind_module("automl")
    assert all(hasattr(module, name) for name in ("parse", "preflight", "run", "describe"))


def test_unknown_algorithm_lists_the_valid_ones(tmp_path):
    path = _write(tmp_path, BASE + "training:\n  allowed_training_algorithms: [lightgbm, RandomForrest]\n"
                  "  blocked_training_algorithms: [XGBoost]\n")
    with pytest.raises(ValidationError) as exc:
        load_job(path)
    [problem] = exc.value.problems
    assert problem.field == "training.allowed_training_algorithms[1]"
    assert problem.value == "RandomForrest"
    assert "did you mean 'RandomForest'" in problem.message
    assert "LogisticRegression" in problem.message and "XGBoostClassifier" in problem.message
    assert exc.value.file == str(path)


def test_every_problem_is_reported_at_once(tmp_path):
    path = _write(tmp_path, BASE.replace("classification", "regression") + "primary_metric: accuracy\n"
                  "n_cross_validations: 1\nlimits:\n  max_trials: 0\n  timeout_minute: 5\n"
                  "training:\n  allowed_training_algorithms: [LogisticRegression]\n")
    with pytest.raises(ValidationError) as exc:
        load_job(path)
    fields = {p.field for p in exc.value.problems}
    assert {"limits.max_trials", "limits.timeout_minute"} <= fields
    messages = " ".join(p.message for p in exc.value.problems)
    assert "did you mean 'timeout_minutes'" in messages


def test_metric_and_algorithm_are_checked_against_the_task(tmp_path):
    path = _write(tmp_path, BASE.replace("classification", "regression") + "primary_metric: accuracy\n"
                  "n_cross_validations: 1\ntraining:\n  allowed_training_algorithms: [LogisticRegression]\n")
    with pytest.raises(ValidationError) as exc:
        load_job(path)
    by_field = {p.field: p.message for p in exc.value.problems}
    assert "r2_score" in by_field["primary_metric"]
    assert "unknown regression algorithm" in by_field["training.allowed_training_algorithms[0]"]
    assert "at least 2" in by_field["n_cross_validations"]


def test_forecasting_needs_its_settings(tmp_path):
    path = _write(tmp_path, BASE.replace("classification", "forecasting"))
    with pytest.raises(ValidationError) as exc:
        load_job(path)
    assert [p.field for p in exc.value.problems] == ["forecasting"]


def test_python_builders_and_setters(tmp_path):
    from prefect_ml import Input, automl

    job = automl.classification(training_data=Input(type="mltable", path=str(tmp_path)), target_column_name="y",
                                primary_metric="AUC_weighted", n_cross_validations=3)
    job.set_limits(timeout_minutes=2, max_concurrent_trials=2).set_training(
        allowed_training_algorithms=["LightGBM", "logisticregression"], enable_stack_ensemble=False)
    job.set_featurization(mode="custom", blocked_transformers=["OneHotEncoder"])
    assert job.limits.max_concurrent_trials == 2 and job.limits.timeout_minutes == 2
    assert job.algorithms() == ["LightGBM", "LogisticRegression"]
    assert job.training.enable_stack_ensemble is False
    assert job.featurization.blocked_transformers == ["OneHotEncoder"]
    with pytest.raises(ValidationError) as exc:
        job.set_limits(max_concurrent_trials=0)
    assert exc.value.problems[0].field == "limits.max_concurrent_trials"
    assert job.limits.max_concurrent_trials == 2  # unchanged after a rejected change

    forecast = automl.forecasting(training_data=str(tmp_path), target_column_name="sales")
    assert forecast.problems() and forecast.problems()[0].field == "forecasting"
    forecast.set_forecast_settings(time_column_name="date", forecast_horizon=6, time_series_id_column_names=["store"])
    assert not forecast.problems()
    assert forecast.forecasting.series_columns() == ["store"] and forecast.forecasting.forecast_horizon == 6
    assert forecast.primary_metric == "normalized_root_mean_squared_error"
    assert "ExponentialSmoothing" in forecast.algorithms()


def test_importing_automl_is_light():
    code = ("import sys, prefect_ml, prefect_ml.automl; prefect_ml.automl.classification; "
            "print(sorted(m for m in ('prefect', 'mlflow', 'pandas', 'sklearn', 'flaml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_azure_metrics_on_real_predictions():
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    from prefect_ml.automl import metrics

    X, y = load_iris(return_X_y=True)
    proba = cross_val_predict(LogisticRegression(max_iter=500), X, y, cv=5, method="predict_proba")
    values = metrics.classification_metrics(y, proba, 3)
    accuracy = float(np.mean(proba.argmax(1) == y))
    assert values["accuracy"] == pytest.approx(accuracy)
    # Azure: norm_macro_recall = (macro recall - 1/k) / (1 - 1/k); balanced classes make recall == accuracy.
    assert values["norm_macro_recall"] == pytest.approx((accuracy - 1 / 3) / (2 / 3))
    assert 0.95 < values["AUC_weighted"] <= 1.0
    regression = metrics.regression_metrics(np.array([1.0, 2.0, 3.0, 5.0]), np.array([1.0, 2.0, 4.0, 5.0]), 4.0)
    assert regression["normalized_root_mean_squared_error"] == pytest.approx(0.5 / 4)
    assert regression["normalized_mean_absolute_error"] == pytest.approx(0.25 / 4)
    assert metrics.loss_of("accuracy", 0.9) == pytest.approx(0.1)
    assert metrics.loss_of("normalized_root_mean_squared_error", 0.2) == 0.2


def test_example_job_file_loads_and_points_at_the_shared_mltables(azure_examples):
    from prefect_ml.automl.kind import preflight

    repo = Path(__file__).resolve().parents[1]
    job = load_job(repo / "examples" / "automl" / "bank-marketing.yml")
    assert job.validation_data.type == job.test_data.type == "mltable"
    assert job.algorithms() == ["LightGBM", "XGBoostClassifier", "RandomForest", "ExtremeRandomTrees",
                                "LogisticRegression"]
    if (azure_examples / "jobs" / "basics" / "hello-automl").resolve() == Path(
            job.resolve_path(job.training_data)).parent.resolve():
        assert preflight(job) is job  # every path exists


def _no_trace_of(job_name: str):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    from prefect_ml import tracking
    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        assert not client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[job_name])))
    assert tracking.find_job_run(tracking.get_client(), job_name) is None


def test_bad_positive_label_and_columns_are_refused_before_anything_is_created(tmp_path):
    """positive_label and the named columns are checked against the data's header / label column at preflight:
    exit 2, the file, field, value and what there is; no flow run, no MLflow run."""
    import uuid

    from sklearn.datasets import load_breast_cancer

    from helpers import cli_in_process

    frame = load_breast_cancer(as_frame=True).frame.head(60)
    frame["y"] = frame.pop("target").map({0: "no", 1: "yes"})
    (tmp_path / "train").mkdir()
    frame.to_csv(tmp_path / "train" / "train.csv", index=False)
    (tmp_path / "train" / "MLTable").write_text(
        "paths:\n  - file: ./train.csv\ntransformations:\n  - read_delimited:\n      delimiter: ','\n")
    frame.drop(columns=["y"]).to_parquet(tmp_path / "test.parquet")
    job = _write(tmp_path, BASE + "positive_label: maybe\n")

    name = f"automl-bad-{uuid.uuid4().hex[:8]}"
    result = cli_in_process("job", "create", "--file", str(job), "--name", name)
    assert result.returncode == 2, result.stdout + result.stderr
    text = " ".join(result.stderr.split())
    assert str(job) in text and "positive_label" in text and "'maybe'" in text and "'no', 'yes'" in text
    assert "set positive_label to one of them" in text
    _no_trace_of(name)

    # YAML's unquoted yes is a boolean: the message says to quote it.
    result = cli_in_process("job", "create", "--file", str(_write(tmp_path, BASE + "positive_label: true\n")),
                            "--name", name)
    assert result.returncode == 2 and 'positive_label: "yes"' in " ".join(result.stderr.split())
    # A label that is in the data passes preflight (validate creates nothing).
    from prefect_ml.automl.kind import preflight

    assert preflight(load_job(_write(tmp_path, BASE + "positive_label: 'yes'\n"))).positive_label == "yes"

    # A target column that is not in the training data, and one missing from the test data (Parquet header).
    wrong = BASE.replace("target_column_name: y", "target_column_name: label")
    wrong += "test_data:\n  type: uri_file\n  path: ./test.parquet\n"
    result = cli_in_process("job", "create", "--file", str(_write(tmp_path, wrong)), "--name", name)
    assert result.returncode == 2, result.stdout + result.stderr
    text = " ".join(result.stderr.split())
    assert "target_column_name" in text and "'label'" in text and "training_data (./train)" in text
    assert "test_data (./test.parquet)" in text and "mean radius" in text
    _no_trace_of(name)
    misspelled = BASE.replace("target_column_name: y", "target_column_name: yy")
    result = cli_in_process("job", "create", "--file", str(_write(tmp_path, misspelled)), "--name", name)
    assert result.returncode == 2 and "did you mean 'y'?" in " ".join(result.stderr.split()), result.stderr
    _no_trace_of(name)
