"""The model behind each Azure algorithm name, its hyperparameter search space and its relative cost.

Search spaces, starting points and relative costs come from FLAML's estimators (``flaml.automl.model``), which
were tuned for cost-frugal search (https://microsoft.github.io/FLAML/docs/Use-Cases/Task-Oriented-AutoML);
the few Azure algorithms FLAML has no estimator for get a small space here. The fitted objects are plain
scikit-learn, LightGBM and XGBoost estimators, so registered models need neither FLAML nor prefect-ml's search.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from xgboost.callback import TrainingCallback

#: Azure name -> (FLAML estimator class name or None, featurizer style, classification-only/regression-only flag)
_TABLE: dict[str, tuple[str | None, str]] = {
    "LightGBM": ("LGBMEstimator", "tree"),
    "XGBoostClassifier": ("XGBoostSklearnEstimator", "tree"),
    "XGBoostRegressor": ("XGBoostSklearnEstimator", "tree"),
    "RandomForest": ("RandomForestEstimator", "tree"),
    "ExtremeRandomTrees": ("ExtraTreesEstimator", "tree"),
    "LogisticRegression": ("LRL2Classifier", "linear"),
    "KNN": ("KNeighborsEstimator", "linear"),
    "LinearSVM": ("SVCEstimator", "linear"),
    "SGD": ("SGDEstimator", "linear"),
    "ElasticNet": ("ElasticNetEstimator", "linear"),
    "LassoLars": ("LassoLarsEstimator", "linear"),
    "SVM": (None, "linear"),
    "DecisionTree": (None, "tree"),
    "GradientBoosting": (None, "tree"),
    "MultinomialNaiveBayes": (None, "nonnegative"),
    "BernoulliNaiveBayes": (None, "linear"),
}

#: Relative cost (LightGBM = 1) of the algorithms FLAML does not cover.
_OWN_COST = {"SVM": 50.0, "DecisionTree": 0.5, "GradientBoosting": 3.0, "MultinomialNaiveBayes": 0.2,
             "BernoulliNaiveBayes": 0.2}


def flaml_task(task: str, n_classes: int):
    """FLAML's task object for a prefect-ml task (``binary``/``multiclass``/``regression``)."""
    from flaml.automl.task.factory import task_factory

    if task == "classification":
        return task_factory("binary" if n_classes <= 2 else "multiclass")
    return task_factory("regression")


@dataclass
class Algorithm:
    """One Azure algorithm: how to search it and build it.

    Attributes:
        name: Azure's name.
        style: Featurizer style (see :func:`prefect_ml.automl.featurize.build_featurizer`).
        cost: Cost of a first trial relative to LightGBM's (FLAML's ``cost_relative2lgbm``).
    """

    name: str
    style: str
    cost: float
    _flaml: str | None = None

    def flaml_class(self):
        if self._flaml is None:
            return None
        from flaml.automl import model

        return getattr(model, self._flaml)

    def search_space(self, data_size: tuple[int, int], task: str, n_classes: int) -> dict[str, dict[str, Any]]:
        """FLAML-format space: name -> ``{"domain", "init_value", "low_cost_init_value"}``."""
        cls = self.flaml_class()
        if cls is not None:
            return cls.search_space(data_size=data_size, task=flaml_task(task, n_classes))
        from flaml import tune

        if self.name == "SVM":
            return {"C": {"domain": tune.loguniform(1e-2, 1e3), "init_value": 1.0},
                    "gamma": {"domain": tune.loguniform(1e-4, 1.0), "init_value": 1.0 / max(1, data_size[1])}}
        if self.name == "DecisionTree":
            return {"max_leaf_nodes": {"domain": tune.lograndint(4, max(5, min(32768, data_size[0] // 2))),
                                       "init_value": 4, "low_cost_init_value": 4},
                    "min_samples_leaf": {"domain": tune.lograndint(1, 64), "init_value": 1},
                    "max_features": {"domain": tune.uniform(0.1, 1.0), "init_value": 1.0}}
        if self.name == "GradientBoosting":
            return {"max_iter": {"domain": tune.lograndint(4, 2048), "init_value": 10, "low_cost_init_value": 4},
                    "max_leaf_nodes": {"domain": tune.lograndint(4, 256), "init_value": 4, "low_cost_init_value": 4},
                    "learning_rate": {"domain": tune.loguniform(1e-3, 1.0), "init_value": 0.1},
                    "min_samples_leaf": {"domain": tune.lograndint(2, 128), "init_value": 20},
                    "l2_regularization": {"domain": tune.loguniform(1e-10, 10.0), "init_value": 1e-10}}
        if self.name in ("MultinomialNaiveBayes", "BernoulliNaiveBayes"):
            return {"alpha": {"domain": tune.loguniform(1e-3, 10.0), "init_value": 1.0}}
        raise KeyError(self.name)

    def make(self, config: dict[str, Any], task: str, n_classes: int, *, n_jobs: int = 1,
             deadline: float | None = None, seed: int = 0):
        """A fresh, unfitted estimator for ``config`` (classifiers always offer ``predict_proba``)."""
        cls = self.flaml_class()
        classification = task == "classification"
        if cls is not None:
            flaml_est = cls(task=flaml_task(task, n_classes), n_jobs=n_jobs, **config)
            params = dict(flaml_est.params)
            estimator_class = flaml_est.estimator_class
            if self.name.startswith("XGBoost") and deadline is not None:
                params["callbacks"] = [XGBoostDeadline(deadline)]
            if self.name in ("RandomForest", "ExtremeRandomTrees", "KNN", "SGD") and "n_jobs" in _init_params(
                    estimator_class):
                params["n_jobs"] = n_jobs
            if self.name in ("ElasticNet", "LassoLars"):
                params.pop("n_jobs", None)
            estimator = estimator_class(**{k: v for k, v in params.items() if k in _init_params(estimator_class)})
        else:
            estimator = self._make_own(config, classification, n_jobs, seed)
        if classification and not _has_proba(estimator):
            from sklearn.calibration import CalibratedClassifierCV

            estimator = CalibratedClassifierCV(estimator, cv=3)
        return estimator

    def _make_own(self, config: dict[str, Any], classification: bool, n_jobs: int, seed: int):
        if self.name == "SVM":
            from sklearn.svm import SVC, SVR

            return SVC(probability=True, random_state=seed, **config) if classification else SVR(**config)
        if self.name == "DecisionTree":
            from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

            return (DecisionTreeClassifier if classification else DecisionTreeRegressor)(random_state=seed, **config)
        if self.name == "GradientBoosting":
            from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

            cls = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
            return cls(random_state=seed, early_stopping=False, **config)
        if self.name == "MultinomialNaiveBayes":
            from sklearn.naive_bayes import MultinomialNB

            return MultinomialNB(**config)
        if self.name == "BernoulliNaiveBayes":
            from sklearn.naive_bayes import BernoulliNB

            return BernoulliNB(binarize=0.0, **config)
        raise KeyError(self.name)

    def fit_params(self, n_categorical_start: int, n_categorical: int, deadline: float | None) -> dict[str, Any]:
        """Extra ``fit`` arguments of the model step (LightGBM's categorical columns and deadline callback)."""
        if self.name != "LightGBM":
            return {}
        params: dict[str, Any] = {}
        if n_categorical:
            params["categorical_feature"] = list(range(n_categorical_start, n_categorical_start + n_categorical))
        if deadline is not None:
            params["callbacks"] = [LightGBMDeadline(deadline)]
        return params


class _Everything(set):
    def __contains__(self, item) -> bool:
        return True


def _init_params(cls) -> set[str]:
    """Constructor parameter names (everything when it takes ``**kwargs``, as LightGBM's do)."""
    import inspect

    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
        return _Everything()
    return set(parameters)


def _has_proba(estimator) -> bool:
    try:
        return hasattr(estimator, "predict_proba")
    except Exception:  # noqa: BLE001 - available_if raising means no
        return False


class LightGBMDeadline:
    """LightGBM callback that stops boosting at a wall-clock deadline (``time.time()`` seconds)."""

    order = 30

    def __init__(self, deadline: float):
        self.deadline = deadline

    def __call__(self, env) -> None:
        if time.time() > self.deadline:
            from lightgbm.callback import EarlyStopException

            raise EarlyStopException(env.iteration, env.evaluation_result_list or [])


class XGBoostDeadline(TrainingCallback):
    """XGBoost callback that stops boosting at a wall-clock deadline (``time.time()`` seconds)."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline

    def after_iteration(self, model, epoch, evals_log) -> bool:
        return time.time() > self.deadline


def get_algorithm(name: str) -> Algorithm:
    """The :class:`Algorithm` for an Azure name (tabular algorithms only).

    Raises:
        KeyError: Not a tabular algorithm (time-series algorithms live in :mod:`prefect_ml.automl.forecast`).
    """
    flaml_name, style = _TABLE[name]
    if flaml_name is not None:
        from flaml.automl import model

        cost = float(getattr(model, flaml_name).cost_relative2lgbm())
    else:
        cost = _OWN_COST[name]
    return Algorithm(name=name, style=style, cost=cost, _flaml=flaml_name)
