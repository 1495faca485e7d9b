"""Running a job's command in its snapshot with the environment's interpreter."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_ml.compute.environments import ResolvedEnvironment
from prefect_ml.compute.local import ProcessResult, run_command

#: Variables of the submitting process that must not leak into the job (they describe *our* run).
_STRIPPED_PREFIXES = ("PREFECT__", "MLFLOW_RUN_ID", "PREFECT_ML_JOB_")


@dataclass
class CommandOutcome:
    """The outcome of the run step, as kept in the job's record.

    Attributes:
        exit_code: The command's exit status (negative: killed by that signal).
        duration_seconds: Wall time of the command, seconds.
        timed_out: Killed at ``limits.timeout``.
        cancelled: Killed because the job was canceled.
        tail: Last lines of its output.
    """

    exit_code: int
    duration_seconds: float
    timed_out: bool = False
    cancelled: bool = False
    tail: list[str] = field(default_factory=list)

    @classmethod
    def from_result(cls, result: ProcessResult) -> "CommandOutcome":
        return cls(**asdict(result))

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.cancelled


def build_environment(resolved: ResolvedEnvironment, job_variables: dict[str, str],
                      tracking_env: dict[str, str], job_name: str) -> dict[str, str]:
    """The child's environment: ours minus run-specific variables, plus the job's.

    Precedence (later wins): this process's environment, the environment block's variables,
    the job's ``environment_variables``, then MLflow's (``MLFLOW_TRACKING_URI``, ``MLFLOW_RUN_ID``,
    ``MLFLOW_EXPERIMENT_NAME``, ``MLFLOW_EXPERIMENT_ID``) and ``PREFECT_ML_JOB_NAME``.
    ``python`` on ``PATH`` is the environment's interpreter.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_PREFIXES)}
    env.update(resolved.environment_variables)
    env.update({k: str(v) for k, v in job_variables.items()})
    env.update(tracking_env)
    env["PREFECT_ML_JOB_NAME"] = job_name
    env["PATH"] = resolved.bin_dir + os.pathsep + env.get("PATH", os.defpath)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class _LogSink:
    """Writes each output line to the job's log file, the Prefect run logger and optionally stdout."""

    def __init__(self, log_path: Path, logger, echo: Callable[[str], None] | None):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(log_path, "a", encoding="utf-8", buffering=1)
        self._logger = logger
        self._echo = echo
        self._lock = threading.Lock()

    def __call__(self, stream: str, line: str) -> None:
        with self._lock:
            self._file.write(line + "\n")
        if self._logger is not None:
            (self._logger.warning if stream == "stderr" else self._logger.info)("%s", line)
        if self._echo is not None:
            self._echo(line)

    def close(self) -> None:
        self._file.close()


def _cancel_checker(flow_run_id: str | None) -> Callable[[], bool] | None:
    if not flow_run_id:
        return None
    from prefect_ml._prefect import prefect_client

    def should_cancel() -> bool:
        try:
            with prefect_client() as client:
                state = client.read_flow_run(flow_run_id).state
        except Exception:  # an unreachable API must not kill the job
            return False
        return state is not None and state.type.value in ("CANCELLING", "CANCELLED")

    return should_cancel


def _echo_stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@task(name="run-command", cache_policy=NO_CACHE, persist_result=False)
def execute_command(command: str, workdir: str, env: dict[str, str], log_path: str,
                    timeout_seconds: float | None = None, echo: bool = False,
                    process_envs: list[dict[str, str]] | None = None) -> CommandOutcome:
    """Run the rendered command as a child process group, streaming its output.

    Output lines go to ``log_path``, to the Prefect run logs (stderr lines at WARNING) and, with
    ``echo``, to this process's stdout. The process group is killed at ``timeout_seconds``, when the
    flow run is set to Cancelling (``prefect-ml job cancel``, the Prefect UI), or when this process
    is interrupted.

    With ``process_envs`` of more than one entry (``resources.instance_count`` / ``distribution``, see
    :mod:`prefect_ml.compute.distributed`) the command runs once per entry, all at once, each in its own process
    group with that environment; lines are prefixed ``[rank R]``. The first process to fail (or a timeout or
    cancel) stops the others; the outcome is that of the first failure, else of rank 0.

    Returns:
        The :class:`CommandOutcome`; a non-zero exit is not raised here but recorded.
    """
    if process_envs and len(process_envs) > 1:
        return _execute_processes(command, workdir, process_envs, log_path, timeout_seconds, echo)
    from prefect import get_run_logger
    from prefect.context import get_run_context

    logger = get_run_logger()
    context = get_run_context()
    flow_run_id = str(context.task_run.flow_run_id) if getattr(context, "task_run", None) else None
    sink = _LogSink(Path(log_path), logger, _echo_stdout if echo else None)
    if echo:
        _echo_stdout(f"$ {command}")
    try:
        result = run_command(command, cwd=workdir, env=env, on_line=sink, timeout_seconds=timeout_seconds,
                             should_cancel=_cancel_checker(flow_run_id))
    finally:
        sink.close()
    return CommandOutcome.from_result(result)


def _execute_processes(command: str, workdir: str, envs: list[dict[str, str]], log_path: str,
                       timeout_seconds: float | None, echo: bool) -> CommandOutcome:
    from prefect import get_run_logger
    from prefect.context import get_run_context

    logger = get_run_logger()
    context = get_run_context()
    flow_run_id = str(context.task_run.flow_run_id) if getattr(context, "task_run", None) else None
    cancel = _cancel_checker(flow_run_id)
    sink = _LogSink(Path(log_path), logger, _echo_stdout if echo else None)
    stop = threading.Event()
    results: dict[int, ProcessResult] = {}
    logger.info("Running %d processes (resources.instance_count x distribution.process_count_per_instance)",
                len(envs))

    def run(rank: int) -> None:
        def on_line(stream: str, line: str) -> None:
            sink(stream, f"[rank {rank}] {line}")

        def should_stop() -> bool:
            return stop.is_set() or (rank == 0 and cancel is not None and cancel())

        result = run_command(command, cwd=workdir, env=envs[rank], on_line=on_line, timeout_seconds=timeout_seconds,
                             should_cancel=should_stop, cancel_poll_seconds=0.2 if rank else 1.0)
        results[rank] = result
        if result.exit_code != 0 or result.timed_out or result.cancelled:
            stop.set()

    threads = [threading.Thread(target=run, args=(rank,), daemon=True) for rank in range(len(envs))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop.set()
        sink.close()
    ordered = [results[rank] for rank in sorted(results)]
    # The first process that failed on its own, else one killed by timeout/cancel, else rank 0.
    failed = [r for r in ordered if r.exit_code != 0 and not r.cancelled and not r.timed_out]
    stopped = [r for r in ordered if r.timed_out or r.cancelled]
    chosen = failed[0] if failed else stopped[0] if stopped else ordered[0]
    outcome = CommandOutcome.from_result(chosen)
    if failed:
        outcome.cancelled = outcome.timed_out = False
    outcome.duration_seconds = max(r.duration_seconds for r in ordered)
    outcome.tail = [line for r in ordered for line in r.tail][-30:]
    return outcome


def describe_failure(outcome: CommandOutcome, timeout_seconds: Any) -> str:
    """One message saying why the command failed, with the tail of its output."""
    if outcome.cancelled:
        head = "Job canceled; its process group was killed."
    elif outcome.timed_out:
        head = f"Job timed out after {timeout_seconds} s (limits.timeout); its process group was killed."
    elif outcome.exit_code < 0:
        head = f"Command killed by signal {-outcome.exit_code}."
    else:
        head = f"Command exited with code {outcome.exit_code}."
    tail = "\n".join(outcome.tail[-20:])
    return f"{head}\n--- last output lines ---\n{tail}" if tail else head


@dataclass
class PreparedCommand:
    """Everything needed to run a job's command.

    Attributes:
        command: The rendered command line.
        workdir: The job's working folder (a copy of the snapshot).
        env: The child's complete environment.
        outputs: Output name -> :class:`prefect_ml.tasks.outputs.OutputLocation`.
        log_path: The job's log file (``user_logs/std_log.txt``).
        environment: Description of the interpreter used.
        process_envs: One environment per process when the job runs several (``instance_count`` /
            ``distribution``; :func:`prefect_ml.compute.distributed.process_environments`), else ``None``.
    """

    command: str
    workdir: str
    env: dict[str, str]
    outputs: dict[str, Any]
    log_path: str
    environment: str
    process_envs: list[dict[str, str]] | None = None


@task(name="prepare-command", cache_policy=NO_CACHE, persist_result=False)
def prepare_command(spec, job_name: str, job_dir: str, snapshot_path: str | None, input_values: dict[str, Any],
                    tracking_info: dict[str, str]) -> PreparedCommand:
    """Check out the snapshot, prepare output locations and render the command.

    The working folder gets empty ``outputs/`` and ``logs/`` folders (Azure uploads them as run
    artifacts). ``${{inputs.X}}``, ``${{outputs.Y}}`` and ``${{name}}`` are replaced by
    shell-quoted values.
    """
    from prefect import get_run_logger

    from prefect_ml.compute.environments import resolve_environment
    from prefect_ml.specs import render_command
    from prefect_ml.tasks.outputs import plan_outputs
    from prefect_ml.tasks.snapshot import checkout

    logger = get_run_logger()
    root = Path(job_dir)
    workdir = root / "wd"
    workdir.mkdir(parents=True, exist_ok=True)
    if snapshot_path:
        checkout(snapshot_path, workdir)
    for folder in ("outputs", "logs"):
        (workdir / folder).mkdir(exist_ok=True)
    locations = plan_outputs(spec, job_name, root / "outputs")
    command = render_command(spec.command, inputs=input_values,
                             outputs={name: loc.local_path for name, loc in locations.items()}, name=job_name)
    resolved = resolve_environment(spec.environment, base_path=spec.base_path, log=logger.info)
    if resolved.notice:
        logger.info(resolved.notice)
    env = build_environment(resolved, dict(spec.environment_variables or {}), {
        "MLFLOW_TRACKING_URI": tracking_info["tracking_uri"],
        "MLFLOW_RUN_ID": tracking_info["run_id"],
        "MLFLOW_EXPERIMENT_NAME": tracking_info["experiment_name"],
        "MLFLOW_EXPERIMENT_ID": tracking_info["experiment_id"],
    }, job_name)
    logger.info("Command: %s", command)
    from prefect_ml.compute.distributed import process_environments

    process_envs: list[dict[str, str]] | None = process_environments(spec, env)
    if len(process_envs) == 1:  # one process: its environment (with a pytorch job's variables) is the command's
        env, process_envs = process_envs[0], None
    return PreparedCommand(command=command, workdir=str(workdir), env=env,
                           outputs=locations, log_path=str(root / "user_logs" / "std_log.txt"),
                           environment=resolved.description, process_envs=process_envs)
