"""The burner steps in-process end to end: offline engine, unmodified pulumi.automation, the real program."""

from __future__ import annotations

import shutil

import pytest

from infra.basic import STACK_PREFIX, BurnerResult
from infra.errors import EngineError
from infra.kinds import BurnerRequest, parse_request
from tests.api import checks
from tests.api.support import burner_stacks

pytestmark = pytest.mark.slow

PHASES = ["ensure_venv", "create_stack", "configure", "up", "read_outputs", "destroy", "remove"]


def assert_cleaned_up(result_stack: str, settings) -> None:
    assert result_stack not in burner_stacks(settings)
    assert not (settings.work_dir / result_stack).exists()


def test_uuid_stack_runs_every_phase_and_leaves_nothing(live_burner, live_settings):
    result = live_burner.run(parse_request("uuid", {}))
    assert isinstance(result, BurnerResult)
    checks.assert_uuid(result.value)
    assert result.stack.startswith(STACK_PREFIX)
    assert [phase.name for phase in result.phases] == PHASES
    assert result.duration_ms > 0
    assert_cleaned_up(result.stack, live_settings)


@pytest.mark.parametrize("size", ["1", "32", "64"])
def test_id_decodes_to_the_requested_bytes(live_burner, size):
    result = live_burner.run(parse_request("id", {"bytes": size}))
    checks.assert_id(result.value, dict(result.extras)["hex"], int(size))


@pytest.mark.parametrize("length", ["1", "256"])
def test_string_has_the_exact_length_and_charset(live_burner, length):
    result = live_burner.run(parse_request("string", {"length": length}))
    checks.assert_string(result.value, int(length))


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata", "America/St_Johns"])
def test_time_is_in_the_requested_zone(live_burner, tz):
    result = live_burner.run(parse_request("time", {"tz": tz}))
    checks.assert_time(result.value, tz)


def test_a_request_writes_nothing_into_the_source_tree(live_burner, live_settings):
    def snapshot() -> dict[str, float]:
        return {str(p): p.stat().st_mtime for p in live_settings.program_dir.rglob("*")}

    before = snapshot()
    live_burner.run(parse_request("id", {}))
    assert snapshot() == before


def test_each_request_gets_its_own_stack(live_burner):
    first = live_burner.run(parse_request("uuid", {}))
    second = live_burner.run(parse_request("uuid", {}))
    assert first.stack != second.stack
    assert first.value != second.value


def test_program_failure_is_an_engine_error_and_the_stack_is_still_removed(live_burner, live_settings):
    # Skips validation on purpose: the program itself must refuse an unknown request.
    with pytest.raises(EngineError) as info:
        live_burner.run(BurnerRequest("bogus"))
    assert info.value.phase == "up"
    assert info.value.stack is not None and info.value.stack.startswith(STACK_PREFIX)
    assert_cleaned_up(info.value.stack, live_settings)


def test_no_burner_stack_is_left_in_the_backend(live_burner, live_settings):
    live_burner.run(parse_request("string", {}))
    assert burner_stacks(live_settings) == []


@pytest.mark.real_pulumi
@pytest.mark.skipif(shutil.which("pulumi") is None, reason="no pulumi CLI on PATH")
def test_real_cli_runs_the_same_pipeline(tmp_path):
    from infra.basic import Burner
    from infra.engine import select_engine
    from infra.settings import Settings
    from tests.api.support import make_environ

    settings = Settings.from_environ(make_environ(tmp_path / "state", INFRA_API_ENGINE="cli"))
    burner = Burner(settings, select_engine(settings))
    assert burner.engine.name == "cli"
    result = burner.run(parse_request("uuid", {}))
    checks.assert_uuid(result.value)
    assert_cleaned_up(result.stack, settings)
