"""The Pulumi project (``Pulumi.yaml``) the CLI was started in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from offline_pulumi.errors import EXIT_CONFIG_ERROR, CLIError

PROJECT_FILES = ("Pulumi.yaml", "Pulumi.yml", "Pulumi.json")


class Project(NamedTuple):
    """What the engine needs from a project file (a NamedTuple: cheap to import)."""

    name: str
    root: Path
    runtime: str
    runtime_options: dict[str, Any]
    main: str | None
    config: dict[str, Any]
    backend_url: str | None

    @property
    def program_dir(self) -> Path:
        """The directory the program runs in (``main`` if it names a directory)."""
        if not self.main:
            return self.root
        main = (self.root / self.main).resolve()
        return main if main.is_dir() else main.parent

    @property
    def entry_point(self) -> str:
        """``.`` for a program directory, else the file name of ``main``."""
        if not self.main:
            return "."
        main = (self.root / self.main).resolve()
        return "." if main.is_dir() else main.name


def load_yaml(path: Path) -> Any:
    """Parse a YAML (or JSON) file with the C loader when available."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)


def _parse_project_file(path: Path) -> Any:
    """Parse a project file through a cache keyed by its exact text.

    Every CLI process reads the project file, and importing a YAML parser costs more than
    the rest of a quick command; the same text always parses to the same data.
    """
    import json
    import zlib

    text = path.read_bytes()
    cache = pulumi_home() / "offline-cache" / f"project-{zlib.crc32(text):08x}-{len(text)}.json"
    try:
        cached = json.loads(cache.read_bytes())
        if cached["text"] == text.decode():
            return cached["data"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no usable cache entry: parse below
    data = load_yaml(path)
    try:
        from offline_pulumi.fileio import write_json_atomic

        write_json_atomic(cache, {"text": text.decode(), "data": data})
    except (OSError, TypeError, ValueError):
        pass  # an unwritable cache, or YAML values JSON cannot hold, only cost speed
    return data


def find_project_file(start: Path) -> Path | None:
    """The first project file in ``start`` or its parents, like the real CLI."""
    for directory in (start, *start.parents):
        for name in PROJECT_FILES:
            candidate = directory / name
            if candidate.is_file():
                return candidate
    return None


def load_project(cwd: Path | None = None) -> Project:
    """Read the project around ``cwd``; raise CLIError if there is none or it is invalid."""
    start = (cwd or Path.cwd()).resolve()
    path = find_project_file(start)
    if path is None:
        raise CLIError(
            f"no Pulumi.yaml project file found (searching upwards from {start}). "
            "If you have not created a project yet, use `pulumi new` to do so",
            EXIT_CONFIG_ERROR,
        )
    data = _parse_project_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise CLIError(f"project file {path} must set a string 'name'", EXIT_CONFIG_ERROR)
    runtime = data.get("runtime")
    options: dict[str, Any] = {}
    if isinstance(runtime, dict):
        options = dict(runtime.get("options") or {})
        runtime = runtime.get("name")
    if not isinstance(runtime, str):
        raise CLIError(f"project file {path} must set 'runtime'", EXIT_CONFIG_ERROR)
    backend = data.get("backend") or {}
    return Project(
        name=data["name"],
        root=path.parent,
        runtime=runtime,
        runtime_options=options,
        main=data.get("main"),
        config=dict(data.get("config") or {}),
        backend_url=backend.get("url") if isinstance(backend, dict) else None,
    )


def pulumi_home() -> Path:
    """``$PULUMI_HOME`` or ``~/.pulumi``."""
    home = os.environ.get("PULUMI_HOME")
    return Path(home) if home else Path.home() / ".pulumi"
