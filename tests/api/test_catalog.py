"""The program catalog: each program's Pulumi.yaml config block is its schema, served and enforced."""

from __future__ import annotations

import json

import falcon.testing
import pytest
from pulumi import automation as auto

import infra_api
from infra.catalog import Catalog, load_catalog, load_program
from infra.errors import ParameterError, SettingsError
from infra.settings import PROJECT_ROOT, Settings, default_programs
from tests.api.support import PASSPHRASE
from tests.api.test_api import FakeOperations

SANDBOX = PROJECT_ROOT / "programs" / "sandbox"


@pytest.fixture(scope="module")
def sandbox():
    return load_program(SANDBOX)


def test_the_default_catalog_is_the_burner_program_and_every_program_directory():
    catalog = load_catalog(default_programs())
    assert sorted(catalog) == ["burner", "sandbox"]
    assert Settings.from_environ({}).programs == default_programs()


def test_the_sandbox_declares_config_of_every_type(sandbox):
    kinds = {key.name: (key.type, key.items, key.secret) for key in sandbox.config}
    assert kinds == {"owner": ("string", None, False), "words": ("integer", None, False),
                     "password_length": ("integer", None, False),
                     "special": ("boolean", None, False), "tags": ("array", "string", False),
                     "access_key": ("string", None, True)}


def test_validation_fills_defaults_and_keeps_given_values(sandbox):
    config = sandbox.validate({"owner": "ada", "access_key": "k", "special": True,
                               "tags": ["x", "y"]})
    assert config == {"owner": "ada", "words": 2, "password_length": 20, "special": True,
                      "tags": ["x", "y"], "access_key": "k"}


@pytest.mark.parametrize(("values", "key", "allowed"), [
    ({"owner": 7, "access_key": "k"}, "owner", "a string"),
    ({"owner": "a", "access_key": "k", "words": "2"}, "words", "an integer"),
    ({"owner": "a", "access_key": "k", "words": True}, "words", "an integer"),
    ({"owner": "a", "access_key": "k", "words": 2.5}, "words", "an integer"),
    ({"owner": "a", "access_key": "k", "special": "yes"}, "special", "a boolean"),
    ({"owner": "a", "access_key": "k", "tags": "red"}, "tags", "an array of string values"),
    ({"owner": "a", "access_key": "k", "tags": ["red", 1]}, "tags", "an array of string values"),
    ({"access_key": "k"}, "owner", "a value: owner has no default"),
    ({"owner": "a", "access_key": "k", "colour": "red"}, "colour", "the config keys of sandbox"),
])
def test_a_bad_value_names_its_key(sandbox, values, key, allowed):
    with pytest.raises(ParameterError) as info:
        sandbox.validate(values)
    assert info.value.parameter == key
    assert info.value.allowed.startswith(allowed)


def test_json_schema_marks_required_keys_defaults_and_secrets(sandbox):
    schema = sandbox.json_schema()
    assert schema["required"] == ["owner", "access_key"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["tags"] == {
        "type": "array", "items": {"type": "string"}, "default": ["blue", "green", "red"],
        "description": "Tags, returned in a random order."}
    assert schema["properties"]["access_key"]["writeOnly"] is True


@pytest.mark.parametrize(("text", "problem"), [
    ("name: p\nconfig:\n  n:\n    type: float\n", "a type among"),
    ("name: p\nconfig:\n  n:\n    type: integer\n    default: many\n", "a default that is an integer"),
    ("name: p\nconfig:\n  n:\n    type: array\n    items:\n      type: object\n", "items: a mapping"),
    ("name: p\nconfig:\n  n:\n    type: array\n    items: string\n", "items: a mapping"),
    ("name: p\nconfig:\n  123:\n    type: string\n", "config key 123 of"),
    ("name: p\nconfig:\n  on:\n    type: string\n", "config key True of"),
    ("name: p\nconfig:\n  a=b:\n    type: string\n", "config key 'a=b' of"),
    ("name: p\nconfig:\n  n:\n    type: array\n    items: []\n", "items: a mapping"),
    ("name: p\nconfig:\n  ' n':\n    type: string\n", "config key ' n' of"),
    ("name: p\nconfig:\n  a:b:c:\n    type: string\n", "config key 'a:b:c' of"),
    ("name: p\nconfig:\n  n: 1\n  p:n: 2\n", "distinct Pulumi keys ('n' twice)"),
    ("name: ..\n", "a project name of"),
    ("name: my project\n", "a project name of"),
    ("name: a/b\n", "a project name of"),
    ("name: p\nmain: ../elsewhere\n", "a main: that is a file or directory inside"),
    ("name: p\nmain: missing\n", "a main: that is a file or directory inside"),
    ("config: {}\n", "a Pulumi.yaml with a name"),
    ("name: [unclosed\n", "valid YAML (parse error at line 2)"),
    (b"name: p\ndescription: caf\xe9\n", "a UTF-8 Pulumi.yaml"),
])
def test_a_bad_program_stops_the_start_naming_the_problem(tmp_path, text, problem):
    (tmp_path / "Pulumi.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SettingsError, match="INFRA_API_PROGRAMS") as info:
        load_program(tmp_path)
    assert problem in str(info.value) and "\n" not in str(info.value)


def test_config_keys_may_have_a_namespace_slashes_and_inner_spaces(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text(
        "name: p\nconfig:\n  aws:region: eu\n  db/password: x\n  my key: y\n")
    assert [key.name for key in load_program(tmp_path).config] == [
        "aws:region", "db/password", "my key"]


def test_a_secret_default_is_never_shown(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text(
        "name: p\nconfig:\n  key:\n    type: string\n    secret: true\n    default: s3cr3t\n")
    program = load_program(tmp_path)
    [key] = program.config
    assert key.shown_default == "[secret]" and not key.required
    assert "s3cr3t" not in json.dumps(program.json_schema())


def test_two_programs_of_one_name_are_refused(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Pulumi.yaml").write_text("name: twin\n")
    with pytest.raises(SettingsError, match="twice"):
        load_catalog([tmp_path / "a", tmp_path / "b"])


@pytest.fixture
def client(tmp_path):
    settings = Settings.from_environ({"INFRA_API_STATE_DIR": str(tmp_path)})
    return falcon.testing.TestClient(infra_api.create_app(settings, operations=FakeOperations()))


def test_programs_route_lists_the_catalog(client):
    result = client.simulate_get("/programs")
    assert result.status_code == 200
    names = [program["name"] for program in result.json["programs"]]
    assert names == ["burner", "sandbox"]
    sandbox = result.json["programs"][1]
    assert sandbox["description"].startswith("A sandbox of random resources")
    assert "access_key" in sandbox["config"]


def test_program_route_serves_the_keys_and_their_json_schema(client, sandbox):
    result = client.simulate_get("/programs/sandbox")
    assert result.status_code == 200
    assert result.json["schema"] == sandbox.json_schema()
    assert result.json["config"]["access_key"] == {
        "type": "string", "description": sandbox.config[-1].description, "default": None,
        "secret": True, "required": True}


def test_an_unknown_program_is_404_json(client):
    result = client.simulate_get("/programs/nope")
    assert result.status_code == 404
    assert result.json["code"] == "not_found" and "nope" in result.json["description"]


def test_catalog_reads_its_files_once(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: once\n")
    catalog = Catalog([tmp_path])
    assert list(catalog.programs()) == ["once"]
    (tmp_path / "Pulumi.yaml").write_text("name: changed\n")
    assert list(catalog.programs()) == ["once"]


@pytest.mark.slow
def test_the_sandbox_runs_on_the_offline_engine(live_burner, tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "work").mkdir()
    workspace = auto.LocalWorkspace(
        work_dir=str(tmp_path / "work"),
        pulumi_command=live_burner.engine.command(),
        pulumi_home=str(tmp_path / "home"),
        env_vars={"PULUMI_BACKEND_URL": (tmp_path / "state").as_uri(),
                  "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE},
        project_settings=auto.ProjectSettings(
            name="sandbox", main=str(SANDBOX),
            runtime=auto.ProjectRuntimeInfo(
                name="python", options={"virtualenv": str(live_burner.toolchain().venv)})),
    )
    stack = auto.Stack.create("sandbox-test", workspace)
    config = load_program(SANDBOX).validate({"owner": "ada", "access_key": "s3cret",
                                             "tags": ["a", "b", "c", "d"]})
    # Config values are strings; typed ones in JSON, as `pulumi config set` stores them.
    stack.set_all_config({key: auto.ConfigValue(value if isinstance(value, str) else json.dumps(value),
                                                secret=key == "access_key")
                          for key, value in config.items()})
    outputs = stack.up().outputs
    assert outputs["name"].value.startswith("ada-")
    assert sorted(outputs["tags"].value) == ["a", "b", "c", "d"]
    assert outputs["password"].secret and len(outputs["password"].value) == 20
    assert outputs["access_key_length"].value == 6 and outputs["access_key_length"].secret
    stack.destroy()
    workspace.remove_stack("sandbox-test")
    assert workspace.list_stacks() == []
