"""What a prefect-ml job adds to running the same training script directly.

Runs a training script N times directly (``python train.py ...`` in a subprocess) and N times as a
command job on the local compute (``MLClient().jobs.create_or_update``) in this same process, against
an API that is already up, and prints the mean overhead per job in seconds and the ratio of the
mean job time to the mean direct time. Target: under 1.0 s added per job.

The first job in a process also pays one-time imports and MLflow's store initialisation; it is run
as a warm-up and reported separately.

Usage::

    python benchmarks/command_overhead.py [--runs 10] [--script examples/jobs/breast-cancer/job.yml]

By default the script runs with its own throw-away ``PREFECT_HOME`` / ``PREFECT_ML_HOME`` and its own
``prefect server start`` (stopped at the end); ``--use-current-api`` uses the API already configured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TRAIN_SCRIPT = """
import argparse, time
import mlflow
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

p = argparse.ArgumentParser(); p.add_argument("--c", type=float, default=1.0); a = p.parse_args()
X, y = load_breast_cancer(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0, stratify=y)
model = make_pipeline(StandardScaler(), LogisticRegression(C=a.c, max_iter=500)).fit(Xtr, ytr)
mlflow.log_param("C", a.c)
mlflow.log_metric("accuracy", model.score(Xte, yte))
print("accuracy", model.score(Xte, yte))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="Runs of each kind (default 10).")
    parser.add_argument("--use-current-api", action="store_true", help="Use the configured Prefect API and homes.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="prefect-ml-bench-"))
    server_pid = None
    if not args.use_current_api:
        os.environ["PREFECT_HOME"] = str(work / "prefect-home")
        os.environ["PREFECT_ML_HOME"] = str(work / "prefect-ml-home")
        os.environ.pop("PREFECT_API_URL", None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        from prefect_ml.compute import server

        port = server.free_port()
        process = server.spawn(port, os.environ["PREFECT_HOME"], work / "server.log")
        server_pid = process.pid
        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
        server.wait_healthy(os.environ["PREFECT_API_URL"], process, log_path=work / "server.log")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    try:
        run(args.runs, work)
    finally:
        if server_pid is not None:
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=10)
            EventsWorker.drain_all(timeout=10)
            server.terminate(server_pid)


def run(runs: int, work: Path) -> None:
    from prefect_ml import MLClient, command
    from prefect_ml import tracking

    code = work / "src"
    code.mkdir()
    (code / "train.py").write_text(TRAIN_SCRIPT)
    client = MLClient()
    job = command(code=str(code), command="python train.py --c ${{inputs.c}}", inputs={"c": 1.0},
                  experiment_name="command-overhead")

    started = time.perf_counter()
    first = client.jobs.create_or_update(job)
    warmup = time.perf_counter() - started
    assert first.status == "Completed", first.error

    # Direct runs log to an MLflow run of their own, as a script run by hand would. The two kinds
    # alternate so that a change in the machine's load affects both alike.
    mlflow_client = tracking.get_client()
    experiment_id = tracking.ensure_experiment(mlflow_client, "command-overhead-direct")
    direct, as_job = [], []
    for _ in range(runs):
        run_id = mlflow_client.create_run(experiment_id).info.run_id
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri(), "MLFLOW_RUN_ID": run_id}
        started = time.perf_counter()
        subprocess.run([sys.executable, "train.py", "--c", "1.0"], cwd=code, env=env, check=True,
                       capture_output=True)
        direct.append(time.perf_counter() - started)

        started = time.perf_counter()
        result = client.jobs.create_or_update(job)
        as_job.append(time.perf_counter() - started)
        assert result.status == "Completed", result.error

    d, j = statistics.mean(direct), statistics.mean(as_job)
    print(f"runs: {runs} of each (after a warm-up job of {warmup:.2f} s)")
    print(f"direct script : mean {d:.3f} s  (median {statistics.median(direct):.3f} s)")
    print(f"as a job      : mean {j:.3f} s  (median {statistics.median(as_job):.3f} s)")
    print(f"overhead      : {j - d:.3f} s per job  (target < 1.0 s)")
    print(f"ratio         : {j / d:.2f}x the direct run")


if __name__ == "__main__":
    main()
