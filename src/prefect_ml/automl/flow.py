"""The ``automl-job`` flow: an Azure AutoML job as one Prefect flow run, every trial a task run.

Steps: start the MLflow run, read the data, data guardrails (a Markdown artifact), the search (trials on the task
runner of the job's compute, ``max_concurrent_trials`` at once, each logged as a child MLflow run), ensembles,
refit of the chosen model, metrics on validation and test data, the model logged and registered under the job's
name, a leaderboard table artifact and permutation importances.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed

from prefect_ml import settings, tracking
from prefect_ml.automl import engine
from prefect_ml.automl import metrics as M
from prefect_ml.automl.spec import AutoMLJob

TAG_BEST_MODEL = "prefect_ml.automl.best_model"
LEADERBOARD_ARTIFACT = "automl/leaderboard.json"
GUARDRAILS_ARTIFACT = "automl/guardrails.json"
IMPORTANCE_ARTIFACT = "automl/feature_importance.json"
#: Default budget when ``limits.timeout_minutes`` is not set: Azure's 6 hours.
DEFAULT_TIMEOUT_MINUTES = 360


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    from prefect_ml.jobs import generate_job_name

    return flow_run.parameters.get("job_name") or generate_job_name()


@task(name="automl-trial", cache_policy=NO_CACHE, persist_result=False, task_run_name="{trial_id}")
def automl_trial(trial_id: str, data_path: str, algorithm: str, config: dict[str, Any], n_jobs: int,
                 deadline: float | None, stop_loss: float | None) -> dict[str, Any]:
    """One trial: fit and validate ``algorithm`` with ``config`` (see :func:`engine.evaluate_trial`)."""
    return engine.evaluate_trial(data_path, algorithm, config, n_jobs=n_jobs, deadline=deadline, stop_loss=stop_loss)


@task(name="automl-refit", cache_policy=NO_CACHE, persist_result=False, task_run_name="refit-{trial_id}")
def automl_refit(trial_id: str, data_path: str, algorithm: str, config: dict[str, Any], n_jobs: int):
    """Refit one chosen configuration on all training rows; returns the fitted pipeline."""
    return engine.refit_member(data_path, algorithm, config, n_jobs=n_jobs)


@task(name="start-tracking", cache_policy=NO_CACHE, persist_result=False)
def start_automl_tracking(spec: AutoMLJob, job_name: str) -> dict[str, str]:
    """Create the job's MLflow run (tags as a command job's) and link it with the flow run both ways."""
    from prefect_ml.tasks.tracking import open_job_run

    return open_job_run(spec, job_name, "automl", extra_tags={
        "prefect_ml.automl.task": spec.task, "prefect_ml.automl.primary_metric": str(spec.primary_metric)})


@task(name="load-data", cache_policy=NO_CACHE, persist_result=False)
def load_data(spec: AutoMLJob, job_dir: str) -> dict[str, Any]:
    """Read training, validation and test data into DataFrames."""
    from prefect_ml.automl.prepare import read_table

    frames = {}
    for name, item in spec.data_inputs().items():
        uri = spec.resolve_path(item)
        frames[name] = read_table(uri, item.type, dest=Path(job_dir) / "inputs" / name, label=spec.target_column_name)
    return frames


class TrialLogger:
    """Logs each finished trial as a child MLflow run from one background thread (the search never waits)."""

    def __init__(self, parent_run_id: str, experiment_id: str, metric: str):
        self.client = tracking.get_client()
        self.parent, self.experiment_id, self.metric = parent_run_id, experiment_id, metric
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="automl-mlflow")
        self.run_ids: dict[str, str] = {}
        self.futures = []

    def log(self, result: dict[str, Any], task_run_id: str | None = None) -> None:
        self.futures.append(self.pool.submit(self._log, dict(result), task_run_id))

    def _log(self, result: dict[str, Any], task_run_id: str | None) -> None:
        from mlflow.entities import Metric, Param

        tags = {"mlflow.parentRunId": self.parent, "prefect_ml.automl.algorithm": result["algorithm"],
                "prefect_ml.automl.trial_status": result["status"]}
        if task_run_id:
            tags["prefect.task_run_id"] = task_run_id
        if result.get("error"):
            tags["prefect_ml.error"] = result["error"][:4000]
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=result["trial_id"])
        self.run_ids[result["trial_id"]] = run.info.run_id
        now = int(time.time() * 1000)
        params = [Param("algorithm", result["algorithm"])] + [Param(k, str(v)[:6000])
                                                             for k, v in result["config"].items()]
        metrics = [Metric(k, float(v), now, 0) for k, v in result["metrics"].items()
                   if v is not None and math.isfinite(v)]
        metrics.append(Metric("duration_seconds", float(result["duration_seconds"]), now, 0))
        self.client.log_batch(run.info.run_id, metrics=metrics, params=params)
        self.client.set_terminated(run.info.run_id, status="FINISHED" if result["status"] in (
            "completed", "early_terminated") else "KILLED" if result["status"] == "timeout" else "FAILED")

    def close(self) -> None:
        for future in self.futures:
            future.result()
        self.pool.shutdown(wait=True)


def _n_jobs(spec: AutoMLJob) -> int:
    if spec.limits.max_cores_per_trial and spec.limits.max_cores_per_trial > 0:
        return spec.limits.max_cores_per_trial
    return max(1, (os.cpu_count() or 1) // spec.limits.max_concurrent_trials)


def leaderboard_rows(results: list[dict[str, Any]], metric: str, extra: list[dict[str, Any]] = (),
                     run_ids: dict[str, str] | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Leaderboard rows (best first): trial, algorithm, primary metric, seconds, status, MLflow run."""
    rows = []
    for r in list(results) + list(extra):
        value = r.get("metrics", {}).get(metric)
        rows.append({"trial": r["trial_id"], "algorithm": r["algorithm"],
                     metric: None if value is None or not math.isfinite(value) else round(float(value), 6),
                     "duration_seconds": round(float(r.get("duration_seconds", 0.0)), 3), "status": r["status"],
                     "mlflow_run_id": (run_ids or {}).get(r["trial_id"]),
                     "loss": r.get("loss", math.inf)})
    rows.sort(key=lambda row: (row["status"] != "completed", row["loss"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
        row.pop("loss")
    return rows[:limit]


def fit_automl(spec: AutoMLJob, frames: dict[str, Any], *, job_dir: str, started: float,
               on_result=None, logger=None) -> dict[str, Any]:
    """The search and the final model, inside a running flow (trials go to the flow's task runner).

    Args:
        spec: The job.
        frames: ``training_data`` (and optionally ``validation_data``) DataFrames.
        job_dir: Folder for the prepared data.
        started: ``time.time()`` the budget counts from.
        on_result: Called with each trial's result and its Prefect future.

    Returns:
        ``model`` (:class:`~prefect_ml.automl.models.AutoMLModel`), ``best`` (the chosen candidate),
        ``results`` (trials), ``ensembles``, ``guardrails``, ``prepared`` (the PreparedData), ``stop_reason``.
    """
    from prefect_ml.automl.models import AutoMLModel

    budget_s = 60.0 * (spec.limits.timeout_minutes or DEFAULT_TIMEOUT_MINUTES)
    featurization = spec.featurization.model_dump()
    if spec.task == "forecasting":
        from prefect_ml.automl.forecast import prepare_forecast

        prepared, rails = prepare_forecast(spec, frames["training_data"], featurization=featurization)
    else:
        from prefect_ml.automl.prepare import prepare_tabular

        prepared, rails = prepare_tabular(
            spec.task, spec.primary_metric, frames["training_data"], target=spec.target_column_name,
            valid=frames.get("validation_data"), weight=spec.weight_column_name, budget_s=budget_s,
            positive_label=spec.positive_label,
            n_cross_validations=spec.n_cross_validations, validation_data_size=spec.validation_data_size,
            featurization=featurization)
    data_path = prepared.save(Path(job_dir) / "automl" / "prepared.pkl")
    engine.load_prepared.cache_clear()
    n_jobs = _n_jobs(spec)
    futures: dict[str, Any] = {}

    def submit(trial_id, algorithm, config, jobs, deadline, stop_loss):
        future = automl_trial.submit(trial_id, data_path, algorithm, config, jobs, deadline, stop_loss)
        futures[trial_id] = future
        return future

    def record(result):
        if on_result is not None:
            on_result(result, futures.get(result["trial_id"]))

    loop = engine.SearchLoop(prepared, data_path, spec.algorithms(), submit, budget_s=budget_s, started=started,
                             max_trials=spec.limits.max_trials, max_concurrent=spec.limits.max_concurrent_trials,
                             n_jobs=n_jobs, trial_timeout_s=60.0 * spec.limits.trial_timeout_minutes
                             if spec.limits.trial_timeout_minutes else None,
                             early_termination=spec.limits.enable_early_termination,
                             exit_score=spec.limits.exit_score, on_result=record)
    results = loop.run()
    if logger:
        logger.info("Search ended (%s) after %d trials", loop.stop_reason, len(results))
    candidates = [r for r in results if r["status"] == "completed"]
    best_single = min(candidates, key=lambda r: r["loss"])
    options = [{"kind": "single", "members": [best_single], "weights": [1.0], "meta": None,
                "loss": best_single["loss"], "metrics": best_single["metrics"], "trial_id": best_single["trial_id"],
                "algorithm": best_single["algorithm"]}]
    ensembles = []
    if spec.training.enable_vote_ensemble:
        vote = engine.greedy_ensemble(prepared, results)
        if vote:
            vote.update(kind="voting", meta=None, status="completed", duration_seconds=0.0, trial_id="VotingEnsemble", algorithm="VotingEnsemble")
            options.append(vote)
            ensembles.append(vote)
    if spec.training.enable_stack_ensemble:
        stack = engine.stack_ensemble(prepared, results)
        if stack:
            stack.update(kind="stacking", weights=None, status="completed", duration_seconds=0.0, trial_id="StackEnsemble", algorithm="StackEnsemble")
            options.append(stack)
            ensembles.append(stack)
    time_left = started + budget_s - time.time()
    for option in options:
        option["refit_seconds"] = sum(engine.time_to_refit(prepared, m) for m in option["members"])
    affordable = [o for o in options if o["kind"] == "single" or o["refit_seconds"] / min(
        spec.limits.max_concurrent_trials, len(o["members"])) <= max(time_left, 0) + 0.1 * budget_s]
    chosen = min(affordable, key=lambda o: (o["loss"] + (1e-9 if o["kind"] != "single" else 0)))
    if logger:
        logger.info("Best trial %s (%s=%.5f); chosen: %s", best_single["trial_id"], spec.primary_metric,
                    best_single["metrics"].get(spec.primary_metric, float("nan")), chosen["trial_id"])
    refit_futures = [automl_refit.submit(m["trial_id"], data_path, m["algorithm"], m["config"], n_jobs)
                     for m in chosen["members"]]
    members = [f.result() for f in refit_futures]
    names = [m["algorithm"] for m in chosen["members"]]
    if chosen["kind"] == "voting":
        description = "VotingEnsemble(" + ", ".join(f"{n} x{w:.2f}" for n, w in zip(names, chosen["weights"])) + ")"
    elif chosen["kind"] == "stacking":
        description = "StackEnsemble(" + ", ".join(names) + ")"
    else:
        description = names[0]
    model = AutoMLModel(task=prepared.task, members=members, weights=chosen.get("weights"), meta=chosen.get("meta"),
                        classes=prepared.classes, kind=chosen["kind"], description=description)
    return {"model": model, "best": chosen, "results": results, "ensembles": ensembles, "guardrails": rails,
            "prepared": prepared, "stop_reason": loop.stop_reason, "data_path": data_path}


def score_model(model, prepared, frame, spec: AutoMLJob) -> dict[str, float]:
    """Metrics of the final model on a labelled DataFrame (test data), weighted by its ``weight_column_name``."""
    from prefect_ml.automl.prepare import check_columns

    check_columns(frame, {"target_column_name": spec.target_column_name}, "test")
    frame = frame[frame[spec.target_column_name].notna()]
    X = frame.drop(columns=[c for c in (spec.target_column_name, spec.weight_column_name) if c], errors="ignore")
    y_raw = frame[spec.target_column_name]
    weights = None
    if spec.weight_column_name and spec.weight_column_name in frame.columns:
        weights = np.nan_to_num(frame[spec.weight_column_name].to_numpy(dtype=float), nan=0.0)
    if prepared.task == "classification":
        index = {c: i for i, c in enumerate(prepared.classes)}
        keep = y_raw.map(lambda v: v in index).to_numpy(dtype=bool)
        y = np.array([index[v] for v in y_raw[keep]])
        proba = model.predict_proba(X[keep])
        return M.score_predictions("classification", prepared.metric, y, proba, n_classes=prepared.n_classes,
                                   sample_weight=weights[keep] if weights is not None else None,
                                   positive=prepared.positive)
    pred = model.predict(X)
    return M.score_predictions("regression", prepared.metric, y_raw.to_numpy(dtype=float), pred,
                               y_range=prepared.y_range, sample_weight=weights)


def log_best_model(model, spec: AutoMLJob, prepared, job_name: str, run_id: str) -> dict[str, str]:
    """Save the model in MLflow's sklearn format (signature, input example), log it and register it.

    Returns:
        ``{"model_uri", "registered"}`` (``registered`` is ``NAME:VERSION``; NAME is ``outputs.best_model.name``
        when given, else the job's name).
    """
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature

    import prefect_ml

    client = tracking.get_client()
    if prepared.task == "forecasting":
        example = prepared.X.iloc[-5:]
    else:
        example = prepared.X.iloc[:5]
    signature = infer_signature(example, model.predict(example))
    requirements = [f"scikit-learn=={sklearn.__version__}", "pandas", "numpy"]
    packages = ["lightgbm", "xgboost", "statsmodels"]
    if prepared.forecast and prepared.forecast.get("holidays"):
        packages.append("holidays")
    for package in packages:
        try:
            from importlib.metadata import version

            requirements.append(f"{package}=={version(package)}")
        except Exception:  # noqa: BLE001 - optional
            pass
    import logging

    logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)  # the cloudpickle notice, on every save
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model"
        mlflow.sklearn.save_model(model, str(path), signature=signature, input_example=example,
                                  pip_requirements=requirements, serialization_format="cloudpickle",
                                  code_paths=[str(Path(prefect_ml.__file__).parent)])
        client.log_artifacts(run_id, str(path), "model")
    artifact_uri = client.get_run(run_id).info.artifact_uri.rstrip("/")
    # `outputs.best_model.name` registers the model under that name (Azure's named job outputs), else the job's.
    best_output = spec.outputs.get("best_model")
    model_name = best_output.name if best_output is not None and best_output.name else job_name
    version = tracking.register_model_version(client, name=model_name, run_id=run_id, source=f"{artifact_uri}/model",
                                              tags={"prefect_ml.automl.model": model.description},
                                              description=f"AutoML {spec.task} model of job {job_name}: "
                                                          f"{model.description}")
    return {"model_uri": f"runs:/{run_id}/model", "registered": f"{model_name}:{version.version}"}


def permutation_importances(model, prepared, frame=None, spec: AutoMLJob | None = None, *, max_rows: int = 2000,
                            seed: int = 0) -> list[dict[str, Any]]:
    """Permutation importance of each raw column (scikit-learn's ``permutation_importance``, 3 repeats).

    Computed on the test data when given, else on a sample of the validation rows, with the primary metric.
    """
    from sklearn.inspection import permutation_importance

    if frame is not None and spec is not None and prepared.task != "forecasting":
        frame = frame[frame[spec.target_column_name].notna()]
        X = frame.drop(columns=[c for c in (spec.target_column_name, spec.weight_column_name) if c], errors="ignore")
        y = frame[spec.target_column_name].to_numpy()
    else:
        rows = prepared.valid_rows
        X = prepared.X.iloc[rows]
        y = prepared.y[rows]
        if prepared.task == "classification":
            y = np.asarray(prepared.classes, dtype=object)[y]
    if len(X) > max_rows:
        pick = np.random.default_rng(seed).choice(len(X), max_rows, replace=False)
        X, y = X.iloc[pick], y[pick]
    if prepared.task == "classification":
        y = np.asarray([str(v) for v in y], dtype=object)

        def scorer(est, X_, y_):
            return float(np.mean(np.asarray([str(v) for v in est.predict(X_)], dtype=object) == y_))
    else:
        def scorer(est, X_, y_):
            pred = est.predict(X_)
            return -float(np.sqrt(np.mean((np.asarray(y_, dtype=float) - pred) ** 2)))
    result = permutation_importance(model, X, y, scoring=scorer, n_repeats=3, random_state=seed)
    rows = [{"feature": str(c), "importance_mean": float(m), "importance_std": float(s)}
            for c, m, s in zip(X.columns, result.importances_mean, result.importances_std)]
    return sorted(rows, key=lambda r: -r["importance_mean"])


def _log_json(client, run_id: str, data: Any, artifact: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact).name
        path.write_text(json.dumps(data, indent=2, default=str))
        client.log_artifact(run_id, str(path), str(Path(artifact).parent))


@flow(name="automl-job", flow_run_name=_flow_run_name, persist_result=False, validate_parameters=False)
def automl_job(job: dict[str, Any], job_name: str | None = None, stream: bool = False):
    """Run an AutoML job (see the module docstring for the steps).

    Args:
        job: The job, ``AutoMLJob.model_dump(mode="json", by_alias=True)``.
        job_name: Its unique name (this flow run's name; the registered model's name).
        stream: Unused (the flow's logs are the job's output).

    Returns:
        A Completed state; a failure raises (the flow run fails with the error).
    """
    from mlflow.entities import Metric, RunTag
    from prefect.artifacts import create_markdown_artifact, create_table_artifact
    from prefect.runtime import flow_run

    from prefect_ml.automl.prepare import guardrails_markdown
    from prefect_ml.tasks.tracking import record_result

    started = time.time()
    spec = AutoMLJob.model_validate(job)
    job_name = job_name or flow_run.name
    job_dir = settings.jobs_dir() / job_name
    logger = get_run_logger()
    timings: dict[str, float] = {}
    info = start_automl_tracking(spec, job_name)
    run_id = info["run_id"]
    client = tracking.get_client()
    trial_logger = TrialLogger(run_id, info["experiment_id"], spec.primary_metric)
    try:
        t0 = time.time()
        frames = load_data(spec, str(job_dir))
        timings["load_data"] = round(time.time() - t0, 3)

        def on_result(result, future):
            trial_logger.log(result, str(future.task_run_id) if future is not None else None)
            value = result["metrics"].get(spec.primary_metric)
            logger.info("Trial %s %s: %s=%s (%.2f s)", result["trial_id"], result["status"], spec.primary_metric,
                        "n/a" if value is None else f"{value:.5f}", result["duration_seconds"])

        t0 = time.time()
        # The budget (limits.timeout_minutes) counts from here: the search, ensembles and the final refit.
        outcome = fit_automl(spec, frames, job_dir=str(job_dir), started=t0, on_result=on_result, logger=logger)
        timings["search_and_refit"] = round(time.time() - t0, 3)
        rails = outcome["guardrails"]
        create_markdown_artifact(key="data-guardrails", markdown=guardrails_markdown(rails),
                                 description="AutoML data guardrails")
        model, prepared, best = outcome["model"], outcome["prepared"], outcome["best"]
        trial_logger.close()
        rows = leaderboard_rows(outcome["results"], spec.primary_metric, outcome["ensembles"], trial_logger.run_ids)
        create_table_artifact(key="leaderboard", table=rows, description=f"AutoML trials by {spec.primary_metric}")
        metrics = {k: v for k, v in best["metrics"].items() if v is not None and math.isfinite(v)}
        test_metrics = {}
        if "test_data" in frames:
            test_metrics = score_model(model, prepared, frames["test_data"], spec)
            metrics.update({f"test_{k}": v for k, v in test_metrics.items() if math.isfinite(v)})
        forecast_rows = None
        if spec.task == "forecasting":
            from prefect_ml.automl.forecast import future_forecast

            forecast_rows = future_forecast(model, prepared)
        t0 = time.time()
        logged = log_best_model(model, spec, prepared, job_name, run_id)
        timings["register"] = round(time.time() - t0, 3)
        importances = None
        if spec.training.enable_model_explainability:
            t0 = time.time()
            importances = permutation_importances(model, prepared, frames.get("test_data"), spec)
            timings["explain"] = round(time.time() - t0, 3)
            create_table_artifact(key="feature-importance", table=importances[:50],
                                  description="Permutation importance of each raw column")
            _log_json(client, run_id, importances, IMPORTANCE_ARTIFACT)
        best_info = {"trial": best["trial_id"], "algorithm": model.description, "kind": best["kind"],
                     "primary_metric": spec.primary_metric,
                     "validation_score": best["metrics"].get(spec.primary_metric),
                     "test_score": test_metrics.get(spec.primary_metric), "validation": prepared.validation,
                     "model_uri": logged["model_uri"], "registered_model": logged["registered"],
                     "trials": len(outcome["results"]), "stop_reason": outcome["stop_reason"]}
        if prepared.task == "classification" and (prepared.positive is not None or prepared.n_classes == 2):
            best_info["positive_label"] = prepared.classes[1 if prepared.positive is None else prepared.positive]
        _log_json(client, run_id, rows, LEADERBOARD_ARTIFACT)
        _log_json(client, run_id, rails, GUARDRAILS_ARTIFACT)
        if forecast_rows is not None:
            _log_json(client, run_id, forecast_rows, "automl/forecast.json")
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                         tags=[RunTag(TAG_BEST_MODEL, json.dumps(best_info, default=str)[:7900])])
        timings["total"] = round(time.time() - started, 3)
        record_result.fn(run_id, status="Completed", outputs={"best_model": logged["model_uri"]}, log_path=None,
                         workdir=None, timings=timings, registered_models={"best_model": logged["registered"]})
        logger.info("Best model %s: %s=%s on validation%s; registered as %s", model.description, spec.primary_metric,
                    best_info["validation_score"],
                    f", {test_metrics.get(spec.primary_metric)} on test data" if test_metrics else "",
                    logged["registered"])
        return Completed(message=f"Job {job_name} completed: {model.description}")
    except BaseException as exc:
        try:
            trial_logger.close()
        finally:
            record_result.fn(run_id, status="Failed", outputs={}, log_path=None, workdir=None, timings=timings,
                             error=f"{type(exc).__name__}: {exc}")
        raise
