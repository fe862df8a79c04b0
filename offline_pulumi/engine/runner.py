"""Runs a program against a deployment: serve the monitor, start the program, handle signals."""

from __future__ import annotations

import os
import signal
import threading
from typing import TYPE_CHECKING, Any

from offline_pulumi.args import Parsed
from offline_pulumi.engine.deployment import Deployment
from offline_pulumi.engine.events import EventStream
from offline_pulumi.engine.program import InlineProgram, LocalProgram, ProgramRun
from offline_pulumi.project import Project

if TYPE_CHECKING:
    from offline_pulumi.engine.monitor import Served

CANCELLED = "update canceled: the engine was interrupted"


def parallelism(parsed: Parsed) -> int:
    """``--parallel``, else ``PULUMI_PARALLEL``, else four per CPU as the real CLI does."""
    raw = parsed.value("parallel") or os.environ.get("PULUMI_PARALLEL")
    try:
        value = int(raw) if raw else 0
    except ValueError:
        value = 0
    return value if value > 0 else 4 * (os.cpu_count() or 1)


def run_program(project: Project, stack: str, deployment: Deployment, events: EventStream,
                config: dict[str, str], secret_keys: list[str], parsed: Parsed) -> str | None:
    """Run the program to completion; return an error message, or None if it succeeded."""
    parallel = parallelism(parsed)
    client = parsed.value("client")
    # Inline programs reach the engine by gRPC; our exec script on the wire, which listens
    # before the program starts.
    served = _serve(project, stack, deployment, events, config, secret_keys, parallel,
                    inline=bool(client))
    run = ProgramRun(project=project, stack=stack, monitor=served.address,
                     dry_run=deployment.dry_run, parallel=parallel, config=config,
                     secret_keys=secret_keys)
    program: LocalProgram | InlineProgram = (
        InlineProgram(run, served.address, client) if client
        else LocalProgram(run, served.address, events))
    try:
        program.start()
    except BaseException:
        served.stop()
        raise
    cancelled = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        if not cancelled.is_set():
            cancelled.set()
            deployment.failure = deployment.failure or CANCELLED
            threading.Thread(target=program.interrupt, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        error = program.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        served.stop()
    if cancelled.is_set():
        return CANCELLED
    if error == "" and deployment.failure is None:
        return "update failed: the program reported an error"
    return error or None


def _serve(project: Project, stack: str, deployment: Deployment, events: EventStream,
           config: dict[str, str], secret_keys: list[str], parallel: int,
           inline: bool) -> Served:
    from offline_pulumi.engine.monitor import FEATURES, resource_pb2, serve_grpc, serve_wire

    info = resource_pb2.DeploymentInfo(
        project=project.name, stack=stack, organization="organization", config=config,
        configSecretKeys=secret_keys, dryRun=deployment.dry_run, parallel=parallel,
        supportedFeatures=sorted(FEATURES.values()))
    workers = max(parallel, 4) + 4
    if inline:
        return serve_grpc(deployment, events, info, workers)
    return serve_wire(deployment, events, info, workers)
