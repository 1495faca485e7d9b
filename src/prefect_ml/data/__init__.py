"""Data access for prefect-ml jobs: datastores, URI resolution, input/output transfer, data assets, MLTable.

Importing this package is cheap: Prefect, MLflow, fsspec, pandas and mltable are imported
only by the functions that need them.
"""

from __future__ import annotations

from prefect_ml.data.assets import (
    DATA_ASSET_TYPES,
    DataAssetVersion,
    create_data_asset,
    create_data_asset_from_file,
    get_data_asset,
    list_data_assets,
    load_data_asset_file,
)
from prefect_ml.data.datastores import (
    BUILTIN_DATASTORES,
    DEFAULT_DATASTORE,
    create_datastore,
    datastore_root,
    get_datastore,
    list_datastores,
)
from prefect_ml.data.mltable import INSTALL_RECIPE as MLTABLE_INSTALL_RECIPE
from prefect_ml.data.mltable import load_mltable
from prefect_ml.data.transfer import INPUT_MODES, materialize_input, open_filesystem, upload_output
from prefect_ml.data.uris import resolve_uri

__all__ = [
    "BUILTIN_DATASTORES",
    "DATA_ASSET_TYPES",
    "DEFAULT_DATASTORE",
    "DataAssetVersion",
    "INPUT_MODES",
    "MLTABLE_INSTALL_RECIPE",
    "create_data_asset",
    "create_data_asset_from_file",
    "create_datastore",
    "datastore_root",
    "get_data_asset",
    "get_datastore",
    "list_data_assets",
    "list_datastores",
    "load_data_asset_file",
    "load_mltable",
    "materialize_input",
    "open_filesystem",
    "resolve_uri",
    "upload_output",
]
