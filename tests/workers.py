"""Real Prefect workers for end-to-end tests: ``prefect worker start`` subprocesses stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from helpers import wait_for

#: Poll fast so a flow run created by a test is picked up within ~1-2 s.
FAST_WORKER_ENV = {"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "2"}


class Worker:
    """A ``prefect worker start --pool POOL`` subprocess.

    Args:
        pool: Work pool name (created by the worker if missing, with ``worker_type``).
        log_path: File receiving the worker's stdout and stderr.
        worker_type: ``--type`` passed to the worker (``process``, ``docker``, ...).
        env: Extra environment variables for the worker (and the flow runs it starts).
        cwd: Working directory of the worker.
    """

    def __init__(self, pool: str, log_path: Path, *, worker_type: str = "process", env: dict | None = None,
                 cwd: str | Path | None = None):
        self.pool = pool
        self.log_path = Path(log_path)
        full_env = dict(os.environ)
        full_env.update(FAST_WORKER_ENV)
        full_env.update(env or {})
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", worker_type],
            stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 90) -> "Worker":
        """Return once the API lists this worker for its pool; raise AssertionError (with the log) if it died."""
        from prefect_ml._prefect import prefect_client

        def registered():
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()}")
            with prefect_client() as client:
                try:
                    return client.read_workers_for_work_pool(self.pool)
                except Exception:  # the pool does not exist until the worker created it
                    return None

        wait_for(registered, timeout=timeout, interval=0.5, what=f"a worker on pool {self.pool!r}")
        return self

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 15) -> None:
        """SIGINT, then SIGKILL the whole process group after ``timeout`` seconds (SIGTERM is not enough)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGINT)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        if self.process.poll() is None or _group_alive(self.process.pid):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=timeout)
        self._log.close()

    def __enter__(self) -> "Worker":
        return self.wait_ready()

    def __exit__(self, *exc) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
