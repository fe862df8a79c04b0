"""The engine's event log: the gRPC ``Events`` stream of current CLIs, and the file log.

The Automation API chooses the transport from the version the CLI reports
(sdk/python/lib/pulumi/automation/_stack.py, ``_setup_event_log``): after 3.205.0 it serves
``pulumirpc.Events`` and passes ``--event-log tcp://127.0.0.1:PORT``; older versions get a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pulumi
import pulumi_random as random
import pytest
from pulumi import automation as auto
from semver import VersionInfo

import offline_pulumi
from offline_pulumi.engine.events import RESET
from offline_pulumi.version import VERSION
from tests.engine.support import Engine, unique_stack

PAUSE_SECONDS = 1.0


def _pause(result: str) -> bool:
    time.sleep(PAUSE_SECONDS)
    return bool(result)


def slow_program() -> None:
    """Registers a resource, then keeps the update running a while once it exists."""
    early = random.RandomString("early", length=8, special=False)
    pulumi.export("done", early.result.apply(_pause))


def test_reported_version_makes_the_automation_api_use_the_grpc_stream(
        engine_command: auto.PulumiCommand) -> None:
    assert engine_command.version is not None
    assert engine_command.version > VersionInfo(3, 205, 0)
    assert str(engine_command.version) == VERSION


@pytest.mark.slow
def test_grpc_stream_delivers_every_event_while_the_update_runs(engine: Engine) -> None:
    """Events arrive live, in order, ending with the summary and the cancel event."""
    stack = auto.create_or_select_stack(stack_name=unique_stack(), project_name="events",
                                        program=slow_program, opts=engine.opts())
    arrivals: list[tuple[float, auto.EngineEvent]] = []
    result = stack.up(on_event=lambda event: arrivals.append((time.monotonic(), event)))
    finished = time.monotonic()

    events = [event for _, event in arrivals]
    assert [e.sequence for e in events] == list(range(len(events)))
    assert events[0].prelude_event is not None
    assert events[-2].summary_event is not None
    assert events[-2].summary_event.resource_changes == {auto.OpType.CREATE: 2}
    assert events[-1].cancel_event is not None
    assert result.summary.resource_changes == {"create": 2}
    # The resource's event came while the program was still sleeping, not after the run.
    created = next(at for at, e in arrivals if e.res_outputs_event is not None and
                   e.res_outputs_event.metadata.urn.endswith("::early"))
    assert finished - created >= PAUSE_SECONDS * 0.8


def test_file_event_log_still_works_for_older_clients(tmp_path: Path) -> None:
    """A plain path after --event-log gets one JSON event per line, as before 3.206."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: filelog\nruntime: python\n")
    env = {**os.environ, "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}",
           "PULUMI_CONFIG_PASSPHRASE": "file-log", "PULUMI_HOME": str(tmp_path / "home")}
    pulumi_bin = str(offline_pulumi.install_root() / "bin" / "pulumi")
    log = tmp_path / "events.txt"

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([pulumi_bin, "--non-interactive", *argv], cwd=project, env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    assert run("stack", "init", "dev").returncode == 0
    proc = run("refresh", "--yes", "--skip-preview", "--event-log", str(log), "--stack", "dev")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["sequence"] for e in events] == list(range(len(events)))
    assert "preludeEvent" in events[0]
    assert events[-2]["summaryEvent"]["result"] == "succeeded"
    assert "cancelEvent" in events[-1]


@pytest.mark.slow
def test_every_debug_line_of_a_program_that_ends_at_once_reaches_the_event_stream_in_order(
        engine: Engine) -> None:
    """Debug lines travel apart from the blocking calls, but none is lost or reordered, and a
    warning still arrives as a warning."""
    stack = engine.stack("logs")
    events: list[auto.EngineEvent] = []

    result = stack.up(on_event=events.append)

    lines = result.outputs["lines"].value
    diagnostics = [e.diagnostic_event for e in events if e.diagnostic_event is not None]
    shown = [(d.severity, d.message.replace(RESET, "").strip()) for d in diagnostics]
    assert [text for severity, text in shown if text.startswith("debug line")] == \
        [f"debug line {n}" for n in range(lines)]
    assert {severity for severity, text in shown if text.startswith("debug line")} == {"debug"}
    assert [text for severity, text in shown if severity == "warning"] == \
        ["a warning before the debug lines"]


# Runs `up` in this process and counts, by severity, the program's log lines that reach the
# engine.
COUNT_LOG_LINES = """
import collections, contextlib, io, json, sys
from offline_pulumi import cli
from offline_pulumi.engine import monitor
received = collections.Counter()
log = monitor.Engine.Log
def counted(self, request, context):
    received[monitor._SEVERITIES[request.severity]] += 1
    return log(self, request, context)
monitor.Engine.Log = counted
with contextlib.redirect_stdout(io.StringIO()):
    code = cli.main(sys.argv[1:])
print(json.dumps({"code": code, **received}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("event_log", [True, False], ids=["event-log", "no-event-log"])
def test_debug_lines_reach_the_engine_only_when_an_event_log_keeps_them(
        engine: Engine, tmp_path: Path, event_log: bool) -> None:
    stack = engine.stack("logs")
    log = ["--event-log", str(tmp_path / "events.jsonl")] if event_log else []
    result = subprocess.run(
        [sys.executable, "-c", COUNT_LOG_LINES, "up", "--yes", "--skip-preview", *log,
         "--stack", stack.name], cwd=stack.workspace.work_dir,
        env={**os.environ, **engine.env}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    received = json.loads(result.stdout.splitlines()[-1])
    assert received["code"] == 0
    assert received["warning"] == 1
    assert received.get("debug", 0) >= (200 if event_log else 0)
    if not event_log:
        assert "debug" not in received


@pytest.mark.slow
def test_parallel_one_runs_one_resource_operation_at_a_time(engine: Engine) -> None:
    """With ``--parallel 1`` each resource's step ends before the next one's begins."""
    stack = engine.stack("all_random")
    events: list[auto.EngineEvent] = []
    stack.up(parallel=1, on_event=events.append)

    under_way: set[str] = set()
    most = 0
    for event in events:
        if event.resource_pre_event and event.resource_pre_event.metadata.type.startswith("random:"):
            under_way.add(event.resource_pre_event.metadata.urn)
        if event.res_outputs_event:
            under_way.discard(event.res_outputs_event.metadata.urn)
        most = max(most, len(under_way))
    assert most == 1
    assert not under_way


def two_resources_program() -> None:
    random.RandomId("a", byte_length=4)
    pulumi.export("fixed", 1)


def test_an_unchanged_up_reports_every_resource_as_the_same_the_stack_included(
        engine: Engine) -> None:
    stack = auto.create_or_select_stack(stack_name=unique_stack(), project_name="sames",
                                        program=two_resources_program, opts=engine.opts())
    stack.up()
    events: list[auto.EngineEvent] = []
    assert stack.up(on_event=events.append).summary.resource_changes == {"same": 2}

    reported = [(e.res_outputs_event.metadata.type, e.res_outputs_event.metadata.op)
                for e in events if e.res_outputs_event]
    assert ("pulumi:pulumi:Stack", auto.OpType.SAME) in reported
    assert {op for _, op in reported} == {auto.OpType.SAME}
