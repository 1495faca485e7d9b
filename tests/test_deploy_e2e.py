"""End to end: `prefect deploy --all` from prefect.yaml, a real process worker, schedules and event triggers."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid

import pytest

from helpers import REPO, cli, wait_for, write

pytestmark = pytest.mark.slow

MODEL = "breast-cancer-classifier"


def _deployments(client, names):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    return client.read_deployments(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=names)))


def _runs(client, deployment_id):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


@pytest.fixture
def deployed(tmp_path):
    """`prefect deploy --all` from the repository root with a worker on pool `local`; removed afterwards.

    The worker starts while `prefect deploy` runs (both take seconds); the pool exists beforehand.
    """
    import yaml
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    from prefect_ml._prefect import prefect_client
    from workers import Worker

    with prefect_client() as client:
        try:
            client.create_work_pool(WorkPoolCreate(name="local", type="process"))
        except ObjectAlreadyExists:
            pass
    worker = Worker("local", tmp_path / "worker-local.log")
    try:
        names = [d["name"] for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]]
        result = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=REPO,
                                capture_output=True, text=True, timeout=300, env=dict(os.environ))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        with prefect_client() as client:
            deployments = {d.name: d for d in _deployments(client, names)}
        assert sorted(deployments) == sorted(names)
        worker.wait_ready()
        yield deployments
        with prefect_client() as client:
            for deployment in deployments.values():
                client.delete_resource_owned_automations(f"prefect.deployment.{deployment.id}")
                client.delete_deployment(deployment.id)
    finally:
        worker.stop()


#: The cheapest job deployment, run for real through the worker: a sweep limited to 2 short trials.
SWEEP_OVERRIDES = ["limits.max_total_trials=2", "limits.max_concurrent_trials=2", "inputs.epochs=2",
                   "inputs.hidden=16"]


def test_prefect_yaml_deploys_schedules_and_data_triggered_retraining(deployed, tmp_path):
    """One deploy and one worker for every end-to-end check of prefect.yaml; the waits overlap.

    The watcher's interval schedule fires ~60 s after the deploy: the sweep run and both retrainings run
    meanwhile, and the scheduled watcher run is checked last.
    """
    import importlib.util

    from prefect_ml import tracking
    from prefect_ml._prefect import prefect_client
    from prefect_ml.client import MLClient
    from prefect_ml.data import create_data_asset
    from prefect_ml.tasks.retrain import current_champion

    with prefect_client() as client:
        # The job deployments exist with their (inactive) example schedules.
        for name, kind in (("sweep-digits", "cron"), ("automl-diabetes", "rrule"), ("pipeline-breast-cancer",
                                                                                    "interval")):
            (schedule,) = deployed[name].schedules
            assert schedule.active is False and getattr(schedule.schedule, kind), (name, schedule)
            assert deployed[name].work_pool_name == "local"
        # The cheapest one really runs: its job file is read and run by the worker's flow run.
        sweep = client.create_flow_run_from_deployment(deployed["sweep-digits"].id,
                                                       parameters={"overrides": SWEEP_OVERRIDES})
        retrain = deployed["retrain-breast-cancer"]
        automations = client.read_resource_related_automations(f"prefect.deployment.{retrain.id}")
        assert [a.enabled for a in automations] == [True]

    spec = importlib.util.spec_from_file_location("prep", REPO / "examples" / "retraining" / "prepare_data.py")
    prep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prep)
    paths = prep.prepare(tmp_path)
    create_data_asset("breast-cancer-holdout", path=str(paths["holdout"]), type="uri_file")

    # Two new versions in quick succession, from the CLI and from the SDK: one retrain run each, with that
    # version, never two at once.
    started = dt.datetime.now(dt.timezone.utc)
    created = cli("data", "create", "--name", "breast-cancer-train", "--path", str(paths["train-small"]))
    assert created.returncode == 0, created.stderr
    assert create_data_asset("breast-cancer-train", path=str(paths["train-full"]), type="uri_file").version == "2"
    retrain_id = deployed["retrain-breast-cancer"].id

    def finished_retrains():
        with prefect_client() as client:
            runs = _runs(client, retrain_id)
        return runs if len(runs) >= 2 and all(r.state and r.state.is_final() for r in runs) else None

    runs = wait_for(finished_retrains, timeout=400, interval=1, what="two finished retrain runs")
    assert sorted(r.parameters["data_version"] for r in runs) == ["1", "2"]
    assert all(r.state.is_completed() for r in runs), [r.state for r in runs]
    assert all(r.created >= started for r in runs)
    # The concurrency slot serialised them: the challenger jobs (subflows) never overlapped.
    client = tracking.get_client()
    versions = client.search_model_versions(f"name = '{MODEL}'")
    ours = {v.tags.get("prefect_ml.retrain.flow_run_id"): v for v in versions}
    by_run = [ours[str(r.id)] for r in runs]
    jobs = [client.get_run(v.run_id).info for v in by_run]
    jobs.sort(key=lambda info: info.start_time)
    assert jobs[0].end_time <= jobs[1].start_time
    # Lineage tags name the data versions; the alias is on one of the two challengers.
    assert sorted(v.tags["prefect_ml.retrain.data_asset"] for v in by_run) == ["breast-cancer-train:1",
                                                                            "breast-cancer-train:2"]
    assert current_champion(MODEL) in {str(v.version) for v in by_run}

    with prefect_client() as client:
        # The sweep deployment's run completed through the worker, with the overrides applied.
        done = wait_for(lambda: (lambda r: r if r.state.is_final() else None)(client.read_flow_run(sweep.id)),
                        timeout=300, interval=1, what="the sweep deployment's run")
        assert done.state.is_completed(), done.state
        job_name = done.state.message.split()[1]  # "Job NAME completed"
        assert job_name.startswith("sweep-digits-")  # named after the deployment
        job = MLClient(autostart=False).jobs.get(job_name)
        assert job.status == "Completed" and job.details["goal"] == "maximize"
        assert len(job.details["trials"]) == 2 and job.details["best_trial"] is not None
        # The interval schedule of the watcher creates runs that the worker completes.
        watcher = deployed["watch-breast-cancer-incoming"]
        wait_for(lambda: any(r.state_type.value == "COMPLETED" for r in _runs(client, watcher.id)), timeout=120,
                 what="a completed scheduled run of the watcher")


def test_compound_trigger_waits_for_data_and_drift_events(tmp_path):
    """A data_asset trigger with `also:` becomes a compound trigger: a run only after both events."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    from prefect_ml._prefect import prefect_client
    from prefect_ml.data import create_data_asset
    from prefect_ml.deployments.schedules import create_schedule, delete_schedule
    from prefect_ml.specs.schedule import load_schedule

    suffix = uuid.uuid4().hex[:6]
    asset, model = f"drift-data-{suffix}", f"drift-model-{suffix}"
    data = write(tmp_path / "d.csv", "a,b\n1,2\n")
    create_data_asset(asset, path=str(data), type="uri_file")
    spec = load_schedule(write(tmp_path / "schedule.yml", f"""
name: on-drift-{suffix}
trigger:
  type: data_asset
  name: {asset}
  also: [{{event: prefect-ml.model.drift-detected, resource_id: prefect-ml.model.{model}}}]
  within_seconds: 600
create_job: {REPO / 'examples' / 'jobs' / 'breast-cancer' / 'job.yml'}
"""))
    with prefect_client() as client:
        client.create_work_pool(WorkPoolCreate(name=f"nowhere-{suffix}", type="process"))
    info = create_schedule(spec, work_pool=f"nowhere-{suffix}")  # no worker: runs are only created
    try:
        create_data_asset(asset, path=str(data), type="uri_file")  # version 2: the first half
        EventsWorker.drain_all(timeout=10)
        drift_at = dt.datetime.now(dt.timezone.utc)
        emit_event(event="prefect-ml.model.drift-detected",
                   resource={"prefect.resource.id": f"prefect-ml.model.{model}"},
                   payload={"drift_score": 0.4, "threshold": 0.2})
        EventsWorker.drain_all(timeout=10)
        with prefect_client() as client:
            runs = wait_for(lambda: _runs(client, info.deployment_id), timeout=60,
                            what="a run from the compound trigger")
        assert len(runs) == 1
        assert runs[0].created >= drift_at  # the data event alone started nothing
        assert runs[0].parameters["data_asset"] == asset and runs[0].parameters.get("data_version") is None
    finally:
        delete_schedule(spec.name)
