"""What ``stack import`` checks before a deployment replaces a stack's state.

As the CLI (``pkg/cmd/pulumi/stack/stack_import.go``, ``saveSnapshot``): every resource must be
of the stack it is imported into, and the snapshot must pass ``Snapshot.VerifyIntegrity``
(``pkg/resource/deploy/snapshot.go``): providers, parents and dependencies come before the
resources that name them, and a URN is there once unless marked for deletion. Problems are
errors, or with ``--force`` warnings.
"""

from __future__ import annotations

from typing import Any

from offline_pulumi.manifest import PROVIDER_PREFIX


class MalformedDeployment(ValueError):
    """A deployment whose resources are not what a checkpoint holds."""


def check_shape(resources: Any) -> list[dict[str, Any]]:
    """The resources as a list of objects with a string URN and type, or MalformedDeployment
    naming the first that is not (later commands would fail on it deep inside)."""
    if not isinstance(resources, list):
        raise MalformedDeployment("'resources' is not a list")
    for index, resource in enumerate(resources):
        if not isinstance(resource, dict):
            raise MalformedDeployment(f"resource {index} is not an object")
        for field in ("urn", "type"):
            if not isinstance(resource.get(field), str) or not resource[field]:
                raise MalformedDeployment(f"resource {index} has no string '{field}'")
        if resource["urn"].count("::") < 3 or not resource["urn"].startswith("urn:pulumi:"):
            raise MalformedDeployment(f"resource {index} has a malformed URN "
                                      f"'{resource['urn']}'")
        for field in ("inputs", "outputs", "propertyDependencies"):
            if not isinstance(resource.get(field, {}), dict):
                raise MalformedDeployment(f"resource {resource['urn']}: '{field}' is not an "
                                          "object")
        for field in ("parent", "provider", "deletedWith", "id"):
            if not isinstance(resource.get(field, ""), str):
                raise MalformedDeployment(f"resource {resource['urn']}: '{field}' is not a "
                                          "string")
        dependencies = resource.get("dependencies", [])
        if not isinstance(dependencies, list) or \
                not all(isinstance(d, str) for d in dependencies):
            raise MalformedDeployment(f"resource {resource['urn']}: 'dependencies' is not a "
                                      "list of URNs")
    return resources


def foreign_resources(resources: list[dict[str, Any]], stack: str) -> list[str]:
    """One complaint per resource whose URN names another stack."""
    complaints = []
    for resource in resources:
        owner = resource["urn"].removeprefix("urn:pulumi:").split("::", 1)[0]
        if owner != stack:
            complaints.append(f"resource '{resource['urn']}' is from a different stack "
                              f"({owner} != {stack})")
    return complaints


def integrity_error(resources: list[dict[str, Any]]) -> str | None:
    """The first integrity error of the snapshot, as ``VerifyIntegrity`` words it."""
    seen: set[str] = set()
    providers: set[str] = set()
    for index, resource in enumerate(resources):
        urn = resource["urn"]
        later = {other["urn"] for other in resources[index + 1:]}
        if resource["type"].startswith(PROVIDER_PREFIX):
            providers.add(f"{urn}::{resource.get('id', '')}")
        provider = resource.get("provider", "")
        if provider and provider not in providers and not resource.get("pendingReplacement"):
            return f"resource {urn} refers to unknown provider {provider}"
        parent = resource.get("parent", "")
        if parent and parent not in seen:
            if parent in later:
                return f"child resource {urn}'s parent {parent} comes after it"
            return f"child resource {urn} refers to missing parent {parent}"
        for dependency in resource.get("dependencies", []):
            if dependency not in seen:
                if dependency in later:
                    return f"resource {urn}'s dependency {dependency} comes after it"
                return f"resource {urn}'s dependency {dependency} refers to missing resource"
        for prop, dependencies in resource.get("propertyDependencies", {}).items():
            for dependency in dependencies if isinstance(dependencies, list) else []:
                if dependency not in seen:
                    where = "comes after it" if dependency in later \
                        else "refers to missing resource"
                    return (f"resource {urn}'s property dependency {dependency} (from property "
                            f"{prop}) {where}")
        deleted_with = resource.get("deletedWith", "")
        if deleted_with and deleted_with not in seen:
            if deleted_with in later:
                return (f"resource {urn} is specified as being deleted with {deleted_with}, "
                        "which comes after it")
            return (f"resource {urn} is specified as being deleted with {deleted_with}, which "
                    "is missing")
        if urn in seen and not resource.get("delete"):
            return f"duplicate resource {urn} (not marked for deletion)"
        seen.add(urn)
    return None


def error_list(messages: list[str]) -> str:
    """Several errors as the CLI joins them (hashicorp/go-multierror's list format)."""
    count = f"{len(messages)} error{'s' if len(messages) != 1 else ''} occurred"
    return count + ":\n" + "".join(f"\t* {message}\n" for message in messages) + "\n"
