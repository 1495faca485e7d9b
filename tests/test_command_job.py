"""Command jobs end to end against the real Prefect API, real MLflow (SQLite) and real processes."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import uuid
from pathlib import Path

import pytest

from helpers import cli, cli_in_process, pid_alive, wait_for, write

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ml_client():
    from prefect_ml import MLClient

    return MLClient()


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _flow_runs_named(name: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))


def _mlflow():
    from prefect_ml import tracking

    return tracking.get_client()


# ---------------------------------------------------------------- training
def test_sdk_command_runs_and_derives_new_jobs(ml_client, tmp_path):
    from prefect_ml import Input, Output, command

    code = tmp_path / "src"
    write(code / "train.py", """
import argparse, mlflow, pathlib
p = argparse.ArgumentParser(); p.add_argument('--lr', type=float); p.add_argument('--data'); p.add_argument('--out')
a = p.parse_args()
rows = pathlib.Path(a.data).read_text().splitlines()
mlflow.log_metric('rows', len(rows)); mlflow.log_metric('lr', a.lr)
pathlib.Path(a.out, 'result.txt').write_text(str(a.lr))
print('trained with', a.lr)
""")
    write(tmp_path / "data.csv", "a,b\n1,2\n3,4\n")
    job = command(code=str(code), command="python train.py --lr ${{inputs.lr}} --data ${{inputs.data}} "
                                          "--out ${{outputs.result}}",
                  inputs={"lr": 0.1, "data": Input(type="uri_file", path=str(tmp_path / "data.csv"))},
                  outputs={"result": Output(type="uri_folder")}, experiment_name="sdk-test")
    first = ml_client.jobs.create_or_update(job, name=_unique("sdk"))
    assert first.status == "Completed", first.error
    assert first.metrics == {"rows": 3.0, "lr": 0.1}
    assert Path(first.outputs["result"], "result.txt").read_text() == "0.1"
    second = ml_client.jobs.create_or_update(job(lr=0.5), name=_unique("sdk"))
    assert second.status == "Completed" and second.metrics["lr"] == 0.5
    assert ml_client.jobs.get(first.name).metrics["lr"] == 0.1
    names = [j.name for j in ml_client.jobs.list()]
    assert first.name in names and second.name in names


# ----------------------------------------------------------------- failure
def test_failing_command_is_failed_with_stderr_tail(tmp_path):
    job_file = write(tmp_path / "job.yml", """
command: |
  python -c "import sys; print('starting'); sys.stderr.write('boom: bad data\\n'); sys.exit(3)"
experiment_name: failures
""")
    name = _unique("fail")
    result = cli_in_process("job", "create", "--file", str(job_file), "--name", name, "--output", "json")
    job = json.loads(result.stdout)
    assert result.returncode == 1
    assert job["status"] == "Failed"
    assert "exited with code 3" in job["error"] and "boom: bad data" in job["error"]
    assert _mlflow().get_run(job["mlflow_run_id"]).info.status == "FAILED"
    assert "boom: bad data" in Path(job["log_path"]).read_text()


PID_SCRIPT = """
import os, subprocess, sys, time, pathlib
child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])
pathlib.Path(sys.argv[1]).write_text(f'{os.getpid()} {child.pid}')
print('started', flush=True)
time.sleep(300)
"""


def test_timeout_kills_the_whole_process_tree(tmp_path):
    write(tmp_path / "src" / "sleeper.py", PID_SCRIPT)
    pids = tmp_path / "pids.txt"
    job_file = write(tmp_path / "job.yml", f"""
code: src
command: python sleeper.py {pids}
limits:
  timeout: 3
""")
    result = cli_in_process("job", "create", "--file", str(job_file), "--name", _unique("timeout"), "--output", "json")
    job = json.loads(result.stdout)
    assert result.returncode == 1
    assert job["status"] == "Failed" and "timed out after 3 s" in job["error"]
    for pid in map(int, pids.read_text().split()):
        wait_for(lambda: not pid_alive(pid), timeout=10, what=f"pid {pid} to exit")


def test_cancel_kills_the_process_tree_and_ends_canceled(ml_client, tmp_path):
    from prefect_ml import command

    write(tmp_path / "src" / "sleeper.py", PID_SCRIPT)
    pids = tmp_path / "pids.txt"
    name = _unique("cancel")
    job = command(code=str(tmp_path / "src"), command=f"python sleeper.py {pids}")
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("job", ml_client.jobs.create_or_update(job, name=name)))
    runner.start()
    wait_for(lambda: pids.exists() and pids.read_text(), timeout=60, what="the job's processes")
    result = cli("job", "cancel", name)
    assert result.returncode == 0, result.stderr
    runner.join(timeout=60)
    assert not runner.is_alive()
    assert outcome["job"].status == "Canceled"
    for pid in map(int, pids.read_text().split()):
        wait_for(lambda: not pid_alive(pid), timeout=10, what=f"pid {pid} to exit")
    assert _mlflow().get_run(outcome["job"].mlflow_run_id).info.status == "KILLED"


# --------------------------------------------------------------- bad input
BAD_JOBS = {
    "unknown-input": ("command: echo ${{inputs.missing}}\ninputs:\n  present: 1\n", "inputs.missing"),
    "missing-required": ("command: echo ${{inputs.x}}\ninputs:\n  x:\n    type: integer\n", "inputs.x"),
    "wrong-type": ("command: echo ${{inputs.x}}\ninputs:\n  x:\n    type: uri_fil\n    path: a.csv\n", "inputs.x.type"),
    "missing-code": ("code: nowhere\ncommand: echo hi\n", "code"),
    "unknown-field": ("comand: echo hi\ncommand: echo hi\n", "comand"),
    "missing-input-file": ("command: cat ${{inputs.x}}\ninputs:\n  x:\n    type: uri_file\n    path: nope.csv\n",
                           "inputs.x"),
    "remote-compute": ("command: echo hi\ncompute: azureml:gpu-cluster\n", "compute"),
}


@pytest.mark.parametrize("case", sorted(BAD_JOBS))
def test_bad_input_exits_2_and_creates_nothing(case, tmp_path):
    text, field = BAD_JOBS[case]
    job_file = write(tmp_path / f"{case}.yml", f"experiment_name: bad-{case}\n{text}")
    name = _unique("bad")
    result = cli("job", "create", "--file", str(job_file), "--name", name)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert field in result.stderr and "Traceback" not in result.stderr
    assert _flow_runs_named(name) == []
    assert _mlflow().get_experiment_by_name(f"bad-{case}") is None
    assert not (Path(os.environ["PREFECT_ML_HOME"]) / "jobs" / name).exists()


def test_all_problems_of_a_file_are_reported_at_once(tmp_path):
    job_file = write(tmp_path / "job.yml", "comand: x\ncommand: echo ${{inputs.a}} ${{outputs.b}}\n"
                                           "limits:\n  timeout: -1\n")
    result = cli("job", "create", "--file", str(job_file))
    assert result.returncode == 2
    for needle in ("comand", "inputs.a" if "inputs.a" in result.stderr else "'a'", "limits.timeout", str(job_file)):
        assert needle in result.stderr, result.stderr


# ------------------------------------------------------- output and stream
def test_stream_shows_job_output_and_a_clean_summary(tmp_path):
    job_file = write(tmp_path / "job.yml", """
command: |
  echo "line one"
  python -c "import mlflow; mlflow.log_metric('score', 0.75); print('logged')"
inputs: {}
""")
    name = _unique("stream")
    result = cli("job", "create", "--file", str(job_file), "--name", name, "--stream")
    assert result.returncode == 0, result.stderr
    assert "line one" in result.stdout and "logged" in result.stdout
    assert "Completed" in result.stdout and "score=0.75" in result.stdout and "lifecycle" in result.stdout
    combined = result.stdout + result.stderr
    for noise in ("Traceback", "telemetry", "Stopping temporary server", "alembic"):
        assert noise not in combined, combined
    # show / list / stream / download on the finished job
    shown = json.loads(cli_in_process("job", "show", name).stdout)
    assert shown["status"] == "Completed" and shown["metrics"] == {"score": 0.75}
    streamed = cli_in_process("job", "stream", name)
    assert streamed.returncode == 0 and "line one" in streamed.stdout
    listed = json.loads(cli_in_process("job", "list", "--output", "json").stdout)
    assert name in [j["name"] for j in listed]


def test_download_gets_named_outputs_and_logs(ml_client, tmp_path):
    from prefect_ml import command

    job = command(command="echo hello > ${{outputs.greeting}}/hello.txt && echo done",
                  outputs={"greeting": {"type": "uri_folder"}})
    done = ml_client.jobs.create_or_update(job, name=_unique("dl"))
    assert done.status == "Completed", done.error
    target = ml_client.jobs.download(done.name, download_path=tmp_path / "dl")
    assert (target / "named-outputs" / "greeting" / "hello.txt").read_text() == "hello\n"
    assert "done" in (target / "artifacts" / "user_logs" / "std_log.txt").read_text()
    with pytest.raises(LookupError, match="no output 'nope'"):
        ml_client.jobs.download(done.name, output_name="nope", download_path=tmp_path / "x")


def test_flow_run_links_to_the_mlflow_run(ml_client):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from prefect_ml import command

    done = ml_client.jobs.create_or_update(command(command="echo linked"), name=_unique("link"))
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[done.prefect_flow_run_id])))
    (link,) = [a for a in artifacts if a.key == "mlflow-run"]
    assert f"http://127.0.0.1:5000/#/experiments/" in link.data and done.mlflow_run_id in link.data
    run = _mlflow().get_run(done.mlflow_run_id)
    assert run.data.tags["prefect.flow_run_url"].endswith(f"/runs/flow-run/{done.prefect_flow_run_id}")
