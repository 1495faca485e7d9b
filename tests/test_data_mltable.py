"""load_mltable with Microsoft's mltable package, and the install recipe when it is missing."""

from __future__ import annotations

import sys

import pytest

from prefect_ml.data import load_mltable
from prefect_ml.exceptions import MissingDependencyError, NotFoundError


def _mltable_or_skip():
    try:
        import mltable  # noqa: F401
    except ImportError:
        pytest.skip("mltable is not installed (see requirements/mltable-deps.txt)")


def test_load_mltable_reads_the_shared_local_mltable(azure_examples):
    _mltable_or_skip()
    folder = azure_examples / "assets" / "data" / "local-mltable"
    frame = load_mltable(folder)
    assert frame.shape == (891, 12)
    assert {"PassengerId", "Survived", "Name"} <= set(frame.columns)
    assert frame["Survived"].isin([0, 1]).all()
    by_file = load_mltable(str(folder / "MLTable"))
    assert by_file.equals(frame)


def test_missing_mltable_folder_is_not_found(tmp_path):
    _mltable_or_skip()
    with pytest.raises(NotFoundError, match="No MLTable file at"):
        load_mltable(tmp_path)


def test_missing_mltable_package_gives_the_install_recipe(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mltable", None)  # makes `import mltable` raise ImportError
    with pytest.raises(MissingDependencyError) as error:
        load_mltable(tmp_path)
    message = str(error.value)
    assert "'mltable'" in message
    assert "pip install -r requirements/mltable-deps.txt && pip install --no-deps -r requirements/mltable.txt" \
        in message
    assert "cloudpickle" in message
    assert isinstance(error.value, ImportError)


def test_importing_prefect_ml_data_does_not_import_mltable():
    import subprocess

    code = "import sys, prefect_ml.data; print('mltable' in sys.modules, 'prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
