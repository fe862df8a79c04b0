"""Command line: run every benchmark, print the report and write it to docs/benchmarks.md."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from pulumi import automation as auto

from bench.api import measure_latency, measure_throughput
from bench.common import SHARED_VENV_DIR
from bench.engine import measure_floor, measure_scaling
from bench.machine import machine_details
from bench.pipeline import run_pipeline
from bench.report import TARGET_CLIENTS, Results, render, targets
from bench.temporal import measure_temporal_floor
from bench.tutorial import measure_tutorial
from bench.workflow import measure_workflow
from infra.errors import InfraError
from infra.settings import PROGRAM_DIR, PROJECT_ROOT
from infra.venv import ensure_venv, venv_name
from tests.harness import ServerFailed


@dataclasses.dataclass(frozen=True)
class Plan:
    """How many samples each part takes."""

    latency_samples: int
    pipeline_runs: int
    workflow_runs: int
    load_seconds: float
    load_levels: tuple[int, ...]
    scaling_sizes: tuple[int, ...]
    scaling_runs: int
    floor_runs: int
    temporal_floor_runs: int
    tutorial_requests: int


LOG_DIR = PROJECT_ROOT / ".state" / "bench"
FULL = Plan(latency_samples=15, pipeline_runs=5, workflow_runs=15, load_seconds=30, load_levels=(1, 4, 8, 16),
            scaling_sizes=(1, 10, 100), scaling_runs=25, floor_runs=10, temporal_floor_runs=200,
            tutorial_requests=3)
QUICK = dataclasses.replace(FULL, latency_samples=4, pipeline_runs=2, workflow_runs=5, load_seconds=10,
                            scaling_runs=1, floor_runs=5, temporal_floor_runs=40,
                            tutorial_requests=2)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; the exit status is 0 even when a target fails (see the report)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=main.__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="fewer samples and shorter load levels (about 3 minutes)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "benchmarks.md",
                        help="where to write the Markdown report (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # SIGTERM unwinds like Ctrl-C, so the gunicorn this run started is stopped too.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        results = measure(QUICK if args.quick else FULL, "quick" if args.quick else "full")
    except (ServerFailed, InfraError, RuntimeError, OSError, auto.errors.CommandError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"error: {exc}\n{exc.stderr or ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    report = render(results)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    failed = [t.goal for t in targets(results) if not t.passed]
    print(f"wrote {args.out}; targets failed: {len(failed)}", file=sys.stderr)
    return 0


def measure(plan: Plan, mode: str) -> Results:
    """Run every part of the plan, in order, and collect the results."""
    started = time.perf_counter()
    machine = machine_details()
    venv_existed = (SHARED_VENV_DIR / venv_name(PROGRAM_DIR)).is_dir()
    step("program virtualenv")
    build_started = time.perf_counter()
    venv = ensure_venv(PROGRAM_DIR, SHARED_VENV_DIR)
    venv_note = (f"reused {venv.relative_to(PROJECT_ROOT)}" if venv_existed else
                 f"built {venv.relative_to(PROJECT_ROOT)} in "
                 f"{time.perf_counter() - build_started:.0f} s (once; later runs reuse it)")
    # Server logs outlive the run (the state dir is git-ignored), to explain any errors.
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        step(f"latency: cold, then {plan.latency_samples} warm requests per endpoint")
        latency = measure_latency(work, LOG_DIR, SHARED_VENV_DIR, plan.latency_samples)
        step(f"phases and pulumi processes: {plan.pipeline_runs} in-process runs")
        pipeline = run_pipeline(plan.pipeline_runs, SHARED_VENV_DIR)
        step(f"workflow path: {plan.workflow_runs} in-process and workflow runs, alternating")
        workflow = measure_workflow(plan.workflow_runs, SHARED_VENV_DIR)
        step(f"Temporal server's floor: {plan.temporal_floor_runs} bare workflows, "
             f"{TARGET_CLIENTS} at a time")
        temporal_floor = measure_temporal_floor(plan.temporal_floor_runs, TARGET_CLIENTS)
        step(f"throughput: {plan.load_levels} clients, {plan.load_seconds:.0f} s each")
        throughput, leftovers = measure_throughput(work, LOG_DIR, SHARED_VENV_DIR,
                                                   plan.load_levels, plan.load_seconds)
    step(f"engine scaling: {plan.scaling_sizes} resources")
    scaling = measure_scaling(venv, plan.scaling_sizes, plan.scaling_runs)
    step(f"import floor: {plan.floor_runs} runs")
    floor = measure_floor(venv, plan.floor_runs)
    step(f"tutorial flow: {plan.tutorial_requests} requests")
    tutorial = measure_tutorial(plan.tutorial_requests)
    return Results(machine=machine, mode=mode, venv_note=venv_note, latency=latency,
                   pipeline=pipeline, workflow=workflow, temporal_floor=temporal_floor,
                   throughput=throughput, leftovers=leftovers,
                   scaling=scaling, floor=floor, tutorial=tutorial,
                   wall_s=time.perf_counter() - started)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def step(text: str) -> None:
    """Progress on stderr, so stdout carries only the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)
