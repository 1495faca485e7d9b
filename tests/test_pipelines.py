"""Pipeline jobs and components: parsing, bindings, execution, reuse, failure handling."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from helpers import write
from prefect_ml.exceptions import ValidationError


def _name() -> str:
    return f"pl_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def ml_client():
    from prefect_ml import MLClient

    return MLClient()


SERVERLESS = ["hello-pipeline-serverless.yml", "hello-pipeline-io-serverless.yml",
              "hello-pipeline-abc-serverless.yml", "hello-pipeline-default-artifacts-serverless.yml",
              "hello-pipeline-settings-serverless.yml", "hello-pipeline-customize-output-file-serverless.yml",
              "hello-pipeline-customize-output-folder-serverless.yml"]


@pytest.mark.slow
@pytest.mark.parametrize("file", SERVERLESS)
def test_azure_shell_pipelines_run_unchanged(ml_client, azure_examples, file):
    from prefect_ml import load_job

    job = ml_client.jobs.create_or_update(load_job(azure_examples / "jobs/basics" / file), name=_name())
    assert job.status == "Completed", (job.error, job.details)
    steps = job.details["steps"]
    assert steps and all(s["status"] == "Completed" for s in steps)
