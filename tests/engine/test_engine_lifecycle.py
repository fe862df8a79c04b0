"""Stack lifecycle through the Automation API against the offline engine.

Covers create/select, config, preview/up/refresh/destroy, outputs, history, list_stacks,
export/import, remove_stack, events and inline programs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pulumi
import pulumi_random as random
import pytest
from pulumi import automation as auto
from pulumi.automation import OpType

from tests.engine.support import (
    BOTH_BACKENDS,
    Engine,
    plain_outputs,
    secret_keys,
    unique_stack,
)

pytestmark = BOTH_BACKENDS

# basic program: the Stack resource + RandomId + RandomString + RandomPassword.
BASIC_RESOURCES = 4
# Resources in the checkpoint (what `stack ls` counts): the above plus the default provider.
BASIC_STATE_RESOURCES = BASIC_RESOURCES + 1


# --- create / select ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exists", "error"),
    [
        (auto.create_stack, True, auto.StackAlreadyExistsError),
        (auto.select_stack, False, auto.StackNotFoundError),
    ],
)
def test_create_and_select_error_mapping(engine: Engine, call, exists: bool, error: type) -> None:
    work_dir = engine.project("basic")
    name = unique_stack()
    if exists:
        auto.create_stack(name, work_dir=str(work_dir), opts=engine.opts())
    with pytest.raises(error):
        call(name, work_dir=str(work_dir), opts=engine.opts())


def test_create_select_and_create_or_select_agree(engine: Engine) -> None:
    work_dir = engine.project("basic")
    name = unique_stack()
    created = auto.create_stack(name, work_dir=str(work_dir), opts=engine.opts())
    other = auto.create_stack(unique_stack(), work_dir=str(work_dir), opts=engine.opts())
    assert created.workspace.stack().name == other.name

    selected = auto.select_stack(name, work_dir=str(work_dir), opts=engine.opts())
    assert selected.workspace.stack().name == name
    again = auto.create_or_select_stack(name, work_dir=str(work_dir), opts=engine.opts())
    assert again.name == name
    assert sorted(s.name for s in again.workspace.list_stacks()) == sorted([name, other.name])


# --- config ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_config_plain_and_secret_round_trip(engine: Engine) -> None:
    stack = engine.stack("basic")
    project = stack.workspace.project_settings().name
    stack.set_all_config({
        "greeting": auto.ConfigValue("hello"),
        "token": auto.ConfigValue("t0p-s3cret-value", secret=True),
        "random:unrelated": auto.ConfigValue("42"),
    })

    plain = stack.get_config("greeting")
    assert (plain.value, plain.secret) == ("hello", False)
    secret = stack.get_config("token")
    assert (secret.value, secret.secret) == ("t0p-s3cret-value", True)

    everything = stack.get_all_config()
    assert {k: (v.value, v.secret) for k, v in everything.items()} == {
        f"{project}:greeting": ("hello", False),
        f"{project}:token": ("t0p-s3cret-value", True),
        "random:unrelated": ("42", False),
    }
    settings = stack.workspace.stack_settings(stack.name)
    assert settings.config is not None
    assert settings.config[f"{project}:greeting"] == "hello"
    stored_secret = settings.config[f"{project}:token"]
    assert stored_secret.secure.startswith("v1:")  # a secure value, stored encrypted
    assert "t0p-s3cret-value" not in stored_secret.secure

    with pytest.raises(auto.CommandError, match="missing"):
        stack.get_config("missing")


# --- preview / up / refresh / destroy / outputs / history / list ----------------------------


@pytest.mark.slow
def test_full_lifecycle(engine: Engine) -> None:
    stack = engine.stack("basic", config={"token": "exported-token"})
    project = stack.workspace.project_settings().name

    preview = stack.preview()
    assert preview.change_summary == {OpType.CREATE: BASIC_RESOURCES}
    assert stack.outputs() == {}
    assert stack.history() == []

    events: list[auto.EngineEvent] = []
    up = stack.up(on_event=events.append)
    assert up.summary.kind == "update" and up.summary.result == "succeeded"
    assert up.summary.resource_changes == {"create": BASIC_RESOURCES}

    outputs = up.outputs
    assert set(outputs) == {"hex", "str", "password", "token", "nested"}
    assert secret_keys(outputs) == {"password", "token"}
    assert repr(outputs["password"]) == "[secret]"
    assert outputs["token"].value == "exported-token"
    assert re.fullmatch(r"[0-9a-f]{16}", outputs["hex"].value)
    assert re.fullmatch(r"[A-Za-z0-9]{12}", outputs["str"].value)
    assert len(outputs["password"].value) == 20
    assert outputs["nested"].value == {"list": [1, 2.5, True, None], "word": "hi"}
    assert plain_outputs(stack.outputs()) == plain_outputs(outputs)
    assert '"[secret]"' in up.stdout and outputs["password"].value not in up.stdout

    # The event stream: prelude first, summary then cancel last, one pre+outputs per resource.
    assert events[0].prelude_event is not None
    assert events[0].prelude_event.config[f"{project}:token"] == "exported-token"
    assert events[-2].summary_event is not None and events[-1].cancel_event is not None
    assert events[-2].summary_event.resource_changes == {OpType.CREATE: BASIC_RESOURCES}
    assert [e.sequence for e in events] == list(range(len(events)))
    pre = {e.resource_pre_event.metadata.urn: e.resource_pre_event.metadata.op
           for e in events if e.resource_pre_event}
    logical = {urn: op for urn, op in pre.items() if "pulumi:providers:" not in urn}
    assert len(logical) == BASIC_RESOURCES and set(logical.values()) == {OpType.CREATE}
    done = {e.res_outputs_event.metadata.urn: e.res_outputs_event.metadata.op
            for e in events if e.res_outputs_event}
    assert {urn: done.get(urn) for urn in logical} == logical

    assert stack.preview().change_summary == {OpType.SAME: BASIC_RESOURCES}

    refresh = stack.refresh()
    assert refresh.summary.kind == "refresh"
    assert refresh.summary.resource_changes == {"same": BASIC_RESOURCES}
    assert plain_outputs(stack.outputs()) == plain_outputs(outputs)

    second_events: list[auto.EngineEvent] = []
    second = stack.up(on_event=second_events.append)
    assert second.summary.resource_changes == {"same": BASIC_RESOURCES}
    assert plain_outputs(second.outputs) == plain_outputs(outputs)
    second_ops = {e.resource_pre_event.metadata.op for e in second_events
                  if e.resource_pre_event and "pulumi:providers:" not in e.resource_pre_event.metadata.urn}
    assert second_ops == {OpType.SAME}

    [summary] = stack.workspace.list_stacks()
    assert (summary.name, summary.current, summary.resource_count) == (stack.name, True, BASIC_STATE_RESOURCES)
    assert summary.last_update is not None

    destroy_events: list[auto.EngineEvent] = []
    destroy = stack.destroy(on_event=destroy_events.append)
    assert destroy.summary.kind == "destroy"
    destroyed = [e.resource_pre_event.metadata for e in destroy_events if e.resource_pre_event]
    assert {m.op for m in destroyed} == {OpType.DELETE}
    assert {m.urn for m in destroyed} >= set(logical)
    assert destroyed[-1].type == "pulumi:pulumi:Stack"  # dependents are deleted first
    assert destroy.summary.resource_changes == {"delete": BASIC_RESOURCES}
    assert stack.outputs() == {}
    [summary] = stack.workspace.list_stacks()
    assert summary.resource_count == 0

    history = stack.history()
    assert [(h.kind, h.result) for h in history] == [
        ("destroy", "succeeded"), ("update", "succeeded"), ("refresh", "succeeded"),
        ("update", "succeeded")]
    assert [h.resource_changes for h in history] == [
        {"delete": 4}, {"same": 4}, {"same": 4}, {"create": 4}]
    assert all(h.end_time is not None and h.end_time >= h.start_time for h in history)
    assert history[-1].config[f"{project}:token"].value == "exported-token"
    assert [h.kind for h in stack.history(page_size=2, page=1)] == ["destroy", "update"]
    assert [h.kind for h in stack.history(page_size=2, page=2)] == ["refresh", "update"]
    assert stack.info() is not None and stack.info().kind == "destroy"


@pytest.mark.slow
def test_list_stacks_flags_current_and_counts_resources(engine: Engine) -> None:
    work_dir = engine.project("basic")
    deployed = engine.stack("basic", work_dir=work_dir)
    deployed.up()
    fresh = engine.stack("basic", work_dir=work_dir)  # selecting it makes it current

    listed = {s.name: (s.current, s.resource_count) for s in fresh.workspace.list_stacks()}
    assert listed == {deployed.name: (False, BASIC_STATE_RESOURCES), fresh.name: (True, 0)}


# --- export / import ------------------------------------------------------------------------


@pytest.mark.slow
def test_export_import_round_trip_restores_state(engine: Engine) -> None:
    stack = engine.stack("basic")
    first = stack.up().outputs
    exported = stack.export_stack()
    assert exported.version == 3
    types = [r["type"] for r in exported.deployment["resources"]]
    assert types.count("random:index/randomId:RandomId") == 1

    stack.set_config("keeper", auto.ConfigValue("two"))
    replaced = stack.up()
    assert replaced.summary.resource_changes == {"replace": 1, "same": 3}
    assert replaced.outputs["hex"].value != first["hex"].value

    stack.import_stack(exported)
    assert plain_outputs(stack.outputs()) == plain_outputs(first)
    assert secret_keys(stack.outputs()) == {"password", "token"}
    again = stack.export_stack()
    assert again.deployment["resources"] == exported.deployment["resources"]

    stack.set_config("keeper", auto.ConfigValue("one"))
    assert stack.preview().change_summary == {OpType.SAME: BASIC_RESOURCES}


# --- remove_stack ---------------------------------------------------------------------------


@pytest.mark.slow
def test_remove_stack_refuses_while_resources_exist_unless_forced(engine: Engine) -> None:
    stack = engine.stack("basic")
    stack.up()
    ws = stack.workspace

    with pytest.raises(auto.CommandError, match="still has resources"):
        ws.remove_stack(stack.name)
    assert [s.name for s in ws.list_stacks()] == [stack.name]
    assert len(stack.outputs()) == 5

    ws.remove_stack(stack.name, force=True)
    assert ws.list_stacks() == []
    with pytest.raises(auto.StackNotFoundError):
        auto.select_stack(stack.name, work_dir=ws.work_dir, opts=engine.opts())


def test_remove_empty_stack_needs_no_force(engine: Engine) -> None:
    stack = engine.stack("basic", config={"keeper": "x"})
    config_file = Path(stack.workspace.work_dir) / f"Pulumi.{stack.name}.yaml"
    assert config_file.exists()
    stack.workspace.remove_stack(stack.name)
    assert stack.workspace.list_stacks() == []
    assert not config_file.exists()


@pytest.mark.slow
def test_destroy_with_remove_deletes_the_stack(engine: Engine) -> None:
    stack = engine.stack("basic")
    stack.up()
    result = stack.destroy(remove=True)
    assert result.summary.resource_changes == {"delete": BASIC_RESOURCES}
    assert stack.workspace.list_stacks() == []


# --- inline programs ------------------------------------------------------------------------


def inline_program() -> None:
    config = pulumi.Config()
    length = config.get_int("length") or 8
    value = random.RandomString("inline-str", length=length, special=False)
    pulumi.export("value", value.result)
    pulumi.export("secret", pulumi.Output.secret("inline-secret"))


@pytest.mark.slow
def test_inline_program_up_and_destroy(engine: Engine) -> None:
    stack = auto.create_or_select_stack(stack_name=unique_stack(), project_name="e2e-inline",
                                        program=inline_program, opts=engine.opts())
    stack.set_config("length", auto.ConfigValue("13"))

    up = stack.up()
    assert up.summary.resource_changes == {"create": 2}
    assert re.fullmatch(r"[A-Za-z0-9]{13}", up.outputs["value"].value)
    assert secret_keys(up.outputs) == {"secret"}
    assert up.outputs["secret"].value == "inline-secret"

    assert stack.up().summary.resource_changes == {"same": 2}

    destroy = stack.destroy()
    assert destroy.summary.resource_changes == {"delete": 2}
    assert stack.outputs() == {}
