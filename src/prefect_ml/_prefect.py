"""One synchronous Prefect client per process and API URL (private).

``prefect.get_client(sync_client=True)`` builds a new HTTP client, with a new TLS context
(~80 ms of certificate loading), on every call. prefect-ml makes many small calls per job,
so it keeps one entered client per API URL for the life of the process (httpx clients are
thread-safe).
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from typing import Any, Iterator

_clients: dict[str, Any] = {}
_lock = threading.Lock()


@contextlib.contextmanager
def prefect_client() -> Iterator[Any]:
    """Yield the process's ``SyncPrefectClient`` for the current API URL (entered, reused)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    url = str(get_current_settings().api.url or "")
    if not url:  # Prefect's temporary server: let Prefect manage the client's lifetime
        with get_client(sync_client=True) as client:
            yield client
        return
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = get_client(sync_client=True)
            client.__enter__()
            _clients[url] = client
    yield client


@atexit.register
def _close_clients() -> None:
    for client in _clients.values():
        with contextlib.suppress(Exception):
            client.__exit__(None, None, None)
    _clients.clear()
