"""``prefect-ml server start|status|stop`` and reuse of the local API by later calls.

Runs the CLI with no ``PREFECT_API_URL`` and its own fresh ``PREFECT_HOME`` / ``PREFECT_ML_HOME``,
as a user's first call would, so the suite's shared server is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from helpers import pid_alive, wait_for, write
from prefect_ml.compute import server

pytestmark = pytest.mark.slow


def _run(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prefect_ml", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _flow_run_names(api_url: str, name: str) -> list[str]:
    body = json.dumps({"flow_runs": {"name": {"any_": [name]}}}).encode()
    request = urllib.request.Request(f"{api_url}/flow_runs/filter", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return [run["name"] for run in json.loads(response.read())]


def test_server_start_status_reuse_and_stop(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "PREFECT_ML_AUTOSTART_SERVER", "PREFECT_PROFILE", "MLFLOW_TRACKING_URI")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["PREFECT_ML_HOME"] = str(tmp_path / "ml-home")
    state_file = tmp_path / "ml-home" / "server" / "server.json"
    port = server.free_port()
    pid = None
    try:
        status = _run("server", "status", env=env)
        assert status.returncode == 1, (status.stdout, status.stderr)
        assert "not running" in status.stdout

        started = _run("server", "start", "--port", str(port), env=env)
        assert started.returncode == 0, (started.stdout, started.stderr)
        api_url = f"http://127.0.0.1:{port}/api"
        assert api_url in started.stdout
        info = json.loads(state_file.read_text())
        pid = info["pid"]
        assert info["url"] == api_url and info["port"] == port
        assert Path(info["prefect_home"]) == (tmp_path / "prefect-home").resolve()
        assert pid_alive(pid) and server.healthy(api_url)

        status = _run("server", "status", env=env)
        assert status.returncode == 0, (status.stdout, status.stderr)
        assert f"pid {pid}" in status.stdout and api_url in status.stdout

        # A job in the same environment reuses that server: same pid, and the flow run is on it.
        job_file = write(tmp_path / "job.yml", "command: echo hi\nexperiment_name: server-cli\n")
        name = f"srv_{uuid.uuid4().hex[:8]}"
        created = _run("job", "create", "--file", str(job_file), "--name", name, "--output", "json", env=env)
        assert created.returncode == 0, (created.stdout, created.stderr)
        job = json.loads(created.stdout)
        assert job["status"] == "Completed" and job["name"] == name
        assert "hi" in Path(job["log_path"]).read_text().splitlines()
        assert Path(job["log_path"]).is_relative_to(tmp_path / "ml-home")
        assert json.loads(state_file.read_text())["pid"] == pid and pid_alive(pid)
        assert _flow_run_names(api_url, name) == [name]

        stopped = _run("server", "stop", env=env)
        assert stopped.returncode == 0, (stopped.stdout, stopped.stderr)
        assert "Stopped" in stopped.stdout
        wait_for(lambda: not pid_alive(pid), timeout=30, what=f"server pid {pid} to exit")
        assert not state_file.exists()
        assert not server.healthy(api_url)

        status = _run("server", "status", env=env)
        assert status.returncode == 1, (status.stdout, status.stderr)
    finally:
        if pid is None and state_file.exists():
            pid = json.loads(state_file.read_text()).get("pid")
        if pid is not None and pid_alive(pid):
            server.terminate(pid)
