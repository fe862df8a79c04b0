"""Checkpoint pieces shared by commands and the deployment engine."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime
from typing import Any

STACK_TYPE = "pulumi:pulumi:Stack"
STACK_REFERENCE_TYPE = "pulumi:pulumi:StackReference"
PROVIDER_PREFIX = "pulumi:providers:"
HISTORY_TIME = "%Y-%m-%dT%H:%M:%S.000Z"


def manifest() -> dict[str, Any]:
    """A deployment manifest stamped with the engine version."""
    version, magic = _stamp()
    return {"time": datetime.now(UTC).isoformat(), "magic": magic, "version": version}


@functools.cache
def _stamp() -> tuple[str, str]:
    """The engine version and its hash (every checkpoint save asks for them)."""
    from offline_pulumi.version import VERSION

    version = f"v{VERSION}"
    return version, hashlib.sha256(version.encode()).hexdigest()


def new_deployment(salt: str) -> dict[str, Any]:
    """The ``latest`` of a stack that was created and never deployed."""
    return {"manifest": manifest(),
            "secrets_providers": {"type": "passphrase", "state": {"salt": salt}}}


def stack_resource(latest: dict[str, Any] | None) -> dict[str, Any] | None:
    """The root ``pulumi:pulumi:Stack`` resource of a deployment, if any."""
    for resource in (latest or {}).get("resources") or []:
        if resource.get("type") == STACK_TYPE and not resource.get("parent"):
            return resource
    return None


def format_unix(seconds: int | float) -> str:
    """Unix seconds as the history timestamps the Automation API parses."""
    return datetime.fromtimestamp(seconds, UTC).strftime(HISTORY_TIME)
