"""Reading existing random values by ID (``ResourceOptions(import_=...)``).

The import IDs and what they restore are the Terraform provider's ``ImportState`` functions
(terraform-provider-random: resource_id.go, resource_string.go, resource_password.go,
resource_uuid.go, resource_integer.go, resource_bytes.go): every other input takes its default.
RandomPet and RandomShuffle cannot be imported.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from typing import Any

import bcrypt

from offline_pulumi.providers import random_schema as rs
from offline_pulumi.providers.random_generators import BCRYPT_COST

Read = tuple[dict[str, Any], dict[str, Any]]   # (inputs, outputs)


def read(token: str, resource_id: str) -> Read:
    """The inputs and outputs of an existing value; raise ProviderError if it cannot be read."""
    reader = _READERS.get(token)
    if reader is None:
        raise rs.ProviderError(f"resource type '{token}' cannot be imported")
    return reader(resource_id)


def _string(resource_id: str) -> Read:
    inputs = rs.resolve(rs.RANDOM_STRING, {"length": len(resource_id)})
    return inputs, {**inputs, "result": resource_id, "id": resource_id}


def _password(resource_id: str) -> Read:
    inputs = rs.resolve(rs.RANDOM_PASSWORD, {"length": len(resource_id)})
    salt = bcrypt.gensalt(rounds=BCRYPT_COST, prefix=b"2a")
    hashed = bcrypt.hashpw(resource_id.encode("utf-8")[:72], salt).decode("ascii")
    return inputs, {**inputs, "result": resource_id, "bcryptHash": hashed, "id": "none"}


def _uuid(resource_id: str) -> Read:
    try:
        uuid.UUID(resource_id)
    except ValueError:
        raise rs.ProviderError(f"'{resource_id}' is not a UUID") from None
    return {}, {"result": resource_id, "id": resource_id}


def _id(resource_id: str) -> Read:
    try:
        raw = base64.urlsafe_b64decode(resource_id + "=" * (-len(resource_id) % 4))
    except (binascii.Error, ValueError):
        raise rs.ProviderError(f"'{resource_id}' is not base64url") from None
    inputs = {"byteLength": len(raw)}
    return inputs, {**inputs, "b64Url": resource_id, "b64Std": base64.b64encode(raw).decode(),
                    "hex": raw.hex(), "dec": str(int.from_bytes(raw, "big")),
                    "id": resource_id}


def _integer(resource_id: str) -> Read:
    parts = resource_id.split(",")
    try:
        result, low, high = (int(p) for p in parts[:3])
    except ValueError:
        raise rs.ProviderError(f"'{resource_id}' is not 'result,min,max[,seed]'") from None
    if len(parts) not in (3, 4):
        raise rs.ProviderError(f"'{resource_id}' is not 'result,min,max[,seed]'")
    inputs: dict[str, Any] = {"min": low, "max": high}
    if len(parts) == 4:
        inputs["seed"] = parts[3]
    return inputs, {**inputs, "result": result, "id": str(result)}


def _bytes(resource_id: str) -> Read:
    try:
        raw = base64.b64decode(resource_id, validate=True)
    except (binascii.Error, ValueError):
        raise rs.ProviderError(f"'{resource_id}' is not base64") from None
    inputs = {"length": len(raw)}
    return inputs, {**inputs, "base64": resource_id, "hex": raw.hex()}


_READERS: dict[str, Callable[[str], Read]] = {
    rs.RANDOM_STRING: _string,
    rs.RANDOM_PASSWORD: _password,
    rs.RANDOM_UUID: _uuid,
    rs.RANDOM_UUID4: _uuid,
    rs.RANDOM_UUID7: _uuid,
    rs.RANDOM_ID: _id,
    rs.RANDOM_INTEGER: _integer,
    rs.RANDOM_BYTES: _bytes,
}
