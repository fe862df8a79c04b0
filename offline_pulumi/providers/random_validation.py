"""Value rules of the random provider that go beyond types (ranges, cross-property checks)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from offline_pulumi.providers import random_schema as rs
from offline_pulumi.providers.random_schema import ProviderError

_MIN_COUNTS = ("minUpper", "minLower", "minNumeric", "minSpecial")
_CHARSET_FLAGS = ("special", "upper", "lower", "numeric")

Validator = Callable[[Mapping[str, Any], Mapping[str, Any]], None]


def validate(token: str, checked: Mapping[str, Any], resolved: Mapping[str, Any]) -> None:
    """Raise ProviderError if the checked inputs (and their defaulted form) break a rule."""
    rule = _RULES.get(token)
    if rule is not None:
        rule(checked, resolved)


def _at_least(values: Mapping[str, Any], name: str, minimum: int) -> None:
    value = values.get(name)
    if value is not None and value < minimum:
        raise ProviderError(f"property '{name}' must be at least {minimum}, got {value}")


def _byte_length(checked: Mapping[str, Any], resolved: Mapping[str, Any]) -> None:
    _at_least(resolved, "byteLength", 1)


def _length(checked: Mapping[str, Any], resolved: Mapping[str, Any]) -> None:
    _at_least(resolved, "length", 1)


def _string(checked: Mapping[str, Any], resolved: Mapping[str, Any]) -> None:
    _at_least(resolved, "length", 1)
    for name in _MIN_COUNTS:
        _at_least(resolved, name, 0)
    total = sum(resolved[name] for name in _MIN_COUNTS)
    if resolved["length"] < total:
        raise ProviderError(
            f"property 'length' ({resolved['length']}) must be at least "
            f"minUpper + minLower + minNumeric + minSpecial ({total})"
        )
    number, numeric = checked.get("number"), checked.get("numeric")
    if number is not None and numeric is not None and number != numeric:
        raise ProviderError(
            "properties 'number' and 'numeric' are both set with different values "
            "('number' is deprecated, use 'numeric')"
        )
    if not any(resolved[name] for name in _CHARSET_FLAGS):
        raise ProviderError(
            "the character set specified is empty: at least one of 'special', 'upper', "
            "'lower' or 'numeric' must be true"
        )


def _integer(checked: Mapping[str, Any], resolved: Mapping[str, Any]) -> None:
    if resolved["max"] < resolved["min"]:
        raise ProviderError(
            f"property 'min' ({resolved['min']}) must be less than or equal to "
            f"property 'max' ({resolved['max']})"
        )


def _shuffle(checked: Mapping[str, Any], resolved: Mapping[str, Any]) -> None:
    _at_least(resolved, "resultCount", 0)


_RULES: Mapping[str, Validator] = {
    rs.RANDOM_ID: _byte_length,
    rs.RANDOM_STRING: _string,
    rs.RANDOM_PASSWORD: _string,
    rs.RANDOM_INTEGER: _integer,
    # The Terraform provider has no lower bound for pet length (0 silently yields two
    # words); rejecting it gives the user a clear message instead.
    rs.RANDOM_PET: _length,
    rs.RANDOM_SHUFFLE: _shuffle,
    rs.RANDOM_BYTES: _length,
}
