"""Code snapshots: ignore files, content addressing, recorded sizes, links and checkout."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from helpers import write
from prefect_ml.exceptions import ValidationError
from prefect_ml.tasks.snapshot import checkout, list_files, take_snapshot


def _names(root: Path) -> list[str]:
    files, _ = list_files(root)
    return [p.as_posix() for p in files]


def _stored(store: Path) -> list[str]:
    """Snapshot folders in the store (staging folders start with a dot)."""
    return sorted(p.name for p in store.iterdir() if not p.name.startswith("."))


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def code(tmp_path) -> Path:
    root = tmp_path / "code"
    write(root / "train.py", "print('train')\n")
    write(root / "pkg" / "util.py", "X = 1\n")
    return root


# ------------------------------------------------------------ ignore files
def test_amlignore_is_honoured_and_wins_over_gitignore(code):
    write(code / "data.csv", "a,b\n")
    write(code / "notes.md", "notes\n")
    write(code / "pkg" / "big.bin", "x" * 100)
    write(code / ".gitignore", "notes.md\n")
    write(code / ".amlignore", "*.csv\n*.bin\n")
    files, used = list_files(code)
    names = [p.as_posix() for p in files]
    assert used == ".amlignore"
    # .gitignore's patterns are not applied when .amlignore exists; .amlignore's are.
    assert "notes.md" in names
    assert "data.csv" not in names and "pkg/big.bin" not in names
    assert ".amlignore" not in names
    assert {"train.py", "pkg/util.py"} <= set(names)


def test_gitignore_is_used_when_there_is_no_amlignore(code):
    write(code / "data.csv", "a,b\n")
    write(code / "logs" / "run.log", "log\n")
    write(code / ".gitignore", "*.csv\nlogs/\n")
    files, used = list_files(code)
    names = [p.as_posix() for p in files]
    assert used == ".gitignore"
    assert "data.csv" not in names and "logs/run.log" not in names
    assert {"train.py", "pkg/util.py"} <= set(names)


def test_no_ignore_file_keeps_everything_but_always_ignored(code):
    write(code / "data.csv", "a,b\n")
    files, used = list_files(code)
    assert used is None
    assert [p.as_posix() for p in files] == ["data.csv", "pkg/util.py", "train.py"]


@pytest.mark.parametrize("with_ignore_file", [False, True])
def test_pycache_and_git_are_always_left_out(code, with_ignore_file, tmp_path):
    write(code / "__pycache__" / "train.cpython-311.pyc", "bytecode")
    write(code / "pkg" / "__pycache__" / "util.cpython-311.pyc", "bytecode")
    write(code / ".git" / "HEAD", "ref: refs/heads/main\n")
    write(code / ".git" / "objects" / "ab" / "cdef", "blob")
    if with_ignore_file:
        write(code / ".amlignore", "# nothing else\n")
    names = _names(code)
    assert not [n for n in names if "__pycache__" in n or n.startswith(".git/")], names
    assert {"train.py", "pkg/util.py"} <= set(names)
    snapshot = take_snapshot(code, store=tmp_path / "store")
    assert not (Path(snapshot.path) / "__pycache__").exists()
    assert not (Path(snapshot.path) / ".git").exists()


# ------------------------------------------------------- content addressing
def test_same_content_gives_same_hash_and_is_stored_once(code, tmp_path):
    store = tmp_path / "store"
    first = take_snapshot(code, store=store)
    # An identical copy elsewhere: same hash, same stored folder, nothing added.
    twin = tmp_path / "twin"
    for rel, data in _tree(code).items():
        (twin / rel).parent.mkdir(parents=True, exist_ok=True)
        (twin / rel).write_bytes(data)
    second = take_snapshot(twin, store=store)
    again = take_snapshot(code, store=store)
    assert first.hash == second.hash == again.hash
    assert first.path == second.path == str(store / first.hash)
    assert _stored(store) == [first.hash]
    assert not [p for p in store.iterdir() if p.name.startswith(".")]  # no staging left behind
    assert second.source == str(twin.resolve()) and first.source == str(code.resolve())
    assert _tree(Path(first.path)) == _tree(code)


def test_changed_content_gives_a_new_hash(code, tmp_path):
    store = tmp_path / "store"
    before = take_snapshot(code, store=store)
    (code / "train.py").write_text("print('train v2')\n")
    after = take_snapshot(code, store=store)
    assert after.hash != before.hash
    assert _stored(store) == sorted([before.hash, after.hash])
    # The earlier snapshot is unchanged.
    assert (Path(before.path) / "train.py").read_text() == "print('train')\n"
    assert (Path(after.path) / "train.py").read_text() == "print('train v2')\n"
    # A renamed file with the same bytes is a different snapshot too.
    (code / "pkg" / "util.py").rename(code / "pkg" / "utils.py")
    assert take_snapshot(code, store=store).hash not in (before.hash, after.hash)


def test_hash_is_the_documented_tree_digest(code, tmp_path):
    snapshot = take_snapshot(code, store=tmp_path / "store")
    tree = hashlib.sha256()
    for rel in ["pkg/util.py", "train.py"]:
        digest = hashlib.sha256((code / rel).read_bytes()).hexdigest()
        tree.update(f"{rel}\0{digest}\0{0}\n".encode())
    assert snapshot.hash == tree.hexdigest()


def test_recorded_file_count_and_size_are_exact(code, tmp_path):
    write(code / "data" / "rows.csv", "a,b\n" + "1,2\n" * 250)
    (code / "empty.txt").write_bytes(b"")
    write(code / "__pycache__" / "x.pyc", "not counted" * 10)
    write(code / ".amlignore", "ignored.txt\n")
    write(code / "ignored.txt", "not counted either")
    expected = ["data/rows.csv", "empty.txt", "pkg/util.py", "train.py"]
    snapshot = take_snapshot(code, store=tmp_path / "store")
    assert snapshot.file_count == len(expected) == 4
    assert snapshot.size_bytes == sum((code / rel).stat().st_size for rel in expected) == 4 + 1000 + 0 + 6 + 15
    assert snapshot.ignore_file == ".amlignore"
    assert sorted(_tree(Path(snapshot.path))) == expected
    assert snapshot.to_dict()["file_count"] == 4


def test_executable_bit_changes_the_hash(code, tmp_path):
    store = tmp_path / "store"
    script = write(code / "run.sh", "#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    plain = take_snapshot(code, store=store)
    script.chmod(0o755)
    executable = take_snapshot(code, store=store)
    assert executable.hash != plain.hash
    assert executable.size_bytes == plain.size_bytes and executable.file_count == plain.file_count
    assert os.access(Path(executable.path) / "run.sh", os.X_OK)
    script.chmod(0o644)
    assert take_snapshot(code, store=store).hash == plain.hash


# ----------------------------------------------------------------- links
def test_links_pointing_inside_the_folder_are_fine(code, tmp_path):
    (code / "entry.py").symlink_to("train.py")
    (code / "lib").symlink_to("pkg", target_is_directory=True)
    names = _names(code)
    assert {"entry.py", "lib/util.py", "pkg/util.py", "train.py"} <= set(names)
    snapshot = take_snapshot(code, store=tmp_path / "store")
    stored = Path(snapshot.path)
    # Links are stored as the files they point at.
    assert not (stored / "entry.py").is_symlink() and (stored / "entry.py").read_text() == "print('train')\n"
    assert (stored / "lib" / "util.py").read_text() == "X = 1\n"


def test_files_under_a_folder_link_follow_the_ignore_rules(code, tmp_path):
    write(code / "pkg" / "__pycache__" / "util.cpython-311.pyc", "bytecode")
    write(code / "pkg" / "debug.log", "log")
    write(code / ".amlignore", "*.log\n")
    (code / "lib").symlink_to("pkg", target_is_directory=True)
    names = _names(code)
    assert "lib/util.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".log")], names


def test_a_link_outside_below_a_folder_link_raises(code, tmp_path):
    # private/ is ignored, but reachable through the folder link `priv`, which must not smuggle it in.
    write(tmp_path / "outside" / "secret.txt", "secret\n")
    (code / "private").mkdir()
    (code / "private" / "leak.txt").symlink_to(tmp_path / "outside" / "secret.txt")
    write(code / ".amlignore", "private/\n")
    assert "private/leak.txt" not in _names(code)
    (code / "priv").symlink_to("private", target_is_directory=True)
    with pytest.raises(ValidationError) as caught:
        list_files(code)
    assert [p.field for p in caught.value.problems] == ["code"]


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_link_pointing_outside_raises_naming_code(code, tmp_path, kind):
    outside = tmp_path / "outside"
    write(outside / "secret.txt", "secret\n")
    if kind == "file":
        (code / "secret.txt").symlink_to(outside / "secret.txt")
    else:
        (code / "pkg" / "shared").symlink_to(outside, target_is_directory=True)
    store = tmp_path / "store"
    with pytest.raises(ValidationError) as caught:
        take_snapshot(code, store=store)
    assert [p.field for p in caught.value.problems] == ["code"]
    assert "outside the code folder" in str(caught.value)
    with pytest.raises(ValidationError):
        list_files(code)
    assert not store.exists() or not list(store.iterdir())  # nothing stored


def test_a_link_outside_that_is_ignored_is_not_an_error(code, tmp_path):
    write(tmp_path / "outside.txt", "x")
    (code / "external.txt").symlink_to(tmp_path / "outside.txt")
    write(code / ".amlignore", "external.txt\n")
    assert "external.txt" not in _names(code)
    assert take_snapshot(code, store=tmp_path / "store").file_count == 2


def test_missing_folder_raises_validation_error(tmp_path):
    store = tmp_path / "store"
    with pytest.raises(ValidationError) as caught:
        take_snapshot(tmp_path / "nowhere", store=store)
    assert [p.field for p in caught.value.problems] == ["code"]
    assert "code folder not found" in str(caught.value)
    # A file is not a folder either.
    with pytest.raises(ValidationError):
        take_snapshot(write(tmp_path / "file.py", "x"), store=store)
    assert not store.exists()


# --------------------------------------------------------------- checkout
def test_checkout_copies_the_snapshot_and_leaves_it_unchanged(code, tmp_path):
    snapshot = take_snapshot(code, store=tmp_path / "store")
    stored = _tree(Path(snapshot.path))
    workdir = tmp_path / "job" / "wd"
    assert checkout(snapshot.path, workdir) == workdir
    assert _tree(workdir) == stored == _tree(code)
    # The job may change its working folder; the snapshot stays as it was.
    (workdir / "train.py").write_text("changed")
    write(workdir / "outputs" / "model.pkl", "m")
    assert _tree(Path(snapshot.path)) == stored
    # Checking out again into an existing folder refreshes the snapshot's files.
    checkout(snapshot.path, workdir)
    assert (workdir / "train.py").read_text() == "print('train')\n"
