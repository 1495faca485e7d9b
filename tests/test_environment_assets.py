"""Environment assets (Azure's environment YAML), versions, @latest, and conda files built into cached venvs."""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from pathlib import Path

import pytest

from helpers import cli, write

ASSETS = "assets/environment"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------- conda files
def test_azure_pydata_conda_file_becomes_python_version_and_pip_requirements(azure_examples):
    import yaml

    from prefect_ml.compute.venvs import parse_conda_file

    data = yaml.safe_load((azure_examples / ASSETS / "conda-yamls" / "pydata.yml").read_text())
    spec = parse_conda_file(data, source="pydata.yml")
    assert spec.python == "3.8"
    assert spec.requirements[:2] == ("numpy==1.22", "scipy==1.7.1")
    assert "pip==21.2.4" not in spec.requirements and not spec.conda_only
    assert len(spec.requirements) == 16


def test_conda_dependencies_translate_to_pip_and_conda_only_ones_are_named():
    from prefect_ml.compute.venvs import parse_conda_file

    spec = parse_conda_file({"dependencies": ["python=3.11", "conda-forge::six=1.16", "attrs>=23", "pip",
                                              "cudatoolkit=11.3", {"pip": ["idna"]}]}, source="conda.yml")
    assert spec.python == "3.11"
    assert spec.requirements == ("six==1.16.*", "attrs>=23", "idna")
    assert spec.conda_only == ("cudatoolkit=11.3",)
    same = parse_conda_file({"dependencies": ["python=3.11", {"pip": ["idna"]}, "attrs>=23", "six=1.16"]})
    assert same.hash == spec.hash  # the cache key ignores order and where a requirement came from


# --------------------------------------------------------------- assets
def test_azure_example_environment_files_load_with_versions_and_latest(azure_examples):
    from prefect_ml.compute.environments import create_environment_from_file, get_environment, list_environments

    name = _unique("docker-image-example")
    first = create_environment_from_file(azure_examples / ASSETS / "docker-image.yml", name=name)
    assert (first.version, first.image) == ("1", "pytorch/pytorch:latest")
    conda = create_environment_from_file(azure_examples / ASSETS / "docker-image-plus-conda.yaml", name=name)
    assert conda.version == "2" and conda.conda_file["dependencies"][0] == "python=3.8"
    assert conda.image == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
    built = create_environment_from_file(azure_examples / ASSETS / "docker-context.yml", name=name, version="v3")
    context = Path(built.build_context)
    assert (context / "Dockerfile").is_file() and (context / "requirements.txt").is_file()
    assert not str(context).startswith(str(azure_examples))  # stored copy: later edits do not change it
    assert [b.version for b in list_environments(name)] == ["1", "2", "v3"]
    assert get_environment(name, "latest").version == "v3"
    assert get_environment(name, "1").image == "pytorch/pytorch:latest"


def test_environment_cli_create_list_and_immutable_versions(tmp_path, azure_examples):
    name = _unique("cli-env")
    source = azure_examples / ASSETS / "docker-image.yml"
    created = cli("environment", "create", "--file", str(source), "--name", name, "--version", "1")
    assert created.returncode == 0, created.stderr
    assert f"azureml:{name}:1" in created.stdout
    other = write(tmp_path / "env.yml", f"name: {name}\nversion: 1\nimage: python:3.11\n")
    changed = cli("environment", "create", "--file", str(other))
    assert changed.returncode == 2
    assert "already exists" in changed.stderr and "immutable" in changed.stderr
    listed = cli("environment", "list", "--name", name, "--output", "json")
    assert [(v["version"], v["image"]) for v in json.loads(listed.stdout)] == [("1", "pytorch/pytorch:latest")]


def test_environment_file_problems_are_reported_together_and_same_content_is_idempotent(tmp_path, azure_examples):
    from prefect_ml.compute.environments import create_environment_from_file, get_environment, load_environment_file
    from prefect_ml.exceptions import ValidationError

    bad = write(tmp_path / "bad.yml", "image: a\nbuild: nowhere\nfoo: 1\n")
    with pytest.raises(ValidationError) as caught:
        load_environment_file(bad)
    assert {p.field for p in caught.value.problems} >= {"foo", "name", "build"}
    name = _unique("same")
    source = azure_examples / ASSETS / "docker-image.yml"
    first = create_environment_from_file(source, name=name, version="1")
    again = create_environment_from_file(source, name=name, version="1")
    assert (again.version, again.created_at) == (first.version, first.created_at)
    assert get_environment(name).version == "1"


def test_curated_name_maps_to_a_configured_environment(tmp_path):
    from prefect_ml.compute.environments import create_environment, environment_definition
    from prefect_ml.specs.environment import EnvironmentSpec

    name = f"AzureML-sklearn-1.0-{uuid.uuid4().hex[:6]}"
    unconfigured = EnvironmentSpec.model_validate(f"azureml:{name}@latest")
    assert environment_definition(unconfigured) is None  # runs with the current interpreter, as before
    create_environment(name, conda_file={"dependencies": [{"pip": ["six"]}]})
    configured = environment_definition(EnvironmentSpec.model_validate(f"azureml:{name}@latest"))
    assert configured.conda_file == {"dependencies": [{"pip": ["six"]}]}


# --------------------------------------------------------------- venvs for jobs
@pytest.mark.slow
def test_conda_environment_job_runs_in_a_cached_venv_with_mlflow_variables(tmp_path):
    """A one-package conda file (six, pure Python) builds a venv once; two jobs use it and get MLFLOW_RUN_ID."""
    from prefect_ml import MLClient, command
    from prefect_ml.compute.environments import create_environment

    name = _unique("six-env")
    create_environment(name, conda_file={"name": "six", "dependencies": [
        "python={}.{}".format(*sys.version_info[:2]), "pip", {"pip": ["six"]}]})
    script = ("import os, sys, six; print('prefix=' + sys.prefix); print('run=' + os.environ['MLFLOW_RUN_ID']); "
              "print('six=' + six.__version__)")
    client = MLClient()

    def run_job():
        job = client.jobs.create_or_update(command(command=f'python -c "{script}"', environment=f"azureml:{name}@latest",
                                                   experiment_name="env-venv-tests"),
                                           name=_unique("venv_job").replace("-", "_"))
        assert job.status == "Completed", job.error
        lines = Path(job.log_path).read_text().splitlines()
        prefix = next(line for line in lines if line.startswith("prefix="))[len("prefix="):]
        assert "/envs/venvs/" in prefix and prefix != sys.prefix
        assert f"run={job.mlflow_run_id}" in lines
        assert any(line.startswith("six=") for line in lines)
        return job, Path(prefix)

    first, venv = run_job()
    built_at = (venv / ".prefect-ml-env.json").stat().st_mtime_ns
    second, again = run_job()
    assert again == venv and (venv / ".prefect-ml-env.json").stat().st_mtime_ns == built_at  # reused, not rebuilt
    jobs = [first, second]
    from prefect_ml import tracking

    logs = [tracking.get_client().get_run(job.mlflow_run_id) for job in jobs]
    assert all(run.info.status == "FINISHED" for run in logs)


def test_conda_only_dependency_is_a_clear_error_before_anything_runs(tmp_path):
    conda = write(tmp_path / "conda.yml", "dependencies:\n  - python=3.11\n  - cudatoolkit=11.3\n  - pip:\n    - six\n")
    job = write(tmp_path / "job.yml", "command: echo hi\nenvironment:\n  image: python:3.11\n  conda_file: conda.yml\n")
    result = cli("job", "create", "--file", str(job))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cudatoolkit=11.3" in result.stderr and "conda-only" in result.stderr


@pytest.mark.slow
def test_unknown_pypi_package_names_it(tmp_path):
    from prefect_ml.compute.venvs import VenvSpec, ensure_venv
    from prefect_ml.exceptions import ConfigurationError

    missing = f"prefect-ml-no-such-package-{uuid.uuid4().hex[:6]}"
    with pytest.raises(ConfigurationError, match=missing):
        ensure_venv(VenvSpec(python=None, requirements=(missing,), source="conda.yml"))
