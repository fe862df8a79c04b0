"""Steps of one update: compare what the program registers with the old state, apply, record.

The decisions live here (create, same, replace, import, read; aliases, ignoreChanges,
``--target``, ``--replace``, protect); ``ledger.Ledger`` applies and records them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from offline_pulumi import values
from offline_pulumi.engine.ledger import Ledger
from offline_pulumi.engine.providers import (
    MissingProvider,
    builtin,
    default_provider_name,
    package_of,
)
from offline_pulumi.engine.steps import (
    Registered,
    Registration,
    Resource,
    StepFailed,
    is_default_provider,
    step_metadata,
)
from offline_pulumi.manifest import PROVIDER_PREFIX, STACK_REFERENCE_TYPE, STACK_TYPE


class Deployment(Ledger):
    """Turns the program's registrations into steps (the monitor calls ``register``)."""

    # -- registration ------------------------------------------------------------------
    def register(self, request: Registration) -> Registered:
        """Run the step for one resource; raise StepFailed after reporting a failure."""
        with self.registering():
            return self._register(request)

    def _register(self, request: Registration) -> Registered:
        urn = self.urn(request.type, request.name, request.parent)
        with self._lock:
            if self.failure:
                raise StepFailed(self.failure)
            if urn in self.new:
                return self._fail(urn, request.type, f"Duplicate resource URN '{urn}'; try "
                                  "giving it a unique name")
            old = self._find_old(urn, request.alias_urns)
        if not self._targeted(urn, request.type):
            return self._untargeted(urn, old, request)
        if request.custom:
            return self._register_custom(urn, request, old)
        return self._register_component(urn, request, old)

    def read(self, request: Registration, resource_id: str) -> Registered:
        """A ``ReadResource``: only stack references can be read offline.

        The built-in provider's read returns ``name``, ``outputs`` (secrets stay secret) and
        ``secretOutputNames`` (pkg/resource/deploy/builtins.go, readStackReference). A read
        whose outputs did not change since the last one counts as ``same``
        (pkg/engine/update.go, hasReadChanged).
        """
        urn = self.urn(request.type, request.name, request.parent)
        if request.type != STACK_REFERENCE_TYPE or self.stack_outputs_of is None:
            self._fail(urn, request.type, f"reading existing resources ('{request.type}' "
                                          f"'{request.name}') is not supported offline")
        assert self.stack_outputs_of is not None
        try:
            outputs = self.stack_outputs_of(resource_id)
        except Exception as exc:  # an unknown or unreadable stack fails the read
            self._fail(urn, request.type, f"reading stack reference '{resource_id}' failed: "
                                          f"{exc}")
        secret_names = sorted(k for k, v in outputs.items() if values.contains_secret(v))
        read = {"name": resource_id, "outputs": outputs, "secretOutputNames": secret_names}
        with self._lock:
            old = self.old.get(urn)
        new = self._state(urn, request, resource_id, read, old)
        new["external"] = True
        changed = old is not None and old.get("outputs") != read
        self._run_step("read", old, new, counted=False)
        with self._lock:
            self.changes["read" if changed else "same"] += 1
        return Registered(urn, resource_id, read)

    def _untargeted(self, urn: str, old: Resource | None,
                    request: Registration) -> Registered:
        """A resource outside ``--target`` keeps its old state; a new one is not created.

        As pkg/resource/deploy/step_generator.go: an untargeted resource gets a same step
        with its old state, and an untargeted create is skipped (it is not in the state).
        """
        if old is None:
            return Registered(urn, "", request.inputs)
        kept = {**old, "urn": urn}
        self._run_step("same", old, kept, counted=True)
        return Registered(urn, kept.get("id", ""), kept.get("outputs", {}))

    def _find_old(self, urn: str, aliases: tuple[str, ...]) -> Resource | None:
        for candidate in (urn, *aliases):
            if candidate in self.old:
                return self.old[candidate]
        return None

    def _register_component(self, urn: str, request: Registration,
                            old: Resource | None) -> Registered:
        new = self._state(urn, request, "", {}, old)
        if request.type == STACK_TYPE and old is not None:
            new["outputs"] = old.get("outputs", {})
        op = "create" if old is None else ("same" if old.get("inputs", {}) == request.inputs
                                           else "update")
        self._run_step(op, old, new, counted=True, outputs_event=False)
        return Registered(urn, "", new["outputs"])

    def _register_custom(self, urn: str, request: Registration,
                         old: Resource | None) -> Registered:
        if request.type.startswith(PROVIDER_PREFIX):
            return self._register_provider(urn, request, old)
        if old is not None and request.ignore_changes:
            request = request._replace(inputs=_ignoring_changes(
                request.inputs, old.get("inputs", {}), request.ignore_changes))
        try:
            provider_ref = self._provider_ref(request)
            impl = builtin(package_of(request.type), f"resource '{request.name}' of type "
                                                      f"'{request.type}'")
            checked = impl.check(request.type, values.plain(request.inputs))
        except MissingProvider as exc:
            return self._fail(urn, request.type, str(exc))
        except Exception as exc:  # a provider's check rejects the inputs
            return self._fail(urn, request.type, f"{request.type} resource '{request.name}' "
                                                 f"has a problem: {exc}")
        if request.import_id and old is None:
            return self._import(urn, request, impl, checked, provider_ref)
        op = self._plan(urn, request, old, impl, checked)
        if op == "replace":
            self._refuse_protected_replace(urn, request, old)
        secret_keys = {k for k, v in request.inputs.items() if values.contains_secret(v)}
        secret_keys |= set(impl.secret_outputs(request.type)) | set(
            request.additional_secret_outputs)
        if op == "same":
            assert old is not None
            new = self._state(urn, request, old.get("id", ""), old.get("outputs", {}), old,
                              provider_ref)
            self._run_step("same", old, new, counted=True)
            return Registered(urn, new["id"], new["outputs"])
        if self.dry_run:
            new = self._state(urn, request, "", request.inputs, old, provider_ref)
            self._run_step(op, old, new, counted=True)
            return Registered(urn, "", request.inputs)

        def create() -> tuple[str, dict[str, Any]]:
            resource_id, outputs = impl.create(request.type, checked)
            return resource_id, {k: values.secret(v) if k in secret_keys else v
                                 for k, v in outputs.items()}

        try:
            new = self._apply(urn, request, old, op, create, provider_ref)
        except Exception as exc:  # a provider's create failed
            return self._fail(urn, request.type, f"creating {request.type} resource "
                                                 f"'{request.name}' failed: {exc}")
        return Registered(urn, new["id"], new["outputs"])

    def _import(self, urn: str, request: Registration, impl: Any, checked: dict[str, Any],
                provider_ref: str) -> Registered:
        """Adopt an existing resource: read it by ID; its inputs must match the program's.

        As ImportStep (pkg/resource/deploy/step.go): a mismatch warns in a preview and fails
        an update; the resource enters the state with the read outputs, counted as import.
        """
        try:
            read_inputs, outputs = impl.read(request.type, request.import_id)
        except Exception as exc:  # the provider cannot read this ID
            return self._fail(urn, request.type, f"importing {request.type} resource "
                                                 f"'{request.name}' ({request.import_id}) "
                                                 f"failed: {exc}")
        changed = impl.diff(request.type, read_inputs, checked).changed
        if changed:
            message = ("inputs to import do not match the existing resource: "
                       f"[{', '.join(changed)}]")
            if not self.dry_run:
                return self._fail(urn, request.type, message)
            self.events.diagnostic("warning", message + "; importing this resource will fail",
                                   urn=urn)
        secret_keys = set(impl.secret_outputs(request.type)) | set(
            request.additional_secret_outputs)
        outputs = {k: values.secret(v) if k in secret_keys else v for k, v in outputs.items()}
        new = self._state(urn, request, str(outputs.get("id") or request.import_id), outputs,
                          None, provider_ref)
        self._run_step("import", None, new, counted=True)
        return Registered(urn, new["id"], new["outputs"])

    def _plan(self, urn: str, request: Registration, old: Resource | None, impl: Any,
              checked: dict[str, Any]) -> str:
        if old is None:
            return "create"
        if urn in self.force_replace:
            return "replace"
        olds = values.plain(old.get("inputs", {}))
        news = dict(checked)
        for key in request.ignore_changes:
            if key in olds:
                news[key] = olds[key]
            else:
                news.pop(key, None)
        diff = impl.diff(request.type, olds, news)
        if not diff.changed:
            return "same"
        # The built-in providers have no updatable inputs: every change replaces.
        return "replace"

    def _refuse_protected_replace(self, urn: str, request: Registration,
                                  old: Resource | None) -> None:
        """A replacement deletes the old resource: refused while old and new are protected.

        As pkg/resource/deploy/step_generator.go: unprotecting and replacing in one update
        is allowed; a preview reports the error and goes on, an update stops.
        """
        if old is None or not (old.get("protect") and request.protect):
            return
        message = (f"unable to replace resource \"{urn}\"\nas it is currently marked for "
                   "protection. To unprotect the resource, remove the `protect` flag from "
                   "the resource in your Pulumi program and run `pulumi up`")
        if self.dry_run:
            with self._lock:
                self.failure = self.failure or message
            self.events.diagnostic("error", message, urn=urn)
            return
        self._fail(urn, request.type, message)

    def _apply(self, urn: str, request: Registration, old: Resource | None, op: str,
               create: Callable[[], tuple[str, dict[str, Any]]], provider_ref: str) -> Resource:
        """Create (or replace) a custom resource, recording the operation while it runs."""
        # A replacement is a new resource: created (and modified) now, as any create.
        draft = self._state(urn, request, "", request.inputs, None if op == "replace" else old,
                            provider_ref)
        if op == "replace" and old is not None and request.delete_before_replace:
            self._delete(old, op="delete-replaced", counted=False)
        started = time.monotonic()
        first_op = "create-replacement" if op == "replace" else "create"
        self.events.step_pre(step_metadata(first_op, old, draft))
        self._begin(urn, draft, "creating")
        resource_id, outputs = create()
        new = {**draft, "id": resource_id, "outputs": outputs}
        with self._lock:
            self.in_flight.pop(urn, None)
            self.new[urn] = new
            if op == "replace" and old is not None and not request.delete_before_replace:
                doomed = dict(old)
                doomed["delete"] = True
                self.doomed.append(doomed)
            self._forget_old(urn, old)
            self.changes[op] += 1
            change = self._changed()
        self._save(change)
        self.events.step_done(step_metadata(first_op, old, new), time.monotonic() - started)
        if op == "replace":
            self.events.step_pre(step_metadata("replace", old, new), quiet=True)
            self.events.step_done(step_metadata("replace", old, new), 0, quiet=True)
        return new

    def _register_provider(self, urn: str, request: Registration,
                           old: Resource | None) -> Registered:
        package = package_of(request.type)
        try:
            builtin(package, f"provider '{request.name}'")
        except MissingProvider as exc:
            return self._fail(urn, request.type, str(exc))
        same = old is not None and values.plain(old.get("inputs", {})) == \
            values.plain(request.inputs)
        import uuid

        provider_id = old.get("id", "") if (same and old) else \
            ("" if self.dry_run else str(uuid.uuid4()))
        new = self._state(urn, request, provider_id, request.inputs, old)
        op = "same" if same else ("create" if old is None else "replace")
        counted = not is_default_provider(new)
        self._run_step(op, old, new, counted=counted, quiet=not counted)
        return Registered(urn, provider_id, new["outputs"])

    def _provider_ref(self, request: Registration) -> str:
        """The ``<urn>::<id>`` of the resource's provider, making the default one if needed."""
        if request.provider:
            provider_urn = request.provider.rsplit("::", 1)[0]
            package = package_of(provider_urn.split("::")[2].split("$")[-1])
            if package != package_of(request.type):
                raise MissingProvider(f"provider {provider_urn} cannot manage {request.type}")
            return request.provider
        package = package_of(request.type)
        builtin(package, f"resource '{request.name}' of type '{request.type}'")
        name = default_provider_name(request.version)
        urn = f"urn:pulumi:{self.stack}::{self.project}::{PROVIDER_PREFIX}{package}::{name}"
        # Not under ``_lock``: registering the provider saves the snapshot, which needs it.
        with self._default_providers:
            with self._lock:
                existing, old = self.new.get(urn), self.old.get(urn)
            if existing is None:
                inputs = {"version": request.version} if request.version else {}
                registered = self._register_provider(
                    urn, Registration(type=f"{PROVIDER_PREFIX}{package}", name=name,
                                      custom=True, inputs=inputs), old)
                return f"{urn}::{registered.id}"
            return f"{urn}::{existing.get('id', '')}"


def _ignoring_changes(news: dict[str, Any], olds: dict[str, Any],
                      ignored: tuple[str, ...]) -> dict[str, Any]:
    """New inputs with every ignored top-level input set back to its old value.

    The real engine records these inputs in the state too, so an ignored change never shows
    up later (pkg/resource/deploy/step_generator.go, processIgnoreChanges).
    """
    merged = dict(news)
    for key in ignored:
        if key in olds:
            merged[key] = olds[key]
        else:
            merged.pop(key, None)
    return merged
