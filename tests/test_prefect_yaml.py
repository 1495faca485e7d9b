"""prefect.yaml at the root deploys the command-job flow with a valid job."""

from __future__ import annotations

import yaml

from helpers import REPO


def test_command_job_deployment_points_at_the_flow_with_a_valid_job(monkeypatch):
    from prefect.flows import load_flow_from_entrypoint

    from prefect_ml.specs import CommandJob

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (deployment,) = [d for d in config["deployments"] if d["name"] == "command-job"]
    monkeypatch.chdir(REPO)
    flow = load_flow_from_entrypoint(deployment["entrypoint"])
    assert flow.name == "command-job"
    job = dict(deployment["parameters"]["job"])
    job["base_path"] = job["base_path"].replace("{{ $PWD }}", str(REPO))
    spec = CommandJob.model_validate(job)
    assert spec.problems() == []
    assert spec.code_path().is_dir()


def test_retraining_deployments_point_at_their_flows_with_valid_parameters(monkeypatch):
    from prefect.events import DeploymentCompoundTrigger, DeploymentEventTrigger
    from prefect.events.schemas.deployment_triggers import DeploymentTriggerTypes
    from prefect.flows import load_flow_from_entrypoint
    from pydantic import TypeAdapter

    from prefect_ml.specs import load_job
    from prefect_ml.tasks.retrain import Evaluation

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in config["deployments"]}
    monkeypatch.chdir(REPO)
    for name in ("retrain-breast-cancer", "retrain-breast-cancer-on-drift"):
        deployment = deployments[name]
        assert load_flow_from_entrypoint(deployment["entrypoint"]).name == "retrain"
        parameters = deployment["parameters"]
        load_job(parameters["job_file"].replace("{{ $PWD }}", str(REPO)))
        Evaluation.model_validate(parameters["evaluation"])
        triggers = [TypeAdapter(DeploymentTriggerTypes).validate_python(t) for t in deployment["triggers"]]
        assert isinstance(triggers[0], DeploymentCompoundTrigger if "drift" in name else DeploymentEventTrigger)
    (trigger,) = deployments["retrain-breast-cancer"]["triggers"]
    assert trigger["parameters"]["data_version"] == "{{ event.payload.version }}"
    watcher = deployments["watch-breast-cancer-incoming"]
    assert load_flow_from_entrypoint(watcher["entrypoint"]).name == "watch-data-prefix"
    assert (REPO / watcher["parameters"]["prefix"].replace("{{ $PWD }}/", "")).is_dir()


def test_sweep_automl_and_pipeline_deployments_load_their_jobs_and_pass_preflight(monkeypatch):
    """Each job deployment runs its example job file through the scheduled-job flow; its job validates."""
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
    from prefect.flows import load_flow_from_entrypoint

    from prefect_ml.client import MLClient
    from prefect_ml.specs import load_job

    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in config["deployments"]}
    monkeypatch.chdir(REPO)
    client = MLClient(autostart=False)
    kinds = {}
    for name in ("sweep-digits", "automl-diabetes", "pipeline-breast-cancer"):
        deployment = deployments[name]
        assert deployment["work_pool"]["name"] == "local"
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        assert flow.name == "scheduled-job"
        assert set(deployment["parameters"]) <= set(flow.parameters.properties)
        job_file = deployment["parameters"]["job_file"]
        assert job_file.startswith("{{ $PWD }}/examples/")  # inside the checkout, found from a fresh clone
        spec = client.jobs.validate(load_job(job_file.replace("{{ $PWD }}", str(REPO))), name=f"check-{name}")
        kinds[name] = spec.type
        (schedule,) = [_schedule_config_to_deployment_schedule(s) for s in deployment["schedules"]]
        assert schedule["active"] is False  # nothing heavy runs by surprise
    assert kinds == {"sweep-digits": "sweep", "automl-diabetes": "automl", "pipeline-breast-cancer": "pipeline"}
