"""Time from ``job create`` to Completed on a work pool, against the same script run directly.

Creates a ``process`` compute target, starts ``prefect worker start --pool ... `` (polling every second:
``PREFECT_WORKER_QUERY_SECONDS=1``, ``PREFECT_WORKER_PREFETCH_SECONDS=2``) and, alternately, runs a trivial
script directly (``python hello.py`` in a subprocess) and submits it as a job
(``MLClient().jobs.create_or_update`` then polling ``jobs.get`` until it ends). Prints the mean of each and
their ratio. Other pool types (the Docker pool) plug in with ``--type``.

Usage::

    python benchmarks/remote_overhead.py [--runs 5] [--type process]
    eval "$(scripts/docker-test-engine.sh start)" && python benchmarks/remote_overhead.py --type docker

The Docker pool needs ``DOCKER_HOST`` (the worker inherits it) and an image containing prefect-ml
(``--image``, default ``$PREFECT_ML_TEST_IMAGE``); it also times a bare ``docker run`` of the script.

Runs with its own throw-away ``PREFECT_HOME`` / ``PREFECT_ML_HOME`` and its own ``prefect server start``,
stopped (with the worker) at the end.
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

SCRIPT = "print('hello from the job')\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="Runs of each kind (default 5).")
    parser.add_argument("--type", default="process", help="Compute type of the pool (default process).")
    parser.add_argument("--image", default=None, help="Image for docker pools.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="prefect-ml-remote-bench-"))
    os.environ.update({"PREFECT_HOME": str(work / "prefect-home"), "PREFECT_ML_HOME": str(work / "prefect-ml-home"),
                       "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL"})
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from prefect_ml.compute import server

    port = server.free_port()
    process = server.spawn(port, os.environ["PREFECT_HOME"], work / "server.log")
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    worker = None
    try:
        server.wait_healthy(os.environ["PREFECT_API_URL"], process, timeout_seconds=600, log_path=work / "server.log")
        from prefect_ml.compute import targets

        settings = {}
        if args.type == "docker":  # docs/environments.md: host network, prefect-ml's home mounted at the same path
            from prefect_ml.compute.docker import shared_home_settings

            settings = shared_home_settings(args.image or os.environ.get("PREFECT_ML_TEST_IMAGE"))
        target = targets.create_compute(targets.parse_spec({"name": "bench", "type": args.type, **settings}))
        env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "2"}
        log = open(work / "worker.log", "wb")  # noqa: SIM115
        worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", target.name,
                                   "--type", args.type], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        run(args.runs, work, target.name, image=settings.get("image"))
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGINT)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)
        server.terminate(process.pid)


def _until_done(client, name: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.jobs.get(name)
        if job.status in ("Completed", "Failed", "Canceled"):
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {name} did not end within {timeout} s")


def run(runs: int, work: Path, pool: str, image: str | None = None) -> None:
    from prefect_ml import MLClient, command

    code = work / "src"
    code.mkdir()
    (code / "hello.py").write_text(SCRIPT)
    client = MLClient()
    job = command(code=str(code), command="python hello.py", compute=pool, experiment_name="remote-overhead")
    warm = time.perf_counter()
    first = _until_done(client, client.jobs.create_or_update(job).name)
    assert first.status == "Completed", first.error
    warmup = time.perf_counter() - warm
    direct, remote = [], []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "hello.py"], cwd=code, check=True, capture_output=True)
        direct.append(time.perf_counter() - started)
        started = time.perf_counter()
        done = _until_done(client, client.jobs.create_or_update(job).name)
        remote.append(time.perf_counter() - started)
        assert done.status == "Completed", done.error
    d, r = statistics.mean(direct), statistics.mean(remote)
    print(f"runs: {runs} of each on a {pool!r} pool (after a warm-up job of {warmup:.2f} s)")
    print(f"direct script        : mean {d:.3f} s  (median {statistics.median(direct):.3f} s)")
    print(f"job create->Completed: mean {r:.3f} s  (median {statistics.median(remote):.3f} s)")
    print(f"ratio                : {r / d:.1f}x the direct run ({r - d:.2f} s added per job)")
    if image:  # the same script in a bare container of the same image: what Docker itself costs
        bare = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(["docker", "run", "--rm", "--network", "host", "-v", f"{code}:{code}:ro", "-w", str(code),
                            image, "python", "hello.py"], check=True, capture_output=True)
            bare.append(time.perf_counter() - started)
        c = statistics.mean(bare)
        print(f"docker run (bare)    : mean {c:.3f} s; job / bare container: {r / c:.1f}x")


if __name__ == "__main__":
    main()
