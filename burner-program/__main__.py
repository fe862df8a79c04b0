"""Burner program: create one random value (or read the clock) as chosen by config ``request``."""

from __future__ import annotations

import datetime

import pulumi
import pulumi_random as random

KINDS = ("id", "uuid", "string", "time")


def _bounded_int(config: pulumi.Config, key: str, default: int, low: int, high: int) -> int:
    value = config.get_int(key)
    if value is None:
        return default
    if not low <= value <= high:
        raise pulumi.RunError(f"config {key!r} must be from {low} to {high}, got {value}")
    return value


def burn_id(config: pulumi.Config) -> None:
    """Export a random id as base64url (``id``) and hex (``id_hex``)."""
    size = _bounded_int(config, "bytes", 8, 1, 64)
    value = random.RandomId("id", byte_length=size)
    pulumi.export("id", value.b64_url)
    pulumi.export("id_hex", value.hex)


def burn_uuid(config: pulumi.Config) -> None:
    """Export a random UUID."""
    pulumi.export("uuid", random.RandomUuid("uuid").result)


def burn_string(config: pulumi.Config) -> None:
    """Export a random string of ``length`` characters."""
    length = _bounded_int(config, "length", 24, 1, 256)
    pulumi.export("string", random.RandomString("string", length=length).result)


def burn_time(config: pulumi.Config) -> None:
    """Export the current time in zone ``tz`` as ISO 8601 with its UTC offset."""
    # Imported here: only /time needs it, and every other run would pay for the import.
    import zoneinfo

    name = config.get("tz") or "UTC"
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise pulumi.RunError(f"config 'tz' is not an IANA time zone: {name!r}") from exc
    pulumi.export("time", datetime.datetime.now(zone).isoformat(timespec="seconds"))


def main() -> None:
    """Dispatch on config ``request``; an unknown request fails the update."""
    config = pulumi.Config()
    request = config.require("request")
    handlers = {"id": burn_id, "uuid": burn_uuid, "string": burn_string, "time": burn_time}
    if request not in handlers:
        raise pulumi.RunError(f"unknown request {request!r}: expected one of {', '.join(KINDS)}")
    handlers[request](config)


main()
