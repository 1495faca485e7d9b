"""The Docker engine and image the Docker tests use, and an interim submission path to a docker work pool.

``.ci/run`` starts the engine and builds the image with ``scripts/docker-test-engine.sh start`` before
pytest and exports ``PREFECT_ML_TEST_DOCKER_HOST`` and ``PREFECT_ML_TEST_IMAGE``; locally, run
``eval "$(scripts/docker-test-engine.sh start)"`` first. Without them the tests skip and say why.
"""

from __future__ import annotations

import os
import subprocess

import pytest

SCRIPT = "scripts/docker-test-engine.sh"


def docker_engine() -> tuple[str, str]:
    """``(DOCKER_HOST, image)`` of the test engine, or skip the test with the reason."""
    host = os.environ.get("PREFECT_ML_TEST_DOCKER_HOST")
    image = os.environ.get("PREFECT_ML_TEST_IMAGE")
    if not host or not image:
        pytest.skip(f"no Docker test engine: run `eval \"$({SCRIPT} start)\"` first (.ci/run does); it exports "
                    "PREFECT_ML_TEST_DOCKER_HOST and PREFECT_ML_TEST_IMAGE")
    result = subprocess.run(["docker", "image", "inspect", image], env={**os.environ, "DOCKER_HOST": host},
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"Docker engine {host} unreachable or image {image} missing: {result.stderr.strip()[:300]}")
    return host, image


def deploy_command_job(pool: str, *, name: str = "command-job-docker") -> str:
    """Create (idempotently) a deployment of the command-job flow on ``pool``; return its id.

    The entrypoint is the flow's module path, so the image's installed prefect-ml provides the code
    (no pull steps). Interim: the compute helper's submission path replaces this.
    """
    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        flow_id = client.create_flow_from_name("command-job")
        deployment_id = client.create_deployment(
            flow_id=flow_id, name=name, work_pool_name=pool,
            entrypoint="prefect_ml.flows.command_job:command_job", pull_steps=[],
            parameter_openapi_schema={"type": "object", "properties": {}})
    return str(deployment_id)


def submit(deployment_id: str, spec, *, job_variables: dict) -> str:
    """Create a flow run of the deployment for ``spec``; return the flow run id."""
    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        run = client.create_flow_run_from_deployment(
            deployment_id, name=spec.name,
            parameters={"job": spec.model_dump(mode="json", by_alias=True), "job_name": spec.name},
            job_variables=job_variables)
    return str(run.id)
