"""Where a DIY backend keeps its blobs: one small interface, one driver per URL scheme.

The layout (``.pulumi/stacks/...``, locks, history) lives in ``offline_pulumi.backend`` and is
the same for every driver, as in the Pulumi CLI, where ``file://`` and ``postgres://`` are two
blob drivers under the same DIY backend code.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from offline_pulumi.errors import CLIError, UnsupportedError


class BlobNotFound(KeyError):
    """Raised by ``get`` and ``copy`` when a key does not exist."""


class StorageError(CLIError):
    """Raised when the store cannot be reached or answers with an error (no credentials shown)."""


class Storage(Protocol):
    """A flat key/value store of blobs whose keys use ``/`` as a directory separator."""

    def get(self, key: str) -> bytes:
        """The blob's bytes; raise BlobNotFound if the key does not exist."""

    def put(self, key: str, data: bytes) -> None:
        """Create or replace the blob, atomically."""

    def ensure(self, key: str, data: bytes) -> None:
        """Create the blob with ``data`` unless it exists (then it is left as it is).

        Only for blobs nobody deletes (the store's ``meta.yaml``): a store may remember the
        keys it made sure of and not ask again.
        """

    def list(self, prefix: str, delimiter: str | None = None) -> list[str]:
        """Sorted keys starting with ``prefix``; with a delimiter, deeper keys collapse to their
        directory (``prefix + name + delimiter``), as in a blob store's list call."""

    def copy(self, src: str, dst: str) -> None:
        """Copy a blob; raise BlobNotFound if ``src`` does not exist."""

    def delete(self, *keys: str) -> None:
        """Delete blobs, in one transaction where the store has them; a missing key is not
        an error."""

    def remove_empty(self, prefix: str) -> None:
        """Drop directories left empty under ``prefix`` (nothing to do without directories)."""

    def exclusive(self, name: str) -> AbstractContextManager[None]:
        """Serialise a critical section among engines sharing this store (best effort)."""

    def location(self, key: str) -> str:
        """The key as a user would find it (a path, or the store's URL without credentials)."""

    def check(self) -> None:
        """Raise StorageError unless the store answers."""

    def close(self) -> None:
        """Release connections."""


def open_storage(url: str, cwd: Path, timeout: float | None = None) -> Storage:
    """The driver for a backend URL (``file://`` or ``postgres://``); raise for other schemes.

    ``timeout``: seconds to wait for a database connection (default: the driver's).
    """
    scheme = urlsplit(url).scheme
    if scheme == "file":
        from offline_pulumi.storage.file import FileStorage

        return FileStorage(file_url_path(url, cwd))
    if scheme in ("postgres", "postgresql"):
        from offline_pulumi.storage import proxy
        from offline_pulumi.storage.postgres import PostgresStorage

        proxied = proxy.open_proxied(url) if proxy.enabled() else None
        if proxied is not None:
            return proxied

        return PostgresStorage.from_url(url, timeout)
    raise UnsupportedError(f"the backend '{scheme}://'")


def file_url_path(url: str, cwd: Path) -> Path:
    """The directory a ``file://`` URL names (``~`` is the home directory, relative is to cwd)."""
    raw = url[len("file://"):].split("?", 1)[0]
    path = Path.home() / raw[2:] if raw == "~" or raw.startswith("~/") else cwd / raw
    return path.resolve()


def redact_url(url: str) -> str:
    """The URL without its password (and without query values that may hold secrets)."""
    parts = urlsplit(url)
    if parts.password is None and not parts.query:
        return url
    # The netloc as given after its credentials (a port that is not a number stays as it is).
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.password is not None else (
        f"{parts.username}@" if parts.username else "")
    query = "&".join(item if item.split("=", 1)[0] in _SAFE_QUERY else f"{item.split('=', 1)[0]}=***"
                     for item in parts.query.split("&") if item)
    return f"{parts.scheme}://{user}{host}{parts.path}" + (f"?{query}" if query else "")


# Query parameters that never hold secrets and help a reader find the store.
_SAFE_QUERY = frozenset({"sslmode", "table", "connect_timeout", "application_name"})

