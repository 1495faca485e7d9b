"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: str | Path | None = None, timeout: float = 300, env: dict | None = None
        ) -> subprocess.CompletedProcess:
    """Run ``prefect-ml ARGS`` in a subprocess with the test session's environment."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "prefect_ml", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def cli_json(*args: str, **kwargs):
    """Run the CLI with ``--output json`` and parse stdout."""
    result = cli(*args, "--output", "json", **kwargs)
    try:
        return result, json.loads(result.stdout)
    except ValueError as exc:
        raise AssertionError(f"not JSON (exit {result.returncode}):\n{result.stdout}\n{result.stderr}") from exc


def wait_for(predicate: Callable[[], object], timeout: float = 60, interval: float = 0.2, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def cli_in_process(*args: str) -> subprocess.CompletedProcess:
    """Run ``prefect-ml ARGS`` in this process (typer's ``CliRunner``): the same commands as :func:`cli`
    without the few seconds a new Python process costs. Returns ``returncode``, ``stdout`` and ``stderr``."""
    from typer.testing import CliRunner

    from prefect_ml.cli.app import app

    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["prefect-ml", *args], result.exit_code, result.stdout, result.stderr)


@contextlib.contextmanager
def dask_target(threads: int, name: str | None = None):
    """A real ``dask`` compute target on a ``LocalCluster`` of ``threads`` threads started here (in this process,
    on a TCP address; the target's ``scheduler_address``). Yields ``(target name, cluster)``; the target and the
    cluster are removed on exit."""
    import uuid

    from distributed import LocalCluster

    from prefect_ml.compute.targets import ComputeSpec, create_compute, delete_compute

    name = name or f"dask-{uuid.uuid4().hex[:8]}"
    with LocalCluster(n_workers=1, threads_per_worker=threads, processes=False, protocol="tcp",
                      dashboard_address=None) as cluster:
        create_compute(ComputeSpec(name=name, type="dask", scheduler_address=cluster.scheduler_address))
        try:
            yield name, cluster
        finally:
            delete_compute(name)


def executed_on(cluster) -> int:
    """How many tasks the (one) worker of a ``LocalCluster`` has run."""
    return sum(worker.state.executed_count for worker in cluster.workers.values())
