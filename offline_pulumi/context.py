"""What every command needs: the project, the backend, the selected stack and its secrets."""

from __future__ import annotations

import hashlib
import json
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from offline_pulumi.args import Parsed
from offline_pulumi.backend import ORG, DiyBackend, StackRef, open_backend, parse_stack_ref
from offline_pulumi.errors import CLIError, UnsupportedError
from offline_pulumi.fileio import write_json_atomic
from offline_pulumi.project import PROJECT_FILES, Project, load_project, pulumi_home
from offline_pulumi.stackconfig import StackSettings

if TYPE_CHECKING:
    from offline_pulumi.crypto import PassphraseManager


class Context:
    """The environment of one CLI invocation."""

    def __init__(self, parsed: Parsed) -> None:
        self.parsed = parsed
        cwd = parsed.value("cwd")
        self.cwd = Path(cwd).resolve() if cwd else Path.cwd()

    @cached_property
    def project(self) -> Project:
        """The project file around the working directory."""
        return load_project(self.cwd)

    @cached_property
    def backend(self) -> DiyBackend:
        """The opened backend (``file://`` or ``postgres://``)."""
        return open_backend(self.project.backend_url, self.cwd)

    # -- stack selection ---------------------------------------------------------------
    def _selection_file(self) -> Path:
        project_file = next(self.project.root / n for n in PROJECT_FILES
                            if (self.project.root / n).is_file())
        digest = hashlib.sha1(str(project_file).encode()).hexdigest()
        return pulumi_home() / "workspaces" / f"{self.project.name}-{digest}-workspace.json"

    def selected(self) -> str | None:
        """The fully qualified name of the selected stack, if any."""
        try:
            data = json.loads(self._selection_file().read_text())
        except (OSError, ValueError):
            return None
        value = (data.get("stacks") or {}).get(self.backend.url) or data.get("stack")
        return value if isinstance(value, str) else None

    def select(self, ref: StackRef | None) -> None:
        """Record (or with None clear) the selected stack of this project."""
        path = self._selection_file()
        if ref is None:
            path.unlink(missing_ok=True)
            return
        write_json_atomic(path, {"stack": ref.fqn, "stacks": {self.backend.url: ref.fqn}},
                          indent=4)

    def stack_ref(self, explicit: str | None = None) -> StackRef:
        """The stack named by ``explicit``/``--stack``, else the selected one."""
        name = explicit or self.parsed.value("stack")
        if name:
            return parse_stack_ref(name, self.project.name)
        current = self.selected()
        if current:
            return parse_stack_ref(current, self.project.name)
        raise CLIError("no stack selected; please use `pulumi stack select` to choose one, "
                       "or pass --stack")

    # -- secrets -----------------------------------------------------------------------
    def secrets_manager(self, settings: StackSettings,
                        latest: dict[str, Any] | None) -> PassphraseManager:
        """The stack's passphrase manager (salt from the stack file, else the checkpoint)."""
        from offline_pulumi.crypto import PassphraseManager

        salt = settings.salt
        providers = (latest or {}).get("secrets_providers") or {}
        if not salt and providers:
            if providers.get("type") != "passphrase":
                raise UnsupportedError(f"the '{providers.get('type')}' secrets provider")
            salt = (providers.get("state") or {}).get("salt")
        if not salt:
            manager = PassphraseManager.create()
            settings.data["encryptionsalt"] = manager.salt_state
            settings.save()
            return manager
        return PassphraseManager(salt)


def environment_flags() -> dict[str, str]:
    """Which ``PULUMI_*`` variables were set (recorded in history, values never)."""
    return {f"pulumi.env.{k}": "set" for k in os.environ
            if k.startswith("PULUMI_") and k not in ("PULUMI_HOME",)}


__all__ = ["ORG", "Context", "environment_flags"]
