"""The ``watch-data-prefix`` flow: run it on a schedule to turn new files under a prefix into data asset versions."""

from __future__ import annotations

from typing import Literal

from prefect import flow

from prefect_ml.tasks.watch import register_new_files


@flow(name="watch-data-prefix", persist_result=False)
def watch_data_prefix(prefix: str, asset_name: str, pattern: str = "*",
                      mode: Literal["file", "folder"] = "file") -> list[str]:
    """Register files that appeared under ``prefix`` since the last run as new versions of ``asset_name``.

    Each new version emits ``prefect-ml.data-asset.version-created``, which triggers retraining
    deployments listening for ``asset_name``. See :func:`prefect_ml.tasks.watch.register_new_files`.

    Returns:
        The created versions (``azureml:NAME:VERSION``).
    """
    return register_new_files(prefix, asset_name, pattern, mode)
