"""State is written as the Go CLI writes JSON, fast, and a secret in it is never missed.

Checkpoints are encoded with orjson; these pin its output to ``json.dumps`` with the CLI's
separators for what state holds, and show that what orjson refuses still encodes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from offline_pulumi import values
from offline_pulumi.fileio import dump_json, encode_json

STATE_LIKE: list[Any] = [
    {"urn": "urn:pulumi:dev::p::random:index/randomString:RandomString::s",
     "outputs": {"result": "Ocfm08pv!ka#L2d4", "length": 16, "special": True, "keepers": None},
     "dependencies": [], "propertyDependencies": {}},
    "control \x00\x01\x1f\x7f and quotes \" \\ / <>&",
    "non-ASCII é 漢字 😀 and separators \u2028\u2029",
    [1.5, 0.1, -0.0, 1e16, 2**63 - 1, -(2**63), True, None, [], {}],
]


def test_small_exponents_are_written_as_go_writes_them() -> None:
    assert dump_json([1e-7, 2.5e-10]) == "[1e-7,2.5e-10]"


@pytest.mark.parametrize("value", STATE_LIKE)
def test_state_is_encoded_as_json_dumps_with_the_cli_separators(value: Any) -> None:
    assert dump_json(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert dump_json(value, indent=2) == json.dumps(value, indent=2, ensure_ascii=False)
    assert json.loads(encode_json(value)) == value


@pytest.mark.parametrize("value", [
    {1: "a key that is not a string"},
    {"big": 2**70},
    {"lone surrogate": "\ud800"},
], ids=["int key", "integer past 64 bits", "lone surrogate"])
def test_what_the_fast_encoder_refuses_is_still_encoded(value: Any) -> None:
    assert dump_json(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_other_indents_are_encoded_as_json_dumps_does() -> None:
    value = {"a": [1, {"b": "c"}]}
    assert dump_json(value, indent=4) == json.dumps(value, indent=4, ensure_ascii=False)


def test_a_secret_anywhere_in_a_snapshot_is_found() -> None:
    secret = values.secret("hunter2")
    snapshot = [{"urn": "a", "outputs": {"plain": 1}},
                {"urn": "b", "outputs": {"nested": [{"deep": secret}]}}]
    assert values.contains_secret(snapshot)
    assert not values.contains_secret(snapshot[:1])


def test_text_that_only_looks_like_the_signature_is_not_a_secret() -> None:
    assert not values.contains_secret({"note": values.SIG, values.SIG: "not the secret sig"})


def test_integral_numbers_of_any_size_become_ints_as_go_writes_them() -> None:
    # Numbers arrive as doubles; Go writes an integral one in full, never as 1.15e+18.
    normalised = values.normalise({"big": float(2**60), "small": 3.0, "half": 0.5,
                                   "secret": values.secret(float(-(2**62)))})
    assert normalised["big"] == 2**60 and isinstance(normalised["big"], int)
    assert normalised["small"] == 3 and normalised["half"] == 0.5
    assert normalised["secret"]["value"] == -(2**62)
    assert dump_json(normalised["big"]) == "1152921504606846976"
