"""The program catalog: Pulumi projects whose own ``config:`` block is their API's input schema.

A program is a directory with a Pulumi.yaml (and Python code). Its project-level config
(Pulumi v3.44+: ``type`` string, integer, boolean or array with ``items``, ``default``,
``description``, ``secret``) is the one schema: values are checked against it here, and it is
served as JSON Schema too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from infra.errors import ParameterError, SettingsError
from infra.masking import SECRET_MASK

TYPES = ("string", "integer", "boolean", "array")
# Pulumi's own rule for project names; the project name also names the stack's state.
_PROJECT_NAME = re.compile(r"(?!\.{1,2}$)[A-Za-z0-9_.-]{1,100}")
# A config key as the engine's command line can set it (an `=` would split it there), with at
# most one namespace, and without control characters or surrounding spaces.
_KEY_NAME = re.compile(r"(?:[^\x00-\x20\x7f=:][^\x00-\x1f\x7f=:]*:)?"
                       r"[^\x00-\x20\x7f=:](?:[^\x00-\x1f\x7f=:]*[^\x00-\x20\x7f=:])?")
_JSON_TYPES = {"string": str, "integer": int, "boolean": bool}


@dataclasses.dataclass(frozen=True)
class ConfigKey:
    """One key of a program's config: its type, default, description and secrecy."""

    name: str
    type: str
    description: str = ""
    default: Any = None
    secret: bool = False
    items: str | None = None  # the element type of an array

    @property
    def required(self) -> bool:
        """A key without a default must be given."""
        return self.default is None

    @property
    def shown_default(self) -> Any:
        """The default as the API shows it: a secret one only as the mask."""
        return SECRET_MASK if self.secret and self.default is not None else self.default

    def json_schema(self) -> dict[str, Any]:
        """This key as a JSON Schema property (a secret key's default is not shown)."""
        schema: dict[str, Any] = {"type": self.type}
        if self.items is not None:
            schema["items"] = {"type": self.items}
        if self.description:
            schema["description"] = self.description
        if self.default is not None and not self.secret:
            schema["default"] = self.default
        if self.secret:
            schema["writeOnly"] = True
        return schema

    def check(self, value: Any) -> Any:
        """``value`` if it has this key's type; raise ParameterError naming the key otherwise
        (a secret key's value is never repeated in the error)."""
        repeated = SECRET_MASK if self.secret else shown(value)
        if self.type == "array":
            if not isinstance(value, list) or not all(_is(item, self.items or "string")
                                                      for item in value):
                raise ParameterError(self.name, repeated,
                                     f"an array of {self.items or 'string'} values")
            strings = [item for item in value if isinstance(item, str)]
        elif not _is(value, self.type):
            raise ParameterError(self.name, repeated, f"a{'n' if self.type[0] in 'ai' else ''} "
                                                   f"{self.type}")
        else:
            strings = [value] if isinstance(value, str) else []
        # The engine gets config through a command line and files: a NUL or an unpaired
        # surrogate cannot get there, and would fail the operation after its 202.
        if any("\0" in text or not _encodable(text) for text in strings):
            raise ParameterError(self.name, repeated, "text without NUL characters or unpaired "
                                                   "surrogates")
        return value


@dataclasses.dataclass(frozen=True)
class Program:
    """A Pulumi program of the catalog."""

    name: str
    path: Path
    description: str
    config: tuple[ConfigKey, ...]

    def json_schema(self) -> dict[str, Any]:
        """The config as a JSON Schema object."""
        return {"type": "object",
                "properties": {key.name: key.json_schema() for key in self.config},
                "required": [key.name for key in self.config if key.required],
                "additionalProperties": False}

    def unknown_key(self, name: str) -> ParameterError:
        """The error for a config key this program does not have; the value is not shown, as
        the key may be a secret one misspelled."""
        return ParameterError(name, "(not shown)", "the config keys of " + self.name + ": "
                              + (", ".join(sorted(key.name for key in self.config)) or "none"))

    def validate(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The config with defaults filled in; raise ParameterError on the first bad key."""
        known = {key.name: key for key in self.config}
        for name in sorted(values):
            if name not in known:
                raise self.unknown_key(name)
        result = {}
        for key in self.config:
            if key.name in values:
                result[key.name] = key.check(values[key.name])
            elif key.required:
                raise ParameterError(key.name, "", f"a value: {key.name} has no default")
            else:
                result[key.name] = key.default
        return result


def load_program(path: Path) -> Program:
    """Read a program's Pulumi.yaml; raise SettingsError naming what is wrong."""
    project_file = path / "Pulumi.yaml"
    try:
        project = yaml.safe_load(project_file.read_text())
    except OSError as exc:
        raise SettingsError("INFRA_API_PROGRAMS", str(path),
                            f"a readable Pulumi.yaml ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise SettingsError("INFRA_API_PROGRAMS", str(path), "a UTF-8 Pulumi.yaml") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SettingsError("INFRA_API_PROGRAMS", str(path),
                            f"a Pulumi.yaml that is valid YAML (parse error{where})") from exc
    if not isinstance(project, dict) or not isinstance(project.get("name"), str):
        raise SettingsError("INFRA_API_PROGRAMS", str(path), "a Pulumi.yaml with a name")
    if not _PROJECT_NAME.fullmatch(project["name"]):
        raise SettingsError("INFRA_API_PROGRAMS", str(path),
                            "a project name of at most 100 letters, digits, '-', '_' and '.'")
    _check_main(path, project.get("main"))
    raw_config = project.get("config") or {}
    if not isinstance(raw_config, dict):
        raise SettingsError("INFRA_API_PROGRAMS", str(path), "a config: block that is a mapping")
    keys = tuple(_config_key(path, name, spec) for name, spec in raw_config.items())
    # `<project>:key` is the same Pulumi key as `key`.
    local = [key.name.removeprefix(project["name"] + ":") for key in keys]
    twice = sorted({name for name in local if local.count(name) > 1})
    if twice:
        raise SettingsError("INFRA_API_PROGRAMS", str(path),
                            f"config keys that are distinct Pulumi keys ({twice[0]!r} twice)")
    return Program(project["name"], path, str(project.get("description") or ""), keys)


def load_catalog(paths: Sequence[Path]) -> dict[str, Program]:
    """The programs of ``paths`` by name; raise SettingsError on a bad or duplicate one."""
    catalog: dict[str, Program] = {}
    for path in paths:
        program = load_program(path)
        if program.name in catalog:
            raise SettingsError("INFRA_API_PROGRAMS", os.pathsep.join(map(str, paths)),
                                f"programs with distinct names ({program.name!r} twice)")
        catalog[program.name] = program
    return catalog


def _check_main(path: Path, main: Any) -> None:
    if main is None:
        return
    inside = isinstance(main, str) and not Path(main).is_absolute() and (
        (path / main).resolve().is_relative_to(path.resolve()))
    if not inside or not (path / main).exists():
        raise SettingsError("INFRA_API_PROGRAMS", str(path),
                            "a main: that is a file or directory inside the program's directory")


def _config_key(path: Path, name: Any, spec: Any) -> ConfigKey:
    if not isinstance(name, str) or not _KEY_NAME.fullmatch(name):
        # YAML reads `on:` as true and `123:` as a number: they need quotes to be names.
        raise SettingsError("INFRA_API_PROGRAMS", str(path),
                            f"config key {name!r} of {path / 'Pulumi.yaml'}: a name without '=', "
                            "control characters or surrounding spaces (with one optional "
                            "'namespace:'), quoted where YAML reads a number or boolean")
    where = f"config key {name!r} of {path / 'Pulumi.yaml'}"
    if not isinstance(spec, dict):
        # The short form `key: value` is a default whose type is the value's.
        spec = {"type": _type_of(spec), "default": spec}
    kind = spec.get("type", _type_of(spec.get("default")))
    if kind not in TYPES:
        raise SettingsError("INFRA_API_PROGRAMS", str(path), f"{where}: a type among {TYPES}")
    items = None
    if kind == "array":
        declared = spec.get("items")
        items = ("string" if declared is None else
                 declared.get("type", "string") if isinstance(declared, dict) else None)
        if items not in _JSON_TYPES:
            raise SettingsError("INFRA_API_PROGRAMS", str(path),
                                f"{where}: items: a mapping whose type is string, "
                                "integer or boolean")
    key = ConfigKey(name, kind, str(spec.get("description") or ""), spec.get("default"),
                    bool(spec.get("secret", False)), items)
    if key.default is not None:
        try:
            key.check(key.default)
        except ParameterError as exc:
            raise SettingsError("INFRA_API_PROGRAMS", str(path),
                                f"{where}: a default that is {exc.allowed}") from exc
    return key


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, list):
        return "array"
    return "string"


def _is(value: Any, kind: str) -> bool:
    expected = _JSON_TYPES[kind]
    # bool is an int in Python, not in JSON.
    return isinstance(value, expected) and (kind == "boolean" or not isinstance(value, bool))


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def shown(value: Any) -> str:
    """A refused value as the client wrote it: JSON (a string without its quotes), shortened."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 100 else text[:97] + "..."


class Catalog:
    """The programs of the configured directories, read once on first use."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = tuple(paths)
        self._programs: dict[str, Program] | None = None
        self._lock = threading.Lock()

    def programs(self) -> dict[str, Program]:
        """Every program by name; raise SettingsError if one is unusable."""
        with self._lock:
            if self._programs is None:
                self._programs = load_catalog(self.paths)
            return self._programs
