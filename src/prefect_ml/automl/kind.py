"""The ``automl`` job kind (see :mod:`prefect_ml.job_kinds`)."""

from __future__ import annotations

import json
from typing import Any

from prefect_ml.automl.spec import parse  # noqa: F401  (the kind's parser)

TYPE = "automl"
#: The AutoML flow runs in the submitting process on these compute types; its trials go to the compute's task
#: runner (threads, or the Dask cluster of a dask target). See :mod:`prefect_ml.job_kinds`.
IN_PROCESS_COMPUTE = frozenset({"local", "dask"})


def preflight(spec):
    """Check what an AutoML job needs outside its file: compute, data locations, forecasting settings.

    Raises:
        ValidationError: The compute is not supported or the job is incomplete.
        MissingDependencyError: The ``automl`` extra (FLAML, LightGBM, XGBoost, statsmodels) is not installed.
        ValidationError: A named column (``target_column_name``, ``weight_column_name``, forecasting's
            ``time_column_name``/``time_series_id_column_names``) is not in the data, or ``positive_label`` is not
            one of the labels (see :func:`check_data`).
        NotFoundError: A data path, data asset or datastore does not exist.
    """
    from pathlib import Path

    import importlib.util

    from prefect_ml.exceptions import MissingDependencyError, NotFoundError, ValidationError

    missing = [m for m in ("flaml", "lightgbm", "xgboost", "statsmodels") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(f"AutoML jobs need {', '.join(missing)}: pip install 'prefect-ml[automl]'")
    from prefect_ml.job_kinds import check_in_process_compute

    check_in_process_compute("AutoML", IN_PROCESS_COMPUTE, spec)
    if spec.problems():
        raise ValidationError(spec.problems(), file=spec.source_file)
    for name, item in spec.data_inputs().items():
        uri = spec.resolve_path(item)
        if "://" not in uri and not uri.startswith(("runs:/", "models:/")) and not Path(uri).exists():
            raise NotFoundError(f"{name}.path: {item.path!r} resolves to {uri}, which does not exist. Fix the path "
                                "(relative paths are relative to the job file's folder).")
    check_data(spec)
    return spec


def check_data(spec) -> None:
    """Check the job's columns and ``positive_label`` against its data before anything is created.

    Reads only the header of each local table, and the target column of the training and validation data when
    ``positive_label`` is set (:func:`prefect_ml.automl.prepare.peek_table`); data that cannot be looked at
    cheaply (remote URIs, MLTables with transformations) is checked by the flow when it reads it.

    Raises:
        ValidationError: Every missing column and a ``positive_label`` that is not a label, naming the job file,
            the field, the value and the columns or labels there are.
    """
    import pandas as pd

    from prefect_ml.automl.engine import encode_labels
    from prefect_ml.automl.prepare import peek_table, resolve_positive_label
    from prefect_ml.exceptions import Problem, ValidationError
    from prefect_ml.specs._base import suggest

    target = spec.target_column_name
    fields = {"target_column_name": target}
    training_fields = dict(fields, weight_column_name=spec.weight_column_name)
    if spec.task == "forecasting" and spec.forecasting is not None:
        training_fields["forecasting.time_column_name"] = spec.forecasting.time_column_name
        training_fields.update({f"forecasting.time_series_id_column_names[{i}]": c
                                for i, c in enumerate(spec.forecasting.series_columns())})
    want_labels = spec.task == "classification" and spec.positive_label is not None
    problems, labels, all_labels_read = [], [], True
    for name, item in spec.data_inputs().items():
        label_input = want_labels and name in ("training_data", "validation_data")
        peek = peek_table(spec.resolve_path(item), target if label_input else None)
        if peek is None:
            all_labels_read = all_labels_read and not label_input
            continue
        columns, values = peek
        shown = ", ".join(map(str, columns[:50])) + (", ..." if len(columns) > 50 else "")
        for field, column in (training_fields if name == "training_data" else fields).items():
            if column and column not in columns:
                problems.append(Problem(field, f"column {column!r} is not in {name} ({item.path})"
                                        f"{suggest(column, map(str, columns))}; set {field} to one of its "
                                        f"columns: {shown}", column, file=spec.source_file))
        if values is not None:
            labels.append(values)
    if not problems and want_labels and all_labels_read and labels:
        values = pd.concat(labels, ignore_index=True)
        _, classes = encode_labels(values[values.notna()])
        try:
            resolve_positive_label(spec.positive_label, classes)
        except ValidationError as exc:
            problems += [Problem(p.field, p.message + "; set positive_label to one of them", p.value,
                                 file=spec.source_file) for p in exc.problems]
    if problems:
        raise ValidationError(problems, file=spec.source_file)


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
