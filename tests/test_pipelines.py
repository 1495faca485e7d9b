"""Pipeline jobs end to end on the real Prefect API and MLflow store: Azure's hello pipelines, concurrency,
step reuse, failure propagation and resume, and the example training pipeline."""

from __future__ import annotations

import json
import shutil
import textwrap
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from helpers import REPO, cli_in_process, write
from prefect_ml.exceptions import ValidationError

pytestmark = pytest.mark.slow


def _name() -> str:
    return f"pl_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def ml_client():
    from prefect_ml import MLClient

    return MLClient()


def _show(name: str) -> dict:
    """``prefect-ml job show NAME --output json`` (in this process), parsed."""
    result = cli_in_process("job", "show", name, "--output", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _steps(job) -> dict[str, dict]:
    return {s["name"]: s for s in job.details["steps"]}


def _log(ml_client, step) -> str:
    return Path(ml_client.jobs.get(step["job_name"]).log_path).read_text()


def test_every_azure_hello_pipeline_runs_unchanged(ml_client, azure_examples):
    """All 14 ``hello-pipeline*.yml`` files are made of shell steps, and all run unchanged.

    The 7 ``-serverless`` files run on the local compute. Their twins name ``azureml:cpu-cluster`` (created
    here as a local compute target) and differ in nothing else: their steps are the same components with the
    same inputs, so they complete by reusing the twins' steps, as Azure reuses them.
    """
    from prefect_ml import load_job
    from prefect_ml.compute import targets

    files = sorted((azure_examples / "jobs/basics").glob("hello-pipeline*.yml"), key=lambda f: "serverless" not in f.name)
    assert len(files) == 14
    targets.create_compute(targets.parse_spec({"name": "cpu-cluster", "type": "local"}))
    try:
        for file in files:
            job = ml_client.jobs.create_or_update(load_job(file), name=_name())
            assert job.status == "Completed", (file.name, job.error, job.details)
            steps = _steps(job)
            assert all(s["status"] == "Completed" and s["mlflow_run_id"] for s in steps.values()), file.name
            assert all(s["reused"] for s in steps.values()) == ("serverless" not in file.name), file.name
            if "-io" in file.name or "default-artifacts" in file.name:  # world_job read hello_job's output
                assert "world" in _log(ml_client, steps["world_job"])
            elif "customize-output-file" in file.name:  # ${{parent.outputs.output}}, ${{name}} = the pipeline's
                assert Path(job.outputs["output"]).read_text() == "world\n"
                if "serverless" in file.name:
                    assert job.name in job.outputs["output"]
            elif "customize-output-folder" in file.name:
                assert Path(steps["hello_world"]["outputs"]["output"], "hello_world-folder.txt").read_text() == "world\n"
            elif "-abc" in file.name:
                assert "hello hello world" in _log(ml_client, steps["a"])
                world = Path(steps["b"]["outputs"]["world_output"], "world.txt")
                assert world.read_text() == "world\n" and "/world.txt" in _log(ml_client, steps["c"])
            else:  # hello-pipeline, hello-pipeline-settings
                assert "hello" in _log(ml_client, steps["hello_job"])
    finally:
        targets.delete_compute("cpu-cluster")


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

    shown = _show(third.name)
    assert shown["type"] == "pipeline"
    assert [(s["name"], s["status"], s["reused"]) for s in shown["steps"]] == [
        ("a", "Completed", True), ("b", "Completed", False), ("join", "Completed", False)]
    assert all(s["prefect_flow_run_id"] and s["mlflow_run_id"] and s["duration_seconds"] is not None
               and s["prefect_flow_run_url"].endswith(s["prefect_flow_run_id"]) for s in shown["steps"])
    assert shown["steps"][1]["duration_seconds"] > 0 and shown["steps"][1]["compute"] == "local"
    assert shown["steps"][0]["reused_from"] == steps["a"]["job_name"]  # a reused step links the run it reused


def _words(text: str) -> str:
    return " ".join(text.split())


def test_cli_summary_marks_reused_steps_and_job_list_shows_top_level_jobs(tmp_path):
    """``job create`` / ``job show`` mark the steps a second run reused; ``job list`` lists the pipelines, not their
    steps (Azure's ``az ml job list``), and ``--parent-job-name`` lists a pipeline's child jobs."""
    tag = uuid.uuid4().hex[:8]  # the steps' command differs from other tests': nothing here reuses their steps
    path = write(tmp_path / "two.yml", textwrap.dedent(f"""
        type: pipeline
        settings: {{default_compute: local}}
        jobs:
          first:
            command: echo {tag} > ${{{{outputs.out}}}}/a.txt
            outputs: {{out: }}
          second:
            command: cat ${{{{inputs.x}}}}/a.txt
            inputs: {{x: "${{{{parent.jobs.first.outputs.out}}}}"}}
        """))
    one, two = _name(), _name()
    created = cli_in_process("job", "create", "--file", str(path), "--name", one)
    assert created.returncode == 0, created.stderr
    assert f"step first Completed job {one}_first" in _words(created.stdout)
    assert "reused from" not in created.stdout

    again = cli_in_process("job", "create", "--file", str(path), "--name", two)
    assert again.returncode == 0, again.stderr
    assert f"step first Completed (reused from {one}_first)" in _words(again.stdout)
    assert f"step second Completed (reused from {one}_second)" in _words(again.stdout)
    shown = _show(two)
    assert [(s["name"], s["status"], s["reused"], s["reused_from"]) for s in shown["steps"]] == [
        ("first", "Completed", True, f"{one}_first"), ("second", "Completed", True, f"{one}_second")]
    table = cli_in_process("job", "show", two, "--output", "table")
    assert f"Completed (reused from {one}_second)" in table.stdout

    listed = cli_in_process("job", "list", "--max-results", "200", "--output", "json")
    names = [job["name"] for job in json.loads(listed.stdout)]
    assert one in names and two in names and not any(n.startswith((f"{one}_", f"{two}_")) for n in names)
    children = cli_in_process("job", "list", "--parent-job-name", one, "--output", "json")
    assert children.returncode == 0, children.stderr
    assert sorted((j["name"], j["status"]) for j in json.loads(children.stdout)) == [
        (f"{one}_first", "Completed"), (f"{one}_second", "Completed")]
    assert json.loads(cli_in_process("job", "list", "--parent-job-name", two, "--output", "json").stdout) == []
    table = cli_in_process("job", "list", "--parent-job-name", one)
    assert f"{one}_first" in table.stdout and f"{one}_second" in table.stdout
    missing = cli_in_process("job", "list", "--parent-job-name", "no_such_job_x")
    assert missing.returncode == 2 and "not found" in missing.stderr


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


@command_component(is_deterministic=False)
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
    # Retrying the failed job: submitted again under its name, it resumes from the failed step; the finished
    # step is this run's own (kept even though `independent` is not deterministic), the failed one runs again.
    resumed = ml_client.jobs.create_or_update(job, name=failed.name)
    assert resumed.status == "Completed", resumed.error
    assert resumed.prefect_flow_run_id != failed.prefect_flow_run_id
    rerun = _steps(resumed)
    assert [rerun[n]["reused"] for n in ("independent", "check", "after")] == [True, False, False], rerun
    assert rerun["independent"]["reused_from"] == f"{failed.name}_independent"
    assert Path(resumed.outputs["text"], "text.txt").read_text() == "ababab"
    assert ml_client.jobs.get(failed.name).status == "Completed"
    with pytest.raises(ValidationError, match="already exists"):  # a completed job keeps its name
        ml_client.jobs.validate(job, name=failed.name)


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
    # the pipeline lists the model versions its steps registered, keyed by the pipeline output
    assert from_yaml.registered_models == {"registered_model": registered}
    assert steps["register_model"]["registered_models"] == {"registered_model": registered}

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
    assert from_python.registered_models == {}


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


REMOTE = """
type: pipeline
settings: {default_compute: local}
outputs:
  copy: {type: uri_folder}
jobs:
  on_pool:
    compute: azureml:POOL
    command: echo "$STEP_WHERE" > ${{outputs.out}}/where.txt
    outputs: {out: }
  here:
    command: cp ${{inputs.x}}/where.txt ${{outputs.copy}}/where.txt && echo "local-$STEP_WHERE" >> ${{outputs.copy}}/where.txt
    inputs: {x: "${{parent.jobs.on_pool.outputs.out}}"}
    outputs: {copy: "${{parent.outputs.copy}}"}
"""


def test_a_step_on_a_process_pool_feeds_a_local_step(ml_client, start_worker, tmp_path):
    from prefect_ml import load_job
    from prefect_ml._prefect import prefect_client
    from prefect_ml.compute import targets

    target = targets.create_compute(targets.parse_spec({"name": f"pl-pool-{uuid.uuid4().hex[:8]}", "type": "process"}))
    try:
        start_worker(target.name, env={"STEP_WHERE": "worker"})  # only the worker's processes have it
        job = ml_client.jobs.create_or_update(load_job(write(tmp_path / "remote.yml",
                                                             REMOTE.replace("POOL", target.name))), name=_name())
        assert job.status == "Completed", (job.error, job.details)
        # the local step read what the worker's step wrote, through the datastore
        assert Path(job.outputs["copy"], "where.txt").read_text() == "worker\nlocal-\n"
        steps = _steps(job)
        assert steps["on_pool"]["compute"] == f"azureml:{target.name}" and steps["here"]["compute"] == "local"
        with prefect_client() as client:
            remote = client.read_flow_run(steps["on_pool"]["prefect_flow_run_id"])
            local = client.read_flow_run(steps["here"]["prefect_flow_run_id"])
            parent_task = client.read_task_run(remote.parent_task_run_id)
        assert remote.work_pool_name == target.name and remote.deployment_id is not None  # command-job/POOL
        assert local.deployment_id is None and local.parent_task_run_id is not None  # a subflow
        assert parent_task.name == "step-on_pool" and str(parent_task.flow_run_id) == job.prefect_flow_run_id
    finally:
        targets.delete_compute(target.name)


def test_sweep_step_on_a_work_pool_is_rejected_naming_the_step(ml_client, tmp_path):
    from prefect_ml import load_job
    from prefect_ml.compute import targets

    target = targets.create_compute(targets.parse_spec({"name": f"pl-pool-{uuid.uuid4().hex[:8]}", "type": "process"}))
    try:
        path = write(tmp_path / "p.yml", SWEEP.replace("default_compute: local", f"default_compute: {target.name}"))
        write(tmp_path / "src" / "trial.py", TRIAL)
        with pytest.raises(ValidationError) as exc:
            ml_client.jobs.validate(load_job(path))
        (problem,) = exc.value.problems
        assert problem.field == "settings.default_compute" and "step tune is a sweep step" in problem.message
        assert target.name in problem.message and "local or a dask target" in problem.message
    finally:
        targets.delete_compute(target.name)


TRIAL = """
import os, sys
from pathlib import Path
from mlflow.tracking import MlflowClient

x, out = float(sys.argv[1]), Path(sys.argv[2])
MlflowClient().log_metric(os.environ["MLFLOW_RUN_ID"], "score", x)
out.mkdir(parents=True, exist_ok=True)
(out / "x.txt").write_text(str(x))
"""

SWEEP = """
type: pipeline
settings: {default_compute: local}
outputs:
  best: {type: uri_folder}
jobs:
  tune:
    type: sweep
    trial:
      code: src
      command: python trial.py ${{search_space.x}} ${{outputs.model}}
    sampling_algorithm: grid
    search_space:
      x: {type: choice, values: [0.2, 0.7]}
    objective: {goal: maximize, primary_metric: score}
    limits: {max_total_trials: 2, max_concurrent_trials: 1}
    outputs:
      model: {type: uri_folder}
  use_best:
    command: cp ${{inputs.best}}/x.txt ${{outputs.out}}/best.txt
    inputs: {best: "${{parent.jobs.tune.outputs.model}}"}
    outputs: {out: "${{parent.outputs.best}}"}
"""


def test_sweep_step_outputs_its_best_trial_to_the_next_step(ml_client, tmp_path):
    from prefect_ml import load_job

    write(tmp_path / "src" / "trial.py", TRIAL)
    job = ml_client.jobs.create_or_update(load_job(write(tmp_path / "p.yml", SWEEP)), name=_name())
    assert job.status == "Completed", (job.error, job.details)
    tune = _steps(job)["tune"]
    sweep = ml_client.jobs.get(tune["job_name"])
    assert sweep.type == "sweep" and len(sweep.details["trials"]) == 2
    assert tune["best_trial"] == sweep.details["best_trial"]["name"]
    assert sweep.details["best_trial"]["metric"] == 0.7
    assert Path(job.outputs["best"], "best.txt").read_text() == "0.7"  # the best trial's output, downstream


AUTOML = """
type: pipeline
settings: {default_compute: local}
inputs:
  iris: {type: uri_file, path: ./iris.csv}
outputs:
  model: {type: mlflow_model}
jobs:
  auto:
    type: automl
    task: classification
    primary_metric: accuracy
    target_column_name: target
    training_data: ${{parent.inputs.iris}}
    validation_data_size: 0.3
    limits: {timeout_minutes: 1, max_trials: 2, max_concurrent_trials: 1}
    training:
      allowed_training_algorithms: [LogisticRegression]
      enable_vote_ensemble: false
      enable_stack_ensemble: false
    outputs:
      best_model: ${{parent.outputs.model}}
  inspect:
    command: ls ${{inputs.model}} > ${{outputs.listing}}/files.txt
    inputs:
      model: {type: mlflow_model, path: "${{parent.jobs.auto.outputs.best_model}}"}
    outputs: {listing: }
"""


def test_automl_step_registers_its_best_model_and_feeds_the_next_step(ml_client, tmp_path):
    from sklearn.datasets import load_iris

    from prefect_ml import load_job

    load_iris(as_frame=True).frame.to_csv(tmp_path / "iris.csv", index=False)
    job = ml_client.jobs.create_or_update(load_job(write(tmp_path / "p.yml", AUTOML)), name=_name())
    assert job.status == "Completed", (job.error, job.details)
    steps = _steps(job)
    auto = ml_client.jobs.get(steps["auto"]["job_name"])
    assert auto.type == "automl" and auto.details["best_model"]["registered_model"]
    ref = auto.registered_models["best_model"]
    assert steps["auto"]["registered_models"] == {"best_model": ref}
    listing = Path(ml_client.jobs.get(steps["inspect"]["job_name"]).outputs["listing"], "files.txt").read_text()
    assert "MLmodel" in listing.split()  # the best model reached the next step
    assert _show(job.name)["registered_models"] == {"model": ref}


RETRIED = """
type: pipeline
settings: {default_compute: local}
jobs:
  once:
    command: echo ran >> COUNT && echo done > ${{outputs.out}}/once.txt
    is_deterministic: false
    outputs: {out: }
  flaky:
    command: test -f FLAG || { touch FLAG; exit 4; }; cp ${{inputs.x}}/once.txt ${{outputs.out}}/
    inputs: {x: "${{parent.jobs.once.outputs.out}}"}
    outputs: {out: "${{parent.outputs.out}}"}
outputs:
  out: {type: uri_folder}
"""


def test_prefect_flow_run_retry_resumes_from_the_failed_step(ml_client, tmp_path):
    """A Prefect retry of the pipeline's flow run (``retries`` on the flow) keeps the steps that finished."""
    from prefect_ml import load_job
    from prefect_ml._prefect import prefect_client
    from prefect_ml.flows.pipeline_job import pipeline_job

    text = RETRIED.replace("COUNT", str(tmp_path / "count.txt")).replace("FLAG", str(tmp_path / "flag"))
    spec = ml_client.jobs.validate(load_job(write(tmp_path / "p.yml", text)), name=_name())
    state = pipeline_job.with_options(retries=1, retry_delay_seconds=0)(
        job=spec.model_dump(mode="json", by_alias=True), job_name=spec.name, return_state=True)
    assert state.is_completed(), state.message
    with prefect_client() as client:
        assert client.read_flow_run(state.state_details.flow_run_id).run_count == 2  # failed once, then retried
    assert (tmp_path / "count.txt").read_text() == "ran\n"  # the finished step did not run again
    job = ml_client.jobs.get(spec.name)
    assert job.status == "Completed" and Path(job.outputs["out"], "once.txt").read_text() == "done\n"
    steps = _steps(job)
    assert steps["once"]["reused"] and steps["once"]["reused_from"] == f"{spec.name}_once"
    assert not steps["flaky"]["reused"] and steps["flaky"]["status"] == "Completed"
