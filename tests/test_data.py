"""prefect_ml.data: datastores, URI resolution and input/output transfer, with real fsspec and a real API."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import uuid
from pathlib import Path

import pytest

from prefect_ml import settings
from prefect_ml.data import (
    create_datastore,
    datastore_root,
    list_datastores,
    materialize_input,
    resolve_uri,
    upload_output,
)
from prefect_ml.exceptions import MissingDependencyError, NotFoundError, ValidationError

from conftest import AZURE_EXAMPLES

IRIS = AZURE_EXAMPLES / "assets" / "data" / "example-data" / "iris.csv"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def iris(tmp_path) -> Path:
    """A writable copy of the shared iris.csv in a tmp folder ``store/example-data/``."""
    if not IRIS.exists():
        pytest.skip(f"shared iris.csv not found at {IRIS}")
    target = tmp_path / "store" / "example-data" / "iris.csv"
    target.parent.mkdir(parents=True)
    shutil.copy(IRIS, target)
    return target


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass


@pytest.fixture(scope="module")
def http_root(tmp_path_factory):
    """A real HTTP server on 127.0.0.1 serving a folder that holds iris.csv and folder/{a.txt,sub/b.txt}."""
    if not IRIS.exists():
        pytest.skip(f"shared iris.csv not found at {IRIS}")
    root = tmp_path_factory.mktemp("http")
    shutil.copy(IRIS, root / "iris.csv")
    (root / "folder" / "sub").mkdir(parents=True)
    (root / "folder" / "a.txt").write_text("a")
    (root / "folder" / "sub" / "b.txt").write_text("b")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


# --------------------------------------------------------------------------- resolve_uri


def test_relative_paths_resolve_against_base_path_or_cwd(tmp_path, monkeypatch):
    assert resolve_uri("data/train.csv", base_path=tmp_path) == str(tmp_path / "data" / "train.csv")
    assert resolve_uri("./a/../b", base_path=str(tmp_path)) == str(tmp_path / "b")
    monkeypatch.chdir(tmp_path)
    assert resolve_uri("x.csv") == str(tmp_path / "x.csv")
    assert resolve_uri(str(tmp_path / "abs.csv"), base_path="/elsewhere") == str(tmp_path / "abs.csv")


def test_file_urls_become_local_paths(tmp_path):
    assert resolve_uri((tmp_path / "my file.csv").as_uri()) == str(tmp_path / "my file.csv")
    assert resolve_uri(f"file://localhost{tmp_path}/a.csv") == f"{tmp_path}/a.csv"
    with pytest.raises(ValidationError, match="local path"):
        resolve_uri("file://otherhost/a.csv")


@pytest.mark.parametrize("uri", ["memory://bucket/x.csv", "https://example.org/data/iris.csv",
                                 "http://127.0.0.1:1/a/", "runs:/abc123/model", "models:/iris/3",
                                 "models:/iris@champion"])
def test_fsspec_and_mlflow_uris_are_unchanged(uri):
    assert resolve_uri(uri) == uri


@pytest.mark.parametrize("uri", ["wasbs://container@account.blob.core.windows.net/data/iris.csv",
                                 "abfss://container@account.dfs.core.windows.net/data/"])
def test_azure_storage_urls_need_adlfs(uri):
    try:
        import adlfs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("adlfs is installed")
    with pytest.raises(MissingDependencyError, match=r"pip install adlfs"):
        resolve_uri(uri)


def test_missing_fsspec_implementation_names_the_package():
    try:
        import s3fs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("s3fs is installed")
    with pytest.raises(MissingDependencyError, match=r"pip install s3fs"):
        resolve_uri("s3://bucket/iris.csv")


def test_unknown_scheme_and_bad_azureml_forms_are_validation_errors():
    with pytest.raises(ValidationError, match="unknown URI scheme 'nosuchfs'"):
        resolve_uri("nosuchfs://x/y")
    with pytest.raises(ValidationError, match="unsupported azureml:// URI"):
        resolve_uri("azureml://jobs/123/outputs/model")
    with pytest.raises(ValidationError, match="only @latest"):
        resolve_uri("azureml:iris@prod")
    with pytest.raises(ValidationError, match="non-empty"):
        resolve_uri("")


def test_model_references_become_mlflow_model_uris():
    assert resolve_uri("azureml:iris-model:3", asset_kind="model") == "models:/iris-model/3"
    assert resolve_uri("azureml:iris-model@latest", asset_kind="model") == "models:/iris-model/latest"
    assert resolve_uri("azureml:iris-model", asset_kind="model") == "models:/iris-model/latest"
    long_form = "azureml://locations/westeurope/workspaces/abc/models/iris-model/versions/2"
    assert resolve_uri(long_form) == "models:/iris-model/2"


# --------------------------------------------------------------------------- datastores


def test_datastore_uris_resolve_against_a_saved_datastore_block(iris):
    name = _unique("teststore")
    root = iris.parent.parent
    create_datastore(name, str(root))

    assert datastore_root(name) == str(root)
    assert (name, str(root)) in list_datastores()
    resolved = resolve_uri(f"azureml://datastores/{name}/paths/example-data/iris.csv")
    assert resolved == str(iris)
    assert resolve_uri(f"azureml://datastores/{name}/paths/example-data/") == f"{root}/example-data/"
    long_form = (f"azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/{name}"
                 "/paths/example-data/iris.csv")
    assert resolve_uri(long_form) == str(iris)
    # ro_mount of a local datastore path passes the path itself; download copies.
    assert materialize_input(resolved, type="uri_file", mode="ro_mount", dest=iris.parent / "x") == str(iris)
    with pytest.raises(ValidationError, match="already exists"):
        create_datastore(name, str(root))
    create_datastore(name, "memory://elsewhere", overwrite=True)
    assert datastore_root(name) == "memory://elsewhere"


def test_azure_style_datastore_names_map_to_block_names(tmp_path):
    name = f"my_store_{uuid.uuid4().hex[:6]}"
    create_datastore(name, str(tmp_path))
    assert datastore_root(name) == str(tmp_path)
    assert resolve_uri(f"azureml://datastores/{name}/paths/a.csv") == f"{tmp_path}/a.csv"


def test_default_datastores_live_under_the_home_folder():
    assert datastore_root("workspaceblobstore") == str(settings.default_datastore_root())
    assert datastore_root("workspacefilestore") == str(settings.home() / "datastores" / "workspacefilestore")
    assert Path(datastore_root("workspaceartifactstore")).is_dir()
    resolved = resolve_uri("azureml://datastores/workspaceblobstore/paths/example-data/titanic.csv")
    assert resolved == f"{settings.default_datastore_root()}/example-data/titanic.csv"
    names = [n for n, _ in list_datastores()]
    assert {"workspaceblobstore", "workspacefilestore", "workspaceartifactstore"} <= set(names)


def test_unknown_datastore_lists_existing_ones_and_how_to_create_one():
    with pytest.raises(NotFoundError) as error:
        resolve_uri("azureml://datastores/nosuchstore/paths/x.csv")
    message = str(error.value)
    assert "'nosuchstore' does not exist" in message
    assert "workspaceblobstore" in message
    assert "create_datastore('nosuchstore'" in message


def test_relative_datastore_root_is_made_absolute_and_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = _unique("relstore")
    create_datastore(name, "stores/rel")
    assert datastore_root(name) == str(tmp_path / "stores" / "rel")
    assert (tmp_path / "stores" / "rel").is_dir()


def test_memory_datastore_with_storage_options_round_trip(tmp_path):
    import fsspec

    name = _unique("memstore")
    root = f"memory://{name}"
    create_datastore(name, root, storage_options={"skip_instance_cache": True})
    from prefect_ml.data.datastores import storage_options_for

    assert storage_options_for(f"{root}/run1/x.csv") == {"skip_instance_cache": True}
    assert storage_options_for(f"{root}-other/x.csv") == {}
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "x.txt").write_text("x")
    (folder / "y.txt").write_text("y")

    dest = resolve_uri(f"azureml://datastores/{name}/paths/run1/outputs/")
    assert dest == f"{root}/run1/outputs/"
    assert upload_output(folder, dest) == dest
    fs = fsspec.filesystem("memory")
    assert fs.cat(f"/{name}/run1/outputs/sub/x.txt") == b"x"

    got = materialize_input(f"azureml://datastores/{name}/paths/run1/outputs/", type="uri_folder",
                            mode="download", dest=tmp_path / "in")
    assert Path(got) == tmp_path / "in" / "outputs"
    assert (Path(got) / "sub" / "x.txt").read_text() == "x"
    assert (Path(got) / "y.txt").read_text() == "y"


# --------------------------------------------------------------------------- materialize_input


def test_local_inputs_are_passed_or_copied(iris, tmp_path):
    folder = iris.parent
    assert materialize_input(str(iris), type="uri_file", mode=None, dest=tmp_path / "d") == str(iris)
    assert materialize_input(str(folder), type="uri_folder", mode="ro_mount", dest=tmp_path / "d") == str(folder)
    assert not (tmp_path / "d").exists()

    copied = materialize_input(str(folder), type="uri_folder", mode="download", dest=tmp_path / "d")
    assert Path(copied) == tmp_path / "d" / "example-data"
    assert (Path(copied) / "iris.csv").read_bytes() == iris.read_bytes()
    copied_file = materialize_input(iris.as_uri(), type="uri_file", mode="download", dest=tmp_path / "f")
    assert Path(copied_file).read_bytes() == iris.read_bytes()
    iris.write_text("changed")
    assert (Path(copied) / "iris.csv").read_text() != "changed"


def test_direct_mode_passes_the_uri_unchanged(tmp_path):
    for uri in ("memory://nothing/here.csv", "azureml:iris:1", "/no/such/file"):
        assert materialize_input(uri, type="uri_file", mode="direct", dest=tmp_path) == uri


def test_memory_file_and_folder_are_downloaded_in_any_mount_mode(tmp_path):
    import fsspec

    base = _unique("mem")
    fs = fsspec.filesystem("memory")
    fs.pipe({f"/{base}/data.csv": b"a,b\n1,2\n", f"/{base}/folder/p1.csv": b"1", f"/{base}/folder/d/p2.csv": b"2"})

    got = materialize_input(f"memory://{base}/data.csv", type="uri_file", mode="ro_mount", dest=tmp_path / "f")
    assert Path(got) == tmp_path / "f" / "data.csv"
    assert Path(got).read_bytes() == b"a,b\n1,2\n"

    got = materialize_input(f"memory://{base}/folder/", type="uri_folder", mode="download", dest=tmp_path / "d")
    assert Path(got) == tmp_path / "d" / "folder"
    files = sorted(p.relative_to(got).as_posix() for p in Path(got).rglob("*") if p.is_file())
    assert files == ["d/p2.csv", "p1.csv"]
    # Materializing again replaces the earlier copy instead of nesting it.
    again = materialize_input(f"memory://{base}/folder", type="mltable", mode=None, dest=tmp_path / "d")
    assert again == got
    assert sorted(p.name for p in Path(got).iterdir()) == ["d", "p1.csv"]


def test_http_file_and_folder_through_fsspec(http_root, tmp_path):
    url, root = http_root
    got = materialize_input(f"{url}/iris.csv", type="uri_file", mode="download", dest=tmp_path / "f")
    assert Path(got) == tmp_path / "f" / "iris.csv"
    assert Path(got).read_bytes() == (root / "iris.csv").read_bytes()

    got = materialize_input(f"{url}/folder/", type="uri_folder", mode="ro_mount", dest=tmp_path / "d")
    assert (Path(got) / "a.txt").read_text() == "a"
    assert (Path(got) / "sub" / "b.txt").read_text() == "b"


def test_missing_sources_raise_not_found_naming_the_uri(http_root, tmp_path):
    url, _ = http_root
    for uri in (str(tmp_path / "nope.csv"), f"memory://{_unique('none')}/x.csv", f"{url}/nope.csv"):
        with pytest.raises(NotFoundError, match="does not exist") as error:
            materialize_input(uri, type="uri_file", mode="download", dest=tmp_path / "d")
        assert uri in str(error.value)


def test_invalid_mode_is_a_validation_error(tmp_path):
    with pytest.raises(ValidationError, match="must be one of ro_mount"):
        materialize_input(str(tmp_path), type="uri_folder", mode="upload", dest=tmp_path)


# --------------------------------------------------------------------------- upload_output


def test_upload_output_local_destinations(tmp_path):
    out = tmp_path / "outputs"
    out.mkdir()
    (out / "model.pkl").write_bytes(b"m")
    assert upload_output(out, str(out)) == str(out)  # same place: no-op

    dest = tmp_path / "dest"
    assert upload_output(out, dest.as_uri()) == str(dest)
    assert (dest / "model.pkl").read_bytes() == b"m"

    assert upload_output(out / "model.pkl", f"{tmp_path}/files/") == str(tmp_path / "files" / "model.pkl")
    assert (tmp_path / "files" / "model.pkl").read_bytes() == b"m"
    assert upload_output(out / "model.pkl", str(tmp_path / "renamed.bin")) == str(tmp_path / "renamed.bin")
    with pytest.raises(NotFoundError, match="did not write it"):
        upload_output(tmp_path / "missing", str(dest))


def test_upload_output_file_to_memory(tmp_path):
    import fsspec

    base = _unique("up")
    source = tmp_path / "metrics.json"
    source.write_text("{}")
    assert upload_output(source, f"memory://{base}/out/") == f"memory://{base}/out/metrics.json"
    assert upload_output(source, f"memory://{base}/exact.json") == f"memory://{base}/exact.json"
    fs = fsspec.filesystem("memory")
    assert fs.cat(f"/{base}/out/metrics.json") == b"{}"
    assert fs.cat(f"/{base}/exact.json") == b"{}"
