"""Throughput of sweep trials: 64 trials of a fixed 0.5 s training function, 2 at a time.

Ideal wall time: 64 x 0.5 s / 2 = 16 s. Prints the measured wall time over 16 s for the local
(thread) path and the Dask path (``DaskTaskRunner`` on a ``LocalCluster``), plus what one trial costs
beyond its 0.5 s: the trial script's own process start and ``import mlflow`` (measured directly) and
the command-job lifecycle steps recorded on each trial's MLflow run. Target: ratio <= 1.15.

Usage::

    python benchmarks/sweep_throughput.py [--trials 64] [--paths local,dask] [--use-current-api]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import dask_task_runner_for, isolated_api  # noqa: E402

TRIAL = """\
import argparse, time
import mlflow
p = argparse.ArgumentParser(); p.add_argument("--x", type=float); a = p.parse_args()
time.sleep(0.5)  # the fixed 0.5 s "training"
mlflow.log_metric("score", a.x, step=0)
"""


def sweep_yaml(trials: int) -> str:
    return f"""\
type: sweep
trial:
  code: src
  command: python trial.py --x ${{{{search_space.x}}}}
search_space:
  x: {{type: uniform, min_value: 0, max_value: 1}}
sampling_algorithm: {{type: random, seed: 1}}
objective: {{goal: maximize, primary_metric: score}}
limits: {{max_total_trials: {trials}, max_concurrent_trials: 2}}
"""


def run_path(work: Path, path: str, trials: int) -> dict:
    from prefect_ml import MLClient, tracking
    from prefect_ml.compute import targets
    from prefect_ml.specs import load_job

    original = targets.task_runner_for
    if path == "dask":
        targets.task_runner_for = dask_task_runner_for()
    try:
        spec = load_job(work / "sweep.yml")
        started = time.perf_counter()
        job = MLClient().jobs.create_or_update(spec, name=f"throughput_{path}_{int(time.time())}")
        wall = time.perf_counter() - started
    finally:
        targets.task_runner_for = original
    assert job.status == "Completed", job.error
    client = tracking.get_client()
    steps: dict[str, list[float]] = {}
    for t in job.details["trials"]:
        timings = json.loads(client.get_run(t["mlflow_run_id"]).data.tags.get("prefect_ml.timings", "{}"))
        for k, v in timings.items():
            steps.setdefault(k, []).append(v)
    return {"wall": wall, "trials": len(job.details["trials"]),
            "steps": {k: statistics.mean(v) for k, v in steps.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--paths", default="local,dask")
    parser.add_argument("--use-current-api", action="store_true")
    args = parser.parse_args()
    ideal = args.trials * 0.5 / 2
    with isolated_api(args.use_current_api) as work:
        (work / "src").mkdir(exist_ok=True)
        (work / "src" / "trial.py").write_text(TRIAL)
        (work / "sweep.yml").write_text(sweep_yaml(args.trials))
        from prefect_ml import MLClient, tracking

        MLClient()
        client = tracking.get_client()
        experiment = tracking.ensure_experiment(client, "throughput-direct")
        direct = []
        for _ in range(3):  # the trial script alone: process start + import mlflow + 0.5 s + log_metric
            run_id = client.create_run(experiment).info.run_id
            env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri(), "MLFLOW_RUN_ID": run_id}
            started = time.perf_counter()
            subprocess.run([sys.executable, "trial.py", "--x", "0.5"], cwd=work / "src", env=env, check=True)
            direct.append(time.perf_counter() - started)
        script = statistics.median(direct)
        print(f"trial script run directly: {script:.2f} s (0.5 s of it is the training function)")
        print(f"ideal sweep wall time: {ideal:.1f} s ({args.trials} trials x 0.5 s / 2 concurrent)")
        for path in args.paths.split(","):
            result = run_path(work, path, args.trials)
            steps = "  ".join(f"{k} {v:.2f}s" for k, v in result["steps"].items())
            print(f"{path:5s}: wall {result['wall']:.1f} s for {result['trials']} trials -> ratio "
                  f"{result['wall'] / ideal:.2f} (target <= 1.15); per trial {result['wall'] * 2 / result['trials']:.2f}"
                  f" s of a worker; mean lifecycle steps: {steps}")


if __name__ == "__main__":
    main()
