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
