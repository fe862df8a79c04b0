"""The safety net: a Temporal Schedule tears down burner stacks that no running workflow owns."""

from __future__ import annotations

import time

import pytest

from infra.basic import BurnSpec, Progress, new_stack_name
from infra.kinds import parse_request
from infra.service import Service
from infra.settings import Settings
from infra.store import FINAL, OperationRecord, StackRecord
from tests.api.support import burner_stacks, make_environ
from tests.harness import wait_for

pytestmark = pytest.mark.slow


def test_an_orphaned_stack_is_reaped_once_it_is_old_enough(tmp_path):
    settings = Settings.from_environ(make_environ(
        tmp_path / "state", INFRA_API_REAP_INTERVAL="1", INFRA_API_REQUEST_TIMEOUT="2",
        INFRA_API_ORPHAN_AGE="6"))
    service = Service(settings)
    service.start()
    try:
        # A stack provisioned outside any workflow, and never torn down: an orphan.
        orphan = new_stack_name()
        service.burner.provision(BurnSpec(parse_request("uuid", {}), orphan), Progress())
        made = time.monotonic()
        assert burner_stacks(settings) == [orphan]
        time.sleep(3)  # several passes ran: it is too young to be reaped yet
        assert burner_stacks(settings) == [orphan]
        wait_for(lambda: burner_stacks(settings) == [], timeout=60, what="the reaper")
        assert time.monotonic() - made >= 6 - 1  # the age bound, less last_update's rounding
        assert b"burner_reaped_stacks_total 1.0" in service.metrics.exposition()
    finally:
        service.stop()


def test_operations_the_api_never_handed_to_a_workflow_are_failed_and_free_their_stacks(
        tmp_path):
    """The API stopped between recording an operation and starting or signalling its stack's
    workflow: the reaper fails the operation, and the stack takes operations again."""
    settings = Settings.from_environ(make_environ(
        tmp_path / "state", INFRA_API_REAP_INTERVAL="1", INFRA_API_REQUEST_TIMEOUT="2",
        INFRA_API_ORPHAN_AGE="6"))
    service = Service(settings)
    service.start()
    store = service.store
    try:
        created, _ = service.control.create({"program": "burner",
                                             "config": {"request": "id"}}, None)
        wait_for(lambda: store.get_operation(created.id).status in FINAL, timeout=60,
                 what="the real create")
        assert store.get_operation(created.id).status == "succeeded"
        # What the API records before it calls Temporal, as if it died right after.
        now = time.time()
        lost_create = OperationRecord("op-lost-create", "create", "never-started",
                                      "burner", "queued", now)
        store.begin_create(StackRecord("never-started", "burner", "creating", {}, None,
                                       now, now, None, lost_create.id), lost_create)
        lost_destroy = OperationRecord("op-lost-destroy", "destroy", created.stack,
                                       "burner", "queued", now)
        store.begin_operation(lost_destroy, "destroying")

        time.sleep(3)  # several passes ran: they are too young to be judged yet
        assert store.get_operation(lost_create.id).status == "queued"
        assert store.get_operation(lost_destroy.id).status == "queued"
        wait_for(lambda: store.get_operation(lost_destroy.id).status in FINAL
                 and store.get_operation(lost_create.id).status in FINAL,
                 timeout=60, what="the reaper")

        for lost in (lost_create, lost_destroy):
            record = store.get_operation(lost.id)
            assert (record.status, record.error_code) == ("failed", "orchestration_unavailable")
        assert store.get_stack("never-started") is None
        assert store.get_stack(created.stack).status == "ready"
        # An operation its workflow did receive is told apart from the lost one.
        update = service.control.update(created.stack, {"config": {"request": "uuid"}})
        wait_for(lambda: store.get_operation(update.id).status in FINAL, timeout=60,
                 what="the update")
        assert service.orchestrator.handed_over(store.get_operation(update.id)) is True
        assert service.orchestrator.handed_over(lost_destroy) is False
        # The stack's workflow was there all along: a destroy now goes through.
        destroy = service.control.delete(created.stack)
        wait_for(lambda: store.get_operation(destroy.id).status in FINAL, timeout=60,
                 what="the destroy")
        assert store.get_operation(destroy.id).status == "succeeded"
    finally:
        service.stop()
