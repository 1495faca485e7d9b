"""Score a saved MLflow model on a CSV with a ``target`` column; log accuracy; write predictions."""

import argparse

import mlflow
import mlflow.pyfunc
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="Folder of an MLflow model (holds MLmodel).")
    parser.add_argument("--data", required=True, help="CSV with the model's features and a 'target' column.")
    parser.add_argument("--predictions", required=True, help="CSV file to write predictions to.")
    args = parser.parse_args()

    frame = pd.read_csv(args.data)
    features, target = frame.drop(columns=["target"]), frame["target"]
    model = mlflow.pyfunc.load_model(args.model)
    predicted = model.predict(features)
    accuracy = float((predicted == target.to_numpy()).mean())
    with mlflow.start_run():
        mlflow.log_metric("accuracy", accuracy)
        mlflow.log_param("rows", len(frame))
    pd.DataFrame({"target": target, "predicted": predicted}).to_csv(args.predictions, index=False)
    print(f"scored {len(frame)} rows: accuracy={accuracy:.4f} -> {args.predictions}")


if __name__ == "__main__":
    main()
