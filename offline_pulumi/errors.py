"""Errors the offline engine reports to its caller.

    CLIError                  printed as ``error: <message>``; carries the exit code
     ├── UnsupportedError     a command or flag the offline engine does not implement
     ├── StackNotFound        text matched by the Automation API's StackNotFoundError
     ├── StackAlreadyExists   text matched by StackAlreadyExistsError
     └── StackLocked          text matched by ConcurrentUpdateError
"""

from __future__ import annotations

# Exit codes of the real CLI (pkg/cmd/pulumi/cmd/exit_codes.go).
EXIT_FAILURE = 1
EXIT_CONFIG_ERROR = 2
EXIT_STACK_NOT_FOUND = 6
EXIT_NO_CHANGES = 7   # --expect-no-changes, and there were changes
EXIT_CANCELLED = 8
EXIT_INTERNAL = 255


class CLIError(Exception):
    """A failure reported as ``error: <message>`` on stderr with a non-zero exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UnsupportedError(CLIError):
    """Raised for commands and flags the offline engine does not implement."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} is not supported by the offline engine; install the pulumi CLI to use it"
        )


class StackNotFound(CLIError):
    """Raised when a stack does not exist in the backend."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no stack named '{name}' found", EXIT_STACK_NOT_FOUND)


class StackAlreadyExists(CLIError):
    """Raised when ``stack init`` names a stack that exists."""

    def __init__(self, fqn: str) -> None:
        super().__init__(f"stack '{fqn}' already exists")


class StackLocked(CLIError):
    """Raised when another process holds the stack's lock."""
