"""The Python SDK: ``MLClient`` with ``jobs``, ``data`` and ``models`` operations, as in Azure's SDK v2.

Example::

    from prefect_ml import MLClient, command, Input

    job = command(code="./src", command="python train.py --lr ${{inputs.lr}}", inputs={"lr": 0.1})
    client = MLClient()
    returned = client.jobs.create_or_update(job)
    print(returned.status, returned.metrics)
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from prefect_ml import settings
from prefect_ml.exceptions import NotFoundError, Problem, ValidationError
from prefect_ml.jobs import TERMINAL_STATUSES, Job, generate_job_name, status_from_state

#: Compute names that mean "run in this process".
LOCAL_COMPUTE = {None, "", "local", "azureml:local"}
JOB_TAG = "prefect-ml"


def _is_local(compute: str | None) -> bool:
    return compute in LOCAL_COMPUTE


def check_compute(spec):
    """Resolve ``spec.compute`` (``NAME`` or ``azureml:NAME``) and the job's instance type on it.

    Returns:
        The :class:`~prefect_ml.compute.targets.ComputeTarget`.

    Raises:
        ValidationError: No such target (the message lists those that exist), or the job's
            ``resources.instance_type`` is not one of the target's.
    """
    from prefect_ml.compute.targets import get_compute, resolve_instance

    try:
        target = get_compute(spec.compute)
    except NotFoundError as exc:
        raise ValidationError([Problem("compute", str(exc), value=spec.compute, file=spec.source_file)],
                              file=spec.source_file) from None
    try:
        resolve_instance(target, getattr(spec, "resources", None))
    except ValidationError as exc:
        raise ValidationError(exc.problems, file=spec.source_file) from None
    return target


#: Former name of :func:`check_compute` (kept for callers written against it).
check_local_compute = check_compute


class MLClient:
    """Entry point of the SDK.

    Args:
        prefect_api_url: Prefect API to use. Default: ``PREFECT_API_URL`` / the active Prefect
            profile, else the local API that prefect-ml starts on first use (see ``prefect-ml server``).
        tracking_uri: MLflow tracking URI. Default: ``MLFLOW_TRACKING_URI``, the ``MLflowTracking``
            block named ``default``, else SQLite under ``$PREFECT_ML_HOME``.
        autostart: Start the local Prefect API when none is configured (otherwise Prefect's
            temporary per-process server is used).

    Attributes:
        jobs: :class:`JobOperations`.
        data: :class:`DataOperations`.
        models: :class:`ModelOperations`.
    """

    def __init__(self, prefect_api_url: str | None = None, tracking_uri: str | None = None, autostart: bool = True):
        from prefect_ml.compute.server import ensure_api

        settings.apply_quiet_defaults()
        if prefect_api_url:
            os.environ["PREFECT_API_URL"] = prefect_api_url
            if "prefect.context" in sys.modules:
                from prefect.context import refresh_global_settings_context

                refresh_global_settings_context()
        if tracking_uri:
            os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
        self.prefect_api_url = ensure_api(autostart=autostart)
        self.jobs = JobOperations()
        self.data = DataOperations()
        self.models = ModelOperations()


#: Seconds ``JobOperations.iter_logs`` keeps reading a finished job's logs for lines still in flight.
FINAL_LOG_GRACE_SECONDS = 10.0


class JobOperations:
    """Create, inspect, follow, cancel and download jobs."""

    # ----------------------------------------------------------------- create
    def validate(self, job, *, name: str | None = None):
        """Check everything that can be checked before a job is created; change nothing.

        Returns:
            The job specification (a copy, with ``name`` set).

        Raises:
            ValidationError: The specification or the compute is invalid, or the name is taken.
            NotFoundError: An input, data asset, model, datastore or code folder does not exist.
            ConfigurationError: The environment cannot be resolved.
        """
        from prefect_ml.job_kinds import kind_module
        from prefect_ml.specs import load_job

        spec = load_job(job) if isinstance(job, (str, Path)) else job
        job_type = getattr(spec, "type", None)
        try:
            kind = kind_module(job_type)
        except KeyError:
            raise ValidationError([Problem("type", "not a job specification", value=type(spec).__name__)]) from None
        name = name or spec.name or generate_job_name()
        spec = spec.model_copy(update={"name": name})
        spec = kind.preflight(spec)
        existing = self._find_flow_run(name)
        can_resume = getattr(kind, "can_resume", None)  # e.g. an interrupted sweep continues under its name
        if existing is not None and not (can_resume is not None and can_resume(spec, existing)):
            raise ValidationError([Problem("name", "a job with this name already exists; choose another name or "
                                                   "omit it to get a generated one", value=name)],
                                  file=spec.source_file)
        return spec

    def create_or_update(self, job, *, name: str | None = None, stream: bool = False) -> Job:
        """Validate and run a job; on the local compute this returns when the job has ended.

        Args:
            job: A ``CommandJob`` (from :func:`prefect_ml.command` or :func:`prefect_ml.load_job`)
                or the path of a job YAML file.
            name: The job's name (default: the spec's, else a generated one).
            stream: Print the job's output on stdout as it runs.

        Returns:
            The finished :class:`~prefect_ml.jobs.Job` (``status`` Completed, Failed or Canceled).

        Raises:
            ValidationError, NotFoundError, ConfigurationError: as :meth:`validate`; nothing is created.
        """
        return self.run(self.validate(job, name=name), stream=stream)

    def run(self, spec, *, stream: bool = False) -> Job:
        """Run a job returned by :meth:`validate` (which is not repeated).

        On the local compute (and ``local`` targets) this returns when the job has ended; on a work-pool
        target it returns the queued job at once unless ``stream`` (see :mod:`prefect_ml.compute.submit`).

        Args:
            spec: The validated ``CommandJob`` (its ``name`` set).
            stream: Print the job's output on stdout as it runs.

        Returns:
            The finished :class:`~prefect_ml.jobs.Job`.
        """
        from prefect_ml.job_kinds import kind_module

        from prefect_ml.compute.targets import get_compute

        for warning in getattr(spec, "warnings", ()):
            print(f"Warning: {warning}", file=sys.stderr)
        from prefect_ml.job_kinds import runs_in_process

        target = get_compute(getattr(spec, "compute", None))
        if not runs_in_process(kind_module(spec.type), target):  # a work pool: a flow run of its deployment
            from prefect_ml.compute.submit import submit_job

            return submit_job(spec, target, stream=stream)
        # The flow run is tagged by the flow itself: tags set here would also tag every task run,
        # and Prefect checks tag concurrency limits for each tagged task run (~0.3 s each).
        with _local_run_settings():
            state = kind_module(spec.type).run(spec, stream=stream)
        return self._get_by_flow_run_id(state.state_details.flow_run_id, spec.name)

    # ------------------------------------------------------------------ read
    def _find_flow_run(self, name: str):
        from prefect_ml._prefect import prefect_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterTags
        from prefect.client.schemas.sorting import FlowRunSort

        with prefect_client() as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]),
                                              tags=FlowRunFilterTags(all_=[JOB_TAG])),
                sort=FlowRunSort.START_TIME_DESC, limit=1)
        return runs[0] if runs else None

    def get(self, name: str) -> Job:
        """Return job ``name``.

        Raises:
            NotFoundError: No job has that name.
        """
        from prefect_ml import tracking

        flow_run = self._find_flow_run(name)
        run = tracking.find_job_run(tracking.get_client(), name)
        if flow_run is None and run is None:
            raise NotFoundError(f"Job {name!r} not found. List jobs with `prefect-ml job list`.")
        return _job_from(name, flow_run, run)

    def _get_by_flow_run_id(self, flow_run_id, name: str) -> Job:
        """Like :meth:`get` for a flow run we know, without searching (cheap: two reads)."""
        from prefect_ml._prefect import prefect_client

        from prefect_ml import tracking

        if flow_run_id is None:
            return self.get(name)
        with prefect_client() as client:
            flow_run = client.read_flow_run(flow_run_id)
        run_ids = [t.split(":", 1)[1] for t in flow_run.tags if t.startswith("mlflow_run_id:")]
        run = tracking.get_client().get_run(run_ids[0]) if run_ids else None
        return _job_from(name, flow_run, run)

    def list(self, max_results: int = 50, *, parent_job_name: str | None = None) -> list[Job]:
        """The newest ``max_results`` top-level jobs, newest first; or the child jobs of one job.

        As ``az ml job list``: pipeline steps and sweep trials (child jobs) are left out unless
        ``parent_job_name`` names their pipeline or sweep job, which lists that job's direct children
        (the flow runs of prefect-ml jobs nested under its flow run). Jobs started by a schedule or a
        retraining flow are top-level jobs.

        Args:
            max_results: Most jobs returned.
            parent_job_name: List the child jobs of this job instead (Azure's ``--parent-job-name``).

        Raises:
            NotFoundError: No job is named ``parent_job_name``.
        """
        from prefect_ml._prefect import prefect_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId, FlowRunFilterTags
        from prefect.client.schemas.sorting import FlowRunSort

        from prefect_ml import tracking
        from prefect_ml.tasks.tracking import CHILD_JOB_TAG

        tags = FlowRunFilterTags(all_=[JOB_TAG])
        if parent_job_name is not None:
            parent = self._find_flow_run(parent_job_name)
            if parent is None:
                raise NotFoundError(f"Job {parent_job_name!r} not found. List jobs with `prefect-ml job list`.")
            with prefect_client() as client:
                flow_runs = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(tags=tags, parent_flow_run_id=FlowRunFilterParentFlowRunId(
                        any_=[parent.id])), sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=max_results)
        else:  # Prefect's filters cannot exclude a tag: page through job flow runs, skipping child jobs
            flow_runs, offset, page = [], 0, 200
            with prefect_client() as client:
                while len(flow_runs) < max_results:
                    batch = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=tags),
                                                  sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=page,
                                                  offset=offset)
                    flow_runs += [fr for fr in batch if CHILD_JOB_TAG not in fr.tags]
                    offset += len(batch)
                    if len(batch) < page:
                        break
            flow_runs = flow_runs[:max_results]
        mlflow = tracking.get_client()
        runs = {r.data.tags.get(tracking.TAG_JOB_NAME): r
                for r in tracking.list_job_runs(mlflow, max_results=max_results * 2)}
        return [_job_from(fr.name, fr, runs.get(fr.name) or _linked_run(mlflow, fr)) for fr in flow_runs]

    # ---------------------------------------------------------------- follow
    def stream(self, name: str, *, poll_seconds: float = 0.5, timeout_seconds: float | None = None,
               printer: Callable[[str], None] = print) -> Job:
        """Print job ``name``'s logs as they arrive until it ends; return the finished job.

        Args:
            poll_seconds: Interval between reads of the logs, seconds.
            timeout_seconds: Stop following after this many seconds (``None``: until the job ends).
            printer: Called with each log message.
        """
        for message in self.iter_logs(name, poll_seconds=poll_seconds, timeout_seconds=timeout_seconds):
            printer(message)
        return self.get(name)

    def iter_logs(self, name: str, *, poll_seconds: float = 0.5, timeout_seconds: float | None = None
                  ) -> Iterator[str]:
        """Yield the messages of job ``name``'s Prefect logs, following until the job ends."""
        from prefect_ml._prefect import prefect_client
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
        from prefect.client.schemas.sorting import LogSort

        flow_run = self._find_flow_run(name)
        if flow_run is None:
            raise NotFoundError(f"Job {name!r} not found. List jobs with `prefect-ml job list`.")
        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        seen: set = set()
        offset = 0
        flow_end_logged = False  # the engine's own flow-level "Finished in state ..." line, its last
        drain_until = None
        with prefect_client() as client:
            while True:
                state = client.read_flow_run(flow_run.id).state
                finished = state is not None and state.is_final()
                # The flow-run process sends its logs in batches, after its final state: once the run has ended,
                # re-read from the start (late lines may sort before the offset) until the engine's last line
                # arrived, for at most FINAL_LOG_GRACE_SECONDS (a crashed process never sends it).
                if finished:
                    drain_until = drain_until or time.monotonic() + FINAL_LOG_GRACE_SECONDS
                    offset = 0
                while True:
                    logs = client.read_logs(
                        log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])),
                        sort=LogSort.TIMESTAMP_ASC, offset=offset, limit=200)
                    for log in logs:
                        if log.id not in seen:
                            seen.add(log.id)
                            if log.task_run_id is None and log.message.startswith("Finished in state"):
                                flow_end_logged = True
                            # Prefect's per-task "Finished in state Completed()" lines say nothing
                            # without the task's name; the job's own lines and lifecycle steps do.
                            if log.task_run_id is not None and log.message.startswith("Finished in state Completed"):
                                continue
                            yield log.message
                    offset += len(logs)
                    if len(logs) < 200:
                        break
                if finished and (flow_end_logged or not seen or time.monotonic() > drain_until):
                    return
                if deadline is not None and time.monotonic() > deadline:
                    return
                time.sleep(poll_seconds)

    # ---------------------------------------------------------------- cancel
    def cancel(self, name: str) -> Job:
        """Request cancellation of job ``name``; its process group is killed within about a second.

        Raises:
            NotFoundError: No job has that name.
        """
        from prefect_ml._prefect import prefect_client
        from prefect.states import Cancelled, Cancelling

        flow_run = self._find_flow_run(name)
        if flow_run is None:
            raise NotFoundError(f"Job {name!r} not found. List jobs with `prefect-ml job list`.")
        if flow_run.state is not None and not flow_run.state.is_final():
            new_state = Cancelling() if flow_run.state.is_running() else Cancelled(message="Canceled before start")
            with prefect_client() as client:
                client.set_flow_run_state(flow_run.id, new_state, force=True)
        return self.get(name)

    # -------------------------------------------------------------- download
    def download(self, name: str, *, output_name: str | None = None, download_path: str | Path = ".",
                 all: bool = False) -> Path:  # noqa: A002 - Azure's parameter name
        """Download a job's outputs (and logs) like ``az ml job download``.

        Layout under ``download_path``: ``named-outputs/OUTPUT/`` for each output and, when no
        ``output_name`` is given or ``all`` is true, ``artifacts/user_logs/std_log.txt``.

        Returns:
            The folder written to.

        Raises:
            NotFoundError: The job or the output does not exist.
        """
        import fsspec

        job = self.get(name)
        target = Path(download_path)
        wanted = [output_name] if output_name else list(job.outputs)
        for output in wanted:
            if output not in job.outputs:
                raise NotFoundError(f"Job {name!r} has no output {output!r}; outputs: {sorted(job.outputs) or 'none'}.")
            uri = job.outputs[output]
            dest = target / "named-outputs" / output
            dest.mkdir(parents=True, exist_ok=True)
            fs, path = fsspec.core.url_to_fs(uri)
            if fs.isdir(path):
                fs.get(path.rstrip("/") + "/", str(dest), recursive=True)
            else:
                fs.get(path, str(dest / Path(path).name))
        if (all or not output_name) and job.log_path and Path(job.log_path).exists():
            logs = target / "artifacts" / "user_logs"
            logs.mkdir(parents=True, exist_ok=True)
            shutil.copy2(job.log_path, logs / "std_log.txt")
        return target


def _local_run_settings():
    """Settings for flows run in this process.

    Prefect's flow-run heartbeats serve crash detection by a server-side automation for runs on
    workers; for a run in the submitting process they only add up to a second at exit (the heartbeat
    thread sleeps in 1 s steps). They are off for local runs unless ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``
    is set.
    """
    import contextlib

    if os.environ.get("PREFECT_FLOWS_HEARTBEAT_FREQUENCY") or os.environ.get("PREFECT_RUNNER_HEARTBEAT_FREQUENCY"):
        return contextlib.nullcontext()
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


def _linked_run(mlflow, flow_run):
    """The MLflow run a job's flow run is tagged with (``mlflow_run_id:ID``), or ``None``."""
    run_ids = [t.split(":", 1)[1] for t in flow_run.tags if t.startswith("mlflow_run_id:")]
    if not run_ids:
        return None
    try:
        return mlflow.get_run(run_ids[0])
    except Exception:  # noqa: BLE001 - a deleted run: the job is listed from its flow run alone
        return None


def _job_from(name: str, flow_run, run) -> Job:
    import json

    from prefect_ml import tracking

    job = Job(name=name)
    if flow_run is not None:
        state = flow_run.state
        job.prefect_flow_run_id = str(flow_run.id)
        job.status = status_from_state(state.type if state else None)
        if state is not None and job.status in ("Failed", "Canceled") and state.message:
            job.error = state.message
        start = flow_run.start_time or flow_run.expected_start_time
        job.created_at = start.isoformat() if start else None
    if run is not None:
        tags = run.data.tags
        job.mlflow_run_id = run.info.run_id
        job.experiment_name = _experiment_name(run.info.experiment_id)
        job.display_name = tags.get(tracking.TAG_DISPLAY_NAME)
        job.metrics = dict(run.data.metrics)
        job.outputs = _with_prefix(tags, tracking.TAG_OUTPUT_PREFIX)
        job.registered_models = _with_prefix(tags, tracking.TAG_REGISTERED_MODEL_PREFIX)
        job.registered_data = _with_prefix(tags, tracking.TAG_REGISTERED_DATA_PREFIX)
        job.log_path = tags.get(tracking.TAG_LOG_PATH)
        job.compute = tags.get("prefect_ml.compute")
        job.type = tags.get(tracking.TAG_JOB_TYPE) or job.type
        job.error = job.error or tags.get(tracking.TAG_ERROR)
        try:
            job.timings = json.loads(tags.get(tracking.TAG_TIMINGS, "{}"))
        except ValueError:
            job.timings = {}
        if flow_run is None:
            job.status = tags.get(tracking.TAG_STATUS) or {"RUNNING": "Running", "FINISHED": "Completed",
                                                          "KILLED": "Canceled"}.get(run.info.status, "Failed")
        if job.created_at is None and run.info.start_time:
            job.created_at = _iso_from_ms(run.info.start_time)
    try:
        from prefect_ml.job_kinds import kind_module

        describe = getattr(kind_module(job.type), "describe", None)
    except KeyError:
        describe = None
    if describe is not None:
        describe(job, flow_run, run)
    if job.log_path is None:
        candidate = settings.jobs_dir() / name / "user_logs" / "std_log.txt"
        if candidate.exists():
            job.log_path = str(candidate)
    return job


def _with_prefix(tags: dict[str, str], prefix: str) -> dict[str, str]:
    return {k[len(prefix):]: v for k, v in tags.items() if k.startswith(prefix)}


def _experiment_name(experiment_id: str) -> str | None:
    from prefect_ml import tracking

    experiment = tracking.get_client().get_experiment(experiment_id)
    return experiment.name if experiment else None


class DataOperations:
    """Data assets (versioned, immutable) as in Azure's ``ml_client.data``."""

    def create_or_update(self, name: str, *, path: str, type: str = "uri_folder", version: str | None = None,  # noqa: A002
                         description: str | None = None, tags: dict[str, str] | None = None):
        """Create a new version of data asset ``name``; see :func:`prefect_ml.data.create_data_asset`."""
        from prefect_ml.data import create_data_asset

        return create_data_asset(name, path=path, type=type, version=version, description=description, tags=tags)

    def get(self, name: str, version: str | None = None, label: str | None = None):
        """A data asset version (``label="latest"`` or no version: the newest)."""
        from prefect_ml.data import get_data_asset

        return get_data_asset(name, version or label)

    def list(self, name: str | None = None):
        """All data asset versions, or those of ``name``."""
        from prefect_ml.data import list_data_assets

        return list_data_assets(name)


class ModelOperations:
    """Registered models (the MLflow model registry) as in Azure's ``ml_client.models``."""

    def list(self, name: str | None = None) -> list[dict[str, Any]]:
        """Registered models (latest version of each), or all versions of ``name``."""
        from prefect_ml import tracking

        client = tracking.get_client()
        if name:
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise NotFoundError(f"Model {name!r} not found. List models with `prefect-ml model list`.")
            return [_version_dict(v) for v in sorted(versions, key=lambda v: int(v.version), reverse=True)]
        out = []
        for model in client.search_registered_models():
            latest = max((int(v.version) for v in model.latest_versions), default=None)
            out.append({"name": model.name, "latest_version": str(latest) if latest else None,
                        "description": model.description, "aliases": dict(model.aliases or {}),
                        "tags": dict(model.tags or {})})
        return out

    def get(self, name: str, version: str | None = None) -> dict[str, Any]:
        """One model version (default: the newest).

        Raises:
            NotFoundError: The model or version does not exist.
        """
        versions = self.list(name)
        if version in (None, "latest"):
            return versions[0]
        for v in versions:
            if v["version"] == str(version):
                return v
        raise NotFoundError(f"Model {name!r} has no version {version!r}; versions: "
                            f"{', '.join(v['version'] for v in versions)}.")


def _version_dict(version) -> dict[str, Any]:
    return {"name": version.name, "version": str(version.version), "source": version.source,
            "run_id": version.run_id, "status": version.status, "description": version.description,
            "tags": dict(version.tags or {}), "aliases": list(getattr(version, "aliases", []) or []),
            "created_at": _iso_from_ms(version.creation_timestamp)}


def _iso_from_ms(milliseconds: int | None) -> str | None:
    from datetime import datetime, timezone

    return None if milliseconds is None else datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc).isoformat()
