"""The state directory: made and marked by the service, private to its user, never adopted blindly.

The service deletes and chmods only inside a directory it created: on first use it writes a
marker file, and a non-empty directory without that marker (a home directory named by mistake)
is refused with a clear message instead of being taken over.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from pathlib import Path

from infra.errors import SettingsError, StateDirError
from infra.settings import Settings

logger = logging.getLogger(__name__)

MARKER = ".burner-api-state"


def ensure_state_dir(settings: Settings) -> None:
    """Create (or check) the marked, private state dir and its parts; raise StateDirError."""
    root = settings.state_dir
    try:
        _claim(root)
        for directory in (settings.backend_dir, settings.work_dir):
            directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateDirError(root, f"unusable: {exc.strerror or exc}") from exc
    try:  # under the state dir by default, but a setting of its own
        settings.pulumi_home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError("INFRA_API_PULUMI_HOME", str(settings.pulumi_home),
                            f"a directory this service can create ({exc.strerror or exc})"
                            ) from exc


def _claim(root: Path) -> None:
    try:
        root.mkdir(parents=True, mode=0o700)
        logger.info("created the state directory %s", root)
    except FileExistsError:
        if not root.is_dir():
            raise StateDirError(root, "exists and is not a directory") from None
    marker = root / MARKER
    if not marker.exists():
        if any(name != MARKER for name in os.listdir(root)):
            raise StateDirError(root, "is a non-empty directory that this service did not create; "
                                      "name a new or empty directory")
        marker.write_text("This directory holds burner-api's state; the service owns it.\n")
    if root.stat().st_mode & 0o077:
        root.chmod(0o700)


def ensure_passphrase(settings: Settings) -> str:
    """The secrets passphrase: the configured one, or one generated once and kept in the state dir."""
    if settings.passphrase is not None:
        return settings.passphrase
    path = settings.state_dir / "passphrase"
    if not path.exists():
        # Write a complete file under a temp name (mkstemp makes it 0600), then link it into
        # place: a concurrent process either wins the link or reads the winner's whole file.
        fd, tmp = tempfile.mkstemp(prefix=".passphrase-", dir=settings.state_dir)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
            try:
                os.link(tmp, path)
                logger.info("generated a secrets passphrase in %s", path)
            except FileExistsError:
                pass  # another process made it first; use theirs
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


def writable(directory: Path) -> bool:
    """Whether a file can be created in ``directory`` right now."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False
