"""Two engines that start the state proxy at once leave two proxies; neither breaks a command.

The second proxy takes the socket over. The first may already serve an engine mid-command: it
keeps doing so until that engine is done, and only then ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import psycopg
import pytest

from offline_pulumi.storage import proxy
from tests.harness import wait_for
from tests.pgserver import PostgresServer

pytestmark = pytest.mark.slow

def _proxies(path: Path) -> set[int]:
    return {p.pid for p in psutil.process_iter(["cmdline"])
            if str(path) in " ".join(p.info["cmdline"] or [])}


def _connect(path: Path) -> proxy.ProxiedStorage | None:
    """An engine's connection to the proxy on ``path``, if one answers there."""
    try:
        return proxy.ProxiedStorage(path)
    except OSError:
        return None


def _start_proxy(url: str) -> None:
    """Start a proxy as an engine command does, from a process that then exits."""
    code = ("import os; from offline_pulumi.storage import proxy; "
            "url = os.environ['URL']; proxy._spawn(proxy.socket_path(url), url)")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "URL": url}, check=True)


def test_a_replaced_proxy_serves_its_connected_engine_to_the_end(
        postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = tempfile.mkdtemp(prefix="px-", dir="/tmp")  # a socket path must stay short
    monkeypatch.setenv("OFFLINE_PULUMI_HOST_DIR", hosts)
    monkeypatch.setenv("OFFLINE_PULUMI_PROGRAM_HOST_IDLE", "30")
    url = postgres_server.url(table=f"proxy_{uuid.uuid4().hex[:12]}")
    path = proxy.socket_path(url)
    assert path is not None
    try:
        _start_proxy(url)
        engine = wait_for(lambda: _connect(path))
        first = _proxies(path)
        engine.put("before", b"1")

        replaced = path.stat().st_ino
        _start_proxy(url)  # a racing start: its socket replaces the first one's
        wait_for(lambda: path.stat().st_ino != replaced)
        time.sleep(1.5)  # a proxy looks at its socket file twice a second

        engine.put("after", b"2")
        assert engine.get("before") == b"1" and engine.get("after") == b"2"
        assert _proxies(path) & first, "the first proxy ended under a connected engine"

        engine.close()
        wait_for(lambda: not (_proxies(path) & first))  # done: it ends
        newer = wait_for(lambda: _connect(path))
        assert newer.get("after") == b"2"
        newer.close()
    finally:
        path.unlink(missing_ok=True)  # the newer proxy ends within a second
        wait_for(lambda: not _proxies(path))
        shutil.rmtree(hosts)


def test_the_proxy_makes_sure_of_a_key_in_the_database_once(
        postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every command makes sure the store's meta.yaml exists; after the first, the proxy
    # answers without a statement (a row it made sure of is never deleted by an engine).
    hosts = tempfile.mkdtemp(prefix="px-", dir="/tmp")
    monkeypatch.setenv("OFFLINE_PULUMI_HOST_DIR", hosts)
    table = f"proxy_{uuid.uuid4().hex[:12]}"
    url = postgres_server.url(table=table)
    path = proxy.socket_path(url)
    assert path is not None
    try:
        _start_proxy(url)
        first = wait_for(lambda: _connect(path))
        first.ensure(".pulumi/meta.yaml", b"version: 1\n")
        first.close()
        with psycopg.connect(postgres_server.url()) as conn:
            assert conn.execute(f"DELETE FROM {table}".encode()).rowcount == 1

        second = wait_for(lambda: _connect(path))  # a later command
        second.ensure(".pulumi/meta.yaml", b"version: 1\n")
        with pytest.raises(KeyError):
            second.get(".pulumi/meta.yaml")  # not asked again, so not written again
        second.close()
    finally:
        path.unlink(missing_ok=True)
        wait_for(lambda: not _proxies(path))
        shutil.rmtree(hosts)
