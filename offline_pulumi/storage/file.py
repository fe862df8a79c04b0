"""The ``file://`` driver: one file per key under the backend directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from offline_pulumi.fileio import is_temp, temp_beside, write_atomic
from offline_pulumi.storage import BlobNotFound, StorageError


class FileStorage:
    """Blobs as files under ``root``; writes are atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_made = False

    def path(self, key: str) -> Path:
        """The file that holds ``key``."""
        return self.root / key

    def get(self, key: str) -> bytes:
        """The file's bytes; raise BlobNotFound if it does not exist."""
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise BlobNotFound(key) from None

    def put(self, key: str, data: bytes) -> None:
        """Write the file atomically (a temp file renamed into place)."""
        if not self._root_made:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._root_made = True
        write_atomic(self.path(key), data)

    def ensure(self, key: str, data: bytes) -> None:
        """Write the file unless it exists."""
        if not self.path(key).exists():
            self.put(key, data)

    def list(self, prefix: str, delimiter: str | None = None) -> list[str]:
        """Keys under ``prefix``; temp files of unfinished writes are skipped."""
        directory = prefix.rpartition("/")[0]
        keys: list[str] = []
        for rel, is_dir in _entries(self.root, directory):
            if not rel.startswith(prefix):
                continue
            if is_dir:
                keys.extend([rel + "/"] if delimiter == "/" else self.list(rel + "/", delimiter))
            elif not is_temp(rel.rpartition("/")[2]):
                keys.append(rel)
        return sorted(keys)

    def copy(self, src: str, dst: str) -> None:
        """Hard-link ``src`` to a temp name and rename it over ``dst`` (atomic, no data copied)."""
        source, target = self.path(src), self.path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_beside(target)
        try:
            os.link(source, tmp)
        except FileNotFoundError:
            raise BlobNotFound(src) from None
        os.replace(tmp, target)

    def delete(self, *keys: str) -> None:
        """Remove the files that exist."""
        for key in keys:
            self.path(key).unlink(missing_ok=True)

    def remove_empty(self, prefix: str) -> None:
        """Remove the directory ``prefix`` names, and its subdirectories, if they are empty."""
        top = self.path(prefix.rstrip("/"))
        if not top.is_dir():
            return
        for dirpath, _, _ in sorted(os.walk(top), key=lambda e: len(e[0]), reverse=True):
            with suppress(OSError):
                os.rmdir(dirpath)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Nothing to serialise: the lock protocol's list-write-list is enough on one disk."""
        yield

    def location(self, key: str) -> str:
        """``file://<absolute path>``."""
        return f"file://{self.path(key)}"

    def check(self) -> None:
        """Raise StorageError unless the backend directory can be written."""
        if not os.access(self.root if self.root.exists() else self.root.parent, os.W_OK):
            raise StorageError(f"the state directory {self.root} is not writable")

    def close(self) -> None:
        """Nothing to release."""


def _entries(root: Path, directory: str) -> Iterator[tuple[str, bool]]:
    """``(key, is_dir)`` of each entry of one directory (none if it does not exist)."""
    base, rel_base = (root / directory, directory + "/") if directory else (root, "")
    try:
        with os.scandir(base) as scan:
            for entry in scan:
                yield rel_base + entry.name, entry.is_dir(follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return
