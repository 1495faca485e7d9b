"""The ``retrain`` flow: train a challenger on the newest data and promote it only if it beats the champion.

Deploy it with a trigger on ``prefect-ml.data-asset.version-created`` (see ``prefect.yaml`` and
docs/retraining.md) so that every new version of the training data asset retrains the model.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow
from prefect.states import Cancelled, Completed, Failed

from prefect_ml.tasks.retrain import (
    DEFAULT_ALIAS,
    Evaluation,
    evaluate_versions,
    record_decision,
    resolve_training_data_task,
    retrain_slot,
    run_challenger,
)


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    version = params.get("data_version") or "latest"
    return f"retrain-{params.get('model_name')}-{params.get('data_asset') or 'data'}-{version}"


@flow(name="retrain", flow_run_name=_flow_run_name, persist_result=False)
def retrain(job_file: str, model_name: str, evaluation: dict[str, Any], data_version: str | None = None,
            data_asset: str | None = None, data_input: str | None = None, job_overrides: list[str] | None = None,
            alias: str = DEFAULT_ALIAS, on_busy: Literal["queue", "drop"] = "queue"):
    """Retrain ``model_name`` on a data asset version; move ``alias`` only when the challenger wins.

    Args:
        job_file: The training job's YAML file: a command, sweep, AutoML or pipeline job. Its data input
            (command/sweep/pipeline: a top-level ``inputs.X``; AutoML: ``training_data``) should be bound to
            ``azureml:NAME@latest``. Its model output is named ``model_name`` automatically: the only model
            output of a command job or pipeline, AutoML's ``outputs.best_model`` (docs/retraining.md).
        model_name: The registered model (MLflow model registry).
        evaluation: :class:`~prefect_ml.tasks.retrain.Evaluation` fields: ``data`` (held-out data),
            ``target_column``, ``metric`` (default ``accuracy``), ``margin`` (default 0).
        data_version: The data asset version to train on; ``None`` / ``"latest"`` for the newest. A
            ``prefect-ml.data-asset.version-created`` trigger passes ``{{ event.payload.version }}``.
        data_asset: The data asset; default: the one the job's data input names.
        data_input: The job input bound to the data; default: the only input naming a data asset.
        job_overrides: ``KEY=VALUE`` overrides of the job (as ``prefect-ml job create --set``).
        alias: The alias marking the production version.
        on_busy: Another retraining of the same model is running: ``"queue"`` waits for it,
            ``"drop"`` ends this run as Cancelled.

    Returns:
        Completed (promoted or kept) with the summary as its result; Failed when the challenger failed
        (the champion is never touched then); Cancelled when dropped.
    """
    from prefect.runtime import flow_run

    spec = Evaluation.model_validate(evaluation)
    acquired = False
    try:
        with retrain_slot(model_name, on_busy=on_busy):
            acquired = True
            training = resolve_training_data_task(job_file, data_input, data_asset, data_version)
            challenger = run_challenger(job_file, model_name, training, overrides=list(job_overrides or []))
            decision = None
            if challenger.status == "Completed" and challenger.model_version is not None:
                decision = evaluate_versions(model_name, challenger.model_version, spec, alias)
            summary = record_decision(model_name, training, challenger, decision, spec, alias, str(flow_run.id))
    except TimeoutError:
        if acquired:
            raise
        return Cancelled(message=f"Another retraining of {model_name} is running; this trigger was dropped "
                                 "(on_busy='drop').")
    if decision is None:
        return Failed(message=f"Challenger job {challenger.job_name} {challenger.status}: {challenger.error}; "
                              f"alias {alias!r} unchanged.", data=summary)
    return Completed(message=f"{model_name}: {summary['decision']} v{challenger.model_version} "
                             f"({summary['reason']})", data=summary)
