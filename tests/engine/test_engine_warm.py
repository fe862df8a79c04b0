"""The resident engine's warm-up covers what a burn's commands import.

A module a command imports lazily costs every such command its import (yaml alone is about
20 ms) when the resident did not import it before forking.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.engine.support import Engine, unique_stack

pytestmark = pytest.mark.slow

# Warm up as the resident does, then run commands in this process and list what they imported.
SCRIPT = """
import contextlib, io, json, sys
from offline_pulumi import cli, resident
resident._warm_up()
before = set(sys.modules)
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code
    if code:
        sys.exit(f"{argv} exited with {code}")
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_the_commands_of_a_burn_import_nothing_the_warm_up_did_not(engine: Engine) -> None:
    work_dir = engine.project("basic")
    stack = ["--stack", unique_stack(), "--non-interactive"]
    commands = [
        ["stack", "init", *stack],
        ["config", "set-all", "--plaintext", "greeting=hi", *stack],
        ["up", "--yes", "--skip-preview", "--refresh", *stack],
        ["stack", "output", "--json", "--show-secrets", *stack],
        ["stack", "history", "--json", "--show-secrets", "--page-size", "1", *stack],
        ["stack", "select", *stack],
        ["cancel", "--yes", *stack],
        ["destroy", "--yes", "--skip-preview", *stack],
        ["stack", "rm", "--yes", *stack],
        ["whoami"],
        ["version"],
    ]
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(commands)], cwd=work_dir,
                            env={**os.environ, **engine.env}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    imported = json.loads(result.stdout.splitlines()[-1])
    assert imported == []
