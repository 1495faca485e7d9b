"""Sweep jobs end to end: real Prefect API, real MLflow (SQLite), real Optuna, real trial processes.

Command trials (a child command job and a process each) are exercised where processes matter (the Azure
file, a component trial cancelled by early termination); the rest uses function trials (a Prefect task
each, no process), which share the trial loop, limits, cancellation and resume.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from helpers import cli_json, dask_target, executed_on, pid_alive, wait_for, write

TESTS = Path(__file__).resolve().parent

pytestmark = pytest.mark.slow

HELLO_SWEEP_PY = """\
import argparse, os, random, mlflow
p = argparse.ArgumentParser()
p.add_argument("--A", type=float); p.add_argument("--B", type=str); p.add_argument("--C", type=float)
a = p.parse_args()
for step in range(3):
    mlflow.log_metric("random_metric", random.random() * a.C, step=step)
print("B", a.B, "C", a.C)
"""


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _json(job) -> dict:
    """The job as ``job show --output json`` prints it (details at the top level)."""
    data = job.to_dict()
    return {**data, **(data.pop("details", None) or {})}


def test_azure_hello_sweep_runs_unchanged(azure_examples, tmp_path):
    from prefect_ml import MLClient

    target = tmp_path / "hello-sweep.yml"
    shutil.copy(azure_examples / "jobs" / "basics" / "hello-sweep.yml", target)
    target.chmod(0o644)
    write(tmp_path / "src" / "hello-sweep.py", HELLO_SWEEP_PY)
    name = _unique("hello_sweep")
    job = _json(MLClient().jobs.create_or_update(str(target), name=name))
    assert job["type"] == "sweep" and job["status"] == "Completed", job["error"]
    trials = job["trials"]
    assert len(trials) == 4 and all(t["status"] == "Completed" for t in trials)
    assert all(t["parameters"]["B"] in ("hello", "world", "hello_world") and 0.1 <= t["parameters"]["C"] <= 1.0
               for t in trials)
    best = job["best_trial"]
    assert best["metric"] == min(t["metric"] for t in trials)  # goal: minimize
    assert job["metrics"]["random_metric"] == best["metric"]
    from prefect_ml import tracking

    client = tracking.get_client()
    for t in trials:
        run = client.get_run(t["mlflow_run_id"])
        assert run.data.tags["mlflow.parentRunId"] == job["mlflow_run_id"]
        assert len(client.get_metric_history(run.info.run_id, "random_metric")) == 3


STEPS_PY = """\
import argparse, os, time, mlflow
p = argparse.ArgumentParser()
p.add_argument("--x", type=float); p.add_argument("--steps", type=int); p.add_argument("--pause", type=float)
p.add_argument("--marker", type=str)
a = p.parse_args()
with open(a.marker, "a") as fh:
    fh.write(f"start {os.environ['PREFECT_ML_JOB_NAME']} {os.getpid()} {a.x}\\n")
for step in range(a.steps):
    mlflow.log_metric("accuracy", a.x, step=step)
    time.sleep(a.pause if a.x < 0.5 else 0)  # poor trials are slow: the policy has time to stop them
with open(a.marker, "a") as fh:
    fh.write(f"end {os.environ['PREFECT_ML_JOB_NAME']} {os.getpid()} {a.x}\\n")
"""


def _function_sweep(tmp_path: Path, *, values, steps: int, pause: float, concurrent: int, extra: str = "",
                    limits: str = "") -> Path:
    """A sweep file whose trial is tests/sweep_functions.py's ``steps`` (a function trial, YAML form)."""
    marker = tmp_path / "marker.txt"
    return write(tmp_path / "sweep.yml", f"""\
type: sweep
trial: {{function: "sweep_functions:steps", code: {TESTS}}}
inputs: {{steps: {steps}, pause: {pause}, marker: {marker}}}
sampling_algorithm: grid
search_space:
  x: {{type: choice, values: {list(values)}}}
objective: {{goal: maximize, primary_metric: accuracy}}
limits: {{max_total_trials: {len(values)}, max_concurrent_trials: {concurrent}{limits}}}
{extra}""")


def _markers(tmp_path: Path) -> list[tuple]:
    """(start|end, trial name, pid, x) lines of command trials; (start|end, trial name, x) of function trials."""
    path = tmp_path / "marker.txt"
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines()]
    return [(w[0], w[1], int(w[2]), float(w[3])) if len(w) == 4 else (w[0], w[1], float(w[2]))
            for w in lines if len(w) in (3, 4)]


COMPONENT_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
type: command
name: steps
code: ./src
command: >-
  python steps.py --x ${{inputs.x}} --steps ${{inputs.steps}} --pause ${{inputs.pause}} --marker ${{inputs.marker}}
inputs:
  x: {type: number}
  steps: {type: integer, default: 30}
  pause: {type: number}
  marker: {type: string}
"""


def test_early_termination_cancels_bad_trials_of_a_component_trial(tmp_path):
    from prefect_ml import MLClient

    # the trial is a command component (trial: file:component.yml) with its own code folder
    write(tmp_path / "component" / "src" / "steps.py", STEPS_PY)
    write(tmp_path / "component" / "steps.yml", COMPONENT_YML)
    # 0.9 and 0.2 run side by side (first batch); 0.2 takes 30 x 0.5 s, so the bandit stops it long before
    path = write(tmp_path / "sweep.yml", f"""\
type: sweep
trial: file:component/steps.yml
inputs: {{pause: 0.5, marker: {tmp_path / 'marker.txt'}}}
sampling_algorithm: grid
search_space:
  x: {{type: choice, values: [0.9, 0.2]}}
objective: {{goal: maximize, primary_metric: accuracy}}
limits: {{max_total_trials: 2, max_concurrent_trials: 2}}
early_termination: {{type: bandit, slack_factor: 0.2, delay_evaluation: 2}}
""")
    name = _unique("et")
    job = _json(MLClient().jobs.create_or_update(str(path), name=name))
    assert job["status"] == "Completed", job["error"]
    trials = {t["parameters"]["x"]: t for t in job["trials"]}
    assert trials[0.9]["status"] == "Completed" and not trials[0.9]["terminated_early"]
    assert trials[0.2]["status"] == "Canceled" and trials[0.2]["terminated_early"]
    assert job["best_trial"]["parameters"] == {"x": 0.9} and job["best_trial"]["metric"] == 0.9
    from prefect_ml import tracking

    history = tracking.get_client().get_metric_history(trials[0.2]["mlflow_run_id"], "accuracy")
    assert 2 <= len(history) < 30  # stopped before its 30 steps
    # the terminated trial's process is gone, it never wrote its end marker
    cut = [pid for kind, trial, pid, _ in _markers(tmp_path) if kind == "start" and trial == trials[0.2]["name"]]
    assert len(cut) == 1 and not pid_alive(cut[0])
    assert ("end", trials[0.2]["name"], cut[0], 0.2) not in _markers(tmp_path)
    # artifacts: leaderboard table and plot image on the sweep's flow run
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[job["prefect_flow_run_id"]])))
    kinds = {a.key: a for a in artifacts}
    assert kinds["sweep-leaderboard"].type == "table" and kinds["sweep-plot"].type == "image"
    assert "accuracy" in str(kinds["sweep-leaderboard"].data) and name in str(kinds["sweep-leaderboard"].data)
    # each trial is a child flow run of the sweep and shows up in job show
    shown = _json(MLClient().jobs.get(trials[0.9]["name"]))
    assert shown["status"] == "Completed" and shown["metrics"]["accuracy"] == 0.9
    command = tracking.get_client().get_run(shown["mlflow_run_id"]).data.tags["prefect_ml.command"]
    assert command.startswith("python steps.py --x ${{inputs.x}} --steps ${{inputs.steps}}")  # the component's


def test_missing_primary_metric_fails_listing_the_logged_metrics(tmp_path):
    path = _function_sweep(tmp_path, values=[0.5], steps=1, pause=0, concurrent=1)
    path.write_text(path.read_text().replace("primary_metric: accuracy", "primary_metric: acuracy"))
    result, job = cli_json("job", "create", "--file", str(path), "--name", _unique("nometric"), timeout=600)
    assert result.returncode == 1
    assert job["status"] == "Failed"
    assert "'acuracy'" in job["error"] and "Metrics it logged: accuracy" in job["error"]


def test_a_streamed_function_sweep_prints_each_trial_and_reads_back_as_mlflow_has_it(tmp_path):
    """``--stream`` prints the sweep's progress (function trials have no output of their own); `job show`
    reads the trials from the sweep's own record, which says what its MLflow child runs say."""
    from helpers import cli_in_process
    from prefect_ml import MLClient, tracking
    from prefect_ml.sweep.engine import _mlflow_trials

    path = _function_sweep(tmp_path, values=[0.2, 0.7, 0.5, 0.6], steps=2, pause=0, concurrent=2)
    name = _unique("stream")
    result = cli_in_process("job", "create", "--file", str(path), "--name", name, "--stream")
    assert result.returncode == 0, result.stdout + result.stderr
    for n in range(4):  # 2 running + 2 queued, each drawn, started and recorded once
        assert result.stdout.count(f"[{name}] Trial {name}_{n}: {{\"x\": ") == 1, result.stdout
        assert result.stdout.count(f"[{name}] Trial {name}_{n} Completed") == 1, result.stdout
    job = MLClient().jobs.get(name)
    assert [t["status"] for t in job.details["trials"]] == ["Completed"] * 4
    assert job.details["trials"] == _mlflow_trials(tracking.get_client().get_run(job.mlflow_run_id), "accuracy")
    assert all(t["prefect_task_run_id"] for t in job.details["trials"])


def test_a_function_trial_runs_in_its_mlflow_run_and_leaves_the_thread_clean():
    """The trial's run is active while the function runs (no store call to activate it); afterwards this
    thread has no active run, a nested run the function left open is ended, and the trial's run is left
    for the sweep to end with its outcome."""
    import mlflow

    from prefect_ml import tracking
    from prefect_ml.sweep.function_trials import _run_function_trial

    client = tracking.get_client()
    experiment = tracking.ensure_experiment(client, "function-trial-unit")
    run = client.create_run(experiment)
    state = _run_function_trial("sweep_functions:leaves_a_nested_run_open", str(TESTS), {"x": 0.25}, run,
                                "accuracy", tracking.tracking_uri())
    outcome = state.result()
    assert outcome["state"] == "COMPLETED" and outcome["started"] and outcome["history"] == [0.25]
    assert outcome["ended"] is False and mlflow.active_run() is None
    assert client.get_metric_history(run.info.run_id, "accuracy")[0].value == 0.25
    assert client.get_run(run.info.run_id).info.status == "RUNNING"  # the sweep ends it
    nested = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                filter_string=f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
    assert [r.info.status for r in nested] == ["FINISHED"]


def _trials_by_x(job: dict) -> dict:
    return {t["parameters"]["x"]: t for t in job["trials"]}


def test_function_trials_log_in_child_runs_and_stop_early():
    """sweep(trial=fn): task runs of the sweep's flow run, MLflow child runs, bandit stops the poor trials."""
    from prefect.client.orchestration import get_client

    import sweep_functions
    from prefect_ml import BanditPolicy, Choice, MLClient, tracking
    from prefect_ml.sweep import sweep

    sweep_job = sweep(trial=sweep_functions.steps, search_space={"x": Choice([0.9, 0.2, 0.3])},
                      inputs={"steps": 40, "pause": 0.1}, primary_metric="accuracy", goal="Maximize",
                      sampling_algorithm={"type": "grid", "seed": 0}, max_concurrent_trials=2,
                      early_termination_policy=BanditPolicy(slack_factor=0.2, delay_evaluation=2))
    assert sweep_job.trial == {"function": "sweep_functions:steps", "code": str(TESTS)}
    job = _json(MLClient().jobs.create_or_update(sweep_job, name=_unique("fn")))
    assert job["status"] == "Completed", job["error"]
    trials = _trials_by_x(job)
    assert trials[0.9]["status"] == "Completed" and not trials[0.9]["terminated_early"]
    assert job["best_trial"]["parameters"] == {"x": 0.9} and job["metrics"]["accuracy"] == 0.9
    client = tracking.get_client()
    for x in (0.2, 0.3):  # stopped at a log call, well before their 40 steps
        assert trials[x]["status"] == "Canceled" and trials[x]["terminated_early"], trials[x]
        assert 2 <= len(client.get_metric_history(trials[x]["mlflow_run_id"], "accuracy")) < 40
        assert client.get_run(trials[x]["mlflow_run_id"]).info.status == "KILLED"
    assert len(client.get_metric_history(trials[0.9]["mlflow_run_id"], "accuracy")) == 40
    task_runs = set()
    for t in job["trials"]:
        run = client.get_run(t["mlflow_run_id"])
        assert run.data.tags["mlflow.parentRunId"] == job["mlflow_run_id"]
        assert run.data.params["x"] == str(t["parameters"]["x"])
        task_runs.add(run.data.tags["prefect.task_run_id"])
    with get_client(sync_client=True) as prefect:  # each trial is a task run of the sweep's flow run
        runs = [prefect.read_task_run(t) for t in task_runs]
    assert {str(r.flow_run_id) for r in runs} == {job["prefect_flow_run_id"]}
    assert sorted(r.name for r in runs) == sorted(f"trial-{t['name']}" for t in job["trials"])
    assert {r.state.type.value for r in runs} == {"COMPLETED", "CANCELLED"}


def test_function_trials_on_a_dask_target_run_in_trial_slots():
    """``compute: <dask target>``: the sweep runs in this process; its function trials run on the target's
    cluster in max_concurrent_trials long-lived trial slots (one Dask task each), each trial a task run."""
    from prefect.client.orchestration import get_client

    import sweep_functions
    from prefect_ml import MLClient, RandInt
    from prefect_ml.sweep import sweep

    import logging

    errors: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = errors.append  # the cluster runs in this process: its scheduler logs here
    logging.getLogger("distributed").addHandler(handler)
    try:
        with dask_target(threads=2) as (target, cluster):
            # the function logs nothing: its return value is the primary metric
            sweep_job = sweep(trial=sweep_functions.returns, search_space={"x": RandInt(upper=100)},
                              primary_metric="y", goal="minimize", sampling_algorithm={"type": "random", "seed": 3},
                              max_total_trials=5, max_concurrent_trials=2, compute=target)
            job = MLClient().jobs.create_or_update(sweep_job, name=_unique("dask"))
            assert job.status == "Completed", job.error
            assert executed_on(cluster) == 2  # two trial slots ran the five trials
    finally:
        logging.getLogger("distributed").removeHandler(handler)
    # e.g. the scheduler's CRITICAL "Closed comm" when a client closed while subscribed to its events
    assert not errors, [record.getMessage() for record in errors]
    trials = job.details["trials"]
    assert len(trials) == 5 and all(t["metric"] == 2 * t["parameters"]["x"] for t in trials)
    assert job.details["best_trial"]["metric"] == min(t["metric"] for t in trials)
    with get_client(sync_client=True) as prefect:  # each trial is a task run of the sweep's flow run
        runs = [prefect.read_task_run(t["prefect_task_run_id"]) for t in trials]
    assert sorted(r.name for r in runs) == sorted(f"trial-{t['name']}" for t in trials)
    assert {str(r.flow_run_id) for r in runs} == {job.prefect_flow_run_id}
    assert {r.state.type.value for r in runs} == {"COMPLETED"}


def test_trial_slots_that_die_fail_their_trials_instead_of_hanging(monkeypatch):
    """A trial slot that dies (here: the trial task's engine raises a BaseException) ends; the trial it was
    running and, once no slot is left, every trial still queued fail with its error, and the sweep fails."""
    import sweep_functions
    from prefect_ml import Choice, MLClient
    from prefect_ml.sweep import function_trials, sweep

    class SlotKilled(BaseException):
        pass

    def dies(**_):
        raise SlotKilled("the slot's worker went away")

    monkeypatch.setattr(function_trials, "run_function_trial", dies)
    with dask_target(threads=2) as (target, _):
        sweep_job = sweep(trial=sweep_functions.returns, search_space={"x": Choice([1, 2, 3, 4, 5])},
                          primary_metric="y", goal="minimize", sampling_algorithm="grid", max_concurrent_trials=2,
                          compute=target)
        started = time.monotonic()
        job = MLClient().jobs.create_or_update(sweep_job, name=_unique("slots"))
    assert time.monotonic() - started < 60
    assert job.status == "Failed", job.status
    assert "trial slot" in job.error and "SlotKilled" in job.error, job.error
    assert {t["status"] for t in job.details["trials"]} == {"Failed"}


def test_trial_slots_that_cannot_be_started_fail_the_trials_given_to_them(monkeypatch):
    """The slots are submitted from a thread; when that fails, trials queued for them fail at once (no hang)."""
    from distributed import LocalCluster
    from prefect_dask import DaskTaskRunner

    from prefect_ml.sweep.trial_slots import TrialSlots

    def refuse(*_, **__):
        raise RuntimeError("no room on the cluster")

    with LocalCluster(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        with DaskTaskRunner(address=cluster.scheduler_address) as runner:
            monkeypatch.setattr(runner, "submit", refuse)
            slots = TrialSlots(runner, 2, _unique("nostart"))
            future = slots.submit("t0", {})
            future.wait(30)
            outcome = future.result(raise_on_failure=False)
            slots.close(timeout_seconds=5)
    assert isinstance(outcome, RuntimeError), outcome
    assert "could not be started" in str(outcome) and "no room on the cluster" in str(outcome)
    assert slots.slots == []


def test_a_trial_whose_dask_worker_leaves_fails_at_once_and_the_sweep_goes_on_when_a_worker_joins(tmp_path):
    """The scheduler's remove-worker event names the slot's task: its trial fails then, with the reason (before,
    the sweep showed it Running until a worker came back); the slot runs again on the next worker."""
    import threading

    import sweep_functions
    from prefect_ml import Choice, MLClient, tracking
    from prefect_ml.sweep import sweep

    marker = tmp_path / "marks.txt"
    name = _unique("lostworker")
    with dask_target(threads=1) as (target, cluster):
        sweep_job = sweep(trial=sweep_functions.steps, search_space={"x": Choice([0.1, 0.2])},
                          inputs={"steps": 4, "pause": 1.0, "marker": str(marker)}, primary_metric="accuracy",
                          goal="maximize", sampling_algorithm="grid", max_concurrent_trials=1, compute=target)
        jobs = []
        runner = threading.Thread(target=lambda: jobs.append(MLClient().jobs.create_or_update(sweep_job, name=name)))
        runner.start()
        wait_for(lambda: marker.exists() and "start" in marker.read_text(), timeout=90)
        cluster.scale(0)  # the only worker leaves while the first trial runs
        client = tracking.get_client()

        def lost_trial_failed():
            runs = client.search_runs([e.experiment_id for e in client.search_experiments()], filter_string=(
                f"tags.`prefect_ml.status` = 'Failed' and tags.`prefect_ml.sweep` = '{name}'"))
            return runs[0] if runs else None

        lost = wait_for(lost_trial_failed, timeout=30)
        cluster.scale(1)  # a worker joins: the slot runs again and takes the next trial
        runner.join(120)
    assert "lost with its Dask worker" in lost.data.tags["prefect_ml.error"], lost.data.tags
    job = jobs[0]
    assert job.status == "Completed", job.error
    statuses = sorted(t["status"] for t in job.details["trials"])
    assert statuses == ["Completed", "Failed"], statuses


def test_ctrl_c_of_a_sweep_whose_dask_cluster_has_no_worker_left_exits_at_once(tmp_path):
    """With no worker left, the queued trials would wait for one: Ctrl-C does not wait for them (a fresh user
    waited ~2 min: 30 s per queued trial, then 30 s for the slots)."""
    from prefect_ml import tracking

    name = _unique("noworker")
    with dask_target(threads=1) as (target, cluster):
        path = _function_sweep(tmp_path, values=[0.1, 0.2, 0.3], steps=6, pause=1.0, concurrent=1,
                               extra=f"compute: {target}\n")
        out = tmp_path / "out.txt"
        with out.open("w") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "prefect_ml", "job", "create", "--file", str(path),
                                     "--name", name, "--stream"], env=dict(os.environ), start_new_session=True,
                                    stdout=fh, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: any(m[0] == "start" for m in _markers(tmp_path)) or proc.poll() is not None,
                     timeout=120, what="the first trial's start")
            assert proc.poll() is None, out.read_text()
            cluster.scale(0)  # the only worker leaves: its trial fails, the queued one waits for a worker
            client = tracking.get_client()
            wait_for(lambda: client.search_runs([e.experiment_id for e in client.search_experiments()],
                                                filter_string=f"tags.`prefect_ml.status` = 'Failed' and "
                                                              f"tags.`prefect_ml.sweep` = '{name}'"),
                     timeout=30, what="the lost trial's failure")
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
            started = time.monotonic()
            rc = proc.wait(timeout=120)
            waited = time.monotonic() - started
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    output = out.read_text()
    assert rc == 130, output
    assert "interrupted" in output and "lost with its Dask worker" in output, output
    assert waited < 60, waited  # it waited out 30 s per queued trial and 30 s for the slots before


def test_trial_timeout_stops_one_trial_and_timeout_stops_the_sweep(tmp_path):
    from prefect_ml import MLClient, tracking

    client = tracking.get_client()
    # trial_timeout: 0.1 would log 10 x 1 s and is stopped after 3 s; 0.9 (10 logs, no pause) completes
    path = _function_sweep(tmp_path / "trial", values=[0.1, 0.9], steps=10, pause=1.0, concurrent=2,
                           limits=", trial_timeout: 3")
    job = _json(MLClient().jobs.create_or_update(str(path), name=_unique("trial_timeout")))
    assert job["status"] == "Completed", job["error"]
    trials = _trials_by_x(job)
    assert trials[0.9]["status"] == "Completed"
    assert trials[0.1]["status"] == "Canceled" and not trials[0.1]["terminated_early"]
    assert "trial_timeout" in client.get_run(trials[0.1]["mlflow_run_id"]).data.tags["prefect_ml.error"]
    assert ("end", trials[0.9]["name"], 0.9) in _markers(tmp_path / "trial")
    assert not [m for m in _markers(tmp_path / "trial") if m[0] == "end" and m[2] == 0.1]

    # timeout: the two running trials are stopped after 1 s, the third never starts
    path = _function_sweep(tmp_path / "sweep", values=[0.1, 0.2, 0.3], steps=40, pause=0.2, concurrent=2,
                           limits=", timeout: 1")
    job = _json(MLClient().jobs.create_or_update(str(path), name=_unique("timeout")))
    assert job["status"] == "Failed" and "No trial completed" in job["error"] and "limits.timeout" in job["error"]
    trials = job["trials"]
    assert len(trials) == 2 and all(t["status"] == "Canceled" for t in trials)
    assert all("limits.timeout" in client.get_run(t["mlflow_run_id"]).data.tags["prefect_ml.error"] for t in trials)
    assert not [m for m in _markers(tmp_path / "sweep") if m[0] == "end"]


def test_cancelling_a_sweep_cancels_its_running_trials(tmp_path):
    import threading

    from prefect_ml import MLClient

    path = _function_sweep(tmp_path, values=[0.1, 0.2, 0.3, 0.4], steps=100, pause=0.2, concurrent=2)
    name = _unique("cancel")
    client = MLClient()
    result = {}
    runner = threading.Thread(target=lambda: result.update(job=client.jobs.create_or_update(str(path), name=name)))
    runner.start()
    try:
        wait_for(lambda: sum(m[0] == "start" for m in _markers(tmp_path)) >= 2, timeout=120, what="two trials")
        client.jobs.cancel(name)
    finally:
        runner.join(120)
    job = _json(result["job"])
    assert job["status"] == "Canceled"
    trials = _trials_by_x(job)
    assert len(trials) == 2 and all(t["status"] == "Canceled" for t in trials.values())
    assert not [m for m in _markers(tmp_path) if m[0] == "end"]


def test_killed_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    from collections import Counter

    from optuna.trial import TrialState

    from prefect_ml import MLClient
    from prefect_ml.specs import load_job
    from prefect_ml.sweep.engine import sweep_dir, trial_attrs
    from prefect_ml.sweep.sampling import SweepStudy

    values = [0.1, 0.2, 0.3, 0.4]
    path = _function_sweep(tmp_path, values=values, steps=3, pause=0.3, concurrent=1)
    name = _unique("resume")
    proc = subprocess.Popen([sys.executable, "-m", "prefect_ml", "job", "create", "--file", str(path), "--name", name],
                            env=dict(os.environ), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: sum(1 for m in _markers(tmp_path) if m[0] == "end") >= 2 or proc.poll() is not None,
                 timeout=300, what="two finished trials")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its sweep and its running trial die at once, mid-way
        proc.wait()
    spec = load_job(path)
    before = SweepStudy(spec, sweep_dir(name), name).study.get_trials(deepcopy=False)
    finished_x = {trial_attrs(t)["parameters"]["x"] for t in before if t.state == TrialState.COMPLETE}
    assert 1 <= len(finished_x) < len(values)

    job = _json(MLClient().jobs.create_or_update(str(path), name=name))
    assert job["status"] == "Completed", job["error"]
    assert sorted(t["parameters"]["x"] for t in job["trials"]) == values
    assert all(t["status"] == "Completed" for t in job["trials"])
    starts = Counter(m[2] for m in _markers(tmp_path) if m[0] == "start")
    assert all(starts[x] == 1 for x in finished_x), starts  # each finished trial ran exactly once
    assert job["best_trial"]["parameters"] == {"x": 0.4}
    # the sweep's MLflow run is the same parent before and after the resume
    from prefect_ml import tracking

    parents = {tracking.get_client().get_run(t["mlflow_run_id"]).data.tags["mlflow.parentRunId"]
               for t in job["trials"]}
    assert parents == {job["mlflow_run_id"]}


def test_a_retried_sweep_flow_run_continues_without_rerunning_finished_trials(tmp_path, monkeypatch):
    """Prefect retries of the sweep-job flow (``retries``) re-enter it with the same job name: it resumes."""
    from collections import Counter

    from optuna.trial import TrialState

    from prefect_ml import MLClient
    from prefect_ml.flows import sweep_job as sweep_flow_module
    from prefect_ml.sweep.engine import SweepRunner, trial_attrs

    path = _function_sweep(tmp_path, values=[0.1, 0.2, 0.3, 0.4], steps=1, pause=0, concurrent=1)
    original_finish = SweepRunner._finish
    calls = []
    finished_before: set = set()
    lost: list = []

    def failing_once(self, r):  # the first attempt dies after recording two trials
        calls.append(r.name)
        if len(calls) == 3:
            lost.append(r.values["x"])
            finished_before.update(trial_attrs(t)["parameters"]["x"] for t in self.study.study.get_trials()
                                   if t.state == TrialState.COMPLETE)
            raise RuntimeError("the sweep process lost its database connection")
        return original_finish(self, r)

    monkeypatch.setattr(SweepRunner, "_finish", failing_once)
    retried = sweep_flow_module.sweep_job.with_options(retries=1, retry_delay_seconds=0)
    monkeypatch.setattr(sweep_flow_module, "sweep_job", retried)
    name = _unique("retry")
    job = _json(MLClient().jobs.create_or_update(str(path), name=name))
    assert job["status"] == "Completed", job["error"]
    assert not job["error"]  # the first attempt's error went with it (a fresh-user trial saw it stay)
    assert sorted(t["parameters"]["x"] for t in job["trials"]) == [0.1, 0.2, 0.3, 0.4]
    assert all(t["status"] == "Completed" for t in job["trials"])
    assert len(calls) > 3  # the flow run was retried
    starts = Counter(m[2] for m in _markers(tmp_path) if m[0] == "start")
    assert len(finished_before) == 2 and all(starts[x] == 1 for x in finished_before), starts
    assert starts[lost[0]] == 2  # its result was lost with the first attempt: it ran again


def test_dask_workers_without_the_prefect_api_url_are_warned_about(capsys):
    """Dask workers in other processes need PREFECT_API_URL: Prefect's log/event shipping there reads the
    worker's own environment (a fresh-user trial's workers started temporary Prefect servers)."""
    import logging
    from types import SimpleNamespace

    from distributed import Client, LocalCluster

    from prefect_ml.sweep.engine import _check_dask_workers

    class Recorder(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    messages: list[str] = []
    logger = logging.getLogger("prefect_ml.tests.dask_workers")
    logger.addHandler(Recorder())
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={"PREFECT_API_URL": "http://127.0.0.1:1/api"}) as cluster, Client(cluster) as client:
        warned = _check_dask_workers(SimpleNamespace(client=client), logger=logger, echo=True)
        assert warned == sorted(cluster.scheduler_info["workers"])
        assert len(messages) == 1 and "PREFECT_API_URL=" + os.environ["PREFECT_API_URL"] in messages[0]
    # --stream shows the sweep's own output only: the warning is printed there too (a fresh-user trial missed it)
    assert "Warning: " + messages[0] in capsys.readouterr().err
