"""The Temporal server's own floor: its CPU for the smallest workflow shaped like a burn.

One workflow with one activity that heartbeats once and returns at once, started eagerly by a
client whose worker lives in this process, on an embedded server with the service's flags, as
many at a time as the throughput target's clients.
Whatever a burn costs the server beyond this comes from what the burn itself asks of it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import tempfile
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.server import tree_seconds
from infra.embedded import EmbeddedTemporal
from infra.orchestrator import connect

TASK_QUEUE = "bench-floor"
WARM_UP = 5


@dataclasses.dataclass(frozen=True)
class TemporalFloor:
    """The server's CPU per workflow, in ms, over ``runs`` workflows, ``concurrency`` at a
    time."""

    runs: int
    concurrency: int
    server_cpu_ms: float


@activity.defn(name="bench_step")
def _step(value: str) -> str:
    activity.heartbeat(value)
    return value


@workflow.defn(name="BenchFloor")
class _FloorWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        return str(await workflow.execute_activity(
            "bench_step", value, start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=10)))


def measure_temporal_floor(runs: int, concurrency: int) -> TemporalFloor:
    """Run ``runs`` such workflows, ``concurrency`` at a time, on a fresh embedded server."""
    with tempfile.TemporaryDirectory(prefix="bench-temporal-") as tmp:
        server = EmbeddedTemporal(Path(tmp))
        address = server.start()
        assert server.pid is not None
        try:
            spent = asyncio.run(_run(address, server.pid, runs, concurrency))
        finally:
            server.stop()
    return TemporalFloor(runs, concurrency, spent * 1000 / runs)


async def _run(address: str, pid: int, runs: int, concurrency: int) -> float:
    client = await connect(address)

    async def chain(first: int, count: int) -> None:
        for index in range(first, first + count):
            await client.execute_workflow(_FloorWorkflow.run, "x", id=f"floor-{index}",
                                          task_queue=TASK_QUEUE, request_eager_start=True)

    with concurrent.futures.ThreadPoolExecutor(concurrency) as steps:
        async with Worker(client, task_queue=TASK_QUEUE, workflows=[_FloorWorkflow],
                          activities=[_step], activity_executor=steps,
                          workflow_runner=UnsandboxedWorkflowRunner()):
            await chain(-WARM_UP, WARM_UP)
            before = tree_seconds(pid)
            share, extra = divmod(runs, concurrency)
            counts = [share + (1 if i < extra else 0) for i in range(concurrency)]
            await asyncio.gather(*(chain(sum(counts[:i]), n) for i, n in enumerate(counts)))
            return tree_seconds(pid) - before
