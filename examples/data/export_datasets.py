"""Export scikit-learn's bundled data sets as the files the example jobs read.

Nothing is downloaded: the data ship inside scikit-learn. Writes::

    <output-dir>/breast-cancer/breast_cancer.csv   569 rows, 30 named feature columns + ``target``
    <output-dir>/diabetes/diabetes.parquet         442 rows, 10 feature columns + ``target``
    <output-dir>/diabetes-mltable/MLTable          an MLTable that reads ``diabetes.csv``
    <output-dir>/diabetes-mltable/diabetes.csv

Run it without arguments to refresh the copies kept in ``examples/data``, or give each data
set its own folder (as the ``export-datasets`` example job does)::

    python export_datasets.py --breast-cancer-dir OUT1 --diabetes-dir OUT2 --diabetes-mltable-dir OUT3

When it runs inside a job (``MLFLOW_RUN_ID`` is set), row and column counts are logged to the
job's MLflow run.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes

HERE = Path(__file__).resolve().parent

MLTABLE_TEXT = """\
$schema: https://azuremlschemas.azureedge.net/latest/MLTable.schema.json
type: mltable

paths:
  - file: ./diabetes.csv

transformations:
  - read_delimited:
      delimiter: ','
      encoding: utf8
      header: all_files_same_headers
"""


def _snake(name: str) -> str:
    """``'mean radius'`` -> ``'mean_radius'``."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def breast_cancer_frame() -> pd.DataFrame:
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns=_snake)
    # 0 = malignant, 1 = benign (scikit-learn's encoding)
    frame["target"] = frame["target"].astype("int64")
    return frame


def diabetes_frame() -> pd.DataFrame:
    # Unscaled measurements (age in years, BMI, blood pressure, six serum values);
    # target: disease progression one year after baseline.
    bunch = load_diabetes(as_frame=True, scaled=False)
    frame = bunch.frame.rename(columns=_snake)
    frame["target"] = frame["target"].astype("float64")
    return frame


def export(breast_cancer_dir: Path, diabetes_dir: Path, mltable_dir: Path) -> dict[str, pd.DataFrame]:
    for folder in (breast_cancer_dir, diabetes_dir, mltable_dir):
        folder.mkdir(parents=True, exist_ok=True)

    bc = breast_cancer_frame()
    bc.to_csv(breast_cancer_dir / "breast_cancer.csv", index=False)

    db = diabetes_frame()
    db.to_parquet(diabetes_dir / "diabetes.parquet", engine="pyarrow", index=False)
    db.to_csv(mltable_dir / "diabetes.csv", index=False)
    (mltable_dir / "MLTable").write_text(MLTABLE_TEXT)

    return {"breast_cancer": bc, "diabetes": db}


def _log_to_mlflow(frames: dict[str, pd.DataFrame]) -> None:
    if not os.environ.get("MLFLOW_RUN_ID"):
        return  # run by hand: nothing to log to
    import mlflow

    with mlflow.start_run():
        for name, frame in frames.items():
            mlflow.log_params({f"{name}_rows": len(frame), f"{name}_columns": frame.shape[1]})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=HERE,
                        help="folder that receives the three data-set folders (default: this script's folder)")
    parser.add_argument("--breast-cancer-dir", type=Path, help="folder for breast_cancer.csv")
    parser.add_argument("--diabetes-dir", type=Path, help="folder for diabetes.parquet")
    parser.add_argument("--diabetes-mltable-dir", type=Path, help="folder for the diabetes MLTable")
    args = parser.parse_args(argv)

    bc_dir = args.breast_cancer_dir or args.output_dir / "breast-cancer"
    db_dir = args.diabetes_dir or args.output_dir / "diabetes"
    mt_dir = args.diabetes_mltable_dir or args.output_dir / "diabetes-mltable"
    frames = export(bc_dir, db_dir, mt_dir)

    for name, folder in (("breast cancer", bc_dir), ("diabetes", db_dir), ("diabetes MLTable", mt_dir)):
        files = ", ".join(sorted(p.name for p in folder.iterdir()))
        print(f"{name:17s} -> {folder}  [{files}]")
    _log_to_mlflow(frames)


if __name__ == "__main__":
    main()
