"""The tutorial's flow on the same offline engine, for comparison.

Per request it builds a fresh virtualenv in the program directory and pip-installs the
program's requirements (pip's cache is allowed, as on a developer machine), selects the one
fixed stack ``dev``, sets the config, then runs refresh, up and destroy, one request at a time.
The program is a copy of ``burner-program/`` so nothing is written into the source tree.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pulumi import automation as auto

import offline_pulumi
from bench.common import median
from infra.settings import PROGRAM_DIR

STACK = "dev"
PASSPHRASE = "bench-passphrase"


@dataclasses.dataclass(frozen=True)
class TutorialStats:
    """Median time of one tutorial-style request, and of its venv + pip part alone."""

    requests: int
    median_ms: float
    venv_median_ms: float


def measure_tutorial(requests: int) -> TutorialStats:
    """Serve ``requests`` /uuid values the tutorial's way, sequentially."""
    command = offline_pulumi.pulumi_command()
    totals, venvs = [], []
    with tempfile.TemporaryDirectory(prefix="bench-tutorial-") as tmp:
        root = Path(tmp)
        program = root / "burner-program"
        shutil.copytree(PROGRAM_DIR, program, ignore=shutil.ignore_patterns("venv", "__pycache__"))
        env = {"PULUMI_BACKEND_URL": (root / "state").as_uri(),
               "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE, "PULUMI_SKIP_UPDATE_CHECK": "true"}
        (root / "state").mkdir()
        for _ in range(requests):
            started = time.perf_counter()
            spin_venv(program)
            venvs.append((time.perf_counter() - started) * 1000)
            value = burn_uuid(program, command, env, str(root / "home"))
            if len(value) != 36:
                raise RuntimeError(f"tutorial flow returned {value!r}, not a UUID")
            totals.append((time.perf_counter() - started) * 1000)
    return TutorialStats(requests, median(totals), median(venvs))


def spin_venv(program: Path) -> None:
    """A fresh ``venv`` in the program directory with the program's requirements installed."""
    subprocess.run([sys.executable, "-m", "venv", "--clear", "venv"], cwd=program, check=True,
                   capture_output=True)
    subprocess.run([str(program / "venv" / "bin" / "python"), "-m", "pip", "install",
                    "--disable-pip-version-check", "-r", "requirements.txt"],
                   cwd=program, check=True, capture_output=True)


def burn_uuid(program: Path, command: auto.PulumiCommand, env: dict[str, str], home: str) -> str:
    """Select the fixed stack, configure, refresh, up, read the value, destroy."""
    opts = auto.LocalWorkspaceOptions(pulumi_command=command, env_vars=env, pulumi_home=home)
    stack = auto.create_or_select_stack(STACK, work_dir=str(program), opts=opts)
    stack.set_config("request", auto.ConfigValue("uuid"))
    stack.refresh()
    result = stack.up()
    stack.destroy()
    return str(result.outputs["uuid"].value)
