"""A real PostgreSQL server for tests and benchmarks: initdb + pg_ctl in a temp dir on loopback.

The server binaries come from Debian's ``postgresql`` package (``make`` installs it when
missing). initdb refuses to run as root, so as root the cluster belongs to the ``postgres``
user and every server command runs through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from tests.harness import free_port

USER = "burner"
DATABASE = "burner"


def server_bindir() -> Path | None:
    """The newest installed PostgreSQL server's bin dir (``PG_BINDIR`` overrides)."""
    chosen = os.environ.get("PG_BINDIR")
    if chosen:
        return Path(chosen)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """One throwaway cluster: password auth over TCP on 127.0.0.1, data under a temp dir."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.password = "pw-" + secrets.token_hex(8)
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="burner-pg-"))
        self._as_owner: list[str] = []
        if os.getuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self._as_owner = ["runuser", "-u", "postgres", "--"]

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *argv: str) -> None:
        result = subprocess.run([*self._as_owner, *argv], capture_output=True, text=True,
                                timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr}"
                               f"{self.log_tail()}")

    def log_tail(self) -> str:
        log = self.root / "server.log"
        return "\n" + log.read_text()[-2000:] if log.exists() else ""

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections."""
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as_owner:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER,
                  f"--pwfile={pwfile}", "--auth=scram-sha-256", "--no-sync", "-E", "UTF8")
        pwfile.unlink()
        # A test cluster: durability traded for speed (the file:// backend does not fsync either).
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.root / "server.log"), "-o", options, "-w", "-t", "60", "start")
        self.create_database(DATABASE)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its files."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                      "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = DATABASE, table: str | None = None) -> str:
        """A ``postgres://`` backend URL for this server (with the password in it)."""
        query = "?sslmode=disable" + (f"&table={table}" if table else "")
        return (f"postgres://{USER}:{quote(self.password)}@127.0.0.1:{self.port}/"
                f"{database}{query}")

    def create_database(self, name: str) -> None:
        """CREATE DATABASE (connected to the maintenance database)."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())


@contextmanager
def running_server() -> Iterator[PostgresServer]:
    """A started server, stopped and deleted on exit."""
    bindir = server_bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL server found: run `make` (it installs Debian's "
                           "postgresql package as root) or set PG_BINDIR")
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
