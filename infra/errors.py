"""Errors the service raises on purpose, in one small hierarchy.

::

    InfraError                      base: anything the service itself reports (500 internal_error)
    ├── SettingsError               an INFRA_API_* variable has a bad value (start-up only)
    │   └── SecretSettingError      the same for a secret: the message never shows the value
    ├── StateDirError               503 state_dir_unusable: the state directory is refused or unusable
    ├── OrchestrationError          503 orchestration_unavailable: the Temporal cluster is unreachable
    ├── ParameterError              400 invalid_parameter: a query parameter is unknown or out of range
    ├── UnauthorizedError           401 unauthorized: the bearer token is missing or wrong
    ├── ForbiddenError              403 forbidden: the caller may not do this (reveal secrets)
    ├── NotFoundError               404 not_found: no such stack, operation or program
    ├── ConflictError               409 conflict: the stack exists, or runs another operation
    ├── IdempotencyError            422 idempotency_key_reused: same key, another request body
    ├── OverloadedError             503 overloaded: every burner slot of this process is busy
    └── EngineError                 502 engine_error: a Pulumi operation failed (output stays in the log)
        ├── ProgramEnvironmentError 502 engine_error: the program's virtualenv could not be built
        ├── OutputsTooLargeError    502 outputs_too_large: a stack's outputs exceed what is kept
        └── DeadlineError           504 deadline_exceeded: the request timeout cancelled the operation

Each class carries its HTTP ``status`` and a stable ``code``; ``infra.web`` maps them to
responses in one handler, and everything else treats them as ordinary exceptions.
"""

from __future__ import annotations


class InfraError(Exception):
    """Base class for every error this service raises on purpose."""

    status = 500
    code = "internal_error"
    title = "Internal error"


class SettingsError(InfraError):
    """Raised when an ``INFRA_API_*`` environment variable has an unusable value."""

    def __init__(self, variable: str, value: str, expected: str) -> None:
        super().__init__(f"{variable}={value!r} is invalid: expected {expected}")
        self.variable = variable
        self.value = value
        self.expected = expected


class SecretSettingError(SettingsError):
    """Raised when a secret variable (the API token) has an unusable value; never echoes it."""

    def __init__(self, variable: str, expected: str) -> None:
        InfraError.__init__(self, f"{variable} is invalid (value not shown): expected {expected}")
        self.variable = variable
        self.value = ""
        self.expected = expected


class StateDirError(InfraError):
    """Raised when the state directory cannot be used (or must not be: see infra.statedir)."""

    status = 503
    code = "state_dir_unusable"
    title = "State directory unusable"
    retry_after = 30

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"state directory {path} {problem}")


class OrchestrationError(InfraError):
    """Raised when the workflow service cannot be reached or refuses a call."""

    status = 503
    code = "orchestration_unavailable"
    title = "Workflow service unavailable"
    retry_after = 5


class ParameterError(InfraError):
    """Raised when a request parameter is unknown or outside its allowed range."""

    status = 400
    code = "invalid_parameter"
    title = "Invalid parameter"

    def __init__(self, parameter: str, value: str, allowed: str) -> None:
        # What a client sent may hold unpaired surrogates, which neither JSON bodies nor
        # logs can carry: they are shown escaped.
        parameter, value = _escaped(parameter), _escaped(value)
        super().__init__(f"parameter {parameter!r}={value!r} is invalid: allowed {allowed}")
        self.parameter = parameter
        self.value = value
        self.allowed = allowed


def _escaped(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode()


class UnauthorizedError(InfraError):
    """Raised when a token is configured and the request does not carry it."""

    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class ForbiddenError(InfraError):
    """Raised when the caller may not do what it asks, whoever it is."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFoundError(InfraError):
    """Raised when a named stack, operation or program does not exist."""

    status = 404
    code = "not_found"
    title = "Not found"


class ConflictError(InfraError):
    """Raised when the request conflicts with the resource's state.

    ``operation`` names the operation in the way (the running one), when there is one.
    """

    status = 409
    code = "conflict"
    title = "Conflict"

    def __init__(self, message: str, operation: str | None = None) -> None:
        super().__init__(message)
        self.operation = operation


class IdempotencyError(InfraError):
    """Raised when an Idempotency-Key comes back with a different request body."""

    status = 422
    code = "idempotency_key_reused"
    title = "Idempotency key reused"


class OverloadedError(InfraError):
    """Raised, before any stack exists, when this process already runs its most stacks."""

    status = 503
    code = "overloaded"
    title = "Service overloaded"

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"all {limit} burner slots are busy")
        self.limit = limit
        self.retry_after = retry_after


class EngineError(InfraError):
    """Raised when a Pulumi operation on a burner stack fails."""

    status = 502
    code = "engine_error"
    title = "Pulumi engine error"
    # Whether an operation's error repeats the detail (most hold engine output: log only).
    detail_shown = False

    def __init__(self, phase: str, stack: str | None, detail: str) -> None:
        super().__init__(f"{phase} failed for stack {stack or '-'}: {detail}")
        self.phase = phase
        self.stack = stack
        self.detail = detail


class ProgramEnvironmentError(EngineError):
    """Raised when the burner program's virtualenv cannot be built."""

    def __init__(self, detail: str) -> None:
        super().__init__("ensure_venv", None, detail)


class OutputsTooLargeError(EngineError):
    """Raised when a stack's outputs are too large to keep with its operation."""

    code = "outputs_too_large"
    title = "Outputs too large"
    detail_shown = True

    def __init__(self, stack: str, size: int, limit: int) -> None:
        super().__init__("read_outputs", stack,
                         f"the outputs take {size} bytes as JSON; at most {limit} are kept")


class DeadlineError(EngineError):
    """Raised when the request timeout expired and the running operation was cancelled."""

    status = 504
    code = "deadline_exceeded"
    title = "Request timeout"

    def __init__(self, phase: str, stack: str | None, timeout: float) -> None:
        super().__init__(phase, stack, f"cancelled after the {timeout:g} s request timeout")
        self.timeout = timeout
