"""The engine alone: import floor of the program's Python, and up/destroy time by resource count."""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from pulumi import automation as auto

import offline_pulumi
from bench.common import clean_environ, median, service_environ
from bench.server import helper_seconds
from infra.engine import program_host_dir, select_engine
from infra.settings import Settings
from infra.toolchain import build_toolchain
from offline_pulumi.engine.hosted import stop_hosts

PASSPHRASE = "bench-passphrase"


@dataclasses.dataclass(frozen=True)
class Floor:
    """What one ``pulumi`` command costs at least, step by step (medians, ms)."""

    runs: int
    interpreter_ms: float  # python -SE -c pass, the engine's interpreter
    launcher_ms: float  # bin/pulumi-launcher's own start: compile it and import what it uses
    resident_ms: float  # bin/pulumi version through the resident engine
    direct_ms: float  # bin/pulumi version run by the launcher itself
    program_ms: float  # the program's Python importing pulumi and pulumi_random (a cold run)


@dataclasses.dataclass(frozen=True)
class Scaling:
    """``up`` and ``destroy`` time of a program with ``resources`` random resources (medians,
    ms), and the CPU of one ``up`` by process (means, ms)."""

    resources: int
    up_ms: float
    destroy_ms: float
    program_cpu_ms: float  # the program run (forked by the warm program host)
    engine_cpu_ms: float  # the engine's commands (forked by the resident engine)
    client_cpu_ms: float  # the Automation API's process and the `pulumi` launchers it ran


def measure_floor(venv: Path, runs: int) -> Floor:
    """Time each layer under a command: interpreter, launcher, resident engine, program."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-", dir="/tmp") as tmp:
        root = Path(tmp)
        hosts = root / "hosts"
        launcher = Path(offline_pulumi.pulumi_command(root / "engine").command)
        # The Python launcher's own start (bin/pulumi is the native client in front of it
        # where a C compiler built one): its text with the command left out, the modules it
        # imports to talk to the resident imported instead.
        start_only = root / "launcher-start"
        python_launcher = launcher.with_name("pulumi-launcher").read_text()
        text = python_launcher.rsplit("\nsys.exit(launch(", 1)[0]
        start_only.write_text(text + "\nimport _signal, _socket\n")
        python = python_launcher.split("\n", 1)[0].removeprefix("#!").split()[0]
        env = clean_environ(OFFLINE_PULUMI_HOST_DIR=str(hosts), OFFLINE_PULUMI_RESIDENT="1")
        direct = {**env, "OFFLINE_PULUMI_RESIDENT": "0"}
        _run(launcher, env)  # starts the resident
        deadline = time.monotonic() + 30
        while not list(hosts.glob("engine-*.sock")) and time.monotonic() < deadline:
            time.sleep(0.1)
        layers = {
            "interpreter_ms": ([python, "-SE", "-c", "pass"], env),
            "launcher_ms": ([python, "-SE", str(start_only)], env),
            "resident_ms": ([str(launcher), "version"], env),
            "direct_ms": ([str(launcher), "version"], direct),
            "program_ms": ([str(venv / "bin" / "python"), "-c", "import pulumi, pulumi_random"],
                           env),
        }
        times: dict[str, list[float]] = {name: [] for name in layers}
        try:
            # Round robin, so that load from elsewhere hits every layer alike; the first round
            # (files maybe out of the page cache) is not counted.
            for round_ in range(runs + 1):
                for name, (argv, environ) in layers.items():
                    started = time.perf_counter()
                    subprocess.run(argv, env=environ, check=True, stdout=subprocess.DEVNULL)
                    if round_:
                        times[name].append((time.perf_counter() - started) * 1000)
        finally:
            stop_hosts(hosts)
        return Floor(runs, **{name: median(values) for name, values in times.items()})


def _run(launcher: Path, env: dict[str, str]) -> None:
    subprocess.run([str(launcher), "version"], env=env, check=True, capture_output=True)


def program_text(resources: int) -> str:
    """A program with ``resources`` resources, alternating RandomString and RandomId."""
    lines = ["import pulumi", "import pulumi_random as random", ""]
    for index in range(resources):
        if index % 2:
            lines.append(f"random.RandomId('id-{index}', byte_length=8)")
        else:
            lines.append(f"random.RandomString('string-{index}', length=16)")
    lines.append(f"pulumi.export('count', {resources})")
    return "\n".join(lines) + "\n"


def measure_scaling(venv: Path, sizes: tuple[int, ...], runs: int) -> tuple[Scaling, ...]:
    """Median up and destroy time per size, via the Automation API on a temp file backend.

    With the service's own engine and workspace settings (resident engine, warm program host,
    no checkpoint backups, an explicit passphrase), from ``infra``. Each round runs every size
    once, so a drift in the machine's speed weighs on all sizes alike and not on their ratio.
    """
    with tempfile.TemporaryDirectory(prefix="bench-scaling-", dir="/tmp") as tmp:
        root = Path(tmp)
        settings = Settings.from_environ(service_environ(
            INFRA_API_STATE_DIR=str(root / "state"), INFRA_API_VENV_DIR=str(venv.parent),
            INFRA_API_ENGINE="offline"))
        engine = select_engine(settings)
        env = build_toolchain(settings, engine).env_vars
        command = engine.command()
        stacks = {}
        for size in sizes:
            program = root / f"program-{size}"
            program.mkdir()
            (program / "__main__.py").write_text(program_text(size))
            (program / "Pulumi.yaml").write_text(
                f"name: scaling-{size}\nruntime:\n  name: python\n  options:\n"
                f"    virtualenv: {venv}\n")
            opts = auto.LocalWorkspaceOptions(pulumi_command=command, env_vars=env,
                                              pulumi_home=str(root / "home"))
            stacks[size] = auto.create_stack(f"scale-{size}", work_dir=str(program), opts=opts)
            # One unmeasured round: the program host and the resident start on first use.
            stacks[size].up()
            stacks[size].destroy()
        ups: dict[int, list[float]] = {size: [] for size in sizes}
        destroys: dict[int, list[float]] = {size: [] for size in sizes}
        cpu: dict[int, list[tuple[float, float, float]]] = {size: [] for size in sizes}
        hosts = str(program_host_dir(settings))
        for _ in range(runs):
            for size, stack in stacks.items():
                before = (*helper_seconds(hosts), _own_seconds())
                started = time.perf_counter()
                result = stack.up()
                ups[size].append((time.perf_counter() - started) * 1000)
                after = (*helper_seconds(hosts), _own_seconds())
                commands, programs, own = (1000 * (a - b)
                                           for a, b in zip(after, before, strict=True))
                cpu[size].append((programs, commands, own))
                created = (result.summary.resource_changes or {}).get(auto.OpType.CREATE, 0)
                if created != size + 1:  # plus the stack resource itself
                    raise RuntimeError(f"up of {size} resources created {created}")
                started = time.perf_counter()
                stack.destroy()
                destroys[size].append((time.perf_counter() - started) * 1000)
        for stack in stacks.values():
            stack.workspace.remove_stack(stack.name)
        engine.stop_helpers()
    # CPU as means: /proc counts it in 10 ms ticks, too coarse for a median of a few runs.
    return tuple(Scaling(size, median(ups[size]), median(destroys[size]),
                         *(statistics.fmean(run[i] for run in cpu[size]) for i in range(3)))
                 for size in sizes)


def _own_seconds() -> float:
    """This process's CPU and that of the children it waited for (the launchers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclasses.dataclass(frozen=True)
class EventCost:
    """Median ``up`` time of the same program with and without an ``on_event`` callback."""

    resources: int
    runs: int
    up_ms: float
    up_on_event_ms: float
    events: int

    @property
    def ratio(self) -> float:
        """``up_on_event_ms / up_ms``: 1.0 or less means listening to events costs nothing."""
        return self.up_on_event_ms / self.up_ms


def measure_event_cost(venv: Path, resources: int, runs: int) -> EventCost:
    """Alternate create-from-empty ``up``s with and without ``on_event`` on one stack."""
    command = offline_pulumi.pulumi_command()
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        root = Path(tmp)
        program = root / "program"
        program.mkdir()
        (program / "__main__.py").write_text(program_text(resources))
        (program / "Pulumi.yaml").write_text(
            f"name: events-{resources}\nruntime:\n  name: python\n  options:\n"
            f"    virtualenv: {venv}\n")
        (root / "state").mkdir()
        env = {"PULUMI_BACKEND_URL": (root / "state").as_uri(),
               "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE, "PULUMI_SKIP_UPDATE_CHECK": "true"}
        opts = auto.LocalWorkspaceOptions(pulumi_command=command, env_vars=env,
                                          pulumi_home=str(root / "home"))
        stack = auto.create_stack("events", work_dir=str(program), opts=opts)
        plain: list[float] = []
        listened: list[float] = []
        received: list[int] = []
        for _ in range(runs):
            for sink in (plain, listened):
                events: list[auto.EngineEvent] = []
                started = time.perf_counter()
                stack.up(on_event=events.append if sink is listened else None)
                sink.append((time.perf_counter() - started) * 1000)
                if sink is listened:
                    received.append(len(events))
                stack.destroy()
        stack.workspace.remove_stack(stack.name)
    return EventCost(resources, runs, median(plain), median(listened), min(received))


def main() -> None:
    """``python -m bench.engine [VENV]``: print the on_event row (VENV: the program's venv)."""
    import sys

    venv = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(sys.prefix)
    cost = measure_event_cost(venv, resources=10, runs=5)
    print("| Resources | up ms | up with on_event ms | ratio | events received |")
    print("|---|---|---|---|---|")
    print(f"| {cost.resources} | {cost.up_ms:.0f} | {cost.up_on_event_ms:.0f} | "
          f"{cost.ratio:.2f} | {cost.events} |")


if __name__ == "__main__":
    main()
