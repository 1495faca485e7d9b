"""Pipeline jobs end to end on the real Prefect API and MLflow store: Azure's hello pipelines, concurrency,
step reuse, failure propagation and resume, and the example training pipeline."""

from __future__ import annotations

import shutil
import textwrap
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from helpers import REPO, cli_json, write
from prefect_ml.exceptions import ValidationError

pytestmark = pytest.mark.slow


def _name() -> str:
    return f"pl_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def ml_client():
    from prefect_ml import MLClient

    return MLClient()


def _steps(job) -> dict[str, dict]:
    return {s["name"]: s for s in job.details["steps"]}


@pytest.mark.parametrize("file", ["hello-pipeline-io-serverless.yml", "hello-pipeline-default-artifacts-serverless.yml",
                                  "hello-pipeline-customize-output-file-serverless.yml"])
def test_azure_shell_pipelines_run_unchanged(ml_client, azure_examples, file):
    from prefect_ml import load_job

    job = ml_client.jobs.create_or_update(load_job(azure_examples / "jobs/basics" / file), name=_name())
    assert job.status == "Completed", (job.error, job.details)
    steps = _steps(job)
    assert all(s["status"] == "Completed" and s["mlflow_run_id"] for s in steps.values())
    if "customize-output-file" in file:  # ${{parent.outputs.output}} with ${{name}} = the pipeline's name
        assert Path(job.outputs["output"]).read_text() == "world\n" and job.name in job.outputs["output"]
    else:  # world_job read hello_job's output through the datastore
        world = steps["world_job"]
        log = (Path(ml_client.jobs.get(world["job_name"]).log_path)).read_text()
        assert "world" in log


def test_cluster_compute_is_rejected_before_running_with_the_fix(ml_client, azure_examples):
    from prefect_ml import load_job

    with pytest.raises(ValidationError) as exc:
        ml_client.jobs.validate(load_job(azure_examples / "jobs/basics/hello-pipeline-settings.yml"))
    problem = exc.value.problems[0]
    assert problem.field == "settings.default_compute" and "settings.default_compute=local" in problem.message
    spec = ml_client.jobs.validate(load_job(azure_examples / "jobs/basics/hello-pipeline-settings.yml",
                                            overrides=["settings.default_compute=local"]))
    assert spec.step_compute("hello_job") == "local"


DIAMOND = """
type: pipeline
display_name: diamond
inputs:
  a_text: alpha
  b_text: beta
settings:
  default_compute: local
jobs:
  a:
    command: sleep 1 && echo ${{inputs.t}} > ${{outputs.out}}/a.txt
    inputs: {t: "${{parent.inputs.a_text}}"}
    outputs: {out: }
  b:
    command: sleep 1 && echo ${{inputs.t}} > ${{outputs.out}}/b.txt
    inputs: {t: "${{parent.inputs.b_text}}"}
    outputs: {out: }
  join:
    command: cat ${{inputs.x}}/a.txt ${{inputs.y}}/b.txt > ${{outputs.out}}/joined.txt
    inputs:
      x: ${{parent.jobs.a.outputs.out}}
      y: ${{parent.jobs.b.outputs.out}}
    outputs:
      out: ${{parent.outputs.joined}}
outputs:
  joined: {type: uri_folder}
"""


def _interval(step):
    start = datetime.fromisoformat(step["started_at"])
    return start, start + timedelta(seconds=step["duration_seconds"])


def test_independent_steps_overlap_and_identical_steps_are_reused(ml_client, tmp_path):
    from prefect_ml import load_job

    path = write(tmp_path / "diamond.yml", DIAMOND)
    first = ml_client.jobs.create_or_update(load_job(path), name=_name())
    assert first.status == "Completed", first.error
    steps = _steps(first)
    (a_start, a_end), (b_start, b_end) = _interval(steps["a"]), _interval(steps["b"])
    assert a_start < b_end and b_start < a_end  # a and b ran at the same time
    assert _interval(steps["join"])[0] >= max(a_end, b_end) - timedelta(seconds=0.5)
    assert Path(first.outputs["joined"], "joined.txt").read_text() == "alpha\nbeta\n"
    assert not any(s["reused"] for s in steps.values())

    second = ml_client.jobs.create_or_update(load_job(path), name=_name())
    assert second.status == "Completed", second.error
    reused = _steps(second)
    assert all(s["reused"] for s in reused.values())
    assert reused["join"]["reused_from"] == steps["join"]["job_name"]
    assert Path(second.outputs["joined"], "joined.txt").read_text() == "alpha\nbeta\n"

    third = ml_client.jobs.create_or_update(load_job(path, overrides=["inputs.b_text=gamma"]), name=_name())
    changed = _steps(third)
    assert changed["a"]["reused"] and not changed["b"]["reused"] and not changed["join"]["reused"]
    assert Path(third.outputs["joined"], "joined.txt").read_text() == "alpha\ngamma\n"

    result, shown = cli_json("job", "show", third.name)
    assert result.returncode == 0 and shown["type"] == "pipeline"
    assert [(s["name"], s["status"], s["reused"]) for s in shown["steps"]] == [
        ("a", "Completed", True), ("b", "Completed", False), ("join", "Completed", False)]
    assert all(s["prefect_flow_run_id"] and s["mlflow_run_id"] and s["duration_seconds"] is not None
               for s in shown["steps"])


STEPS = """
import shutil
from pathlib import Path

from prefect_ml import Input, Output, command_component


@command_component
def check(marker: str, out: Output(type="uri_folder") = None):
    if not Path(marker).exists():
        raise SystemExit(f"marker {marker} missing")
    Path(out, "ok.txt").write_text("ok")


@command_component
def after(inp: Input(type="uri_folder"), out: Output(type="uri_folder") = None):
    shutil.copy(Path(inp, "ok.txt"), Path(out, "copied.txt"))


@command_component
def independent(text: str = "x", times: int = 2, out: Output(type="uri_folder") = None):
    Path(out, "text.txt").write_text(text * times)
"""


def test_failure_cancels_dependents_and_a_rerun_resumes(ml_client, tmp_path):
    import importlib.util

    from prefect_ml import pipeline

    write(tmp_path / "code" / "steps.py", STEPS)  # the code folder (snapshotted); the marker stays outside it
    spec = importlib.util.spec_from_file_location("steps", tmp_path / "code" / "steps.py")
    steps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(steps)
    marker = tmp_path / "marker"

    @pipeline(continue_on_step_failure=True)
    def guarded(marker_path: str):
        checked = steps.check(marker=marker_path)
        steps.after(inp=checked.outputs.out)
        kept = steps.independent(text="ab", times=3)
        return {"text": kept.outputs.out}

    job = guarded(marker_path=str(marker))
    failed = ml_client.jobs.create_or_update(job, name=_name())
    assert failed.status == "Failed" and "step check failed" in failed.error
    states = {n: s["status"] for n, s in _steps(failed).items()}
    assert states == {"check": "Failed", "after": "Canceled", "independent": "Completed"}
    assert "missing" in _steps(failed)["check"]["error"], _steps(failed)["check"]
    assert "check" in _steps(failed)["after"]["error"]

    marker.write_text("present")
    resumed = ml_client.jobs.create_or_update(job, name=_name())
    assert resumed.status == "Completed", resumed.error
    rerun = _steps(resumed)
    assert [rerun[n]["reused"] for n in ("independent", "check", "after")] == [True, False, False], rerun
    assert Path(resumed.outputs["text"], "text.txt").read_text() == "ababab"


def test_example_training_pipeline_yaml_then_python(ml_client):
    import importlib.util

    from prefect_ml import load_job

    from_yaml = ml_client.jobs.create_or_update(load_job(REPO / "examples/pipelines/pipeline.yml"), name=_name())
    assert from_yaml.status == "Completed", from_yaml.error
    steps = _steps(from_yaml)
    evaluated = ml_client.jobs.get(steps["evaluate_model"]["job_name"])
    assert evaluated.metrics["accuracy"] > 0.95 and evaluated.metrics["roc_auc"] > 0.98
    registered = ml_client.jobs.get(steps["register_model"]["job_name"]).registered_models["registered_model"]
    assert registered.startswith("breast-cancer-pipeline-classifier:")

    spec = importlib.util.spec_from_file_location("example_pipeline", REPO / "examples/pipelines/pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from_python = ml_client.jobs.create_or_update(module.build(accuracy_threshold=0.999), name=_name())
    assert from_python.status == "Completed", from_python.error
    python_steps = _steps(from_python)
    # same components, code and data: the deterministic steps are the YAML run's; register always runs
    assert [python_steps[n]["reused"] for n in ("prepare_data", "train_model", "evaluate_model", "register_model")] \
        == [True, True, True, False]
    assert not ml_client.jobs.get(python_steps["register_model"]["job_name"]).registered_models  # below threshold


def test_without_continue_on_step_failure_running_steps_are_canceled(ml_client, tmp_path):
    from prefect_ml import load_job

    path = write(tmp_path / "stop.yml", textwrap.dedent("""
        type: pipeline
        jobs:
          broken: {command: sleep 4 && exit 3}
          slow: {command: sleep 120, is_deterministic: false}
          later:
            command: echo ${{inputs.x}}
            inputs: {x: "${{parent.jobs.slow.outputs.out}}"}
        """).replace("slow: {command: sleep 120, is_deterministic: false}",
                     "slow: {command: sleep 120, is_deterministic: false, outputs: {out: }}"))
    job = ml_client.jobs.create_or_update(load_job(path), name=_name())
    states = {n: s["status"] for n, s in _steps(job).items()}
    assert job.status == "Failed" and states == {"broken": "Failed", "slow": "Canceled", "later": "Canceled"}
    assert "exited with code 3" in _steps(job)["broken"]["error"]
    assert "canceled" in _steps(job)["slow"]["error"].lower()  # killed, not left to finish its sleep
