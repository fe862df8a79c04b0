"""docs/offline-engine.md stays honest: its command list and version match the code."""

from __future__ import annotations

import re
from pathlib import Path

from offline_pulumi import cli
from offline_pulumi.version import VERSION

DOC = Path(__file__).resolve().parents[2] / "docs" / "offline-engine.md"


def commands_row() -> str:
    return next(line for line in DOC.read_text().splitlines() if line.startswith("| commands |"))


def documented_commands() -> set[tuple[str, ...]]:
    """Every command path the commands row names, with `a/b` groups expanded."""
    found: set[tuple[str, ...]] = set()
    for words in re.findall(r"`([a-z][a-z /-]*)`", commands_row()):
        parts = words.split()
        if not parts:
            continue
        *head, last = [p for p in parts if not p.startswith("-")] or [""]
        for leaf in last.split("/"):
            found.add((*head, leaf) if leaf else tuple(head))
    return found


def test_every_command_is_documented_and_every_documented_one_exists() -> None:
    assert documented_commands() == set(cli.COMMANDS)


def test_documented_version_is_the_reported_one() -> None:
    assert f"`v{VERSION}`" in commands_row()
