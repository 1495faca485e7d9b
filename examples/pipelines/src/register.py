"""Copy the model into the registered_model output only when its accuracy reaches the threshold.

The output is an ``mlflow_model``: prefect-ml registers it as a new model version when the step ends,
and registers nothing when it is left empty.
"""

import argparse
import json
import os
import shutil
from pathlib import Path

from mlflow.tracking import MlflowClient

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--metrics", required=True)
p.add_argument("--threshold", type=float, required=True)
p.add_argument("--registered_model", required=True)
args = p.parse_args()

accuracy = json.loads((Path(args.metrics) / "metrics.json").read_text())["accuracy"]
decision = accuracy >= args.threshold
if os.environ.get("MLFLOW_RUN_ID"):
    client = MlflowClient()
    client.log_metric(os.environ["MLFLOW_RUN_ID"], "accuracy", accuracy)
    client.set_tag(os.environ["MLFLOW_RUN_ID"], "registered", str(decision).lower())
if decision:
    shutil.copytree(args.model, args.registered_model, dirs_exist_ok=True)
    print(f"accuracy {accuracy:.4f} >= {args.threshold}: registering the model")
else:
    print(f"accuracy {accuracy:.4f} < {args.threshold}: not registering the model")
