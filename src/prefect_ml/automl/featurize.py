"""Featurization: raw columns -> model features, fitted inside each model's scikit-learn Pipeline.

Column kinds follow Azure's ``featurization.column_name_and_types`` names (Numeric, Categorical, DateTime, Text,
Ignore); the steps follow Azure's automatic featurization
(https://learn.microsoft.com/azure/machine-learning/how-to-configure-auto-features): impute missing values,
encode categoricals, take datetime parts, hash text, drop constant and identifier-like columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: A string column whose values are mostly distinct and long with spaces is text.
TEXT_MIN_MEAN_LENGTH = 20
#: A non-numeric column with more distinct values than this share of rows (and > 100 rows) is an identifier.
ID_UNIQUE_RATIO = 0.95


def infer_column_types(X: pd.DataFrame, *, overrides: dict[str, str] | None = None, mode: str = "auto"
                       ) -> dict[str, str]:
    """Azure's column purpose for each column of ``X``.

    Args:
        X: The feature columns (no label, weight or time-series columns).
        overrides: ``featurization.column_name_and_types``.
        mode: ``off`` keeps numeric columns only.

    Returns:
        Column -> ``Numeric``, ``Categorical``, ``DateTime``, ``Text`` or ``Ignore``.
    """
    overrides = overrides or {}
    kinds: dict[str, str] = {}
    n = len(X)
    for column in X.columns:
        if column in overrides:
            kinds[column] = overrides[column]
            continue
        series = X[column]
        non_null = series.dropna()
        if non_null.nunique() <= 1:
            kinds[column] = "Ignore"
        elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            kinds[column] = "Numeric"
        elif pd.api.types.is_datetime64_any_dtype(series):
            kinds[column] = "DateTime" if mode != "off" else "Ignore"
        elif mode == "off":
            kinds[column] = "Ignore"
        else:
            kinds[column] = _string_kind(non_null.astype(str), n)
    return kinds


def _string_kind(values: pd.Series, n: int) -> str:
    sample = values.iloc[:1000]
    if sample.str.contains(r"\d", regex=True).mean() > 0.9 and sample.str.contains(r"[-/:]", regex=True).mean() > 0.9:
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
        if parsed.notna().mean() > 0.95:
            return "DateTime"
    unique_ratio = values.nunique() / max(n, 1)
    if unique_ratio > 0.5 and sample.str.len().mean() >= TEXT_MIN_MEAN_LENGTH and sample.str.contains(" ").mean() > 0.5:
        return "Text"
    if unique_ratio > ID_UNIQUE_RATIO and n > 100:
        return "Ignore"
    return "Categorical"


def to_str(X: Any) -> Any:
    """Cast categorical input to strings, missing values to the string ``"nan"`` (kept as a category)."""
    frame = pd.DataFrame(X)
    return frame.astype(object).where(frame.notna(), "nan").astype(str).to_numpy()


def datetime_parts(X: Any) -> np.ndarray:
    """Year, month, day, day of week, day of year, hour, minute of each datetime column (NaN when missing)."""
    frame = pd.DataFrame(X)
    parts = []
    for column in frame.columns:
        values = pd.to_datetime(frame[column], errors="coerce", format="mixed")
        parts += [values.dt.year, values.dt.month, values.dt.day, values.dt.day_of_week, values.dt.day_of_year,
                  values.dt.hour, values.dt.minute]
    return np.column_stack([p.to_numpy(dtype=float) for p in parts]) if parts else np.empty((len(frame), 0))


def text_column(X: Any) -> np.ndarray:
    """The single text column as a 1-D array of strings (what vectorizers take)."""
    frame = pd.DataFrame(X)
    return frame.iloc[:, 0].fillna("").astype(str).to_numpy()


def build_featurizer(column_types: dict[str, str], *, style: str, settings: dict[str, Any] | None = None):
    """The featurization step of a model's pipeline.

    Args:
        column_types: From :func:`infer_column_types`.
        style: ``tree`` (ordinal-encoded categoricals, no scaling), ``linear`` (one-hot, standardised) or
            ``nonnegative`` (one-hot, scaled to [0, 1]; for naive Bayes).
        settings: ``featurization`` settings (``blocked_transformers``, ``transformer_params``).

    Returns:
        An unfitted :class:`sklearn.compose.ColumnTransformer` that outputs a numeric matrix.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

    settings = settings or {}
    blocked = set(settings.get("blocked_transformers") or ())
    strategies = _imputer_strategies(settings.get("transformer_params") or {})
    by_kind: dict[str, list[str]] = {}
    for column, kind in column_types.items():
        by_kind.setdefault(kind, []).append(column)
    steps = []
    numeric = by_kind.get("Numeric", [])
    for strategy in sorted({strategies.get(c, "mean") for c in numeric}):
        columns = [c for c in numeric if strategies.get(c, "mean") == strategy]
        scaler = ([StandardScaler()] if style == "linear" else [MinMaxScaler(clip=True)] if style == "nonnegative"
                  else [])
        steps.append((f"numeric_{strategy}", make_pipeline(
            SimpleImputer(strategy=strategy, keep_empty_features=True, add_indicator=style != "tree"), *scaler),
            columns))
    categorical = by_kind.get("Categorical", [])
    if categorical:
        cast = FunctionTransformer(to_str, feature_names_out="one-to-one")
        if style == "tree" or "OneHotEncoder" in blocked:
            encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        else:
            encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5, max_categories=64,
                                    sparse_output=False)
        steps.append(("categorical", make_pipeline(cast, encoder), categorical))
    dates = by_kind.get("DateTime", [])
    if dates:
        scaler = [StandardScaler()] if style == "linear" else [MinMaxScaler(clip=True)] if style == "nonnegative" else []
        steps.append(("datetime", make_pipeline(FunctionTransformer(datetime_parts),
                                                SimpleImputer(strategy="most_frequent", keep_empty_features=True),
                                                *scaler), dates))
    for column in by_kind.get("Text", []):
        if {"TfIdf", "CountVectorizer"} <= blocked:
            continue
        hashing = HashingVectorizer(n_features=2 ** (8 if style == "tree" else 12), alternate_sign=style == "linear",
                                    norm="l2")
        steps.append((f"text_{column}", make_pipeline(FunctionTransformer(text_column), hashing), [column]))
    if not steps:
        # Nothing usable: a constant feature so that the model still fits (and predicts the prior).
        return FunctionTransformer(lambda X: np.zeros((len(X), 1)))  # pragma: no cover - guarded by guardrails
    return ColumnTransformer(steps, remainder="drop", sparse_threshold=0.0 if style == "tree" else 0.3)


def _imputer_strategies(params: dict[str, Any]) -> dict[str, str]:
    strategies: dict[str, str] = {}
    for item in params.get("imputer", []) or []:
        strategy = (item.get("parameters") or {}).get("strategy", "mean")
        for field in item.get("fields", []) or []:
            strategies[str(field)] = str(strategy)
    return strategies
