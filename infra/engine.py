"""Choose the Pulumi engine once: the real ``pulumi`` CLI if present, else the offline engine."""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from pulumi import automation as auto

from infra.errors import EngineError, SettingsError
from infra.settings import Settings

logger = logging.getLogger(__name__)


class Engine:
    """A named way to run Pulumi commands; builds its ``PulumiCommand`` once, on first use."""

    def __init__(self, name: str, factory: Callable[[], auto.PulumiCommand]) -> None:
        self.name = name
        self._factory = factory
        self._command: auto.PulumiCommand | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Engine({self.name!r})"

    def command(self) -> auto.PulumiCommand:
        """Return the shared ``PulumiCommand``; raise EngineError if the engine cannot start."""
        with self._lock:
            if self._command is None:
                try:
                    self._command = self._factory()
                # The factory probes the engine (`pulumi version`); these all mean "no engine".
                except (OSError, ImportError, ValueError, subprocess.SubprocessError,
                        auto.errors.InvalidVersionError) as exc:
                    logger.error("the %s engine cannot start: %r", self.name, exc)
                    raise EngineError("engine", None, f"{self.name} engine unavailable: {exc}") from exc
            return self._command


def select_engine(settings: Settings) -> Engine:
    """Pick the engine named by ``settings.engine`` (``auto``: CLI when on PATH) and log it."""
    cli = shutil.which("pulumi")
    if settings.engine == "cli" and cli is None:
        raise SettingsError("INFRA_API_ENGINE", "cli", "a pulumi CLI on PATH (none was found)")
    if settings.engine == "cli" or (settings.engine == "auto" and cli is not None):
        assert cli is not None
        root = Path(cli).resolve().parent.parent
        logger.info("engine: pulumi CLI at %s (INFRA_API_ENGINE=%s)", cli, settings.engine)
        return Engine("cli", lambda: auto.PulumiCommand(root=str(root)))
    logger.info("engine: offline Python engine (INFRA_API_ENGINE=%s)", settings.engine)
    return Engine("offline", _offline_command)


def _offline_command() -> auto.PulumiCommand:
    module = importlib.import_module("offline_pulumi")
    command: auto.PulumiCommand = module.pulumi_command()
    return command


def ensure_passphrase(settings: Settings) -> str:
    """Return the secrets passphrase: the configured one, or one generated and kept in the state dir."""
    if settings.passphrase is not None:
        return settings.passphrase
    path = settings.state_dir / "passphrase"
    if not path.exists():
        settings.state_dir.mkdir(parents=True, exist_ok=True)
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
