"""Choose the Pulumi engine once: the real ``pulumi`` CLI if present, else the offline engine."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from pulumi import automation as auto

from infra.errors import EngineError, SettingsError
from infra.settings import Settings

logger = logging.getLogger(__name__)


class Engine:
    """A named way to run Pulumi commands; builds its ``PulumiCommand`` once, on first use.

    ``env_vars`` are what this engine (and only it) needs in every workspace's environment.
    """

    def __init__(self, name: str, factory: Callable[[], auto.PulumiCommand],
                 env_vars: Mapping[str, str] | None = None,
                 stop_helpers: Callable[[], None] = lambda: None) -> None:
        self.name = name
        self.env_vars = dict(env_vars or {})
        # Stops the background processes the engine keeps between commands (program hosts).
        self.stop_helpers = stop_helpers
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
                    logger.error("the %s engine cannot start: %s", self.name, exc)
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
    # The launcher lives in the private state dir: nobody else can swap it.
    launcher_root = settings.state_dir / "engine"
    hosts = program_host_dir(settings)
    env_vars = {
        # Each command runs in a child of a resident engine process that has the engine
        # imported and keeps derived passphrase keys in memory (never on disk); programs fork
        # from a process that has the Pulumi SDK imported. The service's own host directory
        # holds both sockets, so stopping the hosts stops them.
        "OFFLINE_PULUMI_RESIDENT": "1",
        "OFFLINE_PULUMI_PROGRAM_HOST": "1",
        "OFFLINE_PULUMI_HOST_DIR": str(hosts),
        # A postgres:// backend is used through one warm connection pool per host (in the
        # same directory, so stopping the hosts stops it too); file:// ignores this.
        "OFFLINE_PULUMI_STATE_PROXY": "1",
    }
    return Engine("offline", lambda: _offline_command(launcher_root), env_vars,
                  stop_helpers=lambda: _stop_program_hosts(hosts))


def program_host_dir(settings: Settings) -> Path:
    """The offline engine's program-host sockets of this state dir (short: a socket path is)."""
    digest = hashlib.sha256(str(settings.state_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"offline-pulumi-hosts-{os.getuid()}" / digest


def _stop_program_hosts(directory: Path) -> None:
    from offline_pulumi.engine.hosted import stop_hosts

    stopped = stop_hosts(directory)
    if stopped:
        logger.info("stopped %d engine helper(s)", stopped)
    # The directory is this state dir's alone: the helpers' lock files and cached bytecode go
    # with them (a helper still ending ignores a file it can no longer write).
    shutil.rmtree(directory, ignore_errors=True)


def _offline_command(root: Path) -> auto.PulumiCommand:
    import offline_pulumi

    return offline_pulumi.pulumi_command(root)
