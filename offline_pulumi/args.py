"""A small argv parser shaped like the Pulumi CLI's flags (cheaper to import than argparse).

Each command declares its flags once, with their short aliases (``"yes|y"``); the parser
canonicalises every alias to its long name, so commands only ever ask for ``yes``, ``stack``,
``json``.
"""

from __future__ import annotations

from offline_pulumi.errors import CLIError

# Colorization values of the real CLI (pkg/util/cmdutil/colors.go): anything else is an error.
COLORS = ("auto", "always", "never", "raw")


class Flags:
    """The flags of a command: boolean and valued long names, and short alias -> long name."""

    # A plain class: every CLI process builds the command table, and NamedTuple is slower.
    __slots__ = ("aliases", "bools", "values")

    def __init__(self, bools: frozenset[str], values: frozenset[str],
                 aliases: dict[str, str]) -> None:
        self.bools, self.values, self.aliases = bools, values, aliases

    def __or__(self, other: object) -> Flags:
        if not isinstance(other, Flags):
            return NotImplemented
        return Flags(self.bools | other.bools, self.values | other.values,
                     {**self.aliases, **other.aliases})

    def canonical(self, name: str) -> str:
        """The long name of a flag given by either of its names."""
        return self.aliases.get(name, name)


def flags(bools: str = "", values: str = "") -> Flags:
    """Flags from space-separated specs such as ``"yes|y json|j"`` (``|`` names the alias)."""
    aliases: dict[str, str] = {}

    def names(specs: str) -> frozenset[str]:
        result = set()
        for spec in specs.split():
            long, *short = spec.split("|")
            result.add(long)
            aliases.update(dict.fromkeys(short, long))
        return frozenset(result)

    return Flags(names(bools), names(values), aliases)


# Flags any command accepts; only --cwd and --color change anything the offline engine does.
GLOBAL = flags(
    "non-interactive logtostderr disable-integrity-checking emoji|e "
    "fully-qualify-stack-names logflow profiling help|h",
    "color cwd|C verbose|v tracing memprofilerate tracing-header otel-traces")


class Parsed:
    """Flags (by long name) and positional arguments of one command line."""

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


def parse(argv: list[str], known: Flags, command: str) -> Parsed:
    """Parse argv against the command's flags; unknown flags or bad values raise CLIError."""
    known = known | GLOBAL
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
        given, eq, inline = arg.lstrip("-").partition("=")
        name = known.canonical(given)
        if name in known.bools:
            parsed.flags.setdefault(name, []).append(inline if eq else "true")
        elif name in known.values:
            if not eq:
                if i >= len(argv):
                    raise CLIError(f"flag needs an argument: {arg}")
                inline = argv[i]
                i += 1
            parsed.flags.setdefault(name, []).append(inline)
        else:
            raise CLIError(f"unknown flag: {arg} (for 'pulumi {command}')")
    color = parsed.value("color")
    if color is not None and color not in COLORS:
        raise CLIError(f"unsupported color option: '{color}'.  Supported values are: "
                       f"{', '.join(COLORS)}")
    return parsed
