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
