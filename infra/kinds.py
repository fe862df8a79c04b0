"""The request kinds a burner stack can answer, and validation of their parameters."""

from __future__ import annotations

import dataclasses
import functools
import re
import zoneinfo
from collections.abc import Callable, Mapping

from infra.errors import ParameterError


@dataclasses.dataclass(frozen=True)
class Param:
    """One query parameter of a request kind: its default and how to check a value."""

    name: str
    default: str
    allowed: str
    check: Callable[[str], bool]


@dataclasses.dataclass(frozen=True)
class BurnerRequest:
    """A validated request: the kind and its parameters, as stack config strings."""

    kind: str
    params: tuple[tuple[str, str], ...] = ()

    def config(self) -> dict[str, str]:
        """Return the stack configuration the burner program reads."""
        return {"request": self.kind, **dict(self.params)}


# ASCII digits in canonical form: int() would also take signs, spaces, underscores, leading
# zeros and the digits of every other script.
_CANONICAL_INT = re.compile(r"0|[1-9][0-9]*")


def _int_range(low: int, high: int) -> Callable[[str], bool]:
    digits = len(str(high))

    def check(value: str) -> bool:
        # The length check comes first: int() of a huge string is slow, then refused outright.
        return (len(value) <= digits and _CANONICAL_INT.fullmatch(value) is not None
                and low <= int(value) <= high)

    return check


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _is_zone(value: str) -> bool:
    return value in _zones()


KINDS: dict[str, tuple[Param, ...]] = {
    "id": (Param("bytes", "8", "an integer from 1 to 64", _int_range(1, 64)),),
    "uuid": (),
    "string": (Param("length", "24", "an integer from 1 to 256", _int_range(1, 256)),),
    "time": (Param("tz", "UTC", "an IANA time zone name such as UTC or Europe/Berlin", _is_zone),),
}


def parse_request(kind: str, raw: Mapping[str, str]) -> BurnerRequest:
    """Validate ``raw`` query parameters for ``kind``; raise ParameterError on the first bad one."""
    if kind not in KINDS:
        raise ParameterError("request", kind, "one of " + ", ".join(KINDS))
    specs = KINDS[kind]
    known = {spec.name for spec in specs}
    for name in sorted(raw):
        if name not in known:
            names = ", ".join(sorted(known)) if known else "none"
            raise ParameterError(name, raw[name], f"the parameters of /{kind}, which are: {names}")
    params = []
    for spec in specs:
        value = raw.get(spec.name, spec.default)
        if not spec.check(value):
            raise ParameterError(spec.name, value, spec.allowed)
        params.append((spec.name, value))
    return BurnerRequest(kind, tuple(params))
