"""AutoML jobs end to end on real data: a real Prefect server, MLflow on SQLite, the registered model reloaded.

Budgets are short (seconds): these tests check behaviour; quality is checked by the slow Azure example test
and by benchmarks/automl_vs_flaml.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest



def cli_json(*args: str, cwd: Path):
    """Run ``prefect-ml ARGS --output json`` in this process (typer's CliRunner); a subprocess would add only
    its start-up (imports, seconds) to what the tests check."""
    import os

    from typer.testing import CliRunner

    from prefect_ml.cli.app import app

    before = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, [*args, "--output", "json"], catch_exceptions=False)
    finally:
        os.chdir(before)
    try:
        return result, json.loads(result.stdout)
    except ValueError as exc:
        raise AssertionError(f"not JSON (exit {result.exit_code}):\n{result.stdout}\n{result.stderr}") from exc


def _client():
    from prefect_ml import MLClient

    return MLClient(autostart=False)


def _load_registered(ref: str):
    import mlflow

    from prefect_ml import tracking

    name, version = ref.split(":")
    mlflow.set_tracking_uri(tracking.tracking_uri())
    return mlflow.sklearn.load_model(f"models:/{name}/{version}")


def test_classification_with_true_false_labels(tmp_path):
    from sklearn.datasets import load_breast_cancer

    from prefect_ml import Input, automl, tracking

    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({1: "true", 0: "false"})
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame.iloc[:450].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[450:].to_csv(tmp_path / "test.csv", index=False)
    job = automl.classification(training_data=Input(type="uri_file", path=str(tmp_path / "train.csv")),
                                test_data=Input(type="uri_file", path=str(tmp_path / "test.csv")),
                                target_column_name="target", primary_metric="AUC_weighted", n_cross_validations=3,
                                positive_label="false", experiment_name="automl-tests")
    job.set_limits(timeout_minutes=0.5, max_trials=5, max_concurrent_trials=2)
    job.set_training(allowed_training_algorithms=["LightGBM", "LogisticRegression", "ExtremeRandomTrees"])
    returned = _client().jobs.create_or_update(job, name="automl_breast_cancer")
    assert returned.status == "Completed", returned.error
    best = returned.details["best_model"]
    assert best["registered_model"] == "automl_breast_cancer:1"
    assert best["validation"] == "3-fold cross-validation"
    assert best["validation_score"] > 0.95 and best["test_score"] > 0.95
    assert returned.metrics["test_AUC_weighted"] == pytest.approx(best["test_score"])
    board = returned.details["leaderboard"]
    assert board[0]["rank"] == 1 and board[0]["AUC_weighted"] == pytest.approx(best["validation_score"], abs=1e-6)
    trials = [row for row in board if row["trial"] not in ("VotingEnsemble", "StackEnsemble")]
    assert len(trials) >= 3 and {row["algorithm"] for row in trials} <= {"Baseline", "LightGBM",
                                                                        "LogisticRegression", "ExtremeRandomTrees"}
    assert [r["name"] for r in returned.details["guardrails"]][:3] == [
        "Validation split handling", "Label type", "Class balancing detection"]
    # every trial is a child run of the job's MLflow run, linked to its Prefect task run
    client = tracking.get_client()
    children = client.search_runs([client.get_run(returned.mlflow_run_id).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{returned.mlflow_run_id}'", max_results=500)
    assert {r.info.run_name for r in children} == {row["trial"] for row in trials}
    assert all(r.data.tags.get("prefect.task_run_id") for r in children)
    # the registered model takes raw columns and returns the labels exactly as given
    model = _load_registered(best["registered_model"])
    test = pd.read_csv(tmp_path / "test.csv", dtype={"target": str})
    predicted = model.predict(test.drop(columns=["target"]))
    assert set(predicted) <= {"true", "false"} and predicted.dtype.kind == "U"
    assert np.mean(predicted == test["target"].to_numpy()) > 0.9
    # positive_label "false" (malignant; by default the second label, "true") is the positive class of the binary
    # test metrics: scikit-learn's with pos_label="false" on the registered model's predictions and probabilities
    from sklearn.metrics import average_precision_score, precision_score, recall_score

    assert best["positive_label"] == "false"
    assert {r["name"]: r for r in returned.details["guardrails"]}["Positive label"]["details"] == "false"
    for name, metric in (("precision_score_binary", precision_score), ("recall_score_binary", recall_score)):
        assert returned.metrics[f"test_{name}"] == pytest.approx(metric(test["target"], predicted, pos_label="false"))
    p_false = model.predict_proba(test.drop(columns=["target"]))[:, list(model.classes_).index("false")]
    assert returned.metrics["test_average_precision_score_binary"] == pytest.approx(
        average_precision_score(test["target"] == "false", p_false))
    # the table and guardrail artifacts exist in Prefect
    from prefect_ml._prefect import prefect_client

    with prefect_client() as prefect:
        artifacts = {a.key for a in prefect.read_artifacts()}
    assert {"leaderboard", "data-guardrails", "feature-importance"} <= artifacts


def test_degenerate_data_and_a_budget_shorter_than_one_fit(tmp_path):
    """A class with fewer rows than folds and a budget of a fraction of a second: the baseline is returned."""
    from sklearn.datasets import load_iris

    from prefect_ml import Input, automl

    frame = load_iris(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "setosa", 1: "versicolor", 2: "virginica"})
    rare = frame[frame.target == "virginica"].index[2:]
    frame = frame.drop(index=rare)  # two virginica rows, five folds
    frame.loc[frame.index[:10], "sepal length (cm)"] = np.nan
    frame["constant"] = 1
    frame.to_csv(tmp_path / "iris.csv", index=False)
    job = automl.classification(training_data=Input(type="uri_file", path=str(tmp_path / "iris.csv")),
                                target_column_name="target", n_cross_validations=5)
    job.set_limits(timeout_minutes=0.001)
    returned = _client().jobs.create_or_update(job)
    assert returned.status == "Completed", returned.error
    assert returned.details["best_model"]["trial"] == "Baseline-0"
    rails = {r["name"]: r for r in returned.details["guardrails"]}
    assert rails["Small classes"]["status"] == "alerted" and "virginica" in rails["Small classes"]["description"]
    assert rails["Constant columns"]["details"] == ["constant"]
    assert rails["Missing feature values imputation"]["details"] == {"sepal length (cm)": 10}
    model = _load_registered(returned.details["best_model"]["registered_model"])
    assert set(model.predict(frame.drop(columns=["target"]).head(20))) <= {"setosa", "versicolor", "virginica"}


def test_regression_job_file_via_cli(tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    (tmp_path / "data").mkdir()
    frame.to_parquet(tmp_path / "data" / "diabetes.parquet")
    job_file = tmp_path / "job.yml"
    job_file.write_text("""
type: automl
task: regression
primary_metric: r2_score
target_column_name: target
experiment_name: automl-tests
training_data:
  type: uri_file
  path: ./data/diabetes.parquet
validation_data_size: 0.2
limits:
  timeout_minutes: 0.25
  max_trials: 6
training:
  allowed_training_algorithms: [LightGBM, ElasticNet]
  enable_model_explainability: true
""")
    result, job = cli_json("job", "create", "--file", str(job_file), "--name", "automl_diabetes", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr[-3000:]
    assert job["status"] == "Completed" and job["type"] == "automl"
    assert job["best_model"]["validation"] == "train/validation split (20% held out)"
    assert job["best_model"]["validation_score"] > 0.2
    assert job["registered_models"] == {"best_model": "automl_diabetes:1"}
    result, shown = cli_json("job", "show", "automl_diabetes", cwd=tmp_path)
    assert result.exit_code == 0 and shown["leaderboard"] == job["leaderboard"]


def test_forecasting_several_series(tmp_path):
    import statsmodels.api as sm

    from prefect_ml import Input, automl, tracking

    macro = sm.datasets.macrodata.load_pandas().data
    macro["date"] = pd.PeriodIndex.from_fields(year=macro.year.astype(int), quarter=macro.quarter.astype(int),
                                               freq="Q").to_timestamp()
    long = macro.melt(id_vars=["date"], value_vars=["realgdp", "realcons", "realinv"], var_name="series",
                      value_name="value")
    cut = long.date.max() - pd.DateOffset(months=9)
    long[long.date < cut].to_csv(tmp_path / "train.csv", index=False)
    long[long.date >= cut].to_csv(tmp_path / "test.csv", index=False)
    job = automl.forecasting(training_data=Input(type="uri_file", path=str(tmp_path / "train.csv")),
                             test_data=Input(type="uri_file", path=str(tmp_path / "test.csv")),
                             target_column_name="value", experiment_name="automl-tests")
    job.set_forecast_settings(time_column_name="date", time_series_id_column_names=["series"], forecast_horizon=4,
                              country_or_region_for_holidays="US")
    job.set_limits(timeout_minutes=0.5, max_trials=6)
    job.set_training(allowed_training_algorithms=["Naive", "SeasonalNaive", "ExponentialSmoothing", "LightGBM"],
                     enable_model_explainability=False)
    returned = _client().jobs.create_or_update(job)
    assert returned.status == "Completed", returned.error
    best = returned.details["best_model"]
    assert best["validation"].startswith("rolling-origin validation: 3 origin(s), 4 step(s) apart, horizon 4")
    assert 0 <= best["validation_score"] < 0.05
    assert returned.metrics["test_normalized_root_mean_squared_error"] < 0.1
    holidays = {r["name"]: r for r in returned.details["guardrails"]}["Holidays"]
    assert holidays["details"] == "US" and "fall in" in holidays["description"]
    client = tracking.get_client()
    path = client.download_artifacts(returned.mlflow_run_id, "automl/forecast.json", str(tmp_path))
    forecast = json.loads(Path(path).read_text())
    assert len(forecast) == 3 * 4 and {row["series"] for row in forecast} == {"realgdp", "realcons", "realinv"}
    assert all(np.isfinite(row["forecast"]) for row in forecast)


@pytest.mark.slow
def test_azure_hello_automl_reaches_090_accuracy_on_its_test_data(azure_examples, tmp_path):
    folder = azure_examples / "jobs" / "basics" / "hello-automl"
    result, job = cli_json("job", "create", "--file", str(folder / "hello-automl-job-basic.yml"),
                           "--set", "limits.timeout_minutes=0.25", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr[-3000:]
    assert job["status"] == "Completed" and job["experiment_name"] == "dpv2-cli-automl-classifier-experiment"
    model = _load_registered(job["best_model"]["registered_model"])
    from prefect_ml.data import load_mltable

    test = load_mltable(folder / "test-mltable-folder")
    accuracy = float(np.mean(model.predict(test.drop(columns=["y"])) == test["y"].to_numpy()))
    assert accuracy >= 0.90, (accuracy, job["best_model"])


def test_regression_on_a_dask_target_runs_its_trials_on_the_cluster(tmp_path):
    """``compute: <dask target>``: the AutoML flow runs in the submitting process, its trials on the target's
    cluster (before, every non-local target went to the work-pool submission path, which refused AutoML)."""
    import uuid

    from sklearn.datasets import load_diabetes

    from helpers import dask_target, executed_on

    (tmp_path / "data").mkdir()
    load_diabetes(as_frame=True).frame.to_parquet(tmp_path / "data" / "diabetes.parquet")
    with dask_target(threads=2) as (target, cluster):
        (tmp_path / "job.yml").write_text(f"""
type: automl
task: regression
compute: {target}
primary_metric: r2_score
target_column_name: target
experiment_name: automl-tests
training_data: {{type: uri_file, path: ./data/diabetes.parquet}}
validation_data_size: 0.2
limits: {{timeout_minutes: 0.25, max_trials: 4, max_concurrent_trials: 2}}
training: {{allowed_training_algorithms: [ElasticNet]}}
""")
        name = f"automl_dask_{uuid.uuid4().hex[:8]}"
        result, job = cli_json("job", "create", "--file", str(tmp_path / "job.yml"), "--name", name, cwd=tmp_path)
        assert result.exit_code == 0, result.stderr[-3000:]
        assert job["status"] == "Completed", job.get("error")
        assert executed_on(cluster) >= 1  # trials ran as Dask tasks on the target's cluster
    assert job["best_model"]["validation_score"] > 0.2
