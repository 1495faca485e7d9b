"""Code snapshots: a job's ``code`` folder copied into content-addressed storage."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from prefect_ml import settings
from prefect_ml.exceptions import Problem, ValidationError

IGNORE_FILES = (".amlignore", ".gitignore")
#: Always left out, as Azure does.
ALWAYS_IGNORED = (".git/", "__pycache__/", ".amlignore", ".ipynb_checkpoints/")


@dataclass(frozen=True)
class Snapshot:
    """A stored code snapshot.

    Attributes:
        hash: SHA-256 over the sorted (relative path, file SHA-256, executable bit) entries.
        path: Folder holding the snapshot's files (read-only by convention).
        file_count: Number of files.
        size_bytes: Total size of the files, bytes.
        source: The code folder it was taken from.
        ignore_file: The ignore file honoured (``.amlignore`` or ``.gitignore``), if any.
    """

    hash: str
    path: str
    file_count: int
    size_bytes: int
    source: str
    ignore_file: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _ignore_spec(root: Path):
    import pathspec

    patterns = list(ALWAYS_IGNORED)
    used = None
    for name in IGNORE_FILES:
        candidate = root / name
        if candidate.is_file():
            patterns += candidate.read_text(errors="replace").splitlines()
            used = name
            break
    return pathspec.GitIgnoreSpec.from_lines(patterns), used


def list_files(root: Path) -> tuple[list[Path], str | None]:
    """The files of ``root`` that a snapshot holds, as paths relative to ``root``.

    Honours ``.amlignore``, else ``.gitignore`` (gitignore syntax, patterns of the top-level
    file). Symbolic links are followed only when they stay inside ``root``.

    Raises:
        ValidationError: A symbolic link points outside ``root`` (field ``code``).
    """
    spec, used = _ignore_spec(root)
    files: list[Path] = []
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        current = Path(dirpath)
        rel_dir = current.relative_to(root)
        kept_dirs = []
        for d in sorted(dirnames):
            rel = (rel_dir / d).as_posix() + "/"
            full = current / d
            if spec.match_file(rel):
                continue
            if full.is_symlink():
                _check_inside(full, real_root, root)
                # Followed links to folders inside the root are walked as ordinary files below.
                for sub in sorted(full.rglob("*")):
                    # The ignore patterns and the inside-the-root rule apply below the link too.
                    if spec.match_file(sub.relative_to(root).as_posix()):
                        continue
                    _check_inside(sub, real_root, root)
                    if sub.is_file():
                        files.append(sub.relative_to(root))
                continue
            kept_dirs.append(d)
        dirnames[:] = kept_dirs
        for f in sorted(filenames):
            rel = rel_dir / f
            if spec.match_file(rel.as_posix()):
                continue
            full = current / f
            if full.is_symlink():
                _check_inside(full, real_root, root)
            if full.is_file():
                files.append(rel)
    return sorted(files), used


def _check_inside(path: Path, real_root: Path, root: Path) -> None:
    target = path.resolve()
    if target != real_root and real_root not in target.parents:
        raise ValidationError(
            [Problem("code", f"{path.relative_to(root)} links to {target}, outside the code folder {root}; "
                             "snapshots may only hold files inside it (copy the file in or add it to .amlignore)")],
            title="Invalid code folder",
        )


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_code_folder(code: str | Path) -> tuple[list[Path], str | None]:
    """Check that ``code`` is a folder a snapshot can be taken of; return :func:`list_files`'s result.

    Raises:
        ValidationError: The folder is missing or holds links that escape it (field ``code``).
    """
    root = Path(code).resolve()
    if not root.is_dir():
        raise ValidationError([Problem("code", f"code folder not found: {root}", value=str(code))],
                              title="Invalid code folder")
    return list_files(Path(code))


def take_snapshot(code: str | Path, store: Path | None = None) -> Snapshot:
    """Copy a code folder into the content-addressed snapshot store.

    Identical content gives the same hash and is stored once.

    Args:
        code: The code folder.
        store: The store's root folder (default ``$PREFECT_ML_HOME/snapshots``).

    Returns:
        The :class:`Snapshot`.

    Raises:
        ValidationError: The folder is missing or holds links that escape it.
    """
    root = Path(code).resolve()
    files, used = check_code_folder(code)
    entries = []
    size = 0
    for rel in files:
        full = Path(code) / rel
        executable = os.access(full, os.X_OK)
        entries.append((rel.as_posix(), _file_digest(full), executable))
        size += full.stat().st_size
    tree = hashlib.sha256()
    for rel, digest, executable in entries:
        tree.update(f"{rel}\0{digest}\0{int(executable)}\n".encode())
    tree_hash = tree.hexdigest()
    store = store or settings.snapshots_dir()
    target = store / tree_hash
    if not target.exists():
        staging = store / f".{tree_hash}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"  # threads share a pid
        shutil.rmtree(staging, ignore_errors=True)
        for rel, _, _ in entries:
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(code) / rel, dest)
        staging.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(target)
        except OSError:  # another process stored the same snapshot first
            shutil.rmtree(staging, ignore_errors=True)
    return Snapshot(hash=tree_hash, path=str(target), file_count=len(entries), size_bytes=size,
                    source=str(root), ignore_file=used)


def checkout(snapshot_path: str | Path, dest: Path) -> Path:
    """Copy a snapshot into a job's working folder (the snapshot itself stays unchanged)."""
    shutil.copytree(snapshot_path, dest, dirs_exist_ok=True)
    return dest


@task(name="snapshot-code", cache_policy=NO_CACHE, persist_result=False)
def snapshot_code(code: str) -> dict:
    """Prefect task around :func:`take_snapshot`; logs the snapshot's hash and size."""
    from prefect import get_run_logger

    snapshot = take_snapshot(code)
    get_run_logger().info("Code snapshot %s: %d file(s), %d bytes from %s%s", snapshot.hash[:12], snapshot.file_count,
                          snapshot.size_bytes, snapshot.source,
                          f" (honouring {snapshot.ignore_file})" if snapshot.ignore_file else "")
    return snapshot.to_dict()
