"""Prefect events about data assets: ``prefect-ml.data-asset.version-created``.

Every new data asset version (``prefect-ml data create``, :func:`prefect_ml.data.create_data_asset`,
a job output registered as a data asset, the ``watch-data-prefix`` flow) emits one event::

    event:    prefect-ml.data-asset.version-created
    resource: {"prefect.resource.id": "prefect-ml.data-asset.NAME", "prefect.resource.name": NAME,
               "prefect-ml.data-asset.version": VERSION}
    payload:  {"name": NAME, "version": VERSION, "uri": "azureml:NAME:VERSION", "path": PATH, "type": TYPE}

A deployment trigger matches it with ``match: {prefect.resource.id: prefect-ml.data-asset.NAME}`` and
``expect: [prefect-ml.data-asset.version-created]`` and passes ``{{ event.payload.version }}`` as a
parameter (see docs/retraining.md).
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any

#: Name of the event emitted for each new data asset version.
DATA_ASSET_VERSION_CREATED = "prefect-ml.data-asset.version-created"
#: Prefix of the resource id of a data asset: ``prefect-ml.data-asset.NAME``.
DATA_ASSET_RESOURCE_PREFIX = "prefect-ml.data-asset."

_logger = logging.getLogger(__name__)
_drain_registered = False
_lock = threading.Lock()


def data_asset_resource_id(name: str) -> str:
    """The Prefect resource id of data asset ``name``: ``prefect-ml.data-asset.NAME``."""
    return f"{DATA_ASSET_RESOURCE_PREFIX}{name}"


def _drain_events_at_exit() -> None:
    """Send buffered events before the process exits (a CLI call would otherwise lose them)."""
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=10)


def emit_version_created(asset: Any) -> Any:
    """Emit ``prefect-ml.data-asset.version-created`` for ``asset`` (a ``DataAssetVersion``).

    Never raises: a failure to emit is logged as a warning, because the version exists either way.
    The first call registers an exit handler that drains Prefect's ``EventsWorker``, so short
    processes (``prefect-ml data create``) deliver the event before they exit.

    Returns:
        The emitted :class:`prefect.events.Event`, or ``None`` when events are off or emitting failed.
    """
    global _drain_registered
    try:
        from prefect.events import emit_event

        event = emit_event(
            event=DATA_ASSET_VERSION_CREATED,
            resource={"prefect.resource.id": data_asset_resource_id(asset.name),
                      "prefect.resource.name": asset.name,
                      "prefect-ml.data-asset.version": str(asset.version)},
            payload={"name": asset.name, "version": str(asset.version), "uri": asset.uri, "path": asset.path,
                     "type": asset.type},
        )
        with _lock:
            if not _drain_registered:
                atexit.register(_drain_events_at_exit)
                _drain_registered = True
        return event
    except Exception as exc:  # the version exists; a lost event must not fail its creation
        _logger.warning("Could not emit %s for %s: %s", DATA_ASSET_VERSION_CREATED, asset.uri, exc)
        return None


__all__ = ["DATA_ASSET_RESOURCE_PREFIX", "DATA_ASSET_VERSION_CREATED", "data_asset_resource_id",
           "emit_version_created"]
