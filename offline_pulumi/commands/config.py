"""``config``, ``config get/set/set-all/rm/rm-all`` on ``Pulumi.<stack>.yaml``."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from offline_pulumi.args import Parsed
from offline_pulumi.context import Context
from offline_pulumi.errors import EXIT_CONFIG_ERROR, CLIError, UnsupportedError
from offline_pulumi.fileio import dump_json
from offline_pulumi.stackconfig import (
    StackSettings,
    decrypt_value,
    full_key,
    get_path,
    has_secure,
    merged_config,
    path_value,
    remove_path,
    set_path,
)

if TYPE_CHECKING:
    from offline_pulumi.crypto import Crypter


class _Stack:
    """The selected stack's settings file and, on demand, its crypter."""

    def __init__(self, parsed: Parsed) -> None:
        self.context = Context(parsed)
        self.ref = self.context.stack_ref()
        self.context.backend.require(self.ref)
        self.settings = StackSettings.load(self.context.project, self.ref.name,
                                           parsed.value("config-file"))
        self._crypter: Crypter | None = None

    @property
    def crypter(self) -> Crypter:
        if self._crypter is None:
            latest = self.context.backend.read_latest(self.ref)
            self._crypter = self.context.secrets_manager(self.settings, latest).crypter
        return self._crypter

    def key(self, raw: str, path: bool) -> str:
        return full_key(raw, self.context.project.name, path)


def list_(parsed: Parsed) -> None:
    """Print every config value (secrets shown only with ``--show-secrets``)."""
    stack = _Stack(parsed)
    show = parsed.has("show-secrets")
    config = merged_config(stack.context.project, stack.settings)
    rows: dict[str, dict[str, Any]] = {}
    for key in sorted(config):
        raw = config[key]
        secret = has_secure(raw)
        row: dict[str, Any] = {"secret": secret}
        if show or not secret:
            value = decrypt_value(raw, stack.crypter if secret else None)
            row["value"] = value if isinstance(value, str) else dump_json(value)
            if not isinstance(value, str):
                row["objectValue"] = value
        rows[key] = row
    if parsed.has("json"):
        print(json.dumps(rows, indent=2))
        return
    print("KEY  VALUE")
    for key, row in rows.items():
        print(f"{key.split(':', 1)[1]}  {row.get('value', '[secret]')}")


def get(parsed: Parsed) -> None:
    """Print one config value."""
    stack = _Stack(parsed)
    if len(parsed.positionals) != 1:
        raise CLIError("config get expects exactly one key")
    path = parsed.has("path")
    key = stack.key(parsed.positionals[0], path)
    config = merged_config(stack.context.project, stack.settings)
    try:
        raw = get_path(config, key, path)
    except KeyError:
        raise CLIError(f"configuration key '{parsed.positionals[0]}' not found for stack "
                       f"'{stack.ref.name}'", EXIT_CONFIG_ERROR) from None
    secret = has_secure(raw)
    value = decrypt_value(raw, stack.crypter if secret else None)
    text = value if isinstance(value, str) else dump_json(value)
    if parsed.has("json"):
        result: dict[str, Any] = {"value": text, "secret": secret}
        if not isinstance(value, str):
            result["objectValue"] = value
        print(json.dumps(result, indent=2))
    else:
        print(text)


def _store(stack: _Stack, key: str, value: str, secret: bool, path: bool) -> None:
    raw: Any = {"secure": stack.crypter.encrypt(value)} if secret else \
        path_value(value) if path else value
    set_path(stack.settings.config, stack.key(key, path), raw, path)


def set_(parsed: Parsed) -> None:
    """Set one value (from the last argument, or stdin when it is missing)."""
    stack = _Stack(parsed)
    if parsed.has("type"):
        raise UnsupportedError("config set --type")
    args = parsed.positionals
    if len(args) == 1:
        if sys.stdin.isatty():
            raise CLIError("config set needs a value")
        args = [args[0], sys.stdin.read().rstrip("\n")]
    if len(args) != 2:
        raise CLIError("config set expects a key and a value")
    _store(stack, args[0], args[1], parsed.has("secret"), parsed.has("path"))
    stack.settings.save()


def set_all(parsed: Parsed) -> None:
    """Set many values in one write: ``--plaintext k=v``, ``--secret k=v`` or ``--json``."""
    stack = _Stack(parsed)
    path = parsed.has("path")
    if parsed.has("json"):
        _set_from_json(stack, parsed.value("json") or "", path)
    for flag, secret in (("plaintext", False), ("secret", True)):
        for pair in parsed.values(flag):
            key, value = split_pair(pair)
            _store(stack, key, value, secret, path)
    stack.settings.save()


def _set_from_json(stack: _Stack, text: str, path: bool) -> None:
    try:
        entries = json.loads(text)
    except ValueError as exc:
        raise CLIError(f"--json is not valid JSON: {exc}") from exc
    if not isinstance(entries, dict):
        raise CLIError("--json must be an object of key -> {value, secret}")
    for key, entry in entries.items():
        if not isinstance(entry, dict):
            raise CLIError(f"--json entry '{key}' must be an object")
        value = entry.get("objectValue", entry.get("value"))
        text_value = value if isinstance(value, str) else dump_json(value)
        _store(stack, key, text_value, bool(entry.get("secret")), path)


def split_pair(pair: str) -> tuple[str, str]:
    """``k=v`` split on the first ``=``; a quoted key may contain ``=``."""
    if pair[:1] in ("'", '"'):
        quote = pair[0]
        end = pair.find(quote + "=", 1)
        if end > 0:
            return pair[1:end], pair[end + 2:]
    key, eq, value = pair.partition("=")
    if not eq:
        raise CLIError(f"config value '{pair}' must be of the form key=value")
    return key, value


def rm(parsed: Parsed) -> None:
    """Remove one key."""
    stack = _Stack(parsed)
    if len(parsed.positionals) != 1:
        raise CLIError("config rm expects exactly one key")
    path = parsed.has("path")
    remove_path(stack.settings.config, stack.key(parsed.positionals[0], path), path)
    stack.settings.save()


def rm_all(parsed: Parsed) -> None:
    """Remove several keys."""
    stack = _Stack(parsed)
    path = parsed.has("path")
    for key in parsed.positionals:
        remove_path(stack.settings.config, stack.key(key, path), path)
    stack.settings.save()
