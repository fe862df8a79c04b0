"""Helpers of the service tests: isolated settings, the stacks and files a run may leave."""

from __future__ import annotations

from pathlib import Path

from pulumi import automation as auto

from infra.basic import project_name
from infra.engine import select_engine
from infra.settings import PROJECT_ROOT, Settings
from tests.harness import GUNICORN, PYTHON  # noqa: F401 - re-exported for the tests

# One program virtualenv for the whole suite (and across runs): it is keyed by the
# requirements hash, so it is rebuilt only when burner-program/requirements.txt changes.
SHARED_VENV_DIR = PROJECT_ROOT / ".state" / "venvs"
PASSPHRASE = "test-passphrase"


def make_environ(state_dir: Path, **extra: str) -> dict[str, str]:
    """INFRA_API_* variables for an isolated state dir that shares the suite's venv."""
    return {
        "INFRA_API_STATE_DIR": str(state_dir),
        "INFRA_API_VENV_DIR": str(SHARED_VENV_DIR),
        "INFRA_API_ENGINE": "offline",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        **extra,
    }


def burner_stacks(settings: Settings) -> list[str]:
    """Names of the burner stacks in the settings' backend, listed through the Automation API."""
    if not settings.backend_dir.exists():
        return []
    work_dir = settings.state_dir / "list-workspace"
    work_dir.mkdir(parents=True, exist_ok=True)
    ws = auto.LocalWorkspace(
        work_dir=str(work_dir),
        pulumi_home=str(settings.pulumi_home),
        pulumi_command=select_engine(settings).command(),
        env_vars={"PULUMI_BACKEND_URL": settings.backend_url, "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE},
        project_settings=auto.ProjectSettings(name=project_name(settings.program_dir), runtime="python"),
    )
    return [stack.name for stack in ws.list_stacks(include_all=True) if "burner-" in stack.name]


HANG_PROGRAM = PROJECT_ROOT / "tests" / "api" / "programs" / "hang"


def leftovers(settings: Settings) -> dict[str, list[str]]:
    """Everything a burner run may leave behind in a state dir; all lists empty when clean."""
    from infra.owners import tmp_dir_alive

    def names(directory: Path, pattern: str = "*") -> list[str]:
        return sorted(p.name for p in directory.glob(pattern)) if directory.exists() else []

    locks = settings.backend_dir / ".pulumi" / "locks"
    return {
        "stacks": burner_stacks(settings),
        "locks": sorted(str(p.relative_to(locks)) for p in locks.rglob("*.json")) if locks.exists() else [],
        "owners": names(settings.owners_dir),
        "work_dirs": names(settings.work_dir),
        "dead_tmp_dirs": [p.name for p in settings.tmp_dir.glob("*") if not tmp_dir_alive(p)]
        if settings.tmp_dir.exists() else [],
        "workspace_files": names(settings.pulumi_home / "workspaces", "*burner*"),
    }


CLEAN: dict[str, list[str]] = {"stacks": [], "locks": [], "owners": [], "work_dirs": [], "dead_tmp_dirs": [],
         "workspace_files": []}

