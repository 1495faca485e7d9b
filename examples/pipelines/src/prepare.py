"""Split a labelled CSV into stratified train.csv / test.csv folders."""

import argparse
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

p = argparse.ArgumentParser()
p.add_argument("--raw_data", required=True)
p.add_argument("--test_size", type=float, default=0.25)
p.add_argument("--seed", type=int, default=42)
p.add_argument("--train_data", required=True)
p.add_argument("--test_data", required=True)
args = p.parse_args()

frame = pd.read_csv(args.raw_data)
train, test = train_test_split(frame, test_size=args.test_size, random_state=args.seed, stratify=frame["target"])
for folder, part in ((args.train_data, train), (args.test_data, test)):
    Path(folder).mkdir(parents=True, exist_ok=True)
    part.to_csv(Path(folder) / "data.csv", index=False)
print(f"rows: {len(frame)} -> train {len(train)}, test {len(test)}")
