"""The ``automl`` job kind (see :mod:`prefect_ml.job_kinds`)."""

from __future__ import annotations

import json
from typing import Any

from prefect_ml.automl.spec import parse  # noqa: F401  (the kind's parser)

TYPE = "automl"


def preflight(spec):
    """Check what an AutoML job needs outside its file: compute, data locations, forecasting settings.

    Raises:
        ValidationError: The compute is not supported or the job is incomplete.
        MissingDependencyError: The ``automl`` extra (FLAML, LightGBM, XGBoost, statsmodels) is not installed.
        NotFoundError: A data path, data asset or datastore does not exist.
    """
    from pathlib import Path

    import importlib.util

    from prefect_ml.client import check_local_compute
    from prefect_ml.exceptions import MissingDependencyError, NotFoundError, ValidationError

    missing = [m for m in ("flaml", "lightgbm", "xgboost", "statsmodels") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(f"AutoML jobs need {', '.join(missing)}: pip install 'prefect-ml[automl]'")
    check_local_compute(spec)
    if spec.problems():
        raise ValidationError(spec.problems(), file=spec.source_file)
    for name, item in spec.data_inputs().items():
        uri = spec.resolve_path(item)
        if "://" not in uri and not uri.startswith(("runs:/", "models:/")) and not Path(uri).exists():
            raise NotFoundError(f"{name}.path: {item.path!r} resolves to {uri}, which does not exist. Fix the path "
                                "(relative paths are relative to the job file's folder).")
    return spec


def run(spec, *, stream: bool = False) -> Any:
    """Run the ``automl-job`` flow for ``spec`` on its compute's task runner; return its final Prefect state."""
    from prefect_ml.automl.flow import automl_job
    from prefect_ml.compute.targets import get_compute, task_runner_for

    runner = task_runner_for(get_compute(spec.compute), max_workers=spec.limits.max_concurrent_trials)
    return automl_job.with_options(task_runner=runner)(
        job=spec.model_dump(mode="json", by_alias=True), job_name=spec.name, stream=stream, return_state=True)


def describe(job, flow_run, run) -> None:
    """Add ``best_model``, ``leaderboard`` and ``guardrails`` to ``job.details`` (shown by ``job show``)."""
    if run is None:
        return
    from prefect_ml import tracking
    from prefect_ml.automl.flow import GUARDRAILS_ARTIFACT, LEADERBOARD_ARTIFACT, TAG_BEST_MODEL

    raw = run.data.tags.get(TAG_BEST_MODEL)
    if raw:
        try:
            job.details["best_model"] = json.loads(raw)
        except ValueError:
            job.details["best_model"] = raw
    client = tracking.get_client()
    for key, artifact in (("leaderboard", LEADERBOARD_ARTIFACT), ("guardrails", GUARDRAILS_ARTIFACT)):
        try:
            import tempfile
            from pathlib import Path

            with tempfile.TemporaryDirectory() as tmp:
                path = client.download_artifacts(run.info.run_id, artifact, tmp)
                job.details[key] = json.loads(Path(path).read_text())
        except Exception:  # noqa: BLE001 - a job that failed early has none
            continue
