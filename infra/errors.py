"""Errors raised by the burner pipeline, in one small hierarchy.

::

    InfraError                      base: anything the service itself reports
    ├── SettingsError               an INFRA_API_* variable has a bad value (start-up)
    ├── ParameterError              a request parameter is missing, unknown or out of range
    └── EngineError                 a Pulumi operation failed (the engine's output stays in the log)
        └── ProgramEnvironmentError the burner program's virtualenv could not be built

The HTTP layer maps these to status codes once (``infra_api.py``); everything else
treats them as ordinary exceptions.
"""

from __future__ import annotations


class InfraError(Exception):
    """Base class for every error this service raises on purpose."""


class SettingsError(InfraError):
    """Raised when an ``INFRA_API_*`` environment variable has an unusable value."""

    def __init__(self, variable: str, value: str, expected: str) -> None:
        super().__init__(f"{variable}={value!r} is invalid: expected {expected}")
        self.variable = variable
        self.value = value
        self.expected = expected


class ParameterError(InfraError):
    """Raised when a request parameter is unknown or outside its allowed range."""

    def __init__(self, parameter: str, value: str, allowed: str) -> None:
        super().__init__(f"parameter {parameter!r}={value!r} is invalid: allowed {allowed}")
        self.parameter = parameter
        self.value = value
        self.allowed = allowed


class EngineError(InfraError):
    """Raised when a Pulumi operation on a burner stack fails."""

    def __init__(self, phase: str, stack: str | None, detail: str) -> None:
        super().__init__(f"{phase} failed for stack {stack or '-'}: {detail}")
        self.phase = phase
        self.stack = stack
        self.detail = detail


class ProgramEnvironmentError(EngineError):
    """Raised when the burner program's virtualenv cannot be built."""

    def __init__(self, detail: str) -> None:
        super().__init__("ensure_venv", None, detail)
