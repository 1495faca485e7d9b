"""Docker compute end to end: a real engine, a real ``prefect worker start --type docker``, jobs in containers.

Needs the engine and image of ``scripts/docker-test-engine.sh`` (``.ci/run`` starts them); skips otherwise.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from docker_support import deploy_command_job, docker_engine, submit
from helpers import wait_for, write

pytestmark = pytest.mark.slow

TRAIN = """\
import os, sys
import mlflow
print("in-container", os.path.exists("/.dockerenv"), sys.prefix)
print("run-id", os.environ["MLFLOW_RUN_ID"])
mlflow.log_metric("accuracy", 0.75)
"""


@pytest.fixture(scope="module")
def docker_pool(tmp_path_factory):
    """(pool, deployment id, DOCKER_HOST, image): a docker work pool served by one real Docker worker."""
    from workers import Worker

    host, image = docker_engine()
    pool = f"docker-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("docker-worker") / "worker.log"
    worker = Worker(pool, log, worker_type="docker", env={"DOCKER_HOST": host})
    try:
        worker.wait_ready(timeout=120)
        yield pool, deploy_command_job(pool), host, image
    finally:
        worker.stop()


def _job(tmp_path: Path, command: str, name: str, environment: str | None = None):
    from prefect_ml.specs.loader import load_job

    write(tmp_path / "src" / "train.py", TRAIN)
    env = f"environment:\n{environment}\n" if environment else ""
    job_file = write(tmp_path / "job.yml", f"code: src\ncommand: {command}\nexperiment_name: docker-tests\n{env}")
    return load_job(job_file, name=name)


def _state(flow_run_id: str):
    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        return client.read_flow_run(flow_run_id).state


def _containers(host: str, flow_run_id: str) -> list[str]:
    result = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.prefect.flow-run-id={flow_run_id}"],
                            env={**os.environ, "DOCKER_HOST": host}, capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_job_runs_in_a_container_and_logs_metrics_to_mlflow(docker_pool, tmp_path):
    from prefect_ml import MLClient
    from prefect_ml.compute.docker import container_job_variables

    pool, deployment_id, host, image = docker_pool
    name = f"docker_job_{uuid.uuid4().hex[:8]}"
    spec = _job(tmp_path, "python train.py", name)
    flow_run_id = submit(deployment_id, spec, job_variables=container_job_variables(spec, image=image))
    state = wait_for(lambda: (s := _state(flow_run_id)) and s.is_final() and s, timeout=240,
                     what="the container job to finish")
    job = MLClient().jobs.get(name)
    log = Path(job.log_path).read_text() if job.log_path else ""
    assert state.is_completed(), f"{state.type}: {state.message}\n{log}"
    assert job.status == "Completed"
    assert "in-container True /opt/prefect-ml" in log  # ran inside the image, with its interpreter
    assert f"run-id {job.mlflow_run_id}" in log
    assert job.metrics["accuracy"] == 0.75
    assert _containers(host, flow_run_id) == []  # auto_remove


def test_cancel_stops_the_container(docker_pool, tmp_path):
    from prefect.states import Cancelling

    from prefect_ml._prefect import prefect_client
    from prefect_ml.compute.docker import container_job_variables

    pool, deployment_id, host, image = docker_pool
    name = f"docker_cancel_{uuid.uuid4().hex[:8]}"
    spec = _job(tmp_path, "python -c \"import time; print('sleeping', flush=True); time.sleep(600)\"", name)
    flow_run_id = submit(deployment_id, spec, job_variables=container_job_variables(spec, image=image))
    wait_for(lambda: _containers(host, flow_run_id) and (s := _state(flow_run_id)) and s.is_running(), timeout=240,
             what="the container job to run")
    from prefect_ml import MLClient

    wait_for(lambda: (job := MLClient().jobs.get(name)).log_path and Path(job.log_path).exists()
             and "sleeping" in Path(job.log_path).read_text(), timeout=120, what="the command to start")
    with prefect_client() as client:
        client.set_flow_run_state(flow_run_id, Cancelling(), force=True)
    state = wait_for(lambda: (s := _state(flow_run_id)) and s.is_final() and s, timeout=120,
                     what="the cancelled job to end")
    assert state.is_cancelled(), f"{state.type}: {state.message}"
    wait_for(lambda: _containers(host, flow_run_id) == [], timeout=60, what="the container to be gone")


def test_conda_environment_builds_a_cached_image_through_prefect_docker(docker_pool, tmp_path):
    """A conda file (one pure-Python package) becomes an image FROM the prefect-ml image; the job uses its venv."""
    from prefect_ml import MLClient
    from prefect_ml.compute.docker import container_job_variables
    from prefect_ml.compute.images import image_exists, image_for_environment

    pool, deployment_id, host, image = docker_pool
    os.environ["DOCKER_HOST"] = host
    write(tmp_path / "conda.yml", "dependencies:\n  - python=3.11\n  - pip:\n    - six\n")
    name = f"docker_env_{uuid.uuid4().hex[:8]}"
    spec = _job(tmp_path, "python -c \"import os, sys, six; print('env', sys.prefix, six.__version__); "
                          "print('run-id', os.environ['MLFLOW_RUN_ID'])\"",
                name, environment=f"  image: {image}\n  conda_file: conda.yml")
    built = image_for_environment(spec.environment, base_path=spec.base_path)
    assert built.startswith("prefect-ml-env/") and image_exists(built)
    assert image_for_environment(spec.environment, base_path=spec.base_path) == built  # cached by spec hash
    flow_run_id = submit(deployment_id, spec, job_variables=container_job_variables(spec, image=built))
    state = wait_for(lambda: (s := _state(flow_run_id)) and s.is_final() and s, timeout=240,
                     what="the environment job to finish")
    job = MLClient().jobs.get(name)
    log = Path(job.log_path).read_text() if job.log_path else ""
    assert state.is_completed(), f"{state.type}: {state.message}\n{log}"
    assert "env /opt/env " in log and f"run-id {job.mlflow_run_id}" in log
