"""Sweep jobs whose trial is a command (a child command job, a new process per trial) where it matters most:
on a real Dask LocalCluster task runner, and killed mid-way then resumed under the same name.

The function-trial versions of these tests are in ``test_sweep_e2e.py``; command trials go through a different
path (a ``run-trial`` task starting a ``command-job`` subflow, whose script logs to MLflow from its own process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from helpers import cli_in_process, dask_target, executed_on, wait_for, write

pytestmark = pytest.mark.slow

#: The trial: marks its start and end (with its process group, so a test can end an orphan by id) and logs
#: ``y = 10 * x`` as the primary metric from the trial's own process (MLFLOW_RUN_ID is in its environment).
TRIAL_PY = """\
import argparse, os, time
p = argparse.ArgumentParser()
p.add_argument("--x", type=float); p.add_argument("--pause", type=float); p.add_argument("--marker", type=str)
a = p.parse_args()
with open(a.marker, "a") as fh:
    fh.write(f"start {os.environ['PREFECT_ML_JOB_NAME']} {os.getpgrp()} {a.x}\\n")
import mlflow
time.sleep(a.pause)
mlflow.log_metric("y", 10 * a.x)
with open(a.marker, "a") as fh:
    fh.write(f"end {os.environ['PREFECT_ML_JOB_NAME']} {os.getpgrp()} {a.x}\\n")
"""


def _sweep(tmp_path: Path, *, values: list[float], concurrent: int, pause: float, goal: str = "maximize",
           compute: str = "local") -> Path:
    write(tmp_path / "src" / "trial.py", TRIAL_PY)
    return write(tmp_path / "sweep.yml", f"""\
type: sweep
compute: {compute}
trial:
  code: ./src
  command: python trial.py --x ${{{{search_space.x}}}} --pause ${{{{inputs.pause}}}} --marker ${{{{inputs.marker}}}}
inputs: {{pause: {pause}, marker: {tmp_path / 'marker.txt'}}}
sampling_algorithm: grid
search_space:
  x: {{type: choice, values: {values}}}
objective: {{goal: {goal}, primary_metric: y}}
limits: {{max_total_trials: {len(values)}, max_concurrent_trials: {concurrent}}}
""")


def _markers(tmp_path: Path) -> list[tuple[str, str, int, float]]:
    """``(start|end, trial job name, process group id, x)`` for each complete marker line."""
    path = tmp_path / "marker.txt"
    if not path.exists():
        return []
    words = [line.split() for line in path.read_text().splitlines()]
    return [(w[0], w[1], int(w[2]), float(w[3])) for w in words if len(w) == 4]


def _completed_trials(sweep_name: str) -> int:
    """Trials the sweep's Optuna journal records as complete (read without opening the study it is writing)."""
    from optuna.storages.journal._storage import JournalOperation
    from optuna.trial import TrialState

    from prefect_ml.sweep.engine import sweep_dir

    path = sweep_dir(sweep_name) / "optuna.journal"
    count = 0
    for line in path.read_text().splitlines() if path.exists() else ():
        try:
            log = json.loads(line)
        except ValueError:  # a line being written
            continue
        count += log.get("op_code") == JournalOperation.SET_TRIAL_STATE_VALUES and log.get("state") == TrialState.COMPLETE
    return count


def _json(job) -> dict:
    data = job.to_dict()
    return {**data, **(data.pop("details", None) or {})}


def test_command_trials_on_a_dask_target_are_child_flow_runs(tmp_path):
    """``compute: <dask target>``: the sweep runs in this process, each command trial on the target's cluster."""
    from prefect.client.orchestration import get_client
    from prefect_ml import MLClient, tracking

    with dask_target(threads=3) as (target, cluster):
        path = _sweep(tmp_path, values=[0.3, 0.9, 0.5], concurrent=3, pause=0, compute=target)
        name = f"cmd_dask_{uuid.uuid4().hex[:8]}"
        job = _json(MLClient().jobs.create_or_update(str(path), name=name))
        assert job["status"] == "Completed", job["error"]
        assert executed_on(cluster) == 3  # one Dask task per trial, on the target's cluster
    trials = job["trials"]
    assert sorted(t["parameters"]["x"] for t in trials) == [0.3, 0.5, 0.9]
    assert all(t["status"] == "Completed" and t["metric"] == pytest.approx(10 * t["parameters"]["x"]) for t in trials)
    assert job["best_trial"]["parameters"] == {"x": 0.9} and job["metrics"]["y"] == pytest.approx(9.0)
    # each trial ran its own process, once
    assert sorted(m[3] for m in _markers(tmp_path) if m[0] == "end") == [0.3, 0.5, 0.9]
    assert len({m[2] for m in _markers(tmp_path)}) == 3

    mlflow = tracking.get_client()
    client = MLClient()
    with get_client(sync_client=True) as prefect:
        for t in trials:  # a command-job flow run nested under the sweep's flow run, its MLflow run a child run
            flow_run = prefect.read_flow_run(t["prefect_flow_run_id"])
            assert flow_run.name == t["name"] and flow_run.parent_task_run_id is not None
            parent_task = prefect.read_task_run(flow_run.parent_task_run_id)
            assert str(parent_task.flow_run_id) == job["prefect_flow_run_id"]
            assert mlflow.get_run(t["mlflow_run_id"]).data.tags["mlflow.parentRunId"] == job["mlflow_run_id"]
            assert client.jobs.get(t["name"]).status == "Completed"
    # az ml job list: the sweep is a top-level job, its trials are listed with --parent-job-name
    children = cli_in_process("job", "list", "--parent-job-name", name, "--output", "json")
    assert children.returncode == 0, children.stderr
    assert sorted(j["name"] for j in json.loads(children.stdout)) == sorted(t["name"] for t in trials)
    top = [j["name"] for j in json.loads(cli_in_process("job", "list", "--max-results", "200", "--output",
                                                        "json").stdout)]
    assert name in top and not any(t["name"] in top for t in trials)


def test_killed_command_trial_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    from optuna.trial import TrialState

    from prefect_ml import MLClient, tracking
    from prefect_ml.specs import load_job
    from prefect_ml.sweep.engine import sweep_dir, trial_attrs
    from prefect_ml.sweep.sampling import SweepStudy

    values = [0.1, 0.2, 0.3, 0.4]
    path = _sweep(tmp_path, values=values, concurrent=2, pause=0.5)
    name = f"cmd_resume_{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-m", "prefect_ml", "job", "create", "--file", str(path), "--name", name],
                            env=dict(os.environ), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _completed_trials(name) >= 1 or proc.poll() is not None, timeout=300,
                 what="a trial recorded as finished")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its sweep die at once, mid-way
        proc.wait()
    # A trial's command runs in its own session (so that cancelling a trial kills its whole group): a trial
    # that was running is not in the CLI's process group. End such an orphan by its group id before resuming.
    ended = {m[1] for m in _markers(tmp_path) if m[0] == "end"}
    for _, trial, pgid, _ in [m for m in _markers(tmp_path) if m[0] == "start" and m[1] not in ended]:
        try:  # only if that process is still this trial's script (a group id can be reused)
            if str(tmp_path) in Path(f"/proc/{pgid}/cmdline").read_text():
                os.killpg(pgid, signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass
    spec = load_job(path)
    before = SweepStudy(spec, sweep_dir(name), name).study.get_trials(deepcopy=False)
    finished_x = {trial_attrs(t)["parameters"]["x"] for t in before if t.state == TrialState.COMPLETE}
    assert 1 <= len(finished_x) < len(values), finished_x

    job = _json(MLClient().jobs.create_or_update(str(path), name=name))
    assert job["status"] == "Completed", job["error"]
    assert sorted(t["parameters"]["x"] for t in job["trials"]) == values
    assert all(t["status"] == "Completed" for t in job["trials"]), job["trials"]
    starts = Counter(m[3] for m in _markers(tmp_path) if m[0] == "start")
    assert all(starts[x] == 1 for x in finished_x), starts  # each finished trial's process ran exactly once
    assert all(starts[x] >= 1 for x in values), starts
    assert job["best_trial"]["parameters"] == {"x": 0.4} and job["metrics"]["y"] == pytest.approx(4.0)
    parents = {tracking.get_client().get_run(t["mlflow_run_id"]).data.tags["mlflow.parentRunId"]
               for t in job["trials"]}
    assert parents == {job["mlflow_run_id"]}  # the same sweep run before and after the resume
