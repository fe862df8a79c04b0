"""Every random resource deployed through a program on the offline engine, checked on its outputs."""

from __future__ import annotations

import base64
import datetime
import re
import string
import uuid
from typing import Any

import bcrypt
import pytest
from pulumi import automation as auto
from pulumi.automation import OpType

from tests.engine.support import (
    Engine,
    make_engine,
    plain_outputs,
    secret_keys,
    stdout_of,
)

# Every test here deploys (the shared all_random stack costs two ups on first use).
pytestmark = pytest.mark.slow

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# all_random: the Stack resource and 18 random resources.
ALL_RANDOM_RESOURCES = 19
BASIC_RESOURCES = 4


@pytest.fixture(scope="module")
def deployed(engine_command: auto.PulumiCommand, tmp_path_factory: pytest.TempPathFactory):
    """The all_random program deployed once: (stack, first up result, second up result)."""
    engine = make_engine(engine_command, tmp_path_factory.mktemp("all-random"))
    stack = engine.stack("all_random")
    first = stack.up()
    second = stack.up()
    return engine, stack, first, second


@pytest.fixture(scope="module")
def out(deployed) -> dict[str, Any]:
    return plain_outputs(deployed[2].outputs)


def test_all_random_first_up_creates_and_second_is_all_same(deployed) -> None:
    _, _, first, second = deployed
    assert first.summary.resource_changes == {"create": ALL_RANDOM_RESOURCES}
    assert second.summary.resource_changes == {"same": ALL_RANDOM_RESOURCES}
    assert plain_outputs(second.outputs) == plain_outputs(first.outputs)


def test_only_password_and_bytes_outputs_are_secret(deployed) -> None:
    assert secret_keys(deployed[2].outputs) == {"password", "bytes_base64", "bytes_hex"}


def test_random_id(out) -> None:
    rid = out["id"]
    raw = base64.urlsafe_b64decode(rid["id"] + "=" * (-len(rid["id"]) % 4))
    assert len(raw) == 6 and rid["byte_length"] == 6
    assert "=" not in rid["id"] and not rid["id"].startswith("p-")
    assert rid["b64_url"] == "p-" + rid["id"]
    assert rid["b64_std"] == "p-" + base64.b64encode(raw).decode()
    assert rid["hex"] == "p-" + raw.hex()
    assert rid["dec"] == "p-" + str(int.from_bytes(raw, "big"))


def test_random_string(out) -> None:
    value = out["string"]["result"]
    assert out["string"]["id"] == value and out["string"]["length"] == 30
    assert len(value) == 30
    assert set(value) <= set(string.ascii_letters + string.digits + "_%")
    assert sum(c.isupper() for c in value) >= 3
    assert sum(c.isdigit() for c in value) >= 4
    assert sum(c in "_%" for c in value) >= 2
    assert re.fullmatch(r"[0-9]{10}", out["digits"])


def test_random_password(out) -> None:
    value = out["password"]
    assert out["password_meta"]["id"] == "none"
    assert len(value) == 24 and sum(c.islower() for c in value) >= 2
    assert bcrypt.checkpw(value.encode(), out["password_meta"]["bcrypt"].encode())


def test_secrets_are_masked_in_the_update_display(deployed, out) -> None:
    stdout = deployed[2].stdout
    for value in (out["password"], out["password_meta"]["bcrypt"], out["bytes_hex"]):
        assert value not in stdout
    assert out["pinned"] is not None and out["string"]["result"] in stdout
    assert '"[secret]"' in stdout


def test_random_uuids(out) -> None:
    plain = out["uuid"]
    assert UUID_RE.fullmatch(plain["id"]) and UUID_RE.fullmatch(plain["result"])
    assert plain["id"] != plain["result"]  # two resources, two draws

    v4 = uuid.UUID(out["uuid4"]["result"])
    assert out["uuid4"]["id"] == str(v4) and UUID_RE.fullmatch(str(v4))
    assert (v4.version, v4.variant) == (4, uuid.RFC_4122)

    v7 = uuid.UUID(out["uuid7"]["result"])
    assert out["uuid7"]["id"] == str(v7)
    assert (v7.version, v7.variant) == (7, uuid.RFC_4122)
    millis = int.from_bytes(v7.bytes[:6], "big")
    created = datetime.datetime.fromtimestamp(millis / 1000, datetime.UTC)
    assert abs(datetime.datetime.now(datetime.UTC) - created) < datetime.timedelta(hours=1)


def test_random_integer(out) -> None:
    integer = out["integer"]
    assert isinstance(integer["result"], int) and -5 <= integer["result"] <= 5
    assert (integer["min"], integer["max"]) == (-5, 5)
    assert integer["id"] == str(integer["result"])
    assert out["pinned"] == 7
    first, second = out["seeded"]
    assert first == second and 1 <= first <= 10**9


def test_random_pet(out) -> None:
    pet = out["pet"]
    assert (pet["length"], pet["separator"]) == (3, "_")
    words = pet["id"].split("_")
    assert words[0] == "my" and len(words) == 4
    assert all(re.fullmatch(r"[a-z]+", w) for w in words[1:])
    assert re.fullmatch(r"[a-z]+-[a-z]+", out["pet_default"])


def test_random_shuffle(out) -> None:
    shuffle = out["shuffle"]
    assert shuffle["id"] == "-"
    assert sorted(shuffle["results"]) == ["a", "b", "c", "d", "e"]
    two = out["shuffle_two"]
    assert len(two) == 2 and len(set(two)) == 2 and set(two) <= set("abcde")
    many = out["shuffle_many"]
    assert len(many) == 7
    assert sorted(many[0:3]) == sorted(many[3:6]) == ["x", "y", "z"] and many[6] in "xyz"


def test_random_bytes(out) -> None:
    raw = base64.b64decode(out["bytes_base64"], validate=True)
    assert len(raw) == 16
    assert out["bytes_hex"] == raw.hex()
    assert out["bytes_id"] == out["bytes_base64"]


def test_secret_outputs_are_encrypted_in_the_checkpoint(deployed, out) -> None:
    engine, stack = deployed[0], deployed[1]
    text = engine.checkpoint_text(stack)
    # (RandomBytes' base64 is also its resource ID, which Pulumi never treats as secret.)
    for value in (out["password"], out["password_meta"]["bcrypt"], out["bytes_hex"]):
        assert value not in text
    assert out["string"]["result"] in text  # plain outputs are stored as they are


# --- provider validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("integer_min_gt_max", "property 'min' (10) must be less than or equal to property 'max' (1)"),
        ("string_length_0", "property 'length' must be at least 1, got 0"),
        ("string_mins_exceed_length", "minUpper + minLower + minNumeric + minSpecial (4)"),
        ("string_empty_charset", "the character set specified is empty"),
        ("id_byte_length_0", "property 'byteLength' must be at least 1, got 0"),
        ("bytes_length_0", "property 'length' must be at least 1, got 0"),
    ],
)
def test_provider_validation_fails_the_up(engine: Engine, case: str, message: str) -> None:
    stack = engine.stack("invalid", config={"case": case})
    with pytest.raises(auto.CommandError) as raised:
        stack.up()
    assert message in stdout_of(raised.value)
    assert "resource 'bad'" in stdout_of(raised.value)  # the failing resource is named
    [entry] = stack.history()
    assert (entry.kind, entry.result) == ("update", "failed")
    assert stack.outputs() == {}


# --- keepers and replacement ----------------------------------------------------------------


def test_keepers_change_replaces_exactly_that_resource(engine: Engine) -> None:
    stack = engine.stack("basic")
    first = plain_outputs(stack.up().outputs)

    stack.set_config("keeper", auto.ConfigValue("two"))
    assert stack.preview().change_summary == {OpType.REPLACE: 1, OpType.SAME: BASIC_RESOURCES - 1}
    events: list[auto.EngineEvent] = []
    replaced = stack.up(on_event=events.append)
    assert replaced.summary.resource_changes == {"replace": 1, "same": BASIC_RESOURCES - 1}
    after = plain_outputs(replaced.outputs)
    assert after["hex"] != first["hex"]
    assert {k: v for k, v in after.items() if k != "hex"} == {k: v for k, v in first.items() if k != "hex"}
    ops_by_name: dict[str, set[OpType]] = {}
    for event in events:
        if event.resource_pre_event:
            meta = event.resource_pre_event.metadata
            ops_by_name.setdefault(meta.urn.rsplit("::", 1)[1], set()).add(meta.op)
    assert ops_by_name["rid"] & {OpType.REPLACE, OpType.CREATE_REPLACEMENT}
    assert ops_by_name["rstr"] == ops_by_name["rpw"] == {OpType.SAME}

    unchanged = stack.up()
    assert unchanged.summary.resource_changes == {"same": BASIC_RESOURCES}
    assert plain_outputs(unchanged.outputs) == after

    # Config that only feeds a stack export changes the export but replaces nothing.
    stack.set_config("token", auto.ConfigValue("new-token"))
    exported = stack.up()
    assert exported.summary.resource_changes == {"same": BASIC_RESOURCES}
    assert exported.outputs["token"].value == "new-token"
    assert exported.outputs["hex"].value == after["hex"]
