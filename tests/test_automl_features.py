"""AutoML data handling on real data, without a flow run: sample weights, positive_label, text and datetime
featurization, holiday features for forecasting.

These call the engine directly (fractions of a second each); the flow tests in test_automl.py cover the same
settings end to end.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from conftest import AZURE_EXAMPLES
from prefect_ml.exceptions import ValidationError

TITANIC = AZURE_EXAMPLES / "assets" / "data" / "sample-data" / "titanic.csv"


def _prepare(task, metric, frame, target, tmp_path, **kwargs):
    from prefect_ml.automl.prepare import prepare_tabular

    kwargs.setdefault("n_cross_validations", 3)
    prepared, rails = prepare_tabular(task, metric, frame, target=target, valid=None,
                                      weight=kwargs.pop("weight", None), budget_s=30.0,
                                      validation_data_size=None, featurization={"mode": "auto"}, **kwargs)
    return prepared, rails, prepared.save(tmp_path / "prepared.pkl")


def _breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame
    frame["target"] = np.asarray(data.target_names)[data.target]  # "malignant" / "benign"
    return frame


def test_weights_reach_fit_and_metrics_and_are_not_a_feature(tmp_path):
    """Class-balancing weights (Azure's use of weight_column_name) on breast cancer."""
    from sklearn.base import clone
    from sklearn.utils.class_weight import compute_sample_weight

    from prefect_ml.automl import engine
    from prefect_ml.automl import metrics as M

    frame = _breast_cancer()
    frame["balance"] = compute_sample_weight("balanced", frame["target"])
    prepared, _, path = _prepare("classification", "accuracy", frame, "target", tmp_path, weight="balance")
    assert "balance" not in prepared.X.columns and "balance" not in prepared.column_types
    np.testing.assert_allclose(prepared.weights, frame["balance"].to_numpy())

    config = {"C": 1.0}
    result = engine.evaluate_trial(path, "LogisticRegression", config)
    assert result["status"] == "completed", result["error"]
    rows = prepared.valid_rows
    weighted = M.classification_metrics(prepared.y[rows], result["predictions"], 2,
                                        sample_weight=prepared.weights[rows])
    unweighted = M.classification_metrics(prepared.y[rows], result["predictions"], 2)
    assert result["metrics"]["accuracy"] == pytest.approx(weighted["accuracy"])
    assert weighted["accuracy"] != pytest.approx(unweighted["accuracy"], abs=1e-9)

    # The weights reach the estimator's fit: the refitted model equals a pipeline fitted with those weights
    # and differs from one fitted without them.
    fitted = engine.refit_member(path, "LogisticRegression", config)
    template, _ = engine.build_model(prepared, "LogisticRegression", config)
    with_weights = clone(template).fit(prepared.X, prepared.y, model__sample_weight=prepared.weights)
    without = clone(template).fit(prepared.X, prepared.y)
    coef = fitted.steps[-1][1].coef_
    np.testing.assert_allclose(coef, with_weights.steps[-1][1].coef_, rtol=1e-6)
    assert not np.allclose(coef, without.steps[-1][1].coef_, rtol=1e-3)


def test_positive_label_chooses_the_class_of_the_binary_metrics(tmp_path):
    from prefect_ml.automl import engine

    frame = _breast_cancer()
    default, rails, _ = _prepare("classification", "AUC_weighted", frame, "target", tmp_path)
    assert default.classes == ["benign", "malignant"] and default.positive is None
    assert {r["name"]: r for r in rails}["Positive label"]["details"] == "malignant"  # the second label
    prepared, rails, path = _prepare("classification", "AUC_weighted", frame, "target", tmp_path,
                                     positive_label="benign")
    assert prepared.positive == 0 and {r["name"]: r for r in rails}["Positive label"]["details"] == "benign"
    trial = engine.evaluate_trial(path, "LogisticRegression", {"C": 1.0})
    benign = trial["metrics"]
    path = default.save(tmp_path / "default.pkl")
    engine.load_prepared.cache_clear()
    malignant = engine.evaluate_trial(path, "LogisticRegression", {"C": 1.0})["metrics"]
    # Same model and predictions: the weighted metrics agree, the binary ones follow the positive class.
    assert benign["AUC_weighted"] == pytest.approx(malignant["AUC_weighted"])
    assert benign["AUC_binary"] == pytest.approx(malignant["AUC_binary"])  # AUC is symmetric for two classes
    for name in ("precision_score_binary", "recall_score_binary", "f1_score_binary",
                 "average_precision_score_binary"):
        assert benign[name] != pytest.approx(malignant[name], abs=1e-6), name
    # They are scikit-learn's metrics with that class as pos_label, on the labels the model predicts.
    from sklearn.metrics import precision_score, recall_score

    labels = np.asarray(prepared.classes)
    truth, predicted = labels[prepared.y[prepared.valid_rows]], labels[trial["predictions"].argmax(axis=1)]
    for positive, values in (("benign", benign), ("malignant", malignant)):
        assert values["precision_score_binary"] == pytest.approx(precision_score(truth, predicted,
                                                                                 pos_label=positive))
        assert values["recall_score_binary"] == pytest.approx(recall_score(truth, predicted, pos_label=positive))

    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True).frame
    with pytest.raises(ValidationError) as exc:
        _prepare("classification", "accuracy", iris, "target", tmp_path, positive_label="setosa")
    [problem] = exc.value.problems
    assert problem.field == "positive_label" and "0, 1, 2" in problem.message
    # an unquoted YAML `yes` arrives as True: the message says how to keep it a label
    with pytest.raises(ValidationError) as exc:
        _prepare("classification", "accuracy", iris, "target", tmp_path, positive_label=True)
    assert "quote the label" in exc.value.problems[0].message
    # With more than two classes, positive_label turns the binary metrics on (that class against the rest);
    # a YAML string "2" finds the integer label 2.
    prepared, _, path = _prepare("classification", "accuracy", iris, "target", tmp_path, positive_label="2")
    engine.load_prepared.cache_clear()
    metrics = engine.evaluate_trial(path, "LogisticRegression", {"C": 1.0})["metrics"]
    assert prepared.positive == 2 and 0.8 < metrics["recall_score_binary"] <= 1.0


def test_text_column_is_hashed_inside_the_pipeline(tmp_path):
    """Titanic passengers' names (Azure's sample data) are text: their titles (Mr, Mrs, Miss) predict survival."""
    if not TITANIC.exists():
        pytest.skip(f"shared data not found at {TITANIC}")
    from sklearn.feature_extraction.text import HashingVectorizer

    from prefect_ml.automl import engine

    frame = pd.read_csv(TITANIC)[["Name", "Survived"]]
    prepared, rails, path = _prepare("classification", "AUC_weighted", frame, "Survived", tmp_path)
    assert prepared.column_types == {"Name": "Text"}
    model, _ = engine.build_model(prepared, "LogisticRegression", {"C": 1.0})
    step = {name: t for name, t, _ in model.named_steps["featurize"].transformers}["text_Name"]
    assert isinstance(step.steps[-1][1], HashingVectorizer)
    result = engine.evaluate_trial(path, "LogisticRegression", {"C": 1.0})
    baseline = engine.evaluate_trial(path, "Baseline", {})
    assert result["status"] == "completed", result["error"]
    assert result["metrics"]["AUC_weighted"] > 0.75 and baseline["metrics"]["AUC_weighted"] == pytest.approx(0.5)
    fitted = engine.refit_member(path, "LogisticRegression", {"C": 1.0})
    proba = fitted.predict_proba(pd.DataFrame({"Name": ["Smith, Mrs. Anna", "Smith, Mr. John"]}))
    assert proba[0, 1] > proba[1, 1]  # raw text in, the woman is likelier to survive


def test_datetime_column_becomes_its_parts(tmp_path):
    """Mauna Loa CO2 (statsmodels) against its dates: the year and the day of the year explain it."""
    from statsmodels.datasets import co2

    from prefect_ml.automl import engine

    data = co2.load_pandas().data.dropna()
    frame = pd.DataFrame({"date": data.index.strftime("%Y-%m-%d"), "co2": data["co2"].to_numpy()})
    prepared, _, path = _prepare("regression", "r2_score", frame, "co2", tmp_path)
    assert prepared.column_types == {"date": "DateTime"}
    model, _ = engine.build_model(prepared, "LightGBM", {})
    parts = model.named_steps["featurize"].fit_transform(frame[["date"]].iloc[:3])
    # year, month, day, day of week, day of year, hour, minute
    np.testing.assert_array_equal(parts[0], [1958, 3, 29, 5, 88, 0, 0])
    result = engine.evaluate_trial(path, "LightGBM", {"n_estimators": 100, "num_leaves": 15})
    assert result["status"] == "completed", result["error"]
    assert result["metrics"]["r2_score"] > 0.95


def test_holiday_features_for_forecasting(tmp_path):
    """German public holidays on the monthly euro-area electrical equipment index (statsmodels)."""
    from statsmodels.datasets import co2, elec_equip

    from prefect_ml import Input, automl
    from prefect_ml.automl import engine
    from prefect_ml.automl.forecast import holiday_counts, prepare_forecast

    series = elec_equip.load_pandas().data
    frame = pd.DataFrame({"month": series.index, "index": series.iloc[:, 0].to_numpy()})
    job = automl.forecasting(training_data=Input(type="uri_file", path=str(tmp_path / "unused.csv")),
                             target_column_name="index")
    job.set_forecast_settings(time_column_name="month", forecast_horizon=6, country_or_region_for_holidays="de")
    assert not job.warnings
    prepared, rails = prepare_forecast(job, frame, featurization={})
    assert prepared.forecast["holidays"] == "DE" and prepared.forecast["freq"] == "MS"
    assert {r["name"]: r for r in rails}["Holidays"]["details"] == "DE"
    path = prepared.save(tmp_path / "prepared.pkl")
    result = engine.evaluate_trial(path, "LightGBM", {"n_estimators": 50, "num_leaves": 7})
    assert result["status"] == "completed", result["error"]
    model = engine.refit_member(path, "LightGBM", {"n_estimators": 50, "num_leaves": 7})
    history = model.history_["_"]
    features, _ = model._regression_rows("_", history["time"], history["y"].to_numpy(), history, training=True)
    by_month = pd.Series(features["holidays"].to_numpy(), index=history["time"].dt.strftime("%Y-%m"))
    # New Year, Christmas (25 and 26 December), Unity Day (3 October); no German public holiday in February.
    assert by_month["1995-01"] == 1 and by_month["1995-12"] == 2 and by_month["1995-10"] == 1
    assert by_month["1995-02"] == 0
    assert "holidays" in model.regressor_.feature_names_in_
    future = pd.DataFrame({"month": pd.date_range(frame["month"].max(), periods=7, freq="MS")[1:]})
    assert np.isfinite(model.predict(future)).all()

    # Daily and weekly periods: 0/1 for a day, the holidays of the week (US: Independence Day, Christmas).
    days = pd.date_range("1990-07-03", "1990-07-05", freq="D")
    np.testing.assert_array_equal(holiday_counts(days, "D", "US"), [0, 1, 0])
    weeks = co2.load_pandas().data.index  # Saturdays, 1958-2001
    counts = pd.Series(holiday_counts(weeks, "W-SAT", "US"), index=weeks)
    assert counts["1958-06-28"] == 1 and counts["1958-12-20"] == 1 and counts["1958-07-05"] == 0
    with pytest.raises(ValidationError) as exc:
        job.set_forecast_settings(time_column_name="month", country_or_region_for_holidays="Germany")
        prepare_forecast(job, frame, featurization={})
    assert exc.value.problems[0].field == "forecasting.country_or_region_for_holidays"
