"""Shared set-up of the sweep benchmarks: a throw-away PREFECT_HOME / PREFECT_ML_HOME and API server."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def isolated_api(use_current: bool = False):
    """Yield a work folder; unless ``use_current``, with its own homes and ``prefect server start``."""
    work = Path(tempfile.mkdtemp(prefix="prefect-ml-bench-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    if use_current:
        yield work
        return
    os.environ["PREFECT_HOME"] = str(work / "prefect-home")
    os.environ["PREFECT_ML_HOME"] = str(work / "prefect-ml-home")
    os.environ["PREFECT_ML_AUTOSTART_SERVER"] = "false"
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from prefect_ml.compute import server

    port = server.free_port()
    process = server.spawn(port, os.environ["PREFECT_HOME"], work / "server.log")
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    try:
        server.wait_healthy(os.environ["PREFECT_API_URL"], process, log_path=work / "server.log",
                            timeout_seconds=300)
        yield work
    finally:
        if "prefect" in __import__("sys").modules:
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=10)
            EventsWorker.drain_all(timeout=10)
        server.terminate(process.pid)
