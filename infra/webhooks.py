"""Webhook subscribers: the file that names them, the signature on each delivery, and one POST.

Subscribers are listed in ``INFRA_API_WEBHOOKS_FILE``::

    subscribers:
      - url: http://127.0.0.1:9000/hook
        events: [operation.succeeded, stack.destroyed]
        secret: s3cret

Each delivery carries ``X-Burner-Signature: t=<unix seconds>,v1=<hex>``, where ``v1`` is
HMAC-SHA256 with the subscriber's secret over ``<t>.<body>``. A receiver recomputes it over the
raw body, compares in constant time, and rejects a ``t`` older than its replay window
(``verify`` below is the reference). Retries resend the same body and event id
(``X-Burner-Event-Id``), so a receiver can drop duplicates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from infra.errors import SettingsError

EVENT_TYPES = ("operation.succeeded", "operation.failed", "stack.created", "stack.updated",
               "stack.destroyed", "stack.expiring")
SIGNATURE_HEADER = "X-Burner-Signature"
EVENT_ID_HEADER = "X-Burner-Event-Id"
EVENT_TYPE_HEADER = "X-Burner-Event"
REPLAY_WINDOW_SECONDS = 300
POST_TIMEOUT_SECONDS = 10.0
_VARIABLE = "INFRA_API_WEBHOOKS_FILE"


@dataclasses.dataclass(frozen=True)
class Subscriber:
    """One endpoint, the event types it wants, and the secret its deliveries are signed with."""

    url: str
    events: frozenset[str]
    secret: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class Attempt:
    """The outcome of one POST: the HTTP status if one came back, else the network error."""

    ok: bool
    status: int | None
    error: str | None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would resend the body somewhere the operator did not name (a 3xx is a failure).
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# No proxy from the environment either: deliveries go where the file says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


def load_subscribers(path: Path | None) -> tuple[Subscriber, ...]:
    """The subscribers in ``path`` (none without a file); raise SettingsError with one line."""
    if path is None:
        return ()
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SettingsError(_VARIABLE, str(path), f"a readable file ({exc.strerror or exc})"
                            ) from exc
    except UnicodeDecodeError as exc:
        raise SettingsError(_VARIABLE, str(path), "a UTF-8 text file") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SettingsError(_VARIABLE, str(path), f"valid YAML (parse error{where})") from exc
    entries = document.get("subscribers") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise SettingsError(_VARIABLE, str(path), "a mapping with a 'subscribers' list")
    return tuple(_subscriber(path, index, entry) for index, entry in enumerate(entries))


def _subscriber(path: Path, index: int, entry: Any) -> Subscriber:
    where = f"subscriber {index + 1}"
    if not isinstance(entry, dict):
        raise SettingsError(_VARIABLE, str(path), f"{where}: a mapping with url, events, secret")
    url = entry.get("url")
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        port_ok = parts is None or parts.port != 0  # .port raises for one that is no number
    except ValueError:  # an unbalanced bracket, a bad port
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise SettingsError(_VARIABLE, str(path), f"{where}: an http(s) url")
    events = entry.get("events")
    if not isinstance(events, list) or not events:
        raise SettingsError(_VARIABLE, str(path), f"{where}: a non-empty events list")
    unknown = [str(event) for event in events if event not in EVENT_TYPES]
    if unknown:
        raise SettingsError(_VARIABLE, str(path), f"{where}: events among {', '.join(EVENT_TYPES)} "
                                                  f"(unknown: {', '.join(unknown)})")
    secret = entry.get("secret")
    if not isinstance(secret, str) or not secret:
        raise SettingsError(_VARIABLE, str(path), f"{where}: a non-empty secret")
    return Subscriber(str(url), frozenset(events), secret)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float | None = None,
           window: float = REPLAY_WINDOW_SECONDS) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and is recent (what a receiver does)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > window:
        return False
    expected = signature(secret, timestamp, body).rsplit("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def post(subscriber: Subscriber, event_id: str, event_type: str, body: bytes) -> Attempt:
    """POST one signed delivery; any 2xx is a success."""
    request = urllib.request.Request(subscriber.url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "User-Agent": "burner-api-webhooks",
        EVENT_ID_HEADER: event_id,
        EVENT_TYPE_HEADER: event_type,
        SIGNATURE_HEADER: signature(subscriber.secret, int(time.time()), body),
    })
    try:
        with _OPENER.open(request, timeout=POST_TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return Attempt(False, exc.code, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Attempt(False, None, str(reason))
    return Attempt(200 <= status < 300, status, None if 200 <= status < 300 else f"HTTP {status}")
