"""The retrain flow: champion/challenger gate on real breast-cancer data, lineage tags, concurrency slot."""

from __future__ import annotations

import importlib.util
import threading
import time
import uuid

import pytest

from helpers import REPO

JOB_FILE = str(REPO / "examples" / "retraining" / "job.yml")
#: A deliberately weak training configuration: one boosting step with a tiny learning rate
#: predicts the majority class (~0.63 accuracy) where the default config reaches ~0.95.
WEAK = ["inputs.max_iter=1", "inputs.learning_rate=0.001"]


def _prepare(tmp_path):
    spec = importlib.util.spec_from_file_location("prepare_data", REPO / "examples" / "retraining" / "prepare_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.prepare(tmp_path / "data")


@pytest.fixture
def assets(tmp_path):
    """Fresh training and holdout data assets (unique names) from the split breast-cancer data."""
    from prefect_ml.data import create_data_asset

    paths = _prepare(tmp_path)
    suffix = uuid.uuid4().hex[:6]
    train, holdout = f"bc-train-{suffix}", f"bc-holdout-{suffix}"
    create_data_asset(train, path=str(paths["train-full"]), type="uri_file")
    create_data_asset(holdout, path=str(paths["holdout"]), type="uri_file")
    return {"train": train, "holdout": holdout, "paths": paths, "model": f"bc-model-{suffix}"}


def _evaluation(assets, **extra):
    return {"data": f"azureml:{assets['holdout']}@latest", "target_column": "target", "metric": "accuracy", **extra}


# ------------------------------------------------------------------ fast unit tests
def test_gate_promotes_without_champion_and_only_beyond_the_margin():
    from prefect_ml.tasks.retrain import decide

    assert decide(0.5, None, greater_is_better=True)[0] is True
    assert decide(0.95, 0.90, greater_is_better=True, margin=0.01)[0] is True
    assert decide(0.905, 0.90, greater_is_better=True, margin=0.01)[0] is False
    assert decide(0.90, 0.90, greater_is_better=True)[0] is False  # ties keep the champion
    assert decide(1.0, 2.0, greater_is_better=False)[0] is True  # rmse: lower wins
    assert decide(2.0, 1.0, greater_is_better=False)[0] is False


def test_asset_references_and_evaluation_settings_are_validated():
    from pydantic import ValidationError as PydanticError

    from prefect_ml.tasks.retrain import Evaluation, limit_name, parse_asset_ref

    assert parse_asset_ref("azureml:bc@latest") == ("bc", None)
    assert parse_asset_ref("azureml:bc:3") == ("bc", "3")
    assert parse_asset_ref("azureml://datastores/x/paths/y") is None
    assert parse_asset_ref("data/train.csv") is None
    assert limit_name("my model/v1") == "retrain-my-model-v1"
    with pytest.raises(PydanticError, match="unknown metric 'auc'"):
        Evaluation(data="x.csv", target_column="y", metric="auc")
    assert Evaluation(data="x.csv", target_column="y", metric="rmse").greater_is_better is False


def test_training_data_resolution_binds_the_newest_or_the_given_version(assets, tmp_path):
    from prefect_ml.data import create_data_asset
    from prefect_ml.exceptions import NotFoundError, ValidationError
    from prefect_ml.tasks.retrain import resolve_training_data

    create_data_asset(assets["train"], path=str(assets["paths"]["train-small"]), type="uri_file")
    newest = resolve_training_data(JOB_FILE, data_input="training_data", data_asset=assets["train"])
    assert (newest.input_name, newest.asset, newest.version) == ("training_data", assets["train"], "2")
    assert resolve_training_data(JOB_FILE, data_asset=assets["train"], data_version="1").version == "1"
    with pytest.raises(NotFoundError, match="has no version '9'"):
        resolve_training_data(JOB_FILE, data_asset=assets["train"], data_version="9")
    with pytest.raises(ValidationError, match="the job has no input 'nope'"):
        resolve_training_data(JOB_FILE, data_input="nope")
    plain = tmp_path / "plain.yml"
    plain.write_text("command: echo\ninputs:\n  data: {type: uri_file, path: x.csv}\n")
    with pytest.raises(ValidationError, match="no input's path is a data asset"):
        resolve_training_data(str(plain))


def test_markdown_report_shows_both_scores_and_the_decision():
    from prefect_ml.tasks.retrain import render_markdown

    text = render_markdown({"model": "m", "decision": "rejected", "data_asset": "train:3", "job": "j",
                            "job_status": "Completed", "alias": "champion", "reason": "not better",
                            "margin": 0.0, "challenger_version": "4", "champion_version": "2",
                            "metric": "accuracy", "evaluation_data": "holdout:1", "challenger_score": 0.6,
                            "champion_score": 0.95})
    assert "**rejected**" in text and "`train:3`" in text
    assert "| accuracy on holdout:1 | 0.6 | 0.95 |" in text


# ------------------------------------------------------------------ end to end (in process)
def _seed_weak_champion(assets) -> str:
    """Register the weak configuration's model (see WEAK) as the champion without running a job; its version."""
    import tempfile

    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.ensemble import HistGradientBoostingClassifier

    from prefect_ml import tracking

    frame = pd.read_csv(assets["paths"]["train-full"])
    features, target = frame.drop(columns=["target"]), frame["target"]
    model = HistGradientBoostingClassifier(max_iter=1, learning_rate=0.001).fit(features, target)
    client = tracking.get_client()
    run_id = client.create_run(client.create_experiment(f"seed-{assets['model']}")).info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        signature = infer_signature(features, model.predict(features))
        mlflow.sklearn.save_model(model, f"{tmp}/model", signature=signature,
                                  serialization_format="cloudpickle")  # as train.py
        client.log_artifacts(run_id, f"{tmp}/model", "model")
    client.set_terminated(run_id)
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/model"
    version = tracking.register_model_version(client, name=assets["model"], run_id=run_id, source=source).version
    client.set_registered_model_alias(assets["model"], "champion", version)
    return str(version)


@pytest.mark.slow
def test_champion_moves_when_the_challenger_is_better_and_stays_when_worse(assets):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from prefect_ml import tracking
    from prefect_ml._prefect import prefect_client
    from prefect_ml.flows.retrain import retrain
    from prefect_ml.tasks.retrain import Evaluation, current_champion, load_table, score_version

    common = dict(job_file=JOB_FILE, model_name=assets["model"], evaluation=_evaluation(assets),
                  data_asset=assets["train"])
    client = tracking.get_client()

    # 1. A weak champion, seeded in-process (no training job): "no champion yet -> promoted" is covered by
    #    the AutoML and pipeline retrain tests below.
    assert current_champion(assets["model"]) is None
    assert _seed_weak_champion(assets) == "1"
    assert current_champion(assets["model"]) == "1"
    weak_score = score_version(assets["model"], "1", load_table(f"azureml:{assets['holdout']}@latest"),
                               Evaluation(**_evaluation(assets)))
    assert weak_score < 0.8

    # 2. The default configuration beats it: the alias moves.
    second = retrain(**common, return_state=True).result()
    assert second["decision"] == "promoted", second
    assert second["champion_version"] == "1" and second["champion_score"] == pytest.approx(weak_score)
    assert second["challenger_score"] > 0.9
    assert current_champion(assets["model"]) == "2"

    # 3. A weak challenger loses against it: the alias stays.
    third = retrain(**common, job_overrides=WEAK, return_state=True)
    assert third.is_completed()
    assert third.result()["decision"] == "rejected"
    assert current_champion(assets["model"]) == "2"

    # Lineage: data asset version -> job -> model version, both scores and the decision in tags.
    tags = client.get_model_version(assets["model"], "3").tags
    assert tags["prefect_ml.retrain.data_asset"] == f"{assets['train']}:1"
    assert tags["prefect_ml.retrain.job"] == third.result()["job"] == tags["prefect_ml.job_name"]
    assert tags["prefect_ml.retrain.decision"] == "rejected"
    assert tags["prefect_ml.retrain.champion_version"] == "2"
    assert float(tags["prefect_ml.retrain.champion_score"]) == pytest.approx(second["challenger_score"])
    assert tags["prefect_ml.retrain.evaluation_data"] == f"{assets['holdout']}:1"
    assert client.get_model_version(assets["model"], "2").tags["prefect_ml.retrain.last_decision"] == "kept"

    # 4. A failing challenger never touches the champion.
    failed = retrain(**common, job_overrides=["command=python -c 'import sys; sys.exit(3)'"], return_state=True)
    assert failed.is_failed()
    assert "alias 'champion' unchanged" in failed.message
    assert current_champion(assets["model"]) == "2"

    key = f"retrain-{assets['model']}"
    with prefect_client() as prefect:
        artifacts = prefect.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    texts = [a.data for a in artifacts]
    assert any("**rejected**" in t and f"`{assets['train']}:1`" in t for t in texts)
    assert any("**failed**" in t for t in texts)


@pytest.mark.slow
def test_retraining_of_one_model_never_runs_twice_at_once():
    """While one retraining holds the model's slot, a second waits (queue) or is dropped (drop)."""
    from prefect_ml.flows.retrain import retrain
    from prefect_ml.tasks.retrain import retrain_slot

    model = f"slot-model-{uuid.uuid4().hex[:6]}"
    inside: list[tuple[str, float, float]] = []
    first_in, release = threading.Event(), threading.Event()

    def hold(label: str):
        with retrain_slot(model, on_busy="queue"):
            start = time.monotonic()
            first_in.set()
            release.wait(300)  # the first holder works until the test lets it finish
            inside.append((label, start, time.monotonic()))

    first = threading.Thread(target=hold, args=("first",))
    first.start()
    assert first_in.wait(60)
    with pytest.raises(TimeoutError):
        with retrain_slot(model, on_busy="drop", drop_wait_seconds=0.5):
            pass
    dropped = retrain(job_file=JOB_FILE, model_name=model, on_busy="drop", return_state=True,
                      evaluation={"data": "unused.csv", "target_column": "y"})
    assert dropped.is_cancelled() and "dropped" in dropped.message
    assert inside == []  # the first holder is still inside
    # Prefect's slot service handles one acquisition per limit at a time within a process, so the queued
    # holder starts only after the drops (deployed runs are separate processes).
    second = threading.Thread(target=hold, args=("queued",))
    second.start()
    release.set()
    first.join(60)
    second.join(60)
    assert [label for label, *_ in inside] == ["first", "queued"]
    (_, _, first_end), (_, second_start, _) = inside
    assert second_start >= first_end


# ------------------------------------------------------------------ AutoML and pipeline training jobs
AUTOML_FILE = str(REPO / "examples" / "retraining" / "automl.yml")
PIPELINE_FILE = str(REPO / "examples" / "retraining" / "pipeline.yml")
#: The smallest AutoML search that still trains and registers a model: two trials of one fast algorithm.
TINY_AUTOML = ["limits.timeout_minutes=0.25", "limits.max_trials=2", "limits.max_concurrent_trials=1",
               "training.allowed_training_algorithms=[LogisticRegression]", "training.enable_vote_ensemble=false",
               "training.enable_stack_ensemble=false"]


def test_training_data_and_model_output_follow_the_job_type(assets, tmp_path):
    """AutoML binds `training_data` and names `outputs.best_model`; pipelines use pipeline inputs/outputs."""
    from prefect_ml.exceptions import ValidationError
    from prefect_ml.tasks.retrain import _data_override, _job_mapping, _model_output_overrides, resolve_training_data

    automl = resolve_training_data(AUTOML_FILE, data_asset=assets["train"])
    assert (automl.input_name, automl.asset, automl.version) == ("training_data", assets["train"], "1")
    assert _data_override(_job_mapping(AUTOML_FILE), "training_data", "azureml:x:1") == "training_data.path=azureml:x:1"
    assert _model_output_overrides(AUTOML_FILE, "m") == ["outputs.best_model.name=m"]
    assert _model_output_overrides(AUTOML_FILE, "breast-cancer-classifier") == []
    bare = tmp_path / "bare-automl.yml"
    bare.write_text("type: automl\ntask: classification\ntarget_column_name: target\n"
                    f"training_data: azureml:{assets['train']}@latest\n"
                    f"validation_data: azureml:{assets['holdout']}@latest\n")
    assert resolve_training_data(str(bare)).input_name == "training_data"  # preferred over validation_data
    assert resolve_training_data(str(bare), data_input="validation_data").asset == assets["holdout"]
    assert _model_output_overrides(str(bare), "m") == ["outputs.best_model.type=mlflow_model",
                                                        "outputs.best_model.name=m"]
    assert _data_override(_job_mapping(str(bare)), "training_data", "azureml:bc:2") == "training_data=azureml:bc:2"
    local = tmp_path / "local-automl.yml"
    local.write_text("type: automl\ntask: classification\ntarget_column_name: target\ntraining_data: ./mltable\n")
    with pytest.raises(ValidationError, match="set training_data.path to azureml:NAME@latest"):
        resolve_training_data(str(local))

    pipeline = resolve_training_data(PIPELINE_FILE, data_asset=assets["train"])
    assert (pipeline.input_name, pipeline.version) == ("training_data", "1")
    assert _data_override(_job_mapping(PIPELINE_FILE), "training_data", "azureml:x:1") == \
        "inputs.training_data=azureml:x:1"
    assert _model_output_overrides(PIPELINE_FILE, "m") == ["outputs.model.name=m"]
    step_bound = tmp_path / "step-bound.yml"
    step_bound.write_text("type: pipeline\njobs:\n  train:\n    command: echo\n"
                          "    inputs: {data: azureml:bc@latest}\n    outputs: {model: {type: mlflow_model}}\n")
    with pytest.raises(ValidationError, match=r"step inputs jobs\.train\.inputs\.data are; declare a pipeline input"):
        resolve_training_data(str(step_bound))
    with pytest.raises(ValidationError, match="no pipeline output has a model type"):
        _model_output_overrides(str(step_bound), "m")
    two = tmp_path / "two-models.yml"
    two.write_text("type: pipeline\noutputs:\n  a: {type: mlflow_model}\n  b: {type: custom_model}\njobs: {}\n")
    with pytest.raises(ValidationError, match=r"several model outputs \(a, b\); give one `name: m`"):
        _model_output_overrides(str(two), "m")


def _assert_promoted_first_challenger(state, assets, *, job_type: str):
    from prefect_ml import tracking
    from prefect_ml.tasks.retrain import current_champion

    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["decision"] == "promoted" and summary["reason"] == "no champion yet"
    assert summary["challenger_version"] == "1" and summary["champion_version"] is None
    assert current_champion(assets["model"]) == "1"
    assert summary["challenger_score"] > 0.8  # evaluated on the held-out data
    tags = tracking.get_client().get_model_version(assets["model"], "1").tags
    assert tags["prefect_ml.retrain.data_asset"] == f"{assets['train']}:1"
    assert float(tags["prefect_ml.retrain.score"]) == pytest.approx(summary["challenger_score"])
    assert tags["prefect_ml.retrain.decision"] == "promoted"
    job = tracking_job(summary["job"])
    assert job.type == job_type and job.status == "Completed"
    assert f"{assets['model']}:1" in job.registered_models.values()


def tracking_job(name: str):
    from prefect_ml.client import MLClient

    return MLClient(autostart=False).jobs.get(name)


@pytest.mark.slow
def test_retrain_with_an_automl_job_registers_evaluates_and_promotes(assets):
    from prefect_ml.flows.retrain import retrain

    state = retrain(job_file=AUTOML_FILE, model_name=assets["model"], evaluation=_evaluation(assets),
                    data_asset=assets["train"], job_overrides=TINY_AUTOML, return_state=True)
    _assert_promoted_first_challenger(state, assets, job_type="automl")


@pytest.mark.slow
def test_retrain_with_a_pipeline_job_registers_evaluates_and_promotes(assets):
    from prefect_ml.flows.retrain import retrain

    state = retrain(job_file=PIPELINE_FILE, model_name=assets["model"], evaluation=_evaluation(assets),
                    data_asset=assets["train"], job_overrides=["inputs.max_iter=20"], return_state=True)
    _assert_promoted_first_challenger(state, assets, job_type="pipeline")
