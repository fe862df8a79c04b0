"""The native ``bin/pulumi`` (``launcher.c``) against a scripted resident: protocol and signals."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import offline_pulumi
from offline_pulumi.resident import Request
from tests.harness import wait_for

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")

FALLBACK_CODE = 99


class Client:
    """A native client whose resident is a socket of this test and whose fallback is a stub."""

    def __init__(self, tmp_path: Path) -> None:
        self.hosts = tmp_path / "hosts"
        self.hosts.mkdir(mode=0o700)
        stub = tmp_path / "bin" / "pulumi-launcher"
        stub.parent.mkdir()
        stub.write_text(f"#!/bin/sh\necho \"fallback $*\"\nexit {FALLBACK_CODE}\n")
        stub.chmod(0o755)
        self.executable = tmp_path / "bin" / "pulumi"
        assert offline_pulumi._install_native(self.executable, stub, "teststamp")
        self.env = {**os.environ, "OFFLINE_PULUMI_RESIDENT": "1",
                    "OFFLINE_PULUMI_HOST_DIR": str(self.hosts)}
        self.requests: list[tuple[Request, list[int]]] = []
        self._listener: socket.socket | None = None

    def serve(self, answer: Callable[[socket.socket, Request, list[int]], object]) -> None:
        """Answer the next connection with ``answer`` (in a thread)."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.hosts / "engine-teststamp.sock"))
        listener.listen(1)
        self._listener = listener

        def accept() -> None:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed at the test's end without a connection
                return
            with conn:
                header, fds, _, _ = socket.recv_fds(conn, 8, 3)
                while len(header) < 8:
                    header += conn.recv(8 - len(header))
                data = b""
                while len(data) < int(header):
                    data += conn.recv(int(header) - len(data))
                request = Request.parse(data)
                self.requests.append((request, fds))
                answer(conn, request, fds)
                for fd in fds:
                    os.close(fd)

        threading.Thread(target=accept, daemon=True).start()

    def start(self, *args: str, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([str(self.executable), *args], env=env or self.env, cwd=cwd,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    made = Client(tmp_path)
    yield made
    made.close()


def test_the_request_carries_cwd_umask_argv_environment_and_descriptors(
        client: Client, tmp_path: Path) -> None:
    def answer(conn: socket.socket, request: Request, fds: list[int]) -> None:
        os.write(fds[1], b"from the command\n")
        conn.sendall(b"%d\n" % os.getpid())
        conn.sendall(b"42\n")

    client.serve(answer)
    env = {**client.env, "SPACED NAME": "a=b\nc", "EMPTY": ""}
    proc = subprocess.run([str(client.executable), "stack", "ls", "", "ünï cödé"], env=env,
                          cwd=tmp_path, umask=0o027, capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout, proc.stderr) == (42, "from the command\n", "")
    [(request, fds)] = client.requests
    assert request.argv == ["stack", "ls", "", "ünï cödé"]
    assert (request.cwd, request.umask) == (str(tmp_path), 0o027)
    assert request.env["SPACED NAME"] == "a=b\nc" and request.env["EMPTY"] == ""
    assert request.env["OFFLINE_PULUMI_HOST_DIR"] == str(client.hosts)
    assert len(fds) == 3


def test_without_a_resident_or_with_it_off_the_python_launcher_runs(client: Client) -> None:
    proc = client.start("version", "--x")  # nothing listens
    assert proc.communicate(timeout=30) == ("fallback version --x\n", "")
    assert proc.returncode == FALLBACK_CODE
    client.serve(lambda conn, request, fds: None)  # EOF before the pid: it never started
    proc = client.start("up")
    assert proc.communicate(timeout=30)[0] == "fallback up\n"
    off = client.start("version", env={**client.env, "OFFLINE_PULUMI_RESIDENT": "no"})
    assert off.communicate(timeout=30)[0] == "fallback version\n"


def test_an_unsafe_host_directory_is_not_used(client: Client) -> None:
    client.serve(lambda conn, request, fds: conn.sendall(b"1\n0\n"))
    client.hosts.chmod(0o750)
    proc = client.start("version")
    assert proc.communicate(timeout=30)[0] == "fallback version\n"
    assert client.requests == []


def test_a_signal_before_the_pid_means_interrupted(client: Client) -> None:
    release = threading.Event()
    client.serve(lambda conn, request, fds: release.wait(30))
    proc = client.start("up")
    wait_for(lambda: client.requests, what="the request")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    release.set()  # the resident hangs up without starting the command
    assert proc.communicate(timeout=30) == ("", "error: interrupted\n")
    assert proc.returncode == 8


def test_signals_reach_the_command_and_its_death_is_the_clients(client: Client) -> None:
    command = subprocess.Popen(["sleep", "60"])
    pid_sent = threading.Event()

    def answer(conn: socket.socket, request: Request, fds: list[int]) -> None:
        conn.sendall(b"%d\n" % command.pid)
        pid_sent.set()
        command.wait(30)  # killed by the forwarded signal, without an exit code

    client.serve(answer)
    proc = client.start("up")
    pid_sent.wait(30)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert command.returncode == -signal.SIGTERM
    assert proc.returncode == -signal.SIGTERM


def test_a_signal_that_came_first_is_forwarded_once_the_pid_is_known(client: Client) -> None:
    command = subprocess.Popen(["sleep", "60"])
    go = threading.Event()

    def answer(conn: socket.socket, request: Request, fds: list[int]) -> None:
        go.wait(30)
        conn.sendall(b"%d\n" % command.pid)
        command.wait(30)
        conn.sendall(b"130\n")

    client.serve(answer)
    proc = client.start("up")
    wait_for(lambda: client.requests, what="the request")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    go.set()
    proc.communicate(timeout=30)
    assert command.returncode == -signal.SIGINT
    assert proc.returncode == 130


def test_the_command_is_interrupted_when_the_clients_caller_dies(client: Client) -> None:
    command = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    def answer(conn: socket.socket, request: Request, fds: list[int]) -> None:
        conn.sendall(b"%d\n" % command.pid)
        command.wait(30)
        conn.sendall(b"%d\n" % (command.returncode & 0xFF))

    client.serve(answer)
    # The caller exits a second after starting the client in the background.
    caller = subprocess.run(["sh", "-c", f'"{client.executable}" up >/dev/null 2>&1 & sleep 1'],
                            env=client.env, timeout=30)
    assert caller.returncode == 0
    assert command.wait(10) != 0  # a KeyboardInterrupt, not the minute's sleep


def test_a_process_group_leader_is_left_to_the_python_launcher(client: Client) -> None:
    client.serve(lambda conn, request, fds: conn.sendall(b"1\n0\n"))
    proc = subprocess.run([str(client.executable), "version"], env=client.env, process_group=0,
                          capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout) == (FALLBACK_CODE, "fallback version\n")
    assert client.requests == []


@pytest.mark.parametrize("session", ["group leader", "session leader"])
def test_the_real_launchers_run_a_command_whatever_the_callers_session(tmp_path: Path,
                                                                      session: str) -> None:
    launcher = offline_pulumi.install_root(tmp_path / "engine") / "bin" / "pulumi"
    env = {**os.environ, "OFFLINE_PULUMI_RESIDENT": "0"}
    started = {"process_group": 0} if session == "group leader" else {"start_new_session": True}
    proc = subprocess.run([str(launcher), "version"], env=env, capture_output=True, text=True,
                          timeout=60, **started)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.startswith("v3.")
