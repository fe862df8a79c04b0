"""The reaper on a real backend: orphaned stacks go, owned ones stay, leftovers are swept."""

from __future__ import annotations

import fcntl
import json
import socket
import subprocess
import time

import pytest

from infra import owners
from infra.basic import Pipeline, configure, create_stack, set_context, up
from infra.engine import select_engine
from infra.kinds import parse_request
from infra.metrics import Metrics
from infra.reaper import Reaper
from infra.settings import Settings
from tests.api.support import CLEAN, leftovers, make_environ

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path):
    return Settings.from_environ(make_environ(tmp_path / "state"))


@pytest.fixture
def pipeline(settings):
    pipeline = Pipeline(settings, select_engine(settings))
    pipeline.prepare()
    return pipeline


def dead_owner(age: float = 0) -> owners.Owner:
    """An owner record of a process that has exited."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return owners.Owner(proc.pid, 0.0, socket.gethostname(), time.time() - age)


def provision(pipeline, owner: owners.Owner | None) -> str:
    """A burner stack with a resource, left behind the way a crashed request leaves it."""
    ctx = set_context(parse_request("uuid", {}), pipeline.settings)
    work_dir = pipeline.settings.work_dir / ctx.stack_name
    work_dir.mkdir(parents=True)
    if owner is not None:
        owners.write_owner(pipeline.settings.owners_dir, ctx.stack_name, owner)
    stack = create_stack(ctx, pipeline.open_workspace(work_dir))
    configure(stack, ctx.request)
    up(stack)
    return ctx.stack_name


@pytest.mark.parametrize("owner", [
    pytest.param(dead_owner(), id="dead-owner"),
    pytest.param(None, id="no-owner-record"),
    pytest.param(owners.Owner(owners.current_owner().pid, owners.current_owner().process_started,
                              socket.gethostname(), time.time() - 10_000), id="owner-too-old"),
])
def test_orphaned_stack_is_destroyed_and_removed(pipeline, settings, owner):
    name = provision(pipeline, owner)
    metrics = Metrics()
    report = Reaper(pipeline, metrics).run_once()
    assert report.reaped == (name,)
    assert leftovers(settings) == CLEAN
    assert metrics.registry.get_sample_value("burner_reaped_stacks_total") == 1.0


def test_stack_of_a_live_request_is_left_alone(pipeline, settings):
    name = provision(pipeline, owners.current_owner())
    assert Reaper(pipeline).run_once().reaped == ()
    assert leftovers(settings)["stacks"] == [name]
    owners.remove_owner(settings.owners_dir, name)  # the request is gone now
    assert Reaper(pipeline).run_once().reaped == (name,)
    assert leftovers(settings) == CLEAN


def test_a_pass_is_skipped_while_another_process_reaps(pipeline, settings):
    name = provision(pipeline, dead_owner())
    with open(settings.state_dir / "reaper.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        assert Reaper(pipeline).run_once().reaped == ()
    assert leftovers(settings)["stacks"] == [name]
    assert Reaper(pipeline).run_once().reaped == (name,)


def test_leftovers_of_dead_processes_are_swept(pipeline, settings):
    gone = dead_owner()
    stale = "burner-00000000deadbeef"
    owners.write_owner(settings.owners_dir, stale, gone)
    (settings.work_dir / stale).mkdir(parents=True)
    (settings.work_dir / "burner-0000000000000001").mkdir()
    dead_tmp = settings.tmp_dir / f"{gone.pid}-1.000"
    (dead_tmp / "automation-logs-up-x").mkdir(parents=True)
    live_tmp = owners.process_tmp_dir(settings.tmp_dir)
    live_tmp.mkdir(parents=True, exist_ok=True)
    workspaces = settings.pulumi_home / "workspaces"
    workspaces.mkdir(parents=True, exist_ok=True)
    (workspaces / "burner-abc-workspace.json").write_text(
        json.dumps({"stack": f"organization/burner/{stale}"}))
    report = Reaper(pipeline).run_once()
    assert report.files_removed == 5
    assert leftovers(settings) == CLEAN
    assert live_tmp.is_dir()
