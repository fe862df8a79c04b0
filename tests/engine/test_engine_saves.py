"""Saving the snapshot while steps run in parallel, as the SDK registers them, and while
deletes run one after another.

Every change is saved before it is reported (a create is pending in a saved snapshot before
the provider runs, and its outcome is saved before the program hears of it), while steps
running at the same time share their saves, and so do deletes made one after another.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from offline_pulumi.engine import ledger
from offline_pulumi.engine.deployment import Deployment
from offline_pulumi.engine.events import EventStream
from offline_pulumi.engine.steps import Registered, Registration, StepFailed
from offline_pulumi.providers import random

RANDOM_ID = "random:index/randomId:RandomId"
STEPS = 40


class Saves:
    """A persist seam that takes as long as a small write and keeps what each save held."""

    def __init__(self, seconds: float = 0.005) -> None:
        self.seconds = seconds
        self.snapshots: list[tuple[set[str], set[str]]] = []   # (resource URNs, pending URNs)
        self._lock = threading.Lock()

    def __call__(self, resources: list[dict[str, Any]], pending: list[dict[str, Any]]) -> None:
        time.sleep(self.seconds)
        with self._lock:
            self.snapshots.append(({r["urn"] for r in resources},
                                   {p["resource"]["urn"] for p in pending}))

    def last(self) -> tuple[set[str], set[str]]:
        """What the latest save held (nothing before the first)."""
        with self._lock:
            return self.snapshots[-1] if self.snapshots else (set(), set())


def _deployment(saves: Saves) -> Deployment:
    return Deployment("dev", "proj", [], EventStream(None, out=io.StringIO()), dry_run=False,
                      persist=saves)


def _urn(name: str) -> str:
    return f"urn:pulumi:dev::proj::{RANDOM_ID}::{name}"


def _register(deployment: Deployment, index: int) -> Registered:
    return deployment.register(Registration(
        type=RANDOM_ID, name=f"r{index}", custom=True, version="4.21.4",
        inputs={"byteLength": 4, "prefix": f"r{index}-"}))


def _register_in_parallel(deployment: Deployment, each: Any = _register) -> list[Any]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda index: each(deployment, index), range(STEPS)))


def test_parallel_steps_share_saves_and_the_last_save_holds_every_outcome() -> None:
    saves = Saves()
    deployment = _deployment(saves)
    registered = _register_in_parallel(deployment)
    # Each create changes the state twice (begun, done): alone, that is two saves a step.
    assert len(saves.snapshots) < STEPS
    assert deployment.saves == len(saves.snapshots)
    urns, pending = saves.last()
    assert {r.urn for r in registered} <= urns and pending == set()
    assert sum("::pulumi:providers:random::" in urn for urn in urns) == 1


def test_a_step_is_saved_before_the_program_hears_of_it() -> None:
    saves = Saves()
    deployment = _deployment(saves)

    def register_and_look(deployment: Deployment, index: int) -> tuple[str, bool]:
        result = _register(deployment, index)
        urns, pending = saves.last()
        return result.urn, result.urn in urns and result.urn not in pending

    looks = _register_in_parallel(deployment, register_and_look)
    assert [urn for urn, saved in looks if not saved] == []


def test_a_create_is_saved_as_pending_before_its_provider_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    saves = Saves()
    unsaved: list[str] = []
    create = random.create

    def create_after_looking(token: str, inputs: Mapping[str, Any]) -> Any:
        urn = _urn(str(inputs["prefix"]).rstrip("-"))
        if urn not in saves.last()[1]:
            unsaved.append(urn)
        return create(token, inputs)

    monkeypatch.setattr(random, "create", create_after_looking)
    _register_in_parallel(_deployment(saves))
    assert unsaved == []


def _slow_create_starting(monkeypatch: pytest.MonkeyPatch, deployment: Deployment,
                          seconds: float) -> list[tuple[Registered, float]]:
    """Make r0's provider take ``seconds``, and register r1 from another thread as it starts;
    r1's result and how long its registration took land in the returned list."""
    create = random.create
    others: list[tuple[Registered, float]] = []

    def register_other() -> None:
        started = time.monotonic()
        others.append((_register(deployment, 1), time.monotonic() - started))

    def slow_create(token: str, inputs: Mapping[str, Any]) -> Any:
        if inputs["prefix"] == "r0-":
            threading.Thread(target=register_other).start()
            time.sleep(seconds)
        return create(token, inputs)

    monkeypatch.setattr(random, "create", slow_create)
    return others


def test_a_save_waits_for_a_registration_under_way_and_covers_both(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger, "SAVE_GATHER", 10.0)
    saves = Saves(0)
    deployment = _deployment(saves)
    others = _slow_create_starting(monkeypatch, deployment, seconds=0.2)
    _register(deployment, 0)
    deadline = time.monotonic() + 10
    while not others and time.monotonic() < deadline:
        time.sleep(0.01)
    first, second = _urn("r0"), _urn("r1")
    # r1's begin was not written while r0's provider ran: it waited for r0's outcome, and
    # one write holds both.
    assert not any({first, second} <= pending for _, pending in saves.snapshots)
    assert any(first in urns and pending == {second} for urns, pending in saves.snapshots)
    assert others and {first, second} <= saves.last()[0]


def test_a_registration_stuck_in_its_provider_holds_other_saves_only_briefly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    saves = Saves(0)
    deployment = _deployment(saves)
    others = _slow_create_starting(monkeypatch, deployment, seconds=1.0)
    _register(deployment, 0)
    assert len(others) == 1
    registered, seconds = others[0]
    assert seconds < 0.5
    assert registered.urn == _urn("r1")


def test_a_save_that_fails_fails_the_update() -> None:
    def persist(resources: list[dict[str, Any]], pending: list[dict[str, Any]]) -> None:
        raise OSError("disk full")

    deployment = Deployment("dev", "proj", [], EventStream(None, out=io.StringIO()),
                            dry_run=False, persist=persist)
    with pytest.raises(StepFailed):
        _register(deployment, 0)
    assert deployment.failure is not None and "disk full" in deployment.failure
    assert deployment.saves == 0


def _created(count: int) -> list[dict[str, Any]]:
    """The snapshot of an update that created ``count`` random ids (and their provider)."""
    deployment = _deployment(Saves(0))
    for index in range(count):
        _register(deployment, index)
    return deployment.snapshot()


def test_deletes_share_saves_and_each_is_reported_once_saved(
        monkeypatch: pytest.MonkeyPatch) -> None:
    old = _created(STEPS)
    saves = Saves()
    deployment = Deployment("dev", "proj", old, EventStream(None, out=io.StringIO()),
                            dry_run=False, persist=saves)
    unsaved: list[str] = []
    report = deployment.events.step_done

    def report_after_looking(metadata: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if metadata["urn"] in saves.last()[0]:
            unsaved.append(metadata["urn"])
        report(metadata, *args, **kwargs)

    monkeypatch.setattr(deployment.events, "step_done", report_after_looking)
    deployment.destroy_all()
    assert unsaved == []
    assert saves.last() == (set(), set())
    # A save per delete rewrote the whole checkpoint each time.
    assert 1 <= len(saves.snapshots) < STEPS // 4


def test_a_long_run_of_deletes_is_saved_as_it_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    old = _created(20)
    saves = Saves(0)
    deployment = Deployment("dev", "proj", old, EventStream(None, out=io.StringIO()),
                            dry_run=False, persist=saves)
    begin = deployment.events.step_pre

    def slow_begin(*args: Any, **kwargs: Any) -> None:
        time.sleep(0.01)  # a delete that takes 10 ms: 21 of them take over 0.2 s
        begin(*args, **kwargs)

    monkeypatch.setattr(deployment.events, "step_pre", slow_begin)
    deployment.destroy_all()
    assert 3 <= len(saves.snapshots) < 21
    assert saves.last() == (set(), set())
