"""The stack settings file ``Pulumi.<stack>.yaml``: encryption salt and config values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline_pulumi.errors import EXIT_CONFIG_ERROR, CLIError
from offline_pulumi.fileio import write_atomic
from offline_pulumi.project import Project, load_yaml
from offline_pulumi.values import occurs

if TYPE_CHECKING:
    from offline_pulumi.crypto import Crypter

_KEY_ORDER = ("secretsprovider", "encryptedkey", "encryptionsalt", "config", "environment")
# A property path: `a.b`, `a[0]`, `a["key.with.dots"]` (pkg/resource/properties_path.go).
_SEGMENT = re.compile(r'\[(\d+)\]|\["([^"]*)"\]|\.?([^.\[\]"]+)')
_INT = re.compile(r"[+-]?[0-9]+")


def full_key(key: str, project: str, path: bool = False) -> str:
    """Namespace a config key with the project unless it already has one."""
    head = re.split(r"[.\[]", key, maxsplit=1)[0] if path else key
    return key if ":" in head else f"{project}:{key}"


def split_path(key: str) -> tuple[str, list[str | int]]:
    """``P:a.b[0]`` -> (``P:a``, [``b``, 0])."""
    namespace, _, rest = key.partition(":")
    segments: list[str | int] = []
    for match in _SEGMENT.finditer(rest):
        index, quoted, plain = match.groups()
        segments.append(int(index) if index is not None else
                        quoted if quoted is not None else plain)
    if not segments or not isinstance(segments[0], str):
        raise CLIError(f"invalid config path '{key}'")
    return f"{namespace}:{segments[0]}", segments[1:]


class StackSettings:
    """The parsed ``Pulumi.<stack>.yaml`` of one stack."""

    def __init__(self, path: Path, data: dict[str, Any] | None = None) -> None:
        self.path = path
        self.data: dict[str, Any] = data if data is not None else {}

    @classmethod
    def load(cls, project: Project, stack: str, config_file: str | None = None) -> StackSettings:
        """Read ``--config-file``, else the file beside the project (empty if missing)."""
        candidates = [Path(config_file)] if config_file else \
            [project.root / f"Pulumi.{stack}.{suffix}" for suffix in ("yaml", "yml", "json")]
        for path in candidates:
            if path.is_file():
                data = load_yaml(path) or {}
                if not isinstance(data, dict):
                    raise CLIError(f"{path} is not a mapping", EXIT_CONFIG_ERROR)
                settings = cls(path, data)
                settings.qualify_keys(project.name)
                return settings
        return cls(candidates[0], {})

    def qualify_keys(self, project: str) -> None:
        """Give keys written without a namespace the project's (as the real CLI reads them)."""
        config = self.data.get("config")
        if isinstance(config, dict) and any(":" not in str(key) for key in config):
            self.data["config"] = {full_key(str(k), project): v for k, v in config.items()}

    def save(self) -> None:
        """Write the file with Pulumi's key order and every scalar as a string."""
        import yaml

        ordered = {k: self.data[k] for k in _KEY_ORDER if self.data.get(k) not in (None, {})}
        ordered.update({k: v for k, v in self.data.items() if k not in ordered and v})
        # libyaml's emitter where PyYAML has it: a tenth of the pure-Python one's CPU, and the
        # same values (it folds long quoted strings differently).
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        text = yaml.dump(ordered, Dumper=dumper, sort_keys=False, default_flow_style=False,
                         allow_unicode=True)
        write_atomic(self.path, text.encode())

    def remove(self) -> None:
        """Delete the file."""
        self.path.unlink(missing_ok=True)

    @property
    def salt(self) -> str | None:
        """The ``encryptionsalt`` entry."""
        value = self.data.get("encryptionsalt")
        return value if isinstance(value, str) else None

    @property
    def config(self) -> dict[str, Any]:
        """The stack's raw config map (values, ``{secure: ...}`` or nested maps)."""
        config = self.data.get("config")
        if config is None:
            config = self.data["config"] = {}
        return config


def is_secure(value: Any) -> bool:
    """Whether a raw config value is ``{secure: <ciphertext>}``."""
    return isinstance(value, dict) and set(value) == {"secure"}


def has_secure(value: Any) -> bool:
    """Whether a raw config value holds a secure part anywhere."""
    return occurs(value, is_secure)


def decrypt_value(value: Any, crypter: Crypter | None) -> Any:
    """A raw config value with every secure part decrypted (``crypter`` None: masked)."""
    if is_secure(value):
        return crypter.decrypt(value["secure"]) if crypter else "[secret]"
    if isinstance(value, dict):
        return {k: decrypt_value(v, crypter) for k, v in value.items()}
    if isinstance(value, list):
        return [decrypt_value(v, crypter) for v in value]
    return value


def as_text(value: Any) -> str:
    """A config value as the program sees it: strings verbatim, objects as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def merged_config(project: Project, settings: StackSettings) -> dict[str, Any]:
    """Project defaults from ``Pulumi.yaml`` overlaid with the stack's values."""
    merged: dict[str, Any] = {}
    for key, spec in project.config.items():
        value = spec.get("default", spec.get("value")) if isinstance(spec, dict) else spec
        if value is not None:
            merged[full_key(key, project.name)] = value if isinstance(value, (dict, list)) \
                else str(value).lower() if isinstance(value, bool) else str(value)
    merged.update(settings.config)
    return merged


def set_path(config: dict[str, Any], key: str, value: Any, path: bool) -> None:
    """Store a value at ``key`` (a nested path with ``--path``)."""
    if not path:
        config[key] = value
        return
    top, segments = split_path(key)
    if not segments:
        config[top] = value
        return
    container: Any = config.setdefault(top, {} if isinstance(segments[0], str) else [])
    for segment, following in zip(segments, [*segments[1:], None], strict=True):
        empty: Any = {} if isinstance(following, str) else []
        if following is None:
            _put(container, segment, value)
        else:
            container = _get_or_put(container, segment, empty)


def path_value(text: str) -> Any:
    """A plain value set with ``--path``, as the CLI stores it (``adjustObjectValue``):
    ``true``/``false`` as booleans, integers as numbers unless they start with a 0."""
    if text in ("true", "false"):
        return text == "true"
    if len(text) > 1 and text.startswith("0"):
        return text
    if _INT.fullmatch(text) and -2**63 <= int(text) < 2**63:
        return int(text)
    return text


def _put(container: Any, segment: str | int, value: Any) -> None:
    if isinstance(segment, int):
        if not isinstance(container, list):
            raise CLIError("config path indexes a value that is not a list")
        # One past the end appends; further is refused, as by the CLI.
        if segment > len(container):
            raise CLIError("array index out of range")
        if segment == len(container):
            container.append(value)
            return
    elif not isinstance(container, dict):
        raise CLIError("config path names a key of a value that is not a map")
    container[segment] = value


def _get_or_put(container: Any, segment: str | int, empty: Any) -> Any:
    try:
        current = container[segment]
    except (KeyError, IndexError, TypeError):
        current = None
    if current is None:
        _put(container, segment, empty)
        return empty
    return current


def get_path(config: dict[str, Any], key: str, path: bool) -> Any:
    """The raw value at ``key``; raise KeyError when absent."""
    if not path:
        return config[key]
    top, segments = split_path(key)
    value = config[top]
    for segment in segments:
        try:
            value = value[segment]
        except (IndexError, TypeError) as exc:
            raise KeyError(key) from exc
    return value


def remove_path(config: dict[str, Any], key: str, path: bool) -> None:
    """Remove ``key`` if present."""
    if not path:
        config.pop(key, None)
        return
    top, segments = split_path(key)
    if not segments:
        config.pop(top, None)
        return
    try:
        parent = config[top]
        for segment in segments[:-1]:
            parent = parent[segment]
        del parent[segments[-1]]
    except (KeyError, IndexError, TypeError):
        return
