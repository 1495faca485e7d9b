"""prefect-ml registers with Prefect through the ``prefect.collections`` entry point."""

from importlib.metadata import entry_points


def test_collection_entry_point_loads_the_block_types():
    (entry,) = [e for e in entry_points(group="prefect.collections") if e.name == "prefect_ml"]
    module = entry.load()
    assert {cls.get_block_type_slug() for cls in module.BLOCK_TYPES} == {
        "prefect-ml-datastore", "prefect-ml-environment", "prefect-ml-mlflow-tracking", "prefect-ml-data-asset"}


def test_the_server_registered_the_block_types_at_start_up(prefect_api):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        block_type = client.read_block_type_by_slug("prefect-ml-datastore")
    assert block_type.name == "Datastore (prefect-ml)"


def test_importing_the_package_is_light():
    import subprocess
    import sys

    code = "import sys, prefect_ml; print(sorted(m for m in ('prefect', 'mlflow', 'pandas', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
