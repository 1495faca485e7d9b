"""The watcher: new files under an fsspec prefix become data asset versions (and emit events), once each."""

from __future__ import annotations

import os
import uuid

from helpers import write


def test_new_files_are_registered_once_and_remembered(tmp_path):
    from prefect_ml.data import list_data_assets
    from prefect_ml.flows.watch_data import watch_data_prefix

    incoming = tmp_path / "incoming"
    asset = f"watched-{uuid.uuid4().hex[:6]}"
    write(incoming / "a.csv", "x\n1\n")
    write(incoming / "notes.txt", "ignored\n")
    assert watch_data_prefix(str(incoming), asset, pattern="*.csv") == [f"azureml:{asset}:1"]
    assert watch_data_prefix(str(incoming), asset, pattern="*.csv") == []  # nothing new
    write(incoming / "b.csv", "x\n2\n")
    os.utime(incoming / "b.csv", (os.path.getmtime(incoming / "a.csv") + 5,) * 2)
    assert watch_data_prefix(str(incoming), asset, pattern="*.csv") == [f"azureml:{asset}:2"]
    versions = list_data_assets(asset)
    assert [v.tags["source"].rsplit("/", 1)[-1] for v in versions] == ["a.csv", "b.csv"]


def test_watermark_state_covers_files_with_equal_times():
    from prefect_ml.tasks.watch import new_files

    fresh, state = new_files([("a", 10.0), ("b", 10.0)], None)
    assert fresh == ["a", "b"] and state == {"watermark": 10.0, "at_watermark": ["a", "b"]}
    fresh, state = new_files([("a", 10.0), ("b", 10.0), ("c", 10.0), ("old", 5.0)], state)
    assert fresh == ["c"]
    fresh, _ = new_files([("a", 10.0), ("d", 11.0)], state)
    assert fresh == ["d"]


def test_data_asset_versions_emit_version_created_events(tmp_path):
    """The event reaches the server with the version and URI in its payload."""
    from prefect.events.worker import EventsWorker

    from prefect_ml._prefect import prefect_client
    from prefect_ml.data import create_data_asset

    from helpers import wait_for

    asset = create_data_asset(f"evt-{uuid.uuid4().hex[:6]}", path=str(write(tmp_path / "d.csv", "x\n")),
                              type="uri_file")
    EventsWorker.drain_all(timeout=10)
    resource = f"prefect-ml.data-asset.{asset.name}"

    def stored():
        with prefect_client() as client:
            response = client.request("POST", "/events/filter", json={
                "filter": {"resource": {"id": [resource]},
                           "event": {"name": ["prefect-ml.data-asset.version-created"]}},
                "limit": 10})
        return response.json()["events"]

    (event,) = wait_for(stored, timeout=30, what="the stored event")
    assert event["payload"] == {"name": asset.name, "version": "1", "uri": f"azureml:{asset.name}:1",
                                "path": asset.path, "type": "uri_file"}
    assert event["resource"]["prefect-ml.data-asset.version"] == "1"
