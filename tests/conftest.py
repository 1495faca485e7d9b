"""Shared fixtures: one real ``prefect server start`` per test process.

The environment is set at import time, before any test module imports Prefect, so
every test (and every subprocess it starts) talks to the same real API with its own
``PREFECT_HOME``, ``PREFECT_ML_HOME`` and MLflow SQLite store under a temporary folder.
Under pytest-xdist (``-n 2``) each worker process has its own server and folders; the
controller process, which runs no test, starts none.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

_ROOT = Path(tempfile.mkdtemp(prefix="prefect-ml-tests-"))
os.environ["PREFECT_HOME"] = str(_ROOT / "prefect-home")
os.environ["PREFECT_ML_HOME"] = str(_ROOT / "prefect-ml-home")
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("PREFECT_PROFILE", None)
os.environ["PREFECT_ML_AUTOSTART_SERVER"] = "false"
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from prefect_ml.compute import server as _server  # noqa: E402  (stdlib-only import)

_PORT = _server.free_port()
_LOG = _ROOT / "server.log"
_PROCESS = None
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{_PORT}/api"

#: Folder of Azure's example job files (read-only in CI: copy before changing anything).
SHARED = Path(os.environ.get("PREFECT_ML_SHARED_DIR") or Path(__file__).resolve().parents[2] / "shared")
AZURE_EXAMPLES = SHARED / "azureml-examples" / "cli"


def pytest_configure(config):
    """Start the server while tests are collected, in every process that will run tests."""
    global _PROCESS
    xdist_controller = bool(getattr(config.option, "numprocesses", None)) and "PYTEST_XDIST_WORKER" not in os.environ
    if not xdist_controller:
        # The scheduler service creates runs of new schedules every 2 s instead of every 60 s.
        _PROCESS = _server.spawn(_PORT, os.environ["PREFECT_HOME"], _LOG,
                                 extra_env={"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2"})


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> str:
    """The real Prefect API every test uses; waits for it to be healthy."""
    # A generous deadline: a server's first start (migrations) takes 15-25 s on 2 idle cores but minutes on a
    # machine loaded by other test runs.
    _server.wait_healthy(os.environ["PREFECT_API_URL"], _PROCESS, log_path=_LOG, timeout_seconds=600)
    return os.environ["PREFECT_API_URL"]


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    if _PROCESS is not None and "prefect" in sys.modules:  # send buffered logs and events before the API goes
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)
    if _PROCESS is not None:
        _server.terminate(_PROCESS.pid)
    shutil.rmtree(_ROOT, ignore_errors=True)


@pytest.fixture
def azure_examples() -> Path:
    """Path of ``../shared/azureml-examples/cli``; skips when the shared folder is absent."""
    if not AZURE_EXAMPLES.exists():
        pytest.skip(f"shared Azure examples not found at {AZURE_EXAMPLES}")
    return AZURE_EXAMPLES


@pytest.fixture
def start_worker(tmp_path):
    """Start real ``prefect worker start`` subprocesses: ``start_worker(pool, worker_type=..., env=...)``.

    Each returned :class:`workers.Worker` is registered with the API before it is returned and stopped
    (SIGINT, then SIGKILL by process group) when the test ends.
    """
    from workers import Worker

    started: list[Worker] = []

    def start(pool: str, *, worker_type: str = "process", env: dict | None = None, cwd=None) -> Worker:
        worker = Worker(pool, tmp_path / f"worker-{pool}-{len(started)}.log", worker_type=worker_type, env=env,
                        cwd=cwd)
        started.append(worker)
        return worker.wait_ready()

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(autouse=True)
def _restore_environment():
    """Undo changes a test makes to ``os.environ`` (``MLClient(tracking_uri=...)`` sets MLFLOW_TRACKING_URI)."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)
