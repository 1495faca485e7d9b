"""Reading an AutoML job's tables, data guardrails and the prepared data trials share.

Guardrails follow Azure's (https://learn.microsoft.com/azure/machine-learning/how-to-configure-auto-features#data-guardrails):
validation split handling, class balancing detection, missing feature values imputation, high cardinality feature
detection; prefect-ml adds constant columns, label type and degenerate-data checks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prefect_ml.exceptions import Problem, ValidationError

#: Smallest-class share of the largest class below which Azure flags class imbalance.
IMBALANCE_RATIO = 0.2


def read_table(uri: str, data_type: str, *, dest: str | os.PathLike, label: str | None = None) -> pd.DataFrame:
    """Read one AutoML input into a DataFrame.

    Args:
        uri: The resolved location (see :func:`prefect_ml.data.resolve_uri`): an MLTable folder, a CSV or
            Parquet file, a folder of them, or a remote URL.
        data_type: ``mltable``, ``uri_file`` or ``uri_folder``.
        dest: Folder downloads go to.
        label: The target column: read as text from CSV so that labels such as ``"true"``/``"false"`` or
            ``"007"`` stay exactly as written (numbers are converted back when every value is one).

    Raises:
        NotFoundError: The data does not exist.
        MissingDependencyError: An MLTable needs the ``mltable`` package.
    """
    from prefect_ml.data import load_mltable, materialize_input

    local = uri
    if "://" not in uri and data_type == "mltable" and Path(uri).is_dir() and (Path(uri) / "MLTable").is_file():
        frame = _mltable_frame(uri, label)
        return frame
    if "://" in uri or uri.startswith(("runs:/", "models:/")):
        local = materialize_input(uri, type="uri_file" if data_type == "uri_file" else "uri_folder", mode="download",
                                  dest=Path(dest))
    path = Path(local)
    if not path.exists():
        from prefect_ml.exceptions import NotFoundError

        raise NotFoundError(f"AutoML data not found: {uri}")
    if path.is_dir():
        if (path / "MLTable").is_file():
            return load_mltable(path)
        files = _table_files(path)
        if not files:
            raise ValidationError([Problem("path", "the folder holds no CSV or Parquet file", uri)],
                                  title="Invalid AutoML data")
        return pd.concat([_read_file(p, label) for p in files], ignore_index=True)
    return _read_file(path, label)


def _simple_mltable(folder: str | os.PathLike) -> tuple[Path, str, str] | None:
    """``(file, delimiter, encoding)`` of an MLTable that reads one delimited file with no other step, else None."""
    import yaml

    try:
        spec = yaml.safe_load((Path(folder) / "MLTable").read_text()) or {}
        paths = spec.get("paths") or []
        transformations = spec.get("transformations") or []
        simple = (len(paths) == 1 and "file" in paths[0] and len(transformations) == 1
                  and isinstance(transformations[0], dict) and set(transformations[0]) == {"read_delimited"})
        if simple:
            options = transformations[0]["read_delimited"] or {}
            if set(options) <= {"delimiter", "encoding", "header", "empty_as_string"} and \
                    options.get("header", "all_files_same_headers") in ("all_files_same_headers",
                                                                          "from_first_file"):
                encoding = {"ascii": "ascii", "utf8": "utf-8"}.get(str(options.get("encoding", "utf8")), "utf-8")
                return Path(folder) / paths[0]["file"], options.get("delimiter", ","), encoding
    except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        pass
    return None


def _mltable_frame(folder: str, label: str | None) -> pd.DataFrame:
    """An MLTable of one delimited file is read with pandas (labels kept as text); others with ``mltable``."""
    from prefect_ml.data import load_mltable

    simple = _simple_mltable(folder)
    if simple is not None:
        file, sep, encoding = simple
        return _read_file(file, label, sep=sep, encoding=encoding)
    return load_mltable(folder)


def _table_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.suffix.lower() in (".csv", ".parquet", ".tsv"))


def peek_table(uri: str, label: str | None = None) -> tuple[list[str], pd.Series | None] | None:
    """The column names of a local table and, when ``label`` is given, its label column: a cheap look at the
    data before a job starts (the header only; one column when ``label`` is given).

    Reads what :func:`read_table` reads, the same way (labels as text, as the job's flow reads them): a CSV,
    TSV or Parquet file, a folder of them, or an MLTable folder of one delimited file.

    Args:
        uri: The resolved location (see :func:`prefect_ml.data.resolve_uri`).
        label: The column to read (``target_column_name``), or None for the column names only.

    Returns:
        ``(columns, labels)`` (``labels`` None when ``label`` is None or not a column), or None when the data
        cannot be looked at cheaply (remote data, an MLTable with other transformations, an unreadable file):
        the job's flow then checks it when it reads the data.
    """
    if "://" in uri or uri.startswith(("runs:/", "models:/", "azureml:")):
        return None
    path = Path(uri)
    if path.is_dir() and (path / "MLTable").is_file():
        simple = _simple_mltable(path)
        if simple is None:
            return None
        files = [simple]
    elif path.is_dir():
        files = [(p, None, "utf-8") for p in _table_files(path)]
    elif path.is_file():
        files = [(path, None, "utf-8")]
    else:
        return None
    if not files:
        return None
    columns: list[str] = []
    labels: list[pd.Series] = []
    try:
        for file, sep, encoding in files:
            if file.suffix.lower() == ".parquet":
                import pyarrow.parquet as pq

                names = list(pq.read_schema(file).names)
                if label is not None and label in names:
                    labels.append(pd.read_parquet(file, columns=[label])[label])
            else:
                options = dict(sep=sep or ("\t" if file.suffix.lower() == ".tsv" else ","), encoding=encoding)
                names = [str(c) for c in pd.read_csv(file, nrows=0, **options).columns]
                if label is not None and label in names:
                    labels.append(text_label(pd.read_csv(file, usecols=[label], dtype={label: "string"},
                                                         **options)[label]))
            columns += [c for c in names if c not in columns]
    except (OSError, ValueError, ImportError):
        return None
    return columns, (pd.concat(labels, ignore_index=True) if labels else None)


def _read_file(path: Path, label: str | None, sep: str | None = None, encoding: str = "utf-8") -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    dtype = {label: "string"} if label else None
    frame = pd.read_csv(path, sep=sep or ("\t" if suffix == ".tsv" else ","), encoding=encoding, dtype=dtype,
                        keep_default_na=True)
    if label and label in frame.columns:
        frame[label] = text_label(frame[label])
    return frame


def text_label(values: pd.Series) -> pd.Series:
    """A label column read as text, converted to numbers only when every value is a number."""
    text = values.astype(object).where(values.notna(), None)
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric[text.notna()].notna().all():
        if (numeric.dropna() % 1 == 0).all():
            return numeric.astype("Int64").astype(object).where(numeric.notna(), None).map(
                lambda v: int(v) if v is not None else None)
        return numeric
    return text


def guardrail(name: str, status: str, description: str, details: Any = None) -> dict[str, Any]:
    return {"name": name, "status": status, "description": description, "details": details}


def check_columns(frame: pd.DataFrame, columns: dict[str, str | None], which: str) -> None:
    """Raise a clear error when a named column is missing."""
    problems = [Problem(field, f"column {name!r} is not in the {which} data; columns: "
                        + ", ".join(map(str, frame.columns[:50])), name)
                for field, name in columns.items() if name and name not in frame.columns]
    if problems:
        raise ValidationError(problems, title=f"Invalid AutoML {which} data")


def guardrails_markdown(rails: list[dict[str, Any]]) -> str:
    """The guardrails as a Markdown table (Prefect artifact)."""
    lines = ["# Data guardrails", "", "| Guardrail | Status | Description |", "|---|---|---|"]
    for r in rails:
        lines.append(f"| {r['name']} | {r['status']} | {str(r['description']).replace('|', '/')} |")
    return "\n".join(lines)


def prepare_tabular(task: str, metric: str, train: pd.DataFrame, *, target: str, valid: pd.DataFrame | None,
                    weight: str | None, budget_s: float, n_cross_validations: Any, validation_data_size: float | None,
                    featurization: dict[str, Any], seed: int = 0, positive_label: Any = None):
    """Guardrails and :class:`~prefect_ml.automl.engine.PreparedData` for classification and regression.

    Args:
        weight: ``weight_column_name``: sample weights passed to every estimator's ``fit`` and to the metrics;
            never a feature.
        positive_label: The positive class of the binary metrics (see :func:`resolve_positive_label`).

    Returns:
        ``(prepared, guardrails)``.

    Raises:
        ValidationError: Missing columns, no rows with a label, a regression target that is not numeric, or a
            ``positive_label`` that is not one of the classes.
    """
    from prefect_ml.automl.engine import PreparedData, choose_folds, encode_labels
    from prefect_ml.automl.featurize import infer_column_types

    check_columns(train, {"target_column_name": target, "weight_column_name": weight}, "training")
    if valid is not None:
        check_columns(valid, {"target_column_name": target}, "validation")
    rails: list[dict[str, Any]] = []
    frames = [train] + ([valid] if valid is not None else [])
    missing_label = sum(int(f[target].isna().sum()) for f in frames)
    frames = [f[f[target].notna()].reset_index(drop=True) for f in frames]
    train = frames[0]
    valid = frames[1] if valid is not None else None
    if missing_label:
        rails.append(guardrail("Missing labels", "done", f"{missing_label} rows without a label were dropped"))
    if len(train) == 0:
        raise ValidationError([Problem("training_data", "has no rows with a label", target)],
                              title="Invalid AutoML data")
    combined = pd.concat(frames, ignore_index=True) if valid is not None else train
    X = combined.drop(columns=[c for c in (target, weight) if c], errors="ignore")
    y_raw = combined[target]
    weights = combined[weight].to_numpy(dtype=float) if weight else None
    if weights is not None:
        weights = np.nan_to_num(weights, nan=0.0)
    classes = None
    if task == "classification":
        y, classes = encode_labels(y_raw)
        kinds = sorted({type(c).__name__ for c in classes})
        rails.append(guardrail("Label type", "passed", f"{len(classes)} classes of type {', '.join(kinds)}; "
                               "predictions return them exactly as given", [str(c) for c in classes[:20]]))
        if len(classes) < 2:
            raise ValidationError([Problem("target_column_name", "classification needs at least two classes; the "
                                           "training data has one", str(classes[0]))], title="Invalid AutoML data")
        positive = resolve_positive_label(positive_label, classes)
        counts = np.bincount(y[: len(train)], minlength=len(classes))
        ratio = counts.min() / counts.max() if counts.max() else 1.0
        rails.append(guardrail("Class balancing detection", "alerted" if ratio < IMBALANCE_RATIO else "passed",
                               f"smallest class / largest class = {ratio:.3f}" + (
                                   " (imbalanced: consider AUC_weighted or norm_macro_recall)"
                                   if ratio < IMBALANCE_RATIO else ""),
                               {str(c): int(n) for c, n in zip(classes, counts)}))
        if positive is not None or len(classes) == 2:
            index = positive if positive is not None else 1
            rails.append(guardrail("Positive label", "passed", f"binary metrics treat {classes[index]!r} as the "
                                   "positive class" + ("" if positive is not None else
                                                       " (the second label; set positive_label to choose)"),
                                   str(classes[index])))
        y_range = 1.0
    else:
        numeric = pd.to_numeric(y_raw, errors="coerce")
        if numeric.isna().any():
            bad = y_raw[numeric.isna()].iloc[0]
            raise ValidationError([Problem("target_column_name", f"a {task} target must be numeric; "
                                           f"found {bad!r}", target)], title="Invalid AutoML data")
        y = numeric.to_numpy(dtype=float)
        y_range = float(np.ptp(y[: len(train)])) or 1.0
        positive = None
        rails.append(guardrail("Label type", "passed", f"numeric target, range {y_range:.6g}"))
    column_types = infer_column_types(X, overrides=featurization.get("column_name_and_types"),
                                      mode=featurization.get("mode", "auto"))
    missing = {c: int(n) for c, n in X.isna().sum().items() if n and column_types.get(c) != "Ignore"}
    rails.append(guardrail("Missing feature values imputation", "done" if missing else "passed",
                           f"missing values imputed in {len(missing)} column(s)" if missing
                           else "no missing feature values", missing or None))
    constant = [c for c, k in column_types.items() if k == "Ignore" and X[c].dropna().nunique() <= 1]
    identifiers = [c for c, k in column_types.items() if k == "Ignore" and c not in constant]
    rails.append(guardrail("Constant columns", "done" if constant else "passed",
                           f"dropped {len(constant)} constant column(s)" if constant else "no constant columns",
                           constant or None))
    high = {c: int(X[c].nunique()) for c, k in column_types.items() if k == "Categorical" and X[c].nunique() > 100}
    rails.append(guardrail("High cardinality feature detection", "done" if (identifiers or high) else "passed",
                           (f"dropped identifier-like column(s) {identifiers}; " if identifiers else "")
                           + (f"ordinal/infrequent-category encoding for {sorted(high)}" if high else "")
                           or "no high-cardinality columns", {"dropped": identifiers, "encoded": high}))
    rails.append(guardrail("Column purposes", "passed", ", ".join(f"{c}: {k}" for c, k in column_types.items())))
    if valid is not None:
        n_train = len(train)
        folds = [(np.arange(n_train), np.arange(n_train, len(combined)))]
        refit_rows = np.arange(n_train)
        scheme = f"the given validation data ({len(valid)} rows)"
    else:
        folds, scheme = choose_folds(task, y, len(X), max(1, X.shape[1]), budget_s=budget_s,
                                     n_cross_validations=n_cross_validations,
                                     validation_data_size=validation_data_size, seed=seed)
        refit_rows = np.arange(len(X))
    if task == "classification" and isinstance(n_cross_validations, int):
        counts = np.bincount(y, minlength=len(classes))
        small = [str(classes[i]) for i, n in enumerate(counts) if 0 < n < n_cross_validations]
        if small:
            rails.append(guardrail("Small classes", "alerted",
                                   f"class(es) {small} have fewer rows than the {n_cross_validations} folds: "
                                   "folds are not stratified and some folds miss those classes"))
    rails.insert(0, guardrail("Validation split handling", "done", f"models are validated on {scheme}"))
    prepared = PreparedData(task=task, metric=metric, X=X, y=y, weights=weights, folds=folds, refit_rows=refit_rows,
                            classes=classes, y_range=y_range, column_types=column_types,
                            featurization=featurization, validation=scheme, seed=seed, positive=positive)
    return prepared, rails


def resolve_positive_label(positive_label: Any, classes: list[Any]) -> int | None:
    """The encoded index of ``positive_label`` among ``classes``.

    The label is matched exactly first, then by its text, so that YAML's ``positive_label: 1`` or ``true`` finds
    the class ``"1"`` or ``"true"`` of a CSV (and ``"1"`` finds the class 1).

    Raises:
        ValidationError: The label is not one of the classes (the message lists them).
    """
    if positive_label is None:
        return None
    for i, c in enumerate(classes):
        if c == positive_label and type(c) is type(positive_label):
            return i
    text = str(positive_label).lower() if isinstance(positive_label, bool) else str(positive_label)
    matches = [i for i, c in enumerate(classes) if (str(c).lower() if isinstance(c, bool) else str(c)) == text]
    if len(matches) == 1:
        return matches[0]
    hint = (" (YAML reads unquoted yes/no/true/false/on/off as booleans: quote the label, e.g. "
            "positive_label: \"yes\")") if isinstance(positive_label, bool) else ""
    raise ValidationError([Problem("positive_label", "is not one of the labels of the training data; labels: "
                                   + ", ".join(repr(c) for c in classes[:20]) + hint, positive_label)],
                          title="Invalid AutoML data")
