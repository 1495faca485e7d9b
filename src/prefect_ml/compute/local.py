"""Running a job's command as a child process group on the local machine."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Mapping

#: Seconds between SIGTERM and SIGKILL when a process group is stopped.
KILL_GRACE_SECONDS = 5.0


@dataclass
class ProcessResult:
    """What happened to a command.

    Attributes:
        exit_code: The shell's exit status (negative: killed by that signal).
        duration_seconds: Wall time from start to exit.
        timed_out: Killed because it ran past its timeout.
        cancelled: Killed because cancellation was requested.
        tail: The last lines of the combined stdout/stderr (at most ``TAIL_LINES``).
    """

    exit_code: int
    duration_seconds: float
    timed_out: bool = False
    cancelled: bool = False
    tail: list[str] = field(default_factory=list)


TAIL_LINES = 30


def kill_process_group(pgid: int, grace_seconds: float = KILL_GRACE_SECONDS) -> None:
    """Send SIGTERM to a process group, then SIGKILL to whatever is left after ``grace_seconds``."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_command(
    command: str,
    *,
    cwd: str,
    env: Mapping[str, str],
    on_line: Callable[[str, str], None] | None = None,
    timeout_seconds: float | None = None,
    should_cancel: Callable[[], bool] | None = None,
    cancel_poll_seconds: float = 1.0,
    shell: str = "/bin/bash",
) -> ProcessResult:
    """Run ``command`` with ``shell -c`` in a new session and wait for it.

    The command and everything it starts form one process group; on timeout, on
    cancellation (``should_cancel()`` returned true) or when this call is interrupted
    (``KeyboardInterrupt``, task cancellation) the whole group is killed, so no orphan
    processes are left behind.

    Args:
        command: The rendered command line (inputs already shell-quoted).
        cwd: Working directory.
        env: The complete environment of the child.
        on_line: Called as ``on_line(stream, line)`` for every output line, with
            ``stream`` ``"stdout"`` or ``"stderr"`` and the line without its newline.
        timeout_seconds: Kill the group after this many seconds (``None``: no limit).
        should_cancel: Polled every ``cancel_poll_seconds``; true kills the group.
        cancel_poll_seconds: Poll interval for ``should_cancel``, seconds.
        shell: The shell that runs the command.

    Returns:
        The :class:`ProcessResult`.
    """
    started = time.monotonic()
    process = subprocess.Popen(
        [shell, "-c", command],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    lock = threading.Lock()

    def pump(stream, name: str) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            with lock:
                tail.append(line)
                if on_line is not None:
                    on_line(name, line)
        stream.close()

    readers = [threading.Thread(target=pump, args=(process.stdout, "stdout"), daemon=True),
               threading.Thread(target=pump, args=(process.stderr, "stderr"), daemon=True)]
    for reader in readers:
        reader.start()

    timed_out = cancelled = False
    next_cancel_check = started + cancel_poll_seconds
    try:
        while True:
            try:
                process.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if timeout_seconds is not None and now - started >= timeout_seconds:
                timed_out = True
                kill_process_group(process.pid)
            elif should_cancel is not None and now >= next_cancel_check:
                next_cancel_check = now + cancel_poll_seconds
                if should_cancel():
                    cancelled = True
                    kill_process_group(process.pid)
    except BaseException:
        kill_process_group(process.pid, grace_seconds=1.0)
        process.wait()
        raise
    finally:
        # Children that outlived the shell still hold the group: end them too.
        kill_process_group(process.pid, grace_seconds=1.0)
    for reader in readers:
        reader.join(timeout=5)
    return ProcessResult(
        exit_code=process.returncode,
        duration_seconds=time.monotonic() - started,
        timed_out=timed_out,
        cancelled=cancelled,
        tail=list(tail),
    )
