"""The opt-in warm program host: programs forked from a process with the SDK imported."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import wait_for
from tests.engine.support import (
    Engine,
    plain_outputs,
)

pytestmark = pytest.mark.slow


def test_without_the_option_the_engine_starts_the_program_itself(engine: Engine, monkeypatch):
    monkeypatch.delenv("OFFLINE_PULUMI_PROGRAM_HOST", raising=False)
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    stack = engine.stack("parent")
    outputs = plain_outputs(stack.up().outputs)
    assert "bin/pulumi" in outputs["parent"]
    assert " up " in outputs["parent"]
    # Nothing is written beside the program's sources.
    assert not (Path(stack.workspace.work_dir) / "__pycache__").exists()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp dir short enough to hold a unix socket path."""
    path = Path(tempfile.mkdtemp(prefix="host-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_host_runs_later_programs_with_the_same_results(engine: Engine, monkeypatch, short_tmp):
    monkeypatch.setenv("OFFLINE_PULUMI_PROGRAM_HOST", "1")
    monkeypatch.setenv("OFFLINE_PULUMI_PROGRAM_HOST_IDLE", "20")
    monkeypatch.setenv("TMPDIR", str(short_tmp))  # a host of this test's own
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    stack = engine.stack("parent")
    first = stack.up()
    assert first.summary.resource_changes == {"create": 2}
    # The first run starts the host in the background; wait until it listens.
    wait_for(lambda: list(short_tmp.glob("offline-pulumi-hosts-*/*.sock")), what="host socket")
    second = stack.up()
    assert second.summary.resource_changes == {"same": 2}
    assert plain_outputs(second.outputs)["suffix"] == plain_outputs(first.outputs)["suffix"]
    assert "program_host.py" in plain_outputs(second.outputs)["parent"]
    # The forked child runs the program from the top of its stack, as the exec script does.
    assert plain_outputs(second.outputs)["callers"][:2] == ["program_host.py:<module>",
                                                           "language_exec.py:main"]
    assert plain_outputs(first.outputs)["callers"][:2] == ["language_exec.py:<module>",
                                                          "language_exec.py:main"]
    # The program's bytecode is cached in the host's private directory, not beside its
    # sources (where Python writes it unless told not to).
    work_dir = Path(stack.workspace.work_dir)
    assert not (work_dir / "__pycache__").exists()
    assert list(short_tmp.glob(f"offline-pulumi-hosts-*/bytecode{work_dir}/__main__.*.pyc"))
    stack.destroy()
    assert stack.outputs() == {}


def test_a_hosted_program_ends_when_its_engine_is_killed(engine: Engine, monkeypatch,
                                                          short_tmp):
    import os
    import signal
    import threading

    import psutil
    from pulumi import automation as auto

    monkeypatch.setenv("OFFLINE_PULUMI_PROGRAM_HOST", "1")
    monkeypatch.setenv("OFFLINE_PULUMI_PROGRAM_HOST_IDLE", "20")
    monkeypatch.setenv("TMPDIR", str(short_tmp))
    stack = engine.stack("basic")
    stack.up()
    [sock] = wait_for(lambda: list(short_tmp.glob("offline-pulumi-hosts-*/*.sock")),
                      what="host socket")
    host = next(p for p in psutil.process_iter(["cmdline"])
                if str(sock) in " ".join(p.info["cmdline"] or []))
    stack.set_config("sleep", auto.ConfigValue("60"))
    failures: list[BaseException] = []

    def doomed_up() -> None:
        try:
            stack.up()
        except auto.CommandError as exc:
            failures.append(exc)

    thread = threading.Thread(target=doomed_up)
    thread.start()
    [lock] = wait_for(lambda: engine.locks(stack), what="the update's lock file")
    engine_pid = engine.lock_info(lock)["pid"]
    [program] = wait_for(lambda: host.children(), what="the hosted program")
    # Under way (connected to the engine's wire, so sleeping in its body) when the engine dies.
    wait_for(lambda: len([c for c in psutil.Process(engine_pid).net_connections("unix")
                          if "/offline-pulumi-wire-" in c.laddr]) >= 2,
             what="the program's connection to the engine")
    os.kill(engine_pid, signal.SIGKILL)
    thread.join(30)
    assert failures, "the killed update should fail"
    wait_for(lambda: not program.is_running() or program.status() == psutil.STATUS_ZOMBIE,
             timeout=10, what="the hosted program to end")
    assert host.is_running()  # the host itself serves on


def _exec_args(program: Path) -> list[str]:
    """The exec script's arguments for a program whose engine is unreachable (it fails)."""
    return ["--monitor", "unix:/nonexistent/engine", "--engine", "", "--project", "p",
            "--root_directory", str(program), "--stack", "s", "--pwd", str(program),
            "--dry_run", "false", "--parallel", "4", "--organization", "organization",
            str(program)]


def _finish(process: Any) -> tuple[int, bytes]:
    """A hosted program's exit code and stderr, its output streams closed."""
    with process.stdout, process.stderr:
        process.stdout.read()
        stderr = process.stderr.read()
    return process.wait(30), stderr


def test_an_exit_code_that_arrives_with_the_pid_is_not_lost(monkeypatch, short_tmp):
    import os
    import socket
    import sys
    import threading

    from offline_pulumi.engine import hosted

    path = short_tmp / "host.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def host_whose_child_ended_at_once() -> None:
        conn, _ = listener.accept()
        with conn:
            header, fds, _, _ = socket.recv_fds(conn, 8, 3)
            for fd in fds:
                os.close(fd)
            # Read the whole request first, as a host does: closing on unread data could fail
            # the engine's send before it reads the answer.
            payload = b""
            while len(payload) < int(header):
                payload += conn.recv(int(header) - len(payload))
            conn.sendall(b"4242\n7\n")  # the child's pid and its exit code, in one packet

    thread = threading.Thread(target=host_whose_child_ended_at_once)
    thread.start()
    monkeypatch.setattr(hosted, "socket_path", lambda python: path)
    process = hosted.spawn(sys.executable, [], {}, short_tmp)
    thread.join(10)
    listener.close()
    assert process is not None and process.pid == 4242
    assert _finish(process) == (7, b"")


def test_a_run_that_cannot_start_fails_with_its_reason_and_the_host_serves_on(monkeypatch,
                                                                             short_tmp):
    import os
    import subprocess
    import sys

    from offline_pulumi.engine import hosted

    monkeypatch.setenv("OFFLINE_PULUMI_HOST_DIR", str(short_tmp / "hosts"))
    program = short_tmp / "program"
    program.mkdir()
    (program / "__main__.py").write_text("")
    env = dict(os.environ)
    path = hosted.socket_path(sys.executable)
    assert path is not None
    host = subprocess.Popen([sys.executable, str(hosted.HOST_SCRIPT), str(path), "20"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(path.exists, what="host socket")
        missing = short_tmp / "removed"
        process = hosted.spawn(sys.executable, _exec_args(missing), env, missing)
        assert process is not None
        code, stderr = _finish(process)
        assert code == 1 and b"FileNotFoundError" in stderr
        # The child that failed did not go on as a second host (and remove the socket).
        again = hosted.spawn(sys.executable, _exec_args(program), env, program)
        assert again is not None
        _finish(again)
    finally:
        hosted.stop_hosts(short_tmp / "hosts")
        host.wait(10)
