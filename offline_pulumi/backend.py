"""The DIY backend: checkpoints, history, backups and locks under ``.pulumi/`` of a store.

The layout is the CLI's; where the blobs live (a directory, a PostgreSQL table) is the
storage driver's business (``offline_pulumi.storage``).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from offline_pulumi.errors import (
    CLIError,
    StackAlreadyExists,
    StackLocked,
    StackNotFound,
    UnsupportedError,
)
from offline_pulumi.fileio import encode_json
from offline_pulumi.project import pulumi_home
from offline_pulumi.storage import BlobNotFound, Storage, file_url_path, open_storage

ORG = "organization"
ROOT = ".pulumi"
META = f"{ROOT}/meta.yaml"
SCHEMES = ("file", "postgres", "postgresql")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_NAME_PREFIX = re.compile(rb"[A-Za-z0-9_.-]*")


class StackRef(NamedTuple):
    """A stack of a project in the backend."""

    project: str
    name: str

    @property
    def fqn(self) -> str:
        """``organization/<project>/<stack>``."""
        return f"{ORG}/{self.project}/{self.name}"


def parse_stack_ref(text: str, project: str) -> StackRef:
    """Parse ``S``, ``organization/S`` or ``organization/P/S``; raise CLIError otherwise.

    With the CLI's checks and messages (the file backend's ``ParseReference``,
    ``tokens.ValidateProjectName`` and ``tokens.ParseStackName``).
    """
    if not text:
        raise CLIError("stack name must not be empty")
    org, name = "", ""
    parts = text.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        org, name = parts
    elif len(parts) == 3:
        org, project_part, name = parts
        project = project_part or project
    # More parts set nothing, as in the CLI: the stack name is then missing.
    if (org or ORG) != ORG:
        raise CLIError(f"organization name must be '{ORG}'")
    if not project:
        raise CLIError("project names may not be empty")
    if len(project.encode()) > 100:
        raise CLIError("project names are limited to 100 characters")
    if not _NAME.fullmatch(project):
        raise CLIError("project names may only contain alphanumerics, hyphens, underscores, "
                       "and periods")
    _check_stack_name(name)
    return StackRef(project, name)


def _check_stack_name(name: str) -> None:
    encoded = name.encode()
    if not encoded:
        raise CLIError("a stack name may not be empty")
    if len(encoded) > 100:
        raise CLIError("a stack name cannot exceed 100 characters")
    valid = _NAME_PREFIX.match(encoded)
    failure = valid.end() if valid else 0
    if failure != len(encoded):
        raise CLIError("a stack name may only contain alphanumeric, hyphens, underscores, or "
                       f"periods: invalid character {_go_char(encoded[failure])} at position "
                       f"{failure}")


def _go_char(byte: int) -> str:
    """A byte as Go's ``%q`` prints it: a quoted character literal."""
    escapes = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r",
               39: "\\'", 92: "\\\\"}
    if byte in escapes:
        return f"'{escapes[byte]}'"
    if chr(byte).isprintable():
        return f"'{chr(byte)}'"
    return f"'\\x{byte:02x}'" if byte < 0x80 else f"'\\u{byte:04x}'"


def resolve_backend_url(project_url: str | None, cwd: Path) -> tuple[str, Path | None]:
    """The backend URL (env, project, then credentials) and, for ``file://``, its directory."""
    url = os.environ.get("PULUMI_BACKEND_URL") or project_url or _logged_in_url()
    if not url:
        raise CLIError("PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI "
                       "sessions (the offline engine needs PULUMI_BACKEND_URL=file://<dir> "
                       "or postgres://...)")
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise UnsupportedError(f"the backend '{scheme}://'")
    return url, file_url_path(url, cwd) if scheme == "file" else None


def open_backend(project_url: str | None, cwd: Path) -> DiyBackend:
    """The backend the environment, project or login names, with its layout created."""
    url, _ = resolve_backend_url(project_url, cwd)
    return DiyBackend(url, open_storage(url, cwd)).open()


def _logged_in_url() -> str | None:
    creds = pulumi_home() / "credentials.json"
    try:
        current = json.loads(creds.read_text()).get("current")
    except (OSError, ValueError):
        return None
    return current if isinstance(current, str) else None


def now_rfc3339() -> str:
    """The current UTC time with nanosecond-style precision, as Go writes it."""
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DiyBackend:
    """A DIY backend: the CLI's ``.pulumi/`` layout over one storage driver."""

    def __init__(self, url: str, storage: Storage) -> None:
        self.url = url
        self.storage = storage
        self.keep_backups = not _env_true("PULUMI_DIY_BACKEND_DISABLE_CHECKPOINT_BACKUPS")
        self._remove_empty_lock_dir: str | None = None

    def open(self) -> DiyBackend:
        """Create the store layout on first use."""
        self.storage.ensure(META, b"version: 1\n")
        return self

    # -- keys --------------------------------------------------------------------------
    @staticmethod
    def checkpoint_key(ref: StackRef) -> str:
        """``.pulumi/stacks/<P>/<S>.json``."""
        return f"{ROOT}/stacks/{ref.project}/{ref.name}.json"

    @staticmethod
    def history_prefix(ref: StackRef) -> str:
        """``.pulumi/history/<P>/<S>/``."""
        return f"{ROOT}/history/{ref.project}/{ref.name}/"

    @staticmethod
    def backups_prefix(ref: StackRef) -> str:
        """``.pulumi/backups/<P>/<S>/``."""
        return f"{ROOT}/backups/{ref.project}/{ref.name}/"

    @staticmethod
    def lock_prefix(ref: StackRef) -> str:
        """``.pulumi/locks/organization/<P>/<S>/``."""
        return f"{ROOT}/locks/{ORG}/{ref.project}/{ref.name}/"

    @staticmethod
    def tags_key(ref: StackRef) -> str:
        """``.pulumi/stacks/<P>/<S>.pulumi-tags``."""
        return f"{ROOT}/stacks/{ref.project}/{ref.name}.pulumi-tags"

    def read_tags(self, ref: StackRef) -> dict[str, str]:
        """The stack's tags (none yet: empty)."""
        try:
            tags: dict[str, str] = json.loads(self.storage.get(self.tags_key(ref)))
        except (BlobNotFound, ValueError):
            return {}
        return tags

    def write_tags(self, ref: StackRef, tags: dict[str, str]) -> None:
        """Replace the stack's tags."""
        self.storage.put(self.tags_key(ref), encode_json(tags))

    # -- stacks ------------------------------------------------------------------------
    def exists(self, ref: StackRef) -> bool:
        """Whether the stack has a checkpoint."""
        key = self.checkpoint_key(ref)
        return key in self.storage.list(key)

    def require(self, ref: StackRef) -> None:
        """Raise StackNotFound unless the stack exists."""
        if not self.exists(ref):
            raise StackNotFound(ref.name)

    def create(self, ref: StackRef, latest: dict[str, Any]) -> None:
        """Write the first checkpoint of a new stack; raise if it exists."""
        if self.exists(ref):
            raise StackAlreadyExists(ref.fqn)
        self._write_checkpoint(ref, latest, backup=False)

    def read_latest(self, ref: StackRef) -> dict[str, Any] | None:
        """The stack's latest deployment (None when never deployed); raise if missing."""
        try:
            data = json.loads(self.storage.get(self.checkpoint_key(ref)))
        except BlobNotFound:
            raise StackNotFound(ref.name) from None
        except ValueError as exc:
            raise CLIError(f"the checkpoint of stack '{ref.name}' is corrupt: {exc}") from exc
        latest: dict[str, Any] | None = (data.get("checkpoint") or {}).get("latest")
        return latest

    def save_latest(self, ref: StackRef, latest: dict[str, Any],
                    encoded: bytes | None = None) -> None:
        """Persist a new checkpoint, keeping the previous one as ``.bak``; ``encoded``: its
        ``checkpoint_bytes``, if the caller has them already."""
        self._write_checkpoint(ref, latest, backup=self.keep_backups, encoded=encoded)

    def _write_checkpoint(self, ref: StackRef, latest: dict[str, Any], backup: bool,
                          encoded: bytes | None = None) -> None:
        key = self.checkpoint_key(ref)
        if backup:
            with suppress(BlobNotFound):
                self.storage.copy(key, key + ".bak")
        self.storage.put(key, encoded if encoded is not None else checkpoint_bytes(ref, latest))

    def list_stacks(self, project: str | None) -> list[StackRef]:
        """Stacks of one project (or all), sorted by name."""
        base = f"{ROOT}/stacks/"
        refs = []
        for key in self.storage.list(base + (f"{project}/" if project else "")):
            rel = key[len(base):]
            if rel.endswith(".json") and rel.count("/") == 1:
                folder, file = rel.split("/")
                refs.append(StackRef(folder, file[: -len(".json")]))
        return sorted(refs, key=lambda r: (r.name, r.project))

    def remove(self, ref: StackRef) -> None:
        """Delete the stack's checkpoint, tags and history."""
        key = self.checkpoint_key(ref)
        if self.keep_backups:
            self.storage.copy(key, key + ".bak")
        history = self.history_prefix(ref)
        # One deletion: a database commits it once.
        self.storage.delete(key, self.tags_key(ref), *self.storage.list(history),
                            *(() if self.keep_backups else (key + ".bak",)))
        self.storage.remove_empty(history)
        # The lock held while removing is released after this; its empty directory is not.
        self._remove_empty_lock_dir = self.lock_prefix(ref)

    def rename(self, old: StackRef, new: StackRef) -> None:
        """Move a stack to a new name (and project), rewriting the URNs of its resources.

        As the real DIY backend: under the old stack's lock, refuse an existing target, write
        the new checkpoint, keep the old one only as ``.bak``, and move history and tags.
        """
        with self.lock(old):
            if self.exists(new):
                raise CLIError(f"a stack named {new.fqn} already exists")
            latest = self.read_latest(old)
            if latest is not None:
                latest = json.loads(_renamed_urns(json.dumps(latest), old, new))
            self._write_checkpoint(new, latest or {}, backup=False)
            key = self.checkpoint_key(old)
            if self.keep_backups:
                self.storage.copy(key, key + ".bak")
            self.storage.delete(key)
            self._move(self.tags_key(old), self.tags_key(new))
            old_history, new_history = self.history_prefix(old), self.history_prefix(new)
            for entry in self.storage.list(old_history):
                self._move(entry, new_history + entry[len(old_history):])
            self.storage.remove_empty(old_history)
            self._remove_empty_lock_dir = self.lock_prefix(old)

    def _move(self, source: str, target: str) -> None:
        """Copy a blob to a new key and delete the old one (nothing to do if it is absent)."""
        try:
            self.storage.copy(source, target)
        except BlobNotFound:
            return
        self.storage.delete(source)

    # -- history and backups -----------------------------------------------------------
    def add_history(self, ref: StackRef, info: dict[str, Any], latest: dict[str, Any]) -> None:
        """Record a finished operation and a copy of its checkpoint."""
        stamp = time.time_ns()
        history = self.history_prefix(ref)
        self.storage.put(f"{history}{ref.name}-{stamp}.history.json", encode_json(info))
        checkpoint = checkpoint_bytes(ref, latest)
        self.storage.put(f"{history}{ref.name}-{stamp}.checkpoint.json", checkpoint)
        if self.keep_backups:
            self.storage.put(f"{self.backups_prefix(ref)}{ref.name}.{stamp}.json", checkpoint)

    def read_history(self, ref: StackRef) -> list[dict[str, Any]]:
        """Every recorded operation, newest first."""
        keys = [k for k in self.storage.list(self.history_prefix(ref), "/")
                if k.endswith(".history.json")]
        keys.sort(key=lambda k: int(k.rsplit("-", 1)[1].split(".")[0]), reverse=True)
        return [json.loads(self.storage.get(k)) for k in keys]

    # -- locks -------------------------------------------------------------------------
    @contextmanager
    def lock(self, ref: StackRef) -> Iterator[str]:
        """Hold the stack's lock; raise StackLocked if another process holds it."""
        directory = self.lock_prefix(ref)
        import uuid

        own = f"{directory}{uuid.uuid4()}.json"
        # Among our own engines, one at a time runs list-write-list; the lock files alone
        # (what a real CLI sees and honours) can make two racing writers both fail.
        with self.storage.exclusive(directory):
            self._raise_if_locked(directory, own)
            content = {"pid": os.getpid(), "username": _username(),
                       "hostname": os.uname().nodename, "timestamp": now_rfc3339()}
            self.storage.put(own, encode_json(content))
            try:
                self._raise_if_locked(directory, own)
            except StackLocked:
                self.storage.delete(own)
                raise
        try:
            yield own
        finally:
            self.storage.delete(own)
            if self._remove_empty_lock_dir == directory:
                self.storage.remove_empty(directory)

    def _raise_if_locked(self, directory: str, own: str) -> None:
        others = [k for k in self.storage.list(directory, "/") if k.endswith(".json") and k != own]
        if not others:
            return
        lines = []
        for key in others:
            try:
                info = json.loads(self.storage.get(key))
            except (BlobNotFound, ValueError):
                info = {}
            lines.append(f"  {self.storage.location(key)}: created by {info.get('username', '?')}@"
                         f"{info.get('hostname', '?')} (pid {info.get('pid', '?')}) at "
                         f"{info.get('timestamp', '?')}")
        raise StackLocked(
            f"the stack is currently locked by {len(others)} lock(s). Either wait for the "
            "other process(es) to end or delete the lock file with `pulumi cancel`.\n"
            + "\n".join(lines))

    def clear_locks(self, ref: StackRef) -> int:
        """Delete every lock file of the stack; return how many there were."""
        keys = [k for k in self.storage.list(self.lock_prefix(ref), "/") if k.endswith(".json")]
        self.storage.delete(*keys)
        return len(keys)


# The name the engine's other modules know the backend by.
FileBackend = DiyBackend


def checkpoint_bytes(ref: StackRef, latest: dict[str, Any]) -> bytes:
    """A stack's checkpoint file, exactly as every driver stores it."""
    return encode_json({"version": 3, "checkpoint": {"stack": ref.fqn, "latest": latest}})


def _renamed_urns(text: str, old: StackRef, new: StackRef) -> str:
    """A JSON text with every URN of ``old`` moved to ``new``.

    The root stack resource is named ``<project>-<stack>``, so its name changes too
    (pkg/resource/edit/operations.go, RenameStack).
    """
    text = text.replace(f'"urn:pulumi:{old.name}::{old.project}::',
                        f'"urn:pulumi:{new.name}::{new.project}::')
    stack_urn = f"urn:pulumi:{new.name}::{new.project}::pulumi:pulumi:Stack::"
    return text.replace(f'"{stack_urn}{old.project}-{old.name}"',
                        f'"{stack_urn}{new.project}-{new.name}"')


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def _username() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
