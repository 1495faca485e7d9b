"""The model an AutoML job registers: one pipeline, a voting ensemble or a stacking ensemble.

Every member is a fitted scikit-learn Pipeline (featurization + estimator) that takes the raw columns, so the
registered model does too. Classifiers return the labels exactly as they were in the training data (strings such
as ``"true"``/``"false"`` stay strings).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator


class AutoMLModel(BaseEstimator):
    """A fitted AutoML model.

    Attributes:
        task: ``classification``, ``regression`` or ``forecasting``.
        members: Fitted pipelines; each predicts encoded class probabilities (classification) or values.
        weights: Voting weights of the members, summing to 1 (shape (n_members,)).
        meta: For a stacking ensemble, the fitted meta-learner over the members' predictions; else None.
        classes_: The original class labels (classification), in the encoding's order.
        kind: ``single``, ``voting`` or ``stacking``.
        description: The members' algorithms, e.g. ``VotingEnsemble(LightGBM x0.6, RandomForest x0.4)``.
    """

    def __init__(self, task: str, members: list[Any], weights: list[float] | None = None, meta: Any = None,
                 classes: Any = None, kind: str = "single", description: str = ""):
        self.task = task
        self.members = members
        self.weights = weights
        self.meta = meta
        self.classes = classes
        self.kind = kind
        self.description = description

    def fit(self, X, y=None):
        """Not supported: an AutoMLModel is fitted by its AutoML job (run the job again to retrain)."""
        raise NotImplementedError("an AutoMLModel is fitted by an AutoML job; run the job again to retrain it")

    def __sklearn_is_fitted__(self) -> bool:
        return True

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.classes, dtype=object) if self.classes is not None else None

    def _member_predictions(self, X) -> list[np.ndarray]:
        if self.task == "classification":
            return [m.predict_proba(X) for m in self.members]
        return [np.asarray(m.predict(X), dtype=float) for m in self.members]

    def _combined(self, X) -> np.ndarray:
        predictions = self._member_predictions(X)
        if self.meta is not None:
            features = stack_features(predictions, self.task)
            if self.task == "classification":
                return self.meta.predict_proba(features)
            return self.meta.predict(features)
        weights = self.weights or [1.0 / len(predictions)] * len(predictions)
        return sum(w * p for w, p in zip(weights, predictions))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_rows, n_classes), columns in :attr:`classes_` order."""
        if self.task != "classification":
            raise AttributeError("predict_proba is only available for classification models")
        return self._combined(X)

    def predict(self, X) -> np.ndarray:
        """Labels (classification, as given in the training data) or values, shape (n_rows,)."""
        combined = self._combined(X)
        if self.task == "classification":
            labels = self.classes_[np.asarray(combined).argmax(axis=1)]
            return _native(labels)
        return np.asarray(combined, dtype=float)


def _native(labels: np.ndarray) -> np.ndarray:
    """Labels as a numpy array of their own type (strings stay strings, ints ints)."""
    kinds = {type(v) for v in labels}
    if kinds <= {str}:
        return labels.astype(str)
    if kinds and all(issubclass(k, (int, np.integer)) and not issubclass(k, (bool, np.bool_)) for k in kinds):
        return labels.astype(np.int64)
    if kinds and all(issubclass(k, (float, np.floating)) for k in kinds):
        return labels.astype(float)
    return labels


def stack_features(predictions: list[np.ndarray], task: str) -> np.ndarray:
    """Meta-learner features: the members' predictions side by side (for binary tasks, P(class 1) only)."""
    columns = []
    for p in predictions:
        p = np.asarray(p, dtype=float)
        if task == "classification":
            columns.append(p[:, 1:] if p.shape[1] == 2 else p)
        else:
            columns.append(p.reshape(-1, 1))
    return np.hstack(columns)
