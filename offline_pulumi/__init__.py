"""An offline, Pulumi-CLI-compatible engine that the unmodified Automation API can drive.

``pulumi_command()`` gives a ``pulumi.automation.PulumiCommand`` whose ``bin/pulumi`` runs
this engine; pass it as ``LocalWorkspaceOptions(pulumi_command=...)``.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pulumi.automation import PulumiCommand

_PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def _shim_text(python: str) -> str:
    # The Automation API spawns the CLI a dozen times per operation, so the launcher skips the
    # `site` machinery (-S, about half of Python's start-up) and names the engine's import
    # paths itself; -E keeps PYTHON* variables from changing what the engine imports.
    import site

    paths = [str(_PACKAGE_PARENT), *site.getsitepackages()]
    body = (_PACKAGE_PARENT / "offline_pulumi" / "launcher.py").read_text()
    # The launcher's first act is to leave the caller's session (see launcher.own_session).
    return (f"#!{python} -SE\n"
            f"{body}\n"
            f"sys.exit(launch({paths!r}, {_engine_stamp(python)!r}))\n")


def _engine_stamp(python: str) -> str:
    """Names the resident engine: a new interpreter or changed engine code gets a new one."""
    import hashlib

    package = _PACKAGE_PARENT / "offline_pulumi"
    parts = [python, *sorted(f"{path.relative_to(package)}:{path.stat().st_mtime_ns}"
                             for path in package.rglob("*.py"))]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def install_root(root: Path | None = None) -> Path:
    """Write ``<root>/bin/pulumi`` (default: a per-interpreter temp dir) and return root.

    Raises UnsafePathError (a PermissionError) if another user owns or can write to ``root``,
    ``root/bin`` or a directory above them: the launcher runs with the caller's rights.
    """
    from offline_pulumi.fileio import owned_dir, write_atomic

    text = _shim_text(sys.executable)
    if root is None:
        import hashlib
        import tempfile

        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        root = Path(tempfile.gettempdir()) / f"offline-pulumi-{os.getuid()}-{digest}"
    root = owned_dir(root)
    executable = owned_dir(root / "bin") / "pulumi"
    try:
        info = executable.lstat()
        current = executable.read_text() if _trusted_file(info) else ""
    except OSError:
        current = ""
    if current != text:
        write_atomic(executable, text.encode(), mode=0o755)
    return root


def _trusted_file(info: os.stat_result) -> bool:
    return (stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid()
            and not info.st_mode & 0o022)


def pulumi_command(root: Path | None = None) -> PulumiCommand:
    """A ``PulumiCommand`` that runs the offline engine (it never shadows a real pulumi)."""
    from pulumi.automation import PulumiCommand

    return PulumiCommand(root=str(install_root(root)))
