"""The trial loop of a sweep job: sample, run trials (child command jobs or Python functions), terminate early,
record.

Each trial is a ``command-job`` flow run (a child of the sweep's flow run, through a ``run-trial``
task) with its own MLflow run, tagged ``mlflow.parentRunId`` = the sweep's MLflow run. Trials are
submitted to the task runner of the sweep's compute (:func:`prefect_ml.compute.targets.task_runner_for`)
with ``max_workers = limits.max_concurrent_trials``. A *function trial* (``trial: {function: MODULE:NAME}``)
is instead a ``function-trial`` task run of the sweep's flow run calling the function in-process, with an
MLflow child run created by the loop (see :mod:`prefect_ml.sweep.function_trials`).

While trials run, the loop polls their primary metric in MLflow (``get_metric_history``) every
``PREFECT_ML_SWEEP_POLL_SECONDS`` (default 0.5 s), applies the early-termination policy
(:mod:`prefect_ml.sweep.policies`) and cancels terminated trials by setting their flow run to
Cancelling: the command runner then kills the trial's process group.

State kept under ``$PREFECT_ML_HOME/jobs/<sweep name>/sweep/``: the Optuna journal and sampler
(see :mod:`prefect_ml.sweep.sampling`) and ``state.json`` (the parent MLflow run). Re-running a sweep
with the same name continues it: finished trials are kept, interrupted ones are run again with the
same parameters, the sampler continues its sequence.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_ml import settings, tracking
from prefect_ml.specs.sweep import SweepJob
from prefect_ml.sweep import policies

TAG_PARENT = "mlflow.parentRunId"
TAG_SWEEP = "prefect_ml.sweep"
TAG_TRIAL_NUMBER = "prefect_ml.sweep.trial_number"
TAG_TERMINATED = "prefect_ml.sweep.terminated_early"
TAG_TERMINATION_REASON = "prefect_ml.sweep.termination_reason"
TAG_INTERRUPTED = "prefect_ml.sweep.interrupted"
TAG_PARAMETERS = "prefect_ml.sweep.parameters"
TAG_PRIMARY = "prefect_ml.sweep.primary_metric"
TAG_GOAL = "prefect_ml.sweep.goal"
TAG_BEST = "prefect_ml.sweep.best_trial"


class SweepError(RuntimeError):
    """The sweep cannot go on (e.g. the trials do not log the primary metric)."""


def sweep_dir(job_name: str) -> Path:
    """Folder of a sweep's persistent state."""
    return settings.jobs_dir() / job_name / "sweep"


def has_state(job_name: str | None) -> bool:
    """Whether sweep ``job_name`` has state to resume from."""
    return bool(job_name) and (sweep_dir(job_name) / "state.json").exists()


def poll_seconds() -> float:
    return float(os.environ.get("PREFECT_ML_SWEEP_POLL_SECONDS", "0.5"))


# ------------------------------------------------------------------------------------ tasks


@task(name="start-sweep-tracking", cache_policy=NO_CACHE, persist_result=False)
def start_sweep_tracking(spec: SweepJob, job_name: str) -> dict[str, str]:
    """Create (or, when resuming, reopen) the sweep's MLflow parent run and link it to this flow run.

    Returns:
        ``{"run_id", "experiment_id", "experiment_name", "tracking_uri"}``.
    """
    from prefect.context import get_run_context

    from prefect_ml.jobs import flow_run_ui_url
    from prefect_ml.tasks.tracking import _link_flow_run

    flow_run_id = str(get_run_context().task_run.flow_run_id)
    client = tracking.get_client()
    state_file = sweep_dir(job_name) / "state.json"
    info = json.loads(state_file.read_text()) if state_file.exists() else None
    tags = {tracking.TAG_FLOW_RUN_ID: flow_run_id}
    url = flow_run_ui_url(flow_run_id)
    if url and url != flow_run_id:
        tags[tracking.TAG_FLOW_RUN_URL] = url
    if info is None:
        experiment_name = spec.experiment_name or (Path(spec.base_path).name if spec.base_path else "Default")
        experiment_id = tracking.ensure_experiment(client, experiment_name)
        tags.update({str(k): str(v) for k, v in spec.tags.items()})
        tags.update({
            tracking.TAG_JOB_NAME: job_name, tracking.TAG_JOB_TYPE: "sweep",
            tracking.TAG_DISPLAY_NAME: spec.display_name or job_name,
            "prefect_ml.compute": spec.compute or "local",
            TAG_PARAMETERS: json.dumps(list(spec.search_space)), TAG_PRIMARY: spec.primary_metric,
            TAG_GOAL: spec.goal,
        })
        if spec.description:
            tags["mlflow.note.content"] = spec.description
        run = client.create_run(experiment_id, tags=tags, run_name=spec.display_name or job_name)
        info = {"run_id": run.info.run_id, "experiment_id": experiment_id, "experiment_name": experiment_name}
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps(info))
    else:  # resumed: the run is running again, and the error of the run that was interrupted is gone
        client.update_run(info["run_id"], status="RUNNING")
        for key, value in tags.items():
            client.set_tag(info["run_id"], key, value)
        if tracking.TAG_ERROR in client.get_run(info["run_id"]).data.tags:
            client.delete_tag(info["run_id"], tracking.TAG_ERROR)
    _link_flow_run(flow_run_id, info["run_id"], info["experiment_id"], "sweep")
    return {**info, "tracking_uri": tracking.tracking_uri()}


@task(name="run-trial", cache_policy=NO_CACHE, persist_result=False)
def run_trial(job: dict[str, Any], trial_name: str, stream: bool = False) -> dict[str, Any]:
    """Run one trial as a ``command-job`` flow run (a child of the sweep's flow run).

    Returns:
        ``{"state": Prefect state type, "message": ..., "flow_run_id": ...}``.
    """
    from prefect_ml.flows.command_job import command_job

    state = command_job(job=job, job_name=trial_name, stream=stream, return_state=True)
    return {"state": state.type.value, "message": state.message,
            "flow_run_id": str(state.state_details.flow_run_id) if state.state_details.flow_run_id else None}


# ----------------------------------------------------------------------------------- loop


@dataclass
class _Running:
    name: str
    trial: Any  # optuna Trial
    values: dict[str, Any]
    future: Any
    started: float
    run_id: str | None = None
    flow_run_id: str | None = None
    history: list[float] = field(default_factory=list)
    terminate_reason: str | None = None  # set when the early-termination policy stopped the trial
    cancel_reason: str | None = None  # set once its flow run was asked to cancel
    pending_cancel: str | None = None  # cancel as soon as its flow run exists


def _set_flow_run_cancelling(flow_run_id: str) -> None:
    from prefect.states import Cancelling

    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        client.set_flow_run_state(flow_run_id, Cancelling(message="Terminated by the sweep"), force=True)


def _flow_run_cancel_requested(flow_run_id: str | None) -> bool:
    if not flow_run_id:
        return False
    from prefect_ml._prefect import prefect_client

    try:
        with prefect_client() as client:
            state = client.read_flow_run(flow_run_id).state
    except Exception:
        return False
    return state is not None and state.type.value in ("CANCELLING", "CANCELLED")


class SweepRunner:
    """Runs a sweep to the end (or its limits); see the module docstring.

    Args:
        spec: The sweep.
        job_name: Its unique name.
        info: The parent MLflow run (from :func:`start_sweep_tracking`).
        flow_run_id: The sweep's own flow run (checked for cancellation).
        stream: Echo the trials' output.
        logger: Where progress is logged.
    """

    def __init__(self, spec: SweepJob, job_name: str, info: dict[str, str], *, flow_run_id: str | None = None,
                 stream: bool = False, logger=None):
        from prefect_ml.sweep.sampling import SweepStudy

        self.spec = spec
        self.job_name = job_name
        self.info = info
        self.flow_run_id = flow_run_id
        self.stream = stream
        self.logger = logger
        self.client = tracking.get_client()
        self.study = SweepStudy(spec, sweep_dir(job_name), job_name)
        self.max_total, self.concurrency = sweep_bounds(spec)
        self.running: dict[str, _Running] = {}
        self.histories: dict[str, list[float]] = {}
        self.finished: set[str] = set()
        self.metric_checked = False
        self.stop_reason: str | None = None
        self.function = spec.is_function_trial
        self.slots = self.concurrency  # trials submitted at once (running + queued); see run()
        self.trial_slots = None  # function trials on Dask: prefect_ml.sweep.trial_slots.TrialSlots
        self.wake = threading.Event()  # set when a trial's future is done
        self._next_cancel_check = 0.0

    def _log(self, message: str, *args: Any) -> None:
        """Log sweep progress to the flow run (the Prefect UI) and, with ``stream``, print it."""
        if self.logger is not None:
            self.logger.info(message, *args)
        if self.stream:
            print(f"[{self.job_name}] {message % args if args else message}", flush=True)

    # -- resume ---------------------------------------------------------------------------
    def _recover(self) -> int:
        """Load finished trials; re-queue interrupted ones. Returns the number of finished trials."""
        from optuna.trial import TrialState

        done = 0
        for t in self.study.study.get_trials(deepcopy=False):
            attrs = trial_attrs(t)
            name = attrs.get("job_name")
            if t.state == TrialState.RUNNING:  # the previous sweep process died with this trial running
                self._log("Trial %s was interrupted; running its configuration again", name)
                self._requeue(t)
                self._mark_interrupted(attrs.get("mlflow_run_id"), attrs.get("flow_run_id"), name)
                continue
            if attrs.get("interrupted") or t.state == TrialState.WAITING:
                continue
            done += 1
            if name:
                self.histories[name] = list(attrs.get("history", []))
                self.finished.add(name)
                if t.state == TrialState.COMPLETE:
                    self.metric_checked = True
        return done

    def _interrupt(self, r: _Running) -> None:
        """Record a trial stopped because the sweep failed as interrupted: a resumed sweep runs it again."""
        self._requeue(r.trial)
        self._mark_interrupted(r.run_id, None, r.name)

    def _requeue(self, trial) -> None:
        """Mark an unfinished Optuna trial (a ``Trial`` or ``FrozenTrial``) interrupted, end it as failed and
        enqueue its configuration: the sweep (or a resumed one) runs it again."""
        from optuna.trial import TrialState

        self.study.study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        self.study.study.tell(trial.number, state=TrialState.FAIL)
        self.study.study.enqueue_trial(trial.params, skip_if_exists=False)

    def _mark_interrupted(self, run_id: str | None, flow_run_id: str | None, name: str | None) -> None:
        if run_id is None and name:
            run = self._child_runs().get(name)
            run_id = run.info.run_id if run else None
            flow_run_id = flow_run_id or (run.data.tags.get(tracking.TAG_FLOW_RUN_ID) if run else None)
        if run_id:
            try:
                self.client.set_tag(run_id, TAG_INTERRUPTED, "true")
                self.client.set_tag(run_id, tracking.TAG_STATUS, "Canceled")
                self.client.set_terminated(run_id, status="KILLED")
            except Exception:  # noqa: BLE001 - best effort on a dead run
                pass
        if flow_run_id:
            from prefect.states import Crashed

            from prefect_ml._prefect import prefect_client

            try:
                with prefect_client() as client:
                    client.set_flow_run_state(flow_run_id, Crashed(message="The sweep process died"), force=True)
            except Exception:  # noqa: BLE001
                pass

    # -- MLflow polling --------------------------------------------------------------------
    def _child_runs(self) -> dict[str, Any]:
        runs = self.client.search_runs([self.info["experiment_id"]],
                                       filter_string=f"tags.`{TAG_PARENT}` = '{self.info['run_id']}'",
                                       max_results=5000)
        return {r.data.tags.get(tracking.TAG_JOB_NAME): r for r in runs}

    def _refresh(self) -> None:
        if self.function:
            for r in self.running.values():
                self._read_history(r)
            return
        missing = [r for r in self.running.values() if r.run_id is None]
        if missing:
            children = self._child_runs()
            for r in missing:
                run = children.get(r.name)
                if run is not None:
                    r.run_id = run.info.run_id
                    r.flow_run_id = run.data.tags.get(tracking.TAG_FLOW_RUN_ID)
                    r.trial.set_user_attr("mlflow_run_id", r.run_id)
                    r.trial.set_user_attr("flow_run_id", r.flow_run_id)
        for r in self.running.values():
            if r.run_id is not None:
                self._read_history(r)

    def _read_history(self, r: _Running, values: list[float] | None = None) -> None:
        if values is None and self.function:  # the trial's own record when it runs in this process
            from prefect_ml.sweep.function_trials import primary_history

            values = primary_history(r.run_id)
        if values is None:
            history = self.client.get_metric_history(r.run_id, self.spec.primary_metric)
            history = sorted(history, key=lambda m: (m.timestamp, m.step))
            values = [float(m.value) for m in history]
        if len(values) < len(r.history):  # the in-process record ended before the future did
            return
        for i in range(len(r.history), len(values)):
            r.trial.report(values[i], i + 1)
        r.history = values
        self.histories[r.name] = values

    # -- submission ------------------------------------------------------------------------
    def _submit(self, runner, done: int) -> None:
        while (len(self.running) < self.concurrency and done + len(self.running) < self.max_total
               and self.stop_reason is None):
            trial, values = self.study.ask()
            name = f"{self.job_name}_{trial.number}"
            trial.set_user_attr("trial", {"job_name": name, "parameters": values})
            tags = {TAG_PARENT: self.info["run_id"], TAG_SWEEP: self.job_name, TAG_TRIAL_NUMBER: str(trial.number)}
            job = self.spec.trial_job(values, name=name, tags=tags, timeout=self.spec.limits.trial_timeout)
            self._log("Trial %s: %s", name, json.dumps(values, default=str))
            future = runner.submit(run_trial, parameters={
                "job": job.model_dump(mode="json", by_alias=True), "trial_name": name, "stream": self.stream})
            self.running[name] = _Running(name, trial, values, future, time.monotonic())
            self.histories[name] = []
            future.add_done_callback(lambda _: self.wake.set())

    def _prepare_function_trial(self) -> tuple[Any, dict[str, Any], str, Any]:
        """Draw a configuration and create its MLflow child run: ``(optuna trial, values, name, mlflow run)``."""
        trial, values = self.study.ask()
        name = f"{self.job_name}_{trial.number}"
        run = self._create_trial_run(name, trial.number, values)
        trial.set_user_attr("trial", {"job_name": name, "parameters": values, "mlflow_run_id": run.info.run_id})
        return trial, values, name, run

    def _submit_functions(self, runner, done: int) -> None:
        """Submit function trials up to :attr:`slots`: ``max_concurrent_trials`` running, and on a thread
        pool as many more waiting in its queue.

        The pool's ``max_workers`` (= ``max_concurrent_trials``) bounds the running trials; a queued trial
        (sampled, its MLflow run created) starts the moment a worker frees up, without a round trip
        through this loop. A queued trial that a stop reaches before it starts is discarded (see
        :meth:`_discard`). Bayesian sampling queues none (each draw should see every finished trial).
        On a Dask task runner the trials go to ``max_concurrent_trials`` trial slots
        (:mod:`prefect_ml.sweep.trial_slots`), which likewise take the next queued trial when one ends.
        """
        from prefect_ml.sweep.function_trials import run_function_trial

        while (len(self.running) < self.slots and done + len(self.running) < self.max_total
               and self.stop_reason is None):
            trial, values, name, run = self._prepare_function_trial()
            self._log("Trial %s: %s", name, json.dumps(values, default=str))
            parameters = {
                "function": self.spec.trial["function"], "code": self.spec.trial.get("code"),
                "parameters": self.spec.trial_arguments(values), "run": run,
                "primary_metric": self.spec.primary_metric, "tracking_uri": self.info["tracking_uri"],
                "trial_timeout": self.spec.limits.trial_timeout}
            if self.trial_slots is not None:
                future = self.trial_slots.submit(name, parameters)
            else:
                future = runner.submit(run_function_trial, parameters=parameters)
            self.running[name] = _Running(name, trial, values, future, time.monotonic(), run_id=run.info.run_id,
                                          flow_run_id=self.flow_run_id)
            self.histories[name] = []
            future.add_done_callback(lambda _: self.wake.set())

    def _discard(self, r: _Running) -> None:
        """Drop a function trial that a stop reached before it started: its MLflow run is deleted and a
        resumed sweep runs its configuration."""
        self.histories.pop(r.name, None)
        try:
            self._requeue(r.trial)
            self.client.delete_run(r.run_id)
        except Exception:  # noqa: BLE001 - best effort
            pass

    def _create_trial_run(self, name: str, number: int, values: dict[str, Any]):
        """The MLflow child run of a function trial (parameters logged), under the sweep's run."""
        from mlflow.entities import Param

        tags = {TAG_PARENT: self.info["run_id"], TAG_SWEEP: self.job_name, TAG_TRIAL_NUMBER: str(number),
                tracking.TAG_JOB_NAME: name, tracking.TAG_JOB_TYPE: "sweep-trial", tracking.TAG_STATUS: "Running"}
        if self.flow_run_id:
            tags[tracking.TAG_FLOW_RUN_ID] = self.flow_run_id
        run = self.client.create_run(self.info["experiment_id"], tags=tags, run_name=name)
        params = [Param(k, v if isinstance(v, str) else json.dumps(v)) for k, v in values.items()]
        if params:
            self.client.log_batch(run.info.run_id, params=params)
        return run

    # -- policy, limits, cancellation -------------------------------------------------------
    def _apply_policy(self) -> None:
        for r in self.running.values():
            if r.cancel_reason or r.pending_cancel or r.run_id is None or not r.history:
                continue
            decision = policies.decide(self.spec.early_termination, r.name, self.histories, self.spec.goal,
                                       self.finished)
            if decision.terminate:
                r.terminate_reason = decision.reason
                self._cancel(r, decision.reason)

    def _cancel(self, r: _Running, reason: str) -> None:
        """Ask trial ``r``'s flow run to cancel (its process group is killed); later if it has none yet."""
        if r.cancel_reason:
            return
        if r.flow_run_id is None and not self.function:
            self._refresh()
        if r.flow_run_id is None:  # not started yet: cancel as soon as its flow run exists
            r.pending_cancel = reason
            return
        r.cancel_reason, r.pending_cancel = reason, None
        self._log("Cancelling trial %s: %s", r.name, reason)
        if self.function:  # it stops at its next log call
            from prefect_ml.sweep.function_trials import request_stop

            request_stop(r.run_id, reason, client=self.client)
            return
        _set_flow_run_cancelling(r.flow_run_id)

    def _check_limits(self, started: float) -> None:
        timeout = self.spec.limits.timeout
        if self.stop_reason is None and timeout and time.monotonic() - started > timeout:
            self.stop_reason = f"the sweep reached limits.timeout ({timeout} s)"
        if self.stop_reason is None and time.monotonic() >= self._next_cancel_check:
            self._next_cancel_check = time.monotonic() + poll_seconds()
            if _flow_run_cancel_requested(self.flow_run_id):
                self.stop_reason = "the sweep was canceled"
        from prefect_ml.sweep.function_trials import started_at

        trial_timeout = self.spec.limits.trial_timeout
        for r in self.running.values():  # a queued function trial's own deadline starts with it
            if self.stop_reason and not r.cancel_reason and not r.pending_cancel:
                self._cancel(r, self.stop_reason)
            elif (self.function and trial_timeout and not r.cancel_reason
                  and time.monotonic() - (started_at(r.run_id) or time.monotonic()) > trial_timeout):
                self._cancel(r, f"the trial reached limits.trial_timeout ({trial_timeout} s)")
            elif r.pending_cancel and r.flow_run_id:
                self._cancel(r, r.pending_cancel)

    # -- completion ------------------------------------------------------------------------
    def _finish(self, r: _Running) -> None:
        from optuna.trial import TrialState

        outcome = r.future.result(raise_on_failure=False)
        if not isinstance(outcome, dict):
            message = f"{type(outcome).__name__}: {outcome}" if isinstance(outcome, BaseException) else str(outcome)
            outcome = {"state": "FAILED", "message": message, "flow_run_id": r.flow_run_id}
        if self.function and outcome.get("started") is False and outcome["state"] == "CANCELLED":
            self._discard(r)
            return
        if r.run_id is None and not self.function:
            self._refresh()
        if r.run_id is not None:
            self._read_history(r, outcome.get("history"))
        status = {"COMPLETED": "Completed", "CANCELLED": "Canceled", "CANCELLING": "Canceled"}.get(
            outcome["state"], "Failed")
        terminated = bool(r.terminate_reason) and status == "Canceled"
        if self.function and r.history:
            metrics = {self.spec.primary_metric: r.history[-1]}
        else:
            metrics = dict(self.client.get_run(r.run_id).data.metrics) if r.run_id else {}
        message = outcome.get("message")
        if status == "Completed" and self.spec.primary_metric not in metrics:
            logged = ", ".join(sorted(metrics)) or "none"
            if not self.metric_checked:
                r.trial.set_user_attr("result", {"status": "Failed"})
                self._end_function_run(r, outcome, "Failed", "the trial did not log the primary metric")
                self.study.study.tell(r.trial, state=TrialState.FAIL)
                self.finished.add(r.name)
                raise SweepError(
                    f"Trial {r.name} completed without logging the primary metric "
                    f"'{self.spec.primary_metric}' (objective.primary_metric). Metrics it logged: {logged}. "
                    "Log it with mlflow.log_metric(name, value, step=...) or fix objective.primary_metric "
                    "(names are matched exactly).")
            status = "Failed"
            message = f"the trial did not log the primary metric '{self.spec.primary_metric}' (logged: {logged})"
        if status == "Completed":
            self.metric_checked = True
        task_run_id = getattr(r.future, "task_run_id", None) if self.function else None
        result = {"status": status, "terminated_early": terminated, "history": r.history,
                  "termination_reason": r.terminate_reason if terminated else None,
                  "message": (message or "")[-2000:] if status != "Completed" else None,
                  "flow_run_id": outcome.get("flow_run_id") or r.flow_run_id, "mlflow_run_id": r.run_id,
                  "task_run_id": str(task_run_id) if task_run_id else None,
                  "duration_seconds": outcome.get("duration_seconds", round(time.monotonic() - r.started, 3))}
        r.trial.set_user_attr("result", {k: v for k, v in result.items() if v is not None})  # one journal entry
        if self.function:
            self._end_function_run(r, outcome, status, message, terminated=terminated, task_run_id=task_run_id)
        elif r.run_id and terminated:  # a command trial's own job sets its status and ends its run
            from mlflow.entities import RunTag

            self.client.log_batch(r.run_id, tags=[RunTag(TAG_TERMINATED, "true"),
                                                  RunTag(TAG_TERMINATION_REASON, r.terminate_reason[:5000])])
        if status == "Completed":
            self.study.study.tell(r.trial, r.history[-1] if r.history else metrics[self.spec.primary_metric])
        elif terminated and r.history:
            self.study.study.tell(r.trial, state=TrialState.PRUNED)
        else:
            self.study.study.tell(r.trial, state=TrialState.FAIL)
        self.finished.add(r.name)
        value = r.history[-1] if r.history else metrics.get(self.spec.primary_metric)
        self._log("Trial %s %s%s%s%s", r.name, status, f" ({self.spec.primary_metric}={value:.6g})"
                  if value is not None else "", " (terminated early)" if terminated else "",
                  f": {message[-500:]}" if status == "Failed" and message else "")

    def _end_function_run(self, r: _Running, outcome: dict[str, Any], status: str, message: str | None, *,
                          terminated: bool = False, task_run_id=None) -> None:
        """Tag a function trial's MLflow run with its outcome and end it (unless the trial ended it)."""
        from mlflow.entities import RunTag

        tags = [RunTag(tracking.TAG_STATUS, status)]
        if task_run_id:
            from prefect_ml.sweep.function_trials import TAG_TASK_RUN_ID

            tags.append(RunTag(TAG_TASK_RUN_ID, str(task_run_id)))
        if terminated:
            tags += [RunTag(TAG_TERMINATED, "true"), RunTag(TAG_TERMINATION_REASON, r.terminate_reason[:5000])]
        if status != "Completed" and message:
            tags.append(RunTag(tracking.TAG_ERROR, message[-4000:]))
        self.client.log_batch(r.run_id, tags=tags)
        if not outcome.get("ended"):
            self.client.set_terminated(r.run_id, status={"Completed": "FINISHED", "Canceled": "KILLED"}.get(
                status, "FAILED"))

    def run(self, trials: tuple[Any, Any, Any] | None = None) -> dict[str, Any]:
        """Run trials until ``max_total_trials`` have finished or a limit stops the sweep.

        Args:
            trials: ``(compute target, entered task runner, trial slots or None)`` from :func:`open_trials`
                (opened here when not given).

        Returns:
            ``{"done": finished trials this sweep holds, "stop_reason": ...}``.

        Raises:
            SweepError: The first completed trial did not log the primary metric (running trials are
                cancelled first).
        """
        if trials is None:
            with open_trials(self.spec, self.job_name, stream=self.stream) as trials:
                return self.run(trials)
        target, runner, self.trial_slots = trials
        done = self._recover()
        started = time.monotonic()
        if self.function and self.spec.sampling_algorithm.type != "bayesian":
            # the pool's max_workers (or the Dask trial slots) bound the running trials; as many again wait
            self.slots = 2 * self.concurrency
        self._log("Sweep %s: %d of %d trials already finished; %d at a time on %s", self.job_name, done,
                  self.max_total, self.concurrency, target.name)
        submit = self._submit_functions if self.function else self._submit
        # a new trial starts before the finished ones are recorded, except for bayesian sampling,
        # which should see their results first
        submit_first = self.spec.sampling_algorithm.type != "bayesian"
        if self.function:
            os.environ["PREFECT_ML_SWEEP_PROCESS"] = str(os.getpid())
            # the result's plot needs matplotlib (seconds to import on a busy machine): import it meanwhile
            threading.Thread(target=_import_matplotlib, daemon=True).start()
        try:
            while True:
                submit(runner, done)
                if not self.running:
                    break
                self.wake.wait(poll_seconds())  # a trial ended, or time to poll
                self.wake.clear()
                if self.spec.early_termination is not None or not self.function:
                    self._refresh()
                    self._apply_policy()
                self._check_limits(started)
                ended = [self.running.pop(n) for n, r in list(self.running.items()) if _done(r.future)]
                if submit_first and ended:
                    submit(runner, done + len(ended))
                for r in ended:
                    try:
                        self._finish(r)
                    finally:
                        done += 1
        except BaseException as exc:
            reason = ("the sweep was interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit))
                      else "the sweep failed")
            for r in self.running.values():
                try:
                    self._cancel(r, reason)
                except Exception:  # noqa: BLE001
                    pass
            if reason == "the sweep was interrupted":
                self._log("Sweep %s interrupted: %d trials finished are kept; run the same job again with "
                          "--name %s to resume it", self.job_name, done, self.job_name)
            if self.trial_slots is not None:  # trials no slot has started: nothing to wait for
                self.trial_slots.withdraw_waiting(RuntimeError(f"Not started: {reason}"))
            deadline = time.monotonic() + 30  # for all of them together
            for r in self.running.values():
                try:
                    r.future.wait(max(0.0, deadline - time.monotonic()))
                    self._interrupt(r)
                except BaseException:  # noqa: BLE001
                    pass
            raise
        return {"done": done, "stop_reason": self.stop_reason}


def sweep_bounds(spec: SweepJob) -> tuple[int, int]:
    """``(trials to run, trials at once)``: ``max_total_trials`` capped by a grid's size, and
    ``max_concurrent_trials`` capped by that."""
    from prefect_ml.sweep.sampling import grid_size

    size = grid_size(spec)
    max_total = min(spec.limits.max_total_trials, size) if size else spec.limits.max_total_trials
    return max_total, min(spec.limits.concurrency(), max_total)


@contextlib.contextmanager
def open_trials(spec: SweepJob, job_name: str, stream: bool = False):
    """Open where the sweep's trials run: the task runner of its compute and, for function trials on a Dask
    task runner, the trial slots (:mod:`prefect_ml.sweep.trial_slots`), which take a few tenths of a second to
    start on the cluster: the sweep flow opens this first, so they start while it sets up its MLflow run.

    Args:
        spec: The sweep.
        job_name: Its unique name.
        stream: Also print warnings about the cluster (as the sweep prints its progress with ``--stream``).

    Yields:
        ``(compute target, entered task runner, TrialSlots or None)``; closed (slots stopped, runner exited)
        on exit.

    Raises:
        NotFoundError, ConfigurationError: The compute target does not exist or its cluster cannot be reached.
    """
    from prefect_ml.compute import targets

    concurrency = sweep_bounds(spec)[1]
    target = targets.get_compute(spec.compute)
    runner = targets.task_runner_for(target, max_workers=concurrency)
    with runner:
        slots = None
        if not _is_thread_pool(runner):  # a Dask cluster
            if spec.is_function_trial:  # first: the slots start on the cluster while the rest is done
                from prefect_ml.sweep.trial_slots import TrialSlots

                slots = TrialSlots(runner, concurrency, job_name)
            _check_dask_workers(runner, echo=stream)
        try:
            yield target, runner, slots
        except BaseException:
            if slots is not None:  # the sweep waited for its running trials already; a slot with no worker left
                slots.close(timeout_seconds=5)  # would hold the exit for the whole timeout
            raise
        else:
            if slots is not None:
                slots.close()


def _worker_api_url() -> tuple[int, str | None]:
    """Run on each Dask worker by :func:`_check_dask_workers`: ``(its pid, its PREFECT_API_URL)``."""
    return os.getpid(), os.environ.get("PREFECT_API_URL")


def _check_dask_workers(runner, logger=None, echo: bool = False) -> list[str]:
    """Warn (in the flow run's log) when Dask workers in other processes lack this process's Prefect API URL.

    prefect-dask gives each task the flow's settings, but Prefect's log and event shipping threads on a worker
    read the worker's own environment: without ``PREFECT_API_URL`` they start a temporary Prefect server on
    the worker (seen in a fresh-user trial: a second API, trials' cancel checks against it, a leftover
    server process).

    Args:
        runner: An entered ``DaskTaskRunner`` (its ``client`` is used).
        logger: Where to warn (default: the flow run's logger).
        echo: Also print the warning on stderr (``--stream``: the CLI shows the sweep's own output only).

    Returns:
        The addresses of the workers warned about.
    """
    from prefect.settings import get_current_settings

    url = str(get_current_settings().api.url or "")
    if not url:
        return []
    try:
        seen = runner.client.run(_worker_api_url)
    except Exception:  # noqa: BLE001 - only a check
        return []
    other = sorted(address for address, (pid, worker_url) in seen.items()
                   if pid != os.getpid() and worker_url != url)
    if other:
        if logger is None:
            from prefect import get_run_logger

            logger = get_run_logger()
        message = (f"Dask workers {', '.join(other)} do not have PREFECT_API_URL={url} in their environment: "
                   "Prefect's log and event shipping on them will start a temporary Prefect server of their own. "
                   f"Start them with PREFECT_API_URL={url} dask worker ...")
        logger.warning(message)
        if echo:
            print(f"Warning: {message}", file=sys.stderr, flush=True)
    return other


def _is_thread_pool(runner) -> bool:
    from prefect.task_runners import ThreadPoolTaskRunner

    return isinstance(runner, ThreadPoolTaskRunner)


def _import_matplotlib() -> None:
    try:
        import matplotlib.figure  # noqa: F401
    except Exception:  # noqa: BLE001 - only a head start
        pass


def _done(future) -> bool:
    from prefect_ml.sweep.trial_slots import SlotFuture

    if isinstance(future, SlotFuture):
        return future.done()
    wrapped = getattr(future, "wrapped_future", None)
    return wrapped.done() if wrapped is not None and hasattr(wrapped, "done") else future.state.is_final()


# ---------------------------------------------------------------------------------- results


def trial_attrs(trial) -> dict[str, Any]:
    """What the sweep recorded on an Optuna trial: its ``trial`` (set when drawn: ``job_name``,
    ``parameters``, ``mlflow_run_id``) and ``result`` (set when finished: ``status``, ``history``, ...)
    user attributes, over any single-field attributes (``interrupted``, a command trial's run ids)."""
    attrs = dict(trial.user_attrs)
    return {**attrs, **attrs.get("trial", {}), **attrs.get("result", {})}


def trial_records(spec: SweepJob, job_name: str) -> list[dict[str, Any]]:
    """Every finished trial of the sweep (from its Optuna study), in trial order."""
    from prefect_ml.sweep.sampling import SweepStudy

    study = SweepStudy(spec, sweep_dir(job_name), job_name).study
    out = []
    for t in study.get_trials(deepcopy=False):
        attrs = trial_attrs(t)
        if attrs.get("interrupted") or "status" not in attrs:
            continue
        history = attrs.get("history") or []
        out.append({"name": attrs.get("job_name"), "number": t.number, "status": attrs["status"],
                    "parameters": attrs.get("parameters", {}),
                    "metric": history[-1] if history else None,
                    "terminated_early": bool(attrs.get("terminated_early")),
                    "intervals": len(history), "mlflow_run_id": attrs.get("mlflow_run_id"),
                    "prefect_flow_run_id": attrs.get("flow_run_id"),
                    "prefect_task_run_id": attrs.get("task_run_id"),
                    "duration_seconds": attrs.get("duration_seconds"),
                    "message": attrs.get("message") or attrs.get("termination_reason")})
    return out


def best_of(trials: list[dict[str, Any]], goal: str) -> dict[str, Any] | None:
    """The completed trial with the best final metric."""
    done = [t for t in trials if t["status"] == "Completed" and t["metric"] is not None]
    if not done:
        return None
    return (max if goal == "maximize" else min)(done, key=lambda t: t["metric"])


def plot_png(trials: list[dict[str, Any]], goal: str, metric: str, path: Path) -> Path:
    """Plot the metric of each trial (terminated trials hollow) and the best so far; save a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=90)
    ax = fig.add_subplot()
    xs = [t["number"] for t in trials if t["metric"] is not None]
    done = [(t["number"], t["metric"]) for t in trials if t["metric"] is not None and not t["terminated_early"]]
    cut = [(t["number"], t["metric"]) for t in trials if t["metric"] is not None and t["terminated_early"]]
    if done:
        ax.scatter(*zip(*done), label="completed", color="tab:blue")
    if cut:
        ax.scatter(*zip(*cut), label="terminated early (last value)", facecolors="none", edgecolors="tab:red")
    best, line = None, []
    for t in sorted((t for t in trials if t["status"] == "Completed" and t["metric"] is not None),
                    key=lambda t: t["number"]):
        if best is None or (t["metric"] > best if goal == "maximize" else t["metric"] < best):
            best = t["metric"]
        line.append((t["number"], best))
    if line:
        ax.step(*zip(*line), where="post", label="best so far", color="tab:green")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by trial ({goal})")
    if xs:
        ax.legend(loc="best", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


@task(name="record-sweep", cache_policy=NO_CACHE, persist_result=False)
def record_sweep(spec: SweepJob, job_name: str, run_id: str, status: str, error: str | None = None
                 ) -> dict[str, Any]:
    """Write the sweep's result: parent-run metric and tags, leaderboard table and plot image artifacts.

    Returns:
        ``{"best_trial": ..., "trials": [...]}``.
    """
    import base64

    from mlflow.entities import Metric, RunTag
    from prefect.artifacts import create_image_artifact

    trials = trial_records(spec, job_name)
    best = best_of(trials, spec.goal)
    if status == "Completed" and best is None:
        status = "Failed"
    client = tracking.get_client()
    tags = [RunTag(tracking.TAG_STATUS, status)]
    metrics = []
    now = int(time.time() * 1000)
    if best is not None:
        tags.append(RunTag(TAG_BEST, best["name"]))
        metrics.append(Metric(spec.primary_metric, best["metric"], now, 0))
    metrics.append(Metric("trials_completed", sum(t["status"] == "Completed" for t in trials), now, 0))
    metrics.append(Metric("trials_terminated_early", sum(t["terminated_early"] for t in trials), now, 0))
    if error:
        tags.append(RunTag(tracking.TAG_ERROR, error[-4000:]))
    # the plot is drawn on a thread meanwhile: the table artifact and the MLflow writes mostly wait on I/O
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="prefect-ml-sweep-plot") as pool:
        plotted = pool.submit(plot_png, trials, spec.goal, spec.primary_metric, sweep_dir(job_name) / "trials.png")
        client.log_batch(run_id, metrics=metrics, tags=tags)
        _leaderboard_artifact(spec, job_name, trials)
        png = plotted.result()
    client.log_artifact(run_id, str(png), "sweep")
    data_uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
    create_image_artifact(image_url=data_uri, key="sweep-plot",
                          description=f"{spec.primary_metric} by trial for sweep {job_name}")
    client.set_terminated(run_id, status={"Completed": "FINISHED", "Canceled": "KILLED"}.get(status, "FAILED"))
    return {"best_trial": best, "trials": trials, "status": status}


def _leaderboard_artifact(spec: SweepJob, job_name: str, trials: list[dict[str, Any]]) -> None:
    """The ``sweep-leaderboard`` table artifact: the trials ranked by the primary metric."""
    from prefect.artifacts import create_table_artifact

    reverse = spec.goal == "maximize"
    ranked = sorted(trials, key=lambda t: (t["metric"] is None, -(t["metric"] or 0) if reverse else (t["metric"] or 0)))
    table = [{"rank": i + 1, "trial": t["name"], "status": t["status"] + (" (terminated early)"
                                                                         if t["terminated_early"] else ""),
              spec.primary_metric: t["metric"], "intervals": t["intervals"],
              **{f"param:{k}": v for k, v in t["parameters"].items()}, "mlflow_run_id": t["mlflow_run_id"]}
             for i, t in enumerate(ranked)]
    if table:
        create_table_artifact(table=table, key="sweep-leaderboard",
                              description=f"Trials of sweep {job_name} by {spec.primary_metric} ({spec.goal})")


def describe_sweep(job, flow_run, run) -> None:
    """``job.details``: ``best_trial``, ``trials`` (name, status, parameters, metric, terminated_early...),
    ``primary_metric`` and ``goal``.

    Read from the sweep's own record (its Optuna study under ``$PREFECT_ML_HOME/jobs/<name>/sweep``)
    when the sweep ran with this home, else from its MLflow child runs (searching 64 child runs takes
    ~0.5 s on SQLite).
    """
    if run is None:
        return
    tags = run.data.tags
    primary = tags.get(TAG_PRIMARY)
    goal = tags.get(TAG_GOAL, "maximize")
    trials = _local_trials(job.name, run, flow_run)
    if trials is None:
        trials = _mlflow_trials(run, primary)
    best_name = tags.get(TAG_BEST)
    best = next((t for t in trials if t["name"] == best_name), None) or best_of(trials, goal)
    job.details.update({"primary_metric": primary, "goal": goal, "best_trial": best, "trials": trials})


def _local_trials(job_name: str | None, run, flow_run) -> list[dict[str, Any]] | None:
    """The finished trials from the sweep's study, if its state here belongs to MLflow run ``run`` and the
    sweep has ended (a running sweep's study is being written: read MLflow then)."""
    state = sweep_dir(job_name or "") / "state.json"
    state_type = getattr(getattr(flow_run, "state", None), "type", None)
    if not job_name or not state.exists() or state_type is None or state_type.value not in (
            "COMPLETED", "FAILED", "CANCELLED", "CRASHED"):
        return None
    try:
        if json.loads(state.read_text()).get("run_id") != run.info.run_id:
            return None
        spec = SweepJob.model_validate(flow_run.parameters["job"])
        records = trial_records(spec, job_name)
    except Exception:  # noqa: BLE001 - an unreadable record: MLflow has the same facts
        return None
    keys = ("name", "number", "status", "parameters", "metric", "terminated_early", "mlflow_run_id",
            "prefect_flow_run_id", "prefect_task_run_id")
    return [{k: t.get(k) for k in keys} for t in records]


def _mlflow_trials(run, primary: str | None) -> list[dict[str, Any]]:
    client = tracking.get_client()
    try:
        names = json.loads(run.data.tags.get(TAG_PARAMETERS, "[]"))
    except ValueError:
        names = []
    children = client.search_runs([run.info.experiment_id],
                                  filter_string=f"tags.`{TAG_PARENT}` = '{run.info.run_id}'", max_results=5000)
    trials = []
    for child in children:
        ctags = child.data.tags
        if ctags.get(TAG_INTERRUPTED) == "true":
            continue
        status = ctags.get(tracking.TAG_STATUS) or {"RUNNING": "Running"}.get(child.info.status, "Failed")
        trials.append({"name": ctags.get(tracking.TAG_JOB_NAME), "number": int(ctags.get(TAG_TRIAL_NUMBER, -1)),
                       "status": status, "parameters": {n: _param(child.data.params.get(n)) for n in names},
                       "metric": child.data.metrics.get(primary),
                       "terminated_early": ctags.get(TAG_TERMINATED) == "true",
                       "mlflow_run_id": child.info.run_id,
                       "prefect_flow_run_id": ctags.get(tracking.TAG_FLOW_RUN_ID),
                       "prefect_task_run_id": ctags.get("prefect.task_run_id")})
    trials.sort(key=lambda t: t["number"])
    return trials


def _param(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
