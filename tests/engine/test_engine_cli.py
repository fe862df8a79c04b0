"""The offline engine's own command line: errors, version and lean imports.

These run ``bin/pulumi`` as the Automation API does (a subprocess, ``--non-interactive``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import offline_pulumi

PROJECT_YAML = "name: cliproj\nruntime: python\n"


@pytest.fixture(scope="module")
def pulumi_bin() -> Path:
    """The engine's ``bin/pulumi`` launcher."""
    return offline_pulumi.install_root() / "bin" / "pulumi"


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A project dir and an environment with a file backend of its own."""
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "Pulumi.yaml").write_text(PROJECT_YAML)
    env = {**os.environ, "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}",
           "PULUMI_CONFIG_PASSPHRASE": "cli-test", "PULUMI_HOME": str(tmp_path / "home")}
    return tmp_path / "proj", env


def run(pulumi_bin: Path, project: tuple[Path, dict[str, str]],
        *args: str) -> subprocess.CompletedProcess[str]:
    cwd, env = project
    return subprocess.run([str(pulumi_bin), "--non-interactive", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_version_is_a_semver_the_automation_api_accepts(pulumi_bin, project):
    proc = run(pulumi_bin, project, "version")
    assert proc.returncode == 0
    major, minor, patch = proc.stdout.strip().lstrip("v").split(".")
    assert (int(major), int(minor), int(patch)) >= (3, 1, 0)
    assert int(major) == 3


@pytest.mark.parametrize(("argv", "complaint"), [
    (["new", "python"], "'pulumi new' without --generate-only"),
    (["state", "delete"], "'pulumi state delete' is not supported"),
    (["stack", "change-secrets-provider", "x"],
     "'pulumi stack change-secrets-provider' is not supported"),
    (["up", "--yes", "--target-replace", "urn:x", "--stack", "dev"],
     "--target-replace is not supported"),
    (["up", "--yes", "--bogus-flag", "--stack", "dev"], "unknown flag: --bogus-flag"),
    (["stack", "init", "dev", "--secrets-provider", "awskms://k"], "secrets provider"),
    (["plugin", "install", "resource", "aws", "6.0.0"], "not available offline"),
    (["stack", "select", "bad/org/name"], "organization"),
])
def test_unsupported_input_is_one_error_line_not_a_traceback(pulumi_bin, project, argv,
                                                             complaint):
    proc = run(pulumi_bin, project, *argv)
    assert proc.returncode != 0
    assert proc.stderr.startswith("error: ")
    assert complaint in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_missing_stack_uses_the_text_the_automation_api_classifies(pulumi_bin, project):
    proc = run(pulumi_bin, project, "stack", "select", "--stack", "nope")
    assert proc.returncode != 0
    assert "error: no stack named 'nope' found" in proc.stderr


def test_missing_backend_and_passphrase_are_explained(pulumi_bin, project):
    cwd, env = project
    no_passphrase = {k: v for k, v in env.items() if k != "PULUMI_CONFIG_PASSPHRASE"}
    proc = run(pulumi_bin, (cwd, no_passphrase), "stack", "init", "dev")
    assert proc.returncode != 0
    assert "PULUMI_CONFIG_PASSPHRASE" in proc.stderr


@pytest.mark.parametrize("argv", [
    ["version"],
    ["stack", "ls", "--json"],
    ["stack", "output", "--json", "--stack", "dev"],
    ["stack", "history", "--json", "--stack", "dev"],
    ["config", "set-all", "--stack", "dev", "--plaintext", "a=b"],
    ["refresh", "--yes", "--skip-preview", "--stack", "dev"],
    ["destroy", "--yes", "--skip-preview", "--stack", "dev"],
    ["stack", "rm", "--yes", "dev"],
])
def test_commands_that_run_no_program_import_neither_grpc_nor_the_pulumi_sdk(
        pulumi_bin, project, argv):
    assert run(pulumi_bin, project, "stack", "init", "dev").returncode == 0
    cwd, env = project
    probe = ("import sys\n"
             "from offline_pulumi.cli import main\n"
             f"code = main({argv!r})\n"
             "heavy = sorted(m for m in ('grpc', 'pulumi', 'cryptography') if m in sys.modules)\n"
             "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
             "sys.exit(code)\n")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=cwd,
                          env={**env, "PYTHONPATH": str(Path(offline_pulumi.__file__).parents[1])},
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stderr


def test_stack_ls_json_lists_created_stacks_sorted(pulumi_bin, project):
    for name in ("zeta", "alpha"):
        assert run(pulumi_bin, project, "stack", "init", name).returncode == 0
    listed = json.loads(run(pulumi_bin, project, "stack", "ls", "--json").stdout)
    assert [s["name"] for s in listed] == ["alpha", "zeta"]
    assert [s["current"] for s in listed] == [True, False]  # init selects the new stack
    assert all(s["resourceCount"] == 0 for s in listed)


def test_destroy_with_remove_also_removes_the_stack(pulumi_bin, project):
    assert run(pulumi_bin, project, "stack", "init", "gone").returncode == 0
    proc = run(pulumi_bin, project, "destroy", "--yes", "--skip-preview", "--remove",
               "--stack", "gone")
    assert proc.returncode == 0, proc.stderr
    assert "Stack 'gone' has been removed!" in proc.stdout
    listed = json.loads(run(pulumi_bin, project, "stack", "ls", "--json").stdout)
    assert [s["name"] for s in listed] == []


@pytest.mark.parametrize(("short", "long"), [
    (["stack", "ls", "-j"], ["stack", "ls", "--json"]),
    (["stack", "tag", "ls", "-j", "-s", "dev"], ["stack", "tag", "ls", "--json", "--stack", "dev"]),
    (["config", "get", "greeting", "-j", "-s", "dev"],
     ["config", "get", "greeting", "--json", "--stack", "dev"]),
])
def test_short_flags_mean_their_long_names(pulumi_bin, project, short, long):
    """Every short alias is canonicalised by the parser, so commands see one name."""
    assert run(pulumi_bin, project, "stack", "init", "dev").returncode == 0
    assert run(pulumi_bin, project, "config", "set", "greeting", "hi", "-s", "dev").returncode == 0
    by_short, by_long = run(pulumi_bin, project, *short), run(pulumi_bin, project, *long)
    assert by_short.returncode == 0, by_short.stderr
    assert by_short.stdout == by_long.stdout
    json.loads(by_short.stdout)


def test_a_stack_named_with_a_leading_dot_is_found_again(pulumi_bin, project):
    assert run(pulumi_bin, project, "stack", "init", ".hidden").returncode == 0
    assert run(pulumi_bin, project, "stack", "select", ".hidden").returncode == 0
    listed = json.loads(run(pulumi_bin, project, "stack", "ls", "--json").stdout)
    assert [s["name"] for s in listed] == [".hidden"]
    again = run(pulumi_bin, project, "stack", "init", ".hidden")
    assert again.returncode != 0 and "already exists" in again.stderr


def test_removing_another_projects_stack_keeps_this_projects_config(pulumi_bin, project):
    cwd, env = project
    assert run(pulumi_bin, project, "stack", "init", "dev").returncode == 0
    assert run(pulumi_bin, project, "config", "set", "keep", "me").returncode == 0
    other = cwd.parent / "other"
    other.mkdir()
    (other / "Pulumi.yaml").write_text("name: otherproj\nruntime: python\n")
    assert run(pulumi_bin, (other, env), "stack", "init", "dev").returncode == 0
    removed = run(pulumi_bin, project, "stack", "rm", "--yes", "organization/otherproj/dev")
    assert removed.returncode == 0, removed.stderr
    assert (cwd / "Pulumi.dev.yaml").exists()
    kept = run(pulumi_bin, project, "config", "get", "keep", "--stack", "dev")
    assert kept.stdout.strip() == "me"


def test_the_launcher_installs_under_a_root_given_as_text(tmp_path):
    command = offline_pulumi.pulumi_command(str(tmp_path / "engine"))
    assert Path(command.command) == tmp_path / "engine" / "bin" / "pulumi"


# --- confirmation: the CLI asks at a terminal and wants --yes elsewhere ----------------------

NO_CONFIRMATION = ("error: --yes or --skip-preview or --preview-only must be passed in to proceed "
                   "when running in non-interactive mode")


def _history(pulumi_bin: Path, project: tuple[Path, dict[str, str]]) -> list[dict[str, object]]:
    proc = run(pulumi_bin, project, "stack", "history", "--json", "--stack", "dev")
    assert proc.returncode == 0, proc.stderr
    history: list[dict[str, object]] = json.loads(proc.stdout)
    return history


@pytest.mark.parametrize("operation", ["up", "refresh", "destroy"])
def test_a_change_nothing_told_to_go_ahead_is_refused_without_running(pulumi_bin, project,
                                                                      operation):
    assert run(pulumi_bin, project, "stack", "init", "dev").returncode == 0
    proc = run(pulumi_bin, project, operation, "--stack", "dev")
    assert (proc.returncode, proc.stderr.strip()) == (2, NO_CONFIRMATION)
    assert _history(pulumi_bin, project) == []


def test_skip_confirmations_or_a_preview_needs_no_yes(pulumi_bin, project):
    cwd, env = project
    assert run(pulumi_bin, project, "stack", "init", "dev").returncode == 0
    assert run(pulumi_bin, project, "destroy", "--preview-only", "--stack", "dev").returncode == 0
    skipping = (cwd, {**env, "PULUMI_SKIP_CONFIRMATIONS": "true"})
    proc = run(pulumi_bin, skipping, "refresh", "--stack", "dev")
    assert proc.returncode == 0, proc.stderr
    assert [entry["kind"] for entry in _history(pulumi_bin, project)] == ["refresh"]


def test_stack_rm_without_yes_is_declined_when_nobody_can_be_asked(pulumi_bin, project):
    assert run(pulumi_bin, project, "stack", "init", "dev").returncode == 0
    proc = run(pulumi_bin, project, "stack", "rm", "dev")
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (1, "confirmation declined", "")
    listed = json.loads(run(pulumi_bin, project, "stack", "ls", "--json").stdout)
    assert [s["name"] for s in listed] == ["dev"]


def _at_a_terminal(pulumi_bin: Path, project: tuple[Path, dict[str, str]], *args: str,
                   typed: str = "") -> tuple[int, str]:
    """Run a command whose stdin and stdout are a terminal, type ``typed``, and return its exit
    code and everything it wrote."""
    import pty

    cwd, env = project
    env = {k: v for k, v in env.items() if k != "CI"}
    leader, follower = pty.openpty()
    proc = subprocess.Popen([str(pulumi_bin), *args], cwd=cwd, env=env, stdin=follower,
                            stdout=follower, stderr=follower)
    os.close(follower)
    if typed:
        os.write(leader, typed.encode())
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the command's end
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    return proc.wait(timeout=60), output.decode()


def test_stack_rm_at_a_terminal_asks_for_the_stack_name(pulumi_bin, project):
    assert run(pulumi_bin, project, "stack", "init", "dev").returncode == 0
    code, said = _at_a_terminal(pulumi_bin, project, "stack", "rm", "dev", typed="nope\n")
    assert code == 1 and "by typing `dev`" in said and "confirmation declined" in said
    code, said = _at_a_terminal(pulumi_bin, project, "stack", "rm", "dev", typed="dev\n")
    assert code == 0 and "Stack 'dev' has been removed!" in said
    assert json.loads(run(pulumi_bin, project, "stack", "ls", "--json").stdout) == []


def test_a_change_at_a_terminal_without_yes_is_refused_and_says_why(pulumi_bin, project):
    assert run(pulumi_bin, project, "stack", "init", "dev").returncode == 0
    code, said = _at_a_terminal(pulumi_bin, project, "destroy", "--stack", "dev")
    assert code == 2 and "does not ask for confirmation" in said
    assert _history(pulumi_bin, project) == []


# --- stack import: what the CLI checks before a deployment replaces the state ---------------

STACK_TYPE = "pulumi:pulumi:Stack"


def _resource(stack: str, name: str, **fields: object) -> dict[str, object]:
    resource_type = fields.pop("type", "random:index/randomId:RandomId")
    return {"urn": f"urn:pulumi:{stack}::cliproj::{resource_type}::{name}", "custom": False,
            "type": resource_type, **fields}


def _import(pulumi_bin: Path, project: tuple[Path, dict[str, str]],
            resources: list[dict[str, object]], *flags: str,
            **deployment: object) -> subprocess.CompletedProcess[str]:
    cwd, _ = project
    export = cwd.parent / "export.json"
    export.write_text(json.dumps({"version": 3, "deployment": {
        "manifest": {"time": "2026-01-01T00:00:00Z", "magic": "", "version": "v3.272.0"},
        "resources": resources, **deployment}}))
    return run(pulumi_bin, project, "stack", "import", "--file", str(export), "--stack", "dev",
               *flags)


def _state(pulumi_bin: Path, project: tuple[Path, dict[str, str]]) -> dict[str, object]:
    proc = run(pulumi_bin, project, "stack", "export", "--stack", "dev")
    assert proc.returncode == 0, proc.stderr
    deployment: dict[str, object] = json.loads(proc.stdout)["deployment"]
    return deployment


def test_importing_another_stacks_resources_is_refused_unless_forced(pulumi_bin, project):
    assert run(pulumi_bin, project, "stack", "init", "dev").returncode == 0
    before = _state(pulumi_bin, project)
    theirs = [_resource("prod", "cliproj-prod", type=STACK_TYPE)]
    proc = _import(pulumi_bin, project, theirs)
    urn = theirs[0]["urn"]
    assert proc.returncode == 1
    assert proc.stderr == (
        "error: 2 errors occurred:\n"
        f"\t* resource '{urn}' is from a different stack (prod != dev)\n"
        "\t* importing this file could be dangerous; rerun with --force to proceed anyway\n\n\n")
    assert _state(pulumi_bin, project) == before
    forced = _import(pulumi_bin, project, theirs, "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"warning: resource '{urn}' is from a different stack (prod != dev)" in forced.stderr
    assert [r["urn"] for r in _state(pulumi_bin, project)["resources"]] == [urn]


@pytest.mark.parametrize(("resources", "complaint"), [
    ([_resource("dev", "a", dependencies=["urn:pulumi:dev::cliproj::random:index/randomId:RandomId::gone"])],
     "resource urn:pulumi:dev::cliproj::random:index/randomId:RandomId::a's dependency "
     "urn:pulumi:dev::cliproj::random:index/randomId:RandomId::gone refers to missing resource"),
    ([_resource("dev", "a", parent="urn:pulumi:dev::cliproj::pulumi:pulumi:Stack::s"),
      _resource("dev", "s", type=STACK_TYPE)],
     "child resource urn:pulumi:dev::cliproj::random:index/randomId:RandomId::a's parent "
     "urn:pulumi:dev::cliproj::pulumi:pulumi:Stack::s comes after it"),
    ([_resource("dev", "a"), _resource("dev", "a")],
     "duplicate resource urn:pulumi:dev::cliproj::random:index/randomId:RandomId::a "
     "(not marked for deletion)"),
    ([_resource("dev", "a", provider="urn:pulumi:dev::cliproj::pulumi:providers:random::p::1")],
     "resource urn:pulumi:dev::cliproj::random:index/randomId:RandomId::a refers to unknown "
     "provider urn:pulumi:dev::cliproj::pulumi:providers:random::p::1"),
])
def test_a_broken_snapshot_is_refused_with_the_clis_integrity_error(pulumi_bin, project,
                                                                    resources, complaint):
    assert run(pulumi_bin, project, "stack", "init", "dev").returncode == 0
    proc = _import(pulumi_bin, project, resources)
    assert proc.returncode == 1
    assert f"\t* state file contains errors: {complaint}\n" in proc.stderr
    assert _state(pulumi_bin, project).get("resources") in (None, [])


@pytest.mark.parametrize(("resources", "complaint"), [
    ([{"urn": 5, "type": STACK_TYPE}], "resource 0 has no string 'urn'"),
    (["urn:pulumi:dev::cliproj::pulumi:pulumi:Stack::s"], "resource 0 is not an object"),
    ([_resource("dev", "a", inputs=[1])],
     "resource urn:pulumi:dev::cliproj::random:index/randomId:RandomId::a: 'inputs' is not an "
     "object"),
    ({"urn": "x"}, "'resources' is not a list"),
])
def test_a_malformed_deployment_is_refused_before_it_is_saved(pulumi_bin, project, resources,
                                                              complaint):
    assert run(pulumi_bin, project, "stack", "init", "dev").returncode == 0
    proc = _import(pulumi_bin, project, resources)
    assert (proc.returncode, proc.stderr) == (
        1, f"error: could not deserialize deployment: {complaint}\n")
    assert _state(pulumi_bin, project).get("resources") in (None, [])


def test_pending_operations_are_dropped_with_a_warning(pulumi_bin, project):
    assert run(pulumi_bin, project, "stack", "init", "dev").returncode == 0
    stack = _resource("dev", "cliproj-dev", type=STACK_TYPE)
    pending = [{"resource": _resource("dev", "half"), "type": "creating"}]
    proc = _import(pulumi_bin, project, [stack], pending_operations=pending)
    assert proc.returncode == 0, proc.stderr
    assert ("warning: removing pending operation 'creating' on "
            "'urn:pulumi:dev::cliproj::random:index/randomId:RandomId::half' from snapshot"
            in proc.stderr)
    state = _state(pulumi_bin, project)
    assert "pending_operations" not in state and [r["urn"] for r in state["resources"]] == \
        [stack["urn"]]


# --- config set --path: values and paths as the CLI reads them -------------------------------


def _stack_file(project: tuple[Path, dict[str, str]]) -> dict[str, object]:
    import yaml

    cwd, _ = project
    data: dict[str, object] = yaml.safe_load((cwd / "Pulumi.dev.yaml").read_text())["config"]
    return data


def test_a_path_value_is_typed_as_the_cli_types_it(pulumi_bin, project):
    assert run(pulumi_bin, project, "stack", "init", "dev").returncode == 0
    for key, value in [("data.active", "true"), ("data.count", "12"), ("data.zip", "0123"),
                       ("data.name", "ann"), ("data.big", "99999999999999999999"),
                       ('data["dotted.key"]', "v")]:
        proc = run(pulumi_bin, project, "config", "set", "--path", key, value)
        assert proc.returncode == 0, proc.stderr
    assert run(pulumi_bin, project, "config", "set", "plain", "true").returncode == 0
    assert _stack_file(project) == {
        "cliproj:data": {"active": True, "count": 12, "zip": "0123", "name": "ann",
                         "big": "99999999999999999999", "dotted.key": "v"},
        "cliproj:plain": "true"}


def test_a_path_index_may_append_but_not_leave_a_gap(pulumi_bin, project):
    assert run(pulumi_bin, project, "stack", "init", "dev").returncode == 0
    assert run(pulumi_bin, project, "config", "set", "--path", "names[0]", "a").returncode == 0
    gap = run(pulumi_bin, project, "config", "set", "--path", "names[2]", "c")
    assert (gap.returncode, gap.stderr) == (1, "error: array index out of range\n")
    assert run(pulumi_bin, project, "config", "set", "--path", "names[1]", "b").returncode == 0
    assert _stack_file(project) == {"cliproj:names": ["a", "b"]}


def test_stack_init_without_a_name_says_so(pulumi_bin, project):
    assert run(pulumi_bin, project, "stack", "init", "dev").returncode == 0
    proc = run(pulumi_bin, project, "stack", "init")
    assert (proc.returncode, proc.stderr) == (1, "error: missing stack name\n")
    assert run(pulumi_bin, project, "stack", "init", "--stack", "prod").returncode == 0


@pytest.mark.parametrize(("reference", "message"), [
    ("other/dev", "organization name must be 'organization'"),
    ("organization/my$proj/dev",
     "project names may only contain alphanumerics, hyphens, underscores, and periods"),
    ("my dev", "a stack name may only contain alphanumeric, hyphens, underscores, or periods: "
               "invalid character ' ' at position 2"),
    ("d" * 101, "a stack name cannot exceed 100 characters"),
    ("organization/cliproj/", "a stack name may not be empty"),
])
def test_a_stack_reference_the_cli_refuses_is_refused_with_its_message(
        pulumi_bin, project, reference, message):
    proc = run(pulumi_bin, project, "stack", "init", reference)
    assert (proc.returncode, proc.stderr) == (1, f"error: {message}\n")
