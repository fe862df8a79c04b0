"""The built-in ``random`` provider: check, create and diff for the ten pulumi-random resources.

Behaviour follows the bridged terraform-provider-random (plugin 4.21.4): inputs are camelCase,
``check`` adds no defaults, outputs carry defaulted values and omit null optionals, and every
input change forces replacement except the ``keepers`` and ``overrideSpecial`` exemptions.
Seeded results are repeatable but are not bit-identical to the Go provider's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from offline_pulumi.providers import random_schema as rs
from offline_pulumi.providers.random_generators import generate
from offline_pulumi.providers.random_schema import ProviderError
from offline_pulumi.providers.random_validation import validate

__all__ = [
    "PACKAGE",
    "TOKENS",
    "VERSION",
    "DiffResult",
    "ProviderError",
    "check",
    "create",
    "diff",
    "read",
    "secret_outputs",
]

PACKAGE = "random"
VERSION = "4.21.4"
TOKENS: frozenset[str] = frozenset(rs.SCHEMAS)

_SECRET_OUTPUTS: Mapping[str, frozenset[str]] = {
    rs.RANDOM_PASSWORD: frozenset({"result", "bcryptHash"}),
    rs.RANDOM_BYTES: frozenset({"base64", "hex"}),
}


@dataclass(frozen=True)
class DiffResult:
    """Outcome of comparing old and new inputs of one resource."""

    changed: tuple[str, ...]
    replace: bool


def check(token: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Validate inputs and return them normalised, without defaults; raise ProviderError."""
    checked = rs.normalise_inputs(token, inputs)
    validate(token, checked, rs.resolve(token, checked))
    return checked


def create(token: str, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Generate the resource and return (resource id, outputs); raise ProviderError."""
    checked = check(token, inputs)
    return generate(token, rs.resolve(token, checked))


def read(token: str, resource_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read an existing value by its import ID: (inputs, outputs); raise ProviderError."""
    from offline_pulumi.providers.random_import import read as read_by_id

    return read_by_id(token, resource_id)


def diff(token: str, olds: Mapping[str, Any], news: Mapping[str, Any]) -> DiffResult:
    """Compare old (state) and new checked inputs; any counted change forces replacement."""
    old = rs.resolve(token, rs.loose(olds))
    new = rs.resolve(token, rs.loose(news))
    names = old.keys() | new.keys()
    changed = tuple(sorted(n for n in names if _differs(token, n, old.get(n), new.get(n))))
    return DiffResult(changed=changed, replace=bool(changed))


def secret_outputs(token: str) -> frozenset[str]:
    """Return the output names this provider always marks secret for `token`."""
    rs.schema_for(token)
    return _SECRET_OUTPUTS.get(token, frozenset())


def _differs(token: str, name: str, old: Any, new: Any) -> bool:
    if name == "keepers":
        if token == rs.RANDOM_BYTES:
            return bool(rs.tf_string_map(old) != rs.tf_string_map(new))
        return _keepers_force_replace(old, new)
    if name == "overrideSpecial" and old == "" and new is None:
        return False  # lets users drop an errant "" without a replacement
    return bool(old != new)


def _keepers_force_replace(old: Any, new: Any) -> bool:
    """Terraform's RequiresReplaceIfValuesNotNull: ignore new null-valued keys unknown to state."""
    old_map, new_map = rs.tf_string_map(old), rs.tf_string_map(new)
    if old_map == new_map:
        return False
    if not isinstance(old_map or {}, Mapping) or not isinstance(new_map or {}, Mapping):
        return True
    new_map = new_map or {}
    if old_map is None:
        return any(value is not None for value in new_map.values())
    if any(key not in new_map for key in old_map):
        return True
    return any(
        not (key not in old_map and value is None) and old_map.get(key) != value
        for key, value in new_map.items()
    )
