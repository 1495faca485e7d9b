"""Output locations, upload of outputs and registration of named outputs and models."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_ml.specs import MODEL_TYPES, CommandJob

#: Azure's default output location: ``azureml://datastores/workspaceblobstore/paths/azureml/{name}/{output}/``.
DEFAULT_OUTPUT_PATH = "azureml://datastores/workspaceblobstore/paths/azureml/{name}/{output}/"


@dataclass
class OutputLocation:
    """Where an output is written and where it ends up.

    Attributes:
        name: The output's name.
        type: Its type (``uri_folder``, ``uri_file``, ``mlflow_model``, ``custom_model``...).
        local_path: What the command receives: a local folder (or file path for ``uri_file``).
        uri: The final location (equal to ``local_path`` for local datastores).
        upload: Whether ``local_path`` must be copied to ``uri`` after the command.
    """

    name: str
    type: str
    local_path: str
    uri: str
    upload: bool

    def to_dict(self) -> dict:
        return asdict(self)


def plan_outputs(spec: CommandJob, job_name: str, staging_dir: Path) -> dict[str, OutputLocation]:
    """Decide each output's location and create the local folders the command writes to.

    ``${{name}}`` in an output path is replaced by the job's name. Local destinations are written
    in place (``rw_mount``); remote ones are staged under ``staging_dir`` and uploaded afterwards
    (``upload``); ``mode: direct`` gives the command the URI itself.
    """
    from prefect_ml.data import resolve_uri

    locations: dict[str, OutputLocation] = {}
    for name, output in spec.outputs.items():
        raw = output.path or DEFAULT_OUTPUT_PATH.format(name=job_name, output=name)
        raw = raw.replace("${{name}}", job_name)
        uri = resolve_uri(raw, base_path=spec.base_path)
        is_file = output.type == "uri_file"
        if output.mode == "direct":
            locations[name] = OutputLocation(name, output.type, uri, uri, upload=False)
            continue
        if "://" in uri:
            staged = staging_dir / name
            local = staged / Path(uri.rstrip("/")).name if is_file else staged
            (local.parent if is_file else local).mkdir(parents=True, exist_ok=True)
            locations[name] = OutputLocation(name, output.type, str(local), uri, upload=True)
            continue
        local = Path(uri)
        if is_file and (uri.endswith("/") or local.is_dir()):
            local = local / name
        (local.parent if is_file else local).mkdir(parents=True, exist_ok=True)
        locations[name] = OutputLocation(name, output.type, str(local), str(local), upload=False)
    return locations


@task(name="upload-outputs", cache_policy=NO_CACHE, persist_result=False)
def upload_outputs(spec: CommandJob, job_name: str, locations: dict[str, OutputLocation], run_id: str,
                   experiment_name: str) -> dict[str, dict[str, str]]:
    """Upload staged outputs, register model outputs and named data outputs.

    Model outputs (``mlflow_model``, ``custom_model``, ``triton_model``) are logged as artifacts of the
    job's MLflow run under ``outputs/NAME`` and registered as a new version of the model named by the
    output's ``name`` (default ``JOBNAME-OUTPUT``). Data outputs with a ``name`` become a new
    version of that data asset (``version`` or the next number).

    Returns:
        ``{"outputs": {name: uri}, "registered_models": {name: "MODEL:VERSION"},
        "registered_data": {name: "ASSET:VERSION"}}``.
    """
    from prefect import get_run_logger

    from prefect_ml import tracking
    from prefect_ml.data import create_data_asset, upload_output

    logger = get_run_logger()
    client = tracking.get_client()
    outputs: dict[str, str] = {}
    models: dict[str, str] = {}
    data: dict[str, str] = {}
    for name, loc in locations.items():
        output = spec.outputs[name]
        uri = loc.uri
        if loc.upload:
            uri = upload_output(Path(loc.local_path), loc.uri)
            logger.info("Output %s uploaded to %s", name, uri)
        outputs[name] = uri
        if output.type in MODEL_TYPES:
            local = Path(loc.local_path)
            if output.type == "mlflow_model" and not (local / "MLmodel").exists():
                logger.warning("Output %s is an mlflow_model but %s holds no MLmodel file; registering it as files.",
                               name, local)
            if not local.exists() or (local.is_dir() and not any(local.iterdir())):
                logger.warning("Model output %s is empty; nothing registered.", name)
                continue
            artifact_path = f"outputs/{name}"
            if local.is_dir():
                source = tracking.log_folder(client, run_id, local, artifact_path)
            else:
                client.log_artifact(run_id, str(local), artifact_path)
                source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{artifact_path}"
            model_name = output.name or f"{job_name}-{name}"
            version = tracking.register_model_version(
                client, name=model_name, run_id=run_id, source=source,
                tags={"prefect_ml.job_name": job_name, "prefect_ml.output": name, "prefect_ml.type": output.type},
                description=output.description,
            )
            models[name] = f"{model_name}:{version.version}"
            logger.info("Registered model %s version %s from output %s", model_name, version.version, name)
        elif output.name:
            asset = create_data_asset(output.name, path=uri, type=output.type, version=output.version,
                                      description=output.description or f"Output {name} of job {job_name}")
            data[name] = f"{asset.name}:{asset.version}"
            logger.info("Registered data asset %s version %s from output %s", asset.name, asset.version, name)
    return {"outputs": outputs, "registered_models": models, "registered_data": data}
