"""``up``, ``preview``, ``refresh`` and ``destroy``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, NamedTuple

from offline_pulumi import values
from offline_pulumi.args import Parsed
from offline_pulumi.backend import StackRef, checkpoint_bytes
from offline_pulumi.confirm import require_go_ahead
from offline_pulumi.context import Context, environment_flags
from offline_pulumi.errors import (
    EXIT_CANCELLED,
    EXIT_FAILURE,
    EXIT_NO_CHANGES,
    CLIError,
    UnsupportedError,
)
from offline_pulumi.manifest import manifest, stack_resource
from offline_pulumi.stackconfig import (
    StackSettings,
    as_text,
    decrypt_value,
    has_secure,
    merged_config,
)

if TYPE_CHECKING:
    # Imported when an operation runs: every CLI process imports this module.
    from offline_pulumi.crypto import PassphraseManager
    from offline_pulumi.engine.deployment import Deployment

_UNSUPPORTED_FLAGS = ("target-replace", "policy-pack",
                      "policy-pack-config", "plan", "save-plan", "import-file",
                      "attach-debugger", "config", "neo", "import-pending-creates",
                      "exec-agent")
_HEADERS = {"update": "Updating", "preview": "Previewing update", "refresh": "Refreshing",
            "destroy": "Destroying"}


class Operation(NamedTuple):
    """Which operation runs, and whether it only previews."""

    kind: str           # update | refresh | destroy
    dry_run: bool

    @property
    def header(self) -> str:
        """The first line of the progress output."""
        if self.dry_run and self.kind != "update":
            return f"Previewing {self.kind}"
        return _HEADERS["preview" if self.dry_run else self.kind]


def up(parsed: Parsed) -> int:
    """Run the program and apply its changes."""
    return _run(parsed, Operation("update", False))


def preview(parsed: Parsed) -> int:
    """Run the program and report what an update would change."""
    return _run(parsed, Operation("update", True))


def refresh(parsed: Parsed) -> int:
    """Read every resource back into the state."""
    return _run(parsed, Operation("refresh", parsed.has("preview-only")))


def destroy(parsed: Parsed) -> int:
    """Delete every resource of the stack (and with ``--remove`` the stack itself)."""
    preview_only = parsed.has("preview-only")
    code = _run(parsed, Operation("destroy", preview_only))
    if code == 0 and parsed.has("remove") and not preview_only:
        from offline_pulumi.commands.stack import remove_stack

        context = Context(parsed)
        remove_stack(context, context.stack_ref(), force=False, preserve_config=False)
    return code


def _run(parsed: Parsed, operation: Operation) -> int:
    for flag in _UNSUPPORTED_FLAGS:
        if parsed.has(flag):
            raise UnsupportedError(f"--{flag}")
    if not operation.dry_run:
        require_go_ahead(parsed)
    context = Context(parsed)
    ref = context.stack_ref()
    context.backend.require(ref)
    with nullcontext() if operation.dry_run else context.backend.lock(ref):
        update = _Update(context, ref, operation, parsed)
        try:
            return update.run()
        finally:
            update.events.close()


class _Update:
    """One operation on a locked stack, from loading state to writing history."""

    def __init__(self, context: Context, ref: StackRef, operation: Operation,
                 parsed: Parsed) -> None:
        from offline_pulumi.engine.events import EventStream

        self.context, self.ref, self.operation, self.parsed = context, ref, operation, parsed
        self.backend = context.backend
        self.settings = StackSettings.load(context.project, ref.name,
                                           parsed.value("config-file"))
        self.latest: dict[str, Any] = self.backend.read_latest(ref) or {}
        self._manager: PassphraseManager | None = None
        self.events = EventStream(parsed.value("event-log"), json_digest=parsed.has("json"))
        self.started = time.time()

    @property
    def manager(self) -> PassphraseManager:
        if self._manager is None:
            self._manager = self.context.secrets_manager(self.settings, self.latest)
        return self._manager

    def run(self) -> int:
        config, secret_keys = self._config()
        self.events.prelude({k: "[secret]" if k in secret_keys else v
                             for k, v in config.items()})
        self.events.say(f"{self.operation.header} ({self.ref.name}):")
        self._warn_pending()
        from offline_pulumi.engine.deployment import Deployment
        from offline_pulumi.engine.runner import CANCELLED

        deployment = Deployment(
            self.ref.name, self.context.project.name, self._old_resources(), self.events,
            dry_run=self.operation.dry_run, persist=self._persist,
            force_replace=frozenset(self.parsed.values("replace")),
            pending=self.latest.get("pending_operations"), stack_outputs=self._stack_outputs,
            targets=self._urns("target"), excludes=self._urns("exclude"))
        if self.parsed.has("refresh") and self.operation.kind != "refresh":
            deployment.refresh_all(clear_pending_creates=False, counted=False)
        error = self._execute(deployment, config, secret_keys)
        ok = error is None and deployment.failure is None
        if self.operation.kind == "update":
            deployment.finish(ok)
            ok = ok and deployment.failure is None
        changes = dict(deployment.changes)
        unexpected = ok and self.parsed.has("expect-no-changes") and set(changes) - {"same"}
        if unexpected:
            error = "no changes were expected but changes occurred"
            ok = False
        if error:
            self.events.diagnostic("error", error)
        outputs = deployment.stack_outputs
        if outputs is None:
            outputs = (stack_resource({"resources": deployment.snapshot()}) or {}) \
                .get("outputs")
        if not self.operation.dry_run:
            self._record(deployment, ok, changes)
        self.events.summary(changes, self.operation.dry_run, ok, outputs)
        if ok and deployment.kept_protected:
            self.events.say("All unprotected resources were destroyed. There are still "
                            f"{deployment.kept_protected} protected resources associated "
                            "with this stack.")
        if ok:
            return 0
        if error == CANCELLED:
            return EXIT_CANCELLED
        return EXIT_NO_CHANGES if unexpected else EXIT_FAILURE

    def _urns(self, flag: str) -> frozenset[str]:
        """``--target``/``--exclude`` URNs; destroy and refresh refuse ones the stack lacks."""
        urns = frozenset(self.parsed.values(flag))
        if urns and self.operation.kind in ("destroy", "refresh"):
            known = {r.get("urn") for r in self.latest.get("resources") or []}
            missing = sorted(urns - known)
            if missing:
                raise CLIError(f"no resource named '{missing[0]}' found")
        return urns

    def _stack_outputs(self, name: str) -> dict[str, Any]:
        """Another stack's outputs in this backend, secrets decrypted but still secret."""
        from offline_pulumi.backend import parse_stack_ref
        from offline_pulumi.crypto import PassphraseManager

        ref = parse_stack_ref(name, self.context.project.name)
        latest = self.backend.read_latest(ref) or {}
        outputs: dict[str, Any] = dict((stack_resource(latest) or {}).get("outputs") or {})
        if values.contains_secret(outputs):
            salt = ((latest.get("secrets_providers") or {}).get("state") or {}).get("salt")
            crypter = PassphraseManager(salt).crypter if salt else self.manager.crypter
            outputs = values.from_state(outputs, crypter.decrypt)
        return outputs

    def _config(self) -> tuple[dict[str, str], set[str]]:
        raw = merged_config(self.context.project, self.settings)
        secret_keys = {k for k, v in raw.items() if has_secure(v)}
        crypter = self.manager.crypter if secret_keys else None
        return {k: as_text(decrypt_value(v, crypter)) for k, v in raw.items()}, secret_keys

    def _old_resources(self) -> list[dict[str, Any]]:
        resources = self.latest.get("resources") or []
        if not values.contains_secret(resources):
            return list(resources)
        decoded: list[dict[str, Any]] = values.from_state(
            resources, lambda text: self.manager.crypter.decrypt(text))
        return decoded

    def _warn_pending(self) -> None:
        pending = self.latest.get("pending_operations") or []
        if not pending or self.operation.kind == "refresh":
            return
        lines = [f"Attempting to deploy or update resources with {len(pending)} pending "
                 "operations from previous deployment."]
        lines += [f"  * {p['resource']['urn']}, interrupted while {p['type']}"
                  for p in pending]
        lines.append("These resources are in an unknown state because the Pulumi CLI was "
                     "interrupted while waiting for changes to these resources to complete. "
                     "You should confirm whether or not the operations listed completed "
                     "successfully by checking the state of the appropriate provider. Run "
                     "`pulumi refresh` to clear these pending operations.")
        self.events.diagnostic("warning", "\n".join(lines))

    def _execute(self, deployment: Deployment, config: dict[str, str],
                 secret_keys: set[str]) -> str | None:
        kind = self.operation.kind
        if kind == "refresh":
            deployment.refresh_all(self.parsed.has("clear-pending-creates"))
            return None
        if kind == "destroy":
            deployment.destroy_all(exclude_protected=self.parsed.has("exclude-protected"),
                                   target_dependents=self.parsed.has("target-dependents"),
                                   exclude_dependents=self.parsed.has("exclude-dependents"))
            return None
        from offline_pulumi.engine.runner import run_program

        return run_program(self.context.project, self.ref.name, deployment, self.events,
                           config, sorted(secret_keys), self.parsed)

    def _persist(self, resources: list[dict[str, Any]],
                 pending: list[dict[str, Any]]) -> None:
        # Encoded once as it is: only a checkpoint that holds the secret signature at all is
        # walked for secrets to encrypt, and encoded again (saves come after every step).
        latest = self._latest(resources, pending, lambda part: part)
        data = checkpoint_bytes(self.ref, latest)
        if values.SIG_BYTES in data:
            latest = self._latest(resources, pending, self._encode)
            data = checkpoint_bytes(self.ref, latest)
        self.backend.save_latest(self.ref, latest, data)
        self.latest = latest

    def _latest(self, resources: list[dict[str, Any]], pending: list[dict[str, Any]],
                encode: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
                ) -> dict[str, Any]:
        latest = {**self.latest, "manifest": manifest(),
                  "secrets_providers": self.latest.get("secrets_providers") or
                  {"type": "passphrase", "state": {"salt": self.manager.salt_state}},
                  "resources": encode(resources)}
        latest.pop("pending_operations", None)
        if pending:
            latest["pending_operations"] = [{**p, "resource": encode([p["resource"]])[0]}
                                            for p in pending]
        return latest

    def _encode(self, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not values.occurs(resources, values.is_secret):
            return resources
        encoded: list[dict[str, Any]] = values.to_state(
            resources, lambda text: self.manager.crypter.encrypt(text))
        return encoded

    def _record(self, deployment: Deployment, ok: bool, changes: dict[str, int]) -> None:
        self._persist(deployment.snapshot(), deployment.pending_operations())
        info = {"kind": self.operation.kind, "startTime": int(self.started),
                "message": self.parsed.value("message") or "",
                "environment": self._environment(), "config": dict(self.settings.config),
                "version": 0, "result": "succeeded" if ok else "failed",
                "endTime": int(time.time()), "resourceChanges": changes}
        self.backend.add_history(self.ref, info, self.latest)

    def _environment(self) -> dict[str, str]:
        from offline_pulumi.version import VERSION

        environment = {"exec.kind": self.parsed.value("exec-kind") or "cli",
                       "pulumi.version": f"v{VERSION}", "pulumi.os": os.uname().sysname.lower(),
                       "pulumi.arch": os.uname().machine, "updatePlan": "false"}
        environment.update({f"pulumi.flag.{k}": "true" if v == ["true"] else "set"
                            for k, v in self.parsed.flags.items() if k != "event-log"})
        environment.update(environment_flags())
        return environment

