"""Service settings, read once from ``INFRA_API_*`` environment variables."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, cast
from urllib.parse import urlsplit

from infra.errors import SecretSettingError, SettingsError
from offline_pulumi.storage import redact_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROGRAM_DIR = PROJECT_ROOT / "burner-program"
PROGRAMS_DIR = PROJECT_ROOT / "programs"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_STATE_DIR = PROJECT_ROOT / ".state"
DEFAULT_ENGINE = "auto"
DEFAULT_REQUEST_TIMEOUT = 120.0
DEFAULT_MAX_INFLIGHT = 8
DEFAULT_LOG_LEVEL = "INFO"
DEFAULT_LOG_FORMAT = "text"
DEFAULT_REAP_INTERVAL = 60.0
DEFAULT_ORPHAN_AGE = 900.0
DEFAULT_CANCEL_GRACE = 10.0
DEFAULT_TEMPORAL_NAMESPACE = "default"
DEFAULT_TASK_QUEUE = "burner"
DEFAULT_WORKER_CONCURRENCY = 8
DEFAULT_WEBHOOK_CONCURRENCY = 8
DEFAULT_MAX_TTL = 7 * 86400.0
DEFAULT_EVENT_RETENTION = 7 * 86400.0
# Durations above a day (TTL, retention) may go up to a year.
_YEAR = 366 * 86400.0

EngineName = Literal["auto", "cli", "offline"]
ENGINE_NAMES: tuple[EngineName, ...] = ("auto", "cli", "offline")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
_TOKEN_RE = re.compile(r"[!-~]+")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the service needs to know about its environment."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    state_dir: Path = DEFAULT_STATE_DIR
    venv_dir: Path = DEFAULT_STATE_DIR / "venvs"
    pulumi_home: Path = DEFAULT_STATE_DIR / "pulumi-home"
    engine: EngineName = "auto"
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    token: str | None = None
    log_level: str = DEFAULT_LOG_LEVEL
    log_format: str = DEFAULT_LOG_FORMAT
    # Seconds between passes of the reaper schedule, and the age after which a burner stack that
    # no running workflow owns is an orphan (well above the request timeout).
    reap_interval: float = DEFAULT_REAP_INTERVAL
    orphan_age: float = DEFAULT_ORPHAN_AGE
    # Seconds a cancelled Pulumi operation gets after SIGINT before it is killed.
    cancel_grace: float = DEFAULT_CANCEL_GRACE
    # PULUMI_CONFIG_PASSPHRASE when the operator sets one; otherwise a generated one is kept
    # in the state directory (see infra.engine.ensure_passphrase).
    passphrase: str | None = dataclasses.field(default=None, repr=False)
    program_dir: Path = PROGRAM_DIR
    # The program catalog: Pulumi projects whose config block is their API's input schema.
    programs: tuple[Path, ...] = ()
    # host:port of a Temporal cluster; None starts an embedded dev server (see infra.embedded).
    temporal_address: str | None = None
    temporal_namespace: str = DEFAULT_TEMPORAL_NAMESPACE
    task_queue: str = DEFAULT_TASK_QUEUE
    run_worker: bool = True
    worker_concurrency: int = DEFAULT_WORKER_CONCURRENCY
    # Webhook attempts one worker runs at once, in slots of their own: an endpoint that hangs
    # must not hold the slots stack operations need.
    webhook_concurrency: int = DEFAULT_WEBHOOK_CONCURRENCY
    # A shared state backend (postgres://...) for a fleet; None: file:// in the state dir.
    # It may carry a password: never in repr, logs or errors (see backend_display).
    backend: str | None = dataclasses.field(default=None, repr=False)
    # The longest TTL a stack may ask for, in seconds.
    max_ttl: float = DEFAULT_MAX_TTL
    # A YAML file of webhook subscribers (see infra.webhooks); None: no webhooks.
    webhooks_file: Path | None = None
    # How long finished operations and their events stay readable, in seconds.
    event_retention: float = DEFAULT_EVENT_RETENTION

    @property
    def backend_dir(self) -> Path:
        """Directory of the default ``file://`` state backend."""
        return self.state_dir / "backend"

    @property
    def backend_url(self) -> str:
        """The ``PULUMI_BACKEND_URL`` every workspace uses."""
        return self.backend or self.backend_dir.as_uri()

    @property
    def backend_display(self) -> str:
        """The backend URL without credentials, for logs and messages."""
        return redact_url(self.backend_url)

    @property
    def work_dir(self) -> Path:
        """Parent of the per-request workspace directories, one per burner stack."""
        return self.state_dir / "work"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Build settings from an environment mapping; raise SettingsError on a bad value."""
        state_dir = _path(environ, "INFRA_API_STATE_DIR", DEFAULT_STATE_DIR)
        request_timeout = _float(environ, "INFRA_API_REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT)
        orphan_age = _float(environ, "INFRA_API_ORPHAN_AGE",
                            max(DEFAULT_ORPHAN_AGE, request_timeout * 3))
        if orphan_age <= request_timeout * 2:
            raise SettingsError("INFRA_API_ORPHAN_AGE", environ["INFRA_API_ORPHAN_AGE"],
                                "more than twice INFRA_API_REQUEST_TIMEOUT")
        return cls(
            host=environ.get("INFRA_API_HOST", DEFAULT_HOST) or DEFAULT_HOST,
            port=_int(environ, "INFRA_API_PORT", DEFAULT_PORT, 1, 65535),
            state_dir=state_dir,
            venv_dir=_path(environ, "INFRA_API_VENV_DIR", state_dir / "venvs"),
            pulumi_home=_path(environ, "INFRA_API_PULUMI_HOME", state_dir / "pulumi-home"),
            engine=cast(EngineName, _choice(environ, "INFRA_API_ENGINE", DEFAULT_ENGINE, ENGINE_NAMES)),
            request_timeout=request_timeout,
            max_inflight=_int(environ, "INFRA_API_MAX_INFLIGHT", DEFAULT_MAX_INFLIGHT, 1, 1024),
            token=_token(environ, "INFRA_API_TOKEN"),
            log_level=_choice(environ, "INFRA_API_LOG_LEVEL", DEFAULT_LOG_LEVEL, LOG_LEVELS),
            log_format=_choice(environ, "INFRA_API_LOG_FORMAT", DEFAULT_LOG_FORMAT, LOG_FORMATS),
            reap_interval=_float(environ, "INFRA_API_REAP_INTERVAL", DEFAULT_REAP_INTERVAL),
            orphan_age=orphan_age,
            cancel_grace=_float(environ, "INFRA_API_CANCEL_GRACE", DEFAULT_CANCEL_GRACE),
            passphrase=environ.get("PULUMI_CONFIG_PASSPHRASE"),
            program_dir=_path(environ, "INFRA_API_PROGRAM_DIR", PROGRAM_DIR),
            programs=_paths(environ, "INFRA_API_PROGRAMS", default_programs()),
            temporal_address=_address(environ, "INFRA_API_TEMPORAL_ADDRESS"),
            temporal_namespace=_name(environ, "INFRA_API_TEMPORAL_NAMESPACE",
                                     DEFAULT_TEMPORAL_NAMESPACE),
            task_queue=_name(environ, "INFRA_API_TASK_QUEUE", DEFAULT_TASK_QUEUE),
            run_worker=_bool(environ, "INFRA_API_RUN_WORKER", True),
            worker_concurrency=_int(environ, "INFRA_API_WORKER_CONCURRENCY",
                                    DEFAULT_WORKER_CONCURRENCY, 1, 256),
            webhook_concurrency=_int(environ, "INFRA_API_WEBHOOK_CONCURRENCY",
                                     DEFAULT_WEBHOOK_CONCURRENCY, 1, 256),
            backend=_backend(environ, "INFRA_API_BACKEND_URL"),
            max_ttl=_float(environ, "INFRA_API_MAX_TTL", DEFAULT_MAX_TTL, _YEAR),
            webhooks_file=_optional_path(environ, "INFRA_API_WEBHOOKS_FILE"),
            event_retention=_float(environ, "INFRA_API_EVENT_RETENTION", DEFAULT_EVENT_RETENTION,
                                   _YEAR),
        )


def _int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise SettingsError(name, raw, f"an integer from {low} to {high}")
    return value


def _token(environ: Mapping[str, str], name: str) -> str | None:
    raw = environ.get(name, "")
    # It travels in a header, where whitespace is trimmed and non-ASCII mangled: no client
    # could send such a token, so it is a mistake (a stray newline from a secrets file, say).
    if raw and not _TOKEN_RE.fullmatch(raw):
        raise SecretSettingError(name, "printable ASCII characters without whitespace")
    return raw or None


def _float(environ: Mapping[str, str], name: str, default: float, high: float = 86400) -> float:
    raw = environ.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    # NaN fails this comparison too, which is what we want.
    if not 0 < value < high:
        raise SettingsError(name, raw, f"a number of seconds above 0 and below {high:g}")
    return value


def _choice(environ: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = environ.get(name, "")
    if raw == "":
        return default
    value = raw.strip()
    if name == "INFRA_API_LOG_LEVEL":
        value = value.upper()
    if value not in choices:
        raise SettingsError(name, raw, "one of " + ", ".join(choices))
    return value


def _path(environ: Mapping[str, str], name: str, default: Path) -> Path:
    raw = environ.get(name, "")
    if raw == "":
        return default
    # Accept the backend spelling too, since the state directory *is* a file:// backend root.
    text = raw.removeprefix("file://")
    if not text or "\0" in text:
        raise SettingsError(name, raw, "a directory path or file:// URL")
    return Path(text).expanduser().resolve()


def _optional_path(environ: Mapping[str, str], name: str) -> Path | None:
    raw = environ.get(name, "")
    if raw == "":
        return None
    if "\0" in raw:
        raise SettingsError(name, raw, "a file path")
    return Path(raw).expanduser().resolve()


def default_programs() -> tuple[Path, ...]:
    """The burner program and every program directory under ``programs/``."""
    found = sorted(path.parent for path in PROGRAMS_DIR.glob("*/Pulumi.yaml"))
    return (PROGRAM_DIR, *found)


def _paths(environ: Mapping[str, str], name: str, default: tuple[Path, ...]) -> tuple[Path, ...]:
    raw = environ.get(name, "")
    if raw == "":
        return default
    parts = [part for part in raw.split(os.pathsep) if part]
    if not parts or any("\0" in part for part in parts):
        raise SettingsError(name, raw, f"directories separated by {os.pathsep!r}")
    return tuple(Path(part).expanduser().resolve() for part in parts)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_ADDRESS_RE = re.compile(r"^(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})$")


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "")
    if raw == "":
        return default
    value = raw.strip().lower()
    if value not in _TRUE + _FALSE:
        raise SettingsError(name, raw, "true or false")
    return value in _TRUE


def _name(environ: Mapping[str, str], name: str, default: str) -> str:
    raw = environ.get(name, "")
    if raw == "":
        return default
    if not _NAME_RE.match(raw):
        raise SettingsError(name, raw, "letters, digits, '.', '_' and '-' (at most 200)")
    return raw


def _backend(environ: Mapping[str, str], name: str) -> str | None:
    raw = environ.get(name, "")
    if raw == "":
        return None
    parts = urlsplit(raw)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # not a number from 0 to 65535
        port_ok = False
    postgres = parts.scheme in ("postgres", "postgresql") and bool(parts.hostname) and port_ok
    if not (postgres or (parts.scheme == "file" and len(raw) > len("file://"))):
        raise SettingsError(name, redact_url(raw), "a file://<dir> or "
                            "postgres://user:password@host:port/dbname URL")
    return raw


def _address(environ: Mapping[str, str], name: str) -> str | None:
    raw = environ.get(name, "")
    if raw == "":
        return None
    match = _ADDRESS_RE.match(raw)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        raise SettingsError(name, raw, "host:port of a Temporal frontend, e.g. 127.0.0.1:7233")
    return raw
