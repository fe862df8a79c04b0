"""Build the burner program's virtualenv once per requirements hash, atomically."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from infra.errors import ProgramEnvironmentError

logger = logging.getLogger(__name__)

_built: dict[Path, Path] = {}
_built_lock = threading.Lock()


def venv_name(program_dir: Path) -> str:
    """Name of the virtualenv for the program's current requirements and this Python."""
    digest = hashlib.sha256()
    digest.update((program_dir / "requirements.txt").read_bytes())
    # A venv is tied to the interpreter that made it, so the version is part of the key.
    digest.update(sys.version.encode())
    return "burner-" + digest.hexdigest()[:16]


def ensure_venv(program_dir: Path, venv_root: Path) -> Path:
    """Return the program's virtualenv under ``venv_root``, building it first if needed."""
    try:
        dest = venv_root / venv_name(program_dir)
    except OSError as exc:
        raise ProgramEnvironmentError(f"cannot read the requirements of {program_dir}: {exc}"
                                      ) from exc
    with _built_lock:
        if dest in _built:
            return _built[dest]
        # Threads of this process queue here; other processes queue on the file lock.
        if not dest.is_dir():
            venv_root.mkdir(parents=True, exist_ok=True)
            with _file_lock(venv_root / f".{dest.name}.lock"):
                if not dest.is_dir():
                    _build(program_dir, venv_root, dest)
        _built[dest] = dest
        return dest


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(program_dir: Path, venv_root: Path, dest: Path) -> None:
    # Leftovers of builds that died half-way; safe to delete because we hold the lock.
    for stale in venv_root.glob(f".{dest.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    logger.info("building the program virtualenv %s (once per requirements change)", dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=venv_root))
    try:
        python = tmp / "bin" / "python"
        _run([sys.executable, "-m", "venv", str(tmp)], program_dir)
        _run([str(python), "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
              "-r", str(program_dir / "requirements.txt")], program_dir)
        # The rename publishes the venv in one step: readers see all of it or nothing.
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("program virtualenv ready: %s", dest)


def _run(argv: Sequence[str], program_dir: Path) -> None:
    logger.debug("running %s", " ".join(argv))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                              stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise ProgramEnvironmentError(f"cannot build the virtualenv of {program_dir}: cannot run "
                                      f"{argv[0]}: {exc}") from exc
    for line in (proc.stdout + proc.stderr).splitlines():
        logger.debug("venv | %s", line)
    if proc.returncode != 0:
        logger.error("%s exited with %d:\n%s\n%s", " ".join(argv), proc.returncode,
                     proc.stdout, proc.stderr)
        raise ProgramEnvironmentError(f"cannot build the virtualenv of {program_dir}: "
                                      f"{' '.join(argv[1:4])} exited with {proc.returncode} "
                                      "(the log has its output)")
