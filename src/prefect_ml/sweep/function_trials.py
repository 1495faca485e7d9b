"""Function trials: a sweep whose trial is a Python function, run as a Prefect task (no new process).

A command trial pays a new Python process (and its ``import mlflow``) and a child command-job flow run
per trial, seconds each. A *function trial* calls ``fn(**parameters)`` in a Prefect task
(``trial-<sweep>_<n>``, a task run of the sweep's flow run, visible in the UI) on the task runner of the
sweep's compute (:func:`prefect_ml.compute.targets.task_runner_for`: threads locally, a Dask cluster on a
``dask`` target). The sweep creates the trial's MLflow child run (``mlflow.parentRunId`` = the sweep's
run) before the task starts; the task makes it the *active* run of its thread (MLflow's fluent API is
thread-local), so a plain ``mlflow.log_metric(name, value, step=...)`` inside the function lands in it.
A number returned by the function is logged as the primary metric unless the function logged it.

Early termination, ``limits.trial_timeout``, ``limits.timeout`` and cancelling the sweep stop a
function trial *cooperatively*: a thread cannot be killed, so the trial stops at its next
``mlflow.log_metric``/``mlflow.log_metrics`` call, which raises :class:`TrialStopped` (a
``BaseException``, so that ``except Exception`` in the function does not swallow it). A function that
never logs runs to its end. To see those calls prefect-ml wraps ``mlflow.log_metric`` and
``mlflow.log_metrics`` once per process (:func:`install_log_hook`); outside a function trial the wrapper
only calls MLflow's function.

The stop request reaches the trial through an in-process registry when the trial runs in the sweep's
process (threads, a Dask ``LocalCluster(processes=False)``), else through the MLflow tag
``prefect_ml.sweep.stop_requested`` of its run, read at most every ``PREFECT_ML_SWEEP_POLL_SECONDS``.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from prefect import task
from prefect.cache_policies import NO_CACHE

TAG_STOP = "prefect_ml.sweep.stop_requested"
TAG_TASK_RUN_ID = "prefect.task_run_id"  # set by the sweep when the trial ends


class TrialStopped(BaseException):
    """Raised inside a function trial at its next log call once the sweep asked it to stop."""


@dataclass
class _TrialContext:
    run_id: str
    primary_metric: str
    deadline: float | None
    started: float = 0.0  # time.monotonic() when the trial's task started
    stop_reason: str | None = None
    logged_primary: bool = False
    history: list[float] = field(default_factory=list)
    next_remote_check: float = 0.0
    remote: bool = False


_CURRENT: contextvars.ContextVar[_TrialContext | None] = contextvars.ContextVar("prefect_ml_trial", default=None)
_REGISTRY: dict[str, _TrialContext] = {}
_PENDING_STOPS: dict[str, str] = {}  # stop requested before the trial's task started in this process
_LOCK = threading.Lock()
_HOOK_LOCK = threading.Lock()


# ------------------------------------------------------------------------------ references


def function_reference(fn: Callable) -> tuple[str, str]:
    """``("module:qualname", code folder)`` of a module-level function (or a ``@command_component``).

    Raises:
        ValueError: ``fn`` is a lambda, a nested function or defined in ``__main__`` without a file.
    """
    target = getattr(fn, "_python_function", None) or fn
    qualname = getattr(target, "__qualname__", "")
    if not callable(target) or "<" in qualname:
        raise ValueError(f"the trial function must be a module-level function, got {target!r}")
    source = Path(inspect.getfile(target)).resolve()
    module = target.__module__
    if module == "__main__":
        module = source.stem
    return f"{module}:{qualname}", str(source.parent if module.count(".") == 0 else
                                       source.parents[module.count(".")])


def load_function(reference: str, code: str | None = None) -> Callable:
    """Import ``module:qualname`` (with ``code`` first on ``sys.path``); unwrap a ``@command_component``.

    Raises:
        ImportError, AttributeError: The module or function does not exist.
    """
    module_name, _, qualname = reference.partition(":")
    if code and code not in sys.path:
        sys.path.insert(0, code)
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return getattr(target, "_python_function", None) or target


# ----------------------------------------------------------------------------- stop requests


def request_stop(run_id: str, reason: str, *, client=None) -> None:
    """Ask the function trial of MLflow run ``run_id`` to stop at its next log call.

    Sets the in-process flag and, when ``client`` is given, the run's ``prefect_ml.sweep.stop_requested``
    tag (read by trials running in other processes).
    """
    with _LOCK:
        ctx = _REGISTRY.get(run_id)
        if ctx is not None:
            ctx.stop_reason = ctx.stop_reason or reason
        else:
            _PENDING_STOPS[run_id] = reason
    if client is not None and (ctx is None or ctx.remote):
        client.set_tag(run_id, TAG_STOP, reason[:5000])


def primary_history(run_id: str) -> list[float] | None:
    """The primary-metric values a trial running in this process has logged so far (None if not here)."""
    with _LOCK:
        ctx = _REGISTRY.get(run_id)
        return list(ctx.history) if ctx is not None else None


def started_at(run_id: str) -> float | None:
    """``time.monotonic()`` at which the function trial of run ``run_id`` started in this process, or None."""
    with _LOCK:
        ctx = _REGISTRY.get(run_id)
        return ctx.started if ctx is not None else None


def _check_stop(ctx: _TrialContext) -> None:
    if ctx.stop_reason is None and ctx.deadline is not None and time.monotonic() > ctx.deadline:
        ctx.stop_reason = "the trial reached limits.trial_timeout"
    if ctx.stop_reason is None and ctx.remote and time.monotonic() >= ctx.next_remote_check:
        from prefect_ml import tracking

        ctx.next_remote_check = time.monotonic() + float(os.environ.get("PREFECT_ML_SWEEP_POLL_SECONDS", "0.5"))
        reason = tracking.get_client().get_run(ctx.run_id).data.tags.get(TAG_STOP)
        if reason:
            ctx.stop_reason = reason
    if ctx.stop_reason is not None:
        raise TrialStopped(ctx.stop_reason)


def _record(ctx: _TrialContext, key: str, value: Any) -> None:
    if key == ctx.primary_metric:
        with _LOCK:
            ctx.history.append(float(value))
            ctx.logged_primary = True


def install_log_hook() -> None:
    """Wrap ``mlflow.log_metric`` / ``mlflow.log_metrics`` (once) so that function trials see their calls.

    Outside a function trial the wrappers just call MLflow's functions.
    """
    import mlflow
    import mlflow.tracking.fluent as fluent

    with _HOOK_LOCK:
        if getattr(mlflow.log_metric, "_prefect_ml_hook", False):
            return
        original_metric, original_metrics = fluent.log_metric, fluent.log_metrics

        @functools.wraps(original_metric)
        def log_metric(key, value, *args, **kwargs):
            ctx = _CURRENT.get()
            if ctx is not None:
                _check_stop(ctx)
            result = original_metric(key, value, *args, **kwargs)
            if ctx is not None:
                _record(ctx, key, value)
            return result

        @functools.wraps(original_metrics)
        def log_metrics(metrics, *args, **kwargs):
            ctx = _CURRENT.get()
            if ctx is not None:
                _check_stop(ctx)
            result = original_metrics(metrics, *args, **kwargs)
            if ctx is not None:
                for key, value in metrics.items():
                    _record(ctx, key, value)
            return result

        log_metric._prefect_ml_hook = log_metrics._prefect_ml_hook = True  # type: ignore[attr-defined]
        mlflow.log_metric = fluent.log_metric = log_metric
        mlflow.log_metrics = fluent.log_metrics = log_metrics


# ----------------------------------------------------------------------------------- the task


def _activate(run) -> bool:
    """Make MLflow ``run`` (a ``mlflow.entities.Run``) the active run of this thread.

    The sweep created the run, so the fast path pushes it onto MLflow's thread-local active-run stack
    without a tracking-store call (``mlflow.start_run(run_id=...)`` reads the run twice and rewrites its
    status: ~25-60 ms of SQLite per trial). MLflow's documented ``start_run`` is used instead when system
    metrics or async logging are enabled (they hook into ``start_run``/``end_run``) or the stack is not
    where this MLflow version keeps it.

    Returns:
        True when the fast path was taken (:func:`_deactivate` then pops without ending the run: the
        sweep ends it), False when ``mlflow.start_run`` was called.
    """
    import mlflow
    from mlflow.environment_variables import MLFLOW_ENABLE_ASYNC_LOGGING, MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING

    try:
        from mlflow.tracking.fluent import ActiveRun, _active_run_stack

        stack = _active_run_stack.get()
    except (ImportError, AttributeError):
        stack = None
    if stack is None or MLFLOW_ENABLE_ASYNC_LOGGING.get() or MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING.get():
        mlflow.start_run(run_id=run.info.run_id)
        return False
    stack.append(ActiveRun(run))
    return True


def _deactivate(run_id: str, fast: bool, status: str) -> bool:
    """Undo :func:`_activate`. Returns whether the run was ended here (``mlflow.end_run(status)``)."""
    import mlflow

    if fast:
        from mlflow.tracking.fluent import _active_run_stack

        stack = _active_run_stack.get()
        if any(active.info.run_id == run_id for active in stack):
            while stack[-1].info.run_id != run_id:  # nested runs the function left open
                mlflow.end_run(status=status)
            stack.pop()
        return False
    if mlflow.active_run() is not None:
        mlflow.end_run(status=status)
        return True
    return False


def _run_function_trial(function: str, code: str | None, parameters: dict[str, Any], run,
                       primary_metric: str, tracking_uri: str, trial_timeout: float | None = None):
    """Run one function trial with its MLflow run active in this thread.

    Args:
        function: ``module:qualname`` of the trial function.
        code: Folder put first on ``sys.path`` to import it.
        parameters: Keyword arguments (sampled values and fixed inputs).
        run: The trial's MLflow run (a ``mlflow.entities.Run`` created by the sweep).
        primary_metric: Logged from the function's numeric return value unless it logged it.
        tracking_uri: The sweep's MLflow tracking URI.
        trial_timeout: Seconds after which the trial stops at its next log call.

    Returns:
        ``{"state": "COMPLETED"|"CANCELLED", "message", "history", "started", "ended",
        "duration_seconds"}`` (``started``: the function was called; ``ended``: the MLflow run was ended
        here, else the sweep ends it); the task run ends Completed or Cancelled (stopped by the sweep).
        An exception of the function fails the task run.
    """
    import mlflow
    from prefect.states import Cancelled, Completed

    from prefect_ml.tracking import _quiet_mlflow_logging

    _quiet_mlflow_logging()
    install_log_hook()
    if mlflow.get_tracking_uri() != tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    fn = load_function(function, code)
    run_id = run.info.run_id
    started = time.monotonic()
    deadline = started + trial_timeout if trial_timeout else None
    ctx = _TrialContext(run_id, primary_metric, deadline, started=started)
    with _LOCK:
        ctx.stop_reason = _PENDING_STOPS.pop(run_id, None)
        # a trial in another process than the sweep's: stop requests come as an MLflow tag
        ctx.remote = os.environ.get("PREFECT_ML_SWEEP_PROCESS") != str(os.getpid())
        _REGISTRY[run_id] = ctx
    token = _CURRENT.set(ctx)
    status, called, fast = "FAILED", False, False
    outcome: dict[str, Any] = {}
    try:
        fast = _activate(run)
        _check_stop(ctx)
        called = True
        result = fn(**parameters)
        if not ctx.logged_primary and isinstance(result, (int, float)) and not isinstance(result, bool):
            mlflow.log_metric(primary_metric, float(result), step=0)
        status = "FINISHED"
        outcome = {"state": "COMPLETED", "message": None, "history": list(ctx.history)}
        return Completed(data=outcome, message="Trial completed")
    except TrialStopped as stop:
        status = "KILLED"
        outcome = {"state": "CANCELLED", "message": str(stop), "history": list(ctx.history)}
        return Cancelled(data=outcome, message=f"Stopped by the sweep: {stop}" if called
                         else f"Not started: {stop}")
    finally:
        _CURRENT.reset(token)
        with _LOCK:
            _REGISTRY.pop(run_id, None)
        outcome.update(started=called, duration_seconds=round(time.monotonic() - started, 3),
                       ended=_deactivate(run_id, fast, status))


# The task wraps a module-level function so that Dask pickles it by reference. Its task run is named after the
# trial's MLflow run (``trial-<sweep>_<n>``) by a template rather than ``with_options`` per trial (~2 ms each).
run_function_trial = task(_run_function_trial, name="function-trial", task_run_name="trial-{run.info.run_name}",
                          cache_policy=NO_CACHE, persist_result=False)
