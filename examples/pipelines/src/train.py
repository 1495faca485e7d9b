"""Fit a classifier on train_data/data.csv and save it as an MLflow model folder."""

import argparse
import os

import mlflow.sklearn
import pandas as pd
from mlflow.tracking import MlflowClient
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

p = argparse.ArgumentParser()
p.add_argument("--train_data", required=True)
p.add_argument("--model_type", default="logistic_regression")
p.add_argument("--max_iter", type=int, default=500)
p.add_argument("--c", type=float, default=1.0)
p.add_argument("--model", required=True)
args = p.parse_args()

frame = pd.read_csv(os.path.join(args.train_data, "data.csv"))
X, y = frame.drop(columns=["target"]), frame["target"]
if args.model_type == "gradient_boosting":
    model = HistGradientBoostingClassifier(max_iter=args.max_iter, random_state=0)
else:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.c, max_iter=args.max_iter))
model.fit(X, y)
run_id = os.environ.get("MLFLOW_RUN_ID")
if run_id:
    client = MlflowClient()
    client.log_param(run_id, "model_type", args.model_type)
    client.log_param(run_id, "c", args.c)
    client.log_metric(run_id, "train_accuracy", float(model.score(X, y)))
# an explicit requirement list keeps MLflow from inferring one (seconds per save)
mlflow.sklearn.save_model(model, args.model, pip_requirements=["scikit-learn", "pandas"],
                          serialization_format="pickle")
print(f"trained {args.model_type} on {len(frame)} rows; train accuracy {model.score(X, y):.4f}")
