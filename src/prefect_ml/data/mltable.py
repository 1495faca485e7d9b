"""Reading MLTable folders (Azure ML's ``type: mltable`` data) with Microsoft's ``mltable`` package.

``mltable`` is optional and never imported at module import. It cannot be installed with
a plain ``pip install mltable`` next to Prefect: its dependency ``azureml-dataprep`` pins
``cloudpickle<3`` while Prefect needs ``cloudpickle>=3.1.1`` (mltable works with
cloudpickle 3). :data:`INSTALL_RECIPE` installs it while skipping that pin.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from prefect_ml.exceptions import MissingDependencyError, NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    import pandas

#: Shell commands that install mltable next to Prefect, run from a prefect-ml checkout.
INSTALL_RECIPE = (
    "pip install -r requirements/mltable-deps.txt && pip install --no-deps -r requirements/mltable.txt"
)


def _import_mltable():
    try:
        import mltable
    except ImportError as error:
        raise MissingDependencyError(
            f"Reading MLTable data needs Microsoft's 'mltable' package, which is not installed ({error}). "
            "`pip install mltable` cannot be resolved next to Prefect (azureml-dataprep pins cloudpickle<3, "
            "Prefect needs cloudpickle>=3.1.1; mltable works with cloudpickle 3), so install it in two steps "
            f"from a prefect-ml checkout: `{INSTALL_RECIPE}` "
            "(pins: mltable==1.7.0, azureml-dataprep==5.5.0; `pip check` then reports only the cloudpickle pin)."
        ) from None
    return mltable


def load_mltable(path: str | os.PathLike) -> "pandas.DataFrame":
    """Read an MLTable into a pandas DataFrame.

    Args:
        path: An MLTable folder (holding an ``MLTable`` file), the path of the ``MLTable``
            file itself, a data asset reference (``azureml:NAME:VERSION``, resolved with
            :func:`~prefect_ml.data.resolve_uri`), or a URI that ``mltable.load`` accepts
            (``azureml://datastores/...``, ``https://``...).

    Returns:
        The table, one row per record, columns as the MLTable's transformations define them.

    Raises:
        MissingDependencyError: ``mltable`` is not installed (the message gives the install recipe).
        NotFoundError: A local PATH, or its ``MLTable`` file, does not exist.
    """
    mltable = _import_mltable()
    text = os.fspath(path)
    if text.startswith("azureml:") and not text.startswith("azureml://datastores/"):
        from prefect_ml.data.uris import resolve_uri

        text = resolve_uri(text)
    if "://" not in text:
        local = Path(text).expanduser().absolute()
        if local.is_file() and local.name == "MLTable":
            local = local.parent
        if not (local / "MLTable").is_file():
            raise NotFoundError(
                f"No MLTable file at {text!r}: expected a folder holding a file named 'MLTable' "
                "(see https://learn.microsoft.com/azure/machine-learning/how-to-mltable)."
            )
        text = str(local)
    return mltable.load(text).to_pandas_dataframe()


__all__ = ["INSTALL_RECIPE", "load_mltable"]
