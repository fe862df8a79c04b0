"""``version``, ``whoami``, ``cancel``, ``plugin``, ``install`` and ``new``."""

from __future__ import annotations

import json
import os
import sys
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from offline_pulumi.args import Parsed
from offline_pulumi.context import Context
from offline_pulumi.errors import CLIError, UnsupportedError
from offline_pulumi.version import VERSION

if TYPE_CHECKING:
    from subprocess import CompletedProcess


def version(parsed: Parsed) -> None:
    """Print the CLI version the engine is compatible with."""
    print(f"v{VERSION}")


def whoami(parsed: Parsed) -> None:
    """Print the local user and the backend URL."""
    context = Context(parsed)
    from offline_pulumi.backend import resolve_backend_url

    project_url = None
    with suppress(CLIError):  # whoami works outside a project
        project_url = context.project.backend_url
    url, _ = resolve_backend_url(project_url, context.cwd)
    import getpass

    user = getpass.getuser()
    if parsed.has("json"):
        print(json.dumps({"user": user, "url": url}, indent=2))
    else:
        print(user)


def cancel(parsed: Parsed) -> None:
    """Delete the stack's lock files (the process holding them is not signalled)."""
    context = Context(parsed)
    ref = context.stack_ref()
    context.backend.require(ref)
    context.backend.clear_locks(ref)
    print(f"The currently running update for '{ref.name}' has been canceled!")


def _builtin_plugins() -> dict[str, str]:
    from offline_pulumi.providers import random

    return {random.PACKAGE: random.VERSION}


def plugin_ls(parsed: Parsed) -> None:
    """List the built-in provider plugins."""
    plugins = [{"name": name, "kind": "resource", "version": ver, "size": 0,
                "lastUsedTime": "0001-01-01T00:00:00.000Z"}
               for name, ver in _builtin_plugins().items()]
    if parsed.has("json"):
        print(json.dumps(plugins, indent=2))
        return
    for plugin in plugins:
        print(f"{plugin['name']}  resource  {plugin['version']}  (built into the offline engine)")


def plugin_install(parsed: Parsed) -> None:
    """Succeed for built-in plugins; explain that nothing can be downloaded otherwise."""
    kind, name = [*parsed.positionals, "", ""][:2]
    builtin = _builtin_plugins()
    if kind == "resource" and name in builtin:
        print(f"[resource plugin {name}-{builtin[name]}] is built into the offline "
              "engine; nothing to install")
        return
    what = f"{kind} plugin '{name}'" if name else "installing plugins"
    raise CLIError(f"{what} is not available offline: the offline engine only has the "
                   f"built-in {', '.join(builtin)} provider and downloads nothing")


def plugin_rm(parsed: Parsed) -> None:
    """Built-in plugins cannot be removed; there is nothing else."""
    print("no plugins to remove: the offline engine's providers are built in")


def install(parsed: Parsed) -> None:
    """Create the program's virtualenv (if configured) and install its requirements."""
    project = Context(parsed).project
    venv_option = project.runtime_options.get("virtualenv")
    if project.runtime != "python":
        raise UnsupportedError(f"the '{project.runtime}' runtime")
    if not venv_option:
        print("no virtualenv configured; dependencies are taken from the ambient python3")
        return
    venv = Path(venv_option) if os.path.isabs(venv_option) else project.root / venv_option
    python = venv / "bin" / "python"
    # Imported here: every command imports this module, only install runs processes.
    import subprocess

    if parsed.has("reinstall") or not python.exists():
        _check(subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)]), "venv")
    requirements = project.program_dir / "requirements.txt"
    if requirements.exists() and not parsed.has("no-dependencies"):
        _check(subprocess.run([str(python), "-m", "pip", "install", "-q", "-r",
                               str(requirements)]), "pip install")
    print(f"Finished installing dependencies into {venv}")


def _check(result: CompletedProcess[bytes], what: str) -> None:
    if result.returncode != 0:
        raise CLIError(f"{what} failed with exit code {result.returncode}")


def new(parsed: Parsed) -> None:
    """``new --generate-only`` from a template directory: copy it, filling in the project."""
    from offline_pulumi.templates import generate

    if not parsed.has("generate-only"):
        raise UnsupportedError("'pulumi new' without --generate-only (create the stack with "
                               "'pulumi stack init' afterwards)")
    template = parsed.positionals[0] if parsed.positionals else ""
    target = Path(parsed.value("dir") or Context(parsed).cwd).resolve()
    name = parsed.value("name") or target.name
    generate(Path(template), target, name, parsed.value("description"),
             force=parsed.has("force"))
    print(f"Your new project '{name}' is ready in {target}")
