"""In-process runs of ``infra.basic.Burner``: time per phase and pulumi processes per request."""

from __future__ import annotations

import dataclasses
import tempfile
from collections import Counter
from pathlib import Path

import offline_pulumi
from bench.common import CountingRoot, median, service_environ, subcommand
from infra.basic import Burner
from infra.engine import Engine, select_engine
from infra.kinds import parse_request
from infra.settings import Settings

PHASES = ("ensure_venv", "create_stack", "configure", "up", "read_outputs",
          "destroy", "remove")


@dataclasses.dataclass(frozen=True)
class PipelineStats:
    """Median ms per phase, and how many ``pulumi`` processes one request spawned."""

    runs: int
    phase_ms: dict[str, float]
    total_ms: float
    pulumi_per_request: tuple[int, ...]
    subcommands: dict[str, float]
    engine_probe: int


def run_pipeline(runs: int, venv_dir: Path) -> PipelineStats:
    """Run ``runs`` /uuid requests in-process through a counting engine on a temp state dir."""
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        counter = CountingRoot(Path(tmp) / "counting-root", offline_pulumi.pulumi_command())
        environ = service_environ(INFRA_API_STATE_DIR=str(Path(tmp) / "state"),
                                INFRA_API_VENV_DIR=str(venv_dir), INFRA_API_ENGINE="offline")
        settings = Settings.from_environ(environ)
        burner = Burner(settings, Engine("offline (counted)", counter.command,
                                         select_engine(settings).env_vars))
        # Engine probe and venv check happen once per process; they are counted separately.
        burner.engine.command()
        burner.toolchain()
        probe = len(counter.invocations())
        per_request: list[int] = []
        per_phase: dict[str, list[float]] = {name: [] for name in PHASES}
        totals: list[float] = []
        kinds: Counter[str] = Counter()
        for _ in range(runs):
            before = len(counter.invocations())
            result = burner.run(parse_request("uuid", {}))
            lines = counter.invocations()[before:]
            per_request.append(len(lines))
            kinds.update(subcommand(line) for line in lines)
            totals.append(result.duration_ms)
            for phase in result.phases:
                per_phase.setdefault(phase.name, []).append(phase.duration_ms)
        select_engine(settings).stop_helpers()
    return PipelineStats(
        runs=runs,
        phase_ms={name: median(values) for name, values in per_phase.items()},
        total_ms=median(totals),
        pulumi_per_request=tuple(per_request),
        subcommands={name: count / runs for name, count in sorted(kinds.items())},
        engine_probe=probe,
    )
