"""Environments: names mapped to local interpreters, curated/inline fallbacks, and their use in jobs."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from helpers import cli, write

pytestmark = pytest.mark.slow

PRINT_PREFIX = 'python -c "import sys; print(\'prefix=\' + sys.prefix)"'


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _flow_runs_named(name: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))


@pytest.fixture(scope="module")
def ml_client():
    from prefect_ml import MLClient

    return MLClient()


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtual environment (no pip: fast); returns its folder."""
    folder = tmp_path_factory.mktemp("envs") / "train-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    assert (folder / "bin" / "python").exists()
    return folder


def _prefixes(folder: Path) -> set[str]:
    return {f"prefix={folder}", f"prefix={folder.resolve()}"}


def _log_lines(job) -> list[str]:
    return Path(job.log_path).read_text().splitlines()


# ----------------------------------------------------- named environments
def test_environment_created_by_the_cli_runs_jobs_with_its_interpreter(ml_client, venv):
    from prefect_ml import command

    env_name = _unique("my-train-env")
    created = cli("environment", "create", "--name", env_name, "--python", str(venv / "bin" / "python"))
    assert created.returncode == 0, created.stderr
    assert env_name in created.stdout
    job = ml_client.jobs.create_or_update(
        command(command=PRINT_PREFIX, environment=f"azureml:{env_name}:1", experiment_name="env-tests"),
        name=_unique("env_job").replace("-", "_"))
    assert job.status == "Completed", job.error
    lines = _log_lines(job)
    assert _prefixes(venv) & set(lines), lines
    assert f"prefix={sys.prefix}" not in lines


def test_environment_variables_of_the_environment_reach_the_job(ml_client, venv):
    from prefect_ml import command
    from prefect_ml.compute.environments import save_environment

    env_name = _unique("my-vars-env")
    save_environment(env_name, str(venv / "bin" / "python"),
                     environment_variables={"ENV_BLOCK_ONLY": "from-block", "ENV_BOTH": "from-block"})
    script = ("python -c \"import os, sys; print('prefix=' + sys.prefix); "
              "print('only=' + os.environ['ENV_BLOCK_ONLY']); print('both=' + os.environ['ENV_BOTH'])\"")
    job = ml_client.jobs.create_or_update(
        command(command=script, environment=f"{env_name}@latest", environment_variables={"ENV_BOTH": "from-job"},
                experiment_name="env-tests"),
        name=_unique("env_vars").replace("-", "_"))
    assert job.status == "Completed", job.error
    lines = _log_lines(job)
    assert _prefixes(venv) & set(lines), lines
    assert "only=from-block" in lines
    assert "both=from-job" in lines  # the job's own environment_variables win over the environment's


def test_save_environment_refuses_duplicates_and_missing_interpreters(venv, tmp_path):
    from prefect_ml.compute.environments import resolve_environment, save_environment
    from prefect_ml.exceptions import ValidationError
    from prefect_ml.specs import parse_job

    env_name = _unique("dup-env")
    save_environment(env_name, str(venv / "bin" / "python"))
    with pytest.raises(ValidationError, match="already exists") as caught:
        save_environment(env_name, sys.executable)
    assert [p.field for p in caught.value.problems] == ["name"]
    save_environment(env_name, sys.executable, overwrite=True)
    resolved = resolve_environment(parse_job({"command": "echo", "environment": f"azureml:{env_name}:2"}).environment)
    assert resolved.python_executable == sys.executable and resolved.notice is None
    with pytest.raises(ValidationError) as caught:
        save_environment(_unique("missing-env"), str(tmp_path / "no" / "python"))
    assert [p.field for p in caught.value.problems] == ["python"]


def test_an_environment_whose_interpreter_disappeared_is_a_configuration_error(tmp_path):
    from prefect_ml.compute.environments import resolve_environment, save_environment
    from prefect_ml.exceptions import ConfigurationError
    from prefect_ml.specs import parse_job

    fake = write(tmp_path / "bin" / "python", "#!/bin/sh\n")
    env_name = _unique("gone-env")
    save_environment(env_name, str(fake))
    fake.unlink()
    with pytest.raises(ConfigurationError, match=f"environment create --name {env_name} --python"):
        resolve_environment(parse_job({"command": "echo", "environment": f"azureml:{env_name}@latest"}).environment)


# ------------------------------------------------------------ bad input
def test_unknown_environment_exits_2_says_how_to_create_it_and_creates_nothing(tmp_path):
    experiment = _unique("bad-env")
    job_file = write(tmp_path / "job.yml", f"experiment_name: {experiment}\ncommand: echo hi\n"
                                           "environment: azureml:nope-env:3\n")
    name = _unique("nope").replace("-", "_")
    result = cli("job", "create", "--file", str(job_file), "--name", name)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "nope-env" in result.stderr and "Traceback" not in result.stderr
    assert "prefect-ml environment create --name nope-env --python PATH" in " ".join(result.stderr.split())
    assert _flow_runs_named(name) == []
    assert not (Path(os.environ["PREFECT_ML_HOME"]) / "jobs" / name).exists()
    from prefect_ml import tracking

    assert tracking.get_client().get_experiment_by_name(experiment) is None


def test_environment_create_with_a_missing_interpreter_exits_2(tmp_path):
    from prefect_ml.compute.environments import _load_environment_block

    env_name = _unique("broken-env")
    missing = tmp_path / "nowhere" / "bin" / "python"
    result = cli("environment", "create", "--name", env_name, "--python", str(missing))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "interpreter not found" in result.stderr and str(missing) in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert _load_environment_block(env_name) is None


# ------------------------------------------------------ curated / inline
@pytest.mark.parametrize("environment, label", [
    ("azureml:AzureML-sklearn-1.5@latest", "azureml:AzureML-sklearn-1.5@latest"),
    ("azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
     "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"),
    ({"image": "python:3.11"}, "image python:3.11"),
    ({"image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"},
     "image mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"),  # with a conda_file: a venv (test_environment_assets)
])
def test_curated_and_inline_environments_use_the_current_interpreter_with_a_notice(environment, label):
    from prefect_ml.compute.environments import resolve_environment
    from prefect_ml.specs import EnvironmentSpec, parse_job

    spec = parse_job({"command": "python train.py", "environment": environment}).environment
    assert isinstance(spec, EnvironmentSpec)
    resolved = resolve_environment(spec)
    assert resolved.python_executable == sys.executable
    assert Path(resolved.bin_dir, "python").resolve() == Path(sys.executable).resolve()
    assert resolved.environment_variables == {}
    assert resolved.notice is not None
    assert label in resolved.notice and "current interpreter" in resolved.notice and sys.executable in resolved.notice


def test_no_environment_is_the_current_interpreter_without_notice():
    from prefect_ml.compute.environments import resolve_environment
    from prefect_ml.specs import parse_job

    spec = parse_job({"command": "python train.py"})
    resolved = resolve_environment(spec.environment)
    assert resolved.python_executable == sys.executable and resolved.notice is None


def test_unknown_environment_reference_raises_configuration_error():
    from prefect_ml.compute.environments import resolve_environment
    from prefect_ml.exceptions import ConfigurationError
    from prefect_ml.specs import parse_job

    spec = parse_job({"command": "python train.py", "environment": "azureml:nope-env:3"}).environment
    assert not spec.is_curated and not spec.is_inline
    with pytest.raises(ConfigurationError, match="nope-env") as caught:
        resolve_environment(spec)
    assert "prefect-ml environment create --name nope-env --python PATH" in str(caught.value)
