"""The AutoML engine: data preparation, trial evaluation, cost-aware search, ensembles.

Nothing here talks to Prefect or MLflow: the flow (:mod:`prefect_ml.automl.flow`) runs :func:`evaluate_trial` and
:func:`refit_member` as Prefect tasks and passes their futures to :class:`SearchLoop`.

Search policy (after FLAML, https://microsoft.github.io/FLAML/docs/Use-Cases/Task-Oriented-AutoML and Wang et al.,
"FLAML: A Fast and Lightweight AutoML Library", MLSys 2021): every algorithm has its own CFO searcher (FLAML's
cost-frugal local search, started from the cheapest configuration); the next trial goes to the algorithm with the
smallest estimated cost for improvement (untried algorithms first, cheapest first). Evaluation: the given
validation data, else ``n_cross_validations`` folds, else FLAML's rule (cross-validation when
``rows * columns < 10M * budget_hours / 0.9`` and rows < 100 000, 5 folds; otherwise a 10 % holdout).
Ensembles: greedy ensemble selection with replacement (Caruana et al., ICML 2004) over the best trials' validation
predictions, and stacking (a linear meta-learner over the best trials' predictions, scored by cross-validation).
"""

from __future__ import annotations

import functools
import math
import os
import pickle
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from prefect_ml.automl import metrics as M

BASELINE = "Baseline"
#: FLAML's thresholds for choosing cross-validation over a holdout.
SMALL_LARGE_THRES = 10_000_000
CV_HOLDOUT_THRESHOLD = 100_000
DEFAULT_FOLDS = 5
DEFAULT_HOLDOUT = 0.1


@dataclass
class PreparedData:
    """Everything a trial needs, pickled once per job (trials get its path).

    Attributes:
        X: Feature columns of the training (and validation) rows, raw.
        y: Labels encoded ``0..n_classes-1`` (classification) or float targets.
        weights: Sample weights or None.
        folds: ``(train_rows, valid_rows)`` index arrays into X.
        refit_rows: Rows the final model is trained on.
        classes: Original labels in encoding order (classification).
        y_range: Training target max - min (normalises regression errors).
        column_types: Azure column purposes (see :mod:`prefect_ml.automl.featurize`).
        validation: How models are validated, in words (``5-fold cross-validation``...).
        positive: Encoded index of ``positive_label`` (the positive class of the binary metrics) or None.
    """

    task: str
    metric: str
    X: pd.DataFrame
    y: np.ndarray
    weights: np.ndarray | None
    folds: list[tuple[np.ndarray, np.ndarray]]
    refit_rows: np.ndarray
    classes: list[Any] | None
    y_range: float
    column_types: dict[str, str]
    featurization: dict[str, Any]
    validation: str
    forecast: dict[str, Any] | None = None
    seed: int = 0
    positive: int | None = None

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes is not None else 0

    @property
    def valid_rows(self) -> np.ndarray:
        return np.concatenate([v for _, v in self.folds])

    def save(self, path: str | os.PathLike) -> str:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            pickle.dump(self, handle, protocol=pickle.HIGHEST_PROTOCOL)
        return str(path)


@functools.lru_cache(maxsize=4)
def load_prepared(path: str) -> PreparedData:
    """Read the prepared data of a job (cached per process: threads of one worker share it)."""
    with open(path, "rb") as handle:
        return pickle.load(handle)


def encode_labels(y: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Labels -> codes ``0..k-1`` and the original labels, exactly as given (strings stay strings)."""
    values = y.to_numpy()
    classes = sorted(pd.unique(values), key=lambda v: (str(type(v)), v))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in values], dtype=np.int64), [_plain(c) for c in classes]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def choose_folds(task: str, y: np.ndarray, n_rows: int, n_cols: int, *, budget_s: float,
                 n_cross_validations: int | str | None, validation_data_size: float | None, seed: int
                 ) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """The validation scheme for training data without separate validation data."""
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    rows = np.arange(n_rows)
    if isinstance(n_cross_validations, int):
        folds = n_cross_validations
    elif validation_data_size is not None:
        folds = 0
    elif n_rows * n_cols / 0.9 < SMALL_LARGE_THRES * (budget_s / 3600) and n_rows < CV_HOLDOUT_THRESHOLD:
        folds = DEFAULT_FOLDS
    else:
        folds = 0
    stratify = task == "classification"
    if stratify:
        counts = np.bincount(y)
        smallest = counts[counts > 0].min()
        if folds and smallest < folds:
            # A class with fewer rows than folds: stratification is impossible; fall back to plain folds
            # (the guardrail reports it).
            stratify = False
    if folds:
        splitter = (StratifiedKFold(folds, shuffle=True, random_state=seed) if stratify
                    else KFold(folds, shuffle=True, random_state=seed))
        return [(tr, va) for tr, va in splitter.split(rows, y if stratify else None)], f"{folds}-fold cross-validation"
    size = validation_data_size or DEFAULT_HOLDOUT
    strat = y if stratify and np.bincount(y)[np.bincount(y) > 0].min() >= 2 else None
    train, valid = train_test_split(rows, test_size=size, random_state=seed, stratify=strat)
    return [(np.sort(train), np.sort(valid))], f"train/validation split ({size:.0%} held out)"


# -- trials -------------------------------------------------------------------------------------


def build_model(data: PreparedData, algorithm: str, config: dict[str, Any], *, n_jobs: int = 1,
                deadline: float | None = None):
    """An unfitted model (featurization + estimator) and its ``fit`` keyword arguments."""
    from sklearn.pipeline import Pipeline

    if data.task == "forecasting":
        from prefect_ml.automl.forecast import make_forecaster

        return make_forecaster(algorithm, config, data, n_jobs=n_jobs, deadline=deadline), {}
    from prefect_ml.automl.featurize import build_featurizer

    if algorithm == BASELINE:
        from sklearn.dummy import DummyClassifier, DummyRegressor

        estimator = DummyClassifier(strategy="prior") if data.task == "classification" else DummyRegressor()
        return Pipeline([("featurize", build_featurizer(data.column_types, style="tree")), ("model", estimator)]), {}
    from prefect_ml.automl.estimators import get_algorithm

    spec = get_algorithm(algorithm)
    featurizer = build_featurizer(data.column_types, style=spec.style, settings=data.featurization)
    estimator = spec.make(config, data.task, data.n_classes, n_jobs=n_jobs, deadline=deadline, seed=data.seed)
    n_numeric = sum(1 for k in data.column_types.values() if k == "Numeric")
    n_categorical = sum(1 for k in data.column_types.values() if k == "Categorical")
    fit_params = {f"model__{k}": v for k, v in spec.fit_params(n_numeric, n_categorical, deadline).items()}
    return Pipeline([("featurize", featurizer), ("model", estimator)]), fit_params


def _fit(model, fit_params: dict[str, Any], X: pd.DataFrame, y: np.ndarray, w: np.ndarray | None):
    import warnings

    params = dict(fit_params)
    if w is not None and hasattr(model, "steps"):
        from sklearn.utils.validation import has_fit_parameter

        if has_fit_parameter(model.steps[-1][1], "sample_weight"):
            params["model__sample_weight"] = w
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y, **params)
    return model


def predict(model, X: pd.DataFrame, task: str, n_classes: int) -> np.ndarray:
    """Probabilities with one column per class of the training data (classification) or values."""
    if task != "classification":
        return np.asarray(model.predict(X), dtype=float)
    proba = np.asarray(model.predict_proba(X), dtype=float)
    seen = list(getattr(model, "classes_", range(proba.shape[1])))
    if proba.shape[1] == n_classes and seen == list(range(n_classes)):
        return proba
    full = np.zeros((len(X), n_classes))
    for j, c in enumerate(seen):
        full[:, int(c)] = proba[:, j]
    return full


def evaluate_trial(data_path: str, algorithm: str, config: dict[str, Any], *, n_jobs: int = 1,
                   deadline: float | None = None, stop_loss: float | None = None) -> dict[str, Any]:
    """Fit and validate one configuration on every fold.

    Args:
        data_path: The job's :class:`PreparedData` pickle.
        algorithm: Azure algorithm name (or ``Baseline``).
        config: Hyperparameters (FLAML space keys).
        n_jobs: Threads the model may use.
        deadline: ``time.time()`` after which boosting stops and no further fold starts.
        stop_loss: Early termination: after a fold, stop when the running loss exceeds this (a median of
            finished trials).

    Returns:
        ``status`` (``completed``, ``early_terminated``, ``timeout``, ``failed``), ``loss``, ``metrics``,
        ``duration_seconds``, ``fit_seconds`` (mean per fold), ``folds_done``, ``predictions`` (validation
        predictions in :attr:`PreparedData.valid_rows` order; None unless completed) and ``error``.
    """
    data = load_prepared(data_path)
    started = time.time()
    predictions, fit_times, losses = [], [], []
    status, error = "completed", None
    try:
        for k, (train, valid) in enumerate(data.folds):
            model, fit_params = build_model(data, algorithm, config, n_jobs=n_jobs, deadline=deadline)
            t0 = time.time()
            w = data.weights[train] if data.weights is not None else None
            _fit(model, fit_params, data.X.iloc[train], data.y[train], w)
            fit_times.append(time.time() - t0)
            pred = predict(model, data.X.iloc[valid], data.task, data.n_classes)
            predictions.append(pred)
            fold_metric = M.score_predictions(data.task, data.metric, data.y[valid], pred, n_classes=data.n_classes,
                                              y_range=data.y_range, names=(data.metric,),
                                              sample_weight=data.weights[valid] if data.weights is not None
                                              else None)
            losses.append(M.loss_of(data.metric, fold_metric[data.metric]))
            last = k == len(data.folds) - 1
            if not last and stop_loss is not None and np.mean(losses) > stop_loss:
                status = "early_terminated"
                break
            if not last and deadline is not None and time.time() > deadline:
                status = "timeout"
                break
    except Exception as exc:  # noqa: BLE001 - a failing configuration is a result, not a crash
        status, error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
    duration = time.time() - started
    result: dict[str, Any] = {"algorithm": algorithm, "config": config, "status": status, "error": error,
                              "duration_seconds": duration, "fit_seconds": float(np.mean(fit_times)) if fit_times else duration,
                              "folds_done": len(predictions), "predictions": None, "metrics": {}}
    if status == "completed":
        pred = np.concatenate(predictions)
        rows = data.valid_rows
        w = data.weights[rows] if data.weights is not None else None
        result["metrics"] = M.score_predictions(data.task, data.metric, data.y[rows], pred, n_classes=data.n_classes,
                                                y_range=data.y_range, sample_weight=w, positive=data.positive)
        result["loss"] = M.loss_of(data.metric, result["metrics"][data.metric])
        result["predictions"] = pred
    else:
        result["loss"] = float(np.mean(losses)) if losses and status != "failed" else math.inf
    return result


def refit_member(data_path: str, algorithm: str, config: dict[str, Any], *, n_jobs: int = 1):
    """Fit ``algorithm`` with ``config`` on the refit rows (training plus our own validation split)."""
    data = load_prepared(data_path)
    model, fit_params = build_model(data, algorithm, config, n_jobs=n_jobs)
    rows = data.refit_rows
    w = data.weights[rows] if data.weights is not None else None
    return _fit(model, fit_params, data.X.iloc[rows], data.y[rows], w)


# -- search -------------------------------------------------------------------------------------


@dataclass
class AlgorithmState:
    name: str
    cost: float
    searcher: Any = None
    space_size: int = 0
    best_loss: float = math.inf
    best_loss_old: float = math.inf
    best_config: dict[str, Any] | None = None
    total_time: float = 0.0
    time_best_found: float = 0.0
    time_best_found_old: float = 0.0
    trial_time: float = 0.0
    trials: int = 0
    in_flight: int = 0
    failures: int = 0
    exhausted: bool = False
    seen: set = field(default_factory=set)

    @property
    def estimated_cost4improvement(self) -> float:
        """FLAML's estimate of the time this algorithm needs to improve on its best."""
        return max(self.time_best_found - self.time_best_found_old, self.total_time - self.time_best_found,
                   self.trial_time)


class Search:
    """Chooses the next (algorithm, configuration): a FLAML CFO searcher per algorithm, ECI-based selection.

    Args:
        algorithms: Azure names to search.
        spaces: Name -> FLAML-format search space.
        costs: Name -> first-trial cost relative to LightGBM.
        seed: Random seed.
    """

    def __init__(self, algorithms: list[str], spaces: dict[str, dict[str, dict[str, Any]]],
                 costs: dict[str, float], *, seed: int = 0):
        import logging

        from flaml.tune.searcher.blendsearch import CFO

        logging.getLogger("flaml").setLevel(logging.WARNING)

        self.random = random.Random(seed)
        self.states: dict[str, AlgorithmState] = {}
        self.best_loss = math.inf
        self._pending: dict[str, tuple[str, dict[str, Any]]] = {}
        self._counter = 0
        for name in algorithms:
            space = spaces[name]
            domains = {k: v["domain"] for k, v in space.items() if v.get("domain") is not None}
            init = {k: v["init_value"] for k, v in space.items() if "init_value" in v and k in domains}
            low_cost = {k: v["low_cost_init_value"] for k, v in space.items() if "low_cost_init_value" in v}
            cat_cost = {k: v["cat_hp_cost"] for k, v in space.items() if "cat_hp_cost" in v}
            state = AlgorithmState(name=name, cost=costs.get(name, 1.0), space_size=len(domains))
            if domains:
                state.searcher = CFO(metric="loss", mode="min", space=domains, points_to_evaluate=[init],
                                     low_cost_partial_config=low_cost or None, cat_hp_cost=cat_cost or None,
                                     seed=seed + len(self.states), allow_empty_config=True)
            self.states[name] = state

    def _config_for(self, state: AlgorithmState, trial_id: str) -> dict[str, Any] | None:
        if state.searcher is None:
            if state.trials or state.in_flight:
                state.exhausted = True
                return None
            return {}
        for _ in range(5):
            config = state.searcher.suggest(trial_id)
            if config is None:
                return None
            config = {k: v for k, v in config.items() if not isinstance(v, dict)}
            key = repr(sorted(config.items()))
            if key not in state.seen:
                state.seen.add(key)
                return config
            state.searcher.on_trial_complete(trial_id, {"loss": state.best_loss if state.best_loss < math.inf
                                                        else 1e9, "time_total_s": 0.0})
        return None

    def suggest(self, time_left: float, base_time: float) -> tuple[str, str, dict[str, Any]] | None:
        """The next ``(trial_id, algorithm, config)``, or None when nothing fits in ``time_left`` seconds.

        Args:
            time_left: Seconds until the search must stop.
            base_time: Seconds a first LightGBM trial took (scales first-trial cost estimates).
        """
        candidates = [s for s in self.states.values() if not s.exhausted and s.failures < 3]
        if not candidates:
            return None
        untried = [s for s in candidates if s.trials == 0 and s.in_flight == 0]
        if untried:
            order = sorted(untried, key=lambda s: s.cost)
        else:
            scored = []
            for s in candidates:
                if s.trials == 0:
                    continue  # its first trial is running
                expected = max(s.trial_time, 1e-3)
                if expected > time_left:
                    continue
                eci = max(s.estimated_cost4improvement, 1e-6)
                gap = s.best_loss - self.best_loss
                if gap > 0:
                    delta_loss = (s.best_loss_old - s.best_loss) if s.best_loss_old < math.inf else s.best_loss
                    delta_time = (s.total_time - s.time_best_found_old) or 1e-10
                    speed = delta_loss / delta_time if delta_loss > 0 else 0
                    eci = max(2 * gap / speed, eci) if speed else max(eci * 10, eci)
                if s.in_flight:
                    eci *= 1 + s.in_flight
                scored.append((eci, s))
            if not scored:
                return None
            # Sample proportionally to 1 / ECI (FLAML's learner selector), the lowest-ECI learner most often.
            inverse = [1 / e for e, _ in scored]
            pick = self.random.random() * sum(inverse)
            order = []
            for value, (_, s) in zip(inverse, scored):
                pick -= value
                if pick <= 0:
                    order = [s]
                    break
            order = order or [scored[-1][1]]
            order += [s for _, s in sorted(scored, key=lambda t: t[0]) if s not in order]
        for state in order:
            if state.trials == 0 and state.cost * base_time > time_left and state.name != order[0].name:
                continue
            self._counter += 1
            trial_id = f"{state.name}-{self._counter}"
            config = self._config_for(state, trial_id)
            if config is None:
                if state.searcher is not None:
                    state.exhausted = True
                continue
            state.in_flight += 1
            self._pending[trial_id] = (state.name, config)
            return trial_id, state.name, config
        return None

    def report(self, trial_id: str, result: dict[str, Any]) -> None:
        """Tell the algorithm's searcher how a trial went (loss, seconds)."""
        name, _ = self._pending.pop(trial_id)
        state = self.states[name]
        state.in_flight -= 1
        state.trials += 1
        loss = result.get("loss", math.inf)
        duration = float(result.get("duration_seconds", 0.0))
        state.total_time += duration
        state.trial_time = duration
        if result.get("status") == "failed":
            state.failures += 1
        if state.searcher is not None:
            finite = loss if np.isfinite(loss) else 1e9
            state.searcher.on_trial_complete(trial_id, {"loss": finite, "time_total_s": max(duration, 1e-6)},
                                             error=result.get("status") == "failed")
        if result.get("status") == "completed" and loss < state.best_loss:
            state.best_loss_old = state.best_loss if state.best_loss < math.inf else 2 * loss
            state.best_loss = loss
            state.best_config = result.get("config")
            state.time_best_found_old = state.time_best_found
            state.time_best_found = state.total_time
        if result.get("status") == "completed":
            self.best_loss = min(self.best_loss, loss)


# -- ensembles ----------------------------------------------------------------------------------


def _score(data: PreparedData, pred: np.ndarray, *, primary_only: bool = False) -> tuple[float, dict[str, float]]:
    rows = data.valid_rows
    w = data.weights[rows] if data.weights is not None else None
    values = M.score_predictions(data.task, data.metric, data.y[rows], pred, n_classes=data.n_classes,
                                 y_range=data.y_range, sample_weight=w, positive=data.positive,
                                 names=(data.metric,) if primary_only else None)
    return M.loss_of(data.metric, values[data.metric]), values


def distinct_best(trials: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The best completed trials with predictions, one per distinct prediction vector, best first."""
    done = sorted((t for t in trials if t.get("status") == "completed" and t.get("predictions") is not None
                   and t.get("algorithm") != BASELINE), key=lambda t: t["loss"])
    chosen, seen = [], set()
    for trial in done:
        signature = np.round(np.asarray(trial["predictions"], dtype=float)[:50], 6).tobytes()
        if signature in seen:
            continue
        seen.add(signature)
        chosen.append(trial)
        if len(chosen) == limit:
            break
    return chosen


def greedy_ensemble(data: PreparedData, trials: list[dict[str, Any]], *, size: int = 15, iterations: int = 25
                    ) -> dict[str, Any] | None:
    """Greedy ensemble selection with replacement (Caruana et al. 2004) over the best ``size`` trials.

    Returns:
        ``{"members": [trial...], "weights": [...], "loss", "metrics"}`` or None with fewer than 2 members used.
    """
    pool = distinct_best(trials, size)
    if len(pool) < 2:
        return None
    preds = [np.asarray(t["predictions"], dtype=float) for t in pool]
    counts = [0] * len(pool)
    current = None
    best_loss, best_counts = math.inf, None
    for _ in range(iterations):
        step_best, step_index = math.inf, None
        n = sum(counts)
        for i, p in enumerate(preds):
            candidate = p if current is None else (current * n + p) / (n + 1)
            loss, _ = _score(data, candidate, primary_only=True)
            if loss < step_best - 1e-12:
                step_best, step_index = loss, i
        counts[step_index] += 1
        current = preds[step_index] if current is None else (current * n + preds[step_index]) / (n + 1)
        if step_best < best_loss - 1e-12:
            best_loss, best_counts = step_best, list(counts)
    used = [i for i, c in enumerate(best_counts) if c]
    if len(used) < 2:
        return None
    total = sum(best_counts)
    weights = [best_counts[i] / total for i in used]
    members = [pool[i] for i in used]
    combined = sum(w * preds[i] for w, i in zip(weights, used))
    loss, values = _score(data, combined)
    return {"members": members, "weights": weights, "loss": loss, "metrics": values, "predictions": combined}


def stack_ensemble(data: PreparedData, trials: list[dict[str, Any]], *, size: int = 5) -> dict[str, Any] | None:
    """Stacking: a linear meta-learner over the best ``size`` trials' validation predictions.

    The meta-learner (logistic regression, or non-negative linear regression) is scored by 5-fold
    cross-validation over the validation predictions, so its score is comparable with the trials'.
    """
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

    from prefect_ml.automl.models import stack_features

    pool = distinct_best(trials, size)
    if len(pool) < 2:
        return None
    rows = data.valid_rows
    y = data.y[rows]
    features = stack_features([np.asarray(t["predictions"], dtype=float) for t in pool], data.task)
    if data.task == "classification":
        meta = LogisticRegression(C=1.0, max_iter=1000)
        counts = np.bincount(y)
        folds = min(5, counts[counts > 0].min())
        if folds < 2 or len(np.unique(y)) < data.n_classes:
            return None
        cv = StratifiedKFold(folds, shuffle=True, random_state=data.seed)
        inner = cross_val_predict(meta, features, y, cv=cv, method="predict_proba")
    else:
        meta = LinearRegression(positive=True)
        cv = KFold(min(5, len(y)), shuffle=True, random_state=data.seed)
        inner = cross_val_predict(meta, features, y, cv=cv)
    loss, values = _score(data, inner)
    meta.fit(features, y)
    return {"members": pool, "meta": meta, "loss": loss, "metrics": values, "predictions": inner}


def time_to_refit(data: PreparedData, trial: dict[str, Any]) -> float:
    """Estimated seconds to refit a trial's configuration on the refit rows."""
    train_rows = max(1, len(data.folds[0][0]))
    return float(trial.get("fit_seconds", 0.0)) * len(data.refit_rows) / train_rows


class SearchLoop:
    """Runs trials through ``submit`` until the budget, ``max_trials`` or ``exit_score`` ends the search.

    Args:
        data: The prepared data (its path is what trials get).
        data_path: Where ``data`` is pickled.
        algorithms: Azure names to search.
        submit: ``submit(trial_id, algorithm, config, n_jobs, deadline, stop_loss) -> future`` (a Prefect future).
        budget_s: Seconds for the whole job from ``started``.
        started: ``time.time()`` when the job's clock started.
        max_trials: Most trials (the baseline included).
        max_concurrent: Trials at once.
        n_jobs: Threads per trial.
        trial_timeout_s: Longest time one trial may take.
        early_termination: Stop trials worse than the median (after 5 finished trials).
        exit_score: Stop once the primary metric reaches this value.
        on_result: Called with each finished trial's result (tracking, logging).
    """

    def __init__(self, data: PreparedData, data_path: str, algorithms: list[str], submit: Callable[..., Any], *,
                 budget_s: float, started: float, max_trials: int = 1000, max_concurrent: int = 1, n_jobs: int = 1,
                 trial_timeout_s: float | None = None, early_termination: bool = True,
                 exit_score: float | None = None, on_result: Callable[[dict[str, Any]], None] | None = None):
        self.data, self.data_path, self.submit = data, data_path, submit
        self.algorithms = algorithms
        self.deadline = started + budget_s
        self.budget_s = budget_s
        self.max_trials, self.max_concurrent, self.n_jobs = max_trials, max_concurrent, n_jobs
        self.trial_timeout_s = trial_timeout_s
        self.early_termination, self.exit_score = early_termination, exit_score
        self.on_result = on_result or (lambda result: None)
        self.results: list[dict[str, Any]] = []
        self.stop_reason = ""

    def _spaces(self) -> tuple[dict[str, Any], dict[str, float]]:
        spaces, costs = {}, {}
        n_rows = len(self.data.folds[0][0])
        n_cols = max(1, len(self.data.column_types))
        for name in self.algorithms:
            if self.data.task == "forecasting":
                from prefect_ml.automl.forecast import algorithm_space

                spaces[name], costs[name] = algorithm_space(name, self.data)
            else:
                from prefect_ml.automl.estimators import get_algorithm

                spec = get_algorithm(name)
                spaces[name] = spec.search_space((n_rows, n_cols), self.data.task, self.data.n_classes)
                costs[name] = spec.cost
        return spaces, costs

    def _trial_deadline(self) -> float:
        deadline = self.deadline
        if self.trial_timeout_s:
            deadline = min(deadline, time.time() + self.trial_timeout_s)
        return deadline

    def _stop_loss(self) -> float | None:
        if not self.early_termination:
            return None
        losses = [r["loss"] for r in self.results if r["status"] == "completed" and r["algorithm"] != BASELINE]
        return float(np.median(losses)) if len(losses) >= 5 else None

    def _record(self, trial_id: str, result: dict[str, Any]) -> None:
        result["trial_id"] = trial_id
        result["iteration"] = len(self.results)
        self.results.append(result)
        self.on_result(result)

    def _reached_exit_score(self) -> bool:
        if self.exit_score is None:
            return False
        best = min((r["loss"] for r in self.results if r["status"] == "completed"), default=math.inf)
        return best <= M.loss_of(self.data.metric, self.exit_score)

    def run(self) -> list[dict[str, Any]]:
        """Run the baseline, then the search; return every trial's result (in finishing order)."""
        import queue

        finished: queue.Queue = queue.Queue()
        baseline = self.submit("Baseline-0", BASELINE, {}, 1, None, None).result()
        self._record("Baseline-0", baseline)
        spaces, costs = self._spaces()
        search = Search(self.algorithms, spaces, costs, seed=self.data.seed)
        in_flight: dict[Any, str] = {}
        base_time = max(0.05, baseline["duration_seconds"] * 2)
        while True:
            now = time.time()
            time_left = self.deadline - now
            if len(self.results) + len(in_flight) >= self.max_trials:
                self.stop_reason = self.stop_reason or "max_trials reached"
            elif time_left <= 0:
                self.stop_reason = "timeout reached"
            elif self._reached_exit_score():
                self.stop_reason = "exit_score reached"
            elif len(in_flight) < self.max_concurrent:
                suggestion = search.suggest(time_left, base_time)
                if suggestion is not None:
                    trial_id, algorithm, config = suggestion
                    future = self.submit(trial_id, algorithm, config, self.n_jobs, self._trial_deadline(),
                                         self._stop_loss())
                    in_flight[future] = trial_id
                    future.add_done_callback(finished.put)
                    continue
                if not in_flight:
                    self.stop_reason = "no algorithm fits in the time left"
            if not in_flight:
                break
            timeout = max(0.01, self.deadline - time.time()) if not self.stop_reason else None
            try:
                done = finished.get(timeout=timeout)
            except queue.Empty:
                continue
            trial_id = in_flight.pop(done)
            try:
                result = done.result()
            except Exception as exc:  # noqa: BLE001 - a crashed task run is a failed trial
                name = trial_id.rsplit("-", 1)[0]
                result = {"algorithm": name, "config": {}, "status": "failed", "error": str(exc)[:2000],
                          "loss": math.inf, "duration_seconds": 0.0, "fit_seconds": 0.0, "metrics": {},
                          "predictions": None, "folds_done": 0}
            search.report(trial_id, result)
            if result["algorithm"] == "LightGBM" and base_time == max(0.05, baseline["duration_seconds"] * 2):
                base_time = max(base_time, result["duration_seconds"])
            self._record(trial_id, result)
        return self.results
