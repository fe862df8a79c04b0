"""Value generation for each random resource type: (resource id, outputs) from resolved inputs.

Randomness comes from ``secrets`` (a CSPRNG), except where the user supplies a ``seed``: then a
``random.Random`` seeded from a digest of the seed makes the result repeatable.
"""

from __future__ import annotations

import base64
import hashlib
import random
import secrets
import string
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import bcrypt

from offline_pulumi.providers import petnames
from offline_pulumi.providers import random_schema as rs

DEFAULT_SPECIAL = "!@#$%&*()-_=+[]{}<>:?"
BCRYPT_COST = 10
# bcrypt only looks at the first 72 bytes; the Terraform provider truncates explicitly.
_BCRYPT_MAX_BYTES = 72

Created = tuple[str, dict[str, Any]]
Generator = Callable[[Mapping[str, Any]], Created]


def generate(token: str, values: Mapping[str, Any]) -> Created:
    """Create a resource of type `token` from validated, defaulted inputs."""
    return _GENERATORS[token](values)


def _base_outputs(values: Mapping[str, Any]) -> dict[str, Any]:
    outputs = dict(values)
    if "keepers" in outputs:
        outputs["keepers"] = rs.tf_string_map(outputs["keepers"])
    return outputs


def _seeded_rng(seed: str | None) -> random.Random:
    if not seed:
        # An empty seed means "unseeded" in the Terraform provider too.
        return secrets.SystemRandom()
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _random_id(values: Mapping[str, Any]) -> Created:
    raw = secrets.token_bytes(values["byteLength"])
    prefix = values.get("prefix", "")
    ident = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    outputs = _base_outputs(values) | {
        "b64Url": prefix + ident,
        "b64Std": prefix + base64.b64encode(raw).decode("ascii"),
        "hex": prefix + raw.hex(),
        "dec": prefix + str(int.from_bytes(raw, "big")),
        "id": ident,
    }
    return ident, outputs


def random_string(values: Mapping[str, Any]) -> str:
    """Draw the min* characters from their fixed sets, fill from the charset, then shuffle."""
    specials = values.get("overrideSpecial") or DEFAULT_SPECIAL
    pools = ((values["upper"], string.ascii_uppercase), (values["lower"], string.ascii_lowercase),
             (values["numeric"], string.digits), (values["special"], specials))
    charset = "".join(chars for enabled, chars in pools if enabled)
    if not charset:
        raise rs.ProviderError("the character set specified is empty")
    # The minimums ignore the boolean flags, as in the Terraform provider.
    minimums = ((string.digits, values["minNumeric"]), (string.ascii_lowercase, values["minLower"]),
                (string.ascii_uppercase, values["minUpper"]), (specials, values["minSpecial"]))
    chars = [secrets.choice(pool) for pool, count in minimums for _ in range(count)]
    chars += [secrets.choice(charset) for _ in range(values["length"] - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def _random_string(values: Mapping[str, Any]) -> Created:
    result = random_string(values)
    return result, _base_outputs(values) | {"result": result, "id": result}


def _random_password(values: Mapping[str, Any]) -> Created:
    result = random_string(values)
    salt = bcrypt.gensalt(rounds=BCRYPT_COST, prefix=b"2a")  # Go's x/crypto/bcrypt writes $2a$
    hashed = bcrypt.hashpw(result.encode("utf-8")[:_BCRYPT_MAX_BYTES], salt).decode("ascii")
    outputs = _base_outputs(values) | {"result": result, "bcryptHash": hashed, "id": "none"}
    return "none", outputs


def _uuid_result(values: Mapping[str, Any], result: str) -> Created:
    return result, _base_outputs(values) | {"result": result, "id": result}


def _random_uuid(values: Mapping[str, Any]) -> Created:
    # hashicorp/go-uuid: 16 random bytes in 8-4-4-4-12 layout, no version or variant bits.
    h = secrets.token_bytes(16).hex()
    return _uuid_result(values, f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")


def _random_uuid4(values: Mapping[str, Any]) -> Created:
    return _uuid_result(values, str(uuid.uuid4()))


def uuid7() -> str:
    """Return an RFC 9562 version-7 UUID: 48-bit ms timestamp, version, variant, random bits."""
    ms = time.time_ns() // 1_000_000
    rand_a = secrets.randbits(12)
    rand_b = secrets.randbits(62)
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def _random_uuid7(values: Mapping[str, Any]) -> Created:
    return _uuid_result(values, uuid7())


def _random_integer(values: Mapping[str, Any]) -> Created:
    low, high = values["min"], values["max"]
    result = _seeded_rng(values.get("seed")).randint(low, high)
    outputs = _base_outputs(values) | {"result": result, "id": str(result)}
    if not outputs.get("seed"):
        outputs.pop("seed", None)  # the provider stores an empty seed as null
    return str(result), outputs


def _random_pet(values: Mapping[str, Any]) -> Created:
    separator = values["separator"]
    pet = petnames.generate(values["length"], separator)
    outputs = _base_outputs(values)
    prefix = outputs.pop("prefix", "")
    if prefix:
        pet = f"{prefix}{separator}{pet}"
        outputs["prefix"] = prefix
    outputs["id"] = pet
    return pet, outputs


def _random_shuffle(values: Mapping[str, Any]) -> Created:
    items = [rs.tf_string(item) for item in values["inputs"]]
    count = values.get("resultCount", len(items))
    rng = _seeded_rng(values.get("seed"))
    results: list[str] = []
    # Whole permutations are appended until enough items are collected, so an item repeats
    # only once every other item has been used.
    while items and len(results) < count:
        results += rng.sample(items, len(items))
    outputs = _base_outputs(values) | {"inputs": items, "results": results[:count], "id": "-"}
    return "-", outputs


def _random_bytes(values: Mapping[str, Any]) -> Created:
    raw = secrets.token_bytes(values["length"])
    encoded = base64.b64encode(raw).decode("ascii")
    return encoded, _base_outputs(values) | {"base64": encoded, "hex": raw.hex()}


_GENERATORS: Mapping[str, Generator] = {
    rs.RANDOM_ID: _random_id,
    rs.RANDOM_STRING: _random_string,
    rs.RANDOM_PASSWORD: _random_password,
    rs.RANDOM_UUID: _random_uuid,
    rs.RANDOM_UUID4: _random_uuid4,
    rs.RANDOM_UUID7: _random_uuid7,
    rs.RANDOM_INTEGER: _random_integer,
    rs.RANDOM_PET: _random_pet,
    rs.RANDOM_SHUFFLE: _random_shuffle,
    rs.RANDOM_BYTES: _random_bytes,
}
