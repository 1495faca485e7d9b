"""Train a small PyTorch MLP on scikit-learn's 8x8 handwritten digits, on the CPU.

The data ship with scikit-learn (``load_digits``: 1,797 images, 10 classes), so nothing is
downloaded. Logs to the job's MLflow run:

- parameters: the hyperparameters;
- per epoch (``step=epoch``): ``train_loss``, ``val_loss``, ``val_accuracy``;
- at the end: ``accuracy`` (= the last ``val_accuracy``) and ``best_val_accuracy``.

With ``--model-output`` it writes a ``custom_model`` folder: ``model.pt`` (the state_dict)
and ``model.json`` (what is needed to rebuild and use the network)::

    meta = json.load(open("model.json"))
    net = build_mlp(meta["input_size"], meta["hidden_size"], meta["num_classes"], meta["dropout"])
    net.load_state_dict(torch.load("model.pt"))
    logits = net(torch.tensor(pixels / meta["pixel_scale"], dtype=torch.float32))

Run by hand::

    python train.py --epochs 10 --model-output /tmp/digits-model
"""

from __future__ import annotations

import argparse
import json
import os
import time


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train an MLP on the 8x8 digits data set.")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--learning-rate", type=positive_float, default=0.005)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--hidden-size", type=positive_int, default=128)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--val-size", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch CPU threads (one is fastest for a network this small)")
    p.add_argument("--model-output", default=None, help="folder for model.pt and model.json")
    return p.parse_args(argv)


def build_mlp(input_size: int, hidden_size: int, num_classes: int, dropout: float):
    from torch import nn

    return nn.Sequential(
        nn.Linear(input_size, hidden_size),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_size, hidden_size),
        nn.ReLU(),
        nn.Linear(hidden_size, num_classes),
    )


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()

    import mlflow
    import numpy as np
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    digits = load_digits()
    pixel_scale = 16.0  # pixel values are 0..16
    X = (digits.data / pixel_scale).astype(np.float32)
    y = digits.target.astype(np.int64)
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=args.val_size, stratify=y, random_state=args.seed
    )
    X_train, y_train = torch.from_numpy(X_train), torch.from_numpy(y_train)
    X_val, y_val = torch.from_numpy(X_val), torch.from_numpy(y_val)

    num_classes = 10
    model = build_mlp(X.shape[1], args.hidden_size, num_classes, args.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(args.seed)

    params = {
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "hidden_size": args.hidden_size,
        "dropout": args.dropout,
        "optimizer": "Adam",
        "seed": args.seed,
        "n_train": len(y_train),
        "n_val": len(y_val),
        "torch_version": torch.__version__,
    }

    history = []
    # Inside a prefect-ml job this resumes the job's run (MLFLOW_RUN_ID); by hand it starts one.
    with mlflow.start_run() as run:
        mlflow.log_params(params)
        for epoch in range(1, args.epochs + 1):
            model.train()
            order = torch.randperm(len(y_train), generator=generator)
            total = 0.0
            for start in range(0, len(order), args.batch_size):
                idx = order[start:start + args.batch_size]
                optimizer.zero_grad()
                loss = loss_fn(model(X_train[idx]), y_train[idx])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            train_loss = total / len(y_train)

            model.eval()
            with torch.no_grad():
                logits = model(X_val)
                val_loss = loss_fn(logits, y_val).item()
                val_accuracy = (logits.argmax(dim=1) == y_val).float().mean().item()
            mlflow.log_metrics(
                {"train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy}, step=epoch
            )
            history.append(val_accuracy)
            print(f"epoch {epoch:3d}/{args.epochs}  train_loss={train_loss:.4f}  "
                  f"val_loss={val_loss:.4f}  val_accuracy={val_accuracy:.4f}", flush=True)

        mlflow.log_metrics({"accuracy": history[-1], "best_val_accuracy": max(history)})

        if args.model_output:
            os.makedirs(args.model_output, exist_ok=True)
            torch.save(model.state_dict(), os.path.join(args.model_output, "model.pt"))
            meta = {
                "architecture": "mlp",
                "input_size": int(X.shape[1]),
                "image_shape": [8, 8],
                "hidden_size": args.hidden_size,
                "num_classes": num_classes,
                "dropout": args.dropout,
                "classes": list(range(num_classes)),
                "pixel_scale": pixel_scale,
                "val_accuracy": round(history[-1], 6),
                "epochs": args.epochs,
                "torch_version": torch.__version__,
                "mlflow_run_id": run.info.run_id,
            }
            with open(os.path.join(args.model_output, "model.json"), "w") as f:
                json.dump(meta, f, indent=2)
                f.write("\n")

    print(f"digits MLP: val_accuracy={history[-1]:.4f} (best {max(history):.4f}) after {args.epochs} epochs")
    if args.model_output:
        print(f"  model.pt + model.json saved to {args.model_output}")
    print(f"  run {run.info.run_id} done in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
