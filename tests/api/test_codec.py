"""Temporal payloads sealed with the passphrase's key (``infra.codec``)."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.common.v1 import Payload

from infra.codec import ENCODING, PassphraseCodec, PayloadKeyError, data_converter
from infra.stack_workflow import StackOrder

ORDER = StackOrder("shop", "sandbox", {"owner": "ann", "access_key": "hunter2-key"},
                   ["access_key"], None, "op-1")


def _encode(passphrase: str, value: object) -> list[Payload]:
    return asyncio.run(data_converter(passphrase).encode([value]))


def test_a_sealed_payload_shows_nothing_of_the_input_and_opens_to_it() -> None:
    (sealed,) = _encode("pass-one", ORDER)
    assert sealed.metadata["encoding"] == ENCODING
    assert b"hunter2" not in sealed.SerializeToString()
    assert b"ann" not in sealed.SerializeToString()
    (opened,) = asyncio.run(data_converter("pass-one").decode([sealed], [StackOrder]))
    assert opened == ORDER


def test_the_same_input_seals_differently_each_time() -> None:
    assert _encode("pass-one", ORDER)[0].data != _encode("pass-one", ORDER)[0].data


def test_a_payload_of_another_passphrase_is_refused_naming_the_setting() -> None:
    (sealed,) = _encode("pass-one", ORDER)
    with pytest.raises(PayloadKeyError, match="PULUMI_CONFIG_PASSPHRASE"):
        PassphraseCodec("pass-two").open(sealed)


def test_an_altered_payload_is_refused() -> None:
    (sealed,) = _encode("pass-one", ORDER)
    altered = Payload(metadata=dict(sealed.metadata),
                      data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(PayloadKeyError, match="integrity"):
        PassphraseCodec("pass-one").open(altered)


def test_a_payload_written_before_the_codec_still_decodes() -> None:
    converter = data_converter("pass-one")
    plain = converter.payload_converter.to_payloads([ORDER])
    assert plain[0].metadata["encoding"] == b"json/plain"
    (opened,) = asyncio.run(converter.decode(plain, [StackOrder]))
    assert opened == ORDER
