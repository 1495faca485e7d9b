"""Throughput of sweep trials: 64 trials of a fixed 0.5 s training function, 2 at a time.

Ideal wall time: 64 x 0.5 s / 2 = 16 s. Target: wall time / ideal <= 1.15.

Paths (``--paths``):

- ``local``, ``dask``: *function trials* (``trial: {function: ...}``, the SDK's
  ``prefect_ml.sweep.sweep(trial=fn)``): each trial is a Prefect task run of the sweep's flow run on the
  compute's task runner with an MLflow child run; the function sleeps 0.5 s and calls ``mlflow.log_metric``.
  ``local``: ``compute: local`` (threads). ``dask``: ``compute: bench-dask``, a ``dask`` compute target whose
  ``scheduler_address`` is a ``LocalCluster`` the benchmark starts once, untimed, like the API server (one
  worker of 2 threads in this process; ``--dask-workers processes``: 2 worker processes); the trials run in
  the sweep's trial slots there (see ``prefect_ml.sweep.trial_slots``).
- ``command-local``, ``command-dask``: *command trials* (a child command job per trial: a flow run, a
  snapshot and a new Python process running the same 0.5 s script); prints what one trial costs beyond its
  0.5 s (the script's own start-up measured directly, and the command-job lifecycle steps).

Each path first runs an untimed sweep of ``--warm-up`` (4) trials in the same process, so that one-off
costs (imports, the process's first Prefect flow run ~1 s, the first Dask client) are not counted, like
the API server's and the MLflow store's creation; ``--warm-up 0`` times a cold process.

Before the paths, the same trials run in plain Python in this process (:func:`plain_python`: 2 threads, an MLflow
run per trial, no Prefect); each function path also prints its wall time over that baseline's.

Two ratios per path: the whole ``MLClient().jobs.create_or_update`` call (flow run, MLflow parent run,
leaderboard and plot artifacts, reading the job back) over 16 s, and the trial phase (first trial's start
to last trial's end, from the trials' MLflow runs) over 16 s.

Usage::

    python benchmarks/sweep_throughput.py [--trials 64] [--paths local,dask] [--use-current-api]
    python benchmarks/sweep_throughput.py --trials 4 --paths command-local
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import isolated_api  # noqa: E402

DASK_TARGET = "bench-dask"

FUNCTION_TRIAL = """\
import time
import mlflow


def train(x: float) -> None:
    time.sleep(0.5)  # the fixed 0.5 s "training"
    mlflow.log_metric("score", x, step=0)
"""

TRIAL = """\
import argparse, time
import mlflow
p = argparse.ArgumentParser(); p.add_argument("--x", type=float); a = p.parse_args()
time.sleep(0.5)  # the fixed 0.5 s "training"
mlflow.log_metric("score", a.x, step=0)
"""


def sweep_yaml(trials: int, function: bool, compute: str = "local") -> str:
    trial = ("  function: bench_trial:train\n  code: src\n" if function else
             "  code: src\n  command: python trial.py --x ${{search_space.x}}\n")
    return f"""\
type: sweep
compute: {compute}
trial:
{trial}search_space:
  x: {{type: uniform, min_value: 0, max_value: 1}}
sampling_algorithm: {{type: random, seed: 1}}
objective: {{goal: maximize, primary_metric: score}}
limits: {{max_total_trials: {trials}, max_concurrent_trials: 2}}
"""


def run_path(work: Path, path: str, trials: int, warm_up: int = 4) -> dict:
    from prefect_ml import MLClient, tracking
    from prefect_ml.specs import load_job

    function = not path.startswith("command")
    compute = DASK_TARGET if path.endswith("dask") else "local"
    if warm_up:  # untimed: this path's one-off costs (first flow run and imports in the process)
        (work / "warm.yml").write_text(sweep_yaml(warm_up, function=function, compute=compute))
        MLClient().jobs.create_or_update(load_job(work / "warm.yml"), name=f"warm_{path}_{int(time.time())}")
    (work / "sweep.yml").write_text(sweep_yaml(trials, function=function, compute=compute))
    spec = load_job(work / "sweep.yml")
    started = time.perf_counter()
    job = MLClient().jobs.create_or_update(spec, name=f"throughput_{path}_{int(time.time())}")
    wall = time.perf_counter() - started
    assert job.status == "Completed", job.error
    client = tracking.get_client()
    steps: dict[str, list[float]] = {}
    starts, ends = [], []
    for t in job.details["trials"]:
        run = client.get_run(t["mlflow_run_id"])
        starts.append(run.info.start_time)
        ends.append(run.info.end_time)
        timings = json.loads(run.data.tags.get("prefect_ml.timings", "{}"))
        for k, v in timings.items():
            steps.setdefault(k, []).append(v)
    return {"wall": wall, "trials": len(job.details["trials"]), "phase": (max(ends) - min(starts)) / 1000,
            "steps": {k: statistics.mean(v) for k, v in steps.items()}}


def plain_python(work: Path, trials: int, experiment: str) -> float:
    """The same trials without prefect-ml, in this process: what a user would write by hand.

    A ``ThreadPoolExecutor`` of 2 threads; each trial is an MLflow run (``mlflow.start_run``, its parameter
    logged) in which the same training function is called. Returns the wall time in seconds.
    """
    import random
    from concurrent.futures import ThreadPoolExecutor

    import mlflow

    from prefect_ml import tracking

    sys.path.insert(0, str(work / "src"))
    import bench_trial

    mlflow.set_tracking_uri(tracking.tracking_uri())
    rng = random.Random(1)
    values = [rng.random() for _ in range(trials)]

    def trial(number: int, x: float) -> None:
        with mlflow.start_run(experiment_id=experiment, run_name=f"plain_{number}"):
            mlflow.log_param("x", x)
            bench_trial.train(x)

    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(trial, range(trials), values))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--paths", default="local,dask")
    parser.add_argument("--use-current-api", action="store_true")
    parser.add_argument("--dask-workers", choices=("threads", "processes"), default="threads",
                        help="the Dask cluster's workers: one worker of 2 threads, or 2 worker processes")
    parser.add_argument("--warm-up", type=int, default=4,
                        help="trials of the untimed sweep run first on each path (0: time a cold process)")
    args = parser.parse_args()
    ideal = args.trials * 0.5 / 2
    with isolated_api(args.use_current_api) as work:
        (work / "src").mkdir(exist_ok=True)
        (work / "src" / "trial.py").write_text(TRIAL)
        (work / "src" / "bench_trial.py").write_text(FUNCTION_TRIAL)
        from prefect_ml import MLClient, tracking

        MLClient()
        client = tracking.get_client()  # the MLflow store exists before anything is timed
        experiment = tracking.ensure_experiment(client, "throughput-direct")
        paths = args.paths.split(",")
        stack = contextlib.ExitStack()
        if any(p.endswith("dask") for p in paths):  # the team's Dask cluster: started once, not timed
            from distributed import LocalCluster

            from prefect_ml.compute.targets import ComputeSpec, create_compute

            processes = args.dask_workers == "processes"
            cluster = stack.enter_context(LocalCluster(
                processes=processes, n_workers=2 if processes else 1, threads_per_worker=1 if processes else 2,
                dashboard_address=None))
            create_compute(ComputeSpec(name=DASK_TARGET, type="dask", scheduler_address=cluster.scheduler_address),
                           overwrite=True)
        if any(p.startswith("command") for p in paths):
            direct = []
            for _ in range(3):  # the trial script alone: process start + import mlflow + 0.5 s + log_metric
                run_id = client.create_run(experiment).info.run_id
                env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.tracking_uri(), "MLFLOW_RUN_ID": run_id}
                started = time.perf_counter()
                subprocess.run([sys.executable, "trial.py", "--x", "0.5"], cwd=work / "src", env=env, check=True)
                direct.append(time.perf_counter() - started)
            script = statistics.median(direct)
            print(f"command trial script run directly: {script:.2f} s (0.5 s of it is the training function)")
        print(f"ideal sweep wall time: {ideal:.1f} s ({args.trials} trials x 0.5 s / 2 concurrent)")
        plain = None
        if any(not p.startswith("command") for p in paths):
            plain_python(work, 4, experiment)  # untimed, like each path's warm-up
            plain = plain_python(work, args.trials, experiment)
            print(f"plain Python (2 threads, an MLflow run per trial, no Prefect): wall {plain:.1f} s -> ratio "
                  f"{plain / ideal:.2f} to the ideal", flush=True)
        with stack:
            for path in paths:
                result = run_path(work, path, args.trials, args.warm_up)
                steps = "  ".join(f"{k} {v:.2f}s" for k, v in result["steps"].items())
                print(f"{path:13s}: wall {result['wall']:.1f} s for {result['trials']} trials -> ratio "
                      f"{result['wall'] / ideal:.2f}; trial phase {result['phase']:.1f} s -> ratio "
                      f"{result['phase'] / ideal:.2f} (target <= 1.15); {result['wall'] * 2 / result['trials']:.2f}"
                      f" s of a worker per trial" + (f"; mean lifecycle steps: {steps}" if steps else "")
                      + (f"; {result['wall'] / plain:.2f}x plain Python" if plain and not path.startswith("command")
                         else ""), flush=True)


if __name__ == "__main__":
    main()
