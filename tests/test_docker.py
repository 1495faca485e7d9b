"""Docker compute end to end: a real engine, a real ``prefect worker start --type docker``, jobs in containers.

Needs the engine and image of ``scripts/docker-test-engine.sh`` (``.ci/run`` starts them); skips otherwise.
Jobs go through the normal path (``prefect-ml job create`` with ``compute: azureml:<docker target>``,
``prefect_ml.compute.submit``, which adds the environment's image to the job variables).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from docker_support import docker_engine
from helpers import cli, wait_for, write

pytestmark = pytest.mark.slow

TRAIN = """\
import os, sys
import mlflow
print("in-container", os.path.exists("/.dockerenv"), sys.prefix)
print("run-id", os.environ["MLFLOW_RUN_ID"])
mlflow.log_metric("accuracy", 0.75)
"""


@pytest.fixture(scope="module")
def docker_target(tmp_path_factory):
    """(target, DOCKER_HOST, image): a docker compute target served by one real Docker worker."""
    from prefect_ml.compute import targets
    from prefect_ml.compute.docker import shared_home_settings
    from workers import Worker

    host, image = docker_engine()
    spec = targets.parse_spec({"name": f"docker-{uuid.uuid4().hex[:8]}", "type": "docker",
                               **shared_home_settings(image)})
    target = targets.create_compute(spec)
    log = tmp_path_factory.mktemp("docker-worker") / "worker.log"
    worker = Worker(target.pool_name, log, worker_type="docker", env={"DOCKER_HOST": host})
    try:
        worker.wait_ready(timeout=120)
        yield target, host, image
    finally:
        worker.stop()
        targets.delete_compute(target.name)


def _job_file(tmp_path: Path, command: str, compute: str, environment: str | None = None) -> Path:
    write(tmp_path / "src" / "train.py", TRAIN)
    env = f"environment:\n{environment}\n" if environment else ""
    return write(tmp_path / "job.yml", f"code: src\ncommand: {command}\ncompute: azureml:{compute}\n"
                                       f"experiment_name: docker-tests\n{env}")


def _containers(host: str, flow_run_id: str) -> list[str]:
    """Ids of the RUNNING containers of a flow run."""
    result = subprocess.run(["docker", "ps", "-q", "--filter", f"label=io.prefect.flow-run-id={flow_run_id}"],
                            env={**os.environ, "DOCKER_HOST": host}, capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_job_runs_in_a_container_and_logs_metrics_to_mlflow(docker_target, tmp_path):
    from prefect_ml import MLClient

    target, host, image = docker_target
    name = f"docker_job_{uuid.uuid4().hex[:8]}"
    result = cli("job", "create", "--file", str(_job_file(tmp_path, "python train.py", target.name)),
                 "--name", name, "--output", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] in ("Queued", "Preparing", "Running")
    lines: list[str] = []
    job = MLClient().jobs.stream(name, printer=lines.append, timeout_seconds=240)
    log = Path(job.log_path).read_text() if job.log_path else ""
    assert job.status == "Completed", (job.error, lines, log)
    assert "in-container True /opt/prefect-ml" in log  # ran inside the image, with its interpreter
    assert f"run-id {job.mlflow_run_id}" in log
    assert job.metrics == {"accuracy": 0.75}
    # The run is Completed just before its container's process exits.
    wait_for(lambda: _containers(host, job.prefect_flow_run_id) == [], timeout=60, what="the container to exit")


def test_cancel_stops_the_container(docker_target, tmp_path):
    from prefect_ml import MLClient

    target, host, image = docker_target
    name = f"docker_cancel_{uuid.uuid4().hex[:8]}"
    command = "python -c \"import time; print('sleeping', flush=True); time.sleep(600)\""
    from prefect_ml.specs.loader import load_job

    client = MLClient()  # in process: the CLI's create and cancel are tested elsewhere (saves two subprocesses)
    queued = client.jobs.create_or_update(load_job(_job_file(tmp_path, command, target.name)), name=name)
    assert queued.status in ("Queued", "Preparing", "Running")

    def sleeping():
        job = client.jobs.get(name)
        return job.log_path and Path(job.log_path).exists() and "sleeping" in Path(job.log_path).read_text() and job

    job = wait_for(sleeping, timeout=240, what="the command to run in its container")
    assert _containers(host, job.prefect_flow_run_id)
    assert client.jobs.cancel(name).status in ("CancelRequested", "Canceled")
    job = wait_for(lambda: (j := client.jobs.get(name)).status in ("Canceled", "Failed", "Completed") and j,
                   timeout=120, what="the canceled job to end")
    assert job.status == "Canceled", job.error
    wait_for(lambda: _containers(host, job.prefect_flow_run_id) == [], timeout=60, what="the container to stop")


def test_conda_environment_builds_a_cached_image_through_prefect_docker(docker_target, tmp_path, monkeypatch):
    """A conda file (one pure-Python package) becomes an image FROM the prefect-ml image; `job create`'s path
    passes it to the Docker worker and the job runs in it, with its venv."""
    from prefect_ml import MLClient
    from prefect_ml._prefect import prefect_client
    from prefect_ml.compute import submit
    from prefect_ml.compute.images import image_exists, image_for_environment
    from prefect_ml.specs.loader import load_job

    target, host, image = docker_target
    monkeypatch.setenv("DOCKER_HOST", host)
    write(tmp_path / "conda.yml", "dependencies:\n  - python=3.11\n  - pip:\n    - six\n")
    command = ("python -c \"import os, sys, six; print('env', sys.prefix, six.__version__); "
               "print('run-id', os.environ['MLFLOW_RUN_ID'])\"")
    name = f"docker_env_{uuid.uuid4().hex[:8]}"
    spec = load_job(_job_file(tmp_path, command, target.name, environment=f"  image: {image}\n  conda_file: conda.yml"),
                    name=name)
    built = image_for_environment(spec.environment, base_path=spec.base_path)
    assert built.startswith("prefect-ml-env/") and image_exists(built)
    assert image_for_environment(spec.environment, base_path=spec.base_path) == built  # cached by spec hash
    # The normal submission path puts the environment's image into the flow run's job variables.
    queued = MLClient().jobs.run(MLClient().jobs.validate(spec))
    with prefect_client() as client:
        variables = client.read_flow_run(queued.prefect_flow_run_id).job_variables
    assert variables["image"] == built and variables["image_pull_policy"] == "Never"
    assert submit.job_variables(spec, target)["image"] == built
    job = MLClient().jobs.stream(name, printer=lambda _line: None, timeout_seconds=240)
    log = Path(job.log_path).read_text() if job.log_path else ""
    assert job.status == "Completed", (job.error, log)
    assert "env /opt/env " in log and f"run-id {job.mlflow_run_id}" in log
