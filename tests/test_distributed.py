"""``resources.instance_count`` and ``distribution: {type: pytorch}``: N x P processes with Azure's variables."""

from __future__ import annotations

import json
import uuid

import pytest

from helpers import write

ENV_SCRIPT = """
import json, os, pathlib, sys
keys = ["MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "MLFLOW_RUN_ID"]
values = {k: os.environ.get(k) for k in keys}
pathlib.Path(sys.argv[1], f"rank{values['RANK']}.json").write_text(json.dumps(values))
print("rank", values["RANK"], "of", values["WORLD_SIZE"])
"""


def test_pytorch_distribution_runs_instance_count_times_processes_with_azures_variables(tmp_path):
    from prefect_ml import MLClient, command

    write(tmp_path / "src" / "env.py", ENV_SCRIPT)
    out = tmp_path / "ranks"
    out.mkdir()
    job = command(code=str(tmp_path / "src"), command=f"python env.py {out}",
                  distribution={"type": "pytorch", "process_count_per_instance": 2},
                  resources={"instance_count": 2})
    result = MLClient().jobs.create_or_update(job, name=f"dist_{uuid.uuid4().hex[:8]}")
    assert result.status == "Completed", result.error
    seen = sorted((json.loads(p.read_text()) for p in out.glob("*.json")), key=lambda v: int(v["RANK"]))
    assert [(v["RANK"], v["NODE_RANK"], v["LOCAL_RANK"]) for v in seen] == [
        ("0", "0", "0"), ("1", "0", "1"), ("2", "1", "0"), ("3", "1", "1")]
    assert {v["WORLD_SIZE"] for v in seen} == {"4"} and {v["MASTER_ADDR"] for v in seen} == {"127.0.0.1"}
    assert len({v["MASTER_PORT"] for v in seen}) == 1 and int(seen[0]["MASTER_PORT"]) > 0
    assert {v["MLFLOW_RUN_ID"] for v in seen} == {result.mlflow_run_id}  # one job, one MLflow run
    log = open(result.log_path).read()
    assert all(f"[rank {r}] rank {r} of 4" in log for r in range(4))


def test_a_single_process_pytorch_job_gets_azures_variables_too(tmp_path):
    from prefect_ml import MLClient, command

    write(tmp_path / "src" / "env.py", ENV_SCRIPT)
    out = tmp_path / "ranks"
    out.mkdir()
    job = command(code=str(tmp_path / "src"), command=f"python env.py {out}", distribution={"type": "pytorch"})
    result = MLClient().jobs.create_or_update(job, name=f"dist1_{uuid.uuid4().hex[:8]}")
    assert result.status == "Completed", result.error
    (only,) = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert (only["RANK"], only["LOCAL_RANK"], only["NODE_RANK"], only["WORLD_SIZE"]) == ("0", "0", "0", "1")
    assert only["MASTER_ADDR"] == "127.0.0.1" and int(only["MASTER_PORT"]) > 0


def test_one_failing_process_fails_the_job_and_stops_the_others(tmp_path):
    from prefect_ml import MLClient, command

    script = ("import os, sys, time\n"
              "if os.environ['RANK'] == '1':\n    sys.exit(3)\n"
              "time.sleep(120)\n")
    write(tmp_path / "src" / "fail.py", script)
    job = command(code=str(tmp_path / "src"), command="python fail.py", resources={"instance_count": 2},
                  distribution={"type": "pytorch"})
    result = MLClient().jobs.create_or_update(job, name=f"dist_fail_{uuid.uuid4().hex[:8]}")
    assert result.status == "Failed" and "exited with code 3" in result.error


def test_process_environments_without_distribution_and_rejections():
    from prefect_ml.compute.distributed import distribution_problems, process_environments
    from prefect_ml.specs import parse_job

    plain = parse_job({"command": "echo hi"})
    env = {"A": "1"}
    assert process_environments(plain, env) == [env]
    nodes = parse_job({"command": "echo hi", "resources": {"instance_count": 3}})
    assert [(e["NODE_RANK"], e["PREFECT_ML_INSTANCE_COUNT"], e["A"]) for e in process_environments(nodes, env)] == [
        ("0", "3", "1"), ("1", "3", "1"), ("2", "3", "1")]
    assert "RANK" not in process_environments(nodes, env)[0]
    assert distribution_problems(nodes, "process") == [] and distribution_problems(nodes, "dask") == []
    (problem,) = distribution_problems(nodes, "docker")
    assert problem.field == "resources.instance_count" and problem.value == 3
    mpi = parse_job({"command": "echo hi", "distribution": {"type": "mpi", "process_count_per_instance": 2}})
    (problem,) = distribution_problems(mpi, "local")
    assert problem.field == "distribution.type" and "pytorch" in problem.message
    per_pod = parse_job({"command": "echo hi", "distribution": {"type": "pytorch", "process_count_per_instance": 2}})
    assert distribution_problems(per_pod, "kubernetes") == []


def test_instance_count_on_a_docker_target_is_a_validation_error_naming_the_field(tmp_path):
    from prefect_ml.compute import targets
    from prefect_ml.exceptions import ValidationError
    from prefect_ml import MLClient, command

    spec = targets.parse_spec({"name": f"docker-{uuid.uuid4().hex[:8]}", "type": "docker", "image": "x/y:1"})
    target = targets.create_compute(spec)
    try:
        with pytest.raises(ValidationError) as info:
            MLClient().jobs.validate(command(command="echo hi", compute=target.name,
                                             resources={"instance_count": 2}))
        assert "resources.instance_count" in str(info.value) and "one instance" in str(info.value)
    finally:
        targets.delete_compute(target.name)
