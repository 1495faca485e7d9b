"""Job outputs (named data assets, datastore paths, uri_file, fsspec URLs) and remote/direct inputs, end to end.

Jobs run in this process through the SDK, so fsspec's ``memory://`` filesystem is shared with
the flow that downloads inputs and uploads outputs.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ml_client():
    from prefect_ml import MLClient

    return MLClient()


@pytest.fixture
def memfs():
    import fsspec

    fs = fsspec.filesystem("memory")
    root = f"/prefect-ml-tests/{uuid.uuid4().hex[:8]}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _run(ml_client, **kwargs):
    from prefect_ml import command

    job = ml_client.jobs.create_or_update(command(experiment_name="output-tests", **kwargs), name=_unique("out"))
    assert job.status == "Completed", job.error
    return job


def _log(job) -> list[str]:
    return Path(job.log_path).read_text().splitlines()


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------- named outputs
def test_named_data_output_becomes_a_new_data_asset_version_each_run(ml_client):
    from prefect_ml.data import get_data_asset, list_data_assets

    asset = f"my-features-{uuid.uuid4().hex[:8]}"
    cmd = ("mkdir -p ${{outputs.features}}/part && echo ${{inputs.value}} > ${{outputs.features}}/features.txt "
           "&& echo extra > ${{outputs.features}}/part/extra.txt")
    first = _run(ml_client, command=cmd, inputs={"value": "first"},
                 outputs={"features": {"type": "uri_folder", "name": asset}})
    v1 = get_data_asset(asset, "1")
    assert first.registered_data == {"features": f"{asset}:1"} and first.registered_models == {}
    assert v1.type == "uri_folder" and v1.description == f"Output features of job {first.name}"
    assert _tree(Path(v1.path)) == {"features.txt": "first\n", "part/extra.txt": "extra\n"}

    _run(ml_client, command=cmd, inputs={"value": "second"},
                  outputs={"features": {"type": "uri_folder", "name": asset}})
    v2 = get_data_asset(asset)  # latest
    assert v2.version == "2"
    assert (Path(v2.path) / "features.txt").read_text() == "second\n"
    # Versions are immutable: the first still holds what the first run wrote.
    assert (Path(get_data_asset(asset, "1").path) / "features.txt").read_text() == "first\n"
    assert [v.version for v in list_data_assets(asset)] == ["1", "2"]


def test_named_output_with_an_explicit_version(ml_client):
    from prefect_ml.data import get_data_asset

    asset = f"my-scores-{uuid.uuid4().hex[:8]}"
    _run(ml_client, command="echo 0.9 > ${{outputs.scores}}/score.txt",
         outputs={"scores": {"type": "uri_folder", "name": asset, "version": "2024.1"}})
    version = get_data_asset(asset, "2024.1")
    assert (Path(version.path) / "score.txt").read_text() == "0.9\n"


# ------------------------------------------------------------ output paths
def test_output_path_on_a_datastore_with_the_job_name_substituted(ml_client):
    from prefect_ml.data import datastore_root

    job = _run(ml_client, command="echo hello > ${{outputs.report}}/report.txt",
               outputs={"report": {"type": "uri_folder",
                                   "path": "azureml://datastores/workspaceblobstore/paths/custom/${{name}}/"}})
    expected = Path(datastore_root("workspaceblobstore")) / "custom" / job.name
    assert Path(job.outputs["report"]) == expected
    assert (expected / "report.txt").read_text() == "hello\n"


def test_default_output_path_is_under_the_default_datastore(ml_client):
    from prefect_ml.data import datastore_root

    job = _run(ml_client, command="echo x > ${{outputs.out}}/x.txt", outputs={"out": None})
    expected = Path(datastore_root("workspaceblobstore")) / "azureml" / job.name / "out"
    assert Path(job.outputs["out"]) == expected and (expected / "x.txt").read_text() == "x\n"


def test_uri_file_output_with_a_file_path(ml_client, tmp_path):
    from prefect_ml.data import datastore_root

    job = _run(ml_client, command="echo '{\"auc\": 0.9}' > ${{outputs.metrics}} && echo ok > ${{outputs.local}}",
               outputs={"metrics": {"type": "uri_file",
                                    "path": "azureml://datastores/workspaceblobstore/paths/custom/${{name}}/metrics.json"},
                        "local": {"type": "uri_file", "path": str(tmp_path / "results" / "status.txt")}})
    expected = Path(datastore_root("workspaceblobstore")) / "custom" / job.name / "metrics.json"
    assert Path(job.outputs["metrics"]) == expected
    assert expected.is_file() and expected.read_text() == '{"auc": 0.9}\n'
    assert Path(job.outputs["local"]) == tmp_path / "results" / "status.txt"
    assert (tmp_path / "results" / "status.txt").read_text() == "ok\n"


# --------------------------------------------------------- fsspec outputs
def test_memory_url_outputs_are_staged_and_uploaded(ml_client, memfs):
    fs, root = memfs
    folder_url = f"memory://{root}/model/"
    file_url = f"memory://{root}/metrics/summary.json"
    job = _run(ml_client,
               command="mkdir -p ${{outputs.model}}/sub && echo weights > ${{outputs.model}}/model.bin "
                       "&& echo cfg > ${{outputs.model}}/sub/config.txt && echo '{}' > ${{outputs.summary}} "
                       "&& echo model_dir=${{outputs.model}}",
               outputs={"model": {"type": "uri_folder", "path": folder_url},
                        "summary": {"type": "uri_file", "path": file_url}})
    assert job.outputs == {"model": folder_url, "summary": file_url}
    assert fs.cat_file(f"{root}/model/model.bin") == b"weights\n"
    assert fs.cat_file(f"{root}/model/sub/config.txt") == b"cfg\n"
    assert fs.cat_file(f"{root}/metrics/summary.json") == b"{}\n"
    # The command wrote to a local staging folder, not to the URL.
    (line,) = [line for line in _log(job) if line.startswith("model_dir=")]
    staged = Path(line.split("=", 1)[1])
    assert staged.is_absolute() and (staged / "model.bin").read_text() == "weights\n"


# ------------------------------------------------------------------ inputs
def test_memory_url_inputs_are_downloaded_for_the_command(ml_client, memfs):
    fs, root = memfs
    fs.pipe_file(f"{root}/in/train.csv", b"a,b\n1,2\n")
    fs.pipe_file(f"{root}/folder/part-0.csv", b"p0\n")
    fs.pipe_file(f"{root}/folder/nested/part-1.csv", b"p1\n")
    job = _run(ml_client,
               command="cat ${{inputs.train}} && cat ${{inputs.folder}}/part-0.csv ${{inputs.folder}}/nested/part-1.csv"
                       " && echo path=${{inputs.train}}",
               inputs={"train": {"type": "uri_file", "path": f"memory://{root}/in/train.csv"},
                       "folder": {"type": "uri_folder", "path": f"memory://{root}/folder"}})
    lines = _log(job)
    assert lines[:4] == ["a,b", "1,2", "p0", "p1"], lines
    (line,) = [line for line in lines if line.startswith("path=")]
    local = Path(line.split("=", 1)[1])
    assert local.is_file() and local.name == "train.csv" and local.read_text() == "a,b\n1,2\n"


def test_direct_mode_input_passes_the_uri_unchanged(ml_client, memfs):
    _, root = memfs
    url = f"memory://{root}/never-read/"  # does not exist: direct mode moves no data
    job = _run(ml_client, command="echo uri=${{inputs.data}}",
               inputs={"data": {"type": "uri_folder", "path": url, "mode": "direct"}})
    assert f"uri={url}" in _log(job)
    assert not (Path(job.log_path).parents[1] / "inputs" / "data").exists()


def test_missing_memory_input_fails_the_job_naming_it(ml_client, memfs):
    from prefect_ml import command

    _, root = memfs
    url = f"memory://{root}/absent.csv"
    job = ml_client.jobs.create_or_update(
        command(command="cat ${{inputs.x}}", inputs={"x": {"type": "uri_file", "path": url}},
                experiment_name="output-tests"), name=_unique("out"))
    assert job.status == "Failed" and url in (job.error or "")
