"""Split the breast-cancer CSV into a held-out set and two training versions (small, full).

Writes, next to this file (or into the folder given as the first argument):

- ``holdout.csv``: 169 rows never used for training (the evaluation data of the retrain flow);
- ``train-small.csv``: the first 60 of the remaining 400 rows (a weak first model);
- ``train-full.csv``: all 400 remaining rows (a better model).

Usage::

    python examples/retraining/prepare_data.py [OUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "data" / "breast-cancer" / "breast_cancer.csv"


def prepare(out_dir: Path) -> dict[str, Path]:
    """Write the three CSV files into ``out_dir``; return their paths by name."""
    frame = pd.read_csv(SOURCE).sample(frac=1.0, random_state=0).reset_index(drop=True)
    holdout, train = frame.iloc[400:], frame.iloc[:400]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"holdout": out_dir / "holdout.csv", "train-small": out_dir / "train-small.csv",
             "train-full": out_dir / "train-full.csv"}
    holdout.to_csv(paths["holdout"], index=False)
    train.iloc[:60].to_csv(paths["train-small"], index=False)
    train.to_csv(paths["train-full"], index=False)
    return paths


if __name__ == "__main__":
    for name, path in prepare(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "data").items():
        print(f"{name}: {path}")
