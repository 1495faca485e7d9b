"""Azure AutoML's algorithm and metric names, and the models behind them.

Algorithm names follow https://learn.microsoft.com/azure/machine-learning/reference-automated-ml-tabular
(``training.allowed_training_algorithms``) and
https://learn.microsoft.com/azure/machine-learning/reference-automated-ml-forecasting.
This module is import-light (no scikit-learn, FLAML or pandas at import time): the spec uses it.
"""

from __future__ import annotations

TASKS = ("classification", "regression", "forecasting")

#: Azure's classification algorithm names.
CLASSIFICATION_ALGORITHMS = (
    "LogisticRegression", "SGD", "MultinomialNaiveBayes", "BernoulliNaiveBayes", "SVM", "LinearSVM", "KNN",
    "DecisionTree", "RandomForest", "ExtremeRandomTrees", "LightGBM", "GradientBoosting", "XGBoostClassifier",
)
#: Azure's regression algorithm names.
REGRESSION_ALGORITHMS = (
    "ElasticNet", "GradientBoosting", "DecisionTree", "KNN", "LassoLars", "SGD", "RandomForest",
    "ExtremeRandomTrees", "LightGBM", "XGBoostRegressor",
)
#: Azure's forecasting-only algorithm names (forecasting also accepts the regression ones).
TIME_SERIES_ALGORITHMS = (
    "Naive", "SeasonalNaive", "Average", "SeasonalAverage", "ExponentialSmoothing", "Arima", "AutoArima",
)
FORECASTING_ALGORITHMS = TIME_SERIES_ALGORITHMS + REGRESSION_ALGORITHMS

#: Algorithms tried when ``allowed_training_algorithms`` is not given: those that are fast and strong on tabular
#: data. Others (SVM, KNN, naive Bayes, ...) run only when allowed explicitly, since one fit of them can take
#: longer than a short budget on tens of thousands of rows.
DEFAULT_ALGORITHMS = {
    "classification": ("LightGBM", "XGBoostClassifier", "RandomForest", "ExtremeRandomTrees", "LogisticRegression"),
    "regression": ("LightGBM", "XGBoostRegressor", "RandomForest", "ExtremeRandomTrees", "ElasticNet"),
    "forecasting": ("Naive", "SeasonalNaive", "Average", "SeasonalAverage", "ExponentialSmoothing", "Arima",
                    "LightGBM", "ElasticNet", "ExtremeRandomTrees"),
}

#: Azure's primary metrics per task, the default first.
PRIMARY_METRICS = {
    "classification": ("accuracy", "AUC_weighted", "average_precision_score_weighted", "norm_macro_recall",
                       "precision_score_weighted"),
    "regression": ("spearman_correlation", "normalized_root_mean_squared_error", "r2_score",
                   "normalized_mean_absolute_error"),
    "forecasting": ("normalized_root_mean_squared_error", "spearman_correlation", "r2_score",
                    "normalized_mean_absolute_error"),
}

#: Azure's transformer names that ``featurization.blocked_transformers`` accepts.
TRANSFORMERS = ("TextTargetEncoder", "OneHotEncoder", "CatTargetEncoder", "TfIdf", "WoETargetEncoder",
                "LabelEncoder", "WordEmbedding", "NaiveBayes", "CountVectorizer", "HashOneHotEncoder")


def algorithms_for(task: str) -> tuple[str, ...]:
    """Azure's algorithm names valid for ``task``."""
    return {"classification": CLASSIFICATION_ALGORITHMS, "regression": REGRESSION_ALGORITHMS,
            "forecasting": FORECASTING_ALGORITHMS}[task]


def normalise_algorithm(name: str, task: str) -> str | None:
    """The canonical Azure name for ``name`` (case-insensitive; XGBoost names are interchangeable), or None."""
    key = str(name).replace("_", "").replace(" ", "").lower()
    if key in ("xgboost", "xgboostclassifier", "xgboostregressor"):
        return "XGBoostClassifier" if task == "classification" else "XGBoostRegressor"
    for candidate in algorithms_for(task):
        if candidate.lower() == key:
            return candidate
    return None
