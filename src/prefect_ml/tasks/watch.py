"""Watching an fsspec prefix for new files and registering them as data asset versions.

The watcher remembers what it has seen in a Prefect Variable (``prefect-ml-watch-<hash>``) holding a
watermark: the newest modification time seen and the files that have exactly that time. A file is new
when it was modified after the watermark (or at it, and not among those files). Each new version
emits ``prefect-ml.data-asset.version-created`` (see :mod:`prefect_ml.data.events`).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
from typing import Any, Literal

from prefect import task
from prefect.cache_policies import NO_CACHE


def state_variable_name(prefix: str, asset_name: str) -> str:
    """The Prefect Variable remembering what the watcher of ``prefix`` for ``asset_name`` has seen."""
    digest = hashlib.sha256(f"{prefix}\x00{asset_name}".encode()).hexdigest()[:16]
    return f"prefect-ml-watch-{digest}"


def list_files(prefix: str, pattern: str = "*") -> list[tuple[str, float]]:
    """``(url, modified timestamp)`` of every file under ``prefix`` whose name matches ``pattern``.

    Raises:
        FileNotFoundError: ``prefix`` does not exist.
    """
    import fsspec

    fs, root = fsspec.core.url_to_fs(prefix)
    if not fs.exists(root):
        raise FileNotFoundError(f"watched prefix {prefix!r} does not exist")
    found = []
    for path in sorted(fs.find(root)):
        if not fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern):
            continue
        try:
            modified = fs.modified(path)
            stamp = modified.replace(tzinfo=modified.tzinfo or dt.timezone.utc).timestamp()
        except (NotImplementedError, OSError, AttributeError):
            stamp = 0.0  # no modification times: the list of seen files decides
        found.append((fs.unstrip_protocol(path) if "://" in prefix else path, stamp))
    return found


def new_files(files: list[tuple[str, float]], state: dict[str, Any] | None) -> tuple[list[str], dict[str, Any]]:
    """Files not covered by ``state``, and the state that covers them all.

    Returns:
        ``(new file URLs in modification order, new state {"watermark": float, "at_watermark": [url...]})``.
    """
    watermark = float((state or {}).get("watermark", float("-inf")))
    at_mark = set((state or {}).get("at_watermark", []))
    fresh = [(url, stamp) for url, stamp in files if stamp > watermark or (stamp == watermark and url not in at_mark)]
    fresh.sort(key=lambda item: (item[1], item[0]))
    if not files:
        return [], state or {"watermark": watermark if watermark != float("-inf") else 0.0, "at_watermark": []}
    newest = max(stamp for _, stamp in files)
    if newest > watermark:
        watermark, at_mark = newest, set()
    at_mark |= {url for url, stamp in files if stamp == watermark}
    return [url for url, _ in fresh], {"watermark": watermark, "at_watermark": sorted(at_mark)}


@task(name="register-new-files", cache_policy=NO_CACHE, persist_result=False)
def register_new_files(prefix: str, asset_name: str, pattern: str = "*",
                       mode: Literal["file", "folder"] = "file") -> list[str]:
    """Register new files under ``prefix`` as versions of ``asset_name``; remember them.

    Args:
        prefix: fsspec URL or local folder to watch.
        asset_name: Data asset receiving the new versions.
        pattern: Glob on file names (``*.csv``).
        mode: ``file``: one ``uri_file`` version per new file; ``folder``: one ``uri_folder`` version of
            ``prefix`` when any file is new.

    Returns:
        The created versions, ``azureml:NAME:VERSION``.
    """
    from prefect.variables import Variable

    from prefect_ml.data import create_data_asset

    variable = state_variable_name(prefix, asset_name)
    fresh, state = new_files(list_files(prefix, pattern), Variable.get(variable))
    created = []
    if mode == "folder" and fresh:
        created.append(create_data_asset(asset_name, path=prefix, type="uri_folder",
                                         tags={"new_files": str(len(fresh))}).uri)
    elif mode == "file":
        for url in fresh:
            created.append(create_data_asset(asset_name, path=url, type="uri_file", tags={"source": url}).uri)
    Variable.set(variable, state, overwrite=True)
    return created
