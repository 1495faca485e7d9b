"""Time from a new data asset version to its retrain run starting, against a directly created run.

Sets up its own ``prefect server start`` and a process worker (``PREFECT_WORKER_QUERY_SECONDS=1``), creates a
``retrain`` deployment with a ``data_asset`` trigger (``prefect_ml.deployments.schedules.create_schedule``),
then alternates N times:

- trigger: ``create_data_asset`` (emits ``prefect-ml.data-asset.version-created``) -> the automation creates a
  run -> the worker starts it (state Running);
- baseline: ``run_deployment(timeout=0)`` creates a run of the same deployment directly -> Running.

Both are measured from the call to the run's server-side ``start_time``; the run then stops at once (its
``data_input`` names no input, so it fails before training). Prints mean latencies, the part spent before
the run exists (event -> automation -> run created) and the ratio trigger / baseline.

Usage::

    python benchmarks/trigger_latency.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="Measurements of each kind (default 5).")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="prefect-ml-trigger-bench-"))
    os.environ.update({"PREFECT_HOME": str(work / "prefect-home"), "PREFECT_ML_HOME": str(work / "ml-home"),
                       "PREFECT_ML_AUTOSTART_SERVER": "false",
                       "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL"})
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from prefect_ml import settings
    from prefect_ml.compute import server

    settings.apply_quiet_defaults()
    port = server.free_port()
    process = server.spawn(port, os.environ["PREFECT_HOME"], work / "server.log")
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    worker = None
    try:
        # Generous: a fresh database on a busy 2-core machine can take minutes.
        server.wait_healthy(os.environ["PREFECT_API_URL"], process, timeout_seconds=600, log_path=work / "server.log")
        env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "2",
               "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        with open(work / "worker.log", "ab") as log:
            worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", "bench",
                                       "--type", "process"], stdout=log, stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True)
        measure(args.runs, work)
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGINT)
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=10)
        server.terminate(process.pid)


def _wait_started(client, predicate, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in client.read_flow_runs() if predicate(r)]
        if runs and runs[0].start_time is not None:
            return runs[0]
        time.sleep(0.05)
    raise TimeoutError("no run started")


def measure(runs: int, work: Path) -> None:
    from prefect.deployments import run_deployment

    from prefect_ml._prefect import prefect_client
    from prefect_ml.data import create_data_asset
    from prefect_ml.deployments.schedules import create_schedule
    from prefect_ml.specs.schedule import parse_schedule

    data = work / "train.csv"
    data.write_text("a,target\n1,0\n2,1\n")
    spec = parse_schedule({
        "name": "bench-retrain", "trigger": {"type": "data_asset", "name": "bench-train"},
        "create_job": str(REPO / "examples" / "retraining" / "job.yml"),
        "retrain": {"model_name": "bench-model", "data_input": "nope",
                    "evaluation": {"data": str(data), "target_column": "target"}}}, base_path=work)
    with prefect_client() as client:
        from prefect.client.schemas.actions import WorkPoolCreate

        client.create_work_pool(WorkPoolCreate(name="bench", type="process"))
    info = create_schedule(spec, work_pool="bench")
    triggered, direct, created = [], [], []
    with prefect_client() as client:
        wait = time.monotonic() + 90
        while not client.read_workers_for_work_pool("bench") and time.monotonic() < wait:
            time.sleep(0.2)
        for i in range(runs + 1):  # the first pair warms up the worker and the automation
            t0 = time.time()
            version = create_data_asset("bench-train", path=str(data), type="uri_file").version
            run = _wait_started(client, lambda r, v=version: r.parameters.get("data_version") == v)
            if i:
                triggered.append(run.start_time.timestamp() - t0)
                created.append(run.created.timestamp() - t0)

            t0 = time.time()
            flow_run = run_deployment(f"retrain/{info.name}", timeout=0, parameters={"data_version": f"d{i}"})
            run = _wait_started(client, lambda r, fid=flow_run.id: r.id == fid)
            if i:
                direct.append(run.start_time.timestamp() - t0)
    t, d, c = statistics.mean(triggered), statistics.mean(direct), statistics.mean(created)
    print(f"runs: {runs} of each (after one warm-up pair)")
    print(f"new data version -> retrain run Running : mean {t:.2f} s (median {statistics.median(triggered):.2f} s)")
    print(f"  of which event -> run created         : mean {c:.2f} s")
    print(f"run_deployment -> run Running (baseline): mean {d:.2f} s (median {statistics.median(direct):.2f} s)")
    print(f"ratio trigger / baseline                : {t / d:.2f}x")


if __name__ == "__main__":
    main()
