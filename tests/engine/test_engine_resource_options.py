"""Resource options, stack references and targeted operations, as the real engine treats them.

Every test runs an inline program through the unmodified Automation API and checks what a
user sees: summaries, outputs, the checkpoint, the order of steps. Docstrings cite the
Pulumi source or documentation that defines the behaviour.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_random as random
import pytest
from pulumi import automation as auto

from tests.engine.support import Engine, unique_stack

pytestmark = pytest.mark.slow


def inline_stack(engine: Engine, program: Callable[[], None],
                 project: str = "options") -> auto.Stack:
    return auto.create_or_select_stack(stack_name=unique_stack(), project_name=project,
                                       program=program, opts=engine.opts())


def state(engine: Engine, stack: auto.Stack) -> dict[str, dict[str, Any]]:
    """The checkpoint's resources by name."""
    resources = engine.checkpoint(stack)["checkpoint"]["latest"].get("resources") or []
    return {r["urn"].rsplit("::", 1)[-1]: r for r in resources}


def step_ops(stack_call: Callable[..., Any], **kwargs: Any) -> list[tuple[str, str]]:
    """(op, resource name) of every step event of one operation, in order."""
    events: list[auto.EngineEvent] = []
    stack_call(on_event=events.append, **kwargs)
    return [(e.resource_pre_event.metadata.op.value, e.resource_pre_event.metadata.urn
             .rsplit("::", 1)[-1]) for e in events if e.resource_pre_event]


def config_int(key: str, default: int) -> int:
    return pulumi.Config().get_int(key) or default


# --- protect ----------------------------------------------------------------------------------


def protected_program() -> None:
    pulumi.export("value", random.RandomString(
        "kept", length=config_int("length", 8), special=False,
        opts=pulumi.ResourceOptions(protect=pulumi.Config().get_bool("protect") is not False))
        .result)


def test_protect_refuses_destroy_and_replace_and_keeps_the_state(engine: Engine) -> None:
    """A protected resource cannot be deleted or replaced; the state stays as it was
    (pkg/resource/deploy/step.go DeleteStep.Apply, step_generator.go "unable to replace")."""
    stack = inline_stack(engine, protected_program)
    value = stack.up().outputs["value"].value
    assert state(engine, stack)["kept"]["protect"] is True

    with pytest.raises(auto.CommandError, match="unable to delete resource"):
        stack.destroy()
    assert state(engine, stack)["kept"]["outputs"]["result"] == value

    stack.set_config("length", auto.ConfigValue("12"))
    with pytest.raises(auto.CommandError, match="unable to replace resource"):
        stack.up()
    assert state(engine, stack)["kept"]["outputs"]["result"] == value

    # Unprotecting and replacing in one update is allowed.
    stack.set_config("protect", auto.ConfigValue("false"))
    assert stack.up().summary.resource_changes == {"replace": 1, "same": 1}
    assert stack.destroy().summary.result == "succeeded"


# --- ignore_changes ---------------------------------------------------------------------------


def ignoring_program() -> None:
    ignored = random.RandomString("ignored", length=config_int("length", 8), special=False,
                                  opts=pulumi.ResourceOptions(ignore_changes=["length"]))
    watched = random.RandomString("watched", length=config_int("length", 8), special=False)
    pulumi.export("ignored", ignored.result)
    pulumi.export("watched", watched.result)


def test_ignore_changes_keeps_the_old_value_of_ignored_inputs(engine: Engine) -> None:
    """An input named in ignoreChanges keeps its old value in the diff
    (pkg/resource/deploy/step_generator.go, processIgnoreChanges)."""
    stack = inline_stack(engine, ignoring_program)
    first = stack.up().outputs
    stack.set_config("length", auto.ConfigValue("20"))
    second = stack.up()

    assert second.summary.resource_changes == {"same": 2, "replace": 1}
    assert second.outputs["ignored"].value == first["ignored"].value
    assert len(second.outputs["watched"].value) == 20
    assert state(engine, stack)["ignored"]["inputs"]["length"] == 8


# --- aliases ----------------------------------------------------------------------------------


def aliased_program() -> None:
    name = pulumi.Config().get("name") or "before"
    aliases = [pulumi.Alias(name="before")] if name != "before" else []
    pulumi.export("value", random.RandomString(
        name, length=8, special=False, opts=pulumi.ResourceOptions(aliases=aliases)).result)


def test_alias_renames_without_replacing(engine: Engine) -> None:
    """A resource whose old URN is an alias is the same resource under its new name
    (docs: concepts/options/aliases; pkg/resource/deploy/step_generator.go)."""
    stack = inline_stack(engine, aliased_program)
    value = stack.up().outputs["value"].value
    stack.set_config("name", auto.ConfigValue("after"))

    result = stack.up()
    assert result.summary.resource_changes == {"same": 2}
    assert result.outputs["value"].value == value
    assert "after" in state(engine, stack) and "before" not in state(engine, stack)


# --- delete_before_replace, depends_on, retain_on_delete --------------------------------------


def replacing_program() -> None:
    dbr = pulumi.Config().get_bool("dbr") or False
    first = random.RandomString("first", length=config_int("length", 8), special=False,
                                opts=pulumi.ResourceOptions(delete_before_replace=dbr))
    random.RandomString("second", length=4, special=False,
                        opts=pulumi.ResourceOptions(depends_on=[first],
                                                    retain_on_delete=True))


@pytest.mark.parametrize(("dbr", "order"), [
    (False, ["create-replacement", "replace", "delete-replaced"]),
    (True, ["delete-replaced", "create-replacement", "replace"]),
])
def test_delete_before_replace_orders_the_steps(engine: Engine, dbr: bool,
                                                order: list[str]) -> None:
    """Replacement creates the new resource first, unless deleteBeforeReplace
    (pkg/resource/deploy/step_generator.go, generateStepsFromDiff)."""
    stack = inline_stack(engine, replacing_program)
    stack.set_config("dbr", auto.ConfigValue(str(dbr).lower()))
    stack.up()
    stack.set_config("length", auto.ConfigValue("9"))
    ops = [op for op, name in step_ops(stack.up) if name == "first" and op != "same"]
    assert ops == order


def test_depends_on_is_recorded_and_orders_deletes(engine: Engine) -> None:
    """dependsOn lands in the state's dependencies, and a destroy deletes the dependent
    first (pkg/resource/deploy/step_generator.go GenerateDeletes, docs: options/dependson)."""
    stack = inline_stack(engine, replacing_program)
    stack.up()
    resources = state(engine, stack)
    assert resources["first"]["urn"] in resources["second"]["dependencies"]
    deletes = [name for op, name in step_ops(stack.destroy) if op == "delete"]
    assert deletes.index("second") < deletes.index("first")


def test_retain_on_delete_is_recorded(engine: Engine) -> None:
    """retainOnDelete is kept in the state so the delete leaves the cloud resource alone
    (docs: concepts/options/retainondelete)."""
    stack = inline_stack(engine, replacing_program)
    stack.up()
    assert state(engine, stack)["second"].get("retainOnDelete") is True
    assert state(engine, stack)["first"].get("retainOnDelete") is None


# --- transforms and transformations -----------------------------------------------------------


def _longer(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    if args.type_ != "random:index/randomString:RandomString":
        return None
    return pulumi.ResourceTransformResult(props={**args.props, "length": 16}, opts=args.opts)


def _protecting(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult:
    return pulumi.ResourceTransformationResult(
        args.props, pulumi.ResourceOptions.merge(args.opts,
                                                 pulumi.ResourceOptions(protect=True)))


class Pair(pulumi.ComponentResource):
    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("test:index:Pair", name, None, opts)
        self.child = random.RandomString(f"{name}-child", length=4, special=False,
                                         opts=pulumi.ResourceOptions(parent=self))


def transforming_program() -> None:
    plain = random.RandomString("plain", length=4, special=False)
    direct = random.RandomString("direct", length=4, special=False,
                                 opts=pulumi.ResourceOptions(transforms=[_longer]))
    pair = Pair("pair", pulumi.ResourceOptions(transforms=[_longer]))
    legacy = random.RandomString("legacy", length=4, special=False,
                                 opts=pulumi.ResourceOptions(transformations=[_protecting]))
    for name, resource in (("plain", plain), ("direct", direct), ("child", pair.child),
                           ("legacy", legacy)):
        pulumi.export(name, resource.result)


def test_transforms_change_inputs_of_the_resource_and_its_children(engine: Engine) -> None:
    """`transforms` run in the engine for the resource and, through its parent, for its
    children; `transformations` run in the SDK (docs: concepts/options/transforms)."""
    stack = inline_stack(engine, transforming_program)
    outputs = stack.up().outputs
    assert len(outputs["plain"].value) == 4
    assert len(outputs["direct"].value) == 16
    assert len(outputs["child"].value) == 16
    assert state(engine, stack)["legacy"]["protect"] is True


def stack_transform_program() -> None:
    pulumi.runtime.register_resource_transform(_longer)
    pulumi.export("value", random.RandomString("late", length=4, special=False).result)


def test_stack_transform_applies_to_later_resources(engine: Engine) -> None:
    """register_resource_transform applies to every resource registered after it."""
    stack = inline_stack(engine, stack_transform_program)
    assert len(stack.up().outputs["value"].value) == 16


# --- StackReference and get_organization ------------------------------------------------------


def producer_program() -> None:
    pulumi.export("plain", "shared-value")
    pulumi.export("token", pulumi.Output.secret("very-secret-token"))


def test_stack_reference_reads_outputs_and_keeps_secrets_secret(engine: Engine) -> None:
    """A StackReference reads the outputs of another stack of the backend; secret outputs
    stay secret (pkg/resource/deploy/builtins.go, readStackReference)."""
    producer = inline_stack(engine, producer_program, project="producer")
    producer.up()
    target = f"organization/producer/{producer.name}"

    def consumer_program() -> None:
        reference = pulumi.StackReference(target)
        pulumi.export("plain", reference.get_output("plain"))
        pulumi.export("token", reference.get_output("token"))
        pulumi.export("org", pulumi.get_organization())

    consumer = inline_stack(engine, consumer_program, project="consumer")
    result = consumer.up()
    assert result.outputs["plain"].value == "shared-value"
    assert result.outputs["plain"].secret is False
    assert result.outputs["token"].value == "very-secret-token"
    assert result.outputs["token"].secret is True
    assert result.outputs["org"].value == "organization"
    assert "very-secret-token" not in engine.checkpoint_text(consumer)
    assert consumer.up().summary.resource_changes == {"same": 2}


def test_stack_reference_to_a_missing_stack_fails(engine: Engine) -> None:
    def program() -> None:
        pulumi.export("x", pulumi.StackReference("organization/nowhere/nothing").outputs)

    stack = inline_stack(engine, program)
    with pytest.raises(auto.CommandError, match="nothing"):
        stack.up()


# --- target, replace, expect_no_changes -------------------------------------------------------


def two_strings_program() -> None:
    length = config_int("length", 8)
    a = random.RandomString("a", length=length, special=False)
    b = random.RandomString("b", length=length, special=False)
    pulumi.export("a", a.result)
    pulumi.export("b", b.result)


def test_target_limits_an_update_and_a_destroy(engine: Engine) -> None:
    """Only targeted resources change; the others keep their old state
    (pkg/resource/deploy/step_generator.go; docs: cli/commands/pulumi_up --target)."""
    stack = inline_stack(engine, two_strings_program)
    stack.up()
    urns = {name: r["urn"] for name, r in state(engine, stack).items()}
    before = {name: r["outputs"].get("result") for name, r in state(engine, stack).items()}

    stack.set_config("length", auto.ConfigValue("10"))
    result = stack.up(target=[urns["a"]])
    assert result.summary.resource_changes == {"replace": 1, "same": 2}
    after = {name: r["outputs"].get("result") for name, r in state(engine, stack).items()}
    assert len(after["a"]) == 10 and after["b"] == before["b"]

    destroyed = stack.destroy(target=[urns["b"]])
    assert destroyed.summary.resource_changes == {"delete": 1}
    assert "b" not in state(engine, stack) and "a" in state(engine, stack)
    with pytest.raises(auto.CommandError, match="no resource named"):
        stack.destroy(target=[urns["b"]])


def test_exclude_keeps_resources_out_of_an_update_and_a_destroy(engine: Engine) -> None:
    """--exclude is the complement of --target (docs: cli/commands/pulumi_up --exclude)."""
    stack = inline_stack(engine, two_strings_program)
    stack.up()
    urns = {name: r["urn"] for name, r in state(engine, stack).items()}
    before = {name: r["outputs"].get("result") for name, r in state(engine, stack).items()}

    stack.set_config("length", auto.ConfigValue("10"))
    result = stack.up(exclude=[urns["a"]])
    assert result.summary.resource_changes == {"replace": 1, "same": 2}
    after = {name: r["outputs"].get("result") for name, r in state(engine, stack).items()}
    assert after["a"] == before["a"] and len(after["b"]) == 10

    # The Automation API's destroy() has no exclude argument: the CLI's own argv.
    destroyed = subprocess.run(
        [engine.command.command, "--non-interactive", "destroy", "--yes", "--skip-preview",
         "--exclude", urns["a"], "--stack", stack.name], cwd=stack.workspace.work_dir,
        env={**os.environ, **engine.env}, capture_output=True, text=True, timeout=120,
        check=False)
    assert destroyed.returncode == 0, destroyed.stderr
    assert "- 1 deleted" in destroyed.stdout  # b; the stack stays as a's parent
    assert "b" not in state(engine, stack) and "a" in state(engine, stack)


def test_target_dependents_deletes_what_needs_the_target(engine: Engine) -> None:
    """A destroy target with a dependent outside the targets fails unless
    --target-dependents (pkg/engine/destroy.go, docs: pulumi destroy --target-dependents)."""
    stack = inline_stack(engine, replacing_program)
    stack.up()
    first = state(engine, stack)["first"]["urn"]
    with pytest.raises(auto.CommandError, match="target-dependents"):
        stack.destroy(target=[first])
    assert {"first", "second"} <= set(state(engine, stack))
    result = stack.destroy(target=[first], target_dependents=True)
    assert result.summary.resource_changes == {"delete": 2}
    assert not {"first", "second"} & set(state(engine, stack))


def test_replace_forces_a_replacement(engine: Engine) -> None:
    """--replace replaces the resource even without a diff (docs: pulumi up --replace)."""
    stack = inline_stack(engine, two_strings_program)
    first = stack.up().outputs
    urn = state(engine, stack)["a"]["urn"]
    created = {name: r["created"] for name, r in state(engine, stack).items()}
    time.sleep(0.01)  # timestamps have microseconds
    result = stack.up(replace=[urn])
    assert result.summary.resource_changes == {"replace": 1, "same": 2}
    assert result.outputs["a"].value != first["a"].value
    assert result.outputs["b"].value == first["b"].value
    # The replacement is a new resource, created now; the untouched one keeps its time.
    before, after = created, {name: r["created"] for name, r in state(engine, stack).items()}
    assert after["a"] > before["a"] and after["b"] == before["b"]


def test_expect_no_changes_fails_an_update_that_changes(engine: Engine) -> None:
    """--expect-no-changes fails when the update changes anything
    (pkg/engine/update.go, "no changes were expected but changes occurred"), with exit code 7
    (pkg/cmd/pulumi/cmd/exit_codes.go)."""
    stack = inline_stack(engine, two_strings_program)
    stack.up()
    assert stack.up(expect_no_changes=True).summary.result == "succeeded"
    stack.set_config("length", auto.ConfigValue("5"))
    with pytest.raises(auto.CommandError, match="no changes were expected") as failed:
        stack.up(expect_no_changes=True)
    assert "code: 7\n" in str(failed.value)  # the CLI's exit code for unexpected changes


# --- import -----------------------------------------------------------------------------------


def importing_program() -> None:
    length = config_int("length", 11)
    adopted = random.RandomString(
        "adopted", length=length, opts=pulumi.ResourceOptions(import_="existing-v4"))
    pulumi.export("value", adopted.result)


def test_import_adopts_a_value_the_provider_can_read(engine: Engine) -> None:
    """`import` reads the resource by ID instead of creating it, and fails when the
    program's inputs differ from what was read (pkg/resource/deploy/step.go, ImportStep;
    terraform-provider-random resource_string.go ImportState)."""
    stack = inline_stack(engine, importing_program)
    stack.set_config("length", auto.ConfigValue("5"))
    preview = stack.preview()
    assert "inputs to import do not match" in preview.stdout
    with pytest.raises(auto.CommandError, match="inputs to import do not match"):
        stack.up()

    stack.remove_config("length")
    result = stack.up()
    assert result.summary.resource_changes == {"import": 1, "same": 1}  # the stack: earlier
    assert result.outputs["value"].value == "existing-v4"
    assert state(engine, stack)["adopted"]["id"] == "existing-v4"
    assert stack.up().summary.resource_changes == {"same": 2}
