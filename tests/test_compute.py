"""Compute targets (work pools), resource mappings and ``job create --dry-run`` against the real Prefect API."""

from __future__ import annotations

import json
import uuid

import pytest

from helpers import REPO, cli, write


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _pool(name: str):
    from prefect.exceptions import ObjectNotFound

    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        try:
            return client.read_work_pool(name)
        except ObjectNotFound:
            return None


@pytest.fixture
def targets():
    """Create targets through the API; delete them afterwards."""
    from prefect_ml.compute import targets as t

    made: list[str] = []

    def create(**data):
        spec = t.parse_spec(data)
        made.append(spec.name)
        return t.create_compute(spec, overwrite=True)

    yield create
    for name in made:
        if _pool(name) is not None:
            t.delete_compute(name)


def test_compute_cli_create_from_file_update_then_delete(tmp_path):
    name = _unique("cpu-cluster")
    compute_file = write(tmp_path / "compute.yml", f"""
$schema: https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json
name: {name}
type: amlcompute
size: small
min_instances: 0
max_instances: 2
idle_time_before_scale_down: 120
instance_types:
  small: {{cpu: 1, memory: 2Gi}}
""")
    from prefect_ml.compute import targets
    from prefect_ml.exceptions import NotFoundError

    created = cli("compute", "create", "--file", str(compute_file))
    assert created.returncode == 0, created.stderr
    pool = _pool(name)
    assert pool.type == "process" and pool.concurrency_limit == 2  # max_instances -> concurrency limit
    entry = {t.name: t for t in targets.list_computes()}[name]
    assert entry.type == "process" and entry.settings["instance_types"]["small"]["memory"] == "2Gi"
    updated = cli("compute", "update", "--name", f"azureml:{name}", "--max-instances", "3",
                  "--instance-type", "gpu=cpu=4,memory=16Gi,gpus=1")
    assert updated.returncode == 0, updated.stderr
    shown = json.loads(updated.stdout)
    assert shown["max_instances"] == 3 and set(shown["instance_types"]) == {"small", "gpu"}
    assert _pool(name).concurrency_limit == 3
    targets.delete_compute(name)
    assert _pool(name) is None
    with pytest.raises(NotFoundError, match="not found"):
        targets.get_compute(name)


def test_compute_create_rejects_bad_options_and_creates_nothing():
    name = _unique("bad")
    result = cli("compute", "create", "--name", name, "--type", "process", "--size", "huge",
                 "--scheduler-address", "tcp://x:1")
    assert result.returncode == 2
    assert "size" in result.stderr and "huge" in result.stderr and "scheduler_address" in result.stderr
    assert _pool(name) is None


def test_missing_compute_is_a_clear_error_listing_existing_targets(targets, tmp_path):
    from prefect_ml import MLClient, command
    from prefect_ml.exceptions import ValidationError

    existing = targets(name=_unique("exists"), type="process")
    with pytest.raises(ValidationError) as info:
        MLClient().jobs.validate(command(command="echo hi", compute="azureml:no-such-cluster"))
    message = str(info.value)
    assert "no-such-cluster" in message and existing.name in message and "compute" in message


def test_local_type_runs_azure_files_naming_a_cluster_in_process(targets, tmp_path):
    from prefect_ml import MLClient, command

    name = _unique("cpu-cluster")
    targets(name=name, type="local")
    job = MLClient().jobs.create_or_update(command(command="echo ran-here", compute=f"azureml:{name}"))
    assert job.status == "Completed"
    assert job.compute == f"azureml:{name}"
    assert "ran-here" in open(job.log_path).read()


def test_unknown_instance_type_is_a_validation_error(targets):
    from prefect_ml import MLClient, command
    from prefect_ml.exceptions import ValidationError

    name = _unique("sized")
    targets(name=name, type="process", instance_types={"small": {"cpu": 1}})
    from prefect_ml.specs.job import Resources

    job = command(command="echo hi", compute=name).model_copy(update={"resources": Resources(instance_type="huge")})
    with pytest.raises(ValidationError) as info:
        MLClient().jobs.validate(job)
    assert "resources.instance_type" in str(info.value) and "small" in str(info.value)


@pytest.mark.parametrize("kind, expected", [
    ("docker", {"mem_limit": "16g", "container_create_kwargs": {
        "nano_cpus": 4_000_000_000,
        "device_requests": [{"driver": "nvidia", "count": 2, "capabilities": [["gpu"]]}]}}),
    ("kubernetes", {"cpu_request": "4.0", "cpu_limit": "4.0", "memory_request": "16Gi", "memory_limit": "16Gi",
                    "gpu_count": 2, "node_selector": {"pool": "ml", "accelerator": "nvidia-h100"}}),
    ("dask", {"resources": {"GPU": 2, "CPU": 4.0, "MEMORY": 16 * 2**30}}),
    ("process", {}),
])
def test_resource_mapping_per_target_type(kind, expected):
    from prefect_ml.compute.targets import ComputeTarget, job_variables_for
    from prefect_ml.specs.job import Resources

    settings = {"instance_types": {"gpu2": {"cpu": 4, "memory": "16Gi", "gpus": 2}}}
    if kind == "kubernetes":
        settings.update(node_selector={"pool": "ml"}, gpu_node_selector={"accelerator": "nvidia-h100"})
    target = ComputeTarget(name="t", type=kind, settings=settings)
    assert job_variables_for(target, Resources(instance_type="gpu2")) == expected


def _no_trace_of(job_name: str, deployment_name: str):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowRunFilter, \
        FlowRunFilterName

    from prefect_ml import tracking
    from prefect_ml._prefect import prefect_client

    with prefect_client() as client:
        assert not client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[job_name])))
        assert not client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment_name])))
    assert tracking.find_job_run(tracking.get_client(), job_name) is None


def test_dry_run_kubernetes_renders_a_valid_job_manifest_and_creates_nothing(targets, tmp_path):
    import kubernetes_validate

    name = _unique("k8s")
    targets(name=name, type="kubernetes", image="local/prefect-ml:test", namespace="ml",
            instance_types={"gpu1": {"cpu": 2, "memory": "8Gi", "gpus": 1}},
            node_selector={"pool": "ml"}, gpu_node_selector={"accelerator": "nvidia"},
            tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    write(tmp_path / "src" / "train.py", "print('hi')\n")
    job_file = write(tmp_path / "job.yml", f"""
code: src
command: python train.py --lr ${{{{inputs.lr}}}}
inputs:
  lr: 0.1
compute: azureml:{name}
resources:
  instance_type: gpu1
""")
    job_name = _unique("dry").replace("-", "_")
    result = cli("job", "create", "--file", str(job_file), "--name", job_name, "--dry-run")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["command"] == "python train.py --lr 0.1"
    assert data["job"]["compute"] == f"azureml:{name}"
    manifest = data["infrastructure"]["job_manifest"]
    kubernetes_validate.validate(manifest, "1.30", strict=True)
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "local/prefect-ml:test"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["limits"]["memory"] == "8Gi"
    assert pod["nodeSelector"] == {"pool": "ml", "accelerator": "nvidia"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert manifest["metadata"]["namespace"] == "ml"
    assert any(e["name"] == "PREFECT__FLOW_RUN_ID" for e in container["env"])
    _no_trace_of(job_name, name)


def test_dry_run_docker_shows_container_settings_with_gpu_device_requests(targets):
    from prefect_ml import MLClient, command
    from prefect_ml.compute.submit import dry_run
    from prefect_ml.specs.job import Resources

    name = _unique("docker")
    targets(name=name, type="docker", image="local/prefect-ml:test", network_mode="host",
            instance_types={"gpu1": {"memory": "4Gi", "gpus": 1}})
    job_name = _unique("dry").replace("-", "_")
    spec = MLClient().jobs.validate(command(command="nvidia-smi", compute=name).model_copy(
        update={"resources": Resources(instance_type="gpu1")}), name=job_name)
    data = dry_run(spec)
    container = data["infrastructure"]["container"]
    assert container["image"] == "local/prefect-ml:test" and container["network_mode"] == "host"
    assert container["mem_limit"] == "4g"
    assert container["device_requests"] == [{"driver": "nvidia", "count": 1, "capabilities": [["gpu"]]}]
    assert container["environment"]["PREFECT__FLOW_RUN_ID"]
    assert data["command"] == "nvidia-smi"
    _no_trace_of(job_name, name)


def test_kubernetes_worker_calls_against_a_fake_api(targets):
    """The Kubernetes worker creates the rendered Job through BatchV1Api.create_namespaced_job (faked with spec=)."""
    import asyncio
    from unittest import mock
    from kubernetes_asyncio.client import BatchV1Api, V1Job, V1ObjectMeta
    from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

    from prefect_ml.compute.submit import render_infrastructure
    from prefect_ml.compute.targets import get_compute, job_variables_for
    from prefect_ml.specs.job import Resources

    name = _unique("k8s")
    target = targets(name=name, type="kubernetes", image="local/prefect-ml:test", namespace="ml",
                     instance_types={"gpu1": {"gpus": 1}})
    variables = job_variables_for(get_compute(name), Resources(instance_type="gpu1"))
    manifest = render_infrastructure(target, variables, "job-x")["job_manifest"]
    configuration = mock.Mock(spec=KubernetesWorkerJobConfiguration)
    configuration.job_manifest = manifest
    configuration.namespace = "ml"
    batch = mock.Mock(spec=BatchV1Api)
    batch.create_namespaced_job = mock.AsyncMock(spec=BatchV1Api.create_namespaced_job,
                                                 return_value=V1Job(metadata=V1ObjectMeta(name="job-x-abc")))
    configuration.get_environment_variable_value.return_value = None
    worker = KubernetesWorker(work_pool_name=name)
    with mock.patch("prefect_kubernetes.worker.BatchV1Api", return_value=batch) as api_class:
        created = asyncio.run(worker._create_job(configuration, mock.Mock()))
    assert created.metadata.name == "job-x-abc"
    api_class.assert_called_once()
    batch.create_namespaced_job.assert_awaited_once()
    namespace, body = batch.create_namespaced_job.await_args.args
    assert namespace == "ml" and body is manifest
    assert body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_unreachable_dask_scheduler_is_a_clear_error():
    from prefect_ml.compute import server
    from prefect_ml.compute.targets import ComputeTarget, task_runner_for
    from prefect_ml.exceptions import ConfigurationError

    address = f"tcp://127.0.0.1:{server.free_port()}"
    with pytest.raises(ConfigurationError) as info:
        from prefect_ml.compute import dask_worker

        dask_worker.connect(address, timeout_seconds=2)
    assert address in str(info.value) and "unreachable" in str(info.value)
    with pytest.raises(ConfigurationError):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("prefect_ml.compute.dask_worker.CONNECT_TIMEOUT_SECONDS", 2)
            task_runner_for(ComputeTarget(name="d", type="dask", settings={"scheduler_address": address}))


def test_cuda_cluster_without_dask_cuda_fails_clearly():
    from prefect_ml.compute.dask_worker import DaskJobConfiguration, start_cluster
    from prefect_ml.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        start_cluster(DaskJobConfiguration(cluster="cuda"))
    assert "dask-cuda" in str(info.value) or "GPU" in str(info.value)


def test_task_runner_for_local_and_dask_targets():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from prefect_ml.compute.targets import ComputeTarget, get_compute, task_runner_for

    assert isinstance(task_runner_for(get_compute(None), max_workers=2), ThreadPoolTaskRunner)
    runner = task_runner_for(ComputeTarget(name="d", type="dask", settings={"worker_resources": {"GPU": 1},
                                                                            "max_instances": 2}))
    assert isinstance(runner, DaskTaskRunner)
    assert runner.cluster_kwargs["resources"] == {"GPU": 1} and runner.cluster_kwargs["n_workers"] == 2


def test_example_compute_files_parse():

    from prefect_ml.compute.targets import spec_from_file

    kinds = {p.name: spec_from_file(p).type for p in sorted((REPO / "examples" / "compute").glob("*.yml"))}
    assert kinds == {"cpu-cluster-local.yml": "local", "dask-gpu.yml": "dask", "k8s-gpu.yml": "kubernetes",
                     "process-pool.yml": "process"}


def test_kubernetes_manifest_without_resources_or_selectors_is_valid(targets):
    import kubernetes_validate

    from prefect_ml.compute.submit import render_infrastructure

    target = targets(name=_unique("k8s-plain"), type="kubernetes", image="local/prefect-ml:test")
    manifest = render_infrastructure(target, {}, "plain-job")["job_manifest"]
    kubernetes_validate.validate(manifest, "1.30", strict=True)
    pod = manifest["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert "nvidia.com/gpu" not in pod["containers"][0].get("resources", {}).get("limits", {})


def test_dry_run_docker_shows_the_environment_image_as_is_or_built_and_builds_nothing(targets, tmp_path):
    """The environment's image reaches the Docker job variables: ``image`` as is; a conda file -> the tag of the
    image built for it (``--dry-run`` builds nothing and needs no engine)."""
    from prefect_ml.compute.images import built_image_tag, image_for_environment
    from prefect_ml.compute.environments import environment_definition
    from prefect_ml.specs.loader import load_job

    name = _unique("docker-env")
    targets(name=name, type="docker", image="local/prefect-ml:test", network_mode="host")
    from prefect_ml.compute.submit import dry_run
    from prefect_ml import MLClient

    as_is = write(tmp_path / "as_is.yml", f"command: python -V\ncompute: azureml:{name}\n"
                                          "environment:\n  image: local/my-image:1\n")
    data = dry_run(MLClient().jobs.validate(load_job(as_is), name=_unique("dry").replace("-", "_")))
    assert data["job_variables"]["image"] == "local/my-image:1"
    assert data["infrastructure"]["container"]["image"] == "local/my-image:1"

    write(tmp_path / "conda.yml", "dependencies:\n  - python=3.11\n  - pip:\n    - six\n")
    conda = write(tmp_path / "conda_job.yml", f"command: python -V\ncompute: azureml:{name}\n"
                                              "environment:\n  image: local/my-image:1\n  conda_file: conda.yml\n")
    spec = MLClient().jobs.validate(load_job(conda), name=_unique("dry").replace("-", "_"))
    data = dry_run(spec)
    expected = built_image_tag(environment_definition(spec.environment, base_path=spec.base_path))
    assert expected.startswith("prefect-ml-env/")
    assert data["job_variables"]["image"] == expected and data["job_variables"]["image_pull_policy"] == "Never"
    assert data["infrastructure"]["container"]["image"] == expected
    assert image_for_environment(spec.environment, base_path=spec.base_path, build=False) == expected


def test_image_only_environment_notice_is_printed_by_job_create(targets, capfd):
    """The "image only -> current interpreter" notice is shown when the job is created (``job create`` prints the
    spec's warnings through ``MLClient.jobs.run``), not only in its logs."""
    import sys

    from prefect_ml import MLClient, command

    name = _unique("cpu-cluster")
    targets(name=name, type="local")
    client = MLClient()
    spec = client.jobs.validate(command(command="python -c \"print('ran')\"", compute=f"azureml:{name}",
                                        environment={"image": "python:3.11"}))
    (notice,) = [w for w in spec.warnings if "image python:3.11" in w]
    assert "current interpreter" in notice and sys.executable in notice
    job = client.jobs.run(spec)
    assert job.status == "Completed"
    assert f"Warning: {notice}" in capfd.readouterr().err
    docker = targets(name=_unique("docker"), type="docker", image="local/prefect-ml:test")
    on_docker = client.jobs.validate(command(command="python -V", compute=docker.name,
                                             environment={"image": "python:3.11"}))
    assert not any("current interpreter" in w for w in on_docker.warnings)  # Docker runs the image itself


def test_dask_adaptive_cluster_scales_down_to_min_instances_after_the_idle_time_and_logs_it():
    """A real adaptive LocalCluster (min_instances 0, max_instances 1, idle_time_before_scale_down 2 s): after a
    task it shrinks to 0 workers and the worker's log gets the lifecycle line with its timing."""
    import time

    from distributed import Client

    from helpers import wait_for
    from prefect_ml.compute.dask_worker import DaskJobConfiguration, start_cluster

    lines: list[str] = []
    cluster = start_cluster(DaskJobConfiguration(min_instances=0, max_instances=1, idle_time_before_scale_down=2),
                            log=lines.append)
    try:
        with Client(cluster, set_as_default=False) as client:
            assert client.submit(sum, [1, 2]).result(timeout=60) == 3
            done = time.time()
            assert len(client.scheduler_info()["workers"]) == 1
            wait_for(lambda: cluster._adaptive.scale_downs, timeout=60, what="the adaptive scale-down")
            wait_for(lambda: not client.scheduler_info()["workers"], timeout=30, what="the worker to be retired")
        (event,) = cluster._adaptive.scale_downs
        assert event["from_workers"] == 1 and event["to_workers"] == 0 and event["at"] > done
        assert event["idle_seconds"] == 2
        (line,) = lines
        assert line.startswith("Lifecycle: scale-down 1 -> 0 Dask workers (minimum 0) after 2.0s idle")
    finally:
        cluster.close()


def test_task_runner_for_a_dask_target_fans_out_on_the_targets_cluster(monkeypatch):
    """``task_runner_for(<dask target>)`` gives a DaskTaskRunner that runs a flow's mapped tasks on the target's
    cluster (a real LocalCluster on a TCP address: one worker with two threads, in this process to stay cheap)."""
    from distributed import LocalCluster
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from prefect_ml.compute.dask_worker import SCHEDULER_ENV
    from prefect_ml.compute.targets import ComputeTarget, task_runner_for

    @task(cache_policy=NO_CACHE, persist_result=False)
    def square(x: int) -> tuple[int, str]:
        from distributed import get_worker

        return x * x, get_worker().address

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                      dashboard_address=None) as cluster:
        target = ComputeTarget(name="dask-fanout", type="dask",
                               settings={"scheduler_address": cluster.scheduler_address})
        runner = task_runner_for(target, max_workers=2)

        @flow(task_runner=runner, persist_result=False)
        def fan_out(n: int):
            return [future.result() for future in square.map(range(n))]

        results = fan_out(4)
        workers = set(cluster.scheduler_info["workers"])
        assert [value for value, _ in results] == [0, 1, 4, 9]
        assert {address for _, address in results} <= workers and workers
        # A flow run started by the Dask worker finds its cluster through PREFECT_ML_DASK_SCHEDULER.
        monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
        assert task_runner_for(ComputeTarget(name="d", type="dask")).address == cluster.scheduler_address


@pytest.mark.parametrize("kind,module", [("docker", "prefect_docker.worker"),
                                         ("kubernetes", "prefect_kubernetes.worker")])
def test_a_pool_type_whose_worker_package_is_missing_names_the_extra(monkeypatch, kind, module):
    import sys

    from prefect_ml.compute import targets
    from prefect_ml.exceptions import MissingDependencyError

    monkeypatch.setitem(sys.modules, module, None)  # as if the extra were not installed
    with pytest.raises(MissingDependencyError, match=rf"pip install 'prefect-ml\[{kind}\]'"):
        targets._worker_template(kind)


def test_docker_target_that_cannot_reach_the_api_or_home_is_warned_about_with_the_fix(targets, tmp_path):
    """compute create/show and job create --dry-run warn when a docker job's container would get a PREFECT_API_URL
    on 127.0.0.1 without host networking, or no volume for prefect-ml's home; a shared-home target gets none."""
    from helpers import cli_in_process
    from prefect_ml import settings
    from prefect_ml.compute.docker import shared_home_settings
    from prefect_ml.compute.targets import delete_compute

    home = str(settings.home())
    name = _unique("docker-none")
    created = cli_in_process("compute", "create", "--name", name, "--type", "docker", "--image", "local/x:1",
                             "--network-mode", "none")
    try:
        assert created.returncode == 0, created.stderr
        for result in (created, cli_in_process("compute", "show", name)):
            text = " ".join(result.stderr.split())
            assert "PREFECT_API_URL=http://127.0.0.1:" in text and "no network at all" in text
            assert "--network-mode host" in text and "--env PREFECT_API_URL=" in text
            assert f"no volume holds prefect-ml's home {home}" in text and f"--volume {home}:{home}" in text
        job_file = write(tmp_path / "job.yml", f"command: echo hi\ncompute: azureml:{name}\n")
        job_name = _unique("dry").replace("-", "_")
        dry = cli_in_process("job", "create", "--file", str(job_file), "--name", job_name, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        warnings = json.loads(dry.stdout)["warnings"]
        assert len(warnings) == 2 and "Prefect API" in warnings[0] and "prefect-ml's home" in warnings[1]
        assert dry.stderr.count("Warning: ") == 2
        _no_trace_of(job_name, name)
    finally:
        delete_compute(name)

    shared = targets(name=_unique("docker-shared"), type="docker", **shared_home_settings("local/x:1"))
    shown = cli_in_process("compute", "show", shared.name)
    assert shown.returncode == 0 and "Warning" not in shown.stderr


def test_sweep_and_automl_jobs_on_a_process_pool_are_refused_naming_the_field_and_the_fix(targets):
    """Sweep and AutoML jobs run their own flow in the submitting process and their trials on the compute's task
    runner (threads, or a dask target's cluster): a process/docker/kubernetes pool is refused before anything
    is created, exit 2."""
    pool = _unique("procpool")
    targets(name=pool, type="process")
    for example in ("examples/sweeps/digits-sgd/sweep.yml", "examples/automl/diabetes-regression.yml"):
        name = _unique("refused")
        result = cli("job", "create", "--file", str(REPO / example), "--name", name, "--set", f"compute={pool}")
        assert result.returncode == 2, (example, result.stdout, result.stderr)
        assert "compute" in result.stderr and pool in result.stderr and "dask" in result.stderr, result.stderr
        assert cli("job", "show", "--name", name).returncode != 0  # no flow run was created
