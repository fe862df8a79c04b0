"""What every burner stack shares, made once per process: state dir, passphrase, program venv."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from infra.backend import BackendProbe
from infra.engine import Engine
from infra.errors import EngineError, SettingsError, StateDirError
from infra.settings import Settings
from infra.statedir import ensure_passphrase, ensure_state_dir, writable
from infra.venv import ensure_venv, venv_name

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Toolchain:
    """The program's virtualenv and the environment every workspace runs Pulumi with."""

    venv: Path
    env_vars: dict[str, str]

    @property
    def passphrase(self) -> str:
        """The secrets passphrase: of every stack's secrets, and of Temporal's payloads."""
        return self.env_vars["PULUMI_CONFIG_PASSPHRASE"]


def build_toolchain(settings: Settings, engine: Engine) -> Toolchain:
    """Check the state dir, fix the passphrase, build the program venv; raise InfraError if unusable."""
    ensure_state_dir(settings)
    try:
        passphrase = ensure_passphrase(settings)
    except OSError as exc:
        raise StateDirError(settings.state_dir, f"unusable: {exc.strerror or exc}") from exc
    env_vars = {
        **engine.env_vars,
        "PULUMI_BACKEND_URL": settings.backend_url,
        "PULUMI_CONFIG_PASSPHRASE": passphrase,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        # Burner stacks live for one request: checkpoint backups would only pile up.
        "PULUMI_DIY_BACKEND_DISABLE_CHECKPOINT_BACKUPS": "true",
    }
    started = time.perf_counter()
    try:
        venv = ensure_venv(settings.program_dir, settings.venv_dir)
    except OSError as exc:  # the venv dir itself cannot be made or locked
        raise SettingsError("INFRA_API_VENV_DIR", str(settings.venv_dir),
                            f"a directory this service can create and write "
                            f"({exc.strerror or exc})") from exc
    logger.info("ensure_venv: %s (%.0f ms)", venv, (time.perf_counter() - started) * 1000)
    return Toolchain(venv=venv, env_vars=env_vars)


def readiness(settings: Settings, engine: Engine, backend: BackendProbe) -> dict[str, bool]:
    """Whether the engine starts, the program venv is built, the state dir is writable and
    the state backend answers."""
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
            "state_dir": writable(settings.work_dir), "backend": backend.ready()}
