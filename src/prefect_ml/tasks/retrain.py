"""Champion/challenger retraining: train on the newest data, evaluate, move the ``champion`` alias.

The steps of the ``retrain`` flow (:mod:`prefect_ml.flows.retrain`), as plain functions and tasks:

1. :func:`resolve_training_data`: which input of the training job is the data asset, and which
   version to train on (the one passed, else the newest). The job's ``type`` decides where to look:
   AutoML's ``training_data`` (and ``validation_data`` / ``test_data``), else the top-level ``inputs``
   (command, sweep and pipeline jobs).
2. :func:`run_challenger`: run the training job with that input bound to ``azureml:NAME:VERSION`` and its
   model output named ``model_name`` (:func:`_model_output_overrides`: a command job's or pipeline's only
   model output, AutoML's ``outputs.best_model``); the job registers the challenger model version.
3. :func:`evaluate_versions`: score the challenger and the current champion (the version holding the
   alias, ``MlflowClient.get_model_version_by_alias``) on the same held-out data with the same metric,
   loading both with ``mlflow.pyfunc``.
4. :func:`decide`: promote when there is no champion or the challenger wins by more than ``margin``.
5. :func:`record_decision`: move the alias (``set_registered_model_alias``) when promoted, tag both model
   versions with the scores, data versions and decision, and write a Prefect markdown artifact.

One retraining per model runs at a time: :func:`retrain_slot` holds the Prefect global concurrency
limit ``retrain-MODEL`` (limit 1) for the whole retraining.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from prefect import task
from pydantic import BaseModel, ConfigDict, Field, field_validator

from prefect.cache_policies import NO_CACHE

from prefect_ml.exceptions import NotFoundError, Problem, ValidationError

#: The registered-model alias that marks the model version in production.
DEFAULT_ALIAS = "champion"
#: Prefix of the tags written on model versions by retraining.
TAG_PREFIX = "prefect_ml.retrain."


def _rmse(y_true, y_pred) -> float:
    from sklearn.metrics import root_mean_squared_error

    return float(root_mean_squared_error(y_true, y_pred))


def _metric(name: str) -> Callable[[Any, Any], float]:
    import sklearn.metrics as m

    table: dict[str, Callable[[Any, Any], float]] = {
        "accuracy": m.accuracy_score,
        "balanced_accuracy": m.balanced_accuracy_score,
        "f1": m.f1_score,
        "f1_macro": lambda y, p: m.f1_score(y, p, average="macro"),
        "precision": m.precision_score,
        "recall": m.recall_score,
        "r2": m.r2_score,
        "rmse": _rmse,
        "mae": m.mean_absolute_error,
        "mse": m.mean_squared_error,
    }
    return table[name]


#: Metric name -> whether greater is better. Scores use scikit-learn's functions on the pyfunc predictions.
METRICS: dict[str, bool] = {"accuracy": True, "balanced_accuracy": True, "f1": True, "f1_macro": True,
                            "precision": True, "recall": True, "r2": True, "rmse": False, "mae": False,
                            "mse": False}


class Evaluation(BaseModel):
    """How challenger and champion are compared.

    Example::

        Evaluation(data="azureml:breast-cancer-holdout@latest", target_column="target", metric="accuracy")
    """

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="Held-out data: azureml:NAME:VERSION, azureml:NAME@latest, a local path or "
                                  "an fsspec URL of a CSV or Parquet file (or a folder of them).",
                      examples=["azureml:breast-cancer-holdout@latest"])
    target_column: str = Field(description="Column holding the true labels / values.", examples=["target"])
    metric: str = Field(default="accuracy", description="Metric computed on the pyfunc predictions: "
                                                        + ", ".join(METRICS) + ".")
    margin: float = Field(default=0.0, ge=0, description="The challenger is promoted only when it beats the "
                                                         "champion by more than this (in metric units).")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; use one of {', '.join(METRICS)}")
        return value

    @property
    def greater_is_better(self) -> bool:
        """Whether a higher score is better for :attr:`metric`."""
        return METRICS[self.metric]


@dataclass
class TrainingData:
    """The data asset version a challenger trains on.

    Attributes:
        input_name: The training job's input bound to the asset.
        asset: The data asset's name.
        version: The concrete version (never ``latest``).
    """

    input_name: str
    asset: str
    version: str

    @property
    def ref(self) -> str:
        """``NAME:VERSION``."""
        return f"{self.asset}:{self.version}"


@dataclass
class Challenger:
    """Outcome of training the challenger.

    Attributes:
        job_name: The training job's name.
        status: ``Completed``, ``Failed`` or ``Canceled``.
        model_version: The model version it registered, or ``None``.
        error: Why it failed, or ``None``.
    """

    job_name: str
    status: str
    model_version: str | None = None
    error: str | None = None


@dataclass
class Decision:
    """Result of comparing a challenger with the champion.

    Attributes:
        promote: Whether the alias moves to the challenger.
        reason: One sentence saying why.
        challenger_score: The challenger's score (``None`` if it could not be scored).
        champion_version: The version holding the alias before the decision, or ``None``.
        champion_score: The champion's score on the same data, or ``None``.
    """

    promote: bool
    reason: str
    challenger_score: float | None = None
    champion_version: str | None = None
    champion_score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------- helpers
def parse_asset_ref(value: str) -> tuple[str, str | None] | None:
    """Split ``azureml:NAME:VERSION`` / ``azureml:NAME@latest`` / ``azureml:NAME`` into ``(NAME, VERSION)``.

    Returns:
        ``(name, version)`` with ``version`` ``None`` for ``@latest`` / no version, or ``None`` when
        ``value`` is not a data asset reference (a path, a URL, ``azureml://...``).
    """
    if not isinstance(value, str) or not value.startswith("azureml:") or value.startswith("azureml://"):
        return None
    match = re.match(r"^(?P<name>[^:@/]+)(?::(?P<version>[^:@/]+)|@(?P<label>[^:@/]+))?$", value[len("azureml:"):])
    if not match:
        return None
    return match.group("name"), match.group("version")


def bind_data_asset(job: dict[str, Any], asset: str, version: str) -> dict[str, Any]:
    """A copy of job mapping ``job`` whose inputs naming data asset ``asset`` are bound to ``asset:version``.

    Inputs given as ``azureml:ASSET@latest``, ``azureml:ASSET`` or ``azureml:ASSET:V`` (string or ``path:``)
    are rebound; other inputs are unchanged.
    """
    import copy

    result = copy.deepcopy(job)
    for key, value in (result.get("inputs") or {}).items():
        ref = parse_asset_ref(_input_path(value))
        if ref is not None and ref[0] == asset:
            if isinstance(value, dict):
                value["path"] = f"azureml:{asset}:{version}"
            else:
                result["inputs"][key] = f"azureml:{asset}:{version}"
    return result


def limit_name(model_name: str) -> str:
    """Name of the global concurrency limit that serialises retraining of ``model_name``: ``retrain-MODEL``."""
    return "retrain-" + re.sub(r"[^A-Za-z0-9_-]+", "-", model_name)


@contextlib.contextmanager
def retrain_slot(model_name: str, on_busy: Literal["queue", "drop"] = "queue",
                 drop_wait_seconds: float = 2.0) -> Iterator[None]:
    """Hold the one slot of the global concurrency limit ``retrain-MODEL`` (created with limit 1 if missing).

    Args:
        model_name: The registered model.
        on_busy: ``"queue"`` waits until the running retraining ends; ``"drop"`` gives up after
            ``drop_wait_seconds``.
        drop_wait_seconds: How long ``"drop"`` waits for the slot, seconds.

    Raises:
        TimeoutError: ``on_busy="drop"`` and another retraining of the model holds the slot.
    """
    from prefect.concurrency.sync import concurrency

    from prefect_ml._prefect import prefect_client

    name = limit_name(model_name)
    with prefect_client() as client:
        client.upsert_global_concurrency_limit_by_name(name, limit=1)
    # The lease is renewed in the background while the slot is held; a crashed run's lease
    # expires after lease_duration seconds, so a dead retraining never blocks the model for good.
    with concurrency(name, occupy=1, timeout_seconds=None if on_busy == "queue" else drop_wait_seconds,
                     strict=True, lease_duration=120):
        yield


def _job_mapping(job_file: str) -> dict[str, Any]:
    import yaml

    path = Path(job_file)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError([Problem("job_file", "job file not found", job_file)],
                              title="Invalid retraining") from None
    if not isinstance(data, dict):
        raise ValidationError([Problem("", "a job file must be a mapping", None, job_file)], file=job_file)
    return data


def _input_path(value: Any) -> Any:
    return value.get("path") if isinstance(value, dict) else value


#: AutoML job fields that take data (Azure's AutoML job schema); the retrain flow binds one of them.
AUTOML_DATA_FIELDS = ("training_data", "validation_data", "test_data")
#: The AutoML output holding the best model (``outputs.best_model.name`` registers it under that name).
AUTOML_MODEL_OUTPUT = "best_model"


def _data_inputs(data: dict[str, Any]) -> dict[str, Any]:
    """The job's inputs that can hold the training data, by name, dispatching on the job's ``type``.

    AutoML: ``training_data``, ``validation_data``, ``test_data`` (top-level fields). Command, sweep and
    pipeline jobs: the top-level ``inputs`` (a pipeline's are bound to its steps with ``${{parent.inputs.X}}``).
    """
    if data.get("type") == "automl":
        return {k: data[k] for k in AUTOML_DATA_FIELDS if data.get(k) is not None}
    inputs = data.get("inputs")
    return inputs if isinstance(inputs, dict) else {}


def _data_override(data: dict[str, Any], input_name: str, ref: str) -> str:
    """The ``--set`` override binding input ``input_name`` of job mapping ``data`` to data asset ``ref``."""
    if data.get("type") == "automl":
        return f"{input_name}.path={ref}" if isinstance(data.get(input_name), dict) else f"{input_name}={ref}"
    return f"inputs.{input_name}={ref}"


def _step_asset_inputs(data: dict[str, Any]) -> list[str]:
    """``jobs.STEP.inputs.X`` of a pipeline whose path is a data asset reference (for error messages)."""
    found = []
    for step, body in (data.get("jobs") or {}).items() if isinstance(data.get("jobs"), dict) else ():
        inputs = body.get("inputs") if isinstance(body, dict) else None
        for key, value in (inputs or {}).items() if isinstance(inputs, dict) else ():
            if parse_asset_ref(_input_path(value)) is not None:
                found.append(f"jobs.{step}.inputs.{key}")
    return found


def resolve_training_data(job_file: str, *, data_input: str | None = None, data_asset: str | None = None,
                          data_version: str | None = None) -> TrainingData:
    """Find the job input to bind and the data asset version to train on.

    Which inputs are searched depends on the job's ``type``: AutoML jobs' ``training_data`` /
    ``validation_data`` / ``test_data`` (``training_data`` wins when several name data assets); command,
    sweep and pipeline jobs' top-level ``inputs`` (a pipeline step's own inputs are not rebound: declare a
    pipeline input and bind the step to ``${{parent.inputs.X}}``).

    Args:
        job_file: The training job's YAML file (any type :func:`prefect_ml.load_job` accepts).
        data_input: The input to bind; default: the only input whose path is a data asset reference
            (``azureml:NAME@latest``, ``azureml:NAME:VERSION``).
        data_asset: The data asset; default: the one named by that input.
        data_version: The version to train on; ``None``, ``""`` or ``"latest"`` for the newest.

    Returns:
        The input name, asset name and concrete version.

    Raises:
        ValidationError: No (or more than one) candidate input, or an unknown input name.
        NotFoundError: The asset or version does not exist.
    """
    from prefect_ml.data import get_data_asset

    data = _job_mapping(job_file)
    inputs = _data_inputs(data)
    automl = data.get("type") == "automl"
    section = "" if automl else "inputs."
    if data_input is None:
        candidates = [k for k, v in inputs.items() if parse_asset_ref(_input_path(v)) is not None]
        if data_asset is not None:
            candidates = [k for k in candidates if parse_asset_ref(_input_path(inputs[k]))[0] == data_asset] or \
                candidates
        if automl and len(candidates) > 1 and "training_data" in candidates:
            candidates = ["training_data"]
        if len(candidates) != 1:
            if candidates:
                why = f"several inputs name data assets ({', '.join(candidates)})"
            elif automl:
                why = ("none of the AutoML job's training_data, validation_data, test_data is a data asset; "
                       "set training_data.path to azureml:NAME@latest")
            elif data.get("type") == "pipeline" and (step_inputs := _step_asset_inputs(data)):
                why = (f"no pipeline input is a data asset (step inputs {', '.join(step_inputs)} "
                       "are; declare a pipeline input `inputs: {X: {type: uri_file, path: azureml:NAME@latest}}` "
                       "and bind the step to ${{parent.inputs.X}})")
            else:
                why = "no input's path is a data asset (azureml:NAME@latest)"
            raise ValidationError([Problem(
                "data_input", f"cannot tell which input is the training data: {why}; pass data_input=INPUT "
                "(and data_asset=NAME)", data_input, job_file)], file=job_file, title="Invalid retraining")
        data_input = candidates[0]
    elif data_input not in inputs:
        kind = "AutoML data field" if automl else "input"
        raise ValidationError([Problem("data_input", f"the job has no {kind} {data_input!r} (inputs: "
                                       f"{', '.join(inputs) or 'none'})", data_input, job_file)], file=job_file,
                              title="Invalid retraining")
    if data_asset is None:
        ref = parse_asset_ref(_input_path(inputs.get(data_input)))
        if ref is None:
            raise ValidationError([Problem(f"{section}{data_input}", "is not bound to a data asset; bind it to "
                                           "azureml:NAME@latest or pass data_asset=NAME",
                                           _input_path(inputs.get(data_input)), job_file)], file=job_file,
                                  title="Invalid retraining")
        data_asset = ref[0]
    version = None if data_version in (None, "", "latest") else str(data_version)
    asset = get_data_asset(data_asset, version)
    return TrainingData(input_name=data_input, asset=asset.name, version=asset.version)


def _model_output_overrides(job_file: str, model_name: str) -> list[str]:
    """``--set`` overrides making the job register its model as ``model_name``, dispatching on ``type``.

    - command / sweep: the job's only model output gets ``name: model_name`` (none: the versions the job
      registered are searched after it ran).
    - AutoML: ``outputs.best_model`` gets ``type: mlflow_model, name: model_name`` (the best model is
      registered under that name instead of the job's name).
    - pipeline: the pipeline's only model-typed output (``outputs: {X: {type: mlflow_model}}``, bound by a
      step with ``${{parent.outputs.X}}``) gets ``name: model_name``; nothing when a pipeline or step output
      already registers ``model_name``.

    Raises:
        ValidationError: A pipeline with no or several model outputs, none naming ``model_name``.
    """
    from prefect_ml.specs import MODEL_TYPES

    data = _job_mapping(job_file)
    outputs = data.get("outputs") if isinstance(data.get("outputs"), dict) else {}
    if data.get("type") == "automl":
        best = outputs.get(AUTOML_MODEL_OUTPUT)
        best = best if isinstance(best, dict) else {}
        if best.get("name") == model_name:
            return []
        prefix = f"outputs.{AUTOML_MODEL_OUTPUT}"
        return ([] if best.get("type") in MODEL_TYPES else [f"{prefix}.type=mlflow_model"]) + \
            [f"{prefix}.name={model_name}"]
    models = {k: v for k, v in outputs.items() if isinstance(v, dict) and v.get("type") in MODEL_TYPES}
    if any(v.get("name") == model_name for v in models.values()):
        return []
    if len(models) == 1:
        return [f"outputs.{next(iter(models))}.name={model_name}"]
    if data.get("type") == "pipeline":
        steps = data.get("jobs") if isinstance(data.get("jobs"), dict) else {}
        for body in steps.values():
            step_outputs = body.get("outputs") if isinstance(body, dict) else None
            if isinstance(step_outputs, dict) and any(
                    isinstance(v, dict) and v.get("name") == model_name for v in step_outputs.values()):
                return []
        raise ValidationError([Problem(
            "outputs", f"cannot tell which pipeline output registers model {model_name!r}: "
            + (f"several model outputs ({', '.join(models)}); give one `name: {model_name}`" if models else
               "no pipeline output has a model type; declare `outputs: {X: {type: mlflow_model}}` and bind the "
               "training step's model output to ${{parent.outputs.X}}"), None, job_file)], file=job_file,
            title="Invalid retraining")
    return []  # the versions the job registered are searched after it ran


def run_challenger(job_file: str, model_name: str, training: TrainingData, *, overrides: list[str] = (),
                   job_name: str | None = None) -> Challenger:
    """Run the training job on ``training``'s data version; it registers the challenger model version.

    Never raises for a failed job or an invalid job file: the failure is returned, so that the caller
    leaves the champion alone.

    Returns:
        The job's name, status, the registered version of ``model_name`` and the error, if any.
    """
    from prefect_ml.client import MLClient
    from prefect_ml.specs import load_job

    job_name = job_name or f"retrain-{limit_name(model_name)[8:]}-{training.asset}-v{training.version}-" \
                           f"{uuid.uuid4().hex[:6]}".replace(".", "-")
    try:
        all_overrides = [*overrides, _data_override(_job_mapping(job_file), training.input_name,
                                                    f"azureml:{training.asset}:{training.version}"),
                         *_model_output_overrides(job_file, model_name)]
        client = MLClient(autostart=False)
        spec = client.jobs.validate(load_job(job_file, overrides=all_overrides), name=job_name)
        job = client.jobs.run(spec)
    except Exception as exc:  # noqa: BLE001 - any failure to start is a failed challenger
        return Challenger(job_name=job_name, status="Failed", error=f"{type(exc).__name__}: {exc}")
    version = None
    for ref in job.registered_models.values():
        name, _, number = ref.rpartition(":")
        if name == model_name:
            version = number
    if version is None and job.succeeded:
        return Challenger(job_name=job_name, status="Failed",
                          error=f"job {job_name} completed but registered no version of model {model_name!r} "
                                f"(registered: {', '.join(job.registered_models.values()) or 'none'}); give its "
                                f"model output `name: {model_name}`")
    return Challenger(job_name=job_name, status=job.status, model_version=version, error=job.error)


def load_table(uri: str):
    """Read held-out data: a CSV or Parquet file, or a folder of them, given as a path, URL or data asset.

    Returns:
        A ``pandas.DataFrame``.

    Raises:
        NotFoundError: The data asset does not exist.
        ValidationError: The location holds no CSV or Parquet file.
    """
    import fsspec
    import pandas as pd

    from prefect_ml.data import resolve_uri

    location = resolve_uri(uri, asset_kind="data")
    fs, path = fsspec.core.url_to_fs(location)
    files = [path] if fs.isfile(path) else sorted(
        p for p in fs.find(path) if p.endswith((".csv", ".parquet", ".pq")))
    if not files:
        raise ValidationError([Problem("evaluation.data", "holds no .csv or .parquet file", uri)],
                              title="Invalid evaluation data")
    frames = []
    for file in files:
        with fs.open(file, "rb") as handle:
            frames.append(pd.read_parquet(handle) if file.endswith((".parquet", ".pq")) else pd.read_csv(handle))
    return pd.concat(frames, ignore_index=True)


def score_version(model_name: str, version: str, frame, evaluation: Evaluation) -> float:
    """Score one registered model version on ``frame`` with ``evaluation.metric``.

    The model is downloaded from the registry and loaded with ``mlflow.pyfunc.load_model``; its
    ``predict`` gets the frame without the target column.

    Raises:
        ValidationError: The frame has no ``evaluation.target_column``.
    """
    import mlflow.artifacts
    import mlflow.pyfunc

    from prefect_ml import tracking

    if evaluation.target_column not in frame.columns:
        raise ValidationError([Problem("evaluation.target_column", "is not a column of the evaluation data "
                                       f"(columns: {', '.join(map(str, frame.columns[:20]))})",
                                       evaluation.target_column)], title="Invalid evaluation")
    client = tracking.get_client()
    source = client.get_model_version_download_uri(model_name, version)
    local = mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=tracking.tracking_uri())
    model = mlflow.pyfunc.load_model(local)
    features = frame.drop(columns=[evaluation.target_column])
    predictions = model.predict(features)
    return float(_metric(evaluation.metric)(frame[evaluation.target_column].to_numpy(), predictions))


def current_champion(model_name: str, alias: str = DEFAULT_ALIAS) -> str | None:
    """The version of ``model_name`` holding ``alias``, or ``None`` (no alias or no such model)."""
    from mlflow.exceptions import MlflowException

    from prefect_ml import tracking

    try:
        return str(tracking.get_client().get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def decide(challenger_score: float, champion_score: float | None, *, greater_is_better: bool,
           margin: float = 0.0) -> tuple[bool, str]:
    """Champion/challenger gate.

    Policy: with no champion, the challenger is promoted; otherwise only when its improvement
    (``challenger - champion`` when greater is better, ``champion - challenger`` otherwise) is
    strictly greater than ``margin``. Ties keep the champion.

    Returns:
        ``(promote, reason)``.
    """
    if champion_score is None:
        return True, "no champion yet"
    improvement = challenger_score - champion_score if greater_is_better else champion_score - challenger_score
    if improvement > margin:
        return True, f"challenger better by {improvement:.6g} (> margin {margin:g})"
    return False, f"challenger not better by more than margin {margin:g} (improvement {improvement:.6g})"


# ------------------------------------------------------------------- tasks
@task(name="resolve-training-data", cache_policy=NO_CACHE, persist_result=False)
def resolve_training_data_task(job_file: str, data_input: str | None, data_asset: str | None,
                               data_version: str | None) -> TrainingData:
    """Task wrapper of :func:`resolve_training_data`."""
    return resolve_training_data(job_file, data_input=data_input, data_asset=data_asset, data_version=data_version)


@task(name="evaluate-champion-challenger", cache_policy=NO_CACHE, persist_result=False)
def evaluate_versions(model_name: str, challenger_version: str, evaluation: Evaluation,
                      alias: str = DEFAULT_ALIAS) -> Decision:
    """Score challenger and champion on the same data with the same metric and apply :func:`decide`.

    A challenger that cannot be scored is not promoted (the reason says why); a champion that cannot
    be scored any more (e.g. its artifacts are gone) is replaced.
    """
    from prefect import get_run_logger

    logger = get_run_logger()
    frame = load_table(evaluation.data)
    champion = current_champion(model_name, alias)
    if champion == challenger_version:
        champion = None
    try:
        challenger_score = score_version(model_name, challenger_version, frame, evaluation)
    except Exception as exc:  # noqa: BLE001 - a challenger that cannot predict never wins
        return Decision(False, f"challenger could not be scored: {type(exc).__name__}: {exc}", None, champion)
    champion_score = None
    if champion is not None:
        try:
            champion_score = score_version(model_name, champion, frame, evaluation)
        except Exception as exc:  # noqa: BLE001
            logger.warning("Champion %s v%s could not be scored (%s); the challenger replaces it.",
                           model_name, champion, exc)
            return Decision(True, f"champion could not be scored: {type(exc).__name__}: {exc}", challenger_score,
                            champion, None)
    promote, reason = decide(challenger_score, champion_score, greater_is_better=evaluation.greater_is_better,
                             margin=evaluation.margin)
    logger.info("%s=%s challenger v%s vs champion %s: %s", evaluation.metric, challenger_score, challenger_version,
                f"v{champion} ({champion_score})" if champion else "none", reason)
    return Decision(promote, reason, challenger_score, champion, champion_score, {"rows": len(frame)})


def _evaluation_ref(evaluation: Evaluation) -> str:
    ref = parse_asset_ref(evaluation.data)
    if ref is None:
        return evaluation.data
    from prefect_ml.data import get_data_asset

    try:
        return get_data_asset(ref[0], ref[1]).uri.removeprefix("azureml:")
    except NotFoundError:
        return evaluation.data


@task(name="record-retrain-decision", cache_policy=NO_CACHE, persist_result=False)
def record_decision(model_name: str, training: TrainingData, challenger: Challenger, decision: Decision | None,
                    evaluation: Evaluation, alias: str = DEFAULT_ALIAS, flow_run_id: str | None = None
                    ) -> dict[str, Any]:
    """Move the alias when promoted, tag both model versions, and write the markdown artifact.

    Tags on the challenger version (lineage data asset version -> job -> model version):
    ``prefect_ml.retrain.data_asset`` (``NAME:VERSION``), ``.job``, ``.flow_run_id``, ``.metric``,
    ``.evaluation_data``, ``.score``, ``.champion_version``, ``.champion_score``, ``.decision``
    (``promoted``/``rejected``), ``.reason``. On the champion it was compared with: ``.last_score``,
    ``.last_challenger``, ``.last_decision`` (``kept``/``replaced``).

    Returns:
        The summary also shown in the artifact (JSON-friendly).
    """
    from prefect.artifacts import create_markdown_artifact

    from prefect_ml import tracking

    client = tracking.get_client()
    evaluation_ref = _evaluation_ref(evaluation)
    summary: dict[str, Any] = {
        "model": model_name, "alias": alias, "data_asset": training.ref, "job": challenger.job_name,
        "job_status": challenger.status, "challenger_version": challenger.model_version,
        "metric": evaluation.metric, "evaluation_data": evaluation_ref, "margin": evaluation.margin,
        "challenger_score": decision.challenger_score if decision else None,
        "champion_version": decision.champion_version if decision else current_champion(model_name, alias),
        "champion_score": decision.champion_score if decision else None,
        "decision": ("promoted" if decision and decision.promote else "rejected" if decision else "failed"),
        "reason": decision.reason if decision else f"challenger failed: {challenger.error}",
    }
    if decision is not None and decision.promote:
        client.set_registered_model_alias(model_name, alias, challenger.model_version)
    if challenger.model_version is not None:
        tags = {"data_asset": training.ref, "job": challenger.job_name, "flow_run_id": flow_run_id or "",
                "metric": evaluation.metric, "evaluation_data": evaluation_ref,
                "score": summary["challenger_score"], "champion_version": summary["champion_version"],
                "champion_score": summary["champion_score"], "decision": summary["decision"],
                "reason": summary["reason"]}
        for key, value in tags.items():
            client.set_model_version_tag(model_name, challenger.model_version, TAG_PREFIX + key,
                                         "" if value is None else str(value))
    if decision is not None and decision.champion_version is not None:
        for key, value in {"last_score": decision.champion_score, "last_challenger": challenger.model_version,
                           "last_decision": "replaced" if decision.promote else "kept"}.items():
            client.set_model_version_tag(model_name, decision.champion_version, TAG_PREFIX + key,
                                         "" if value is None else str(value))
    create_markdown_artifact(key=re.sub(r"[^a-z0-9-]+", "-", f"retrain-{model_name}".lower()),
                             markdown=render_markdown(summary),
                             description=f"Retraining of {model_name}: {summary['decision']}")
    return summary


def render_markdown(summary: dict[str, Any]) -> str:
    """The artifact's text: a table of both scores, the data versions and the decision."""

    def fmt(value: Any) -> str:
        if value is None or value == "":
            return "-"
        return f"{value:.6g}" if isinstance(value, float) else str(value)

    rows = [("", "challenger", "champion"),
            ("model version", fmt(summary["challenger_version"]), fmt(summary["champion_version"])),
            (f"{summary['metric']} on {summary['evaluation_data']}", fmt(summary["challenger_score"]),
             fmt(summary["champion_score"]))]
    table = "\n".join("| " + " | ".join(row) + " |" + ("\n|---|---|---|" if i == 0 else "")
                      for i, row in enumerate(rows))
    return (f"# Retraining of `{summary['model']}`: **{summary['decision']}**\n\n"
            f"- training data: `{summary['data_asset']}`\n- job: `{summary['job']}` ({summary['job_status']})\n"
            f"- alias `{summary['alias']}`: {summary['reason']} (margin {fmt(summary['margin'])})\n\n{table}\n")


__all__ = ["DEFAULT_ALIAS", "METRICS", "Challenger", "Decision", "Evaluation", "TrainingData", "bind_data_asset",
           "current_champion",
           "decide", "evaluate_versions", "limit_name", "load_table", "parse_asset_ref", "record_decision",
           "render_markdown", "resolve_training_data", "retrain_slot", "run_challenger", "score_version"]
