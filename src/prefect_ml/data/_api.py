"""Small helpers around the Prefect API shared by the data modules (private)."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")

#: Page size used when listing block documents.
_PAGE = 200


def ensure_api() -> None:
    """Point this process at prefect-ml's Prefect API (see :func:`prefect_ml.compute.server.ensure_api`)."""
    from prefect_ml.compute.server import ensure_api as _ensure

    _ensure()


def load_block(block_type: type[T], document_name: str) -> T | None:
    """Load block document DOCUMENT_NAME of BLOCK_TYPE, or ``None`` when it does not exist.

    Works from synchronous code, including inside a running event loop or an async flow.
    """
    from prefect_ml._prefect import prefect_client
    from prefect.exceptions import ObjectNotFound

    ensure_api()
    slug = block_type.get_block_type_slug()  # type: ignore[attr-defined]
    with prefect_client() as client:
        try:
            document = client.read_block_document_by_name(name=document_name, block_type_slug=slug)
        except ObjectNotFound:
            return None
    return block_type._from_block_document(document)  # type: ignore[attr-defined]


def list_documents(block_type: type) -> list[Any]:
    """Every block document of BLOCK_TYPE (``prefect.client.schemas.objects.BlockDocument``), all pages.

    Returns an empty list when the block type has never been registered.
    """
    from prefect_ml._prefect import prefect_client
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    ensure_api()
    slug = block_type.get_block_type_slug()
    documents: list[Any] = []
    with prefect_client() as client:
        while True:
            try:
                page = client.read_block_documents_by_type(
                    block_type_slug=slug, offset=len(documents), limit=_PAGE, include_secrets=True
                )
            except (ObjectNotFound, PrefectHTTPStatusError) as error:
                if isinstance(error, PrefectHTTPStatusError) and error.response.status_code != 404:
                    raise
                return []  # the block type was never registered
            documents.extend(page)
            if len(page) < _PAGE:
                return documents


def save_block(block: Any, document_name: str, *, overwrite: bool) -> bool:
    """Save BLOCK as DOCUMENT_NAME; return ``False`` (saving nothing) when it exists and not OVERWRITE."""
    ensure_api()
    try:
        block.save(document_name, overwrite=overwrite, _sync=True)
    except ValueError as error:
        if not overwrite and "already in use" in str(error):
            return False
        raise
    return True
