"""Runs a program against a deployment: serve the monitor, start the program, handle signals."""

from __future__ import annotations

import os
import signal
import socket
import threading
from dataclasses import replace
from typing import Any

from offline_pulumi.args import Parsed
from offline_pulumi.engine.deployment import Deployment
from offline_pulumi.engine.events import EventStream
from offline_pulumi.engine.program import InlineProgram, LocalProgram, ProgramRun
from offline_pulumi.project import Project

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
    port = 0 if client else free_port()
    address = f"127.0.0.1:{port}"
    run = ProgramRun(project=project, stack=stack, monitor=address,
                     dry_run=deployment.dry_run, parallel=parallel, config=config,
                     secret_keys=secret_keys)
    program: LocalProgram | InlineProgram = (
        InlineProgram(run, address, client) if client else LocalProgram(run, address, events))
    # The program imports the Pulumi SDK while we import gRPC and start the monitor: it waits
    # for the port to accept connections before it talks to us.
    program.start()
    try:
        server, address, workers = _serve(project, stack, deployment, events, config,
                                          secret_keys, parallel, port)
    except BaseException:
        program.interrupt()
        raise
    if client:
        program = InlineProgram(replace(run, monitor=address), address, client)
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
        # A short grace lets the program close its channels before the port goes away.
        server.stop(grace=0.2).wait()
        workers.shutdown(wait=True)
    if cancelled.is_set():
        return CANCELLED
    if error == "" and deployment.failure is None:
        return "update failed: the program reported an error"
    return error or None


def free_port() -> int:
    """A loopback port that is free now (the monitor binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _serve(project: Project, stack: str, deployment: Deployment, events: EventStream,
           config: dict[str, str], secret_keys: list[str], parallel: int,
           port: int) -> tuple[Any, str, Any]:
    from offline_pulumi.engine.monitor import FEATURES, resource_pb2, serve

    info = resource_pb2.DeploymentInfo(
        project=project.name, stack=stack, organization="organization", config=config,
        configSecretKeys=secret_keys, dryRun=deployment.dry_run, parallel=parallel,
        supportedFeatures=sorted(FEATURES.values()))
    return serve(deployment, events, info, workers=max(parallel, 4) + 4, port=port)
