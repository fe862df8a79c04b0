"""What the numbers were measured on: CPU, memory, Python, Pulumi SDK, engine, date, commit."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys

import offline_pulumi
from infra.settings import PROJECT_ROOT


def machine_details() -> dict[str, str]:
    """Name -> value rows describing this machine and software, in display order."""
    command = offline_pulumi.pulumi_command()
    return {
        "Date (UTC)": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "Commit": _commit(),
        "CPU": f"{_cpu_model()}, {os.cpu_count()} logical CPUs "
               f"({len(os.sched_getaffinity(0))} usable)",
        "RAM": f"{_ram_gib():.1f} GiB",
        "Load average at start": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "OS": platform.platform(),
        "Python": sys.version.split()[0],
        "pulumi SDK": importlib.metadata.version("pulumi"),
        "pulumi-random SDK": importlib.metadata.version("pulumi-random"),
        "Engine": f"offline_pulumi (reports pulumi {command.version}), file:// backend",
        "Server": f"gunicorn {importlib.metadata.version('gunicorn')} with gunicorn.conf.py",
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _ram_gib() -> float:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=PROJECT_ROOT, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "")
