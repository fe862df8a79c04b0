"""The vocabulary of steps: resources as state dicts, decoded registrations, step metadata."""

from __future__ import annotations

from typing import Any, NamedTuple

from offline_pulumi.manifest import PROVIDER_PREFIX

Resource = dict[str, Any]


class StepFailed(Exception):
    """A resource step failed; the message was reported as an error diagnostic."""


class Registration(NamedTuple):
    """One RegisterResource request, decoded (NamedTuples: `dataclasses` is slow to import)."""

    type: str
    name: str
    custom: bool
    inputs: dict[str, Any]
    parent: str = ""
    provider: str = ""
    version: str = ""
    protect: bool = False
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    dependencies: tuple[str, ...] = ()
    property_dependencies: dict[str, list[str]] | None = None
    ignore_changes: tuple[str, ...] = ()
    replace_on_changes: tuple[str, ...] = ()
    additional_secret_outputs: tuple[str, ...] = ()
    alias_urns: tuple[str, ...] = ()
    import_id: str = ""


class Registered(NamedTuple):
    """What the monitor answers: the URN, ID and outputs (in-memory form)."""

    urn: str
    id: str
    outputs: dict[str, Any]


def is_default_provider(resource: Resource) -> bool:
    """Whether a resource is a default provider the engine made itself."""
    return resource["type"].startswith(PROVIDER_PREFIX) and \
        resource["urn"].rsplit("::", 1)[-1].startswith("default")


def needs(resource: Resource) -> set[str]:
    """The URNs a resource needs to exist: its parent, dependencies and provider."""
    urns = {resource.get("parent", ""), resource.get("provider", "").rsplit("::", 1)[0]}
    urns.update(resource.get("dependencies") or [])
    for dependencies in (resource.get("propertyDependencies") or {}).values():
        urns.update(dependencies)
    urns.discard("")
    return urns


def dependents(resources: list[Resource], urns: set[str] | frozenset[str]) -> set[str]:
    """Every resource that needs one of ``urns``, directly or not (``resources`` in order)."""
    found: set[str] = set()
    for resource in resources:   # what a resource needs comes before it
        if needs(resource) & (found | urns):
            found.add(resource["urn"])
    return found - set(urns)


def step_metadata(op: str, old: Resource | None, new: Resource | None) -> dict[str, Any]:
    """The ``metadata`` of a step event, as the real engine reports it."""
    subject = new or old or {}
    return {"op": op, "urn": subject.get("urn", ""), "type": subject.get("type", ""),
            "old": _step_state(old), "new": _step_state(new), "detailedDiff": None,
            "provider": subject.get("provider", "")}


def _step_state(resource: Resource | None) -> dict[str, Any] | None:
    if resource is None:
        return None
    return {"type": resource["type"], "urn": resource["urn"],
            "custom": resource.get("custom", False), "delete": resource.get("delete", False),
            "id": resource.get("id", ""), "parent": resource.get("parent", ""),
            "protect": resource.get("protect", False), "inputs": resource.get("inputs", {}),
            "outputs": resource.get("outputs", {}), "provider": resource.get("provider", "")}
