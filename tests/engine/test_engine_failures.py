"""Failures, locking and secrecy of the offline engine, driven through the Automation API."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto
from pulumi.automation import errors as auto_errors

from tests.harness import wait_for
from tests.engine.support import (
    Background,
    BOTH_BACKENDS,
    Engine,
    backend_url,
    make_engine,
    plain_outputs,
    stderr_of,
    stdout_of,
)

pytestmark = [pytest.mark.slow, BOTH_BACKENDS]

BASIC_RESOURCES = 4


def resources(stack: auto.Stack) -> list[tuple[str, Any]]:
    """(urn, outputs) of every resource in the stack's exported state except the root Stack."""
    found = [(r["urn"], r.get("outputs")) for r in stack.export_stack().deployment.get("resources") or []
             if r["type"] != "pulumi:pulumi:Stack"]
    return sorted(found, key=lambda item: item[0])


# --- failed updates leave the last good state -----------------------------------------------


@dataclass
class FailedUpdate:
    """A stack after one good up and one failed up, with what was observed right after."""

    stack: auto.Stack
    broken_config: dict[str, str]
    good: auto.UpResult
    resources_before: list[tuple[str, Any]]
    error: auto.CommandError
    outputs_after: auto.OutputMap
    resources_after: list[tuple[str, Any]]


FAILURES = {
    "program-exception": ({"fail": "kaboom: the program broke"}, auto_errors.RuntimeError,
                          ["failed with an unhandled exception", "kaboom: the program broke"]),
    "unknown-provider": ({"unknown_provider": "true"}, auto.CommandError,
                         ["'aws'", "aws:s3/bucket:Bucket"]),
}


@pytest.fixture(scope="module", params=list(FAILURES))
def failed_update(request: pytest.FixtureRequest, engine_command: auto.PulumiCommand,
                  tmp_path_factory: pytest.TempPathFactory, backend: str
                  ) -> Iterator[FailedUpdate]:
    broken_config = FAILURES[request.param][0]
    engine = make_engine(engine_command, tmp_path_factory.mktemp("failed-update"),
                         backend_url(request, backend))
    stack = engine.stack("basic")
    good = stack.up()
    before = resources(stack)
    stack.set_all_config({k: auto.ConfigValue(v) for k, v in broken_config.items()})
    with pytest.raises(auto.CommandError) as raised:
        stack.up()
    assert engine.locks(stack) == []
    yield FailedUpdate(stack, broken_config, good, before, raised.value, stack.outputs(),
                       resources(stack))
    engine.close()


def test_failed_up_raises_the_mapped_error_naming_the_problem(failed_update: FailedUpdate) -> None:
    _, error_class, expected_output = FAILURES[failed_update_id(failed_update)]
    assert type(failed_update.error) is error_class
    for text in expected_output:
        assert text in stdout_of(failed_update.error)


def test_failed_up_keeps_previous_resources(failed_update: FailedUpdate) -> None:
    assert failed_update.resources_after == failed_update.resources_before
    assert not any("aws" in urn for urn, _ in failed_update.resources_after)
    assert [(h.kind, h.result) for h in failed_update.stack.history()] == [
        ("update", "failed"), ("update", "succeeded")]


def test_failed_up_keeps_previous_outputs(failed_update: FailedUpdate) -> None:
    assert plain_outputs(failed_update.outputs_after) == plain_outputs(failed_update.good.outputs)


def test_up_after_fixing_the_program_changes_nothing(failed_update: FailedUpdate) -> None:
    stack = failed_update.stack
    stack.remove_all_config(list(failed_update.broken_config))
    fixed = stack.up()
    assert fixed.summary.resource_changes == {"same": BASIC_RESOURCES}
    assert plain_outputs(fixed.outputs) == plain_outputs(failed_update.good.outputs)
    assert resources(stack) == failed_update.resources_before


def failed_update_id(failed_update: FailedUpdate) -> str:
    return next(k for k, v in FAILURES.items() if v[0] == failed_update.broken_config)


# --- concurrency ----------------------------------------------------------------------------


def test_two_stacks_update_in_parallel(engine: Engine) -> None:
    work_dir = engine.project("basic")
    stacks = [engine.stack("basic", work_dir=work_dir, config={"sleep": "1"}) for _ in range(2)]
    runs = [Background(stack.up) for stack in stacks]
    results = [run.join() for run in runs]

    assert [r.summary.resource_changes for r in results] == [{"create": BASIC_RESOURCES}] * 2
    assert results[0].outputs["hex"].value != results[1].outputs["hex"].value
    for stack, result in zip(stacks, results, strict=True):
        assert plain_outputs(stack.outputs()) == plain_outputs(result.outputs)
        assert [h.kind for h in stack.history()] == ["update"]


# Everything that takes the stack lock is refused while another update holds it.
LOCKED_OPERATIONS: dict[str, Callable[[auto.Stack], Any]] = {
    "up": lambda stack: stack.up(),
    "refresh": lambda stack: stack.refresh(),
    "destroy": lambda stack: stack.destroy(),
    "import_stack": lambda stack: stack.import_stack(stack.export_stack()),
    "remove_stack --force": lambda stack: stack.workspace.remove_stack(stack.name, force=True),
}


def test_same_stack_twice_at_once_is_a_concurrent_update(engine: Engine) -> None:
    stack = engine.stack("basic", config={"sleep": "4"})
    first = Background(stack.up)
    wait_for(lambda: engine.locks(stack), what="the first update's lock file")

    refused = {}
    for name, operation in LOCKED_OPERATIONS.items():
        with pytest.raises(auto.ConcurrentUpdateError) as raised:
            operation(stack)
        refused[name] = "the stack is currently locked by" in stderr_of(raised.value)
    assert refused == dict.fromkeys(LOCKED_OPERATIONS, True)
    assert engine.locks(stack), "the first update finished too early for the check to mean anything"

    assert first.join().summary.resource_changes == {"create": BASIC_RESOURCES}
    assert engine.locks(stack) == []
    assert [(h.kind, h.result) for h in stack.history()] == [("update", "succeeded")]
    assert [s.name for s in stack.workspace.list_stacks()] == [stack.name]


def descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, recursively (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_killed_update_keeps_its_lock_until_cancel(engine: Engine) -> None:
    stack = engine.stack("basic")
    good = stack.up()
    stack.set_config("sleep", auto.ConfigValue("60"))

    doomed = Background(stack.up)
    [lock] = wait_for(lambda: engine.locks(stack), what="the update's lock file")
    pid = engine.lock_info(lock)["pid"]
    assert "pulumi" in Path(f"/proc/{pid}/cmdline").read_text()
    # The program (sleeping) must be running, so the kill lands mid-update.
    wait_for(lambda: descendants(pid), what="the program process")
    doomed_pids = [pid, *descendants(pid)]
    for victim in doomed_pids:
        os.kill(victim, signal.SIGKILL)
    with pytest.raises(auto.CommandError):
        doomed.join()

    assert engine.locks(stack) == [lock]
    stack.set_config("sleep", auto.ConfigValue("0"))
    with pytest.raises(auto.ConcurrentUpdateError):
        stack.up()
    assert plain_outputs(stack.outputs()) == plain_outputs(good.outputs)

    stack.cancel()
    assert engine.locks(stack) == []
    after = stack.up()
    assert after.summary.resource_changes == {"same": BASIC_RESOURCES}
    assert plain_outputs(after.outputs) == plain_outputs(good.outputs)


# --- secrets at rest ------------------------------------------------------------------------


def test_secrets_never_stored_in_plain_text(engine: Engine) -> None:
    config_secret = "cfg-S3cret-value-7781"
    stack = engine.stack("basic")
    stack.set_config("token", auto.ConfigValue(config_secret, secret=True))
    up = stack.up()
    password = up.outputs["password"].value
    assert up.outputs["token"].value == config_secret and up.outputs["token"].secret
    assert up.outputs["str"].value  # a plain value, stored as it is (the search works)
    stack.refresh()
    stack.destroy()

    config_file = Path(stack.workspace.work_dir) / f"Pulumi.{stack.name}.yaml"
    blobs = [*engine.state_blobs(), config_file.read_bytes()]
    assert len(blobs) > 5  # checkpoints, backups, history
    leaks = [(blob[:80], secret) for blob in blobs for secret in (password, config_secret)
             if secret.encode() in blob]
    assert leaks == []
    [latest_update] = [h for h in stack.history() if h.kind == "update"]
    project = stack.workspace.project_settings().name
    token = latest_update.config[f"{project}:token"]
    assert (token.value, token.secret) == (config_secret, True)
    history_text = b"".join(engine.state_blobs(".pulumi/history/")).decode()
    assert up.outputs["str"].value in history_text
