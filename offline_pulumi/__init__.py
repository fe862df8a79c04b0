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
# The C compiler that builds the native bin/pulumi ("" for the Python launcher alone).
COMPILER_VARIABLE = "OFFLINE_PULUMI_CC"


def _shim_text(python: str, stamp: str) -> str:
    # The Automation API spawns the CLI a dozen times per operation, so the launcher skips the
    # `site` machinery (-S, about half of Python's start-up) and names the engine's import
    # paths itself; -E keeps PYTHON* variables from changing what the engine imports.
    import site

    paths = [str(_PACKAGE_PARENT), *site.getsitepackages()]
    body = (_PACKAGE_PARENT / "offline_pulumi" / "launcher.py").read_text()
    # The launcher's first act is to leave the caller's session (see launcher.own_session).
    return (f"#!{python} -SE\n"
            f"{body}\n"
            f"sys.exit(launch({paths!r}, {stamp!r}))\n")


def _engine_stamp(python: str) -> str:
    """Names the resident engine: a new interpreter or changed engine code gets a new one."""
    import hashlib

    package = _PACKAGE_PARENT / "offline_pulumi"
    parts = [python, *sorted(f"{path.relative_to(package)}:{path.stat().st_mtime_ns}"
                             for path in package.rglob("*.py"))]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def install_root(root: Path | str | None = None) -> Path:
    """Write ``<root>/bin/pulumi`` (default: a per-interpreter temp dir) and return root.

    Raises UnsafePathError (a PermissionError) if another user owns or can write to ``root``,
    ``root/bin`` or a directory above them: the launcher runs with the caller's rights.
    """
    from offline_pulumi.fileio import owned_dir

    stamp = _engine_stamp(sys.executable)
    text = _shim_text(sys.executable, stamp)
    if root is None:
        import hashlib
        import tempfile

        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        root = Path(tempfile.gettempdir()) / f"offline-pulumi-{os.getuid()}-{digest}"
    root = owned_dir(Path(root))
    bin_dir = owned_dir(root / "bin")
    # bin/pulumi is the native client where a C compiler builds it, else the Python launcher;
    # the native client hands every case it does not handle to bin/pulumi-launcher.
    python_launcher = bin_dir / "pulumi-launcher"
    _install(python_launcher, text.encode())
    executable = bin_dir / "pulumi"
    if not _install_native(executable, python_launcher, stamp):
        _install(executable, text.encode())
    return root


def _install(path: Path, data: bytes) -> None:
    from offline_pulumi.fileio import write_atomic

    if _current(path) != data:
        write_atomic(path, data, mode=0o755)


def _current(path: Path) -> bytes:
    try:
        return path.read_bytes() if _trusted_file(path.lstat()) else b""
    except OSError:
        return b""


def _install_native(executable: Path, python_launcher: Path, stamp: str) -> bool:
    """Build the native client into ``executable`` unless current; whether it is there."""
    import hashlib

    compiler = os.environ.get(COMPILER_VARIABLE, "cc")
    source = _PACKAGE_PARENT / "offline_pulumi" / "launcher.c"
    try:
        code = source.read_bytes()
    except OSError:
        return False
    key = hashlib.sha256(b"\0".join(
        [code, stamp.encode(), os.fsencode(python_launcher), compiler.encode(),
         repr(_LINK_MODES).encode()])).hexdigest()[:16]
    if b"offline-pulumi-native " + key.encode() + b"\0" in _current(executable):
        return True
    return bool(compiler) and _compile(compiler, source, executable, {
        "STAMP": stamp, "FALLBACK": os.fsdecode(python_launcher), "BUILD_KEY": key})


# Linked statically where the C library allows it (no dynamic loader at each of the many
# starts: a sixth less CPU per start here), else as usual.
_LINK_MODES = (("-static",), ())


def _compile(compiler: str, source: Path, executable: Path, defines: dict[str, str]) -> bool:
    import shutil
    import subprocess

    program = shutil.which(compiler)
    if program is None:
        return False
    # Concurrent installs each build their own file; whichever rename comes last wins, and
    # every one of them is a complete, identical binary.
    tmp = executable.with_name(f".{executable.name}.{os.urandom(8).hex()}.tmp")
    argv = [program, "-O2", "-o", str(tmp),
            *(f"-D{name}={_c_string(value)}" for name, value in defines.items()), str(source)]
    try:
        for link in _LINK_MODES:
            built = subprocess.run([*argv, *link], stdin=subprocess.DEVNULL,
                                   capture_output=True, timeout=120, check=False)
            if built.returncode == 0:
                break
        else:
            return False
        tmp.chmod(0o755)
        if not _trusted_file(tmp.lstat()):
            return False
        os.replace(tmp, executable)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _c_string(value: str) -> str:
    """``value`` as a C string literal (octal escapes for anything but plain characters)."""
    return '"' + "".join(chr(b) if 32 <= b < 127 and b not in b'"\\?' else f"\\{b:03o}"
                         for b in os.fsencode(value)) + '"'


def _trusted_file(info: os.stat_result) -> bool:
    return (stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid()
            and not info.st_mode & 0o022)


def pulumi_command(root: Path | str | None = None) -> PulumiCommand:
    """A ``PulumiCommand`` that runs the offline engine (it never shadows a real pulumi)."""
    from pulumi.automation import PulumiCommand

    return PulumiCommand(root=str(install_root(root)))
