"""The safety net: a Temporal Schedule tears down burner stacks that no running workflow owns."""

from __future__ import annotations

import time

import pytest

from infra.basic import BurnSpec, Progress, new_stack_name
from infra.kinds import parse_request
from infra.service import Service
from infra.settings import Settings
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
