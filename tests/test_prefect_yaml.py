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
