"""Azure AutoML's metrics, computed with scikit-learn and SciPy.

Definitions: https://learn.microsoft.com/azure/machine-learning/how-to-understand-automated-ml
(classification: weighted averages over classes, ``norm_macro_recall = (macro recall - R) / (1 - R)`` with
``R = 1 / n_classes``; regression and forecasting: errors normalised by the range of the training target,
``normalized_root_mean_squared_error = RMSE / (max(y) - min(y))``).

Binary metrics (``AUC_binary``, ``average_precision_score_binary``, ``precision_score_binary``,
``recall_score_binary``, ``f1_score_binary``) treat one class as positive: ``positive_label`` when the job sets
it (also for more than two classes: that class against the rest), else, for two classes, the second class in the
label encoding's order, as Azure does
(https://learn.microsoft.com/azure/machine-learning/how-to-understand-automated-ml#binary-vs-multiclass-classification-metrics).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Metrics where smaller is better.
MINIMIZE = frozenset({"normalized_root_mean_squared_error", "normalized_mean_absolute_error",
                      "root_mean_squared_error", "mean_absolute_error", "log_loss"})

CLASSIFICATION_REPORT = ("accuracy", "AUC_weighted", "average_precision_score_weighted", "norm_macro_recall",
                         "precision_score_weighted", "recall_score_weighted", "f1_score_weighted", "log_loss")
BINARY_REPORT = ("AUC_binary", "average_precision_score_binary", "precision_score_binary", "recall_score_binary",
                 "f1_score_binary")
REGRESSION_REPORT = ("r2_score", "spearman_correlation", "normalized_root_mean_squared_error",
                     "normalized_mean_absolute_error", "root_mean_squared_error", "mean_absolute_error")


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, n_classes: int, *,
                           sample_weight: np.ndarray | None = None, names: tuple[str, ...] = CLASSIFICATION_REPORT,
                           positive: int | None = None) -> dict[str, float]:
    """Classification metrics.

    Args:
        y_true: Encoded labels, shape (n,), values in ``range(n_classes)``.
        proba: Class probabilities, shape (n, n_classes).
        n_classes: Number of classes of the training data.
        sample_weight: Optional weights, shape (n,).
        names: Metrics to compute (binary ones, see :data:`BINARY_REPORT`, only with a positive class).
        positive: Encoded index of the positive class for the binary metrics (default: 1 with two classes;
            with more classes, binary metrics need it).

    Returns:
        Metric name -> value (NaN when undefined, e.g. AUC with one class present).
    """
    from sklearn import metrics as m

    y_pred = np.asarray(proba).argmax(axis=1)
    labels = list(range(n_classes))
    out: dict[str, float] = {}
    w = sample_weight
    if positive is None and n_classes == 2:
        positive = 1
    for name in names:
        try:
            if name in BINARY_REPORT:
                if positive is None:
                    continue
                value = _binary_metric(name, np.asarray(y_true) == positive, np.asarray(proba)[:, positive],
                                       y_pred == positive, w)
            elif name == "accuracy":
                value = m.accuracy_score(y_true, y_pred, sample_weight=w)
            elif name == "AUC_weighted":
                value = _auc_weighted(y_true, proba, labels, w)
            elif name == "average_precision_score_weighted":
                onehot = np.eye(n_classes)[y_true]
                value = m.average_precision_score(onehot, proba, average="weighted", sample_weight=w)
            elif name == "norm_macro_recall":
                recall = m.recall_score(y_true, y_pred, labels=labels, average="macro", sample_weight=w,
                                        zero_division=0)
                chance = 1.0 / n_classes
                value = max(0.0, (recall - chance) / (1 - chance))
            elif name == "precision_score_weighted":
                value = m.precision_score(y_true, y_pred, labels=labels, average="weighted", sample_weight=w,
                                          zero_division=0)
            elif name == "recall_score_weighted":
                value = m.recall_score(y_true, y_pred, labels=labels, average="weighted", sample_weight=w,
                                       zero_division=0)
            elif name == "f1_score_weighted":
                value = m.f1_score(y_true, y_pred, labels=labels, average="weighted", sample_weight=w, zero_division=0)
            elif name == "log_loss":
                value = m.log_loss(y_true, np.clip(proba, 1e-15, 1), labels=labels, sample_weight=w)
            else:
                continue
        except ValueError:
            value = math.nan
        out[name] = float(value)
    return out


def _binary_metric(name: str, is_positive: np.ndarray, score: np.ndarray, predicted_positive: np.ndarray, w) -> float:
    """One binary metric: the positive class against the rest (scores: its probability)."""
    from sklearn import metrics as m

    if name == "AUC_binary":
        return m.roc_auc_score(is_positive, score, sample_weight=w) if 0 < is_positive.sum() < len(is_positive) \
            else math.nan
    if name == "average_precision_score_binary":
        return m.average_precision_score(is_positive, score, sample_weight=w) if is_positive.any() else math.nan
    scorer = {"precision_score_binary": m.precision_score, "recall_score_binary": m.recall_score,
              "f1_score_binary": m.f1_score}[name]
    return scorer(is_positive, predicted_positive, sample_weight=w, zero_division=0)


def _auc_weighted(y_true, proba, labels, w) -> float:
    from sklearn.metrics import roc_auc_score

    present = np.unique(y_true)
    if len(present) < 2:
        return math.nan
    if len(labels) == 2:
        return roc_auc_score(y_true, proba[:, 1], sample_weight=w)
    # One-vs-rest per class present, weighted by support (Azure's AUC_weighted).
    total, weight_sum = 0.0, 0.0
    for c in present:
        support = float(np.sum((y_true == c) * (w if w is not None else 1)))
        total += support * roc_auc_score(y_true == c, proba[:, c], sample_weight=w)
        weight_sum += support
    return total / weight_sum


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_range: float, *,
                       sample_weight: np.ndarray | None = None, names: tuple[str, ...] = REGRESSION_REPORT
                       ) -> dict[str, float]:
    """Regression (and forecasting) metrics; errors are normalised by ``y_range`` (training target max - min)."""
    from scipy.stats import spearmanr
    from sklearn import metrics as m

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    y_range = y_range if y_range and y_range > 0 else 1.0
    out: dict[str, float] = {}
    for name in names:
        if name == "r2_score":
            value = m.r2_score(y_true, y_pred, sample_weight=sample_weight) if len(y_true) > 1 else math.nan
        elif name == "spearman_correlation":
            value = spearmanr(y_true, y_pred).statistic if len(y_true) > 1 and np.std(y_pred) > 0 else 0.0
        elif name in ("normalized_root_mean_squared_error", "root_mean_squared_error"):
            value = math.sqrt(m.mean_squared_error(y_true, y_pred, sample_weight=sample_weight))
            value = value / y_range if name.startswith("normalized") else value
        elif name in ("normalized_mean_absolute_error", "mean_absolute_error"):
            value = m.mean_absolute_error(y_true, y_pred, sample_weight=sample_weight)
            value = value / y_range if name.startswith("normalized") else value
        else:
            continue
        out[name] = float(value) if value is not None else math.nan
    return out


def loss_of(metric: str, value: float) -> float:
    """The loss the search minimises: the value for error metrics, ``1 - value`` for scores (NaN -> 1e9)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 1e9
    return float(value) if metric in MINIMIZE else 1.0 - float(value)


def value_of(metric: str, loss: float) -> float:
    """Inverse of :func:`loss_of`."""
    return float(loss) if metric in MINIMIZE else 1.0 - float(loss)


def score_predictions(task: str, metric: str, y_true: np.ndarray, pred: np.ndarray, *, n_classes: int = 0,
                      y_range: float = 1.0, sample_weight: np.ndarray | None = None, names: Any = None,
                      positive: int | None = None) -> dict[str, float]:
    """All report metrics (and ``metric``) for predictions ``pred`` (probabilities for classification).

    ``positive`` is the encoded positive class of the binary metrics (see :func:`classification_metrics`).
    """
    if task == "classification":
        wanted = tuple(names or CLASSIFICATION_REPORT + BINARY_REPORT)
        if metric not in wanted:
            wanted = (metric,) + wanted
        return classification_metrics(y_true, pred, n_classes, sample_weight=sample_weight, names=wanted,
                                      positive=positive)
    wanted = tuple(names or REGRESSION_REPORT)
    if metric not in wanted:
        wanted = (metric,) + wanted
    return regression_metrics(y_true, pred, y_range, sample_weight=sample_weight, names=wanted)
