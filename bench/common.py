"""Small helpers shared by the benchmark modules: statistics, paths, environments, HTTP."""

from __future__ import annotations

import http.client
import json
import math
import os
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from infra.settings import PROGRAM_DIR
from tests.harness import SHARED_VENV_DIR  # noqa: F401 - the tests' venv, shared

PROGRAM_REQUIREMENTS = PROGRAM_DIR / "requirements.txt"
ENDPOINTS = ("id", "uuid", "string", "time")
# Outer settings must not leak into a measurement (a state dir, a key cache, a debug flag).
_FOREIGN_PREFIXES = ("INFRA_API_", "PULUMI_", "OFFLINE_PULUMI_")
# Production runs with an operator's passphrase, which is never written to disk (no key cache):
# every service the bench starts gets one.
OPERATOR_PASSPHRASE = "bench-operator-passphrase"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    """The 50th percentile."""
    return percentile(values, 50)


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without INFRA_API_*, PULUMI_* and OFFLINE_PULUMI_*, plus extra."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES)}
    return {**base, **extra}


def service_environ(**extra: str) -> dict[str, str]:
    """``clean_environ`` plus an explicit ``PULUMI_CONFIG_PASSPHRASE``, as in production."""
    return clean_environ(PULUMI_CONFIG_PASSPHRASE=OPERATOR_PASSPHRASE, **extra)


def get(port: int, path: str, timeout: float = 600) -> tuple[int, dict[str, Any], float]:
    """GET ``path`` on 127.0.0.1; return (status, JSON body, seconds). Raises OSError on failure."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.perf_counter()
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        raw = resp.read()
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"raw": raw.decode("utf-8", "replace")}
    return resp.status, body, elapsed


class CountingRoot:
    """A PulumiCommand root whose ``bin/pulumi`` logs each invocation, then runs the real one."""

    def __init__(self, root: Path, real: auto.PulumiCommand) -> None:
        self.root = root
        self.log = root / "invocations.log"
        real_pulumi = Path(real.command)
        (root / "bin").mkdir(parents=True, exist_ok=True)
        shim = root / "bin" / "pulumi"
        shim.write_text("#!/bin/sh\n"
                        f"printf '%s\\n' \"$*\" >> {shlex.quote(str(self.log))}\n"
                        f"exec {shlex.quote(str(real_pulumi))} \"$@\"\n")
        shim.chmod(0o755)
        self.log.touch()

    def command(self) -> auto.PulumiCommand:
        """A PulumiCommand running through the counting shim."""
        return auto.PulumiCommand(root=str(self.root))

    def invocations(self) -> list[str]:
        """The argument lines of every invocation so far, oldest first."""
        return self.log.read_text().splitlines()


def subcommand(argv_line: str) -> str:
    """The pulumi subcommand of a logged argument line, e.g. ``stack init`` or ``up``."""
    words = [w for w in argv_line.split() if not w.startswith("-")]
    if words and words[0] in ("stack", "config", "plugin") and len(words) > 1:
        return " ".join(words[:2])
    return words[0] if words else "(none)"

