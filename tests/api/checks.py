"""Assertions on the shape of burner values, shared by the end-to-end tests."""

from __future__ import annotations

import base64
import datetime
import re
import string
import zoneinfo

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
B64URL_RE = re.compile(r"^[A-Za-z0-9_-]+$")
# pulumi-random's RandomString default charset: letters, digits and these specials.
STRING_CHARS = set(string.ascii_letters + string.digits + "!@#$%&*()-_=+[]{}<>:?")


def assert_id(value: str, hex_value: str, size: int) -> None:
    """base64url without padding that decodes to ``size`` bytes, and the matching hex."""
    assert B64URL_RE.match(value), value
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    assert len(raw) == size
    assert hex_value == raw.hex()


def assert_uuid(value: str) -> None:
    """8-4-4-4-12 lowercase hex."""
    assert UUID_RE.match(value), value


def assert_string(value: str, length: int) -> None:
    """Exactly ``length`` characters from the default charset."""
    assert len(value) == length
    assert set(value) <= STRING_CHARS, set(value) - STRING_CHARS


def assert_time(value: str, tz: str) -> None:
    """ISO 8601 with the zone's UTC offset at that instant, and close to now."""
    parsed = datetime.datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    expected = parsed.astimezone(zoneinfo.ZoneInfo(tz)).utcoffset()
    assert parsed.utcoffset() == expected, (value, tz)
    now = datetime.datetime.now(datetime.UTC)
    assert abs((now - parsed).total_seconds()) < 600, value
