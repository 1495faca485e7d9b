"""The breast-cancer training pipeline in Python: the same components and steps as pipeline.yml.

Run it::

    python examples/pipelines/pipeline.py            # submits the pipeline and prints each step

The YAML file and this function give the same step graph (tests/test_pipelines.py checks it).
"""

from __future__ import annotations

from pathlib import Path

from prefect_ml import Input, MLClient, load_component, pipeline

HERE = Path(__file__).resolve().parent
prepare_data = load_component(HERE / "components" / "prepare.yml")
train_model = load_component(HERE / "components" / "train.yml")
evaluate_model = load_component(HERE / "components" / "evaluate.yml")
register_model = load_component(HERE / "components" / "register.yml")


@pipeline(compute="local", description="prepare data -> train -> evaluate -> register the model only when it "
                                       "beats the accuracy threshold.",
          display_name="breast-cancer-training-pipeline", experiment_name="breast-cancer-pipeline")
def breast_cancer_pipeline(raw_data, max_iter=500, accuracy_threshold=0.95):
    prepared = prepare_data(raw_data=raw_data)
    trained = train_model(train_data=prepared.outputs.train_data, max_iter=max_iter)
    evaluated = evaluate_model(model=trained.outputs.model, test_data=prepared.outputs.test_data)
    registered = register_model(model=trained.outputs.model, metrics=evaluated.outputs.metrics,
                                threshold=accuracy_threshold)
    return {"registered_model": registered.outputs.registered_model}


def build(**overrides):
    """The pipeline job on the bundled data set (``overrides``: pipeline inputs)."""
    job = breast_cancer_pipeline(
        raw_data=Input(type="uri_file", path=str(HERE.parent / "data" / "breast-cancer" / "breast_cancer.csv")),
        **overrides)
    job.outputs["registered_model"].name = "breast-cancer-pipeline-classifier"
    return job


if __name__ == "__main__":
    submitted = MLClient().jobs.create_or_update(build())
    print(submitted.name, submitted.status)
    for step in submitted.details["steps"]:
        print(f"  {step['name']:<16} {step['status']:<10} reused={step['reused']} {step['duration_seconds']} s")
