"""Score the model on test_data/data.csv; write metrics.json and log the metrics to the step's MLflow run."""

import argparse
import json
import os
from pathlib import Path

import mlflow.sklearn
import pandas as pd
from mlflow.tracking import MlflowClient
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--test_data", required=True)
p.add_argument("--metrics", required=True)
args = p.parse_args()

model = mlflow.sklearn.load_model(args.model)
frame = pd.read_csv(os.path.join(args.test_data, "data.csv"))
X, y = frame.drop(columns=["target"]), frame["target"]
predicted = model.predict(X)
metrics = {"accuracy": float(accuracy_score(y, predicted)), "f1": float(f1_score(y, predicted)),
           "roc_auc": float(roc_auc_score(y, model.predict_proba(X)[:, 1]))}
Path(args.metrics).mkdir(parents=True, exist_ok=True)
(Path(args.metrics) / "metrics.json").write_text(json.dumps(metrics, indent=2))
if os.environ.get("MLFLOW_RUN_ID"):
    client = MlflowClient()
    for name, value in metrics.items():
        client.log_metric(os.environ["MLFLOW_RUN_ID"], name, value)
print(json.dumps(metrics))
