"""The Docker engine and image the Docker tests use.

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
