"""Forecast monthly CO2 at Mauna Loa (statsmodels' bundled data) 12 months ahead with an AutoML job.

Run: ``python examples/automl/forecast_co2.py [timeout_minutes]``; prints the job's best model, its validation and
test scores and the next 12 months' forecast.
"""

import json
import sys
import tempfile
from pathlib import Path

import statsmodels.api as sm

from prefect_ml import Input, MLClient, automl, tracking

frame = sm.datasets.co2.load_pandas().data.resample("MS").mean().ffill().reset_index()
frame.columns = ["month", "co2"]
folder = Path(tempfile.mkdtemp(prefix="co2-"))
frame.iloc[:-12].to_csv(folder / "train.csv", index=False)
frame.iloc[-12:].to_csv(folder / "test.csv", index=False)

job = automl.forecasting(training_data=Input(type="uri_file", path=str(folder / "train.csv")),
                         test_data=Input(type="uri_file", path=str(folder / "test.csv")),
                         target_column_name="co2", primary_metric="normalized_root_mean_squared_error",
                         experiment_name="automl-co2")
job.set_forecast_settings(time_column_name="month", forecast_horizon=12, target_rolling_window_size=12)
job.set_limits(timeout_minutes=float(sys.argv[1]) if len(sys.argv) > 1 else 1, max_concurrent_trials=2)

returned = MLClient().jobs.create_or_update(job)
print(returned.status, json.dumps(returned.details["best_model"], indent=2))
path = tracking.get_client().download_artifacts(returned.mlflow_run_id, "automl/forecast.json", str(folder))
print(json.dumps(json.loads(Path(path).read_text()), indent=2))
