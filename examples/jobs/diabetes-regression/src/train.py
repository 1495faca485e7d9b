"""Predict diabetes progression with gradient-boosted regression trees, tracked in MLflow.

Reads a table with numeric feature columns and a ``target`` column from any of:

- a Parquet or CSV file (``uri_file`` input);
- an MLTable folder (``mltable`` input): read with the ``mltable`` package when it is
  installed, otherwise the ``file:`` paths of a ``read_delimited`` table are read directly;
- a folder holding one Parquet or CSV file (``uri_folder`` input).

Logs to the job's MLflow run the hyperparameters, the test-split metrics under Azure ML's
names (``r2_score``, ``root_mean_squared_error``, ``mean_absolute_error``,
``normalized_root_mean_squared_error``, ``normalized_mean_absolute_error``) plus the short
``rmse`` / ``mae``, ``val_rmse`` per boosting iteration (``step=``), and saves an MLflow
model into ``--model-output``.

Run by hand::

    python train.py --data ../../../data/diabetes/diabetes.parquet --model-output /tmp/diabetes-model
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import sklearn
from mlflow.entities import Metric
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]  # GradientBoostingRegressor's trees


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train a diabetes-progression regressor.")
    p.add_argument("--data", required=True, help="Parquet/CSV file, MLTable folder, or folder with one data file")
    p.add_argument("--target-column", default="target")
    p.add_argument("--n-estimators", type=int, default=200)
    p.add_argument("--learning-rate", type=float, default=0.05)
    p.add_argument("--max-depth", type=int, default=3)
    p.add_argument("--subsample", type=float, default=0.8)
    p.add_argument("--test-size", type=float, default=0.2)
    p.add_argument("--random-state", type=int, default=42)
    p.add_argument("--model-output", default=None, help="folder to save the MLflow model into")
    p.add_argument("--serialization-format", choices=["cloudpickle", "skops"], default="cloudpickle",
                   help="how the MLflow model stores the estimator (see save_mlflow_model)")
    return p.parse_args(argv)


def _read_file(path: Path, **csv_options) -> pd.DataFrame:
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path, **csv_options)


def _read_mltable(folder: Path) -> pd.DataFrame:
    try:
        import mltable
    except ImportError:
        pass
    else:
        return mltable.load(str(folder)).to_pandas_dataframe()

    # Minimal reader for the common case: local ``file:`` paths read with ``read_delimited``.
    import yaml

    spec = yaml.safe_load((folder / "MLTable").read_text())
    options = {}
    for step in spec.get("transformations") or []:
        if isinstance(step, dict) and "read_delimited" in step:
            options["sep"] = (step["read_delimited"] or {}).get("delimiter", ",")
    frames = []
    for entry in spec.get("paths") or []:
        if "file" not in entry:
            raise SystemExit(f"{folder / 'MLTable'}: only 'file:' paths are supported without the mltable package")
        frames.append(_read_file(folder / entry["file"], **options))
    return pd.concat(frames, ignore_index=True)


def load_table(data: str) -> pd.DataFrame:
    path = Path(data)
    if path.is_file():
        return _read_file(path)
    if (path / "MLTable").is_file():
        return _read_mltable(path)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".parquet", ".pq", ".csv"))
    if len(files) != 1:
        raise SystemExit(f"{data}: expected one .parquet or .csv file, found {[p.name for p in files]}")
    return _read_file(files[0])


def regression_metrics(y_true, y_pred, y_range: float) -> dict[str, float]:
    rmse = float(np.sqrt(mean_squared_error(y_true, y_pred)))
    mae = float(mean_absolute_error(y_true, y_pred))
    return {
        "r2_score": float(r2_score(y_true, y_pred)),
        "rmse": rmse,
        "mae": mae,
        # Azure ML's names; "normalized" divides by the range of the target, as Azure ML does.
        "root_mean_squared_error": rmse,
        "mean_absolute_error": mae,
        "normalized_root_mean_squared_error": rmse / y_range,
        "normalized_mean_absolute_error": mae / y_range,
    }


def save_mlflow_model(model, path: str, signature, serialization_format: str) -> None:
    """Save an MLflow model so that ``path`` itself holds the ``MLmodel`` file.

    The model is written to a temporary folder first and then copied into ``path`` (which may
    exist; its contents are replaced), so a failed save never leaves half a model behind.

    Formats: ``cloudpickle`` (the default here) loads fast; MLflow logs a warning that pickles
    must come from a trusted source, which this job's own model is. ``skops`` is MLflow's
    safer default, but importing it costs several seconds of CPU, both here and wherever the
    model is loaded; skops only loads types it trusts, so the tree type this model needs is
    declared and recorded in the ``MLmodel`` file for loading.
    """
    requirements = [f"scikit-learn=={sklearn.__version__}"]  # explicit: inferring them is slow
    kwargs = dict(signature=signature, serialization_format=serialization_format)
    if serialization_format == "skops":
        import skops

        requirements.append(f"skops=={skops.__version__}")
        kwargs["skops_trusted_types"] = SKOPS_TRUSTED_TYPES
    else:
        import cloudpickle

        requirements.append(f"cloudpickle=={cloudpickle.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        staged = os.path.join(tmp, "model")
        # The pickle-safety warning is about loading untrusted pickles; this is the job's own model.
        logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
        mlflow.sklearn.save_model(model, staged, pip_requirements=requirements, **kwargs)
        os.makedirs(path, exist_ok=True)
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.remove(entry.path)
        shutil.copytree(staged, path, dirs_exist_ok=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    threadpool_limits(limits=1)  # tiny data: one thread is fastest

    df = load_table(args.data)
    X = df.drop(columns=[args.target_column])
    y = df[args.target_column].astype(float)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=args.test_size, random_state=args.random_state
    )

    model = GradientBoostingRegressor(
        n_estimators=args.n_estimators,
        learning_rate=args.learning_rate,
        max_depth=args.max_depth,
        subsample=args.subsample,
        random_state=args.random_state,
    )
    model.fit(X_train, y_train)

    y_range = float(y.max() - y.min())
    pred = model.predict(X_test)
    metrics = regression_metrics(y_test, pred, y_range)
    metrics["train_r2_score"] = float(r2_score(y_train, model.predict(X_train)))

    now = int(time.time() * 1000)
    y_test_arr = y_test.to_numpy()
    curve = [
        Metric("val_rmse", float(np.sqrt(np.mean((y_test_arr - staged) ** 2))), now, step)
        for step, staged in enumerate(model.staged_predict(X_test), start=1)
    ]

    params = {
        "model": "GradientBoostingRegressor",
        "n_estimators": args.n_estimators,
        "learning_rate": args.learning_rate,
        "max_depth": args.max_depth,
        "subsample": args.subsample,
        "test_size": args.test_size,
        "random_state": args.random_state,
        "n_train": len(X_train),
        "n_test": len(X_test),
    }

    # Inside a prefect-ml job this resumes the job's run (MLFLOW_RUN_ID); by hand it starts one.
    with mlflow.start_run() as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        MlflowClient().log_batch(run.info.run_id, metrics=curve[:1000], synchronous=True)
        if args.model_output:
            save_mlflow_model(model, args.model_output, infer_signature(X_test, pred), args.serialization_format)

    best = int(np.argmin([m.value for m in curve])) + 1
    top = sorted(zip(model.feature_importances_, X.columns), reverse=True)[:3]
    print(f"diabetes GradientBoostingRegressor: {len(X_train)} train / {len(X_test)} test rows, "
          f"{X.shape[1]} features")
    print(f"  r2_score={metrics['r2_score']:.4f}  rmse={metrics['rmse']:.2f}  mae={metrics['mae']:.2f}  "
          f"normalized_rmse={metrics['normalized_root_mean_squared_error']:.4f}")
    print(f"  best val_rmse={curve[best - 1].value:.2f} at iteration {best} of {len(curve)}")
    print("  top features: " + ", ".join(f"{name} ({imp:.2f})" for imp, name in top))
    if args.model_output:
        print(f"  MLflow model saved to {args.model_output}")
    print(f"  run {run.info.run_id} done in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
