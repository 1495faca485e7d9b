"""Train a small neural network (MLP, SGD-family optimiser) on scikit-learn's digits, one epoch at a time.

Logs the validation accuracy after every epoch with ``mlflow.log_metric("accuracy", value, step=epoch)``
so that a sweep's early-termination policy can stop poor configurations early. Runs as a prefect-ml
trial (``MLFLOW_RUN_ID`` is set) or on its own (a local MLflow run is started).
"""

import argparse
import os

import mlflow
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
    model = MLPClassifier(hidden_layer_sizes=(args.hidden,), solver="sgd", momentum=0.9,
                          learning_rate_init=args.learning_rate, alpha=args.alpha, batch_size=args.batch_size,
                          random_state=args.seed)
    classes = np.unique(y)
    with mlflow.start_run(run_id=os.environ.get("MLFLOW_RUN_ID")):
        for epoch in range(args.epochs):
            model.partial_fit(X_train, y_train, classes=classes)
            accuracy = float(model.score(X_val, y_val))
            mlflow.log_metric("accuracy", accuracy, step=epoch)
            mlflow.log_metric("loss", float(model.loss_), step=epoch)
        print(f"final accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
