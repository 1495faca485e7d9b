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


class SharedPool:
    """One process compute target and its ``prefect worker start`` process, shared by this module's tests."""

    def __init__(self, log_dir):
        from prefect_ml.compute import targets

        self.log_dir = log_dir
        spec = targets.parse_spec({"name": _unique("process").replace("_", "-"), "type": "process"})
        self.target = targets.create_compute(spec)
        self.worker = None
        self.restarts = 0

    def alive_worker(self):
        """The pool's worker, (re)started when it is not running (a test may have killed it)."""
        from workers import Worker

        if self.worker is None or self.worker.process.poll() is not None:
            if self.worker is not None:
                self.worker.stop()
            self.worker = Worker(self.target.pool_name, self.log_dir / f"worker-{self.restarts}.log")
            self.restarts += 1
            self.worker.wait_ready()
        return self.worker

    def close(self):
        from prefect_ml.compute import targets

        if self.worker is not None:
            self.worker.stop()
        targets.delete_compute(self.target.name)


@pytest.fixture(scope="module")
def process_pool(tmp_path_factory):
    """A process compute target served by one real worker for the whole module (started once: ~10 s)."""
    shared = SharedPool(tmp_path_factory.mktemp("process-pool"))
    try:
        yield shared
    finally:
        shared.close()


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


def test_process_pool_job_returns_at_once_then_completes_through_the_worker(process_pool, tmp_path):
    from prefect_ml import MLClient

    target = process_pool.target
    process_pool.alive_worker()
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


def test_cancel_on_a_process_pool_kills_the_process_group(process_pool, tmp_path):
    from prefect_ml import MLClient, command

    target = process_pool.target
    process_pool.alive_worker()
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


GPU_SCRIPT = """
import pathlib, sys, time
folder, me = pathlib.Path(sys.argv[1]), sys.argv[2]
start = time.time()
(folder / f'{me}.start').write_text(str(start))
# Rendezvous: wait (at most 60 s) until two jobs hold a GPU at once, then keep the GPU 3 s more, the window in
# which a third job would start if the cluster did not count GPUs.
while len(list(folder.glob('*.start'))) < 2 and time.time() < start + 60:
    time.sleep(0.05)
time.sleep(3)
(folder / f'{me}.txt').write_text(f'{start} {time.time()}')
"""


def test_dask_pool_packs_jobs_by_gpu_resources(pool, start_worker, tmp_path):
    """Three jobs asking ``GPU: 1`` on a cluster offering two GPUs (one worker, three threads): two run at once,
    the third waits for a free GPU. Threads are not the limit; Dask's resource accounting is."""
    from prefect_ml import MLClient, command
    from prefect_ml.specs.job import Resources

    target = pool("dask", min_instances=1, threads_per_worker=3, worker_resources={"GPU": 2},
                  instance_types={"gpu1": {"gpus": 1}})
    start_worker(target.name, worker_type="dask")
    write(tmp_path / "src" / "gpu.py", GPU_SCRIPT)
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    client = MLClient()
    names = []
    for i in range(3):
        name = _unique("dask")
        client.jobs.create_or_update(command(code=str(tmp_path / "src"), command=f"python gpu.py {stamps} job{i}",
                                             compute=target.name, resources=Resources(instance_type="gpu1")),
                                     name=name)
        names.append(name)
    for name in names:
        job = wait_for(lambda: (j := client.jobs.get(name)).status in ("Completed", "Failed", "Canceled") and j,
                       timeout=240, what=f"job {name}")
        assert job.status == "Completed", job.error
    (a_start, a_end), (b_start, b_end), (c_start, _) = sorted(
        tuple(map(float, f.read_text().split())) for f in stamps.glob("*.txt"))
    assert b_start < a_end, "two GPU=1 jobs on two GPUs ran one after the other"
    assert c_start >= min(a_end, b_end), "three GPU=1 jobs ran at once on two GPUs"


def test_worker_killed_mid_run_ends_the_job_failed_with_the_reason(process_pool, tmp_path):
    """SIGKILL to the worker: its flow-run process (a separate process) runs the command to its end, then finds
    its worker gone and exits; Prefect records the run Crashed, so the job ends Failed with the reason and no
    process is left. Nothing hangs. (Last in the module: it kills the shared worker; a later test would get a
    new one from ``process_pool.alive_worker()``.)"""
    from prefect_ml import MLClient, command
    from prefect_ml._prefect import prefect_client

    target = process_pool.target
    worker = process_pool.alive_worker()
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
