"""The local Prefect API that prefect-ml starts on first use and reuses.

Without ``PREFECT_API_URL`` every Python process that runs a flow would start Prefect's
temporary API server (about 6 s per process, 15 s on a fresh database) and workers
could not attach to it. prefect-ml instead starts one ``prefect server start`` in the
background the first time a command needs an API, records it in
``$PREFECT_ML_HOME/server/server.json`` and points later calls at it. The first call
pays the server's start-up (about 15 s on a fresh ``PREFECT_HOME``, 7 s afterwards);
later calls pay nothing. ``prefect-ml server stop`` stops it.

When ``PREFECT_API_URL`` is set (environment or active Prefect profile) that API is
used and nothing is started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from prefect_ml import settings
from prefect_ml.exceptions import PrefectMLError

DEFAULT_PORT = 4200
#: Seconds to wait for a new server's ``/api/health``.
START_TIMEOUT_SECONDS = 120.0


@dataclass
class ServerInfo:
    """A running local API server.

    Attributes:
        pid: Process id of ``prefect server start``.
        port: TCP port on 127.0.0.1.
        url: The API URL, ``http://127.0.0.1:PORT/api``.
        prefect_home: The ``PREFECT_HOME`` the server was started with (its database lives there).
        log_path: File receiving the server's output.
    """

    pid: int
    port: int
    url: str
    prefect_home: str
    log_path: str

    @property
    def ui_url(self) -> str:
        """The Prefect UI served by the same process."""
        return self.url.removesuffix("/api")


def _state_dir() -> Path:
    path = settings.home() / "server"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _state_file() -> Path:
    return _state_dir() / "server.json"


def healthy(url: str, timeout_seconds: float = 1.0) -> bool:
    """Return whether ``GET {url}/health`` answers 200 within ``timeout_seconds``."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout_seconds) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prefect_home() -> str:
    return str(Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser().resolve())


def status() -> ServerInfo | None:
    """Return the recorded local server if it is alive and healthy, else ``None``."""
    state = _state_file()
    if not state.exists():
        return None
    try:
        info = ServerInfo(**json.loads(state.read_text()))
    except (ValueError, TypeError):
        return None
    if info.prefect_home != _prefect_home():
        return None
    if _pid_alive(info.pid) and healthy(info.url):
        return info
    return None


@contextlib.contextmanager
def _lock():
    import fcntl

    with open(_state_dir() / "server.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def spawn(port: int, prefect_home: str, log_path: Path, *, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``prefect server start`` on 127.0.0.1:``port`` in its own session.

    Args:
        port: TCP port to listen on.
        prefect_home: ``PREFECT_HOME`` for the server (its SQLite database lives there).
        log_path: File receiving the server's stdout and stderr.
        extra_env: Additional environment variables for the server process.

    Returns:
        The server process; it keeps running after this process exits.
    """
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(settings.QUIET_DEFAULTS)
    env.update({"PREFECT_HOME": prefect_home, "PREFECT_SERVER_LOGGING_LEVEL": "WARNING"})
    env.update(extra_env or {})
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
             "--analytics-off"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )


def wait_healthy(url: str, process: subprocess.Popen | None = None, timeout_seconds: float = START_TIMEOUT_SECONDS,
                 log_path: Path | None = None) -> None:
    """Poll ``{url}/health`` until it answers, the process dies or ``timeout_seconds`` pass.

    Raises:
        PrefectMLError: The server exited or did not become healthy in time; the message
            ends with the tail of its log.
    """
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if healthy(url):
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.25)
    tail = ""
    if log_path is not None and log_path.exists():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
    raise PrefectMLError(f"The local Prefect API at {url} did not start within {timeout_seconds:.0f} s. "
                         f"Server log ({log_path}):\n{tail}")


def start(port: int | None = None) -> ServerInfo:
    """Start the local API server unless one is already running; return it.

    Args:
        port: Port to use; default 4200 when free, else any free port.

    Raises:
        PrefectMLError: The server did not become healthy.
    """
    with _lock():
        info = status()
        if info is not None:
            return info
        if port is None:
            port = DEFAULT_PORT if _port_free(DEFAULT_PORT) else free_port()
        log_path = _state_dir() / "server.log"
        process = spawn(port, _prefect_home(), log_path)
        info = ServerInfo(pid=process.pid, port=port, url=f"http://127.0.0.1:{port}/api",
                          prefect_home=_prefect_home(), log_path=str(log_path))
        try:
            wait_healthy(info.url, process, log_path=log_path)
        except PrefectMLError:
            terminate(process.pid)
            raise
        _state_file().write_text(json.dumps(asdict(info)))
        return info


def terminate(pid: int, timeout_seconds: float = 20.0) -> None:
    """Stop a server started by :func:`spawn`: SIGINT to its session, then SIGKILL after ``timeout_seconds``."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            try:
                finished, _ = os.waitpid(pid, os.WNOHANG)
                if finished == pid:
                    return
            except ChildProcessError:
                if not _pid_alive(pid):
                    return
            time.sleep(0.1)


def stop() -> bool:
    """Stop the recorded local server. Returns whether one was running."""
    with _lock():
        state = _state_file()
        if not state.exists():
            return False
        try:
            info = ServerInfo(**json.loads(state.read_text()))
        except (ValueError, TypeError):
            state.unlink(missing_ok=True)
            return False
        running = _pid_alive(info.pid)
        if running:
            terminate(info.pid)
        state.unlink(missing_ok=True)
        return running


def configured_api_url() -> str | None:
    """The API URL the user configured (environment or active Prefect profile), if any."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    try:
        from prefect.settings import get_current_settings

        url = get_current_settings().api.url
    except Exception:  # pragma: no cover - a broken profile is Prefect's to report
        return None
    return url or None


def ensure_api(autostart: bool = True) -> str | None:
    """Point this process at a Prefect API, starting the local one if needed.

    Sets ``PREFECT_API_URL`` in ``os.environ`` (and refreshes Prefect's global settings
    if Prefect is already imported).

    Args:
        autostart: Start the local server when no API is configured or running. When
            false and none is found, return ``None`` (Prefect then uses its temporary server).

    Returns:
        The API URL in use, or ``None``.
    """
    settings.apply_quiet_defaults()
    url = configured_api_url()
    if url:
        return url
    info = status()
    if info is None and autostart and os.environ.get("PREFECT_ML_AUTOSTART_SERVER", "true").lower() != "false":
        print("Starting the local Prefect API in the background (first use: about 15-25 s; "
              "`prefect-ml server stop` stops it)...", file=sys.stderr, flush=True)
        info = start()
        print(f"Prefect API ready; Prefect UI at {info.ui_url}", file=sys.stderr, flush=True)
    if info is None:
        return None
    os.environ["PREFECT_API_URL"] = info.url
    if "prefect.context" in sys.modules:
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()
    return info.url
