"""Sweep jobs end to end: real Prefect API, real MLflow (SQLite), real Optuna, real trial processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from helpers import cli, cli_json, pid_alive, wait_for, write

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


def test_azure_hello_sweep_runs_unchanged(azure_examples, tmp_path):
    target = tmp_path / "hello-sweep.yml"
    shutil.copy(azure_examples / "jobs" / "basics" / "hello-sweep.yml", target)
    target.chmod(0o644)
    write(tmp_path / "src" / "hello-sweep.py", HELLO_SWEEP_PY)
    name = _unique("hello_sweep")
    result, job = cli_json("job", "create", "--file", str(target), "--name", name, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert job["type"] == "sweep" and job["status"] == "Completed"
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


def _steps_sweep(tmp_path: Path, *, values, steps: int, pause: float, concurrent: int, extra: str = "") -> Path:
    write(tmp_path / "src" / "steps.py", STEPS_PY)
    marker = tmp_path / "marker.txt"
    return write(tmp_path / "sweep.yml", f"""\
type: sweep
trial:
  command: >-
    python steps.py --x ${{{{search_space.x}}}} --steps ${{{{inputs.steps}}}} --pause {pause} --marker {marker}
  code: src
inputs:
  steps: {steps}
sampling_algorithm: grid
search_space:
  x: {{type: choice, values: {list(values)}}}
objective: {{goal: maximize, primary_metric: accuracy}}
limits: {{max_total_trials: {len(values)}, max_concurrent_trials: {concurrent}}}
{extra}""")


def _markers(tmp_path: Path) -> list[tuple[str, str, int, float]]:
    """(start|end, trial name, pid, x) lines the trials wrote."""
    path = tmp_path / "marker.txt"
    if not path.exists():
        return []
    return [(w[0], w[1], int(w[2]), float(w[3])) for w in (line.split() for line in path.read_text().splitlines())
            if len(w) == 4]


def test_early_termination_cancels_bad_trials_and_records_the_result(tmp_path):
    # 0.9 and 0.2 run side by side (first batch); 0.2 takes 30 x 0.5 s, so the bandit stops it long before
    path = _steps_sweep(tmp_path, values=[0.9, 0.2], steps=30, pause=0.5, concurrent=2,
                        extra="early_termination: {type: bandit, slack_factor: 0.2, delay_evaluation: 2}\n")
    name = _unique("et")
    result, job = cli_json("job", "create", "--file", str(path), "--name", name, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
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
    shown = cli_json("job", "show", trials[0.9]["name"])[1]
    assert shown["status"] == "Completed" and shown["metrics"]["accuracy"] == 0.9


def test_missing_primary_metric_fails_listing_the_logged_metrics(tmp_path):
    path = _steps_sweep(tmp_path, values=[0.5], steps=1, pause=0, concurrent=1)
    path.write_text(path.read_text().replace("primary_metric: accuracy", "primary_metric: acuracy"))
    result, job = cli_json("job", "create", "--file", str(path), "--name", _unique("nometric"), timeout=600)
    assert result.returncode == 1
    assert job["status"] == "Failed"
    assert "'acuracy'" in job["error"] and "Metrics it logged: accuracy" in job["error"]


def test_killed_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    from collections import Counter

    from optuna.trial import TrialState

    from prefect_ml.specs import load_job
    from prefect_ml.sweep.engine import sweep_dir
    from prefect_ml.sweep.sampling import SweepStudy

    values = [0.1, 0.2, 0.3, 0.4]
    path = _steps_sweep(tmp_path, values=values, steps=2, pause=0.2, concurrent=1)
    name = _unique("resume")
    proc = subprocess.Popen([sys.executable, "-m", "prefect_ml", "job", "create", "--file", str(path), "--name", name],
                            env=dict(os.environ), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: sum(1 for m in _markers(tmp_path) if m[0] == "end") >= 2 or proc.poll() is not None,
                 timeout=300, what="two finished trials")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its sweep die at once, mid-way
        proc.wait()
    # trial processes run in their own sessions: let the one that was running end
    wait_for(lambda: not any(pid_alive(m[2]) for m in _markers(tmp_path)), timeout=60, what="orphan trials")
    spec = load_job(path)
    before = SweepStudy(spec, sweep_dir(name), name).study.get_trials(deepcopy=False)
    finished_x = {t.user_attrs["parameters"]["x"] for t in before if t.state == TrialState.COMPLETE}
    assert 1 <= len(finished_x) < len(values)

    result, job = cli_json("job", "create", "--file", str(path), "--name", name, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert job["status"] == "Completed"
    assert sorted(t["parameters"]["x"] for t in job["trials"]) == values
    assert all(t["status"] == "Completed" for t in job["trials"])
    starts = Counter(m[3] for m in _markers(tmp_path) if m[0] == "start")
    assert all(starts[x] == 1 for x in finished_x), starts  # each finished trial ran exactly once
    assert job["best_trial"]["parameters"] == {"x": 0.4}
    # the sweep's MLflow run is the same parent before and after the resume
    from prefect_ml import tracking

    parents = {tracking.get_client().get_run(t["mlflow_run_id"]).data.tags["mlflow.parentRunId"]
               for t in job["trials"]}
    assert parents == {job["mlflow_run_id"]}


def test_trials_run_on_the_task_runner_of_the_compute_dask(tmp_path, monkeypatch):
    from prefect_dask import DaskTaskRunner

    from prefect_ml import MLClient
    from prefect_ml.compute import targets

    calls = []

    def dask_runner(target, *, max_workers=None):
        calls.append((target.name, max_workers))
        return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                              cluster_kwargs={"processes": False, "n_workers": 1, "threads_per_worker": max_workers,
                                              "dashboard_address": None})

    monkeypatch.setattr(targets, "task_runner_for", dask_runner)
    path = _steps_sweep(tmp_path, values=[0.3, 0.6], steps=1, pause=0, concurrent=2)
    job = MLClient().jobs.create_or_update(str(path), name=_unique("dask"))
    assert job.status == "Completed", job.error
    assert calls == [("local", 2)]
    assert sorted(t["parameters"]["x"] for t in job.details["trials"]) == [0.3, 0.6]
    assert job.details["best_trial"]["metric"] == 0.6
