"""prefect-ml AutoML against FLAML's ``AutoML.fit``: same data, same split, same wall-clock budget, same cores.

Usage::

    python benchmarks/automl_vs_flaml.py                 # 60 s per system per dataset (~20 min)
    python benchmarks/automl_vs_flaml.py --budget 10     # quick check
    python benchmarks/automl_vs_flaml.py --datasets digits,co2 --parallel-datasets bank_marketing

Datasets are real and offline: scikit-learn's bundled sets, statsmodels' bundled sets and Azure's bank-marketing
example (``../shared/azureml-examples``). Scores are on held-out test data, in points (x100): accuracy or AUC for
classification, R^2 for regression, ``1 - NRMSE`` (Azure's normalised RMSE) for forecasting. prefect-ml runs as a
real job (a Prefect flow on a local Prefect server, trials as task runs, MLflow tracking and registration), with
``limits.timeout_minutes = budget / 60``; its wall time includes that overhead and is printed next to FLAML's.
Also compares prefect-ml at half the budget with 2 concurrent trials against the full budget with 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PREFECT_ML_SHARED_DIR") or REPO.parent / "shared")
BANK = SHARED / "azureml-examples" / "cli" / "jobs" / "basics" / "hello-automl"


# -- datasets: name -> dict(task, metric, train, test, target, [time, horizon]) ---------------------------------


def _split(frame, target, task, seed=0):
    from sklearn.model_selection import train_test_split

    strat = frame[target] if task == "classification" else None
    return train_test_split(frame, test_size=0.25, random_state=seed, stratify=strat)


def load_datasets(names):
    import statsmodels.api as sm
    from sklearn import datasets as skd

    out = {}

    def add(name, loader):
        if name in names:
            out[name] = loader()

    def breast_cancer():
        f = skd.load_breast_cancer(as_frame=True).frame
        tr, te = _split(f, "target", "classification")
        return dict(task="classification", metric="AUC_weighted", train=tr, test=te, target="target")

    def digits():
        f = skd.load_digits(as_frame=True).frame
        tr, te = _split(f, "target", "classification")
        return dict(task="classification", metric="accuracy", train=tr, test=te, target="target")

    def bank():
        tr = pd.read_csv(BANK / "training-mltable-folder" / "bank_marketing_train_data.csv")
        te = pd.read_csv(BANK / "test-mltable-folder" / "bank_marketing_test_data.csv")
        return dict(task="classification", metric="accuracy", train=tr, test=te, target="y")

    def fair():
        f = sm.datasets.fair.load_pandas().data
        f["had_affair"] = (f.pop("affairs") > 0).astype(int)
        tr, te = _split(f, "had_affair", "classification")
        return dict(task="classification", metric="AUC_weighted", train=tr, test=te, target="had_affair")

    def diabetes():
        f = skd.load_diabetes(as_frame=True).frame
        tr, te = _split(f, "target", "regression")
        return dict(task="regression", metric="r2_score", train=tr, test=te, target="target")

    def randhie():
        f = sm.datasets.randhie.load_pandas().data
        f["log_visits"] = np.log1p(f.pop("mdvis"))
        tr, te = _split(f, "log_visits", "regression")
        return dict(task="regression", metric="r2_score", train=tr, test=te, target="log_visits")

    def co2():
        f = sm.datasets.co2.load_pandas().data.resample("MS").mean().ffill().reset_index()
        f.columns = ["month", "co2"]
        return dict(task="forecasting", metric="normalized_root_mean_squared_error", train=f.iloc[:-12],
                    test=f.iloc[-12:], target="co2", time="month", horizon=12)

    def sunspots():
        f = sm.datasets.sunspots.load_pandas().data
        f["year"] = pd.to_datetime(f.pop("YEAR").astype(int).astype(str) + "-01-01")
        f = f[["year", "SUNACTIVITY"]]
        return dict(task="forecasting", metric="normalized_root_mean_squared_error", train=f.iloc[:-10],
                    test=f.iloc[-10:], target="SUNACTIVITY", time="year", horizon=10)

    for name, loader in (("breast_cancer", breast_cancer), ("digits", digits), ("bank_marketing", bank),
                         ("fair", fair), ("diabetes", diabetes), ("randhie", randhie), ("co2", co2),
                         ("sunspots", sunspots)):
        if name == "bank_marketing" and not BANK.exists():
            continue
        add(name, loader)
    return out


ALL = ["breast_cancer", "digits", "bank_marketing", "fair", "diabetes", "randhie", "co2", "sunspots"]


# -- scoring (both systems, the same code) ----------------------------------------------------------------------


def score(ds, *, proba=None, classes=None, pred=None) -> float:
    """Test score in points (higher is better)."""
    from prefect_ml.automl import metrics as M

    y = ds["test"][ds["target"]].to_numpy()
    if ds["task"] == "classification":
        index = {str(c): i for i, c in enumerate(classes)}
        codes = np.array([index[str(v)] for v in y])
        value = M.classification_metrics(codes, np.asarray(proba), len(classes), names=(ds["metric"],))[ds["metric"]]
        return 100 * value
    if ds["task"] == "regression":
        return 100 * M.regression_metrics(y, pred, 1.0, names=("r2_score",))["r2_score"]
    y_range = float(np.ptp(ds["train"][ds["target"]].to_numpy()))
    nrmse = M.regression_metrics(y, pred, y_range, names=("normalized_root_mean_squared_error",))
    return 100 * (1 - nrmse["normalized_root_mean_squared_error"])


def run_flaml(ds, budget, cores):
    from flaml import AutoML

    automl = AutoML()
    started = time.time()
    train, test, target = ds["train"], ds["test"], ds["target"]
    if ds["task"] == "forecasting":
        frame = train[[ds["time"], target]].rename(columns={ds["time"]: "ds", target: "y"})
        automl.fit(dataframe=frame, label="y", task="ts_forecast", period=ds["horizon"], time_budget=budget,
                   n_jobs=cores, verbose=0, metric="rmse")
        wall = time.time() - started
        pred = np.asarray(automl.predict(test[[ds["time"]]].rename(columns={ds["time"]: "ds"})), dtype=float)
        return score(ds, pred=pred), wall
    X, y = train.drop(columns=[target]), train[target]
    metric = {"accuracy": "accuracy", "r2_score": "r2"}.get(ds["metric"])
    if ds["metric"] == "AUC_weighted":
        metric = "roc_auc" if y.nunique() == 2 else "roc_auc_weighted"
    automl.fit(X, y, task=ds["task"], metric=metric, time_budget=budget, n_jobs=cores, verbose=0)
    wall = time.time() - started
    Xt = test.drop(columns=[target])
    if ds["task"] == "classification":
        return score(ds, proba=automl.predict_proba(Xt), classes=list(automl.classes_)), wall
    return score(ds, pred=np.asarray(automl.predict(Xt), dtype=float)), wall


def run_ours(ds, budget, cores, concurrent, workdir: Path, name: str):
    import mlflow

    from prefect_ml import Input, MLClient, automl, tracking

    folder = workdir / name
    folder.mkdir(parents=True, exist_ok=True)
    ds["train"].to_parquet(folder / "train.parquet")
    common = dict(training_data=Input(type="uri_file", path=str(folder / "train.parquet")),
                  target_column_name=ds["target"], primary_metric=ds["metric"], experiment_name="automl-benchmark")
    if ds["task"] == "forecasting":
        job = automl.forecasting(**common)
        job.set_forecast_settings(time_column_name=ds["time"], forecast_horizon=ds["horizon"])
    else:
        job = getattr(automl, ds["task"])(**common)
    job.set_limits(timeout_minutes=budget / 60, max_concurrent_trials=concurrent,
                   max_cores_per_trial=max(1, cores // concurrent))
    job.set_training(enable_model_explainability=False)
    started = time.time()
    returned = MLClient(autostart=False).jobs.create_or_update(job)
    wall = time.time() - started
    if returned.status != "Completed":
        raise RuntimeError(f"{name}: {returned.error}")
    mlflow.set_tracking_uri(tracking.tracking_uri())
    ref = returned.details["best_model"]["registered_model"].split(":")
    model = mlflow.sklearn.load_model(f"models:/{ref[0]}/{ref[1]}")
    Xt = ds["test"].drop(columns=[ds["target"]])
    if ds["task"] == "classification":
        return score(ds, proba=model.predict_proba(Xt), classes=list(model.classes_)), wall, returned
    return score(ds, pred=model.predict(Xt)), wall, returned


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="Seconds per system per dataset (default 60).")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="Cores each system may use.")
    parser.add_argument("--datasets", default=",".join(ALL), help="Comma-separated subset of: " + ", ".join(ALL))
    parser.add_argument("--parallel-datasets", default="bank_marketing,digits",
                        help="Datasets for the half-budget / 2 concurrent trials comparison ('' to skip).")
    parser.add_argument("--use-current-api", action="store_true",
                        help="Use the Prefect API in PREFECT_API_URL instead of starting a server.")
    args = parser.parse_args(argv)
    names = [n for n in args.datasets.split(",") if n]
    parallel = [n for n in args.parallel_datasets.split(",") if n]

    with tempfile.TemporaryDirectory(prefix="automl-bench-") as tmp:
        root = Path(tmp)
        os.environ["PREFECT_HOME"] = str(root / "prefect-home")
        os.environ["PREFECT_ML_HOME"] = str(root / "prefect-ml-home")
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("DO_NOT_TRACK", "1")
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
        os.environ["PREFECT_ML_AUTOSTART_SERVER"] = "false"
        from prefect_ml.compute import server

        process = None
        if not (args.use_current_api and os.environ.get("PREFECT_API_URL")):
            port = server.free_port()
            process = server.spawn(port, os.environ["PREFECT_HOME"], root / "server.log")
            os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
        try:
            if process is not None:
                server.wait_healthy(os.environ["PREFECT_API_URL"], process, timeout_seconds=600,
                                    log_path=root / "server.log")
            data = load_datasets(set(names) | set(parallel))
            # warm-up: imports, MLflow store and Prefect flow registration are one-time costs, not per-job ones
            warm = load_datasets({"breast_cancer"})["breast_cancer"]
            run_ours(warm, 3, args.cores, 1, root, "warmup")
            rows = []
            print(f"budget {args.budget:g} s per system, {args.cores} core(s)", flush=True)
            print(f"{'dataset':16} {'metric':36} {'FLAML':>8} {'ours':>8} {'diff':>7} {'FLAML s':>8} {'ours s':>7}",
                  flush=True)
            for name in names:
                if name not in data:
                    print(f"{name}: not available, skipped")
                    continue
                ds = data[name]
                flaml_score, flaml_wall = run_flaml(ds, args.budget, args.cores)
                ours_score, ours_wall, job = run_ours(ds, args.budget, args.cores, 1, root, name)
                diff = ours_score - flaml_score
                rows.append((name, flaml_score, ours_score, diff))
                print(f"{name:16} {ds['metric'] + ' (test)':36} {flaml_score:8.2f} {ours_score:8.2f} {diff:+7.2f} "
                      f"{flaml_wall:8.1f} {ours_wall:7.1f}   [{job.details['best_model']['algorithm'][:60]}, "
                      f"{job.details['best_model']['trials']} trials]", flush=True)
            if rows:
                mean_f = np.mean([r[1] for r in rows])
                mean_o = np.mean([r[2] for r in rows])
                worst = min(rows, key=lambda r: r[3])
                print(f"{'mean':16} {'':36} {mean_f:8.2f} {mean_o:8.2f} {mean_o - mean_f:+7.2f}")
                print(f"target: mean >= FLAML's: {'MET' if mean_o >= mean_f else 'NOT MET'}; no dataset > 1 point "
                      f"worse: {'MET' if worst[3] >= -1 else 'NOT MET'} (worst: {worst[0]} {worst[3]:+.2f})")
            for name in parallel:
                if name not in data:
                    continue
                ds = data[name]
                half, half_wall, _ = run_ours(ds, args.budget / 2, args.cores, 2, root, name + "-par")
                full, full_wall, _ = run_ours(ds, args.budget, args.cores, 1, root, name + "-seq")
                print(f"{name}: {args.budget / 2:g} s with 2 concurrent trials: {half:.2f} ({half_wall:.0f} s wall); "
                      f"{args.budget:g} s with 1: {full:.2f} ({full_wall:.0f} s wall); difference {half - full:+.2f}",
                      flush=True)
        finally:
            if process is not None:
                server.terminate(process.pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
