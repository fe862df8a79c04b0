"""The engine alone: import floor of the program's Python, and up/destroy time by resource count."""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
import time
from pathlib import Path

from pulumi import automation as auto

import offline_pulumi
from bench.common import median

PASSPHRASE = "bench-passphrase"


@dataclasses.dataclass(frozen=True)
class Floor:
    """Median time to start the program's Python and import pulumi and pulumi_random."""

    runs: int
    median_ms: float


@dataclasses.dataclass(frozen=True)
class Scaling:
    """``up`` and ``destroy`` time of a program with ``resources`` random resources."""

    resources: int
    up_ms: float
    destroy_ms: float


def measure_floor(venv: Path, runs: int) -> Floor:
    """Time ``python -c "import pulumi, pulumi_random"`` with the program venv's Python."""
    python = str(venv / "bin" / "python")
    times = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        subprocess.run([python, "-c", "import pulumi, pulumi_random"], check=True)
        times.append((time.perf_counter() - started) * 1000)
    # The first run may find the files out of the page cache; later requests never do.
    return Floor(runs, median(times[1:]))


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
    """Median up and destroy time per size, via the Automation API on a temp file backend."""
    command = offline_pulumi.pulumi_command()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        root = Path(tmp)
        env = {"PULUMI_BACKEND_URL": (root / "state").as_uri(),
               "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE, "PULUMI_SKIP_UPDATE_CHECK": "true"}
        (root / "state").mkdir()
        for size in sizes:
            program = root / f"program-{size}"
            program.mkdir()
            (program / "__main__.py").write_text(program_text(size))
            (program / "Pulumi.yaml").write_text(
                f"name: scaling-{size}\nruntime:\n  name: python\n  options:\n"
                f"    virtualenv: {venv}\n")
            opts = auto.LocalWorkspaceOptions(pulumi_command=command, env_vars=env,
                                              pulumi_home=str(root / "home"))
            stack = auto.create_stack(f"scale-{size}", work_dir=str(program), opts=opts)
            ups, destroys = [], []
            for _ in range(runs):
                started = time.perf_counter()
                result = stack.up()
                ups.append((time.perf_counter() - started) * 1000)
                created = (result.summary.resource_changes or {}).get(auto.OpType.CREATE, 0)
                if created != size + 1:  # plus the stack resource itself
                    raise RuntimeError(f"up of {size} resources created {created}")
                started = time.perf_counter()
                stack.destroy()
                destroys.append((time.perf_counter() - started) * 1000)
            stack.workspace.remove_stack(stack.name)
            results.append(Scaling(size, median(ups), median(destroys)))
    return tuple(results)


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
