"""The resident engine: ``bin/pulumi`` as a thin client of a process with the engine imported."""

from __future__ import annotations

import base64
import hashlib
import re
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from pulumi import automation as auto

import offline_pulumi
from offline_pulumi.crypto import derive_key
from tests.engine.support import Background, Engine, make_engine, plain_outputs, unique_stack
from tests.harness import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def hosts(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private host directory of this test, with the resident engine switched on."""
    path = Path(tempfile.mkdtemp(prefix="res-", dir="/tmp"))
    monkeypatch.setenv("OFFLINE_PULUMI_RESIDENT", "1")
    monkeypatch.setenv("OFFLINE_PULUMI_HOST_DIR", str(path))
    monkeypatch.setenv("OFFLINE_PULUMI_PROGRAM_HOST_IDLE", "30")
    yield path
    for sock in path.glob("*.sock"):
        sock.unlink()  # the resident (and a program host) end within a second
    wait_for(lambda: not processes_with(str(path)), timeout=10, what="the resident's exit")
    shutil.rmtree(path, ignore_errors=True)


def processes_with(mark: str) -> list[psutil.Process]:
    """Processes whose command line mentions ``mark`` (a host directory or socket)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if mark in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def resident(hosts: Path) -> psutil.Process:
    """The running resident engine of ``hosts`` (waits for its socket)."""
    [sock] = wait_for(lambda: list(hosts.glob("engine-*.sock")), what="the resident's socket")
    # Its command children have the same command line; the resident is their parent.
    procs = wait_for(lambda: processes_with(str(sock)), what="the resident process")
    pids = {proc.pid for proc in procs}
    return next(proc for proc in procs if proc.ppid() not in pids)


def launcher(engine: Engine) -> Path:
    return Path(engine.command.command)


def run(executable: Path, args: list[str], cwd: Path, env: dict[str, str],
        ) -> tuple[int, str, str]:
    done = subprocess.run([str(executable), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    # Durations are the one thing allowed to differ (the resident's are shorter).
    return done.returncode, re.sub(r"Duration: \S+", "Duration: ?", done.stdout), done.stderr


COMMANDS = [
    ["version"],
    ["stack", "ls", "--json"],
    ["stack", "output", "--json", "--show-secrets"],
    ["stack", "output", "--json"],
    ["config", "--json", "--show-secrets"],
    ["config", "get", "no-such-key"],
    ["stack", "select", "no-such-stack"],
    ["stack", "history", "--json", "--show-secrets"],
    ["refresh", "--preview-only", "--yes", "--color", "never"],
    ["frobnicate", "--stack", "x"],
    ["up", "--bogus-flag"],
]


@pytest.mark.parametrize("client", ["native", "python"])
def test_a_command_gives_the_same_stdout_stderr_and_exit_code_through_the_resident(
        engine: Engine, hosts: Path, tmp_path: Path, client: str) -> None:
    stack = engine.stack("basic", config={"token": "t0ken"})
    stack.up()
    work_dir = Path(stack.workspace.work_dir)
    env = {**os.environ, **engine.env, "PULUMI_STACK": stack.name}
    direct = {**env, "OFFLINE_PULUMI_RESIDENT": "0"}
    run(launcher(engine), ["version"], work_dir, env)  # starts the resident
    resident(hosts)
    client_only = client_only_launcher(launcher(engine), hosts, tmp_path / "client-only", client)
    assert run(client_only, ["version"], work_dir, direct)[0] != 0  # it really cannot
    for args in COMMANDS:
        args = [*args, "--stack", stack.name] if args[0] not in ("version", "frobnicate") else args
        expected = run(launcher(engine), args, work_dir, direct)
        assert run(client_only, args, work_dir, env) == expected, args
    codes = {run(launcher(engine), args, work_dir, direct)[0] for args in COMMANDS[-2:]}
    assert codes != {0}


def client_only_launcher(installed: Path, hosts: Path, directory: Path, client: str) -> Path:
    """A copy of the launcher that cannot run the engine itself (its import paths are gone):
    whatever it prints came from the resident. ``native``: the C client in front of it."""
    directory.mkdir()
    python = directory / "pulumi-launcher"
    text = (installed.parent / "pulumi-launcher").read_text()
    python.write_text(re.sub(r"launch\(\[.*?\], ", "launch([], ", text))
    python.chmod(0o755)
    if client == "python":
        return python
    if not installed.read_bytes().startswith(b"\x7fELF"):
        pytest.skip("no native client here (no C compiler)")
    [sock] = hosts.glob("engine-*.sock")
    stamp = sock.name.removeprefix("engine-").removesuffix(".sock")
    native = directory / "pulumi"
    assert offline_pulumi._install_native(native, python, stamp)
    return native


def test_light_commands_reuse_one_child_each_with_its_own_directory_and_environment(
        engine: Engine, hosts: Path, tmp_path: Path) -> None:
    """A child that ran a light command serves the next; nothing of one leaks into the other."""
    places = []
    for name in ("first", "second"):
        backend = tmp_path / f"backend-{name}"
        backend.mkdir()
        env = {**os.environ, **engine.env, "PULUMI_BACKEND_URL": f"file://{backend}",
               "PULUMI_CONFIG_PASSPHRASE": f"passphrase-{name}"}
        work_dir = engine.project("basic")
        assert run(launcher(engine), ["stack", "init", "dev"], work_dir, env)[0] == 0
        places.append((name, work_dir, env))
    engine_process = resident(hosts)
    for name, work_dir, env in places:
        args = ["config", "set", "--secret", "greeting", f"hello {name}", "--stack", "dev"]
        assert run(launcher(engine), args, work_dir, env)[0] == 0
    seen: set[int] = set()
    for _ in range(3):
        for name, work_dir, env in places:
            args = ["config", "get", "greeting", "--stack", "dev"]
            assert run(launcher(engine), args, work_dir, env) == (0, f"hello {name}\n", "")
            seen.update(child.pid for child in engine_process.children())
    # Without reuse every command would be a new child, gone once it ended.
    assert 1 <= len(seen) <= 2
    assert all(psutil.Process(pid).is_running() for pid in seen)


def test_a_variable_the_last_command_had_is_unset_for_the_next_in_the_same_child(
        engine: Engine, hosts: Path, tmp_path: Path) -> None:
    """A reused child takes each command's environment as it is, removals included."""
    env = {**os.environ, **engine.env, "PULUMI_BACKEND_URL": f"file://{tmp_path}",
           "PULUMI_CONFIG_PASSPHRASE": "only-in-some-commands"}
    without = {name: value for name, value in env.items() if name != "PULUMI_CONFIG_PASSPHRASE"}
    work_dir = engine.project("basic")
    assert run(launcher(engine), ["stack", "init", "dev"], work_dir, env)[0] == 0
    args = ["config", "set", "--secret", "greeting", "hello", "--stack", "dev"]
    assert run(launcher(engine), args, work_dir, env)[0] == 0
    engine_process = resident(hosts)
    get = ["config", "get", "greeting", "--stack", "dev"]
    seen: set[int] = set()
    for _ in range(3):
        assert run(launcher(engine), get, work_dir, env) == (0, "hello\n", "")
        code, out, err = run(launcher(engine), get, work_dir, without)
        assert (code, out) == (1, ""), err
        assert "PULUMI_CONFIG_PASSPHRASE" in err
        seen.update(child.pid for child in engine_process.children())
    assert len(seen) == 1  # one child served them all


def test_successful_updates_reuse_a_child_and_one_that_failed_serves_no_more(
        engine: Engine, hosts: Path) -> None:
    """Ups and destroys of two stacks share a child or two, each with its own results; the
    child that ran a failed up exits instead of serving again."""
    stacks = [engine.stack("basic"), engine.stack("basic", config={"keeper": "other"})]
    engine_process = resident(hosts)
    seen: set[int] = set()
    for _ in range(2):
        for stack in stacks:
            up = stack.up()
            assert up.summary.resource_changes == {"create": 4}
            assert plain_outputs(up.outputs) == plain_outputs(stack.outputs())
            seen.update(child.pid for child in engine_process.children())
            assert stack.destroy().summary.resource_changes == {"delete": 4}
            seen.update(child.pid for child in engine_process.children())
    # Without reuse each of the 8 updates would have had a child of its own.
    assert 1 <= len(seen) <= 3
    assert all(psutil.pid_exists(pid) for pid in seen)

    stacks[0].set_config("fail", auto.ConfigValue("on purpose"))
    with pytest.raises(auto.CommandError):
        stacks[0].up()

    wait_for(lambda: not all(psutil.pid_exists(pid) for pid in seen), timeout=10,
             what="the child that ran the failed up to exit")
    stacks[0].remove_config("fail")
    assert stacks[0].up().summary.result == "succeeded"


def test_the_resident_runs_the_program_of_an_up(engine: Engine, hosts: Path) -> None:
    stack = engine.stack("parent")
    engine_process = resident(hosts)
    up = stack.up()
    assert up.summary.resource_changes == {"create": 2}
    # The program's parent is the resident's child for that command, not a fresh engine.
    assert str(next(hosts.glob("engine-*.sock"))) in plain_outputs(up.outputs)["parent"]
    assert engine_process.is_running()


def test_sigint_to_the_launcher_cancels_a_running_up(engine: Engine, hosts: Path) -> None:
    stack = engine.stack("basic")
    good = stack.up()
    stack.set_config("sleep", auto.ConfigValue("60"))
    resident_process = resident(hosts)
    # The default bin/pulumi: the native client wherever a C compiler built it.
    assert launcher(engine).read_bytes()[:4] == b"\x7fELF" or shutil.which("cc") is None
    work_dir = Path(stack.workspace.work_dir)
    proc = subprocess.Popen(
        [str(launcher(engine)), "up", "--yes", "--skip-preview", "--stack", stack.name],
        cwd=work_dir, env={**os.environ, **engine.env}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    [lock] = wait_for(lambda: engine.locks(stack), what="the update's lock file")
    command_pid = engine.lock_info(lock)["pid"]
    # The command runs in the resident's child, and the program under it is sleeping.
    assert psutil.Process(command_pid).ppid() == resident_process.pid
    wait_for(lambda: psutil.Process(command_pid).children(), what="the program process")
    # The update handles SIGINT as a cancel once the program is under way: the program has
    # connected to the engine's wire (its listener and the accepted connection share a path).
    wait_for(lambda: len([c for c in psutil.Process(command_pid).net_connections("unix")
                          if "/offline-pulumi-wire-" in c.laddr]) >= 2,
             what="the program's connection to the engine")
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - started < 20  # not the program's 60 s sleep
    assert proc.returncode == 8  # the CLI's exit code for a cancelled operation
    assert "canceled" in stdout + stderr
    assert engine.locks(stack) == []  # cancelled gracefully: the lock is released
    assert [h.result for h in stack.history() if h.kind == "update"][0] == "failed"
    assert plain_outputs(stack.outputs()) == plain_outputs(good.outputs)
    assert not psutil.pid_exists(command_pid) or psutil.Process(command_pid).status() == "zombie"


def test_a_command_dies_with_its_killed_launcher(engine: Engine, hosts: Path) -> None:
    stack = engine.stack("basic")
    stack.up()
    stack.set_config("sleep", auto.ConfigValue("60"))
    resident(hosts)
    proc = subprocess.Popen(
        [str(launcher(engine)), "up", "--yes", "--skip-preview", "--stack", stack.name],
        cwd=Path(stack.workspace.work_dir), env={**os.environ, **engine.env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    [lock] = wait_for(lambda: engine.locks(stack), what="the update's lock file")
    command = psutil.Process(engine.lock_info(lock)["pid"])
    [program] = wait_for(lambda: command.children(), what="the program process")
    proc.kill()
    proc.wait(10)
    # As if the command had run in the launcher: it and its program go at once, not after
    # the program's 60 s sleep.
    gone, alive = psutil.wait_procs([command, program], timeout=10)
    assert alive == []


def test_a_killed_resident_is_replaced_and_no_command_fails(engine: Engine, hosts: Path) -> None:
    stack = engine.stack("basic", config={"sleep": "3"})
    first = resident(hosts)
    # Killed while it runs an up: the command is a process of its own and carries on.
    running = Background(stack.up)
    [lock] = wait_for(lambda: engine.locks(stack), what="the update's lock file")
    assert psutil.Process(engine.lock_info(lock)["pid"]).ppid() == first.pid
    first.kill()
    first.wait(10)
    assert running.join().summary.resource_changes == {"create": 4}
    # The dead resident's socket refuses connections: the next command runs by itself and
    # starts a new resident, which serves the ones after it.
    stack.set_config("sleep", auto.ConfigValue("0"))
    second = wait_for(lambda: (p := resident(hosts)).pid != first.pid and p,
                      what="a new resident")
    again = stack.up()
    assert again.summary.resource_changes == {"same": 4}
    assert plain_outputs(again.outputs) == plain_outputs(running.result.outputs)
    assert second.is_running()
    stack.destroy()


def test_a_stopped_resident_leaves_no_file_behind(engine: Engine, hosts: Path) -> None:
    engine.stack("basic")
    running = resident(hosts)
    assert [p.name for p in hosts.glob("engine-*")] != []
    for sock in hosts.glob("engine-*.sock"):
        sock.unlink()  # how its service stops it
    running.wait(10)
    # Neither its socket nor its lock file; nor the directory, if nothing else lives there.
    assert [p.name for p in hosts.glob("engine-*")] == []


def test_nothing_of_an_explicit_passphrase_reaches_the_disk(
        engine_command: auto.PulumiCommand, hosts: Path, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    from infra.engine import select_engine
    from infra.settings import Settings

    temp = Path(tempfile.mkdtemp(prefix="tmp-", dir="/tmp"))
    monkeypatch.setenv("TMPDIR", str(temp))
    passphrase = f"operator-{unique_stack()}-passphrase"
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path / "state"),
                                      "INFRA_API_ENGINE": "offline",
                                      "PULUMI_CONFIG_PASSPHRASE": passphrase})
    service = select_engine(settings)
    for name, value in service.env_vars.items():
        if name != "OFFLINE_PULUMI_HOST_DIR":  # the test's own hosts directory instead
            monkeypatch.setenv(name, value)
    engine = make_engine(offline_pulumi.pulumi_command(tmp_path / "launcher"), tmp_path)
    opts = auto.LocalWorkspaceOptions(pulumi_command=engine.command, env_vars={
        **engine.env, "PULUMI_CONFIG_PASSPHRASE": passphrase})
    stacks = [auto.create_or_select_stack(unique_stack(), work_dir=str(engine.project("basic")),
                                          opts=opts) for _ in range(3)]
    for stack in stacks:
        stack.set_config("token", auto.ConfigValue("t0ken", secret=True))
        stack.up()
    salts = set()
    for stack in stacks:
        config = (Path(stack.workspace.work_dir) / f"Pulumi.{stack.name}.yaml").read_text()
        salts.add(config.split("encryptionsalt: v1:", 1)[1].split(":", 1)[0])
    # One derivation, kept by the resident, served every stack: they share its salt.
    assert len(salts) == 1
    needles = [passphrase.encode()]
    for salt in salts:
        key = derive_key(passphrase, base64.b64decode(salt))
        needles += [key, base64.b64encode(key), key.hex().encode()]
    needles.append(hashlib.sha256(passphrase.encode()).hexdigest().encode())
    searched = 0
    for root in (tmp_path, hosts, temp):
        for path in root.rglob("*"):
            try:
                if not path.is_file() or path.stat().st_mtime < time.time() - 600:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            searched += 1
            assert not [n for n in needles if n in data], path
    assert searched > 10
    for stack in stacks:
        stack.destroy()
    engine.close()
    shutil.rmtree(temp, ignore_errors=True)
