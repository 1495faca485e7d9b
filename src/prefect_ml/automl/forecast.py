"""Forecasting: rolling-origin validation, one or many series, statistical and regression forecasters.

Implements the forecasting part of https://learn.microsoft.com/azure/machine-learning/reference-automated-ml-forecasting
and https://learn.microsoft.com/azure/machine-learning/how-to-auto-train-forecast:

- Validation is rolling-origin: ``n_cross_validations`` origins (default 3), ``cv_step_size`` steps apart (default
  the horizon); each fold trains on everything before its origin and scores the next ``forecast_horizon`` steps.
- Time-series algorithms (Naive, SeasonalNaive, Average, SeasonalAverage, ExponentialSmoothing, Arima, AutoArima)
  are fitted per series with statsmodels where a model is needed.
- Regression algorithms (LightGBM, ElasticNet, ...) learn the change from the last value known at the forecast
  origin from target lags (``target_lags``), a rolling mean (``target_rolling_window_size``), calendar parts and the
  series id; one model serves every series and every step of the horizon (the direct strategy).
- With ``country_or_region_for_holidays`` (an ISO 3166 code such as ``US`` or ``DE``), regression forecasters also
  get a ``holidays`` feature: the number of public holidays of that country in each row's period (0/1 for daily
  data, the count per week, month or quarter for coarser data), from the ``holidays`` package.
- Metrics are Azure's, normalised by the range of the training target.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from prefect_ml.exceptions import Problem, ValidationError

STATISTICAL = ("Naive", "SeasonalNaive", "Average", "SeasonalAverage", "ExponentialSmoothing", "Arima", "AutoArima")
_COST = {"Naive": 0.05, "SeasonalNaive": 0.05, "Average": 0.05, "SeasonalAverage": 0.05, "ExponentialSmoothing": 0.5,
         "Arima": 2.0, "AutoArima": 6.0}
_SEASON_BY_FREQ = {"h": 24, "H": 24, "D": 7, "B": 5, "W": 52, "M": 12, "MS": 12, "ME": 12, "Q": 4, "QS": 4, "QE": 4}
SERIES_KEY = "__series__"


def _season_from_freq(freq: str | None) -> int:
    if not freq:
        return 1
    base = "".join(ch for ch in freq if ch.isalpha()).split("-")[0]
    for key in (base, base.rstrip("S"), base[:1]):
        if key in _SEASON_BY_FREQ:
            return _SEASON_BY_FREQ[key]
    return 1


@functools.lru_cache(maxsize=32)
def _holiday_dates(country: str, first_year: int, last_year: int) -> np.ndarray:
    """Sorted public holiday dates (``datetime64[D]``) of ``country`` in the given years (``holidays`` package)."""
    import holidays

    calendar = holidays.country_holidays(country, years=range(first_year, last_year + 1))
    return np.array(sorted(calendar.keys()), dtype="datetime64[D]")


def check_holiday_country(country: str) -> str:
    """The ISO 3166 code ``country`` as the ``holidays`` package knows it (upper case).

    Raises:
        MissingDependencyError: The ``holidays`` package (the ``automl`` extra) is not installed.
        ValidationError: ``holidays`` has no calendar for the code (the message suggests close ones).
    """
    try:
        import holidays
    except ImportError:
        from prefect_ml.exceptions import MissingDependencyError

        raise MissingDependencyError("forecasting.country_or_region_for_holidays needs the holidays package: "
                                     "pip install 'prefect-ml[automl]'") from None
    from prefect_ml.specs._base import suggest

    code = str(country).strip().upper()
    supported = sorted(holidays.list_supported_countries())
    if code not in supported:
        raise ValidationError([Problem("forecasting.country_or_region_for_holidays",
                                       "is not an ISO 3166 country/region code with a holiday calendar"
                                       f"{suggest(code, supported)}; e.g. US, GB, DE, FR, IN, JP", country)],
                              title="Invalid AutoML job")
    return code


def holiday_counts(times: Any, freq: str, country: str) -> np.ndarray:
    """Public holidays of ``country`` in the period that starts at each time.

    Args:
        times: Timestamps, shape (n,).
        freq: pandas offset alias of the series (the period of a row is ``[t, t + freq)``, at least its day).
        country: ISO 3166 code (see :func:`check_holiday_country`).

    Returns:
        Counts, shape (n,): 0/1 for daily or finer data, the number of holidays in the week/month/quarter/year
        otherwise.
    """
    t = pd.DatetimeIndex(pd.to_datetime(times))
    if len(t) == 0:
        return np.zeros(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ends = t + pd.tseries.frequencies.to_offset(freq)
    start_days = t.normalize().to_numpy().astype("datetime64[D]")
    end_days = np.maximum(ends.normalize().to_numpy().astype("datetime64[D]"), start_days + np.timedelta64(1, "D"))
    dates = _holiday_dates(country, int(t.min().year), int(ends.max().year))
    return (np.searchsorted(dates, end_days, "left") - np.searchsorted(dates, start_days, "left")).astype(float)


def prepare_forecast(spec, frame: pd.DataFrame, *, featurization: dict[str, Any]):
    """Guardrails and :class:`~prefect_ml.automl.engine.PreparedData` for a forecasting job.

    Raises:
        ValidationError: Missing columns, an unparseable time column, too little history for one fold or an
            unknown ``country_or_region_for_holidays``.
    """
    from prefect_ml.automl.engine import PreparedData
    from prefect_ml.automl.prepare import check_columns, guardrail

    fs = spec.forecasting
    target, time_col, ids = spec.target_column_name, fs.time_column_name, fs.series_columns()
    check_columns(frame, {"target_column_name": target, "forecasting.time_column_name": time_col,
                          **{f"forecasting.time_series_id_column_names[{i}]": c for i, c in enumerate(ids)}}, "training")
    rails = []
    frame = frame.copy()
    frame[time_col] = pd.to_datetime(frame[time_col], errors="coerce")
    if frame[time_col].isna().all():
        raise ValidationError([Problem("forecasting.time_column_name", "no value of the column parses as a date/time",
                                       time_col)], title="Invalid AutoML data")
    frame[target] = pd.to_numeric(frame[target], errors="coerce")
    missing = int(frame[target].isna().sum())
    if fs.target_aggregate_function:
        keys = ids + [time_col]
        frame = frame.groupby(keys, as_index=False).agg({target: fs.target_aggregate_function})
    frame = frame.sort_values(ids + [time_col]).reset_index(drop=True)
    if missing:
        # Azure imputes missing target values in time series by carrying the last value forward.
        frame[target] = frame.groupby(ids)[target].ffill().bfill() if ids else frame[target].ffill().bfill()
        rails.append(guardrail("Missing target values", "done", f"{missing} missing target values filled forward"))
    frame = frame[frame[time_col].notna()].reset_index(drop=True)
    first = frame[frame[ids].eq(frame.loc[0, ids]).all(axis=1)] if ids else frame
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        freq = fs.frequency or pd.infer_freq(first[time_col].drop_duplicates().iloc[:200])
    freq = getattr(freq, "freqstr", freq)
    if freq is None:
        freq = pd.tseries.frequencies.to_offset(first[time_col].diff().median()).freqstr
    season = _season_from_freq(freq) if fs.seasonality in ("auto", None) else int(fs.seasonality)
    horizon = 1 if fs.forecast_horizon in ("auto", None) else int(fs.forecast_horizon)
    times = np.sort(frame[time_col].unique())
    n_folds = spec.n_cross_validations if isinstance(spec.n_cross_validations, int) else 3
    step = fs.cv_step_size if isinstance(fs.cv_step_size, int) else horizon
    while n_folds > 1 and len(times) - horizon - (n_folds - 1) * step < max(4, horizon):
        n_folds -= 1
    if len(times) - horizon - (n_folds - 1) * step < 2:
        raise ValidationError([Problem("training_data", f"too short for forecast_horizon {horizon}: "
                                       f"{len(times)} time steps", len(times))], title="Invalid AutoML data")
    folds = []
    time_values = frame[time_col].to_numpy()
    for k in range(n_folds):
        origin = len(times) - horizon - (n_folds - 1 - k) * step
        train = np.flatnonzero(time_values < times[origin])
        valid = np.flatnonzero((time_values >= times[origin]) & (time_values <= times[min(origin + horizon, len(times)) - 1]))
        folds.append((train, valid))
    lags = fs.target_lags
    if lags in (None, "auto"):
        lag_list = list(range(0, max(3, min(season, 24))))
    elif isinstance(lags, int):
        lag_list = list(range(0, max(1, lags)))
    else:
        lag_list = sorted({max(0, int(v) - 1) for v in lags})
    window = fs.target_rolling_window_size
    window = max(2, season) if window in (None, "auto") else int(window)
    y = frame[target].to_numpy(dtype=float)
    X = frame.drop(columns=[target])
    counts = X.groupby(ids).size() if ids else pd.Series([len(X)])
    short = int((counts < 2 * horizon + 2).sum())
    rails.insert(0, guardrail("Validation split handling", "done",
                              f"rolling-origin validation: {n_folds} origin(s), {step} step(s) apart, "
                              f"horizon {horizon}"))
    rails.append(guardrail("Time series", "passed", f"{len(counts)} series, frequency {freq}, seasonality {season}, "
                           f"{len(times)} time steps", {"series": int(len(counts)), "frequency": str(freq)}))
    if short:
        rails.append(guardrail("Short series handling", "alerted" if fs.short_series_handling_config != "drop"
                               else "done", f"{short} series shorter than 2 x horizon + 2 ("
                               f"{fs.short_series_handling_config or 'kept'})"))
    rails.append(guardrail("Label type", "passed", f"numeric target, range {float(np.ptp(y)):.6g}"))
    country = check_holiday_country(fs.country_or_region_for_holidays) if fs.country_or_region_for_holidays else None
    if country:
        counts_per_step = holiday_counts(times, str(freq), country)
        rails.append(guardrail("Holidays", "done", f"{int(counts_per_step.sum())} public holidays of {country} "
                               f"fall in {int((counts_per_step > 0).sum())} of {len(times)} time steps; regression "
                               "forecasters get them as the 'holidays' feature", country))
    settings = {"time": time_col, "ids": ids, "horizon": horizon, "freq": str(freq), "season": season,
                "lags": lag_list, "window": window, "holidays": country}
    prepared = PreparedData(task="forecasting", metric=spec.primary_metric, X=X, y=y, weights=None, folds=folds,
                            refit_rows=np.arange(len(X)), classes=None, y_range=float(np.ptp(y)) or 1.0,
                            column_types={c: "Numeric" for c in ["trend"] + [f"lag{i}" for i in lag_list]
                                          + (["holidays"] if country else [])},
                            featurization=featurization, validation=rails[0]["description"], forecast=settings)
    return prepared, rails


def algorithm_space(name: str, data) -> tuple[dict[str, Any], float]:
    """FLAML-format search space and relative cost of a forecasting algorithm."""
    from flaml import tune

    if name == "ExponentialSmoothing":
        return {"trend": {"domain": tune.choice(["none", "add"]), "init_value": "add"},
                "damped": {"domain": tune.choice([True, False]), "init_value": True},
                "seasonal": {"domain": tune.choice(["none", "add", "mul"]), "init_value": "add"}}, _COST[name]
    if name == "Arima":
        return {"p": {"domain": tune.randint(0, 4), "init_value": 1},
                "d": {"domain": tune.randint(0, 3), "init_value": 1},
                "q": {"domain": tune.randint(0, 4), "init_value": 1}}, _COST[name]
    if name in STATISTICAL:
        return {}, _COST[name]
    from prefect_ml.automl.estimators import get_algorithm

    spec = get_algorithm(name)
    n_features = len(data.forecast["lags"]) + 8
    return spec.search_space((len(data.folds[0][0]), n_features), "regression", 0), spec.cost


def make_forecaster(algorithm: str, config: dict[str, Any], data, *, n_jobs: int = 1, deadline: float | None = None):
    """An unfitted :class:`Forecaster` for ``algorithm``."""
    return Forecaster(algorithm=algorithm, config=dict(config), settings=dict(data.forecast), n_jobs=n_jobs,
                      deadline=deadline)


class Forecaster(BaseEstimator):
    """A forecaster that takes raw rows (time column, series ids) like any scikit-learn regressor.

    ``fit(X, y)`` keeps the history; ``predict(X)`` forecasts each row of ``X`` (a time after the history of its
    series) from that history.

    Args:
        algorithm: Azure algorithm name (a time-series one, ``Baseline`` = Naive, or a regression one).
        config: Hyperparameters.
        settings: ``time``, ``ids``, ``horizon``, ``freq``, ``season``, ``lags``, ``window``, ``holidays`` (an
            ISO 3166 code or None).
    """

    def __init__(self, algorithm: str, config: dict[str, Any], settings: dict[str, Any], n_jobs: int = 1,
                 deadline: float | None = None):
        self.algorithm = algorithm
        self.config = config
        self.settings = settings
        self.n_jobs = n_jobs
        self.deadline = deadline

    # -- helpers
    def _keys(self, X: pd.DataFrame) -> pd.Series:
        ids = self.settings["ids"]
        if not ids:
            return pd.Series(["_"] * len(X), index=X.index)
        return X[ids].astype(str).agg("|".join, axis=1)

    def _steps(self, times: pd.Series, last: pd.Timestamp) -> np.ndarray:
        offset = pd.tseries.frequencies.to_offset(self.settings["freq"])
        span = max(1, len(times))
        grid = pd.date_range(last, periods=span + self.settings["horizon"] * 4 + 2, freq=offset)
        position = pd.Series(np.arange(len(grid)), index=grid)
        steps = position.reindex(pd.to_datetime(times)).to_numpy()
        fallback = np.ceil((pd.to_datetime(times).to_numpy() - np.datetime64(last)) /
                           np.timedelta64(1, "s") / max(1.0, (grid[1] - grid[0]).total_seconds()))
        steps = np.where(np.isnan(steps), fallback, steps)
        return np.maximum(1, steps).astype(int)

    def fit(self, X: pd.DataFrame, y: np.ndarray):
        time_col = self.settings["time"]
        frame = pd.DataFrame({"time": pd.to_datetime(X[time_col]).to_numpy(), "y": np.asarray(y, dtype=float),
                              SERIES_KEY: self._keys(X).to_numpy()})
        self.history_ = {k: g.sort_values("time").reset_index(drop=True) for k, g in frame.groupby(SERIES_KEY)}
        self.series_codes_ = {k: i for i, k in enumerate(sorted(self.history_))}
        self.global_mean_ = float(np.mean(y)) if len(y) else 0.0
        self.fitted_ = {}
        if self.algorithm in STATISTICAL or self.algorithm == "Baseline":
            return self
        features, target = [], []
        for key, hist in self.history_.items():
            f, t = self._regression_rows(key, hist["time"], hist["y"].to_numpy(), hist, training=True)
            features.append(f)
            target.append(t)
        F = pd.concat(features, ignore_index=True)
        T = np.concatenate(target)
        keep = ~np.isnan(T) & F.notna().all(axis=1).to_numpy()
        from prefect_ml.automl.estimators import get_algorithm
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        spec = get_algorithm(self.algorithm)
        estimator = spec.make(self.config, "regression", 0, n_jobs=self.n_jobs, deadline=self.deadline)
        steps = [SimpleImputer(keep_empty_features=True)] + ([StandardScaler()] if spec.style != "tree" else [])
        self.regressor_ = make_pipeline(*steps, estimator)
        if keep.sum() < 2:
            self.regressor_ = None
            return self
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.regressor_.fit(F[keep], T[keep])
        return self

    def _regression_rows(self, key, times, values, hist, *, training: bool):
        """Features (and the target change) of rows at ``times`` of series ``key`` given its history."""
        h = self.settings["horizon"]
        lags = self.settings["lags"]
        window = self.settings["window"]
        history = hist["y"].to_numpy(dtype=float)
        n_hist = len(history)
        if training:
            positions = np.arange(n_hist)
        else:
            positions = n_hist - 1 + self._steps(pd.Series(times), hist["time"].iloc[-1])
        base_pos = np.minimum(positions - h, n_hist - 1)
        out = {}
        base = np.where(base_pos >= 0, history[np.clip(base_pos, 0, None)], np.nan) if n_hist else np.full(len(positions), np.nan)
        for lag in lags[1:]:
            p = base_pos - lag
            out[f"lag{lag}"] = np.where(p >= 0, history[np.clip(p, 0, None)], np.nan) - base
        cumsum = np.concatenate([[0.0], np.cumsum(history)])
        hi = np.clip(base_pos + 1, 0, n_hist)
        lo = np.clip(hi - window, 0, n_hist)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["rolling_mean"] = (cumsum[hi] - cumsum[lo]) / np.maximum(hi - lo, 1) - base
        t = pd.to_datetime(pd.Series(times)).reset_index(drop=True)
        out["month"] = t.dt.month.to_numpy()
        out["dayofweek"] = t.dt.day_of_week.to_numpy()
        out["dayofyear"] = t.dt.day_of_year.to_numpy()
        out["hour"] = t.dt.hour.to_numpy()
        if self.settings.get("holidays"):
            out["holidays"] = holiday_counts(t, self.settings["freq"], self.settings["holidays"])
        out["season_pos"] = positions % max(1, self.settings["season"])
        out["series"] = np.full(len(positions), self.series_codes_.get(key, -1))
        out["step"] = np.clip(positions - (n_hist - 1), 1, None) if not training else np.full(len(positions), h)
        frame = pd.DataFrame(out)
        target = (np.asarray(values, dtype=float) - base) if training else None
        return frame, target

    def _statistical(self, values: np.ndarray, steps: int) -> np.ndarray:
        m = max(1, int(self.settings["season"]))
        n = len(values)
        name = self.algorithm
        if n == 0:
            return np.full(steps, self.global_mean_)
        k = np.arange(1, steps + 1)
        if name in ("Naive", "Baseline") or (name in ("SeasonalNaive", "SeasonalAverage") and n < m):
            return np.full(steps, values[-1])
        if name == "SeasonalNaive":
            return values[n - m + ((k - 1) % m)]
        if name == "Average":
            return np.full(steps, values.mean())
        if name == "SeasonalAverage":
            out = []
            for j in k:
                position = (n - 1 + j) % m
                out.append(values[[i for i in range(n) if i % m == position]].mean())
            return np.asarray(out)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if name == "ExponentialSmoothing":
                    from statsmodels.tsa.holtwinters import ExponentialSmoothing

                    trend = None if self.config.get("trend", "add") == "none" or n < 4 else "add"
                    seasonal = self.config.get("seasonal", "add")
                    seasonal = None if seasonal == "none" or m < 2 or n < 2 * m + 2 else seasonal
                    if seasonal == "mul" and np.min(values) <= 0:
                        seasonal = "add"
                    model = ExponentialSmoothing(values, trend=trend, damped_trend=bool(self.config.get("damped"))
                                                 and trend is not None, seasonal=seasonal,
                                                 seasonal_periods=m if seasonal else None,
                                                 initialization_method="estimated").fit()
                    return np.asarray(model.forecast(steps), dtype=float)
                from statsmodels.tsa.arima.model import ARIMA

                if name == "Arima":
                    orders = [(int(self.config.get("p", 1)), int(self.config.get("d", 1)), int(self.config.get("q", 1)))]
                else:
                    orders = [(1, 1, 1), (0, 1, 1), (2, 1, 2), (1, 1, 0), (2, 1, 0), (1, 0, 1)]
                best, best_aic = None, math.inf
                for order in orders:
                    if n < sum(order) + 4:
                        continue
                    try:
                        fitted = ARIMA(values, order=order).fit()
                    except Exception:  # noqa: BLE001 - try the next order
                        continue
                    if fitted.aic < best_aic:
                        best, best_aic = fitted, fitted.aic
                if best is None:
                    return np.full(steps, values[-1])
                return np.asarray(best.forecast(steps), dtype=float)
        except Exception:  # noqa: BLE001 - a model that cannot fit this series falls back to Naive
            return np.full(steps, values[-1])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Forecasts for the rows of ``X`` (shape (n_rows,))."""
        time_col = self.settings["time"]
        keys = self._keys(X).to_numpy()
        times = pd.to_datetime(X[time_col]).reset_index(drop=True)
        out = np.full(len(X), np.nan)
        for key in pd.unique(keys):
            rows = np.flatnonzero(keys == key)
            hist = self.history_.get(key)
            if hist is None or len(hist) == 0:
                out[rows] = self.global_mean_
                continue
            if self.algorithm in STATISTICAL or self.algorithm == "Baseline" or self.regressor_ is None:
                steps = self._steps(times.iloc[rows], hist["time"].iloc[-1])
                path = self._statistical(hist["y"].to_numpy(dtype=float), int(steps.max()))
                out[rows] = path[steps - 1]
            else:
                frame, _ = self._regression_rows(key, times.iloc[rows].to_numpy(), None, hist, training=False)
                base = hist["y"].to_numpy(dtype=float)
                base_pos = np.minimum(len(base) - 1 + self._steps(times.iloc[rows], hist["time"].iloc[-1])
                                      - self.settings["horizon"], len(base) - 1)
                out[rows] = base[base_pos] + self.regressor_.predict(frame)
        return out


def future_forecast(model, prepared) -> list[dict[str, Any]]:
    """The model's forecast for the ``forecast_horizon`` steps after the training data, per series."""
    settings = prepared.forecast
    X = prepared.X
    time_col, ids = settings["time"], settings["ids"]
    offset = pd.tseries.frequencies.to_offset(settings["freq"])
    rows = []
    groups = X.groupby(ids) if ids else [((), X)]
    for key, group in groups:
        last = pd.to_datetime(group[time_col]).max()
        for step in range(1, settings["horizon"] + 1):
            row = {time_col: last + step * offset}
            for i, column in enumerate(ids):
                row[column] = key[i] if isinstance(key, tuple) else key
            rows.append(row)
    future = pd.DataFrame(rows)
    for column in X.columns:
        if column not in future:
            future[column] = np.nan
    future["forecast"] = model.predict(future[X.columns])
    return future[[time_col, *ids, "forecast"]].astype({time_col: str}).to_dict(orient="records")
