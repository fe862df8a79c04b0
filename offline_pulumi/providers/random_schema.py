"""Input schema of the random provider: property kinds, defaults, type checks and normalisation.

Property names and defaults follow the pulumi-random schema (camelCase on the wire). Numbers
arrive from the Pulumi SDK as doubles, so integral floats are normalised to ``int`` here.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class ProviderError(Exception):
    """Inputs rejected or generation failed; the message names the offending property."""


class Kind(enum.Enum):
    """Wire type of an input property; the value is the phrase used in error messages."""

    INT = "an integer"
    BOOL = "a boolean"
    STR = "a string"
    STR_MAP = "a map of strings"
    STR_LIST = "a list of strings"


@dataclass(frozen=True)
class Prop:
    """One input property: its kind, whether it is required and its schema default."""

    kind: Kind
    required: bool = False
    default: Any = None


def _token(camel: str) -> str:
    return f"random:index/{camel}:{camel[0].upper()}{camel[1:]}"


RANDOM_ID = _token("randomId")
RANDOM_STRING = _token("randomString")
RANDOM_PASSWORD = _token("randomPassword")
RANDOM_UUID = _token("randomUuid")
RANDOM_UUID4 = _token("randomUuid4")
RANDOM_UUID7 = _token("randomUuid7")
RANDOM_INTEGER = _token("randomInteger")
RANDOM_PET = _token("randomPet")
RANDOM_SHUFFLE = _token("randomShuffle")
RANDOM_BYTES = _token("randomBytes")

_KEEPERS = {"keepers": Prop(Kind.STR_MAP)}

# number/numeric have no static default: they mirror each other (see resolve()).
_STRING_PROPS: dict[str, Prop] = {
    "length": Prop(Kind.INT, required=True),
    "special": Prop(Kind.BOOL, default=True),
    "upper": Prop(Kind.BOOL, default=True),
    "lower": Prop(Kind.BOOL, default=True),
    "number": Prop(Kind.BOOL),
    "numeric": Prop(Kind.BOOL),
    "minUpper": Prop(Kind.INT, default=0),
    "minLower": Prop(Kind.INT, default=0),
    "minNumeric": Prop(Kind.INT, default=0),
    "minSpecial": Prop(Kind.INT, default=0),
    "overrideSpecial": Prop(Kind.STR),
    **_KEEPERS,
}

SCHEMAS: Mapping[str, Mapping[str, Prop]] = {
    RANDOM_ID: {"byteLength": Prop(Kind.INT, required=True), "prefix": Prop(Kind.STR), **_KEEPERS},
    RANDOM_STRING: _STRING_PROPS,
    RANDOM_PASSWORD: _STRING_PROPS,
    RANDOM_UUID: _KEEPERS,
    RANDOM_UUID4: _KEEPERS,
    RANDOM_UUID7: _KEEPERS,
    RANDOM_INTEGER: {
        "min": Prop(Kind.INT, required=True),
        "max": Prop(Kind.INT, required=True),
        "seed": Prop(Kind.STR),
        **_KEEPERS,
    },
    RANDOM_PET: {
        "length": Prop(Kind.INT, default=2),
        "prefix": Prop(Kind.STR),
        "separator": Prop(Kind.STR, default="-"),
        **_KEEPERS,
    },
    RANDOM_SHUFFLE: {
        "inputs": Prop(Kind.STR_LIST, required=True),
        "resultCount": Prop(Kind.INT),
        "seed": Prop(Kind.STR),
        **_KEEPERS,
    },
    RANDOM_BYTES: {"length": Prop(Kind.INT, required=True), **_KEEPERS},
}


def schema_for(token: str) -> Mapping[str, Prop]:
    """Return the input schema of a resource type; raise ProviderError for an unknown token."""
    try:
        return SCHEMAS[token]
    except KeyError:
        raise ProviderError(f"unknown resource type '{token}' for provider 'random'") from None


def is_internal(name: str) -> bool:
    """Tell whether a property is bridge metadata (``__defaults``, ``__meta``), not user input."""
    return name.startswith("__")


def normalise_inputs(token: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Type-check inputs against the schema and normalise numbers; raise ProviderError."""
    props = schema_for(token)
    checked: dict[str, Any] = {}
    for name, value in inputs.items():
        if is_internal(name):
            continue
        prop = props.get(name)
        if prop is None:
            raise ProviderError(f"unknown property '{name}' for resource type '{token}'")
        checked[name] = None if value is None else _coerce(name, prop.kind, value)
    for name, prop in props.items():
        if prop.required and checked.get(name) is None:
            raise ProviderError(f"missing required property '{name}'")
    return checked


def resolve(token: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Drop nulls and apply schema defaults, as the planned state of a resource would hold them."""
    props = schema_for(token)
    resolved = {k: v for k, v in values.items() if v is not None and not is_internal(k)}
    for name, prop in props.items():
        if name not in resolved and prop.default is not None:
            resolved[name] = prop.default
    if "numeric" in props:
        # `number` is the deprecated alias of `numeric`; whichever is set drives both.
        flag = resolved.get("numeric", resolved.get("number", True))
        resolved["number"] = resolved["numeric"] = flag
    return resolved


def loose(value: Any) -> Any:
    """Normalise integral floats to int, recursively, without validating anything."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: loose(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [loose(v) for v in value]
    return value


def tf_string(value: Any) -> Any:
    """Render a scalar the way the Pulumi bridge converts it into a Terraform string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Go's FormatFloat(f, 'f', -1, 64): shortest round-trip digits, never an exponent.
        return format(Decimal(repr(value)), "f")
    return value


def tf_string_map(value: Any) -> Any:
    """Render every value of a map with tf_string (nulls stay null); non-maps pass through."""
    if not isinstance(value, Mapping):
        return value
    return {k: None if v is None else tf_string(v) for k, v in value.items()}


def as_int(name: str, value: Any) -> int:
    """Return value as an int64, accepting integral floats; raise ProviderError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(name, Kind.INT, value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ProviderError(f"property '{name}' must be an integer, got {value!r}")
        value = int(value)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ProviderError(f"property '{name}' is out of the 64-bit integer range: {value}")
    return value


def _coerce(name: str, kind: Kind, value: Any) -> Any:
    if kind is Kind.INT:
        return as_int(name, value)
    if kind is Kind.BOOL or kind is Kind.STR:
        if not isinstance(value, bool if kind is Kind.BOOL else str):
            raise _type_error(name, kind, value)
        return value
    if kind is Kind.STR_MAP:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _type_error(name, kind, value)
        return {k: None if v is None else _element(f"{name}.{k}", v) for k, v in value.items()}
    if not isinstance(value, list | tuple):
        raise _type_error(name, kind, value)
    return [_element(f"{name}[{i}]", v) for i, v in enumerate(value)]


def _element(name: str, value: Any) -> Any:
    # Elements of string maps/lists may be numbers or booleans: the bridge converts them to
    # strings, so they are kept (normalised) here and rendered with tf_string in outputs.
    if isinstance(value, str | bool):
        return value
    if isinstance(value, int | float) and math.isfinite(value):
        return loose(value)
    raise _type_error(name, Kind.STR, value)


def _type_error(name: str, kind: Kind, value: Any) -> ProviderError:
    return ProviderError(f"property '{name}' must be {kind.value}, got {_json_type(value)}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__
