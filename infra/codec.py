"""Temporal payloads encrypted with a key derived from the service's secrets passphrase.

Workflow and activity inputs hold what the API was given, a stack's secret config included,
and Temporal keeps them in its history. Every host of a fleet already shares the passphrase
(the state's secrets need it), so each API node and worker reads what another wrote, while
Temporal, its database and its UI see only ciphertext. A payload written without this codec
still decodes, as it is; one sealed with another passphrase's key is refused by name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
# The key is stretched once per process; the salt only separates it from other uses.
_SALT = b"burner-api temporal payloads"
_ROUNDS = 100_000
_NONCE_BYTES = 12


class PayloadKeyError(ValueError):
    """A payload sealed with another key (another passphrase), or altered."""


class PassphraseCodec(PayloadCodec):
    """AES-256-GCM over each whole payload; the key's id (a hash of it) rides in the metadata."""

    def __init__(self, passphrase: str) -> None:
        key = hashlib.pbkdf2_hmac("sha256", passphrase.encode(), _SALT, _ROUNDS)
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:16].encode()

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(payload) for payload in payloads]

    def seal(self, payload: Payload) -> Payload:
        """The payload, encrypted."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, payload.SerializeToString(), self.key_id)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: self.key_id}, data=nonce + sealed)

    def open(self, payload: Payload) -> Payload:
        """The payload decrypted (one that is not encrypted, unchanged); PayloadKeyError."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"")
        if key_id != self.key_id:
            raise PayloadKeyError(f"a Temporal payload is encrypted with key "
                                  f"{key_id.decode(errors='replace')!r}, not this service's "
                                  f"{self.key_id.decode()!r}: every host needs the same "
                                  "PULUMI_CONFIG_PASSPHRASE")
        data = payload.data
        try:
            plain = self._aead.decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], key_id)
        except InvalidTag:
            raise PayloadKeyError("a Temporal payload failed its integrity check") from None
        return Payload.FromString(plain)


def data_converter(passphrase: str) -> DataConverter:
    """Temporal's default converter with payloads encrypted under the passphrase's key."""
    return dataclasses.replace(DataConverter.default, payload_codec=PassphraseCodec(passphrase))
