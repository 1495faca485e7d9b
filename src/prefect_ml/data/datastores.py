"""Datastores: named roots that ``azureml://datastores/NAME/paths/PATH`` URIs resolve against.

A datastore is a saved :class:`prefect_ml.blocks.Datastore` block whose document name is
the datastore name (mapped by :func:`prefect_ml.blocks.block_document_name`). Azure's
built-in datastores need no block: ``workspaceblobstore`` is
:func:`prefect_ml.settings.default_datastore_root` and ``workspaceartifactstore`` /
``workspacefilestore`` are folders beside it, under ``settings.home()/datastores/``.
A saved block overrides a built-in one.
"""

from __future__ import annotations

from pathlib import Path

from prefect_ml import settings
from prefect_ml.exceptions import NotFoundError, Problem, ValidationError

#: Datastores that exist without a block, as in every Azure ML workspace.
BUILTIN_DATASTORES: tuple[str, ...] = ("workspaceartifactstore", "workspaceblobstore", "workspacefilestore")

#: The datastore that local data assets are uploaded to.
DEFAULT_DATASTORE = "workspaceblobstore"


def _builtin_root(name: str) -> str:
    if name == DEFAULT_DATASTORE:
        return str(settings.default_datastore_root())
    path = settings.home() / "datastores" / name
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def get_datastore(name: str):
    """The saved :class:`~prefect_ml.blocks.Datastore` block of datastore NAME, or ``None``.

    Args:
        name: Datastore name, e.g. ``my_blob_store``.

    Returns:
        The block, or ``None`` when no block is saved under that name.
    """
    from prefect_ml.blocks import Datastore, block_document_name

    from prefect_ml.data._api import load_block

    return load_block(Datastore, block_document_name(name, field="datastore"))


def datastore_root(name: str) -> str:
    """Root URL of datastore NAME.

    Args:
        name: Datastore name as written in ``azureml://datastores/NAME/paths/...``.

    Returns:
        The saved block's ``root_url`` (an fsspec URL or absolute local folder, without a
        trailing slash unless it is a bare ``scheme://``), else for a built-in datastore its
        local folder.

    Raises:
        NotFoundError: NAME is neither saved nor built in; the message lists the existing
            datastores and how to create one.
    """
    block = get_datastore(name)
    if block is not None:
        return _strip_slash(block.root_url)
    lowered = name.strip().lower()
    if lowered in BUILTIN_DATASTORES:
        return _builtin_root(lowered)
    existing = ", ".join(n for n, _ in list_datastores()) or "none"
    raise NotFoundError(
        f"Datastore {name!r} does not exist. Existing datastores: {existing}. Create it with "
        f"prefect_ml.data.create_datastore({name!r}, root_url='s3://bucket/prefix' or '/absolute/folder') "
        "or by saving a prefect_ml.blocks.Datastore block under that name."
    )


def _strip_slash(url: str) -> str:
    if url.endswith("://") or url == "/":
        return url
    return url.rstrip("/") or url


def create_datastore(name: str, root_url: str, storage_options: dict | None = None, overwrite: bool = False):
    """Save a :class:`~prefect_ml.blocks.Datastore` block for datastore NAME.

    Args:
        name: Datastore name, e.g. ``training_data`` (stored as block document
            :func:`~prefect_ml.blocks.block_document_name` of NAME).
        root_url: fsspec URL, ``file://`` URL, or local folder; relative folders are made
            absolute against the current directory. Local folders are created.
        storage_options: fsspec filesystem keyword arguments (credentials...).
        overwrite: Replace an existing block of that name.

    Returns:
        The saved block.

    Raises:
        ValidationError: The datastore exists and OVERWRITE is false, or NAME is empty.
    """
    from prefect_ml.blocks import Datastore, block_document_name

    from prefect_ml.data._api import save_block
    from prefect_ml.data.uris import file_url_to_path

    document = block_document_name(name, field="datastore")
    if root_url.startswith("file:"):
        root_url = file_url_to_path(root_url)
    if "://" not in root_url:
        folder = Path(root_url).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        root_url = str(folder)
    block = Datastore(root_url=_strip_slash(root_url), storage_options=dict(storage_options or {}))
    if not save_block(block, document, overwrite=overwrite):
        raise ValidationError(
            [Problem("name", f"datastore {name!r} already exists (block {document!r}); "
                             "pass overwrite=True to replace it", name)],
            title="Datastore exists",
        )
    return block


def list_datastores() -> list[tuple[str, str]]:
    """Every datastore: saved blocks plus the built-in ones that no block overrides.

    Returns:
        ``(name, root_url)`` pairs sorted by name; a saved datastore's name is its block
        document name.
    """
    from prefect_ml.blocks import Datastore

    from prefect_ml.data._api import list_documents

    found = {doc.name: _strip_slash(doc.data.get("root_url", "")) for doc in list_documents(Datastore)
             if doc.name and not doc.is_anonymous}
    for name in BUILTIN_DATASTORES:
        found.setdefault(name, _builtin_root(name))
    return sorted(found.items())


def storage_options_for(uri: str) -> dict:
    """fsspec storage options of the saved datastore whose root contains URI (longest root wins).

    Args:
        uri: A resolved fsspec URL.

    Returns:
        The datastore block's ``storage_options``, or ``{}`` when no datastore holds URI.
    """
    if "://" not in uri:
        return {}
    from prefect_ml.blocks import Datastore

    from prefect_ml.data._api import list_documents

    best: tuple[int, dict] = (-1, {})
    for doc in list_documents(Datastore):
        root = _strip_slash(doc.data.get("root_url", ""))
        if "://" in root and (uri == root or uri.startswith(root.rstrip("/") + "/")) and len(root) > best[0]:
            best = (len(root), dict(doc.data.get("storage_options") or {}))
    return best[1]


__all__ = [
    "BUILTIN_DATASTORES",
    "DEFAULT_DATASTORE",
    "create_datastore",
    "datastore_root",
    "get_datastore",
    "list_datastores",
    "storage_options_for",
]
