"""Function trials on a Dask cluster: ``max_concurrent_trials`` long-lived *trial slots* per sweep.

prefect-dask runs each Prefect task it is given inside ``prefect.context.hydrated_context``: on the worker it
rebuilds the flow run's settings from the environment and files and opens a new API client, ~150 ms of CPU per
task (measured with py-spy on a ``LocalCluster``), held under the GIL the trials share. Submitted one task per
trial, a sweep of short trials spent most of its time there (64 trials of 0.5 s, 2 at a time: 1.9x the ideal).

So a sweep whose function trials run on a Dask task runner submits ``max_concurrent_trials`` *slot* tasks
(``trial-slot-<i>``, task runs of the sweep's flow run), each of which pays that cost once and then takes
trial assignments from a ``distributed.Queue`` (https://distributed.dask.org/en/stable/api.html#distributed.Queue)
and runs each as a *nested* Prefect task run (``trial-<name>``, a child of its slot's task run, visible in the UI
as before). Slots report a trial's start and end as Dask structured events (``Worker.log_event``, fire-and-forget;
the sweep's client subscribes to the topic: https://distributed.dask.org/en/stable/logging.html#structured-logs),
so reporting costs a slot no round trip to the scheduler. A slot that a stop or a lost worker ends fails the trial it
was running; when every slot has ended, every trial still waiting fails with the slot's error. Dask reruns a slot
whose worker died (the trial it had is failed, the slot goes on with the next ones).
"""

from __future__ import annotations

import contextvars
import pickle
import threading
import uuid
from typing import Any, Callable

from prefect import task
from prefect.cache_policies import NO_CACHE


def _trial_slot(todo: str, topic: str, index: int) -> int:
    """Run trial assignments from queue ``todo`` until a ``None`` arrives; report on event topic ``topic``.

    Args:
        todo: Name of the ``distributed.Queue`` of assignments (pickled ``{"key", "parameters"}``;
            ``parameters`` of :func:`prefect_ml.sweep.function_trials.run_function_trial`).
        topic: Dask event topic this slot reports on (``Worker.log_event``): ``{"event": "hello"|"start"|"end",
            "slot", "key", "task_run_id", "outcome"}`` (``outcome``: the pickled task result, or the error).
        index: This slot's number.

    Returns:
        The number of trials this slot ran.
    """
    from distributed import Queue, get_worker

    from prefect_ml.sweep.function_trials import run_function_trial

    worker, inbox = get_worker(), Queue(todo)
    worker.log_event(topic, {"event": "hello", "slot": index})
    count = 0
    while True:
        item = inbox.get()
        if item is None:
            return count
        assignment = pickle.loads(item)
        key = assignment["key"]
        worker.log_event(topic, {"event": "start", "slot": index, "key": key})
        task_run_id = None
        try:
            state = run_function_trial(**assignment["parameters"], return_state=True)
            task_run_id = state.state_details.task_run_id
            outcome = state.result(raise_on_failure=False)
        except Exception as exc:  # noqa: BLE001 - Prefect itself failed: the trial fails with it
            outcome = exc
        worker.log_event(topic, {"event": "end", "slot": index, "key": key, "outcome": _dumps(outcome),
                                 "task_run_id": str(task_run_id) if task_run_id else None})
        count += 1


trial_slot = task(_trial_slot, name="trial-slot", cache_policy=NO_CACHE, persist_result=False)


def _dumps(outcome: Any) -> bytes:
    try:
        return pickle.dumps(outcome)
    except Exception:  # noqa: BLE001 - an exception that does not pickle travels as its text
        return pickle.dumps(RuntimeError(f"{type(outcome).__name__}: {outcome}"))


def _slot_problem(slot) -> str | None:
    """Why a slot's ``PrefectDaskFuture`` (done) ended other than by a ``None`` from its queue, or None."""
    future = slot.wrapped_future
    if future.status != "finished":  # a Dask error (the task could not run) or a cancel
        return f"{future.status}: {future.exception()!r}" if future.status == "error" else future.status
    state = future.result()  # prefect-dask returns the slot task run's final state
    if getattr(state, "is_completed", lambda: True)():
        return None
    return f"{state.type.value}: {state.message}"


class SlotFuture:
    """The pending outcome of one trial given to the slots (the part of ``PrefectFuture`` the sweep uses)."""

    def __init__(self, key: str):
        self.key = key
        self.task_run_id: str | None = None
        self._outcome: Any = None
        self._event = threading.Event()
        self._callbacks: list[Callable[[SlotFuture], None]] = []
        self._lock = threading.Lock()

    def done(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> None:
        self._event.wait(timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        """The trial task's result (its outcome dict), or its error (raised unless ``raise_on_failure`` is False).

        Raises:
            TimeoutError: Not done within ``timeout`` seconds.
        """
        if not self._event.wait(timeout):
            raise TimeoutError(f"trial {self.key} has not ended")
        if raise_on_failure and isinstance(self._outcome, BaseException):
            raise self._outcome
        return self._outcome

    def add_done_callback(self, fn: Callable[[SlotFuture], None]) -> None:
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(fn)
                return
        fn(self)

    def _resolve(self, outcome: Any, task_run_id: str | None = None) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._outcome, self.task_run_id = outcome, task_run_id
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn(self)


class TrialSlots:
    """``count`` trial slots on a ``prefect_dask.DaskTaskRunner`` (entered), the queue that feeds them and the
    event topic they report on.

    Args:
        runner: The sweep's Dask task runner, inside its ``with`` block.
        count: Slots to start (``max_concurrent_trials``): the most trials running at once.
        name: Prefix of the queues' names (the sweep's job name).
    """

    def __init__(self, runner, count: int, name: str):
        from distributed import Queue

        self.client = runner.client
        uid = uuid.uuid4().hex[:12]
        self.todo = Queue(f"prefect-ml-{name}-trials-{uid}", client=self.client)
        self.topic = f"prefect-ml-{name}-outcomes-{uid}"
        self.pending: dict[str, SlotFuture] = {}
        self.running: dict[int, str] = {}  # slot -> key of the trial it runs
        self._ended: set[int] = set()
        self._lock = threading.Lock()
        self._closing = False
        self._broken: BaseException | None = None  # set once every slot has ended before close()
        self.count = count
        self.slots: list = []
        # subscribed before the slots are submitted: both go to the scheduler in order on the client's stream
        self.client.subscribe_topic(self.topic, self._on_event)
        # the scheduler's own events: a worker's removal names the tasks it was running
        self.client.subscribe_topic("all", self._on_scheduler_event)
        # Submitting a slot serializes the flow run's context (its settings: ~0.1 s of CPU each); a thread does it
        # in this context while the sweep goes on (creating its MLflow run waits mostly on I/O).
        self._starter = threading.Thread(target=contextvars.copy_context().run, args=(self._start, runner),
                                         name="prefect-ml-trial-slots", daemon=True)
        self._starter.start()

    def _start(self, runner) -> None:
        try:
            for i in range(self.count):
                slot = runner.submit(trial_slot.with_options(task_run_name=f"trial-slot-{i}"),
                                     parameters={"todo": self.todo.name, "topic": self.topic, "index": i})
                self.slots.append(slot)
                slot.wrapped_future.add_done_callback(lambda _, i=i: self._slot_ended(i))
        except BaseException as exc:  # noqa: BLE001 - no slot (or not every slot) could be started
            error = RuntimeError(f"the trial slots could not be started: {exc!r}")
            with self._lock:
                self.count = len(self.slots)
                every = len(self._ended) == self.count  # none started, or those started have ended already
            if every and not self._closing:
                self._fail_all(error)

    def submit(self, key: str, parameters: dict[str, Any]) -> SlotFuture:
        """Queue trial ``key``: ``run_function_trial(**parameters)``, a task run nested in a slot's."""
        future = SlotFuture(key)
        with self._lock:
            broken = self._broken
            if broken is None:
                self.pending[key] = future
        if broken is not None:  # no slot is left to run it
            future._resolve(broken)
            return future
        self.todo.put(pickle.dumps({"key": key, "parameters": parameters}))
        return future

    def _fail(self, key: str | None, error: BaseException) -> None:
        with self._lock:
            future = self.pending.pop(key, None) if key else None
        if future is not None:
            future._resolve(error)

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        """A slot's report (run on the client's event loop, in the order the slot sent them)."""
        message = event[1]
        slot, kind = message["slot"], message["event"]
        if kind == "hello":  # a slot (re)started: a trial it had before its worker was lost is gone
            with self._lock:
                lost = self.running.pop(slot, None)
            if lost is not None:
                self._fail(lost, RuntimeError(f"trial {lost} was lost with its Dask worker (trial slot {slot})"))
        elif kind == "start":
            with self._lock:
                self.running[slot] = message["key"]
        elif kind == "end":
            with self._lock:
                self.running.pop(slot, None)
                future = self.pending.pop(message["key"], None)
            if future is not None:
                future._resolve(pickle.loads(message["outcome"]), message.get("task_run_id"))

    def _on_scheduler_event(self, event: tuple[float, dict[str, Any]]) -> None:
        """A scheduler event: a removed worker that was running slots fails their trials at once (Dask runs
        the slots again when the cluster has a worker; until then the trials wait in the queue)."""
        message = event[1]
        if not isinstance(message, dict) or message.get("action") != "remove-worker":
            return
        processing = set(message.get("processing-tasks") or ())
        for index, slot in enumerate(list(self.slots)):
            if slot.wrapped_future.key in processing:
                with self._lock:
                    lost = self.running.pop(index, None)
                if lost is not None:
                    self._fail(lost, RuntimeError(
                        f"trial {lost} was lost with its Dask worker {message.get('worker')} (trial slot {index}); "
                        "the slot starts again when the cluster has a worker"))

    def withdraw_waiting(self, error: BaseException) -> list[str]:
        """Fail the trials queued for the slots that no slot has started (a sweep that stops does not wait for
        them: with no Dask worker left they would never start). Returns their keys."""
        with self._lock:
            started = set(self.running.values())
            keys = [key for key in self.pending if key not in started]
        for key in keys:
            self._fail(key, error)
        return keys

    def _slot_ended(self, index: int) -> None:
        """Done callback of slot ``index``'s Dask future (on Dask's callback thread, after the slot's last
        report: both reach the client in order on the scheduler's stream)."""
        # once closing, slots end because they were told to: their results are not fetched then (the runner's
        # exit may release them meanwhile, which the scheduler logs as an error)
        problem = None if self._closing else _slot_problem(self.slots[index])
        error = RuntimeError(f"trial slot {index} ended: {problem}" if problem else f"trial slot {index} ended")
        with self._lock:
            self._ended.add(index)
            lost = self.running.pop(index, None)  # a slot told to stop has no trial left
            every = len(self._ended) == self.count
        if lost is not None:
            self._fail(lost, error)
        if every and not self._closing:
            self._fail_all(RuntimeError(f"every trial slot ended; the last: {error}"))

    def _fail_all(self, error: BaseException) -> None:
        with self._lock:
            self._broken = error
            futures, self.pending = list(self.pending.values()), {}
        for future in futures:
            future._resolve(error)

    def close(self, timeout_seconds: float = 30) -> None:
        """Tell the slots to stop after the trials queued so far, and wait for them (``timeout_seconds``)."""
        from distributed import wait

        self._closing = True
        self._starter.join(timeout_seconds)
        try:
            for _ in self.slots:
                self.todo.put(None)
            # not PrefectDaskFuture.wait: it fetches the result, and a slot that died of a BaseException makes
            # distributed's sync() wait out its whole timeout
            wait([slot.wrapped_future for slot in self.slots], timeout=timeout_seconds)
        except Exception:  # noqa: BLE001 - a slot still running after the timeout: the runner's exit ends it
            pass
        finally:
            # Unsubscribed before the runner's client closes: the scheduler sends the client's own removal to
            # "all" and logs a CRITICAL traceback when that client is already closed. The handlers stay with the
            # client (distributed keeps them), so an event still on its way is handled, not an error.
            for end in (lambda: self.client.unsubscribe_topic("all"),
                        lambda: self.client.unsubscribe_topic(self.topic), self.todo.close):
                try:
                    end()
                except Exception:  # noqa: BLE001 - the client may be closing
                    pass
