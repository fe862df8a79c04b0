"""Pending operations: what an interrupted update leaves in the checkpoint, and its clean-up.

A crash mid-step cannot be timed from a test, so two views: the deployment's persist seam
shows each step recorded as pending while it runs; a checkpoint carrying a pending create (as
a killed engine leaves it) drives the user-visible behaviour through the Automation API.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from pulumi import automation as auto

from offline_pulumi.engine.deployment import Deployment
from offline_pulumi.engine.events import EventStream
from offline_pulumi.engine.steps import Registration
from tests.engine.support import (
    Engine,
)

RANDOM_ID = "random:index/randomId:RandomId"


def test_a_step_is_saved_as_pending_before_it_runs_and_cleared_after() -> None:
    saves: list[tuple[list[str], list[dict[str, Any]]]] = []
    deployment = Deployment(
        "dev", "proj", [], EventStream(None, out=io.StringIO()), dry_run=False,
        persist=lambda resources, pending: saves.append(([r["urn"] for r in resources],
                                                          pending)))
    result = deployment.register(Registration(type=RANDOM_ID, name="rid", custom=True,
                                              inputs={"byteLength": 4}, version="4.21.4"))
    in_flight = [(urns, pending) for urns, pending in saves
                 if any(p["resource"]["urn"] == result.urn for p in pending)]
    assert in_flight, "the create was never saved as pending"
    urns, pending = in_flight[0]
    assert result.urn not in urns  # not yet a resource while it is being created
    assert pending[0]["type"] == "creating"
    final_urns, final_pending = saves[-1]
    assert result.urn in final_urns and final_pending == []


@pytest.mark.slow
def test_a_leftover_pending_create_is_reported_then_cleared_by_refresh(engine: Engine) -> None:
    stack = engine.stack("basic")
    stack.up()
    # What a killed engine leaves: an operation that started and never finished.
    checkpoint = engine.checkpoint(stack)
    orphan: dict[str, Any] = {"urn": f"urn:pulumi:{stack.name}::e2e-basic::{RANDOM_ID}::lost",
              "custom": True, "type": RANDOM_ID, "inputs": {"byteLength": 4}}
    checkpoint["checkpoint"]["latest"]["pending_operations"] = [
        {"resource": orphan, "type": "creating"}]
    engine.storage.put(engine.checkpoint_key(stack), json.dumps(checkpoint).encode())

    events: list[auto.EngineEvent] = []
    result = stack.up(on_event=events.append)
    warnings = [e.diagnostic_event.message for e in events
                if e.diagnostic_event and e.diagnostic_event.severity == "warning"]
    assert any("1 pending operations" in w and orphan["urn"] in w for w in warnings)
    assert set(result.summary.resource_changes or {}) == {"same"}
    # Pending creates are kept (the resource may exist) until a refresh clears them.
    assert engine.checkpoint(stack)["checkpoint"]["latest"]["pending_operations"][0][
        "resource"]["urn"] == orphan["urn"]
    stack.refresh(clear_pending_creates=True)
    assert "pending_operations" not in engine.checkpoint(stack)["checkpoint"]["latest"]
