"""A small argv parser shaped like the Pulumi CLI's flags (cheaper to import than argparse)."""

from __future__ import annotations

from offline_pulumi.errors import CLIError

# Flags any command accepts; they change nothing the offline engine does.
GLOBAL_BOOL = frozenset(
    {"non-interactive", "logtostderr", "disable-integrity-checking", "emoji", "e",
     "fully-qualify-stack-names", "logflow", "profiling", "help", "h"}
)
GLOBAL_VALUE = frozenset({"color", "cwd", "C", "verbose", "v", "tracing", "memprofilerate",
                          "tracing-header", "otel-traces"})


class Parsed:
    """Flags and positional arguments of one command line."""

    # A plain class: every CLI process parses argv, and `dataclasses` costs 5 ms to import.
    def __init__(self) -> None:
        self.flags: dict[str, list[str]] = {}
        self.positionals: list[str] = []

    def has(self, name: str) -> bool:
        """Whether the flag was given."""
        return name in self.flags

    def value(self, name: str, default: str | None = None) -> str | None:
        """The last value of a flag, or the default."""
        values = self.flags.get(name)
        return values[-1] if values else default

    def values(self, name: str) -> list[str]:
        """Every value of a repeated flag, in order."""
        return self.flags.get(name, [])

    def truthy(self, name: str) -> bool:
        """Whether a boolean flag was given and not set to false."""
        value = self.value(name)
        return value is not None and value.lower() not in ("false", "0")


def parse(argv: list[str], bools: frozenset[str], values: frozenset[str],
          command: str) -> Parsed:
    """Parse argv against the command's known flags; unknown flags raise CLIError."""
    parsed = Parsed()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            parsed.positionals.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            parsed.positionals.append(arg)
            continue
        name, eq, inline = arg.lstrip("-").partition("=")
        if name in bools or name in GLOBAL_BOOL:
            parsed.flags.setdefault(name, []).append(inline if eq else "true")
        elif name in values or name in GLOBAL_VALUE:
            if not eq:
                if i >= len(argv):
                    raise CLIError(f"flag needs an argument: {arg}")
                inline = argv[i]
                i += 1
            parsed.flags.setdefault(name, []).append(inline)
        else:
            raise CLIError(f"unknown flag: {arg} (for 'pulumi {command}')")
    return parsed
