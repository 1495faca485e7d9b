"""The breast-cancer example job (examples/jobs/breast-cancer/job.yml), built with the Python SDK.

Run from anywhere::

    python examples/sdk/train_breast_cancer.py
"""

from pathlib import Path

from prefect_ml import Input, MLClient, Output, command

EXAMPLES = Path(__file__).resolve().parent.parent

job = command(
    display_name="breast-cancer-gbt-sdk",
    experiment_name="breast-cancer",
    description="Gradient-boosted trees on the breast-cancer data set, submitted from Python.",
    code=str(EXAMPLES / "jobs" / "breast-cancer" / "src"),
    command=(
        "python train.py --data ${{inputs.training_data}} --learning-rate ${{inputs.learning_rate}}"
        " --max-iter ${{inputs.max_iter}} --model-output ${{outputs.model}}"
    ),
    inputs={
        "training_data": Input(type="uri_file", path=str(EXAMPLES / "data" / "breast-cancer" / "breast_cancer.csv")),
        "learning_rate": 0.1,
        "max_iter": 100,
    },
    outputs={"model": Output(type="mlflow_model", name="breast-cancer-classifier")},
    environment="azureml:AzureML-sklearn-1.5@latest",
)

if __name__ == "__main__":
    client = MLClient()
    returned = client.jobs.create_or_update(job)
    print(returned.name, returned.status, returned.metrics)
