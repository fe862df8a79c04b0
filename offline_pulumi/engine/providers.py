"""Which providers the engine has built in, and how resources find theirs."""

from __future__ import annotations

from types import ModuleType

from offline_pulumi.manifest import PROVIDER_PREFIX


class MissingProvider(Exception):
    """A resource needs a provider the offline engine does not have."""


def package_of(type_token: str) -> str:
    """``random:index/randomId:RandomId`` -> ``random``; provider types give their package."""
    if type_token.startswith(PROVIDER_PREFIX):
        return type_token[len(PROVIDER_PREFIX):]
    return type_token.split(":", 1)[0]


def builtin(package: str, resource: str) -> ModuleType:
    """The built-in provider module for a package; raise MissingProvider with advice."""
    if package == "random":
        from offline_pulumi.providers import random

        return random
    raise MissingProvider(
        f"no resource plugin '{package}' is available offline: {resource} needs the "
        f"'{package}' provider, and the offline engine has only the built-in 'random' "
        "provider (install the pulumi CLI and its plugins to use other providers)")


def default_provider_name(version: str) -> str:
    """``default`` plus the version with dots as underscores, as the real engine names it."""
    return f"default_{version.replace('.', '_').replace('-', '_')}" if version else "default"
