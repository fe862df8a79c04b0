"""The file ("DIY") backend: checkpoints, history, backups and locks under ``R/.pulumi``."""

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
from offline_pulumi.fileio import write_atomic, write_json_atomic
from offline_pulumi.project import pulumi_home

ORG = "organization"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class StackRef(NamedTuple):
    """A stack of a project in the backend."""

    project: str
    name: str

    @property
    def fqn(self) -> str:
        """``organization/<project>/<stack>``."""
        return f"{ORG}/{self.project}/{self.name}"


def parse_stack_ref(text: str, project: str) -> StackRef:
    """Parse ``S``, ``organization/S`` or ``organization/P/S``; raise CLIError otherwise."""
    parts = text.split("/")
    if len(parts) == 1:
        ref = StackRef(project, parts[0])
    elif len(parts) == 2 and parts[0] == ORG:
        ref = StackRef(project, parts[1])
    elif len(parts) == 3 and parts[0] == ORG:
        ref = StackRef(parts[1], parts[2])
    else:
        raise CLIError(f"could not parse stack reference '{text}': the organization of a "
                       f"file backend stack must be '{ORG}'")
    if not _NAME.match(ref.name) or not _NAME.match(ref.project):
        raise CLIError(f"invalid stack name '{text}': stack names may only contain "
                       "alphanumerics, hyphens, underscores, or periods (at most 100)")
    return ref


def resolve_backend_url(project_url: str | None, cwd: Path) -> tuple[str, Path]:
    """The backend URL (env, project, then credentials) and the directory it names."""
    url = os.environ.get("PULUMI_BACKEND_URL") or project_url or _logged_in_url()
    if not url:
        raise CLIError("PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI "
                       "sessions (the offline engine needs PULUMI_BACKEND_URL=file://<dir>)")
    if not url.startswith("file://"):
        raise UnsupportedError(f"the backend '{urlsplit(url).scheme}://'")
    raw = url[len("file://"):].split("?", 1)[0]
    path = Path.home() / raw[2:] if raw == "~" or raw.startswith("~/") else cwd / raw
    return url, path.resolve()


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


class FileBackend:
    """One ``file://`` backend directory."""

    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = root
        self.meta = root / ".pulumi"
        self.keep_backups = not _env_true("PULUMI_DIY_BACKEND_DISABLE_CHECKPOINT_BACKUPS")
        self._remove_empty_lock_dir: Path | None = None

    def open(self) -> FileBackend:
        """Create the store layout on first use."""
        meta_file = self.meta / "meta.yaml"
        if not meta_file.exists():
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(meta_file, b"version: 1\n")
        return self

    # -- paths -------------------------------------------------------------------------
    def checkpoint_path(self, ref: StackRef) -> Path:
        """``.pulumi/stacks/<P>/<S>.json``."""
        return self.meta / "stacks" / ref.project / f"{ref.name}.json"

    def history_dir(self, ref: StackRef) -> Path:
        """``.pulumi/history/<P>/<S>``."""
        return self.meta / "history" / ref.project / ref.name

    def lock_dir(self, ref: StackRef) -> Path:
        """``.pulumi/locks/organization/<P>/<S>``."""
        return self.meta / "locks" / ORG / ref.project / ref.name

    def tags_path(self, ref: StackRef) -> Path:
        """``.pulumi/stacks/<P>/<S>.pulumi-tags``."""
        return self.meta / "stacks" / ref.project / f"{ref.name}.pulumi-tags"

    # -- stacks ------------------------------------------------------------------------
    def exists(self, ref: StackRef) -> bool:
        """Whether the stack has a checkpoint."""
        return self.checkpoint_path(ref).is_file()

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
            data = json.loads(self.checkpoint_path(ref).read_bytes())
        except FileNotFoundError:
            raise StackNotFound(ref.name) from None
        except ValueError as exc:
            raise CLIError(f"the checkpoint of stack '{ref.name}' is corrupt: {exc}") from exc
        latest: dict[str, Any] | None = (data.get("checkpoint") or {}).get("latest")
        return latest

    def save_latest(self, ref: StackRef, latest: dict[str, Any]) -> None:
        """Persist a new checkpoint, keeping the previous one as ``.bak``."""
        self._write_checkpoint(ref, latest, backup=self.keep_backups)

    def _write_checkpoint(self, ref: StackRef, latest: dict[str, Any], backup: bool) -> None:
        path = self.checkpoint_path(ref)
        if backup and path.exists():
            bak = path.with_name(path.name + ".bak")
            tmp = path.with_name(f".{path.name}.{os.urandom(8).hex()}.bak")
            os.link(path, tmp)
            os.replace(tmp, bak)
        checkpoint = {"version": 3, "checkpoint": {"stack": ref.fqn, "latest": latest}}
        write_json_atomic(path, checkpoint)

    def list_stacks(self, project: str | None) -> list[StackRef]:
        """Stacks of one project (or all), sorted by name."""
        base = self.meta / "stacks"
        pattern = f"{project}/*.json" if project else "*/*.json"
        refs = [StackRef(p.parent.name, p.name[: -len(".json")]) for p in base.glob(pattern)]
        return sorted(refs, key=lambda r: (r.name, r.project))

    def remove(self, ref: StackRef) -> None:
        """Delete the stack's checkpoint, tags and history."""
        path = self.checkpoint_path(ref)
        if self.keep_backups:
            os.replace(path, path.with_name(path.name + ".bak"))
        else:
            path.unlink()
            path.with_name(path.name + ".bak").unlink(missing_ok=True)
        self.tags_path(ref).unlink(missing_ok=True)
        _remove_tree(self.history_dir(ref))
        # The lock held while removing is released after this; its empty directory is not.
        self._remove_empty_lock_dir = self.lock_dir(ref)

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
            path = self.checkpoint_path(old)
            if self.keep_backups:
                os.replace(path, path.with_name(path.name + ".bak"))
            else:
                path.unlink()
            if self.tags_path(old).exists():
                os.replace(self.tags_path(old), self.tags_path(new))
            if self.history_dir(old).is_dir():
                self.history_dir(new).parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.history_dir(old), self.history_dir(new))
            self._remove_empty_lock_dir = self.lock_dir(old)

    # -- history and backups -----------------------------------------------------------
    def add_history(self, ref: StackRef, info: dict[str, Any], latest: dict[str, Any]) -> None:
        """Record a finished operation and a copy of its checkpoint."""
        stamp = time.time_ns()
        directory = self.history_dir(ref)
        write_json_atomic(directory / f"{ref.name}-{stamp}.history.json", info)
        checkpoint = {"version": 3, "checkpoint": {"stack": ref.fqn, "latest": latest}}
        write_json_atomic(directory / f"{ref.name}-{stamp}.checkpoint.json", checkpoint)
        if self.keep_backups:
            backup = self.meta / "backups" / ref.project / ref.name / f"{ref.name}.{stamp}.json"
            write_json_atomic(backup, checkpoint)

    def read_history(self, ref: StackRef) -> list[dict[str, Any]]:
        """Every recorded operation, newest first."""
        files = sorted(self.history_dir(ref).glob("*.history.json"),
                       key=lambda p: int(p.name.rsplit("-", 1)[1].split(".")[0]), reverse=True)
        return [json.loads(p.read_bytes()) for p in files]

    # -- locks -------------------------------------------------------------------------
    @contextmanager
    def lock(self, ref: StackRef) -> Iterator[Path]:
        """Hold the stack's lock; raise StackLocked if another process holds it."""
        directory = self.lock_dir(ref)
        directory.mkdir(parents=True, exist_ok=True)
        import uuid

        own = directory / f"{uuid.uuid4()}.json"
        self._raise_if_locked(directory, own)
        content = {"pid": os.getpid(), "username": _username(),
                   "hostname": os.uname().nodename, "timestamp": now_rfc3339()}
        write_json_atomic(own, content)
        try:
            self._raise_if_locked(directory, own)
        except StackLocked:
            own.unlink(missing_ok=True)
            raise
        try:
            yield own
        finally:
            own.unlink(missing_ok=True)
            if self._remove_empty_lock_dir == directory:
                with suppress(OSError):
                    directory.rmdir()

    def _raise_if_locked(self, directory: Path, own: Path) -> None:
        others = [p for p in directory.glob("*.json") if p != own]
        if not others:
            return
        lines = []
        for path in others:
            try:
                info = json.loads(path.read_bytes())
            except (OSError, ValueError):
                info = {}
            lines.append(f"  file://{path}: created by {info.get('username', '?')}@"
                         f"{info.get('hostname', '?')} (pid {info.get('pid', '?')}) at "
                         f"{info.get('timestamp', '?')}")
        raise StackLocked(
            f"the stack is currently locked by {len(others)} lock(s). Either wait for the "
            "other process(es) to end or delete the lock file with `pulumi cancel`.\n"
            + "\n".join(lines))

    def clear_locks(self, ref: StackRef) -> int:
        """Delete every lock file of the stack; return how many there were."""
        count = 0
        for path in self.lock_dir(ref).glob("*.json"):
            path.unlink(missing_ok=True)
            count += 1
        return count


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


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
