"""CLI behaviours where the offline engine once differed from the real ``pulumi`` CLI.

Each test drives the engine through the unmodified Automation API (or the CLI argv) and
asserts what the real CLI does; the docstrings name the Pulumi source that shows it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest
from pulumi import automation as auto

from tests.engine.support import Engine, unique_stack

TEMPLATES = Path(__file__).resolve().parent / "templates"


class Parent(pulumi.ComponentResource):
    """A component whose child may be protected."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("test:index:Parent", name, None, opts)


def protected_child_program() -> None:
    """A component with a protected child (config ``protect``) and an unprotected component."""
    protect = pulumi.Config().get_bool("protect") or False
    parent = Parent("holder")
    Parent("guarded", pulumi.ResourceOptions(parent=parent, protect=protect))
    Parent("free")


def config_program() -> None:
    pulumi.export("plain", pulumi.Config().get("plain"))


def inline_stack(engine: Engine, program: object, project: str = "fidelity") -> auto.Stack:
    return auto.create_or_select_stack(stack_name=unique_stack(), project_name=project,
                                       program=program, opts=engine.opts())  # type: ignore[arg-type]


# --- 1. object config prints as compact JSON ------------------------------------------------


def test_object_config_is_printed_as_compact_json(engine: Engine) -> None:
    """`config get` and `config --json` print objects as Go's json.Marshal does: no spaces
    (pkg/cmd/pulumi/config/config.go, which marshals the object value)."""
    stack = inline_stack(engine, config_program)
    stack.set_config("obj.inner", auto.ConfigValue("v"), path=True)
    stack.set_config("obj.list[0]", auto.ConfigValue("x"), path=True)
    project = stack.workspace.project_settings().name

    assert stack.get_config("obj").value == '{"inner":"v","list":["x"]}'
    assert stack.get_all_config()[f"{project}:obj"].value == '{"inner":"v","list":["x"]}'


# --- 2. --color rejects unknown values ------------------------------------------------------


@pytest.mark.parametrize("color", ["vibrant grey", "rainbow"])
def test_unknown_color_is_rejected(engine: Engine, color: str) -> None:
    """The CLI accepts only auto, always, never and raw (pkg/util/cmdutil/colors.go)."""
    stack = inline_stack(engine, config_program)
    with pytest.raises(auto.CommandError) as raised:
        stack.preview(color=color)
    assert "error: unsupported color option" in str(raised.value)
    assert stack.preview(color="never").change_summary == {auto.OpType.CREATE: 1}


# --- 3. --config-file and keys without a project prefix -------------------------------------


@pytest.mark.slow
def test_operations_read_the_config_file_given(engine: Engine, tmp_path: Path) -> None:
    """`up/preview/refresh/destroy --config-file F` read stack config from F, and keys
    written without a namespace belong to the project (sdk/go/common/workspace/loaders.go)."""
    config_file = tmp_path / "elsewhere" / "Pulumi.other.yaml"
    config_file.parent.mkdir()
    config_file.write_text("config:\n  plain: from-the-file\n")
    stack = inline_stack(engine, config_program)

    assert stack.up(config_file=str(config_file)).outputs["plain"].value == "from-the-file"
    assert stack.preview(config_file=str(config_file)).change_summary == \
        {auto.OpType.SAME: 1}
    assert stack.refresh(config_file=str(config_file)).summary.result == "succeeded"
    assert stack.up().outputs == {}  # without the file the key is unset again
    assert stack.destroy(config_file=str(config_file)).summary.result == "succeeded"


def test_stack_config_keys_without_prefix_get_the_project_s(engine: Engine) -> None:
    stack = inline_stack(engine, config_program)
    settings = Path(stack.workspace.work_dir) / f"Pulumi.{stack.name}.yaml"
    settings.write_text(settings.read_text() + "config:\n  plain: bare-key\n")
    project = stack.workspace.project_settings().name

    assert stack.get_all_config()[f"{project}:plain"].value == "bare-key"
    assert stack.up().outputs["plain"].value == "bare-key"


# --- 4. preview --json ----------------------------------------------------------------------


def test_preview_json_prints_one_json_document(engine: Engine) -> None:
    """`preview --json` prints the preview digest (pkg/backend/display/json.go) and no
    progress text."""
    stack = inline_stack(engine, protected_child_program)
    stack.up()
    result = stack.preview(json=True)

    digest = json.loads(result.stdout)
    assert digest["changeSummary"] == {"same": 4}
    assert {step["op"] for step in digest["steps"]} == {"same"}
    assert any(step["urn"].endswith("::guarded") for step in digest["steps"])
    assert result.change_summary == {auto.OpType.SAME: 4}


# --- 5. --refresh and refresh's progress lines ----------------------------------------------


@pytest.mark.parametrize("operation", ["preview", "up", "destroy"])
def test_refresh_flag_refreshes_first(engine: Engine, operation: str) -> None:
    """`--refresh` runs a refresh before the operation (pkg/cmd/pulumi/operations/up.go)."""
    stack = inline_stack(engine, protected_child_program)
    stack.up()
    plain = getattr(stack, operation)()
    assert "refreshing" not in plain.stdout
    if operation == "destroy":
        stack.up()
    refreshed = getattr(stack, operation)(refresh=True)
    assert "refreshing" in refreshed.stdout
    assert "test:index:Parent holder refreshing" in refreshed.stdout


def test_refresh_prints_a_line_per_resource(engine: Engine) -> None:
    stack = inline_stack(engine, protected_child_program)
    stack.up()
    result = stack.refresh()
    assert result.summary.resource_changes == {"same": 4}
    for name in ("holder", "guarded", "free"):
        assert f"test:index:Parent {name} refreshing" in result.stdout


# --- 6. protect on destroy, --exclude-protected ---------------------------------------------


def resources_of(engine: Engine, stack: auto.Stack) -> dict[str, dict[str, object]]:
    resources = engine.checkpoint(stack)["checkpoint"]["latest"].get("resources") or []
    return {r["urn"].rsplit("::", 1)[-1]: r for r in resources}


@pytest.mark.slow
def test_destroy_exclude_protected_keeps_protected_and_what_they_need(engine: Engine) -> None:
    """`destroy --exclude-protected` deletes the rest and prints how many stay
    (pkg/cmd/pulumi/operations/destroy.go)."""
    stack = inline_stack(engine, protected_child_program)
    stack.set_config("protect", auto.ConfigValue("true"))
    stack.up()

    result = stack.destroy(exclude_protected=True)
    assert result.summary.result == "succeeded"
    assert "All unprotected resources were destroyed. There are still 1 protected" \
        in result.stdout
    left = resources_of(engine, stack)
    assert "free" not in left
    assert {"guarded", "holder", stack.workspace.project_settings().name + "-" + stack.name} \
        <= set(left)

    stack.remove_config("protect")
    stack.up()
    assert stack.destroy().summary.result == "succeeded"
    assert resources_of(engine, stack) == {}


@pytest.mark.slow
def test_failed_delete_keeps_its_parent(engine: Engine) -> None:
    """A protected resource's delete fails; the engine then skips the deletes of what it
    needs, so no resource is left pointing at a deleted parent (pkg/resource/deploy/step.go
    DeleteStep.Apply; step_executor.go skips a failed step's dependents)."""
    stack = inline_stack(engine, protected_child_program)
    stack.set_config("protect", auto.ConfigValue("true"))
    stack.up()

    with pytest.raises(auto.CommandError) as raised:
        stack.destroy()
    assert "marked for protection" in str(raised.value)
    left = resources_of(engine, stack)
    assert "free" not in left
    assert {"guarded", "holder"} <= set(left)
    urns = {r["urn"] for r in left.values()}
    assert all(r.get("parent", "") in urns | {""} for r in left.values())


# --- 7. new --generate-only -----------------------------------------------------------------


def test_new_generate_only_fills_in_a_local_template(engine: Engine, tmp_path: Path) -> None:
    """`new <dir> --generate-only` copies the template, replacing ${PROJECT} and
    ${DESCRIPTION} (pkg/workspace/templates.go), and creates no stack."""
    target = tmp_path / "generated"
    workspace = auto.LocalWorkspace(work_dir=str(tmp_path), pulumi_command=engine.command,
                                    env_vars=engine.env)
    workspace.new(str(TEMPLATES / "minimal"), name="made-here", dir=str(target),
                  generate_only=True, force=True)

    project = (target / "Pulumi.yaml").read_text()
    assert "name: made-here" in project
    assert "description: A minimal test template" in project
    assert "template:" not in project
    assert "The made-here program" in (target / "__main__.py").read_text()
    assert engine.storage.list(".pulumi/stacks/") == []

    with pytest.raises(auto.CommandError, match="is not empty"):
        workspace.new(str(TEMPLATES / "minimal"), name="again", dir=str(target),
                      generate_only=True)


# --- 8. stack rename ------------------------------------------------------------------------


@pytest.mark.slow
def test_stack_rename_moves_state_config_and_urns(engine: Engine) -> None:
    """`stack rename` moves the checkpoint, history and config file, and rewrites URNs
    (pkg/backend/diy/backend.go renameStack, pkg/cmd/pulumi/stack/stack_rename.go)."""
    stack = inline_stack(engine, config_program)
    stack.set_config("plain", auto.ConfigValue("kept"))
    stack.up()
    old_name = stack.name
    new_name = unique_stack("renamed")

    result = stack.rename(new_name)
    assert stack.name == new_name
    assert result.summary is not None and result.summary.kind == "update"
    assert [s.name for s in stack.workspace.list_stacks()] == [new_name]
    assert stack.get_config("plain").value == "kept"
    urns = [r["urn"] for r in engine.checkpoint(stack)["checkpoint"]["latest"]["resources"]]
    assert urns and all(u.startswith(f"urn:pulumi:{new_name}::") for u in urns)
    assert stack.up().summary.resource_changes == {"same": 1}
    with pytest.raises(auto.StackNotFoundError):
        stack.workspace.select_stack(old_name)
