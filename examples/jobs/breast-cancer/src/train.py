"""Train a breast-cancer classifier (malignant vs. benign) and track it in MLflow.

Reads a CSV with numeric feature columns and a label column, holds out a stratified test
split, fits scikit-learn's HistGradientBoostingClassifier (or a scaled logistic regression),
and logs to the job's MLflow run:

- parameters: the hyperparameters and split settings;
- metrics: ``accuracy``, ``f1``, ``precision``, ``recall``, ``roc_auc``, ``log_loss`` on the
  test split (positive class: 1 = benign, scikit-learn's encoding), ``train_accuracy``,
  and ``val_log_loss`` / ``train_log_loss`` per boosting iteration (``step=``);
- with ``--model-output``: an MLflow model saved into that folder.

Run by hand::

    python train.py --data ../../../data/breast-cancer/breast_cancer.csv --model-output /tmp/bc-model
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import sklearn
from mlflow.entities import Metric
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

SKOPS_TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]  # HistGradientBoosting


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train a breast-cancer classifier.")
    p.add_argument("--data", required=True, help="CSV file with feature columns and the label column")
    p.add_argument("--target-column", default="target")
    p.add_argument("--model", choices=["hist_gradient_boosting", "logistic_regression"],
                   default="hist_gradient_boosting")
    p.add_argument("--learning-rate", type=float, default=0.1, help="boosting learning rate")
    p.add_argument("--max-iter", type=int, default=100, help="boosting iterations / solver iterations")
    p.add_argument("--max-depth", type=int, default=None, help="tree depth (default: unlimited)")
    p.add_argument("--c", type=float, default=1.0, help="inverse regularization (logistic regression)")
    p.add_argument("--threads", type=int, default=1,
                   help="OpenMP/BLAS threads; one is fastest on data this small and avoids "
                        "oversubscription when several jobs (e.g. sweep trials) run side by side")
    p.add_argument("--test-size", type=float, default=0.2)
    p.add_argument("--random-state", type=int, default=42)
    p.add_argument("--model-output", default=None, help="folder to save the MLflow model into")
    p.add_argument("--serialization-format", choices=["cloudpickle", "skops"], default="cloudpickle",
                   help="how the MLflow model stores the estimator (see save_mlflow_model)")
    return p.parse_args(argv)


def build_model(args: argparse.Namespace):
    if args.model == "logistic_regression":
        return make_pipeline(StandardScaler(), LogisticRegression(C=args.c, max_iter=args.max_iter))
    return HistGradientBoostingClassifier(
        learning_rate=args.learning_rate,
        max_iter=args.max_iter,
        max_depth=args.max_depth,
        early_stopping=False,  # a fixed number of iterations, so the staged curves are complete
        random_state=args.random_state,
    )


def binary_log_loss(y_true: np.ndarray, p_positive: np.ndarray) -> float:
    """Same value as ``sklearn.metrics.log_loss`` for 0/1 labels, without its per-call overhead."""
    p = np.clip(p_positive, 1e-15, 1 - 1e-15)
    return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log1p(-p)))


def staged_losses(model, X_train, y_train, X_test, y_test) -> list[Metric]:
    """Train/validation log loss after each boosting iteration, as MLflow metrics with steps."""
    if not hasattr(model, "staged_predict_proba"):
        return []
    now = int(time.time() * 1000)
    metrics = []
    for key, X, y in (("train_log_loss", X_train, y_train), ("val_log_loss", X_test, y_test)):
        y01 = (np.asarray(y) == model.classes_[1]).astype(float)
        for step, proba in enumerate(model.staged_predict_proba(X), start=1):
            metrics.append(Metric(key, binary_log_loss(y01, proba[:, 1]), now, step))
    return metrics


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

    df = pd.read_csv(args.data)
    X = df.drop(columns=[args.target_column])
    y = df[args.target_column]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=args.test_size, stratify=y, random_state=args.random_state
    )

    threadpool_limits(limits=args.threads)  # applies to the rest of this process
    model = build_model(args)
    model.fit(X_train, y_train)

    proba = model.predict_proba(X_test)
    pred = model.classes_[proba.argmax(axis=1)]
    positive = proba[:, 1]
    metrics = {
        "accuracy": accuracy_score(y_test, pred),
        "f1": f1_score(y_test, pred),
        "precision": precision_score(y_test, pred),
        "recall": recall_score(y_test, pred),
        "roc_auc": roc_auc_score(y_test, positive),
        "log_loss": log_loss(y_test, proba, labels=model.classes_),
        "train_accuracy": accuracy_score(y_train, model.predict(X_train)),
    }

    params = {
        "model": args.model,
        "test_size": args.test_size,
        "random_state": args.random_state,
        "n_train": len(X_train),
        "n_test": len(X_test),
        "n_features": X.shape[1],
    }
    if args.model == "hist_gradient_boosting":
        params.update(learning_rate=args.learning_rate, max_iter=args.max_iter, max_depth=args.max_depth)
    else:
        params.update(C=args.c, max_iter=args.max_iter)

    # Inside a prefect-ml job this resumes the job's run (MLFLOW_RUN_ID); by hand it starts one.
    with mlflow.start_run() as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        curve = staged_losses(model, X_train, y_train, X_test, y_test)
        client = MlflowClient()
        for i in range(0, len(curve), 1000):  # log_batch takes at most 1000 metrics per call
            client.log_batch(run.info.run_id, metrics=curve[i:i + 1000], synchronous=True)

        if args.model_output:
            signature = infer_signature(X_test, pred)
            save_mlflow_model(model, args.model_output, signature, args.serialization_format)

    elapsed = time.perf_counter() - started
    print(f"breast-cancer {args.model}: {len(X_train)} train / {len(X_test)} test rows, {X.shape[1]} features")
    print("  " + "  ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    if curve:
        val = [m.value for m in curve if m.key == "val_log_loss"]
        best = int(np.argmin(val)) + 1
        print(f"  val_log_loss: first={val[0]:.4f} best={val[best - 1]:.4f} (iteration {best}) last={val[-1]:.4f}")
    if args.model_output:
        print(f"  MLflow model saved to {args.model_output}")
    print(f"  run {run.info.run_id} done in {elapsed:.1f}s")


if __name__ == "__main__":
    main()
