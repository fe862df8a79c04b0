"""Tests of the built-in random provider through its public interface (check/create/diff)."""

from __future__ import annotations

import base64
import re
import string
import time
import uuid
from collections.abc import Callable
from typing import Any

import bcrypt
import pytest

from offline_pulumi.providers import petnames
from offline_pulumi.providers import random as rp

RID = "random:index/randomId:RandomId"
RSTRING = "random:index/randomString:RandomString"
RPASSWORD = "random:index/randomPassword:RandomPassword"
RUUID = "random:index/randomUuid:RandomUuid"
RUUID4 = "random:index/randomUuid4:RandomUuid4"
RUUID7 = "random:index/randomUuid7:RandomUuid7"
RINTEGER = "random:index/randomInteger:RandomInteger"
RPET = "random:index/randomPet:RandomPet"
RSHUFFLE = "random:index/randomShuffle:RandomShuffle"
RBYTES = "random:index/randomBytes:RandomBytes"

DEFAULT_SPECIAL = set("!@#$%&*()-_=+[]{}<>:?")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DRAWS = 200
NO_LETTERS_OR_SPECIAL = {"special": False, "upper": False, "lower": False}


def test_package_identity_and_tokens() -> None:
    assert rp.PACKAGE == "random"
    assert rp.VERSION == "4.21.4"
    assert rp.TOKENS == {
        RID, RSTRING, RPASSWORD, RUUID, RUUID4, RUUID7, RINTEGER, RPET, RSHUFFLE, RBYTES,
    }


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (RPASSWORD, {"result", "bcryptHash"}),
        (RBYTES, {"base64", "hex"}),
        (RSTRING, set()),
        (RID, set()),
        (RUUID7, set()),
    ],
)
def test_secret_outputs(token: str, expected: set[str]) -> None:
    assert rp.secret_outputs(token) == expected


# --- RandomId -------------------------------------------------------------------------------


@pytest.mark.parametrize("byte_length", [1, 2, 8, 33])
@pytest.mark.parametrize("prefix", [None, "", "pre-"])
def test_random_id_encodings_agree(byte_length: int, prefix: str | None) -> None:
    inputs: dict[str, Any] = {"byteLength": float(byte_length)}
    if prefix is not None:
        inputs["prefix"] = prefix
    ident, out = rp.create(RID, inputs)
    p = prefix or ""
    raw = base64.urlsafe_b64decode(ident + "=" * (-len(ident) % 4))
    assert len(raw) == byte_length
    assert "=" not in ident and out["id"] == ident
    assert out["b64Url"] == p + ident
    assert out["b64Std"] == p + base64.b64encode(raw).decode()
    assert out["hex"] == p + raw.hex() and len(out["hex"]) == len(p) + 2 * byte_length
    assert out["dec"] == p + str(int.from_bytes(raw, "big"))
    assert out["byteLength"] == byte_length and isinstance(out["byteLength"], int)
    assert ("prefix" in out) == (prefix is not None)
    assert "keepers" not in out


def test_random_id_is_random() -> None:
    assert len({rp.create(RID, {"byteLength": 8})[0] for _ in range(20)}) == 20


# --- RandomString / RandomPassword -----------------------------------------------------------


@pytest.mark.parametrize("token", [RSTRING, RPASSWORD])
def test_string_outputs_carry_defaults(token: str) -> None:
    _, out = rp.create(token, {"length": 16.0, "keepers": {"k": "v"}})
    assert {k: out[k] for k in ("length", "special", "upper", "lower", "number", "numeric")} == {
        "length": 16, "special": True, "upper": True, "lower": True,
        "number": True, "numeric": True,
    }
    assert {out[k] for k in ("minUpper", "minLower", "minNumeric", "minSpecial")} == {0}
    assert out["keepers"] == {"k": "v"}
    assert "overrideSpecial" not in out
    assert len(out["result"]) == 16


def test_string_id_is_result() -> None:
    ident, out = rp.create(RSTRING, {"length": 10})
    assert ident == out["result"] == out["id"]


@pytest.mark.parametrize(
    ("flags", "allowed"),
    [
        ({"special": False, "lower": False, "numeric": False}, set(string.ascii_uppercase)),
        ({"special": False, "upper": False, "number": False}, set(string.ascii_lowercase)),
        ({"special": False, "upper": False, "lower": False}, set(string.digits)),
        ({"upper": False, "lower": False, "numeric": False}, DEFAULT_SPECIAL),
        ({"upper": False, "lower": False, "numeric": False, "overrideSpecial": "_."}, {"_", "."}),
        ({"special": False}, set(string.ascii_letters + string.digits)),
        ({"overrideSpecial": ""}, set(string.ascii_letters + string.digits) | DEFAULT_SPECIAL),
    ],
)
def test_string_charset_follows_flags(flags: dict[str, Any], allowed: set[str]) -> None:
    seen = set()
    for _ in range(20):
        _, out = rp.create(RSTRING, {"length": 64, **flags})
        seen |= set(out["result"])
    assert seen <= allowed
    assert len(seen) > len(allowed) // 2  # draws spread over the charset, not a fixed subset


@pytest.mark.parametrize("token", [RSTRING, RPASSWORD])
def test_string_minimums_honoured_over_many_draws(token: str) -> None:
    inputs = {"length": 6, "minUpper": 1, "minLower": 1, "minNumeric": 2, "minSpecial": 2,
              "overrideSpecial": "^~"}
    first_chars = set()
    for _ in range(DRAWS if token == RSTRING else 10):  # bcrypt is slow by design
        result = rp.create(token, inputs)[1]["result"]
        classes = sorted(map(_char_class, result))
        assert classes == ["digit", "digit", "lower", "special", "special", "upper"]
        assert set(result) - set(string.ascii_letters + string.digits) <= {"^", "~"}
        first_chars.add(_char_class(result[0]))
    if token == RSTRING:
        assert len(first_chars) == 4  # shuffled: the minimums are not always in the same place


def test_string_minimums_ignore_disabled_flags() -> None:
    for _ in range(50):
        result = rp.create(RSTRING, {"length": 5, "upper": False, "minUpper": 3})[1]["result"]
        assert sum(c.isupper() for c in result) >= 3


def _char_class(c: str) -> str:
    if c.isupper():
        return "upper"
    if c.islower():
        return "lower"
    return "digit" if c.isdigit() else "special"


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({}, True),
        ({"number": False}, False),
        ({"numeric": False}, False),
        ({"number": True, "numeric": True}, True),
        ({"number": False, "numeric": False}, False),
        ({"numeric": None, "number": False}, False),
    ],
)
def test_number_and_numeric_mirror(inputs: dict[str, Any], expected: bool) -> None:
    _, out = rp.create(RSTRING, {"length": 200, "special": False, **inputs})
    assert out["number"] is expected and out["numeric"] is expected
    assert any(c.isdigit() for c in out["result"]) is expected


@pytest.mark.parametrize("length", [1, 20, 72])
def test_password_bcrypt_hash_verifies(length: int) -> None:
    ident, out = rp.create(RPASSWORD, {"length": float(length)})
    assert ident == "none" and out["id"] == "none"
    assert len(out["result"]) == length
    assert out["bcryptHash"].startswith("$2a$10$")
    assert bcrypt.checkpw(out["result"].encode(), out["bcryptHash"].encode())
    assert not bcrypt.checkpw(b"not-the-password", out["bcryptHash"].encode())


def test_password_longer_than_72_bytes_hashes_its_prefix() -> None:
    _, out = rp.create(RPASSWORD, {"length": 100})
    assert len(out["result"]) == 100
    assert bcrypt.checkpw(out["result"][:72].encode(), out["bcryptHash"].encode())


# --- UUIDs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [RUUID, RUUID4, RUUID7])
def test_uuid_shape_and_id(token: str) -> None:
    ident, out = rp.create(token, {})
    assert UUID_RE.match(ident)
    assert out == {"result": ident, "id": ident}


def test_uuid_keepers_are_echoed() -> None:
    _, out = rp.create(RUUID4, {"keepers": {"a": "1"}})
    assert out["keepers"] == {"a": "1"}


def test_random_uuid_has_no_version_bits() -> None:
    versions = {rp.create(RUUID, {})[0][14] for _ in range(64)}
    assert len(versions) > 1


def test_uuid4_version_and_variant() -> None:
    for _ in range(50):
        u = uuid.UUID(rp.create(RUUID4, {})[0])
        assert u.version == 4 and u.variant == uuid.RFC_4122


def test_uuid7_version_variant_and_timestamp() -> None:
    before = time.time_ns() // 1_000_000
    results = [rp.create(RUUID7, {})[0] for _ in range(50)]
    after = time.time_ns() // 1_000_000
    for result in results:
        u = uuid.UUID(result)
        assert u.int >> 76 & 0xF == 7
        assert u.variant == uuid.RFC_4122
        assert before <= u.int >> 80 <= after
    assert len(set(results)) == 50


# --- RandomInteger ---------------------------------------------------------------------------


@pytest.mark.parametrize(("low", "high"), [(1, 6), (-5, 5), (7, 7), (-(2**63), 2**63 - 1)])
def test_integer_within_range(low: int, high: int) -> None:
    seen = set()
    for _ in range(DRAWS):
        ident, out = rp.create(RINTEGER, {"min": float(low), "max": high})
        assert low <= out["result"] <= high and isinstance(out["result"], int)
        assert ident == out["id"] == str(out["result"])
        assert (out["min"], out["max"]) == (low, high)
        seen.add(out["result"])
    if high - low < 20:
        assert seen == set(range(low, high + 1))


def test_integer_seed_is_deterministic() -> None:
    inputs = {"min": 0, "max": 10**9, "seed": "burner"}
    results = {rp.create(RINTEGER, inputs)[1]["result"] for _ in range(5)}
    assert len(results) == 1
    others = {rp.create(RINTEGER, {**inputs, "seed": f"s{i}"})[1]["result"] for i in range(5)}
    assert len(others) > 1
    assert rp.create(RINTEGER, inputs)[1]["seed"] == "burner"


def test_integer_empty_seed_is_unseeded_and_omitted() -> None:
    outs = [rp.create(RINTEGER, {"min": 0, "max": 10**9, "seed": ""})[1] for _ in range(5)]
    assert all("seed" not in out for out in outs)
    assert len({out["result"] for out in outs}) > 1


# --- RandomPet -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "pattern"),
    [
        ({}, [petnames.ADJECTIVES, petnames.NAMES]),
        ({"length": 1.0}, [petnames.NAMES]),
        ({"length": 3}, [petnames.ADVERBS, petnames.ADJECTIVES, petnames.NAMES]),
        ({"length": 5}, [petnames.ADVERBS] * 3 + [petnames.ADJECTIVES, petnames.NAMES]),
    ],
)
def test_pet_words(inputs: dict[str, Any], pattern: list[tuple[str, ...]]) -> None:
    ident, out = rp.create(RPET, inputs)
    words = ident.split("-")
    assert len(words) == len(pattern)
    assert all(word in pool and word.islower() for word, pool in zip(words, pattern))
    assert out == {"length": len(pattern), "separator": "-", "id": ident}


@pytest.mark.parametrize(
    ("inputs", "prefix", "separator"),
    [
        ({"prefix": "dev"}, "dev", "-"),
        ({"prefix": "dev", "separator": "_"}, "dev", "_"),
        ({"prefix": "", "separator": "."}, None, "."),
        ({"separator": ""}, None, ""),
    ],
)
def test_pet_prefix_and_separator(
    inputs: dict[str, Any], prefix: str | None, separator: str
) -> None:
    ident, out = rp.create(RPET, {"length": 2, **inputs})
    assert out["separator"] == separator and out.get("prefix") == prefix
    expected_start = f"{prefix}{separator}" if prefix else ""
    assert ident.startswith(expected_start)
    rest = ident[len(expected_start):]
    if separator:
        adjective, name = rest.split(separator)
        assert adjective in petnames.ADJECTIVES and name in petnames.NAMES
    assert out["id"] == ident and "result" not in out


def test_pet_names_vary() -> None:
    assert len({rp.create(RPET, {})[0] for _ in range(30)}) > 10


# --- RandomShuffle ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "result_count", "expected_len"),
    [
        (["a", "b", "c", "d"], None, 4),
        (["a", "b", "c", "d"], 2, 2),
        (["a", "b", "c"], 7, 7),
        (["a", "b", "c"], 0, 0),
        ([], None, 0),
        ([], 3, 0),
    ],
)
def test_shuffle_results(inputs: list[Any], result_count: int | None, expected_len: int) -> None:
    args: dict[str, Any] = {"inputs": inputs}
    if result_count is not None:
        args["resultCount"] = float(result_count)
    ident, out = rp.create(RSHUFFLE, args)
    results = out["results"]
    assert ident == out["id"] == "-"
    assert len(results) == expected_len
    # Items repeat only once every item has been used: each block of len(inputs) is a permutation.
    for start in range(0, len(results), max(len(inputs), 1)):
        block = results[start:start + len(inputs)]
        assert len(set(block)) == len(block) and set(block) <= set(inputs)
    assert out["inputs"] == inputs
    assert out.get("resultCount") == result_count


def test_shuffle_permutes() -> None:
    items = [str(i) for i in range(10)]
    orders = {tuple(rp.create(RSHUFFLE, {"inputs": items})[1]["results"]) for _ in range(10)}
    assert len(orders) > 1 and all(sorted(order) == items for order in orders)


def test_shuffle_seed_is_deterministic() -> None:
    inputs = {"inputs": [str(i) for i in range(20)], "resultCount": 30, "seed": "abc"}
    runs = {tuple(rp.create(RSHUFFLE, inputs)[1]["results"]) for _ in range(5)}
    assert len(runs) == 1
    other = tuple(rp.create(RSHUFFLE, {**inputs, "seed": "abd"})[1]["results"])
    assert other not in runs


def test_shuffle_stringifies_non_string_items() -> None:
    _, out = rp.create(RSHUFFLE, {"inputs": [1.0, 2.5, True]})
    assert sorted(out["results"]) == ["1", "2.5", "true"] and out["inputs"] == ["1", "2.5", "true"]


# --- RandomBytes -----------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 16, 64])
def test_bytes_encodings_agree(length: int) -> None:
    ident, out = rp.create(RBYTES, {"length": float(length), "keepers": {"n": 3.0}})
    raw = base64.b64decode(out["base64"], validate=True)
    assert len(raw) == length
    assert out["hex"] == raw.hex()
    assert ident == out["base64"]
    assert out["length"] == length and out["keepers"] == {"n": "3"}
    assert "id" not in out


# --- check -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "inputs", "expected"),
    [
        (RID, {"byteLength": 8.0}, {"byteLength": 8}),
        (RSTRING, {"length": 12.0, "minUpper": 2.0}, {"length": 12, "minUpper": 2}),
        (RPET, {}, {}),
        (RPET, {"prefix": None}, {"prefix": None}),
        (RINTEGER, {"min": -3.0, "max": 4.0, "keepers": {"a": 1.0, "b": None}},
         {"min": -3, "max": 4, "keepers": {"a": 1, "b": None}}),
        (RSHUFFLE, {"inputs": ["x", 2.0], "__defaults": []}, {"inputs": ["x", 2]}),
    ],
)
def test_check_normalises_without_defaults(
    token: str, inputs: dict[str, Any], expected: dict[str, Any]
) -> None:
    checked = rp.check(token, inputs)
    assert checked == expected
    assert all(type(checked[k]) is type(v) for k, v in expected.items())


@pytest.mark.parametrize(
    ("token", "inputs", "message"),
    [
        (RID, {}, "missing required property 'byteLength'"),
        (RID, {"byteLength": None}, "missing required property 'byteLength'"),
        (RID, {"byteLength": 0}, "'byteLength' must be at least 1"),
        (RID, {"byteLength": 2.5}, "'byteLength' must be an integer"),
        (RID, {"byteLength": "8"}, "'byteLength' must be an integer"),
        (RID, {"byteLength": True}, "'byteLength' must be an integer"),
        (RID, {"byteLength": 2.0**64}, "'byteLength' is out of the 64-bit integer range"),
        (RID, {"byteLength": 4, "prefix": 5}, "'prefix' must be a string"),
        (RID, {"byteLength": 4, "size": 5}, "unknown property 'size'"),
        (RID, {"byteLength": 4, "keepers": ["a"]}, "'keepers' must be a map of strings"),
        (RID, {"byteLength": 4, "keepers": {"a": {"b": 1}}}, "'keepers.a' must be a string"),
        (RSTRING, {}, "missing required property 'length'"),
        (RSTRING, {"length": 0}, "'length' must be at least 1"),
        (RSTRING, {"length": 3, "minUpper": 2, "minSpecial": 2}, "'length' (3) must be at least"),
        (RSTRING, {"length": 3, "minLower": -1}, "'minLower' must be at least 0"),
        (RSTRING, {"length": 3, "upper": "yes"}, "'upper' must be a boolean"),
        (RPASSWORD, {"length": 8, **NO_LETTERS_OR_SPECIAL, "numeric": False}, "character set"),
        (RPASSWORD, {"length": 8, **NO_LETTERS_OR_SPECIAL, "number": False}, "character set"),
        (RSTRING, {"length": 8, "number": True, "numeric": False}, "'number' and 'numeric'"),
        (RINTEGER, {"min": 1}, "missing required property 'max'"),
        (RINTEGER, {"min": 5, "max": 4}, "'min' (5) must be less than or equal to property 'max'"),
        (RINTEGER, {"min": 1, "max": 4, "seed": 7}, "'seed' must be a string"),
        (RPET, {"length": 0}, "'length' must be at least 1"),
        (RPET, {"separator": None, "length": 1.5}, "'length' must be an integer"),
        (RSHUFFLE, {}, "missing required property 'inputs'"),
        (RSHUFFLE, {"inputs": "abc"}, "'inputs' must be a list of strings"),
        (RSHUFFLE, {"inputs": ["a", None]}, "'inputs[1]' must be a string"),
        (RSHUFFLE, {"inputs": ["a"], "resultCount": -1}, "'resultCount' must be at least 0"),
        (RBYTES, {"length": 0}, "'length' must be at least 1"),
        (RUUID, {"result": "x"}, "unknown property 'result'"),
        ("random:index/foo:Foo", {}, "unknown resource type 'random:index/foo:Foo'"),
    ],
)
def test_invalid_inputs_rejected(token: str, inputs: dict[str, Any], message: str) -> None:
    with pytest.raises(rp.ProviderError, match=re.escape(message)):
        rp.check(token, inputs)
    with pytest.raises(rp.ProviderError, match=re.escape(message)):
        rp.create(token, inputs)


@pytest.mark.parametrize("call", [
    lambda t: rp.diff(t, {}, {}),
    rp.secret_outputs,
])
def test_unknown_token_rejected_everywhere(call: Callable[[str], object]) -> None:
    with pytest.raises(rp.ProviderError, match="unknown resource type 'random:index/x:X'"):
        call("random:index/x:X")


# --- diff ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "olds", "news", "changed"),
    [
        # no change, after normalisation and defaults
        (RID, {"byteLength": 8}, {"byteLength": 8.0}, ()),
        (RID, {"byteLength": 8, "prefix": None}, {"byteLength": 8}, ()),
        (RPET, {}, {"length": 2, "separator": "-"}, ()),
        (RSTRING, {"length": 8}, {"length": 8, "special": True, "minUpper": 0.0}, ()),
        (RSTRING, {"length": 8, "number": False}, {"length": 8, "numeric": False}, ()),
        (RINTEGER, {"min": 1, "max": 2, "keepers": {"a": 1}},
         {"min": 1.0, "max": 2.0, "keepers": {"a": "1"}}, ()),
        # every other input change replaces
        (RID, {"byteLength": 8}, {"byteLength": 9}, ("byteLength",)),
        (RID, {"byteLength": 8}, {"byteLength": 8, "prefix": "x"}, ("prefix",)),
        (RPET, {}, {"length": 3}, ("length",)),
        (RPET, {"separator": "-"}, {"separator": "_"}, ("separator",)),
        (RSTRING, {"length": 8}, {"length": 8, "special": False}, ("special",)),
        (RSTRING, {"length": 8}, {"length": 8, "numeric": False}, ("number", "numeric")),
        (RSTRING, {"length": 8, "minUpper": 1}, {"length": 9}, ("length", "minUpper")),
        (RINTEGER, {"min": 1, "max": 2}, {"min": 1, "max": 2, "seed": "s"}, ("seed",)),
        (RSHUFFLE, {"inputs": ["a", "b"]}, {"inputs": ["b", "a"]}, ("inputs",)),
        (RSHUFFLE, {"inputs": ["a"]}, {"inputs": ["a"], "resultCount": 1}, ("resultCount",)),
        # overrideSpecial: "" -> null is not a change, anything else is
        (RSTRING, {"length": 8, "overrideSpecial": ""}, {"length": 8}, ()),
        (RSTRING, {"length": 8, "overrideSpecial": ""}, {"length": 8, "overrideSpecial": None}, ()),
        (RSTRING, {"length": 8}, {"length": 8, "overrideSpecial": ""}, ("overrideSpecial",)),
        (RPASSWORD, {"length": 8, "overrideSpecial": "!"}, {"length": 8}, ("overrideSpecial",)),
        (RPASSWORD, {"length": 8, "overrideSpecial": "!"}, {"length": 8, "overrideSpecial": "?"},
         ("overrideSpecial",)),
        # keepers: RequiresReplaceIfValuesNotNull
        (RUUID, {}, {"keepers": {}}, ()),
        (RUUID, {"keepers": {}}, {}, ()),
        (RUUID, {}, {"keepers": {"a": None}}, ()),
        (RUUID, {"keepers": {"a": "1"}}, {"keepers": {"a": "1", "b": None}}, ()),
        (RUUID, {"keepers": {"a": "1"}}, {"keepers": {"a": 1.0}}, ()),
        (RUUID, {}, {"keepers": {"a": "1"}}, ("keepers",)),
        (RUUID, {"keepers": {"a": "1"}}, {"keepers": {"a": "2"}}, ("keepers",)),
        (RUUID, {"keepers": {"a": "1"}}, {"keepers": {"a": "1", "b": "2"}}, ("keepers",)),
        (RUUID, {"keepers": {"a": "1", "b": "2"}}, {"keepers": {"a": "1"}}, ("keepers",)),
        (RUUID, {"keepers": {"a": "1"}}, {}, ("keepers",)),
        (RUUID, {"keepers": {"a": "1"}}, {"keepers": {"a": None}}, ("keepers",)),
        (RUUID, {"keepers": {"a": None}}, {"keepers": {}}, ("keepers",)),
        (RUUID, {"keepers": {"a": True}}, {"keepers": {"a": "true"}}, ()),
        (RPET, {"keepers": {"a": "1"}}, {"length": 3, "keepers": {"a": "2"}},
         ("keepers", "length")),
        # RandomBytes keepers: plain replace on any change
        (RBYTES, {"length": 4, "keepers": {"a": "1"}}, {"length": 4, "keepers": {"a": 1}}, ()),
        (RBYTES, {"length": 4}, {"length": 4, "keepers": {"a": None}}, ("keepers",)),
        (RBYTES, {"length": 4, "keepers": {"a": "1"}},
         {"length": 4, "keepers": {"a": "1", "b": None}}, ("keepers",)),
        (RBYTES, {"length": 4, "keepers": {"a": "1"}}, {"length": 4}, ("keepers",)),
    ],
)
def test_diff(
    token: str, olds: dict[str, Any], news: dict[str, Any], changed: tuple[str, ...]
) -> None:
    result = rp.diff(token, olds, news)
    assert result == rp.DiffResult(changed=changed, replace=bool(changed))


def test_diff_ignores_bridge_metadata() -> None:
    result = rp.diff(RID, {"byteLength": 8, "__meta": "x"}, {"byteLength": 8})
    assert result == rp.DiffResult((), False)



# --- read (import by ID) ----------------------------------------------------------------------


@pytest.mark.parametrize(("token", "resource_id", "inputs", "outputs"), [
    (RSTRING, "abc-DEF", {"length": 7, "special": True}, {"result": "abc-DEF"}),
    (RUUID, "6f1c7a4e-0b8e-4f5a-9d2c-3b1e2a4c5d6e", {}, {"result":
                                                       "6f1c7a4e-0b8e-4f5a-9d2c-3b1e2a4c5d6e"}),
    (RID, "AQID", {"byteLength": 3}, {"hex": "010203", "dec": "66051", "b64Std": "AQID"}),
    (RINTEGER, "7,1,10", {"min": 1, "max": 10}, {"result": 7, "id": "7"}),
    (RINTEGER, "7,1,10,s", {"min": 1, "max": 10, "seed": "s"}, {"result": 7}),
    (RBYTES, "AQID", {"length": 3}, {"hex": "010203"}),
])
def test_read_restores_inputs_and_outputs_from_the_import_id(token, resource_id, inputs,
                                                             outputs):
    """The import IDs of terraform-provider-random's ImportState functions."""
    read_inputs, read_outputs = rp.read(token, resource_id)
    assert inputs.items() <= read_inputs.items()
    assert outputs.items() <= read_outputs.items()
    assert not rp.diff(token, read_inputs, read_inputs).changed


def test_read_of_a_password_hashes_it():
    _, outputs = rp.read(RPASSWORD, "hunter2hunter2")
    assert outputs["result"] == "hunter2hunter2"
    assert bcrypt.checkpw(b"hunter2hunter2", outputs["bcryptHash"].encode())


@pytest.mark.parametrize(("token", "resource_id"), [
    (RPET, "happy-cat"), (RSHUFFLE, "x"), (RUUID, "not-a-uuid"), (RINTEGER, "7,1"),
    (RBYTES, "***"),
])
def test_read_refuses_what_cannot_be_imported(token, resource_id):
    with pytest.raises(rp.ProviderError):
        rp.read(token, resource_id)
