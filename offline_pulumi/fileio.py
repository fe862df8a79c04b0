"""Atomic file writes: a crash leaves the old file or the new one, never half of either."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import orjson


def temp_beside(path: Path) -> Path:
    """A fresh temp name beside ``path`` for a write that ends in a rename (``is_temp``)."""
    # Not tempfile.mkstemp: importing tempfile costs more than a whole checkpoint write.
    return path.with_name(f".{path.name}.{os.urandom(8).hex()}.tmp")


def is_temp(name: str) -> bool:
    """Whether a file name is one ``temp_beside`` made (other dot files are real data: a stack
    may be named ``.hidden``)."""
    head, _, tail = name.rpartition(".")
    random = head.rpartition(".")[2]
    return (name.startswith(".") and tail == "tmp" and len(random) == 16
            and all(c in "0123456789abcdef" for c in random))


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a temp file beside ``path`` and rename it into place."""
    tmp = temp_beside(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileNotFoundError:
        # The directory comes first only when missing: a checkpoint is rewritten after every step.
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def dump_json(value: Any, indent: int | None = None) -> str:
    """JSON as the Go CLI writes it: no HTML escaping, compact or two-space indent."""
    fast = _fast_json(value, indent)
    return fast.decode() if fast is not None else _json_text(value, indent)


def encode_json(value: Any, indent: int | None = None) -> bytes:
    """``dump_json`` as UTF-8 bytes."""
    fast = _fast_json(value, indent)
    return fast if fast is not None else _json_text(value, indent).encode()


def _fast_json(value: Any, indent: int | None) -> bytes | None:
    # orjson writes what json.dumps below writes (small exponents as Go does: 1e-7, not 1e-07;
    # NaN and infinities, which Go refuses, as null), an order of magnitude faster: a
    # checkpoint is rewritten after every step. What it
    # refuses (keys that are not strings, integers past 64 bits, text that is not valid
    # UTF-8) takes the slow path.
    if indent not in (None, 2):
        return None
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0)
    except orjson.JSONEncodeError:
        return None


def _json_text(value: Any, indent: int | None) -> str:
    if indent is None:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return json.dumps(value, indent=indent, ensure_ascii=False)


def write_json_atomic(path: Path, value: Any, indent: int | None = None) -> None:
    """Atomically write a JSON document."""
    write_atomic(path, encode_json(value, indent))


class UnsafePathError(PermissionError):
    """Raised when a directory to execute from or trust could be changed by another user."""


def owned_dir(path: Path, private: bool = False) -> Path:
    """Create ``path`` (mode 0700) if missing and return its real path; raise UnsafePathError
    unless we own it and no other user can write to it or replace it (``private``: nor enter it).
    """
    uid = os.getuid()
    # A symlink is only as safe as its owner: in a sticky dir like /tmp, its owner can repoint
    # it. Checked before mkdir, which would follow it.
    absolute = path.absolute()
    prefix = Path(absolute.anchor)
    for part in absolute.parts[1:]:
        prefix /= part
        try:
            info = os.lstat(prefix)
        except FileNotFoundError:
            break
        if stat.S_ISLNK(info.st_mode) and info.st_uid not in (0, uid):
            raise UnsafePathError(f"refusing {path}: {prefix} is a symlink owned by uid {info.st_uid}")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    real = Path(os.path.realpath(path))
    for directory in (*reversed(real.parents), real):
        info = os.lstat(directory)
        owners = (uid,) if directory == real else (0, uid)
        if info.st_uid not in owners:
            raise UnsafePathError(f"refusing {path}: {directory} is owned by uid {info.st_uid}")
        # Others may create entries in a sticky dir such as /tmp but not replace ours.
        sticky = bool(info.st_mode & stat.S_ISVTX) and directory != real
        closed = 0o077 if private and directory == real else 0o022
        if info.st_mode & closed and not sticky:
            what = "open to" if closed == 0o077 else "writable by"
            raise UnsafePathError(f"refusing {path}: {directory} is {what} group or others "
                                  f"(mode {stat.S_IMODE(info.st_mode):o})")
    return real
