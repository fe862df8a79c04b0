"""What every burner run shares, made once per process: state dirs, passphrase, program venv."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from pathlib import Path

from infra.engine import Engine, ensure_passphrase
from infra.errors import EngineError
from infra.settings import Settings
from infra.venv import ensure_venv, venv_name

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """The program's virtualenv and the environment every workspace runs Pulumi with."""

    venv: Path
    env_vars: dict[str, str]


def prepare(settings: Settings) -> Prepared:
    """Create the state dir and passphrase, build the program venv; raise EngineError if unusable."""
    try:
        make_state_dirs(settings)
        passphrase = ensure_passphrase(settings)
    except OSError as exc:
        raise EngineError("prepare", None, f"state directory unusable: {exc}") from exc
    env_vars = {
        "PULUMI_BACKEND_URL": settings.backend_url,
        "PULUMI_CONFIG_PASSPHRASE": passphrase,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        # Burner stacks live for one request: checkpoint backups would only pile up.
        "PULUMI_DIY_BACKEND_DISABLE_CHECKPOINT_BACKUPS": "true",
        # The offline engine forks programs from a process that has the Pulumi SDK imported
        # already (the real CLI ignores this).
        "OFFLINE_PULUMI_PROGRAM_HOST": "1",
    }
    if settings.passphrase is None:
        # The generated passphrase sits in the state dir already, so caching the derived key
        # beside it exposes nothing new and saves ~0.25 s per stack.
        env_vars["OFFLINE_PULUMI_KEY_CACHE"] = str(settings.state_dir / "keys")
    started = time.perf_counter()
    venv = ensure_venv(settings.program_dir, settings.venv_dir)
    logger.info("ensure_venv: %s (%.0f ms)", venv, (time.perf_counter() - started) * 1000)
    return Prepared(venv=venv, env_vars=env_vars)


def readiness(settings: Settings, engine: Engine) -> dict[str, bool]:
    """Whether the engine starts, the program venv is built and the state dir is writable."""
    try:
        engine.command()
        engine_ok = True
    except EngineError:
        engine_ok = False
    try:
        venv_ok = (settings.venv_dir / venv_name(settings.program_dir)).is_dir()
    except OSError:
        venv_ok = False
    return {"engine": engine_ok, "program_venv": venv_ok,
            "state_dir": _writable(settings.state_dir)}


def make_state_dirs(settings: Settings) -> None:
    """Create the state directory (0700: it holds the passphrase) and its parts."""
    settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings.state_dir.chmod(0o700)
    for directory in (settings.backend_dir, settings.pulumi_home, settings.work_dir,
                      settings.owners_dir, settings.tmp_dir):
        directory.mkdir(parents=True, exist_ok=True)


def _writable(directory: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=directory):
            return True
    except OSError:
        return False
