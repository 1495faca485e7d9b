"""The shared snapshot store at a remote fsspec URL (``PREFECT_ML_SNAPSHOT_STORE``).

Which URL: the most real remote store that runs offline here is HTTP. No S3, Azure Blob, SFTP or FTP server or
their fsspec clients (s3fs, adlfs, paramiko, pyftpdlib) are installed, and ``memory://`` lives in one process, so
it cannot be shared between a submitter and a worker. fsspec's HTTP filesystem (aiohttp) writes with POST/PUT and
lists folders from their HTML index; the server below is the standard library's file server plus a POST/PUT
handler, on a real TCP port. The submitter uploads through it; the "worker" (another ``PREFECT_ML_HOME``, so no
local copy) downloads through it.
"""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from helpers import write


class _UploadHandler(http.server.SimpleHTTPRequestHandler):
    """GET/HEAD (files and HTML folder listings) plus POST/PUT storing the body (chunked or not)."""

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        target = Path(self.translate_path(self.path))
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target.write_bytes(bytes(body))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST


@pytest.fixture
def http_store(tmp_path):
    """``(url, root)``: an HTTP server storing uploads under ``root``; stopped afterwards."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_UploadHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/snapshots", root / "snapshots"
    finally:
        server.shutdown()
        server.server_close()


def test_snapshot_goes_through_an_http_store_and_the_worker_side_fetches_it(http_store, tmp_path, monkeypatch):
    from prefect_ml.compute.submit import SNAPSHOT_STORE_ENV, fetch_snapshot, upload_snapshot

    url, served = http_store
    code = tmp_path / "code"
    write(code / "train.py", "print('train')\n")
    write(code / "pkg" / "util.py", "X = 1\n")
    write(code / "empty.txt", "")
    monkeypatch.setenv(SNAPSHOT_STORE_ENV, url)
    snapshot = upload_snapshot(str(code))
    assert snapshot["uri"] == f"{url}/{snapshot['hash']}/" and snapshot["file_count"] == 3
    stored = served / snapshot["hash"]
    assert {p.relative_to(stored).as_posix(): p.read_text() for p in stored.rglob("*") if p.is_file()} == {
        "train.py": "print('train')\n", "pkg/util.py": "X = 1\n", "empty.txt": ""}

    monkeypatch.setenv("PREFECT_ML_HOME", str(tmp_path / "worker-home"))  # the worker's machine: no local copy
    local = Path(fetch_snapshot(snapshot))
    assert local.is_relative_to(tmp_path / "worker-home") and local.name == snapshot["hash"]
    assert {p.relative_to(local).as_posix(): p.read_text() for p in local.rglob("*") if p.is_file()} == {
        "train.py": "print('train')\n", "pkg/util.py": "X = 1\n", "empty.txt": ""}
    assert fetch_snapshot(snapshot) == str(local)  # fetched once, then reused
