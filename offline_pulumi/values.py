"""Property values as the engine keeps them, and their state, event and output encodings.

In memory a secret is ``{SIG: SECRET_SIG, "value": v}`` (the gRPC form). State stores it as
``ciphertext``; events blind it; ``stack output`` masks it as ``"[secret]"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from offline_pulumi.fileio import encode_json

SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_BYTES = SIG.encode()
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
MASK = "[secret]"


def is_secret(value: Any) -> bool:
    """Whether a value is a secret wrapper."""
    return isinstance(value, dict) and value.get(SIG) == SECRET_SIG


def secret(value: Any) -> dict[str, Any]:
    """Wrap a plain value as a secret (a secret stays as it is)."""
    return value if is_secret(value) else {SIG: SECRET_SIG, "value": value}


def occurs(value: Any, predicate: Callable[[Any], bool]) -> bool:
    """Whether ``predicate`` holds for the value or anything nested in it."""
    if predicate(value):
        return True
    if isinstance(value, dict):
        return any(occurs(v, predicate) for v in value.values())
    if isinstance(value, list):
        return any(occurs(v, predicate) for v in value)
    return False


def contains_secret(value: Any) -> bool:
    """Whether a secret occurs anywhere in the value."""
    # Whole snapshots are asked this after every step: the signature's absence from their JSON
    # (one fast encode and a byte search) answers most of them without a walk in Python.
    try:
        if SIG_BYTES not in encode_json(value):
            return False
    except (TypeError, ValueError):
        pass  # not JSON: only the walk can tell
    return occurs(value, is_secret)


def _walk(value: Any, on_secret: Callable[[Any], Any]) -> Any:
    if is_secret(value):
        return on_secret(value)
    if isinstance(value, dict):
        return {k: _walk(v, on_secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, on_secret) for v in value]
    # Of any size, as Go writes an integral double: 2**60 is 1152921504606846976, not 1.15e+18.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def normalise(value: Any) -> Any:
    """Integral floats (numbers arrive as doubles over gRPC) become ints."""
    return _walk(value, lambda s: {SIG: SECRET_SIG, "value": normalise(s.get("value"))})


def plain(value: Any) -> Any:
    """Unwrap every secret."""
    return _walk(value, lambda s: plain(s.get("value")))


def masked(value: Any) -> Any:
    """Replace every secret with ``"[secret]"`` (``stack output`` without --show-secrets)."""
    return _walk(value, lambda s: MASK)


def blinded(value: Any) -> Any:
    """The event-log encoding: secrets keep their signature, ciphertext ``[secret]``."""
    return _walk(value, lambda s: {SIG: SECRET_SIG, "ciphertext": MASK})


def to_state(value: Any, encrypt: Callable[[str], str]) -> Any:
    """The checkpoint encoding: secrets as ciphertext of their JSON text."""
    return _walk(value, lambda s: {SIG: SECRET_SIG,
                                   "ciphertext": encrypt(json.dumps(plain(s.get("value"))))})


def to_plaintext_state(value: Any) -> Any:
    """The ``stack export --show-secrets`` encoding: secrets as ``plaintext`` JSON text."""
    return _walk(value, lambda s: {SIG: SECRET_SIG,
                                   "plaintext": json.dumps(plain(s.get("value")))})


def from_state(value: Any, decrypt: Callable[[str], str]) -> Any:
    """Decode a checkpoint value back into the in-memory form."""
    def on_secret(s: dict[str, Any]) -> Any:
        if "plaintext" in s:
            return secret(json.loads(s["plaintext"]))
        if "ciphertext" in s:
            return secret(json.loads(decrypt(s["ciphertext"])))
        return secret(s.get("value"))
    return _walk(value, on_secret)
