"""Jobs on work-pool compute targets, end to end: real server, real ``prefect worker start``, real processes."""

from __future__ import annotations

import json
import os
import signal
import uuid

import pytest

from helpers import cli, pid_alive, wait_for, write

pytestmark = pytest.mark.slow

PID_SCRIPT = """
import os, subprocess, sys, time, pathlib
child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])
pathlib.Path(sys.argv[1]).write_text(f'{os.getpid()} {child.pid}')
print('started', flush=True)
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 300)
"""


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pool():
    """A compute target (work pool) of a given type, deleted afterwards."""
    from prefect_ml.compute import targets

    made = []

    def create(kind: str, **settings):
        spec = targets.parse_spec({"name": _unique(kind).replace("_", "-"), "type": kind, **settings})
        made.append(spec.name)
        return targets.create_compute(spec)

    yield create
    for name in made:
        targets.delete_compute(name)


def test_process_pool_job_returns_at_once_then_completes_through_the_worker(pool, start_worker, tmp_path):
    from prefect_ml import MLClient

    target = pool("process")
    start_worker(target.name)
    write(tmp_path / "src" / "train.py",
          "import mlflow, sys\nmlflow.log_metric('score', float(sys.argv[1]))\nprint('trained', sys.argv[1])\n")
    job_file = write(tmp_path / "job.yml", f"""
code: src
command: python train.py ${{{{inputs.score}}}}
inputs:
  score: 0.75
compute: azureml:{target.name}
experiment_name: remote-process
""")
    name = _unique("remote")
    result = cli("job", "create", "--file", str(job_file), "--name", name, "--output", "json")
    assert result.returncode == 0, result.stderr
    queued = json.loads(result.stdout)
    assert queued["status"] in ("Queued", "Preparing", "Running")  # returned at once, not at the end
    lines: list[str] = []
    job = MLClient().jobs.stream(name, printer=lines.append, timeout_seconds=240)
    assert job.status == "Completed", (job.error, lines)
    assert job.metrics == {"score": 0.75}
    assert job.compute == f"azureml:{target.name}"
    assert any("trained 0.75" in line for line in lines)
    lifecycle = [line for line in lines if line.startswith("Lifecycle:")]
    assert lifecycle and "queued" in lifecycle[-1] and "snapshot_upload" in lifecycle[-1] and " run " in lifecycle[-1]
    # The deployment was made on demand, once per pool (idempotent).
    from prefect_ml.compute.submit import _deployments, ensure_deployment

    _deployments.clear()
    assert ensure_deployment(target) == ensure_deployment(target)
    # Crash detection for runs whose worker machine is lost: one automation, created with the deployment.
    from prefect_ml._prefect import prefect_client
    from prefect_ml.compute.submit import CRASH_AUTOMATION

    with prefect_client() as client:
        (automation,) = client.read_automations_by_name(CRASH_AUTOMATION)
    assert automation.trigger.posture == "Proactive" and "prefect.flow-run.heartbeat" in automation.trigger.after


def test_cancel_on_a_process_pool_kills_the_process_group(pool, start_worker, tmp_path):
    from prefect_ml import MLClient, command

    target = pool("process")
    start_worker(target.name)
    write(tmp_path / "src" / "sleeper.py", PID_SCRIPT)
    pids = tmp_path / "pids.txt"
    name = _unique("cancel")
    client = MLClient()
    queued = client.jobs.create_or_update(command(code=str(tmp_path / "src"), command=f"python sleeper.py {pids}",
                                                  compute=target.name), name=name)
    assert queued.status in ("Queued", "Preparing", "Running")
    wait_for(lambda: pids.exists() and pids.read_text(), timeout=180, what="the job's processes")
    assert client.jobs.cancel(name).status in ("CancelRequested", "Canceled")
    job = wait_for(lambda: (j := client.jobs.get(name)).status in ("Canceled", "Failed") and j, timeout=90,
                   what="the job to end")
    assert job.status == "Canceled", job.error
    for pid in map(int, pids.read_text().split()):
        wait_for(lambda: not pid_alive(pid), timeout=15, what=f"pid {pid} to exit")


def test_worker_killed_mid_run_ends_the_job_failed_with_the_reason(pool, start_worker, tmp_path):
    """SIGKILL to the worker: its flow-run process (a separate process) runs the command to its end, then finds
    its worker gone and exits; Prefect records the run Crashed, so the job ends Failed with the reason and no
    process is left. Nothing hangs."""
    from prefect_ml import MLClient, command
    from prefect_ml._prefect import prefect_client

    target = pool("process")
    worker = start_worker(target.name)
    write(tmp_path / "src" / "sleeper.py", PID_SCRIPT)
    pids = tmp_path / "pids.txt"
    name = _unique("orphan")
    client = MLClient()
    client.jobs.create_or_update(command(code=str(tmp_path / "src"), command=f"python sleeper.py {pids} 3",
                                         compute=target.name), name=name)
    wait_for(lambda: pids.exists() and pids.read_text(), timeout=180, what="the job's processes")
    os.kill(worker.pid, signal.SIGKILL)
    job = wait_for(lambda: (j := client.jobs.get(name)).status in ("Completed", "Failed", "Canceled") and j,
                   timeout=120, what="the job to end after its worker died")
    assert job.status == "Failed" and job.error
    with prefect_client() as prefect:
        state = prefect.read_flow_run(job.prefect_flow_run_id).state
    assert state.type.value == "CRASHED", state
    for pid in map(int, pids.read_text().split()):  # the command's process group was cleaned up
        wait_for(lambda: not pid_alive(pid), timeout=15, what=f"pid {pid} to exit")


GPU_SCRIPT = """
import sys, time, pathlib
start = time.time(); time.sleep(4); end = time.time()
pathlib.Path(sys.argv[1]).write_text(f'{start} {end}')
"""


def _intervals_on_dask(pool, start_worker, tmp_path, gpus_per_worker: int) -> list[tuple[float, float]]:
    from prefect_ml import MLClient, command
    from prefect_ml.specs.job import Resources

    target = pool("dask", min_instances=1, threads_per_worker=2, worker_resources={"GPU": gpus_per_worker},
                  instance_types={"gpu1": {"gpus": 1}})
    start_worker(target.name, worker_type="dask")
    write(tmp_path / "src" / "gpu.py", GPU_SCRIPT)
    client = MLClient()
    names, files = [], []
    for i in range(2):
        stamp = tmp_path / f"gpu{gpus_per_worker}-{i}.txt"
        name = _unique(f"dask{gpus_per_worker}")
        client.jobs.create_or_update(command(code=str(tmp_path / "src"), command=f"python gpu.py {stamp}",
                                             compute=target.name, resources=Resources(instance_type="gpu1")),
                                     name=name)
        names.append(name)
        files.append(stamp)
    for name in names:
        job = wait_for(lambda: (j := client.jobs.get(name)).status in ("Completed", "Failed", "Canceled") and j,
                       timeout=240, what=f"job {name}")
        assert job.status == "Completed", job.error
    return sorted(tuple(map(float, f.read_text().split())) for f in files)


def test_dask_pool_packs_jobs_by_gpu_resources(pool, start_worker, tmp_path):
    (a_start, a_end), (b_start, _) = _intervals_on_dask(pool, start_worker, tmp_path, gpus_per_worker=1)
    assert b_start >= a_end, "two GPU=1 jobs on one GPU overlapped"
    (a_start, a_end), (b_start, _) = _intervals_on_dask(pool, start_worker, tmp_path, gpus_per_worker=2)
    assert b_start < a_end, "two GPU=1 jobs on two GPUs ran one after the other"
